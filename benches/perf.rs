//! The memberctl performance harness (issue 6).
//!
//! Run it with `scripts/bench.sh` (or `cargo bench --bench perf`). It
//!
//! - generates synthetic configs and states of 1,000, 10,000 and 100,000
//!   members over a Networked and an Aptly provider, and times the release
//!   `memberctl plan` on them (wall time and peak RSS of the whole process),
//!   next to a parse-only lower bound: this same binary re-run as
//!   `perf --parse-only CONFIG STATE`, which only parses the same files into
//!   the same types (`memberctl::config::parse_file`, `memberctl::state::file::parse`);
//! - times rendering a 100,000-change plan as text, JSON and markdown;
//! - times `memberctl apply` of 1,000 and 10,000 invites (batch 100) against
//!   a zero-latency fake Networked server on loopback (the one the
//!   integration tests use), counting its HTTP requests, and measures the
//!   bytes written to the state and the journal;
//! - times the naive alternative, one `curl` per member, for 1,000 members;
//! - with `--scim N` (opt-in: needs scim2-server, see `scim`), times apply and
//!   refresh of N SCIM users against a real scim2-server on loopback;
//! - prints a table of medians with ratios, and checks the targets.
//!
//! Options (after `--`): `--runs N` (default 5), `--sizes 1000,10000,100000`,
//! `--apply-sizes 1000,10000`, `--curl N` (default 1000), `--scim N` (default
//! off), `--keep` (keep the generated files and print where they are),
//! `--no-v2` (leave out the version 2 workloads below), `--million` (add the
//! 1M-member first plan), `--postgres` (the state in `PostgreSQL` against the
//! file, see `postgres`).
//!
//! The version 2 workloads (issue 13): a first plan of 100,000 members
//! (every address an invite, `--format json`), a steady plan of 100,000
//! applied members with 5% role changes (text), `apply` of 100,000 members
//! on the sandbox, the state file's bytes per address (version 2 as written,
//! version 1 as it was), and, opt-in, a first plan of 1,000,000 members over
//! 11 files. `--bin PATH` times another memberctl build on them, and
//! `--state-v1` writes their state as version 1 (for a build from before it).

#![allow(clippy::too_many_lines, clippy::similar_names)]

/// The allocator `memberctl` itself uses, so the parse-only lower bound is
/// measured on equal terms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The fake Networked server of the integration tests, reused as is.
#[path = "../tests/support/fake_common.rs"]
#[allow(dead_code)]
mod fake_common;
#[path = "../tests/support/fake_networked.rs"]
#[allow(dead_code)]
mod fake_networked;
// The real SCIM server of the integration tests, started the same way.
#[path = "../tests/support/scim_server.rs"]
#[allow(dead_code)]
mod scim_server;

// The throw-away PostgreSQL cluster of the integration tests.
#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres_server;

// In a folder of its own, so that cargo does not take it for a bench target.
#[path = "perf/postgres.rs"]
mod postgres;
#[path = "perf/scim.rs"]
mod scim;

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use memberctl::address::Address;
use memberctl::plan::render;
use memberctl::provider::RemoteIds;
use memberctl::state::{Resource, State, StatePaths, Status};

use fake_networked::{FakeNetworked, API_KEY, BULK_PATH};

const BIN: &str = env!("CARGO_BIN_EXE_memberctl");

// ---------------------------------------------------------------- options

#[allow(clippy::struct_excessive_bools)] // command-line switches
struct Options {
    runs: usize,
    sizes: Vec<usize>,
    apply_sizes: Vec<usize>,
    curl: usize,
    scim: Option<usize>,
    keep: bool,
    /// Run the version 2 workloads (issue 13); `--no-v2` leaves them out.
    v2: bool,
    /// Add the 1M-member first plan (issue 13); slow, so opt-in.
    million: bool,
    /// `--bin PATH`: the memberctl timed by the version 2 workloads
    /// (default: the one this bench was built with), to compare builds.
    bin: Option<PathBuf>,
    /// `--state-v1`: the version 2 workloads write their state as version 1,
    /// for a memberctl from before version 2.
    state_v1: bool,
    /// `--postgres`: the state in `PostgreSQL` against the file (issue 11);
    /// needs `PostgreSQL` 15 (scripts/test.sh installs it) and the version 2
    /// workloads.
    postgres: bool,
}

fn parse_list(text: &str) -> Vec<usize> {
    text.split(',').filter_map(|s| s.trim().replace('_', "").parse().ok()).collect()
}

fn options(args: &[String]) -> Options {
    let mut o = Options {
        runs: 5,
        sizes: vec![1_000, 10_000, 100_000],
        apply_sizes: vec![1_000, 10_000],
        curl: 1_000,
        scim: None,
        keep: false,
        v2: true,
        million: false,
        bin: None,
        state_v1: false,
        postgres: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => o.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(o.runs).max(1),
            "--sizes" => o.sizes = it.next().map(|v| parse_list(v)).unwrap_or_default(),
            "--apply-sizes" => o.apply_sizes = it.next().map(|v| parse_list(v)).unwrap_or_default(),
            "--curl" => o.curl = it.next().and_then(|v| v.parse().ok()).unwrap_or(o.curl),
            "--scim" => o.scim = it.next().and_then(|v| v.replace('_', "").parse().ok()),
            "--keep" => o.keep = true,
            "--no-v2" => o.v2 = false,
            "--million" => o.million = true,
            "--bin" => o.bin = it.next().map(PathBuf::from),
            "--state-v1" => o.state_v1 = true,
            "--postgres" => o.postgres = true,
            _ => {} // `cargo bench` passes `--bench`.
        }
    }
    o
}

