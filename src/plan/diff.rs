//! The diff: each address's desired attributes against its record, turned
//! into the change a provider's capabilities allow. Pure: no I/O, and the
//! clock is passed in.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{Action, Change, FieldChange, Plan, Refreshed, Scope, Summary, DRIFT, FORMAT_VERSION};
use crate::address::Address;
use crate::attributes::Attributes;
use crate::config::names::Names;
use crate::config::Config;
use crate::provider::{ProviderKind, ProviderSettings, UncertainPolicy};
use crate::state::{Resource, State, Status};

fn admin_console(kind: Option<ProviderKind>) -> &'static str {
    kind.map_or("the provider", |kind| kind.console())
}

/// Computes the plan. Pure: `now` is passed in for resend decisions.
#[must_use]
pub fn compute(config: &Config, state: Option<&State>, scope: &Scope, now: SystemTime) -> Plan {
    compute_with(Planner::new(config, scope, now), state)
}

/// Computes the plan with a prepared [`Planner`] (e.g. [`Planner::refreshed`]).
#[must_use]
pub fn compute_with(mut planner: Planner<'_>, state: Option<&State>) -> Plan {
    if let Some(state) = state {
        for resource in state.resources.values() {
            planner.record(resource);
        }
    }
    planner.finish(state.map(|s| s.lineage), state.map_or(0, |s| s.serial))
}

/// How many configured addresses a thread plans at a time when nothing
/// recorded comes between them.
const PLANNED_TOGETHER: usize = 4096;

/// Builds a plan from the state's records fed one at a time in address
/// order, so that a plan can be made while the state file is read, without
/// holding the whole state in memory. [`compute`] is this, fed from a map.
pub struct Planner<'a> {
    config: &'a Config,
    scope: &'a Scope,
    now: SystemTime,
    desired: std::iter::Peekable<Wanted<'a>>,
    /// The last record's address, to check the order.
    last: String,
    started: bool,
    /// What planning one address needs that is not shared between threads.
    local: Local<'a>,
    changes: Vec<Change>,
    summary: Summary,
    refreshed: Option<Refreshed>,
    /// Drift reasons by address, from `refreshed`.
    drift: std::collections::HashMap<Address, String>,
    /// The other address of each rename one of whose addresses `--target`
    /// names: planned although not targeted, so that a narrowed plan
    /// renames too, rather than inviting the new address or removing the
    /// old one; dropped again unless paired into a rename.
    rename_partners: Vec<Address>,
    /// Live records per provider, for the removal-fraction brake.
    recorded: BTreeMap<String, usize>,
}

/// What every address is planned with, read by all threads.
struct Shared<'p, 'a> {
    config: &'a Config,
    scope: &'a Scope,
    now: SystemTime,
    drift: &'p std::collections::HashMap<Address, String>,
    rename_partners: &'p [Address],
}

/// What one thread planning addresses keeps to itself.
#[derive(Default)]
struct Local<'a> {
    /// Addresses are grouped by provider: look each provider up once per run.
    provider: (String, Option<&'a ProviderSettings>),
    /// The names each combination of catalog ids needs, shared by the
    /// changes that grant it.
    names: NamesCache,
}

impl<'a> Shared<'_, 'a> {
    /// The change `address` needs, if any, and in scope (or needed to pair
    /// a rename).
    fn plan(
        &self,
        local: &mut Local<'a>,
        address: Cow<'_, Address>,
        want: Option<Want<'_>>,
        have: Option<&Resource>,
    ) -> Option<Change> {
        if !self.scope.includes(&address) && !self.rename_partners.contains(&address) {
            return None;
        }
        if local.provider.0 != address.provider() {
            local.provider.0.clear();
            local.provider.0.push_str(address.provider());
            local.provider.1 = self.config.providers.get(address.provider());
        }
        let drift = if self.drift.is_empty() { None } else { self.drift.get(&*address) };
        let mut change = diff_one(address, want, have, local.provider.1, self.config.resend_after, self.now)?;
        let name = local.provider.0.as_str();
        local.names.name_ids(&mut change, name, self.config.names.get(name).unwrap_or(&Names::NONE));
        if let Some(found) = drift {
            // Drift is the reason DESIGN names, and JSON carries it as the
            // bare word; what was found is in the plan's `refresh.drift`,
            // and text and markdown show it with the change ([`Reasons`]).
            let said = if found.starts_with(DRIFT) { DRIFT } else { found.as_str() };
            change.reason = Some(match change.reason.take() {
                Some(reason) => format!("{said}; {reason}"),
                None => said.to_owned(),
            });
        }
        Some(change)
    }
}

