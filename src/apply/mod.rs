//! Apply: carry a plan out through the providers, recording every outcome.
//!
//! Before anything is sent: the plan must match the state (not stale), the
//! safety brake must allow it, and every credential and password must be
//! readable. Then each provider's operations are grouped into batches and
//! sent with bounded concurrency; every batch's intent and outcome go to the
//! journal as they happen. One provider failing (bad key, host down) stops
//! that provider only; the others' successes are recorded all the same.

mod cancel;
mod preflight;
mod report;
pub mod summary;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub use cancel::Cancel;
pub use preflight::{check_brake, check_deletes, check_fresh, preflight, PreflightProblem, Subject};
pub use report::{ApplyReport, Event, Reporter, Silent};

use crate::address::Address;
use crate::plan::{Action, Plan};
use crate::provider::{self, Operation, Outcome, Provider};
use crate::state::{Recorder, State, StateError};

/// Why an apply did not start or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The saved plan does not match the state any more.
    #[error("stale plan: {reason}")]
    Stale {
        /// What differs.
        reason: String,
    },
    /// The safety brake.
    #[error("the plan invites or removes {count} members, more than the limit of {limit}")]
    TooManyChanges {
        /// Invitations, resends and removals in the plan.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The removal-fraction brake.
    #[error("the plan removes {removals} of the {recorded} members recorded at `{provider}`, more than the limit of {limit}")]
    TooManyRemovals {
        /// The provider.
        provider: String,
        /// Removals there.
        removals: usize,
        /// Members the state records there.
        recorded: usize,
        /// The fraction in force.
        limit: f64,
        /// The smallest fraction that lets the removals through.
        needed: String,
    },
    /// Removals that delete users, without `--allow-delete`.
    #[error("the plan deletes {count} user(s) at {providers}, and deletions need `--allow-delete`")]
    DeleteNotAllowed {
        /// Removals that delete.
        count: usize,
        /// The providers, named.
        providers: String,
    },
    /// Credentials or passwords missing: nothing was sent.
    #[error("cannot start: {}", problems.first().map_or("", |p| p.message.as_str()))]
    Preflight {
        /// Each problem, with what it is about and its hint.
        problems: Vec<PreflightProblem>,
    },
    /// Recording failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl ApplyError {
    /// What to do about it.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            ApplyError::Stale { .. } => {
                Some("run `memberctl plan --out FILE` again and apply the new plan".to_owned())
            }
            ApplyError::TooManyChanges { .. } => Some(
                "invitations are emails that cannot be unsent: review the plan, then raise the limit for this run with `--max-changes N` or set `safety.max_changes`".to_owned(),
            ),
            ApplyError::TooManyRemovals { needed, .. } => Some(format!(
                "a config file lost by a bad merge or move looks like this: check the plan, then raise the limit for this run with `--max-removal-fraction {needed}` or set `safety.max_removal_fraction`"
            )),
            ApplyError::DeleteNotAllowed { .. } => Some(
                "a deleted user and their data cannot be brought back: review the plan, then pass `--allow-delete`, or set `on_remove: deactivate`".to_owned(),
            ),
            ApplyError::Preflight { problems } => problems.first().map(|p| p.hint.clone()),
            ApplyError::State(error) => error.hint(),
        }
    }
}

/// The operations of a plan, per provider, in address order, moved out of
/// the plan instead of copied: the plan keeps only the changes that send
/// nothing (manual ones), which with its providers and counts is all a
/// summary of the apply reads.
fn take_operations(plan: &mut Plan, state: &State) -> BTreeMap<String, Vec<Operation>> {
    // Each provider's list sized exactly: grown by doubling, the last
    // growth alone would hold 1.5 times the operations at once.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for change in plan.changes.iter().filter(|c| c.action.operation().is_some()) {
        *counts.entry(change.provider()).or_default() += 1;
    }
    let mut out: BTreeMap<String, Vec<Operation>> =
        counts.into_iter().map(|(provider, count)| (provider.to_owned(), Vec::with_capacity(count))).collect();
    let mut kept = Vec::new();
    for mut change in std::mem::take(&mut plan.changes) {
        let attributes = match change.action.operation() {
            Some(kind @ provider::OperationKind::Remove) => change.before.take().map(|a| (kind, *a)),
            Some(kind) => change.after.take().map(|a| (kind, *a)),
            None => None,
        };
        let Some((kind, attributes)) = attributes else {
            kept.push(change);
            continue;
        };
        let remote = recorded_remote(&change, state);
        let operation = Operation {
            address: change.address,
            kind,
            attributes,
            repeat: change.repeat,
            remote,
            renamed_from: change.moved_from,
        };
        match out.get_mut(operation.address.provider()) {
            Some(ops) => ops.push(operation),
            None => {
                out.insert(operation.address.provider().to_owned(), vec![operation]);
            }
        }
    }
    plan.changes = kept;
    out
}

