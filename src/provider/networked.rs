//! The `networked` provider: a Networked community, through its two
//! invitation endpoints.
//!
//! - **Bulk** (`invite_endpoint: bulk`, the default):
//!   `POST /api/v1/admin/community/invites/emails`, JSON
//!   `{"users":[{"name","tagId","email","note"?}],"monetizationPlanIds":[...]}`.
//!   `monetizationPlanIds` applies to the whole request, so a batch holds
//!   only members with the same (sorted) plan set.
//! - **Single** (`invite_endpoint: single`, or any member with
//!   `method: direct` or a password): `POST /api/v1/admin/community/addExternalUsers`,
//!   form-urlencoded `email, name, password?, roleId, planId?, method`, one
//!   member per request; the requests of a batch are sent one after another.
//!   `method=1` invites, `method=2` adds directly with the password read from
//!   the member's `password_env`/`password_file` at send time (never logged,
//!   never in an outcome or error).
//!
//! Both send the `x-api-key` header.
//!
//! # Reading the answers
//! - `data.success[]` → invited, with `inviteId`, `timeStamp` and `user.userId`.
//! - `data.failure[]` → failed with the provider's reason; adopted when the
//!   reason says the member already exists (as read by
//!   [`vendor_message`](super::vendor_message)). The documented `error: {}`
//!   carries no reason: for an email never sent before it is a failure
//!   ("provider gave no reason"); for a repeat send (the operation's
//!   `repeat`, or an earlier attempt of this very request that may have
//!   arrived) it means the earlier send got there, and the member is adopted.
//! - An email of the batch that the answer does not mention is `uncertain`:
//!   the vendor documents that it skips rows without a usable email, so it
//!   was most likely not invited, but a request that reached the server
//!   cannot be proven to have done nothing. The `uncertain` policy (by
//!   default: send again, where a duplicate answer then adopts) converges
//!   either way.
//! - JSON of the wrong shape (no `data.success`/`data.failure` arrays,
//!   `error: true`) never yields "invited": the batch is uncertain.
//! - `addExternalUsers` answers `{error:false, message}` for `method=2`
//!   (added, no ids) and adds `data.inviteId`/`data.timeStamp` for
//!   `method=1`. Its answer to a duplicate is not documented; any refusal
//!   whose message says the user already exists adopts.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::http::{provider_message, Auth, Failure, HttpClient, Reply};
use super::vendor_message::says_already_there;
use super::{
    BatchError, BoxFuture, InviteEndpoint, Operation, OperationKind, Outcome, Provider, ProviderError,
    ProviderSettings, RemoteIds,
};
use crate::address::normalize_email;
use crate::attributes::{Attributes, Method};
use crate::provider::credentials::read_password;

/// Path of the bulk invitation endpoint.
pub const BULK_PATH: &str = "/api/v1/admin/community/invites/emails";
/// Path of the one-user endpoint.
pub const SINGLE_PATH: &str = "/api/v1/admin/community/addExternalUsers";

/// Networked client.
pub struct Networked {
    settings: ProviderSettings,
    http: HttpClient,
}

