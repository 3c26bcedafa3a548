//! `/Bulk` requests and responses (RFC 7644 §3.7).
//!
//! Operations are packed into requests of at most `maxOperations`
//! operations and `maxPayloadSize` bytes of serialized JSON. A new user's
//! group memberships travel in the same request as its `POST`: one PATCH per
//! group per request, whose members are `bulkId:` references to the users
//! created in that request (a reference only resolves inside its own
//! request). So creates without memberships take exactly ⌈n / chunk⌉
//! requests, and memberships cost one extra operation per group per chunk.
//!
//! Responses are matched to requests by `bulkId`, falling back to method
//! and path in order for services that leave it out on non-`POST`
//! operations; operations a `failOnErrors` cut-off skipped are told apart
//! from operations whose fate is unknown.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::outcome::{classify, Answer, Request};
use super::patch::{group_patches, PatchRequest};
use super::resource::{Member, User};
use super::{group_path, user_path, wire, BULK_REQUEST_SCHEMA, USERS_PATH};

/// How big one `/Bulk` request may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkLimits {
    /// Most operations in one request (at least one).
    pub max_operations: usize,
    /// Most bytes of serialized JSON in one request body.
    pub max_payload_size: usize,
    /// The `failOnErrors` sent: the service stops after this many errors.
    pub fail_on_errors: u32,
}

impl BulkLimits {
    /// Limits of `max_operations` operations and `max_payload_size` bytes.
    ///
    /// `failOnErrors` is set to the operation limit, so one request is never
    /// cut short by the errors memberctl expects and handles per operation
    /// (a `409` for a user that already exists, adopted afterwards), while a
    /// service that applies it anyway is still understood (see
    /// [`read_response`]).
    #[must_use]
    pub fn new(max_operations: usize, max_payload_size: usize) -> Self {
        let max_operations = max_operations.max(1);
        Self { max_operations, max_payload_size, fail_on_errors: u32::try_from(max_operations).unwrap_or(u32::MAX) }
    }
}

/// An HTTP method inside a `/Bulk` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Create.
    Post,
    /// Replace.
    Put,
    /// Modify.
    Patch,
    /// Delete.
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One operation of a `/Bulk` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    /// The method.
    pub method: Method,
    /// The client's id for the operation, unique within its request; every
    /// operation carries one so its answer can be matched.
    pub bulk_id: String,
    /// The resource path (`/Users`, `/Users/{id}`, `/Groups/{id}`).
    pub path: String,
    /// The `If-Match` version, for a resource read in this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl BulkOperation {
    /// `POST /Users` creating `user`.
    #[must_use]
    pub fn create_user(bulk_id: impl Into<String>, user: &User) -> Self {
        Self {
            method: Method::Post,
            bulk_id: bulk_id.into(),
            path: USERS_PATH.to_owned(),
            version: None,
            data: Some(serde_json::to_value(user).expect("a user serializes")),
        }
    }

    /// `PATCH /Users/{id}`.
    #[must_use]
    pub fn patch_user(bulk_id: impl Into<String>, id: &str, patch: &PatchRequest, version: Option<String>) -> Self {
        Self {
            method: Method::Patch,
            bulk_id: bulk_id.into(),
            path: user_path(id),
            version,
            data: Some(serde_json::to_value(patch).expect("a patch serializes")),
        }
    }

    /// `DELETE /Users/{id}`.
    #[must_use]
    pub fn delete_user(bulk_id: impl Into<String>, id: &str) -> Self {
        Self { method: Method::Delete, bulk_id: bulk_id.into(), path: user_path(id), version: None, data: None }
    }

    /// `PATCH /Groups/{id}` (never with a version: a group PATCH carries no
    /// `If-Match`).
    #[must_use]
    pub fn patch_group(bulk_id: impl Into<String>, id: &str, patch: &PatchRequest) -> Self {
        Self {
            method: Method::Patch,
            bulk_id: bulk_id.into(),
            path: group_path(id),
            version: None,
            data: Some(serde_json::to_value(patch).expect("a patch serializes")),
        }
    }
}

