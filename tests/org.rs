//! Git-managed membership at organisation scale (#12): readable plans, recursive config
//! directories, ownership rules, policy, and diagnostics for CI.

use crate::support::harness::Test;

const NETWORKED_AND_APTLY: &str = include_str!("../examples/networked-and-aptly/memberctl.yaml");

/// Jane recorded as a moderator with the `pro` plan, Maryam in a group no
/// catalog entry maps to (deleted from the config since).
const RECORDED: &str = r#"{
  "format_version": 1,
  "lineage": "12af94a6-33c7-4dfa-aacf-eeb21633d111",
  "serial": 1,
  "resources": [
    {
      "address": "community/jane.doe@example.com",
      "provider": "community",
      "email": "jane.doe@example.com",
      "status": "invited",
      "attributes": {
        "email": "jane.doe@example.com",
        "name": "Jane Doe",
        "roles": ["69baa36beddb9f0012fdf102"],
        "plans": ["6a1f00000000000000000001"]
      },
      "remote": {},
      "created_at": "2026-12-01T21:13:26Z",
      "updated_at": "2026-12-01T21:13:26Z"
    },
    {
      "address": "workforce/maryam.smith@example.com",
      "provider": "workforce",
      "email": "maryam.smith@example.com",
      "status": "invited",
      "attributes": {
        "email": "maryam.smith@example.com",
        "first_name": "Maryam",
        "last_name": "Smith",
        "phone": "+1 (555) 123-4567",
        "roles": ["bbc5418c-8d81-4756-b3e6-84e1e87f06c3"],
        "groups": ["0d9e6f4c-54a1-4c7e-9a3c-1f2e3d4c5b6a"],
        "primary_group": "0d9e6f4c-54a1-4c7e-9a3c-1f2e3d4c5b6a",
        "positions": ["b545c2fe-681c-4cf6-a6f6-e0bcea69bad3"],
        "manager_id": "623010c7-bbd4-4cab-94ca-a3b617a74933"
      },
      "remote": {},
      "created_at": "2026-12-01T21:13:26Z",
      "updated_at": "2026-12-01T21:13:26Z"
    }
  ]
}"#;

fn readable() -> Test {
    Test::new()
        .config(&NETWORKED_AND_APTLY.replace(
            "  - email: jane.doe@example.com\n    name: Jane Doe\n",
            "  - email: jane.doe@example.com\n    name: Jane Doe\n    roles: [member]\n",
        ))
        .state(RECORDED)
}

#[test]
fn text_plans_show_catalog_names_for_networked_and_aptly_ids() {
    let out = readable().cmd(&["plan"]).expect(0);
    insta::assert_snapshot!("readable_text", out.rendered());
    assert!(out.stdout.contains("      - roles: moderator\n"), "{}", out.stdout);
    assert!(out.stdout.contains("      + roles: member\n"), "{}", out.stdout);
    assert!(out.stdout.contains("groups: 0d9e6f4c-54a1-4c7e-9a3c-1f2e3d4c5b6a (not in catalog)"), "{}", out.stdout);
    assert!(!out.stdout.contains("69baa36beddb9f0012fdf10"), "{}", out.stdout);
}

#[test]
fn markdown_plans_show_catalog_names_for_networked_and_aptly_ids() {
    let out = readable().cmd(&["plan", "--format", "markdown"]).expect(0);
    insta::assert_snapshot!("readable_markdown", out.rendered());
    assert!(out.stdout.contains("update by hand: roles: moderator → member"), "{}", out.stdout);
    assert!(
        out.stdout.contains("groups: 0d9e6f4c-54a1-4c7e-9a3c-1f2e3d4c5b6a (not in catalog) → engineering"),
        "{}",
        out.stdout
    );
}

