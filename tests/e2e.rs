//! End to end: the real `memberctl` binary, run as a child process, against
//! the stateful fake vendor servers over real loopback sockets.
//!
//! These tests prove issue 3's "done when" (a 500-member apply over both
//! providers, request shapes, remote ids, an empty re-plan) and issue 4's
//! properties: SIGKILL mid-run loses nothing and resends at most one
//! in-flight window, lost answers converge, two runs never both send,
//! SIGTERM/SIGINT record what was in flight, secrets never leak, the `hold`
//! policy and malformed answers never yield "invited".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fake_aptly::{self, AptlyApi, FakeAptly};
use crate::support::fake_common::{FakeServer, Fault};
use crate::support::fake_networked::{self, FakeNetworked, NetworkedApi, Via};
use crate::support::harness::Test;

const NW_ENV: &str = "E2E_NETWORKED_KEY";
const APTLY_ENV: &str = "E2E_APTLY_TOKEN";
const ROLE_NW: &str = "69baa36beddb9f0012fdf101";
const ROLE_APTLY: &str = "bbc5418c-8d81-4756-b3e6-84e1e87f06c3";
const PLAN_PRO: &str = "6a1f00000000000000000001";
const PLAN_TEAM: &str = "6a1f00000000000000000002";
const GROUP_ENG: &str = "e9100cc7-048a-4d01-a64f-9e0030938f6a";
const GROUP_OPS: &str = "e9100cc7-048a-4d01-a64f-9e0030938f6b";
const POSITION: &str = "b545c2fe-681c-4cf6-a6f6-e0bcea69bad3";
const MANAGER: &str = "623010c7-bbd4-4cab-94ca-a3b617a74933";
const STATE: &str = "memberctl.state.json";
const JOURNAL: &str = "memberctl.state.json.journal";

// ---------------------------------------------------------------- config building

/// A config over a networked provider `community` and/or an aptly provider
/// `workforce`, each pointed at a fake, with extra provider settings.
#[derive(Default)]
struct Cfg {
    networked: Option<(String, String)>,
    aptly: Option<(String, String)>,
    members: String,
}

impl Cfg {
    fn networked(mut self, url: &str, extra: &str) -> Self {
        self.networked = Some((url.to_owned(), extra.to_owned()));
        self
    }

    fn aptly(mut self, url: &str, extra: &str) -> Self {
        self.aptly = Some((url.to_owned(), extra.to_owned()));
        self
    }

    /// Networked members `{prefix}{i:03}@example.com` with a plan set.
    fn nw_members(mut self, prefix: &str, range: std::ops::Range<usize>, plans: &[&str]) -> Self {
        for i in range {
            let _ = write!(
                self.members,
                "  - email: {prefix}{i:03}@example.com\n    name: Nw Person{i}\n    providers: [community]\n"
            );
            if !plans.is_empty() {
                let _ = writeln!(self.members, "    plans: [{}]", plans.join(", "));
            }
        }
        self
    }

    /// Aptly members `{prefix}{i:03}@example.com`.
    fn ap_members(mut self, prefix: &str, range: std::ops::Range<usize>) -> Self {
        for i in range {
            let _ = write!(
                self.members,
                "  - email: {prefix}{i:03}@example.com\n    name: Ap Person{i}\n    providers: [workforce]\n"
            );
        }
        self
    }

    /// Any member YAML, as is.
    fn member(mut self, yaml: &str) -> Self {
        self.members.push_str(yaml);
        self
    }

    fn yaml(&self) -> String {
        let mut y = String::from("version: 1\nproviders:\n");
        let mut role = Vec::new();
        if let Some((url, extra)) = &self.networked {
            let _ = write!(
                y,
                "  community:\n    type: networked\n    base_url: {url}\n    api_key_env: {NW_ENV}\n    rate_limit: 0\n{extra}"
            );
            role.push(format!("community: {ROLE_NW}"));
        }
        if let Some((url, extra)) = &self.aptly {
            let _ = write!(
                y,
                "  workforce:\n    type: aptly\n    base_url: {url}\n    token_env: {APTLY_ENV}\n    tenant_id: {}\n    rate_limit: 0\n{extra}",
                fake_aptly::TENANT_ID
            );
            role.push(format!("workforce: {ROLE_APTLY}"));
        }
        let _ = writeln!(y, "roles:\n  member: {{ {} }}", role.join(", "));
        if self.networked.is_some() {
            let _ = writeln!(y, "plans:\n  pro: {{ community: {PLAN_PRO} }}\n  team: {{ community: {PLAN_TEAM} }}");
        }
        if self.aptly.is_some() {
            let _ = writeln!(
                y,
                "groups:\n  engineering: {{ workforce: {GROUP_ENG} }}\n  ops: {{ workforce: {GROUP_OPS} }}\npositions:\n  engineer: {{ workforce: {POSITION} }}"
            );
        }
        y.push_str("defaults:\n  roles: [member]\nsafety:\n  max_changes: 1000\nmembers:\n");
        y.push_str(&self.members);
        y
    }

    /// A test dir with this config and both fakes' credentials in the env.
    fn test(&self) -> Test {
        Test::new().config(&self.yaml()).env(NW_ENV, fake_networked::API_KEY).env(APTLY_ENV, fake_aptly::TOKEN)
    }
}

// ---------------------------------------------------------------- helpers

const APPLY: [&str; 4] = ["apply", "--auto-approve", "--max-changes", "1000"];

/// The state as JSON, after checking that memberctl's own parser accepts it.
fn state(t: &Test) -> Value {
    let text = t.read(STATE);
    assert!(!text.is_empty(), "no state file");
    memberctl::state::file::parse(std::path::Path::new(STATE), text.as_bytes()).expect("the state parses");
    serde_json::from_str(&text).expect("state JSON")
}

