//! `memberctl state ...`: inspect the state and change it by hand.
//!
//! Every change goes through the same locked, journaled, atomic path as
//! apply: the lock is taken, a leftover journal is folded in, and the edits
//! are recorded by [`crate::state::edit`] in one write.

use std::io::{self, Write};

use super::{Context, Outcome, ShowFormat, StateCommand, Success};
use crate::address::Address;
use crate::attributes::printable;
use crate::config::Config;
use crate::error::Error;
use crate::plan;
use crate::provider::RemoteIds;
use crate::state::edit::{self, Edit};
use crate::state::rescue::Rescue;
use crate::state::{file, Backend, Resource, State, StateError, StatePaths};

fn require<'s>(state: Option<&'s State>, address: &Address) -> Result<&'s Resource, Error> {
    state
        .and_then(|s| s.resources.get(address))
        .ok_or_else(|| StateError::NoSuchAddress { address: address.to_string() }.into())
}

fn show_text(resource: &Resource, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "# {}", printable(resource.address.as_str()))?;
    writeln!(out, "status: {}", resource.status.as_str())?;
    for line in resource.attributes.lines() {
        writeln!(out, "{line}")?;
    }
    if let Some(id) = &resource.remote.invite_id {
        writeln!(out, "invite_id: {id}")?;
    }
    if let Some(id) = &resource.remote.user_id {
        writeln!(out, "user_id: {id}")?;
    }
    if let Some(at) = &resource.invited_at {
        writeln!(out, "invited_at: {at}")?;
    }
    if resource.resends > 0 {
        writeln!(out, "resends: {}", resource.resends)?;
    }
    writeln!(out, "created_at: {}\nupdated_at: {}", resource.created_at, resource.updated_at)?;
    if let Some(message) = &resource.message {
        writeln!(out, "message: {}", printable(message))?;
    }
    Ok(())
}

/// Takes the lock, folds in a leftover journal, and records the edits that
/// `edits` makes from the current state.
fn change_state(
    cx: &mut Context<'_>,
    backend: &mut dyn Backend,
    command: &str,
    edits: impl FnOnce(Option<&State>) -> Result<Vec<Edit>, Error>,
) -> Result<State, Error> {
    let lock = backend.lock(command, cx.global.lock_timeout)?;
    let loaded = backend.load_and_recover()?;
    cx.report_recovery(lock.stale.as_ref(), loaded.replay.as_ref(), true)?;
    let edits = edits(loaded.state.as_ref())?;
    let state = edit::record(loaded.state.unwrap_or_default(), edits, |state| backend.recorder(state))?;
    drop(lock);
    Ok(state)
}

/// `state push FILE`: replaces the state with a state file's, unless that
/// would lose anything.
fn push(cx: &mut Context<'_>, backend: &mut dyn Backend, path: &std::path::Path, force: bool) -> Result<(), Error> {
    let paths = StatePaths::new(path);
    let refuse = |reason: String| -> Error { StateError::PushRefused { reason }.into() };
    if paths.journal().exists() {
        return Err(refuse(format!(
            "`{}` exists: an apply on that file was interrupted; fold it in first with `memberctl apply` on the file state (before the config's `state:` points elsewhere)",
            paths.journal().display()
        )));
    }
    let mut pushed =
        file::read(&paths)?.ok_or_else(|| refuse(format!("there is no state file `{}`", path.display())))?;
    let lock = backend.lock("state push", cx.global.lock_timeout)?;
    let loaded = backend.load_and_recover()?;
    cx.report_recovery(lock.stale.as_ref(), loaded.replay.as_ref(), true)?;
    if let Some(current) = &loaded.state {
        if current.lineage != pushed.lineage && !force {
            return Err(refuse(format!(
                "`{}` has lineage {}, but {} has lineage {}: it is another state (pass `--force` to replace it anyway)",
                path.display(),
                pushed.lineage,
                backend.describe(),
                current.lineage
            )));
        }
        if current.lineage == pushed.lineage && pushed.serial < current.serial {
            return Err(refuse(format!(
                "`{}` is at serial {}, older than {} at serial {}",
                path.display(),
                pushed.serial,
                backend.describe(),
                current.serial
            )));
        }
        // A push is a write: the serial moves past the state it replaces,
        // so a plan saved against that state is refused as stale.
        pushed.serial = pushed.serial.max(current.serial + 1);
    }
    backend.write(&pushed)?;
    drop(lock);
    cx.ui.println(&format!(
        "Pushed `{}` ({} record(s), serial {}) to {}.",
        path.display(),
        pushed.resources.len(),
        pushed.serial,
        backend.describe()
    ))?;
    Ok(())
}

