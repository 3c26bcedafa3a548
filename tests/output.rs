//! Output that cannot be written (issue #9, defect 1): a full disk is an
//! error (exit 1, a clear message), a closed pipe ends the run quietly
//! (exit 0), the same for every command that prints.

use std::process::Stdio;

use crate::lifecycle::QUICKSTART;
use crate::support::harness::{closed_stdout, Test};

/// Every command that prints something on stdout, with what it needs.
const PRINTING: &[&[&str]] = &[
    &["validate"],
    &["plan"],
    &["plan", "--format", "json"],
    &["plan", "--format", "markdown"],
    &["schema"],
    &["schema", "--plan"],
    &["completions", "bash"],
    &["completions", "zsh"],
    &["completions", "fish"],
    &["completions", "powershell"],
    &["completions", "elvish"],
    &["man"],
    &["state", "list"],
    &["state", "show", "sandbox/jane.doe@example.com"],
    &["state", "show", "sandbox/jane.doe@example.com", "--format", "json"],
    &["import", "csv", "people.csv"],
    &["validate", "--format", "json"],
    &["refresh", "--check"],
    &["plan", "--refresh"],
    &["import", "provider", "sandbox"],
    &["state", "pull"],
    &["--help"],
    &["plan", "--help"],
    &["--version"],
];

/// A test dir where every command in [`PRINTING`] has something to print:
/// a config, an applied state, a CSV file.
fn applied() -> Test {
    let t = Test::new().config(QUICKSTART).file("people.csv", "email,name\nnew.person@example.com,New Person\n");
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    // A change left for `plan` and `apply` to print.
    t.write("memberctl.yaml", &QUICKSTART.replace("    roles: [moderator]\n", "    roles: [member]\n"));
    t
}

