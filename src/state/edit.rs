//! Hand edits of the state: `memberctl state rm`, `state import` and
//! `state mark-done`. Each edit says what a person did or wants recorded;
//! this module turns it into the same journaled record an apply makes, so
//! the CLI never has to invent provider outcomes.

use std::collections::BTreeMap;

use super::{Recorder, State, StateError, Status};
use crate::address::Address;
use crate::attributes::Attributes;
use crate::provider::{Operation, OperationKind, Outcome, RemoteIds};

/// One edit of the state that no provider call made: by hand, or observed
/// by refresh (and then carried in a saved plan).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum Edit {
    /// Forget an address; the provider is not contacted.
    Forget {
        /// The address to forget.
        address: Address,
    },
    /// Record a member that already exists at the provider, so it is never
    /// invited. An invitation id means an invitation is out (it may be
    /// resent); a user id means the member is there; neither: adopted.
    Import {
        /// The address.
        address: Address,
        /// The configured attributes.
        attributes: Attributes,
        /// The provider's ids, when known.
        remote: RemoteIds,
    },
    /// What refresh observed at the provider: the record takes the observed
    /// attributes; an uncertain send the listing shows is settled as adopted.
    Observed {
        /// The address.
        address: Address,
        /// The attributes the provider holds (unobserved fields as recorded).
        attributes: Attributes,
        /// The provider's ids.
        remote: RemoteIds,
        /// Whether this settles an uncertain send.
        settled: bool,
    },
    /// A rename done by hand (`memberctl state mv`): the record moves to
    /// `address` whole (status, ids, timestamps, resends) and takes the new
    /// email. Never in a saved plan.
    #[serde(skip)]
    Rename {
        /// The new address.
        address: Address,
        /// The address the record is under.
        from: Address,
    },
    /// A manual invitation or update carried out by hand: the record takes
    /// the configured attributes.
    DoneByHand {
        /// The address.
        address: Address,
        /// The attributes now in force at the provider.
        attributes: Attributes,
        /// Whether it was an update of a recorded member (else an invitation).
        update: bool,
    },
}

impl Edit {
    /// The address the edit is about.
    #[must_use]
    pub fn address(&self) -> &Address {
        match self {
            Edit::Forget { address }
            | Edit::Import { address, .. }
            | Edit::Observed { address, .. }
            | Edit::Rename { address, .. }
            | Edit::DoneByHand { address, .. } => address,
        }
    }
}

/// Checks `edits` against `state` and records them, journaled, in one write
/// through the recorder `begin` starts (only once they all pass). Answers
/// the new state.
pub fn record(
    state: State,
    edits: Vec<Edit>,
    begin: impl FnOnce(State) -> Result<Recorder, StateError>,
) -> Result<State, StateError> {
    check(&state, &edits)?;
    let mut recorder = begin(state)?;
    journal(&mut recorder, edits)?;
    Ok(recorder.finish()?.0)
}

/// Journals `edits`, already [`check`]ed against the recorder's state, to
/// be written with whatever else it records (an apply records what a
/// refresh observed this way, so the state is written once, at its end).
pub fn journal(recorder: &mut Recorder, edits: Vec<Edit>) -> Result<(), StateError> {
    // One journal entry per provider, not per edit: a refresh may record
    // thousands, and each entry is a sync (or two transactions).
    let mut by_provider: BTreeMap<String, (Vec<Operation>, Vec<Outcome>)> = BTreeMap::new();
    for edit in edits {
        let (operation, outcome) = into_record(edit, recorder);
        let (ops, outcomes) = by_provider.entry(operation.address.provider().to_owned()).or_default();
        ops.push(operation);
        outcomes.push(outcome);
    }
    for (provider, (ops, outcomes)) in by_provider {
        let batch = recorder.intent(&provider, &ops)?;
        recorder.outcome(batch, &ops, &outcomes)?;
    }
    Ok(())
}