/// `state recover FILE`: records the answers a rescue journal holds, as
/// the apply that wrote it would have.
fn recover(cx: &mut Context<'_>, backend: &mut dyn Backend, path: &std::path::Path) -> Result<(), Error> {
    // Not a state file's errors: a rescue journal has no backup to restore.
    let rescue = Rescue::read(path).map_err(|error| match error {
        StateError::Corrupt { detail, .. } => {
            Error::user(format!("`{}` is not a rescue journal memberctl can read: {detail}", path.display())).with_hint(
                "pass the file memberctl wrote when it lost the state database (its JSON was also printed on stderr)",
            )
        }
        StateError::NewerFormat { found, .. } => Error::user(format!(
            "`{}` was written by a newer memberctl (rescue journal version {found})",
            path.display()
        ))
        .with_hint("recover it with that memberctl, or a newer one"),
        other => other.into(),
    })?;
    let refuse = |reason: String| -> Error {
        Error::user(format!("cannot recover `{}`: {reason}", path.display()))
            .with_hint("a rescue journal is folded into the state it was written for")
    };
    if backend.location().is_some_and(|l| l.name != rescue.state) {
        return Err(refuse(format!("it belongs to state `{}`, not {}", rescue.state, backend.describe())));
    }
    let lock = backend.lock("state recover", cx.global.lock_timeout)?;
    let loaded = backend.load_and_recover()?;
    cx.report_recovery(lock.stale.as_ref(), loaded.replay.as_ref(), true)?;
    // Folding in what the interrupted run left (its journal, or its intents
    // in the database) writes the state once: the serial the rescue
    // journal was written at, plus that write.
    let folded_now = u64::from(loaded.replay.is_some());
    let state = loaded.state.unwrap_or_default();
    if state.lineage != rescue.lineage {
        return Err(refuse(format!("its lineage is {}, the state's is {}", rescue.lineage, state.lineage)));
    }
    if let Some(serial) = rescue.serial.filter(|&serial| serial + folded_now != state.serial) {
        return Err(refuse(format!(
            "it belongs to the state at serial {serial}, and the state is at serial {}: it was recovered already, or later runs recorded newer answers",
            state.serial
        )));
    }
    let mut recorder = backend.recorder(state)?;
    let mut answers = 0;
    for batch in &rescue.batches {
        let id = recorder.intent(&batch.provider, &batch.ops)?;
        recorder.outcome(id, &batch.ops, &batch.outcomes)?;
        answers += batch.ops.len();
    }
    let (state, _) = recorder.finish()?;
    drop(lock);
    cx.ui.println(&format!(
        "Recovered {answers} answer(s) in {} batch(es) from `{}` into {} (serial {}); the file can be deleted.",
        rescue.batches.len(),
        path.display(),
        backend.describe(),
        state.serial
    ))?;
    Ok(())
}

/// The config the backend was chosen by, or, when none was found then, the
/// config read now (which reports that it is missing): it is read once.
fn required<'c>(cx: &Context<'_>, config: &'c mut Option<Config>) -> Result<&'c Config, Error> {
    if config.is_none() {
        *config = Some(cx.load_config()?);
    }
    Ok(config.as_ref().expect("read just above"))
}

