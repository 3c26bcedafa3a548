//! How one outcome changes the state: the single rule used live during
//! apply, when replaying a journal, and by the `state` commands.

use super::{Resource, State, Status};
use crate::provider::{Operation, OperationKind, Outcome, RemoteIds};

impl State {
    /// Records `outcome` of `op` at time `now`.
    pub fn record(&mut self, op: &Operation, outcome: &Outcome, now: &str) {
        // A rename that was carried out (even in part) moves the record to
        // the new address first; one that failed leaves it where it was, so
        // the next plan proposes the rename again.
        if let Some(from) = &op.renamed_from {
            if matches!(outcome, Outcome::Updated | Outcome::Partial { .. } | Outcome::Gone { .. }) {
                if let Some(mut moved) = self.resources.remove(from) {
                    moved.address = op.address.clone();
                    self.resources.entry(op.address.clone()).or_insert(moved);
                }
            }
        }
        let existing = self.resources.get(&op.address);
        let created_at = existing.map_or_else(|| now.to_owned(), |r| r.created_at.clone());
        let resends = existing.map_or(0, |r| r.resends);
        let fresh = |status: Status, remote: RemoteIds, message: Option<String>| Resource {
            address: op.address.clone(),
            provider: op.address.provider().to_owned(),
            email: op.attributes.email.clone(),
            status,
            attributes: op.attributes.clone(),
            remote,
            created_at: created_at.clone(),
            updated_at: now.to_owned(),
            invited_at: Some(now.to_owned()),
            resends: resends + u32::from(op.kind == OperationKind::Resend),
            message,
        };
        match (op.kind, outcome) {
            (_, Outcome::Invited(remote)) => {
                let resource = fresh(Status::Invited, remote.clone(), None);
                self.resources.insert(op.address.clone(), resource);
            }
            (_, Outcome::Added(remote)) => {
                let resource = fresh(Status::Added, remote.clone(), None);
                self.resources.insert(op.address.clone(), resource);
            }
            (_, Outcome::Adopted { message, remote }) => {
                let mut resource = fresh(Status::Adopted, remote.clone(), Some(message.clone()));
                if let Some(old) = existing {
                    if remote.is_empty() {
                        resource.remote = old.remote.clone();
                    }
                    resource.invited_at.clone_from(&old.invited_at);
                }
                self.resources.insert(op.address.clone(), resource);
            }
            (_, Outcome::Updated) => {
                if let Some(resource) = self.resources.get_mut(&op.address) {
                    resource.attributes = op.attributes.clone();
                    resource.email.clone_from(&op.attributes.email);
                    now.clone_into(&mut resource.updated_at);
                }
            }
            (_, Outcome::Removed | Outcome::Gone { .. }) => {
                self.resources.remove(&op.address);
            }
            (_, Outcome::Deactivated(remote)) => {
                let mut resource = fresh(Status::Deactivated, remote.clone(), None);
                if let Some(old) = existing {
                    if remote.is_empty() {
                        resource.remote = old.remote.clone();
                    }
                    resource.invited_at.clone_from(&old.invited_at);
                }
                self.resources.insert(op.address.clone(), resource);
            }
            (_, Outcome::Partial { applied, remote, reason }) => {
                let status = existing.map_or(Status::Added, |r| r.status);
                let mut resource = fresh(status, remote.clone(), Some(format!("partly carried out: {reason}")));
                resource.attributes = (**applied).clone();
                if let Some(old) = existing {
                    if remote.is_empty() {
                        resource.remote = old.remote.clone();
                    }
                    resource.invited_at.clone_from(&old.invited_at);
                }
                self.resources.insert(op.address.clone(), resource);
            }
            (OperationKind::Invite | OperationKind::Resend, Outcome::Uncertain { reason }) => {
                // A resend of a known invitation stays invited: the first one arrived.
                if existing.is_some_and(|r| r.status != Status::Uncertain) {
                    return;
                }
                let resource = fresh(Status::Uncertain, RemoteIds::default(), Some(reason.clone()));
                self.resources.insert(op.address.clone(), resource);
            }
            // A refused invitation leaves no trace (or leaves an earlier
            // uncertain record as it was); a failed or uncertain update or
            // removal leaves the old record, so the next plan proposes it again.
            (_, Outcome::Failed { .. } | Outcome::Uncertain { .. }) => {}
        }
    }
}
