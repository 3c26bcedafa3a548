//! Refresh and drift (issue #10) on the sandbox, which lists its outbox:
//! lines appended by hand play changes made at the service.

use crate::lifecycle::QUICKSTART;
use crate::support::harness::{closed_stdout, Test};

/// Appends an outbox line, as someone working at the service would.
fn at_the_service(t: &Test, line: &str) {
    let mut outbox = t.read("outbox.jsonl");
    outbox.push_str(line);
    outbox.push('\n');
    t.write("outbox.jsonl", &outbox);
}

fn applied() -> Test {
    let t = Test::new().config(QUICKSTART);
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    t
}

fn serial(t: &Test) -> u64 {
    let state: serde_json::Value = serde_json::from_str(&t.read("memberctl.state.json")).expect("state is JSON");
    state["serial"].as_u64().expect("serial")
}

const DELETED_KIM: &str = r#"{"op":"remove","provider":"sandbox","email":"kim@example.com"}"#;
const JANE_MADE_MODERATOR: &str = r#"{"op":"update","provider":"sandbox","email":"jane.doe@example.com","attributes":{"email":"jane.doe@example.com","name":"Jane Doe","roles":["role-moderator"],"plans":["plan-pro"]}}"#;
const A_STRANGER: &str = r#"{"op":"invite","provider":"sandbox","email":"stranger@example.com","attributes":{"email":"stranger@example.com"}}"#;

#[test]
fn plan_makes_no_provider_calls_without_refresh() {
    let t = applied();
    at_the_service(&t, DELETED_KIM);
    let out = t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
    assert!(out.stdout.contains("No changes"), "{}", out.rendered());
    assert!(!out.stdout.contains("Refresh"), "{}", out.rendered());
}

#[test]
fn drift_is_planned_back_in_every_format() {
    let t = applied();
    at_the_service(&t, DELETED_KIM);
    at_the_service(&t, JANE_MADE_MODERATOR);
    at_the_service(&t, A_STRANGER);
    let text = t.cmd(&["plan", "--refresh", "--detailed-exitcode"]).expect(2);
    insta::assert_snapshot!("refresh_plan_text", text.rendered());
    let markdown = t.cmd(&["plan", "--refresh", "--format", "markdown"]).expect(0);
    insta::assert_snapshot!("refresh_plan_markdown", markdown.rendered());
    // The comment is public to the repository: unmanaged users only counted.
    assert!(!markdown.stdout.contains("stranger"), "{}", markdown.stdout);
    let json = t.cmd(&["plan", "--refresh", "--format", "json"]).expect(0);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON plan");
    assert_eq!(plan["refresh"]["unmanaged_count"], 1);
    assert_eq!(plan["refresh"]["unmanaged"][0], "sandbox/stranger@example.com");
    assert_eq!(plan["refresh"]["drift"].as_array().map(Vec::len), Some(2));
    let reasons: Vec<&str> = plan["changes"].as_array().unwrap().iter().filter_map(|c| c["reason"].as_str()).collect();
    // DESIGN's reason, as a value; what was found is beside it, by address.
    assert_eq!(reasons, ["drift", "drift"], "{}", json.stdout);
    let found: Vec<&str> =
        plan["refresh"]["drift"].as_array().unwrap().iter().filter_map(|d| d["found"].as_str()).collect();
    assert!(found.iter().all(|f| f.starts_with("drift: ")), "{found:?}");
    // A plan only reads: the state is untouched.
    assert_eq!(serial(&t), 1);
}

#[test]
fn apply_refresh_repairs_drift_and_converges() {
    let t = applied();
    at_the_service(&t, DELETED_KIM);
    at_the_service(&t, JANE_MADE_MODERATOR);
    let out = t.cmd(&["apply", "--refresh", "--auto-approve"]).expect(0);
    assert!(out.stdout.contains("1 invited") && out.stdout.contains("1 updated"), "{}", out.rendered());
    // Regression: #13, what the refresh observed was written before the
    // apply wrote its own outcomes; now the state is written once, at the
    // end, and the backup is the state from before the apply.
    assert_eq!(serial(&t), 2);
    let backup: serde_json::Value =
        serde_json::from_str(&t.read("memberctl.state.json.backup")).expect("the backup is JSON");
    assert_eq!(backup["serial"], 1);
    let again = t.cmd(&["plan", "--refresh", "--detailed-exitcode"]).expect(0);
    assert!(again.stdout.contains("No drift"), "{}", again.rendered());
}

#[test]
fn a_saved_refresh_plan_records_what_it_observed() {
    let t = applied();
    at_the_service(&t, DELETED_KIM);
    t.cmd(&["plan", "--refresh", "--out", "plan.json"]).expect(0);
    let before = t.read("memberctl.state.json");
    // Refused over the brake: nothing, not even the observations, is recorded.
    t.cmd(&["apply", "plan.json", "--max-changes", "0"]).expect(1);
    assert_eq!(t.read("memberctl.state.json"), before);
    // A saved plan was reviewed when it was saved: applied without asking.
    t.cmd(&["apply", "plan.json"]).expect(0);
    t.cmd(&["plan", "--refresh", "--detailed-exitcode"]).expect(0);
}

