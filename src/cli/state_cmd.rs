//! `memberctl state ...`: inspect the state and change it by hand.
//!
//! Every change goes through the same locked, journaled, atomic path as
//! apply: the lock is taken, a leftover journal is folded in, the change is
//! journaled, and the state is written once.

use std::io::Write;

use super::plan_cmd::report_recovery;
use super::{Context, Outcome, ShowFormat, StateCommand};
use crate::address::Address;
use crate::error::{exit, Error};
use crate::plan::{self, Action, Scope};
use crate::provider::{Operation, OperationKind, Outcome as ProviderOutcome, RemoteIds};
use crate::state::{self, Lock, Recorder, Resource, State, StateError};

fn require(state: Option<&State>, address: &Address) -> Result<Resource, Error> {
    state
        .and_then(|s| s.resources.get(address))
        .cloned()
        .ok_or_else(|| StateError::NoSuchAddress { address: address.to_string() }.into())
}

fn show_text(resource: &Resource, out: &mut dyn Write) {
    let _ = writeln!(out, "# {}", resource.address);
    let _ = writeln!(out, "status: {}", resource.status.as_str());
    for line in resource.attributes.lines() {
        let _ = writeln!(out, "{line}");
    }
    if let Some(id) = &resource.remote.invite_id {
        let _ = writeln!(out, "invite_id: {id}");
    }
    if let Some(id) = &resource.remote.user_id {
        let _ = writeln!(out, "user_id: {id}");
    }
    if let Some(at) = &resource.invited_at {
        let _ = writeln!(out, "invited_at: {at}");
    }
    if resource.resends > 0 {
        let _ = writeln!(out, "resends: {}", resource.resends);
    }
    let _ = writeln!(out, "created_at: {}\nupdated_at: {}", resource.created_at, resource.updated_at);
    if let Some(message) = &resource.message {
        let _ = writeln!(out, "message: {message}");
    }
}