/// The provider's ids for the user a change acts on, as recorded.
fn recorded_remote(change: &crate::plan::Change, state: &State) -> provider::RemoteIds {
    // A rename acts on the user recorded under its old address.
    let recorded = change.moved_from.as_ref().unwrap_or(&change.address);
    state.resources.get(recorded).map(|r| r.remote.clone()).unwrap_or_default()
}

/// How long in-flight batches may finish after a cancel before they are
/// abandoned (their addresses then become `uncertain`).
pub const GRACE: Duration = Duration::from_secs(10);

/// Carries `plan` out, moving the operations out of it rather than copying
/// them (`clients` come from [`preflight`]); returns the final state as
/// written and what happened. Every member's change is so in memory once,
/// not twice, while sending. Afterwards the plan holds only its manual changes (with its providers
/// and counts): all that [`summary::ApplySummary::of`] and the CLI's
/// summary read.
pub async fn run(
    plan: &mut Plan,
    clients: BTreeMap<String, Arc<dyn Provider>>,
    recorder: Recorder,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
) -> Result<(State, ApplyReport), ApplyError> {
    let operations = take_operations(plan, recorder.state());
    run_with_grace(plan, operations, clients, recorder, reporter, cancel, GRACE).await
}

/// One provider's batches still to send, and what limits their sending.
struct Lane {
    provider: String,
    client: Arc<dyn Provider>,
    /// Batches not yet sent, in order.
    queue: VecDeque<Vec<Operation>>,
    /// One permit per request the provider may have in flight.
    permits: Arc<Semaphore>,
    /// Set when the provider stopped on an error every request would repeat.
    stopped: Arc<Mutex<Option<String>>>,
}

/// A batch in flight, as the engine sees it from outside: enough to report
/// every address even when its task never returns (it panicked, or was
/// abandoned after a cancel).
struct Spawned {
    provider: String,
    /// The batch's operations, shared with its task (so their addresses are
    /// at hand without a copy).
    ops: Arc<Vec<Operation>>,
    /// The batch's journal id: its intent is recorded before it is spawned,
    /// so from then on its request may have been sent.
    journal_id: u64,
}

/// Everything a run shares with the tasks it spawns.
struct Shared {
    recorder: Arc<Mutex<Recorder>>,
    /// Once an outcome cannot be recorded, nothing more is sent: a send whose
    /// outcome cannot be kept is a send the next run would repeat.
    unrecordable: Arc<AtomicBool>,
    /// Woken each time a request finishes, so its permit is used at once.
    wake: Arc<Notify>,
}

