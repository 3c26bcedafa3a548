//! Where the state lives, behind one trait: the file beside the config (the
//! default) or a table in `PostgreSQL` shared by many pipelines.
//!
//! The commands see only [`Backend`]: they lock, read (streaming for plan,
//! whole for the rest), record an apply batch by batch through a
//! [`Recorder`], and write a whole state (`state push`). Each backend keeps
//! its own crash story: the file backend its journal file, `PostgreSQL` its
//! `journal` table; both recover on the next run under the lock.

use std::any::Any;
use std::time::Duration;

use super::file::{self, Streamed};
use super::journal::FileRecorder;
use super::{Loaded, Lock, LockInfo, Resource, State, StateError, StatePaths};
use crate::provider::{Operation, Outcome};

/// A held lock (or, for reads that need none, nothing); released on drop.
pub struct Held {
    /// A previous holder that died without releasing (now taken over).
    pub stale: Option<LockInfo>,
    /// Whatever releases the lock when dropped.
    _release: Option<Box<dyn Any + Send>>,
}

impl Held {
    /// A lock that `release` gives back when dropped.
    pub(crate) fn new(stale: Option<LockInfo>, release: Box<dyn Any + Send>) -> Self {
        Self { stale, _release: Some(release) }
    }

    /// No lock: the backend reads a consistent snapshot without one.
    pub(crate) fn none() -> Self {
        Self { stale: None, _release: None }
    }
}

/// How an apply's batches are recorded as they happen.
pub trait RecordBatches: Send {
    /// Records a batch's intent before it is sent; answers its id.
    fn intent(&mut self, provider: &str, ops: &[Operation]) -> Result<u64, StateError>;
    /// Records the intents of batches about to be sent together, each on
    /// its own; answers their ids. A backend may make them durable at once
    /// (one sync for them all) rather than one by one.
    fn intents(&mut self, provider: &str, batches: &[Vec<Operation>]) -> Result<Vec<u64>, StateError> {
        let mut ids = Vec::with_capacity(batches.len());
        for ops in batches {
            match self.intent(provider, ops) {
                Ok(id) => ids.push(id),
                Err(error) => {
                    // None of them is sent: the intents already recorded are
                    // closed as not sent, so none is replayed as uncertain.
                    let not_sent = Outcome::Failed { reason: format!("not sent: {error}") };
                    for (id, ops) in ids.into_iter().zip(batches) {
                        let _ = self.outcome(id, ops, &vec![not_sent.clone(); ops.len()]);
                    }
                    return Err(error);
                }
            }
        }
        Ok(ids)
    }
    /// Records a batch's outcomes (and applies them to the state in memory).
    fn outcome(&mut self, batch: u64, ops: &[Operation], outcomes: &[Outcome]) -> Result<(), StateError>;
    /// Records that a batch's answer will never come.
    fn abandon(&mut self, batch: u64, reason: &str) -> Result<(), StateError>;
    /// The state as recorded so far.
    fn state(&self) -> &State;
    /// Bytes recorded so far (journal lines or database rows).
    fn journal_bytes(&self) -> u64;
    /// Makes the record final; answers the state and the bytes written.
    fn finish(self: Box<Self>) -> Result<(State, u64), StateError>;
}

/// Records an apply, whatever the backend.
pub struct Recorder(Box<dyn RecordBatches>);

impl Recorder {
    /// A recorder for the state file at `paths` (its journal file).
    pub fn begin(paths: &StatePaths, state: State) -> Result<Recorder, StateError> {
        Ok(Recorder(Box::new(FileRecorder::begin(paths, state)?)))
    }

    /// Wraps a backend's recorder.
    pub(crate) fn from_backend(inner: Box<dyn RecordBatches>) -> Self {
        Self(inner)
    }

    /// Records a batch's intent; answers the batch id for [`Recorder::outcome`].
    pub fn intent(&mut self, provider: &str, ops: &[Operation]) -> Result<u64, StateError> {
        self.0.intent(provider, ops)
    }

    /// Records the intents of batches sent together, each its own; answers
    /// their ids, in order.
    pub fn intents(&mut self, provider: &str, batches: &[Vec<Operation>]) -> Result<Vec<u64>, StateError> {
        self.0.intents(provider, batches)
    }

    /// Records a batch's outcomes.
    pub fn outcome(&mut self, batch: u64, ops: &[Operation], outcomes: &[Outcome]) -> Result<(), StateError> {
        self.0.outcome(batch, ops, outcomes)
    }

    /// Records that a batch's answer will never come: its addresses become
    /// `uncertain` with `reason`.
    pub fn abandon(&mut self, batch: u64, reason: &str) -> Result<(), StateError> {
        self.0.abandon(batch, reason)
    }