#[test]
fn json_plans_keep_ids_and_add_names_beside_them() {
    let out = readable().cmd(&["plan", "--format", "json"]).expect(0);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let jane = &plan["changes"][0];
    assert_eq!(jane["address"], "community/jane.doe@example.com");
    assert_eq!(jane["fields"][0]["before"], "[69baa36beddb9f0012fdf102]");
    assert_eq!(jane["fields"][0]["before_names"], "moderator");
    assert_eq!(jane["fields"][0]["after_names"], "member");
    assert_eq!(jane["names"]["roles"]["69baa36beddb9f0012fdf101"], "member");
    assert_eq!(jane["names"]["plans"]["6a1f00000000000000000001"], "pro");
    let maryam = &plan["changes"][1];
    // An id no catalog maps to has no name: it is absent, not invented.
    assert!(maryam["names"]["groups"].get("0d9e6f4c-54a1-4c7e-9a3c-1f2e3d4c5b6a").is_none());
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/plan.schema.json")).expect("plan schema");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    assert!(validator.is_valid(&plan), "the plan does not match schema/plan.schema.json");
}

const ROOT: &str = "version: 1\nproviders:\n  sandbox: { type: sandbox }\nroles:\n  member: { sandbox: role-member }\n  admin: { sandbox: role-admin }\ndefaults:\n  roles: [member]\n";

#[test]
fn directories_are_read_recursively_in_path_order_skipping_hidden_folders_and_links() {
    let t = Test::new()
        .file("org/memberctl.yaml", ROOT)
        .file("org/teams/design/members.yaml", "members:\n  - email: dee@example.com\n")
        .file("org/teams/web/members.yml", "members:\n  - email: wes@example.com\n")
        .file("org/.github/workflows/plan.yml", "on: push\njobs: {}\n")
        .file("outside/extra.yaml", "members:\n  - email: sneaky@example.com\n");
    #[cfg(unix)]
    std::os::unix::fs::symlink(t.path().join("outside"), t.path().join("org/teams/linked")).expect("symlink");
    let out = t.cmd(&["validate", "-c", "org"]).expect(0);
    assert_eq!(
        out.stdout,
        "The configuration is valid: 2 member(s), 2 address(es) at 1 provider(s), from `org/memberctl.yaml`, \
         `org/teams/design/members.yaml`, `org/teams/web/members.yml`.\n"
    );
}

#[test]
fn problems_in_nested_files_name_the_nested_file() {
    let t = Test::new()
        .file("org/memberctl.yaml", ROOT)
        .file("org/teams/design/members.yaml", "members:\n  - email: dee@example.com\n    roles: [mmber]\n");
    let out = t.cmd(&["validate", "-c", "org"]).expect(1);
    assert!(out.stderr.contains("--> org/teams/design/members.yaml:3:13"), "{}", out.stderr);
}

/// A platform file with two rules: every team file may grant only `member`
/// and no plan; the design folder only `workforce` and the `design` group.
const PLATFORM: &str = r#"version: 1
providers:
  community: { type: networked }
  workforce: { type: aptly, tenant_id: 42db2b59-b9c6-4705-a0d9-916e597cd4aa }
roles:
  member: { community: 69baa36beddb9f0012fdf101, workforce: bbc5418c-8d81-4756-b3e6-84e1e87f06c3 }
  admin: { community: 69baa36beddb9f0012fdf103 }
plans:
  pro: { community: 6a1f00000000000000000001 }
groups:
  design: { workforce: e9100cc7-048a-4d01-a64f-9e0030938f6a }
  engineering: { workforce: 5f0c3b0e-8a53-4d5c-9d0e-2b8f7c6a1d42 }
owners:
  - files: "teams/**"
    roles: [member]
    plans: []
  - files: "teams/design/**"
    providers: [workforce]
    groups: [design]
members: []
"#;

fn owned() -> Test {
    Test::new().file("org/memberctl.yaml", PLATFORM)
}