/// A `/Bulk` request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRequest {
    /// Always the `BulkRequest` message URN.
    pub schemas: Vec<String>,
    /// The service stops after this many errors.
    pub fail_on_errors: u32,
    /// The operations.
    #[serde(rename = "Operations")]
    pub operations: Vec<BulkOperation>,
}

impl BulkRequest {
    fn empty(fail_on_errors: u32) -> Self {
        Self { schemas: vec![BULK_REQUEST_SCHEMA.to_owned()], fail_on_errors, operations: Vec::new() }
    }
}

/// What is to be done through `/Bulk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkItem {
    /// Create a user and make it a member of `groups` (group ids), through
    /// a PATCH of each group in the same request.
    CreateUser {
        /// The operation's `bulkId`, also the user's reference (`bulkId:…`).
        bulk_id: String,
        /// The new user (boxed: it is much larger than an operation).
        user: Box<User>,
        /// The groups it joins.
        groups: Vec<String>,
    },
    /// Any other operation, sent as it is. Its `bulkId` must not start with
    /// `join-`, which the packing uses for the group joins it adds.
    Operation(BulkOperation),
}

/// A group PATCH the packing added to a request for its new users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupJoin {
    /// The PATCH operation's `bulkId`.
    pub bulk_id: String,
    /// The group's id.
    pub group_id: String,
    /// The `bulkId`s of the users it adds.
    pub members: Vec<String>,
}

/// One request, ready to send, and the group joins in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkChunk {
    /// The body.
    pub request: BulkRequest,
    /// The group PATCH operations the packing added (listed last in `request`).
    pub group_joins: Vec<GroupJoin>,
}

/// An item that cannot go through `/Bulk` because even alone (with its group
/// joins) it breaks a limit. It is an error for that item; the caller may
/// send it as single requests instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Oversized {
    /// The item's `bulkId`.
    pub bulk_id: String,
    /// Its size alone in a request, in bytes.
    pub size: usize,
    /// The operations it needs alone.
    pub operations: usize,
}

/// The requests for a list of items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkPlan {
    /// The requests, in order.
    pub chunks: Vec<BulkChunk>,
    /// The items that fit in no request.
    pub oversized: Vec<Oversized>,
}

fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).expect("bulk bodies serialize").len()
}

/// The reference to a user created in the same request.
#[must_use]
pub fn reference(bulk_id: &str) -> String {
    format!("bulkId:{bulk_id}")
}

/// A request being filled, with its exact serialized size kept up to date:
/// compact JSON adds an operation as its own bytes plus one comma, and a
/// member to a group's `add` list the same way.
struct Packing {
    operations: Vec<BulkOperation>,
    joins: Vec<GroupJoin>,
    join_index: HashMap<String, usize>,
    size: usize,
    count: usize,
}