/// Address → status.
fn statuses(t: &Test) -> BTreeMap<String, String> {
    state(t)["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| (r["address"].as_str().unwrap().to_owned(), r["status"].as_str().unwrap().to_owned()))
        .collect()
}

fn count_status(statuses: &BTreeMap<String, String>, status: &str) -> usize {
    statuses.values().filter(|s| *s == status).count()
}

/// Outcome entries in the journal so far.
fn journal_outcomes(t: &Test) -> usize {
    t.read(JOURNAL).lines().filter(|l| l.contains("\"t\":\"outcome\"")).count()
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A memberctl run in the background; killed if the test fails first.
struct Bg(Child);

impl Bg {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts memberctl in the background, its output going to files (a pipe
/// nobody reads would block a chatty `RUST_LOG=debug` run).
fn spawn(t: &Test, args: &[&str]) -> Bg {
    let out = std::fs::File::create(t.path().join("child.stdout")).expect("stdout file");
    let err = std::fs::File::create(t.path().join("child.stderr")).expect("stderr file");
    Bg(t.command(args).stdout(out).stderr(err).spawn().expect("spawn memberctl"))
}

/// Waits for a run started by [`spawn`]; answers (exit code, stdout, stderr).
fn finish(t: &Test, mut bg: Bg) -> (i32, String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = bg.0.try_wait().expect("wait for memberctl") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "memberctl did not finish:\n{}{}",
            t.read("child.stdout"),
            t.read("child.stderr")
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code().unwrap_or(-1), t.read("child.stdout"), t.read("child.stderr"))
}

fn signal(bg: &Bg, name: &str) {
    let status = Command::new("kill").args([name, &bg.pid().to_string()]).status().expect("run kill");
    assert!(status.success(), "kill {name} failed");
}

/// Replans: asserts `--detailed-exitcode` 0 (nothing left to do).
fn assert_converged(t: &Test) {
    let out = t.cmd(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, 0, "the re-plan is not empty:\n{}", out.rendered());
    assert!(out.stdout.contains("No changes."), "{}", out.rendered());
}

fn emails(range: std::ops::Range<usize>, prefix: &str) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:03}@example.com")).collect()
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

// ---------------------------------------------------------------- 1. issue 3 done-when

#[test]
fn five_hundred_members_over_both_providers_converge() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    let cfg = Cfg::default()
        .networked(&nw.url(), "    batch_size: 40\n    concurrency: 3\n")
        .aptly(&ap.url(), "    batch_size: 45\n    concurrency: 3\n")
        .nw_members("pro", 0..150, &["pro"])
        .nw_members("duo", 0..149, &["team", "pro"])
        .member(
            "  - email: Noted.Person@Example.com\n    name: Noted Person\n    providers: [community]\n    note: We would love to have you join our community.\n",
        )
        .ap_members("ap", 0..199)
        .member(
            "  - email: maryam.smith@example.com\n    first_name: Maryam\n    last_name: Smith\n    phone: \"+1 (555) 123-4567\"\n    providers: [workforce]\n    groups: [engineering, ops]\n    primary_group: engineering\n    positions: [engineer]\n    manager_id: 623010c7-bbd4-4cab-94ca-a3b617a74933\n",
        );
    let t = cfg.test();
    let started = Instant::now();
    let out = t.cmd(&APPLY).expect(0);
    eprintln!("500-member apply took {} ms", started.elapsed().as_millis());
    assert!(out.stdout.contains("Apply complete: 500 invited, 0 added, 0 adopted"), "{}", out.rendered());

    // Each email reached its fake exactly once.
    let nw_received = nw.received();
    let ap_received = ap.received();
    assert_eq!(nw_received.len(), 300);
    assert_eq!(ap_received.len(), 200);
    assert!(nw_received.values().chain(ap_received.values()).all(|n| *n == 1), "an email was sent twice");
    assert_eq!(nw.times_received("noted.person@example.com"), 1);

    // Requests: ceil(n / batch) per plan set, and per provider.
    let nw_requests = nw.requests();
    let mut per_plan_set: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for r in &nw_requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, fake_networked::BULK_PATH);
        assert_eq!(r.header("x-api-key"), Some(fake_networked::API_KEY));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.header("user-agent"), Some(concat!("memberctl/", env!("CARGO_PKG_VERSION"))));
        let body = r.json();
        let keys: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["monetizationPlanIds", "users"], "{}", r.body);
        let mut plans: Vec<String> =
            body["monetizationPlanIds"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
        plans.sort();
        for user in body["users"].as_array().unwrap() {
            let fields: BTreeSet<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
            let expected: BTreeSet<&str> = if user["email"] == "Noted.Person@Example.com" {
                ["name", "tagId", "email", "note"].into()
            } else {
                ["name", "tagId", "email"].into()
            };
            assert_eq!(fields, expected, "{user}");
            assert_eq!(user["tagId"], ROLE_NW);
        }
        per_plan_set.entry(plans).or_default().push(body["users"].as_array().unwrap().len());
    }
    assert!(
        nw_requests[0].body.starts_with(r#"{"users":[{"name":"#),
        "field order as in the seed curl: {}",
        nw_requests[0].body
    );
    let sorted = |mut v: Vec<usize>| {
        v.sort_unstable();
        v
    };
    // 150 with `pro`, 149 with `pro` and `team`, and the noted person with no plan.
    assert_eq!(per_plan_set.len(), 3, "{per_plan_set:?}");
    assert_eq!(sorted(per_plan_set[&vec![PLAN_PRO.to_owned()]].clone()), [30, 40, 40, 40]);
    assert_eq!(sorted(per_plan_set[&vec![PLAN_PRO.to_owned(), PLAN_TEAM.to_owned()]].clone()), [29, 40, 40, 40]);
    assert_eq!(per_plan_set[&Vec::<String>::new()], [1]);
    assert_eq!(nw_requests.len(), 150_usize.div_ceil(40) + 149_usize.div_ceil(40) + 1);

    let ap_requests = ap.requests();
    assert_eq!(ap_requests.len(), 200_usize.div_ceil(45));
    for r in &ap_requests {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", fake_aptly::PATH));
        assert_eq!(r.header("authorization"), Some(format!("Bearer {}", fake_aptly::TOKEN).as_str()));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        let body = r.json();
        assert_eq!(body["tenantId"], fake_aptly::TENANT_ID);
        assert!(r.body.starts_with(r#"{"tenantId":"#), "{}", r.body);
        for user in body["users"].as_array().unwrap() {
            let fields: BTreeSet<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
            let mut expected: BTreeSet<&str> =
                ["firstName", "lastName", "email", "roleIds", "groups", "positionIds", "existingUser"].into();
            if user["email"] == "maryam.smith@example.com" {
                expected.extend(["mobilePhone", "managerId"]);
            }
            assert_eq!(fields, expected, "{user}");
            assert_eq!(user["roleIds"], serde_json::json!([ROLE_APTLY]));
        }
    }
    let maryam = ap.member("maryam.smith@example.com").expect("maryam");
    assert_eq!((maryam.first_name.as_str(), maryam.last_name.as_str()), ("Maryam", "Smith"));
    assert_eq!(maryam.mobile_phone.as_deref(), Some("+1 (555) 123-4567"));
    assert_eq!(maryam.groups, [(GROUP_ENG.to_owned(), true), (GROUP_OPS.to_owned(), false)]);
    assert_eq!(maryam.position_ids, [POSITION]);
    assert_eq!(maryam.manager_id.as_deref(), Some(MANAGER));
    assert_eq!(maryam.existing_user, serde_json::json!({}));
    let derived = ap.member("ap007@example.com").expect("ap007");
    assert_eq!((derived.first_name.as_str(), derived.last_name.as_str()), ("Ap", "Person7"));

    // The state records every remote id the fakes handed out.
    let state = state(&t);
    let resources = state["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 500);
    for r in resources {
        assert_eq!(r["status"], "invited", "{r}");
        // Version 2 keeps the provider and the email in the address, and an
        // email written otherwise (in case) in the attributes (#13).
        if let Some(email) = r["address"].as_str().and_then(|a| a.strip_prefix("community/")) {
            let email = r["attributes"]["email"].as_str().unwrap_or(email);
            let member = nw.member(email).expect("in the fake");
            assert_eq!(r["remote"]["invite_id"].as_str(), member.invite_id.as_deref(), "{r}");
            assert_eq!(r["remote"]["user_id"].as_str(), Some(member.user_id.as_str()), "{r}");
            assert!(r["remote"]["timestamp_ms"].as_i64().is_some(), "{r}");
        }
    }
    assert!(!t.path().join(JOURNAL).exists(), "the journal is folded and removed");
    assert_converged(&t);
}

// ---------------------------------------------------------------- 2. credentials

#[test]
fn a_missing_credential_stops_everything_before_any_request() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    let cfg =
        Cfg::default().networked(&nw.url(), "").aptly(&ap.url(), "").nw_members("nw", 0..3, &[]).ap_members("ap", 0..3);
    let t = Test::new().config(&cfg.yaml()).env(APTLY_ENV, fake_aptly::TOKEN);
    let out = t.cmd(&APPLY).expect(1);
    assert!(out.stderr.contains(NW_ENV), "the error names the env var: {}", out.rendered());
    // Where the config names the env var (`api_key_env:`, line 6).
    assert!(out.stderr.contains("--> memberctl.yaml:6:5"), "the error points at the config: {}", out.rendered());
    assert_eq!(nw.request_count() + ap.request_count(), 0, "nothing may be sent");
    for file in [STATE, JOURNAL] {
        assert!(!t.path().join(file).exists(), "{file} must not be written");
    }
}

#[test]
fn every_missing_credential_and_password_is_listed_where_the_config_declares_it() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    let cfg = Cfg::default().networked(&nw.url(), "").aptly(&ap.url(), "").ap_members("ap", 0..1).member(
        "  - email: Direct@Example.com\n    name: Direct Person\n    providers: [community]\n    method: direct\n    password_env: E2E_UNSET_PASSWORD\n",
    );
    let t = Test::new().config(&cfg.yaml());
    let yaml = cfg.yaml();
    let line_of = |needle: &str| yaml.lines().position(|l| l.contains(needle)).expect("in the config") + 1;
    let out = t.cmd(&["apply", "--auto-approve", "--error-format", "json"]).expect(1);
    let problems: serde_json::Value = serde_json::from_str(&out.stderr).expect("a JSON list on stderr");
    let found: Vec<(u64, String)> = problems
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| (p["line"].as_u64().expect("a line"), p["rule"].as_str().expect("a rule").to_owned()))
        .collect();
    let rule = "missing-at-apply".to_owned();
    assert_eq!(
        found,
        [
            (line_of("api_key_env:") as u64, rule.clone()),
            (line_of("token_env:") as u64, rule.clone()),
            (line_of("password_env:") as u64, rule),
        ],
        "{}",
        out.rendered()
    );
    assert!(out.stderr.contains("E2E_UNSET_PASSWORD") && out.stderr.contains(APTLY_ENV), "{}", out.rendered());
    assert_eq!(nw.request_count() + ap.request_count(), 0, "nothing may be sent");
    assert!(!t.path().join(STATE).exists(), "no state is written");
}

