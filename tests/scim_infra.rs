//! The SCIM test infrastructure (#10), proven against the real scim2-server
//! with plain HTTP calls: the launcher and its tenants, what the server
//! itself does (the facts the client relies on), and each fault and quirk
//! of the fault proxy, observed through it.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::support::fault_proxy::{Fault, FaultProxy, FaultRule, Quirks, QUIRK_DEFAULT_PAGE, QUIRK_MAX_PAGE};
use crate::support::scim_server::{self, ScimServer, ScimTenant};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// A plain SCIM client for one tenant, direct or through a proxy.
struct Scim {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

/// An answer: status, headers, and the body as JSON (`Null` when empty).
struct Reply {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    #[track_caller]
    fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.json);
        self
    }

    /// The `Resources` of a list answer.
    fn resources(&self) -> &[Value] {
        self.json["Resources"].as_array().map_or(&[], Vec::as_slice)
    }
}

impl Scim {
    fn direct(tenant: &ScimTenant) -> Self {
        Self::at(tenant.base_url().to_owned(), tenant)
    }

    fn via(proxy: &FaultProxy, tenant: &ScimTenant) -> Self {
        Self::at(proxy.base_url(tenant), tenant)
    }

    fn at(base_url: String, tenant: &ScimTenant) -> Self {
        // A fresh client per test: a connection dropped by a fault must not
        // be mistaken for a pooled one going stale.
        let http = reqwest::Client::builder().no_proxy().build().expect("HTTP client");
        Self { http, base_url, token: Some(tenant.token().to_owned()) }
    }

    fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    async fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> reqwest::Result<Reply> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/scim+json").body(body.to_string());
        }
        if let Some(version) = if_match {
            request = request.header("if-match", version);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok(Reply { status, headers, json })
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.try_send(method, path, body, None).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(body)).await
    }

    async fn patch(&self, path: &str, operations: &Value) -> Reply {
        self.send("PATCH", path, Some(&json!({"schemas": [PATCH_OP], "Operations": operations}))).await
    }

    /// Creates a user; its id.
    async fn create_user(&self, user_name: &str, roles: &[&str]) -> String {
        let reply = self.post("/Users", &user(user_name, roles)).await.expect(201);
        reply.json["id"].as_str().expect("an id").to_owned()
    }

    /// The ids of the users whose `userName` is this.
    async fn find_user(&self, user_name: &str) -> Vec<String> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", &format!("userName eq \"{user_name}\""))
            .finish();
        let reply = self.get(&format!("/Users?{query}")).await.expect(200);
        reply.resources().iter().map(|r| r["id"].as_str().expect("an id").to_owned()).collect()
    }

    /// Creates `count` users named `{prefix}{n}@example.com` in one bulk request.
    async fn bulk_create(&self, prefix: &str, count: usize) -> Reply {
        let operations: Vec<Value> = (0..count)
            .map(|n| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"), "data": user(&format!("{prefix}{n}@example.com"), &[])}))
            .collect();
        self.post("/Bulk", &json!({"schemas": [BULK_REQUEST], "Operations": operations})).await.expect(200)
    }
}

fn user(user_name: &str, roles: &[&str]) -> Value {
    let mut user = json!({
        "schemas": [USER],
        "userName": user_name,
        "displayName": user_name,
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "active": true,
    });
    if !roles.is_empty() {
        user["roles"] = roles.iter().map(|role| json!({"value": role})).collect();
    }
    user
}

fn role_values(resource: &Value) -> Vec<&str> {
    resource["roles"]
        .as_array()
        .map_or_else(Vec::new, |roles| roles.iter().filter_map(|r| r["value"].as_str()).collect())
}

// ---- the server and the launcher --------------------------------------

