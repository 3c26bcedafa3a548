//! `memberctl refresh` and the `--refresh` of `plan` and `apply`: list what
//! the providers hold and reconcile the state with it.

use std::collections::BTreeMap;

use super::ui::past_a_closed_pipe;
use super::{Context, Outcome, RefreshArgs, Success};
use crate::address::Address;
use crate::config::Config;
use crate::error::Error;
use crate::plan::render;
use crate::plan::Refreshed;
use crate::provider::Listing;
use crate::refresh::{self, DriftKind};
use crate::state::{edit, State, Status};

/// Lists every provider that can list. Called before the state lock is
/// taken: a listing can take a while, and plans must not queue behind it.
pub(super) fn list(config: &Config) -> Result<BTreeMap<String, Option<Listing>>, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::internal(format!("cannot start the async runtime: {source}")))?;
    let env = |name: &str| std::env::var(name).ok();
    Ok(runtime.block_on(refresh::list(config, &env))?)
}

/// Lists one provider.
pub(super) fn list_one(settings: &crate::provider::ProviderSettings) -> Result<Listing, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::internal(format!("cannot start the async runtime: {source}")))?;
    let env = |name: &str| std::env::var(name).ok();
    Ok(runtime.block_on(refresh::list_one(settings, &env))?)
}

/// Reconciles `state` with the listings: the state as the providers show it
/// (none when there is no state yet) and what the plan carries.
///
/// A configured user found deactivated outside memberctl is only reported,
/// unless `reactivate`: its record is then planned from as one memberctl
/// deactivated, so the plan re-adds it and the client reactivates the
/// recorded user id.
pub(super) fn observe(
    config: &Config,
    listings: &BTreeMap<String, Option<Listing>>,
    state: Option<&State>,
    reactivate: bool,
    max_removal_fraction: Option<f64>,
) -> Result<(Option<State>, Refreshed), Error> {
    let empty = State::new();
    let fraction = max_removal_fraction.unwrap_or(config.max_removal_fraction);
    let (mut refreshed, edits, report) = refresh::reconcile(config, state.unwrap_or(&empty), listings, fraction)?;
    let suspended: Vec<Address> = if reactivate {
        report.drift.iter().filter(|d| d.kind == DriftKind::Deactivated).map(|d| d.address.clone()).collect()
    } else {
        Vec::new()
    };
    let mut part = report.into_plan_part(edits);
    for address in &suspended {
        if let Some(record) = refreshed.resources.get_mut(address) {
            record.status = Status::Deactivated;
        }
    }
    for note in part.drift.iter_mut().filter(|n| suspended.contains(&n.address)) {
        "drift: deactivated at the provider, outside memberctl (reactivated: --reactivate)".clone_into(&mut note.found);
    }
    Ok((state.map(|_| refreshed), part))
}

pub(super) fn run(args: &RefreshArgs, cx: &mut Context<'_>) -> Outcome {
    let config = cx.load_config()?;
    let listings = list(&config)?;
    let mut backend = cx.state_backend(Some(&config))?;
    let lock = if args.check {
        backend.read_guard("refresh", cx.global.lock_timeout)?
    } else {
        backend.lock("refresh", cx.global.lock_timeout)?
    };
    let loaded = if args.check { backend.load()? } else { backend.load_and_recover()? };
    cx.report_recovery(lock.stale.as_ref(), loaded.replay.as_ref(), !args.check)?;
    let (_, refreshed) = observe(&config, &listings, loaded.state.as_ref(), false, args.max_removal_fraction)?;
    let color = cx.ui.color();
    // A reader that stops early (`refresh | head`) takes neither the state
    // write nor the exit code with it.
    past_a_closed_pipe(cx.ui.render(|out| render::refresh_text(&refreshed, color, out)))?;
    let drifted = !refreshed.drift.is_empty();
    if args.check {
        // Exit 0 says "in sync", which a provider that cannot list never is.
        if refreshed.checked.is_empty() {
            return Err(Error::user("no provider here can list its members: nothing was checked").with_hint(
                "`refresh --check` needs a provider type that lists (scim, sandbox); the others are checked by hand",
            ));
        }
        return Ok(if drifted { Success::ChangesPresent } else { Success::Done });
    }
    match loaded.state {
        Some(state) if !refreshed.observed.is_empty() => {
            let serial = state.serial;
            let written = edit::record(state, refreshed.observed, |state| backend.recorder(state))?;
            cx.ui.note(&format!(
                "\nRecorded what the providers hold in the state (serial {serial} → {}); `memberctl plan` shows what it takes to converge.",
                written.serial
            ))?;
        }
        // Not "matches": a provider that cannot list is never in sync.
        _ if refreshed.checked.is_empty() => {
            cx.ui.note("\nNo provider here can list its members: nothing was checked, and nothing was written.")?;
        }
        _ => cx.ui.note("\nThe state already matches what the providers hold; nothing was written.")?,
    }
    drop(lock);
    Ok(Success::Done)
}