#[test]
fn a_refused_key_is_one_line_and_the_other_provider_is_recorded() {
    const WRONG: &str = "wrong-key-Zq81PvXk";
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    let cfg = Cfg::default()
        .networked(&nw.url(), "    batch_size: 5\n    concurrency: 4\n")
        .aptly(&ap.url(), "    batch_size: 5\n")
        .nw_members("nw", 0..40, &[])
        .ap_members("ap", 0..12);
    let t = Test::new().config(&cfg.yaml()).env(NW_ENV, WRONG).env(APTLY_ENV, fake_aptly::TOKEN);
    let out = t.cmd(&APPLY).expect(1);
    let all = out.rendered();
    assert!(!all.contains(WRONG), "the key value leaked: {all}");
    // The last line is the run's own verdict; before it, one line for the provider.
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(errors.last().is_some_and(|l| l.starts_with("error: apply finished with")), "{all}");
    let errors = &errors[..errors.len() - 1];
    assert_eq!(errors.len(), 1, "one clear line for the provider: {all}");
    assert!(errors[0].contains("401") && errors[0].contains(NW_ENV) && errors[0].contains("community"), "{all}");
    assert!(nw.request_count() <= 4, "no more than the first in-flight requests: {}", nw.request_count());
    assert!(nw.members().is_empty());

    let statuses = statuses(&t);
    assert_eq!(statuses.len(), 12, "only aptly's successes are recorded: {statuses:?}");
    assert!(statuses.iter().all(|(a, s)| a.starts_with("workforce/") && s == "invited"));
    assert!(out.stdout.contains("12 invited"), "{all}");
    assert!(out.stdout.contains("40 failed"), "{all}");
}

// #12 item 8: an apply that finishes with failures says so in its summary,
// with each failed address and why, beside what succeeded.
#[test]
fn an_apply_with_failures_writes_them_into_its_summary() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    let cfg = Cfg::default()
        .networked(&nw.url(), "    batch_size: 5\n")
        .aptly(&ap.url(), "    batch_size: 5\n")
        .nw_members("nw", 0..6, &[])
        .ap_members("ap", 0..3);
    let t = Test::new().config(&cfg.yaml()).env(NW_ENV, "wrong-key").env(APTLY_ENV, fake_aptly::TOKEN);
    let mut args = APPLY.to_vec();
    args.extend(["--summary-out", "apply.json", "--summary-format", "json"]);
    t.cmd(&args).expect(1);
    let summary: serde_json::Value = serde_json::from_str(&t.read("apply.json")).expect("JSON summary");
    assert_eq!(summary["status"], "finished_with_failures", "{summary}");
    assert_eq!(summary["providers"]["community"]["failed"], 6, "{summary}");
    assert_eq!(summary["providers"]["workforce"]["invited"], 3, "{summary}");
    let failed = summary["failed"].as_array().expect("failed members");
    assert_eq!(failed.len(), 6, "{summary}");
    assert!(failed.iter().all(|f| f["address"].as_str().is_some_and(|a| a.starts_with("community/"))), "{summary}");
    assert!(failed.iter().all(|f| f["reason"].as_str().is_some_and(|r| r.contains("401"))), "{summary}");
    assert!(!t.read("apply.json").contains("wrong-key"), "the key never reaches the summary");

    args.truncate(APPLY.len());
    args.extend(["--summary-out", "apply.md"]);
    t.cmd(&args).expect(1);
    let markdown = t.read("apply.md");
    assert!(markdown.contains("community/"), "{markdown}");
    assert!(markdown.contains("401"), "{markdown}");
}

