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
            // Only an invitation has gone out; an added, adopted or
            // imported member was never invited by memberctl.
            invited_at: (status == Status::Invited).then(|| now.to_owned()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::attributes::Attributes;

    fn recorded(state: &mut State, email: &str, user_id: &str) {
        let op = rename_op(email, None);
        let remote = RemoteIds { user_id: Some(user_id.to_owned()), ..RemoteIds::default() };
        state.record(&Operation { kind: OperationKind::Invite, ..op }, &Outcome::Added(remote), "t0");
    }

    fn rename_op(email: &str, from: Option<&str>) -> Operation {
        Operation {
            address: Address::new("directory", email),
            kind: OperationKind::Update,
            attributes: Attributes { email: email.to_owned(), ..Attributes::default() },
            repeat: false,
            remote: RemoteIds::default(),
            renamed_from: from.map(|f| Address::new("directory", f)),
        }
    }

    // Regression: #10: a rename moves the record only once it is done, and
    // the journaled operation (read back from JSON, as a replay does) moves
    // it the same way.
    #[test]
    fn a_rename_moves_the_record_once_done_and_only_then() {
        let mut state = State::new();
        recorded(&mut state, "old@example.com", "u1");
        let op = rename_op("new@example.com", Some("old@example.com"));
        let (old, new) = (Address::new("directory", "old@example.com"), op.address.clone());

        state.record(&op, &Outcome::Failed { reason: "refused".to_owned() }, "t1");
        state.record(&op, &Outcome::Uncertain { reason: "lost".to_owned() }, "t1");
        assert!(state.resources.contains_key(&old) && !state.resources.contains_key(&new));

        let replayed: Operation = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
        assert_eq!(replayed, op);
        state.record(&replayed, &Outcome::Updated, "t2");
        assert!(!state.resources.contains_key(&old));
        let moved = &state.resources[&new];
        assert_eq!(moved.address, new);
        assert_eq!(moved.email, "new@example.com");
        assert_eq!(moved.remote.user_id.as_deref(), Some("u1"));
        assert_eq!(moved.status, Status::Added);
        assert_eq!(moved.created_at, "t0");
    }
}