// ------------------------------------------------------------ measurement

/// One whole-process measurement.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    rss_kib: u64,
}

/// How peak RSS is measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RssMethod {
    /// GNU time's `%M` (the kernel's `ru_maxrss` of the child).
    GnuTime,
    /// Polling `/proc/PID/status` `VmHWM` every millisecond (a lower bound:
    /// growth in the last millisecond before exit can be missed).
    Poll,
}

fn rss_method() -> RssMethod {
    let works = Command::new("/usr/bin/time")
        .args(["-f", "%M", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stderr).trim().parse::<u64>().is_ok());
    if works {
        RssMethod::GnuTime
    } else {
        RssMethod::Poll
    }
}

struct Job<'a> {
    program: &'a Path,
    args: Vec<String>,
    env: Vec<(&'a str, String)>,
    dir: &'a Path,
}

/// Runs a job once, stdout to /dev/null, and measures it. Panics when it fails.
fn measure(job: &Job<'_>, method: RssMethod, scratch: &Path) -> Sample {
    let report = scratch.join("time.out");
    let mut cmd = if method == RssMethod::GnuTime {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M", "-o"]).arg(&report).arg(job.program);
        c
    } else {
        Command::new(job.program)
    };
    cmd.args(&job.args)
        .current_dir(job.dir)
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let mut polled = 0u64;
    if method == RssMethod::Poll {
        let status = format!("/proc/{}/status", child.id());
        loop {
            if let Ok(text) = fs::read_to_string(&status) {
                if let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    polled = polled.max(kib);
                }
            }
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let output = child.wait_with_output().expect("wait");
    let wall = start.elapsed();
    assert!(
        output.status.success(),
        "{} {:?} failed ({}):\n{}",
        job.program.display(),
        job.args,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let rss_kib = if method == RssMethod::GnuTime {
        let text = fs::read_to_string(&report).unwrap_or_default();
        text.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0)
    } else {
        polled
    };
    Sample { wall, rss_kib }
}

fn median_duration(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Medians of wall time and peak RSS over `runs` runs.
fn repeat(runs: usize, mut once: impl FnMut() -> Sample) -> Sample {
    let samples: Vec<Sample> = (0..runs).map(|_| once()).collect();
    Sample {
        wall: median_duration(samples.iter().map(|s| s.wall).collect()),
        rss_kib: median_u64(samples.iter().map(|s| s.rss_kib).collect()),
    }
}

// -------------------------------------------------------- synthetic data

// The generators live beside the tests, which check that every config they
// make takes the fast YAML path.
#[path = "../tests/support/bench_configs.rs"]
mod bench_configs;

use bench_configs::{apply_config, object_id, person, plan_config, uuid_for, BATCH};

const STAMP: &str = "2025-01-15T09:30:00Z";

/// A record as `apply` leaves it: Networked answers an invitation with its
/// ids and timestamp; Aptly (the `workforce` provider) answers with none.
fn resource(address: &Address, attributes: memberctl::attributes::Attributes, n: u32) -> Resource {
    let remote = if address.provider() == "community" {
        RemoteIds {
            invite_id: Some(object_id(0x6600_0000, n)),
            user_id: Some(object_id(0x7700_0000, n)),
            timestamp_ms: Some(1_736_933_400_000 + i64::from(n)),
        }
    } else {
        RemoteIds::default()
    };
    Resource {
        address: address.clone(),
        provider: address.provider().to_owned(),
        email: attributes.email.clone(),
        status: Status::Invited,
        attributes,
        remote,
        created_at: STAMP.to_owned(),
        updated_at: STAMP.to_owned(),
        invited_at: Some(STAMP.to_owned()),
        resends: 0,
        message: None,
    }
}

/// A state matching most of the config: 90% recorded as configured, 4%
/// recorded with other attributes (updates, planned as manual since the seed
/// APIs cannot update), 6% missing (invites), plus 1% recorded but no
/// longer configured (removals, manual).
fn plan_state(config: &memberctl::config::Config, n: usize) -> State {
    let mut rng = fastrand::Rng::with_seed(99 + n as u64);
    let mut state = State::new();
    state.serial = 42;
    let mut count = 0u32;
    for (address, want) in &config.desired {
        count += 1;
        let roll = rng.u32(..100);
        if roll < 6 {
            continue;
        }
        let mut have = want.clone();
        if roll < 10 {
            if rng.bool() {
                have.name = have.name.map(|n| format!("{n} Jr"));
                have.last_name = have.last_name.map(|n| format!("{n} Jr"));
            } else {
                have.roles.reverse();
                have.roles.push(have.roles.first().cloned().unwrap_or_default());
            }
        }
        state.resources.insert(address.clone(), resource(address, have, count));
    }
    for i in 0..n / 100 {
        let email = format!("former.member.{i}@example.com");
        let address = Address::new("community", &email);
        let attributes = memberctl::attributes::Attributes {
            email,
            name: Some(format!("Former Member {i}")),
            roles: vec![object_id(0x69ba_a36b, 0).into()],
            ..Default::default()
        };
        count += 1;
        state.resources.insert(address.clone(), resource(&address, attributes, count));
    }
    state
}

// ------------------------------------------------------------- sections

struct PlanRow {
    n: usize,
    addresses: usize,
    changes: usize,
    config_bytes: u64,
    state_bytes: u64,
    plan: Sample,
    parse: Sample,
}

fn plan_section(o: &Options, method: RssMethod, root: &Path) -> Vec<PlanRow> {
    let mut rows = Vec::new();
    for &n in &o.sizes {
        let dir = root.join(format!("plan-{n}"));
        fs::create_dir_all(&dir).expect("mkdir");
        let config_path = dir.join("memberctl.yaml");
        let state_path = dir.join("memberctl.state.json");
        fs::write(&config_path, plan_config(n)).expect("write config");
        let config = memberctl::config::load(std::slice::from_ref(&config_path)).expect("synthetic config is valid");
        let state = plan_state(&config, n);
        fs::write(&state_path, memberctl::state::file::to_json(&state)).expect("write state");
        let plan =
            memberctl::plan::compute(&config, Some(&state), &memberctl::plan::Scope::default(), SystemTime::now());
        let addresses = config.desired.len();
        drop((config, state));
        let plan_job = Job {
            program: Path::new(BIN),
            args: vec!["plan".into(), "-c".into(), path_arg(&config_path), "--state".into(), path_arg(&state_path)],
            env: Vec::new(),
            dir: &dir,
        };
        let exe = std::env::current_exe().expect("current exe");
        let parse_job = Job {
            program: &exe,
            args: vec!["--parse-only".into(), path_arg(&config_path), path_arg(&state_path)],
            env: Vec::new(),
            dir: &dir,
        };
        // One unmeasured run of each warms the page cache.
        measure(&plan_job, method, &dir);
        measure(&parse_job, method, &dir);
        let plan_sample = repeat(o.runs, || measure(&plan_job, method, &dir));
        let parse_sample = repeat(o.runs, || measure(&parse_job, method, &dir));
        eprintln!(
            "  plan {n:>7}: {:>8.3} s {:>6.1} MB   parse-only {:>8.3} s {:>6.1} MB",
            plan_sample.wall.as_secs_f64(),
            mb(plan_sample.rss_kib * 1024),
            parse_sample.wall.as_secs_f64(),
            mb(parse_sample.rss_kib * 1024)
        );
        rows.push(PlanRow {
            n,
            addresses,
            changes: plan.changes.len(),
            config_bytes: fs::metadata(&config_path).map_or(0, |m| m.len()),
            state_bytes: fs::metadata(&state_path).map_or(0, |m| m.len()),
            plan: plan_sample,
            parse: parse_sample,
        });
    }
    rows
}

struct RenderRow {
    format: &'static str,
    wall: Duration,
    bytes: u64,
}

/// Renders a plan in which every address is an invite (no state), in process,
/// to /dev/null through a counting writer.
fn render_section(o: &Options, root: &Path) -> (usize, Vec<RenderRow>) {
    let n = 100_000;
    let dir = root.join("render");
    fs::create_dir_all(&dir).expect("mkdir");
    let config_path = dir.join("memberctl.yaml");
    fs::write(&config_path, plan_config(n)).expect("write config");
    let config = memberctl::config::load(std::slice::from_ref(&config_path)).expect("valid");
    let plan = memberctl::plan::compute(&config, None, &memberctl::plan::Scope::default(), SystemTime::now());
    let mut rows = Vec::new();
    for format in [render::Format::Text, render::Format::Json, render::Format::Markdown] {
        let mut bytes = 0;
        let wall = median_duration(
            (0..o.runs)
                .map(|_| {
                    let mut out = Counting { inner: fs::File::create("/dev/null").expect("/dev/null"), bytes: 0 };
                    let start = Instant::now();
                    render::render(&plan, format, false, &mut out).expect("render");
                    let wall = start.elapsed();
                    bytes = out.bytes;
                    wall
                })
                .collect(),
        );
        let name = match format {
            render::Format::Text => "text",
            render::Format::Json => "json",
            render::Format::Markdown => "markdown",
        };
        eprintln!("  render {name:>8}: {:>8.3} s {:>10} bytes", wall.as_secs_f64(), bytes);
        rows.push(RenderRow { format: name, wall, bytes });
    }
    (plan.changes.len(), rows)
}

/// Counts what is written, and how many `write` calls reach the file.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct ApplyRow {
    n: usize,
    requests: usize,
    expected: usize,
    sample: Sample,
    state_bytes: u64,
    journal_bytes: u64,
}

fn apply_section(o: &Options, method: RssMethod, root: &Path) -> Vec<ApplyRow> {
    let mut rows = Vec::new();
    for &n in &o.apply_sizes {
        let mut samples = Vec::new();
        let mut requests = Vec::new();
        let mut expected = 0;
        for run in 0..o.runs {
            let fake = FakeNetworked::start();
            let dir = root.join(format!("apply-{n}-{run}"));
            fs::create_dir_all(&dir).expect("mkdir");
            let (yaml, want) = apply_config(n, &fake.url());
            expected = want;
            fs::write(dir.join("memberctl.yaml"), yaml).expect("write config");
            let job = Job {
                program: Path::new(BIN),
                args: vec!["apply".into(), "--auto-approve".into(), "--max-changes".into(), n.to_string()],
                env: vec![("NETWORKED_API_KEY", API_KEY.to_owned())],
                dir: &dir,
            };
            samples.push(measure(&job, method, &dir));
            requests.push(fake.request_count());
            assert_eq!(fake.members().len(), n, "every member invited");
            assert!(fake.received_twice().is_empty(), "nobody invited twice");
            let _ = fs::remove_dir_all(&dir);
        }
        let sample = Sample {
            wall: median_duration(samples.iter().map(|s| s.wall).collect()),
            rss_kib: median_u64(samples.iter().map(|s| s.rss_kib).collect()),
        };
        let (state_bytes, journal_bytes) = apply_bytes(n, root);
        eprintln!(
            "  apply {n:>7}: {:>8.3} s  {} requests (expected {expected})  state {state_bytes} B  journal {journal_bytes} B",
            sample.wall.as_secs_f64(),
            median_u64(requests.iter().map(|&r| r as u64).collect())
        );
        rows.push(ApplyRow {
            n,
            requests: median_u64(requests.iter().map(|&r| r as u64).collect()) as usize,
            expected,
            sample,
            state_bytes,
            journal_bytes,
        });
    }
    rows
}

/// The bytes the engine writes to the state and the journal, from its own
/// `ApplyReport` (the CLI deletes the journal when it is done). The same
/// config and fake as the CLI runs, through the library in this process.
fn apply_bytes(n: usize, root: &Path) -> (u64, u64) {
    let fake = FakeNetworked::start();
    let dir = root.join(format!("apply-bytes-{n}"));
    fs::create_dir_all(&dir).expect("mkdir");
    let config_path = dir.join("memberctl.yaml");
    fs::write(&config_path, apply_config(n, &fake.url()).0).expect("write config");
    let config = memberctl::config::load(std::slice::from_ref(&config_path)).expect("valid");
    let mut plan = memberctl::plan::compute(&config, None, &memberctl::plan::Scope::default(), SystemTime::now());
    let env = |name: &str| (name == "NETWORKED_API_KEY").then(|| API_KEY.to_owned());
    let clients = memberctl::apply::preflight(&plan, &env).expect("preflight");
    let paths = StatePaths::new(dir.join("memberctl.state.json"));
    let recorder = memberctl::state::Recorder::begin(&paths, State::new()).expect("journal");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (_, report) = runtime
        .block_on(memberctl::apply::run(
            &mut plan,
            clients,
            recorder,
            Arc::new(memberctl::apply::Silent),
            memberctl::apply::Cancel::new(),
        ))
        .expect("apply");
    assert_eq!(report.invited.len(), n);
    let on_disk = fs::metadata(&paths.state).map_or(0, |m| m.len());
    assert_eq!(on_disk, report.state_bytes, "state bytes match the file");
    let _ = fs::remove_dir_all(&dir);
    (report.state_bytes, report.journal_bytes)
}

struct CurlRow {
    n: usize,
    wall: Duration,
    tool: String,
}

/// One `curl` process per member against the same fake, one after another,
/// as a shell loop would run them. Without curl, this binary re-run as a
/// one-request client stands in (also one process per member).
fn curl_section(o: &Options) -> Option<CurlRow> {
    if o.curl == 0 {
        return None;
    }
    let n = o.curl;
    let curl = ["/usr/bin/curl", "/usr/local/bin/curl", "/bin/curl"].into_iter().map(Path::new).find(|p| p.exists());
    let exe = std::env::current_exe().expect("current exe");
    let mut walls = Vec::new();
    for _ in 0..o.runs {
        let fake = FakeNetworked::start();
        let url = format!("{}{BULK_PATH}", fake.url());
        let mut rng = fastrand::Rng::with_seed(7 + n as u64);
        let start = Instant::now();
        for i in 0..n {
            let (email, first, last) = person(&mut rng, i);
            let body = format!(
                r#"{{"users":[{{"email":"{email}","name":"{first} {last}","tagId":"{}"}}]}}"#,
                object_id(0x69ba_a36b, 0)
            );
            let status = if let Some(curl) = curl {
                Command::new(curl)
                    .args(["-sS", "-o", "/dev/null", "-X", "POST", "-H"])
                    .arg(format!("x-api-key: {API_KEY}"))
                    .args(["-H", "content-type: application/json", "--data-binary"])
                    .arg(&body)
                    .arg(&url)
                    .status()
            } else {
                Command::new(&exe).args(["--one-request", &url, &body]).status()
            };
            assert!(status.is_ok_and(|s| s.success()), "request {i} failed");
        }
        walls.push(start.elapsed());
        assert_eq!(fake.members().len(), n);
    }
    let tool =
        curl.map_or_else(|| "a one-request Rust client (curl not found)".to_owned(), |p| p.display().to_string());
    let wall = median_duration(walls);
    eprintln!("  curl loop {n}: {:.3} s ({tool})", wall.as_secs_f64());
    Some(CurlRow { n, wall, tool })
}

// ------------------------------------------------ version 2 (issue 13)

/// The version 2 workloads' figures.
struct V2 {
    first: Option<Sample>,
    steady: Option<Sample>,
    steady_changes: usize,
    apply: Option<Sample>,
    addresses: usize,
    state_v2_bytes: u64,
    state_v1_bytes: u64,
    million: Option<Sample>,
}

/// The 100k members of the version 2 workloads.
const V2_MEMBERS: usize = 100_000;

fn v2_section(o: &Options, method: RssMethod, root: &Path) -> V2 {
    let bin = o.bin.as_deref().unwrap_or(Path::new(BIN));
    let mut v2 = V2 {
        first: None,
        steady: None,
        steady_changes: 0,
        apply: None,
        addresses: 0,
        state_v2_bytes: 0,
        state_v1_bytes: 0,
        million: None,
    };
    if o.v2 {
        let dir = root.join("v2-plan");
        fs::create_dir_all(&dir).expect("mkdir");
        let config_path = dir.join("memberctl.yaml");
        fs::write(&config_path, plan_config(V2_MEMBERS)).expect("write config");
        let config = memberctl::config::load(std::slice::from_ref(&config_path)).expect("synthetic config is valid");
        let state = steady_state(&config);
        v2.addresses = state.resources.len();
        v2.steady_changes =
            memberctl::plan::compute(&config, Some(&state), &memberctl::plan::Scope::default(), SystemTime::now())
                .changes
                .len();
        let state_path = dir.join("memberctl.state.json");
        v2.state_v2_bytes = memberctl::state::file::to_json(&state).len() as u64;
        let mut v1 = Counting { inner: Vec::new(), bytes: 0 };
        write_version_1(&state, &mut v1);
        v2.state_v1_bytes = v1.bytes;
        if o.state_v1 {
            fs::write(&state_path, v1.inner).expect("write state");
        } else {
            fs::write(&state_path, memberctl::state::file::to_json(&state)).expect("write state");
        }
        drop((config, state));

        let first = dir.join("none.state.json");
        let plan = |state: &Path, json: bool| {
            let mut args = vec!["plan".into(), "-c".into(), path_arg(&config_path), "--state".into(), path_arg(state)];
            if json {
                args.extend(["--format".into(), "json".into()]);
            }
            Job { program: bin, args, env: Vec::new(), dir: &dir }
        };
        let first_job = plan(&first, true);
        measure(&first_job, method, &dir);
        v2.first = Some(repeat(o.runs, || measure(&first_job, method, &dir)));
        let steady_job = plan(&state_path, false);
        measure(&steady_job, method, &dir);
        v2.steady = Some(repeat(o.runs, || measure(&steady_job, method, &dir)));
        eprintln!(
            "  first plan 100k {:.3} s, steady plan 100k {:.3} s, state {} B/address",
            v2.first.map_or(0.0, |s| secs(s.wall)),
            v2.steady.map_or(0.0, |s| secs(s.wall)),
            v2.state_v2_bytes / v2.addresses.max(1) as u64
        );

        v2.apply = Some(repeat(o.runs, || {
            let dir = root.join("v2-apply");
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(dir.join("memberctl.yaml"), sandbox_config(V2_MEMBERS)).expect("write config");
            let job = Job {
                program: bin,
                args: vec!["apply".into(), "--auto-approve".into(), "--max-changes".into(), V2_MEMBERS.to_string()],
                env: Vec::new(),
                dir: &dir,
            };
            let sample = measure(&job, method, &dir);
            let _ = fs::remove_dir_all(&dir);
            sample
        }));
        eprintln!("  sandbox apply 100k {:.3} s", v2.apply.map_or(0.0, |s| secs(s.wall)));
    }
    if o.million {
        let dir = root.join("v2-million");
        let config_dir = dir.join("config");
        fs::create_dir_all(&config_dir).expect("mkdir");
        split_config(&plan_config(1_000_000), 11, &config_dir);
        let job = Job {
            program: bin,
            args: vec![
                "plan".into(),
                "-c".into(),
                path_arg(&config_dir),
                "--state".into(),
                path_arg(&dir.join("none.state.json")),
                "--format".into(),
                "json".into(),
            ],
            env: Vec::new(),
            dir: &dir,
        };
        // One run unmeasured, as for every other workload: the first reads
        // the 11 files just written, while their pages are still being
        // written back.
        measure(&job, method, &dir);
        v2.million = Some(repeat(o.runs.min(3), || measure(&job, method, &dir)));
        eprintln!("  first plan 1M {:.3} s", v2.million.map_or(0.0, |s| secs(s.wall)));
    }
    v2
}

/// Every configured address recorded as configured, but 5% of them with
/// another role: the steady state of an organisation between two reviews.
fn steady_state(config: &memberctl::config::Config) -> State {
    let community = |i: u32| memberctl::attributes::Id::from(object_id(0x69ba_a36b, i));
    let workforce = |i: u32| memberctl::attributes::Id::from(uuid_for(0xbbc5_4190, i));
    let mut rng = fastrand::Rng::with_seed(1313);
    let mut state = State::new();
    state.serial = 7;
    let mut count = 0u32;
    for (address, want) in &config.desired {
        count += 1;
        let mut have = want.clone();
        if rng.u32(..100) < 5 {
            have.roles = if address.provider() == "community" {
                vec![if want.roles == [community(0)] { community(1) } else { community(0) }]
            } else {
                vec![if want.roles == [workforce(0)] { workforce(1) } else { workforce(0) }]
            };
        }
        state.resources.insert(address.clone(), resource(address, have, count));
    }
    state
}

/// Writes `state` as version 1 did: pretty JSON, every field.
fn write_version_1(state: &State, out: &mut impl Write) {
    let file = serde_json::json!({
        "format_version": 1,
        "lineage": state.lineage,
        "serial": state.serial,
        "resources": state.resources.values().collect::<Vec<_>>(),
    });
    serde_json::to_writer_pretty(&mut *out, &file).expect("serialise");
    out.write_all(b"\n").expect("write");
}

/// `n` members on the sandbox provider, each with a name and one role.
fn sandbox_config(n: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(31 + n as u64);
    let mut y = String::from(
        "version: 1\nproviders:\n  sandbox:\n    type: sandbox\n    outbox: outbox.jsonl\nroles:\n  member: { sandbox: role-member }\n  moderator: { sandbox: role-moderator }\ndefaults:\n  providers: [sandbox]\n  roles: [member]\nmembers:\n",
    );
    for i in 0..n {
        let (email, first, last) = person(&mut rng, i);
        let _ = writeln!(y, "  - email: {email}\n    name: {first} {last}");
        if i % 10 == 0 {
            y.push_str("    roles: [moderator]\n");
        }
    }
    y
}

/// Splits a generated config into `files` files in `dir`: the first keeps
/// the providers and catalogs and a share of the members, each other one a
/// share of the members.
fn split_config(yaml: &str, files: usize, dir: &Path) {
    let (head, members) = yaml.split_once("members:\n").expect("a members list");
    let entries: Vec<&str> = members.split_inclusive('\n').collect();
    let starts: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].starts_with("  - ")).collect();
    let per_file = starts.len().div_ceil(files);
    for file in 0..files {
        let Some(&from) = starts.get(file * per_file) else { break };
        let to = starts.get((file + 1) * per_file).copied().unwrap_or(entries.len());
        let mut text = if file == 0 { format!("{head}members:\n") } else { "version: 1\nmembers:\n".to_owned() };
        text.extend(entries[from..to].iter().copied());
        fs::write(dir.join(format!("members-{file:02}.yaml")), text).expect("write config part");
    }
}