impl Networked {
    /// Builds the client; reads the API key from the env var the settings name.
    pub fn new(settings: ProviderSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ProviderError> {
        let secret = super::credential(&settings, env)?;
        let http = HttpClient::new(&settings, Auth::Header { name: "x-api-key", secret })?;
        Ok(Self { settings, http })
    }

    /// Sets the base of the retry backoff; tests use it to keep retries fast.
    #[must_use]
    pub fn with_backoff(mut self, base: std::time::Duration) -> Self {
        self.http.backoff_base = base;
        self
    }
}

/// The display name sent for a member: `name`, else `first_name last_name`.
#[must_use]
pub fn display_name(attributes: &Attributes) -> Option<String> {
    if let Some(name) = attributes.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        return Some(name.to_owned());
    }
    let parts: Vec<&str> = [attributes.first_name.as_deref(), attributes.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Whether a member goes through `addExternalUsers` rather than the bulk endpoint.
fn uses_single(settings: &ProviderSettings, attributes: &Attributes) -> bool {
    settings.invite_endpoint == InviteEndpoint::Single
        || attributes.method == Method::Direct
        || attributes.password_env.is_some()
        || attributes.password_file.is_some()
}

/// Networked-specific member checks: exactly one role, a name, at most one
/// plan on the one-user endpoint. (A direct add's password source is checked
/// by the config resolver, for every provider type.)
#[must_use]
pub fn validate_member(attributes: &Attributes, settings: &ProviderSettings) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let email = &attributes.email;
    match attributes.roles.len() {
        1 => {}
        0 => problems.push((
            format!("networked needs exactly one role per member (`tagId`/`roleId`); `{email}` has none"),
            "give the member one role (or set `defaults.roles`)".to_owned(),
        )),
        n => problems.push((
            format!("networked takes exactly one role per member (`tagId`/`roleId`); `{email}` has {n}"),
            "keep one role for this provider".to_owned(),
        )),
    }
    if display_name(attributes).is_none() {
        problems.push((
            format!("networked needs a name for every invitee; `{email}` has no `name`, `first_name` or `last_name`"),
            "add `name: First Last` to the member".to_owned(),
        ));
    }
    if uses_single(settings, attributes) && attributes.plans.len() > 1 {
        let why = if attributes.method == Method::Direct {
            "a direct add goes through `addExternalUsers`, which takes at most one `planId`"
        } else {
            "`invite_endpoint: single` (`addExternalUsers`) takes at most one `planId`"
        };
        problems.push((
            format!("`{email}` has {} plans, but {why}", attributes.plans.len()),
            "keep one plan for this member, or use the bulk endpoint (`invite_endpoint: bulk`, `method: invite`)"
                .to_owned(),
        ));
    }
    problems
}

/// How a batch is grouped: which endpoint, and for bulk, which plan set.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Group {
    Bulk(Vec<crate::attributes::Id>),
    Single,
    Unsupported,
}

fn plan_set(attributes: &Attributes) -> Vec<crate::attributes::Id> {
    let mut plans = attributes.plans.clone();
    plans.sort();
    plans.dedup();
    plans
}

fn is_invite(kind: OperationKind) -> bool {
    matches!(kind, OperationKind::Invite | OperationKind::Resend)
}

fn unsupported(op: &Operation) -> Outcome {
    let what = match op.kind {
        OperationKind::Update => "update members",
        _ => "remove members",
    };
    Outcome::Failed {
        reason: format!(
            "the Networked API cannot {what}; change it by hand in the community admin, then record it with `memberctl state`"
        ),
    }
}

#[derive(Serialize)]
struct BulkBody<'a> {
    users: Vec<BulkUser<'a>>,
    #[serde(rename = "monetizationPlanIds")]
    monetization_plan_ids: Vec<crate::attributes::Id>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BulkUser<'a> {
    name: String,
    tag_id: &'a str,
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

/// A refusal of one email: adopted when it says the member is already
/// there, or when it gives no reason in answer to a repeat send.
fn refusal(reason: Option<String>, repeat: bool) -> Outcome {
    match reason {
        Some(reason) if says_already_there(&reason) => {
            Outcome::Adopted { message: reason, remote: RemoteIds::default() }
        }
        Some(reason) => Outcome::Failed { reason },
        None if repeat => Outcome::Adopted {
            message: "Networked refused this email without a reason in answer to a repeat send: the earlier send, \
                      whose answer was lost, evidently arrived"
                .to_owned(),
            remote: RemoteIds::default(),
        },
        None => Outcome::Failed { reason: "provider gave no reason".to_owned() },
    }
}

/// The reason in a `data.failure[].error`: a string, or an object's
/// `message`; `{}`, `null` and `true` carry none.
fn failure_reason(error: Option<&Value>) -> Option<String> {
    match error? {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Object(map) if map.is_empty() => None,
        Value::Object(map) => provider_message(&Value::Object(map.clone()))
            .or_else(|| {
                ["msg", "reason", "code"].iter().find_map(|k| map.get(*k).and_then(Value::as_str).map(str::to_owned))
            })
            .or_else(|| Some(Value::Object(map.clone()).to_string())),
        Value::Null | Value::Bool(_) | Value::String(_) => None,
        other => Some(other.to_string()),
    }
}

fn wrong_shape(http: &HttpClient, path: &str, reply: &Reply, what: &str) -> BatchError {
    BatchError {
        uncertain: true,
        fatal: false,
        message: format!(
            "{}: POST {}: HTTP {} with an answer of an unexpected shape: {what}",
            http.label(),
            http.endpoint(path),
            reply.status
        ),
        hint: Some(
            "the request reached Networked but its answer cannot be read per email: the emails are marked uncertain"
                .to_owned(),
        ),
    }
}

