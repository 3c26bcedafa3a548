//! The `scim` provider's settings and the mapping between a member's
//! [`Attributes`] and a SCIM [`User`].
//!
//! Both directions live here so that they stay each other's inverse: a user
//! created from some attributes reads back as the same attributes, and a
//! diff between what is desired and what was observed shows only real
//! changes. Only the attributes named in `manage` are written or read back;
//! the rest of a user belongs to whoever else administers the service.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::resource::{Email, EnterpriseUser, Group, Manager, Name, PhoneNumber, User, ValueEntry};
use super::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::address::normalize_email;
use crate::attributes::{Attributes, Id};

/// The `type` of the email memberctl writes.
pub const EMAIL_TYPE: &str = "work";
/// The `type` of the phone number memberctl writes.
pub const PHONE_TYPE: &str = "mobile";

/// The `scim` provider's own settings (the config keys `user_name`,
/// `match_on`, `manage` and `on_remove`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScimSettings {
    /// How `userName` is made from the email.
    #[serde(default)]
    pub user_name: UserNameTemplate,
    /// How an existing user is found.
    #[serde(default)]
    pub match_on: MatchOn,
    /// The attributes memberctl owns.
    #[serde(default)]
    pub manage: Manage,
    /// What removing a member does.
    #[serde(default)]
    pub on_remove: OnRemove,
}

/// How `userName` is made from a member's email.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum UserNameTemplate {
    /// `userName` is the email as written (`user_name: email`).
    #[default]
    Email,
    /// A template with at least one of `{local}`, `{domain}`, `{email}`.
    Template(String),
}

/// The placeholders a `user_name` template may use.
const PLACEHOLDERS: [&str; 3] = ["local", "domain", "email"];

impl TryFrom<String> for UserNameTemplate {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "email" {
            return Ok(Self::Email);
        }
        let mut rest = text.as_str();
        let mut placeholders = 0;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("`user_name` template `{text}` has a `}}` without its `{{`"));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("`user_name` template `{text}` has a `{{` without its `}}`"));
            };
            let name = &rest[open + 1..open + close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "`user_name` template `{text}` uses `{{{name}}}`; the placeholders are {{local}}, {{domain}} and {{email}}"
                ));
            }
            placeholders += 1;
            rest = &rest[open + close + 1..];
        }
        if placeholders == 0 {
            // Every user would get the same userName.
            return Err(format!(
                "`user_name` template `{text}` uses no placeholder; write `email`, or use {{local}}, {{domain}} or {{email}}"
            ));
        }
        Ok(Self::Template(text))
    }
}

impl From<UserNameTemplate> for String {
    fn from(template: UserNameTemplate) -> Self {
        match template {
            UserNameTemplate::Email => "email".to_owned(),
            UserNameTemplate::Template(text) => text,
        }
    }
}

impl JsonSchema for UserNameTemplate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UserNameTemplate".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

impl UserNameTemplate {
    /// The `userName` for `email`.
    #[must_use]
    pub fn render(&self, email: &str) -> String {
        let email = email.trim();
        match self {
            Self::Email => email.to_owned(),
            Self::Template(template) => {
                let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
                template.replace("{local}", local).replace("{domain}", domain).replace("{email}", email)
            }
        }
    }
}

/// How an existing user is found (after a 409, or on import).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MatchOn {
    /// By `userName`.
    #[default]
    #[serde(rename = "userName")]
    UserName,
    /// By an email address.
    #[serde(rename = "emails")]
    Emails,
    /// By `externalId` (only users memberctl created carry one).
    #[serde(rename = "externalId")]
    ExternalId,
}

/// One attribute group memberctl may own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Managed {
    /// `displayName` and `name` (memberctl's `name`, `first_name`, `last_name`).
    Name,
    /// The mobile `phoneNumbers` entry (memberctl's `phone`).
    Phone,
    /// `roles` (memberctl's `roles`).
    Roles,
    /// `entitlements` (memberctl's `plans`).
    Entitlements,
    /// Group memberships (memberctl's `groups`).
    Groups,
    /// The enterprise extension's `manager` (memberctl's `manager_id`).
    Manager,
}

impl Managed {
    /// Every attribute group, in config order.
    pub const ALL: [Managed; 6] =
        [Managed::Name, Managed::Phone, Managed::Roles, Managed::Entitlements, Managed::Groups, Managed::Manager];