#[tokio::test]
async fn server_creates_lists_pages_and_patches_users() {
    let tenant = ScimTenant::new();
    let scim = Scim::direct(&tenant);

    let created = scim.post("/Users", &user("jane@example.com", &["admin"])).await.expect(201);
    let id = created.json["id"].as_str().expect("an id").to_owned();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "id {id}");
    let version = created.json["meta"]["version"].as_str().expect("meta.version").to_owned();
    assert_eq!(created.header("etag"), Some(version.as_str()));
    assert!(created.header("location").is_some_and(|l| l.ends_with(&format!("/Users/{id}"))));

    // userName is unique case-insensitively.
    let duplicate = scim.post("/Users", &user("JANE@example.com", &[])).await.expect(409);
    assert_eq!(duplicate.json["scimType"], "uniqueness");
    assert_eq!(scim.find_user("Jane@Example.com").await, [id.as_str()]);

    for n in 1..=4 {
        scim.create_user(&format!("user{n}@example.com"), &[]).await;
    }
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let page = scim.get(&format!("/Users?startIndex={start}&count=2")).await.expect(200);
        assert_eq!(page.json["totalResults"], 5);
        assert_eq!(page.json["startIndex"], start);
        assert_eq!(page.resources().len(), if start == 5 { 1 } else { 2 });
        seen.extend(page.resources().iter().map(|r| r["userName"].as_str().expect("userName").to_owned()));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "paging by startIndex visits every user once: {seen:?}");
    assert!(scim.get("/Users?startIndex=6&count=2").await.expect(200).resources().is_empty());
    assert_eq!(scim.get("/Users").await.expect(200).resources().len(), 5, "no count: everything");

    // PATCH by value: 204 without a body, with the new version.
    let patched = scim
        .patch(
            &format!("/Users/{id}"),
            &json!([
                {"op": "add", "path": "roles", "value": [{"value": "viewer"}]},
                {"op": "remove", "path": "roles[value eq \"admin\"]"},
            ]),
        )
        .await
        .expect(204);
    assert_eq!(patched.json, Value::Null);
    let new_version = patched.header("etag").expect("an ETag on 204").to_owned();
    assert_ne!(new_version, version);
    let read = scim.get(&format!("/Users/{id}")).await.expect(200);
    assert_eq!(role_values(&read.json), ["viewer"]);
    assert_eq!(read.json["meta"]["version"], new_version.as_str());

    // A stale version is refused.
    let body = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let stale = scim.try_send("PATCH", &format!("/Users/{id}"), Some(&body), Some(&version)).await.expect("answer");
    assert_eq!(stale.status, 412);
    let fresh = scim.try_send("PATCH", &format!("/Users/{id}"), Some(&body), Some(&new_version)).await.expect("answer");
    assert_eq!(fresh.status, 204);
}

#[tokio::test]
async fn tenants_are_isolated_on_one_server() {
    let (first, second) = (ScimTenant::new(), ScimTenant::new());
    assert_ne!(first.base_url(), second.base_url());
    let (a, b) = (Scim::direct(&first), Scim::direct(&second));

    let in_first = a.create_user("same@example.com", &[]).await;
    let in_second = b.create_user("same@example.com", &[]).await;
    assert_ne!(in_first, in_second);
    assert_eq!(a.get("/Users").await.expect(200).json["totalResults"], 1);
    assert_eq!(b.get("/Users").await.expect(200).json["totalResults"], 1);
    b.get(&format!("/Users/{in_first}")).await.expect(404);
    assert!(ScimTenant::new().base_url().starts_with(ScimServer::shared().origin()), "one server per test binary");
}

#[tokio::test]
async fn server_needs_the_token_except_for_its_configuration() {
    let tenant = ScimTenant::new();
    let anonymous = Scim::direct(&tenant).with_token(None);
    let refused = anonymous.get("/Users").await.expect(401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer realm=\"SCIM\""));
    Scim::direct(&tenant).with_token(Some("wrong")).get("/Users").await.expect(401);
    let config = anonymous.get("/ServiceProviderConfig").await.expect(200);
    assert_eq!(config.json["bulk"], json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 1_048_576}));
    assert_eq!(config.json["etag"]["supported"], true);
    assert_eq!(config.json["patch"]["supported"], true);
    assert_eq!(config.json["filter"]["supported"], true);
}