// ---------------------------------------------------------------- 3. unreachable host

#[test]
fn an_unreachable_host_is_one_line_and_the_other_provider_is_recorded() {
    let ap = FakeAptly::start();
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let cfg = Cfg::default()
        .networked(&dead, "    batch_size: 4\n    concurrency: 3\n    max_attempts: 3\n")
        .aptly(&ap.url(), "")
        .nw_members("nw", 0..20, &[])
        .ap_members("ap", 0..5);
    let t = cfg.test();
    let out = t.cmd(&APPLY).expect(1);
    let all = out.rendered();
    // The last line is the run's own verdict; before it, one line for the provider.
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(errors.last().is_some_and(|l| l.starts_with("error: apply finished with")), "{all}");
    let errors = &errors[..errors.len() - 1];
    assert_eq!(errors.len(), 1, "one line for the provider: {all}");
    assert!(errors[0].contains("cannot reach") && errors[0].contains("community"), "{all}");
    assert!(!out.stderr.contains("retrying"), "no stack of retries: {all}");
    let statuses = statuses(&t);
    assert_eq!(statuses.len(), 5, "{statuses:?}");
    assert!(statuses.keys().all(|a| a.starts_with("workforce/")));
}

// ---------------------------------------------------------------- 4. partial success, duplicates, retries

#[test]
fn partial_success_and_duplicates_are_adopted_or_failed_with_reasons() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    // Already there before memberctl ever ran.
    nw.add_member("nw001@example.com", "Nw Person1");
    ap.add_member("ap001@example.com", "Ap", "Person1");
    ap.add_member("ap003@example.com", "Ap", "Person3");
    let cfg = Cfg::default()
        .networked(&nw.url(), "")
        .aptly(&ap.url(), "")
        .nw_members("nw", 0..4, &[])
        .member("  - email: single@example.com\n    name: Single Person\n    providers: [community]\n    method: direct\n    password_env: E2E_PW\n")
        .ap_members("ap", 0..5);
    nw.add_member("single@example.com", "Single Person");
    let t = cfg.test().env("E2E_PW", "Direct-Pw-1!");
    let out = t.cmd(&APPLY).expect(1);
    let all = out.rendered();
    assert!(out.stdout.contains("Apply finished with failures: 6 invited, 0 added, 3 adopted"), "{all}");
    let adopted = out.stdout.split("Adopted (the provider already had them):").nth(1).expect("adopted table");
    let (adopted, failed) = adopted.split_once("Failed:").expect("failed table");
    let row = |table: &str, address: &str, reason: &str| {
        table.lines().any(|l| l.trim_start().starts_with(address) && l.trim_end().ends_with(reason))
    };
    assert!(row(adopted, "workforce/ap001@example.com", "Email already exists"), "{all}");
    assert!(row(adopted, "workforce/ap003@example.com", "Email already exists"), "{all}");
    assert!(row(adopted, "community/single@example.com", "User already exists"), "{all}");
    // Networked's bulk `error: {}` for an email never sent before: an honest failure.
    assert!(row(failed, "community/nw001@example.com", "provider gave no reason"), "{all}");

    let statuses = statuses(&t);
    assert_eq!(statuses.get("workforce/ap001@example.com").map(String::as_str), Some("adopted"));
    assert_eq!(statuses.get("community/single@example.com").map(String::as_str), Some("adopted"));
    assert_eq!(statuses.get("community/nw000@example.com").map(String::as_str), Some("invited"));
    assert!(!statuses.contains_key("community/nw001@example.com"), "a failure leaves no record");
    assert_eq!(count_status(&statuses, "invited"), 6);
    // The failed one is planned again; the adopted are not.
    let plan = t.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("Plan: 1 to invite, 0 to update, 0 to remove, 0 manual."), "{}", plan.rendered());
}

#[test]
fn a_429_with_retry_after_and_a_500_both_end_well() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    nw.push_faults([Fault::TooManyRequests { retry_after: Some("1".to_owned()) }, Fault::Status(500)]);
    ap.push_faults([Fault::Status(500), Fault::TooManyRequests { retry_after: Some("0".to_owned()) }]);
    let cfg = Cfg::default()
        .networked(&nw.url(), "    concurrency: 1\n")
        .aptly(&ap.url(), "    concurrency: 1\n")
        .nw_members("nw", 0..3, &[])
        .ap_members("ap", 0..3);
    let t = cfg.test();
    let started = Instant::now();
    let out = t.cmd(&APPLY).expect(0);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert!(out.stdout.contains("Apply complete: 6 invited"), "{}", out.rendered());
    assert_eq!(nw.request_count(), 3);
    assert_eq!(ap.request_count(), 3);
    assert!(nw.received().values().chain(ap.received().values()).all(|n| *n == 1));
    assert_converged(&t);
}

// ---------------------------------------------------------------- 5. SIGKILL mid-run