/// [`run`], with the plan's operations and how long in-flight batches may
/// finish after a cancel.
///
/// Whenever a provider may have more requests in flight, every batch that
/// fits is taken at once and their intents are journaled with one sync
/// ([`dispatch`]); each batch is then sent by a task of its own, and its
/// outcomes are journaled as soon as it is answered, whatever the batches
/// beside it do. Each journal entry is one batch, so it costs O(batch).
async fn run_with_grace(
    plan: &Plan,
    operations: BTreeMap<String, Vec<Operation>>,
    clients: BTreeMap<String, Arc<dyn Provider>>,
    recorder: Recorder,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
    grace: Duration,
) -> Result<(State, ApplyReport), ApplyError> {
    let shared = Shared {
        recorder: Arc::new(Mutex::new(recorder)),
        unrecordable: Arc::new(AtomicBool::new(false)),
        wake: Arc::new(Notify::new()),
    };
    let mut report = ApplyReport::default();
    for change in plan.changes.iter().filter(|c| c.action == Action::Manual) {
        report.manual.push(change.address.clone());
    }
    let mut lanes = Vec::new();
    let mut total = 0;
    let mut batches = 0;
    for (provider, ops) in operations {
        let Some(client) = clients.get(&provider).cloned() else { continue };
        total += ops.len();
        let queue: VecDeque<Vec<Operation>> = client.batches(ops).into();
        batches += queue.len();
        let permits = Arc::new(Semaphore::new(client.settings().concurrency.max(1)));
        lanes.push(Lane { provider, client, queue, permits, stopped: Arc::new(Mutex::new(None)) });
    }
    reporter.event(&Event::Start { operations: total, batches });
    let mut tally = Tally { reporter: reporter.as_ref(), report: &mut report, done: 0, total, state_error: None };
    let mut tasks = tokio::task::JoinSet::new();
    let mut spawned: HashMap<tokio::task::Id, Spawned> = HashMap::new();
    let mut stopped_providers = std::collections::BTreeSet::new();
    // Set on cancel: when in-flight batches are abandoned. One deadline for
    // them all, not a fresh grace period after each batch that finishes.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        for lane in &mut lanes {
            dispatch(lane, &shared, &cancel, &mut tasks, &mut spawned, &mut tally);
        }
        if tasks.is_empty() {
            break;
        }
        let next = tokio::select! {
            biased;
            joined = tasks.join_next_with_id() => joined,
            () = shared.wake.notified() => continue,
            () = cancel.cancelled(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + grace);
                reporter.event(&Event::Interrupted { grace });
                continue;
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                // In-flight batches did not finish in time: abandon them
                // (each is then reported below as its task ends).
                tasks.abort_all();
                continue;
            }
        };
        let Some(joined) = next else { break };
        let result = match joined {
            Ok((id, answered)) => {
                let Some(batch) = spawned.remove(&id) else { continue };
                answered.into_result(batch)
            }
            Err(ended) => {
                let Some(batch) = spawned.remove(&ended.id()) else { continue };
                lost(batch, ended, &shared.recorder)
            }
        };
        if let Some((message, hint)) = &result.fatal {
            // Once per provider: concurrent batches hit the same wall.
            if stopped_providers.insert(result.provider.clone()) {
                reporter.event(&Event::ProviderStopped { provider: &result.provider, message, hint: hint.as_deref() });
            }
        }
        tally.add(result);
    }
    let state_error = tally.state_error.take();
    report.interrupted = deadline.is_some() || cancel.is_cancelled();
    let recorder =
        Arc::try_unwrap(shared.recorder).map_err(|_| ()).expect("all tasks finished").into_inner().expect("poisoned");
    report.journal_bytes = recorder.journal_bytes();
    let (state, bytes) = recorder.finish()?;
    report.state_bytes = bytes;
    if let Some(err) = state_error {
        return Err(ApplyError::State(err));
    }
    Ok((state, report))
}

/// Reports results as they come and keeps the tally.
struct Tally<'a> {
    reporter: &'a dyn Reporter,
    report: &'a mut ApplyReport,
    done: usize,
    total: usize,
    state_error: Option<StateError>,
}

impl Tally<'_> {
    fn add(&mut self, result: BatchResult) {
        self.done += result.results.len();
        if let Some(err) = result.state_error {
            self.state_error.get_or_insert(err);
        }
        self.reporter.event(&Event::Batch {
            provider: &result.provider,
            results: &result.results,
            done: self.done,
            total: self.total,
            sent: result.sent,
        });
        self.report.add(result.results);
    }
}

