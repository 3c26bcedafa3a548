//! Providers: the clients that carry changes out at a `SaaS` platform.
//!
//! Each provider type says what it can do ([`Capabilities`]), how it checks a
//! member before anything is sent ([`ProviderType::validate_member`]), how it
//! groups operations into requests ([`Provider::batches`]) and how it turns an
//! answer into one [`Outcome`] per email ([`Provider::send`]). Only this module
//! does network I/O; the `sandbox` type does none at all.

pub mod aptly;
pub mod credentials;
pub mod http;
mod kind;
pub mod networked;
pub mod sandbox;
pub mod scim;
pub mod vendor_message;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::attributes::Attributes;

pub use credentials::Secret;
pub use kind::{CredentialSpec, MemberFields, NameFields, ProviderKind, ProviderType, SettingProblem};

/// A boxed future, so that [`Provider`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
#[allow(clippy::struct_excessive_bools)] // capabilities as data: one flag each, read by name
pub struct Capabilities {
    /// Can invite (or add) members.
    pub invite: bool,
    /// Can change an existing member's attributes.
    pub update: bool,
    /// Can remove a member.
    pub remove: bool,
    /// Can list its members (for `--refresh`, `refresh` and drift checks).
    #[serde(default)]
    pub list: bool,
}

impl Capabilities {
    /// Invite only: the seed APIs.
    pub const INVITE_ONLY: Capabilities = Capabilities { invite: true, update: false, remove: false, list: false };
    /// Everything.
    pub const ALL: Capabilities = Capabilities { invite: true, update: true, remove: true, list: true };
    /// Nothing (the start of a narrowed set).
    pub const NONE: Capabilities = Capabilities { invite: false, update: false, remove: false, list: false };
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
    /// Most time, in milliseconds, the provider may spend paused by HTTP 429
    /// answers in one run. Left out of saved plans when it is the default.
    #[serde(default = "defaults::retry_budget_ms", skip_serializing_if = "defaults::is_retry_budget_ms")]
    pub retry_budget_ms: u64,
    /// Sandbox outbox file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<PathBuf>,
    /// What the provider can do.
    pub capabilities: Capabilities,
    /// What to do with uncertain outcomes.
    #[serde(default)]
    pub uncertain: UncertainPolicy,
    /// The `scim` type's own settings (`user_name`, `match_on`, `manage`,
    /// `on_remove`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<scim::mapping::ScimSettings>,
}

