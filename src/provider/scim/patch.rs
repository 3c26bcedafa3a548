//! PATCH request bodies (RFC 7644 §3.5.2) for Users and Groups.
//!
//! Single-valued attributes change with `replace` (or `remove` when they
//! are no longer wanted). Multi-valued ones (`roles`, `entitlements`,
//! `emails`, `phoneNumbers`, a group's `members`) change by value: `add`
//! with the new entries and `remove` with a value filter path per gone
//! entry, never a `replace` of the whole list, so entries memberctl does
//! not own survive, and services that refuse a list `replace` (many do for
//! group members) still accept the change.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::filter::value_path;
use super::mapping::{Manage, Managed, EMAIL_TYPE, PHONE_TYPE};
use super::resource::Member;
use super::{ENTERPRISE_USER_SCHEMA, PATCH_OP_SCHEMA};
use crate::attributes::Attributes;

/// A PATCH request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRequest {
    /// Always the `PatchOp` message URN.
    pub schemas: Vec<String>,
    /// The operations, applied in order.
    #[serde(rename = "Operations")]
    pub operations: Vec<PatchOperation>,
}

impl Default for PatchRequest {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// One PATCH operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchOperation {
    /// What to do.
    pub op: Op,
    /// Where (an attribute path, possibly with a value filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value to add or set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A PATCH operation's verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Add values (appended to a multi-valued attribute).
    Add,
    /// Remove the values the path selects.
    Remove,
    /// Set a single-valued attribute.
    Replace,
}

impl PatchOperation {
    fn add(path: &str, value: Value) -> Self {
        Self { op: Op::Add, path: Some(path.to_owned()), value: Some(value) }
    }

    fn remove(path: String) -> Self {
        Self { op: Op::Remove, path: Some(path), value: None }
    }

    fn replace(path: &str, value: Value) -> Self {
        Self { op: Op::Replace, path: Some(path.to_owned()), value: Some(value) }
    }
}

impl PatchRequest {
    /// A request with these operations.
    #[must_use]
    pub fn new(operations: Vec<PatchOperation>) -> Self {
        Self { schemas: vec![PATCH_OP_SCHEMA.to_owned()], operations }
    }

    /// Whether there is nothing to send.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Appends `other`'s operations (a reactivation and the attribute
    /// changes of a re-added user go in one request).
    pub fn extend(&mut self, other: PatchRequest) {
        self.operations.extend(other.operations);
    }
}

/// The path of the enterprise extension's manager.
fn manager_path() -> String {
    format!("{ENTERPRISE_USER_SCHEMA}:manager")
}

/// The PATCH that turns the `observed` user into the `desired` one, for the
/// attribute groups in `manage`. Both are in [`Attributes`] form (see
/// [`observed_attributes`](super::mapping::observed_attributes)); group
/// memberships are not part of it (they change through the Groups, see
/// [`group_patches`]), nor are `userName` and emails (see [`rename`]).
/// Empty when nothing differs.
#[must_use]
pub fn user_patch(observed: &Attributes, desired: &Attributes, manage: &Manage) -> PatchRequest {
    let mut ops = Vec::new();
    if manage.contains(Managed::Name) {
        if observed.name != desired.name {
            scalar(&mut ops, "displayName", desired.name.as_deref());
            scalar(&mut ops, "name.formatted", desired.name.as_deref());
        }
        if observed.first_name != desired.first_name {
            scalar(&mut ops, "name.givenName", desired.first_name.as_deref());
        }
        if observed.last_name != desired.last_name {
            scalar(&mut ops, "name.familyName", desired.last_name.as_deref());
        }
    }
    if manage.contains(Managed::Phone) && observed.phone != desired.phone {
        by_value(
            &mut ops,
            "phoneNumbers",
            observed.phone.as_slice(),
            desired.phone.as_slice(),
            |value| json!({"value": value, "type": PHONE_TYPE}),
        );
    }
    if manage.contains(Managed::Roles) {
        by_value(&mut ops, "roles", &observed.roles, &desired.roles, |value| json!({"value": value}));
    }
    if manage.contains(Managed::Entitlements) {
        by_value(&mut ops, "entitlements", &observed.plans, &desired.plans, |value| json!({"value": value}));
    }
    if manage.contains(Managed::Manager) && observed.manager_id != desired.manager_id {
        match &desired.manager_id {
            Some(id) => ops.push(PatchOperation::replace(&manager_path(), json!({"value": id}))),
            None => ops.push(PatchOperation::remove(manager_path())),
        }
    }
    PatchRequest::new(ops)
}

