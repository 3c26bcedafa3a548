//! Apply: carry a plan out through the providers, recording every outcome.
//!
//! Before anything is sent: the plan must match the state (not stale), the
//! safety brake must allow it, and every credential and password must be
//! readable. Then each provider's operations are grouped into batches and
//! sent with bounded concurrency; every batch's intent and outcome go to the
//! journal as they happen. One provider failing (bad key, host down) stops
//! that provider only; the others' successes are recorded all the same.

mod cancel;
mod report;
pub mod summary;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use cancel::Cancel;
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
    #[error("cannot start: {}", problems.first().map_or("", |p| p.0.as_str()))]
    Preflight {
        /// Each problem and its hint.
        problems: Vec<(String, String)>,
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
            ApplyError::Preflight { problems } => problems.first().map(|p| p.1.clone()),
            ApplyError::State(error) => error.hint(),
        }
    }
}

/// Refuses a saved plan made against another state, or an older one.
pub fn check_fresh(plan: &Plan, state: Option<&State>) -> Result<(), ApplyError> {
    let refuse = |reason: String| Err(ApplyError::Stale { reason });
    match (plan.lineage, state) {
        (None, Some(_)) => refuse("it was made when no state existed, and a state exists now".to_owned()),
        (Some(_), None) => refuse("it was made against a state that no longer exists".to_owned()),
        (Some(lineage), Some(state)) if lineage != state.lineage => {
            refuse(format!("it was made against state lineage {lineage}, but the state's lineage is {}", state.lineage))
        }
        (Some(_), Some(state)) if plan.serial != state.serial => {
            refuse(format!("it was made at state serial {}, but the state is at serial {}", plan.serial, state.serial))
        }
        _ => Ok(()),
    }
}

/// Refuses removals that delete users unless `allow_delete`.
pub fn check_deletes(plan: &Plan, allow_delete: bool) -> Result<(), ApplyError> {
    if allow_delete {
        return Ok(());
    }
    let mut providers = std::collections::BTreeSet::new();
    let mut count = 0;
    for change in plan.changes.iter().filter(|c| c.action == Action::Remove) {
        if plan.providers.get(&change.provider).is_some_and(|s| s.kind.removal_deletes(s)) {
            providers.insert(format!("`{}`", change.provider));
            count += 1;
        }
    }
    if count == 0 {
        return Ok(());
    }
    Err(ApplyError::DeleteNotAllowed { count, providers: providers.into_iter().collect::<Vec<_>>().join(", ") })
}

/// Applies the safety brakes: `max_changes`, then `max_removal_fraction`
/// (each overridden for one run by its own option).
pub fn check_brake(
    plan: &Plan,
    override_limit: Option<usize>,
    override_fraction: Option<f64>,
) -> Result<(), ApplyError> {
    let limit = override_limit.unwrap_or(plan.max_changes);
    let count = plan.summary.braked();
    if count > limit {
        return Err(ApplyError::TooManyChanges { count, limit });
    }
    let fraction = override_fraction.unwrap_or(plan.max_removal_fraction);
    if let Some(share) = plan.removals_over(fraction).into_iter().next() {
        return Err(ApplyError::TooManyRemovals {
            needed: share.fraction_needed(),
            provider: share.provider,
            removals: share.removals,
            recorded: share.recorded,
            limit: fraction,
        });
    }
    Ok(())
}