fn v2_report(v2: &V2) -> (String, bool) {
    let mut r = String::new();
    let mut all_ok = true;
    let _ = writeln!(r, "\n### version 2 workloads (issue 13)\n");
    let _ = writeln!(r, "| workload | wall | peak RSS | target | |");
    let _ = writeln!(r, "|---|---:|---:|---|---|");
    let mut row = |name: String, sample: Option<Sample>, wall: f64, rss_mb: f64| {
        if let Some(s) = sample {
            let ok = secs(s.wall) <= wall && mb(s.rss_kib * 1024) <= rss_mb;
            all_ok &= ok;
            let _ = writeln!(
                r,
                "| {name} | {:.3} s | {:.1} MB | ≤ {wall} s, ≤ {rss_mb} MB | {} |",
                secs(s.wall),
                mb(s.rss_kib * 1024),
                check(ok)
            );
        }
    };
    row(
        format!("first plan, {} members, every address an invite (`--format json`)", thousands(V2_MEMBERS)),
        v2.first,
        0.5,
        150.0,
    );
    row(
        format!(
            "steady plan, {} members applied, 5% role changes ({} changes, text)",
            thousands(V2_MEMBERS),
            thousands(v2.steady_changes)
        ),
        v2.steady,
        0.5,
        150.0,
    );
    row(format!("`apply` of {} members on the sandbox", thousands(V2_MEMBERS)), v2.apply, 2.0, 300.0);
    row("first plan, 1,000,000 members in 11 files (`--format json`)".to_owned(), v2.million, 5.0, 1200.0);
    if v2.addresses > 0 {
        let per_address = v2.state_v2_bytes as f64 / v2.addresses as f64;
        let ok = per_address <= 300.0;
        all_ok &= ok;
        let _ = writeln!(
            r,
            "\nState file at {} addresses: version 2 {:.1} MB, {per_address:.0} B per address (target ≤ 300 B: {}); version 1 would be {:.1} MB, {:.0} B per address.",
            thousands(v2.addresses),
            mb(v2.state_v2_bytes),
            check(ok),
            mb(v2.state_v1_bytes),
            v2.state_v1_bytes as f64 / v2.addresses as f64
        );
    }
    if let (Some(first), Some(million)) = (v2.first, v2.million) {
        let growth = secs(million.wall) / secs(first.wall);
        let ok = growth <= 11.0;
        all_ok &= ok;
        let _ = writeln!(
            r,
            "\nGrowth of the first plan from 100k to 1M: {growth:.1}× in time (target ≤ 11×: {}).",
            check(ok)
        );
    }
    (r, all_ok)
}