/// Runs `change` under the lock, journaled, and writes the state once.
fn change_state(
    cx: &mut Context<'_>,
    command: &str,
    change: impl FnOnce(&mut Context<'_>, Option<&State>) -> Result<Vec<(Operation, ProviderOutcome)>, Error>,
) -> Result<State, Error> {
    let paths = cx.state_paths();
    let lock = Lock::acquire(&paths, command, cx.global.lock_timeout)?;
    let loaded = state::load_and_recover(&paths)?;
    report_recovery(cx, &lock, loaded.replay.as_ref(), true);
    let records = change(cx, loaded.state.as_ref())?;
    let mut recorder = Recorder::begin(&paths, loaded.state.unwrap_or_default())?;
    for (op, outcome) in records {
        let ops = [op];
        let batch = recorder.intent(ops[0].address.provider(), &ops)?;
        recorder.outcome(batch, &ops, &[outcome])?;
    }
    let (state, _) = recorder.finish()?;
    drop(lock);
    Ok(state)
}

pub(super) fn run(command: &StateCommand, cx: &mut Context<'_>) -> Outcome {
    match command {
        StateCommand::List => {
            let loaded = state::load(&cx.state_paths())?;
            if let Some(state) = &loaded.state {
                for resource in state.resources.values() {
                    let _ = writeln!(cx.stdout, "{}\t{}", resource.address, resource.status.as_str());
                }
            }
            if loaded.state.as_ref().is_none_or(|s| s.resources.is_empty()) {
                cx.note("The state is empty.");
            }
            Ok(exit::OK)
        }
        StateCommand::Show { address, format } => {
            let loaded = state::load(&cx.state_paths())?;
            let resource = require(loaded.state.as_ref(), address)?;
            match format {
                ShowFormat::Text => show_text(&resource, cx.stdout),
                ShowFormat::Json => {
                    let _ = serde_json::to_writer_pretty(&mut *cx.stdout, &resource);
                    let _ = writeln!(cx.stdout);
                }
            }
            Ok(exit::OK)
        }
        StateCommand::Rm { addresses } => {
            change_state(cx, "state rm", |_, state| {
                addresses
                    .iter()
                    .map(|address| {
                        let resource = require(state, address)?;
                        let op = Operation {
                            address: address.clone(),
                            kind: OperationKind::Remove,
                            attributes: resource.attributes,
                            repeat: false,
                        };
                        Ok((op, ProviderOutcome::Removed))
                    })
                    .collect()
            })?;
            for address in addresses {
                let _ = writeln!(cx.stdout, "Removed `{address}` from the state (the provider was not contacted).");
            }
            Ok(exit::OK)
        }
        StateCommand::Import { address, invite_id, user_id } => {
            let config = cx.load_config()?;
            let attributes = config.desired.get(address).cloned().ok_or_else(|| {
                Error::usage(
                    format!("`{address}` is not in the config"),
                    "add the member to the config first, so memberctl knows its attributes",
                )
            })?;
            let state = change_state(cx, "state import", |_, state| {
                if state.is_some_and(|s| s.resources.get(address).is_some_and(|r| r.status != state::Status::Uncertain))
                {
                    return Err(StateError::AlreadyExists { address: address.to_string() }.into());
                }
                let op = Operation { address: address.clone(), kind: OperationKind::Invite, attributes, repeat: false };
                let remote = RemoteIds { invite_id: invite_id.clone(), user_id: user_id.clone(), timestamp_ms: None };
                // An invitation id means an invitation is out (and may be
                // re-sent); otherwise the member is there already.
                let outcome = if remote.invite_id.is_some() {
                    ProviderOutcome::Invited(remote)
                } else if remote.user_id.is_some() {
                    ProviderOutcome::Added(remote)
                } else {
                    ProviderOutcome::Adopted { message: "imported by hand with `memberctl state import`".to_owned() }
                };
                Ok(vec![(op, outcome)])
            })?;
            let status = state.resources.get(address).map_or("?", |r| r.status.as_str());
            let _ = writeln!(cx.stdout, "Imported `{address}` ({status}); it will not be invited.");
            Ok(exit::OK)
        }
        StateCommand::MarkDone { addresses } => {
            let config = cx.load_config()?;
            let mut done = Vec::new();
            change_state(cx, "state mark-done", |_, state| {
                let scope = Scope { targets: addresses.clone(), providers: Vec::new() };
                let plan = plan::compute(&config, state, &scope, crate::clock::now());
                let mut records = Vec::new();
                for address in addresses {
                    let Some(change) =
                        plan.changes.iter().find(|c| &c.address == address && c.action == Action::Manual)
                    else {
                        return Err(Error::usage(
                            format!("`{address}` has no manual change to mark done"),
                            "`memberctl plan` lists manual changes with `!`",
                        ));
                    };
                    let (kind, attributes, outcome) = match change.wanted {
                        Some(Action::Update) => (OperationKind::Update, change.after.clone(), ProviderOutcome::Updated),
                        Some(Action::Remove) => {
                            (OperationKind::Remove, change.before.clone(), ProviderOutcome::Removed)
                        }
                        _ => (
                            OperationKind::Invite,
                            change.after.clone(),
                            ProviderOutcome::Adopted {
                                message: "marked done by hand with `memberctl state mark-done`".to_owned(),
                            },
                        ),
                    };
                    let Some(attributes) = attributes else { continue };
                    done.push(format!("{} {address}", change.wanted.map_or("change", Action::as_str)));
                    records.push((Operation { address: address.clone(), kind, attributes, repeat: false }, outcome));
                }
                Ok(records)
            })?;
            for line in done {
                let _ = writeln!(cx.stdout, "Recorded as done by hand: {line}.");
            }
            Ok(exit::OK)
        }
        StateCommand::Unlock => {
            let paths = cx.state_paths();
            match state::Lock::force_unlock(&paths)? {
                Some(previous) => {
                    let _ = writeln!(cx.stdout, "Cleared the lock left by {previous}.");
                }
                None => {
                    let _ = writeln!(cx.stdout, "The state was not locked.");
                }
            }
            Ok(exit::OK)
        }
    }
}
