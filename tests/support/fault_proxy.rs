//! A loopback HTTP proxy in front of the real SCIM server that injects
//! faults and imitates the quirks of real services, so the SCIM client is
//! proven against the services users have, not only against one good server.
//!
//! - **Faults**, by rule: a method and a SCIM path (the part after `/v2`),
//!   on the first N matching requests or every N-th one: 429 with
//!   `Retry-After`, a 5xx with a SCIM error or an nginx-style HTML page, or
//!   a connection dropped before or *after* the request reached the server
//!   (the server carried it out; the client never hears so), or an answer
//!   held back after the server carried the request out.
//! - **Quirks** ([`Quirks`]), each switchable: what the proxy changes in the
//!   requests and answers so that the real server behaves like an
//!   imperfect service.
//! - **Records**: every request as the client sent it, with the status it
//!   got (none when the connection was dropped).
//!
//! It runs on its own runtime on a background thread, like the fake
//! servers, so plain tests that spawn the real binary can use it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

use super::fake_common::RecordedRequest;
use super::scim_server::{ScimServer, ScimTenant};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const USER_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:core:2.0:User:";
const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The page size the page quirk gives a listing without `count`.
pub const QUIRK_DEFAULT_PAGE: u64 = 20;
/// The largest page the page quirk lets through.
pub const QUIRK_MAX_PAGE: u64 = 100;

/// A fault injected instead of (or after) forwarding a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with this `Retry-After` value (seconds or an HTTP date), if any;
    /// not forwarded.
    TooManyRequests {
        /// The `Retry-After` header value.
        retry_after: Option<String>,
    },
    /// This status with a SCIM error document; not forwarded.
    Status(u16),
    /// This status with an nginx-style HTML page (`text/html`), as a load
    /// balancer in front of a service answers; not forwarded.
    HtmlStatus(u16),
    /// The connection is closed without an answer; not forwarded.
    DropBeforeForwarding,
    /// Forwarded and carried out by the server, then the connection is
    /// closed without an answer: the classic lost answer.
    DropAfterForwarding,
    /// Forwarded and carried out at once; the answer is held back this
    /// long, so a run killed meanwhile never hears of work that was done.
    SlowAnswer(Duration),
}

/// Which matching requests a rule faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// The first N matching requests.
    FirstN(u64),
    /// The N-th, 2N-th, 3N-th, ... matching request.
    EveryNth(u64),
}

type PathPredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A fault and the requests it applies to. Every rule counts the requests
/// that match it; the first rule (in the order added) whose schedule fires
/// decides the fault.
#[derive(Clone)]
pub struct FaultRule {
    method: Option<Method>,
    path: PathPredicate,
    schedule: Schedule,
    fault: Fault,
    matched: u64,
}

impl FaultRule {
    /// `fault` on every request, until narrowed.
    pub fn new(fault: Fault) -> Self {
        Self { method: None, path: Arc::new(|_| true), schedule: Schedule::EveryNth(1), fault, matched: 0 }
    }

    /// Only requests with this method (`"POST"`, ...).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(Method::from_bytes(method.as_bytes()).expect("an HTTP method"));
        self
    }

    /// Only requests to this SCIM endpoint or below it: `"/Users"` matches
    /// `/Users` and `/Users/{id}`, in any tenant.
    pub fn path(mut self, endpoint: &str) -> Self {
        let endpoint = endpoint.to_owned();
        self.path = Arc::new(move |path| under(path, &endpoint));
        self
    }

    /// Only requests whose SCIM path satisfies `predicate`.
    pub fn path_matching(mut self, predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.path = Arc::new(predicate);
        self
    }

    /// Only the first `n` matching requests.
    pub fn first(mut self, n: u64) -> Self {
        self.schedule = Schedule::FirstN(n);
        self
    }

    /// Only every `n`-th matching request.
    pub fn every(mut self, n: u64) -> Self {
        assert!(n > 0, "every(0) would never fire");
        self.schedule = Schedule::EveryNth(n);
        self
    }

    /// Counts a request; the fault when this one is to be faulted.
    fn observe(&mut self, method: &Method, scim_path: &str) -> Option<Fault> {
        if self.method.as_ref().is_some_and(|m| m != method) || !(self.path)(scim_path) {
            return None;
        }
        self.matched += 1;
        let fires = match self.schedule {
            Schedule::FirstN(n) => self.matched <= n,
            Schedule::EveryNth(n) => self.matched.is_multiple_of(n),
        };
        fires.then(|| self.fault.clone())
    }
}