// ---------------------------------------------------------- helper modes

/// The lower bound: parse the same files into the same types, nothing more:
/// the config with `config::parse_file`, the state with `state::file::read`
/// (the streamed reader plan uses; it gives what `state::file::parse` gives
/// for the whole text, and falls back to it).
fn parse_only(config: &Path, state: &Path) {
    let text = fs::read_to_string(config).expect("read config");
    let file = memberctl::config::parse_file(&text).expect("config parses");
    drop(text);
    let state = memberctl::state::file::read(&StatePaths::new(state)).expect("state parses").expect("state exists");
    // Keep the results alive to the end, as plan does.
    assert!(file.members.len() + state.resources.len() > 0);
}

fn rss() -> String {
    let text = fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines().filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM")).collect::<Vec<_>>().join(" ")
}

/// `perf --phases CONFIG STATE`: the phases of a plan in this process, each
/// with the time since start and the resident memory after it (a profile
/// without a profiler).
fn phases(config: &Path, state: &Path) {
    let t = Instant::now();
    let report = |what: &str| eprintln!("{:>8.3} s  {what:<14} {}", t.elapsed().as_secs_f64(), rss());
    let config = memberctl::config::load(&[config.to_owned()]).expect("load");
    report("config::load");
    let state = memberctl::state::file::read(&StatePaths::new(state)).expect("state").expect("exists");
    report("state read");
    let plan = memberctl::plan::compute(&config, Some(&state), &memberctl::plan::Scope::default(), SystemTime::now());
    report("plan::compute");
    render::text(&plan, false, &mut fs::File::create("/dev/null").expect("/dev/null")).expect("render");
    report("render text");
    drop((plan, state, config));
    report("drop all");
}

