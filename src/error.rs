//! The top-level error: every layer's error, classified once and rendered
//! once, with the YAML location, the cause and a hint.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::apply::ApplyError;
use crate::config::{ConfigError, Problem};
use crate::state::StateError;

/// Exit codes, in one place (documented in the README).
pub mod exit {
    /// Success; with `--detailed-exitcode`, no changes.
    pub const OK: u8 = 0;
    /// An error, or (apply) a member failed.
    pub const ERROR: u8 = 1;
    /// `plan --detailed-exitcode`: changes are present.
    pub const CHANGES: u8 = 2;
    /// Interrupted by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

/// Any error memberctl reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state.
    #[error(transparent)]
    State(#[from] StateError),
    /// Apply.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A mistake in how memberctl was called.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// A file memberctl was asked to read or write.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A usage error with a hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage { message: message.into(), hint: Some(hint.into()) }
    }

    /// The hint for this error, when there is one.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(ConfigError::NotFound { .. }) => {
                Some("run `memberctl init` to write a starter config, or pass `-c PATH`".to_owned())
            }
            Error::Config(ConfigError::EmptyDirectory { .. }) => Some("name a file, or a directory holding `*.yaml` files".to_owned()),
            Error::Config(_) | Error::Io { .. } => None,
            Error::State(err) => match err {
                StateError::Corrupt { path, .. } => Some(format!(
                    "the file was left untouched; restore it from `{}.backup` (if there is one) or from git",
                    path.display()
                )),
                StateError::NewerFormat { .. } => Some("upgrade memberctl; the file was left untouched".to_owned()),
                StateError::Locked { .. } => Some(
                    "wait for it to finish, or pass `--lock-timeout 60s` to wait for it".to_owned(),
                ),
                StateError::JournalMismatch { .. } => {
                    Some("the journal belongs to another state file; move it aside if you are sure".to_owned())
                }
                StateError::NoSuchAddress { .. } => Some("`memberctl state list` shows the addresses".to_owned()),
                StateError::AlreadyExists { .. } => Some("`memberctl state show ADDR` shows the record".to_owned()),
                StateError::Io { .. } => None,
            },
            Error::Apply(err) => match err {
                ApplyError::Stale { .. } => Some("run `memberctl plan --out FILE` again and apply the new plan".to_owned()),
                ApplyError::TooManyChanges { .. } => Some(
                    "invitations are emails that cannot be unsent: review the plan, then raise the limit for this run with `--max-changes N` or set `safety.max_changes`".to_owned(),
                ),
                ApplyError::Preflight { problems } => problems.first().map(|p| p.1.clone()),
                ApplyError::State(_) => None,
            },
            Error::Usage { hint, .. } => hint.clone(),
        }
    }
}

/// Renders an error the way memberctl prints it: `error: ...`, the YAML
/// location with a caret, `caused by: ...`, `hint: ...`.
#[must_use]
pub fn render(error: &Error) -> String {
    let mut out = String::new();
    if let Error::Config(ConfigError::Invalid { problems }) = error {
        for problem in problems {
            render_problem(&mut out, problem);
        }
        let _ = writeln!(out, "error: {error}; nothing was sent");
        return out;
    }
    if let Error::Apply(ApplyError::Preflight { problems }) = error {
        for (message, hint) in problems {
            let _ = writeln!(out, "error: {message}\nhint: {hint}");
        }
        let _ = writeln!(out, "error: apply did not start; nothing was sent");
        return out;
    }
    let _ = writeln!(out, "error: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = writeln!(out, "caused by: {cause}");
        source = cause.source();
    }
    if let Some(hint) = error.hint() {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

fn render_problem(out: &mut String, problem: &Problem) {
    let _ = writeln!(out, "error: {}", problem.message);
    let _ = writeln!(
        out,
        "{}--> {}",
        " ".repeat(problem.place.position.map_or(1, |p| p.line.to_string().len())),
        problem.place
    );
    if let (Some(pos), Some(line)) = (problem.place.position, &problem.snippet) {
        let number = pos.line.to_string();
        let pad = " ".repeat(number.len() + 1);
        let caret_pad: String =
            line.chars().take(pos.column.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let _ = writeln!(out, "{pad}|\n{number} | {line}\n{pad}| {caret_pad}^");
    }
    if let Some(hint) = &problem.hint {
        let _ = writeln!(out, "hint: {hint}");
    }
    out.push('\n');
}
