//! What `memberctl state mark-done` records: the state edits for manual
//! changes a person carried out.
//!
//! Only what the plan shows as manual can be marked done: the plan is the
//! one judge of what differs and of who can do it, so this asks it rather
//! than comparing the config and the state again.

use std::time::SystemTime;

use super::{compute, Action, Scope};
use crate::address::Address;
use crate::config::Config;
use crate::error::Error;
use crate::state::edit::Edit;
use crate::state::State;

/// The edits that record `addresses`' manual changes as done, each with
/// what was wanted (`invite`, `update`, `remove`). Errs, naming it, for an
/// address the plan has no manual change for.
pub fn edits(
    config: &Config,
    state: Option<&State>,
    addresses: &[Address],
    now: SystemTime,
) -> Result<Vec<(Action, Edit)>, Error> {
    let scope = Scope { targets: addresses.to_vec(), providers: Vec::new() };
    let plan = compute(config, state, &scope, now);
    let mut edits = Vec::new();
    for address in addresses {
        let Some(change) = plan.changes.iter().find(|c| &c.address == address && c.action == Action::Manual) else {
            return Err(Error::usage(
                format!("`{address}` has no manual change to mark done"),
                "`memberctl plan` lists manual changes with `!`",
            ));
        };
        let wanted = change.wanted.unwrap_or(Action::Invite);
        let edit = match (wanted, &change.after) {
            (Action::Remove, _) => Edit::Forget { address: address.clone() },
            (_, Some(after)) => Edit::DoneByHand {
                address: address.clone(),
                attributes: (**after).clone(),
                update: wanted == Action::Update,
            },
            (_, None) => continue,
        };
        edits.push((wanted, edit));
    }
    Ok(edits)
}
