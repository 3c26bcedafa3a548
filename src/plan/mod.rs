//! Plan: what apply would do, as a pure function of (config, state).
//!
//! [`compute`] does no I/O: it compares each address's desired attributes
//! with its record in the state, and asks each provider's capabilities
//! whether the change can be carried out or must be done by hand (`manual`).
//! The rendering lives in [`render`].

pub mod done_by_hand;
pub mod render;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::address::Address;
use crate::attributes::{AttributeChange, Attributes};
use crate::config::names::Names;
use crate::config::Config;
use crate::provider::{OperationKind, ProviderKind, ProviderSettings, UncertainPolicy};
use crate::state::{Resource, State, Status};

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
    /// For catalog fields (`roles`, `plans`, `groups`, `primary_group`,
    /// `positions`): the old value by catalog names, an id no entry maps to
    /// shown as `ID (not in catalog)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_names: Option<String>,
    /// For catalog fields: the new value by catalog names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_names: Option<String>,
}

impl From<AttributeChange> for FieldChange {
    /// A change as the attributes see it; the names are added later, by
    /// the planner, which knows the provider's catalogs.
    fn from(change: AttributeChange) -> Self {
        FieldChange {
            field: change.field.to_owned(),
            before: change.before,
            after: change.after,
            before_names: None,
            after_names: None,
        }
    }
}

impl FieldChange {
    /// The old value as people read it: by names when it has them.
    #[must_use]
    pub fn shown_before(&self) -> &str {
        self.before_names.as_deref().unwrap_or(&self.before)
    }

    /// The new value as people read it.
    #[must_use]
    pub fn shown_after(&self) -> &str {
        self.after_names.as_deref().unwrap_or(&self.after)
    }
}

/// One address's change.
///
/// Its provider and email are its address's and its attributes': the JSON
/// plan spells them out, the change does not hold them again (two strings
/// per change: some 110 bytes of each change of a first plan).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "ChangeIn")]
pub struct Change {
    /// `PROVIDER/EMAIL`.
    pub address: Address,
    /// What happens.
    pub action: Action,
    /// For `manual`: what would have been done had the provider been able to.
    pub wanted: Option<Action>,
    // Boxed, as `after`: a plan of 100,000 invitations holds 100,000 of
    // these, mostly `None`, and a bare `Attributes` is some 400 bytes.
    /// The recorded attributes (none for an invite).
    pub before: Option<Box<Attributes>>,
    /// The desired attributes (none for a removal).
    pub after: Option<Box<Attributes>>,
    /// The attributes that differ (updates).
    pub fields: Vec<FieldChange>,
    /// What the catalog ids in `before` and `after` stand for (remote id →
    /// catalog name, per catalog kind); an id missing here is in no catalog.
    // Shared: the changes of a large plan grant a few combinations of roles
    // and groups, and one map per change was most of its memory.
    pub names: Arc<Names>,
    /// Why this change is planned, or what to do by hand (null when the
    /// action says it all).
    pub reason: Option<String>,
    /// The address was sent before with no known outcome: a duplicate answer
    /// then means the earlier send arrived.
    pub repeat: bool,
    /// A rename (`moved:`): the address the user is recorded under, whose
    /// record this change takes over instead of a removal and an invitation.
    pub moved_from: Option<Address>,
}

impl Change {
    /// The provider name: the address's first part.
    #[must_use]
    pub fn provider(&self) -> &str {
        self.address.provider()
    }

    /// The email as written: the desired attributes', or the recorded
    /// ones' for a removal.
    #[must_use]
    pub fn email(&self) -> &str {
        self.after.as_deref().or(self.before.as_deref()).map_or("", |a| a.email.as_str())
    }
}

