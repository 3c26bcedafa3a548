//! The `PostgreSQL` state backend (issue #11), against a real `PostgreSQL` 15
//! server ([`crate::support::postgres`]) and the real binary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Child;
use std::time::{Duration, Instant};

use memberctl::provider::{Operation, Outcome, RemoteIds};
use memberctl::state::postgres::PostgresBackend;
use memberctl::state::{Backend, StateError};

use crate::lifecycle::QUICKSTART;
use crate::support::fake_networked::{self, FakeNetworked};
use crate::support::harness::Test;
use crate::support::postgres::{Postgres, SECRET_PASSWORD, SECRET_USER};

const URL_ENV: &str = "MEMBERCTL_DATABASE_URL";
const APPLY: [&str; 4] = ["apply", "--auto-approve", "--max-changes", "1000"];

/// `yaml` with its state in `PostgreSQL` under `name`.
fn on_postgres(yaml: &str, name: &str) -> String {
    format!("{yaml}state:\n  backend: postgres\n  name: {name}\n")
}

/// A test whose config keeps the state `name` in a fresh database; answers
/// the test and the database.
fn pg_test(yaml: &str, name: &str) -> (Test, String) {
    let pg = Postgres::shared();
    let db = pg.database();
    (Test::new().config(&on_postgres(yaml, name)).env(URL_ENV, &pg.url(&db)), db)
}

/// A sandbox config of `n` members `p{i}@example.com`.
fn sandbox_members(n: usize) -> String {
    let mut y = String::from(
        "version: 1\nproviders:\n  sandbox:\n    type: sandbox\n    outbox: outbox.jsonl\nroles:\n  member: { sandbox: role-member }\ndefaults:\n  providers: [sandbox]\n  roles: [member]\nsafety:\n  max_changes: 1000\nmembers:\n",
    );
    for i in 0..n {
        writeln!(y, "  - email: p{i:04}@example.com\n    name: Person {i}").expect("write to a String");
    }
    y
}

/// How many times each email was sent to the sandbox.
fn outbox_counts(t: &Test) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in t.read("outbox.jsonl").lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("outbox line");
        let email = value["email"].as_str().or_else(|| value["attributes"]["email"].as_str()).unwrap_or_default();
        *counts.entry(email.to_lowercase()).or_default() += 1;
    }
    counts
}

fn assert_converged(t: &Test) {
    let out = t.cmd(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, 0, "the re-plan is not empty:\n{}", out.rendered());
    assert!(out.stdout.contains("No changes."), "{}", out.rendered());
}