/// The desired entries a planner walks, in address order: borrowed from
/// the config (and copied into the changes that need them), or taken out of
/// it (and moved into them, so that a first plan holds them once).
enum Wanted<'a> {
    Borrowed(crate::config::desired::Iter<'a>),
    Owned(crate::config::desired::IntoIter),
}

impl<'a> Iterator for Wanted<'a> {
    type Item = (Cow<'a, Address>, Want<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Borrowed(entries) => entries.next().map(|(a, w)| (Cow::Borrowed(a), Want::Lent(w))),
            Self::Owned(entries) => entries.next().map(|(a, w)| (Cow::Owned(a), Want::Given(w))),
        }
    }
}

/// One desired entry's attributes as the planner has them: lent by the
/// config, or handed over in the box they were resolved into (which a
/// change then keeps, as it is).
enum Want<'a> {
    Lent(&'a Attributes),
    Given(Box<Attributes>),
}

impl Want<'_> {
    fn into_boxed(self) -> Box<Attributes> {
        match self {
            Want::Lent(attributes) => Box::new(attributes.clone()),
            Want::Given(attributes) => attributes,
        }
    }
}

impl std::ops::Deref for Want<'_> {
    type Target = Attributes;

    fn deref(&self) -> &Attributes {
        match self {
            Want::Lent(attributes) => attributes,
            Want::Given(attributes) => attributes,
        }
    }
}

impl<'a> Planner<'a> {
    /// A planner for `config`, narrowed to `scope`.
    #[must_use]
    pub fn new(config: &'a Config, scope: &'a Scope, now: SystemTime) -> Self {
        Self {
            config,
            scope,
            now,
            desired: Wanted::Borrowed(config.desired.iter()).peekable(),
            last: String::new(),
            started: false,
            local: Local::default(),
            changes: Vec::new(),
            summary: Summary::default(),
            refreshed: None,
            drift: std::collections::HashMap::new(),
            rename_partners: config
                .moved
                .iter()
                .flat_map(|(from, to)| {
                    scope.targets.iter().filter_map(move |t| {
                        let other = if t.email() == to {
                            from
                        } else if t.email() == from {
                            to
                        } else {
                            return None;
                        };
                        Some(Address::new(t.provider(), other))
                    })
                })
                .collect(),
            recorded: BTreeMap::new(),
        }
    }

    /// A planner that takes the desired entries out of `config` (leaving
    /// it none): each is moved into the change that needs it instead of
    /// copied, and the rest are freed as the plan goes. For callers that
    /// are done with the config's members.
    #[must_use]
    pub fn owning(config: &'a mut Config, scope: &'a Scope, now: SystemTime) -> Self {
        let desired = std::mem::take(&mut config.desired);
        let mut planner = Self::new(config, scope, now);
        // Every desired address is a change in a first plan. Grown by
        // doubling instead, the vector was copied some twenty times, and
        // the 1M first plan's peak was 1,502 MB against 1,459 MB with this
        // (two alternating runs each).
        planner.changes.reserve(desired.len());
        planner.desired = Wanted::Owned(desired.into_iter()).peekable();
        planner
    }

    /// Plans against a refreshed state: changes at drifted addresses say so,
    /// and the plan carries what was observed.
    #[must_use]
    pub fn refreshed(mut self, refreshed: Refreshed) -> Self {
        self.drift = refreshed.drift.iter().map(|d| (d.address.clone(), d.found.clone())).collect();
        self.refreshed = Some(refreshed);
        self
    }