#[test]
fn members_of_a_nested_team_folder_may_grant_only_what_every_matching_rule_allows() {
    let t = owned().file(
        "org/teams/design/contractors/members.yaml",
        "members:\n  - email: dee@example.com\n    name: Dee Signer\n    providers: [workforce, community]\n    roles: [admin]\n    groups: [engineering]\n",
    );
    let out = t.cmd(&["validate", "-c", "org"]).expect(1);
    insta::assert_snapshot!("owners_nested_violations", out.rendered());
    // Both rules apply: the folder's own rule cannot loosen `teams/**`.
    assert!(out.stderr.contains("owners rule `teams/**` (owners[0] in `org/memberctl.yaml`)"), "{}", out.stderr);
    assert!(out.stderr.contains("owners rule `teams/design/**` (owners[1] in `org/memberctl.yaml`)"), "{}", out.stderr);
    assert!(out.stderr.contains("--> org/teams/design/contractors/members.yaml:4:28"), "{}", out.stderr);
}

#[test]
fn an_empty_list_allows_none_and_a_left_out_key_does_not_restrict() {
    // `teams/web/` is matched by `teams/**` only: any provider and group, no plan.
    let t = owned().file(
        "org/teams/web/members.yaml",
        "members:\n  - email: wes@example.com\n    name: Wes Web\n    providers: [community]\n    roles: [member]\n    plans: [pro]\n",
    );
    let out = t.cmd(&["validate", "-c", "org"]).expect(1);
    assert!(
        out.stderr.contains("error: member `wes@example.com` is given plan `pro`, which owners rule `teams/**`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: the rule allows no plans;"), "{}", out.stderr);
    assert!(out.stderr.contains("error: 1 problem in the configuration"), "{}", out.stderr);
}

#[test]
fn defaults_count_as_what_a_team_member_grants() {
    let platform = PLATFORM.replace("members: []\n", "defaults:\n  roles: [admin]\nmembers: []\n");
    let t = Test::new().file("org/memberctl.yaml", &platform).file(
        "org/teams/web/members.yaml",
        "members:\n  - email: wes@example.com\n    name: Wes Web\n    providers: [community]\n",
    );
    let out = t.cmd(&["validate", "-c", "org"]).expect(1);
    assert!(out.stderr.contains("is given role `admin` (from `defaults`)"), "{}", out.stderr);
    assert!(out.stderr.contains("--> org/teams/web/members.yaml:2:"), "{}", out.stderr);
}

#[test]
fn a_file_no_rule_matches_is_unrestricted() {
    let t = owned().file(
        "org/platform/admins.yaml",
        "members:\n  - email: boss@example.com\n    name: Boss\n    providers: [community]\n    roles: [admin]\n    plans: [pro]\n",
    );
    t.cmd(&["validate", "-c", "org"]).expect(0);
}

#[test]
fn a_restricted_file_may_declare_only_version_and_members() {
    let t = owned().file(
        "org/teams/design/members.yaml",
        "version: 1\nroles:\n  lead: { workforce: 0d9e6f4c-54a1-4c7e-9a3c-1f2e3d4c5b6a }\nowners:\n  - files: \"**\"\nmembers: []\n",
    );
    let out = t.cmd(&["validate", "-c", "org"]).expect(1);
    insta::assert_snapshot!("owners_restricted_file_keys", out.rendered());
    assert_eq!(
        out.stderr.matches("[owned-file-key]").count()
            + out.stderr.matches("cannot be declared in a file covered").count(),
        2,
        "{}",
        out.stderr
    );
}

#[test]
fn a_restricted_file_may_declare_no_other_top_level_block() {
    // Regression: #12 (every block but `version` and `members` is the
    // platform team's: settings, policy, where the state lives, providers).
    for (key, block) in [
        ("providers", "providers:\n  mine: { type: sandbox }\n"),
        ("plans", "plans:\n  pro: { community: 6a1f00000000000000000000 }\n"),
        ("groups", "groups:\n  eng: { workforce: 0d9e6f4c-54a1-4c7e-9a3c-1f2e3d4c5b6a }\n"),
        ("positions", "positions:\n  dev: { workforce: 0d9e6f4c-54a1-4c7e-9a3c-1f2e3d4c5b6a }\n"),
        ("defaults", "defaults:\n  roles: [member]\n"),
        ("safety", "safety:\n  max_changes: 100000\n"),
        ("invites", "invites:\n  resend_after: 1d\n"),
        ("policy", "policy:\n  required: []\n"),
        ("state", "state:\n  path: elsewhere.state.json\n"),
    ] {
        let t = owned().file("org/teams/design/members.yaml", &format!("members: []\n{block}"));
        let out = t.cmd(&["validate", "-c", "org"]).expect(1);
        assert!(
            out.stderr.contains(&format!("`{key}` cannot be declared in a file covered")),
            "{key}: {}",
            out.rendered()
        );
    }
}