fn run_with_stdout(t: &Test, args: &[&str], stdout: Stdio) -> (i32, String) {
    let output = t.command(args).stdout(stdout).stderr(Stdio::piped()).output().expect("run memberctl");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

// Regression: #9 defect 1: `plan --format json > /dev/full` exited 0 with
// nothing written.
#[test]
fn a_full_stdout_is_an_error_for_every_command() {
    let t = applied();
    for args in PRINTING {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full exists on Linux");
        let (code, stderr) = run_with_stdout(&t, args, Stdio::from(full));
        assert_eq!(code, 1, "`memberctl {}` must fail on a full stdout; stderr:\n{stderr}", args.join(" "));
        assert!(
            stderr.contains("cannot write to `<stdout>`") && stderr.contains("No space left on device"),
            "`memberctl {}` must say why; stderr:\n{stderr}",
            args.join(" ")
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

// Regression: #9 defect 1: `completions zsh | head -1` panicked (exit 101),
// `man | head -1` exited 1, `plan | head -1` exited 0. One behaviour now.
#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let t = applied();
    for args in PRINTING {
        let (code, stderr) = run_with_stdout(&t, args, closed_stdout());
        assert_eq!(code, 0, "`memberctl {}` on a closed pipe; stderr:\n{stderr}", args.join(" "));
        assert!(
            !stderr.contains("error") && !stderr.contains("panicked"),
            "`memberctl {}` must stay quiet on a closed pipe; stderr:\n{stderr}",
            args.join(" ")
        );
    }
}

// Found by a review: with its reader gone, `plan --detailed-exitcode --out
// FILE | head -1` exited 0 and saved nothing. The output is quiet; the plan
// file and the exit code are as without the pipe.
#[test]
fn a_closed_pipe_keeps_the_saved_plan_and_the_exit_code() {
    let t = applied();
    for format in ["text", "json", "markdown"] {
        let args = ["plan", "--detailed-exitcode", "--format", format, "--out", "saved.json"];
        let (code, stderr) = run_with_stdout(&t, &args, closed_stdout());
        assert_eq!(code, 2, "changes are present ({format}); stderr:\n{stderr}");
        assert!(stderr.contains("Saved the plan"), "{stderr}");
        assert!(t.read("saved.json").contains("\"changes\""), "the plan is saved ({format})");
        std::fs::remove_file(t.path().join("saved.json")).expect("remove");
    }
}

// Found by a review: with a reader that takes the first line and goes,
// what stdout still held failed to flush at the end, and that closed pipe
// made the exit code 0.
#[test]
fn a_reader_that_leaves_after_the_first_line_keeps_the_exit_code() {
    // More than a pipe holds, so that the writes fail part way.
    let mut yaml = QUICKSTART.to_owned();
    for i in 0..5_000 {
        yaml.push_str(&format!("  - email: person{i:04}@example.com\n    name: Person Number {i}\n"));
    }
    let t = Test::new().config(&yaml);
    let mut child = t
        .command(&["plan", "--detailed-exitcode"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("a first byte");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

// Found by a review: `apply --auto-approve | head -1` exited 0 having
// applied nothing. Nothing is sent when the plan cannot be shown, and the
// exit code says so; with nothing to send, a closed pipe stays quiet.
#[test]
fn apply_on_a_closed_pipe_sends_nothing_and_fails_unless_there_is_nothing_to_send() {
    let t = Test::new().config(QUICKSTART);
    let (code, stderr) = run_with_stdout(&t, &["apply", "--auto-approve"], closed_stdout());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert!(!t.path().join("outbox.jsonl").exists(), "nothing may be sent");
    t.cmd(&["apply", "--auto-approve"]).expect(0);
    let (code, stderr) = run_with_stdout(&t, &["apply", "--auto-approve"], closed_stdout());
    assert_eq!((code, stderr.as_str()), (0, ""), "no changes: quiet");
}

// Regression: #9 defect 1: `plan --out /dev/full` printed "Saved the plan"
// and exited 0. The device is written in place, never replaced.
#[test]
fn a_plan_saved_to_a_full_device_is_an_error() {
    let t = applied();
    let out = t.cmd(&["plan", "--out", "/dev/full"]).expect(1);
    assert!(out.stderr.contains("cannot write `/dev/full`"), "{}", out.rendered());
    assert!(out.stderr.contains("No space left on device"), "{}", out.rendered());
    assert!(!out.stderr.contains("Saved the plan"), "{}", out.rendered());
    let kind = std::fs::metadata("/dev/full").expect("still there").file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&kind), "/dev/full must stay a device");
}

#[test]
fn a_plan_saved_where_it_cannot_be_written_is_an_error_and_keeps_the_old_plan() {
    let t = applied();
    t.cmd(&["plan", "--out", "saved.json"]).expect(0);
    let before = t.read("saved.json");
    assert!(before.contains("\"changes\""));
    let out = t.cmd(&["plan", "--out", "missing-dir/saved.json"]).expect(1);
    assert!(out.stderr.contains("missing-dir/saved.json"), "{}", out.rendered());
    assert!(!out.stderr.contains("Saved the plan"), "{}", out.rendered());
    assert_eq!(t.read("saved.json"), before);
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");
}

// Regression: #9 defect 6: `-c` values were split on `:`; only
// `MEMBERCTL_CONFIG` is a list.
#[test]
fn a_config_flag_is_one_path_and_the_environment_is_a_list() {
    let t = Test::new().file("a:b.yaml", QUICKSTART);
    let out = t.cmd(&["validate", "-c", "a:b.yaml"]).expect(0);
    assert!(out.stdout.contains("`a:b.yaml`"), "{}", out.rendered());

    let t = Test::new()
        .file("one/providers.yaml", "version: 1\nproviders:\n  sandbox:\n    type: sandbox\n")
        .file("two/members.yaml", "version: 1\nmembers:\n  - email: kim@example.com\n")
        .env("MEMBERCTL_CONFIG", "one:two");
    let out = t.cmd(&["validate"]).expect(0);
    assert!(out.stdout.contains("1 member(s)"), "{}", out.rendered());
}
