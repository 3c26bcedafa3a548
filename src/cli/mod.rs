//! The command line: clap types, and one function per command.
//!
//! This is the only layer that prints. It parses arguments, calls the
//! library, renders results and errors, and answers an exit code.

mod apply_cmd;
mod import;
mod init;
mod output;
mod plan_cmd;
mod schema;
mod state_cmd;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::address::Address;
use crate::config::{self, Config};
use crate::error::{exit, Error};
use crate::state::StatePaths;

/// Declarative membership for `SaaS` platforms: plan and apply invitations
/// from YAML kept in git.
#[derive(Debug, Parser)]
#[command(name = "memberctl", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Config file or directory (repeatable; a directory loads every *.yaml/*.yml in it)
    #[arg(short, long = "config", value_name = "PATH", global = true, env = "MEMBERCTL_CONFIG", value_delimiter = ':')]
    pub config: Vec<PathBuf>,
    /// State file
    #[arg(long, value_name = "PATH", global = true, env = "MEMBERCTL_STATE", default_value = crate::state::DEFAULT_STATE)]
    pub state: PathBuf,
    /// How long to wait for the state lock, e.g. `30s` (default: fail at once)
    #[arg(long, value_name = "DURATION", global = true, default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// When to use colors
    #[arg(long, value_name = "WHEN", global = true, default_value = "auto")]
    pub color: ColorChoice,
    /// Print less (errors and the final summary only)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more (-v: info logs, -vv: debug logs); `RUST_LOG` also works
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// When to color output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration without touching state or network
    Validate,
    /// Show what apply would do
    Plan(PlanArgs),
    /// Carry out the changes (asks first on a terminal)
    Apply(ApplyArgs),
    /// Print the JSON Schema of the config (or of the JSON plan)
    Schema(SchemaArgs),
    /// Write a commented starter memberctl.yaml
    Init(InitArgs),
    /// Inspect or change the state by hand
    #[command(subcommand)]
    State(StateCommand),
    /// Turn a CSV export into members YAML
    Import(ImportArgs),
    /// Print shell completions
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

/// Output formats for plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// terraform-like text
    Text,
    /// JSON, documented by schema/plan.schema.json
    Json,
    /// A pull-request comment
    Markdown,
}

/// Narrowing a plan.
#[derive(Debug, Args, Clone, Default)]
pub struct ScopeArgs {
    /// Only this address, PROVIDER/EMAIL (repeatable)
    #[arg(long = "target", value_name = "ADDR", value_parser = parse_address)]
    pub targets: Vec<Address>,
    /// Only this provider (repeatable)
    #[arg(long = "provider", value_name = "NAME")]
    pub providers: Vec<String>,
}

/// `plan` options.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Output format
    #[arg(long, default_value = "text")]
    pub format: PlanFormat,
    /// Save the plan to FILE, for `memberctl apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// `apply` options.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `plan --out`, applied exactly
    #[arg(value_name = "PLANFILE")]
    pub plan: Option<PathBuf>,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(long)]
    pub auto_approve: bool,
    /// Allow up to N invitations and removals in this run (overrides `safety.max_changes`)
    #[arg(long, value_name = "N")]
    pub max_changes: Option<usize>,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// `schema` options.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print the schema of `plan --format json` instead
    #[arg(long)]
    pub plan: bool,
}

/// `init` options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write
    #[arg(default_value = config::DEFAULT_CONFIG)]
    pub path: PathBuf,
}

/// `import` options.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub command: ImportCommand,
}