/// One address's change.
// Read only, but its `skip_serializing_if`s stay: they keep the plan schema
// (`schema/plan.schema.json`, made from this type) free of `default`s.
#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "Change")]
struct ChangeIn {
    /// `PROVIDER/EMAIL`.
    address: Address,
    /// The provider name.
    provider: String,
    /// The email as written.
    email: String,
    /// What happens.
    action: Action,
    /// For `manual`: what would have been done had the provider been able to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wanted: Option<Action>,
    /// The recorded attributes (none for an invite).
    before: Option<Box<Attributes>>,
    /// The desired attributes (none for a removal).
    after: Option<Box<Attributes>>,
    /// The attributes that differ (updates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldChange>,
    /// What the catalog ids in `before` and `after` stand for (remote id →
    /// catalog name, per catalog kind); an id missing here is in no catalog.
    #[serde(default, skip_serializing_if = "no_names")]
    names: Arc<Names>,
    /// Why this change is planned, or what to do by hand (null when the
    /// action says it all).
    #[serde(default)]
    reason: Option<String>,
    /// The address was sent before with no known outcome: a duplicate answer
    /// then means the earlier send arrived.
    #[serde(default)]
    repeat: bool,
    /// A rename (`moved:`): the address the user is recorded under, whose
    /// record this change takes over instead of a removal and an invitation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    moved_from: Option<Address>,
}

impl TryFrom<ChangeIn> for Change {
    type Error = String;

    /// A change read back must say the provider and email its address and
    /// attributes say: they are not kept apart from them.
    fn try_from(read: ChangeIn) -> Result<Self, String> {
        let ChangeIn {
            address,
            provider,
            email,
            action,
            wanted,
            before,
            after,
            fields,
            names,
            reason,
            repeat,
            moved_from,
        } = read;
        let change = Change { address, action, wanted, before, after, fields, names, reason, repeat, moved_from };
        if provider != change.provider() {
            return Err(format!("change `{}` names provider `{provider}`, not its address's", change.address));
        }
        if email != change.email() {
            return Err(format!(
                "change `{}` names email `{email}`, not its attributes' `{}`",
                change.address,
                change.email()
            ));
        }
        Ok(change)
    }
}

/// A change as the JSON plan writes it: [`ChangeIn`]'s fields, in its
/// order, lent by the change.
#[derive(Serialize)]
struct ChangeOut<'a> {
    address: &'a Address,
    provider: &'a str,
    email: &'a str,
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    wanted: Option<Action>,
    before: Option<&'a Attributes>,
    after: Option<&'a Attributes>,
    #[serde(skip_serializing_if = "<[FieldChange]>::is_empty")]
    fields: &'a [FieldChange],
    #[serde(skip_serializing_if = "no_names")]
    names: &'a Arc<Names>,
    reason: Option<&'a str>,
    repeat: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    moved_from: Option<&'a Address>,
}

impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ChangeOut {
            address: &self.address,
            provider: self.provider(),
            email: self.email(),
            action: self.action,
            wanted: self.wanted,
            before: self.before.as_deref(),
            after: self.after.as_deref(),
            fields: &self.fields,
            names: &self.names,
            reason: self.reason.as_deref(),
            repeat: self.repeat,
            moved_from: self.moved_from.as_ref(),
        }
        .serialize(serializer)
    }
}

impl JsonSchema for Change {
    fn schema_name() -> Cow<'static, str> {
        ChangeIn::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ChangeIn::json_schema(generator)
    }
}

fn no_names(names: &Arc<Names>) -> bool {
    names.is_empty()
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
    /// The old addresses of renames whose new address `--target` names:
    /// planned although not targeted, so that a narrowed plan renames too
    /// rather than inviting; dropped again unless paired into a rename.
    rename_sources: Vec<Address>,
    /// Live records per provider, for the removal-fraction brake.
    recorded: BTreeMap<String, usize>,
}