/// `replace` with the new value, or `remove` when there is none.
fn scalar(ops: &mut Vec<PatchOperation>, path: &str, value: Option<&str>) {
    ops.push(match value {
        Some(value) => PatchOperation::replace(path, json!(value)),
        None => PatchOperation::remove(path.to_owned()),
    });
}

/// Entries in `desired` and not in `observed` are added in one `add`;
/// entries only in `observed` are removed one value filter path each.
fn by_value<O: AsRef<str>, D: AsRef<str>>(
    ops: &mut Vec<PatchOperation>,
    attribute: &str,
    observed: &[O],
    desired: &[D],
    entry: impl Fn(&str) -> Value,
) {
    let (added, gone) = differences(observed, desired);
    if !added.is_empty() {
        ops.push(PatchOperation::add(attribute, Value::Array(added.iter().map(|v| entry(v)).collect())));
    }
    ops.extend(gone.iter().map(|value| PatchOperation::remove(value_path(attribute, value))));
}

/// `(in desired only, in observed only)`, each once and in their list's order.
fn differences<O: AsRef<str>, D: AsRef<str>>(observed: &[O], desired: &[D]) -> (Vec<String>, Vec<String>) {
    let observed: Vec<&str> = observed.iter().map(AsRef::as_ref).collect();
    let desired: Vec<&str> = desired.iter().map(AsRef::as_ref).collect();
    let once = |from: &[&str], without: &[&str]| {
        let mut out: Vec<String> = Vec::new();
        for &value in from {
            if !without.contains(&value) && !out.iter().any(|v| v == value) {
                out.push(value.to_owned());
            }
        }
        out
    };
    (once(&desired, &observed), once(&observed, &desired))
}

/// Deactivation: `replace active false`. The record is kept.
#[must_use]
pub fn deactivate() -> PatchRequest {
    PatchRequest::new(vec![PatchOperation::replace("active", json!(false))])
}

/// Reactivation of a user memberctl deactivated: `replace active true`.
#[must_use]
pub fn reactivate() -> PatchRequest {
    PatchRequest::new(vec![PatchOperation::replace("active", json!(true))])
}

/// A rename (`moved:`): `replace userName`, and the old address swapped for
/// the new one by value, so other addresses on the user survive.
/// `new_user_name` is the template rendered for `new_email`.
#[must_use]
pub fn rename(old_email: &str, new_email: &str, new_user_name: &str) -> PatchRequest {
    let mut ops = vec![PatchOperation::replace("userName", json!(new_user_name))];
    let (old_email, new_email) = (old_email.trim(), new_email.trim());
    if old_email != new_email {
        ops.push(PatchOperation::remove(value_path("emails", old_email)));
        ops.push(PatchOperation::add("emails", json!([{"value": new_email, "type": EMAIL_TYPE, "primary": true}])));
    }
    PatchRequest::new(ops)
}

/// The groups a user joins and leaves: `(joins, leaves)`.
#[must_use]
pub fn membership_changes(observed: &[String], desired: &[crate::attributes::Id]) -> (Vec<String>, Vec<String>) {
    differences(observed, desired)
}

/// One PATCH of a group, with the members it moves (so that its outcome can
/// be recorded on each of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPatch {
    /// The body.
    pub request: PatchRequest,
    /// The member ids this body adds.
    pub joins: Vec<String>,
    /// The member ids this body removes.
    pub leaves: Vec<String>,
}