/// How real services differ from scim2-server; each is off by default.
#[allow(clippy::struct_excessive_bools)] // independent switches, named for what they do
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    /// `GET /Groups` (and `POST /Groups/.search`) lists every group with
    /// `members: []` (a single group read still shows its members); scim2-server never fills `User.groups`
    /// either, so such a service shows no memberships at all in a listing.
    pub group_members_unlisted: bool,
    /// `roles` is silently ignored: stripped from every User sent (POST,
    /// PUT, PATCH, bulk) and from every User answered. A PATCH left with
    /// nothing to do still succeeds.
    pub roles_dropped: bool,
    /// PATCH answers 200 with the whole resource (scim2-server answers 204).
    pub patch_answers_resource: bool,
    /// List pages hold at most [`QUIRK_MAX_PAGE`] resources, and
    /// [`QUIRK_DEFAULT_PAGE`] when `count` is absent (scim2-server: up to
    /// 1000, everything by default).
    pub pages_capped: bool,
    /// No versions: no `ETag` headers, no `meta.version` (nor bulk
    /// `version`), `etag.supported: false` announced, and `If-Match` /
    /// `If-None-Match` ignored.
    pub no_etags: bool,
    /// Bulk results carry `status` as a JSON number (`201`); scim2-server
    /// sends the RFC's string (`"201"`), so this is the deviating form.
    pub bulk_status_numeric: bool,
    /// `/ServiceProviderConfig` needs the bearer token (401 without it);
    /// scim2-server serves it to anyone, as RFC 7643 §5 allows.
    pub config_needs_token: bool,
    /// Users carry the read-only `groups` attribute (`[{value, display}]`,
    /// `[]` for none), which scim2-server never fills: with
    /// `group_members_unlisted`, the only place a listing shows memberships.
    pub user_groups_listed: bool,
}

impl Quirks {
    /// Every quirk on.
    pub fn all() -> Self {
        Self {
            group_members_unlisted: true,
            roles_dropped: true,
            patch_answers_resource: true,
            pages_capped: true,
            no_etags: true,
            bulk_status_numeric: true,
            config_needs_token: true,
            user_groups_listed: true,
        }
    }
}

/// One request and what became of it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The request as the client sent it (before any quirk rewrote it).
    pub request: RecordedRequest,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// The status answered; `None` while in flight or when the connection
    /// was dropped.
    pub status: Option<u16>,
}

struct Shared {
    upstream: String,
    token: String,
    client: reqwest::Client,
    rules: Mutex<Vec<FaultRule>>,
    quirks: Mutex<Quirks>,
    exchanges: Mutex<Vec<Exchange>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running proxy. Dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The panic payload that drops a connection without an answer: resumed
/// with `resume_unwind`, which skips the panic hook, so the connection's
/// task ends quietly and its socket is closed.
struct DropConnection;

impl FaultProxy {
    /// A proxy in front of `server`, with no faults and no quirks.
    pub fn start(server: &ScimServer) -> Self {
        Self::start_for(server.origin(), server.token())
    }

    /// A proxy in front of the server at `upstream` (an origin such as
    /// `http://127.0.0.1:PORT`) that accepts `token`.
    pub fn start_for(upstream: &str, token: &str) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("build the proxy's HTTP client");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client,
            rules: Mutex::new(Vec::new()),
            quirks: Mutex::new(Quirks::default()),
            exchanges: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let (addr, shutdown_tx) = super::fake_common::serve_on_loopback("fault-proxy", app);
        Self { addr, shared, shutdown: Some(shutdown_tx) }
    }

