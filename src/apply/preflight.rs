//! What is checked before anything is sent: the saved plan is not stale,
//! the safety brakes allow it, deletions are allowed, and every credential
//! and password it needs can be read (every problem at once).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ApplyError;
use crate::address::Address;
use crate::plan::{Action, Plan};
use crate::provider::{self, Provider};
use crate::state::State;

/// Why apply cannot start, found before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightProblem {
    /// What the problem is about, so that the CLI can point at the config
    /// where it is declared.
    pub subject: Subject,
    /// What is wrong (names env vars and files, never a value).
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// What a [`PreflightProblem`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A provider's settings (its credential env var).
    Provider(String),
    /// A member's settings at one provider (its password source).
    Member(Address),
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
        if plan.providers.get(change.provider()).is_some_and(|s| s.kind.removal_deletes(s)) {
            providers.insert(format!("`{}`", change.provider()));
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
    let mut problems: Vec<PreflightProblem> = Vec::new();
    let mut clients: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
    // Providers already reported: one problem each, not one per member.
    let mut failed = std::collections::BTreeSet::new();
    for change in plan.changes.iter().filter(|c| c.action != Action::Manual) {
        if !clients.contains_key(change.provider()) && !failed.contains(change.provider()) {
            let built = match plan.providers.get(change.provider()) {
                None => Err(PreflightProblem {
                    subject: Subject::Provider(change.provider().to_owned()),
                    message: format!("provider `{}` is not configured", change.provider()),
                    hint: "add it back to the config".to_owned(),
                }),
                Some(settings) => provider::build(settings, env).map_err(|err| {
                    let hint = match &err {
                        provider::ProviderError::MissingCredential { var, .. } => {
                            format!("export {var}=... (the provider's API credential) and run again")
                        }
                        _ => "fix the provider's settings".to_owned(),
                    };
                    PreflightProblem {
                        subject: Subject::Provider(change.provider().to_owned()),
                        message: err.to_string(),
                        hint,
                    }
                }),
            };
            match built {
                Ok(client) => {
                    clients.insert(change.provider().to_owned(), Arc::from(client));
                }
                Err(problem) => {
                    failed.insert(change.provider().to_owned());
                    problems.push(problem);
                }
            }
        }
        if let Some(after) = &change.after {
            if matches!(change.action, Action::Invite | Action::Resend) {
                if let Err(reason) = provider::credentials::read_password(after) {
                    problems.push(PreflightProblem {
                        subject: Subject::Member(change.address.clone()),
                        message: format!("`{}`: {reason}", change.address),
                        hint: "set it, or use `method: invite`".to_owned(),
                    });
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
