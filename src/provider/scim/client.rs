//! The `scim` provider's client: moves the protocol layer's bodies over the
//! shared HTTP layer (retries, rate limit, 429 budget, bearer token) and
//! turns the answers into one outcome per user.
//!
//! # One run
//! `GET /ServiceProviderConfig` is read once (with the token; some services
//! want it there too). With `/Bulk` supported, new users and removals go in
//! `/Bulk` requests, a new user's groups joined in the same request through
//! `bulkId:` references; updates and re-adds read the user first (so an
//! `If-Match` only ever carries a version read in this run) and are single
//! requests. Without bulk, every operation is single. At most `concurrency`
//! requests are in flight, and at most one per group.
//!
//! # Groups
//! A batch's joins and leaves of one group share one `PATCH /Groups/{id}`
//! (chunked at `batch_size` members). A user whose own change succeeded
//! while a group PATCH failed is [`Outcome::Partial`]: the record takes the
//! memberships in force and the next plan proposes the rest again.
//! Current memberships come from one listing of the Groups per run, falling
//! back to the user's own `groups`; a service that shows neither gets joins
//! only (a leave cannot be known to be needed).
//!
//! # A user that is gone
//! A `404` to the read before an update is [`Outcome::Gone`]: the record is
//! dropped so the next plan creates the user again (it is drift, not a
//! refusal to retry forever). A `404` to a removal is a success.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};

use super::bulk::{self, BulkItem, BulkOperation, BulkResponse, BulkResult};
use super::discovery::ServiceProviderConfig;
use super::mapping::{
    managed_view, memberships, new_user, observed_attributes, same_user_name, user_email, Managed, OnRemove,
    ScimSettings,
};
use super::outcome::{classify, ignored_attributes, Answer, Request};
use super::paging::{Pager, DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE};
use super::patch::{deactivate, group_patches, membership_changes, reactivate, rename, user_patch, PatchRequest};
use super::resource::{Group, ListResponse, User};
use super::{filter, group_path, user_path, wire, BULK_PATH, GROUPS_PATH, SERVICE_PROVIDER_CONFIG_PATH, USERS_PATH};
use crate::address::normalize_email;
use crate::attributes::Attributes;
use crate::provider::http::{Auth, HttpClient};
use crate::provider::{
    BatchError, BoxFuture, Listing, Observed, Operation, OperationKind, Outcome, Provider, ProviderError,
    ProviderSettings, RemoteIds, Uncarried,
};

/// What each provider's `/ServiceProviderConfig` said this run, by provider
/// name and base URL.
fn discovered() -> &'static Mutex<HashMap<String, ServiceProviderConfig>> {
    static DISCOVERED: std::sync::OnceLock<Mutex<HashMap<String, ServiceProviderConfig>>> = std::sync::OnceLock::new();
    DISCOVERED.get_or_init(Mutex::default)
}

/// Memberships by user id, from the Groups; `None` when the service lists
/// its groups without members.
type Memberships = Option<BTreeMap<String, Vec<String>>>;

/// The SCIM client of one provider, for one run.
pub struct Scim {
    settings: ProviderSettings,
    mapping: ScimSettings,
    http: HttpClient,
    config: OnceCell<ServiceProviderConfig>,
    memberships: OnceCell<Memberships>,
    in_flight: Semaphore,
    group_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    warned: Mutex<BTreeSet<Managed>>,
    /// Whether a user created through `/Bulk` was read back this run: bulk
    /// answers rarely carry the resource, and one read shows what the
    /// service keeps of what it is sent.
    sampled: AtomicBool,
    /// An error every later request would repeat (credentials refused, host
    /// unreachable, 429 budget spent), kept so a batch that achieved nothing
    /// else reports it whole and the engine stops sending.
    fatal: Mutex<Option<BatchError>>,
}

/// What one user's own requests achieved, before its group PATCH requests.
struct Step {
    /// The outcome if every group PATCH succeeds.
    outcome: Outcome,
    /// The user's id, when its groups are to change.
    user_id: Option<String>,
    /// Groups to join.
    joins: Vec<String>,
    /// Groups to leave.
    leaves: Vec<String>,
}

impl Step {
    fn only(outcome: Outcome) -> Self {
        Self { outcome, user_id: None, joins: Vec::new(), leaves: Vec::new() }
    }
}

/// An error that stops one user's change, not the batch.
fn lost(error: &BatchError) -> Outcome {
    if error.uncertain {
        Outcome::Uncertain { reason: error.message.clone() }
    } else {
        Outcome::Failed { reason: error.message.clone() }
    }
}

fn remote(id: &str) -> RemoteIds {
    RemoteIds { user_id: Some(id.to_owned()), ..RemoteIds::default() }
}

