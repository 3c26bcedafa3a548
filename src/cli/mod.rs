//! The command line: one function per command, over the clap types of
//! `args.rs`.
//!
//! This is the only layer that prints. It parses arguments, calls the
//! library, renders results and errors, and answers an exit code.

mod apply_cmd;
mod args;
pub mod diagnostics;
mod import;
mod import_provider;
mod init;
mod plan_cmd;
mod plan_file;
mod progress;
mod refresh_cmd;
mod schema;
mod state_cmd;
mod ui;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{self, Config};
use crate::error::{exit, Error};
use crate::plan::Scope;
use crate::state::journal::Replay;
use crate::state::{Backend, FileBackend, LockInfo, State, StatePaths};
pub use args::{
    ApplyArgs, Cli, ColorChoice, Command, Global, ImportArgs, ImportCommand, InitArgs, PlanArgs, PlanFormat,
    RefreshArgs, SchemaArgs, ScopeArgs, ShowFormat, StateCommand, SummaryFormat, ValidateArgs,
};
use diagnostics::ErrorFormat;
pub use ui::Ui;

/// How a command that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Success {
    /// Done (or, with `--detailed-exitcode`, no changes).
    Done,
    /// `--detailed-exitcode`: changes are present.
    ChangesPresent,
}

/// The outcome of a command.
pub type Outcome = Result<Success, Error>;

/// The exit code of an outcome: the one place that decides it.
#[must_use]
pub fn exit_code(outcome: &Outcome) -> u8 {
    match outcome {
        Ok(Success::Done) => exit::OK,
        Ok(Success::ChangesPresent) => exit::CHANGES,
        // A closed pipe on the way out (`memberctl plan | head -1`): the
        // reader has what it wanted.
        Err(error) if error.is_broken_pipe() => exit::OK,
        Err(error) => error.code(),
    }
}

/// What commands share: the parsed options and the terminal.
pub struct Context<'a> {
    pub global: &'a Global,
    pub ui: Ui,
}

impl Context<'_> {
    fn config_paths(&self) -> Vec<PathBuf> {
        if !self.global.config.is_empty() {
            return self.global.config.clone();
        }
        // Only the environment variable is a list: a `-c` value is one path,
        // whatever characters it holds.
        match std::env::var_os("MEMBERCTL_CONFIG") {
            Some(list) if !list.is_empty() => std::env::split_paths(&list).collect(),
            _ => vec![PathBuf::from(config::DEFAULT_CONFIG)],
        }
    }

    fn load_config(&self) -> Result<Config, Error> {
        Ok(config::load(&self.config_paths())?)
    }

    /// The config, when there is one to read: commands that need none
    /// (`state list`) still read it for `state:`, but work without one.
    fn config_if_any(&self) -> Result<Option<Config>, Error> {
        let explicit =
            !self.global.config.is_empty() || std::env::var_os("MEMBERCTL_CONFIG").is_some_and(|v| !v.is_empty());
        if explicit || self.config_paths().iter().any(|p| p.exists()) {
            self.load_config().map(Some)
        } else {
            Ok(None)
        }
    }

    /// `--state`, else `MEMBERCTL_STATE` unless empty (an empty variable
    /// is unset, as `MEMBERCTL_CONFIG`; clap would refuse it as a missing
    /// value of a flag no one passed).
    fn state_flag(&self) -> Option<PathBuf> {
        self.global
            .state
            .clone()
            .or_else(|| std::env::var_os("MEMBERCTL_STATE").filter(|v| !v.is_empty()).map(PathBuf::from))
    }

    /// Where the state lives: `state:` in the config, `--state` for a file.
    fn state_backend(&self, config: Option<&Config>) -> Result<Box<dyn Backend>, Error> {
        match config.map(|c| &c.state) {
            Some(config::StateSettings::Postgres { url_env, name }) => {
                if self.state_flag().is_some() {
                    return Err(Error::usage(
                        "`--state` (or `MEMBERCTL_STATE`) names a state file, but the config keeps the state in PostgreSQL",
                        "drop `--state`/`MEMBERCTL_STATE`, or the config's `state:` to use a file",
                    ));
                }
                Ok(Box::new(crate::state::postgres::PostgresBackend::connect(url_env, name)?))
            }
            Some(config::StateSettings::File { path }) => {
                let path = self.state_flag().or_else(|| path.clone());
                Ok(Box::new(FileBackend::new(StatePaths::new(
                    path.unwrap_or_else(|| crate::state::DEFAULT_STATE.into()),
                ))))
            }
            None => {
                let path = self.state_flag().unwrap_or_else(|| crate::state::DEFAULT_STATE.into());
                Ok(Box::new(FileBackend::new(StatePaths::new(path))))
            }
        }
    }

    /// Reports a stale lock and a replayed journal.
    fn report_recovery(
        &mut self,
        stale: Option<&LockInfo>,
        replay: Option<&Replay>,
        folded: bool,
    ) -> Result<(), Error> {
        if let Some(stale) = stale {
            self.ui.warn(&format!(
            "a previous run, {stale}, ended without releasing the state lock (it crashed or was killed); taking over"
        ))?;
        }
        if let Some(replay) = replay {
            let what = if folded {
                "recovered it into the state"
            } else {
                "its outcomes are included below; the next apply folds it into the state"
            };
            self.ui.warn(&format!(
                "found the journal of an interrupted apply ({} batch(es) answered, {} without an answer): {what}",
                replay.completed, replay.interrupted
            ))?;
            if !replay.uncertain.is_empty() {
                self.ui.warn(&format!(
                    "{} address(es) are uncertain: {}",
                    replay.uncertain.len(),
                    abbreviate(&replay.uncertain, 5)
                ))?;
            }
        }
        Ok(())
    }
}