    /// Feeds the next state record. Answers false, taking nothing in, when
    /// it does not come strictly after the previous one (the caller then
    /// plans from a fully loaded state instead).
    pub fn record(&mut self, have: &Resource) -> bool {
        if self.started && have.address.as_str() <= self.last.as_str() {
            return false;
        }
        self.started = true;
        self.last.clear();
        self.last.push_str(have.address.as_str());
        while let Some((address, want)) = self.desired.next_if(|(a, _)| **a < have.address) {
            self.step(address, Some(want), None);
        }
        match self.desired.next_if(|(a, _)| **a == have.address) {
            Some((address, want)) => self.step(address, Some(want), Some(have)),
            None => self.step(Cow::Borrowed(&have.address), None, Some(have)),
        }
        true
    }

    /// Plans one address. An address the planner owns is moved into its
    /// change rather than copied (a first plan's every address).
    fn step(&mut self, address: Cow<'_, Address>, want: Option<Want<'_>>, have: Option<&Resource>) {
        // Counted whatever the scope: the brake's base is the whole provider.
        if have.is_some_and(|r| r.status != Status::Deactivated) {
            if let Some(count) = self.recorded.get_mut(address.provider()) {
                *count += 1;
            } else {
                self.recorded.insert(address.provider().to_owned(), 1);
            }
        }
        if have.is_some_and(|r| r.status == Status::Uncertain) && self.scope.includes(&address) {
            self.summary.uncertain += 1;
        }
        let shared = Shared {
            config: self.config,
            scope: self.scope,
            now: self.now,
            drift: &self.drift,
            rename_partners: &self.rename_partners,
        };
        if let Some(change) = shared.plan(&mut self.local, address, want, have) {
            *self.summary.count(change.action) += 1;
            self.changes.push(change);
        }
    }

    /// The plan, once every record was fed; `lineage` and `serial` are the
    /// state's (none and 0 when there is no state).
    #[must_use]
    pub fn finish(mut self, lineage: Option<Uuid>, serial: u64) -> Plan {
        // The configured addresses after the last record (every one, in a
        // first plan) are each planned on their own, so on two threads:
        // planning them is mostly waiting for memory (each address and its
        // attributes are read for the first time since the config was
        // loaded), and two threads wait at once.
        let shared = Shared {
            config: self.config,
            scope: self.scope,
            now: self.now,
            drift: &self.drift,
            rename_partners: &self.rename_partners,
        };
        let (summary, changes) = (&mut self.summary, &mut self.changes);
        crate::parallel::chunks_in_order(
            self.desired.by_ref(),
            PLANNED_TOGETHER,
            Local::default,
            |local, chunk| {
                chunk
                    .into_iter()
                    .filter_map(|(address, want)| shared.plan(local, address, Some(want), None))
                    .collect::<Vec<_>>()
            },
            |planned| {
                for change in &planned {
                    *summary.count(change.action) += 1;
                }
                changes.extend(planned);
            },
        );
        self.pair_renames();
        let (config, scope, summary) = (self.config, self.scope, self.summary);
        let mut warnings = Vec::new();
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
        let mut plan = Plan {
            format_version: FORMAT_VERSION,
            memberctl_version: env!("CARGO_PKG_VERSION").to_owned(),
            lineage,
            serial,
            state_location: None,
            config_digest: config.digest.clone(),
            providers: config.providers.clone(),
            no_changes: self.changes.is_empty(),
            changes: self.changes,
            summary,
            applyable,
            max_changes: config.max_changes,
            max_removal_fraction: config.max_removal_fraction,
            recorded_members: self.recorded,
            warnings,
            refresh: self.refreshed,
        };
        let brakes = plan.brake_warnings(plan.max_changes, plan.max_removal_fraction);
        plan.warnings.extend(brakes);
        plan
    }
}

/// The names of each combination of catalog ids met so far, per provider.
#[derive(Default)]
struct NamesCache {
    /// foldhash, as this is looked up once per change (std's `SipHash` was
    /// most of the lookup's time).
    shared: HashMap<String, Arc<Names>, foldhash::fast::RandomState>,
    key: String,
}

