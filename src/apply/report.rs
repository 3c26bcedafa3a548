//! What an apply reports: progress events as it goes, and a final tally.
//!
//! The engine prints nothing; the CLI implements [`Reporter`] as a progress
//! bar on a terminal or periodic plain lines in CI.

use std::time::Duration;

use crate::address::Address;
use crate::provider::Outcome;

/// A progress event.
#[derive(Debug)]
pub enum Event<'a> {
    /// Sending starts.
    Start {
        /// Operations to carry out.
        operations: usize,
        /// Batches they fall into.
        batches: usize,
    },
    /// A batch finished (or was skipped).
    Batch {
        /// Provider name.
        provider: &'a str,
        /// Each address's outcome.
        results: &'a [(Address, Outcome)],
        /// Operations finished so far.
        done: usize,
        /// Operations in all.
        total: usize,
        /// Whether the batch was sent at all.
        sent: bool,
    },
    /// A provider failed in a way every later request would too.
    ProviderStopped {
        /// Provider name.
        provider: &'a str,
        /// What happened.
        message: &'a str,
        /// What to do.
        hint: Option<&'a str>,
    },
    /// Ctrl-C or SIGTERM: no new batches; in-flight ones get `grace`.
    Interrupted {
        /// How long in-flight batches may take.
        grace: Duration,
    },
}

/// Receives progress events.
pub trait Reporter: Send + Sync {
    /// Called for each event, from the engine's task.
    fn event(&self, event: &Event<'_>);
}

/// A reporter that reports nothing (tests, benchmarks).
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _event: &Event<'_>) {}
}

/// The final tally.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Invitations sent.
    pub invited: Vec<Address>,
    /// Members added directly.
    pub added: Vec<Address>,
    /// Members the provider already had, with its words.
    pub adopted: Vec<(Address, String)>,
    /// Members updated.
    pub updated: Vec<Address>,
    /// Members removed.
    pub removed: Vec<Address>,
    /// Refusals, with reasons.
    pub failed: Vec<(Address, String)>,
    /// Unknown outcomes, with reasons.
    pub uncertain: Vec<(Address, String)>,
    /// Users found deleted at the provider when they were to be updated:
    /// drift, not a failure (DESIGN); their records are dropped, so the
    /// next plan invites them again.
    pub gone: Vec<(Address, String)>,
    /// Changes left for a person.
    pub manual: Vec<Address>,
    /// Ctrl-C or SIGTERM stopped it early.
    pub interrupted: bool,
    /// Bytes appended to the journal.
    pub journal_bytes: u64,
    /// Bytes of the final state write.
    pub state_bytes: u64,
}

impl ApplyReport {
    pub(crate) fn add(&mut self, results: Vec<(Address, Outcome)>) {
        for (address, outcome) in results {
            match outcome {
                Outcome::Invited(_) => self.invited.push(address),
                Outcome::Added(_) => self.added.push(address),
                Outcome::Adopted { message, .. } => self.adopted.push((address, message)),
                Outcome::Updated => self.updated.push(address),
                Outcome::Removed | Outcome::Deactivated(_) => self.removed.push(address),
                Outcome::Partial { reason, .. } => self.failed.push((address, format!("partly carried out: {reason}"))),
                Outcome::Failed { reason } => self.failed.push((address, reason)),
                Outcome::Gone { reason } => self.gone.push((address, reason)),
                Outcome::Uncertain { reason } => self.uncertain.push((address, reason)),
            }
        }
    }

    /// Whether every operation succeeded.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.uncertain.is_empty() && !self.interrupted
    }
}