/// Checks `--target` and `--provider` against what exists.
fn scope(args: &ScopeArgs, config: &Config, state: Option<&State>) -> Result<Scope, Error> {
    for provider in &args.providers {
        let known = config.providers.contains_key(provider)
            || state.is_some_and(|s| s.resources.keys().any(|a| a.provider() == provider));
        if !known {
            return Err(Error::usage(
                format!("no provider `{provider}` in the config or the state"),
                crate::config::problem::suggestion(provider, "providers", config.providers.keys().map(String::as_str)),
            ));
        }
    }
    for target in &args.targets {
        if !config.desired.contains_key(target) && !state.is_some_and(|s| s.resources.contains_key(target)) {
            return Err(Error::usage(
                format!("no address `{target}` in the config or the state"),
                "addresses are `PROVIDER/EMAIL`; `memberctl state list` shows those recorded",
            ));
        }
    }
    Ok(Scope { targets: args.targets.clone(), providers: args.providers.clone() })
}

fn abbreviate(items: &[String], most: usize) -> String {
    let mut text = items.iter().take(most).map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
    if items.len() > most {
        write!(text, " and {} more", items.len() - most).expect("writing to a String cannot fail");
    }
    text
}

/// Parses `args` and runs the command; answers the exit code. Errors are
/// rendered here, once.
#[must_use]
pub fn run(args: Vec<OsString>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => return clap_exit(&err),
    };
    progress::init_logging(cli.global.quiet, cli.global.verbose);
    let mut cx = Context { global: &cli.global, ui: Ui::new(&cli.global) };
    // What stdout still holds when its reader is gone is dropped: the
    // command did its work, and its exit code says how (`plan
    // --detailed-exitcode | head -1` exits 2 on changes).
    let mut outcome =
        dispatch(&cli.command, &mut cx).and_then(|success| ui::past_a_closed_pipe(cx.ui.flush()).map(|()| success));
    if let Err(error) = &outcome {
        if !error.is_broken_pipe() {
            let (format, on_stdout) = match &cli.command {
                Command::Validate(args) => (args.format, true),
                Command::Plan(args) => (args.error_format, false),
                Command::Apply(args) => (args.error_format, false),
                _ => (ErrorFormat::Human, false),
            };
            let root = if format == ErrorFormat::Github { diagnostics::repository_root() } else { PathBuf::new() };
            let rendered = diagnostics::render(error, format, cli.global.all, &root);
            if on_stdout && format != ErrorFormat::Human {
                // `validate --format json|github`: the problems are its output.
                if let Err(failed) = cx.ui.print(&rendered).and_then(|()| cx.ui.flush()) {
                    if !failed.is_broken_pipe() {
                        cx.ui.report_error(&crate::error::render(&failed, false));
                    }
                    outcome = Err(failed);
                }
            } else {
                cx.ui.report_error(&rendered);
            }
        }
    }
    exit_code(&outcome)
}

/// `--help`, `--version` and usage errors, printed by clap.
fn clap_exit(err: &clap::Error) -> u8 {
    let code = if err.use_stderr() { exit::ERROR } else { exit::OK };
    match err.print() {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            let error = Error::stream("write to", "<stdout>", e);
            eprint!("{}", crate::error::render(&error, false));
            exit::ERROR
        }
    }
}

fn dispatch(command: &Command, cx: &mut Context<'_>) -> Outcome {
    match command {
        Command::Validate(args) => {
            let config = cx.load_config()?;
            if args.format == ErrorFormat::Json {
                cx.ui.print(&diagnostics::json(&[]))?;
                return Ok(Success::Done);
            }
            let files = config.files.iter().map(|f| format!("`{}`", f.display())).collect::<Vec<_>>().join(", ");
            cx.ui.println(&format!(
                "The configuration is valid: {} member(s), {} address(es) at {} provider(s), from {files}.",
                config.member_count,
                config.desired.len(),
                config.providers.len()
            ))?;
            Ok(Success::Done)
        }
        Command::Plan(args) => plan_cmd::run(args, cx),
        Command::Apply(args) => apply_cmd::run(args, cx),
        Command::Refresh(args) => refresh_cmd::run(args, cx),
        Command::Schema(args) => schema::run(args, cx),
        Command::Init(args) => init::run(args, cx),
        Command::State(command) => state_cmd::run(command, cx),
        Command::Import(args) => match &args.command {
            ImportCommand::Csv { .. } => import::run(args, cx),
            ImportCommand::Provider { name, adopt, append } => {
                import_provider::run(name, *adopt, append.as_deref(), cx)
            }
        },
        Command::Completions { shell } => {
            // clap_complete panics when its writer fails: generate into
            // memory, then write through the one path that handles errors.
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "memberctl", &mut script);
            cx.ui.render(|out| out.write_all(&script))?;
            Ok(Success::Done)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            cx.ui.render(|out| clap_mangen::Man::new(cmd).render(out))?;
            Ok(Success::Done)
        }
    }
}