/// The PATCH bodies for one group: `joins` in one `add` of `members` per
/// body, and each of `leaves` as a `remove` with path
/// `members[value eq "ID"]`; never a `replace`. Each body moves at most
/// `max_members` members (at least one), joins first. A join may be a
/// `bulkId:…` reference inside a `/Bulk` request. Repeated ids are sent once.
#[must_use]
pub fn group_patches(joins: &[String], leaves: &[String], max_members: usize) -> Vec<GroupPatch> {
    let max_members = max_members.max(1);
    let (joins, _) = differences::<&str, _>(&[], joins);
    let (leaves, _) = differences::<&str, _>(&[], leaves);
    let moves = joins.into_iter().map(|id| (true, id)).chain(leaves.into_iter().map(|id| (false, id)));
    let mut patches: Vec<GroupPatch> = Vec::new();
    let mut current = GroupPatch { request: PatchRequest::default(), joins: Vec::new(), leaves: Vec::new() };
    for (join, id) in moves {
        if join {
            current.joins.push(id);
        } else {
            current.leaves.push(id);
        }
        if current.joins.len() + current.leaves.len() == max_members {
            patches.push(finish(std::mem::replace(
                &mut current,
                GroupPatch { request: PatchRequest::default(), joins: Vec::new(), leaves: Vec::new() },
            )));
        }
    }
    if !current.joins.is_empty() || !current.leaves.is_empty() {
        patches.push(finish(current));
    }
    patches
}