    /// The [`Attributes`] fields this group covers, as named in the config.
    #[must_use]
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Managed::Name => &["name", "first_name", "last_name"],
            Managed::Phone => &["phone"],
            Managed::Roles => &["roles"],
            Managed::Entitlements => &["plans"],
            Managed::Groups => &["groups"],
            Managed::Manager => &["manager_id"],
        }
    }

    /// The SCIM attribute this group is carried in, for messages.
    #[must_use]
    pub fn scim_attribute(self) -> &'static str {
        match self {
            Managed::Name => "name",
            Managed::Phone => "phoneNumbers",
            Managed::Roles => "roles",
            Managed::Entitlements => "entitlements",
            Managed::Groups => "groups",
            Managed::Manager => "manager",
        }
    }
}

impl fmt::Display for Managed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Managed::Name => "name",
            Managed::Phone => "phone",
            Managed::Roles => "roles",
            Managed::Entitlements => "entitlements",
            Managed::Groups => "groups",
            Managed::Manager => "manager",
        })
    }
}

/// The set of attribute groups memberctl owns (`manage:`); all by default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Manage(pub BTreeSet<Managed>);

impl Default for Manage {
    fn default() -> Self {
        Self::all()
    }
}

impl Manage {
    /// Every attribute group.
    #[must_use]
    pub fn all() -> Self {
        Self(Managed::ALL.into_iter().collect())
    }

    /// Only the given groups.
    #[must_use]
    pub fn only(groups: &[Managed]) -> Self {
        Self(groups.iter().copied().collect())
    }

    /// Whether memberctl owns `group`.
    #[must_use]
    pub fn contains(&self, group: Managed) -> bool {
        self.0.contains(&group)
    }
}

/// What removing a member does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnRemove {
    /// PATCH `active: false` and keep the record, so a re-add is one PATCH.
    #[default]
    Deactivate,
    /// `DELETE /Users/{id}` (only with `--allow-delete`).
    Delete,
}

/// The `externalId` memberctl gives a user it creates: the normalized
/// address, stable across runs and machines. It is never written to an
/// adopted user, and a rename keeps the one the user was created with.
#[must_use]
pub fn external_id(email: &str) -> String {
    normalize_email(email)
}

/// Whether two `userName`s are the same (they compare case-insensitively).
#[must_use]
pub fn same_user_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Whether `user` is the one `match_on` looks for as `email`. A lookup's
/// answer is checked with this, because some services ignore a filter they
/// do not support and answer with every user.
#[must_use]
pub fn is_match(user: &User, email: &str, settings: &ScimSettings) -> bool {
    match settings.match_on {
        MatchOn::UserName => same_user_name(&user.user_name, &settings.user_name.render(email)),
        MatchOn::Emails => user.emails.iter().any(|e| normalize_email(&e.value) == normalize_email(email)),
        MatchOn::ExternalId => user.external_id.as_deref() == Some(external_id(email).as_str()),
    }
}

/// Keeps only the membership attributes memberctl owns under `manage`, so
/// that desired and observed attributes compare like with like. Positions,
/// the primary group and the invitation-only fields never reach SCIM.
#[must_use]
pub fn managed_view(attributes: &Attributes, manage: &Manage) -> Attributes {
    let keep = |group| manage.contains(group);
    Attributes {
        email: attributes.email.trim().to_owned(),
        name: attributes.name.clone().filter(|_| keep(Managed::Name)),
        first_name: attributes.first_name.clone().filter(|_| keep(Managed::Name)),
        last_name: attributes.last_name.clone().filter(|_| keep(Managed::Name)),
        phone: attributes.phone.clone().filter(|_| keep(Managed::Phone)),
        roles: if keep(Managed::Roles) { attributes.roles.clone() } else { Vec::new() },
        plans: if keep(Managed::Entitlements) { attributes.plans.clone() } else { Vec::new() },
        groups: if keep(Managed::Groups) { attributes.groups.clone() } else { Vec::new() },
        manager_id: attributes.manager_id.clone().filter(|_| keep(Managed::Manager)),
        ..Attributes::default()
    }
}

