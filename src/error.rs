//! The one error type every command answers with: a kind (which decides the
//! exit code), the error itself (a layer's typed error or a message, with its
//! `caused by` chain), and the hints attached where the error was made.
//!
//! It is rendered once, at the top (`cli::run`): `error: ...`, the YAML
//! location with a caret, `caused by: ...`, `hint: ...`.

use std::fmt::{self, Write as _};
use std::path::Path;

use crate::apply::ApplyError;
use crate::atomic_write::AtomicWriteError;
use crate::config::ConfigError;
use crate::refresh::RefreshError;
use crate::state::StateError;

/// Exit codes, in one place (documented in the README).
pub mod exit {
    /// Success; with `--detailed-exitcode`, no changes.
    pub const OK: u8 = 0;
    /// An error, or (apply) a member failed.
    pub const ERROR: u8 = 1;
    /// `plan --detailed-exitcode` and `refresh --check`: changes are present.
    pub const CHANGES: u8 = 2;
    /// Interrupted by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

/// What kind of failure an [`Error`] is; [`Error::code`] maps it to the exit
/// code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// memberctl was called wrongly, or refused to go on (a stale plan, the
    /// safety brake, a held lock).
    User,
    /// The configuration is not valid.
    Config,
    /// A provider refused or failed (apply finished with failed members).
    Provider,
    /// Reading or writing a file or stream failed.
    Io,
    /// Ctrl-C or SIGTERM stopped the run.
    Interrupted,
    /// A bug in memberctl.
    Internal,
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any error memberctl reports.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    cause: Cause,
    hints: Vec<String>,
}

/// A plain message as an error (it has no cause of its own).
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// A file or stream that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} `{path}`")]
struct IoError {
    action: &'static str,
    path: String,
    #[source]
    source: std::io::Error,
}

impl Error {
    /// An error of `kind` wrapping a typed error.
    pub fn new(kind: ErrorKind, error: impl Into<Cause>) -> Self {
        Error { kind, cause: error.into(), hints: Vec::new() }
    }

    /// A mistake in how memberctl was called, or a refusal to go on.
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, Message(message.into()))
    }

    /// A usage error with its hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::user(message).with_hint(hint)
    }

    /// A file that could not be read or written (`action` is e.g. `write`).
    #[must_use]
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, IoError { action, path: path.display().to_string(), source })
    }

    /// A standard stream that could not be read or written.
    #[must_use]
    pub fn stream(action: &'static str, stream: &'static str, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, IoError { action, path: stream.to_owned(), source })
    }

    /// A run stopped by Ctrl-C or SIGTERM.
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Interrupted, Message(message.into()))
    }

    /// A provider-side failure (members that failed at apply).
    pub fn provider(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Provider, Message(message.into()))
    }

    /// A bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, Message(message.into()))
    }

    /// Attaches a hint (where the error is made: that is where the hint is
    /// known).
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    fn with_hints(mut self, hints: impl IntoIterator<Item = String>) -> Self {
        self.hints.extend(hints);
        self
    }

    /// The kind.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The exit code for this error.
    #[must_use]
    pub fn code(&self) -> u8 {
        match self.kind {
            ErrorKind::Interrupted => exit::INTERRUPTED,
            ErrorKind::User | ErrorKind::Config | ErrorKind::Provider | ErrorKind::Io | ErrorKind::Internal => {
                exit::ERROR
            }
        }
    }

    /// The hints, in the order they were attached.
    #[must_use]
    pub fn hints(&self) -> &[String] {
        &self.hints
    }

    /// Whether the error is a closed pipe on the way out (`memberctl plan |
    /// head -1`), which ends the run quietly and successfully, as ripgrep
    /// does.
    #[must_use]
    pub fn is_broken_pipe(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self.cause.as_ref());
        while let Some(error) = cause {
            // serde_json reports its writer's errors under its own type.
            if error
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
            {
                return true;
            }
            cause = match error.downcast_ref::<std::io::Error>() {
                Some(io) if io.kind() == std::io::ErrorKind::BrokenPipe => return true,
                // An `io::Error` wrapping another error hides it from
                // `source()`: look inside.
                Some(io) => match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                    None => error.source(),
                },
                None => error.source(),
            };
        }
        false
    }

    fn downcast<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.cause.downcast_ref::<T>()
    }

    /// The problems of an invalid configuration, for machine-readable output.
    #[must_use]
    pub fn config_problems(&self) -> Option<&[crate::config::Problem]> {
        match self.downcast::<ConfigError>() {
            Some(ConfigError::Invalid { problems }) => Some(problems),
            _ => None,
        }
    }

    /// An error that is no config problem, for machine-readable output:
    /// each of its problems (apply's preflight may find several) as a
    /// message, with its causes as the human rendering says them (`caused
    /// by: ...`), and its hint.
    #[must_use]
    pub fn unplaced(&self) -> Vec<(String, Option<String>)> {
        if let Some(ApplyError::Preflight { problems }) = self.downcast::<ApplyError>() {
            return problems.iter().map(|p| (p.message.clone(), Some(p.hint.clone()))).collect();
        }
        let mut message = self.to_string();
        for cause in self.causes() {
            write!(message, "\ncaused by: {cause}").expect("writing to a String cannot fail");
        }
        vec![(message, self.hints().first().cloned())]
    }

    /// What caused it, outermost first (the `caused by:` lines).
    fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        std::iter::successors(std::error::Error::source(self), |cause| cause.source())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cause, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        let hints = error.hint();
        let kind = if matches!(error, ConfigError::Io { .. }) { ErrorKind::Io } else { ErrorKind::Config };
        Error::new(kind, error).with_hints(hints)
    }
}