/// A minimal HTTP/1.1 POST for when curl is missing.
fn one_request(url: &str, body: &str) {
    use std::io::Read;
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    let request = format!(
        "POST /{path} HTTP/1.1\r\nhost: {host}\r\nx-api-key: {API_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "answer: {answer}");
}

// ---------------------------------------------------------------- report

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn check(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn report(
    o: &Options,
    method: RssMethod,
    plans: &[PlanRow],
    renders: &(usize, Vec<RenderRow>),
    applies: &[ApplyRow],
    curl: Option<&CurlRow>,
) -> (String, bool) {
    let mut r = String::new();
    let mut all_ok = true;
    let rss_note = match method {
        RssMethod::GnuTime => "peak RSS from `/usr/bin/time -f %M`",
        RssMethod::Poll => "peak RSS by polling /proc/PID/status VmHWM every 1 ms (GNU time not found; a lower bound)",
    };
    let _ = writeln!(r, "Medians of {} runs; release build; {rss_note}.\n", o.runs);

    let _ = writeln!(r, "### plan (`memberctl plan`, text to /dev/null) vs. parse-only lower bound\n");
    let _ = writeln!(
        r,
        "| members | addresses | changes | config | state | plan wall | plan RSS | parse-only wall | parse-only RSS | plan / parse-only |"
    );
    let _ = writeln!(r, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in plans {
        let _ = writeln!(
            r,
            "| {} | {} | {} | {:.1} MB | {:.1} MB | {:.3} s | {:.1} MB | {:.3} s | {:.1} MB | {:.2}× |",
            thousands(p.n),
            thousands(p.addresses),
            thousands(p.changes),
            mb(p.config_bytes),
            mb(p.state_bytes),
            secs(p.plan.wall),
            mb(p.plan.rss_kib * 1024),
            secs(p.parse.wall),
            mb(p.parse.rss_kib * 1024),
            secs(p.plan.wall) / secs(p.parse.wall)
        );
    }
    let find = |n: usize| plans.iter().find(|p| p.n == n);
    let mut growth = None;
    if let (Some(a), Some(b)) = (find(10_000), find(100_000)) {
        let ratio = secs(b.plan.wall) / secs(a.plan.wall);
        growth = Some(ratio);
        let _ = writeln!(
            r,
            "\nGrowth 10k → 100k: plan {ratio:.1}×, parse-only {:.1}× (linear is 10×).",
            secs(b.parse.wall) / secs(a.parse.wall)
        );
    }

    let _ = writeln!(r, "\n### rendering a {}-change plan (in process, to /dev/null)\n", thousands(renders.0));
    let _ = writeln!(r, "| format | wall | output |");
    let _ = writeln!(r, "|---|---:|---:|");
    for row in &renders.1 {
        let _ = writeln!(r, "| {} | {:.3} s | {:.1} MB |", row.format, secs(row.wall), mb(row.bytes));
    }

    let _ = writeln!(
        r,
        "\n### apply (`memberctl apply --auto-approve`, zero-latency fake Networked on loopback, batch {BATCH}, concurrency 4, no rate limit)\n"
    );
    let _ = writeln!(
        r,
        "| invites | wall | per member | peak RSS | requests | expected ⌈n/batch⌉ per plan set | state bytes | journal bytes | (state+journal) / member |"
    );
    let _ = writeln!(r, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for a in applies {
        let _ = writeln!(
            r,
            "| {} | {:.3} s | {:.1} µs | {:.1} MB | {} | {} | {} | {} | {:.0} B |",
            thousands(a.n),
            secs(a.sample.wall),
            secs(a.sample.wall) * 1e6 / a.n as f64,
            mb(a.sample.rss_kib * 1024),
            a.requests,
            a.expected,
            thousands(a.state_bytes as usize),
            thousands(a.journal_bytes as usize),
            (a.state_bytes + a.journal_bytes) as f64 / a.n as f64
        );
    }
    if let Some(c) = curl {
        let per = secs(c.wall) * 1e6 / c.n as f64;
        let _ = writeln!(r, "\n### naive alternative: one process per member\n");
        let _ = writeln!(r, "| members | tool | wall | per member |");
        let _ = writeln!(r, "|---:|---|---:|---:|");
        let _ = writeln!(r, "| {} | {} | {:.3} s | {:.1} µs |", thousands(c.n), c.tool, secs(c.wall), per);
    }

    let _ = writeln!(r, "\n### targets\n");
    let _ = writeln!(r, "| target | measured | |");
    let _ = writeln!(r, "|---|---|---|");
    let mut target = |name: String, measured: String, ok: bool| {
        all_ok &= ok;
        let _ = writeln!(r, "| {name} | {measured} | {} |", check(ok));
    };
    if let Some(p) = find(100_000) {
        target("plan of 100k ≤ 1.0 s".into(), format!("{:.3} s", secs(p.plan.wall)), secs(p.plan.wall) <= 1.0);
        let ratio = secs(p.plan.wall) / secs(p.parse.wall);
        target("plan of 100k ≤ 2× parse-only".into(), format!("{ratio:.2}×"), ratio <= 2.0);
    }
    if let Some(max) = plans.iter().map(|p| p.plan.rss_kib).max() {
        target("plan peak RSS ≤ 250 MB".into(), format!("{:.1} MB", mb(max * 1024)), max * 1024 <= 250_000_000);
    }
    if let Some(g) = growth {
        target("plan 100k/10k time ≤ 12".into(), format!("{g:.1}×"), g <= 12.0);
    }
    for row in &renders.1 {
        target(
            format!("render {} of {} changes < 1 s", row.format, thousands(renders.0)),
            format!("{:.3} s", secs(row.wall)),
            secs(row.wall) < 1.0,
        );
    }
    for a in applies {
        if a.n == 10_000 {
            target(
                "apply of 10k invites ≤ 3 s".into(),
                format!("{:.3} s", secs(a.sample.wall)),
                secs(a.sample.wall) <= 3.0,
            );
        }
        target(
            format!("apply of {} sends exactly ⌈n/batch⌉ requests per plan set", thousands(a.n)),
            format!("{} of {}", a.requests, a.expected),
            a.requests == a.expected,
        );
    }
    if let (Some(a), Some(b)) = (applies.iter().find(|a| a.n == 1_000), applies.iter().find(|a| a.n == 10_000)) {
        let ratio = (b.state_bytes + b.journal_bytes) as f64 / (a.state_bytes + a.journal_bytes) as f64;
        target(
            "state + journal bytes O(n) (10k/1k ≈ 10)".into(),
            format!("{ratio:.2}×"),
            (8.0..=12.0).contains(&ratio),
        );
    }
    if let (Some(c), Some(a)) = (curl, applies.iter().max_by_key(|a| a.n)) {
        let curl_per = secs(c.wall) / c.n as f64;
        let apply_per = secs(a.sample.wall) / a.n as f64;
        let speedup = curl_per / apply_per;
        target(
            format!("apply ({}) ≥ 50× faster per member than the curl loop", thousands(a.n)),
            format!("{speedup:.0}×"),
            speedup >= 50.0,
        );
    }
    (r, all_ok)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--parse-only") => return parse_only(Path::new(&args[1]), Path::new(&args[2])),
        Some("--one-request") => return one_request(&args[1], &args[2]),
        Some("--phases") => return phases(Path::new(&args[1]), Path::new(&args[2])),
        _ => {}
    }
    let o = options(&args);
    let method = rss_method();
    let scratch = tempfile::Builder::new().prefix("memberctl-bench-").tempdir().expect("temp dir");
    let root: PathBuf = scratch.path().to_owned();
    eprintln!("memberctl benchmark: {} (scratch: {})", BIN, root.display());

    eprintln!("plan:");
    let plans = plan_section(&o, method, &root);
    eprintln!("render:");
    let renders = render_section(&o, &root);
    eprintln!("apply:");
    let applies = apply_section(&o, method, &root);
    eprintln!("curl:");
    let curl = curl_section(&o);
    let scim = o.scim.map(|n| {
        eprintln!("scim:");
        scim::section(n, &root)
    });

    let (table, mut ok) = report(&o, method, &plans, &renders, &applies, curl.as_ref());
    let mut v2_table = String::new();
    if o.v2 || o.million {
        eprintln!("version 2 workloads:");
        let v2 = v2_section(&o, method, &root);
        let (table, v2_ok) = v2_report(&v2);
        ok &= v2_ok;
        v2_table = table;
        if o.postgres && o.v2 {
            eprintln!("postgres:");
            let bin = o.bin.as_deref().unwrap_or(Path::new(BIN));
            let rows = postgres::section(bin, o.runs, method, &root, &root.join("v2-plan"), v2.addresses);
            let (table, pg_ok) = postgres::report(&rows);
            ok &= pg_ok;
            v2_table.push_str(&table);
        }
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let _ = writeln!(out, "\n{table}{v2_table}");
    if let Some(rows) = &scim {
        let (table, scim_ok) = scim::report(rows);
        ok &= scim_ok;
        let _ = writeln!(out, "{table}");
    }
    let _ = writeln!(out, "{}", if ok { "All targets met." } else { "Some targets were NOT met." });
    let _ = out.flush();
    if o.keep {
        let kept = scratch.keep();
        eprintln!("kept the generated files in {}", kept.display());
    }
}
