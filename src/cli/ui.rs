//! The one object that owns the terminal: stdout, stderr, colour and the
//! apply progress. Every command prints through it, so a failed write (a
//! full disk, a closed pipe) is an error in one place instead of being
//! dropped in many.

use std::io::{self, IsTerminal, Write};

use super::progress::Progress;
use super::{ColorChoice, Global};
use crate::error::Error;
use crate::paint::{Paint, GREEN, RED, YELLOW};

/// Stdout, stderr and how to colour them.
pub struct Ui {
    stdout: io::Stdout,
    stderr: io::Stderr,
    stdout_paint: Paint,
    stderr_paint: Paint,
    quiet: bool,
    /// Whether stdin is a terminal (apply may ask for `yes`).
    pub stdin_tty: bool,
}

impl Ui {
    /// The process's streams, coloured as `--color` and the environment say.
    #[must_use]
    pub fn new(global: &Global) -> Self {
        // Unlocked handles: log lines from other threads must be able to
        // reach stderr while a command runs.
        let stdout = io::stdout();
        let stderr = io::stderr();
        Ui {
            stdout_paint: Paint::new(use_color(global.color, &stdout)),
            stderr_paint: Paint::new(use_color(global.color, &stderr)),
            stdin_tty: io::stdin().is_terminal(),
            quiet: global.quiet,
            stdout,
            stderr,
        }
    }

    /// Writes `text` to stdout as it is.
    pub fn print(&mut self, text: &str) -> Result<(), Error> {
        self.stdout.write_all(text.as_bytes()).map_err(stdout_error)
    }

    /// Writes one line to stdout.
    pub fn println(&mut self, line: &str) -> Result<(), Error> {
        self.print(line)?;
        self.print("\n")
    }

    /// Lets a renderer write to stdout; its I/O error becomes memberctl's.
    pub fn render(&mut self, render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), Error> {
        render(&mut self.stdout).and_then(|()| self.stdout.flush()).map_err(stdout_error)
    }

    /// Flushes stdout (before reading an answer, and at the end).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.stdout.flush().map_err(stdout_error)
    }

    /// A question on stderr, left open for the answer: stdout stays the
    /// command's data (`apply --format json`).
    pub fn ask(&mut self, text: &str) -> Result<(), Error> {
        self.flush()?;
        write!(self.stderr, "{text}").and_then(|()| self.stderr.flush()).map_err(stderr_error)
    }

    /// A line on stderr, unless `--quiet`.
    pub fn note(&mut self, text: &str) -> Result<(), Error> {
        if self.quiet {
            return Ok(());
        }
        writeln!(self.stderr, "{text}").map_err(stderr_error)
    }

    /// A `warning:` on stderr (shown even with `--quiet`).
    pub fn warn(&mut self, text: &str) -> Result<(), Error> {
        let line = self.stderr_paint.paint(YELLOW, &format!("warning: {text}"));
        writeln!(self.stderr, "{line}").map_err(stderr_error)
    }

    /// Prints a rendered error on stderr, after whatever stdout still holds.
    /// A failure here has nowhere left to be reported, and the exit code
    /// already says the run failed: it is ignored on purpose.
    pub fn report_error(&mut self, rendered: &str) {
        let colored = color_error(self.stderr_paint.enabled(), rendered);
        if self.stdout.flush().is_ok() {
            self.stderr.write_all(colored.as_bytes()).ok();
        } else {
            self.stderr.write_all(rendered.as_bytes()).ok();
        }
    }

    /// The progress reporter of an apply: a bar on a terminal, plain lines
    /// otherwise.
    #[must_use]
    pub fn progress(&self) -> Progress {
        Progress::new(self.quiet, self.stderr_paint.enabled())
    }

    /// Whether stdout gets colour.
    #[must_use]
    pub fn color(&self) -> bool {
        self.stdout_paint.enabled()
    }

    /// Whether `--quiet` was given.
    #[must_use]
    pub fn quiet(&self) -> bool {
        self.quiet
    }
}

/// `written`, with a closed pipe taken as written: for output that only
/// reports on work that goes on (a plan saved with `--out`, a state
/// written, an exit code that says whether there are changes), so that
/// `memberctl plan | head -1` still does all of it.
pub fn past_a_closed_pipe(written: Result<(), Error>) -> Result<(), Error> {
    match written {
        Err(error) if error.is_broken_pipe() => Ok(()),
        other => other,
    }
}

fn stdout_error(source: io::Error) -> Error {
    Error::stream("write to", "<stdout>", source)
}

fn stderr_error(source: io::Error) -> Error {
    Error::stream("write to", "<stderr>", source)
}

/// Colors follow `--color`, then `NO_COLOR`, `CLICOLOR_FORCE`, `CLICOLOR`,
/// then whether the stream is a terminal.
fn use_color(choice: ColorChoice, stream: &impl IsTerminal) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if set("NO_COLOR") {
                false
            } else if std::env::var("CLICOLOR_FORCE").is_ok_and(|v| v != "0") {
                true
            } else if std::env::var("CLICOLOR").is_ok_and(|v| v == "0") {
                false
            } else {
                stream.is_terminal()
            }
        }
    }
}

/// Colors the `error:` and `hint:` prefixes of a rendered error.
pub fn color_error(color: bool, text: &str) -> String {
    if !color {
        return text.to_owned();
    }
    let paint = Paint::new(true);
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("error:") {
            out.push_str(&paint.paint(RED, "error:"));
            out.push_str(rest);
        } else if let Some(rest) = line.strip_prefix("hint:") {
            out.push_str(&paint.paint(GREEN, "hint:"));
            out.push_str(rest);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}
