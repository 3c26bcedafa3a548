//! State: the local record of what memberctl has done.
//!
//! The state file is JSON (`format_version`, `lineage`, `serial`,
//! `resources` sorted by address). This module is the only code that writes
//! it: [`mod@file`] does atomic writes with a backup, [`lock`] guards runs, and
//! [`journal`] records every batch's intent and outcome during apply so that
//! a crash loses nothing the provider confirmed.

pub mod backend;
pub mod edit;
mod failpoint;
pub mod file;
pub mod journal;
pub mod lock;
pub mod postgres;
mod record;
pub mod rescue;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::address::Address;
use crate::attributes::Attributes;
use crate::provider::RemoteIds;

pub use backend::{Backend, FileBackend, Held, Recorder};
pub use lock::{Lock, LockInfo};

/// The version of the records the `PostgreSQL` backend stores (one jsonb
/// resource per row). The state file has its own, [`file::FORMAT_VERSION`].
///
/// 2: rows are written as the state file's version 2 records (the
/// provider and the email are the address's, not stored again: at the
/// benchmark's 100k, 613 bytes a row in the database, index and TOAST
/// included, instead of 831, and a plan from the database 1.47× the file's
/// instead of 2.05×). Version 1 rows are still read, so a state
/// written before is read as it is and its rows rewritten as they change; a
/// memberctl that writes only version 1 refuses the state once this one
/// wrote to it, rather than misreading it.
pub const FORMAT_VERSION: u32 = 2;

/// The default state file, in the current directory.
pub const DEFAULT_STATE: &str = "memberctl.state.json";

/// What is known about an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// An invitation was sent.
    Invited,
    /// The member was added directly.
    Added,
    /// The provider already had the member.
    Adopted,
    /// A request was sent but its outcome is unknown.
    Uncertain,
    /// Removed by deactivation: the provider keeps the user (inactive), and
    /// the record keeps its ids so a re-add is one reactivation.
    Deactivated,
}

impl Status {
    /// The word used in output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Invited => "invited",
            Status::Added => "added",
            Status::Adopted => "adopted",
            Status::Uncertain => "uncertain",
            Status::Deactivated => "deactivated",
        }
    }
}

/// One address's record. Unknown keys are refused: a mangled key must not
/// silently drop what it held (e.g. the provider's ids).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// `PROVIDER/EMAIL`.
    pub address: Address,
    /// The provider name.
    pub provider: String,
    /// The email as last sent.
    pub email: String,
    /// What is known.
    pub status: Status,
    /// The attributes last applied (remote ids, not catalog names).
    pub attributes: Attributes,
    /// Remote ids the provider returned.
    #[serde(default)]
    pub remote: RemoteIds,
    /// When the address was first recorded.
    pub created_at: String,
    /// When the record last changed.
    pub updated_at: String,
    /// When the last invitation was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_at: Option<String>,
    /// How many times the invitation was re-sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resends: u32,
    /// The provider's last words about it (adoption or uncertainty reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The state, in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Minted when the state is created; never changes.
    pub lineage: Uuid,
    /// Incremented on every write.
    pub serial: u64,
    /// Records by address.
    pub resources: BTreeMap<Address, Resource>,
}