#[tokio::test]
async fn bulk_off_server_announces_and_refuses_bulk() {
    let server = ScimServer::shared_bulk_off();
    assert_ne!(server.origin(), ScimServer::shared().origin());
    let scim = Scim::direct(&server.tenant());
    let config = scim.get("/ServiceProviderConfig").await.expect(200);
    assert_eq!(config.json["bulk"]["supported"], false);
    assert_eq!(config.json["patch"]["supported"], true);
    let refused = scim.post("/Bulk", &json!({"schemas": [BULK_REQUEST], "Operations": []})).await.expect(501);
    assert_eq!(refused.json["detail"], "Bulk is not supported");
    // Single requests still work.
    scim.create_user("single@example.com", &[]).await;
}

#[tokio::test]
async fn server_with_its_own_configuration_stops_when_dropped() {
    let server = ScimServer::start(Some(std::path::Path::new(scim_server::SMALL_BULK_CONFIG)));
    let scim = Scim::direct(&server.tenant());
    let config = scim.get("/ServiceProviderConfig").await.expect(200);
    assert_eq!(config.json["bulk"]["maxOperations"], 3);
    let too_many = scim.post("/Bulk", &json!({"schemas": [BULK_REQUEST], "Operations": (0..4).map(|n| json!({"method": "POST", "path": "/Users", "bulkId": format!("b{n}"), "data": user(&format!("b{n}@example.com"), &[])})).collect::<Vec<_>>()})).await;
    assert_eq!(too_many.status, 413, "over maxOperations: {}", too_many.json);

    let address = server.origin().trim_start_matches("http://").to_owned();
    drop(server);
    // The same lifeline that stops the shared servers when the test binary exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(Instant::now() < deadline, "scim2-server still listening at {address} after its handle was dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[should_panic(expected = "run `scripts/test.sh`")]
fn missing_server_fails_and_says_how_to_install_it() {
    scim_server::server_binary(Some("/nonexistent/scim2-server".into()));
}

// ---- faults -------------------------------------------------------------

#[tokio::test]
async fn fault_429_answers_with_retry_after_and_forwards_nothing() {
    let tenant = ScimTenant::new();
    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.add_rule(
        FaultRule::new(Fault::TooManyRequests { retry_after: Some("2".to_owned()) })
            .method("POST")
            .path("/Users")
            .first(2),
    );
    let scim = Scim::via(&proxy, &tenant);
    let body = user("limited@example.com", &[]);
    for _ in 0..2 {
        let limited = scim.post("/Users", &body).await.expect(429);
        assert_eq!(limited.header("retry-after"), Some("2"));
    }
    let created = scim.post("/Users", &body).await.expect(201);
    // Locations name the proxy, as behind a load balancer.
    assert!(
        created.header("location").is_some_and(|l| l.starts_with(&proxy.origin())),
        "{:?}",
        created.header("location")
    );
    assert_eq!(Scim::direct(&tenant).find_user("limited@example.com").await.len(), 1);

    let statuses: Vec<_> = proxy.exchanges().iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Some(429), Some(429), Some(201)]);
    assert_eq!(proxy.count("POST", "/Users"), 3);
    let first = &proxy.requests()[0];
    assert_eq!(first.header("authorization"), Some(format!("Bearer {}", tenant.token()).as_str()));
    assert_eq!(first.json()["userName"], "limited@example.com");
}