fn wait_for(child: &mut Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "memberctl did not finish in {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects as a second run would, from this process.
fn connect(url: &str, name: &str) -> PostgresBackend {
    PostgresBackend::connect_url(URL_ENV, url, name).expect("connect")
}

#[test]
fn plan_apply_and_a_clean_replan_with_the_state_in_postgres() {
    let (t, db) = pg_test(QUICKSTART, "quickstart");
    let out = t.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(out.stdout.contains("3 to invite"), "{}", out.rendered());
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    assert!(!t.path().join("memberctl.state.json").exists(), "no state file is written");
    assert!(!t.path().join("memberctl.state.json.journal").exists(), "no journal file is written");
    assert_converged(&t);
    let pg = Postgres::shared();
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM memberctl.resources WHERE state = 'quickstart'").trim(), "3");
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM memberctl.journal").trim(), "0", "every intent was answered");
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM memberctl.locks").trim(), "0", "the lock row is cleared");
    let list = t.cmd(&["state", "list"]).expect(0);
    assert_eq!(list.stdout.lines().count(), 3, "{}", list.rendered());
    // A second state in the same database is another world.
    let other = Test::new().config(&on_postgres(QUICKSTART, "other")).env(URL_ENV, &pg.url(&db));
    let out = other.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(out.stdout.contains("3 to invite"), "{}", out.rendered());
}

// Regression: #11: `--state` names a file; with a postgres backend it is a usage error.
#[test]
fn a_state_file_flag_with_a_postgres_backend_is_a_usage_error() {
    let (t, _) = pg_test(QUICKSTART, "flags");
    let flagged = t.cmd(&["plan", "--state", "x.json"]);
    let t = t.env("MEMBERCTL_STATE", "x.json");
    for out in [flagged, t.cmd(&["plan"])] {
        assert_eq!(out.code, 1, "{}", out.rendered());
        assert!(out.stderr.contains("`--state` (or `MEMBERCTL_STATE`) names a state file"), "{}", out.rendered());
    }
}

#[test]
fn four_concurrent_applies_send_each_member_once() {
    const N: usize = 250;
    let (t, _) = pg_test(&sandbox_members(N), "concurrent");
    let children: Vec<Child> = (0..4)
        .map(|_| {
            t.command(&["apply", "--auto-approve", "--max-changes", "1000", "--lock-timeout", "2m"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert_eq!(wait_for(&mut child, Duration::from_secs(120)), 0);
    }
    let counts = outbox_counts(&t);
    assert_eq!(counts.len(), N, "every member was sent");
    assert!(counts.values().all(|n| *n == 1), "a member was sent twice: {counts:?}");
    assert_converged(&t);
}

#[test]
fn a_held_lock_names_its_holder_plans_do_not_queue_and_lock_timeout_waits() {
    let (t, db) = pg_test(QUICKSTART, "held");
    let mut holder = connect(&Postgres::shared().url(&db), "held");
    let lock = holder.lock("apply", Duration::ZERO).expect("lock");
    // The session advisory lock, keyed by the name's SHA-256 (bigint keys
    // show as two 32-bit halves).
    let key = memberctl::state::postgres::lock_key("held");
    let held = Postgres::shared().psql(
        &db,
        &format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND ((classid::bigint << 32) | objid::bigint) = {key}"
        ),
    );
    assert_eq!(held.trim(), "1");
    let out = t.cmd(&["apply", "--auto-approve"]).expect(1);
    assert!(out.stderr.contains("state `held` is locked by `memberctl apply` (pid "), "{}", out.rendered());
    assert!(out.stderr.contains("--lock-timeout"), "{}", out.rendered());
    assert!(!t.path().join("outbox.jsonl").exists(), "nothing was sent");
    // Plans read a snapshot and never wait for the lock.
    let started = Instant::now();
    t.cmd(&["plan"]).expect(0);
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = t.cmd(&["state", "unlock"]).expect(1);
    assert!(out.stderr.contains("is locked by"), "unlock must not break a live lock: {}", out.rendered());
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(lock);
        drop(holder);
    });
    t.cmd(&["apply", "--auto-approve", "--lock-timeout", "20s"]).expect(0);
    releaser.join().expect("thread");
    assert_converged(&t);
}

fn invite(email: &str) -> Operation {
    Operation::invite("sandbox", memberctl::attributes::Attributes { email: email.to_owned(), ..Default::default() })
}

// Regression: #11: a writer whose lock was taken over commits nothing, even
// though the serial it expects is still there.
#[test]
fn a_writer_whose_epoch_moved_cannot_commit() {
    let pg = Postgres::shared();
    let db = pg.database();
    let url = pg.url(&db);
    let mut first = connect(&url, "fenced");
    let held = first.lock("apply", Duration::ZERO).expect("lock");
    let loaded = first.load_and_recover().expect("load");
    let mut recorder = first.recorder(loaded.state.unwrap_or_default()).expect("recorder");
    let ops = [invite("ana@example.com")];
    let batch = recorder.intent("sandbox", &ops).expect("intent");
    // Its session is killed mid-apply, and another run takes the lock.
    pg.psql(&db, &format!("SELECT pg_terminate_backend({})", first.backend_pid()));
    let mut second = connect(&url, "fenced");
    let taken = second.lock("apply", Duration::from_secs(10)).expect("the lock died with the session");
    let recovered = second.load_and_recover().expect("recover");
    let replay = recovered.replay.expect("the intent is found");
    assert_eq!(replay.uncertain, ["sandbox/ana@example.com"]);
    let err = recorder.outcome(batch, &ops, &[Outcome::Invited(RemoteIds::default())]).expect_err("fenced");
    assert!(matches!(err, StateError::Database { .. } | StateError::Fenced { .. }), "{err}");
    // The run that lost the lock lets go without clearing the row of the
    // run that holds it now.
    drop(held);
    let holders = pg.psql(&db, "SELECT count(*) FROM memberctl.locks WHERE state = 'fenced'");
    assert_eq!(holders.trim(), "1", "the new holder's row stays");
    drop(taken);
    let holders = pg.psql(&db, "SELECT count(*) FROM memberctl.locks WHERE state = 'fenced'");
    assert_eq!(holders.trim(), "0", "the holder clears its row");

    // The same with the session alive: only the epoch moved.
    let mut third = connect(&url, "fenced");
    let held = third.lock("apply", Duration::ZERO).expect("lock");
    let loaded = third.load_and_recover().expect("load");
    let mut recorder = third.recorder(loaded.state.expect("a state")).expect("recorder");
    let ops = [invite("bo@example.com")];
    let batch = recorder.intent("sandbox", &ops).expect("intent");
    pg.psql(&db, "UPDATE memberctl.states SET epoch = epoch + 1 WHERE name = 'fenced'");
    let err = recorder.outcome(batch, &ops, &[Outcome::Invited(RemoteIds::default())]).expect_err("fenced");
    assert!(matches!(err, StateError::Fenced { .. }), "{err}");
    assert!(err.to_string().contains("taken over by another run"), "{err}");
    drop(held);
    let records = pg.psql(&db, "SELECT address FROM memberctl.resources WHERE state = 'fenced' ORDER BY address");
    assert!(!records.contains("bo@example.com"), "the fenced write left nothing: {records}");
}

#[test]
fn four_first_runs_at_once_migrate_the_schema_once() {
    let (t, db) = pg_test(QUICKSTART, "race");
    let children: Vec<Child> = (0..4)
        .map(|_| {
            t.command(&["plan"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let pg = Postgres::shared();
    assert_eq!(
        pg.psql(&db, "SELECT obj_description('memberctl'::regnamespace, 'pg_namespace')").trim(),
        "memberctl schema 1"
    );
    let tables = pg.psql(
        &db,
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'memberctl'",
    );
    assert_eq!(tables.trim(), "journal,locks,resources,states");
}

// #13: rows are written as the state file's version 2 records (the
// provider and email are the address's); rows an earlier memberctl wrote in
// the version 1 shape are still read as they were, and rewritten as they
// change, and the state is then marked version 2.
#[test]
fn version_1_rows_are_read_and_rewritten_as_version_2_rows() {
    let (t, db) = pg_test(&sandbox_members(3), "rows");
    t.cmd(&APPLY).expect(0);
    let pg = Postgres::shared();
    let count = |filter: &str| {
        pg.psql(&db, &format!("SELECT count(*) FROM memberctl.resources WHERE state = 'rows' AND {filter}"))
    };
    let format_version = || pg.psql(&db, "SELECT format_version FROM memberctl.states WHERE name = 'rows'");
    assert_eq!(count("NOT record ? 'provider' AND NOT record ? 'email'").trim(), "3");
    assert_eq!(format_version().trim(), "2");
    let pulled = t.cmd(&["state", "pull"]).expect(0).stdout;

    // As an earlier memberctl wrote them: every field, and version 1.
    pg.psql(
        &db,
        "UPDATE memberctl.resources SET record = record || jsonb_build_object(
            'provider', split_part(address, '/', 1),
            'email', split_part(address, '/', 2),
            'updated_at', COALESCE(record->'updated_at', record->'created_at'),
            'invited_at', COALESCE(record->'invited_at', record->'created_at'),
            'attributes', record->'attributes' || jsonb_build_object('email', split_part(address, '/', 2)))
         WHERE state = 'rows'",
    );
    pg.psql(&db, "UPDATE memberctl.states SET format_version = 1 WHERE name = 'rows'");
    assert_eq!(count("record ? 'provider'").trim(), "3");
    assert_eq!(
        t.cmd(&["state", "pull"]).expect(0).stdout,
        pulled,
        "version 1 rows read as what they were written from"
    );
    assert_converged(&t);

    // One member changes: its row is rewritten as version 2, the others
    // stay as they are and are still read.
    let config = t.read("memberctl.yaml").replace("    name: Person 1\n", "    name: Person One\n");
    t.write("memberctl.yaml", &config);
    t.cmd(&APPLY).expect(0);
    assert_eq!(count("record ? 'provider'").trim(), "2");
    assert_eq!(count("address = 'sandbox/p0001@example.com' AND NOT record ? 'provider'").trim(), "1");
    assert_eq!(format_version().trim(), "2");
    assert_converged(&t);
}

// Regression: #11: a schema migrated by a newer memberctl is refused, naming the version.
#[test]
fn a_schema_from_a_newer_memberctl_is_refused() {
    let (t, db) = pg_test(QUICKSTART, "newer");
    t.cmd(&["plan"]).expect(0);
    Postgres::shared().psql(&db, "COMMENT ON SCHEMA memberctl IS 'memberctl schema 99'");
    let out = t.cmd(&["apply", "--auto-approve"]).expect(1);
    assert!(out.stderr.contains("is at version 99; this memberctl reads up to version 1"), "{}", out.rendered());
    assert!(!t.path().join("outbox.jsonl").exists());
}

#[test]
fn pull_and_push_round_trip_and_refusals() {
    let pg = Postgres::shared();
    let db = pg.database();
    // A file state, moved to PostgreSQL.
    let file = Test::new().config(QUICKSTART);
    file.cmd(&["apply", "--auto-approve"]).expect(0);
    let t = Test::new().config(&on_postgres(QUICKSTART, "moved")).env(URL_ENV, &pg.url(&db));
    t.write("old.json", &file.read("memberctl.state.json"));
    let out = t.cmd(&["state", "push", "old.json"]).expect(0);
    assert!(out.stdout.contains("Pushed `old.json` (3 record(s)"), "{}", out.rendered());
    assert_converged(&t);

    // Pulled back, it is the file state, byte for byte.
    let pulled = t.cmd(&["state", "pull"]).expect(0);
    assert_eq!(pulled.stdout, file.read("memberctl.state.json"));

    // Pushed to a new name, it plans clean there too.
    let copy = Test::new().config(&on_postgres(QUICKSTART, "copy")).env(URL_ENV, &pg.url(&db));
    copy.write("pulled.json", &pulled.stdout);
    copy.cmd(&["state", "push", "pulled.json"]).expect(0);
    assert_converged(&copy);

    // Another lineage is refused unless forced.
    let stranger = Test::new().config(QUICKSTART);
    stranger.cmd(&["apply", "--auto-approve", "--target", "sandbox/kim@example.com"]).expect(0);
    t.write("stranger.json", &stranger.read("memberctl.state.json"));
    let out = t.cmd(&["state", "push", "stranger.json"]).expect(1);
    assert!(out.stderr.contains("refusing to push: `stranger.json` has lineage"), "{}", out.rendered());
    assert!(out.stderr.contains("--force"), "{}", out.rendered());
    assert_converged(&t);

    // An older serial of the same lineage is refused.
    t.cmd(&["state", "rm", "sandbox/kim@example.com"]).expect(0);
    let out = t.cmd(&["state", "push", "old.json"]).expect(1);
    assert!(out.stderr.contains("is at serial"), "{}", out.rendered());

    // A push is a write: its serial moves past the state it replaces (even
    // from a file at the same serial), so a plan saved before it is stale.
    t.cmd(&["plan", "--out", "before-push.json"]).expect(0);
    let current = t.cmd(&["state", "pull"]).expect(0).stdout;
    let serial_of = |text: &str| serde_json::from_str::<serde_json::Value>(text).expect("JSON")["serial"].as_u64();
    let before = serial_of(&current).expect("a serial");
    t.write("same-serial.json", &current);
    t.cmd(&["state", "push", "same-serial.json"]).expect(0);
    assert_eq!(serial_of(&t.cmd(&["state", "pull"]).expect(0).stdout), Some(before + 1));
    let out = t.cmd(&["apply", "before-push.json"]).expect(1);
    assert!(out.stderr.contains("stale"), "{}", out.rendered());

    // A file with a pending journal is refused.
    t.write("journaled.json", &pulled.stdout);
    t.write("journaled.json.journal", "");
    let out = t.cmd(&["state", "push", "journaled.json"]).expect(1);
    assert!(out.stderr.contains("journaled.json.journal` exists"), "{}", out.rendered());

    // Forced, the stranger replaces it.
    t.cmd(&["state", "push", "--force", "stranger.json"]).expect(0);
    let list = t.cmd(&["state", "list"]).expect(0);
    assert_eq!(list.stdout.trim(), "sandbox/kim@example.com\tinvited");
}

// Regression: #11: the database password never appears in any output.
#[test]
fn the_database_password_is_never_printed() {
    let pg = Postgres::shared();
    let db = pg.database();
    let good = pg.url_with_password(&db, SECRET_PASSWORD);
    // Trace logs from every crate too: the driver's included.
    let t = Test::new().config(&on_postgres(QUICKSTART, "secret")).env(URL_ENV, &good).env("RUST_LOG", "trace");
    let mut outputs = vec![
        t.cmd(&["-vv", "plan", "--out", "saved.plan"]).expect(0),
        t.cmd(&["-vv", "apply", "--auto-approve", "saved.plan"]).expect(0),
        t.cmd(&["-vv", "state", "pull"]).expect(0),
    ];
    let saved = t.read("saved.plan");
    assert!(!saved.contains(SECRET_PASSWORD), "the saved plan holds the password");

    // A wrong password and an unreachable server: clear errors, exit 1.
    let wrong = Test::new()
        .config(&on_postgres(QUICKSTART, "secret"))
        .env(URL_ENV, &pg.url_with_password(&db, &format!("{SECRET_PASSWORD}-wrong")))
        .env("RUST_LOG", "trace");
    let out = wrong.cmd(&["-vv", "apply", "--auto-approve"]).expect(1);
    assert!(out.stderr.contains(&format!("state database `127.0.0.1/{db}`")), "{}", out.rendered());
    assert!(!out.stderr.contains(SECRET_USER), "the user is not shown either: {}", out.rendered());
    assert!(!wrong.path().join("outbox.jsonl").exists(), "nothing was sent");
    outputs.push(out);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let unreachable = Test::new()
        .config(&on_postgres(QUICKSTART, "secret"))
        .env(URL_ENV, &format!("postgres://{SECRET_USER}:{SECRET_PASSWORD}@127.0.0.1:{closed}/{db}?connect_timeout=2"));
    let out = unreachable.cmd(&["apply", "--auto-approve"]).expect(1);
    assert!(out.stderr.contains(&format!("state database `127.0.0.1/{db}`")), "{}", out.rendered());
    assert!(!unreachable.path().join("outbox.jsonl").exists(), "nothing was sent");
    outputs.push(out);
    let no_such_database = Test::new()
        .config(&on_postgres(QUICKSTART, "secret"))
        .env(URL_ENV, &pg.url_with_password("no_such_database", SECRET_PASSWORD));
    let out = no_such_database.cmd(&["apply", "--auto-approve"]).expect(1);
    assert!(out.stderr.contains("state database `127.0.0.1/no_such_database`"), "{}", out.rendered());
    assert!(out.stderr.contains("does not exist"), "{}", out.rendered());
    assert!(!no_such_database.path().join("outbox.jsonl").exists(), "nothing was sent");
    outputs.push(out);
    let missing = Test::new().config(&on_postgres(QUICKSTART, "secret"));
    let out = missing.cmd(&["plan"]).expect(1);
    assert!(out.stderr.contains("`MEMBERCTL_DATABASE_URL` is not set"), "{}", out.rendered());
    for out in outputs {
        assert!(!out.stdout.contains(SECRET_PASSWORD) && !out.stderr.contains(SECRET_PASSWORD), "{}", out.rendered());
    }
}

// Regression: #11: a run killed mid-apply leaves intents; the next run makes
// them uncertain, and converges with at most one in-flight window resent.
#[test]
fn a_kill_mid_apply_then_a_rerun_converges() {
    const N: usize = 200;
    const BATCH: usize = 10;
    const CONCURRENCY: usize = 2;
    let nw = FakeNetworked::start();
    nw.set_answer_delay(Duration::from_millis(120));
    let mut yaml = format!(
        "version: 1\nproviders:\n  community:\n    type: networked\n    base_url: {}\n    api_key_env: PG_NW_KEY\n    rate_limit: 0\n    batch_size: {BATCH}\n    concurrency: {CONCURRENCY}\nroles:\n  member: {{ community: 69baa36beddb9f0012fdf101 }}\ndefaults:\n  providers: [community]\n  roles: [member]\nsafety:\n  max_changes: 1000\nmembers:\n",
        nw.url()
    );
    for i in 0..N {
        writeln!(yaml, "  - email: kill{i:03}@example.com\n    name: Person {i}").expect("write to a String");
    }
    let (t, db) = pg_test(&yaml, "killed");
    let t = t.env("PG_NW_KEY", fake_networked::API_KEY);
    let pg = Postgres::shared();
    // Creates the schema, so that it can be watched.
    t.cmd(&["plan"]).expect(0);
    let mut child = t
        .command(&APPLY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded: usize =
            pg.psql(&db, "SELECT count(*) FROM memberctl.resources WHERE state = 'killed'").trim().parse().unwrap_or(0);
        if recorded >= 4 * BATCH {
            break;
        }
        assert!(Instant::now() < deadline, "no batches were recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(60));
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    std::thread::sleep(Duration::from_millis(200));
    let before = nw.received().len();
    assert!(before < N, "the kill came mid-run ({before} of {N} sent)");

    nw.set_answer_delay(Duration::ZERO);
    let out = t.cmd(&APPLY).expect(0);
    assert!(out.stderr.contains("found the journal of an interrupted apply"), "{}", out.rendered());
    for i in 0..N {
        assert!(nw.member(&format!("kill{i:03}@example.com")).is_some(), "kill{i:03} is a member");
    }
    let twice = nw.received_twice();
    assert!(twice.len() <= CONCURRENCY * BATCH, "{twice:?}");
    assert!(nw.received().values().all(|n| *n <= 2));
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM memberctl.journal").trim(), "0");
    assert_converged(&t);
}

// Regression: #11: a saved plan names the backend and state it was made
// against; applied anywhere else, or after the state moved on, it is refused.
#[test]
fn saved_plans_are_refused_for_another_state_or_a_moved_serial() {
    let (t, db) = pg_test(QUICKSTART, "saved");
    let pg = Postgres::shared();
    t.cmd(&["plan", "--out", "saved.plan"]).expect(0);
    let saved: serde_json::Value = serde_json::from_str(&t.read("saved.plan")).expect("plan JSON");
    assert_eq!(saved["state_location"], serde_json::json!({"backend": "postgres", "name": "saved"}));

    // Another state name in the same database.
    let other = Test::new().config(&on_postgres(QUICKSTART, "elsewhere")).env(URL_ENV, &pg.url(&db));
    other.write("saved.plan", &t.read("saved.plan"));
    let out = other.cmd(&["apply", "--auto-approve", "saved.plan"]).expect(1);
    assert!(out.stderr.contains("stale plan: it was made against postgres state `saved`"), "{}", out.rendered());
    // A state file.
    let file = Test::new().config(QUICKSTART);
    file.write("saved.plan", &t.read("saved.plan"));
    let out = file.cmd(&["apply", "--auto-approve", "saved.plan"]).expect(1);
    assert!(out.stderr.contains("not state file `memberctl.state.json`"), "{}", out.rendered());
    // And a file plan on postgres.
    file.cmd(&["plan", "--out", "file.plan"]).expect(0);
    t.write("file.plan", &file.read("file.plan"));
    let out = t.cmd(&["apply", "--auto-approve", "file.plan"]).expect(1);
    assert!(out.stderr.contains("stale plan: it was made against a state file"), "{}", out.rendered());

    // The state moves on: the plan is stale.
    t.cmd(&["apply", "--auto-approve", "--target", "sandbox/kim@example.com"]).expect(0);
    let out = t.cmd(&["apply", "--auto-approve", "saved.plan"]).expect(1);
    assert!(out.stderr.contains("stale plan"), "{}", out.rendered());
    t.cmd(&["plan", "--out", "fresh.plan"]).expect(0);
    t.cmd(&["apply", "--auto-approve", "fresh.plan"]).expect(0);
    assert_converged(&t);
}

// Regression: #11: `verify-full` with `sslrootcert` connects to a server
// whose certificate that CA signed, and refuses one it did not, or one for
// another name; `verify-ca` checks the chain only.
#[test]
fn verify_full_and_verify_ca_check_the_server_certificate() {
    let pg = Postgres::shared();
    let db = pg.database();
    let url = |host: &str, mode: &str, ca: &std::path::Path| {
        format!("postgres://postgres@{host}:{}/{db}?sslmode={mode}&sslrootcert={}", pg.port(), ca.display())
    };
    let run = |url: String| Test::new().config(&on_postgres(QUICKSTART, "tls")).env(URL_ENV, &url).cmd(&["plan"]);
    run(url("localhost", "verify-full", &pg.ca())).expect(0);
    let out = run(url("localhost", "verify-full", &pg.other_ca())).expect(1);
    assert!(out.stderr.contains(&format!("state database `localhost/{db}`")), "{}", out.rendered());
    assert!(out.stderr.to_lowercase().contains("certificate"), "{}", out.rendered());
    // The certificate names `localhost`, not 127.0.0.1.
    let out = run(url("127.0.0.1", "verify-full", &pg.ca())).expect(1);
    assert!(out.stderr.to_lowercase().contains("certificate"), "{}", out.rendered());
    run(url("127.0.0.1", "verify-ca", &pg.ca())).expect(0);
    run(url("127.0.0.1", "verify-ca", &pg.other_ca())).expect(1);
    // A `verify-*` mode without the CA is refused before connecting.
    let out = run(format!("postgres://postgres@localhost:{}/{db}?sslmode=verify-full", pg.port())).expect(1);
    assert!(out.stderr.contains("need `sslrootcert=PATH`"), "{}", out.rendered());
}

// Regression: #11: behind a transaction-pooling proxy the session advisory
// lock guards nothing; the changed backend pid is noticed and refused.
#[test]
fn a_transaction_pooling_proxy_is_refused() {
    let pg = Postgres::shared();
    let db = pg.database();
    let proxy = crate::support::pooler::SwitchingProxy::start(pg.port());
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port());
    let t = Test::new().config(&on_postgres(QUICKSTART, "pooled")).env(URL_ENV, &url);
    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let out = t.cmd(args).expect(1);
        assert!(out.stderr.contains("as behind a transaction-pooling proxy"), "{}", out.rendered());
        assert!(out.stderr.contains("session-pooling"), "the hint says what to do: {}", out.rendered());
    }
    assert!(!t.path().join("outbox.jsonl").exists(), "nothing was sent");
    // Directly, the same state works.
    let direct = Test::new().config(&on_postgres(QUICKSTART, "pooled")).env(URL_ENV, &pg.url(&db));
    direct.cmd(&["apply", "--auto-approve"]).expect(0);
}

/// A networked config of `n` members `{prefix}{i}@example.com`, batches of
/// `batch`, two at a time, against `nw`.
fn networked_members(nw: &FakeNetworked, prefix: &str, n: usize, batch: usize) -> String {
    let mut yaml = format!(
        "version: 1\nproviders:\n  community:\n    type: networked\n    base_url: {}\n    api_key_env: PG_NW_KEY\n    rate_limit: 0\n    batch_size: {batch}\n    concurrency: 2\nroles:\n  member: {{ community: 69baa36beddb9f0012fdf101 }}\ndefaults:\n  providers: [community]\n  roles: [member]\nsafety:\n  max_changes: 1000\nmembers:\n",
        nw.url()
    );
    for i in 0..n {
        writeln!(yaml, "  - email: {prefix}{i:03}@example.com\n    name: Person {i}").expect("write to a String");
    }
    yaml
}

fn recorded(pg: &Postgres, db: &str, name: &str) -> usize {
    pg.psql(db, &format!("SELECT count(*) FROM memberctl.resources WHERE state = '{name}'")).trim().parse().unwrap_or(0)
}

// Regression: #11: the database stops mid-apply and stays away past the
// reconnect window: the answers in hand go to a rescue journal (a file and
// stderr), `state recover` folds it in, and nothing the provider confirmed
// is sent again.
#[test]
fn the_database_stopped_mid_apply_leaves_a_rescue_journal_that_recover_folds_in() {
    const N: usize = 100;
    let pg = Postgres::own();
    let db = pg.database();
    let nw = FakeNetworked::start();
    nw.set_answer_delay(Duration::from_millis(150));
    let t = Test::new()
        .config(&on_postgres(&networked_members(&nw, "stop", N, 10), "stopped"))
        .env(URL_ENV, &pg.url(&db))
        .env("PG_NW_KEY", fake_networked::API_KEY)
        .env("MEMBERCTL_DB_RECONNECT_SECS", "2");
    t.cmd(&["plan"]).expect(0);
    let child = t
        .command(&APPLY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while recorded(&pg, &db, "stopped") < 20 {
        assert!(Instant::now() < deadline, "no batches were recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    pg.stop_immediately();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lost the state database"), "{stderr}");
    assert!(stderr.contains("rescue journal `memberctl-rescue-stopped-"), "{stderr}");
    assert!(stderr.contains("\"memberctl_rescue\":1"), "the journal is printed: {stderr}");
    let rescue = std::fs::read_dir(t.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("memberctl-rescue-"))
        .expect("the rescue journal is written");
    let sent = nw.received().len();
    assert!(sent < N, "the stop came mid-run ({sent} of {N} sent)");

    pg.start_again();
    let out = t.cmd(&["state", "recover", &rescue]).expect(0);
    assert!(out.stdout.contains("Recovered "), "{}", out.rendered());
    nw.set_answer_delay(Duration::ZERO);
    t.cmd(&APPLY).expect(0);
    assert!(nw.received_twice().is_empty(), "confirmed answers were lost: {:?}", nw.received_twice());
    assert_eq!(nw.received().len(), N);
    assert_converged(&t);
}

// Regression: #11: a database that comes back within the reconnect window
// costs nothing: the run takes its lock again and finishes.
#[test]
fn a_database_restarted_mid_apply_is_reconnected_and_the_apply_finishes() {
    const N: usize = 100;
    let pg = Postgres::own();
    let db = pg.database();
    let nw = FakeNetworked::start();
    nw.set_answer_delay(Duration::from_millis(100));
    let t = Test::new()
        .config(&on_postgres(&networked_members(&nw, "back", N, 10), "restarted"))
        .env(URL_ENV, &pg.url(&db))
        .env("PG_NW_KEY", fake_networked::API_KEY)
        .env("MEMBERCTL_DB_RECONNECT_SECS", "60");
    t.cmd(&["plan"]).expect(0);
    let child = t
        .command(&APPLY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while recorded(&pg, &db, "restarted") < 20 {
        assert!(Instant::now() < deadline, "no batches were recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    pg.stop_immediately();
    std::thread::sleep(Duration::from_millis(700));
    pg.start_again();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(nw.received_twice().is_empty(), "{:?}", nw.received_twice());
    assert_eq!(nw.received().len(), N);
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM memberctl.journal").trim(), "0");
    assert_converged(&t);
}

// Regression: #11: the lock-holding session of an apply is killed with
// `pg_terminate_backend` mid-apply and another run takes the lock while the
// first is still sending: the first commits nothing more (fencing), and a
// second apply, started meanwhile, and a later one converge.
#[test]
fn a_stolen_lock_fences_the_old_writer_and_the_next_runs_converge() {
    // Enough batches, answered slowly enough, that the first apply is still
    // sending when its session is killed, however loaded the machine.
    const N: usize = 200;
    let pg = Postgres::shared();
    let db = pg.database();
    let nw = FakeNetworked::start();
    nw.set_answer_delay(Duration::from_millis(400));
    let t = Test::new()
        .config(&on_postgres(&networked_members(&nw, "stolen", N, 10), "stolen"))
        .env(URL_ENV, &pg.url(&db))
        .env("PG_NW_KEY", fake_networked::API_KEY);
    t.cmd(&["plan"]).expect(0);
    let first = t
        .command(&APPLY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while recorded(pg, &db, "stolen") < 20 {
        assert!(Instant::now() < deadline, "no batches were recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = pg.psql(
        &db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'memberctl' AND datname = current_database()",
    );
    assert_eq!(killed.trim(), "1", "one session held the lock");
    // Take the lock as soon as the dead session lets it go.
    let mut thief = connect(&pg.url(&db), "stolen");
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        match thief.lock("apply", Duration::ZERO) {
            Ok(held) => break held,
            Err(StateError::Locked { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => panic!("the lock was not freed: {error}"),
        }
    };
    let at_theft = recorded(pg, &db, "stolen");
    // A second apply starts while the first is still sending; it waits.
    let second = t
        .command(&["apply", "--auto-approve", "--max-changes", "1000", "--lock-timeout", "60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let output = first.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the old writer must stop: {stderr}");
    assert!(stderr.contains("taken over by another run") || stderr.contains("lost the state database"), "{stderr}");
    assert_eq!(recorded(pg, &db, "stolen"), at_theft, "the old writer committed nothing after the theft");
    drop(held);
    drop(thief);
    let output = second.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    nw.set_answer_delay(Duration::ZERO);
    t.cmd(&APPLY).expect(0);
    for i in 0..N {
        assert!(nw.member(&format!("stolen{i:03}@example.com")).is_some(), "stolen{i:03} is a member");
    }
    assert!(nw.received().values().all(|n| *n <= 2), "{:?}", nw.received_twice());
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM memberctl.journal").trim(), "0");
    assert_converged(&t);
}

// Regression: #11: `state:` is validated like every other key.
#[test]
fn the_state_block_is_validated() {
    for (block, expected) in [
        ("state:\n  backend: postgres\n", "`backend: postgres` needs a `state.name`"),
        ("state:\n  backend: postgres\n  name: x\n  path: s.json\n", "`state.path` applies only to `backend: file`"),
        ("state:\n  name: x\n", "`state.name` applies only to `backend: postgres`"),
        ("state:\n  backend: postgres\n  nmae: x\n", "nmae"),
        ("state:\n  backend: mysql\n", "mysql"),
    ] {
        let t = Test::new().config(&format!("{QUICKSTART}{block}"));
        let out = t.cmd(&["validate"]).expect(1);
        assert!(out.stderr.contains(expected), "{block}: {}", out.rendered());
    }
}

// Regression: #11: `state.path` chooses the state file; `--state` overrides it.
#[test]
fn the_state_file_comes_from_state_path_unless_the_flag_names_one() {
    let t = Test::new().config(&format!("{QUICKSTART}state:\n  backend: file\n  path: kept/state.json\n"));
    std::fs::create_dir_all(t.path().join("kept")).expect("mkdir");
    t.cmd(&["apply", "--auto-approve", "--target", "sandbox/kim@example.com"]).expect(0);
    assert!(t.path().join("kept/state.json").exists());
    assert!(!t.path().join("memberctl.state.json").exists());
    t.cmd(&["--state", "flag.json", "apply", "--auto-approve"]).expect(0);
    assert!(t.path().join("flag.json").exists(), "the flag wins over `state.path`");
    let list = t.cmd(&["state", "list"]).expect(0);
    assert_eq!(list.stdout.lines().count(), 1, "state list reads `state.path`: {}", list.rendered());
}

// Regression: #11: the database session runs on a thread of its own, and
// the CLI holds the stderr lock for the whole command: a driver log line
// from that thread must not hang the run.
#[test]
fn driver_logs_do_not_hang_a_run() {
    let (t, _) = pg_test(QUICKSTART, "logged");
    let t = t.env("RUST_LOG", "trace");
    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let log = std::fs::File::create(t.path().join("stderr.log")).expect("log file");
        let mut child = t.command(args).stdout(std::process::Stdio::null()).stderr(log).spawn().expect("spawn");
        assert_eq!(wait_for(&mut child, Duration::from_secs(60)), 0, "{args:?}");
        assert!(t.read("stderr.log").contains("executing statement"), "the driver logged: {}", t.read("stderr.log"));
    }
}

// Regression: #13: records stream from the database in batches parsed on
// the session's thread; a plan of many records sees each once, and a
// record that does not parse is an error naming the state, never a plan
// that invites the member again.
#[test]
fn records_stream_in_batches_and_a_corrupt_one_is_an_error() {
    let (t, db) = pg_test(&sandbox_members(700), "batches");
    t.cmd(&APPLY).expect(0);
    assert_converged(&t);
    let pg = Postgres::shared();
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM memberctl.resources WHERE state = 'batches'").trim(), "700");
    pg.psql(
        &db,
        "UPDATE memberctl.resources SET record = '{\"not\": \"a record\"}'::jsonb \
         WHERE state = 'batches' AND address = 'sandbox/p0600@example.com'",
    );
    let out = t.cmd(&["plan"]);
    assert_ne!(out.code, 0, "{}", out.rendered());
    assert!(out.stderr.contains("postgres state `batches`"), "{}", out.rendered());
    assert!(!out.stdout.contains("to invite"), "{}", out.rendered());
}

// Found by a review: a server that took the connection and never answered
// held the run forever; the driver's `connect_timeout` bounds only the TCP
// connect. (No PostgreSQL needed: a listener that says nothing.)
#[test]
fn a_server_that_never_answers_is_given_up_on() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    // Connections are accepted (by the backlog) and never answered.
    let t = Test::new()
        .config(&on_postgres(QUICKSTART, "silent"))
        .env(URL_ENV, &format!("postgres://memberctl:pw@127.0.0.1:{port}/db?connect_timeout=1"));
    let out = t.cmd(&["plan"]).expect(1);
    assert!(out.stderr.contains("did not answer within 2 s"), "{}", out.rendered());
    drop(silent);
}