impl Scim {
    /// Builds the client; reads the bearer token from the env var the settings name.
    pub fn new(settings: ProviderSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ProviderError> {
        let secret = crate::provider::credential(&settings, env)?;
        let http = HttpClient::new(&settings, Auth::Bearer(secret))?;
        let mapping = settings.scim.clone().unwrap_or_default();
        Ok(Self {
            in_flight: Semaphore::new(settings.concurrency.max(1)),
            settings,
            mapping,
            http,
            config: OnceCell::new(),
            memberships: OnceCell::new(),
            group_locks: Mutex::new(HashMap::new()),
            warned: Mutex::new(BTreeSet::new()),
            sampled: AtomicBool::new(false),
            fatal: Mutex::new(None),
        })
    }

    /// One request. 2xx answers and refusals the protocol gives a meaning
    /// (404, 409, 412, other 4xx) come back as `(status, body)`; bad
    /// credentials, throttling past the budget, server errors after the
    /// retries and lost connections are errors.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<(u16, Option<Value>), BatchError> {
        let _permit = self.in_flight.acquire().await.expect("the request limit is never closed");
        match self.http.request_json(method, path, body, if_match).await {
            Ok(reply) => Ok((reply.status, Some(reply.json).filter(|j| !j.is_null()))),
            Err(failure) => {
                if let Some(status @ (400 | 402 | 404..=428 | 431..=499)) = failure.status {
                    return Ok((status, failure.json));
                }
                if failure.error.fatal {
                    let mut fatal = self.fatal.lock().expect("the fatal error is never poisoned");
                    fatal.get_or_insert_with(|| failure.error.clone());
                }
                Err(failure.error)
            }
        }
    }

    /// The service's capabilities, read once per run: once per process,
    /// as `apply --refresh` lists with one client and sends with another.
    async fn discovery(&self) -> Result<&ServiceProviderConfig, BatchError> {
        self.config
            .get_or_try_init(|| async {
                // One provider's service: the same URL with another token
                // may be another tenant, with other capabilities.
                let key = format!("{}\n{}", self.settings.name, self.settings.base_url.as_deref().unwrap_or_default());
                if let Some(known) = discovered().lock().expect("the discovery cache is never poisoned").get(&key) {
                    return Ok(known.clone());
                }
                let found = match self.call(Method::GET, SERVICE_PROVIDER_CONFIG_PATH, None, None).await? {
                    (200..=299, Some(body)) => ServiceProviderConfig::parse(&body),
                    (status, _) => {
                        log::info!(
                            "{}: GET {SERVICE_PROVIDER_CONFIG_PATH} answered HTTP {status}; assuming PATCH and \
                             filters, no bulk and no ETags",
                            self.http.label()
                        );
                        ServiceProviderConfig::assumed()
                    }
                };
                discovered().lock().expect("the discovery cache is never poisoned").insert(key, found.clone());
                Ok(found)
            })
            .await
    }

    /// Warns once per run about each attribute the service dropped.
    fn report_ignored(&self, sent: &Attributes, returned: &User) {
        for group in ignored_attributes(sent, returned, &self.mapping.manage) {
            let first = self.warned.lock().expect("the warning set is never poisoned").insert(group);
            if first {
                log::warn!(
                    "{}: the service ignores `{}` (sent, and not in the resource it answered with); it is recorded \
                     as sent and not planned again — take it out of `manage` to stop sending it",
                    self.http.label(),
                    group.scim_attribute()
                );
            }
        }
    }

    /// Reads back one user created without the resource in the answer, once
    /// per run, to see which attributes the service ignores.
    async fn sample(&self, op: &Operation, id: &str) {
        let view = managed_view(&op.attributes, &self.mapping.manage);
        let carries = view.name.is_some()
            || view.phone.is_some()
            || !view.roles.is_empty()
            || !view.plans.is_empty()
            || view.manager_id.is_some();
        // A user sent with nothing to drop shows nothing.
        if !carries || self.sampled.swap(true, Ordering::Relaxed) {
            return;
        }
        match self.read_user(id).await {
            Ok(Some(user)) => self.report_ignored(&op.attributes, &user),
            Ok(None) => {}
            Err(error) => log::debug!("{}: reading back a new user: {}", self.http.label(), error.message),
        }
    }

    /// `GET /Users/{id}`: `None` when the user is gone.
    async fn read_user(&self, id: &str) -> Result<Option<User>, BatchError> {
        match self.call(Method::GET, &user_path(id), None, None).await? {
            (200..=299, Some(body)) => {
                wire::from_value(body).map(Some).map_err(|err| self.unreadable(&user_path(id), &err))
            }
            (404, _) => Ok(None),
            (status, body) => Err(self.refusal("GET", &user_path(id), status, body.as_ref())),
        }
    }