fn string_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl Networked {
    async fn send_bulk(&self, batch: &[Operation]) -> Result<Vec<Outcome>, BatchError> {
        let mut plans = Vec::new();
        let mut users = Vec::with_capacity(batch.len());
        for op in batch {
            plans = plan_set(&op.attributes);
            users.push(BulkUser {
                name: display_name(&op.attributes).unwrap_or_default(),
                tag_id: op.attributes.roles.first().map_or("", |id| &**id),
                email: &op.attributes.email,
                note: op.attributes.note.as_deref(),
            });
        }
        let body = BulkBody { users, monetization_plan_ids: plans };
        let reply = self.http.post_json(BULK_PATH, &body).await?;
        self.read_bulk(batch, &reply)
    }

    fn read_bulk(&self, batch: &[Operation], reply: &Reply) -> Result<Vec<Outcome>, BatchError> {
        let json = &reply.json;
        if json.get("error").and_then(Value::as_bool) == Some(true) {
            let message = json.get("message").and_then(Value::as_str).unwrap_or("no message");
            return Err(wrong_shape(&self.http, BULK_PATH, reply, &format!("`error: true` ({message})")));
        }
        let success = json.pointer("/data/success").and_then(Value::as_array);
        let failure = json.pointer("/data/failure").and_then(Value::as_array);
        if success.is_none() && failure.is_none() {
            return Err(wrong_shape(&self.http, BULK_PATH, reply, "no `data.success` or `data.failure` list"));
        }

        let mut answers: HashMap<String, Answer> = HashMap::new();
        for entry in failure.into_iter().flatten() {
            let Some(email) = string_at(entry, "/email") else {
                continue;
            };
            answers.insert(normalize_email(email), Answer::Refused(failure_reason(entry.get("error"))));
        }
        // A success wins over a failure for the same email: the invitation exists.
        for entry in success.into_iter().flatten() {
            let Some(email) = string_at(entry, "/email").or_else(|| string_at(entry, "/data/email")) else {
                continue;
            };
            let ids = RemoteIds {
                invite_id: string_at(entry, "/data/inviteId").map(str::to_owned),
                user_id: string_at(entry, "/data/user/userId").map(str::to_owned),
                timestamp_ms: entry.pointer("/data/timeStamp").and_then(Value::as_i64),
            };
            answers.insert(normalize_email(email), Answer::Invited(ids));
        }

        let sent: std::collections::HashSet<String> =
            batch.iter().map(|op| normalize_email(&op.attributes.email)).collect();
        let extra: Vec<&String> = answers.keys().filter(|email| !sent.contains(*email)).collect();
        if !extra.is_empty() {
            log::warn!(
                "{}: the answer mentions {} email(s) that were not in the request; ignored",
                self.http.label(),
                extra.len()
            );
        }
        Ok(batch
            .iter()
            .map(|op| match answers.get(&normalize_email(&op.attributes.email)) {
                Some(Answer::Invited(ids)) => Outcome::Invited(ids.clone()),
                Some(Answer::Refused(reason)) => refusal(reason.clone(), op.repeat || reply.maybe_delivered_before),
                None => Outcome::Uncertain {
                    reason: "Networked's answer does not mention this email (the server skips rows it cannot use); \
                             it may or may not have been invited"
                        .to_owned(),
                },
            })
            .collect())
    }

    /// Sends the batch one member per request. A fatal error before anything
    /// was sent fails the batch (so the engine stops using this provider);
    /// after that, the members already answered keep their outcomes and the
    /// rest fail as "not sent".
    async fn send_singles(&self, batch: &[Operation]) -> Result<Vec<Outcome>, BatchError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for op in batch {
            match self.send_single(op).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) if error.fatal => {
                    if outcomes.is_empty() {
                        return Err(error);
                    }
                    outcomes.push(if error.uncertain {
                        Outcome::Uncertain { reason: error.message.clone() }
                    } else {
                        Outcome::Failed { reason: error.message.clone() }
                    });
                    while outcomes.len() < batch.len() {
                        outcomes.push(Outcome::Failed { reason: format!("not sent: {}", error.message) });
                    }
                    return Ok(outcomes);
                }
                Err(error) if error.uncertain => outcomes.push(Outcome::Uncertain { reason: error.message }),
                Err(error) => outcomes.push(Outcome::Failed { reason: error.message }),
            }
        }
        Ok(outcomes)
    }

    async fn send_single(&self, op: &Operation) -> Result<Outcome, BatchError> {
        let attributes = &op.attributes;
        let password = match read_password(attributes) {
            Ok(password) => password,
            Err(reason) => return Ok(Outcome::Failed { reason }),
        };
        let direct = attributes.method == Method::Direct;
        let name = display_name(attributes).unwrap_or_default();
        let mut fields: Vec<(&str, &str)> = vec![("email", &attributes.email), ("name", &name)];
        if let Some(password) = &password {
            fields.push(("password", password.expose()));
        }
        fields.push(("roleId", attributes.roles.first().map_or("", |id| &**id)));
        if let Some(plan) = attributes.plans.first() {
            fields.push(("planId", plan));
        }
        fields.push(("method", if direct { "2" } else { "1" }));
        let secrets: Vec<&str> = password.iter().map(super::Secret::expose).collect();
        // A provider's reason is quoted in outcomes: never with the password in it.
        let scrubbed = |reason: Option<String>| reason.map(|r| self.http.scrub(&r, &secrets));

        let reply = match self.http.post_form(SINGLE_PATH, &fields).await {
            Ok(reply) => reply,
            Err(Failure { error, status: Some(400 | 409 | 422), json: Some(json) }) if !error.fatal => {
                let repeat = op.repeat || error.uncertain;
                return Ok(refusal(scrubbed(provider_message(&json)), repeat));
            }
            Err(failure) => return Err(failure.error),
        };
        let json = &reply.json;
        let repeat = op.repeat || reply.maybe_delivered_before;
        match json.get("error").and_then(Value::as_bool) {
            Some(false) => {}
            Some(true) => {
                return Ok(refusal(scrubbed(json.get("message").and_then(Value::as_str).map(str::to_owned)), repeat))
            }
            None => {
                return Err(wrong_shape(&self.http, SINGLE_PATH, &reply, "no boolean `error` field"));
            }
        }
        let ids = RemoteIds {
            invite_id: string_at(json, "/data/inviteId").map(str::to_owned),
            user_id: string_at(json, "/data/userId").map(str::to_owned),
            timestamp_ms: json.pointer("/data/timeStamp").and_then(Value::as_i64),
        };
        Ok(if direct { Outcome::Added(ids) } else { Outcome::Invited(ids) })
    }
}

