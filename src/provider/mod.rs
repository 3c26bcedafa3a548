//! Providers: the clients that carry changes out at a `SaaS` platform.
//!
//! Each provider type says what it can do ([`Capabilities`]), how it checks a
//! member before anything is sent ([`ProviderKind::validate_member`]), how it
//! groups operations into requests ([`Provider::batches`]) and how it turns an
//! answer into one [`Outcome`] per email ([`Provider::send`]). Only this module
//! does network I/O; the `sandbox` type does none at all.

pub mod aptly;
pub mod credentials;
pub mod http;
pub mod networked;
pub mod sandbox;
pub mod scim;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::attributes::Attributes;

pub use credentials::Secret;

/// A boxed future, so that [`Provider`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::Networked => "networked",
            ProviderKind::Aptly => "aptly",
            ProviderKind::Sandbox => "sandbox",
        })
    }
}

/// A catalog kind (the config's `roles`, `plans`, `groups`, `positions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogKind {
    /// `roles`
    Roles,
    /// `plans`
    Plans,
    /// `groups`
    Groups,
    /// `positions`
    Positions,
}

impl CatalogKind {
    /// The config key of this catalog.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            CatalogKind::Roles => "roles",
            CatalogKind::Plans => "plans",
            CatalogKind::Groups => "groups",
            CatalogKind::Positions => "positions",
        }
    }
}

impl ProviderKind {
    /// The base URL used when the config gives none.
    #[must_use]
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Networked => Some("https://backend.networked.co"),
            ProviderKind::Aptly => Some("https://api.us.aptlydone.com"),
            ProviderKind::Sandbox => None,
        }
    }

    /// The env var read for the credential when the config names none.
    #[must_use]
    pub fn default_credential_env(self) -> Option<&'static str> {
        match self {
            ProviderKind::Networked => Some("NETWORKED_API_KEY"),
            ProviderKind::Aptly => Some("APTLY_TOKEN"),
            ProviderKind::Sandbox => None,
        }
    }

    /// The config key that names the credential env var.
    #[must_use]
    pub fn credential_key(self) -> &'static str {
        match self {
            ProviderKind::Networked => "api_key_env",
            ProviderKind::Aptly => "token_env",
            ProviderKind::Sandbox => "",
        }
    }

    /// What this type can do when the config does not narrow it.
    #[must_use]
    pub fn default_capabilities(self) -> Capabilities {
        match self {
            // None of the seed APIs list, update or remove members.
            ProviderKind::Networked | ProviderKind::Aptly => Capabilities::INVITE_ONLY,
            ProviderKind::Sandbox => Capabilities::ALL,
        }
    }

    /// Whether members of this type carry the given catalog kind. A kind the
    /// type has no notion of is never sent to it (plans at Aptly; groups and
    /// positions at Networked).
    #[must_use]
    pub fn uses(self, catalog: CatalogKind) -> bool {
        !matches!(
            (self, catalog),
            (ProviderKind::Networked, CatalogKind::Groups | CatalogKind::Positions)
                | (ProviderKind::Aptly, CatalogKind::Plans)
        )
    }

    /// Checks a remote id's shape; returns what was expected when it is wrong.
    #[must_use]
    pub fn check_id(self, id: &str) -> Option<&'static str> {
        match self {
            ProviderKind::Networked if !is_object_id(id) => Some("a 24-character hex object id"),
            ProviderKind::Aptly if !is_uuid(id) => Some("a UUID"),
            ProviderKind::Sandbox if id.trim().is_empty() => Some("a non-empty id"),
            _ => None,
        }
    }

    /// Provider-specific checks of one resolved member. Each problem is a
    /// message and a hint.
    #[must_use]
    pub fn validate_member(self, attributes: &Attributes, settings: &ProviderSettings) -> Vec<(String, String)> {
        match self {
            ProviderKind::Networked => networked::validate_member(attributes, settings),
            ProviderKind::Aptly => aptly::validate_member(attributes),
            ProviderKind::Sandbox => Vec::new(),
        }
    }
}

