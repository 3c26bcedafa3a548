//! Plan: what apply would do, as a pure function of (config, state).
//!
//! [`compute`] does no I/O: it compares each address's desired attributes
//! with its record in the state, and asks each provider's capabilities
//! whether the change can be carried out or must be done by hand (`manual`)
//! (`diff.rs`). A plan is its [`Change`]s with what they sum to; the
//! rendering lives in [`render`].

mod change;
mod diff;
pub mod done_by_hand;
pub mod render;

pub use change::{Action, Change, FieldChange};
pub use diff::{compute, compute_with, Planner};

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::address::Address;
use crate::provider::ProviderSettings;

/// The plan format this memberctl writes.
pub const FORMAT_VERSION: u32 = 1;

/// Counts per action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Invitations to send.
    pub invite: usize,
    /// Invitations to re-send.
    pub resend: usize,
    /// Updates.
    pub update: usize,
    /// Removals.
    pub remove: usize,
    /// Changes a person must make.
    pub manual: usize,
    /// Addresses whose last outcome is unknown.
    pub uncertain: usize,
}

impl Summary {
    /// `Plan: 3 to invite, 1 to update, 0 to remove, 2 manual.`, then, only
    /// when there are any, ` 1 to resend.`: DESIGN's four counts stay
    /// where scripts that read the line expect them.
    #[must_use]
    pub fn line(&self) -> String {
        let resend = if self.resend > 0 { format!(" {} to resend.", self.resend) } else { String::new() };
        format!(
            "Plan: {} to invite, {} to update, {} to remove, {} manual.{resend}",
            self.invite, self.update, self.remove, self.manual
        )
    }

    /// The count of `action`.
    fn count(&mut self, action: Action) -> &mut usize {
        match action {
            Action::Invite => &mut self.invite,
            Action::Resend => &mut self.resend,
            Action::Update => &mut self.update,
            Action::Remove => &mut self.remove,
            Action::Manual => &mut self.manual,
        }
    }

    /// Invitations and removals: what the safety brake counts.
    #[must_use]
    pub fn braked(&self) -> usize {
        self.invite + self.resend + self.remove
    }
}

/// A plan, as shown and as saved with `--out`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// The plan format.
    pub format_version: u32,
    /// The memberctl that made it.
    pub memberctl_version: String,
    /// The state's lineage, or null when there was no state.
    pub lineage: Option<Uuid>,
    /// The state's serial (0 when there was no state).
    pub serial: u64,
    /// Where the state lives, when not in a state file (absent for files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_location: Option<crate::state::backend::Location>,
    /// SHA-256 of the config files.
    pub config_digest: String,
    /// The providers' resolved settings, so a saved plan applies exactly.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Every change, sorted by address.
    pub changes: Vec<Change>,
    /// Counts.
    pub summary: Summary,
    /// True when there is nothing to do.
    pub no_changes: bool,
    /// True when apply has something it can carry out.
    pub applyable: bool,
    /// `safety.max_changes` from the config the plan was made with.
    pub max_changes: usize,
    /// `safety.max_removal_fraction` from the config the plan was made with.
    #[serde(default = "default_removal_fraction")]
    pub max_removal_fraction: f64,
    /// How many members the state records at each provider (the base of
    /// `max_removal_fraction`; deactivated records do not count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recorded_members: BTreeMap<String, usize>,
    /// Things a reader should know (uncertain outcomes, narrowing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What `--refresh` found at the providers (absent without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refreshed>,
}

fn default_removal_fraction() -> f64 {
    crate::config::DEFAULT_MAX_REMOVAL_FRACTION
}

/// Removals below this many at one provider never trip the removal-fraction
/// brake, so a team of three can lose one member.
pub const MIN_REMOVALS_BRAKED: usize = 10;

/// A provider whose share of removals is over the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovalShare {
    /// The provider.
    pub provider: String,
    /// Removals the plan makes there.
    pub removals: usize,
    /// Members the state records there.
    pub recorded: usize,
}

impl RemovalShare {
    /// The smallest `--max-removal-fraction` that lets these removals
    /// through, rounded up to two decimals.
    #[must_use]
    pub fn fraction_needed(&self) -> String {
        if self.recorded == 0 {
            return "1".to_owned();
        }
        let hundredths = (self.removals * 100).div_ceil(self.recorded).min(100);
        if hundredths == 100 {
            "1".to_owned()
        } else {
            format!("0.{hundredths:02}")
        }
    }
}

impl Plan {
    /// The providers where the plan removes more than `limit` of the
    /// members the state records (and at least [`MIN_REMOVALS_BRAKED`]).
    #[must_use]
    pub fn removals_over(&self, limit: f64) -> Vec<RemovalShare> {
        let mut removals: BTreeMap<&str, usize> = BTreeMap::new();
        for change in self.changes.iter().filter(|c| c.action == Action::Remove) {
            *removals.entry(change.provider()).or_default() += 1;
        }
        removals
            .into_iter()
            .filter(|&(_, n)| n >= MIN_REMOVALS_BRAKED)
            .filter_map(|(provider, n)| {
                let recorded = self.recorded_members.get(provider).copied().unwrap_or(0);
                // A little slack, so that the fraction a warning proposes
                // (rounded up to hundredths) always lets the plan through.
                #[allow(clippy::cast_precision_loss)] // member counts are far below 2^52
                let over = recorded == 0 || n as f64 > limit * recorded as f64 + 1e-9;
                over.then(|| RemovalShare { provider: provider.to_owned(), removals: n, recorded })
            })
            .collect()
    }
}