    /// `http://127.0.0.1:PORT`: the proxy's root.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A tenant's SCIM base URL through the proxy: a provider's `base_url`.
    pub fn base_url(&self, tenant: &ScimTenant) -> String {
        format!("{}/{}/v2", self.origin(), tenant.name())
    }

    /// Turns quirks on or off (for the requests that follow).
    pub fn set_quirks(&self, quirks: Quirks) {
        *lock(&self.shared.quirks) = quirks;
    }

    /// Adds a fault rule after the existing ones.
    pub fn add_rule(&self, rule: FaultRule) {
        lock(&self.shared.rules).push(rule);
    }

    /// Removes every fault rule.
    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Every request so far, in the order received, with what became of it.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.shared.exchanges).clone()
    }

    /// Every request so far, as the client sent it, in the order received.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.exchanges).iter().map(|exchange| exchange.request.clone()).collect()
    }

    /// How many requests had this method and went to this SCIM endpoint or
    /// below it (`count("POST", "/Bulk")`).
    pub fn count(&self, method: &str, endpoint: &str) -> usize {
        lock(&self.shared.exchanges)
            .iter()
            .filter(|exchange| exchange.request.method == method && under(&scim_path(&exchange.request.path), endpoint))
            .count()
    }

    /// Forgets the requests recorded so far (call it while none is in flight).
    pub fn clear_records(&self) {
        lock(&self.shared.exchanges).clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the server thread is already gone.
            shutdown.send(()).ok();
        }
    }
}

/// The path below the SCIM root: `/t1-ab/v2/Users/42` → `/Users/42`. The
/// first segment is the tenant; `/v2` after it is optional, as at scim2-server.
pub fn scim_path(path: &str) -> String {
    let below_tenant = path.trim_start_matches('/').split_once('/').map_or("", |(_, rest)| rest);
    let below_version = match below_tenant.strip_prefix("v2") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => below_tenant,
    };
    format!("/{}", below_version.trim_start_matches('/'))
}

/// Whether `path` is `endpoint` or below it.
fn under(path: &str, endpoint: &str) -> bool {
    path.strip_prefix(endpoint).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        content_type: headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned),
        received_at: std::time::Instant::now(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let path = scim_path(uri.path());
    // Every rule counts the request (`fold` visits them all); the first that fires wins.
    let fault = lock(&shared.rules).iter_mut().map(|rule| rule.observe(&method, &path)).fold(None, Option::or);
    let index = {
        let mut exchanges = lock(&shared.exchanges);
        exchanges.push(Exchange { request, fault: fault.clone(), status: None });
        exchanges.len() - 1
    };
    let quirks = *lock(&shared.quirks);
    let call = Call { method, uri, headers, body, path };
    let response = match fault {
        None => shared.serve(&call, quirks).await,
        Some(Fault::TooManyRequests { retry_after }) => {
            let mut response = scim_error(StatusCode::TOO_MANY_REQUESTS, "injected: too many requests");
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_str(&value).expect("header value"));
            }
            response
        }
        Some(Fault::Status(status)) => {
            scim_error(StatusCode::from_u16(status).expect("a valid status"), &format!("injected: HTTP {status}"))
        }
        Some(Fault::HtmlStatus(status)) => html_error(StatusCode::from_u16(status).expect("a valid status")),
        Some(Fault::DropBeforeForwarding) => std::panic::resume_unwind(Box::new(DropConnection)),
        Some(Fault::DropAfterForwarding) => {
            // The server carries the request out; its answer is thrown away.
            drop(shared.serve(&call, quirks).await);
            std::panic::resume_unwind(Box::new(DropConnection))
        }
        Some(Fault::SlowAnswer(delay)) => {
            let response = shared.serve(&call, quirks).await;
            tokio::time::sleep(delay).await;
            response
        }
    };
    if let Some(exchange) = lock(&shared.exchanges).get_mut(index) {
        exchange.status = Some(response.status().as_u16());
    }
    response
}

/// A request on its way through the proxy.
struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    /// The SCIM path ([`scim_path`]).
    path: String,
}

