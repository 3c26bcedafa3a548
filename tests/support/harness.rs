//! A hermetic harness over the real binary: a temp dir, a cleared
//! environment, a fixed clock, and output rendered for snapshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The fixed clock every test runs at.
pub const NOW: &str = "2026-01-15T09:30:00Z";

/// A test: a temp dir with files, and a command to run in it.
pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
    root: PathBuf,
}

impl Output {
    /// stdout, a `--- stderr ---` line, stderr, then the exit status, with
    /// temp paths and lineages replaced by placeholders.
    pub fn rendered(&self) -> String {
        filter(&format!("{}--- stderr ---\n{}--- exit: {} ---\n", self.stdout, self.stderr, self.code), &self.root)
    }

    /// stdout, filtered.
    pub fn out(&self) -> String {
        filter(&self.stdout, &self.root)
    }

    /// Asserts the exit code, printing everything on failure.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code; output:\n{}", self.rendered());
        self
    }
}

/// Replaces run-specific text with stable placeholders.
pub fn filter(text: &str, root: &Path) -> String {
    let root = root.to_string_lossy();
    let canonical = std::fs::canonicalize(&*root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let mut out = text.to_owned();
    for path in [canonical.as_str(), &*root] {
        if !path.is_empty() {
            out = out.replace(path, "[TEMP]");
        }
    }
    // UUIDs (state lineages) and pids.
    let mut result = String::with_capacity(out.len());
    let bytes: Vec<char> = out.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && is_uuid(&bytes[i..i + 36]) {
            result.push_str("[UUID]");
            i += 36;
        } else {
            result.push(bytes[i]);
            i += 1;
        }
    }
    out = result;
    let mut cleaned = String::with_capacity(out.len());
    for line in out.split_inclusive('\n') {
        if let Some(idx) = line.find("(pid ") {
            let rest = &line[idx + 5..];
            let end = rest.find(' ').unwrap_or(rest.len());
            cleaned.push_str(&line[..idx + 5]);
            cleaned.push_str("[PID]");
            cleaned.push_str(&rest[end..]);
        } else {
            cleaned.push_str(line);
        }
    }
    cleaned
}

fn is_uuid(chars: &[char]) -> bool {
    chars.iter().enumerate().all(|(i, c)| {
        if [8, 13, 18, 23].contains(&i) {
            *c == '-'
        } else {
            c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
        }
    })
}

impl Test {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir"), args: Vec::new(), env: Vec::new(), stdin: None }
    }

    /// The temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `memberctl.yaml`.
    pub fn config(self, yaml: &str) -> Self {
        self.file("memberctl.yaml", yaml)
    }

    /// Writes `memberctl.state.json`.
    pub fn state(self, json: &str) -> Self {
        self.file("memberctl.state.json", json)
    }

    /// Writes a file under the temp dir.
    pub fn file(self, name: &str, contents: &str) -> Self {
        self.write(name, contents);
        self
    }

    /// Writes a file under the temp dir, keeping the test.
    pub fn write(&self, name: &str, contents: &str) {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, contents).expect("write file");
    }

    /// Reads a file under the temp dir.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Sets the arguments for [`Test::run`].
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an env var for every run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Feeds stdin.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Runs with the arguments set by [`Test::args`].
    pub fn run(&self) -> Output {
        self.cmd(&self.args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs `memberctl ARGS` in the temp dir.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let mut child =
            self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run memberctl");
        if let Some(input) = &self.stdin {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            let _ = stdin.write_all(input.as_bytes());
        }
        let output = child.wait_with_output().expect("wait for memberctl");
        Output {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            code: output.status.code().unwrap_or(-1),
            root: self.dir.path().to_owned(),
        }
    }

    /// The command, for tests that manage the process themselves.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_memberctl"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MEMBERCTL_NOW", NOW)
            .env("HOSTNAME", "testhost")
            .env("MEMBERCTL_BACKOFF_MS", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if self.stdin.is_some() {
            cmd.stdin(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null());
        }
        cmd
    }
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

/// A stdout whose reader is gone before the command writes its first byte
/// (`memberctl ... | head` after `head` left).
pub fn closed_stdout() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}