pub(super) fn run(command: &StateCommand, cx: &mut Context<'_>) -> Outcome {
    let mut config = cx.config_if_any()?;
    let mut backend = cx.state_backend(config.as_ref())?;
    let config = &mut config;
    match command {
        StateCommand::List => {
            let loaded = backend.load()?;
            let resources = loaded.state.as_ref().map(|s| &s.resources);
            cx.ui.render(|out| {
                for resource in resources.into_iter().flat_map(|r| r.values()) {
                    writeln!(out, "{}\t{}", printable(resource.address.as_str()), resource.status.as_str())?;
                }
                Ok(())
            })?;
            if resources.is_none_or(std::collections::BTreeMap::is_empty) {
                cx.ui.note("The state is empty.")?;
            }
        }
        StateCommand::Show { address, format } => {
            let loaded = backend.load()?;
            let resource = require(loaded.state.as_ref(), address)?;
            match format {
                ShowFormat::Text => cx.ui.render(|out| show_text(resource, out))?,
                ShowFormat::Json => cx.ui.render(|out| {
                    serde_json::to_writer_pretty(&mut *out, resource).map_err(io::Error::other)?;
                    writeln!(out)
                })?,
            }
        }
        StateCommand::Rm { addresses } => {
            let edits = addresses.iter().map(|address| Edit::Forget { address: address.clone() }).collect();
            change_state(cx, backend.as_mut(), "state rm", |_| Ok(edits))?;
            for address in addresses {
                cx.ui.println(&format!("Removed `{address}` from the state (the provider was not contacted)."))?;
            }
        }
        StateCommand::Import { address, invite_id, user_id } => {
            let config = required(cx, config)?;
            let attributes = config.desired.get(address).cloned().ok_or_else(|| {
                Error::usage(
                    format!("`{address}` is not in the config"),
                    "add the member to the config first, so memberctl knows its attributes",
                )
            })?;
            let remote = RemoteIds { invite_id: invite_id.clone(), user_id: user_id.clone(), timestamp_ms: None };
            let edits = vec![Edit::Import { address: address.clone(), attributes, remote }];
            let state = change_state(cx, backend.as_mut(), "state import", |_| Ok(edits))?;
            let status = state.resources.get(address).map_or("?", |r| r.status.as_str());
            cx.ui.println(&format!("Imported `{address}` ({status}); it will not be invited."))?;
        }
        StateCommand::Mv { from, to } => {
            if from.provider() != to.provider() {
                return Err(Error::usage(
                    format!("`{from}` and `{to}` are at different providers"),
                    "a rename stays at one provider; to move a member between providers, change the config",
                ));
            }
            change_state(cx, backend.as_mut(), "state mv", |state| {
                require(state, from)?;
                // The record moves whole: its status (a deactivated member
                // stays deactivated, an uncertain one uncertain), ids,
                // timestamps and resends.
                Ok(vec![Edit::Rename { address: to.clone(), from: from.clone() }])
            })?;
            cx.ui.println(&format!("Moved `{from}` to `{to}` in the state (the provider was not contacted)."))?;
        }
        StateCommand::MarkDone { addresses } => {
            let config = required(cx, config)?;
            let mut done = Vec::new();
            change_state(cx, backend.as_mut(), "state mark-done", |state| {
                let marked = plan::done_by_hand::edits(config, state, addresses, crate::clock::now())?;
                Ok(marked
                    .into_iter()
                    .map(|(wanted, edit)| {
                        done.push(format!("{} {}", wanted.as_str(), edit.address()));
                        edit
                    })
                    .collect())
            })?;
            for line in done {
                cx.ui.println(&format!("Recorded as done by hand: {line}."))?;
            }
        }
        StateCommand::Unlock => match backend.force_unlock()? {
            Some(previous) => cx.ui.println(&format!("Cleared the lock left by {previous}."))?,
            None => cx.ui.println("The state was not locked.")?,
        },
        StateCommand::Pull => {
            let loaded = backend.load()?;
            let state = loaded.state.ok_or_else(|| {
                Error::user(format!("there is no state in {} yet", backend.describe()))
                    .with_hint("`memberctl apply` creates it")
            })?;
            cx.ui.render(|out| out.write_all(&file::to_json(&state)))?;
        }
        StateCommand::Push { file: path, force } => push(cx, backend.as_mut(), path, *force)?,
        StateCommand::Recover { file: path } => recover(cx, backend.as_mut(), path)?,
    }
    Ok(Success::Done)
}