    /// An answer that cannot be read is not "no such user": taken as one, it
    /// would drop a record (and invite the user again) or forget a removal
    /// the service never made.
    fn unreadable(&self, path: &str, err: &dyn std::fmt::Display) -> BatchError {
        BatchError {
            uncertain: false,
            fatal: false,
            message: format!(
                "{}: GET {}: the answer cannot be read: {err}",
                self.http.label(),
                self.http.endpoint(path)
            ),
            hint: None,
        }
    }

    fn refusal(&self, method: &str, path: &str, status: u16, body: Option<&Value>) -> BatchError {
        let reason = match classify(Request::PatchUser, Some(status), body) {
            Answer::Failed { reason, .. } | Answer::Uncertain { reason } => reason,
            _ => format!("HTTP {status}"),
        };
        BatchError {
            uncertain: false,
            fatal: false,
            message: format!("{}: {method} {}: {reason}", self.http.label(), self.http.endpoint(path)),
            hint: None,
        }
    }

    /// The user `match_on` finds for `email`.
    async fn lookup(&self, email: &str) -> Result<Option<User>, BatchError> {
        let query = format!("{USERS_PATH}?filter={}", wire::encode_query_value(&filter::lookup(email, &self.mapping)));
        match self.call(Method::GET, &query, None, None).await? {
            (200..=299, Some(body)) => {
                let list: ListResponse<User> =
                    wire::from_value(body).map_err(|err| self.unreadable(USERS_PATH, &err))?;
                // Some services ignore a filter they do not support.
                Ok(list.resources.into_iter().find(|u| super::mapping::is_match(u, email, &self.mapping)))
            }
            (status, body) => Err(self.refusal("GET", USERS_PATH, status, body.as_ref())),
        }
    }

    /// Pages through a listing endpoint, advancing by what was returned.
    async fn list_all<T: DeserializeOwned>(&self, path: &str, id_of: fn(&T) -> &str) -> Result<Vec<T>, BatchError> {
        let page_size = self.discovery().await?.page_size(DEFAULT_PAGE_SIZE);
        let mut pager = Pager::new(page_size, DEFAULT_MAX_PAGES);
        let mut out = Vec::new();
        while let Some(page) = pager.next_request() {
            let url = format!("{path}?{}", page.query(None));
            let (status, body) = self.call(Method::GET, &url, None, None).await?;
            if !(200..=299).contains(&status) {
                return Err(self.refusal("GET", path, status, body.as_ref()));
            }
            let list: ListResponse<T> = wire::from_value(body.unwrap_or(Value::Null)).map_err(|err| BatchError {
                uncertain: false,
                fatal: true,
                message: format!("{}: GET {}: the listing cannot be read: {err}", self.http.label(), url),
                hint: None,
            })?;
            let ids: Vec<&str> = list.resources.iter().map(id_of).collect();
            pager.record(list.total_results, &ids).map_err(|err| BatchError {
                uncertain: false,
                fatal: true,
                message: format!("{}: GET {path}: {err}", self.http.label()),
                hint: None,
            })?;
            out.extend(list.resources);
        }
        Ok(out)
    }

    /// Memberships by user id from one listing of the Groups per run.
    async fn memberships(&self) -> Result<&Memberships, BatchError> {
        self.memberships
            .get_or_try_init(|| async {
                let groups: Vec<Group> = self.list_all(GROUPS_PATH, |g: &Group| g.id.as_deref().unwrap_or("")).await?;
                Ok(memberships(&groups))
            })
            .await
    }

    /// The groups `user` is in, when the service shows them.
    async fn groups_of(&self, user: &User) -> Result<Option<Vec<String>>, BatchError> {
        let id = user.id.as_deref().unwrap_or("");
        if let Some(map) = self.memberships().await? {
            return Ok(Some(map.get(id).cloned().unwrap_or_default()));
        }
        let own: Vec<String> = user.groups.iter().map(|g| g.value.clone()).filter(|v| !v.is_empty()).collect();
        Ok((!own.is_empty()).then_some(own))
    }

    /// The group moves that take a user from `current` (unknown: `None`) to
    /// the desired groups.
    fn moves(&self, current: Option<&[String]>, desired: &Attributes) -> (Vec<String>, Vec<String>) {
        if !self.mapping.manage.contains(Managed::Groups) {
            return (Vec::new(), Vec::new());
        }
        match current {
            Some(current) => membership_changes(current, &desired.groups),
            None => (desired.groups.iter().map(ToString::to_string).collect(), Vec::new()),
        }
    }