#[test]
fn sigkill_mid_run_then_apply_again_resends_at_most_one_window() {
    const N: usize = 300;
    const BATCH: usize = 10;
    const CONCURRENCY: usize = 2;
    let nw = FakeNetworked::start();
    // The worst case: each request is carried out at once and its answer held
    // back, so every batch in flight at the kill was sent but never recorded.
    nw.set_answer_delay(Duration::from_millis(120));
    let cfg = Cfg::default()
        .networked(&nw.url(), &format!("    batch_size: {BATCH}\n    concurrency: {CONCURRENCY}\n"))
        .nw_members("kill", 0..N, &[]);
    let t = cfg.test();
    let child = spawn(&t, &APPLY);
    wait_until("some batches to be answered", Duration::from_secs(20), || journal_outcomes(&t) >= 4);
    std::thread::sleep(Duration::from_millis(60));
    signal(&child, "-KILL");
    let (code, _, _) = finish(&t, child);
    assert_eq!(code, -1, "killed by a signal");
    // Let the fake finish with the killed run's connections.
    std::thread::sleep(Duration::from_millis(200));
    let before = nw.received().len();
    assert!(before < N, "the kill came mid-run ({before} of {N} sent)");
    assert!(t.path().join(JOURNAL).exists(), "the journal survives the kill");

    nw.set_answer_delay(Duration::ZERO);
    let out = t.cmd(&APPLY).expect(0);
    assert!(
        out.stderr.contains("found the journal of an interrupted apply"),
        "recovery is reported: {}",
        out.rendered()
    );

    let statuses = statuses(&t);
    assert_eq!(statuses.len(), N);
    assert!(statuses.values().all(|s| s == "invited" || s == "adopted"), "{statuses:?}");
    for email in emails(0..N, "kill") {
        assert!(nw.member(&email).is_some(), "{email} is a member");
    }
    let twice = nw.received_twice();
    eprintln!(
        "SIGKILL mid-run: {} of {N} emails were received twice (bound: one in-flight window = {})",
        twice.len(),
        CONCURRENCY * BATCH
    );
    assert!(twice.len() <= CONCURRENCY * BATCH, "{twice:?}");
    assert!(nw.received().values().all(|n| *n <= 2));
    assert_eq!(count_status(&statuses, "adopted"), twice.len(), "exactly the resent ones are adopted");
    assert!(!t.path().join(JOURNAL).exists());
    assert_converged(&t);
}

// ---------------------------------------------------------------- 6. lost answers

#[test]
fn networked_lost_answers_converge_without_a_retry_in_the_same_run() {
    let nw = FakeNetworked::start();
    // The second batch is carried out, then its connection is dropped.
    nw.push_faults([Fault::SlowAnswer(Duration::ZERO), Fault::DropAfterProcessing]);
    let cfg = Cfg::default()
        .networked(&nw.url(), "    batch_size: 5\n    concurrency: 1\n    max_attempts: 1\n")
        .nw_members("lost", 0..15, &[]);
    let t = cfg.test();
    let out = t.cmd(&APPLY).expect(1);
    assert!(out.stdout.contains("10 invited") && out.stdout.contains("5 uncertain"), "{}", out.rendered());
    let first = statuses(&t);
    assert_eq!(count_status(&first, "uncertain"), 5, "{first:?}");
    let plan = t.cmd(&["plan"]).expect(0);
    assert!(plan.stdout.contains("Plan: 5 to invite"), "{}", plan.rendered());

    // The re-send gets `error: {}` for each: the earlier send arrived; adopted.
    let out = t.cmd(&APPLY).expect(0);
    assert!(out.stdout.contains("0 invited, 0 added, 5 adopted"), "{}", out.rendered());
    let statuses = statuses(&t);
    assert_eq!(statuses.len(), 15, "each member recorded once");
    assert_eq!(count_status(&statuses, "adopted"), 5);
    assert_eq!(count_status(&statuses, "invited"), 10);
    assert_eq!(nw.members().len(), 15);
    assert!(nw.received().values().all(|n| *n <= 2));
    assert_converged(&t);
}

#[test]
fn networked_lost_answer_retried_in_the_same_run_is_adopted() {
    let nw = FakeNetworked::start();
    nw.push_faults([Fault::DropAfterProcessing]);
    let cfg =
        Cfg::default().networked(&nw.url(), "    batch_size: 5\n    concurrency: 1\n").nw_members("lost", 0..10, &[]);
    let t = cfg.test();
    let out = t.cmd(&APPLY).expect(0);
    assert!(out.stdout.contains("5 invited, 0 added, 5 adopted"), "{}", out.rendered());
    let statuses = statuses(&t);
    assert_eq!(statuses.len(), 10);
    assert_eq!(nw.members().len(), 10);
    assert_converged(&t);
}

#[test]
fn aptly_lost_answers_converge() {
    let ap = FakeAptly::start();
    ap.push_faults([Fault::DropAfterProcessing, Fault::SlowAnswer(Duration::ZERO), Fault::DropAfterProcessing]);
    let cfg = Cfg::default()
        .aptly(&ap.url(), "    batch_size: 4\n    concurrency: 1\n    max_attempts: 1\n")
        .ap_members("lost", 0..12);
    let t = cfg.test();
    t.cmd(&APPLY).expect(1);
    assert_eq!(count_status(&statuses(&t), "uncertain"), 8);
    let out = t.cmd(&APPLY).expect(0);
    assert!(out.stdout.contains("0 invited, 0 added, 8 adopted"), "{}", out.rendered());
    let statuses = statuses(&t);
    assert_eq!(statuses.len(), 12);
    assert_eq!(count_status(&statuses, "invited"), 4);
    assert_eq!(count_status(&statuses, "adopted"), 8);
    assert_eq!(ap.members().len(), 12);
    assert_converged(&t);

    // And with retries allowed, the same run adopts them.
    let ap2 = FakeAptly::start();
    ap2.push_faults([Fault::DropAfterProcessing]);
    let t2 = Cfg::default().aptly(&ap2.url(), "    batch_size: 4\n").ap_members("again", 0..4).test();
    let out = t2.cmd(&APPLY).expect(0);
    assert!(out.stdout.contains("0 invited, 0 added, 4 adopted"), "{}", out.rendered());
    assert_converged(&t2);
}

// ---------------------------------------------------------------- 7. two applies at once

#[test]
fn two_applies_at_once_only_one_sends() {
    let nw = FakeNetworked::start();
    nw.set_delay(Duration::from_millis(150));
    let cfg =
        Cfg::default().networked(&nw.url(), "    batch_size: 5\n    concurrency: 1\n").nw_members("race", 0..20, &[]);
    let t = cfg.test();
    let first = spawn(&t, &APPLY);
    wait_until("the first apply to start sending", Duration::from_secs(20), || nw.request_count() >= 1);
    let started = Instant::now();
    let second = t.cmd(&APPLY).expect(1);
    assert!(started.elapsed() < Duration::from_secs(2), "the second run fails at once");
    let needle = format!("is locked by `memberctl apply` (pid {} ", first.pid());
    assert!(second.stderr.contains(&needle), "names the holder: {}", second.rendered());
    let (code, stdout, stderr) = finish(&t, first);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(nw.request_count(), 4, "only the first run sent anything");
    assert!(nw.received().values().all(|n| *n == 1));
    assert_eq!(statuses(&t).len(), 20);
    assert_converged(&t);
}

// ---------------------------------------------------------------- 8. SIGTERM / SIGINT

