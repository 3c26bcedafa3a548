//! A stateful fake of the Aptly bulk-invite API, faithful to
//! `shared/seeds/002_*.txt`.
//!
//! `POST /auth/v1/user/bulk-invite` (JSON): `Authorization: Bearer <token>`
//! required (401 otherwise); the body is validated the way a `NestJS`
//! `ValidationPipe` with `forbidNonWhitelisted` would (400 with a list of
//! messages): `tenantId` must be this tenant, each user needs non-empty
//! `firstName`/`lastName`, an `email`, `roleIds`/`positionIds` arrays of
//! strings, `groups` of `{groupId, isPrimaryOrg}`, an `existingUser`
//! object, optional `mobilePhone`/`managerId` strings, and nothing else.
//! Each user gets a `data.results[]` entry: `"Invitation sent successfully"`,
//! `"Email already exists"` (also for the second copy within one request), or
//! `"Invalid email"`; `total`/`successful`/`failed` add up. `max_batch`
//! answers 413 above it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::fake_common::{usable_email, ApiReply, FakeApi, FakeServer, RecordedRequest};

/// The bearer token the fake accepts by default.
pub const TOKEN: &str = "aptly-test-token-93c1e0d2";
/// The tenant the fake serves by default.
pub const TENANT_ID: &str = "42db2b59-b9c6-4705-a0d9-916e597cd4aa";
/// The endpoint.
pub const PATH: &str = "/auth/v1/user/bulk-invite";

/// A running fake Aptly server.
pub type FakeAptly = FakeServer<AptlyApi>;

/// A user of the fake tenant.
#[derive(Clone, Debug)]
pub struct AptlyMember {
    /// The email as received.
    pub email: String,
    /// `firstName`.
    pub first_name: String,
    /// `lastName`.
    pub last_name: String,
    /// `mobilePhone`.
    pub mobile_phone: Option<String>,
    /// `roleIds`.
    pub role_ids: Vec<String>,
    /// `groups` as `(groupId, isPrimaryOrg)`.
    pub groups: Vec<(String, bool)>,
    /// `managerId`.
    pub manager_id: Option<String>,
    /// `positionIds`.
    pub position_ids: Vec<String>,
    /// `existingUser`.
    pub existing_user: Value,
}

/// The fake's state.
pub struct AptlyApi {
    /// The accepted bearer token.
    pub token: String,
    /// The tenant id.
    pub tenant_id: String,
    /// Most users in one request (413 above it).
    pub max_batch: Option<usize>,
    members: BTreeMap<String, AptlyMember>,
    received: BTreeMap<String, usize>,
}

impl AptlyApi {
    /// An empty tenant accepting `token`.
    pub fn new(token: &str, tenant_id: &str) -> Self {
        Self {
            token: token.to_owned(),
            tenant_id: tenant_id.to_owned(),
            max_batch: None,
            members: BTreeMap::new(),
            received: BTreeMap::new(),
        }
    }