impl Packing {
    fn new(empty_size: usize) -> Self {
        Self { operations: Vec::new(), joins: Vec::new(), join_index: HashMap::new(), size: empty_size, count: 0 }
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The bytes and operations `item` would add.
    fn cost(&self, item_size: usize, groups: &[String], user_bulk_id: &str, chunk: usize) -> (usize, usize) {
        let comma = usize::from(!self.is_empty());
        let mut bytes = item_size + comma;
        let mut operations = 1;
        let member = json_len(&Member::id(reference(user_bulk_id)));
        for group in groups {
            if self.join_index.contains_key(group) {
                bytes += 1 + member;
            } else {
                bytes += 1 + json_len(&join_operation(chunk, group, &[user_bulk_id.to_owned()]));
                operations += 1;
            }
        }
        (bytes, operations)
    }

    fn push(&mut self, operation: BulkOperation, groups: &[String], bytes: usize, operations: usize) {
        let user_bulk_id = operation.bulk_id.clone();
        self.operations.push(operation);
        for group in groups {
            if let Some(&index) = self.join_index.get(group) {
                self.joins[index].members.push(user_bulk_id.clone());
            } else {
                self.join_index.insert(group.clone(), self.joins.len());
                self.joins.push(GroupJoin {
                    bulk_id: String::new(),
                    group_id: group.clone(),
                    members: vec![user_bulk_id.clone()],
                });
            }
        }
        self.size += bytes;
        self.count += operations;
    }

    fn finish(self, chunk: usize, fail_on_errors: u32) -> BulkChunk {
        let mut request = BulkRequest::empty(fail_on_errors);
        request.operations = self.operations;
        let mut joins = self.joins;
        for join in &mut joins {
            let operation = join_operation(chunk, &join.group_id, &join.members);
            join.bulk_id.clone_from(&operation.bulk_id);
            request.operations.push(operation);
        }
        debug_assert_eq!(json_len(&request), self.size, "the running size is exact");
        BulkChunk { request, group_joins: joins }
    }
}

/// The group PATCH adding `members` (user `bulkId`s) in request `chunk`.
fn join_operation(chunk: usize, group: &str, members: &[String]) -> BulkOperation {
    let references: Vec<String> = members.iter().map(|id| reference(id)).collect();
    let patch = group_patches(&references, &[], usize::MAX).pop().map(|p| p.request).unwrap_or_default();
    BulkOperation::patch_group(format!("join-{chunk}-{group}"), group, &patch)
}

/// Packs `items` into requests within `limits`, keeping their order. Each
/// new user's group joins go in its request, one PATCH per group per
/// request, after the operations.
#[must_use]
pub fn plan(items: Vec<BulkItem>, limits: &BulkLimits) -> BulkPlan {
    let empty_size = json_len(&BulkRequest::empty(limits.fail_on_errors));
    let mut out = BulkPlan::default();
    let mut current = Packing::new(empty_size);
    for item in items {
        let (operation, groups) = match item {
            BulkItem::CreateUser { bulk_id, user, mut groups } => {
                let mut seen = HashSet::new();
                groups.retain(|g| seen.insert(g.clone()));
                (BulkOperation::create_user(bulk_id, &user), groups)
            }
            BulkItem::Operation(operation) => (operation, Vec::new()),
        };
        let item_size = json_len(&operation);
        let chunk = out.chunks.len();
        let (bytes, operations) = current.cost(item_size, &groups, &operation.bulk_id, chunk);
        if current.size + bytes <= limits.max_payload_size && current.count + operations <= limits.max_operations {
            current.push(operation, &groups, bytes, operations);
            continue;
        }
        let alone = Packing::new(empty_size);
        let alone_chunk = if current.is_empty() { chunk } else { chunk + 1 };
        let (bytes, operations) = alone.cost(item_size, &groups, &operation.bulk_id, alone_chunk);
        if empty_size + bytes > limits.max_payload_size || operations > limits.max_operations {
            out.oversized.push(Oversized { bulk_id: operation.bulk_id, size: empty_size + bytes, operations });
            continue;
        }
        if !current.is_empty() {
            out.chunks.push(std::mem::replace(&mut current, alone).finish(chunk, limits.fail_on_errors));
        }
        let chunk = out.chunks.len();
        let (bytes, operations) = current.cost(item_size, &groups, &operation.bulk_id, chunk);
        current.push(operation, &groups, bytes, operations);
    }
    if !current.is_empty() {
        out.chunks.push(current.finish(out.chunks.len(), limits.fail_on_errors));
    }
    out
}

/// A `/Bulk` response body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct BulkResponse {
    /// One entry per operation the service performed (or tried).
    #[serde(rename = "Operations", default)]
    pub operations: Vec<BulkResponseOperation>,
}