/// The body of `POST /Users` for a new member: the managed attributes plus
/// `userName`, the primary work email, `active: true` and `externalId`.
/// Group memberships are not part of it (`groups` is read-only on a User);
/// they follow as PATCH requests to the Groups.
#[must_use]
pub fn new_user(desired: &Attributes, settings: &ScimSettings) -> User {
    let desired = managed_view(desired, &settings.manage);
    let email = desired.email.clone();
    let name = Name {
        formatted: desired.name.clone(),
        given_name: desired.first_name.clone(),
        family_name: desired.last_name.clone(),
    };
    let mut schemas = vec![USER_SCHEMA.to_owned()];
    let enterprise = desired.manager_id.clone().map(|id| {
        schemas.push(ENTERPRISE_USER_SCHEMA.to_owned());
        EnterpriseUser { manager: Some(Manager { value: Some(id) }) }
    });
    User {
        schemas,
        id: None,
        external_id: Some(external_id(&email)),
        user_name: settings.user_name.render(&email),
        name: (name != Name::default()).then_some(name),
        display_name: desired.name.clone(),
        emails: vec![Email { value: email, kind: Some(EMAIL_TYPE.to_owned()), primary: Some(true) }],
        phone_numbers: desired
            .phone
            .iter()
            .map(|phone| PhoneNumber { value: phone.clone(), kind: Some(PHONE_TYPE.to_owned()), primary: None })
            .collect(),
        roles: desired.roles.iter().map(|id| ValueEntry::new(&**id)).collect(),
        entitlements: desired.plans.iter().map(|id| ValueEntry::new(&**id)).collect(),
        active: Some(true),
        groups: Vec::new(),
        enterprise,
        meta: None,
    }
}

/// The address a user is known by: its primary email, else its work email,
/// else its first email, else its `userName`.
#[must_use]
pub fn user_email(user: &User) -> String {
    let pick = user
        .emails
        .iter()
        .find(|e| e.primary == Some(true))
        .or_else(|| user.emails.iter().find(|e| e.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(EMAIL_TYPE))))
        .or_else(|| user.emails.first());
    pick.map_or_else(|| user.user_name.trim().to_owned(), |e| e.value.trim().to_owned())
}

/// The phone number memberctl owns on a user: the mobile one, else the
/// primary one, else the first (services that drop `type` still converge).
#[must_use]
pub fn user_phone(user: &User) -> Option<String> {
    let numbers = &user.phone_numbers;
    numbers
        .iter()
        .find(|p| p.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(PHONE_TYPE)))
        .or_else(|| numbers.iter().find(|p| p.primary == Some(true)))
        .or_else(|| numbers.first())
        .map(|p| p.value.clone())
}

/// What an observed user holds, in the shape of desired [`Attributes`] and
/// limited to `manage`, so that comparing it with the desired attributes'
/// [`managed_view`] gives the drift. `groups` comes from the user's read-only
/// `groups`; where a service only lists memberships on its Groups, the
/// caller overwrites it from there.
#[must_use]
pub fn observed_attributes(user: &User, manage: &Manage) -> Attributes {
    let name = user.name.clone().unwrap_or_default();
    let values = |entries: &[ValueEntry]| -> Vec<Id> {
        let mut out: Vec<Id> = Vec::with_capacity(entries.len());
        for entry in entries {
            if !entry.value.is_empty() && !out.iter().any(|id| **id == *entry.value) {
                out.push(crate::attributes::id(&entry.value));
            }
        }
        out
    };
    let observed = Attributes {
        email: user_email(user),
        name: user.display_name.clone().or(name.formatted),
        first_name: name.given_name,
        last_name: name.family_name,
        phone: user_phone(user),
        roles: values(&user.roles),
        plans: values(&user.entitlements),
        groups: user.groups.iter().filter(|g| !g.value.is_empty()).map(|g| crate::attributes::id(&g.value)).collect(),
        manager_id: user.manager_id().map(str::to_owned),
        ..Attributes::default()
    };
    managed_view(&observed, manage)
}

