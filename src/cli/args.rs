//! The clap types: every command, flag and value memberctl accepts, and
//! the parsers of the values clap cannot read itself.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::diagnostics::ErrorFormat;
use crate::address::Address;
use crate::config;

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
    /// Config file or directory (repeatable; a directory loads every *.yaml/*.yml below it, sorted by path,
    /// skipping hidden folders and symbolic links).
    /// Without it: `MEMBERCTL_CONFIG` (paths separated by `:`), then `memberctl.yaml`
    #[arg(short, long = "config", value_name = "PATH", global = true)]
    pub config: Vec<PathBuf>,
    /// State file (else `MEMBERCTL_STATE` when set and not empty, then `state.path` in the config, then
    /// `memberctl.state.json`)
    #[arg(long, value_name = "PATH", global = true)]
    pub state: Option<PathBuf>,
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
    /// Show every config problem in full (default: ten of each kind, then one line per kind)
    #[arg(long, global = true)]
    pub all: bool,
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
    Validate(ValidateArgs),
    /// Show what apply would do
    Plan(PlanArgs),
    /// Carry out the changes (asks first on a terminal)
    Apply(ApplyArgs),
    /// Read what the providers hold, report drift, and record it in the state
    Refresh(RefreshArgs),
    /// Print the JSON Schema of the config (or of the JSON plan)
    Schema(SchemaArgs),
    /// Write a commented starter memberctl.yaml
    Init(InitArgs),
    /// Inspect or change the state by hand
    #[command(subcommand)]
    State(StateCommand),
    /// Turn a CSV export, or what a provider holds, into members YAML
    Import(ImportArgs),
    /// Print shell completions
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

/// Formats of `apply --summary-out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// A pull-request comment
    Markdown,
    /// JSON
    Json,
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

/// `validate` options.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// How to report problems: `json` and `github` print them on stdout for CI
    #[arg(long, default_value = "human")]
    pub format: ErrorFormat,
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
    /// List what the providers hold first, and plan drift back (providers that cannot list are not checked)
    #[arg(long)]
    pub refresh: bool,
    /// With --refresh: reactivate users found deactivated outside memberctl
    #[arg(long, requires = "refresh")]
    pub reactivate: bool,
    /// With --refresh: believe a listing that misses up to this fraction of a provider's recorded
    /// members (overrides `safety.max_removal_fraction`)
    #[arg(long, value_name = "F", value_parser = parse_fraction, requires = "refresh")]
    pub max_removal_fraction: Option<f64>,
    /// How to report errors (on stderr): `json` or `github` for CI
    #[arg(long, default_value = "human")]
    pub error_format: ErrorFormat,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// `refresh` options.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Write nothing; exit 0 in sync, 2 when drift is found, 1 on error (for scheduled drift jobs)
    #[arg(long)]
    pub check: bool,
    /// Believe a listing that misses up to this fraction of a provider's recorded members
    /// (overrides `safety.max_removal_fraction`)
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    pub max_removal_fraction: Option<f64>,
}

/// `apply` options.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // one field per command-line switch
pub struct ApplyArgs {
    /// A plan saved by `plan --out`, applied exactly
    #[arg(value_name = "PLANFILE")]
    pub plan: Option<PathBuf>,
    /// Do not ask for confirmation (required without a terminal; a saved PLANFILE is applied without asking)
    #[arg(long)]
    pub auto_approve: bool,
    /// How to show the plan and then the outcome: text, or json or markdown (the plan as `plan
    /// --format` shows it, then the outcome as `--summary-out` writes it)
    #[arg(long, default_value = "text")]
    pub format: PlanFormat,
    /// Allow up to N invitations and removals in this run (overrides `safety.max_changes`)
    #[arg(long, value_name = "N")]
    pub max_changes: Option<usize>,
    /// Allow removing up to this fraction of a provider's recorded members in this run, and with
    /// --refresh believe a listing that misses up to it (overrides `safety.max_removal_fraction`)
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    pub max_removal_fraction: Option<f64>,
    /// List what the providers hold first, record it, and apply drift back too
    #[arg(long, conflicts_with = "plan")]
    pub refresh: bool,
    /// With --refresh: reactivate users found deactivated outside memberctl
    #[arg(long, requires = "refresh")]
    pub reactivate: bool,
    /// Carry out removals that delete users (providers with `on_remove: delete`)
    #[arg(long)]
    pub allow_delete: bool,
    /// Also write the outcome to FILE (counts per provider, failures, open manual changes), even when apply fails
    #[arg(long, value_name = "FILE")]
    pub summary_out: Option<PathBuf>,
    /// Format of --summary-out
    #[arg(long, value_name = "FORMAT", default_value = "markdown", requires = "summary_out")]
    pub summary_format: SummaryFormat,
    /// How to report errors (on stderr): `json` or `github` for CI
    #[arg(long, default_value = "human")]
    pub error_format: ErrorFormat,
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
    /// Members YAML for what a provider holds (it must be able to list), for members not yet configured
    Provider {
        /// The provider's name in the config
        name: String,
        /// Also record them in the state as adopted, so they are never invited
        #[arg(long)]
        adopt: bool,
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
    /// Record a rename done by hand: FROM's record, with its ids, becomes TO's
    Mv {
        /// PROVIDER/OLD-EMAIL
        #[arg(value_parser = parse_address)]
        from: Address,
        /// PROVIDER/NEW-EMAIL
        #[arg(value_parser = parse_address)]
        to: Address,
    },
    /// Record a manual update or removal as carried out
    MarkDone {
        /// PROVIDER/EMAIL
        #[arg(value_parser = parse_address, required = true)]
        addresses: Vec<Address>,
    },
    /// Clear a lock left by a run that died
    Unlock,
    /// Print the whole state as state-file JSON (to move it or back it up)
    Pull,
    /// Fold in a rescue journal written when the state database went away mid-apply
    Recover {
        /// The rescue journal (`memberctl-rescue-NAME-PID.json`)
        file: PathBuf,
    },
    /// Replace the state with a state file's (refused for another lineage, a lower serial, or a pending journal)
    Push {
        /// The state file to upload
        file: PathBuf,
        /// Replace a state of another lineage too
        #[arg(long)]
        force: bool,
    },
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

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err("write a fraction between 0 and 1, e.g. `0.5`".to_owned()),
    }
}

fn parse_address(text: &str) -> Result<Address, String> {
    Address::parse(text)
}
