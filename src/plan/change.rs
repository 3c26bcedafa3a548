//! One change of a plan: what happens at one address, and why; its JSON
//! form is the plan file's and `--format json`'s.

use std::borrow::Cow;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::attributes::{AttributeChange, Attributes};
use crate::config::names::Names;
use crate::provider::OperationKind;

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