#[tokio::test]
async fn fault_5xx_every_nth_with_json_and_html_bodies() {
    let tenant = ScimTenant::new();
    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.add_rule(FaultRule::new(Fault::HtmlStatus(502)).method("GET").path("/Users").every(2));
    proxy.add_rule(FaultRule::new(Fault::Status(503)).path("/Groups").first(1));
    let scim = Scim::via(&proxy, &tenant);

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let reply = scim.try_send("GET", "/Users", None, None).await.expect("an answer");
        if reply.status == 502 {
            assert_eq!(reply.header("content-type"), Some("text/html"));
            assert_eq!(reply.json, Value::Null, "not JSON");
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [200, 502, 200, 502]);

    let unavailable = scim.get("/Groups").await.expect(503);
    assert_eq!(unavailable.json["status"], "503");
    scim.get("/Groups").await.expect(200);
}

#[tokio::test]
async fn fault_drop_after_forwarding_is_carried_out_but_never_answered() {
    let tenant = ScimTenant::new();
    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.add_rule(FaultRule::new(Fault::DropAfterForwarding).method("POST").path("/Users").first(1));
    proxy.add_rule(FaultRule::new(Fault::DropBeforeForwarding).method("PATCH").first(1));
    let scim = Scim::via(&proxy, &tenant);
    let direct = Scim::direct(&tenant);

    let lost = scim.try_send("POST", "/Users", Some(&user("lost@example.com", &[])), None).await;
    assert!(lost.is_err(), "the client sees a broken connection, got status {:?}", lost.map(|r| r.status));
    let ids = direct.find_user("lost@example.com").await;
    assert_eq!(ids.len(), 1, "the server created the user all the same");
    // Retrying the create now meets the user the lost answer created.
    scim.post("/Users", &user("lost@example.com", &[])).await.expect(409);

    let body =
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Changed"}]});
    let path = format!("/Users/{}", ids[0]);
    assert!(scim.try_send("PATCH", &path, Some(&body), None).await.is_err());
    assert_eq!(direct.get(&path).await.expect(200).json["displayName"], "lost@example.com", "never forwarded");
    scim.try_send("PATCH", &path, Some(&body), None).await.expect("answer").expect(204);

    let exchanges = proxy.exchanges();
    assert_eq!(exchanges.iter().map(|e| e.status).collect::<Vec<_>>(), [None, Some(409), None, Some(204)]);
    assert_eq!(exchanges[0].fault, Some(Fault::DropAfterForwarding));
    assert_eq!(exchanges[2].fault, Some(Fault::DropBeforeForwarding));
}

// ---- quirks ---------------------------------------------------------------