impl ProviderSettings {
    /// The per-request timeout.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The time the provider may spend paused by HTTP 429 answers in one run.
    #[must_use]
    pub fn retry_budget(&self) -> Duration {
        Duration::from_millis(self.retry_budget_ms)
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
    /// Time per provider and run that HTTP 429 pauses may take.
    pub const RETRY_BUDGET_MS: u64 = 10 * 60 * 1000;

    /// [`RETRY_BUDGET_MS`], for serde.
    #[must_use]
    pub fn retry_budget_ms() -> u64 {
        RETRY_BUDGET_MS
    }

    /// Whether `ms` is [`RETRY_BUDGET_MS`], for serde.
    #[must_use]
    #[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
    pub fn is_retry_budget_ms(ms: &u64) -> bool {
        *ms == RETRY_BUDGET_MS
    }
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
    /// The provider's ids for the member, as recorded (empty for a new one).
    #[serde(default, skip_serializing_if = "RemoteIds::is_empty")]
    pub remote: RemoteIds,
    /// The address was sent before without a known outcome (or is a resend):
    /// an answer that carries no reason is then read as "already there".
    pub repeat: bool,
    /// For an update that renames (`moved:`): the address the user is
    /// recorded under, whose record moves to `address` once it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<Address>,
}

impl Operation {
    /// A first invitation of `attributes` at `provider`: nothing recorded,
    /// never sent before.
    #[must_use]
    pub fn invite(provider: &str, attributes: Attributes) -> Self {
        Operation {
            address: Address::new(provider, &attributes.email),
            kind: OperationKind::Invite,
            attributes,
            remote: RemoteIds::default(),
            repeat: false,
            renamed_from: None,
        }
    }
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

impl RemoteIds {
    /// Whether no id is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.invite_id.is_none() && self.user_id.is_none() && self.timestamp_ms.is_none()
    }
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
        /// The provider's ids for the member, when it said (kept from the
        /// record otherwise).
        #[serde(default, skip_serializing_if = "RemoteIds::is_empty")]
        remote: RemoteIds,
    },
    /// Attributes changed.
    Updated,
    /// Member removed.
    Removed,
    /// Member deactivated (kept at the provider, and in the state with its
    /// ids, so a re-add is one reactivation).
    Deactivated(RemoteIds),
    /// Part of the change was carried out and part refused (e.g. the user
    /// was created but a group membership was not): the record takes what
    /// is in force, and the next plan proposes the rest again.
    Partial {
        /// The attributes now in force at the provider.
        applied: Box<Attributes>,
        /// The provider's ids.
        remote: RemoteIds,
        /// What was refused.
        reason: String,
    },
    /// The member no longer exists at the provider (deleted out of band)
    /// although the state records it: the record is dropped, so the next
    /// plan creates it again. Counted as failed, since what was asked (an
    /// update) was not done.
    Gone {
        /// What the provider said.
        reason: String,
    },
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

impl Outcome {
    /// The outcome with every text it quotes from the provider passed
    /// through `scrub`.
    #[must_use]
    pub fn scrubbed(self, scrub: &dyn Fn(&str) -> String) -> Self {
        match self {
            Outcome::Adopted { message, remote } => Outcome::Adopted { message: scrub(&message), remote },
            Outcome::Partial { applied, remote, reason } => {
                Outcome::Partial { applied, remote, reason: scrub(&reason) }
            }
            Outcome::Gone { reason } => Outcome::Gone { reason: scrub(&reason) },
            Outcome::Failed { reason } => Outcome::Failed { reason: scrub(&reason) },
            Outcome::Uncertain { reason } => Outcome::Uncertain { reason: scrub(&reason) },
            done @ (Outcome::Invited(_)
            | Outcome::Added(_)
            | Outcome::Updated
            | Outcome::Removed
            | Outcome::Deactivated(_)) => done,
        }
    }
}

/// A batch's answer with every text it quotes from the provider passed
/// through `scrub`: a service that echoes the request (its key or token, a
/// password) in a per-member message must not put it in the summary, the
/// pull-request comment, the journal or the state.
pub fn scrub_answer(
    answer: Result<Vec<Outcome>, BatchError>,
    scrub: &dyn Fn(&str) -> String,
) -> Result<Vec<Outcome>, BatchError> {
    match answer {
        Ok(outcomes) => Ok(outcomes.into_iter().map(|outcome| outcome.scrubbed(scrub)).collect()),
        Err(error) => Err(error.scrubbed(scrub)),
    }
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

impl BatchError {
    /// The error with its message and hint passed through `scrub`.
    #[must_use]
    pub fn scrubbed(self, scrub: &dyn Fn(&str) -> String) -> Self {
        BatchError { message: scrub(&self.message), hint: self.hint.as_deref().map(scrub), ..self }
    }
}

/// One member as a provider lists it: its attributes in the same resolved
/// form the state records (remote ids, not catalog names).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The attributes the provider holds (the fields of [`Listing::fields`]).
    pub attributes: Attributes,
    /// The provider's ids for it.
    pub remote: RemoteIds,
    /// False for a member the provider holds as deactivated or suspended.
    pub active: bool,
}

/// What a provider holds, as listed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    /// Every member listed.
    pub members: Vec<Observed>,
    /// The attribute fields (as [`Attributes::changes_to`] names them) the
    /// listing observes; others are neither compared nor overwritten.
    pub fields: Vec<&'static str>,
    /// Things the listing could not do (e.g. a service that returns no
    /// group memberships), for the drift report.
    pub notes: Vec<String>,
    /// Managed attributes no listed user carries: the service may ignore
    /// them, or every user that had one lost it. Refresh tells which by
    /// what the state records (`refresh::reconcile`).
    pub uncarried: Vec<Uncarried>,
}

/// A managed attribute no listed user carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uncarried {
    /// Its fields, as [`Attributes::changes_to`] names them.
    pub fields: Vec<&'static str>,
    /// Its name at the service, for the drift report.
    pub attribute: &'static str,
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

    /// Lists what the provider holds. Only called when its capabilities
    /// include `list`.
    fn list(&self) -> BoxFuture<'_, Result<Listing, BatchError>> {
        let name = self.settings().name.clone();
        Box::pin(async move {
            Err(BatchError {
                uncertain: false,
                fatal: true,
                message: format!("provider `{name}` cannot list its members"),
                hint: None,
            })
        })
    }
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
    settings.kind.build(settings, env)
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