fn interrupt_mid_apply(sig: &str) {
    const N: usize = 60;
    let nw = FakeNetworked::start();
    nw.set_delay(Duration::from_millis(150));
    let cfg =
        Cfg::default().networked(&nw.url(), "    batch_size: 5\n    concurrency: 2\n").nw_members("sig", 0..N, &[]);
    let t = cfg.test();
    let child = spawn(&t, &APPLY);
    wait_until("a batch to be answered", Duration::from_secs(20), || journal_outcomes(&t) >= 2);
    // Let the next batches get in flight.
    std::thread::sleep(Duration::from_millis(50));
    signal(&child, sig);
    let (code, stdout, stderr) = finish(&t, child);
    assert_eq!(code, 130, "{sig}: exit 130\n{stdout}{stderr}");
    assert!(stdout.contains("Apply interrupted"), "{stdout}{stderr}");
    assert!(!t.path().join(JOURNAL).exists(), "{sig}: the journal is folded into the state");

    // Whatever reached the fake (in-flight batches included) is recorded.
    let statuses = statuses(&t);
    let sent: BTreeSet<String> = nw.received().into_keys().map(|e| format!("community/{e}")).collect();
    let recorded: BTreeSet<String> = statuses.keys().cloned().collect();
    assert_eq!(recorded, sent, "{sig}: the state records exactly what was sent");
    assert!(statuses.values().all(|s| s == "invited"), "{sig}: {statuses:?}");
    assert!(recorded.len() < N, "{sig}: stopped early");

    nw.set_delay(Duration::ZERO);
    let out = t.cmd(&APPLY).expect(0);
    assert!(out.stdout.contains(&format!("complete: {} invited", N - recorded.len())), "{}", out.rendered());
    assert_eq!(nw.received().len(), N);
    assert!(nw.received().values().all(|n| *n == 1), "{sig}: nothing sent twice");
    assert_converged(&t);
}

#[test]
fn sigterm_mid_apply_records_in_flight_batches_and_exits_130() {
    interrupt_mid_apply("-TERM");
}

#[test]
fn sigint_mid_apply_records_in_flight_batches_and_exits_130() {
    interrupt_mid_apply("-INT");
}

#[test]
fn a_second_sigterm_stops_at_once_and_the_journal_covers_it() {
    const N: usize = 20;
    let nw = FakeNetworked::start();
    nw.set_answer_delay(Duration::from_secs(5));
    let cfg =
        Cfg::default().networked(&nw.url(), "    batch_size: 5\n    concurrency: 2\n").nw_members("twice", 0..N, &[]);
    let t = cfg.test();
    let child = spawn(&t, &APPLY);
    wait_until("two batches in flight", Duration::from_secs(20), || nw.received().len() >= 10);
    signal(&child, "-TERM");
    std::thread::sleep(Duration::from_millis(100));
    let stopping = Instant::now();
    signal(&child, "-TERM");
    let (code, stdout, stderr) = finish(&t, child);
    assert!(stopping.elapsed() < Duration::from_secs(3), "the second signal stops at once");
    assert_eq!(code, 130, "{stdout}{stderr}");
    assert!(stderr.contains("Stopped at once"), "{stderr}");
    assert!(t.path().join(JOURNAL).exists(), "the journal is left for the next run");

    nw.set_answer_delay(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(100));
    let out = t.cmd(&APPLY).expect(0);
    assert!(out.stderr.contains("found the journal of an interrupted apply"), "{}", out.rendered());
    assert!(out.stderr.contains("10 address(es) are uncertain"), "{}", out.rendered());
    let statuses = statuses(&t);
    assert_eq!(statuses.len(), N);
    assert_eq!(count_status(&statuses, "adopted"), 10, "the two abandoned batches are adopted on re-send");
    assert_eq!(nw.received_twice().len(), 10);
    assert_converged(&t);
}

// ---------------------------------------------------------------- 9. secrets

