//! Config validation defects from issue #9, checked through the real binary
//! where the binary already shows them, and the problem renderer through
//! the library (the CLI switches to it separately).

use std::fmt::Write as _;
use std::path::Path;

use memberctl::config::{load_str, render_problems, ConfigError};

use crate::support::harness::Test;

const PROVIDERS: &str = "version: 1\nproviders:\n  sandbox: { type: sandbox }\nroles:\n  member: { sandbox: r1 }\n";

// Regression: #9 defect 6, `defaults.note` in two files took the last one silently.
#[test]
fn defaults_note_in_two_files_is_a_duplicate_naming_both() {
    let t = Test::new().file("conf/00-main.yaml", &format!("{PROVIDERS}defaults:\n  note: Welcome\n")).file(
        "conf/10-team.yaml",
        "defaults:\n  note: Hello team\nmembers:\n  - email: a@example.com\n    name: A A\n",
    );
    let out = t.cmd(&["validate", "-c", "conf"]).expect(1);
    let stderr = out.rendered();
    assert!(stderr.contains("error: `defaults.note` is defined twice"), "{stderr}");
    assert!(stderr.contains(" --> conf/10-team.yaml:2:3"), "{stderr}");
    assert!(stderr.contains("(first defined at conf/00-main.yaml:7:3)"), "{stderr}");
}

// Regression: #9 defect 6, `validate` accepted a base URL with a user and
// password that apply then refused; the password must never be echoed.
#[test]
fn base_url_with_credentials_is_refused_by_validate_without_echoing_them() {
    let yaml = "version: 1\nproviders:\n  community:\n    type: networked\n    base_url: https://admin:s3cret-pass@api.example.com/v1\nroles:\n  member: { community: 69baa36beddb9f0012fdf101 }\nmembers:\n  - email: a@example.com\n    name: A A\n    roles: [member]\n";
    let out = Test::new().config(yaml).cmd(&["validate"]).expect(1);
    let rendered = out.rendered();
    assert!(rendered.contains("error: `base_url` carries a user name or password"), "{rendered}");
    assert!(rendered.contains("memberctl.yaml:5:15"), "{rendered}");
    assert!(rendered.contains("hint: remove it from the URL"), "{rendered}");
    assert!(rendered.contains("base_url: https://[redacted]@api.example.com/v1"), "{rendered}");
    assert!(!rendered.contains("s3cret"), "{rendered}");
    assert!(!rendered.contains("admin"), "{rendered}");
}

/// A config whose `count` members each make the same two mistakes: a group
/// with no id for their provider, and an unknown key.
fn flood(count: usize) -> String {
    let mut yaml = String::from(
        "version: 1\nproviders:\n  work:\n    type: aptly\n    tenant_id: 42db2b59-b9c6-4705-a0d9-916e597cd4aa\ngroups:\n  eng: { other: x }\nmembers:\n",
    );
    for i in 0..count {
        writeln!(yaml, "  - email: m{i}@example.com\n    name: Member Number{i}\n    groups: [eng]\n    nmae: typo")
            .expect("writing to a String");
    }
    yaml
}

