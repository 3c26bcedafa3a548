//! A stateful fake of the Networked community API, faithful to
//! `shared/seeds/000_*.txt` (bulk invite) and `001_*.txt` (addExternalUsers).
//!
//! - `POST /api/v1/admin/community/invites/emails` (JSON): `x-api-key`
//!   required (401 otherwise); `users` must be an array (400 otherwise);
//!   rows without a usable email are skipped (mentioned nowhere in the
//!   answer, as the vendor documents); a row with an empty name or a bad
//!   `tagId` fails with `error: {"message": ...}`; an email already a member
//!   (or twice in one request) fails with the documented `error: {}`;
//!   the others are invited, in `data.success` with `inviteId`, `timeStamp`
//!   and `user.userId`. HTTP 200 with partial success.
//! - `POST /api/v1/admin/community/addExternalUsers` (form-urlencoded):
//!   `email`, `name`, `roleId`, `method` (1 or 2) required (400 otherwise);
//!   `method=1` answers `data {email, inviteId, timeStamp}`, `method=2` only
//!   `{error:false, message}`. A duplicate is not documented; this fake
//!   answers HTTP 400 `{"error": true, "message": "User already exists"}`.
//! - `max_batch` answers 413 to a bulk request with more users.
//!
//! Every email processed is counted (`times_received`), so tests can prove
//! that nothing was sent twice.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::fake_common::{is_object_id, object_id, usable_email, ApiReply, FakeApi, FakeServer, RecordedRequest};

/// The API key the fake accepts by default.
pub const API_KEY: &str = "nw-test-key-5f1c2a9b7e";
/// The bulk endpoint.
pub const BULK_PATH: &str = "/api/v1/admin/community/invites/emails";
/// The one-user endpoint.
pub const SINGLE_PATH: &str = "/api/v1/admin/community/addExternalUsers";

/// A running fake Networked server.
pub type FakeNetworked = FakeServer<NetworkedApi>;

/// How a member got in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// The bulk endpoint, or seeded by a test.
    Bulk,
    /// `addExternalUsers` with `method=1`.
    Invite,
    /// `addExternalUsers` with `method=2`.
    Direct,
}

/// A member of the fake community.
#[derive(Clone, Debug)]
pub struct NetworkedMember {
    /// The email as received.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `tagId` / `roleId`.
    pub role_id: String,
    /// `monetizationPlanIds`, or the `planId`.
    pub plan_ids: Vec<String>,
    /// The invitation note.
    pub note: Option<String>,
    /// The direct-add password received (tests check it arrived).
    pub password: Option<String>,
    /// How the member got in.
    pub via: Via,
    /// Invite id (none for a direct add).
    pub invite_id: Option<String>,
    /// User id.
    pub user_id: String,
}

/// The fake's state.
pub struct NetworkedApi {
    /// The accepted `x-api-key`.
    pub api_key: String,
    /// Most users in one bulk request (413 above it).
    pub max_batch: Option<usize>,
    members: BTreeMap<String, NetworkedMember>,
    received: BTreeMap<String, usize>,
    counter: u64,
}

impl NetworkedApi {
    /// An empty community accepting `api_key`.
    pub fn new(api_key: &str) -> Self {
        Self {
            api_key: api_key.to_owned(),
            max_batch: None,
            members: BTreeMap::new(),
            received: BTreeMap::new(),
            counter: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn count(&mut self, email: &str) {
        *self.received.entry(email.trim().to_lowercase()).or_default() += 1;
    }

    fn bulk(&mut self, request: &RecordedRequest) -> ApiReply {
        if !request.content_type.as_deref().unwrap_or("").starts_with("application/json") {
            return refusal(400, "users must be an array");
        }
        let Ok(body) = serde_json::from_str::<Value>(&request.body) else {
            return refusal(400, "Invalid JSON body");
        };
        let Some(users) = body.get("users").and_then(Value::as_array) else {
            return refusal(400, "users must be an array");
        };
        let plans: Vec<String> = match body.get("monetizationPlanIds") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) if ids.iter().all(|id| id.as_str().is_some_and(is_object_id)) => {
                ids.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            Some(_) => return refusal(400, "monetizationPlanIds must be an array of plan ids"),
        };
        if let Some(max) = self.max_batch {
            if users.len() > max {
                return refusal(413, &format!("Too many users in one request (at most {max})"));
            }
        }
        let mut success = Vec::new();
        let mut failure = Vec::new();
        for user in users {
            let Some(email) = user.get("email").and_then(Value::as_str).filter(|e| usable_email(e)) else {
                continue; // "Entries without a usable email are skipped by the server."
            };
            self.count(email);
            let name = user.get("name").and_then(Value::as_str).map_or("", str::trim);
            let tag = user.get("tagId").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                failure.push(json!({"email": email, "error": {"message": "name is required"}}));
                continue;
            }
            if !is_object_id(tag) {
                failure.push(json!({"email": email, "error": {"message": "Invalid tagId"}}));
                continue;
            }
            let key = email.trim().to_lowercase();
            if self.members.contains_key(&key) {
                failure.push(json!({"email": email, "error": {}}));
                continue;
            }
            let n = self.next();
            let member = NetworkedMember {
                email: email.to_owned(),
                name: name.to_owned(),
                role_id: tag.to_owned(),
                plan_ids: plans.clone(),
                note: user.get("note").and_then(Value::as_str).map(str::to_owned),
                password: None,
                via: Via::Bulk,
                invite_id: Some(object_id(6, n)),
                user_id: object_id(7, n),
            };
            success.push(json!({
                "email": email,
                "data": {
                    "inviteId": member.invite_id,
                    "email": email,
                    "timeStamp": 1_711_800_000_000_u64 + n,
                    "user": {
                        "userId": member.user_id,
                        "name": name,
                        "image": "",
                        "location": "",
                        "title": "",
                        "industries": []
                    }
                }
            }));
            self.members.insert(key, member);
        }
        ApiReply::new(
            200,
            json!({"data": {"success": success, "failure": failure}, "error": false, "message": "Operation completed successfully"}),
        )
    }