/// Writes the body of a group patch from its member lists.
fn finish(mut patch: GroupPatch) -> GroupPatch {
    let mut ops = Vec::with_capacity(1 + patch.leaves.len());
    if !patch.joins.is_empty() {
        let members: Vec<Member> = patch.joins.iter().map(Member::id).collect();
        ops.push(PatchOperation::add("members", serde_json::to_value(members).expect("members serialize")));
    }
    ops.extend(patch.leaves.iter().map(|id| PatchOperation::remove(value_path("members", id))));
    patch.request = PatchRequest::new(ops);
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(roles: &[&str]) -> Attributes {
        Attributes {
            email: "ada@x.io".into(),
            roles: roles.iter().map(|r| (*r).into()).collect(),
            ..Attributes::default()
        }
    }

    fn wire(request: &PatchRequest) -> Value {
        serde_json::to_value(request).unwrap()
    }

    #[test]
    fn nothing_to_change_is_an_empty_patch() {
        let a = attrs(&["a", "b"]);
        let mut b = attrs(&["b", "a"]);
        b.positions = vec!["p".into()];
        assert!(user_patch(&a, &b, &Manage::all()).is_empty());
    }

    #[test]
    fn roles_change_by_value_and_never_by_replacing_the_list() {
        let patch = user_patch(&attrs(&["admin", "dev"]), &attrs(&["dev", "ops", "qa"]), &Manage::all());
        assert_eq!(
            wire(&patch),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "add", "path": "roles", "value": [{"value": "ops"}, {"value": "qa"}]},
                    {"op": "remove", "path": "roles[value eq \"admin\"]"}
                ]
            })
        );
    }

    #[test]
    fn every_managed_attribute_has_its_operation() {
        let observed = Attributes {
            email: "ada@x.io".into(),
            name: Some("Ada".into()),
            first_name: Some("Ada".into()),
            last_name: Some("L".into()),
            phone: Some("1".into()),
            plans: vec!["free".into()],
            manager_id: Some("m1".into()),
            ..Attributes::default()
        };
        let desired = Attributes {
            email: "ada@x.io".into(),
            name: Some("Ada Lovelace".into()),
            first_name: Some("Ada".into()),
            last_name: None,
            phone: Some("2".into()),
            plans: vec!["pro".into()],
            manager_id: Some("m\"2".into()),
            ..Attributes::default()
        };
        assert_eq!(
            wire(&user_patch(&observed, &desired, &Manage::all()))["Operations"],
            json!([
                {"op": "replace", "path": "displayName", "value": "Ada Lovelace"},
                {"op": "replace", "path": "name.formatted", "value": "Ada Lovelace"},
                {"op": "remove", "path": "name.familyName"},
                {"op": "add", "path": "phoneNumbers", "value": [{"value": "2", "type": "mobile"}]},
                {"op": "remove", "path": "phoneNumbers[value eq \"1\"]"},
                {"op": "add", "path": "entitlements", "value": [{"value": "pro"}]},
                {"op": "remove", "path": "entitlements[value eq \"free\"]"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                 "value": {"value": "m\"2"}}
            ])
        );
        let no_manager = Attributes { manager_id: None, ..desired.clone() };
        let only_manager = user_patch(&desired, &no_manager, &Manage::all());
        assert_eq!(
            wire(&only_manager)["Operations"],
            json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}])
        );
        // Attributes that are not managed are left alone.
        assert!(user_patch(&observed, &desired, &Manage::only(&[Managed::Roles, Managed::Groups])).is_empty());
    }

    #[test]
    fn a_new_phone_on_a_user_without_one_is_only_an_add() {
        let observed = Attributes { email: "a@x.io".into(), ..Attributes::default() };
        let desired = Attributes { phone: Some("+1 555".into()), ..observed.clone() };
        assert_eq!(
            wire(&user_patch(&observed, &desired, &Manage::all()))["Operations"],
            json!([{"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555", "type": "mobile"}]}])
        );
    }

    #[test]
    fn lifecycle_patches() {
        assert_eq!(wire(&deactivate())["Operations"], json!([{"op": "replace", "path": "active", "value": false}]));
        let mut readd = reactivate();
        readd.extend(user_patch(&attrs(&[]), &attrs(&["r"]), &Manage::all()));
        assert_eq!(
            wire(&readd)["Operations"],
            json!([
                {"op": "replace", "path": "active", "value": true},
                {"op": "add", "path": "roles", "value": [{"value": "r"}]}
            ])
        );
        assert_eq!(
            wire(&rename("old@x.io", " new@x.io", "new@x.io"))["Operations"],
            json!([
                {"op": "replace", "path": "userName", "value": "new@x.io"},
                {"op": "remove", "path": "emails[value eq \"old@x.io\"]"},
                {"op": "add", "path": "emails", "value": [{"value": "new@x.io", "type": "work", "primary": true}]}
            ])
        );
        assert_eq!(rename("a@x.io", "a@x.io", "a").operations.len(), 1);
    }

    #[test]
    fn membership_changes_are_joins_and_leaves() {
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let desired: Vec<crate::attributes::Id> = vec!["g2".into(), "g3".into()];
        assert_eq!(membership_changes(&ids(&["g1", "g2"]), &desired), (ids(&["g3"]), ids(&["g1"])));
    }

    #[test]
    fn group_patches_add_and_remove_members_and_never_replace() {
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let patches = group_patches(&ids(&["u1", "bulkId:n1", "u1"]), &ids(&["u\"9"]), 10);
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].joins, ids(&["u1", "bulkId:n1"]));
        assert_eq!(patches[0].leaves, ids(&["u\"9"]));
        assert_eq!(
            wire(&patches[0].request),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "bulkId:n1"}]},
                    {"op": "remove", "path": "members[value eq \"u\\\"9\"]"}
                ]
            })
        );
    }

    #[test]
    fn group_patches_are_chunked_to_at_most_n_members() {
        let joins: Vec<String> = (0..5).map(|i| format!("j{i}")).collect();
        let leaves: Vec<String> = (0..3).map(|i| format!("l{i}")).collect();
        let patches = group_patches(&joins, &leaves, 3);
        assert_eq!(patches.len(), 3);
        let moved: Vec<usize> = patches.iter().map(|p| p.joins.len() + p.leaves.len()).collect();
        assert_eq!(moved, vec![3, 3, 2]);
        assert_eq!(patches[1].joins, vec!["j3".to_owned(), "j4".to_owned()]);
        assert_eq!(patches[1].leaves, vec!["l0".to_owned()]);
        assert_eq!(
            wire(&patches[1].request)["Operations"],
            json!([
                {"op": "add", "path": "members", "value": [{"value": "j3"}, {"value": "j4"}]},
                {"op": "remove", "path": "members[value eq \"l0\"]"}
            ])
        );
        for patch in &patches {
            assert!(patch.request.operations.iter().all(|op| op.op != Op::Replace));
        }
        assert!(group_patches(&[], &[], 3).is_empty());
        assert_eq!(group_patches(&joins, &[], 0).len(), 5);
    }
}