/// What to import from.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A CSV file with a header row; columns map to member fields by name
    Csv {
        /// The CSV file
        file: PathBuf,
        /// Map a column to a member field, e.g. `--map 'Work Email=email'` (repeatable)
        #[arg(long, value_name = "COLUMN=FIELD")]
        map: Vec<String>,
        /// Refuse the whole import when any row is invalid (default: skip bad rows)
        #[arg(long)]
        strict: bool,
        /// Append the members to FILE (whose last key is `members:`) instead of printing them
        #[arg(long, value_name = "FILE")]
        append: Option<PathBuf>,
    },
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the addresses in the state
    List,
    /// Show one address's record
    Show {
        /// PROVIDER/EMAIL
        #[arg(value_parser = parse_address)]
        address: Address,
        /// Output format
        #[arg(long, default_value = "text")]
        format: ShowFormat,
    },
    /// Forget an address without touching the provider
    Rm {
        /// PROVIDER/EMAIL
        #[arg(value_parser = parse_address, required = true)]
        addresses: Vec<Address>,
    },
    /// Record a member that already exists at the provider, so it is never invited
    Import {
        /// PROVIDER/EMAIL (must be in the config)
        #[arg(value_parser = parse_address)]
        address: Address,
        /// The provider's invite id, if known
        #[arg(long)]
        invite_id: Option<String>,
        /// The provider's user id, if known
        #[arg(long)]
        user_id: Option<String>,
    },
    /// Record a manual update or removal as carried out
    MarkDone {
        /// PROVIDER/EMAIL
        #[arg(value_parser = parse_address, required = true)]
        addresses: Vec<Address>,
    },
    /// Clear a lock left by a run that died
    Unlock,
}

/// `state show` formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// Readable text
    Text,
    /// The record as JSON
    Json,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. `30s` or `2m`)"))
}

fn parse_address(text: &str) -> Result<Address, String> {
    Address::parse(text)
}

/// The outcome of a command: an exit code.
pub type Outcome = Result<u8, Error>;

/// What commands share: the parsed options and the streams.
pub struct Context<'a> {
    pub global: &'a Global,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub color: bool,
    pub stdout_tty: bool,
    pub stdin_tty: bool,
}

impl Context<'_> {
    fn config_paths(&self) -> Vec<PathBuf> {
        if self.global.config.is_empty() {
            vec![PathBuf::from(config::DEFAULT_CONFIG)]
        } else {
            self.global.config.clone()
        }
    }

    fn load_config(&self) -> Result<Config, Error> {
        Ok(config::load(&self.config_paths())?)
    }

    fn state_paths(&self) -> StatePaths {
        StatePaths::new(self.global.state.clone())
    }

    /// Prints a line on stderr unless `--quiet`.
    fn note(&mut self, text: &str) {
        if !self.global.quiet {
            let _ = writeln!(self.stderr, "{text}");
        }
    }

    fn warn(&mut self, text: &str) {
        let _ = writeln!(self.stderr, "{}", output::paint(self.color, output::YELLOW, &format!("warning: {text}")));
    }
}

/// Parses `args` and runs the command; answers the exit code. Errors are
/// rendered here, once.
#[must_use]
pub fn run(args: Vec<OsString>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { exit::ERROR } else { exit::OK };
        }
    };
    output::init_logging(&cli.global);
    // Unlocked handles: log lines from other threads must be able to reach
    // stderr while a command runs.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let color = output::use_color(cli.global.color, &std::io::stdout());
    let err_color = output::use_color(cli.global.color, &std::io::stderr());
    let mut cx = Context {
        global: &cli.global,
        stdout: &mut out,
        stderr: &mut err,
        color,
        stdout_tty: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        stdin_tty: std::io::IsTerminal::is_terminal(&std::io::stdin()),
    };
    match dispatch(&cli.command, &mut cx) {
        Ok(code) => code,
        Err(error) => {
            let text = crate::error::render(&error);
            let _ = cx.stdout.flush();
            let _ = write!(cx.stderr, "{}", output::color_error(err_color, &text));
            exit::ERROR
        }
    }
}

fn dispatch(command: &Command, cx: &mut Context<'_>) -> Outcome {
    match command {
        Command::Validate => {
            let config = cx.load_config()?;
            let files = config.files.iter().map(|f| format!("`{}`", f.display())).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                cx.stdout,
                "The configuration is valid: {} member(s), {} address(es) at {} provider(s), from {files}.",
                config.member_count,
                config.desired.len(),
                config.providers.len()
            );
            Ok(exit::OK)
        }
        Command::Plan(args) => plan_cmd::run(args, cx),
        Command::Apply(args) => apply_cmd::run(args, cx),
        Command::Schema(args) => Ok(schema::run(args, cx)),
        Command::Init(args) => init::run(args, cx),
        Command::State(command) => state_cmd::run(command, cx),
        Command::Import(args) => import::run(args, cx),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "memberctl", cx.stdout);
            Ok(exit::OK)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(cx.stdout).map_err(|source| Error::Io {
                action: "write",
                path: PathBuf::from("<stdout>"),
                source,
            })?;
            Ok(exit::OK)
        }
    }
}