fn problems_of(yaml: &str) -> Vec<memberctl::config::Problem> {
    match load_str(Path::new("members.yaml"), yaml) {
        Err(ConfigError::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

// Found by a review: a key given twice in one mapping (a provider, a
// catalog name, a provider of a catalog name, a `min_members` role) was
// accepted, the last one silently winning.
#[test]
fn a_key_given_twice_in_one_mapping_is_an_error() {
    let base = "version: 1\nproviders:\n  sandbox: { type: sandbox }\nroles:\n  member: { sandbox: r1 }\nmembers: []\n";
    for (twice, key) in [
        (
            base.replace(
                "  sandbox: { type: sandbox }\n",
                "  sandbox: { type: sandbox }\n  sandbox: { type: sandbox, outbox: b.jsonl }\n",
            ),
            "sandbox",
        ),
        (
            base.replace("  member: { sandbox: r1 }\n", "  member: { sandbox: r1 }\n  member: { sandbox: r2 }\n"),
            "member",
        ),
        (base.replace("  member: { sandbox: r1 }\n", "  member: { sandbox: r1, sandbox: r2 }\n"), "sandbox"),
        (format!("{base}policy:\n  min_members: {{ member: 1, member: 2 }}\n"), "member"),
    ] {
        let problems = problems_of(&twice);
        assert_eq!(problems.len(), 1, "{twice}\n{problems:?}");
        let message = problems[0].message.as_str();
        assert!(message.contains(&format!("`{key}` is defined twice in this mapping")), "{twice}\n{message}");
        assert!(problems[0].place.position.is_some(), "placed: {problems:?}");
    }
}

// Found by a review: a field given twice was placed at its member's first
// line (or line 1), not at the second of the two.
#[test]
fn a_field_given_twice_is_placed_at_the_second() {
    for (yaml, line) in [
        ("version: 1\nmembers:\n  - email: a@example.com\n    name: A\n    name: B\n", 5),
        ("version: 1\nversion: 1\nmembers: []\n", 2),
    ] {
        let problems = problems_of(yaml);
        assert!(problems[0].message.contains("duplicate field"), "{problems:?}");
        assert_eq!(problems[0].place.position.map(|at| at.line), Some(line), "{yaml}\n{problems:?}");
    }
}

// Regression: #9 defect 5, every repeated problem printed its own snippet.
#[test]
fn repeated_problems_show_ten_snippets_per_rule_then_one_line_each() {
    let problems = problems_of(&flood(25));
    // `eng` names provider `other` (catalog problem) once, then two per member.
    assert_eq!(problems.len(), 51);
    let rendered = render_problems(&problems, false);
    assert_eq!(rendered.matches("-->").count(), 21, "{rendered}");
    insta::assert_snapshot!("problems_flood", rendered);

    let all = render_problems(&problems, true);
    assert_eq!(all.matches("-->").count(), 51);
    assert!(!all.contains("more `"));
    assert!(all.ends_with("error: 51 problems in the configuration; nothing was sent\n"));
}

#[test]
fn thousands_of_repeated_problems_stay_short() {
    let problems = problems_of(&flood(6_668));
    let rendered = render_problems(&problems, false);
    assert!(rendered.lines().count() < 200, "{} lines", rendered.lines().count());
    assert!(rendered.contains("… and 6,658 more `group has no id for provider` (lines 51, 55, 59, …)\n"), "{rendered}");
    assert!(rendered.contains("… and 6,658 more `unknown key` (lines 52, 56, 60, …)\n"), "{rendered}");
    assert!(rendered.ends_with("error: 13,337 problems in the configuration; nothing was sent\n"), "{rendered}");
}

// Regression: #9, found by `fuzz::config_loader_on_mutated_examples`: a file
// serde_yaml reads as two documents was reported without any position, and
// an error at the end of a file without a final newline pointed past it.
#[test]
fn parse_errors_point_inside_the_file() {
    let cases = [
        ("# comment\n  sandbox:\n    type: sandbox\nroles:\n  member: {}\n", 4),
        ("version: 1\nroles:\n  member: { sandbox: role", 3),
    ];
    for (yaml, line) in cases {
        let problems = problems_of(yaml);
        let position = problems[0].place.position.unwrap_or_else(|| panic!("no position: {problems:?}"));
        assert_eq!(position.line, line, "{problems:?}");
        assert!(problems[0].snippet.is_some(), "{problems:?}");
    }
}

/// `validate --format json` of `yaml`: each problem's line and rule, and
/// the output.
fn lines_and_rules(yaml: &str) -> (Vec<(u64, String)>, crate::support::harness::Output) {
    let out = Test::new().config(yaml).cmd(&["validate", "--format", "json"]).expect(1);
    let problems: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON list");
    let found = problems
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| (p["line"].as_u64().expect("placed"), p["rule"].as_str().expect("a rule").to_owned()))
        .collect();
    (found, out)
}

// A value of the wrong type or an unknown enum value used to stop the file
// there: every other problem in it was said only once that one was fixed.
#[test]
fn a_value_of_the_wrong_type_does_not_hide_the_other_problems_in_its_file() {
    let yaml = "version: 1\nprovders: {}\nproviders:\n  sb: { type: sandbox }\n  gone: { type: sandbx }\nroles:\n  member: { sb: r1 }\ndefaults:\n  providers: [sb]\nmembers:\n  - email: bad\n  - email: ok@example.com\n    providers: sb\n  - email: x@example.com\n    method: drect\n  - email: y@example.com\n    rols: [member]\n";
    let (found, out) = lines_and_rules(yaml);
    let expected = [(2, "unknown-key"), (5, "parse"), (11, "email"), (13, "parse"), (15, "parse"), (17, "unknown-key")];
    assert_eq!(found, expected.map(|(line, rule)| (line, rule.to_owned())), "{}", out.rendered());
    let text = out.stdout;
    assert!(text.contains("unknown variant `sandbx`") && text.contains("unknown variant `drect`"), "{text}");
    assert!(text.contains("members[1].providers: invalid type: string"), "{text}");
}

// Found by a review of the above: a member left out shifted the ones after
// it (their problems named the member before), and a provider left out for
// its `type` made every reference to it an "unknown provider" too.
#[test]
fn what_salvage_leaves_out_keeps_the_places_and_hides_only_consequences() {
    let yaml = "version: 1\nproviders:\n  sb: { type: sandbox }\n  community: { type: sandboxx }\nroles:\n  member: { sb: r1, community: r2 }\ndefaults:\n  providers: [sb, community]\n  roles: [member]\nmembers:\n  - email: a@example.com\n  - b@example.com\n  - email: c@example.com\n  - email: d@example.com\n    method: bogus\n  - email: e@example.com\n    roles: [nope]\n";
    let (found, out) = lines_and_rules(yaml);
    let expected = [(4, "parse"), (12, "parse"), (15, "parse"), (17, "unknown-role")];
    assert_eq!(found, expected.map(|(line, rule)| (line, rule.to_owned())), "{}", out.rendered());
}

// Regression: #9 defect 5, through the real binary: `validate` shows ten
// snippets of each kind; `--all` shows every one.
#[test]
fn validate_shows_ten_of_each_problem_and_all_with_the_flag() {
    let t = crate::support::harness::Test::new().config(&flood(25));
    let out = t.cmd(&["validate"]).expect(1);
    assert_eq!(out.stderr.matches("-->").count(), 21, "{}", out.stderr);
    assert!(out.stderr.contains("… and 15 more `unknown key`"), "{}", out.stderr);
    assert!(out.stderr.contains("--all"), "the output says how to see everything: {}", out.stderr);
    let all = t.cmd(&["validate", "--all"]).expect(1);
    assert_eq!(all.stderr.matches("-->").count(), 51, "{}", all.stderr);
}

/// A plain file of `count` members, large enough to be cut into pieces
/// parsed and resolved on several threads (1 MiB and over); member `i`
/// starts on line `7 + 3 * i`, with its email, name and note lines taken
/// from `member(i)`.
fn large(count: usize, member: impl Fn(usize) -> [String; 3]) -> String {
    let mut yaml = format!("{PROVIDERS}members:\n");
    for i in 0..count {
        let [email, name, note] = member(i);
        writeln!(yaml, "  - email: {email}\n    {name}\n    {note}").expect("writing to a String");
    }
    assert!(yaml.len() > 1 << 20, "only {} bytes: not cut into pieces", yaml.len());
    yaml
}

fn plain_member(i: usize) -> [String; 3] {
    [format!("member.{i}@example.com"), format!("name: Member Number {i}"), format!("note: {}", "x".repeat(300))]
}

/// Where `problems` has one with `message` (a part of it), and its line.
fn line_of(problems: &[memberctl::config::Problem], message: &str) -> usize {
    let problem = problems
        .iter()
        .find(|p| p.message.contains(message))
        .unwrap_or_else(|| panic!("no problem saying {message:?} in {problems:#?}"));
    problem.place.position.unwrap_or_else(|| panic!("no position: {problem:?}")).line
}

// Regression: #13, a large file is parsed and resolved in pieces, each on a
// worker that sees only its own members: problems must still name the
// right member, and a duplicate in a later piece must still be found.
#[test]
fn problems_in_a_large_file_cut_into_pieces_point_at_their_members() {
    let yaml = large(4_000, |i| {
        let [email, name, note] = plain_member(i);
        match i {
            1_500 => ["not-an-email".to_owned(), name, note],
            2_600 => [email, name, "nmae: typo".to_owned()],
            3_900 => ["Member.10@Example.com".to_owned(), name, note],
            _ => [email, name, note],
        }
    });
    let problems = problems_of(&yaml);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert_eq!(line_of(&problems, "`not-an-email` is not a valid email address"), 7 + 3 * 1_500);
    assert_eq!(line_of(&problems, "unknown key `nmae`"), 7 + 3 * 2_600 + 2);
    let twice = "member `Member.10@Example.com` is defined twice (first defined at members.yaml:37:";
    assert_eq!(line_of(&problems, twice), 7 + 3 * 3_900);
}

// Regression: #13, a piece the fast reader declines (a block scalar) makes
// the whole file read by `serde_yaml`, as a small file would be.
#[test]
fn a_large_file_with_a_piece_the_fast_reader_declines_is_read_whole() {
    let yaml = large(4_000, |i| {
        let [email, name, note] = plain_member(i);
        if i == 3_000 {
            [email, name, "note: |\n      a block\n      of text".to_owned()]
        } else {
            [email, name, note]
        }
    });
    let config = load_str(Path::new("members.yaml"), &yaml).expect("the file is valid");
    assert_eq!(config.member_count, 4_000);
    assert_eq!(config.desired.len(), 4_000);
    let address = memberctl::address::Address::new("sandbox", "member.3000@example.com");
    let attributes = config.desired.get(&address).expect("member 3000 is configured");
    assert_eq!(attributes.note.as_deref(), Some("a block\nof text\n"));
    let last = memberctl::address::Address::new("sandbox", "member.3999@example.com");
    assert_eq!(config.desired.get(&last).and_then(|a| a.name.as_deref()), Some("Member Number 3999"));
}