impl From<StateError> for Error {
    fn from(error: StateError) -> Self {
        let hints = error.hint();
        let kind = if matches!(error, StateError::Io { .. }) { ErrorKind::Io } else { ErrorKind::User };
        Error::new(kind, error).with_hints(hints)
    }
}

impl From<ApplyError> for Error {
    fn from(error: ApplyError) -> Self {
        match error {
            ApplyError::State(error) => error.into(),
            error => {
                let hints = error.hint();
                Error::new(ErrorKind::User, error).with_hints(hints)
            }
        }
    }
}

impl From<RefreshError> for Error {
    fn from(error: RefreshError) -> Self {
        let hints = error.hint();
        let kind = match error {
            RefreshError::List { .. } => ErrorKind::Provider,
            RefreshError::Suspicious { .. } => ErrorKind::User,
        };
        Error::new(kind, error).with_hints(hints)
    }
}

impl From<AtomicWriteError> for Error {
    fn from(error: AtomicWriteError) -> Self {
        Error::new(ErrorKind::Io, error)
    }
}

/// Renders an error the way memberctl prints it: `error: ...`, the YAML
/// location with a caret, `caused by: ...`, `hint: ...`. Config problems
/// show ten snippets of each kind unless `all_problems`.
#[must_use]
pub fn render(error: &Error, all_problems: bool) -> String {
    let mut out = String::new();
    if let Some(ConfigError::Invalid { problems }) = error.downcast::<ConfigError>() {
        return crate::config::render_problems(problems, all_problems);
    }
    if let Some(ApplyError::Preflight { problems }) = error.downcast::<ApplyError>() {
        for problem in problems {
            push_line(&mut out, format_args!("error: {}\nhint: {}", problem.message, problem.hint));
        }
        push_line(&mut out, format_args!("error: apply did not start; nothing was sent"));
        return out;
    }
    push_line(&mut out, format_args!("error: {error}"));
    for cause in error.causes() {
        push_line(&mut out, format_args!("caused by: {cause}"));
    }
    for hint in error.hints() {
        push_line(&mut out, format_args!("hint: {hint}"));
    }
    out
}

/// Appends a line to a `String`, which cannot fail.
fn push_line(out: &mut String, line: fmt::Arguments<'_>) {
    out.write_fmt(line).expect("writing to a String cannot fail");
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::{exit, Error, ErrorKind};

    #[test]
    fn exit_codes_come_from_the_kind() {
        assert_eq!(Error::user("x").code(), exit::ERROR);
        assert_eq!(Error::interrupted("stopped").code(), exit::INTERRUPTED);
        assert_eq!(Error::interrupted("stopped").kind(), ErrorKind::Interrupted);
    }

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_recognised() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(Error::stream("write", "<stdout>", pipe).is_broken_pipe());
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(!Error::stream("write", "<stdout>", full).is_broken_pipe());
    }
}
