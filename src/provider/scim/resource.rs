//! SCIM resources and messages as they go over the wire (RFC 7643 §4,
//! RFC 7644 §3.4.2 and §3.12).
//!
//! The types serialize to exactly what is sent and deserialize whatever a
//! service answers: unknown attributes are ignored, absent ones take their
//! defaults, ids and values may be numbers, booleans and statuses may be
//! strings. Read answers through [`wire::from_value`]
//! so that attribute names also match case-insensitively.

use serde::{Deserialize, Serialize};

use super::wire;

/// A SCIM User, limited to the attributes memberctl reads or writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Schema URNs: the core User schema, plus the enterprise extension when
    /// it is present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// The service's id (absent on a user about to be created).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_string")]
    pub id: Option<String>,
    /// The provisioning client's own id for the user.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_string")]
    pub external_id: Option<String>,
    /// The unique login name; compared case-insensitively.
    #[serde(default, deserialize_with = "wire::lenient_string_or_empty")]
    pub user_name: String,
    /// The structured name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// The name shown to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Email addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Email>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<PhoneNumber>,
    /// Roles (memberctl's `roles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ValueEntry>,
    /// Entitlements (memberctl's `plans`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<ValueEntry>,
    /// Whether the account is active.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_bool")]
    pub active: Option<bool>,
    /// The groups the user belongs to. Read-only (RFC 7643 §4.1.2): it is
    /// never sent, memberships change through the Groups.
    #[serde(default, skip_serializing)]
    pub groups: Vec<GroupRef>,
    /// The enterprise extension.
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub enterprise: Option<EnterpriseUser>,
    /// Resource metadata; set by the service, never sent.
    #[serde(default, skip_serializing)]
    pub meta: Option<Meta>,
}

/// The structured name of a User.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Name {
    /// The full name, formatted for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// Given (first) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family (last) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

/// One email address of a User.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The address.
    #[serde(default, deserialize_with = "wire::lenient_string_or_empty")]
    pub value: String,
    /// `work`, `home`, `other`, or a service's own label.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether this is the primary address.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_bool")]
    pub primary: Option<bool>,
}

/// One phone number of a User.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// The number, as written.
    #[serde(default, deserialize_with = "wire::lenient_string_or_empty")]
    pub value: String,
    /// `mobile`, `work`, `home`, …
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether this is the primary number.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_bool")]
    pub primary: Option<bool>,
}

/// A multi-valued attribute's entry that memberctl identifies by its value
/// alone (`roles`, `entitlements`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueEntry {
    /// The value (a role or entitlement id).
    #[serde(default, deserialize_with = "wire::lenient_string_or_empty")]
    pub value: String,
}

impl ValueEntry {
    /// An entry holding `value`.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self { value: value.into() }
    }
}

/// A reference to a Group, as listed in a User's read-only `groups`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    /// The group's id.
    #[serde(default, deserialize_with = "wire::lenient_string_or_empty")]
    pub value: String,
    /// The group's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// The enterprise User extension, limited to `manager`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseUser {
    /// The user's manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Manager>,
}

/// The manager reference of the enterprise extension.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// The manager's User id.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_string")]
    pub value: Option<String>,
}

/// Resource metadata (RFC 7643 §3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The entity tag of this version (`W/"…"`), for `If-Match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `User` or `Group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The resource's URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// A SCIM Group, limited to what memberctl reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Schema URNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// The service's id.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_string")]
    pub id: Option<String>,
    /// The group's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The members. Some services list groups with this empty or absent and
    /// only show memberships on the Users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// Resource metadata.
    #[serde(default, skip_serializing)]
    pub meta: Option<Meta>,
}

/// One member of a Group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's id (a User id, or `bulkId:…` inside a `/Bulk` request).
    #[serde(default, deserialize_with = "wire::lenient_string_or_empty")]
    pub value: String,
    /// The member's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Member {
    /// A member referenced by id only, as sent in a PATCH.
    #[must_use]
    pub fn id(value: impl Into<String>) -> Self {
        Self { value: value.into(), display: None }
    }
}

/// A query answer (RFC 7644 §3.4.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    /// Schema URNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// The number of results the whole query matches, when the service says.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_u64")]
    pub total_results: Option<u64>,
    /// The 1-based index of this page's first result.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_u64")]
    pub start_index: Option<u64>,
    /// The number of results on this page, as the service counts them.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_u64")]
    pub items_per_page: Option<u64>,
    /// This page's results.
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

/// An error answer (RFC 7644 §3.12).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Error {
    /// Schema URNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// The HTTP status, which the RFC sends as a string and services as
    /// either.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "wire::lenient_status")]
    pub status: Option<u16>,
    /// The SCIM error keyword (`uniqueness`, `invalidValue`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    /// The service's explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Error {
    /// Reads an error body leniently; a body that is not an error object
    /// gives an empty error rather than none, since the HTTP status alone
    /// still classifies the answer.
    #[must_use]
    pub fn from_body(body: Option<&serde_json::Value>) -> Self {
        body.cloned().and_then(|body| wire::from_value(body).ok()).unwrap_or_default()
    }

    /// Whether the error carries `scim_type` (compared case-insensitively).
    #[must_use]
    pub fn is(&self, scim_type: &str) -> bool {
        self.scim_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(scim_type))
    }
}