/// Builds the clients and checks every secret the plan needs, before any request.
pub fn preflight(
    plan: &Plan,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Arc<dyn Provider>>, ApplyError> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut clients: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
    // Providers already reported: one problem each, not one per member.
    let mut failed = std::collections::BTreeSet::new();
    for change in plan.changes.iter().filter(|c| c.action != Action::Manual) {
        if !clients.contains_key(&change.provider) && !failed.contains(&change.provider) {
            let built = match plan.providers.get(&change.provider) {
                None => Err((
                    format!("provider `{}` is not configured", change.provider),
                    "add it back to the config".to_owned(),
                )),
                Some(settings) => provider::build(settings, env).map_err(|err| {
                    let hint = match &err {
                        provider::ProviderError::MissingCredential { var, .. } => {
                            format!("export {var}=... (the provider's API credential) and run again")
                        }
                        _ => "fix the provider's settings".to_owned(),
                    };
                    (err.to_string(), hint)
                }),
            };
            match built {
                Ok(client) => {
                    clients.insert(change.provider.clone(), Arc::from(client));
                }
                Err(problem) => {
                    failed.insert(change.provider.clone());
                    problems.push(problem);
                }
            }
        }
        if let Some(after) = &change.after {
            if matches!(change.action, Action::Invite | Action::Resend) {
                if let Err(reason) = provider::credentials::read_password(after) {
                    problems.push((
                        format!("`{}`: {reason}", change.address),
                        "set it, or use `method: invite`".to_owned(),
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(clients)
    } else {
        Err(ApplyError::Preflight { problems })
    }
}

/// The operations of a plan, per provider, in address order.
fn operations(plan: &Plan, state: &State) -> BTreeMap<String, Vec<Operation>> {
    let mut out: BTreeMap<String, Vec<Operation>> = BTreeMap::new();
    for change in &plan.changes {
        let Some(kind) = change.action.operation() else { continue };
        let attributes = match kind {
            provider::OperationKind::Remove => change.before.clone(),
            _ => change.after.clone(),
        };
        let Some(attributes) = attributes else { continue };
        // A rename acts on the user recorded under its old address.
        let recorded = change.moved_from.as_ref().unwrap_or(&change.address);
        out.entry(change.provider.clone()).or_default().push(Operation {
            address: change.address.clone(),
            kind,
            attributes: *attributes,
            repeat: change.repeat,
            remote: state.resources.get(recorded).map(|r| r.remote.clone()).unwrap_or_default(),
            renamed_from: change.moved_from.clone(),
        });
    }
    out
}

/// How long in-flight batches may finish after a cancel before they are
/// abandoned (their addresses then become `uncertain`).
pub const GRACE: Duration = Duration::from_secs(10);

/// Carries `plan` out. `clients` come from [`preflight`]. Returns the
/// final state as written and what happened.
pub async fn run(
    plan: &Plan,
    clients: BTreeMap<String, Arc<dyn Provider>>,
    recorder: Recorder,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
) -> Result<(State, ApplyReport), ApplyError> {
    run_with_grace(plan, clients, recorder, reporter, cancel, GRACE).await
}

/// A batch's task, as the engine sees it from outside: enough to report
/// every address of the batch even when the task never returns (it
/// panicked, or was abandoned after a cancel).
struct Spawned {
    provider: String,
    addresses: Vec<Address>,
    /// The batch's journal id, set once its intent is recorded: from then
    /// on the request may have been sent.
    journal_id: Arc<OnceLock<u64>>,
}

/// [`run`], with how long in-flight batches may finish after a cancel.
async fn run_with_grace(
    plan: &Plan,
    clients: BTreeMap<String, Arc<dyn Provider>>,
    recorder: Recorder,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
    grace: Duration,
) -> Result<(State, ApplyReport), ApplyError> {
    let operations = operations(plan, recorder.state());
    let recorder = Arc::new(Mutex::new(recorder));
    let mut report = ApplyReport::default();
    for change in plan.changes.iter().filter(|c| c.action == Action::Manual) {
        report.manual.push(change.address.clone());
    }
    let mut tasks = tokio::task::JoinSet::new();
    let mut spawned: HashMap<tokio::task::Id, Spawned> = HashMap::new();
    let mut total = 0;
    // Once an outcome cannot be recorded, nothing more is sent: a send whose
    // outcome cannot be kept is a send the next run would repeat.
    let unrecordable = Arc::new(AtomicBool::new(false));
    for (provider_name, ops) in operations {
        let Some(client) = clients.get(&provider_name).cloned() else { continue };
        total += ops.len();
        let permits = Arc::new(tokio::sync::Semaphore::new(client.settings().concurrency.max(1)));
        let stopped = Arc::new(Mutex::new(None::<String>));
        for batch in client.batches(ops) {
            let addresses = batch.iter().map(|op| op.address.clone()).collect();
            let journal_id = Arc::new(OnceLock::new());
            let task = send_batch(BatchTask {
                client: Arc::clone(&client),
                permits: Arc::clone(&permits),
                stopped: Arc::clone(&stopped),
                recorder: Arc::clone(&recorder),
                cancel: cancel.clone(),
                provider: provider_name.clone(),
                unrecordable: Arc::clone(&unrecordable),
                journal_id: Arc::clone(&journal_id),
                batch,
            });
            let handle = tasks.spawn(task);
            spawned.insert(handle.id(), Spawned { provider: provider_name.clone(), addresses, journal_id });
        }
    }
    reporter.event(&Event::Start { operations: total, batches: tasks.len() });
    let mut done = 0usize;
    let mut state_error = None;
    let mut stopped_providers = std::collections::BTreeSet::new();
    // Set on cancel: when in-flight batches are abandoned. One deadline for
    // them all, not a fresh grace period after each batch that finishes.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = tokio::select! {
            biased;
            joined = tasks.join_next_with_id() => joined,
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
            Ok((id, result)) => {
                spawned.remove(&id);
                result
            }
            Err(ended) => {
                let Some(batch) = spawned.remove(&ended.id()) else { continue };
                lost(batch, ended, &recorder)
            }
        };
        done += result.results.len();
        if let Some(err) = result.state_error {
            state_error.get_or_insert(err);
        }
        if let Some((message, hint)) = &result.fatal {
            // Once per provider: concurrent batches hit the same wall.
            if stopped_providers.insert(result.provider.clone()) {
                reporter.event(&Event::ProviderStopped { provider: &result.provider, message, hint: hint.as_deref() });
            }
        }
        reporter.event(&Event::Batch {
            provider: &result.provider,
            results: &result.results,
            done,
            total,
            sent: result.sent,
        });
        report.add(&result.results);
    }
    report.interrupted = deadline.is_some() || cancel.is_cancelled();
    let recorder =
        Arc::try_unwrap(recorder).map_err(|_| ()).expect("all tasks finished").into_inner().expect("poisoned");
    report.journal_bytes = recorder.journal_bytes();
    let (state, bytes) = recorder.finish()?;
    report.state_bytes = bytes;
    if let Some(err) = state_error {
        return Err(ApplyError::State(err));
    }
    Ok((state, report))
}

/// What one batch's task needs.
struct BatchTask {
    client: Arc<dyn Provider>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Set when the provider stopped on an error every request would repeat.
    stopped: Arc<Mutex<Option<String>>>,
    recorder: Arc<Mutex<Recorder>>,
    cancel: Cancel,
    provider: String,
    unrecordable: Arc<AtomicBool>,
    journal_id: Arc<OnceLock<u64>>,
    batch: Vec<Operation>,
}

/// Sends one batch and records its outcomes.
async fn send_batch(task: BatchTask) -> BatchResult {
    let BatchTask { client, permits, stopped, recorder, cancel, provider, unrecordable, journal_id, batch } = task;
    let _permit = permits.acquire_owned().await.expect("semaphore never closes");
    if cancel.is_cancelled() {
        return BatchResult::not_sent(batch, "not sent: the apply was interrupted", false);
    }
    if let Some(reason) = stopped.lock().expect("poisoned").clone() {
        return BatchResult::not_sent(batch, &reason, false);
    }
    if unrecordable.load(Ordering::SeqCst) {
        return BatchResult::not_sent(batch, "not sent: outcomes could no longer be recorded", false);
    }
    let id = match recorder.lock().expect("poisoned").intent(&provider, &batch) {
        Ok(id) => id,
        Err(err) => {
            unrecordable.store(true, Ordering::SeqCst);
            return BatchResult::state_error(batch, err);
        }
    };
    journal_id.set(id).expect("a batch's intent is recorded once");
    let (outcomes, fatal) = match client.send(&batch).await {
        Ok(mut outcomes) => {
            outcomes.truncate(batch.len());
            while outcomes.len() < batch.len() {
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
                Outcome::Failed { reason: stopped_reason(&provider) }
            } else {
                Outcome::Failed { reason: err.message.clone() }
            };
            let fatal = err.fatal.then(|| (err.message.clone(), err.hint.clone()));
            if err.fatal {
                stopped.lock().expect("poisoned").get_or_insert_with(|| stopped_reason(&provider));
            }
            (vec![outcome; batch.len()], fatal)
        }
    };
    if let Err(err) = recorder.lock().expect("poisoned").outcome(id, &batch, &outcomes) {
        unrecordable.store(true, Ordering::SeqCst);
        return BatchResult::state_error(batch, err);
    }
    BatchResult {
        provider,
        results: batch.into_iter().map(|op| op.address).zip(outcomes).collect(),
        fatal,
        state_error: None,
        sent: true,
    }
}

/// The result of a batch whose task ended without one: it panicked, or it
/// was abandoned after a cancel. Once its intent was recorded the request
/// may have been sent, so its addresses are `uncertain`, and recorded so
/// with the reason; before that, nothing was sent.
///
/// (A task that panicked inside the recorder poisons it, and the apply then
/// stops as a crash would: the journal on disk is intact, and the next run
/// recovers from it.)
fn lost(batch: Spawned, ended: tokio::task::JoinError, recorder: &Mutex<Recorder>) -> BatchResult {
    let Spawned { provider, addresses, journal_id } = batch;
    let panic = ended.is_panic().then(|| panic_message(ended.into_panic().as_ref()).to_owned());
    let (outcome, state_error) = match (journal_id.get(), panic) {
        (Some(&id), panic) => {
            let reason = panic.map_or_else(
                || "the apply was interrupted before the answer arrived".to_owned(),
                |panic| format!("the task sending this batch panicked: {panic}"),
            );
            let abandoned = recorder.lock().expect("poisoned").abandon(id, &reason);
            (Outcome::Uncertain { reason }, abandoned.err())
        }
        (None, Some(panic)) => {
            (Outcome::Failed { reason: format!("not sent: the task for this batch panicked: {panic}") }, None)
        }
        (None, None) => (Outcome::Failed { reason: "not sent: the apply was interrupted".to_owned() }, None),
    };
    let results = addresses.into_iter().map(|address| (address, outcome.clone())).collect();
    BatchResult { provider, results, fatal: None, state_error, sent: journal_id.get().is_some() }
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
/// error every request would repeat (bad credentials, unreachable host):
/// the error itself is reported once, not once per address.
fn stopped_reason(provider: &str) -> String {
    format!("not carried out: provider `{provider}` stopped on the error reported above")
}

struct BatchResult {
    provider: String,
    results: Vec<(Address, Outcome)>,
    fatal: Option<(String, Option<String>)>,
    state_error: Option<StateError>,
    sent: bool,
}

impl BatchResult {
    fn not_sent(batch: Vec<Operation>, reason: &str, sent: bool) -> Self {
        let provider = batch.first().map(|op| op.address.provider().to_owned()).unwrap_or_default();
        BatchResult {
            provider,
            results: batch.into_iter().map(|op| (op.address, Outcome::Failed { reason: reason.to_owned() })).collect(),
            fatal: None,
            state_error: None,
            sent,
        }
    }

    fn state_error(batch: Vec<Operation>, err: StateError) -> Self {
        let mut result = Self::not_sent(batch, &format!("not recorded: {err}"), false);
        result.state_error = Some(err);
        result
    }
}

#[cfg(test)]
mod tests;