#[tokio::test]
async fn quirk_group_members_unlisted() {
    let tenant = ScimTenant::new();
    let direct = Scim::direct(&tenant);
    let member = direct.create_user("member@example.com", &[]).await;
    let group = direct
        .post("/Groups", &json!({"schemas": [GROUP], "displayName": "engineering", "members": [{"value": member}]}))
        .await
        .expect(201);
    let group_id = group.json["id"].as_str().expect("an id");
    // scim2-server itself lists members, and never fills User.groups.
    assert_eq!(direct.get("/Groups").await.expect(200).resources()[0]["members"], json!([{"value": member}]));
    assert_eq!(direct.get(&format!("/Users/{member}")).await.expect(200).json.get("groups"), None);

    let proxy = FaultProxy::start(ScimServer::shared());
    let scim = Scim::via(&proxy, &tenant);
    assert_eq!(scim.get("/Groups").await.expect(200).resources()[0]["members"], json!([{"value": member}]));
    proxy.set_quirks(Quirks { group_members_unlisted: true, ..Quirks::default() });
    let listed = scim.get("/Groups").await.expect(200);
    assert_eq!(listed.resources()[0]["displayName"], "engineering");
    assert_eq!(listed.resources()[0]["members"], json!([]));
    let searched = scim
        .post("/Groups/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}))
        .await
        .expect(200);
    assert_eq!(searched.resources()[0]["members"], json!([]));
    let single = scim.get(&format!("/Groups/{group_id}")).await.expect(200);
    assert_eq!(single.json["members"], json!([{"value": member}]), "one group read still shows its members");
}

#[tokio::test]
async fn quirk_user_groups_listed() {
    let tenant = ScimTenant::new();
    let direct = Scim::direct(&tenant);
    let member = direct.create_user("grouped@example.com", &[]).await;
    let loner = direct.create_user("loner@example.com", &[]).await;
    let mut groups = Vec::new();
    for name in ["design", "engineering"] {
        let body = json!({"schemas": [GROUP], "displayName": name, "members": [{"value": member}]});
        groups.push(direct.post("/Groups", &body).await.expect(201).json["id"].as_str().expect("an id").to_owned());
    }

    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.set_quirks(Quirks { user_groups_listed: true, group_members_unlisted: true, ..Quirks::default() });
    let scim = Scim::via(&proxy, &tenant);
    let mut listed = scim.get(&format!("/Users/{member}")).await.expect(200).json["groups"].clone();
    listed.as_array_mut().expect("groups").sort_by_key(|g| g["display"].as_str().map(str::to_owned));
    assert_eq!(
        listed,
        json!([{"value": groups[0], "display": "design"}, {"value": groups[1], "display": "engineering"}])
    );
    let users = scim.get("/Users").await.expect(200);
    let loner_groups = users.resources().iter().find(|u| u["id"] == loner.as_str()).map(|u| u["groups"].clone());
    assert_eq!(loner_groups, Some(json!([])));
    assert!(scim.get("/Groups").await.expect(200).resources().iter().all(|g| g["members"] == json!([])));
}

#[tokio::test]
async fn quirk_roles_dropped() {
    let tenant = ScimTenant::new();
    let direct = Scim::direct(&tenant);
    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.set_quirks(Quirks { roles_dropped: true, ..Quirks::default() });
    let scim = Scim::via(&proxy, &tenant);

    // Sent roles are ignored...
    let created = scim.post("/Users", &user("new@example.com", &["admin"])).await.expect(201);
    assert_eq!(created.json.get("roles"), None);
    let id = created.json["id"].as_str().expect("an id").to_owned();
    assert_eq!(direct.get(&format!("/Users/{id}")).await.expect(200).json.get("roles"), None);

    // ...roles held are never shown...
    let held = direct.create_user("held@example.com", &["admin"]).await;
    assert_eq!(scim.get(&format!("/Users/{held}")).await.expect(200).json.get("roles"), None);
    assert!(scim.get("/Users").await.expect(200).resources().iter().all(|u| u.get("roles").is_none()));

    // ...and a PATCH of roles succeeds without changing them.
    let path = format!("/Users/{held}");
    scim.patch(&path, &json!([{"op": "add", "path": "roles", "value": [{"value": "viewer"}]}])).await.expect(204);
    scim.patch(
        &path,
        &json!([
            {"op": "remove", "path": "roles[value eq \"admin\"]"},
            {"op": "replace", "value": {"displayName": "Held", "roles": [{"value": "owner"}]}},
        ]),
    )
    .await
    .expect(204);
    let stored = direct.get(&path).await.expect(200);
    assert_eq!(role_values(&stored.json), ["admin"]);
    assert_eq!(stored.json["displayName"], "Held", "the other attributes still change");

    let bulk = json!({"schemas": [BULK_REQUEST], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": user("bulk@example.com", &["admin"])},
        {"method": "PATCH", "path": path, "data": {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "roles", "value": [{"value": "x"}]}]}},
    ]});
    let results = scim.post("/Bulk", &bulk).await.expect(200);
    assert_eq!(results.json["Operations"][1]["status"], "200", "{}", results.json);
    let bulk_id = direct.find_user("bulk@example.com").await;
    assert_eq!(direct.get(&format!("/Users/{}", bulk_id[0])).await.expect(200).json.get("roles"), None);
    assert_eq!(role_values(&direct.get(&path).await.expect(200).json), ["admin"]);
}