    /// Patches `user` to `desired` (and reactivates it when `reactivating`,
    /// renames it to `desired`'s email when `renaming`), with `If-Match` on
    /// the version just read when the service has entity tags; a 412
    /// re-reads once and retries. `Ok(None)` when the user is gone.
    async fn converge(
        &self,
        mut user: User,
        desired: &Attributes,
        reactivating: bool,
        renaming: bool,
    ) -> Result<Option<User>, Outcome> {
        let id = user.id.clone().unwrap_or_default();
        let etag = self.discovery().await.map_err(|e| lost(&e))?.etag;
        let desired = managed_view(desired, &self.mapping.manage);
        for attempt in 0..2 {
            let observed = observed_attributes(&user, &self.mapping.manage);
            let mut patch =
                if reactivating && user.active != Some(true) { reactivate() } else { PatchRequest::default() };
            if renaming {
                patch.extend(self.rename_patch(&user, &desired.email));
            }
            patch.extend(user_patch(&observed, &desired, &self.mapping.manage));
            if patch.is_empty() {
                return Ok(Some(user));
            }
            let version = if etag { user.version().map(str::to_owned) } else { None };
            let body = serde_json::to_value(&patch).expect("a patch serializes");
            let (status, answer) = self
                .call(Method::PATCH, &user_path(&id), Some(&body), version.as_deref())
                .await
                .map_err(|e| lost(&e))?;
            match classify(Request::PatchUser, Some(status), answer.as_ref()) {
                Answer::Done { body } => {
                    if let Some(returned) = body.and_then(|b| wire::from_value::<User>(b).ok()) {
                        self.report_ignored(&desired, &returned);
                    }
                    return Ok(Some(user));
                }
                Answer::PreconditionFailed if attempt == 0 => match self.read_user(&id).await {
                    Ok(Some(fresh)) => user = fresh,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(lost(&e)),
                },
                Answer::Gone => return Ok(None),
                Answer::PreconditionFailed => {
                    return Err(Outcome::Failed {
                        reason: "HTTP 412 twice: the user keeps changing at the service; try again".to_owned(),
                    })
                }
                Answer::Failed { reason, .. } => return Err(Outcome::Failed { reason }),
                Answer::Uncertain { reason } => return Err(Outcome::Uncertain { reason }),
                Answer::Created { .. } | Answer::Exists { .. } => return Ok(Some(user)),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// The PATCH that renames `user` to `email` (`userName` by the template,
    /// the old address swapped for the new one); empty when it already
    /// carries both, as after a rename whose answer was lost.
    fn rename_patch(&self, user: &User, email: &str) -> PatchRequest {
        let user_name = self.mapping.user_name.render(email);
        let current = user_email(user);
        if same_user_name(&user.user_name, &user_name) && normalize_email(&current) == normalize_email(email) {
            return PatchRequest::default();
        }
        rename(&current, email, &user_name)
    }

    /// Adopts the user `match_on` finds after a 409, and patches the managed
    /// differences in the same run.
    async fn adopt(&self, op: &Operation, detail: Option<String>) -> Step {
        let user = match self.lookup(&op.attributes.email).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return Step::only(Outcome::Failed {
                    reason: format!(
                        "the service says the user exists ({}), but no user matches it by `match_on: {:?}`",
                        detail.as_deref().unwrap_or("HTTP 409"),
                        self.mapping.match_on
                    ),
                })
            }
            Err(e) => return Step::only(lost(&e)),
        };
        let id = user.id.clone().unwrap_or_default();
        let current = match self.groups_of(&user).await {
            Ok(current) => current,
            Err(e) => return Step::only(lost(&e)),
        };
        // `active` is true for every configured member: a user that carries
        // none gets it. One the service holds inactive may be suspended
        // there: reported, and left so (`--reactivate` is for refresh).
        let (unset, inactive) = (user.active.is_none(), user.active == Some(false));
        match self.converge(user, &op.attributes, unset, false).await {
            Ok(Some(_)) => {
                let (joins, leaves) = self.moves(current.as_deref(), &op.attributes);
                let mut message = format!(
                    "already at the service ({}); adopted and brought up to date",
                    detail.as_deref().unwrap_or("HTTP 409")
                );
                if inactive {
                    message.push_str(
                        "; it is inactive there (perhaps suspended): left so; `memberctl apply --refresh --reactivate` reactivates it",
                    );
                }
                Step { outcome: Outcome::Adopted { message, remote: remote(&id) }, user_id: Some(id), joins, leaves }
            }
            Ok(None) => Step::only(Outcome::Uncertain {
                reason: "the user the service said exists was gone when patched".to_owned(),
            }),
            Err(outcome) => Step::only(outcome),
        }
    }

    /// `POST /Users` for a new member.
    async fn create(&self, op: &Operation) -> Step {
        let user = new_user(&op.attributes, &self.mapping);
        let body = serde_json::to_value(&user).expect("a user serializes");
        let answer = match self.call(Method::POST, USERS_PATH, Some(&body), None).await {
            Ok((status, body)) => classify(Request::CreateUser, Some(status), body.as_ref()),
            Err(e) => return Step::only(lost(&e)),
        };
        self.created(op, answer).await
    }

    /// What the answer to a create means for `op`.
    async fn created(&self, op: &Operation, answer: Answer) -> Step {
        match answer {
            Answer::Created { id, resource, .. } => {
                if let Some(resource) = &resource {
                    self.report_ignored(&op.attributes, resource);
                }
                let id = match id {
                    Some(id) => id,
                    None => match self.lookup(&op.attributes.email).await {
                        Ok(Some(User { id: Some(id), .. })) => id,
                        Ok(_) => {
                            return Step::only(Outcome::Uncertain {
                                reason: "created, but the service gave no id and the user cannot be found".to_owned(),
                            })
                        }
                        Err(e) => return Step::only(lost(&e)),
                    },
                };
                let (joins, leaves) = self.moves(Some(&[]), &op.attributes);
                Step { outcome: Outcome::Added(remote(&id)), user_id: Some(id), joins, leaves }
            }
            Answer::Exists { detail } => self.adopt(op, detail).await,
            Answer::Failed { reason, .. } => Step::only(Outcome::Failed { reason }),
            Answer::Uncertain { reason } => Step::only(Outcome::Uncertain { reason }),
            Answer::Done { .. } | Answer::Gone | Answer::PreconditionFailed => {
                Step::only(Outcome::Uncertain { reason: "the service's answer to the create is unclear".to_owned() })
            }
        }
    }

    /// An update, or a re-add of a deactivated user (`reactivating`).
    async fn update(&self, op: &Operation, id: &str, reactivating: bool) -> Step {
        let user = match self.read_user(id).await {
            Ok(Some(user)) => user,
            Ok(None) if reactivating => return self.create(op).await,
            Ok(None) => {
                return Step::only(Outcome::Gone {
                    reason: format!("user `{id}` no longer exists (HTTP 404); the next plan creates it again"),
                })
            }
            Err(e) => return Step::only(lost(&e)),
        };
        let current = match self.groups_of(&user).await {
            Ok(current) => current,
            Err(e) => return Step::only(lost(&e)),
        };
        match self.converge(user, &op.attributes, reactivating, op.renamed_from.is_some()).await {
            Ok(Some(_)) => {
                let (joins, leaves) = self.moves(current.as_deref(), &op.attributes);
                let outcome = if reactivating { Outcome::Added(remote(id)) } else { Outcome::Updated };
                Step { outcome, user_id: Some(id.to_owned()), joins, leaves }
            }
            Ok(None) => Step::only(Outcome::Gone {
                reason: format!("user `{id}` no longer exists (HTTP 404); the next plan creates it again"),
            }),
            Err(outcome) => Step::only(outcome),
        }
    }

    /// A removal: deactivation or deletion, by `on_remove`.
    async fn remove(&self, op: &Operation) -> Step {
        let id = match self.user_id(op).await {
            Ok(Some(id)) => id,
            Ok(None) => return Step::only(Outcome::Removed),
            Err(e) => return Step::only(lost(&e)),
        };
        let (method, request, body) = match self.mapping.on_remove {
            OnRemove::Deactivate => (
                Method::PATCH,
                Request::PatchUser,
                Some(serde_json::to_value(deactivate()).expect("a patch serializes")),
            ),
            OnRemove::Delete => (Method::DELETE, Request::DeleteUser, None),
        };
        let answer = match self.call(method, &user_path(&id), body.as_ref(), None).await {
            Ok((status, body)) => classify(request, Some(status), body.as_ref()),
            Err(e) => return Step::only(lost(&e)),
        };
        Step::only(self.removed(&id, answer))
    }

    fn removed(&self, id: &str, answer: Answer) -> Outcome {
        match answer {
            Answer::Gone => Outcome::Removed,
            Answer::Done { .. } | Answer::Created { .. } => match self.mapping.on_remove {
                OnRemove::Deactivate => Outcome::Deactivated(remote(id)),
                OnRemove::Delete => Outcome::Removed,
            },
            Answer::Failed { reason, .. } => Outcome::Failed { reason },
            Answer::Uncertain { reason } => Outcome::Uncertain { reason },
            Answer::Exists { .. } | Answer::PreconditionFailed => {
                Outcome::Failed { reason: "the service refused the removal".to_owned() }
            }
        }
    }

    /// The recorded id, else the one `match_on` finds.
    async fn user_id(&self, op: &Operation) -> Result<Option<String>, BatchError> {
        if let Some(id) = &op.remote.user_id {
            return Ok(Some(id.clone()));
        }
        Ok(self.lookup(&op.attributes.email).await?.and_then(|u| u.id))
    }

    /// One operation as single requests.
    async fn single(&self, op: &Operation) -> Step {
        match (op.kind, op.remote.user_id.as_deref()) {
            (OperationKind::Invite | OperationKind::Resend, None) => self.create(op).await,
            (OperationKind::Invite | OperationKind::Resend, Some(id)) => self.update(op, id, true).await,
            (OperationKind::Update, Some(id)) => self.update(op, id, false).await,
            (OperationKind::Update, None) => match self.user_id(op).await {
                Ok(Some(id)) => self.update(op, &id, false).await,
                Ok(None) => Step::only(Outcome::Gone {
                    reason: "no user matches it at the service; the next plan creates it again".to_owned(),
                }),
                Err(e) => Step::only(lost(&e)),
            },
            (OperationKind::Remove, _) => self.remove(op).await,
        }
    }

    /// Whether `op` can travel in a `/Bulk` request: a new user, or a
    /// removal of a recorded one.
    fn bulkable(op: &Operation) -> bool {
        match op.kind {
            OperationKind::Invite | OperationKind::Resend => op.remote.user_id.is_none(),
            OperationKind::Remove => op.remote.user_id.is_some(),
            OperationKind::Update => false,
        }
    }

    /// Sends the bulkable operations (indexes into `batch`) through `/Bulk`;
    /// answers a step for each of them.
    async fn send_bulk(&self, batch: &[Operation], indexes: &[usize], limits: &bulk::BulkLimits) -> Vec<(usize, Step)> {
        let bulk_id = |i: usize| format!("op{i}");
        let items = indexes
            .iter()
            .map(|&i| {
                let op = &batch[i];
                match (op.kind, op.remote.user_id.as_deref()) {
                    (OperationKind::Remove, Some(id)) => BulkItem::Operation(match self.mapping.on_remove {
                        OnRemove::Deactivate => BulkOperation::patch_user(bulk_id(i), id, &deactivate(), None),
                        OnRemove::Delete => BulkOperation::delete_user(bulk_id(i), id),
                    }),
                    _ => BulkItem::CreateUser {
                        bulk_id: bulk_id(i),
                        user: Box::new(new_user(&op.attributes, &self.mapping)),
                        groups: if self.mapping.manage.contains(Managed::Groups) {
                            op.attributes.groups.iter().map(ToString::to_string).collect()
                        } else {
                            Vec::new()
                        },
                    },
                }
            })
            .collect();
        let plan = bulk::plan(items, limits);
        let index_of: HashMap<String, usize> = indexes.iter().map(|&i| (bulk_id(i), i)).collect();
        let mut steps: Vec<(usize, Step)> = Vec::new();
        // Oversized items go as single requests.
        for oversized in &plan.oversized {
            let i = index_of[&oversized.bulk_id];
            steps.push((i, self.single(&batch[i]).await));
        }
        for chunk in &plan.chunks {
            let body = serde_json::to_value(&chunk.request).expect("a bulk request serializes");
            let results = match self.call(Method::POST, BULK_PATH, Some(&body), None).await {
                Ok((200..=299, Some(answer))) => match BulkResponse::parse(answer) {
                    Ok(response) => bulk::read_response(&chunk.request, &response),
                    Err(err) => {
                        let reason = format!("{}: the /Bulk answer cannot be read: {err}", self.http.label());
                        chunk_lost(&mut steps, chunk, &index_of, &Outcome::Uncertain { reason });
                        continue;
                    }
                },
                Ok((status, answer)) => {
                    let reason = self.refusal("POST", BULK_PATH, status, answer.as_ref()).message;
                    chunk_lost(&mut steps, chunk, &index_of, &Outcome::Failed { reason });
                    continue;
                }
                Err(e) => {
                    chunk_lost(&mut steps, chunk, &index_of, &lost(&e));
                    continue;
                }
            };
            let by_id: HashMap<&str, &BulkResult> = results.iter().map(|(id, r)| (id.as_str(), r)).collect();
            // Joins of new users whose group PATCH in the request did not succeed.
            let mut failed_joins: HashMap<&str, Vec<String>> = HashMap::new();
            for join in &chunk.group_joins {
                let done = by_id
                    .get(join.bulk_id.as_str())
                    .and_then(|r| r.answer(Request::PatchGroup))
                    .is_some_and(|a| a.succeeded(Request::PatchGroup));
                if !done {
                    for member in &join.members {
                        failed_joins.entry(member.as_str()).or_default().push(join.group_id.clone());
                    }
                }
            }
            for operation in &chunk.request.operations {
                let Some(&i) = index_of.get(&operation.bulk_id) else { continue };
                let op = &batch[i];
                let result = by_id.get(operation.bulk_id.as_str()).copied().unwrap_or(&BulkResult::Missing);
                let step = if op.kind == OperationKind::Remove {
                    let request = match self.mapping.on_remove {
                        OnRemove::Deactivate => Request::PatchUser,
                        OnRemove::Delete => Request::DeleteUser,
                    };
                    match result.answer(request) {
                        Some(answer) => Step::only(self.removed(op.remote.user_id.as_deref().unwrap_or(""), answer)),
                        None => Step::only(not_sent()),
                    }
                } else {
                    match result.answer(Request::CreateUser) {
                        Some(answer @ Answer::Created { .. }) => {
                            if let Answer::Created { id: Some(id), resource: None, .. } = &answer {
                                self.sample(op, id).await;
                            }
                            let mut step = self.created(op, answer).await;
                            // Joined in the request already, unless its group PATCH failed.
                            step.joins = failed_joins.remove(operation.bulk_id.as_str()).unwrap_or_default();
                            step
                        }
                        Some(answer) => self.created(op, answer).await,
                        None => Step::only(not_sent()),
                    }
                };
                steps.push((i, step));
            }
        }
        steps
    }

    /// The group phase: one PATCH per group (chunked), at most one request
    /// per group in flight. Answers, per op index, the groups whose PATCH
    /// failed with the reason.
    async fn patch_groups(&self, steps: &[(usize, Step)]) -> HashMap<usize, Vec<(String, String)>> {
        let mut by_group: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
        let mut owner: HashMap<&str, usize> = HashMap::new();
        for (i, step) in steps {
            let Some(id) = step.user_id.as_deref() else { continue };
            owner.insert(id, *i);
            for group in &step.joins {
                by_group.entry(group).or_default().0.push(id.to_owned());
            }
            for group in &step.leaves {
                by_group.entry(group).or_default().1.push(id.to_owned());
            }
        }
        let work: Vec<BoxFuture<'_, Vec<(String, String, String)>>> = by_group
            .into_iter()
            .map(|(group, (joins, leaves))| {
                let group = group.to_owned();
                let future: BoxFuture<'_, Vec<(String, String, String)>> = Box::pin(async move {
                    let lock = {
                        let mut locks = self.group_locks.lock().expect("the group locks are never poisoned");
                        Arc::clone(locks.entry(group.clone()).or_default())
                    };
                    let _held = lock.lock().await;
                    let mut failures = Vec::new();
                    for patch in group_patches(&joins, &leaves, self.settings.batch_size) {
                        let body = serde_json::to_value(&patch.request).expect("a patch serializes");
                        let reason = match self.call(Method::PATCH, &group_path(&group), Some(&body), None).await {
                            Ok((status, answer)) => {
                                match classify(Request::PatchGroup, Some(status), answer.as_ref()) {
                                    answer if answer.succeeded(Request::PatchGroup) => None,
                                    Answer::Failed { reason, .. } | Answer::Uncertain { reason } => Some(reason),
                                    _ => Some(format!("HTTP {status}")),
                                }
                            }
                            Err(e) => Some(e.message),
                        };
                        if let Some(reason) = reason {
                            for user in patch.joins.iter().chain(&patch.leaves) {
                                failures.push((user.clone(), group.clone(), reason.clone()));
                            }
                        }
                    }
                    failures
                });
                future
            })
            .collect();
        let mut failed: HashMap<usize, Vec<(String, String)>> = HashMap::new();
        // Each takes its own permit of the client's request limit.
        for (user, group, reason) in join_all(work).await.into_iter().flatten() {
            if let Some(&i) = owner.get(user.as_str()) {
                failed.entry(i).or_default().push((group, reason));
            }
        }
        failed
    }

    async fn send_batch(&self, batch: &[Operation]) -> Result<Vec<Outcome>, BatchError> {
        let config = self.discovery().await?;
        let limits = config.bulk_limits(self.settings.batch_size);
        let (bulked, singles): (Vec<usize>, Vec<usize>) = match &limits {
            Some(_) => (0..batch.len()).partition(|&i| Self::bulkable(&batch[i])),
            None => (Vec::new(), (0..batch.len()).collect()),
        };
        let mut steps = match &limits {
            Some(limits) if !bulked.is_empty() => self.send_bulk(batch, &bulked, limits).await,
            _ => Vec::new(),
        };
        let work: Vec<BoxFuture<'_, (usize, Step)>> = singles
            .into_iter()
            .map(|i| -> BoxFuture<'_, (usize, Step)> { Box::pin(async move { (i, self.single(&batch[i]).await) }) })
            .collect();
        // Each takes its own permit of the client's request limit.
        steps.extend(join_all(work).await);
        let failed_groups = self.patch_groups(&steps).await;

        let achieved = steps.iter().any(|(_, step)| !matches!(step.outcome, Outcome::Failed { .. }));
        if !achieved {
            if let Some(error) = self.fatal.lock().expect("the fatal error is never poisoned").clone() {
                return Err(error);
            }
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        for (i, step) in steps {
            let outcome = match failed_groups.get(&i) {
                Some(failures) => partial(&batch[i], &step, failures),
                None => step.outcome,
            };
            outcomes[i] = Some(outcome);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Uncertain { reason: "no outcome was produced".to_owned() }))
            .collect())
    }

    async fn list_members(&self) -> Result<Listing, BatchError> {
        let manage = &self.mapping.manage;
        let users: Vec<User> = self.list_all(USERS_PATH, |u: &User| u.id.as_deref().unwrap_or("")).await?;
        let mut notes = Vec::new();
        let mut uncarried = Vec::new();
        let mut fields: Vec<&'static str> = Vec::new();
        let groups_known = if manage.contains(Managed::Groups) {
            match self.memberships().await? {
                Some(_) => true,
                None if users.iter().any(|u| !u.groups.is_empty()) => true,
                None => {
                    notes.push(format!(
                        "{}: the service lists neither group members nor users' groups: cannot list memberships, \
                         so group drift is not checked",
                        self.http.label()
                    ));
                    false
                }
            }
        } else {
            false
        };
        let mut members = Vec::with_capacity(users.len());
        for user in &users {
            let mut attributes = observed_attributes(user, manage);
            if groups_known {
                if let Some(current) = self.groups_of(user).await? {
                    attributes.groups = current.into_iter().map(crate::attributes::Id::from).collect();
                }
            }
            members.push(Observed {
                attributes,
                remote: remote(user.id.as_deref().unwrap_or("")),
                active: user.active != Some(false),
            });
        }
        for group in manage.0.iter().copied() {
            if group == Managed::Groups {
                if groups_known {
                    fields.push("groups");
                }
                continue;
            }
            // An attribute no listed user carries is one the service may
            // ignore (comparing it would plan it back on every run), or one
            // its users lost: refresh tells which.
            let carried = members.iter().any(|m| match group {
                Managed::Name => m.attributes.name.is_some() || m.attributes.first_name.is_some(),
                Managed::Phone => m.attributes.phone.is_some(),
                Managed::Roles => !m.attributes.roles.is_empty(),
                Managed::Entitlements => !m.attributes.plans.is_empty(),
                Managed::Manager => m.attributes.manager_id.is_some(),
                Managed::Groups => true,
            });
            if carried || members.is_empty() {
                fields.extend(group.fields());
            } else {
                uncarried.push(Uncarried { fields: group.fields().to_vec(), attribute: group.scim_attribute() });
            }
        }
        Ok(Listing { members, fields, notes, uncarried })
    }
}