/// What a refresh found, as carried by a plan. Apply of a saved plan
/// records `observed` before it sends anything, so the state it applies to
/// is the one the plan was made against.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Refreshed {
    /// Providers that were listed.
    pub checked: Vec<String>,
    /// Providers that cannot list: not checked (never "in sync").
    pub not_checked: Vec<String>,
    /// Each address where the provider differs from the state, with what was found.
    pub drift: Vec<DriftNote>,
    /// How many users the providers hold that are neither configured nor recorded.
    pub unmanaged_count: usize,
    /// Those users' addresses (never shown in the pull-request comment).
    pub unmanaged: Vec<Address>,
    /// What listings could not do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The state edits the observations make.
    pub observed: Vec<crate::state::edit::Edit>,
}

/// One address's drift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DriftNote {
    /// `PROVIDER/EMAIL`.
    pub address: Address,
    /// What was found.
    pub found: String,
}

/// The reason of a change planned back because the provider drifted.
pub const DRIFT: &str = "drift";

/// Changes' reasons as people read them: a drift's bare `drift` with what
/// the refresh found at that address.
pub struct Reasons<'a> {
    found: HashMap<&'a Address, &'a str>,
}

impl<'a> Reasons<'a> {
    /// The drift `plan` carries, by address.
    #[must_use]
    pub fn of(plan: &'a Plan) -> Self {
        let notes = plan.refresh.iter().flat_map(|r| &r.drift);
        Self { found: notes.map(|note| (&note.address, note.found.as_str())).collect() }
    }

    /// `change`'s reason, with what was found in place of a bare `drift`.
    #[must_use]
    pub fn shown(&self, change: &'a Change) -> Option<Cow<'a, str>> {
        let reason = change.reason.as_deref()?;
        let found = self.found.get(&change.address);
        Some(match (reason.strip_prefix(DRIFT), found) {
            (Some(""), Some(found)) => Cow::Borrowed(found),
            (Some(rest), Some(found)) if rest.starts_with("; ") => Cow::Owned(format!("{found}{rest}")),
            _ => Cow::Borrowed(reason),
        })
    }
}

/// What to narrow a plan to.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Only these addresses (`--target`).
    pub targets: Vec<Address>,
    /// Only these providers (`--provider`).
    pub providers: Vec<String>,
}

impl Scope {
    fn includes(&self, address: &Address) -> bool {
        (self.targets.is_empty() || self.targets.contains(address))
            && (self.providers.is_empty() || self.providers.iter().any(|p| p == address.provider()))
    }
}

impl Plan {
    /// What the safety brakes say of this plan at these limits.
    fn brake_warnings(&self, max_changes: usize, max_removal_fraction: f64) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.summary.braked() > max_changes {
            warnings.push(format!(
                "safety brake: this plan invites or removes {} members, more than `safety.max_changes` ({}); apply will refuse it unless run with `--max-changes {}`",
                self.summary.braked(),
                max_changes,
                self.summary.braked()
            ));
        }
        for share in self.removals_over(max_removal_fraction) {
            warnings.push(format!(
                "safety brake: this plan removes {} of the {} members recorded at `{}`, more than `safety.max_removal_fraction` ({}); apply will refuse it unless run with `--max-removal-fraction {}`",
                share.removals,
                share.recorded,
                share.provider,
                max_removal_fraction,
                share.fraction_needed()
            ));
        }
        warnings
    }

    /// The brakes' warnings as this run's own limits (`--max-changes`,
    /// `--max-removal-fraction`) leave them: an apply allowed to go on does
    /// not say it will refuse.
    pub fn warn_at_limits(&mut self, max_changes: Option<usize>, max_removal_fraction: Option<f64>) {
        let at_config = self.brake_warnings(self.max_changes, self.max_removal_fraction);
        self.warnings.retain(|warning| !at_config.contains(warning));
        let at_run = self.brake_warnings(
            max_changes.unwrap_or(self.max_changes),
            max_removal_fraction.unwrap_or(self.max_removal_fraction),
        );
        self.warnings.extend(at_run);
    }
}

#[cfg(test)]
mod tests {
    use super::RemovalShare;

    #[test]
    fn the_proposed_fraction_is_rounded_up_so_it_lets_the_plan_through() {
        let share = |removals, recorded| RemovalShare { provider: "p".to_owned(), removals, recorded };
        assert_eq!(share(12, 20).fraction_needed(), "0.60");
        assert_eq!(share(10, 30).fraction_needed(), "0.34");
        assert_eq!(share(10, 1000).fraction_needed(), "0.01");
        assert_eq!(share(20, 20).fraction_needed(), "1");
    }
}