#[tokio::test]
async fn quirk_patch_answers_resource() {
    let tenant = ScimTenant::new();
    let proxy = FaultProxy::start(ScimServer::shared());
    let scim = Scim::via(&proxy, &tenant);
    let id = scim.create_user("patched@example.com", &[]).await;
    let path = format!("/Users/{id}");
    let rename = |name: &str| json!([{"op": "replace", "path": "displayName", "value": name}]);

    let plain = scim.patch(&path, &rename("First")).await.expect(204);
    assert_eq!(plain.json, Value::Null);
    proxy.set_quirks(Quirks { patch_answers_resource: true, ..Quirks::default() });
    let quirky = scim.patch(&path, &rename("Second")).await.expect(200);
    assert_eq!(quirky.json["id"], id.as_str());
    assert_eq!(quirky.json["displayName"], "Second");
    assert_eq!(quirky.header("etag"), quirky.json["meta"]["version"].as_str());
}

#[tokio::test]
async fn quirk_pages_capped_and_defaulted() {
    let tenant = ScimTenant::new();
    let direct = Scim::direct(&tenant);
    let created = direct.bulk_create("paged", 120).await;
    assert!(created.json["Operations"].as_array().expect("results").iter().all(|op| op["status"] == "201"));
    assert_eq!(direct.get("/Users").await.expect(200).resources().len(), 120, "scim2-server: everything by default");
    assert_eq!(direct.get("/Users?count=500").await.expect(200).resources().len(), 120);

    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.set_quirks(Quirks { pages_capped: true, ..Quirks::default() });
    let scim = Scim::via(&proxy, &tenant);
    let default_page = scim.get("/Users").await.expect(200);
    assert_eq!(default_page.resources().len() as u64, QUIRK_DEFAULT_PAGE);
    assert_eq!(default_page.json["totalResults"], 120);
    assert_eq!(scim.get("/Users?count=500").await.expect(200).resources().len() as u64, QUIRK_MAX_PAGE);
    assert_eq!(scim.get("/Users?count=50").await.expect(200).resources().len(), 50);
    let filtered = scim.get("/Users?filter=userName%20sw%20%22paged1%22&count=500").await.expect(200);
    assert_eq!(filtered.json["totalResults"], 31, "paged1, paged10..19, paged100..119");
    assert_eq!(filtered.resources().len(), 31, "the filter survives the rewrite");
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": 500});
    assert_eq!(scim.post("/Users/.search", &search).await.expect(200).resources().len() as u64, QUIRK_MAX_PAGE);
    let last = scim.get("/Users?startIndex=101&count=100").await.expect(200);
    assert_eq!(last.resources().len(), 20);
    let requests = proxy.requests();
    assert_eq!(requests[1].query.as_deref(), Some("count=500"), "records hold what the client sent");
    assert_eq!(requests.last().and_then(|r| r.query.as_deref()), Some("startIndex=101&count=100"));
}

#[tokio::test]
async fn quirk_no_etags() {
    let tenant = ScimTenant::new();
    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.set_quirks(Quirks { no_etags: true, ..Quirks::default() });
    let scim = Scim::via(&proxy, &tenant);

    let created = scim.post("/Users", &user("unversioned@example.com", &[])).await.expect(201);
    assert_eq!(created.header("etag"), None);
    assert_eq!(created.json["meta"].get("version"), None);
    assert!(created.json["meta"].get("location").is_some(), "the rest of meta stays");
    let id = created.json["id"].as_str().expect("an id");
    let read = scim.get(&format!("/Users/{id}")).await.expect(200);
    assert_eq!((read.header("etag"), read.json["meta"].get("version")), (None, None));
    assert!(scim.get("/Users").await.expect(200).resources().iter().all(|u| u["meta"].get("version").is_none()));
    assert_eq!(scim.get("/ServiceProviderConfig").await.expect(200).json["etag"]["supported"], false);

    // If-Match is ignored, as a service without versions does; scim2-server would refuse it.
    let body = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "X"}]});
    let path = format!("/Users/{id}");
    let patched = scim.try_send("PATCH", &path, Some(&body), Some("W/\"999\"")).await.expect("answer").expect(204);
    assert_eq!(patched.header("etag"), None);
    assert_eq!(
        Scim::direct(&tenant).try_send("PATCH", &path, Some(&body), Some("W/\"999\"")).await.expect("answer").status,
        412
    );

    let bulk = scim.bulk_create("versionless", 2).await;
    assert!(bulk.json["Operations"].as_array().expect("results").iter().all(|op| op.get("version").is_none()));
}