    /// The state as recorded so far.
    #[must_use]
    pub fn state(&self) -> &State {
        self.0.state()
    }

    /// Bytes recorded so far.
    #[must_use]
    pub fn journal_bytes(&self) -> u64 {
        self.0.journal_bytes()
    }

    /// Makes everything final; answers the state and the bytes written.
    /// Batches still open leave their addresses `uncertain`.
    pub fn finish(self) -> Result<(State, u64), StateError> {
        self.0.finish()
    }
}

/// Where a state lives, as a saved plan records it (absent for a state
/// file, whose plans are tied to it by lineage and serial alone).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Location {
    /// The backend: `postgres`.
    pub backend: String,
    /// The state's name.
    pub name: String,
}

/// A place the state lives.
pub trait Backend {
    /// What to call it in messages: never a secret.
    fn describe(&self) -> String;

    /// Where the state lives, for saved plans (none for a state file).
    fn location(&self) -> Option<Location> {
        None
    }

    /// Takes the exclusive lock, waiting up to `timeout` (polling).
    fn lock(&mut self, command: &str, timeout: Duration) -> Result<Held, StateError>;

    /// What a read-only command (`plan`) holds while it reads: the file
    /// backend takes the lock, a database reads a snapshot and takes none, so
    /// plans never queue behind an apply.
    fn read_guard(&mut self, command: &str, timeout: Duration) -> Result<Held, StateError>;

    /// Clears a lock left by a run that died; refuses while a live run holds
    /// it. Answers the previous holder, if any.
    fn force_unlock(&mut self) -> Result<Option<LockInfo>, StateError>;

    /// Reads the whole state, replaying in memory whatever an interrupted
    /// apply left, and writing nothing.
    fn load(&mut self) -> Result<Loaded, StateError>;

    /// Reads the whole state and folds in for good whatever an interrupted
    /// apply left. Call with the lock held.
    fn load_and_recover(&mut self) -> Result<Loaded, StateError>;

    /// Hands each record to `sink` in address order without keeping them.
    /// [`Streamed::Fallback`] when the state must be read whole instead
    /// (an interrupted apply to replay, or records out of order).
    fn each_record(&mut self, sink: &mut dyn FnMut(&Resource) -> bool) -> Result<Streamed, StateError>;

    /// Starts recording changes to `state` (as [`Backend::load_and_recover`]
    /// answered it). Call with the lock held.
    fn recorder(&mut self, state: State) -> Result<Recorder, StateError>;

    /// Replaces the whole state (`state push`). Call with the lock held.
    /// Answers the bytes written.
    fn write(&mut self, state: &State) -> Result<u64, StateError>;
}

/// The state file (the default backend).
pub struct FileBackend {
    paths: StatePaths,
}

impl FileBackend {
    /// The backend for the state file at `paths`.
    #[must_use]
    pub fn new(paths: StatePaths) -> Self {
        Self { paths }
    }

    /// The state file and its companions.
    #[must_use]
    pub fn paths(&self) -> &StatePaths {
        &self.paths
    }
}

impl Backend for FileBackend {
    fn describe(&self) -> String {
        format!("state file `{}`", self.paths.state.display())
    }

    fn lock(&mut self, command: &str, timeout: Duration) -> Result<Held, StateError> {
        let lock = Lock::acquire(&self.paths, command, timeout)?;
        let stale = lock.stale.clone();
        Ok(Held::new(stale, Box::new(lock)))
    }

    fn read_guard(&mut self, command: &str, timeout: Duration) -> Result<Held, StateError> {
        self.lock(command, timeout)
    }

    fn force_unlock(&mut self) -> Result<Option<LockInfo>, StateError> {
        Lock::force_unlock(&self.paths)
    }

    fn load(&mut self) -> Result<Loaded, StateError> {
        super::load(&self.paths)
    }

    fn load_and_recover(&mut self) -> Result<Loaded, StateError> {
        super::load_and_recover(&self.paths)
    }

    fn each_record(&mut self, sink: &mut dyn FnMut(&Resource) -> bool) -> Result<Streamed, StateError> {
        // A journal must be replayed onto the whole state.
        if self.paths.journal().exists() {
            return Ok(Streamed::Fallback);
        }
        file::each_record(&self.paths, sink)
    }

    fn recorder(&mut self, state: State) -> Result<Recorder, StateError> {
        Recorder::begin(&self.paths, state)
    }

    fn write(&mut self, state: &State) -> Result<u64, StateError> {
        file::write(&self.paths, state)
    }
}