/// Each user id's groups, from a listing of the Groups and their members,
/// to overwrite [`observed_attributes`]' `groups` with. `None` when no group
/// lists any member although there are groups: such a service (many list
/// groups with `members` empty) only shows memberships on its Users, if at
/// all.
#[must_use]
pub fn memberships(groups: &[Group]) -> Option<BTreeMap<String, Vec<String>>> {
    if !groups.is_empty() && groups.iter().all(|g| g.members.is_empty()) {
        return None;
    }
    let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for group in groups {
        let Some(group_id) = group.id.as_ref() else { continue };
        for member in group.members.iter().filter(|m| !m.value.is_empty()) {
            let joined = by_user.entry(member.value.clone()).or_default();
            if !joined.contains(group_id) {
                joined.push(group_id.clone());
            }
        }
    }
    Some(by_user)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ada() -> Attributes {
        Attributes {
            email: " Ada@X.io ".into(),
            name: Some("Ada Lovelace".into()),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            phone: Some("+44 20 1234".into()),
            roles: vec!["admin".into(), "dev".into()],
            plans: vec!["pro".into()],
            groups: vec!["g1".into()],
            primary_group: Some("g1".into()),
            positions: vec!["p1".into()],
            manager_id: Some("m1".into()),
            note: Some("welcome".into()),
            ..Attributes::default()
        }
    }

    #[test]
    fn settings_default_and_read_the_documented_yaml() {
        let settings: ScimSettings = serde_json::from_value(json!({})).unwrap();
        assert_eq!(settings, ScimSettings::default());
        assert_eq!(settings.manage, Manage::all());
        assert_eq!(settings.on_remove, OnRemove::Deactivate);
        let settings: ScimSettings = serde_json::from_value(json!({
            "user_name": "{local}", "match_on": "externalId", "manage": ["roles", "name"], "on_remove": "delete"
        }))
        .unwrap();
        assert_eq!(settings.user_name, UserNameTemplate::Template("{local}".into()));
        assert_eq!(settings.match_on, MatchOn::ExternalId);
        assert_eq!(settings.manage, Manage::only(&[Managed::Name, Managed::Roles]));
        assert_eq!(settings.on_remove, OnRemove::Delete);
        assert_eq!(
            serde_json::to_value(&settings).unwrap(),
            json!({"user_name": "{local}", "match_on": "externalId", "manage": ["name", "roles"], "on_remove": "delete"})
        );
        assert!(serde_json::from_value::<ScimSettings>(json!({"match_on": "username"})).is_err());
        assert!(serde_json::from_value::<ScimSettings>(json!({"manage": ["positions"]})).is_err());
    }

    #[test]
    fn user_name_templates_render_and_bad_ones_are_refused() {
        assert_eq!(UserNameTemplate::Email.render(" Ada@X.io "), "Ada@X.io");
        let t = UserNameTemplate::try_from("{local}".to_owned()).unwrap();
        assert_eq!(t.render("ada@x.io"), "ada");
        let t = UserNameTemplate::try_from("{local}.{domain}/{email}".to_owned()).unwrap();
        assert_eq!(t.render("a@b@x.io"), "a@b.x.io/a@b@x.io");
        assert_eq!(UserNameTemplate::try_from("email".to_owned()), Ok(UserNameTemplate::Email));
        for bad in ["alice", "{user}", "{local", "local}", ""] {
            let err = UserNameTemplate::try_from(bad.to_owned()).unwrap_err();
            assert!(err.contains("`user_name` template"), "{bad}: {err}");
        }
        assert!(serde_json::from_value::<ScimSettings>(json!({"user_name": "{nope}"})).is_err());
    }

    #[test]
    fn new_user_goes_on_the_wire_with_every_managed_attribute() {
        let user = new_user(&ada(), &ScimSettings::default());
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "externalId": "ada@x.io",
                "userName": "Ada@X.io",
                "name": {"formatted": "Ada Lovelace", "givenName": "Ada", "familyName": "Lovelace"},
                "displayName": "Ada Lovelace",
                "emails": [{"value": "Ada@X.io", "type": "work", "primary": true}],
                "phoneNumbers": [{"value": "+44 20 1234", "type": "mobile"}],
                "roles": [{"value": "admin"}, {"value": "dev"}],
                "entitlements": [{"value": "pro"}],
                "active": true,
                ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m1"}}
            })
        );
    }

    #[test]
    fn new_user_leaves_out_what_is_not_managed_and_what_is_absent() {
        let settings = ScimSettings {
            user_name: UserNameTemplate::try_from("{local}".to_owned()).unwrap(),
            manage: Manage::only(&[Managed::Roles]),
            ..ScimSettings::default()
        };
        let user = new_user(&ada(), &settings);
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({
                "schemas": [USER_SCHEMA],
                "externalId": "ada@x.io",
                "userName": "Ada",
                "emails": [{"value": "Ada@X.io", "type": "work", "primary": true}],
                "roles": [{"value": "admin"}, {"value": "dev"}],
                "active": true
            })
        );
        let bare = new_user(&Attributes { email: "b@x.io".into(), ..Attributes::default() }, &ScimSettings::default());
        assert_eq!(bare.name, None);
        assert_eq!(bare.display_name, None);
        assert!(bare.phone_numbers.is_empty() && bare.roles.is_empty() && bare.enterprise.is_none());
    }

    #[test]
    fn a_created_user_reads_back_as_the_managed_desired_attributes() {
        let manage = Manage::all();
        let mut created = new_user(&ada(), &ScimSettings::default());
        // The service reports memberships on the user; the PATCH of g1 put it there.
        created.groups = vec![super::super::resource::GroupRef { value: "g1".into(), display: None }];
        let observed = observed_attributes(&created, &manage);
        let desired = managed_view(&ada(), &manage);
        assert_eq!(observed, desired);
        assert!(desired.changes_to(&observed).is_empty());
        assert!(desired.positions.is_empty());
        assert_eq!(desired.note, None);
        assert_eq!(desired.primary_group, None);
    }

    #[test]
    fn observed_attributes_pick_the_owned_email_and_phone() {
        let user: User = super::super::wire::from_value(json!({
            "userName": "ada",
            "emails": [{"value": "home@x.io", "type": "home"}, {"value": "work@x.io", "type": "Work"}],
            "phoneNumbers": [{"value": "1", "type": "work"}, {"value": "2", "type": "Mobile"}],
            "roles": [{"value": "a"}, {"value": "a"}, {"value": ""}],
            "name": {"formatted": "Ada L"}
        }))
        .unwrap();
        let observed = observed_attributes(&user, &Manage::all());
        assert_eq!(observed.email, "work@x.io");
        assert_eq!(observed.phone.as_deref(), Some("2"));
        assert_eq!(observed.roles, ["a".into()]);
        assert_eq!(observed.name.as_deref(), Some("Ada L"));
        let only_roles = observed_attributes(&user, &Manage::only(&[Managed::Roles]));
        assert_eq!(only_roles.phone, None);
        assert_eq!(only_roles.name, None);
        let no_email = User { user_name: "x@y.io".into(), ..User::default() };
        assert_eq!(user_email(&no_email), "x@y.io");
        let primary = User {
            emails: vec![
                Email { value: "b".into(), kind: Some("work".into()), primary: None },
                Email { value: "a".into(), kind: None, primary: Some(true) },
            ],
            ..User::default()
        };
        assert_eq!(user_email(&primary), "a");
    }

    #[test]
    fn lookups_are_checked_by_match_on() {
        let user: User = super::super::wire::from_value(json!({
            "userName": "ADA", "externalId": "ada@x.io", "emails": [{"value": "Ada@X.io"}]
        }))
        .unwrap();
        let mut settings = ScimSettings {
            user_name: UserNameTemplate::try_from("{local}".to_owned()).unwrap(),
            ..ScimSettings::default()
        };
        assert!(is_match(&user, "ada@y.io", &settings));
        assert!(!is_match(&user, "bob@x.io", &settings));
        settings.match_on = MatchOn::Emails;
        assert!(is_match(&user, " ada@x.io", &settings));
        assert!(!is_match(&user, "ada@y.io", &settings));
        settings.match_on = MatchOn::ExternalId;
        assert!(is_match(&user, "ADA@x.io", &settings));
        assert!(!is_match(&User::default(), "ada@x.io", &settings));
    }

    #[test]
    fn memberships_come_from_group_members_unless_no_group_lists_any() {
        let groups: Vec<Group> = super::super::wire::from_value(json!([
            {"id": "g1", "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u1"}]},
            {"id": "g2", "members": [{"value": "u1"}]},
            {"id": "g3"},
            {"displayName": "no id", "members": [{"value": "u3"}]}
        ]))
        .unwrap();
        let by_user = memberships(&groups).unwrap();
        assert_eq!(by_user.get("u1"), Some(&vec!["g1".to_owned(), "g2".to_owned()]));
        assert_eq!(by_user.get("u2"), Some(&vec!["g1".to_owned()]));
        assert_eq!(by_user.get("u3"), None);
        let empty: Vec<Group> =
            super::super::wire::from_value(json!([{"id": "g1", "members": []}, {"id": "g2"}])).unwrap();
        assert_eq!(memberships(&empty), None);
        assert_eq!(memberships(&[]), Some(BTreeMap::new()));
    }

    #[test]
    fn user_names_compare_case_insensitively() {
        assert!(same_user_name("Ada@X.io", "ada@x.io "));
        assert!(same_user_name("ÅSA", "åsa"));
        assert!(!same_user_name("ada", "adam"));
        assert_eq!(external_id(" Ada@X.io"), "ada@x.io");
    }
}