impl NamesCache {
    /// Adds what the change's catalog ids stand for, so it reads by names.
    fn name_ids(&mut self, change: &mut Change, provider: &str, names: &Names) {
        let ids = || change.before.iter().chain(change.after.iter()).flat_map(|a| a.catalog_ids());
        self.key.clear();
        self.key.push_str(provider);
        for (kind, id) in ids() {
            self.key.push('\n');
            self.key.push_str(kind.key());
            self.key.push(' ');
            self.key.push_str(id);
        }
        let shared = if let Some(shared) = self.shared.get(&self.key) {
            Arc::clone(shared)
        } else {
            let subset = Arc::new(names.subset(ids()));
            self.shared.insert(self.key.clone(), Arc::clone(&subset));
            subset
        };
        change.names = shared;
        for field in &mut change.fields {
            field.before_names = change.before.as_ref().and_then(|b| b.named_value(&field.field, &change.names));
            field.after_names = change.after.as_ref().and_then(|a| a.named_value(&field.field, &change.names));
        }
    }
}

impl Planner<'_> {
    /// Turns each `moved:` pair planned as a removal of `from` and an
    /// invitation of `to` at one provider into one rename of the recorded
    /// user: an update of `to` that takes over `from`'s record, or, where
    /// the type cannot rename, one manual change saying how to record a
    /// rename done by hand.
    fn pair_renames(&mut self) {
        if self.config.moved.is_empty() {
            return;
        }
        let index: std::collections::HashMap<Address, usize> =
            self.changes.iter().enumerate().map(|(i, c)| (c.address.clone(), i)).collect();
        let mut dropped = Vec::new();
        for (from, to) in &self.config.moved {
            for (name, settings) in &self.config.providers {
                let (old, new) = (Address::new(name, from), Address::new(name, to));
                let (Some(&removal), Some(&invite)) = (index.get(&old), index.get(&new)) else { continue };
                let removing = &self.changes[removal];
                let removing_manually = removing.action == Action::Manual && removing.wanted == Some(Action::Remove);
                let inviting = &self.changes[invite];
                let fresh_invite = inviting.action == Action::Invite && inviting.before.is_none() && !inviting.repeat;
                if !(removing.action == Action::Remove || removing_manually) || !fresh_invite {
                    continue;
                }
                let before = removing.before.clone();
                let renames = settings.capabilities.update && settings.kind.renames();
                let (action, wanted, reason) = if renames {
                    (Action::Update, None, format!("renamed from `{old}` (`moved:`): the user is renamed in place"))
                } else {
                    let console = admin_console(Some(settings.kind));
                    (
                        Action::Manual,
                        Some(Action::Update),
                        format!(
                            "renamed from `{old}` (`moved:`), which `{name}` cannot do through its API: change the email in {console}, then run `memberctl state mv {old} {new}`"
                        ),
                    )
                };
                *self.summary.count(Action::Invite) -= 1;
                *self.summary.count(removing.action) -= 1;
                *self.summary.count(action) += 1;
                let change = &mut self.changes[invite];
                change.fields = match (&before, &change.after) {
                    (Some(b), Some(a)) => std::iter::once(FieldChange {
                        field: "email".to_owned(),
                        before: b.email.clone(),
                        after: a.email.clone(),
                        before_names: None,
                        after_names: None,
                    })
                    .chain(b.changes_to(a).into_iter().map(FieldChange::from))
                    .collect(),
                    _ => Vec::new(),
                };
                change.action = action;
                change.wanted = wanted;
                change.before = before;
                change.reason = Some(reason);
                change.moved_from = Some(old);
                self.local.names.name_ids(change, name, self.config.names.get(name.as_str()).unwrap_or(&Names::NONE));
                dropped.push(removal);
            }
        }
        // Old addresses planned only to be paired, and not paired, go again.
        // One pass: a migration may rename every member.
        let mut gone = vec![false; self.changes.len()];
        for i in dropped {
            gone[i] = true;
        }
        for (i, change) in self.changes.iter().enumerate() {
            let renamed_in_scope = change.moved_from.as_ref().is_some_and(|from| self.scope.includes(from));
            if !self.scope.includes(&change.address) && !renamed_in_scope && !gone[i] {
                *self.summary.count(change.action) -= 1;
                gone[i] = true;
            }
        }
        let mut index = 0;
        self.changes.retain(|_| {
            index += 1;
            !gone[index - 1]
        });
    }
}

