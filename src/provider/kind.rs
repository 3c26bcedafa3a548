//! What a provider type is: everything the config loader, the planner and
//! the apply engine need to know about one type, asked through one trait.
//!
//! Each type implements [`ProviderType`] in its own module; the registry
//! ([`ProviderKind`]) names them. Nothing outside a type's module and the
//! registry matches on the type.

use std::fmt;
use std::ops::Deref;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{aptly, networked, sandbox, scim, Capabilities, CatalogKind, Provider, ProviderError, ProviderSettings};
use crate::attributes::Attributes;

// The registry. Adding a type is a module implementing `ProviderType`, a
// variant here and its line in `ProviderKind::descriptor`.
/// The provider types memberctl knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// A Networked community (`x-api-key`).
    Networked,
    /// An Aptly tenant (bearer token).
    Aptly,
    /// Built in, no network: records invitations in a local outbox file.
    Sandbox,
    /// A service that accepts SCIM 2.0 provisioning (bearer token).
    Scim,
}

impl ProviderKind {
    /// The type's description.
    #[must_use]
    pub fn descriptor(self) -> &'static dyn ProviderType {
        match self {
            ProviderKind::Networked => &networked::TYPE,
            ProviderKind::Aptly => &aptly::TYPE,
            ProviderKind::Sandbox => &sandbox::TYPE,
            ProviderKind::Scim => &scim::TYPE,
        }
    }
}

impl Deref for ProviderKind {
    type Target = dyn ProviderType;

    fn deref(&self) -> &Self::Target {
        self.descriptor()
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.descriptor().name())
    }
}

/// How a type takes its credential from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialSpec {
    /// The config key naming the env var (`api_key_env`, `token_env`).
    pub key: &'static str,
    /// The env var read when the config names none.
    pub default_env: &'static str,
}

/// A problem with a provider's settings that only its type knows of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingProblem {
    /// The config key (empty: the provider's own entry).
    pub key: &'static str,
    /// A stable, kebab-case rule key, as in `validate --format json`.
    pub rule: &'static str,
    /// The rule in a few lowercase words, for summaries.
    pub summary: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

/// How a type forms a member's name fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameFields {
    /// One display name: `name`, else `first_name last_name` joined.
    Joined,
    /// `name`, `first_name` and `last_name` as written.
    Separate,
}

/// Which of a member's free-text fields a type carries. A field a type has
/// no notion of is never sent to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one flag per member field, read as a table
pub struct MemberFields {
    /// How names are formed.
    pub names: NameFields,
    /// `phone`.
    pub phone: bool,
    /// `manager_id`.
    pub manager_id: bool,
    /// `existing_user`.
    pub existing_user: bool,
    /// `note` (and `defaults.note`).
    pub note: bool,
    /// `method: direct` (adding without an invitation).
    pub direct_add: bool,
}

/// Everything memberctl knows about one provider type.
pub trait ProviderType: Sync + 'static {
    /// The `type:` value in the config.
    fn name(&self) -> &'static str;

    /// The config keys only this type accepts (beyond `type`, `base_url`
    /// and the shared sending settings).
    fn own_settings(&self) -> &'static [&'static str];

    /// Whether it talks to a service over HTTP (and so takes `base_url`).
    fn uses_network(&self) -> bool {
        true
    }

    /// The base URL used when the config gives none.
    fn default_base_url(&self) -> Option<&'static str> {
        None
    }

    /// Where its credential comes from; `None` for a type that needs none.
    fn credential(&self) -> Option<CredentialSpec> {
        None
    }

    /// What it can do when the config does not narrow it.
    fn capabilities(&self) -> Capabilities;

    /// Whether members of this type carry the given catalog kind.
    fn uses(&self, catalog: CatalogKind) -> bool;

    /// Checks a remote id's shape; answers what was expected when it is wrong.
    fn check_id(&self, id: &str) -> Option<&'static str>;

    /// The member fields it carries.
    fn member_fields(&self) -> MemberFields;

    /// Completes a member's attributes after the generic resolution (e.g.
    /// splitting a name into the parts the service needs).
    fn finish_attributes(&self, _attributes: &mut Attributes, _settings: &ProviderSettings) {}

    /// The batch size when the config gives none.
    fn default_batch_size(&self, _settings: &ProviderSettings) -> usize {
        super::defaults::BATCH_SIZE
    }

    /// Problems with a provider's settings.
    fn check_settings(&self, _settings: &ProviderSettings) -> Vec<SettingProblem> {
        Vec::new()
    }

    /// Provider-specific checks of one resolved member: `(message, hint)`.
    fn validate_member(&self, _attributes: &Attributes, _settings: &ProviderSettings) -> Vec<(String, String)> {
        Vec::new()
    }

    /// What a removal does at this provider, when it is more than "removed"
    /// (e.g. "deactivates the user"), shown with each planned removal.
    fn removal_note(&self, _settings: &ProviderSettings) -> Option<String> {
        None
    }

    /// Whether removals delete for good, which apply only does with
    /// `--allow-delete`.
    fn removal_deletes(&self, _settings: &ProviderSettings) -> bool {
        false
    }

    /// Whether an update can change a user's email in place (a `moved:`
    /// rename, sent as an update carrying [`Operation::renamed_from`]); else
    /// a rename is planned as `manual`.
    ///
    /// [`Operation::renamed_from`]: super::Operation::renamed_from
    fn renames(&self) -> bool {
        false
    }

    /// Where a person makes a change by hand, for `manual` instructions.
    fn console(&self) -> &'static str;

    /// Builds the client for one apply, reading credentials from `env`.
    fn build(
        &self,
        settings: &ProviderSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Box<dyn Provider>, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::ProviderKind;

    #[test]
    fn names_round_trip_through_the_config_spelling() {
        for kind in [ProviderKind::Networked, ProviderKind::Aptly, ProviderKind::Sandbox, ProviderKind::Scim] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<ProviderKind>(&json).unwrap(), kind);
        }
    }
}