/// Sends what `lane` may send now: the batches that fit in its free
/// permits, each journaled on its own. Batches that may not be sent any more
/// (a cancel, a stopped provider, outcomes that can no longer be recorded)
/// are reported as not sent.
fn dispatch(
    lane: &mut Lane,
    shared: &Shared,
    cancel: &Cancel,
    tasks: &mut tokio::task::JoinSet<Answered>,
    spawned: &mut HashMap<tokio::task::Id, Spawned>,
    tally: &mut Tally<'_>,
) {
    if lane.queue.is_empty() {
        return;
    }
    let refusal = if cancel.is_cancelled() {
        Some("not sent: the apply was interrupted".to_owned())
    } else if let Some(reason) = lane.stopped.lock().expect("poisoned").clone() {
        Some(reason)
    } else if shared.unrecordable.load(Ordering::SeqCst) {
        Some("not sent: outcomes could no longer be recorded".to_owned())
    } else {
        None
    };
    if let Some(reason) = refusal {
        for batch in lane.queue.drain(..) {
            tally.add(BatchResult::not_sent(&lane.provider, batch, &reason));
        }
        return;
    }
    // Each batch is journaled on its own, so that its outcome is recorded
    // (and its provider's confirmation safe from a kill) as soon as it
    // returns, whatever the batches beside it do (DESIGN); the intents of
    // the batches sent together are made durable with one sync.
    let mut permits = Vec::new();
    while permits.len() < lane.queue.len() {
        let Ok(permit) = Arc::clone(&lane.permits).try_acquire_owned() else { break };
        permits.push(permit);
    }
    if permits.is_empty() {
        return;
    }
    let batches: Vec<Vec<Operation>> = lane.queue.drain(..permits.len()).collect();
    let ids = match shared.recorder.lock().expect("poisoned").intents(&lane.provider, &batches) {
        Ok(ids) => ids,
        Err(err) => {
            shared.unrecordable.store(true, Ordering::SeqCst);
            tally.add(BatchResult::state_error(&lane.provider, batches.into_iter().flatten().collect(), err));
            return;
        }
    };
    for ((ops, permit), journal_id) in batches.into_iter().zip(permits).zip(ids) {
        send_batch(lane, ops, permit, journal_id, shared, tasks, spawned);
    }
}

/// Spawns the sending of `ops`, whose intent is journaled as `journal_id`.
fn send_batch(
    lane: &Lane,
    ops: Vec<Operation>,
    permit: OwnedSemaphorePermit,
    journal_id: u64,
    shared: &Shared,
    tasks: &mut tokio::task::JoinSet<Answered>,
    spawned: &mut HashMap<tokio::task::Id, Spawned>,
) {
    let ops = Arc::new(ops);
    let task = send_one(BatchTask {
        client: Arc::clone(&lane.client),
        permit,
        ops: Arc::clone(&ops),
        stopped: Arc::clone(&lane.stopped),
        recorder: Arc::clone(&shared.recorder),
        unrecordable: Arc::clone(&shared.unrecordable),
        wake: Arc::clone(&shared.wake),
        provider: lane.provider.clone(),
        journal_id,
    });
    let handle = tasks.spawn(task);
    spawned.insert(handle.id(), Spawned { provider: lane.provider.clone(), ops, journal_id });
}

/// What one batch's task needs.
struct BatchTask {
    client: Arc<dyn Provider>,
    /// Released as soon as the batch is answered, before its outcomes are
    /// journaled, so the provider's next request need not wait for that.
    permit: OwnedSemaphorePermit,
    ops: Arc<Vec<Operation>>,
    stopped: Arc<Mutex<Option<String>>>,
    recorder: Arc<Mutex<Recorder>>,
    unrecordable: Arc<AtomicBool>,
    wake: Arc<Notify>,
    provider: String,
    journal_id: u64,
}

/// What a batch's task answers: each operation's outcome, in order.
struct Answered {
    outcomes: Vec<Outcome>,
    fatal: Option<(String, Option<String>)>,
    /// The outcomes could not be recorded.
    state_error: Option<StateError>,
}

impl Answered {
    fn into_result(self, batch: Spawned) -> BatchResult {
        let Spawned { provider, ops, .. } = batch;
        let addresses = operation_addresses(ops);
        // An answer whose journal line could not be written is still the
        // provider's answer: the recorder holds it in the state, and its
        // error stops the sending and ends the apply.
        BatchResult {
            provider,
            results: addresses.into_iter().zip(self.outcomes).collect(),
            fatal: self.fatal,
            state_error: self.state_error,
            sent: true,
        }
    }
}

/// The addresses of a batch's operations, moved out once its task is done
/// with them.
fn operation_addresses(ops: Arc<Vec<Operation>>) -> Vec<Address> {
    match Arc::try_unwrap(ops) {
        Ok(ops) => ops.into_iter().map(|op| op.address).collect(),
        Err(shared) => shared.iter().map(|op| op.address.clone()).collect(),
    }
}

