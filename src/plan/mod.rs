//! Plan: what apply would do, as a pure function of (config, state).
//!
//! [`compute`] does no I/O: it compares each address's desired attributes
//! with its record in the state, and asks each provider's capabilities
//! whether the change can be carried out or must be done by hand (`manual`).
//! The rendering lives in [`render`].

pub mod render;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::address::Address;
use crate::attributes::Attributes;
use crate::config::Config;
use crate::provider::{OperationKind, ProviderKind, ProviderSettings, UncertainPolicy};
use crate::state::{State, Status};

/// The plan format this memberctl writes.
pub const FORMAT_VERSION: u32 = 1;

/// What a change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Invite a member not yet in the state.
    Invite,
    /// Re-send an invitation that was never confirmed.
    Resend,
    /// Change a member's attributes.
    Update,
    /// Remove a member that is no longer in the config.
    Remove,
    /// A change the provider cannot carry out: a person must.
    Manual,
}

impl Action {
    /// The word used in output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Invite => "invite",
            Action::Resend => "resend",
            Action::Update => "update",
            Action::Remove => "remove",
            Action::Manual => "manual",
        }
    }

    /// The terraform-like symbol.
    #[must_use]
    pub fn symbol(self) -> char {
        match self {
            Action::Invite => '+',
            Action::Resend => '>',
            Action::Update => '~',
            Action::Remove => '-',
            Action::Manual => '!',
        }
    }

    /// The provider operation that carries this action out.
    #[must_use]
    pub fn operation(self) -> Option<OperationKind> {
        match self {
            Action::Invite => Some(OperationKind::Invite),
            Action::Resend => Some(OperationKind::Resend),
            Action::Update => Some(OperationKind::Update),
            Action::Remove => Some(OperationKind::Remove),
            Action::Manual => None,
        }
    }
}

/// One attribute that changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    /// The attribute.
    pub field: String,
    /// Old value, as shown to people.
    pub before: String,
    /// New value, as shown to people.
    pub after: String,
}

/// One address's change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// `PROVIDER/EMAIL`.
    pub address: Address,
    /// The provider name.
    pub provider: String,
    /// The email as written.
    pub email: String,
    /// What happens.
    pub action: Action,
    /// For `manual`: what would have been done had the provider been able to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wanted: Option<Action>,
    /// The recorded attributes (none for an invite).
    pub before: Option<Attributes>,
    /// The desired attributes (none for a removal).
    pub after: Option<Attributes>,
    /// The attributes that differ (updates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// Why this change is planned, or what to do by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The address was sent before with no known outcome: a duplicate answer
    /// then means the earlier send arrived.
    #[serde(default)]
    pub repeat: bool,
}

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
    /// `Plan: 3 to invite, 1 to update, 0 to remove, 2 manual.`
    #[must_use]
    pub fn line(&self) -> String {
        let resend = if self.resend > 0 { format!("{} to resend, ", self.resend) } else { String::new() };
        format!(
            "Plan: {} to invite, {} to update, {} to remove, {resend}{} manual.",
            self.invite, self.update, self.remove, self.manual
        )
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
    /// Things a reader should know (uncertain outcomes, narrowing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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

fn admin_console(kind: Option<ProviderKind>) -> &'static str {
    match kind {
        Some(ProviderKind::Networked) => "the Networked admin console",
        Some(ProviderKind::Aptly) => "the Aptly admin console",
        Some(ProviderKind::Sandbox) => "the sandbox outbox",
        None => "the provider",
    }
}

