//! The core loop on the sandbox provider: plan → apply → plan, updates,
//! removals, manual changes, saved plans, every output format.

use crate::support::harness::Test;

pub const QUICKSTART: &str = r#"version: 1
providers:
  sandbox:
    type: sandbox
    outbox: outbox.jsonl
roles:
  member: { sandbox: role-member }
  moderator: { sandbox: role-moderator }
plans:
  pro: { sandbox: plan-pro }
defaults:
  providers: [sandbox]
  roles: [member]
members:
  - email: jane.doe@example.com
    name: Jane Doe
    plans: [pro]
  - email: Sam.Lee@example.com
    name: Sam Lee
    roles: [moderator]
  - email: kim@example.com
    name: Kim Park
"#;

fn invite_only(yaml: &str) -> String {
    yaml.replace("    outbox: outbox.jsonl\n", "    outbox: outbox.jsonl\n    capabilities: [invite]\n")
}

/// Issue #2's "done when" sequence.
#[test]
fn quickstart_converges_then_update_and_remove() {
    let t = Test::new().config(QUICKSTART);
    let out = t.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    insta::assert_snapshot!("quickstart_first_plan", out.rendered());
    let out = t.cmd(&["apply", "--auto-approve"]).expect(0);
    insta::assert_snapshot!("quickstart_apply", out.rendered());
    t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
    assert_eq!(t.read("outbox.jsonl").lines().count(), 3);

    // Edit a role: `~`, apply, converge.
    let edited = QUICKSTART.replace("    roles: [moderator]\n", "    roles: [member]\n");
    let t = t.config(&edited);
    let out = t.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    insta::assert_snapshot!("quickstart_update_plan", out.rendered());
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    t.cmd(&["plan", "--detailed-exitcode"]).expect(0);

    // Delete a member: `-`.
    let t = t.config(&edited.replace("  - email: kim@example.com\n    name: Kim Park\n", ""));
    let out = t.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(out.stdout.contains("  - remove sandbox/kim@example.com"), "{}", out.rendered());
    assert!(out.stdout.contains("Plan: 0 to invite, 0 to update, 1 to remove, 0 manual."));
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
    let state: serde_json::Value = serde_json::from_str(&t.read("memberctl.state.json")).expect("state json");
    assert_eq!(state["resources"].as_array().expect("resources").len(), 2);
    assert_eq!(state["serial"], 3);
}

#[test]
fn every_plan_format_is_snapshotted() {
    let t = Test::new().config(&invite_only(QUICKSTART));
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    // With nothing to do, every format carries DESIGN's sentence whole.
    for format in ["text", "json", "markdown"] {
        let out = t.cmd(&["plan", "--format", format]).expect(0);
        let said = out.stdout.contains("No changes. Membership matches the configuration.");
        assert_eq!(said, format != "json", "{format}: {}", out.rendered());
    }
    let changed = invite_only(QUICKSTART).replace("    roles: [moderator]\n", "    roles: [member]\n").replace(
        "  - email: kim@example.com\n    name: Kim Park\n",
        "  - email: new@example.com\n    name: New Person\n",
    );
    let t = t.config(&changed);
    insta::assert_snapshot!("format_text", t.cmd(&["plan"]).expect(0).rendered());
    let json = t.cmd(&["plan", "--format", "json"]).expect(0);
    insta::assert_snapshot!("format_json", json.rendered());
    insta::assert_snapshot!("format_markdown", t.cmd(&["plan", "--format", "markdown"]).expect(0).rendered());

    // The JSON validates against the committed plan schema.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/plan.schema.json")).expect("schema"),
    )
    .expect("json");
    let instance: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan json");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "plan JSON does not match schema/plan.schema.json: {errors:?}");
    assert_eq!(instance["summary"]["manual"], 2);
    assert_eq!(instance["summary"]["invite"], 1);
    assert_eq!(instance["applyable"], true);
}

