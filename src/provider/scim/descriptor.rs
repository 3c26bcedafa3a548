//! The `scim` provider type as the config loader, planner and apply engine
//! see it: its keys, credential, catalogs, member fields and removal rules.

use super::client::Scim;
use super::mapping::{managed_view, OnRemove};
use crate::attributes::Attributes;
use crate::provider::{
    Capabilities, CatalogKind, CredentialSpec, MemberFields, NameFields, Provider, ProviderError, ProviderSettings,
    ProviderType, SettingProblem,
};

/// The `scim` provider type.
pub struct ScimType;

/// The registry's handle on the `scim` type.
pub static TYPE: ScimType = ScimType;

/// What `on_remove` says, defaulting like the config does.
fn on_remove(settings: &ProviderSettings) -> OnRemove {
    settings.scim.as_ref().map(|s| s.on_remove).unwrap_or_default()
}

impl ProviderType for ScimType {
    fn name(&self) -> &'static str {
        "scim"
    }

    fn own_settings(&self) -> &'static [&'static str] {
        &["token_env", "user_name", "match_on", "manage", "on_remove"]
    }

    fn credential(&self) -> Option<CredentialSpec> {
        Some(CredentialSpec { key: "token_env", default_env: "SCIM_TOKEN" })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn uses(&self, catalog: CatalogKind) -> bool {
        // roles → User.roles, plans → User.entitlements, groups → SCIM Groups.
        catalog != CatalogKind::Positions
    }

    fn check_id(&self, id: &str) -> Option<&'static str> {
        // SCIM ids and role values are the service's own strings.
        id.trim().is_empty().then_some("a non-empty id")
    }

    fn member_fields(&self) -> MemberFields {
        MemberFields {
            names: NameFields::Separate,
            phone: true,
            manager_id: true,
            existing_user: false,
            note: false,
            direct_add: false,
        }
    }

    /// Only what `manage` lists is memberctl's: the rest is neither sent,
    /// recorded nor planned (a service-side change to it is not drift).
    /// The view the client sends ([`managed_view`]) is what is resolved.
    fn finish_attributes(&self, attributes: &mut Attributes, settings: &ProviderSettings) {
        let manage = settings.scim.as_ref().map(|s| s.manage.clone()).unwrap_or_default();
        *attributes = managed_view(attributes, &manage);
    }

    fn check_settings(&self, settings: &ProviderSettings) -> Vec<SettingProblem> {
        if settings.base_url.is_some() {
            return Vec::new();
        }
        vec![SettingProblem {
            key: "",
            rule: "no-base-url",
            summary: "scim provider has no `base_url`",
            message: format!("scim provider `{}` has no `base_url`", settings.name),
            hint: "add `base_url:` with the service's SCIM endpoint, e.g. `https://app.example.com/scim/v2`".to_owned(),
        }]
    }

    fn removal_note(&self, settings: &ProviderSettings) -> Option<String> {
        Some(match on_remove(settings) {
            OnRemove::Deactivate => "deactivates the user (kept at the service; a re-add reactivates it)".to_owned(),
            OnRemove::Delete => "deletes the user at the service (needs --allow-delete)".to_owned(),
        })
    }

    fn removal_deletes(&self, settings: &ProviderSettings) -> bool {
        on_remove(settings) == OnRemove::Delete
    }

    fn renames(&self) -> bool {
        // PATCH of `userName` and `emails` (`patch::rename`).
        true
    }

    fn console(&self) -> &'static str {
        "the service's admin console"
    }

    fn build(
        &self,
        settings: &ProviderSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(Scim::new(settings.clone(), env)?))
    }
}