impl State {
    /// A new, empty state with a fresh lineage.
    #[must_use]
    pub fn new() -> Self {
        Self { lineage: Uuid::new_v4(), serial: 0, resources: BTreeMap::new() }
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

/// The state file and its companions.
#[derive(Clone, Debug)]
pub struct StatePaths {
    /// The state file.
    pub state: PathBuf,
}

impl StatePaths {
    /// The paths for a state file.
    #[must_use]
    pub fn new(state: impl Into<PathBuf>) -> Self {
        Self { state: state.into() }
    }

    fn with_suffix(&self, suffix: &str) -> PathBuf {
        let mut name = self.state.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        self.state.with_file_name(name)
    }

    /// `STATE.backup`: the previous version.
    #[must_use]
    pub fn backup(&self) -> PathBuf {
        self.with_suffix(".backup")
    }

    /// `STATE.lock`.
    #[must_use]
    pub fn lock(&self) -> PathBuf {
        self.with_suffix(".lock")
    }

    /// `STATE.journal`.
    #[must_use]
    pub fn journal(&self) -> PathBuf {
        self.with_suffix(".journal")
    }

    /// The directory holding the state.
    #[must_use]
    pub fn dir(&self) -> &Path {
        match self.state.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file is not valid state JSON.
    #[error("state file `{}` is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The file was written by a newer memberctl.
    #[error("state file `{}` has format version {found}, newer than this memberctl reads", path.display())]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// Another run holds the lock.
    #[error("state `{}` is locked by {holder}", path.display())]
    Locked {
        /// The state file.
        path: PathBuf,
        /// Who holds it.
        holder: String,
    },
    /// The journal belongs to another state.
    #[error("journal `{}` belongs to state lineage {journal}, not {state}", path.display())]
    JournalMismatch {
        /// The journal.
        path: PathBuf,
        /// Its lineage.
        journal: Uuid,
        /// The state's.
        state: Uuid,
    },
    /// No record at an address.
    #[error("no resource at `{address}` in the state")]
    NoSuchAddress {
        /// The address.
        address: String,
    },
    /// A record exists already.
    #[error("`{address}` is already in the state")]
    AlreadyExists {
        /// The address.
        address: String,
    },
    /// The state database cannot be used.
    #[error("state database `{target}`: {detail}")]
    Database {
        /// Host and database name (never the user or password).
        target: String,
        /// What went wrong (the driver's words, user and password removed).
        detail: String,
    },
    /// Another run took the lock over (this run's session was cut), so this
    /// run may write nothing more.
    #[error("the lock on state `{name}` was taken over by another run; this run wrote nothing more")]
    Fenced {
        /// The state name.
        name: String,
    },
    /// The session's server process changed: a transaction-pooling proxy.
    #[error("state database `{target}`: the session moved from server process {was} to {now}, as behind a transaction-pooling proxy")]
    Pooler {
        /// Host and database name.
        target: String,
        /// The process the session began on.
        was: i32,
        /// The process it is on now.
        now: i32,
    },
    /// The database schema was migrated by a newer memberctl.
    #[error(
        "the `memberctl` schema in the database is at version {found}; this memberctl reads up to version {supported}"
    )]
    NewerSchema {
        /// The version found.
        found: u32,
        /// The newest this memberctl reads.
        supported: u32,
    },
    /// The environment variable with the database URL is not set.
    #[error("`{env}` is not set: the config keeps the state in PostgreSQL")]
    MissingUrl {
        /// The variable.
        env: String,
    },
    /// The database URL cannot be used.
    #[error("the database URL in `{env}` is not usable: {reason}")]
    BadUrl {
        /// The variable.
        env: String,
        /// Why (never quoting the URL).
        reason: String,
    },
    /// The state database went away mid-apply and stayed away: the answers
    /// in hand were written to a rescue journal.
    #[error("lost the state database `{target}` mid-apply; the answers not recorded are in `{}`", path.display())]
    Rescued {
        /// Host and database name.
        target: String,
        /// The rescue journal.
        path: PathBuf,
        /// Its text (printed too: CI runners are thrown away).
        document: String,
    },
    /// The state file could not be written after answers could not be
    /// journaled either (a full disk): those answers are in a rescue
    /// journal.
    #[error("could not record the apply in `{}` ({cause}); the answers the journal lacks are {}", state.display(), rescue.as_ref().map_or_else(|| "printed above (no file could be written)".to_owned(), |path| format!("in `{}`", path.display())))]
    Unrecorded {
        /// The state file.
        state: PathBuf,
        /// Why the state could not be written.
        cause: String,
        /// Where the rescue journal was saved, if it could be.
        rescue: Option<PathBuf>,
        /// Its text (printed too: CI runners are thrown away).
        document: String,
    },
    /// `state push` refused to replace the state.
    #[error("refusing to push: {reason}")]
    PushRefused {
        /// Why.
        reason: String,
    },
    /// File system trouble.
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

impl StateError {
    /// What to do about it.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Corrupt { path, .. } => Some(format!(
                "the file was left untouched; restore it from `{}.backup` (if there is one) or from git",
                path.display()
            )),
            StateError::NewerFormat { .. } => Some("upgrade memberctl; the file was left untouched".to_owned()),
            StateError::Locked { .. } => {
                Some("wait for it to finish, or pass a longer `--lock-timeout` (e.g. `10m`) to wait for it".to_owned())
            }
            StateError::JournalMismatch { .. } => {
                Some("the journal belongs to another state file; move it aside if you are sure".to_owned())
            }
            StateError::NoSuchAddress { .. } => Some("`memberctl state list` shows the addresses".to_owned()),
            StateError::AlreadyExists { .. } => Some("`memberctl state show ADDR` shows the record".to_owned()),
            StateError::Database { .. } => Some(
                "check that the database is up and reachable, and the URL's host, database, user and password"
                    .to_owned(),
            ),
            StateError::Fenced { .. } => {
                Some("run `memberctl apply` again once the other run is done; it recovers what was sent".to_owned())
            }
            StateError::Pooler { .. } => Some(
                "connect to PostgreSQL directly or through a session-pooling proxy: the state lock is a session lock"
                    .to_owned(),
            ),
            StateError::NewerSchema { .. } => Some("upgrade memberctl; nothing was changed".to_owned()),
            StateError::MissingUrl { .. } => {
                Some("set it to a `postgres://USER:PASSWORD@HOST/DATABASE` URL (in CI, from a secret)".to_owned())
            }
            StateError::BadUrl { .. } => Some(
                "the URL is `postgres://USER:PASSWORD@HOST[:PORT]/DATABASE[?sslmode=...&sslrootcert=...]`".to_owned(),
            ),
            StateError::Rescued { path, .. } => Some(format!(
                "once the database is back, run `memberctl state recover {}` before the next apply (the journal is also printed above)",
                path.display()
            )),
            StateError::Unrecorded { rescue, .. } => Some(format!(
                "free some space, then run `memberctl state recover {}` before the next apply (it replays the journal and adds these answers, so no email is sent twice)",
                rescue.as_ref().map_or_else(|| "FILE".to_owned(), |path| path.display().to_string())
            )),
            StateError::PushRefused { .. } | StateError::Io { .. } => None,
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        StateError::Io { action, path: path.to_owned(), source }
    }
}

