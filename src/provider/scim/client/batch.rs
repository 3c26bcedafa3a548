//! A batch: new users and removals through `/Bulk` where the service has
//! it, the rest as single requests, then one `PATCH /Groups/{id}` per
//! group for the joins and leaves of the whole batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::join_all;
use reqwest::Method;

use crate::provider::scim::bulk::{self, BulkItem, BulkOperation, BulkResponse, BulkResult};
use crate::provider::scim::mapping::{new_user, Managed, OnRemove};
use crate::provider::scim::outcome::{classify, Answer, Request};
use crate::provider::scim::patch::{deactivate, group_patches};
use crate::provider::scim::{group_path, BULK_PATH};
use crate::provider::{BatchError, BoxFuture, Operation, OperationKind, Outcome};

use super::user::{lost, Step};
use super::Scim;

/// What a request's operations become when the whole `/Bulk` request failed.
pub(super) fn chunk_lost(
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

pub(super) fn not_sent() -> Outcome {
    Outcome::Failed {
        reason: "not sent: an earlier operation of its /Bulk request reached the service's `failOnErrors` limit"
            .to_owned(),
    }
}

/// A user's change that succeeded beside failed group PATCH requests: the record
/// takes the memberships in force.
pub(super) fn partial(op: &Operation, step: &Step, failures: &[(String, String)]) -> Outcome {
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

impl Scim {
    /// Whether `op` can travel in a `/Bulk` request: a new user, or a
    /// removal of a recorded one.
    pub(super) fn bulkable(op: &Operation) -> bool {
        match op.kind {
            OperationKind::Invite | OperationKind::Resend => op.remote.user_id.is_none(),
            OperationKind::Remove => op.remote.user_id.is_some(),
            OperationKind::Update => false,
        }
    }

    /// Sends the bulkable operations (indexes into `batch`) through `/Bulk`;
    /// answers a step for each of them.
    pub(super) async fn send_bulk(
        &self,
        batch: &[Operation],
        indexes: &[usize],
        limits: &bulk::BulkLimits,
    ) -> Vec<(usize, Step)> {
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
    pub(super) async fn patch_groups(&self, steps: &[(usize, Step)]) -> HashMap<usize, Vec<(String, String)>> {
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

    pub(super) async fn send_batch(&self, batch: &[Operation]) -> Result<Vec<Outcome>, BatchError> {
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
}