impl User {
    /// The entity tag of the version read, if the service sent one.
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.meta.as_ref().and_then(|meta| meta.version.as_deref())
    }

    /// The manager id of the enterprise extension.
    #[must_use]
    pub fn manager_id(&self) -> Option<&str> {
        self.enterprise.as_ref().and_then(|e| e.manager.as_ref()).and_then(|m| m.value.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::scim::wire::from_value;

    #[test]
    fn a_full_user_from_the_rfc_reads_every_attribute() {
        let user: User = from_value(json!({
            "schemas": [super::super::USER_SCHEMA, super::super::ENTERPRISE_USER_SCHEMA],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "ada@x.io",
            "userName": "Ada@X.io",
            "name": {"formatted": "Ada Lovelace", "givenName": "Ada", "familyName": "Lovelace", "middleName": "K"},
            "displayName": "Ada Lovelace",
            "emails": [{"value": "ada@x.io", "type": "work", "primary": true}],
            "phoneNumbers": [{"value": "+44 1", "type": "mobile"}],
            "roles": [{"value": "admin", "display": "Admin"}],
            "entitlements": [{"value": "pro"}],
            "active": true,
            "groups": [{"value": "g1", "display": "Engineering", "$ref": "https://x/Groups/g1"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "7", "manager": {"value": "m1", "displayName": "Boss"}
            },
            "meta": {"resourceType": "User", "version": "W/\"3\"", "location": "https://x/Users/2819c223",
                     "created": "2010-01-23T04:56:22Z"},
            "x-vendor": {"anything": [1, 2]}
        }))
        .unwrap();
        assert_eq!(user.id.as_deref(), Some("2819c223-7f76-453a-919d-413861904646"));
        assert_eq!(user.user_name, "Ada@X.io");
        assert_eq!(user.name.as_ref().unwrap().family_name.as_deref(), Some("Lovelace"));
        assert_eq!(
            user.emails,
            vec![Email { value: "ada@x.io".into(), kind: Some("work".into()), primary: Some(true) }]
        );
        assert_eq!(user.phone_numbers[0].kind.as_deref(), Some("mobile"));
        assert_eq!(user.roles, vec![ValueEntry::new("admin")]);
        assert_eq!(user.entitlements, vec![ValueEntry::new("pro")]);
        assert_eq!(user.active, Some(true));
        assert_eq!(user.groups, vec![GroupRef { value: "g1".into(), display: Some("Engineering".into()) }]);
        assert_eq!(user.manager_id(), Some("m1"));
        assert_eq!(user.version(), Some("W/\"3\""));
        assert_eq!(user.meta.unwrap().location.as_deref(), Some("https://x/Users/2819c223"));
    }

    #[test]
    fn a_sparse_sloppy_user_still_reads() {
        let user: User = from_value(json!({
            "ID": 42, "UserName": "a", "Active": "False", "roles": null, "emails": [{"Value": "a@x.io", "Primary": "true"}]
        }))
        .unwrap();
        assert_eq!(user.id.as_deref(), Some("42"));
        assert_eq!(user.user_name, "a");
        assert_eq!(user.active, Some(false));
        assert!(user.roles.is_empty());
        assert_eq!(user.emails[0].primary, Some(true));
        assert_eq!(user.name, None);
        assert_eq!(user.version(), None);
    }

    #[test]
    fn a_user_serializes_without_read_only_attributes() {
        let user = User {
            schemas: vec![super::super::USER_SCHEMA.into()],
            user_name: "a@x.io".into(),
            groups: vec![GroupRef { value: "g".into(), display: None }],
            meta: Some(Meta { version: Some("W/\"1\"".into()), ..Meta::default() }),
            enterprise: Some(EnterpriseUser { manager: Some(Manager { value: Some("m".into()) }) }),
            active: Some(true),
            ..User::default()
        };
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({
                "schemas": [super::super::USER_SCHEMA],
                "userName": "a@x.io",
                "active": true,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}}
            })
        );
    }

    #[test]
    fn list_response_reads_resources_in_either_case_and_counts_as_strings() {
        let lower: ListResponse<User> = from_value(
            json!({"totalResults": "2", "itemsPerPage": 1, "startIndex": 1, "resources": [{"userName": "a"}]}),
        )
        .unwrap();
        assert_eq!(lower.total_results, Some(2));
        assert_eq!(lower.items_per_page, Some(1));
        assert_eq!(lower.resources.len(), 1);
        let upper: ListResponse<Group> = from_value(json!({
            "schemas": [super::super::LIST_RESPONSE_SCHEMA], "totalResults": 1,
            "Resources": [{"id": "g", "displayName": "Eng", "members": [{"value": "u1", "display": "Ada"}]}]
        }))
        .unwrap();
        assert_eq!(upper.resources[0].members, vec![Member { value: "u1".into(), display: Some("Ada".into()) }]);
        let empty: ListResponse<User> = from_value(json!({"totalResults": 0})).unwrap();
        assert!(empty.resources.is_empty());
        assert_eq!(empty.start_index, None);
    }

    #[test]
    fn group_with_members_absent_reads_as_empty() {
        let group: Group = from_value(json!({"id": "g", "displayName": "Eng"})).unwrap();
        assert!(group.members.is_empty());
        assert_eq!(serde_json::to_value(Member::id("u")).unwrap(), json!({"value": "u"}));
    }

    #[test]
    fn error_status_reads_as_string_or_number() {
        let rfc: Error = from_value(json!({
            "schemas": [super::super::ERROR_SCHEMA], "status": "409", "scimType": "uniqueness", "detail": "taken"
        }))
        .unwrap();
        assert_eq!(rfc.status, Some(409));
        assert!(rfc.is("Uniqueness"));
        assert_eq!(rfc.detail.as_deref(), Some("taken"));
        let number: Error = from_value(json!({"Status": 400, "SCIMTYPE": "invalidValue"})).unwrap();
        assert_eq!(number.status, Some(400));
        assert!(number.is("invalidValue"));
        assert_eq!(Error::from_body(Some(&json!("not an object"))), Error::default());
        assert_eq!(Error::from_body(None), Error::default());
    }
}