enum Answer {
    Invited(RemoteIds),
    Refused(Option<String>),
}

impl Networked {
    /// Sends a batch; [`Provider::send`] scrubs the answer.
    async fn send_batch(&self, batch: &[Operation]) -> Result<Vec<Outcome>, BatchError> {
        // The engine sends what `batches` built, but any batch is answered
        // correctly: each operation goes where it belongs.
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut bulk: HashMap<Vec<crate::attributes::Id>, Vec<usize>> = HashMap::new();
        let mut bulk_order = Vec::new();
        let mut single = Vec::new();
        for (index, op) in batch.iter().enumerate() {
            if !is_invite(op.kind) {
                outcomes[index] = Some(unsupported(op));
            } else if uses_single(&self.settings, &op.attributes) {
                single.push(index);
            } else {
                let plans = plan_set(&op.attributes);
                if !bulk.contains_key(&plans) {
                    bulk_order.push(plans.clone());
                }
                bulk.entry(plans).or_default().push(index);
            }
        }
        let mut answered = false;
        let mut first_error: Option<BatchError> = None;
        let mut record = |indices: Vec<usize>, result: Result<Vec<Outcome>, BatchError>| match result {
            Ok(answers) => {
                answered = true;
                for (index, outcome) in indices.into_iter().zip(answers) {
                    outcomes[index] = Some(outcome);
                }
            }
            Err(error) => {
                for index in indices {
                    outcomes[index] = Some(if error.uncertain {
                        Outcome::Uncertain { reason: error.message.clone() }
                    } else {
                        Outcome::Failed { reason: error.message.clone() }
                    });
                }
                first_error.get_or_insert(error);
            }
        };
        for plans in bulk_order {
            let indices = bulk.remove(&plans).unwrap_or_default();
            let ops: Vec<Operation> = indices.iter().map(|&i| batch[i].clone()).collect();
            record(indices, self.send_bulk(&ops).await);
        }
        if !single.is_empty() {
            let ops: Vec<Operation> = single.iter().map(|&i| batch[i].clone()).collect();
            record(single, self.send_singles(&ops).await);
        }
        // A batch that got no answer at all is one error, so the engine
        // sees `fatal`; a mixed one keeps what was answered.
        if let Some(error) = first_error.filter(|_| !answered) {
            return Err(error);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Uncertain { reason: "no outcome was produced".to_owned() }))
            .collect())
    }
}