/// `^[0-9a-f]{24}$`, case-insensitive: a MongoDB-style object id.
#[must_use]
pub fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `8-4-4-4-12` hex digits.
#[must_use]
pub fn is_uuid(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What a provider can carry out. A change it cannot do is planned as `manual`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Capabilities {
    /// Can invite (or add) members.
    pub invite: bool,
    /// Can change an existing member's attributes.
    pub update: bool,
    /// Can remove a member.
    pub remove: bool,
}

impl Capabilities {
    /// Invite only: the seed APIs.
    pub const INVITE_ONLY: Capabilities = Capabilities { invite: true, update: false, remove: false };
    /// Everything.
    pub const ALL: Capabilities = Capabilities { invite: true, update: true, remove: true };
}

/// Networked's two invitation endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InviteEndpoint {
    /// `POST /api/v1/admin/community/invites/emails`, many users per request.
    #[default]
    Bulk,
    /// `POST /api/v1/admin/community/addExternalUsers`, one user per request.
    Single,
}

/// What to do with an address whose last send had no known outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UncertainPolicy {
    /// Send again; a duplicate answer then adopts the member.
    #[default]
    SendAgain,
    /// Show it in the plan as `manual` for a person to decide.
    Hold,
}

/// One provider's resolved settings. Saved in plan files so that a saved
/// plan is applied exactly; holds env var *names*, never credentials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderSettings {
    /// The user-chosen provider name.
    pub name: String,
    /// The provider type.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// Base URL of the API (none for sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Env var holding the API key or token (none for sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_env: Option<String>,
    /// Aptly tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Networked endpoint used for invitations.
    #[serde(default)]
    pub invite_endpoint: InviteEndpoint,
    /// Most members in one request.
    pub batch_size: usize,
    /// Most requests in flight at once.
    pub concurrency: usize,
    /// Most requests started per second (0 = unlimited).
    pub rate_limit: f64,
    /// Per-request timeout, in milliseconds.
    pub timeout_ms: u64,
    /// Most attempts per request, the first included.
    pub max_attempts: u32,
    /// Sandbox outbox file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<PathBuf>,
    /// What the provider can do.
    pub capabilities: Capabilities,
    /// What to do with uncertain outcomes.
    #[serde(default)]
    pub uncertain: UncertainPolicy,
}

impl ProviderSettings {
    /// The per-request timeout.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Defaults shared by all provider types, documented in the README.
pub mod defaults {
    /// Members per request.
    pub const BATCH_SIZE: usize = 100;
    /// Requests in flight per provider.
    pub const CONCURRENCY: usize = 4;
    /// Requests started per second per provider.
    pub const RATE_LIMIT: f64 = 10.0;
    /// Per-request timeout.
    pub const TIMEOUT_MS: u64 = 30_000;
    /// Attempts per request.
    pub const MAX_ATTEMPTS: u32 = 5;
}

/// What is asked of a provider for one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Invite (or directly add) a member.
    Invite,
    /// Invite again: an earlier invitation was never confirmed.
    Resend,
    /// Change a member's attributes.
    Update,
    /// Remove a member.
    Remove,
}

/// One address's operation, as handed to a provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// The address.
    pub address: Address,
    /// What to do.
    pub kind: OperationKind,
    /// The attributes to send (the old ones for a removal).
    pub attributes: Attributes,
    /// The address was sent before without a known outcome (or is a resend):
    /// an answer that carries no reason is then read as "already there".
    pub repeat: bool,
}

/// Remote ids a provider returned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RemoteIds {
    /// Invitation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_id: Option<String>,
    /// User id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The provider's own timestamp of the invitation (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
}

