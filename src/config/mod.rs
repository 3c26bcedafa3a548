//! Configuration: the YAML model, loading, validation and resolution.
//!
//! [`load`] reads every file, merges them, checks everything that can be
//! checked without the network, and resolves catalog names into remote ids.
//! The result, [`Config`], is what plan and apply work on; nothing below
//! this module sees YAML.

pub mod declared;
pub mod desired;
mod fast_yaml;
mod hostile;
mod load;
pub mod locate;
mod member;
pub mod model;
pub mod names;
mod owners;
mod policy;
pub mod problem;
mod resolve;
pub mod schema;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use desired::Desired;
pub use load::{
    emit_members, load, load_str, load_with, parse_fast, parse_file, parse_general, parse_in_pieces, MemberValue,
    MAX_FILE_BYTES,
};
pub use problem::{render_problems, rules, Place, Problem, Rule};

use crate::provider::ProviderSettings;

/// The default config file, in the current directory.
pub const DEFAULT_CONFIG: &str = "memberctl.yaml";

/// The default `safety.max_changes`.
pub const DEFAULT_MAX_CHANGES: usize = 100;

/// The default `safety.max_removal_fraction`.
pub const DEFAULT_MAX_REMOVAL_FRACTION: f64 = 0.25;

/// A loaded, validated and resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The files read, in load order.
    pub files: Vec<PathBuf>,
    /// SHA-256 of the files' names and contents, to tie a plan to its config.
    pub digest: String,
    /// Providers by name.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// What each address should look like.
    pub desired: Desired,
    /// How many members the files declare.
    pub member_count: usize,
    /// `safety.max_changes`.
    pub max_changes: usize,
    /// `safety.max_removal_fraction`: of a provider's recorded members, the
    /// most a listing may miss (or a plan remove) before it is refused.
    pub max_removal_fraction: f64,
    /// `invites.resend_after`.
    pub resend_after: Option<Duration>,
    /// `moved:` renames, as normalized `(from, to)` emails: `to` is
    /// configured, `from` is not.
    pub moved: Vec<(String, String)>,
    /// The catalogs read backwards (per provider: remote id → name), so
    /// plans show names.
    pub names: names::CatalogNames,
    /// `state:`: where the state lives.
    pub state: StateSettings,
}

/// The default `state.url_env`.
pub const DEFAULT_DATABASE_URL_ENV: &str = "MEMBERCTL_DATABASE_URL";

/// Where the state lives, as the config says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateSettings {
    /// The state file; `None`: the default (or `--state`).
    File {
        /// `state.path`.
        path: Option<PathBuf>,
    },
    /// A `PostgreSQL` database.
    Postgres {
        /// The environment variable that holds the URL.
        url_env: String,
        /// The state's name.
        name: String,
    },
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A named file or directory does not exist.
    #[error("config file `{}` not found", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// A directory holds no YAML files.
    #[error("no `*.yaml` or `*.yml` files in `{}`", path.display())]
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The files were read but are not valid.
    #[error("{} in the configuration", count(problems.len()))]
    Invalid {
        /// Every problem found, in file and line order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// What to do about it.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => {
                Some("run `memberctl init` to write a starter config, or pass `-c PATH`".to_owned())
            }
            ConfigError::EmptyDirectory { .. } => Some("name a file, or a directory holding `*.yaml` files".to_owned()),
            ConfigError::Io { .. } | ConfigError::Invalid { .. } => None,
        }
    }
}

/// `1 problem`, `13,336 problems`.
fn count(n: usize) -> String {
    if n == 1 {
        "1 problem".to_owned()
    } else {
        format!("{} problems", problem::thousands(n))
    }
}