impl Provider for Networked {
    fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// Bulk members are grouped by sorted plan set, one-user-endpoint members
    /// together, unsupported operations apart; groups keep the order in which
    /// they first appear and are cut at `batch_size`.
    fn batches(&self, operations: Vec<Operation>) -> Vec<Vec<Operation>> {
        let mut order: Vec<Group> = Vec::new();
        let mut groups: HashMap<Group, Vec<Operation>> = HashMap::new();
        for op in operations {
            let group = if !is_invite(op.kind) {
                Group::Unsupported
            } else if uses_single(&self.settings, &op.attributes) {
                Group::Single
            } else {
                Group::Bulk(plan_set(&op.attributes))
            };
            if !groups.contains_key(&group) {
                order.push(group.clone());
            }
            groups.entry(group).or_default().push(op);
        }
        // A request to the one-user endpoint is a batch of its own: its
        // answer is recorded as soon as it comes, and an interrupted apply
        // sends no further one (batching them would hold confirmed direct
        // adds, which mail the person, in memory until the last returned).
        order
            .into_iter()
            .flat_map(|group| {
                let size = if group == Group::Single { 1 } else { self.settings.batch_size };
                super::chunk(groups.remove(&group).unwrap_or_default(), size)
            })
            .collect()
    }

    fn send<'a>(&'a self, batch: &'a [Operation]) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        Box::pin(async move { super::scrub_answer(self.send_batch(batch).await, &|text| self.http.scrub(text, &[])) })
    }
}

/// The `networked` provider type.
pub struct NetworkedType;

/// The registry's handle on the `networked` type.
pub static TYPE: NetworkedType = NetworkedType;

impl super::ProviderType for NetworkedType {
    fn name(&self) -> &'static str {
        "networked"
    }

    fn own_settings(&self) -> &'static [&'static str] {
        &["api_key_env", "invite_endpoint"]
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("https://backend.networked.co")
    }

    fn credential(&self) -> Option<super::CredentialSpec> {
        Some(super::CredentialSpec { key: "api_key_env", default_env: "NETWORKED_API_KEY" })
    }

    fn capabilities(&self) -> super::Capabilities {
        // The seed API invites; it cannot list, update or remove members.
        super::Capabilities::INVITE_ONLY
    }

    fn uses(&self, catalog: super::CatalogKind) -> bool {
        matches!(catalog, super::CatalogKind::Roles | super::CatalogKind::Plans)
    }

    fn check_id(&self, id: &str) -> Option<&'static str> {
        (!super::is_object_id(id)).then_some("a 24-character hex object id")
    }

    fn member_fields(&self) -> super::MemberFields {
        super::MemberFields {
            names: super::NameFields::Joined,
            phone: false,
            manager_id: false,
            existing_user: false,
            note: true,
            direct_add: true,
        }
    }

    fn default_batch_size(&self, settings: &ProviderSettings) -> usize {
        match settings.invite_endpoint {
            InviteEndpoint::Bulk => super::defaults::BATCH_SIZE,
            // `addExternalUsers` takes one user per call: each member's
            // outcome is then journaled on its own.
            InviteEndpoint::Single => 1,
        }
    }

    fn validate_member(&self, attributes: &Attributes, settings: &ProviderSettings) -> Vec<(String, String)> {
        validate_member(attributes, settings)
    }

    fn console(&self) -> &'static str {
        "the Networked admin console"
    }

    fn build(
        &self,
        settings: &ProviderSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(Networked::new(settings.clone(), env)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons() {
        assert_eq!(failure_reason(Some(&serde_json::json!({}))), None);
        assert_eq!(failure_reason(Some(&serde_json::json!("nope"))), Some("nope".to_owned()));
        assert_eq!(
            failure_reason(Some(&serde_json::json!({"message": "User already invited"}))),
            Some("User already invited".to_owned())
        );
        assert!(matches!(refusal(None, false), Outcome::Failed { reason } if reason == "provider gave no reason"));
        assert!(matches!(refusal(None, true), Outcome::Adopted { .. }));
        assert!(matches!(refusal(Some("Role does not exists".into()), false), Outcome::Failed { .. }));
        assert!(matches!(refusal(Some("User already exists".into()), false), Outcome::Adopted { .. }));
    }
}
