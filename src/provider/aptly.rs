//! The `aptly` provider: an Aptly tenant, through its bulk invitation endpoint.
//!
//! `POST /auth/v1/user/bulk-invite` with `Authorization: Bearer <token>` and
//! a JSON body shaped exactly like the vendor's curl example:
//! `{"tenantId", "users":[{"firstName","lastName","email","mobilePhone"?,
//! "roleIds":[...],"groups":[{"groupId","isPrimaryOrg"}],"managerId"?,
//! "positionIds":[...],"existingUser":{}}]}`.
//!
//! # Names
//! Aptly needs a first and a last name. An explicit `first_name`/`last_name`
//! always wins. Otherwise they are derived from `name`: the **last**
//! whitespace-separated word is the last name and everything before it the
//! first name (`Mary Ann van Berg` → `Mary Ann van` + `Berg`; write
//! `first_name`/`last_name` when that is wrong). A one-word or missing name
//! with no explicit `last_name` is a validation error.
//!
//! # Groups
//! `isPrimaryOrg` is true for the group named by `primary_group` and false
//! for the others.
//!
//! # Reading the answer
//! Each `data.results[]` entry gives one email's outcome: `success: true` →
//! invited (Aptly returns no ids); `"Email already exists"` (or any message
//! that [`vendor_message`](super::vendor_message) reads as "already there")
//! → adopted; any other `success: false` →
//! failed with Aptly's message. An email of the batch missing from `results`
//! is `uncertain`. `total`/`successful`/`failed` are cross-checked against
//! `results` and a mismatch is logged as a warning. An answer without a
//! `data.results` list is of the wrong shape: the batch is uncertain, never
//! invited.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use super::http::{Auth, HttpClient, Reply};
use super::vendor_message::says_already_there;
use super::{
    BatchError, BoxFuture, Operation, OperationKind, Outcome, Provider, ProviderError, ProviderSettings, RemoteIds,
};
use crate::address::normalize_email;
use crate::attributes::Attributes;

/// Path of the bulk invitation endpoint.
pub const BULK_PATH: &str = "/auth/v1/user/bulk-invite";

/// Aptly client.
pub struct Aptly {
    settings: ProviderSettings,
    http: HttpClient,
}

impl Aptly {
    /// Builds the client; reads the bearer token from the env var the settings name.
    pub fn new(settings: ProviderSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ProviderError> {
        let secret = super::credential(&settings, env)?;
        let http = HttpClient::new(&settings, Auth::Bearer(secret))?;
        Ok(Self { settings, http })
    }

    /// Sets the base of the retry backoff; tests use it to keep retries fast.
    #[must_use]
    pub fn with_backoff(mut self, base: std::time::Duration) -> Self {
        self.http.backoff_base = base;
        self
    }
}

/// The `(firstName, lastName)` sent for a member, by the rule in the module
/// docs; `None` in a place that cannot be filled.
#[must_use]
pub fn split_name(attributes: &Attributes) -> (Option<String>, Option<String>) {
    let clean = |value: Option<&String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let words: Vec<&str> = attributes.name.as_deref().unwrap_or("").split_whitespace().collect();
    let (derived_first, derived_last) = match words.as_slice() {
        [] => (None, None),
        [only] => (Some((*only).to_owned()), None),
        [first @ .., last] => (Some(first.join(" ")), Some((*last).to_owned())),
    };
    let last = clean(attributes.last_name.as_ref()).or(derived_last);
    let first = clean(attributes.first_name.as_ref()).or(derived_first);
    (first, last)
}

/// Aptly-specific member checks: a first and a last name must be known or
/// derivable. (The tenant id is checked with the provider's settings.)
#[must_use]
pub fn validate_member(attributes: &Attributes) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let email = &attributes.email;
    let (first, last) = split_name(attributes);
    if last.is_none() {
        let why = match attributes.name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => format!("its name `{name}` is a single word"),
            _ => "it has no `name` or `last_name`".to_owned(),
        };
        problems.push((
            format!("aptly needs a last name for `{email}`, and no last name derivable: {why}"),
            "add `last_name:` (and `first_name:`) to the member, or write `name:` as `First Last`".to_owned(),
        ));
    }
    if first.is_none() {
        problems.push((
            format!("aptly needs a first name for `{email}`, and none is given or derivable from `name`"),
            "add `first_name:` to the member, or write `name:` as `First Last`".to_owned(),
        ));
    }
    problems
}

#[derive(Serialize)]
struct BulkBody<'a> {
    #[serde(rename = "tenantId")]
    tenant_id: &'a str,
    users: Vec<BulkUser<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BulkUser<'a> {
    first_name: String,
    last_name: String,
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mobile_phone: Option<&'a str>,
    role_ids: &'a [crate::attributes::Id],
    groups: Vec<Group<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manager_id: Option<&'a str>,
    position_ids: &'a [crate::attributes::Id],
    existing_user: Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Group<'a> {
    group_id: &'a str,
    is_primary_org: bool,
}

