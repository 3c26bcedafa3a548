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

/// Every pipeline the project ships, with the schema its platform checks it by.
const PIPELINES: [(&str, &str); 4] = [
    ("examples/ci/github-actions.yml", "vendor.github-workflows"),
    ("examples/ci/github-actions-postgres.yml", "vendor.github-workflows"),
    ("examples/ci/gitlab-ci.yml", "vendor.gitlab-ci"),
    (".github/workflows/release.yml", "vendor.github-workflows"),
];

fn pipeline(name: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

// Regression: #12 item 7: the GitLab example's `after_script` held a YAML
// mapping where a command was meant (`git commit -m "memberctl: ..."`), and
// GitLab rejects such a pipeline.
#[test]
fn ci_examples_are_valid_pipelines_by_the_vendors_schemas() {
    for (name, schema) in PIPELINES {
        let file = repo().join(name);
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

/// Collects every `script`, `before_script` and `after_script` entry of a
/// GitLab pipeline, wherever it sits (jobs, `default`, hidden templates),
/// with where it was found.
fn gitlab_script_entries<'a>(value: &'a serde_yaml::Value, path: &str, out: &mut Vec<(String, &'a serde_yaml::Value)>) {
    let serde_yaml::Value::Mapping(map) = value else { return };
    for (key, child) in map {
        let key = key.as_str().unwrap_or("?");
        let here = format!("{path}.{key}");
        if matches!(key, "script" | "before_script" | "after_script") {
            match child {
                // GitLab flattens one level of nested lists (from `!reference`).
                serde_yaml::Value::Sequence(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match item {
                            serde_yaml::Value::Sequence(inner) => {
                                out.extend(inner.iter().enumerate().map(|(j, v)| (format!("{here}[{i}][{j}]"), v)));
                            }
                            other => out.push((format!("{here}[{i}]"), other)),
                        }
                    }
                }
                other => out.push((here, other)),
            }
        } else {
            gitlab_script_entries(child, &here, out);
        }
    }
}

// Regression: #12 item 7: an unquoted `- git commit -m "a: b"` parses as a
// mapping; the schema catches it too, but this names the entry directly.
#[test]
fn gitlab_example_script_entries_are_all_strings() {
    let doc = pipeline("examples/ci/gitlab-ci.yml");
    let mut entries = Vec::new();
    gitlab_script_entries(&doc, "", &mut entries);
    assert!(entries.len() >= 10, "expected the jobs' scripts, found {} entries", entries.len());
    for (at, entry) in &entries {
        assert!(entry.is_string(), "gitlab-ci.yml{at} is not a string but {entry:?}");
    }
    // The walk itself: a mapping where a command belongs is reported.
    let broken: serde_yaml::Value =
        serde_yaml::from_str("job:\n  after_script:\n    - git commit -m \"memberctl: record\"\n").expect("yaml");
    let mut entries = Vec::new();
    gitlab_script_entries(&broken, "", &mut entries);
    assert!(matches!(entries.as_slice(), [(at, v)] if at == ".job.after_script[0]" && v.is_mapping()), "{entries:?}");
}

// Regression: #12 item 9: the examples ran `cargo install --locked memberctl`,
// but no crate of that name is published; a `cargo install` may only name a
// source (`--git` pinned by `--tag`, or `--path`), also in comments.
#[test]
fn no_pipeline_installs_the_unpublished_crate() {
    for (name, _) in PIPELINES {
        let text = std::fs::read_to_string(repo().join(name)).expect("pipeline");
        assert!(!text.contains("cargo install --locked memberctl"), "{name} installs the unpublished crate");
        // A command continued over lines (`\`), also in a comment, is one line.
        let unindented: Vec<&str> = text.lines().map(|l| l.trim_start_matches([' ', '#'])).collect();
        let joined = unindented.join("\n").replace("\\\n", " ");
        for line in joined.lines().filter(|l| l.contains("cargo install")) {
            let pinned_git = line.contains("--git") && line.contains("--tag");
            assert!(pinned_git || line.contains("--path"), "{name}: `{}` installs from crates.io", line.trim());
        }
    }
}

// #12 item 8: the apply's outcome goes to the merged pull request (or the
// commit), also when the apply failed, and only once a summary was written.
#[test]
fn ci_examples_post_the_apply_summary_even_after_a_failed_apply() {
    for name in ["examples/ci/github-actions.yml", "examples/ci/github-actions-postgres.yml"] {
        let doc = pipeline(name);
        let apply = github_step(&doc, "apply", "Apply");
        assert!(apply.contains("--summary-out apply.md --summary-format markdown"), "{name}: {apply}");
        let steps = doc["jobs"]["apply"]["steps"].as_sequence().expect("steps");
        let post = steps.iter().find(|s| s["name"].as_str() == Some("Post the apply summary")).expect("post step");
        assert_eq!(post["if"].as_str(), Some("always() && hashFiles('apply.md') != ''"), "{name}");
        let script = post["run"].as_str().expect("run");
        for call in [
            "commits/$GITHUB_SHA/pulls",
            "select(.merged_at != null)",
            "issues/$pr/comments",
            "commits/$GITHUB_SHA/comments",
        ] {
            assert!(script.contains(call), "{name}: the post step does not call {call}");
        }
    }
    let gitlab = pipeline("examples/ci/gitlab-ci.yml");
    let script = gitlab["apply"]["script"].as_sequence().expect("script");
    assert!(script
        .iter()
        .any(|l| l.as_str().is_some_and(|l| l.ends_with("--summary-out apply.md --summary-format markdown"))));
    // after_script runs after a failed script too; the post comes first,
    // since the state commit after it ends the shell with `exit`.
    let after = gitlab["apply"]["after_script"].as_sequence().expect("after_script");
    let post = after[0].as_str().expect("a string");
    for call in [
        "[ -f apply.md ]",
        "commits/$CI_COMMIT_SHA/merge_requests",
        "merge_requests/$mr/notes",
        "commits/$CI_COMMIT_SHA/comments",
    ] {
        assert!(post.contains(call), "gitlab-ci.yml: the first after_script entry does not call {call}");
    }
    assert!(post
        .trim_end()
        .ends_with("|| echo \"could not post the apply summary; it is in this job's artifacts\"\nfi"));
    assert_eq!(gitlab["apply"]["artifacts"]["paths"][0].as_str(), Some("apply.md"));
}

fn run_bash(script: &str, dir: &std::path::Path, env: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    Command::new("bash")
        .args(["-eo", "pipefail", "-c", script])
        .current_dir(dir)
        .env_remove("MEMBERCTL_DOWNLOAD_URL")
        .envs(env.iter().copied())
        .output()
        .expect("bash")
}

fn assert_ran(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `run` script of the step named `name` in a GitHub workflow's job.
fn github_step<'a>(doc: &'a serde_yaml::Value, job: &str, name: &str) -> &'a str {
    let steps = doc["jobs"][job]["steps"].as_sequence().unwrap_or_else(|| panic!("job {job} has no steps"));
    let step =
        steps.iter().find(|s| s["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("{job}: no step {name}"));
    step["run"].as_str().unwrap_or_else(|| panic!("{job}: step {name} has no run"))
}

/// The release workflow's own packaging, run on this build's binary, makes
/// the archives; the examples' own install scripts then fetch them (from a
/// `file://` mirror), check them and put memberctl on PATH.
// Regression: #12 item 9: the examples must install the release's assets by
// their exact names and layout.
#[test]
fn ci_examples_install_what_the_release_workflow_packages() {
    let arch = Command::new("uname").arg("-m").output().expect("uname");
    let target = format!("{}-unknown-linux-musl", String::from_utf8_lossy(&arch.stdout).trim());
    let version = "v0.2.0";
    let work = tempfile::tempdir().expect("tempdir");

    // 1. Package as release.yml does, in a checkout holding a built binary.
    let checkout = work.path().join("checkout");
    let built = checkout.join("target").join(&target).join("release");
    std::fs::create_dir_all(&built).expect("mkdir");
    std::fs::copy(env!("CARGO_BIN_EXE_memberctl"), built.join("memberctl")).expect("copy binary");
    for doc in ["README.md", "CHANGELOG.md"] {
        std::fs::copy(repo().join(doc), checkout.join(doc)).expect("copy doc");
    }
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
            .args(args)
            .current_dir(&checkout)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", work.path())
            .output()
            .expect("git");
        assert_ran("git", &out);
    };
    git(&["init", "-q"]);
    git(&["add", "README.md", "CHANGELOG.md"]);
    git(&["commit", "-qm", "release"]);
    let release = pipeline(".github/workflows/release.yml");
    let package = github_step(&release, "build", "Package").replace("${{ matrix.target }}", &target);
    assert_ran("release.yml's Package step", &run_bash(&package, &checkout, &[("GITHUB_REF_NAME", version.as_ref())]));
    let dist = checkout.join("dist");
    let mirror = format!("file://{}", dist.display());
    let asset = format!("memberctl-{version}-{target}.tar.gz");
    assert!(dist.join(&asset).is_file() && dist.join(format!("{asset}.sha256")).is_file(), "{asset} and its checksum");

    // 2. GitHub: the install step puts the binary on GITHUB_PATH.
    let example = pipeline("examples/ci/github-actions.yml");
    let install = github_step(&example, "plan", "Install memberctl");
    let home = work.path().join("github-home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let github_path = work.path().join("github-path");
    let env = [
        ("HOME", home.as_os_str()),
        ("GITHUB_PATH", github_path.as_os_str()),
        ("MEMBERCTL_VERSION", version.as_ref()),
        ("MEMBERCTL_DOWNLOAD_URL", mirror.as_ref()),
    ];
    let out = run_bash(install, work.path(), &env);
    assert_ran("github-actions.yml's install step", &out);
    let bin = home.join(".cache/memberctl").join(version);
    assert_eq!(std::fs::read_to_string(&github_path).expect("GITHUB_PATH"), format!("{}\n", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{asset}: OK")), "the checksum was checked:\n{stdout}");
    assert!(stdout.lines().any(|l| l == concat!("memberctl ", env!("CARGO_PKG_VERSION"))), "--version ran:\n{stdout}");
    // A cache hit (the directory actions/cache restores) downloads nothing.
    let offline = [env[0], env[1], env[2], ("MEMBERCTL_DOWNLOAD_URL", "file:///nonexistent".as_ref())];
    assert_ran("a cached install", &run_bash(install, work.path(), &offline));

    // 3. GitLab: the default before_script, then the job's script, in one shell.
    let example = pipeline("examples/ci/gitlab-ci.yml");
    let before = example["default"]["before_script"][0].as_str().expect("before_script");
    let project = work.path().join("gitlab-project");
    std::fs::create_dir_all(&project).expect("mkdir");
    let out = run_bash(
        &format!("{before}\ncommand -v memberctl"),
        &project,
        &[("MEMBERCTL_VERSION", version.as_ref()), ("MEMBERCTL_DOWNLOAD_URL", mirror.as_ref())],
    );
    assert_ran("gitlab-ci.yml's before_script", &out);
    let found = project.join(".memberctl").join(version).join("memberctl");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(&format!("{}\n", found.display())), "memberctl on PATH");

    // 4. A download that does not match its checksum installs nothing.
    let mut tampered = std::fs::read(dist.join(&asset)).expect("asset");
    tampered.extend_from_slice(b"tampered");
    std::fs::write(dist.join(&asset), tampered).expect("tamper");
    let home = work.path().join("tampered-home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let out = run_bash(install, work.path(), &[("HOME", home.as_os_str()), env[1], env[2], env[3]]);
    assert!(!out.status.success(), "a tampered archive was accepted");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{asset}: FAILED")), "sha256sum refused it");
    assert!(!home.join(".cache/memberctl").join(version).exists(), "nothing is installed, so nothing is cached");
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
    // DESIGN's four counts first, where scripts read them (a review found
    // the resends in the middle of the line).
    assert!(
        out.stdout.contains("Plan: 0 to invite, 0 to update, 0 to remove, 0 manual. 2 to resend."),
        "{}",
        out.rendered()
    );
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

// Found by a review: appending to a file the config does not read took the
// same rows twice, and appending to a `members: []` file left it unreadable.
#[test]
fn csv_import_appends_each_row_once_and_never_breaks_the_file() {
    let yaml = BASE.replace("members: []\n", "members:\n  - email: ana@example.com\n");
    let t = Test::new().config(&yaml).file("people.csv", "email\nx1@example.com\n");
    t.cmd(&["import", "csv", "people.csv", "--append", "imported.yaml"]).expect(0);
    let out = t.cmd(&["import", "csv", "people.csv", "--append", "imported.yaml"]).expect(1);
    assert!(out.stderr.contains("defined twice"), "{}", out.rendered());
    assert_eq!(t.read("imported.yaml").matches("x1@example.com").count(), 1, "{}", t.read("imported.yaml"));
    t.write("flow.yaml", "members: []\n");
    let out = t.cmd(&["import", "csv", "people.csv", "--append", "flow.yaml"]).expect(1);
    assert!(out.stderr.contains("written on one line"), "{}", out.rendered());
    assert_eq!(t.read("flow.yaml"), "members: []\n");
}
