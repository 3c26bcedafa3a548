//! A resource as the state file stores it.
//!
//! Version 2 has the fields of version 1, one record per line, and stores
//! nothing that the address or another field already says:
//!
//! - the provider is the address's first part (no `provider`);
//! - the email is the address's second part (no record-level `email`), so
//!   `attributes.email` appears only when the email as written differs
//!   from it (in case: addresses are lowercased, providers are sent the
//!   email as written);
//! - `updated_at` is left out when the record never changed after it was
//!   created, and `invited_at` when the invitation went out when the record
//!   was created (`"invited_at": null` says there was none);
//! - `remote` is left out when no remote id is known.
//!
//! Version 1 records are read by the same type and written back as
//! version 2. The stored attributes are listed here rather than taken from
//! [`Attributes`] so that the file format changes only when this file does.

use serde::{Deserialize, Deserializer, Serialize};

use crate::address::Address;
use crate::attributes::{Attributes, Id, Method};
use crate::provider::RemoteIds;
use crate::state::{Resource, Status};

/// A record of a version 1 or version 2 file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Stored {
    address: Address,
    status: Status,
    /// Version 1 only: the email as last sent.
    #[serde(default)]
    email: Option<String>,
    /// Version 1 only.
    #[serde(default)]
    provider: Option<String>,
    attributes: StoredAttributes,
    #[serde(default)]
    remote: RemoteIds,
    created_at: String,
    #[serde(default)]
    updated_at: Option<String>,
    /// Absent, null, or a time; what absent means depends on the version.
    #[allow(clippy::option_option)] // absent and null are two cases here
    #[serde(default, deserialize_with = "present")]
    invited_at: Option<Option<String>>,
    #[serde(default)]
    resends: u32,
    #[serde(default)]
    message: Option<String>,
}

/// A record's attributes. Version 2 leaves the email out when it is the
/// address's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredAttributes {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default, deserialize_with = "crate::attributes::ids")]
    roles: Vec<Id>,
    #[serde(default, deserialize_with = "crate::attributes::ids")]
    plans: Vec<Id>,
    #[serde(default, deserialize_with = "crate::attributes::ids")]
    groups: Vec<Id>,
    #[serde(default, deserialize_with = "crate::attributes::optional_id")]
    primary_group: Option<Id>,
    #[serde(default, deserialize_with = "crate::attributes::ids")]
    positions: Vec<Id>,
    #[serde(default)]
    manager_id: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    method: Method,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<String>,
    #[serde(default)]
    existing_user: Option<serde_json::Map<String, serde_json::Value>>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes `&T`
fn is_invite(method: &Method) -> bool {
    *method == Method::Invite
}

/// Tells a field given as `null` from one left out.
#[allow(clippy::option_option)] // absent and null are two cases here
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl StoredAttributes {
    /// Every field is read here, so one left out of [`Attributes`] is a
    /// compile error (a missing one) or a warning (one never read).
    fn into_attributes(self, email: String) -> Attributes {
        Attributes {
            email,
            name: self.name,
            first_name: self.first_name,
            last_name: self.last_name,
            phone: self.phone,
            roles: self.roles,
            plans: self.plans,
            groups: self.groups,
            primary_group: self.primary_group,
            positions: self.positions,
            manager_id: self.manager_id,
            note: self.note,
            method: self.method,
            password_env: self.password_env,
            password_file: self.password_file,
            existing_user: self.existing_user,
        }
    }
}

impl Stored {
    /// The resource this record holds, for a file of `version` (`None`
    /// while the version has not been read: a file whose records come
    /// before its version is read as whichever version they look like).
    /// Errs with what is missing or extra, or with a record whose address
    /// does not match its provider and email.
    pub(super) fn into_resource(self, version: Option<u32>) -> Result<Resource, String> {
        let version_1 = version == Some(1) || (version.is_none() && self.provider.is_some());
        let Stored {
            address,
            status,
            email,
            provider,
            attributes,
            remote,
            created_at,
            updated_at,
            invited_at,
            resends,
            message,
        } = self;
        let (email, updated_at, invited_at) = if version_1 {
            let missing = [
                ("provider", provider.is_none()),
                ("email", email.is_none()),
                ("attributes.email", attributes.email.is_none()),
                ("updated_at", updated_at.is_none()),
            ];
            if let Some((field, _)) = missing.iter().find(|(_, missing)| *missing) {
                return Err(format!("missing field `{field}` (a version 1 record)"));
            }
            let (provider, email) = (provider.unwrap_or_default(), email.unwrap_or_default());
            matching(&address, &provider, &email)?;
            (email, updated_at.unwrap_or_default(), invited_at.flatten())
        } else {
            for (field, given) in [("provider", provider.is_some()), ("email", email.is_some())] {
                if given {
                    return Err(format!(
                        "unknown field `{field}` (version 2 derives it from the address, and keeps an email written otherwise in `attributes`)"
                    ));
                }
            }
            let invited_at = match invited_at {
                None => Some(created_at.clone()),
                Some(given) => given,
            };
            (String::new(), updated_at.unwrap_or_else(|| created_at.clone()), invited_at)
        };
        let written = attributes.email.clone().unwrap_or_else(|| address.email().to_owned());
        matching(&address, address.provider(), &written)?;
        // Version 2 keeps the email once: as last sent is as written.
        let email = if version_1 { email } else { written.clone() };
        Ok(Resource {
            provider: address.provider().to_owned(),
            email,
            address,
            status,
            attributes: attributes.into_attributes(written),
            remote,
            created_at,
            updated_at,
            invited_at,
            resends,
            message,
        })
    }
}

