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

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};

use super::discovery::ServiceProviderConfig;
use super::mapping::{managed_view, memberships, observed_attributes, Managed, ScimSettings};
use super::outcome::{classify, ignored_attributes, Answer, Request};
use super::paging::{Pager, DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE};
use super::resource::{Group, ListResponse, User};
use super::{filter, user_path, wire, GROUPS_PATH, SERVICE_PROVIDER_CONFIG_PATH, USERS_PATH};
use crate::attributes::Attributes;
use crate::provider::http::{Auth, HttpClient};
use crate::provider::{
    BatchError, BoxFuture, Listing, Observed, Operation, Outcome, Provider, ProviderError, ProviderSettings, Uncarried,
};

mod batch;
mod user;

use user::remote;

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

impl Provider for Scim {
    fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    fn batches(&self, operations: Vec<Operation>) -> Vec<Vec<Operation>> {
        crate::provider::chunk(operations, self.settings.batch_size)
    }

    fn send<'a>(&'a self, batch: &'a [Operation]) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        Box::pin(async move {
            crate::provider::scrub_answer(self.send_batch(batch).await, &|text| self.http.scrub(text, &[]))
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, BatchError>> {
        Box::pin(async move {
            let scrub = |text: &str| self.http.scrub(text, &[]);
            match self.list_members().await {
                Ok(mut listing) => {
                    listing.notes = listing.notes.iter().map(|note| scrub(note)).collect();
                    Ok(listing)
                }
                Err(error) => Err(error.scrubbed(&scrub)),
            }
        })
    }
}