impl Call {
    fn is_user(&self) -> bool {
        under(&self.path, "/Users")
    }

    /// `/Users` or `/Groups` itself (a listing), not one resource.
    fn is_listing(&self) -> bool {
        self.method == Method::GET && (self.path == "/Users" || self.path == "/Groups" || self.path == "/")
    }

    fn bearer(&self) -> Option<&str> {
        let value = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
    }
}

/// An answer from the server, before quirks rewrite it.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Shared {
    /// Forwards a request, rewriting it and its answer as the quirks say.
    async fn serve(&self, call: &Call, quirks: Quirks) -> Response {
        if quirks.config_needs_token
            && call.path == "/ServiceProviderConfig"
            && call.bearer() != Some(self.token.as_str())
        {
            let mut response = scim_error(StatusCode::UNAUTHORIZED, "a bearer token is required");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"SCIM\""));
            return response;
        }
        let mut query = call.uri.query().map(str::to_owned);
        let mut body = call.body.clone();
        let mut headers = call.headers.clone();
        if quirks.pages_capped && call.is_listing() {
            query = Some(capped_query(query.as_deref()));
        }
        if quirks.pages_capped && call.method == Method::POST && call.path.ends_with("/.search") {
            body = rewrite_json(&body, cap_search_body);
        }
        if quirks.roles_dropped {
            body = rewrite_json(&body, |document| strip_roles_from_request(call, document));
        }
        if quirks.no_etags {
            headers.remove(header::IF_MATCH);
            headers.remove(header::IF_NONE_MATCH);
        }
        let answer = match self.forward(&call.method, call, query.as_deref(), headers, body).await {
            Ok(answer) => answer,
            Err(error) => {
                return scim_error(StatusCode::BAD_GATEWAY, &format!("proxy: the SCIM server failed: {error}"))
            }
        };
        self.quirk_answer(call, quirks, answer).await
    }

    async fn forward(
        &self,
        method: &Method,
        call: &Call,
        query: Option<&str>,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Answer, reqwest::Error> {
        let mut url = format!("{}{}", self.upstream, call.uri.path());
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        // scim2-server runs with --reverse-proxy: the URLs it builds
        // (locations, `meta.location`) then name the proxy, as for a real
        // service behind a load balancer.
        if let Some(host) = call.headers.get(header::HOST) {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
        }
        headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static("http"));
        let response = self.client.request(method.clone(), url).headers(headers).body(body).send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Answer { status, headers, body })
    }

    async fn quirk_answer(&self, call: &Call, quirks: Quirks, mut answer: Answer) -> Response {
        if quirks.patch_answers_resource && call.method == Method::PATCH && answer.status == StatusCode::NO_CONTENT {
            // Read the patched resource back, as a service that answers
            // PATCH with the resource would have sent it.
            let mut headers = call.headers.clone();
            headers.remove(header::IF_MATCH);
            headers.remove(header::IF_NONE_MATCH);
            headers.remove(header::CONTENT_TYPE);
            if let Ok(read) = self.forward(&Method::GET, call, None, headers, Bytes::new()).await {
                if read.status == StatusCode::OK {
                    answer = read;
                }
            }
        }
        let reads_users = call.is_user() && (call.method == Method::GET || call.path == "/Users/.search");
        let user_groups = if quirks.user_groups_listed && reads_users && answer.status == StatusCode::OK {
            Some(self.memberships(call).await)
        } else {
            None
        };
        if is_json(&answer.headers) && !answer.body.is_empty() {
            answer.body = rewrite_json(&answer.body, |document| {
                if let Some(user_groups) = &user_groups {
                    for_each_resource(document, |resource| {
                        if let (true, Some(id)) = (is_user_resource(resource), resource["id"].as_str()) {
                            resource["groups"] = json!(user_groups.get(id).cloned().unwrap_or_default());
                        }
                    });
                }
                if quirks.roles_dropped {
                    for_each_resource(document, |resource| {
                        if is_user_resource(resource) {
                            remove_key(resource, "roles");
                        }
                    });
                }
                if quirks.group_members_unlisted && (call.is_listing() || call.path == "/Groups/.search") {
                    for_each_resource(document, |resource| {
                        if is_group_resource(resource) {
                            resource["members"] = json!([]);
                        }
                    });
                }
                if quirks.no_etags {
                    strip_versions(document);
                }
                if quirks.bulk_status_numeric && call.path == "/Bulk" {
                    number_bulk_statuses(document);
                }
            });
        }
        if quirks.no_etags {
            answer.headers.remove(header::ETAG);
        }
        into_response(answer)
    }

    /// Each user's groups in the caller's tenant, as `User.groups` entries,
    /// read from the server's group listing with the caller's credentials.
    async fn memberships(&self, call: &Call) -> HashMap<String, Vec<Value>> {
        let tenant_root = call.uri.path().strip_suffix(call.path.as_str()).unwrap_or_default();
        let mut memberships: HashMap<String, Vec<Value>> = HashMap::new();
        let mut start = 1;
        loop {
            let mut request =
                self.client.get(format!("{}{tenant_root}/Groups?startIndex={start}&count=1000", self.upstream));
            if let Some(authorization) = call.headers.get(header::AUTHORIZATION) {
                request = request.header(header::AUTHORIZATION, authorization.clone());
            }
            let page = match request.send().await {
                Ok(response) => response.json::<Value>().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let groups = page["Resources"].as_array().cloned().unwrap_or_default();
            for group in &groups {
                let entry = json!({"value": group["id"], "display": group["displayName"]});
                for member in group["members"].as_array().into_iter().flatten() {
                    if let Some(user) = member["value"].as_str() {
                        memberships.entry(user.to_owned()).or_default().push(entry.clone());
                    }
                }
            }
            if groups.is_empty() {
                return memberships;
            }
            start += groups.len();
        }
    }
}