    fn invite(&mut self, request: &RecordedRequest) -> ApiReply {
        if !request.content_type.as_deref().unwrap_or("").starts_with("application/json") {
            return bad_request(&["tenantId must be a UUID".to_owned(), "users must be an array".to_owned()]);
        }
        let Ok(body) = serde_json::from_str::<Value>(&request.body) else {
            return bad_request(&["Unexpected token in JSON".to_owned()]);
        };
        let mut problems = Vec::new();
        let Some(object) = body.as_object() else {
            return bad_request(&["body must be an object".to_owned()]);
        };
        for key in object.keys() {
            if key != "tenantId" && key != "users" {
                problems.push(format!("property {key} should not exist"));
            }
        }
        match object.get("tenantId").and_then(Value::as_str) {
            Some(tenant) if tenant == self.tenant_id => {}
            Some(_) => {
                return ApiReply::new(
                    400,
                    json!({"statusCode": 400, "message": "Tenant not found", "error": "Bad Request"}),
                )
            }
            None => problems.push("tenantId must be a UUID".to_owned()),
        }
        let users = object.get("users").and_then(Value::as_array).cloned().unwrap_or_else(|| {
            problems.push("users must be an array".to_owned());
            Vec::new()
        });
        for (index, user) in users.iter().enumerate() {
            check_user(index, user, &mut problems);
        }
        if !problems.is_empty() {
            return bad_request(&problems);
        }
        if let Some(max) = self.max_batch {
            if users.len() > max {
                return ApiReply::new(
                    413,
                    json!({"statusCode": 413, "message": format!("At most {max} users per request"), "error": "Payload Too Large"}),
                );
            }
        }
        let mut results = Vec::new();
        let (mut successful, mut failed) = (0, 0);
        for user in &users {
            let email = user["email"].as_str().unwrap_or("").to_owned();
            let key = email.trim().to_lowercase();
            *self.received.entry(key.clone()).or_default() += 1;
            let (success, message) = if !usable_email(&email) {
                (false, "Invalid email")
            } else if let std::collections::btree_map::Entry::Vacant(slot) = self.members.entry(key) {
                let strings = |v: &Value| {
                    v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
                };
                slot.insert(AptlyMember {
                    email: email.clone(),
                    first_name: user["firstName"].as_str().unwrap_or("").to_owned(),
                    last_name: user["lastName"].as_str().unwrap_or("").to_owned(),
                    mobile_phone: user.get("mobilePhone").and_then(Value::as_str).map(str::to_owned),
                    role_ids: strings(&user["roleIds"]),
                    groups: user["groups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|g| (g["groupId"].as_str().unwrap_or("").to_owned(), g["isPrimaryOrg"] == true))
                        .collect(),
                    manager_id: user.get("managerId").and_then(Value::as_str).map(str::to_owned),
                    position_ids: strings(&user["positionIds"]),
                    existing_user: user["existingUser"].clone(),
                });
                (true, "Invitation sent successfully")
            } else {
                (false, "Email already exists")
            };
            if success {
                successful += 1;
            } else {
                failed += 1;
            }
            results.push(json!({"email": email, "success": success, "message": message}));
        }
        ApiReply::new(
            200,
            json!({
                "statusCode": 200,
                "timestamp": "2025-06-25T06:16:48.664Z",
                "message": "Success",
                "data": {"total": users.len(), "successful": successful, "failed": failed, "results": results}
            }),
        )
    }
}

fn bad_request(messages: &[String]) -> ApiReply {
    ApiReply::new(400, json!({"statusCode": 400, "message": messages, "error": "Bad Request"}))
}

fn check_user(index: usize, user: &Value, problems: &mut Vec<String>) {
    const FIELDS: [&str; 9] = [
        "firstName",
        "lastName",
        "email",
        "mobilePhone",
        "roleIds",
        "groups",
        "managerId",
        "positionIds",
        "existingUser",
    ];
    let at = |field: &str| format!("users.{index}.{field}");
    let Some(object) = user.as_object() else {
        problems.push(format!("users.{index} must be an object"));
        return;
    };
    for key in object.keys() {
        if !FIELDS.contains(&key.as_str()) {
            problems.push(format!("{} should not exist", at(key)));
        }
    }
    for field in ["firstName", "lastName"] {
        if object.get(field).and_then(Value::as_str).is_none_or(|v| v.trim().is_empty()) {
            problems.push(format!("{} should not be empty", at(field)));
        }
    }
    if object.get("email").and_then(Value::as_str).is_none() {
        problems.push(format!("{} must be an email", at("email")));
    }
    for field in ["mobilePhone", "managerId"] {
        if object.get(field).is_some_and(|v| !v.is_string()) {
            problems.push(format!("{} must be a string", at(field)));
        }
    }
    for field in ["roleIds", "positionIds"] {
        if !object.get(field).and_then(Value::as_array).is_some_and(|ids| ids.iter().all(Value::is_string)) {
            problems.push(format!("{} must be an array of strings", at(field)));
        }
    }
    let groups_ok = object.get("groups").and_then(Value::as_array).is_some_and(|groups| {
        groups.iter().all(|g| {
            g.as_object().is_some_and(|g| {
                g.len() == 2
                    && g.get("groupId").is_some_and(Value::is_string)
                    && g.get("isPrimaryOrg").is_some_and(Value::is_boolean)
            })
        })
    });
    if !groups_ok {
        problems.push(format!("{} must be an array of {{groupId, isPrimaryOrg}}", at("groups")));
    }
    if !object.get("existingUser").is_some_and(Value::is_object) {
        problems.push(format!("{} must be an object", at("existingUser")));
    }
}

impl FakeApi for AptlyApi {
    fn handle(&mut self, request: &RecordedRequest) -> ApiReply {
        if request.method != "POST" || request.path != PATH {
            return ApiReply::new(
                404,
                json!({"statusCode": 404, "message": format!("Cannot {} {}", request.method, request.path), "error": "Not Found"}),
            );
        }
        let expected = format!("Bearer {}", self.token);
        if request.header("authorization") != Some(expected.as_str()) {
            return ApiReply::new(401, json!({"statusCode": 401, "message": "Unauthorized"}));
        }
        self.invite(request)
    }
}

impl FakeServer<AptlyApi> {
    /// Starts an empty tenant [`TENANT_ID`] accepting [`TOKEN`].
    pub fn start() -> Self {
        Self::start_with(AptlyApi::new(TOKEN, TENANT_ID))
    }

    /// The users, sorted by lowercase email.
    pub fn members(&self) -> Vec<AptlyMember> {
        self.api().members.values().cloned().collect()
    }

    /// One user by email (case-insensitive).
    pub fn member(&self, email: &str) -> Option<AptlyMember> {
        self.api().members.get(&email.trim().to_lowercase()).cloned()
    }

    /// Adds a user as if invited earlier (not counted as received).
    pub fn add_member(&self, email: &str, first_name: &str, last_name: &str) {
        self.api().members.insert(
            email.trim().to_lowercase(),
            AptlyMember {
                email: email.to_owned(),
                first_name: first_name.to_owned(),
                last_name: last_name.to_owned(),
                mobile_phone: None,
                role_ids: Vec::new(),
                groups: Vec::new(),
                manager_id: None,
                position_ids: Vec::new(),
                existing_user: json!({}),
            },
        );
    }

    /// How many times an email reached the fake in a processed request.
    pub fn times_received(&self, email: &str) -> usize {
        self.api().received.get(&email.trim().to_lowercase()).copied().unwrap_or(0)
    }

    /// Every email processed, lowercase, with how many times.
    pub fn received(&self) -> BTreeMap<String, usize> {
        self.api().received.clone()
    }

    /// Emails processed more than once.
    pub fn received_twice(&self) -> Vec<String> {
        self.api().received.iter().filter(|(_, n)| **n > 1).map(|(e, _)| e.clone()).collect()
    }

    /// Answers 413 to requests with more than `max` users.
    pub fn set_max_batch(&self, max: usize) {
        self.api().max_batch = Some(max);
    }
}