impl BulkResponse {
    /// Reads a response body leniently (names in any case, statuses as
    /// strings, numbers or `{"code": …}`).
    pub fn parse(body: Value) -> Result<Self, serde_json::Error> {
        wire::from_value(body)
    }
}

/// The answer to one operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkResponseOperation {
    /// The method, as the service echoes it.
    #[serde(default)]
    pub method: Option<String>,
    /// The `bulkId`, when the service echoes it.
    #[serde(default, deserialize_with = "wire::lenient_string")]
    pub bulk_id: Option<String>,
    /// The resource's version after the operation.
    #[serde(default)]
    pub version: Option<String>,
    /// The resource's URI.
    #[serde(default)]
    pub location: Option<String>,
    /// The HTTP status of the operation.
    #[serde(default, deserialize_with = "wire::lenient_status")]
    pub status: Option<u16>,
    /// The body (an error's `scimType` and `detail`, or the resource).
    #[serde(default)]
    pub response: Option<Value>,
}

/// What became of one requested operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkResult {
    /// The service answered for it.
    Answered {
        /// The operation's status (`None` when unreadable).
        status: Option<u16>,
        /// The resource's id, from the body or else the location.
        id: Option<String>,
        /// The resource's new version.
        version: Option<String>,
        /// The body, if any.
        response: Option<Value>,
    },
    /// Not performed: it came after the `failOnErrors` cut-off.
    NotSent,
    /// No answer, and no cut-off explains it: it may or may not have happened.
    Missing,
}

impl BulkResult {
    /// What the result means for an operation that was a `request`:
    /// answered operations read as single answers do (a create's id coming
    /// from the location when the entry carries no body), an operation the
    /// response does not mention is uncertain, and `None` means not sent (to
    /// be sent again, in a later request).
    #[must_use]
    pub fn answer(&self, request: Request) -> Option<Answer> {
        match self {
            BulkResult::Answered { status, id, version, response } => {
                Some(match classify(request, *status, response.as_ref()) {
                    Answer::Created { id: created, version: created_version, resource } => Answer::Created {
                        id: created.or_else(|| id.clone()),
                        version: created_version.or_else(|| version.clone()),
                        resource,
                    },
                    other => other,
                })
            }
            BulkResult::Missing => {
                Some(Answer::Uncertain { reason: "the /Bulk response does not mention this operation".to_owned() })
            }
            BulkResult::NotSent => None,
        }
    }
}

/// The id at the end of a resource location (`…/Users/2819c223` →
/// `2819c223`).
#[must_use]
pub fn id_from_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next().unwrap_or("");
    path.rsplit('/').find(|segment| !segment.is_empty()).map(str::to_owned)
}