fn user(attributes: &Attributes) -> BulkUser<'_> {
    let (first, last) = split_name(attributes);
    BulkUser {
        first_name: first.unwrap_or_default(),
        last_name: last.unwrap_or_default(),
        email: &attributes.email,
        mobile_phone: attributes.phone.as_deref(),
        role_ids: &attributes.roles,
        groups: attributes
            .groups
            .iter()
            .map(|id| Group { group_id: id, is_primary_org: attributes.primary_group.as_ref() == Some(id) })
            .collect(),
        manager_id: attributes.manager_id.as_deref(),
        position_ids: &attributes.positions,
        existing_user: attributes.existing_user.clone().unwrap_or_default(),
    }
}

impl Aptly {
    async fn send_invites(&self, batch: &[Operation]) -> Result<Vec<Outcome>, BatchError> {
        let body = BulkBody {
            tenant_id: self.settings.tenant_id.as_deref().unwrap_or(""),
            users: batch.iter().map(|op| user(&op.attributes)).collect(),
        };
        let reply = self.http.post_json(BULK_PATH, &body).await?;
        self.read(batch, &reply)
    }

    fn read(&self, batch: &[Operation], reply: &Reply) -> Result<Vec<Outcome>, BatchError> {
        let label = self.http.label();
        let Some(results) = reply.json.pointer("/data/results").and_then(Value::as_array) else {
            return Err(BatchError {
                uncertain: true,
                fatal: false,
                message: format!(
                    "{label}: POST {}: HTTP {} with an answer of an unexpected shape: no `data.results` list",
                    self.http.endpoint(BULK_PATH),
                    reply.status
                ),
                hint: Some(
                    "the request reached Aptly but its answer cannot be read per email: the emails are marked uncertain"
                        .to_owned(),
                ),
            });
        };

        let mut answers: HashMap<String, Outcome> = HashMap::new();
        let (mut successful, mut failed) = (0_u64, 0_u64);
        for entry in results {
            let Some(email) = entry.get("email").and_then(Value::as_str) else {
                continue;
            };
            let message = entry.get("message").and_then(Value::as_str).map(str::trim).filter(|m| !m.is_empty());
            let outcome = match entry.get("success").and_then(Value::as_bool) {
                Some(true) => {
                    successful += 1;
                    Outcome::Invited(RemoteIds::default())
                }
                Some(false) => {
                    failed += 1;
                    match message {
                        Some(message) if says_already_there(message) => {
                            Outcome::Adopted { message: message.to_owned(), remote: RemoteIds::default() }
                        }
                        Some(message) => Outcome::Failed { reason: message.to_owned() },
                        None => Outcome::Failed { reason: "provider gave no reason".to_owned() },
                    }
                }
                None => Outcome::Uncertain {
                    reason: format!("Aptly's result for this email has no boolean `success`: {entry}"),
                },
            };
            let key = normalize_email(email);
            // A success wins over anything else for the same email.
            if !matches!(answers.get(&key), Some(Outcome::Invited(_))) {
                answers.insert(key, outcome);
            }
        }

        let counts = ["total", "successful", "failed"]
            .map(|k| reply.json.pointer(&format!("/data/{k}")).and_then(Value::as_u64));
        let expected = [Some(results.len() as u64), Some(successful), Some(failed)];
        if counts.iter().zip(&expected).any(|(given, counted)| given.is_some() && given != counted) {
            let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            log::warn!(
                "{label}: the answer's counts (total {}, successful {}, failed {}) do not match its {} results \
                 ({successful} successful, {failed} failed); the per-email results are used",
                show(counts[0]),
                show(counts[1]),
                show(counts[2]),
                results.len(),
            );
        }
        let sent: HashSet<String> = batch.iter().map(|op| normalize_email(&op.attributes.email)).collect();
        let extra = answers.keys().filter(|email| !sent.contains(*email)).count();
        if extra > 0 {
            log::warn!("{label}: the answer mentions {extra} email(s) that were not in the request; ignored");
        }

        Ok(batch
            .iter()
            .map(|op| {
                answers.get(&normalize_email(&op.attributes.email)).cloned().unwrap_or_else(|| Outcome::Uncertain {
                    reason: "Aptly's answer has no result for this email; it may or may not have been invited"
                        .to_owned(),
                })
            })
            .collect())
    }
}

impl Aptly {
    /// Sends a batch; [`Provider::send`] scrubs the answer.
    async fn send_batch(&self, batch: &[Operation]) -> Result<Vec<Outcome>, BatchError> {
        let invites: Vec<Operation> = batch
            .iter()
            .filter(|op| matches!(op.kind, OperationKind::Invite | OperationKind::Resend))
            .cloned()
            .collect();
        let mut answers = if invites.is_empty() { Vec::new() } else { self.send_invites(&invites).await? }.into_iter();
        Ok(batch
            .iter()
            .map(|op| match op.kind {
                OperationKind::Invite | OperationKind::Resend => answers
                    .next()
                    .unwrap_or_else(|| Outcome::Uncertain { reason: "no outcome was produced".to_owned() }),
                OperationKind::Update | OperationKind::Remove => Outcome::Failed {
                    reason: "the Aptly API cannot update or remove members; change it by hand in Aptly, then record \
                             it with `memberctl state`"
                        .to_owned(),
                },
            })
            .collect())
    }
}