/// Computes the plan. Pure: `now` is passed in for resend decisions.
#[must_use]
pub fn compute(config: &Config, state: Option<&State>, scope: &Scope, now: SystemTime) -> Plan {
    let empty = BTreeMap::new();
    let recorded = state.map_or(&empty, |s| &s.resources);
    let mut changes = Vec::new();
    let mut summary = Summary::default();
    let mut warnings = Vec::new();

    // Both maps are sorted by address: walk them together.
    let mut desired = config.desired.iter().peekable();
    let mut records = recorded.iter().peekable();
    // Addresses are grouped by provider: look each provider up once per run.
    let mut provider: Option<(&str, Option<&ProviderSettings>)> = None;
    loop {
        // One comparison per step (addresses share long prefixes).
        let order = match (desired.peek(), records.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        let (address, want, have) = match order {
            Ordering::Equal => {
                let (a, want) = desired.next().expect("peeked");
                let (_, have) = records.next().expect("peeked");
                (a, Some(want), Some(have))
            }
            Ordering::Less => {
                let (a, want) = desired.next().expect("peeked");
                (a, Some(want), None)
            }
            Ordering::Greater => {
                let (b, have) = records.next().expect("peeked");
                (b, None, Some(have))
            }
        };
        if !scope.includes(address) {
            continue;
        }
        if have.is_some_and(|r| r.status == Status::Uncertain) {
            summary.uncertain += 1;
        }
        let name = address.provider();
        let settings = match provider {
            Some((known, settings)) if known == name => settings,
            _ => {
                let settings = config.providers.get(name);
                provider = Some((name, settings));
                settings
            }
        };
        let change = diff_one(address, want, have, settings, config.resend_after, now);
        if let Some(change) = change {
            match change.action {
                Action::Invite => summary.invite += 1,
                Action::Resend => summary.resend += 1,
                Action::Update => summary.update += 1,
                Action::Remove => summary.remove += 1,
                Action::Manual => summary.manual += 1,
            }
            changes.push(change);
        }
    }
    if summary.uncertain > 0 {
        warnings.push(format!(
            "{} address(es) have an uncertain outcome from an earlier apply (the request may or may not have arrived)",
            summary.uncertain
        ));
    }
    if !scope.targets.is_empty() || !scope.providers.is_empty() {
        warnings.push("this plan is narrowed by --target/--provider: other changes may be pending".to_owned());
    }
    let applyable = summary.invite + summary.resend + summary.update + summary.remove > 0;
    Plan {
        format_version: FORMAT_VERSION,
        memberctl_version: env!("CARGO_PKG_VERSION").to_owned(),
        lineage: state.map(|s| s.lineage),
        serial: state.map_or(0, |s| s.serial),
        config_digest: config.digest.clone(),
        providers: config.providers.clone(),
        no_changes: changes.is_empty(),
        changes,
        summary,
        applyable,
        max_changes: config.max_changes,
        warnings,
    }
}

fn diff_one(
    address: &Address,
    want: Option<&Attributes>,
    have: Option<&crate::state::Resource>,
    settings: Option<&ProviderSettings>,
    resend_after: Option<Duration>,
    now: SystemTime,
) -> Option<Change> {
    let caps = settings.map(|s| s.capabilities);
    let kind = settings.map(|s| s.kind);
    let console = admin_console(kind);
    let provider = address.provider();
    // Spelled out only for the changes that need it, not for every address.
    let mark_done = || format!("`memberctl state mark-done {address}`");
    let change =
        |action, wanted, before: Option<&Attributes>, after: Option<&Attributes>, reason: Option<String>, repeat| {
            Change {
                address: address.clone(),
                provider: provider.to_owned(),
                email: after.or(before).map(|a| a.email.clone()).unwrap_or_default(),
                action,
                wanted,
                before: before.cloned(),
                after: after.cloned(),
                fields: match (before, after) {
                    (Some(b), Some(a)) if action == Action::Update || wanted == Some(Action::Update) => b
                        .changes_to(a)
                        .into_iter()
                        .map(|c| FieldChange { field: c.field.to_owned(), before: c.before, after: c.after })
                        .collect(),
                    _ => Vec::new(),
                },
                reason,
                repeat,
            }
        };
    match (want, have) {
        (None, None) => None,
        (Some(want), None) => Some(if caps.is_some_and(|c| c.invite) {
            change(Action::Invite, None, None, Some(want), None, false)
        } else {
            let reason = format!("provider `{provider}` may not invite: invite {} by hand in {console}, then run `memberctl state import {address}`", want.email);
            change(Action::Manual, Some(Action::Invite), None, Some(want), Some(reason), false)
        }),
        (None, Some(have)) => Some(if settings.is_none() {
            let reason = format!("provider `{provider}` is no longer configured: remove {} by hand if needed, then run `memberctl state rm {address}`", have.email);
            change(Action::Manual, Some(Action::Remove), Some(&have.attributes), None, Some(reason), false)
        } else if caps.is_some_and(|c| c.remove) {
            change(Action::Remove, None, Some(&have.attributes), None, None, false)
        } else {
            let reason = format!(
                "`{provider}` cannot remove members through its API: remove {} by hand in {console}, then run {}",
                have.email,
                mark_done()
            );
            change(Action::Manual, Some(Action::Remove), Some(&have.attributes), None, Some(reason), false)
        }),
        (Some(want), Some(have)) => {
            if have.status == Status::Uncertain {
                let policy = settings.map(|s| s.uncertain).unwrap_or_default();
                let why = have.message.as_deref().unwrap_or("no answer was recorded");
                return Some(if policy == UncertainPolicy::SendAgain && caps.is_some_and(|c| c.invite) {
                    let reason = format!("the last send had no known outcome ({why}); sending again: a duplicate answer adopts the member");
                    change(Action::Invite, None, None, Some(want), Some(reason), true)
                } else {
                    let reason = format!(
                        "the last send had no known outcome ({why}): check {console}; if {} was invited run `memberctl state import {address}`, otherwise `memberctl state rm {address}` and plan again",
                        want.email
                    );
                    change(Action::Manual, Some(Action::Invite), None, Some(want), Some(reason), true)
                });
            }
            if !have.attributes.changes_to(want).is_empty() {
                return Some(if caps.is_some_and(|c| c.update) {
                    change(Action::Update, None, Some(&have.attributes), Some(want), None, false)
                } else {
                    let reason = format!("`{provider}` cannot update members through its API: make the change by hand in {console}, then run {}", mark_done());
                    change(
                        Action::Manual,
                        Some(Action::Update),
                        Some(&have.attributes),
                        Some(want),
                        Some(reason),
                        false,
                    )
                });
            }
            let due = resend_after
                .filter(|_| have.status == Status::Invited && caps.is_some_and(|c| c.invite))
                .and_then(|after| {
                    let sent = have.invited_at.as_deref().and_then(crate::clock::parse_rfc3339)?;
                    let age = now.duration_since(sent).ok()?;
                    (age >= after).then_some(age)
                });
            due.map(|age| {
                let days = age.as_secs() / 86_400;
                let reason = format!("invited {days} day(s) ago and not confirmed; `invites.resend_after` is due");
                change(Action::Resend, None, Some(&have.attributes), Some(want), Some(reason), true)
            })
        }
    }
}