/// What every address is planned with, read by all threads.
struct Shared<'p, 'a> {
    config: &'a Config,
    scope: &'a Scope,
    now: SystemTime,
    drift: &'p std::collections::HashMap<Address, String>,
    rename_sources: &'p [Address],
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
        if !self.scope.includes(&address) && !self.rename_sources.contains(&address) {
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
            rename_sources: config
                .moved
                .iter()
                .flat_map(|(from, to)| {
                    scope.targets.iter().filter(move |t| t.email() == to).map(move |t| Address::new(t.provider(), from))
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
            rename_sources: &self.rename_sources,
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
            rename_sources: &self.rename_sources,
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
            if !self.scope.includes(&change.address) && !gone[i] {
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
        let fields = match (before, after.as_deref()) {
            (Some(b), Some(a)) if action == Action::Update || wanted == Some(Action::Update) => {
                b.changes_to(a).into_iter().map(FieldChange::from).collect()
            }
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
    match (want, have) {
        (None, None) => None,
        // Removed by deactivation already; the record only keeps the ids.
        (None, Some(have)) if have.status == Status::Deactivated => None,
        (Some(want), Some(have)) if have.status == Status::Deactivated => Some(if caps.is_some_and(|c| c.invite) {
            let reason = "re-added: reactivates the deactivated user".to_owned();
            change(address, Action::Invite, None, Some(&have.attributes), Some(want), Some(reason), false)
        } else {
            let reason = format!("provider `{provider}` may not invite: reactivate {} by hand in {console}, then run `memberctl state import {address}`", want.email);
            change(
                address,
                Action::Manual,
                Some(Action::Invite),
                Some(&have.attributes),
                Some(want),
                Some(reason),
                false,
            )
        }),
        (Some(want), None) => Some(if caps.is_some_and(|c| c.invite) {
            change(address, Action::Invite, None, None, Some(want), None, false)
        } else {
            let reason = format!("provider `{provider}` may not invite: invite {} by hand in {console}, then run `memberctl state import {address}`", want.email);
            change(address, Action::Manual, Some(Action::Invite), None, Some(want), Some(reason), false)
        }),
        (None, Some(have)) => Some(if settings.is_none() {
            let reason = format!("provider `{provider}` is no longer configured: remove {} by hand if needed, then run `memberctl state rm {address}`", have.email);
            change(address, Action::Manual, Some(Action::Remove), Some(&have.attributes), None, Some(reason), false)
        } else if caps.is_some_and(|c| c.remove) {
            let how = settings.and_then(|s| s.kind.removal_note(s));
            change(address, Action::Remove, None, Some(&have.attributes), None, how, false)
        } else {
            let reason = format!(
                "`{provider}` cannot remove members through its API: remove {} by hand in {console}, then run {}",
                have.email,
                mark_done()
            );
            change(address, Action::Manual, Some(Action::Remove), Some(&have.attributes), None, Some(reason), false)
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
                    change(address, Action::Manual, Some(Action::Invite), None, Some(want), Some(reason), true)
                });
            }
            if have.attributes.differs_from(&want) {
                return Some(if caps.is_some_and(|c| c.update) {
                    change(address, Action::Update, None, Some(&have.attributes), Some(want), None, false)
                } else {
                    let reason = format!("`{provider}` cannot update members through its API: make the change by hand in {console}, then run {}", mark_done());
                    change(
                        address,
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
                change(address, Action::Resend, None, Some(&have.attributes), Some(want), Some(reason), true)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Planner, RemovalShare, Scope};
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
        let actions: Vec<(&str, super::Action)> =
            owned.changes.iter().map(|c| (c.address.as_str(), c.action)).collect();
        assert_eq!(
            actions,
            [
                ("sandbox/a@example.com", super::Action::Invite),
                ("sandbox/b@example.com", super::Action::Update),
                ("sandbox/d@example.com", super::Action::Remove),
                ("sandbox/e@example.com", super::Action::Invite),
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
            let back: super::Change = serde_json::from_value(json.clone()).expect("reads back");
            assert_eq!(&back, change);
            for (field, wrong) in [("provider", "other"), ("email", "someone@example.com")] {
                let mut edited = json.clone();
                edited[field] = wrong.into();
                let refused = serde_json::from_value::<super::Change>(edited).expect_err("disagrees");
                assert!(refused.to_string().contains(&format!("names {field} `{wrong}`")), "{refused}");
            }
        }
        let removal = plan.changes.iter().find(|c| c.action == super::Action::Remove).expect("d is removed");
        assert_eq!(removal.email(), "d@example.com");
    }

    #[test]
    fn the_proposed_fraction_is_rounded_up_so_it_lets_the_plan_through() {
        let share = |removals, recorded| RemovalShare { provider: "p".to_owned(), removals, recorded };
        assert_eq!(share(12, 20).fraction_needed(), "0.60");
        assert_eq!(share(10, 30).fraction_needed(), "0.34");
        assert_eq!(share(10, 1000).fraction_needed(), "0.01");
        assert_eq!(share(20, 20).fraction_needed(), "1");
    }
}