const HOP_BY_HOP: [HeaderName; 5] =
    [header::CONNECTION, header::TRANSFER_ENCODING, header::TE, header::UPGRADE, header::PROXY_AUTHORIZATION];

fn into_response(answer: Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    for (name, value) in &answer.headers {
        if !HOP_BY_HOP.contains(name) && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
}

/// Applies `edit` to a JSON body; a body that is not JSON passes unchanged.
fn rewrite_json(body: &Bytes, edit: impl FnOnce(&mut Value)) -> Bytes {
    let Ok(mut document) = serde_json::from_slice::<Value>(body) else {
        return body.clone();
    };
    edit(&mut document);
    Bytes::from(serde_json::to_vec(&document).expect("JSON serialises"))
}

/// The query with `count` defaulted to 20 and capped at 100.
fn capped_query(query: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or("").as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    match pairs.iter_mut().find(|(name, _)| name.eq_ignore_ascii_case("count")) {
        Some((_, value)) => {
            if let Ok(count) = value.parse::<u64>() {
                *value = count.min(QUIRK_MAX_PAGE).to_string();
            }
        }
        None => pairs.push(("count".to_owned(), QUIRK_DEFAULT_PAGE.to_string())),
    }
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// The same defaults and caps for a `POST .search` body.
fn cap_search_body(search: &mut Value) {
    let Some(search) = search.as_object_mut() else { return };
    let count = search.get("count").and_then(Value::as_u64).map_or(QUIRK_DEFAULT_PAGE, |c| c.min(QUIRK_MAX_PAGE));
    search.insert("count".to_owned(), json!(count));
}

/// Removes `roles` from what the client sends about users.
fn strip_roles_from_request(call: &Call, document: &mut Value) {
    if call.path == "/Bulk" {
        let operations = document.get_mut("Operations").and_then(Value::as_array_mut).into_iter().flatten();
        for operation in operations {
            let targets_users = operation.get("path").and_then(Value::as_str).is_some_and(|p| under(p, "/Users"));
            let is_patch =
                operation.get("method").and_then(Value::as_str).is_some_and(|m| m.eq_ignore_ascii_case("PATCH"));
            if let (true, Some(data)) = (targets_users, operation.get_mut("data")) {
                if is_patch {
                    strip_roles_from_patch(data);
                } else {
                    remove_key(data, "roles");
                }
            }
        }
    } else if call.is_user() && call.method == Method::PATCH {
        strip_roles_from_patch(document);
    } else if call.is_user() && (call.method == Method::POST || call.method == Method::PUT) {
        remove_key(document, "roles");
    }
}

/// Drops the operations on `roles` from a `PatchOp`. One left with none gets
/// a no-op instead (scim2-server refuses an empty list), so it succeeds and
/// changes nothing, as at a service that ignores `roles`.
fn strip_roles_from_patch(patch: &mut Value) {
    let Some(operations) = patch.get_mut("Operations").and_then(Value::as_array_mut) else { return };
    operations.retain_mut(|operation| {
        if let Some(target) = operation.get("path").and_then(Value::as_str) {
            return !names_roles(target);
        }
        if let Some(value) = operation.get_mut("value") {
            remove_key(value, "roles");
        }
        operation.get("value").and_then(Value::as_object).is_none_or(|value| !value.is_empty())
    });
    if operations.is_empty() {
        operations.push(json!({"op": "add", "path": "roles", "value": []}));
    }
    if let Some(patch) = patch.as_object_mut() {
        patch.entry("schemas").or_insert_with(|| json!([PATCH_OP_SCHEMA]));
    }
}

/// Whether a PATCH path targets `roles` (`roles`, `roles[value eq "x"]`,
/// `roles.value`, with or without the User schema's URN).
fn names_roles(path: &str) -> bool {
    let path = path.strip_prefix(USER_SCHEMA_PREFIX).unwrap_or(path);
    let attribute = path.split(['[', '.']).next().unwrap_or(path);
    attribute.eq_ignore_ascii_case("roles")
}

/// Removes a key, compared case-insensitively as SCIM attribute names are.
fn remove_key(object: &mut Value, key: &str) {
    if let Some(object) = object.as_object_mut() {
        object.retain(|name, _| !name.eq_ignore_ascii_case(key));
    }
}

fn is_user_resource(resource: &Value) -> bool {
    has_schema(resource, USER_SCHEMA)
}

fn is_group_resource(resource: &Value) -> bool {
    has_schema(resource, GROUP_SCHEMA)
}

fn has_schema(resource: &Value, schema: &str) -> bool {
    resource
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| schemas.iter().any(|listed| listed.as_str() == Some(schema)))
}

/// Calls `edit` on a single resource, or on each of a list's `Resources`.
fn for_each_resource(document: &mut Value, mut edit: impl FnMut(&mut Value)) {
    if let Some(resources) = document.get_mut("Resources").and_then(Value::as_array_mut) {
        resources.iter_mut().for_each(&mut edit);
    } else if document.get("id").is_some() {
        edit(document);
    }
}

/// Removes every trace of versioning from an answer.
fn strip_versions(document: &mut Value) {
    for_each_resource(document, |resource| {
        if let Some(meta) = resource.get_mut("meta") {
            remove_key(meta, "version");
        }
    });
    if let Some(operations) = document.get_mut("Operations").and_then(Value::as_array_mut) {
        for operation in operations {
            remove_key(operation, "version");
        }
    }
    if let Some(etag) = document.get_mut("etag").and_then(Value::as_object_mut) {
        etag.insert("supported".to_owned(), json!(false));
    }
}

/// `"status": "201"` → `"status": 201` in each bulk result and its error.
fn number_bulk_statuses(document: &mut Value) {
    fn number(status: &mut Value) {
        if let Some(code) = status.as_str().and_then(|s| s.parse::<u16>().ok()) {
            *status = json!(code);
        }
    }
    let operations = document.get_mut("Operations").and_then(Value::as_array_mut).into_iter().flatten();
    for operation in operations {
        if let Some(status) = operation.get_mut("status") {
            number(status);
        }
        if let Some(status) = operation.get_mut("response").and_then(|r| r.get_mut("status")) {
            number(status);
        }
    }
}

fn scim_error(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    response
}

fn html_error(status: StatusCode) -> Response {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n\
         <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}