// Found by a review: a newline in a member's name forged plan lines (a
// removal and a summary that are not in the plan) in the terminal and in
// the pull-request comment, and an ESC reached the terminal without colour.
#[test]
fn values_cannot_forge_plan_lines_or_reach_the_terminal_raw() {
    let forged = QUICKSTART.replace(
        "    name: Kim Park\n",
        "    name: \"Kim\\n  - remove sandbox/ceo@example.com\\nPlan: 0 to invite, 0 to update, 0 to remove, 0 manual.\\e[2J\"\n",
    );
    let t = Test::new().config(&forged);
    for format in ["text", "markdown"] {
        let out = t.cmd(&["plan", "--format", format]).expect(0);
        assert!(!out.stdout.contains('\u{1b}'), "{format}: {}", out.rendered());
        assert!(
            out.stdout.lines().all(|line| !line.trim_start().starts_with("- remove") && !line.starts_with("Plan: 0")),
            "{format}: {}",
            out.rendered()
        );
        assert!(out.stdout.contains(r#""Kim\n  - remove sandbox/ceo@example.com"#), "{format}: {}", out.rendered());
    }
    // JSON carries the value as it is, escaped the JSON way.
    let json: serde_json::Value =
        serde_json::from_str(&t.cmd(&["plan", "--format", "json"]).expect(0).stdout).expect("json");
    let kim = json["changes"].as_array().expect("changes").iter().find(|c| c["email"] == "kim@example.com");
    assert!(kim.expect("kim")["after"]["name"].as_str().expect("name").starts_with("Kim\n  - remove"));
}

/// The quickstart with `invites.resend_after: 14d`, applied, its three
/// invitations made a month old (so the next plan resends them); and its
/// config.
pub fn invited_a_month_ago() -> (Test, String) {
    let config = format!("{QUICKSTART}invites:\n  resend_after: 14d\n");
    let t = Test::new().config(&config);
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    let aged = t
        .read("memberctl.state.json")
        .replace("\"created_at\":\"2026-01-15T09:30:00Z\"", "\"created_at\":\"2025-12-15T09:30:00Z\"");
    t.write("memberctl.state.json", &aged);
    (t, config)
}

// Found by a review: an update hid a resend that was due, so the plan
// after a successful apply showed the resend. The resend now carries the
// change, and one apply converges.
#[test]
fn a_due_resend_carries_an_update_and_one_apply_converges() {
    let (t, config) = invited_a_month_ago();
    let t = t.config(&config.replace("    roles: [moderator]\n", "    roles: [member]\n"));
    let plan = t.cmd(&["plan"]).expect(0);
    assert!(plan.stdout.contains("resend sandbox/sam.lee@example.com"), "{}", plan.rendered());
    assert!(plan.stdout.contains("roles: moderator → member"), "the resend shows the change: {}", plan.rendered());
    assert!(plan.stdout.contains("the invitation goes out with the changes"), "{}", plan.rendered());
    assert!(!plan.stdout.contains("update sandbox/sam.lee"), "{}", plan.rendered());
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    let out = t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(out.stdout.contains("No changes"), "{}", out.rendered());
    let sent = t.read("outbox.jsonl");
    let sam = sent.lines().rev().find(|l| l.contains("Sam.Lee")).expect("sam's resend");
    assert!(sam.contains("\"op\":\"resend\"") && sam.contains("role-member"), "{sam}");
}

// DESIGN: `plan` and `apply` take `--error-format` "(their `--format` is
// the plan's)"; a review found apply had no `--format`. The plan, then the
// outcome, in that format.
#[test]
fn apply_shows_its_plan_and_outcome_in_the_format_asked_for() {
    let t = Test::new().config(QUICKSTART);
    let out = t.cmd(&["apply", "--auto-approve", "--format", "json"]).expect(0);
    let documents: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("two JSON documents: {e}\n{}", out.rendered()));
    assert_eq!(documents.len(), 2, "{}", out.rendered());
    assert_eq!(documents[0]["summary"]["invite"], 3, "the plan: {}", documents[0]);
    let outcome = &documents[1];
    assert_eq!(outcome["status"], "complete", "the outcome: {outcome}");
    assert_eq!(outcome["providers"]["sandbox"]["invited"], 3, "the outcome: {outcome}");
    let t = t.config(&QUICKSTART.replace("    roles: [moderator]\n", "    roles: [member]\n"));
    let out = t.cmd(&["apply", "--auto-approve", "--format", "markdown"]).expect(0);
    assert!(out.stdout.contains("**Plan: 0 to invite, 1 to update, 0 to remove, 0 manual.**"), "{}", out.rendered());
    let text = t.cmd(&["apply", "--auto-approve", "--format", "json"]).expect(0);
    let documents = serde_json::Deserializer::from_str(&text.stdout).into_iter::<serde_json::Value>().count();
    assert_eq!(documents, 2, "with no changes too: {}", text.rendered());
}

/// Runs `memberctl ARGS > out` in a terminal (util-linux `script`, in
/// Debian's essential `bsdutils`) with `answer` typed at it: stdin and
/// stderr are the terminal, stdout the file `out`. Answers the exit code.
fn in_a_terminal(t: &Test, args: &str, out: &str, answer: &str) -> i32 {
    use std::io::Write as _;
    let command = format!("{} {args} > {out}", env!("CARGO_BIN_EXE_memberctl"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(t.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MEMBERCTL_NOW", "2026-01-15T09:30:00Z")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("script(1) from util-linux runs");
    child.stdin.take().expect("stdin").write_all(answer.as_bytes()).expect("type the answer");
    child.wait().expect("wait").code().unwrap_or(-1)
}

// Found by a review: with `apply --format json` on a terminal, the `yes`
// question went into stdout's JSON. It goes to stderr then; beside a text
// plan it stays on stdout, as terraform asks.
#[test]
fn apply_asks_on_stderr_when_stdout_is_a_document() {
    let t = Test::new().config(QUICKSTART);
    assert_eq!(in_a_terminal(&t, "apply --format json", "out.json", "yes\n"), 0);
    let out = t.read("out.json");
    assert!(!out.contains("Do you want"), "{out}");
    assert_eq!(serde_json::Deserializer::from_str(&out).into_iter::<serde_json::Value>().count(), 2, "{out}");
    assert_eq!(t.read("outbox.jsonl").lines().count(), 3, "approved and applied");
    let t = t.config(&QUICKSTART.replace("    roles: [moderator]\n", "    roles: [member]\n"));
    assert_eq!(in_a_terminal(&t, "apply", "out.txt", "no\n"), 1);
    let out = t.read("out.txt");
    assert!(out.contains("Do you want to perform these actions?"), "{out}");
    assert_eq!(t.read("outbox.jsonl").lines().count(), 3, "not approved: nothing sent");
}

#[test]
fn manual_changes_are_recorded_with_mark_done() {
    let t = Test::new().config(&invite_only(QUICKSTART));
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    let t = t.config(&invite_only(QUICKSTART).replace("    roles: [moderator]\n", "    roles: [member]\n"));
    let out = t.cmd(&["plan"]).expect(0);
    assert!(out.stdout.contains("! manual sandbox/sam.lee@example.com (update)"), "{}", out.rendered());
    assert!(out.stdout.contains("memberctl state mark-done sandbox/sam.lee@example.com"));
    // Apply carries out nothing, and says so.
    let out = t.cmd(&["apply", "--auto-approve"]).expect(0);
    assert!(out.stdout.contains("Nothing memberctl can carry out"), "{}", out.rendered());
    // Only what the plan shows as manual can be marked done; a refusal
    // writes nothing.
    let before = t.read("memberctl.state.json");
    let out = t.cmd(&["state", "mark-done", "sandbox/jane.doe@example.com"]).expect(1);
    assert!(
        out.stderr.contains("`sandbox/jane.doe@example.com` has no manual change to mark done"),
        "{}",
        out.rendered()
    );
    assert_eq!(t.read("memberctl.state.json"), before);
    let out = t.cmd(&["state", "mark-done", "sandbox/sam.lee@example.com"]).expect(0);
    insta::assert_snapshot!("mark_done", out.rendered());
    t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn saved_plan_applies_exactly_and_refuses_when_stale() {
    let t = Test::new().config(QUICKSTART);
    t.cmd(&["plan", "--out", "first.plan"]).expect(0);
    t.cmd(&["plan", "--out", "second.plan"]).expect(0);
    // Config changes after the plan do not change what a saved plan does.
    let t = t.config(&QUICKSTART.replace("  - email: kim@example.com\n    name: Kim Park\n", ""));
    let out = t.cmd(&["apply", "first.plan", "--auto-approve"]).expect(0);
    assert!(out.stdout.contains("3 invited"), "{}", out.rendered());
    let out = t.cmd(&["apply", "second.plan", "--auto-approve"]).expect(1);
    insta::assert_snapshot!("stale_plan_first_state", out.rendered());
    // A plan made against an older serial is stale too.
    t.cmd(&["plan", "--out", "third.plan"]).expect(0);
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    let out = t.cmd(&["apply", "third.plan", "--auto-approve"]).expect(1);
    assert!(
        out.stderr.contains("error: stale plan: it was made at state serial 1, but the state is at serial 2"),
        "{}",
        out.rendered()
    );
}

// Found by a review: a saved plan held the outbox (and a password_file) as
// the config gave them, relative to where the plan was made, so `apply
// FILE` from another directory wrote a new outbox there.
#[test]
fn a_saved_plan_applies_from_any_directory() {
    let t = Test::new().config(QUICKSTART);
    t.cmd(&["plan", "--out", "saved.plan"]).expect(0);
    let elsewhere = t.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let (plan, state) = (t.path().join("saved.plan"), t.path().join("memberctl.state.json"));
    let out = t
        .command(&["apply", &plan.to_string_lossy(), "--state", &state.to_string_lossy()])
        .current_dir(&elsewhere)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(t.read("outbox.jsonl").lines().count(), 3, "the outbox beside the config");
    assert!(!elsewhere.join("outbox.jsonl").exists(), "no second outbox where apply ran");
    t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn apply_without_terminal_needs_auto_approve() {
    let t = Test::new().config(QUICKSTART);
    let out = t.cmd(&["apply"]).expect(1);
    insta::assert_snapshot!("apply_needs_auto_approve", out.rendered());
    assert!(!t.path().join("memberctl.state.json").exists());
    assert!(!t.path().join("outbox.jsonl").exists());
}

#[test]
fn safety_brake_refuses_large_plans() {
    let yaml = QUICKSTART.replace("members:\n", "safety:\n  max_changes: 2\nmembers:\n");
    let t = Test::new().config(&yaml);
    let out = t.cmd(&["apply", "--auto-approve"]).expect(1);
    assert!(
        out.stderr.contains("error: the plan invites or removes 3 members, more than the limit of 2"),
        "{}",
        out.rendered()
    );
    assert!(out.stderr.contains("--max-changes N"));
    assert!(!t.path().join("outbox.jsonl").exists(), "nothing may be sent");
    // The run's own limit lifts the brake, and the plan it shows says so
    // (it used to warn that apply would refuse, then apply).
    let out = t.cmd(&["apply", "--auto-approve", "--max-changes", "3"]).expect(0);
    assert!(!out.rendered().contains("safety brake"), "{}", out.rendered());
}

#[test]
fn target_and_provider_narrow_the_plan() {
    let t = Test::new().config(QUICKSTART);
    let out = t.cmd(&["plan", "--target", "sandbox/KIM@example.com"]).expect(0);
    assert!(out.stdout.contains("Plan: 1 to invite"), "{}", out.rendered());
    assert!(out.stdout.contains("narrowed"));
    t.cmd(&["apply", "--auto-approve", "--target", "sandbox/kim@example.com"]).expect(0);
    let out = t.cmd(&["plan"]).expect(0);
    assert!(out.stdout.contains("Plan: 2 to invite"), "{}", out.rendered());
    let out = t.cmd(&["plan", "--provider", "sandbx"]).expect(1);
    assert!(out.stderr.contains("did you mean `sandbox`?"), "{}", out.rendered());
    let out = t.cmd(&["plan", "--target", "sandbox/nobody@example.com"]).expect(1);
    assert!(out.stderr.contains("no address `sandbox/nobody@example.com`"), "{}", out.rendered());
}

#[test]
fn duplicate_answer_adopts_the_member() {
    // Someone was invited outside memberctl: the sandbox already has them.
    let t = Test::new().config(QUICKSTART).file(
        "outbox.jsonl",
        "{\"op\":\"invite\",\"provider\":\"sandbox\",\"email\":\"kim@example.com\",\"at\":\"2025-01-01T00:00:00Z\",\"attributes\":{\"email\":\"kim@example.com\"}}\n",
    );
    let out = t.cmd(&["apply", "--auto-approve"]).expect(0);
    assert!(out.stdout.contains("2 invited, 0 added, 1 adopted"), "{}", out.rendered());
    assert!(out.stdout.contains("sandbox/kim@example.com  Email already exists"), "{}", out.rendered());
    assert!(
        out.stderr.contains("warning: 1 member(s) already had an account at the provider and were adopted, not invited: `sandbox/kim@example.com`"),
        "an adoption is warned about: {}",
        out.rendered()
    );
    t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
    let out = t.cmd(&["state", "show", "sandbox/kim@example.com"]).expect(0);
    assert!(out.stdout.contains("status: adopted"), "{}", out.rendered());
}

#[test]
fn init_writes_a_starter_that_runs_and_refuses_to_overwrite() {
    let t = Test::new();
    let out = t.cmd(&["init"]).expect(0);
    insta::assert_snapshot!("init", out.rendered());
    assert!(t.read("memberctl.yaml").starts_with("# yaml-language-server: $schema=schema/memberctl.schema.json"));
    assert!(t.path().join("schema/memberctl.schema.json").exists());
    t.cmd(&["validate"]).expect(0);
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
    let before = t.read("memberctl.yaml");
    let out = t.cmd(&["init"]).expect(1);
    assert!(out.stderr.contains("already exists; not overwriting it"), "{}", out.rendered());
    assert_eq!(t.read("memberctl.yaml"), before);
    // Elsewhere, the next command it suggests finds the file.
    let out = t.cmd(&["init", "team.yaml"]).expect(0);
    assert!(out.stdout.contains("Next: `memberctl plan -c team.yaml`."), "{}", out.rendered());
}

#[test]
fn config_directory_merges_files() {
    let t = Test::new()
        .file("conf/00-providers.yaml", "version: 1\nproviders:\n  sandbox: { type: sandbox, outbox: ../outbox.jsonl }\nroles:\n  member: { sandbox: r1 }\ndefaults:\n  roles: [member]\n")
        .file("conf/10-team-a.yml", "members:\n  - email: a@example.com\n    name: A A\n")
        .file("conf/20-team-b.yaml", "members:\n  - email: b@example.com\n    name: B B\n")
        .file("conf/README.md", "not yaml");
    let out = t.cmd(&["validate", "-c", "conf"]).expect(0);
    assert!(out.stdout.contains("2 member(s), 2 address(es) at 1 provider(s)"), "{}", out.rendered());
    let t = t.file("conf/30-dup.yaml", "roles:\n  member: { sandbox: r2 }\nmembers:\n  - email: A@example.com\n");
    let out = t.cmd(&["validate", "-c", "conf"]).expect(1);
    insta::assert_snapshot!("duplicates_across_files", out.rendered());
}

#[test]
fn invalid_config_reports_every_problem_with_locations() {
    let yaml = r#"version: 1
providers:
  community:
    type: networked
    api_key_env: NETWORKED_API_KEY
  workforce:
    type: aptly
    tenant_id: not-a-uuid
    batch_sise: 10
roles:
  member: { community: 69baa36beddb9f0012fdf101, workforce: bbc5418c-8d81-4756-b3e6-84e1e87f06c3 }
  moderator: { comunity: 69baa36beddb9f0012fdf102 }
  admin: { community: xyz }
groups:
  eng: { community: 69baa36beddb9f0012fdf103 }
defaults:
  providers: [community]
  roles: [member]
members:
  - email: jane.doe@example.com
    name: Jane Doe
  - emial: x@example.com
  - email: JANE.doe@example.com
    name: Jane
  - email: bad-email
    name: Bad
    roles: [membr]
  - email: single@example.com
    name: Cher
    providers: [workforce]
    password: hunter2
  - email: two@example.com
    name: Two Roles
    roles: [member, admin]
  - email: direct@example.com
    name: Direct Add
    method: direct
  - email: nowhere@example.com
    name: No Where
    providers: [comunity]
"#;
    let out = Test::new().config(yaml).cmd(&["validate"]).expect(1);
    assert!(!out.rendered().contains("hunter2"), "a password in YAML must not be echoed");
    insta::assert_snapshot!("invalid_config", out.rendered());
}

#[test]
fn yaml_syntax_and_type_errors_have_locations() {
    let t = Test::new().config("version: 1\nmembers:\n  - email: a@example.com\n    roles: member\n");
    insta::assert_snapshot!("type_error", t.cmd(&["validate"]).expect(1).rendered());
    let t = Test::new().config("version: 1\nmembers: [\n  - email: a@example.com\n");
    insta::assert_snapshot!("syntax_error", t.cmd(&["validate"]).expect(1).rendered());
    let t = Test::new();
    insta::assert_snapshot!("missing_config", t.cmd(&["plan"]).expect(1).rendered());
}

#[test]
fn hostile_yaml_is_refused_quickly() {
    // Billion laughs: nine levels of nine-fold aliases.
    let mut bomb = String::from("version: 1\nmembers: []\nlol0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!("lol{i}: &l{i} [*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p},*l{p}]\n"));
    }
    let out = Test::new().config(&bomb).cmd(&["validate"]);
    assert_eq!(out.code, 1, "{}", out.rendered());
    assert!(out.stderr.contains("aliases stand for more than 1000000 nodes"), "{}", out.rendered());
    // Deep nesting. A review found 100,000 levels (200 KB) took 33 s:
    // libyaml's scanner is quadratic in the depth before the recursion
    // limit applies. The message is the pre-scan's, which refuses it
    // before libyaml sees it.
    for depth in [10_000, 100_000] {
        let deep = format!("version: 1\nmembers: []\nnested: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let out = Test::new().config(&deep).cmd(&["validate"]);
        assert_eq!(out.code, 1, "{}", out.rendered());
        assert!(out.stderr.contains("nests flow collections more than 128 levels deep"), "{}", out.rendered());
        assert!(out.stderr.contains("memberctl.yaml:3:"), "placed: {}", out.rendered());
    }
    // A review found aliases under an unknown key exhausted memory (each
    // held expanded as a YAML value): 100 KB took gigabytes.
    let wide = format!(
        "version: 1\nmembers: []\nzzz: &a [{}]\nyyy: [{}]\n",
        vec!["x"; 5_000].join(","),
        vec!["*a"; 30_000].join(",")
    );
    let out = Test::new().config(&wide).cmd(&["validate"]);
    assert_eq!(out.code, 1, "{}", out.rendered());
    assert!(out.stderr.contains("aliases stand for more than"), "{}", out.rendered());
}

#[test]
fn markdown_of_a_huge_plan_stays_under_the_comment_limit() {
    let mut yaml = String::from(
        "version: 1\nproviders:\n  sandbox: { type: sandbox, outbox: outbox.jsonl }\nroles:\n  member: { sandbox: role-member }\ndefaults:\n  roles: [member]\nmembers:\n",
    );
    for i in 0..10_000 {
        yaml.push_str(&format!("  - email: person{i:05}@example.com\n    name: Person Number{i}\n"));
    }
    let t = Test::new().config(&yaml);
    let out = t.cmd(&["plan", "--format", "markdown"]).expect(0);
    assert!(out.stdout.chars().count() < 60_000, "{} characters", out.stdout.chars().count());
    assert!(out.stdout.contains("**Plan: 10000 to invite, 0 to update, 0 to remove, 0 manual.**"));
    assert!(out.stdout.contains("This plan is large"), "the comment must say it was summarised");
    assert!(out.stdout.starts_with("<!-- memberctl-plan -->"));
}

#[test]
fn oversized_config_is_refused_without_reading_it() {
    let t = Test::new();
    let file = std::fs::File::create(t.path().join("memberctl.yaml")).expect("create");
    file.set_len(65 * 1024 * 1024).expect("sparse file");
    let out = t.cmd(&["validate"]).expect(1);
    assert!(out.stderr.contains("more than the 67108864-byte limit"), "{}", out.rendered());
    assert!(out.stderr.contains("hint: split the members over several files"), "{}", out.rendered());
}

// Found by a review: a stream has no size to look at first (`-c <(...)`,
// `/dev/zero` was read until memory ran out), and a file that is not UTF-8
// was refused with no place or hint.
#[test]
fn streams_are_read_up_to_the_limit_and_bytes_that_are_not_utf8_are_placed() {
    let t = Test::new();
    let out = t.cmd(&["validate", "-c", "/dev/zero"]).expect(1);
    assert!(out.stderr.contains("the file is longer than the 67108864-byte limit"), "{}", out.rendered());
    std::fs::write(t.path().join("memberctl.yaml"), b"version: 1\nmembers:\n  - email: a@\xff.example.com\n")
        .expect("write");
    let out = t.cmd(&["validate"]).expect(1);
    assert!(out.stderr.contains("the file is not UTF-8: byte 0xff"), "{}", out.rendered());
    assert!(out.stderr.contains("memberctl.yaml:3:14"), "{}", out.rendered());
    assert!(out.stderr.contains("hint: save the file as UTF-8"), "{}", out.rendered());
}

/// Review findings: each of these used to be accepted silently.
#[test]
fn missing_version_empty_providers_and_fake_loopback_are_errors() {
    let out = Test::new()
        .config("providers:\n  sb: { type: sandbox }\nmembers:\n  - email: a@example.com\n")
        .cmd(&["validate"]);
    assert_eq!(out.code, 1, "{}", out.rendered());
    assert!(out.stderr.contains("no config file declares `version: 1`"), "{}", out.rendered());
    let out = Test::new()
        .config(
            "version: 1\nproviders:\n  sb: { type: sandbox }\nmembers:\n  - email: a@example.com\n    providers: []\n",
        )
        .cmd(&["validate"]);
    assert_eq!(out.code, 1, "{}", out.rendered());
    assert!(out.stderr.contains("joins no provider: `providers` is empty"), "{}", out.rendered());
    let out = Test::new()
        .config("version: 1\nproviders:\n  c: { type: networked, base_url: \"http://127.attacker.example\" }\nmembers: []\n")
        .cmd(&["validate"]);
    assert_eq!(out.code, 1, "{}", out.rendered());
    assert!(out.stderr.contains("plain `http://` is refused for `127.attacker.example`"), "{}", out.rendered());
    Test::new()
        .config("version: 1\nproviders:\n  c: { type: networked, base_url: \"http://[::1]:8080\" }\nmembers: []\n")
        .cmd(&["validate"])
        .expect(0);
}

#[test]
fn catalog_defined_twice_names_both_files() {
    let t = Test::new()
        .file("conf/a.yaml", "version: 1\nproviders:\n  sb: { type: sandbox }\nroles:\n  r: { sb: one }\n")
        .file("conf/b.yaml", "roles:\n  r: { sb: two }\n");
    let out = t.cmd(&["validate", "-c", "conf"]).expect(1);
    assert!(
        out.stderr.contains("role `r` is defined twice (first defined at conf/a.yaml:5:3)\n --> conf/b.yaml:2:3"),
        "{}",
        out.rendered()
    );
}

#[test]
fn plan_warns_about_the_safety_brake_before_apply_refuses() {
    let yaml = QUICKSTART.replace("members:\n", "safety:\n  max_changes: 2\nmembers:\n");
    let t = Test::new().config(&yaml);
    let out = t.cmd(&["plan"]).expect(0);
    assert!(out.stdout.contains("safety brake: this plan invites or removes 3 members"), "{}", out.rendered());
    let out = t.cmd(&["plan", "--format", "markdown"]).expect(0);
    assert!(out.stdout.contains("> [!WARNING]\n> safety brake"), "{}", out.rendered());
}

// Found by a review: past the budget, every provider still got a heading
// (and every brake warning its callout): 1,500 providers made 83,000
// characters.
#[test]
fn markdown_of_a_plan_over_many_providers_stays_under_the_comment_limit() {
    let mut yaml = String::from("version: 1\nproviders:\n");
    for i in 0..1_500 {
        yaml.push_str(&format!("  provider{i:04}: {{ type: sandbox, outbox: outbox.jsonl }}\n"));
    }
    yaml.push_str("members:\n");
    for i in 0..1_500 {
        yaml.push_str(&format!("  - {{ email: person{i:04}@example.com, providers: [provider{i:04}] }}\n"));
    }
    let t = Test::new().config(&yaml);
    let out = t.cmd(&["plan", "--format", "markdown"]).expect(0);
    let chars = out.stdout.chars().count();
    assert!(chars < 60_000, "{chars} characters");
    assert!(out.stdout.contains("This plan is large"), "{}", &out.stdout[..500]);
    assert!(
        out.stdout.contains("more provider(s) with changes are not listed"),
        "{:?}",
        out.stdout.lines().rev().take(5).collect::<Vec<_>>()
    );
}

// Regression: #9 defect 6: the budget was checked before each row, so one
// huge cell could push a comment past GitHub's 65,536 characters.
#[test]
fn markdown_with_one_huge_cell_stays_under_the_comment_limit() {
    let huge = "Very Long Name ".repeat(6_000);
    let mut yaml = String::from(
        "version: 1\nproviders:\n  sandbox: { type: sandbox, outbox: outbox.jsonl }\nroles:\n  member: { sandbox: role-member }\ndefaults:\n  roles: [member]\nmembers:\n",
    );
    for i in 0..3 {
        yaml.push_str(&format!("  - email: person{i}@example.com\n    name: {huge}{i}\n"));
    }
    let t = Test::new().config(&yaml);
    let out = t.cmd(&["plan", "--format", "markdown"]).expect(0);
    let chars = out.stdout.chars().count();
    assert!(chars < 60_000, "{chars} characters");
    assert!(out.stdout.contains("**Plan: 3 to invite"), "{}", &out.stdout[..500]);
    assert!(out.stdout.contains("| `sandbox/person0@example.com` |"), "the first row is shown, shortened");
}

// #12 item 8: the apply's outcome goes back to the pull request.
#[test]
fn apply_writes_its_summary_for_the_pull_request() {
    let t = Test::new().config(QUICKSTART);
    t.cmd(&["apply", "--auto-approve", "--summary-out", "apply.md"]).expect(0);
    insta::assert_snapshot!("apply_summary_markdown", t.read("apply.md"));
    t.write("memberctl.yaml", &QUICKSTART.replace("  - email: kim@example.com\n    name: Kim Park\n", ""));
    t.cmd(&["apply", "--auto-approve", "--summary-out", "apply.json", "--summary-format", "json"]).expect(0);
    let summary: serde_json::Value = serde_json::from_str(&t.read("apply.json")).expect("JSON summary");
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["providers"]["sandbox"]["removed"], 1);
}

#[test]
fn a_refused_apply_still_writes_its_summary() {
    let t = Test::new().config(&QUICKSTART.replace("members:\n", "safety:\n  max_changes: 1\nmembers:\n"));
    t.cmd(&["apply", "--auto-approve", "--summary-out", "apply.json", "--summary-format", "json"]).expect(1);
    let summary: serde_json::Value = serde_json::from_str(&t.read("apply.json")).expect("JSON summary");
    assert_eq!(summary["status"], "not_started");
    assert!(summary["error"].as_str().is_some_and(|e| e.contains("more than the limit of 1")), "{summary}");
}