    fn single(&mut self, request: &RecordedRequest) -> ApiReply {
        if !request.content_type.as_deref().unwrap_or("").starts_with("application/x-www-form-urlencoded") {
            return refusal(400, "email is required");
        }
        let form = request.form();
        let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let Some(email) = field("email").filter(|e| usable_email(e)) else {
            return refusal(400, "A valid email is required");
        };
        let Some(name) = field("name").filter(|n| !n.trim().is_empty()) else {
            return refusal(400, "name is required");
        };
        let Some(role) = field("roleId").filter(|r| is_object_id(r)) else {
            return refusal(400, "A valid roleId is required");
        };
        let plan = field("planId");
        if plan.as_deref().is_some_and(|p| !is_object_id(p)) {
            return refusal(400, "Invalid planId");
        }
        let direct = match field("method").as_deref() {
            Some("1") => false,
            Some("2") => true,
            _ => return refusal(400, "method must be 1 or 2"),
        };
        self.count(&email);
        let key = email.trim().to_lowercase();
        if self.members.contains_key(&key) {
            return refusal(400, "User already exists");
        }
        let n = self.next();
        let member = NetworkedMember {
            email: email.clone(),
            name,
            role_id: role,
            plan_ids: plan.into_iter().collect(),
            note: None,
            password: field("password"),
            via: if direct { Via::Direct } else { Via::Invite },
            invite_id: (!direct).then(|| object_id(6, n)),
            user_id: object_id(7, n),
        };
        let reply = if direct {
            json!({"error": false, "message": "Operation completed successfully"})
        } else {
            json!({
                "data": {"email": email, "inviteId": member.invite_id, "timeStamp": 1_753_697_870_000_u64 + n},
                "error": false,
                "message": "Operation completed successfully"
            })
        };
        self.members.insert(key, member);
        ApiReply::new(200, reply)
    }
}

fn refusal(status: u16, message: &str) -> ApiReply {
    ApiReply::new(status, json!({"error": true, "message": message}))
}

impl FakeApi for NetworkedApi {
    fn handle(&mut self, request: &RecordedRequest) -> ApiReply {
        let endpoint = match (request.method.as_str(), request.path.as_str()) {
            ("POST", BULK_PATH) => Self::bulk,
            ("POST", SINGLE_PATH) => Self::single,
            _ => return refusal(404, &format!("Cannot {} {}", request.method, request.path)),
        };
        if request.header("x-api-key") != Some(self.api_key.as_str()) {
            return refusal(401, "Unauthorized");
        }
        endpoint(self, request)
    }
}

impl FakeServer<NetworkedApi> {
    /// Starts an empty community accepting [`API_KEY`].
    pub fn start() -> Self {
        Self::start_with(NetworkedApi::new(API_KEY))
    }

    /// The members, sorted by lowercase email.
    pub fn members(&self) -> Vec<NetworkedMember> {
        self.api().members.values().cloned().collect()
    }

    /// One member by email (case-insensitive).
    pub fn member(&self, email: &str) -> Option<NetworkedMember> {
        self.api().members.get(&email.trim().to_lowercase()).cloned()
    }

    /// Adds a member as if invited earlier (not counted as received).
    pub fn add_member(&self, email: &str, name: &str) {
        let mut api = self.api();
        let n = api.next();
        api.members.insert(
            email.trim().to_lowercase(),
            NetworkedMember {
                email: email.to_owned(),
                name: name.to_owned(),
                role_id: object_id(1, 1),
                plan_ids: Vec::new(),
                note: None,
                password: None,
                via: Via::Bulk,
                invite_id: Some(object_id(6, n)),
                user_id: object_id(7, n),
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

    /// Answers 413 to bulk requests with more than `max` users.
    pub fn set_max_batch(&self, max: usize) {
        self.api().max_batch = Some(max);
    }
}