/// What a request's operations become when the whole `/Bulk` request failed.
fn chunk_lost(
    steps: &mut Vec<(usize, Step)>,
    chunk: &bulk::BulkChunk,
    index_of: &HashMap<String, usize>,
    outcome: &Outcome,
) {
    for operation in &chunk.request.operations {
        if let Some(&i) = index_of.get(&operation.bulk_id) {
            steps.push((i, Step::only(outcome.clone())));
        }
    }
}

fn not_sent() -> Outcome {
    Outcome::Failed {
        reason: "not sent: an earlier operation of its /Bulk request reached the service's `failOnErrors` limit"
            .to_owned(),
    }
}

/// A user's change that succeeded beside failed group PATCH requests: the record
/// takes the memberships in force.
fn partial(op: &Operation, step: &Step, failures: &[(String, String)]) -> Outcome {
    let mut applied = op.attributes.clone();
    for (group, _) in failures {
        if step.joins.contains(group) {
            applied.groups.retain(|g| **g != **group);
        } else if step.leaves.contains(group) && !applied.groups.iter().any(|g| **g == **group) {
            applied.groups.push(group.as_str().into());
        }
    }
    let remote = match &step.outcome {
        Outcome::Added(remote) | Outcome::Adopted { remote, .. } | Outcome::Deactivated(remote) => remote.clone(),
        _ => op.remote.clone(),
    };
    let reason =
        failures.iter().map(|(group, reason)| format!("group `{group}`: {reason}")).collect::<Vec<_>>().join("; ");
    Outcome::Partial { applied: Box::new(applied), remote, reason }
}

impl Provider for Scim {
    fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    fn batches(&self, operations: Vec<Operation>) -> Vec<Vec<Operation>> {
        crate::provider::chunk(operations, self.settings.batch_size)
    }

    fn send<'a>(&'a self, batch: &'a [Operation]) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        Box::pin(self.send_batch(batch))
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, BatchError>> {
        Box::pin(self.list_members())
    }
}