/// Pairs each operation of `request` with what became of it, in request
/// order: by `bulkId` first, then answers without a known `bulkId` by method
/// and path in order. Unanswered operations after the last answered one are
/// [`BulkResult::NotSent`] when the errors reached `failOnErrors`, else (and
/// wherever they sit before an answered one) [`BulkResult::Missing`].
#[must_use]
pub fn read_response(request: &BulkRequest, response: &BulkResponse) -> Vec<(String, BulkResult)> {
    let operations = &request.operations;
    let mut answer_of: Vec<Option<&BulkResponseOperation>> = vec![None; operations.len()];
    let index: HashMap<&str, usize> = operations.iter().enumerate().map(|(i, op)| (op.bulk_id.as_str(), i)).collect();
    let mut unmatched = Vec::new();
    for answer in &response.operations {
        match answer.bulk_id.as_deref().and_then(|id| index.get(id)) {
            Some(&i) if answer_of[i].is_none() => answer_of[i] = Some(answer),
            _ => unmatched.push(answer),
        }
    }
    for answer in unmatched {
        let fits = |op: &BulkOperation| {
            answer.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(op.method.name()))
                && (op.method == Method::Post
                    || answer.location.as_deref().is_none_or(|l| l.trim_end_matches('/').ends_with(&op.path)))
        };
        if let Some(i) = (0..operations.len()).find(|&i| answer_of[i].is_none() && fits(&operations[i])) {
            answer_of[i] = Some(answer);
        }
    }
    let errors = answer_of.iter().flatten().filter(|a| a.status.is_some_and(|s| s >= 400)).count();
    let cut_off = errors >= usize::try_from(request.fail_on_errors).unwrap_or(usize::MAX);
    let last_answered = answer_of.iter().rposition(Option::is_some);
    operations
        .iter()
        .zip(answer_of)
        .enumerate()
        .map(|(i, (op, answer))| {
            let result = match answer {
                Some(answer) => BulkResult::Answered {
                    status: answer.status,
                    id: answer
                        .response
                        .as_ref()
                        .and_then(|body| body.get("id"))
                        .and_then(wire::as_string)
                        .or_else(|| answer.location.as_deref().and_then(id_from_location))
                        .filter(|_| answer.status.is_some_and(|s| s < 300)),
                    version: answer.version.clone(),
                    response: answer.response.clone(),
                },
                None if cut_off && last_answered.is_none_or(|last| i > last) => BulkResult::NotSent,
                None => BulkResult::Missing,
            };
            (op.bulk_id.clone(), result)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::attributes::Attributes;
    use crate::provider::scim::mapping::{new_user, ScimSettings};
    use crate::provider::scim::patch::deactivate;

    fn user(n: usize) -> User {
        new_user(&Attributes { email: format!("user{n}@x.io"), ..Attributes::default() }, &ScimSettings::default())
    }

    fn create(n: usize, groups: &[&str]) -> BulkItem {
        BulkItem::CreateUser {
            bulk_id: format!("u{n}"),
            user: Box::new(user(n)),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn a_request_goes_on_the_wire_as_the_rfc_shows() {
        let plan = plan(
            vec![
                create(1, &["g1"]),
                BulkItem::Operation(BulkOperation::patch_user("p1", "id 1", &deactivate(), Some("W/\"2\"".into()))),
                BulkItem::Operation(BulkOperation::delete_user("d1", "id2")),
            ],
            &BulkLimits::new(10, 1_000_000),
        );
        assert!(plan.oversized.is_empty());
        assert_eq!(plan.chunks.len(), 1);
        assert_eq!(
            serde_json::to_value(&plan.chunks[0].request).unwrap(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "failOnErrors": 10,
                "Operations": [
                    {"method": "POST", "bulkId": "u1", "path": "/Users", "data": serde_json::to_value(user(1)).unwrap()},
                    {"method": "PATCH", "bulkId": "p1", "path": "/Users/id%201", "version": "W/\"2\"",
                     "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                              "Operations": [{"op": "replace", "path": "active", "value": false}]}},
                    {"method": "DELETE", "bulkId": "d1", "path": "/Users/id2"},
                    {"method": "PATCH", "bulkId": "join-0-g1", "path": "/Groups/g1",
                     "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                              "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:u1"}]}]}}
                ]
            })
        );
        assert_eq!(
            plan.chunks[0].group_joins,
            vec![GroupJoin { bulk_id: "join-0-g1".into(), group_id: "g1".into(), members: vec!["u1".into()] }]
        );
    }

    #[test]
    fn creates_without_memberships_take_ceil_n_over_chunk_requests() {
        let items: Vec<BulkItem> = (0..25).map(|n| create(n, &[])).collect();
        let plan = plan(items, &BulkLimits::new(10, usize::MAX));
        let sizes: Vec<usize> = plan.chunks.iter().map(|c| c.request.operations.len()).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let ids: Vec<&str> =
            plan.chunks.iter().flat_map(|c| c.request.operations.iter().map(|o| o.bulk_id.as_str())).collect();
        let expected: Vec<String> = (0..25).map(|n| format!("u{n}")).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn memberships_add_one_patch_per_group_per_chunk_within_the_operation_limit() {
        let items: Vec<BulkItem> = (0..6).map(|n| create(n, &["g1", "g2"])).collect();
        let plan = plan(items, &BulkLimits::new(5, usize::MAX));
        // Each chunk: 3 users + 2 group PATCHes = 5 operations.
        assert_eq!(plan.chunks.len(), 2);
        for (i, chunk) in plan.chunks.iter().enumerate() {
            assert_eq!(chunk.request.operations.len(), 5);
            assert_eq!(chunk.group_joins.len(), 2);
            let first = 3 * i;
            let members: Vec<String> = (first..first + 3).map(|n| format!("u{n}")).collect();
            assert_eq!(chunk.group_joins[0].members, members);
            assert_eq!(chunk.group_joins[1].group_id, "g2");
            // The references resolve within the chunk: every member is created in it.
            let created: HashSet<&str> = chunk
                .request
                .operations
                .iter()
                .filter(|o| o.method == Method::Post)
                .map(|o| o.bulk_id.as_str())
                .collect();
            assert!(chunk.group_joins.iter().flat_map(|j| &j.members).all(|m| created.contains(m.as_str())));
        }
    }

    #[test]
    fn chunks_respect_the_payload_size_exactly() {
        let items: Vec<BulkItem> =
            (0..40).map(|n| create(n, if n % 2 == 0 { &["g1"] } else { &["g2", "g3"] })).collect();
        let limit = 2_000;
        let plan = plan(items, &BulkLimits::new(1000, limit));
        assert!(plan.oversized.is_empty());
        assert!(plan.chunks.len() > 1);
        let mut users = 0;
        for chunk in &plan.chunks {
            let size = serde_json::to_vec(&chunk.request).unwrap().len();
            assert!(size <= limit, "{size} > {limit}");
            users += chunk.request.operations.iter().filter(|o| o.method == Method::Post).count();
        }
        assert_eq!(users, 40);
    }

    #[test]
    fn chunks_are_packed_greedily_up_to_the_payload_size() {
        let limit = 2_000;
        let plan = plan((0..20).map(|n| create(n, &[])).collect(), &BulkLimits::new(1000, limit));
        assert!(plan.chunks.len() > 1);
        for pair in plan.chunks.windows(2) {
            let size = serde_json::to_vec(&pair[0].request).unwrap().len();
            let next = serde_json::to_vec(&pair[1].request.operations[0]).unwrap().len();
            // The next chunk's first operation (plus its comma) would not have fitted.
            assert!(size <= limit && size + 1 + next > limit, "{size} + {next}");
        }
    }

    #[test]
    fn an_operation_too_large_alone_is_an_error_for_it_only() {
        let mut big = user(1);
        big.display_name = Some("x".repeat(5_000));
        let items = vec![
            create(0, &[]),
            BulkItem::CreateUser { bulk_id: "big".into(), user: Box::new(big), groups: Vec::new() },
            create(2, &[]),
            create(3, &["g1", "g2", "g3"]),
        ];
        let plan = plan(items, &BulkLimits::new(3, 2_000));
        assert_eq!(plan.oversized.len(), 2);
        assert_eq!(plan.oversized[0].bulk_id, "big");
        assert!(plan.oversized[0].size > 5_000);
        // Four operations alone: more than the limit of three.
        assert_eq!(plan.oversized[1].bulk_id, "u3");
        assert_eq!(plan.oversized[1].operations, 4);
        let sent: Vec<&str> =
            plan.chunks.iter().flat_map(|c| c.request.operations.iter().map(|o| o.bulk_id.as_str())).collect();
        assert_eq!(sent, vec!["u0", "u2"]);
    }

    fn request(ids: &[(&str, Method, &str)], fail_on_errors: u32) -> BulkRequest {
        BulkRequest {
            schemas: vec![BULK_REQUEST_SCHEMA.into()],
            fail_on_errors,
            operations: ids
                .iter()
                .map(|(id, method, path)| BulkOperation {
                    method: *method,
                    bulk_id: (*id).to_owned(),
                    path: (*path).to_owned(),
                    version: None,
                    data: None,
                })
                .collect(),
        }
    }

    #[test]
    fn responses_match_by_bulk_id_and_read_every_status_shape() {
        let request =
            request(&[("a", Method::Post, "/Users"), ("b", Method::Post, "/Users"), ("c", Method::Post, "/Users")], 10);
        let response = BulkResponse::parse(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"],
            "operations": [
                {"method": "POST", "bulkId": "c", "status": {"code": "201"}, "location": "https://x/v2/Users/id-c"},
                {"method": "POST", "bulkId": "a", "status": "201", "location": "https://x/v2/Users/id-a",
                 "version": "W/\"1\""},
                {"method": "POST", "bulkId": "b", "status": 409,
                 "response": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "scimType": "uniqueness",
                              "status": "409", "detail": "userName taken"}}
            ]
        }))
        .unwrap();
        let results = read_response(&request, &response);
        assert_eq!(
            results[0],
            (
                "a".to_owned(),
                BulkResult::Answered {
                    status: Some(201),
                    id: Some("id-a".into()),
                    version: Some("W/\"1\"".into()),
                    response: None
                }
            )
        );
        let BulkResult::Answered { status: Some(409), id: None, response: Some(body), .. } = &results[1].1 else {
            panic!("{results:?}");
        };
        assert_eq!(body["scimType"], "uniqueness");
        assert!(matches!(&results[2].1, BulkResult::Answered { status: Some(201), id: Some(id), .. } if id == "id-c"));
    }

    #[test]
    fn answers_without_bulk_ids_match_by_method_and_path_in_order() {
        let request = request(
            &[
                ("p1", Method::Patch, "/Users/u1"),
                ("p2", Method::Patch, "/Users/u2"),
                ("d", Method::Delete, "/Users/u3"),
            ],
            10,
        );
        let response = BulkResponse::parse(json!({"Operations": [
            {"method": "DELETE", "status": "204"},
            {"method": "PATCH", "location": "https://x/Users/u2", "status": "200",
             "response": {"id": "u2", "userName": "b"}},
            {"method": "PATCH", "status": "200"}
        ]}))
        .unwrap();
        let results = read_response(&request, &response);
        assert!(matches!(&results[0].1, BulkResult::Answered { status: Some(200), response: None, .. }));
        assert!(matches!(&results[1].1, BulkResult::Answered { id: Some(id), response: Some(_), .. } if id == "u2"));
        assert!(matches!(&results[2].1, BulkResult::Answered { status: Some(204), .. }));
    }

    #[test]
    fn operations_after_a_fail_on_errors_cut_off_are_not_sent_not_uncertain() {
        let ops = [
            ("a", Method::Post, "/Users"),
            ("b", Method::Post, "/Users"),
            ("c", Method::Post, "/Users"),
            ("d", Method::Post, "/Users"),
        ];
        let response = BulkResponse::parse(json!({"Operations": [
            {"bulkId": "a", "status": "201", "location": "/Users/1"},
            {"bulkId": "b", "status": "400", "response": {"scimType": "invalidValue"}}
        ]}))
        .unwrap();
        let cut = read_response(&request(&ops, 1), &response);
        assert_eq!(cut[2].1, BulkResult::NotSent);
        assert_eq!(cut[3].1, BulkResult::NotSent);
        // With the threshold not reached, silence is unexplained: uncertain.
        let uncut = read_response(&request(&ops, 5), &response);
        assert_eq!(uncut[2].1, BulkResult::Missing);
        // A hole before the last answer is never explained by the cut-off.
        let holed = BulkResponse::parse(json!({"Operations": [
            {"bulkId": "b", "status": "400"}, {"bulkId": "c", "status": "201"}
        ]}))
        .unwrap();
        let holed = read_response(&request(&ops, 1), &holed);
        assert_eq!(holed[0].1, BulkResult::Missing);
        assert_eq!(holed[3].1, BulkResult::NotSent);
        // Nothing answered at all and nothing failed: all unknown.
        let silent = read_response(&request(&ops, 1), &BulkResponse::default());
        assert!(silent.iter().all(|(_, r)| *r == BulkResult::Missing));
    }

    #[test]
    fn a_response_captured_from_scim2_server_reads_per_operation() {
        // scim2-server 0.8.3's answer to a create, a duplicate create, a
        // delete of an unknown user and a group join by `bulkId:`.
        let request = request(
            &[
                ("u1", Method::Post, "/Users"),
                ("u2", Method::Post, "/Users"),
                ("d1", Method::Delete, "/Users/nope"),
                ("join-0-0bcd", Method::Patch, "/Groups/0bcd"),
            ],
            10,
        );
        let response = BulkResponse::parse(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"],
            "Operations": [
                {"method": "POST", "bulkId": "u1", "version": "W/\"10\"",
                 "location": "http://127.0.0.1:18765/v2/Users/1ad5b3afbce74289842797f1e8c716ed", "status": "201"},
                {"method": "POST", "bulkId": "u2", "response": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409",
                    "scimType": "uniqueness",
                    "detail": "One or more of the attribute values are already in use or are reserved"},
                 "status": "409"},
                {"method": "DELETE", "bulkId": "d1", "location": "http://127.0.0.1:18765/v2/Users/nope",
                 "response": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "404",
                              "detail": "User 'nope' not found"},
                 "status": "404"},
                {"method": "PATCH", "bulkId": "join-0-0bcd", "version": "W/\"12\"",
                 "location": "http://127.0.0.1:18765/v2/Groups/0bcd", "status": "200"}
            ]
        }))
        .unwrap();
        let results = read_response(&request, &response);
        let statuses: Vec<Option<u16>> = results
            .iter()
            .map(|(_, r)| match r {
                BulkResult::Answered { status, .. } => *status,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(statuses, vec![Some(201), Some(409), Some(404), Some(200)]);
        assert!(matches!(&results[0].1,
            BulkResult::Answered { id: Some(id), .. } if id == "1ad5b3afbce74289842797f1e8c716ed"));
        // An error's location is not an id of anything created.
        assert!(matches!(&results[2].1, BulkResult::Answered { id: None, .. }));
    }

    #[test]
    fn bulk_results_read_as_answers() {
        let created = BulkResult::Answered {
            status: Some(201),
            id: Some("u1".into()),
            version: Some("W/\"1\"".into()),
            response: None,
        };
        assert_eq!(
            created.answer(Request::CreateUser),
            Some(Answer::Created { id: Some("u1".into()), version: Some("W/\"1\"".into()), resource: None })
        );
        let exists = BulkResult::Answered {
            status: Some(409),
            id: None,
            version: None,
            response: Some(json!({"scimType": "uniqueness"})),
        };
        assert_eq!(exists.answer(Request::CreateUser), Some(Answer::Exists { detail: None }));
        let gone = BulkResult::Answered { status: Some(404), id: None, version: None, response: None };
        assert_eq!(gone.answer(Request::DeleteUser), Some(Answer::Gone));
        assert!(matches!(BulkResult::Missing.answer(Request::PatchGroup), Some(Answer::Uncertain { .. })));
        assert_eq!(BulkResult::NotSent.answer(Request::PatchUser), None);
    }

    #[test]
    fn ids_come_from_locations() {
        assert_eq!(id_from_location("https://x/scim/v2/Users/2819c223/").as_deref(), Some("2819c223"));
        assert_eq!(id_from_location("/Users/abc?x=1").as_deref(), Some("abc"));
        assert_eq!(id_from_location(""), None);
    }
}