/// A hand-edited address that no longer matches its provider and email
/// would plan a removal and a second invitation of the same person.
fn matching(address: &Address, provider: &str, email: &str) -> Result<(), String> {
    if is_address_of(address.as_str(), provider, email) {
        Ok(())
    } else if provider.is_empty() || email.is_empty() {
        Err(format!("address `{address}` is not `PROVIDER/EMAIL`"))
    } else {
        Err(format!(
            "address `{address}` does not match its provider `{provider}` and email `{email}` (addresses are `PROVIDER/lowercased-email`)"
        ))
    }
}

/// A resource as version 2 writes it.
#[derive(Serialize)]
pub(super) struct StoredOut<'a> {
    address: &'a Address,
    status: Status,
    attributes: AttributesOut<'a>,
    #[serde(skip_serializing_if = "RemoteIds::is_empty")]
    remote: &'a RemoteIds,
    created_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<&'a str>,
    /// `None`: the same as `created_at`; `Some(None)`: none.
    #[allow(clippy::option_option)] // absent and null are two cases here
    #[serde(skip_serializing_if = "Option::is_none")]
    invited_at: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "is_zero")]
    resends: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

/// [`Attributes`] as version 2 writes them: the email only when it is not
/// the address's.
#[derive(Serialize)]
struct AttributesOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Id]>::is_empty")]
    roles: &'a [Id],
    #[serde(skip_serializing_if = "<[Id]>::is_empty")]
    plans: &'a [Id],
    #[serde(skip_serializing_if = "<[Id]>::is_empty")]
    groups: &'a [Id],
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_group: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Id]>::is_empty")]
    positions: &'a [Id],
    #[serde(skip_serializing_if = "Option::is_none")]
    manager_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    #[serde(skip_serializing_if = "is_invite")]
    method: Method,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    existing_user: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes `&T`
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl<'a> From<&'a Resource> for StoredOut<'a> {
    fn from(r: &'a Resource) -> Self {
        let a = &r.attributes;
        StoredOut {
            address: &r.address,
            status: r.status,
            attributes: AttributesOut {
                email: (a.email != r.address.email()).then_some(a.email.as_str()),
                name: a.name.as_deref(),
                first_name: a.first_name.as_deref(),
                last_name: a.last_name.as_deref(),
                phone: a.phone.as_deref(),
                roles: &a.roles,
                plans: &a.plans,
                groups: &a.groups,
                primary_group: a.primary_group.as_deref(),
                positions: &a.positions,
                manager_id: a.manager_id.as_deref(),
                note: a.note.as_deref(),
                method: a.method,
                password_env: a.password_env.as_deref(),
                password_file: a.password_file.as_deref(),
                existing_user: a.existing_user.as_ref(),
            },
            remote: &r.remote,
            created_at: &r.created_at,
            updated_at: (r.updated_at != r.created_at).then_some(r.updated_at.as_str()),
            invited_at: match r.invited_at.as_deref() {
                Some(at) if at == r.created_at => None,
                other => Some(other),
            },
            resends: r.resends,
            message: r.message.as_deref(),
        }
    }
}

/// Whether `address` is `Address::new(provider, email)`, without building
/// it: every record read is checked, and building the address was two
/// allocations a record.
fn is_address_of(address: &str, provider: &str, email: &str) -> bool {
    let Some(stored) = address.strip_prefix(provider).and_then(|rest| rest.strip_prefix('/')) else {
        return false;
    };
    let email = email.trim();
    if email.is_ascii() {
        stored.len() == email.len() && stored.bytes().zip(email.bytes()).all(|(s, e)| s == e.to_ascii_lowercase())
    } else {
        stored == crate::address::normalize_email(email)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::is_address_of;
    use crate::address::Address;

    proptest! {
        /// The check is building the address and comparing, without the
        /// building.
        #[test]
        fn an_address_is_checked_as_if_built(
            provider in "[a-z/]{0,4}",
            email in "[ \\ta-zA-Z@.ÄäİK\u{212a}]{0,8}",
            stored in "[a-z/]{0,4}/?[ a-zA-Z@.äi\u{307}k]{0,8}",
        ) {
            let built = Address::new(&provider, &email);
            prop_assert!(is_address_of(built.as_str(), &provider, &email));
            prop_assert_eq!(is_address_of(&stored, &provider, &email), stored == built.as_str());
        }
    }
}