#[test]
fn secrets_never_appear_in_output_state_journal_or_plan() {
    const KEY: &str = "nwKEY-e2e-7f3a9c1d5b";
    const TOKEN: &str = "aptTOKEN-e2e-2b8d4f6a0c";
    const PASSWORD: &str = "PwDirect-e2e-91x!Q";
    let nw = FakeServer::start_with(NetworkedApi::new(KEY));
    let ap = FakeServer::start_with(AptlyApi::new(TOKEN, fake_aptly::TENANT_ID));
    let cfg = Cfg::default()
        .networked(&nw.url(), "    batch_size: 3\n    concurrency: 1\n")
        .aptly(&ap.url(), "    batch_size: 3\n    concurrency: 1\n")
        .member("  - email: direct@example.com\n    name: Direct Person\n    providers: [community]\n    method: direct\n    password_env: E2E_DIRECT_PW\n    plans: [pro]\n")
        .nw_members("nsec", 0..12, &["pro"])
        .ap_members("asec", 0..12);
    let t = Test::new()
        .config(&cfg.yaml())
        .env(NW_ENV, KEY)
        .env(APTLY_ENV, TOKEN)
        .env("E2E_DIRECT_PW", PASSWORD)
        .env("RUST_LOG", "debug");
    let mut seen = String::new();
    let mut keep = |label: &str, text: &str| {
        let _ = write!(seen, "\n=== {label}\n{text}");
    };

    let plan = t.cmd(&["plan", "-vv", "--out", "saved.plan"]).expect(0);
    keep("plan", &plan.rendered());
    keep("saved plan", &t.read("saved.plan"));

    // A run killed mid-way leaves its journal: scan it.
    nw.set_delay(Duration::from_millis(150));
    ap.set_delay(Duration::from_millis(150));
    let child = spawn(&t, &["apply", "-vv", "--auto-approve", "--max-changes", "1000"]);
    wait_until("a batch to be answered", Duration::from_secs(20), || journal_outcomes(&t) >= 2);
    signal(&child, "-KILL");
    let (_, stdout, stderr) = finish(&t, child);
    keep("killed apply", &format!("{stdout}{stderr}"));
    let journal = t.read(JOURNAL);
    assert!(journal.contains("E2E_DIRECT_PW"), "the journal names the env var (and must hold no value)");
    keep("journal", &journal);
    nw.set_delay(Duration::ZERO);
    ap.set_delay(Duration::ZERO);

    let apply = t.cmd(&["apply", "-vv", "--auto-approve", "--max-changes", "1000"]).expect(0);
    keep("apply", &apply.rendered());
    let replan = t.cmd(&["plan", "-vv", "--detailed-exitcode"]).expect(0);
    keep("replan", &replan.rendered());
    keep("state show", &t.cmd(&["state", "show", "community/direct@example.com", "--format", "json"]).rendered());
    keep("state", &t.read(STATE));
    keep("state backup", &t.read("memberctl.state.json.backup"));

    assert!(seen.contains("debug") || seen.contains("DEBUG"), "debug logging was on");
    for secret in [KEY, TOKEN, PASSWORD] {
        assert!(!seen.contains(secret), "`{secret}` leaked:\n{seen}");
    }
    // The password did reach the fake, in the form body.
    let direct = nw.member("direct@example.com").expect("added");
    assert_eq!((direct.via, direct.password.as_deref()), (Via::Direct, Some(PASSWORD)));
    let form = nw.requests().into_iter().find(|r| r.path == fake_networked::SINGLE_PATH).expect("form request");
    assert_eq!(form.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(form.form_field("password").as_deref(), Some(PASSWORD));
    assert_eq!(form.form_field("method").as_deref(), Some("2"));
}

// ---------------------------------------------------------------- 10. `uncertain: hold`

#[test]
fn held_uncertain_addresses_are_manual_until_imported_or_removed() {
    let nw = FakeNetworked::start();
    // One request carried out with its answer lost, one dropped unprocessed.
    nw.push_faults([Fault::DropAfterProcessing, Fault::DropBeforeProcessing]);
    let cfg = Cfg::default()
        .networked(&nw.url(), "    batch_size: 1\n    concurrency: 1\n    max_attempts: 1\n    uncertain: hold\n")
        .nw_members("hold", 0..3, &[]);
    let t = cfg.test();
    let out = t.cmd(&APPLY).expect(1);
    assert!(out.stdout.contains("1 invited") && out.stdout.contains("2 uncertain"), "{}", out.rendered());
    // Regression: #9 defect 6: the summary promised a resend under `hold`.
    assert!(!out.stdout.contains("the next apply sends again"), "{}", out.rendered());
    assert!(out.stdout.contains("Uncertain, held (`uncertain: hold`"), "{}", out.rendered());
    let held: Vec<String> = statuses(&t).into_iter().filter(|(_, s)| s == "uncertain").map(|(a, _)| a).collect();
    assert_eq!(held.len(), 2, "{held:?}");

    let plan = t.cmd(&["plan", "--detailed-exitcode"]);
    let text = plan.rendered();
    for address in &held {
        assert!(text.contains(&format!("! manual {address} (invite)")), "{text}");
        assert!(text.contains(&format!("memberctl state import {address}")), "{text}");
        assert!(text.contains(&format!("memberctl state rm {address}")), "{text}");
    }
    assert!(text.contains("0 to invite, 0 to update, 0 to remove, 2 manual"), "{text}");
    // Held addresses are never sent by apply.
    let before = nw.request_count();
    t.cmd(&APPLY).expect(0);
    assert_eq!(nw.request_count(), before);

    // A person checked the admin console: one arrived, the other did not.
    let email = |address: &str| address.trim_start_matches("community/").to_owned();
    let (arrived, lost): (Vec<&String>, Vec<&String>) = held.iter().partition(|a| nw.member(&email(a)).is_some());
    let (arrived, lost) = (arrived[0].as_str(), lost[0].as_str());
    t.cmd(&["state", "import", arrived]).expect(0);
    t.cmd(&["state", "rm", lost]).expect(0);
    let plan = t.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("Plan: 1 to invite, 0 to update, 0 to remove, 0 manual."), "{}", plan.rendered());
    assert!(plan.stdout.contains(&format!("+ invite {lost}")), "{}", plan.rendered());
    t.cmd(&APPLY).expect(0);
    let statuses = statuses(&t);
    assert_eq!(statuses[arrived], "adopted");
    assert_eq!(statuses[lost], "invited");
    assert_eq!(nw.times_received(&email(arrived)), 1);
    assert_eq!(nw.times_received(&email(lost)), 1);
    assert_converged(&t);
}

// ---------------------------------------------------------------- 11. malformed answers

fn raw(body: &str) -> Fault {
    Fault::Raw { status: 200, content_type: "application/json", body: body.to_owned(), process: true }
}

