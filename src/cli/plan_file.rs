//! Saved plans: `plan --out FILE` writes one, `apply FILE` reads it back.

use std::path::Path;

use crate::atomic_write::write_atomically;
use crate::error::Error;
use crate::plan::{self, render, Plan};

/// Writes `plan` to `path` as JSON, replacing the file atomically: a full
/// disk leaves the old file (or none), never half a plan.
///
/// A sandbox's `outbox` is written as an absolute path first: the config
/// gives it relative to the directory the plan was made in, and `apply
/// FILE` may run from another. (A member's `password_file` stays as the
/// config gives it: it is recorded in the state with the member, which
/// must not hold one machine's paths; from another directory it is not
/// found, and apply stops before sending, saying so.)
pub(super) fn save(plan: &mut Plan, path: &Path) -> Result<(), Error> {
    let anchored = |file: &Path| std::path::absolute(file).map_err(|source| Error::io("resolve", file, source));
    for settings in plan.providers.values_mut() {
        if let Some(outbox) = settings.outbox.as_mut().filter(|outbox| outbox.is_relative()) {
            *outbox = anchored(outbox)?;
        }
    }
    write_atomically(path, |out| render::json(plan, out))?;
    Ok(())
}

/// Reads a plan saved by [`save`], refusing anything else.
pub(super) fn read(path: &Path) -> Result<Plan, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::io("read the plan", path, source))?;
    let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| {
        Error::usage(
            format!("`{}` is not a saved memberctl plan: {e}", path.display()),
            "save a plan with `memberctl plan --out FILE`",
        )
    })?;
    if plan.format_version != plan::FORMAT_VERSION {
        return Err(Error::usage(
            format!(
                "plan `{}` has format version {}, this memberctl reads {}",
                path.display(),
                plan.format_version,
                plan::FORMAT_VERSION
            ),
            "make the plan and apply it with the same memberctl",
        ));
    }
    Ok(plan)
}
