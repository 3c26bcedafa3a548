//! A resource as the state file stores it.
//!
//! Version 2 stores nothing twice: the provider is the address's first
//! part, and the email as last sent is the attributes' email (kept as
//! written, since providers are sent it as written), so neither is stored
//! unless the email differs. `remote` is left out when no id is known and
//! `updated_at` when the record never changed after it was created.
//! Version 1 records (with `provider`, `email` and every timestamp) are
//! read by the same type.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::attributes::Attributes;
use crate::provider::RemoteIds;
use crate::state::{Resource, Status};

/// A record of a version 1 or version 2 file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Stored {
    address: Address,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    email: Option<String>,
    status: Status,
    attributes: Attributes,
    #[serde(default)]
    remote: RemoteIds,
    created_at: String,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    invited_at: Option<String>,
    #[serde(default)]
    resends: u32,
    #[serde(default)]
    message: Option<String>,
}

impl Stored {
    /// The resource this record holds, for a file of `version` (`None`
    /// while the version has not been read: a file whose records come
    /// before its version is read as whichever version they are). Errs
    /// with what is missing or extra, or with a record whose address does
    /// not match its provider and email.
    pub(super) fn into_resource(self, version: Option<u32>) -> Result<Resource, String> {
        let Stored {
            address,
            provider,
            email,
            status,
            attributes,
            remote,
            created_at,
            updated_at,
            invited_at,
            resends,
            message,
        } = self;
        if version == Some(1) {
            for (field, missing) in
                [("provider", provider.is_none()), ("email", email.is_none()), ("updated_at", updated_at.is_none())]
            {
                if missing {
                    return Err(format!("missing field `{field}`"));
                }
            }
        } else if version.is_some() && provider.is_some() {
            return Err("unknown field `provider` (version 2 derives it from the address)".to_owned());
        }
        let provider = provider.unwrap_or_else(|| address.provider().to_owned());
        let email = email.unwrap_or_else(|| attributes.email.clone());
        // A hand-edited address that no longer matches its provider and
        // email would plan a removal and a second invitation of the same
        // person.
        if address != Address::new(&provider, &email) {
            return Err(format!(
                "address `{address}` does not match its provider `{provider}` and email `{email}` (addresses are `PROVIDER/lowercased-email`)"
            ));
        }
        Ok(Resource {
            address,
            provider,
            email,
            status,
            attributes,
            remote,
            updated_at: updated_at.unwrap_or_else(|| created_at.clone()),
            created_at,
            invited_at,
            resends,
            message,
        })
    }
}

/// A resource as version 2 writes it.
#[derive(Serialize)]
pub(super) struct StoredOut<'a> {
    address: &'a Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    status: Status,
    attributes: &'a Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<&'a RemoteIds>,
    created_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invited_at: Option<&'a str>,
    #[serde(skip_serializing_if = "is_zero")]
    resends: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes `&T`
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl<'a> From<&'a Resource> for StoredOut<'a> {
    fn from(r: &'a Resource) -> Self {
        StoredOut {
            address: &r.address,
            email: (r.email != r.attributes.email).then_some(r.email.as_str()),
            status: r.status,
            attributes: &r.attributes,
            remote: (!r.remote.is_empty()).then_some(&r.remote),
            created_at: &r.created_at,
            updated_at: (r.updated_at != r.created_at).then_some(r.updated_at.as_str()),
            invited_at: r.invited_at.as_deref(),
            resends: r.resends,
            message: r.message.as_deref(),
        }
    }
}