#[test]
fn refresh_check_writes_nothing_and_exits_2_on_drift() {
    let t = applied();
    let out = t.cmd(&["refresh", "--check"]).expect(0);
    assert!(out.stdout.contains("No drift"), "{}", out.rendered());
    at_the_service(&t, JANE_MADE_MODERATOR);
    let before = t.read("memberctl.state.json");
    let out = t.cmd(&["refresh", "--check"]).expect(2);
    assert!(out.stdout.contains("sandbox/jane.doe@example.com"), "{}", out.rendered());
    assert_eq!(t.read("memberctl.state.json"), before, "--check writes nothing");
}

#[test]
fn refresh_writes_the_state_only_when_something_changed() {
    let t = applied();
    let out = t.cmd(&["refresh"]).expect(0);
    assert!(out.stderr.contains("nothing was written"), "{}", out.rendered());
    assert_eq!(serial(&t), 1);
    at_the_service(&t, JANE_MADE_MODERATOR);
    t.cmd(&["refresh"]).expect(0);
    assert_eq!(serial(&t), 2);
    // The state now holds what the service holds: the plan puts it back.
    let out = t.cmd(&["plan"]).expect(0);
    assert!(out.stdout.contains("~ update sandbox/jane.doe@example.com"), "{}", out.rendered());
}

#[test]
fn providers_that_cannot_list_are_not_checked() {
    let yaml = QUICKSTART.replace(
        "    outbox: outbox.jsonl\n",
        "    outbox: outbox.jsonl\n    capabilities: [invite, update, remove]\n",
    );
    let t = Test::new().config(&yaml);
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    // Exit 0 would say "in sync" (a review found it did, and the README's
    // drift job then closes its issue): nothing checked is an error.
    let out = t.cmd(&["refresh", "--check"]).expect(1);
    assert!(out.stdout.contains("Not checked (they cannot list their members): `sandbox`"), "{}", out.rendered());
    assert!(!out.stdout.contains("No drift"), "not checked is never in sync: {}", out.rendered());
    assert!(
        out.stderr.contains("error: no provider here can list its members: nothing was checked"),
        "{}",
        out.rendered()
    );
    let out = t.cmd(&["refresh"]).expect(0);
    assert!(out.stderr.contains("nothing was checked"), "{}", out.rendered());
    assert!(!out.rendered().contains("already matches"), "not checked is never in sync: {}", out.rendered());
}

#[test]
fn a_listing_that_misses_most_members_is_refused() {
    let mut yaml = QUICKSTART.to_owned();
    for i in 0..20 {
        yaml.push_str(&format!("  - email: p{i}@example.com\n"));
    }
    let t = Test::new().config(&yaml);
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    // The service lost its data (or memberctl points at the wrong tenant).
    t.write("outbox.jsonl", "");
    let out = t.cmd(&["plan", "--refresh"]).expect(1);
    assert!(out.stderr.contains("misses 23 of the 23 members"), "{}", out.rendered());
    assert!(out.stderr.contains("hint:") && out.stderr.contains("--max-removal-fraction"), "{}", out.rendered());
    t.cmd(&["refresh"]).expect(1);
    t.cmd(&["apply", "--refresh", "--auto-approve", "--max-removal-fraction", "0.5"]).expect(1);
    // Believed for one run when the flag says so: all of them planned back.
    let out = t.cmd(&["plan", "--refresh", "--max-removal-fraction", "1"]).expect(0);
    assert!(out.stdout.contains("Plan: 23 to invite"), "{}", out.rendered());
    t.cmd(&["refresh", "--check", "--max-removal-fraction", "1"]).expect(2);
    t.cmd(&["apply", "--refresh", "--auto-approve", "--max-removal-fraction", "1"]).expect(0);
    t.cmd(&["plan", "--refresh", "--detailed-exitcode"]).expect(0);
}

// #10: `import provider NAME` writes members YAML for what a provider holds
// that the config lacks; with `--adopt` they are recorded, and the config
// with the YAML appended plans clean.
#[test]
fn import_provider_yaml_validates_and_plans_clean_with_adopt() {
    let t = applied();
    at_the_service(
        &t,
        r#"{"op":"invite","provider":"sandbox","email":"Pat.Lee@example.com","attributes":{"email":"Pat.Lee@example.com","name":"Pat Lee","roles":["role-moderator"],"plans":["plan-pro"]}}"#,
    );
    at_the_service(
        &t,
        r#"{"op":"invite","provider":"sandbox","email":"odd@example.com","attributes":{"email":"odd@example.com","roles":["role-unknown"]}}"#,
    );
    let out = t.cmd(&["import", "provider", "sandbox"]).expect(0);
    insta::assert_snapshot!("import_provider_yaml", out.rendered());
    // Nothing recorded without --adopt.
    assert_eq!(serial(&t), 1);

    t.cmd(&["import", "provider", "sandbox", "--adopt", "--append", "memberctl.yaml"]).expect(0);
    t.cmd(&["validate"]).expect(0);
    let plan = t.cmd(&["plan", "--detailed-exitcode"]);
    // `odd` holds a role no catalog names: it was left out, so the plan
    // proposes removing it at the provider (by hand: an update).
    assert!(plan.stdout.contains("sandbox/odd@example.com"), "{}", plan.rendered());
    assert!(!plan.stdout.contains("pat.lee@example.com"), "Pat converged: {}", plan.rendered());
    let state = t.read("memberctl.state.json");
    assert!(state.contains("sandbox/pat.lee@example.com") && state.contains("\"adopted\""), "{state}");
}