/// Sends a batch and records its outcomes. Nothing is awaited once the
/// answer is in, so a cancel that abandons the task never comes between
/// the answer and its journaling.
async fn send_one(task: BatchTask) -> Answered {
    let BatchTask { client, permit, ops, stopped, recorder, unrecordable, wake, provider, journal_id } = task;
    let answered = client.send(&ops).await;
    drop(permit);
    wake.notify_one();
    let (outcomes, fatal) = settle(ops.len(), answered, &provider, &stopped);
    let state_error = recorder.lock().expect("poisoned").outcome(journal_id, &ops, &outcomes).err();
    if state_error.is_some() {
        unrecordable.store(true, Ordering::SeqCst);
    }
    Answered { outcomes, fatal, state_error }
}

/// A batch's outcomes from its answer: one per operation. An error every
/// later request would repeat stops the provider.
fn settle(
    len: usize,
    answer: Result<Vec<Outcome>, provider::BatchError>,
    provider: &str,
    stopped: &Mutex<Option<String>>,
) -> (Vec<Outcome>, Option<(String, Option<String>)>) {
    match answer {
        Ok(mut outcomes) => {
            outcomes.truncate(len);
            while outcomes.len() < len {
                outcomes
                    .push(Outcome::Uncertain { reason: "the provider's answer did not mention this email".to_owned() });
            }
            (outcomes, None)
        }
        Err(err) => {
            let outcome = if err.uncertain {
                Outcome::Uncertain { reason: err.message.clone() }
            } else if err.fatal {
                // The error itself is reported once for the provider
                // (`Event::ProviderStopped`); each address gets a short reason.
                Outcome::Failed { reason: stopped_reason(provider, &err.message) }
            } else {
                Outcome::Failed { reason: err.message.clone() }
            };
            if err.fatal {
                stopped.lock().expect("poisoned").get_or_insert_with(|| stopped_reason(provider, &err.message));
            }
            let fatal = err.fatal.then_some((err.message, err.hint));
            (vec![outcome; len], fatal)
        }
    }
}

/// The result of a batch whose task ended without one: it panicked, or it
/// was abandoned after a cancel, before it was answered ([`send_one`]). Its
/// intent was recorded, so its request may have been sent: its addresses
/// are `uncertain`, and recorded so with the reason.
///
/// (A task that panicked inside the recorder poisons it, and the apply then
/// stops as a crash would: the journal on disk is intact, and the next run
/// recovers from it.)
fn lost(batch: Spawned, ended: tokio::task::JoinError, recorder: &Mutex<Recorder>) -> BatchResult {
    let Spawned { provider, ops, journal_id } = batch;
    let reason = if ended.is_panic() {
        format!("the task sending this batch panicked: {}", panic_message(ended.into_panic().as_ref()))
    } else {
        "the apply was interrupted before the answer arrived".to_owned()
    };
    let abandoned = recorder.lock().expect("poisoned").abandon(journal_id, &reason);
    let outcome = Outcome::Uncertain { reason };
    let results = operation_addresses(ops).into_iter().map(|address| (address, outcome.clone())).collect();
    BatchResult { provider, results, fatal: None, state_error: abandoned.err(), sent: true }
}

/// The message a panic carried, when it is text.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The reason recorded for each address of a provider that stopped on an
/// error every request would repeat (bad credentials, unreachable host).
/// The terminal reports the error once, with its hint; the reason carries
/// it too, as the apply summary for the pull request has no "above".
fn stopped_reason(provider: &str, error: &str) -> String {
    format!("not carried out: provider `{provider}` stopped: {error}")
}

struct BatchResult {
    provider: String,
    results: Vec<(Address, Outcome)>,
    fatal: Option<(String, Option<String>)>,
    state_error: Option<StateError>,
    sent: bool,
}

impl BatchResult {
    fn not_sent(provider: &str, batch: Vec<Operation>, reason: &str) -> Self {
        BatchResult {
            provider: provider.to_owned(),
            results: batch.into_iter().map(|op| (op.address, Outcome::Failed { reason: reason.to_owned() })).collect(),
            fatal: None,
            state_error: None,
            sent: false,
        }
    }

    fn state_error(provider: &str, batch: Vec<Operation>, err: StateError) -> Self {
        let mut result = Self::not_sent(provider, batch, &format!("not recorded: {err}"));
        result.state_error = Some(err);
        result
    }
}

#[cfg(test)]
mod tests;