/// The state as a run sees it, after any journal left by a crash is replayed.
#[derive(Debug)]
pub struct Loaded {
    /// The state (none yet on a first run).
    pub state: Option<State>,
    /// What the journal held, when there was one.
    pub replay: Option<journal::Replay>,
}

/// Reads the state and replays a leftover journal in memory, writing nothing.
///
/// The serial is advanced as the fold will advance it, so a plan saved now
/// still matches after apply has folded the journal. A journal that was
/// already folded into the state is ignored (the next apply removes it).
pub fn load(paths: &StatePaths) -> Result<Loaded, StateError> {
    let state = file::read(paths)?;
    let (mut state, found) = journal::replay(paths, state)?;
    let replay = match found {
        journal::Found::Replayed(replay) => Some(replay),
        journal::Found::Nothing | journal::Found::AlreadyFolded => None,
    };
    if replay.is_some() {
        if let Some(s) = state.as_mut() {
            s.serial += 1;
        }
    }
    Ok(Loaded { state, replay })
}

/// Reads the state and folds a leftover journal into it for good (one
/// atomic write), as apply and the `state` commands do before changing it.
/// A journal that was already folded is removed without touching the state.
pub fn load_and_recover(paths: &StatePaths) -> Result<Loaded, StateError> {
    let state = file::read(paths)?;
    let (state, found) = journal::replay(paths, state)?;
    let replay = match found {
        journal::Found::Nothing => None,
        journal::Found::AlreadyFolded => {
            log::info!(
                "removing `{}`: an earlier apply folded it into the state and stopped before removing it",
                paths.journal().display()
            );
            journal::remove(paths)?;
            None
        }
        journal::Found::Replayed(replay) => Some(replay),
    };
    match (state, replay) {
        (Some(mut state), Some(replay)) => {
            state.serial += 1;
            file::write(paths, &state)?;
            journal::remove(paths)?;
            Ok(Loaded { state: Some(state), replay: Some(replay) })
        }
        (state, replay) => Ok(Loaded { state, replay }),
    }
}
