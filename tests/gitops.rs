//! The git workflow: CI examples, a whole pull-request lifecycle in a
//! temp git repository, invitation resends, and CSV import.

use std::process::Command;

use clap::Parser;

use crate::support::harness::Test;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Splits a shell line into the words of its `memberctl` command, stopping
/// at redirections, pipes and `||`/`&&`.
fn memberctl_words(line: &str) -> Option<Vec<String>> {
    let start = line.find("memberctl ")?;
    let before = &line[..start];
    if !(before.trim().is_empty() || before.trim_end().ends_with(['-', '|', '&', ';'])) {
        return None;
    }
    let words = line[start..]
        .split_whitespace()
        .take_while(|w| !matches!(*w, ">" | "|" | "||" | "&&" | ";") && !w.starts_with('>') && !w.starts_with("2>"))
        .map(|w| w.trim_matches(['"', '\'']).to_owned())
        .collect();
    Some(words)
}

fn strings(value: &serde_yaml::Value, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::String(s) => out.push(s.clone()),
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| strings(v, out)),
        serde_yaml::Value::Mapping(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[test]
fn ci_examples_parse_and_their_memberctl_commands_are_accepted() {
    for name in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = std::fs::read_to_string(repo().join("examples/ci").join(name)).expect("example");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
        let mut all = Vec::new();
        strings(&doc, &mut all);
        let mut commands = 0;
        for line in all.iter().flat_map(|s| s.lines()) {
            let Some(words) = memberctl_words(line) else { continue };
            if let Err(err) = memberctl::cli::Cli::try_parse_from(&words) {
                panic!("{name}: `{}` is rejected by memberctl's parser:\n{err}", words.join(" "));
            }
            commands += 1;
        }
        assert!(commands >= 3, "{name}: expected validate, plan and apply commands, found {commands}");
    }
}

/// check-jsonschema, installed by `scripts/test.sh` beside scim2-server.
fn check_jsonschema() -> std::path::PathBuf {
    let binary = std::env::var_os("CHECK_JSONSCHEMA_BIN")
        .map_or_else(|| repo().join("target/scim-venv/bin/check-jsonschema"), std::path::PathBuf::from);
    assert!(
        binary.exists(),
        "check-jsonschema is not installed at `{}`: run `scripts/test.sh`, which installs it",
        binary.display()
    );
    binary
}