/// The outcome of one address's operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Invitation sent.
    Invited(RemoteIds),
    /// Directly added.
    Added(RemoteIds),
    /// The provider already had the member; recorded with a warning.
    Adopted {
        /// The provider's words.
        message: String,
    },
    /// Attributes changed.
    Updated,
    /// Member removed.
    Removed,
    /// The provider refused; nothing happened.
    Failed {
        /// Why, in the provider's words where it gave any.
        reason: String,
    },
    /// The request may or may not have arrived.
    Uncertain {
        /// What went wrong.
        reason: String,
    },
}

/// A whole request went wrong, not one email in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BatchError {
    /// Whether the emails may have been sent.
    pub uncertain: bool,
    /// Whether every later request to this provider would fail the same way
    /// (bad credentials, unreachable host): the engine stops sending to it.
    pub fatal: bool,
    /// A one-line explanation naming the provider and endpoint.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

/// A provider client, built for one apply.
pub trait Provider: Send + Sync {
    /// The resolved settings this client was built from.
    fn settings(&self) -> &ProviderSettings;

    /// Groups operations into requests. Every operation lands in exactly one
    /// batch; a batch is sent as one request (or, for one-user endpoints, a
    /// short sequence of them).
    fn batches(&self, operations: Vec<Operation>) -> Vec<Vec<Operation>>;

    /// Sends one batch; answers one outcome per operation, in order.
    fn send<'a>(&'a self, batch: &'a [Operation]) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>>;
}

/// Splits `operations` into chunks of at most `size`, keeping order.
#[must_use]
pub fn chunk(operations: Vec<Operation>, size: usize) -> Vec<Vec<Operation>> {
    let size = size.max(1);
    let mut out = Vec::with_capacity(operations.len().div_ceil(size));
    let mut current = Vec::with_capacity(size.min(operations.len()));
    for op in operations {
        current.push(op);
        if current.len() == size {
            out.push(std::mem::replace(&mut current, Vec::with_capacity(size)));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The credential env var is unset or empty.
    #[error("provider `{provider}` needs the env var `{var}`, which is not set")]
    MissingCredential {
        /// Provider name.
        provider: String,
        /// The env var.
        var: String,
    },
    /// A direct-add password could not be read.
    #[error("cannot read the password for `{address}`: {reason}")]
    Password {
        /// The address.
        address: String,
        /// Why (names the env var or file, never the value).
        reason: String,
    },
    /// The base URL is not usable.
    #[error("provider `{provider}`: {reason}")]
    BaseUrl {
        /// Provider name.
        provider: String,
        /// Why.
        reason: String,
    },
    /// Anything else while building the client.
    #[error("provider `{provider}`: {reason}")]
    Setup {
        /// Provider name.
        provider: String,
        /// Why.
        reason: String,
    },
}

/// Builds the client for `settings`, reading credentials from `env`.
///
/// `env` is a lookup function so that tests and the engine read the
/// environment in one place.
pub fn build(
    settings: &ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Box<dyn Provider>, ProviderError> {
    Ok(match settings.kind {
        ProviderKind::Sandbox => Box::new(sandbox::Sandbox::new(settings.clone())),
        ProviderKind::Networked => Box::new(networked::Networked::new(settings.clone(), env)?),
        ProviderKind::Aptly => Box::new(aptly::Aptly::new(settings.clone(), env)?),
    })
}

/// Reads the credential named by `settings.credential_env`.
pub fn credential(settings: &ProviderSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, ProviderError> {
    let var = settings.credential_env.clone().unwrap_or_default();
    match env(&var) {
        Some(value) if !value.trim().is_empty() => Ok(Secret::new(value)),
        _ => Err(ProviderError::MissingCredential { provider: settings.name.clone(), var }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_shapes() {
        assert!(is_object_id("69baa36beddb9f0012fdf101"));
        assert!(!is_object_id("69baa36beddb9f0012fdf10"));
        assert!(is_uuid("42db2b59-b9c6-4705-a0d9-916e597cd4aa"));
        assert!(!is_uuid("42db2b59b9c64705a0d9916e597cd4aa"));
    }
}
