//! The SCIM section of the benchmark (issue #10), opt-in with `--scim N`:
//! the release `memberctl` against a real scim2-server on loopback (the one
//! the integration tests use, `SCIM2_SERVER_BIN` or `target/scim-venv`).
//!
//! - `apply` of N users with bulk on, with bulk off, and with bulk on and
//!   group memberships (10 groups, each user in one);
//! - `refresh` of N/10 (mean of 10 runs) and N (mean of 3) recorded users,
//!   to show how its cost grows.
//!
//! Requests are counted from the server's own log (one line per request),
//! so nothing stands between memberctl and the server. memberctl's CPU time
//! (user + system) comes from GNU time, apart from the wall time: the
//! server is Python, in memory and mostly single-threaded, so its own time
//! dominates the wall time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::scim_server::{ScimServer, ScimTenant, BULK_OFF_CONFIG};
use super::{mb, secs, thousands, BIN};

/// Members per batch: with bulk, also the operations per `/Bulk` request
/// (scim2-server allows 1000).
const BATCH: usize = 100;
/// Requests in flight without bulk.
const CONCURRENCY: usize = 4;
/// Groups in the memberships run; user `i` joins group `i % GROUPS`.
const GROUPS: usize = 10;
const GNU_TIME: &str = "/usr/bin/time";
/// Runs of the smaller refresh, averaged: one takes only a few hundredths
/// of a second of memberctl's CPU.
const SMALL_REFRESH_RUNS: u32 = 10;
/// Runs of the larger refresh, averaged: the server's time varies with the
/// load of the machine.
const LARGE_REFRESH_RUNS: u32 = 3;

/// One measured memberctl run.
pub struct Row {
    what: String,
    n: usize,
    /// Requests by `METHOD /Endpoint`, as the server logged them.
    requests: BTreeMap<String, usize>,
    /// What the request count must be, when a rule fixes it.
    expected: Option<(String, usize)>,
    wall: Duration,
    cpu: Duration,
    rss_kib: u64,
}

impl Row {
    fn total(&self) -> usize {
        self.requests.values().sum()
    }

    fn count(&self, key: &str) -> usize {
        self.requests.get(key).copied().unwrap_or(0)
    }
}

/// A tenant, with an admin client to prepare and check it.
struct Prepared {
    tenant: ScimTenant,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Prepared {
    fn new(server: &ScimServer) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let http = reqwest::Client::builder().no_proxy().build().expect("HTTP client");
        Self { tenant: server.tenant(), runtime, http }
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<String>) -> serde_json::Value {
        self.runtime.block_on(async {
            let mut request = self.http.request(method, self.tenant.url(path)).bearer_auth(self.tenant.token());
            if let Some(body) = body {
                request = request.header("content-type", "application/scim+json").body(body);
            }
            let response = request.send().await.expect("the SCIM server answers");
            assert!(response.status().is_success(), "{path}: {}", response.status());
            response.json().await.expect("a JSON answer")
        })
    }

    fn group(&self, name: &str) -> String {
        let body = format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"{name}"}}"#);
        let group = self.send(reqwest::Method::POST, "/Groups", Some(body));
        group["id"].as_str().expect("a group id").to_owned()
    }

    fn user_count(&self) -> u64 {
        self.send(reqwest::Method::GET, "/Users?count=0", None)["totalResults"].as_u64().expect("totalResults")
    }

    fn member_count(&self, group: &str) -> usize {
        self.send(reqwest::Method::GET, &format!("/Groups/{group}"), None)["members"].as_array().map_or(0, Vec::len)
    }
}

fn config(base_url: &str, extra: &str, groups: &[String], n: usize) -> String {
    let mut yaml = format!(
        "version: 1\nproviders:\n  directory:\n    type: scim\n    base_url: {base_url}\n    rate_limit: 0\n    \
         batch_size: {BATCH}\n{extra}roles:\n  dev: {{ directory: dev }}\n"
    );
    if !groups.is_empty() {
        yaml.push_str("groups:\n");
        for (i, id) in groups.iter().enumerate() {
            writeln!(yaml, "  g{i}: {{ directory: {id} }}").expect("write to a String");
        }
    }
    yaml.push_str("defaults:\n  providers: [directory]\nmembers:\n");
    for i in 0..n {
        write!(yaml, "  - email: user{i}@example.com\n    name: User {i}\n    roles: [dev]\n").expect("write");
        if !groups.is_empty() {
            writeln!(yaml, "    groups: [g{}]", i % groups.len()).expect("write to a String");
        }
    }
    yaml
}