// Found by a review: `--adopt` with the YAML on stdout recorded users the
// config lacks, and the next plan planned to remove them, unannounced.
#[test]
fn adopting_without_appending_warns_that_the_plan_would_remove_them() {
    let t = applied();
    at_the_service(
        &t,
        r#"{"op":"invite","provider":"sandbox","email":"pat@example.com","attributes":{"email":"pat@example.com","roles":["role-member"]}}"#,
    );
    let out = t.cmd(&["import", "provider", "sandbox", "--adopt"]).expect(0);
    assert!(out.stdout.contains("pat@example.com"), "{}", out.rendered());
    assert!(
        out.stderr.contains("warning: 1 member(s) are recorded as adopted but not yet configured"),
        "{}",
        out.rendered()
    );
}

// Found by a review: removing (or updating) a member the sandbox no longer
// held failed on every run. As at a SCIM service, one already gone is
// removed, and one to update is drift: recorded as gone, invited again.
#[test]
fn the_sandbox_takes_a_member_gone_at_the_service_as_removed_or_drift() {
    let t = applied();
    at_the_service(&t, DELETED_KIM);
    let without_kim = QUICKSTART.replace("  - email: kim@example.com\n    name: Kim Park\n", "");
    assert_ne!(without_kim, QUICKSTART, "the quickstart configures Kim");
    t.write("memberctl.yaml", &without_kim);
    let out = t.cmd(&["apply", "--auto-approve"]).expect(0);
    assert!(out.stdout.contains("1 removed"), "{}", out.rendered());
    assert!(!t.read("memberctl.state.json").contains("kim@example.com"));

    at_the_service(&t, r#"{"op":"remove","provider":"sandbox","email":"jane.doe@example.com"}"#);
    t.write("memberctl.yaml", &without_kim.replace("    name: Jane Doe\n", "    name: Jane Q. Doe\n"));
    let out = t.cmd(&["apply", "--auto-approve"]).expect(0);
    assert!(out.stdout.contains("Gone: deleted at the provider"), "{}", out.rendered());
    let plan = t.cmd(&["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("+ invite sandbox/jane.doe@example.com"), "{}", plan.rendered());
}

// Found by a review: with its reader gone (`refresh | head -1`), refresh
// returned before writing the state, and `refresh --check` exited 0 on drift.
#[test]
fn a_closed_pipe_keeps_the_refresh_and_its_exit_code() {
    let t = applied();
    at_the_service(&t, JANE_MADE_MODERATOR);
    let check = t.command(&["refresh", "--check"]).stdout(closed_stdout()).output().expect("runs");
    assert_eq!(check.status.code(), Some(2), "{}", String::from_utf8_lossy(&check.stderr));
    assert_eq!(serial(&t), 1);
    let refresh = t.command(&["refresh"]).stdout(closed_stdout()).output().expect("runs");
    assert_eq!(refresh.status.code(), Some(0), "{}", String::from_utf8_lossy(&refresh.stderr));
    assert_eq!(serial(&t), 2, "the state is written all the same");
}

// Found by a review: DESIGN counts unmanaged users "in every format", and
// the apply's summary (for the pull request) said nothing of the refresh.
#[test]
fn the_apply_summary_counts_what_the_refresh_found() {
    let t = applied();
    at_the_service(&t, A_STRANGER);
    at_the_service(&t, JANE_MADE_MODERATOR);
    t.cmd(&["apply", "--refresh", "--auto-approve", "--summary-out", "summary.json", "--summary-format", "json"])
        .expect(0);
    let summary: serde_json::Value = serde_json::from_str(&t.read("summary.json")).expect("json");
    assert_eq!(summary["refresh"]["unmanaged"], 1, "{summary}");
    assert_eq!(summary["refresh"]["drifted"], 1, "{summary}");
    assert_eq!(summary["refresh"]["checked"], serde_json::json!(["sandbox"]), "{summary}");
    t.cmd(&["apply", "--refresh", "--auto-approve", "--summary-out", "summary.md"]).expect(0);
    let comment = t.read("summary.md");
    assert!(comment.contains("Refreshed `sandbox`: 0 address(es) drifted, 1 unmanaged user(s)."), "{comment}");
    assert!(!comment.contains("stranger@example.com"), "unmanaged users are counted, never named: {comment}");
}