#[tokio::test]
async fn quirk_bulk_status_numeric() {
    let tenant = ScimTenant::new();
    let direct = Scim::direct(&tenant);
    let bulk = |names: &[&str]| {
        let operations: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(n, name)| json!({"method": "POST", "path": "/Users", "bulkId": format!("b{n}"), "data": user(name, &[])}))
            .collect();
        json!({"schemas": [BULK_REQUEST], "Operations": operations})
    };
    let plain = direct.post("/Bulk", &bulk(&["a@example.com"])).await.expect(200);
    assert_eq!(plain.json["Operations"][0]["status"], "201", "scim2-server sends the RFC's string");

    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.set_quirks(Quirks { bulk_status_numeric: true, ..Quirks::default() });
    let scim = Scim::via(&proxy, &tenant);
    let quirky = scim.post("/Bulk", &bulk(&["b@example.com", "a@example.com"])).await.expect(200);
    let results = quirky.json["Operations"].as_array().expect("results");
    assert_eq!(results[0]["status"], 201);
    assert_eq!(results[0]["bulkId"], "b0");
    assert_eq!(results[1]["status"], 409);
    assert_eq!(results[1]["response"]["status"], 409);
    assert_eq!(results[1]["response"]["scimType"], "uniqueness");
    scim.get("/Users").await.expect(200);
    assert_eq!(proxy.count("POST", "/Bulk"), 1);
    assert_eq!(proxy.count("GET", "/Users"), 1);
    assert_eq!(proxy.requests()[0].json()["Operations"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn quirk_config_needs_token() {
    let tenant = ScimTenant::new();
    let proxy = FaultProxy::start(ScimServer::shared());
    let anonymous = Scim::via(&proxy, &tenant).with_token(None);
    anonymous.get("/ServiceProviderConfig").await.expect(200);

    proxy.set_quirks(Quirks { config_needs_token: true, ..Quirks::default() });
    let refused = anonymous.get("/ServiceProviderConfig").await.expect(401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer realm=\"SCIM\""));
    Scim::via(&proxy, &tenant).with_token(Some("wrong")).get("/ServiceProviderConfig").await.expect(401);
    let config = Scim::via(&proxy, &tenant).get("/ServiceProviderConfig").await.expect(200);
    assert_eq!(config.json["bulk"]["supported"], true);
    Scim::direct(&tenant).with_token(None).get("/ServiceProviderConfig").await.expect(200);
}

#[tokio::test]
async fn every_quirk_at_once_still_serves_a_user_lifecycle() {
    let tenant = ScimTenant::new();
    let proxy = FaultProxy::start(ScimServer::shared());
    proxy.set_quirks(Quirks::all());
    let scim = Scim::via(&proxy, &tenant);
    let id = scim.create_user("all@example.com", &["admin"]).await;
    let patched =
        scim.patch(&format!("/Users/{id}"), &json!([{"op": "replace", "path": "active", "value": false}])).await;
    let patched = patched.expect(200);
    assert_eq!(patched.json["active"], false);
    assert_eq!((patched.header("etag"), patched.json.get("roles")), (None, None));
    assert_eq!(scim.get("/Users").await.expect(200).resources().len(), 1);
    scim.send("DELETE", &format!("/Users/{id}"), None).await.expect(204);
    assert!(Scim::direct(&tenant).find_user("all@example.com").await.is_empty());
}