impl Provider for Aptly {
    fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// Invitations are cut at `batch_size`; operations Aptly cannot carry
    /// out (updates, removals) go in batches of their own.
    fn batches(&self, operations: Vec<Operation>) -> Vec<Vec<Operation>> {
        let (invites, others): (Vec<Operation>, Vec<Operation>) =
            operations.into_iter().partition(|op| matches!(op.kind, OperationKind::Invite | OperationKind::Resend));
        let mut out = super::chunk(invites, self.settings.batch_size);
        out.extend(super::chunk(others, self.settings.batch_size));
        out
    }

    fn send<'a>(&'a self, batch: &'a [Operation]) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        Box::pin(async move { super::scrub_answer(self.send_batch(batch).await, &|text| self.http.scrub(text, &[])) })
    }
}

/// The `aptly` provider type.
pub struct AptlyType;

/// The registry's handle on the `aptly` type.
pub static TYPE: AptlyType = AptlyType;

impl super::ProviderType for AptlyType {
    fn name(&self) -> &'static str {
        "aptly"
    }

    fn own_settings(&self) -> &'static [&'static str] {
        &["token_env", "tenant_id"]
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("https://api.us.aptlydone.com")
    }

    fn credential(&self) -> Option<super::CredentialSpec> {
        Some(super::CredentialSpec { key: "token_env", default_env: "APTLY_TOKEN" })
    }

    fn capabilities(&self) -> super::Capabilities {
        // The seed API invites; it cannot list, update or remove members.
        super::Capabilities::INVITE_ONLY
    }

    fn uses(&self, catalog: super::CatalogKind) -> bool {
        catalog != super::CatalogKind::Plans
    }

    fn check_id(&self, id: &str) -> Option<&'static str> {
        (!super::is_uuid(id)).then_some("a UUID")
    }

    fn member_fields(&self) -> super::MemberFields {
        super::MemberFields {
            names: super::NameFields::Separate,
            phone: true,
            manager_id: true,
            existing_user: true,
            note: false,
            direct_add: false,
        }
    }

    fn finish_attributes(&self, attributes: &mut Attributes, _settings: &ProviderSettings) {
        // One rule, the client's: explicit parts win, else `name` splits at its last word.
        (attributes.first_name, attributes.last_name) = split_name(attributes);
    }

    fn check_settings(&self, settings: &ProviderSettings) -> Vec<super::SettingProblem> {
        match &settings.tenant_id {
            None => vec![super::SettingProblem {
                key: "",
                rule: "no-tenant-id",
                summary: "aptly provider has no `tenant_id`",
                message: format!("aptly provider `{}` has no `tenant_id`", settings.name),
                hint: "add `tenant_id: <UUID of the tenant>`".to_owned(),
            }],
            Some(id) if !super::is_uuid(id) => vec![super::SettingProblem {
                key: "tenant_id",
                rule: "tenant-id",
                summary: "tenant id is not a UUID",
                message: format!("`{id}` is not a UUID"),
                hint: "aptly tenant ids look like `42db2b59-b9c6-4705-a0d9-916e597cd4aa`".to_owned(),
            }],
            Some(_) => Vec::new(),
        }
    }

    fn validate_member(&self, attributes: &Attributes, _settings: &ProviderSettings) -> Vec<(String, String)> {
        validate_member(attributes)
    }

    fn console(&self) -> &'static str {
        "the Aptly admin console"
    }

    fn build(
        &self,
        settings: &ProviderSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(Aptly::new(settings.clone(), env)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: Option<&str>, first: Option<&str>, last: Option<&str>) -> Attributes {
        Attributes {
            email: "a@x.io".into(),
            name: name.map(str::to_owned),
            first_name: first.map(str::to_owned),
            last_name: last.map(str::to_owned),
            ..Attributes::default()
        }
    }

    #[test]
    fn names_split_on_the_last_word_and_explicit_parts_win() {
        let pair = |a: &Attributes| split_name(a);
        assert_eq!(
            pair(&named(Some("Mary Ann van Berg"), None, None)),
            (Some("Mary Ann van".into()), Some("Berg".into()))
        );
        assert_eq!(pair(&named(Some("Jane Doe"), Some("J."), None)), (Some("J.".into()), Some("Doe".into())));
        assert_eq!(
            pair(&named(Some("Cher"), None, Some("Sarkisian"))),
            (Some("Cher".into()), Some("Sarkisian".into()))
        );
        assert_eq!(pair(&named(Some("Cher"), None, None)), (Some("Cher".into()), None));
        assert_eq!(pair(&named(None, Some("Maryam"), Some("Smith"))), (Some("Maryam".into()), Some("Smith".into())));
    }

    #[test]
    fn single_word_name_is_a_validation_error() {
        let problems = validate_member(&named(Some("Cher"), None, None));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].0.contains("no last name derivable"), "{problems:?}");
        assert!(validate_member(&named(None, None, None)).len() == 2);
        assert!(validate_member(&named(Some("Jane Doe"), None, None)).is_empty());
    }
}