fn diff_one(
    address: Cow<'_, Address>,
    want: Option<Want<'_>>,
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
    // The desired attributes are moved into the change when the planner
    // owns them, copied when it borrows them.
    let change = |address: Cow<'_, Address>,
                  action,
                  wanted,
                  before: Option<&Attributes>,
                  after: Option<Want<'_>>,
                  reason: Option<String>,
                  repeat| {
        // What differs, wherever there is a record and a desire: an update,
        // a resend that carries one, a re-add of a deactivated member.
        let fields = match (before, after.as_deref()) {
            (Some(b), Some(a)) => b.changes_to(a).into_iter().map(FieldChange::from).collect(),
            _ => Vec::new(),
        };
        Change {
            address: address.into_owned(),
            action,
            wanted,
            before: before.cloned().map(Box::new),
            after: after.map(Want::into_boxed),
            fields,
            reason,
            repeat,
            moved_from: None,
            names: Arc::default(),
        }
    };
    // A change the provider cannot make: `wanted`, by hand.
    let by_hand =
        |address: Cow<'_, Address>,
         wanted,
         before: Option<&Attributes>,
         after: Option<Want<'_>>,
         reason: String,
         repeat| { change(address, Action::Manual, Some(wanted), before, after, Some(reason), repeat) };
    match (want, have) {
        (None, None) => None,
        // Removed by deactivation already; the record only keeps the ids.
        (None, Some(have)) if have.status == Status::Deactivated => None,
        (Some(want), Some(have)) if have.status == Status::Deactivated => Some(if caps.is_some_and(|c| c.invite) {
            let reason = "re-added: reactivates the deactivated user".to_owned();
            change(address, Action::Invite, None, Some(&have.attributes), Some(want), Some(reason), false)
        } else {
            let reason = format!("provider `{provider}` may not invite: reactivate {} by hand in {console}, then run `memberctl state import {address}`", want.email);
            by_hand(address, Action::Invite, Some(&have.attributes), Some(want), reason, false)
        }),
        (Some(want), None) => Some(if caps.is_some_and(|c| c.invite) {
            change(address, Action::Invite, None, None, Some(want), None, false)
        } else {
            let reason = format!("provider `{provider}` may not invite: invite {} by hand in {console}, then run `memberctl state import {address}`", want.email);
            by_hand(address, Action::Invite, None, Some(want), reason, false)
        }),
        (None, Some(have)) => Some(if settings.is_none() {
            let reason = format!("provider `{provider}` is no longer configured: remove {} by hand if needed, then run `memberctl state rm {address}`", have.email);
            by_hand(address, Action::Remove, Some(&have.attributes), None, reason, false)
        } else if caps.is_some_and(|c| c.remove) {
            let how = settings.and_then(|s| s.kind.removal_note(s));
            change(address, Action::Remove, None, Some(&have.attributes), None, how, false)
        } else {
            let reason = format!(
                "`{provider}` cannot remove members through its API: remove {} by hand in {console}, then run {}",
                have.email,
                mark_done()
            );
            by_hand(address, Action::Remove, Some(&have.attributes), None, reason, false)
        }),
        (Some(want), Some(have)) => {
            if have.status == Status::Uncertain {
                let policy = settings.map(|s| s.uncertain).unwrap_or_default();
                let why = have.message.as_deref().unwrap_or("no answer was recorded");
                return Some(if policy == UncertainPolicy::SendAgain && caps.is_some_and(|c| c.invite) {
                    let reason = format!("the last send had no known outcome ({why}); sending again: a duplicate answer adopts the member");
                    change(address, Action::Invite, None, None, Some(want), Some(reason), true)
                } else {
                    let reason = format!(
                        "the last send had no known outcome ({why}): check {console}; if {} was invited run `memberctl state import {address}`, otherwise `memberctl state rm {address}` and plan again",
                        want.email
                    );
                    by_hand(address, Action::Invite, None, Some(want), reason, true)
                });
            }
            let due = || {
                resend_after.filter(|_| have.status == Status::Invited && caps.is_some_and(|c| c.invite)).and_then(
                    |after| {
                        let sent = have.invited_at.as_deref().and_then(crate::clock::parse_rfc3339)?;
                        let age = now.duration_since(sent).ok()?;
                        (age >= after).then_some(age)
                    },
                )
            };
            let resend_reason = |age: Duration| {
                let days = age.as_secs() / 86_400;
                format!("invited {days} day(s) ago and not confirmed; `invites.resend_after` is due")
            };
            if have.attributes.differs_from(&want) {
                return Some(if caps.is_some_and(|c| c.update) {
                    // A due resend goes out with the changed attributes: an
                    // update alone would leave the resend for the next plan,
                    // after an apply that had succeeded.
                    if let Some(age) = due() {
                        let reason = format!("{}; the invitation goes out with the changes", resend_reason(age));
                        change(address, Action::Resend, None, Some(&have.attributes), Some(want), Some(reason), true)
                    } else {
                        change(address, Action::Update, None, Some(&have.attributes), Some(want), None, false)
                    }
                } else {
                    let reason = format!("`{provider}` cannot update members through its API: make the change by hand in {console}, then run {}", mark_done());
                    by_hand(address, Action::Update, Some(&have.attributes), Some(want), reason, false)
                });
            }
            due().map(|age| {
                change(
                    address,
                    Action::Resend,
                    None,
                    Some(&have.attributes),
                    Some(want),
                    Some(resend_reason(age)),
                    true,
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Action, Change, Planner, Scope};
    use crate::provider::{Operation, Outcome, RemoteIds};
    use crate::state::State;

    /// A planner that owns the config's members (and moves them into its
    /// changes) plans exactly what one that borrows them does: invites,
    /// updates, unchanged and removed addresses alike.
    /// Four addresses: a and e to invite, b to update, d to remove (c is as
    /// recorded).
    fn example() -> (crate::config::Config, State) {
        let yaml = "version: 1\nproviders:\n  sandbox: { type: sandbox }\nroles:\n  member: { sandbox: r1 }\n  admin: { sandbox: r2 }\ndefaults:\n  roles: [member]\nmembers:\n  - { email: a@example.com, name: A A }\n  - { email: b@example.com, name: B B, roles: [admin] }\n  - { email: c@example.com, name: C C }\n  - { email: e@example.com, name: E E }\n";
        let config = crate::config::load_str(std::path::Path::new("memberctl.yaml"), yaml).expect("valid config");
        let mut state = State::new();
        let now = "2026-01-15T09:30:00Z";
        let mut recorded = |attributes: crate::attributes::Attributes| {
            state.record(&Operation::invite("sandbox", attributes), &Outcome::Invited(RemoteIds::default()), now);
        };
        for (address, attributes) in &config.desired {
            match address.as_str() {
                // b is recorded with another role (an update), c as it is,
                // a and e not at all (invites).
                "sandbox/b@example.com" => {
                    recorded(crate::attributes::Attributes { roles: vec!["r1".into()], ..attributes.clone() });
                }
                "sandbox/c@example.com" => recorded(attributes.clone()),
                _ => {}
            }
        }
        // d is recorded and no longer configured (a removal).
        recorded(crate::attributes::Attributes { email: "d@example.com".to_owned(), ..Default::default() });
        (config, state)
    }

    #[test]
    fn owning_and_borrowing_planners_make_the_same_plan() {
        let (config, state) = example();
        let scope = Scope::default();
        let at = std::time::SystemTime::UNIX_EPOCH;
        let borrowed = super::compute_with(Planner::new(&config, &scope, at), Some(&state));
        let mut taken = config.clone();
        let owned = super::compute_with(Planner::owning(&mut taken, &scope, at), Some(&state));
        assert_eq!(owned, borrowed);
        let actions: Vec<(&str, Action)> = owned.changes.iter().map(|c| (c.address.as_str(), c.action)).collect();
        assert_eq!(
            actions,
            [
                ("sandbox/a@example.com", Action::Invite),
                ("sandbox/b@example.com", Action::Update),
                ("sandbox/d@example.com", Action::Remove),
                ("sandbox/e@example.com", Action::Invite),
            ]
        );
    }

    /// The addresses after the last record are planned in chunks on two
    /// threads, each with its own names cache: the plan still holds every
    /// address once, in order, each named by its own roles, and counted.
    #[test]
    fn addresses_planned_on_two_threads_come_back_in_order_and_named() {
        use std::fmt::Write as _;
        let mut yaml = String::from(
            "version: 1\nproviders:\n  sandbox: { type: sandbox }\nroles:\n  member: { sandbox: r1 }\n  admin: { sandbox: r2 }\ndefaults:\n  roles: [member]\nmembers:\n",
        );
        let count = 3 * super::PLANNED_TOGETHER + 17;
        for i in 0..count {
            let roles = if i % 3 == 0 { ", roles: [admin]" } else { "" };
            writeln!(yaml, "  - {{ email: m{i:05}@example.com{roles} }}").expect("writing to a String cannot fail");
        }
        let config = crate::config::load_str(std::path::Path::new("memberctl.yaml"), &yaml).expect("valid config");
        // One address recorded as configured, part way: the planner feeds
        // the addresses before it one by one, and drains the rest.
        let mut state = State::new();
        let (recorded, attributes) = config.desired.iter().nth(1000).expect("enough members");
        state.record(
            &Operation::invite("sandbox", attributes.clone()),
            &Outcome::Invited(RemoteIds::default()),
            "2026-01-15T09:30:00Z",
        );
        let at = std::time::SystemTime::UNIX_EPOCH;
        for state in [None, Some(&state)] {
            let plan = super::compute(&config, state, &Scope::default(), at);
            let expected: Vec<&str> = config
                .desired
                .iter()
                .map(|(address, _)| address.as_str())
                .filter(|address| state.is_none() || *address != recorded.as_str())
                .collect();
            let planned: Vec<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
            assert_eq!(planned, expected);
            assert_eq!(plan.summary.invite, expected.len());
            for change in &plan.changes {
                let admin = change.address.email()[1..6].parse::<usize>().expect("numbered") % 3 == 0;
                let role = if admin { "admin" } else { "member" };
                let json = serde_json::to_value(change).expect("serialises");
                let names = json["names"].to_string();
                assert!(names.contains(role) && !names.contains(if admin { "member" } else { "admin" }), "{json}");
            }
        }
    }

    #[test]
    fn changes_spell_out_their_provider_and_email_and_are_read_back_only_if_they_agree() {
        let (config, state) = example();
        let plan = super::compute(&config, Some(&state), &Scope::default(), std::time::SystemTime::UNIX_EPOCH);
        for change in &plan.changes {
            let json = serde_json::to_value(change).expect("serialises");
            assert_eq!(json["provider"], "sandbox");
            assert_eq!(json["email"], change.address.email(), "{json}");
            let back: Change = serde_json::from_value(json.clone()).expect("reads back");
            assert_eq!(&back, change);
            for (field, wrong) in [("provider", "other"), ("email", "someone@example.com")] {
                let mut edited = json.clone();
                edited[field] = wrong.into();
                let refused = serde_json::from_value::<Change>(edited).expect_err("disagrees");
                assert!(refused.to_string().contains(&format!("names {field} `{wrong}`")), "{refused}");
            }
        }
        let removal = plan.changes.iter().find(|c| c.action == Action::Remove).expect("d is removed");
        assert_eq!(removal.email(), "d@example.com");
    }
}