/// Requests in `log` (scim2-server's request lines) to `tenant`, by
/// `METHOD /Endpoint` (a listing or a bulk request) or `METHOD /Endpoint/{id}`
/// (one resource).
fn requests(log: &str, tenant: &str) -> BTreeMap<String, usize> {
    let prefix = format!("/{tenant}/v2/");
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let Some((_, request)) = line.split_once('"') else { continue };
        let mut parts = request.split(' ');
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else { continue };
        let Some(below) = path.strip_prefix(&prefix) else { continue };
        let below = below.split('?').next().unwrap_or_default();
        let key = match below.split_once('/') {
            Some((endpoint, _)) => format!("{method} /{endpoint}/{{id}}"),
            None => format!("{method} /{below}"),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Runs `memberctl ARGS` in `dir` under GNU time; the requests it made to
/// `tenant`, its wall time, CPU time and peak RSS.
fn measure(
    server: &ScimServer,
    tenant: &Prepared,
    dir: &Path,
    args: &[&str],
) -> (BTreeMap<String, usize>, Duration, Duration, u64) {
    let report = dir.join("time.out");
    let logged_before = settled_log(server).len();
    let start = Instant::now();
    let output = Command::new(GNU_TIME)
        .args(["-f", "%U %S %M", "-o"])
        .arg(&report)
        .arg(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .env("SCIM_TOKEN", tenant.tenant.token())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run memberctl under /usr/bin/time");
    let wall = start.elapsed();
    assert!(output.status.success(), "memberctl {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let times = fs::read_to_string(&report).expect("GNU time's report");
    let fields: Vec<f64> =
        times.lines().last().unwrap_or_default().split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let [user, system, rss_kib] = fields[..] else { panic!("unexpected GNU time report: {times}") };
    let log = settled_log(server);
    let counts = requests(&log[logged_before..], tenant.tenant.name());
    (counts, wall, Duration::from_secs_f64(user + system), rss_kib as u64)
}

/// The server's log once it stops growing. Every request was answered
/// before its client went on, but the server (wsgiref) logs a request only
/// once its connection is closed: the last lines are waited for, so that
/// they are counted with the run that made them.
fn settled_log(server: &ScimServer) -> String {
    let mut log = server.log();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let later = server.log();
        if later.len() == log.len() {
            return log;
        }
        log = later;
    }
}

fn work_dir(root: &Path, name: &str, yaml: &str) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("memberctl.yaml"), yaml).expect("write config");
    dir
}

/// Applies `n` users at a new tenant of `server`; the measured row.
fn apply(
    server: &ScimServer,
    root: &Path,
    what: &'static str,
    n: usize,
    with_groups: bool,
    extra: &str,
) -> (Row, Prepared, PathBuf) {
    let tenant = Prepared::new(server);
    let groups: Vec<String> =
        if with_groups { (0..GROUPS).map(|i| tenant.group(&format!("g{i}"))).collect() } else { Vec::new() };
    let dir =
        work_dir(root, &format!("scim-{}", tenant.tenant.name()), &config(tenant.tenant.base_url(), extra, &groups, n));
    let max_changes = n.to_string();
    let (requests, wall, cpu, rss_kib) =
        measure(server, &tenant, &dir, &["apply", "--auto-approve", "--max-changes", &max_changes]);
    assert_eq!(tenant.user_count(), n as u64, "every user created");
    for group in &groups {
        assert_eq!(tenant.member_count(group), n / GROUPS, "every membership made");
    }
    let row = Row { what: what.to_owned(), n, requests, expected: None, wall, cpu, rss_kib };
    eprintln!("  scim {what} {n}: {:.1} s wall, {:.2} s CPU, {} requests", secs(row.wall), secs(row.cpu), row.total());
    (row, tenant, dir)
}

/// `memberctl refresh` of `n` recorded users, `runs` times: the mean wall
/// and CPU time of one run and the requests of one run (GNU time counts CPU
/// in hundredths of a second, so a short run is repeated to be measurable).
/// Nothing changed at the service, so each run reads the same and writes
/// nothing.
fn refresh(server: &ScimServer, tenant: &Prepared, dir: &Path, n: usize, runs: u32) -> Row {
    let (mut wall, mut cpu, mut rss_kib) = (Duration::ZERO, Duration::ZERO, 0);
    let mut requests = BTreeMap::new();
    for _ in 0..runs {
        let run = measure(server, tenant, dir, &["refresh"]);
        requests = run.0;
        wall += run.1;
        cpu += run.2;
        rss_kib = rss_kib.max(run.3);
    }
    let (wall, cpu) = (wall / runs, cpu / runs);
    let what = if runs > 1 { format!("refresh (mean of {runs} runs)") } else { "refresh".to_owned() };
    let row = Row { what, n, requests, expected: None, wall, cpu, rss_kib };
    eprintln!("  scim refresh {n}: {:.1} s wall, {:.2} s CPU, {} requests", secs(row.wall), secs(row.cpu), row.total());
    row
}

/// Runs the SCIM measurements at `n` users (and the refresh at `n / 10`).
pub fn section(n: usize, root: &Path) -> Vec<Row> {
    assert!(
        Path::new(GNU_TIME).exists(),
        "the SCIM section needs GNU time at {GNU_TIME} (scripts/bench.sh installs it with apt-get)"
    );
    let bulk_on = ScimServer::start(None);
    let bulk_off = ScimServer::start(Some(Path::new(BULK_OFF_CONFIG)));
    let mut rows = Vec::new();

    let small = (n / 10).max(1);
    let (_, small_tenant, small_dir) = apply(&bulk_on, root, "apply, bulk on", small, false, "");
    let small_refresh = refresh(&bulk_on, &small_tenant, &small_dir, small, SMALL_REFRESH_RUNS);

    let (mut row, tenant, dir) = apply(&bulk_on, root, "apply, bulk on", n, false, "");
    row.expected = Some(("POST /Bulk".to_owned(), n.div_ceil(BATCH)));
    rows.push(row);
    let (mut row, _, _) =
        apply(&bulk_off, root, "apply, bulk off", n, false, &format!("    concurrency: {CONCURRENCY}\n"));
    row.expected = Some(("POST /Users".to_owned(), n));
    rows.push(row);
    let (row, _, _) = apply(&bulk_on, root, "apply, bulk on, 10 groups", n, true, "");
    rows.push(row);
    rows.push(small_refresh);
    rows.push(refresh(&bulk_on, &tenant, &dir, n, LARGE_REFRESH_RUNS));
    rows
}

/// The section's table and checks; whether every check holds.
pub fn report(rows: &[Row]) -> (String, bool) {
    let mut r = String::new();
    let mut ok = true;
    let _ = writeln!(
        r,
        "### SCIM (release `memberctl` against scim2-server 0.8.3 on loopback; batch {BATCH}; bulk off: concurrency {CONCURRENCY}; one run each, refreshes averaged as marked)\n"
    );
    let _ =
        writeln!(r, "| run | users | requests (server log) | total | wall | memberctl CPU | CPU / user | peak RSS |");
    let _ = writeln!(r, "|---|---:|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let breakdown: Vec<String> = row.requests.iter().map(|(k, v)| format!("{} {k}", thousands(*v))).collect();
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} | {:.1} s | {:.2} s | {:.0} µs | {:.1} MB |",
            row.what,
            thousands(row.n),
            breakdown.join(", "),
            thousands(row.total()),
            secs(row.wall),
            secs(row.cpu),
            secs(row.cpu) * 1e6 / row.n as f64,
            mb(row.rss_kib * 1024),
        );
    }
    let refreshes: Vec<&Row> = rows.iter().filter(|row| row.what.starts_with("refresh")).collect();
    if let [small, large] = refreshes[..] {
        let users = large.n as f64 / small.n as f64;
        // GNU time counts CPU in hundredths of a second.
        let cpu = if small.cpu.is_zero() {
            "under 10 ms at the smaller size".to_owned()
        } else {
            format!("{:.1}×", secs(large.cpu) / secs(small.cpu))
        };
        let _ = writeln!(
            r,
            "\nrefresh {} → {} users ({users:.0}×): requests {:.1}×, wall {:.1}×, memberctl CPU {cpu}.",
            thousands(small.n),
            thousands(large.n),
            large.total() as f64 / small.total() as f64,
            secs(large.wall) / secs(small.wall),
        );
    }
    let _ = writeln!(r, "\n| check | measured | |");
    let _ = writeln!(r, "|---|---|---|");
    for row in rows {
        if let Some((key, want)) = &row.expected {
            let got = row.count(key);
            ok &= got == *want;
            let _ = writeln!(
                r,
                "| {}: {} users take exactly {} `{key}` | {} | {} |",
                row.what,
                thousands(row.n),
                thousands(*want),
                thousands(got),
                super::check(got == *want)
            );
        }
    }
    (r, ok)
}