#[test]
fn malformed_truncated_or_wrong_shape_answers_never_yield_invited() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    let nw_faults = [
        raw(r#"{"data":{"success":[{"email":"bad000@example.com","data":{"inviteId":"6"#),
        raw(r#"{"data":{"success":"everyone","failure":null},"error":false}"#),
        raw(r#"["bad002@example.com"]"#),
        raw(r#"{"error":true,"message":"Internal"}"#),
        raw(r#"{"data":{"success":[],"failure":[]},"error":false}"#),
        raw(r#"{"data":{"success":["bad005@example.com"]},"error":false}"#),
        Fault::Raw { status: 200, content_type: "text/html", body: "<html>ok</html>".to_owned(), process: true },
        raw(""),
    ];
    let ap_faults = [
        raw(
            r#"{"statusCode":200,"data":{"total":1,"successful":1,"failed":0,"results":[{"email":"bad000@example.com","success":tr"#,
        ),
        raw(r#"{"statusCode":200,"data":{"total":1,"successful":1,"failed":0}}"#),
        raw(r#"{"statusCode":200,"data":{"results":[{"email":"bad002@example.com","success":"true"}]}}"#),
        raw(r#"{"statusCode":200,"data":{"results":[{"mail":"bad003@example.com","success":true}]}}"#),
        raw(r#"{"statusCode":200,"data":{"results":{"bad004@example.com":true}}}"#),
        raw("null"),
    ];
    let (n_nw, n_ap) = (nw_faults.len(), ap_faults.len());
    nw.push_faults(nw_faults);
    ap.push_faults(ap_faults);
    let cfg = Cfg::default()
        .networked(&nw.url(), "    batch_size: 1\n    concurrency: 1\n")
        .aptly(&ap.url(), "    batch_size: 1\n    concurrency: 1\n")
        .nw_members("nbad", 0..n_nw, &[])
        .ap_members("abad", 0..n_ap);
    let t = cfg.test();
    let out = t.cmd(&APPLY).expect(1);
    assert!(out.stdout.contains("Apply finished with failures: 0 invited"), "{}", out.rendered());
    let statuses = statuses(&t);
    assert!(statuses.values().all(|s| s == "uncertain"), "never invited: {statuses:?}");
    assert_eq!(nw.request_count(), n_nw, "a 200 answer is not retried");
    assert_eq!(ap.request_count(), n_ap);

    // The next apply sends again; the duplicates adopt them; converged.
    t.cmd(&APPLY).expect(0);
    assert!(statuses_all(&t, &["adopted"]));
    assert_converged(&t);
}

fn statuses_all(t: &Test, allowed: &[&str]) -> bool {
    statuses(t).values().all(|s| allowed.contains(&s.as_str()))
}

// ---------------------------------------------------------------- property tests: never panic

mod never_panics {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn config_loader_on_arbitrary_text(text in any::<String>()) {
            let _ = memberctl::config::load_str(std::path::Path::new("fuzz.yaml"), &text);
        }

        #[test]
        fn config_loader_on_yaml_like_text(text in "(version: 1\n|providers:\n|  [a-z]{1,6}:\n|    type: (networked|aptly|sandbox)\n|members:\n|  - email: [a-z@.]{0,12}\n|    [a-z_]{1,10}: [\\[\\]{}a-z0-9,&*!|>-]{0,10}\n|&a [a]\n|\\*a\n|[ \t\n:{}\\[\\],-]){0,40}") {
            let _ = memberctl::config::load_str(std::path::Path::new("fuzz.yaml"), &text);
        }

        #[test]
        fn state_parser_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = memberctl::state::file::parse(std::path::Path::new("fuzz.state.json"), &bytes);
        }

        #[test]
        fn state_parser_on_json_like_text(text in "(\\{|\\}|\\[|\\]|,|:|\"format_version\"|\"lineage\"|\"serial\"|\"resources\"|\"address\"|\"status\"|\"invited\"|\"[a-z/@.]{0,10}\"|-?[0-9]{1,20}|true|null|\"42db2b59-b9c6-4705-a0d9-916e597cd4aa\"){0,60}") {
            let _ = memberctl::state::file::parse(std::path::Path::new("fuzz.state.json"), text.as_bytes());
        }
    }
}

// ---------------------------------------------------------------- issue 9: 429 storms, retry budget

// Regression: #9 defect 2. Both providers at once, each service answering
// 429 with `Retry-After: 1` to every other request: each 429 used up one of
// `max_attempts` (here 1, so the first 429 gave up); now it pauses the
// provider and apply converges.
#[test]
fn a_burst_of_429s_on_two_providers_at_once_still_converges() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    nw.throttle_every_other("1");
    ap.throttle_every_other("1");
    let settings = "    batch_size: 2\n    concurrency: 2\n    max_attempts: 1\n";
    let cfg = Cfg::default()
        .networked(&nw.url(), settings)
        .aptly(&ap.url(), settings)
        .nw_members("nw", 0..8, &[])
        .ap_members("ap", 0..8);
    let t = cfg.test();
    let started = Instant::now();
    let out = t.cmd(&APPLY).expect(0);
    let all = out.rendered();
    assert!(out.stdout.contains("Apply complete: 16 invited"), "{all}");
    assert!(started.elapsed() >= Duration::from_secs(1), "the pauses were honoured");
    // Four batches each, and the 429s in between.
    assert!(nw.request_count() > 4 && ap.request_count() > 4, "{} {}", nw.request_count(), ap.request_count());
    assert_eq!(nw.received().len() + ap.received().len(), 16);
    assert!(nw.received().values().chain(ap.received().values()).all(|n| *n == 1), "each invited once");
    assert_converged(&t);
}

// Regression: #9 defect 2. A `Retry-After` longer than what is left of the
// provider's `retry_budget` stops sending to it at once: its members stay
// planned (no record in the state), the message says when to try again, and
// the other provider carries on.
#[test]
fn a_retry_after_beyond_the_budget_leaves_the_provider_planned_and_the_other_carries_on() {
    let nw = FakeNetworked::start();
    let ap = FakeAptly::start();
    nw.throttle_every_other("3600");
    let cfg = Cfg::default()
        .networked(&nw.url(), "    batch_size: 2\n    concurrency: 1\n    retry_budget: 2s\n")
        .aptly(&ap.url(), "")
        .nw_members("nw", 0..6, &[])
        .ap_members("ap", 0..4);
    let t = cfg.test();
    let started = Instant::now();
    let out = t.cmd(&APPLY).expect(1);
    let all = out.rendered();
    assert!(started.elapsed() < Duration::from_secs(30), "it did not wait an hour");
    // The last line is the run's own verdict; before it, one line for the provider.
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(errors.last().is_some_and(|l| l.starts_with("error: apply finished with")), "{all}");
    let errors = &errors[..errors.len() - 1];
    assert_eq!(errors.len(), 1, "one line for the provider: {all}");
    assert!(
        errors[0].contains("networked `community`")
            && errors[0].contains("HTTP 429 Too Many Requests: the service asked to wait 1h; try again after ")
            && errors[0].contains(" UTC (that is more than the 2s left of this provider's `retry_budget` of 2s)"),
        "{all}"
    );
    assert!(out.stderr.contains("stay planned for the next apply"), "{all}");
    assert!(nw.received().is_empty(), "nothing reached the throttled service: {:?}", nw.received());
    assert_eq!(nw.request_count(), 1, "nothing was sent after the first 429");
    let statuses = statuses(&t);
    assert_eq!(statuses.len(), 4, "only the other provider is recorded: {statuses:?}");
    assert!(statuses.iter().all(|(a, s)| a.starts_with("workforce/") && s == "invited"), "{statuses:?}");
    let plan = t.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("Plan: 6 to invite, 0 to update, 0 to remove, 0 manual."), "{}", plan.rendered());
}

// Regression: #9 defect 6. The docs give Networked's `single` endpoint a
// default `batch_size` of 1 (`addExternalUsers` takes one user per call, so
// each member's outcome is journaled on its own); the code used 10.
#[test]
fn the_single_endpoint_sends_one_member_per_batch_by_default() {
    let nw = FakeNetworked::start();
    let cfg = Cfg::default().networked(&nw.url(), "    invite_endpoint: single\n    concurrency: 1\n").nw_members(
        "nw",
        0..3,
        &[],
    );
    let t = cfg.test();
    let plan = t.cmd(&["plan", "--format", "json"]).expect(0);
    let json: Value = serde_json::from_str(&plan.stdout).expect("plan JSON");
    assert_eq!(json["providers"]["community"]["batch_size"], 1, "{}", plan.stdout);
    let out = t.cmd(&APPLY).expect(0);
    assert!(out.stderr.contains("Applying 3 change(s) in 3 batch(es)"), "{}", out.rendered());
    assert_converged(&t);
}

// #9: `retry_budget` is a humantime duration, checked before anything is sent.
#[test]
fn a_retry_budget_that_is_not_a_duration_is_a_validation_error() {
    let nw = FakeNetworked::start();
    let t = Cfg::default().networked(&nw.url(), "    retry_budget: soon\n").nw_members("nw", 0..1, &[]).test();
    let out = t.cmd(&["validate"]).expect(1);
    assert!(out.stderr.contains("`soon` is not a duration"), "{}", out.rendered());
    assert!(out.stderr.contains("write e.g. `10m` or `90s`"), "{}", out.rendered());
    assert_eq!(nw.request_count(), 0);
}