/// Refuses edits that do not fit `state`: forgetting an address it does not
/// record, importing one it already records. Made before a recorder
/// begins, so a refused edit leaves no journal behind.
pub fn check(state: &State, edits: &[Edit]) -> Result<(), StateError> {
    for edit in edits {
        let recorded = state.resources.get(edit.address());
        match edit {
            Edit::Forget { address } if recorded.is_none() => {
                return Err(StateError::NoSuchAddress { address: address.to_string() });
            }
            Edit::Import { address, .. } if recorded.is_some_and(|r| r.status != Status::Uncertain) => {
                return Err(StateError::AlreadyExists { address: address.to_string() });
            }
            Edit::Rename { address, .. } if recorded.is_some() => {
                return Err(StateError::AlreadyExists { address: address.to_string() });
            }
            Edit::Rename { from, .. } if !state.resources.contains_key(from) => {
                return Err(StateError::NoSuchAddress { address: from.to_string() });
            }
            _ => {}
        }
    }
    Ok(())
}

/// The operation and outcome an edit is recorded as, by the same rule
/// ([`State::record`]) that apply and journal replay use.
fn into_record(edit: Edit, recorder: &Recorder) -> (Operation, Outcome) {
    match edit {
        Edit::Rename { address, from } => {
            let record = recorder.state().resources.get(&from);
            let mut attributes = record.map(|r| r.attributes.clone()).unwrap_or_default();
            address.email().clone_into(&mut attributes.email);
            // An update carried out under a rename moves the record whole
            // ([`State::record`]), as a `moved:` rename through the API does.
            (
                Operation {
                    address,
                    kind: OperationKind::Update,
                    attributes,
                    repeat: false,
                    remote: record.map(|r| r.remote.clone()).unwrap_or_default(),
                    renamed_from: Some(from),
                },
                Outcome::Updated,
            )
        }
        Edit::Forget { address } => {
            let attributes = recorder.state().resources.get(&address).map(|r| r.attributes.clone()).unwrap_or_default();
            (
                Operation {
                    address,
                    kind: OperationKind::Remove,
                    attributes,
                    repeat: false,
                    remote: RemoteIds::default(),
                    renamed_from: None,
                },
                Outcome::Removed,
            )
        }
        Edit::Import { address, attributes, remote } => {
            let outcome = if remote.invite_id.is_some() {
                Outcome::Invited(remote)
            } else if remote.user_id.is_some() {
                Outcome::Added(remote)
            } else {
                Outcome::Adopted {
                    message: "imported by hand with `memberctl state import`".to_owned(),
                    remote: RemoteIds::default(),
                }
            };
            (
                Operation {
                    address,
                    kind: OperationKind::Invite,
                    attributes,
                    repeat: false,
                    remote: RemoteIds::default(),
                    renamed_from: None,
                },
                outcome,
            )
        }
        Edit::Observed { address, attributes, remote, settled: true } => (
            Operation {
                address,
                kind: OperationKind::Invite,
                attributes,
                repeat: true,
                remote: RemoteIds::default(),
                renamed_from: None,
            },
            Outcome::Adopted { message: format!("found at the provider by refresh{}", describe_ids(&remote)), remote },
        ),
        Edit::Observed { address, attributes, settled: false, .. }
        | Edit::DoneByHand { address, attributes, update: true } => (
            Operation {
                address,
                kind: OperationKind::Update,
                attributes,
                repeat: false,
                remote: RemoteIds::default(),
                renamed_from: None,
            },
            Outcome::Updated,
        ),
        Edit::DoneByHand { address, attributes, update: false } => (
            Operation {
                address,
                kind: OperationKind::Invite,
                attributes,
                repeat: false,
                remote: RemoteIds::default(),
                renamed_from: None,
            },
            Outcome::Adopted {
                message: "marked done by hand with `memberctl state mark-done`".to_owned(),
                remote: RemoteIds::default(),
            },
        ),
    }
}

fn describe_ids(remote: &RemoteIds) -> String {
    match (&remote.user_id, &remote.invite_id) {
        (Some(id), _) => format!(" (user id {id})"),
        (None, Some(id)) => format!(" (invitation id {id})"),
        (None, None) => String::new(),
    }
}