#[test]
fn a_restricted_file_may_not_declare_renames() {
    // Regression: #10 (`moved:` hands a recorded user to another address:
    // not a team file's call).
    let t = owned().file(
        "org/teams/design/members.yaml",
        "members: []\nmoved:\n  - from: old@example.com\n    to: new@example.com\n",
    );
    let out = t.cmd(&["validate", "-c", "org"]).expect(1);
    assert!(out.stderr.contains("`moved` cannot be declared in a file covered"), "{}", out.stderr);
}

#[test]
fn rules_with_unknown_names_or_bad_globs_are_refused() {
    let platform = PLATFORM
        .replace("    roles: [member]\n", "    roles: [membr]\n")
        .replace("files: \"teams/design/**\"", "files: \"teams/[design/**\"");
    let out = Test::new().file("org/memberctl.yaml", &platform).cmd(&["validate", "-c", "org"]).expect(1);
    assert!(out.stderr.contains("error: unknown role `membr`"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: did you mean `member`?"), "{}", out.stderr);
    assert!(out.stderr.contains("error: `teams/[design/**` is not a glob"), "{}", out.stderr);
}

#[test]
fn the_org_example_validates_as_a_directory_and_its_team_files_match_the_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Test::new().cmd(&["validate", "-c", root.join("examples/org").to_str().expect("utf-8")]).expect(0);
    assert!(out.stdout.contains("5 member(s)"), "{}", out.stdout);
    assert!(out.stdout.contains("teams/design/members.yaml"), "{}", out.stdout);
    let codeowners = std::fs::read_to_string(root.join("examples/org/CODEOWNERS")).expect("CODEOWNERS");
    for owned in ["/teams/design/", "/teams/web/", "/memberctl.yaml"] {
        assert!(codeowners.lines().any(|l| l.starts_with(owned)), "CODEOWNERS has no line for {owned}");
    }
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schema/memberctl.schema.json")).expect("schema"))
            .expect("json");
    let validator = jsonschema::draft7::new(&schema).expect("a valid draft-07 schema");
    for file in ["memberctl.yaml", "teams/design/members.yaml", "teams/web/members.yaml"] {
        let text = std::fs::read_to_string(root.join("examples/org").join(file)).expect("example");
        let instance: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
        let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{file} does not match the schema: {errors:?}");
    }
}

const ADMINS: &str = r#"version: 1
providers:
  community: { type: networked }
roles:
  member: { community: 69baa36beddb9f0012fdf101 }
  admin: { community: 69baa36beddb9f0012fdf103 }
defaults:
  roles: [member]
policy:
  min_members: { admin: 2 }
  required: [community/owner@example.com]
members:
  - email: owner@example.com
    name: Olu Owner
    roles: [admin]
  - email: second@example.com
    name: Sam Second
    roles: [admin]
"#;

#[test]
fn policy_holds_when_it_is_met() {
    Test::new().config(ADMINS).cmd(&["validate"]).expect(0);
}

#[test]
fn removing_an_admin_below_min_members_is_refused() {
    let t = Test::new().config(&ADMINS.replace("    roles: [admin]\n", "    roles: [member]\n"));
    let out = t.cmd(&["plan"]).expect(1);
    insta::assert_snapshot!("policy_min_members", out.rendered());
    assert!(out.stderr.contains(
        "error: 0 member(s) of `community` would hold role `admin`, but `policy.min_members` asks for at least 2"
    ));
}

#[test]
fn dropping_a_required_address_is_refused() {
    let t = Test::new().config(&ADMINS.replace("owner@example.com\n    name: Olu", "other@example.com\n    name: Olu"));
    let out = t.cmd(&["validate"]).expect(1);
    assert!(out.stderr.contains(
        "error: `community/owner@example.com` must stay configured (`policy.required`), but no member declares it\n  --> memberctl.yaml:11:14"
    ), "{}", out.stderr);
    assert!(out.stderr.contains("error: 1 problem in the configuration"), "{}", out.stderr);
}

/// `n` members applied to the sandbox, recorded in the state.
fn seeded(n: usize) -> Test {
    let t = Test::new().config(&keeping(n));
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    t
}

fn keeping(n: usize) -> String {
    let mut config = "version: 1\nproviders:\n  sandbox: { type: sandbox }\nmembers:\n".to_owned();
    for i in 0..n {
        config.push_str(&format!("  - email: m{i}@example.com\n    name: M {i}\n"));
    }
    config
}

#[test]
fn removing_more_than_max_removal_fraction_warns_in_the_plan_and_brakes_apply() {
    // 12 of 20 recorded members removed: 0.6, over the default 0.25.
    let t = seeded(20);
    t.write("memberctl.yaml", &keeping(8));
    let plan = t.cmd(&["plan"]).expect(0);
    assert!(plan.stdout.starts_with(
        "warning: safety brake: this plan removes 12 of the 20 members recorded at `sandbox`, more than `safety.max_removal_fraction` (0.25); apply will refuse it unless run with `--max-removal-fraction 0.60`\n"
    ), "{}", plan.stdout);
    let markdown = t.cmd(&["plan", "--format", "markdown"]).expect(0);
    assert!(
        markdown.stdout.contains("this plan removes 12 of the 20 members recorded at `sandbox`"),
        "{}",
        markdown.stdout
    );

    let refused = t.cmd(&["apply", "--auto-approve"]).expect(1);
    insta::assert_snapshot!("removal_fraction_brake", refused.rendered());
    assert!(!t.read("memberctl.outbox.jsonl").contains(r#""op":"remove""#), "nothing may be sent");

    // Too little is still refused; enough lets this one run through.
    let short = t.cmd(&["apply", "--auto-approve", "--max-removal-fraction", "0.5"]).expect(1);
    assert!(short.stdout.contains("more than `safety.max_removal_fraction` (0.5)"), "{}", short.rendered());
    let through = t.cmd(&["apply", "--auto-approve", "--max-removal-fraction", "0.6"]).expect(0);
    assert!(!through.rendered().contains("safety brake"), "{}", through.rendered());
    t.cmd(&["plan", "--detailed-exitcode"]).expect(0);
}

#[test]
fn the_removal_fraction_brake_needs_ten_removals_and_reads_the_config() {
    // 9 of 10: most of the provider, but fewer than ten removals.
    let t = seeded(10);
    t.write("memberctl.yaml", &keeping(1));
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    // 10 of 40 is 0.25: not more than the default.
    let t = seeded(40);
    t.write("memberctl.yaml", &keeping(30));
    let plan = t.cmd(&["plan", "--format", "json"]).expect(0);
    assert!(
        plan.stdout.contains(r#""recorded_members": {"#) && !plan.stdout.contains("safety brake"),
        "{}",
        plan.stdout
    );
    // A stricter `safety.max_removal_fraction` brakes the same plan.
    t.write("memberctl.yaml", &keeping(30).replace("members:\n", "safety:\n  max_removal_fraction: 0.2\nmembers:\n"));
    let out = t.cmd(&["apply", "--auto-approve"]).expect(1);
    assert!(
        out.stderr
            .contains("error: the plan removes 10 of the 40 members recorded at `sandbox`, more than the limit of 0.2"),
        "{}",
        out.stderr
    );
}

/// A config with problems whose messages hold `:` and `,`, in a file whose
/// name holds both, under `config/`.
fn broken_in_repository(git: bool) -> Test {
    let t = Test::new()
        .file("config/memberctl.yaml", ROOT)
        .file("config/team a,b:c.yaml", "members:\n  - email: dee@example.com\n    roles: [mmber]\n    emial: x\n");
    if git {
        let status = std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(t.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", t.path())
            .status()
            .expect("git");
        assert!(status.success());
    }
    t
}

#[test]
fn validate_format_github_writes_one_escaped_workflow_command_per_problem() {
    let t = broken_in_repository(true);
    // Run from inside `config/`: paths are still relative to the repository.
    let out = t
        .command(&["validate", "--format", "github", "-c", "."])
        .current_dir(t.path().join("config"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "::error file=config/team a%2Cb%3Ac.yaml,line=3,col=13::unknown role `mmber`%0Ahint: did you mean `member`?",
            "::error file=config/team a%2Cb%3Ac.yaml,line=4,col=5::unknown key `emial`%0Ahint: did you mean `email`?",
        ]
    );
}

#[test]
fn outside_a_repository_github_paths_are_relative_to_the_current_directory() {
    let out = broken_in_repository(false).cmd(&["validate", "--format", "github", "-c", "config"]).expect(1);
    assert!(out.stdout.starts_with("::error file=config/team a%2Cb%3Ac.yaml,line=3,col=13::"), "{}", out.stdout);
}

#[test]
fn validate_format_json_lists_problems_by_the_committed_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/problems.schema.json")).expect("problems schema");
    let validator = jsonschema::draft7::new(&schema).expect("a valid draft-07 schema");
    let out = broken_in_repository(false).cmd(&["validate", "--format", "json", "-c", "config"]).expect(1);
    insta::assert_snapshot!("validate_json", out.rendered());
    let problems: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert!(validator.is_valid(&problems), "{}", out.stdout);
    assert_eq!(problems.as_array().map(Vec::len), Some(2));
    assert_eq!(problems[0]["rule"], "unknown-role");
    assert_eq!(problems[0]["file"], "config/team a,b:c.yaml");
    assert_eq!(problems[0]["line"], 3);

    let valid = Test::new().config(ROOT).cmd(&["validate", "--format", "json"]).expect(0);
    assert_eq!(valid.stdout, "[]\n");
    let missing = Test::new().cmd(&["plan", "--error-format", "json"]).expect(1);
    let problems: serde_json::Value = serde_json::from_str(&missing.stderr).expect("json on stderr");
    assert!(validator.is_valid(&problems), "{}", missing.stderr);
    assert_eq!(problems[0]["message"], "config file `memberctl.yaml` not found");
    assert_eq!(problems[0]["file"], serde_json::Value::Null);
    // Its causes too, as the human rendering says them (found by a review).
    let unlockable =
        Test::new().config(ROOT).cmd(&["plan", "--error-format", "json", "--state", "nowhere/x.json"]).expect(1);
    let problems: serde_json::Value = serde_json::from_str(&unlockable.stderr).expect("json on stderr");
    assert!(validator.is_valid(&problems), "{}", unlockable.stderr);
    let message = problems[0]["message"].as_str().expect("a message");
    assert!(message.contains("\ncaused by: "), "{message}");
}

#[test]
fn plan_and_apply_take_error_format_and_keep_stdout_for_the_plan() {
    let t = broken_in_repository(false);
    let plan = ["plan", "--format", "markdown", "--error-format", "github", "-c", "config"];
    let apply = ["apply", "--auto-approve", "--error-format", "github", "-c", "config"];
    for args in [&plan[..], &apply[..]] {
        let out = t.cmd(args).expect(1);
        assert_eq!(out.stdout, "", "{args:?}");
        assert_eq!(out.stderr.lines().count(), 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.lines().all(|l| l.starts_with("::error file=config/team a%2Cb%3Ac.yaml,line=")),
            "{}",
            out.stderr
        );
    }
    let other = Test::new().cmd(&["apply", "--error-format", "github"]).expect(1);
    assert_eq!(
        other.stderr,
        "::error::config file `memberctl.yaml` not found%0Ahint: run `memberctl init` to write a starter config, or pass `-c PATH`\n"
    );
}

/// The YAML of a CI example.
fn ci_example(name: &str) -> serde_yaml::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci").join(name);
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("example")).expect("YAML")
}

/// Every shell line of a job's steps or script.
fn job_lines(job: &serde_yaml::Value) -> Vec<String> {
    let mut texts = Vec::new();
    for key in ["steps", "script"] {
        for item in job[key].as_sequence().into_iter().flatten() {
            match item {
                serde_yaml::Value::String(text) => texts.push(text.clone()),
                step => texts.extend(step["run"].as_str().map(str::to_owned)),
            }
        }
    }
    texts.iter().flat_map(|t| t.lines().map(|l| l.trim().to_owned()).collect::<Vec<_>>()).collect()
}

#[test]
fn ci_examples_report_problems_where_ci_shows_them() {
    let github = ci_example("github-actions.yml");
    let plan = job_lines(&github["jobs"]["plan"]);
    assert!(
        plan.iter()
            .any(|l| l == "run: memberctl validate --format github" || l == "memberctl validate --format github"),
        "{plan:?}"
    );
    assert!(plan.iter().any(|l| l.starts_with("memberctl plan --format markdown --error-format github")), "{plan:?}");
    let gitlab = ci_example("gitlab-ci.yml");
    let plan = job_lines(&gitlab["plan"]);
    assert!(plan.iter().any(|l| l.starts_with("memberctl validate --format json > problems.json")), "{plan:?}");
}

#[test]
fn ci_examples_run_a_scheduled_drift_check_that_keeps_one_issue() {
    let github = ci_example("github-actions.yml");
    assert!(github["on"]["schedule"][0]["cron"].as_str().is_some(), "no schedule trigger");
    let drift = &github["jobs"]["drift"];
    assert!(drift["if"].as_str().is_some_and(|c| c.contains("'schedule'")));
    let lines = job_lines(drift);
    assert!(lines.iter().any(|l| l == "memberctl refresh --check > /dev/null"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("memberctl plan --refresh --format markdown")), "{lines:?}");
    let script = serde_yaml::to_string(drift).expect("yaml");
    for call in ["issues.listForRepo", "issues.update", "issues.create", "memberctl-drift"] {
        assert!(script.contains(call), "the drift job does not call {call}");
    }
    // Other jobs must not run on the schedule.
    for job in ["plan", "apply"] {
        let condition = github["jobs"][job]["if"].as_str().expect("condition");
        assert!(!condition.contains("schedule"), "{job}: {condition}");
    }

    let gitlab = ci_example("gitlab-ci.yml");
    let drift = &gitlab["drift"];
    assert_eq!(drift["rules"][0]["if"].as_str(), Some("$CI_PIPELINE_SOURCE == \"schedule\""));
    let lines = job_lines(drift);
    assert!(lines.iter().any(|l| l == "memberctl refresh --check > /dev/null && code=0 || code=$?"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("memberctl plan --refresh --format markdown > drift.md")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("labels=memberctl-drift")), "{lines:?}");
    let apply = gitlab["apply"]["rules"][0]["if"].as_str().expect("apply rule");
    assert!(apply.contains("$CI_PIPELINE_SOURCE != \"schedule\""), "apply would run on the schedule: {apply}");
}

#[test]
fn owners_globs_take_the_declaring_folder_literally() {
    // `[x]` in the folder's name is not a character class.
    let t = Test::new().file("org [x]/memberctl.yaml", PLATFORM).file(
        "org [x]/teams/web/members.yaml",
        "members:\n  - email: wes@example.com\n    name: Wes Web\n    providers: [community]\n    roles: [admin]\n",
    );
    let out = t.cmd(&["validate", "-c", "org [x]"]).expect(1);
    assert!(out.stderr.contains("is given role `admin`, which owners rule `teams/**`"), "{}", out.stderr);
}
