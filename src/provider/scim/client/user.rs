//! One user's change: create (adopting on a 409), update, re-add, remove
//! and rename, each as single requests, with the groups it then joins or
//! leaves.

use reqwest::Method;

use crate::address::normalize_email;
use crate::attributes::Attributes;
use crate::provider::scim::mapping::{
    managed_view, new_user, observed_attributes, same_user_name, user_email, Managed, OnRemove,
};
use crate::provider::scim::outcome::{classify, Answer, Request};
use crate::provider::scim::patch::{deactivate, membership_changes, reactivate, rename, user_patch, PatchRequest};
use crate::provider::scim::resource::User;
use crate::provider::scim::{user_path, wire, USERS_PATH};
use crate::provider::{BatchError, Operation, OperationKind, Outcome, RemoteIds};

use super::Scim;

/// What one user's own requests achieved, before its group PATCH requests.
pub(super) struct Step {
    /// The outcome if every group PATCH succeeds.
    pub(super) outcome: Outcome,
    /// The user's id, when its groups are to change.
    pub(super) user_id: Option<String>,
    /// Groups to join.
    pub(super) joins: Vec<String>,
    /// Groups to leave.
    pub(super) leaves: Vec<String>,
}

impl Step {
    pub(super) fn only(outcome: Outcome) -> Self {
        Self { outcome, user_id: None, joins: Vec::new(), leaves: Vec::new() }
    }
}

/// An error that stops one user's change, not the batch.
pub(super) fn lost(error: &BatchError) -> Outcome {
    if error.uncertain {
        Outcome::Uncertain { reason: error.message.clone() }
    } else {
        Outcome::Failed { reason: error.message.clone() }
    }
}

pub(super) fn remote(id: &str) -> RemoteIds {
    RemoteIds { user_id: Some(id.to_owned()), ..RemoteIds::default() }
}

impl Scim {
    /// The group moves that take a user from `current` (unknown: `None`) to
    /// the desired groups.
    pub(super) fn moves(&self, current: Option<&[String]>, desired: &Attributes) -> (Vec<String>, Vec<String>) {
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
    pub(super) async fn converge(
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
    pub(super) fn rename_patch(&self, user: &User, email: &str) -> PatchRequest {
        let user_name = self.mapping.user_name.render(email);
        let current = user_email(user);
        if same_user_name(&user.user_name, &user_name) && normalize_email(&current) == normalize_email(email) {
            return PatchRequest::default();
        }
        rename(&current, email, &user_name)
    }

    /// Adopts the user `match_on` finds after a 409, and patches the managed
    /// differences in the same run.
    pub(super) async fn adopt(&self, op: &Operation, detail: Option<String>) -> Step {
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
    pub(super) async fn create(&self, op: &Operation) -> Step {
        let user = new_user(&op.attributes, &self.mapping);
        let body = serde_json::to_value(&user).expect("a user serializes");
        let answer = match self.call(Method::POST, USERS_PATH, Some(&body), None).await {
            Ok((status, body)) => classify(Request::CreateUser, Some(status), body.as_ref()),
            Err(e) => return Step::only(lost(&e)),
        };
        self.created(op, answer).await
    }

    /// What the answer to a create means for `op`.
    pub(super) async fn created(&self, op: &Operation, answer: Answer) -> Step {
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
    pub(super) async fn update(&self, op: &Operation, id: &str, reactivating: bool) -> Step {
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
    pub(super) async fn remove(&self, op: &Operation) -> Step {
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

    pub(super) fn removed(&self, id: &str, answer: Answer) -> Outcome {
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
    pub(super) async fn user_id(&self, op: &Operation) -> Result<Option<String>, BatchError> {
        if let Some(id) = &op.remote.user_id {
            return Ok(Some(id.clone()));
        }
        Ok(self.lookup(&op.attributes.email).await?.and_then(|u| u.id))
    }

    /// One operation as single requests.
    pub(super) async fn single(&self, op: &Operation) -> Step {
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
}
