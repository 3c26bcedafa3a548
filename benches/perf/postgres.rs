//! The `PostgreSQL` section of the benchmark (issue #11), opt-in with
//! `--postgres`: the release `memberctl` with its state in a real
//! `PostgreSQL` 15 (a throw-away cluster on loopback, started as the
//! integration tests start theirs), against the same runs on the state file.
//!
//! - `plan` of the steady 100,000-member workload (the state pushed into
//!   the database with `memberctl state push`), next to the same plan from
//!   the file: the issue asks for at most twice the file's time;
//! - `apply` of 10,000 members on the sandbox (batch 100), each run on a
//!   new state name, next to the same apply on a state file: the difference
//!   divided by the batches is what recording one batch in the database
//!   costs beyond the file's journal;
//! - the bytes the 100,000-member state takes in the database
//!   (`pg_total_relation_size` of `memberctl.resources`).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use super::postgres_server::Postgres;
use super::{mb, measure, path_arg, repeat, sandbox_config, secs, thousands, Job, RssMethod, Sample};

/// Members of the apply runs.
const APPLY_MEMBERS: usize = 10_000;
/// The sandbox's default batch size.
const BATCH: usize = 100;

/// The figures of the section.
pub struct Rows {
    addresses: usize,
    plan_file: Sample,
    plan_postgres: Sample,
    apply_file: Sample,
    apply_postgres: Sample,
    table_bytes: u64,
}

fn with_state(yaml: &str, name: &str) -> String {
    format!("{yaml}state:\n  backend: postgres\n  url_env: MEMBERCTL_DATABASE_URL\n  name: {name}\n")
}

/// Runs the section on the steady workload in `v2_dir` (`memberctl.yaml`
/// and `memberctl.state.json`, as the version 2 section wrote them).
/// `bin` is the binary under test (`--bin`, or this build's).
pub fn section(bin: &Path, runs: usize, method: RssMethod, root: &Path, v2_dir: &Path, addresses: usize) -> Rows {
    let server = Postgres::own();
    let database = server.database();
    let url = server.url(&database);
    let env = || vec![("MEMBERCTL_DATABASE_URL", url.clone())];

    let dir = root.join("pg-plan");
    fs::create_dir_all(&dir).expect("mkdir");
    let yaml = fs::read_to_string(v2_dir.join("memberctl.yaml")).expect("the version 2 config");
    fs::write(dir.join("memberctl.yaml"), with_state(&yaml, "steady")).expect("write config");
    let push = Job {
        program: bin,
        args: vec!["state".into(), "push".into(), path_arg(&v2_dir.join("memberctl.state.json"))],
        env: env(),
        dir: &dir,
    };
    measure(&push, method, &dir);
    let table_bytes: u64 = server
        .psql(&database, "SELECT pg_total_relation_size('memberctl.resources')")
        .lines()
        .find_map(|line| line.trim().parse().ok())
        .expect("a size");

    let plan_file = Job {
        program: bin,
        args: vec![
            "plan".into(),
            "-c".into(),
            path_arg(&v2_dir.join("memberctl.yaml")),
            "--state".into(),
            path_arg(&v2_dir.join("memberctl.state.json")),
        ],
        env: Vec::new(),
        dir: v2_dir,
    };
    let plan_postgres = Job { program: bin, args: vec!["plan".into()], env: env(), dir: &dir };
    measure(&plan_postgres, method, &dir);
    let plan_postgres = repeat(runs, || measure(&plan_postgres, method, &dir));
    let plan_file = repeat(runs, || measure(&plan_file, method, v2_dir));
    eprintln!("  plan 100k: file {:.3} s, postgres {:.3} s", secs(plan_file.wall), secs(plan_postgres.wall));

    let mut run = 0;
    let mut apply = |postgres: bool| {
        run += 1;
        let dir = root.join(format!("pg-apply-{run}"));
        fs::create_dir_all(&dir).expect("mkdir");
        let yaml = sandbox_config(APPLY_MEMBERS);
        let yaml = if postgres { with_state(&yaml, &format!("apply{run}")) } else { yaml };
        fs::write(dir.join("memberctl.yaml"), yaml).expect("write config");
        let job = Job {
            program: bin,
            args: vec!["apply".into(), "--auto-approve".into(), "--max-changes".into(), APPLY_MEMBERS.to_string()],
            env: if postgres { env() } else { Vec::new() },
            dir: &dir,
        };
        let sample = measure(&job, method, &dir);
        let _ = fs::remove_dir_all(&dir);
        sample
    };
    let apply_postgres = repeat(runs, || apply(true));
    let apply_file = repeat(runs, || apply(false));
    eprintln!("  apply 10k: file {:.3} s, postgres {:.3} s", secs(apply_file.wall), secs(apply_postgres.wall));
    Rows { addresses, plan_file, plan_postgres, apply_file, apply_postgres, table_bytes }
}

/// The section's table, and whether its target (plan ≤ 2× the file's) holds.
pub fn report(rows: &Rows) -> (String, bool) {
    let mut r = String::new();
    let _ = writeln!(r, "\n### state in PostgreSQL (issue 11)\n");
    let _ = writeln!(r, "| run | state file | PostgreSQL | ratio |");
    let _ = writeln!(r, "|---|---:|---:|---:|");
    let ratio = secs(rows.plan_postgres.wall) / secs(rows.plan_file.wall);
    let _ = writeln!(
        r,
        "| plan, 100,000 members, 5% role changes | {:.3} s, {:.1} MB | {:.3} s, {:.1} MB | {ratio:.2}× |",
        secs(rows.plan_file.wall),
        mb(rows.plan_file.rss_kib * 1024),
        secs(rows.plan_postgres.wall),
        mb(rows.plan_postgres.rss_kib * 1024),
    );
    let batches = APPLY_MEMBERS.div_ceil(BATCH);
    let _ = writeln!(
        r,
        "| apply, {} members on the sandbox ({batches} batches) | {:.3} s, {:.1} MB | {:.3} s, {:.1} MB | {:.2}× |",
        thousands(APPLY_MEMBERS),
        secs(rows.apply_file.wall),
        mb(rows.apply_file.rss_kib * 1024),
        secs(rows.apply_postgres.wall),
        mb(rows.apply_postgres.rss_kib * 1024),
        secs(rows.apply_postgres.wall) / secs(rows.apply_file.wall),
    );
    let per_batch_ms = (secs(rows.apply_postgres.wall) - secs(rows.apply_file.wall)) * 1000.0 / batches as f64;
    let ok = ratio <= 2.0;
    let _ = writeln!(
        r,
        "\nRecording a batch in PostgreSQL costs {per_batch_ms:.1} ms more than in the file's journal. The {}-address state takes {:.1} MB in the database ({} B per address). Plan from PostgreSQL ≤ 2× the file's: {}.",
        thousands(rows.addresses),
        mb(rows.table_bytes),
        rows.table_bytes / rows.addresses.max(1) as u64,
        super::check(ok)
    );
    (r, ok)
}
