//! `memberctl plan`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use super::{Context, Outcome, PlanArgs, PlanFormat, ScopeArgs};
use crate::config::Config;
use crate::error::{exit, Error};
use crate::plan::render::{self, Format};
use crate::plan::{self, Plan, Scope};
use crate::state::file::Streamed;
use crate::state::journal::Replay;
use crate::state::{self, Loaded, Lock, State};

/// Checks `--target` and `--provider` against what exists.
pub(super) fn scope(args: &ScopeArgs, config: &Config, state: Option<&State>) -> Result<Scope, Error> {
    for provider in &args.providers {
        let known = config.providers.contains_key(provider)
            || state.is_some_and(|s| s.resources.keys().any(|a| a.provider() == provider));
        if !known {
            return Err(Error::usage(
                format!("no provider `{provider}` in the config or the state"),
                crate::config::problem::suggestion(provider, "providers", config.providers.keys().map(String::as_str)),
            ));
        }
    }
    for target in &args.targets {
        if !config.desired.contains_key(target) && !state.is_some_and(|s| s.resources.contains_key(target)) {
            return Err(Error::usage(
                format!("no address `{target}` in the config or the state"),
                "addresses are `PROVIDER/EMAIL`; `memberctl state list` shows those recorded",
            ));
        }
    }
    Ok(Scope { targets: args.targets.clone(), providers: args.providers.clone() })
}

/// Reports a stale lock and a replayed journal.
pub(super) fn report_recovery(cx: &mut Context<'_>, lock: &Lock, replay: Option<&Replay>, folded: bool) {
    if let Some(stale) = &lock.stale {
        cx.warn(&format!(
            "a previous run, {stale}, ended without releasing the state lock (it crashed or was killed); taking over"
        ));
    }
    if let Some(replay) = replay {
        let what = if folded {
            "recovered it into the state"
        } else {
            "its outcomes are included below; the next apply folds it into the state"
        };
        cx.warn(&format!(
            "found the journal of an interrupted apply ({} batch(es) answered, {} without an answer): {what}",
            replay.completed, replay.interrupted
        ));
        if !replay.uncertain.is_empty() {
            cx.warn(&format!(
                "{} address(es) are uncertain: {}",
                replay.uncertain.len(),
                abbreviate(&replay.uncertain, 5)
            ));
        }
    }
}

fn abbreviate(items: &[String], most: usize) -> String {
    let mut text = items.iter().take(most).map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
    if items.len() > most {
        let _ = write!(text, " and {} more", items.len() - most);
    }
    text
}

/// Plans from the whole state, loaded (with a leftover journal replayed).
fn plan_loaded(args: &PlanArgs, config: &Config, paths: &state::StatePaths) -> Result<(Plan, Option<Loaded>), Error> {
    let loaded = state::load(paths)?;
    let scope = scope(&args.scope, config, loaded.state.as_ref())?;
    let plan = plan::compute(config, loaded.state.as_ref(), &scope, crate::clock::now());
    Ok((plan, Some(loaded)))
}

/// Writes a plan to `path` (JSON), replacing it atomically.
pub(super) fn save(plan: &Plan, path: &Path) -> Result<(), Error> {
    let io = |action, source| Error::Io { action, path: path.to_owned(), source };
    let tmp = path.with_extension("tmp-memberctl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| io("create", e))?);
    render::json(plan, &mut file).map_err(|e| io("write", e))?;
    file.flush().map_err(|e| io("write", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| io("write", e))
}

pub(super) fn format_of(format: PlanFormat) -> Format {
    match format {
        PlanFormat::Text => Format::Text,
        PlanFormat::Json => Format::Json,
        PlanFormat::Markdown => Format::Markdown,
    }
}

pub(super) fn run(args: &PlanArgs, cx: &mut Context<'_>) -> Outcome {
    let config = cx.load_config()?;
    let paths = cx.state_paths();
    let lock = Lock::acquire(&paths, "plan", cx.global.lock_timeout)?;
    let (plan, loaded) =
        if args.scope.targets.is_empty() && args.scope.providers.is_empty() && !paths.journal().exists() {
            // The common case: plan while the state is read, record by record,
            // so a large state is never held in memory whole.
            let everything = Scope::default();
            let mut planner = plan::Planner::new(&config, &everything, crate::clock::now());
            match state::file::each_record(&paths, &mut |resource| planner.record(resource))? {
                Streamed::Missing => (planner.finish(None, 0), None),
                Streamed::Done { lineage, serial } => (planner.finish(Some(lineage), serial), None),
                Streamed::Fallback => plan_loaded(args, &config, &paths)?,
            }
        } else {
            plan_loaded(args, &config, &paths)?
        };
    report_recovery(cx, &lock, loaded.as_ref().and_then(|l| l.replay.as_ref()), false);
    drop(lock);
    let color = cx.color && args.format == PlanFormat::Text;
    let mut out = std::io::BufWriter::new(&mut *cx.stdout);
    let _ = render::render(&plan, format_of(args.format), color, &mut out);
    let _ = out.flush();
    drop(out);
    if let Some(path) = &args.out {
        save(&plan, path)?;
        cx.note(&format!(
            "\nSaved the plan to `{}`. Apply exactly this plan with `memberctl apply {}`.",
            path.display(),
            path.display()
        ));
    }
    let code = if args.detailed_exitcode && !plan.no_changes { exit::CHANGES } else { exit::OK };
    // The process ends right after this: freeing a 100,000-member config,
    // state and plan one allocation at a time costs a fifth of the run, and
    // the OS reclaims it all at once anyway.
    std::mem::forget((config, loaded, plan));
    Ok(code)
}