// Regression: #12 item 7: the GitLab example's `after_script` held a YAML
// mapping where a command was meant (`git commit -m "memberctl: ..."`), and
// GitLab rejects such a pipeline.
#[test]
fn ci_examples_are_valid_pipelines_by_the_vendors_schemas() {
    for (name, schema) in [("github-actions.yml", "vendor.github-workflows"), ("gitlab-ci.yml", "vendor.gitlab-ci")] {
        let file = repo().join("examples/ci").join(name);
        let out = std::process::Command::new(check_jsonschema())
            .args(["--builtin-schema", schema])
            .arg(&file)
            .output()
            .expect("run check-jsonschema");
        assert!(
            out.status.success(),
            "{name} is not a valid pipeline:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

const BASE: &str = r#"version: 1
providers:
  sandbox:
    type: sandbox
    outbox: ../outbox.jsonl
    capabilities: [invite]
roles:
  member: { sandbox: role-member }
  moderator: { sandbox: role-moderator }
defaults:
  providers: [sandbox]
  roles: [member]
invites:
  resend_after: 14d
members: []
"#;

const THREE: &str = "members:\n  - email: ana@example.com\n    name: Ana Lima\n  - email: bo@example.com\n    name: Bo Chen\n    roles: [moderator]\n  - email: cy@example.com\n    name: Cy Park\n";

fn git(t: &Test, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(t.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", t.path())
        .output()
        .expect("git");
    assert!(status.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&status.stderr));
}

/// Issue #5's "done when": a whole pull-request lifecycle.
#[test]
fn pull_request_lifecycle_in_a_git_repository() {
    let t = Test::new().file("members/00-base.yaml", BASE).file(".gitignore", "*.lock\n*.journal\noutbox.jsonl\n");
    git(&t, &["init", "-q"]);
    git(&t, &["add", "-A"]);
    git(&t, &["commit", "-qm", "base"]);

    // 1. A branch adds three members: the comment shows them, exit 2.
    git(&t, &["checkout", "-qb", "add-three"]);
    t.write("members/10-team.yaml", THREE);
    git(&t, &["add", "-A"]);
    git(&t, &["commit", "-qm", "add three"]);
    let out = t.cmd(&["plan", "-c", "members", "--format", "markdown", "--detailed-exitcode"]).expect(2);
    insta::assert_snapshot!("pr_add_three", out.rendered());

    // 2. Merge, apply, commit the state.
    git(&t, &["checkout", "-q", "main"]);
    git(&t, &["merge", "-q", "--no-ff", "add-three", "-m", "merge"]);
    t.cmd(&["apply", "-c", "members", "--auto-approve"]).expect(0);
    git(&t, &["add", "memberctl.state.json"]);
    git(&t, &["commit", "-qm", "memberctl: record apply"]);
    t.cmd(&["plan", "-c", "members", "--detailed-exitcode"]).expect(0);

    // 3. A branch changes a role and removes a member: both are manual here.
    git(&t, &["checkout", "-qb", "change"]);
    t.write(
        "members/10-team.yaml",
        &THREE.replace("    roles: [moderator]\n", "").replace("  - email: cy@example.com\n    name: Cy Park\n", ""),
    );
    let out = t.cmd(&["plan", "-c", "members", "--format", "markdown", "--detailed-exitcode"]).expect(2);
    insta::assert_snapshot!("pr_change_and_remove", out.rendered());
    assert!(out.stdout.contains("update by hand: roles: moderator → member"));
    assert!(out.stdout.contains("remove by hand"));

    // 4. Done by hand, recorded with mark-done: the next plan is empty.
    t.cmd(&["state", "mark-done", "-c", "members", "sandbox/bo@example.com", "sandbox/cy@example.com"]).expect(0);
    t.cmd(&["plan", "-c", "members", "--detailed-exitcode"]).expect(0);

    // 5. Three weeks later the open invitations are proposed for resend; Ana
    //    accepted in the meantime, so hers is answered "already a member".
    let later = t.env("MEMBERCTL_NOW", "2026-02-06T09:30:00Z");
    let out = later.cmd(&["plan", "-c", "members"]).expect(0);
    assert!(out.stdout.contains("> resend sandbox/ana@example.com"), "{}", out.rendered());
    assert!(out.stdout.contains("2 to resend"), "{}", out.rendered());
    let out = later.cmd(&["plan", "-c", "members", "--format", "json"]).expect(0);
    assert!(out.stdout.contains("\"action\": \"resend\""));
    let mut outbox = later.read("outbox.jsonl");
    outbox.push_str("{\"op\":\"accept\",\"provider\":\"sandbox\",\"email\":\"ana@example.com\"}\n");
    later.write("outbox.jsonl", &outbox);
    let out = later.cmd(&["apply", "-c", "members", "--auto-approve"]).expect(0);
    assert!(out.stdout.contains("1 adopted"), "{}", out.rendered());
    let out = later.cmd(&["state", "show", "sandbox/ana@example.com"]).expect(0);
    assert!(out.stdout.contains("status: adopted"), "{}", out.rendered());
    // Adopted members are never re-sent, even much later; Bo still is.
    let much_later = later.env("MEMBERCTL_NOW", "2026-06-01T00:00:00Z");
    let out = much_later.cmd(&["plan", "-c", "members"]).expect(0);
    assert!(out.stdout.contains("> resend sandbox/bo@example.com"), "{}", out.rendered());
    assert!(!out.stdout.contains("sandbox/ana@example.com"), "{}", out.rendered());
}

#[test]
fn resend_of_an_unaccepted_invitation_is_sent_again_and_counted() {
    let yaml = BASE.replace("members: []\n", THREE);
    let t = Test::new().file("members/all.yaml", &yaml);
    t.cmd(&["apply", "-c", "members", "--auto-approve"]).expect(0);
    let later = t.env("MEMBERCTL_NOW", "2026-02-06T09:30:00Z");
    let out = later.cmd(&["apply", "-c", "members", "--auto-approve"]).expect(0);
    assert!(out.stdout.contains("3 invited"), "{}", out.rendered());
    let out = later.cmd(&["state", "show", "sandbox/bo@example.com"]).expect(0);
    assert!(out.stdout.contains("resends: 1"), "{}", out.rendered());
    assert!(out.stdout.contains("invited_at: 2026-02-06T09:30:00Z"), "{}", out.rendered());
    later.cmd(&["plan", "-c", "members", "--detailed-exitcode"]).expect(0);
}

#[test]
fn csv_import_validates_rows_and_appends() {
    let yaml = BASE.replace("members: []\n", "members:\n  - email: ana@example.com\n    name: Ana Lima\n");
    let csv = "Work Email,Full Name,Role,Department\n\
               new.one@example.com,New One,moderator;member,Sales\n\
               bad,Bad Row,member,Sales\n\
               ANA@example.com,Ana Again,member,Sales\n\
               third@example.com,\"Park, Third\",admin,Ops\n\
               new.one@example.com,Dup,member,Ops\n";
    let t = Test::new().file("members/00-base.yaml", &yaml).file("people.csv", csv);
    let out = t.cmd(&["import", "csv", "people.csv", "-c", "members"]).expect(1);
    insta::assert_snapshot!("import_csv", out.rendered());
    let out = t.cmd(&["import", "csv", "people.csv", "-c", "members", "--strict"]).expect(1);
    assert!(out.stderr.contains("nothing was imported"), "{}", out.rendered());
    assert!(out.stdout.is_empty());
    t.cmd(&["import", "csv", "people.csv", "-c", "members", "--append", "members/20-imported.yaml"]).expect(1);
    let out = t.cmd(&["validate", "-c", "members"]).expect(0);
    assert!(out.stdout.contains("2 member(s)"), "{}", out.rendered());
    // Appending again finds the imported rows as duplicates and adds nothing.
    let out = t.cmd(&["import", "csv", "people.csv", "-c", "members", "--map", "Department=groups"]).expect(1);
    assert!(out.stderr.contains("unknown group `Sales`"), "{}", out.rendered());
}
