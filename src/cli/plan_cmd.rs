//! `memberctl plan`.

use super::ui::past_a_closed_pipe;
use super::{plan_file, refresh_cmd, Context, Outcome, PlanArgs, PlanFormat, Success};
use crate::config::Config;
use crate::error::Error;
use crate::plan::render::{self, Format};
use crate::plan::{self, Plan, Scope};
use crate::state::file::Streamed;
use crate::state::{Backend, Loaded};

/// Plans from the whole state, loaded (with a leftover journal replayed).
fn plan_loaded(args: &PlanArgs, config: &Config, backend: &mut dyn Backend) -> Result<(Plan, Option<Loaded>), Error> {
    let loaded = backend.load()?;
    let scope = super::scope(&args.scope, config, loaded.state.as_ref())?;
    let plan = plan::compute(config, loaded.state.as_ref(), &scope, crate::clock::now());
    Ok((plan, Some(loaded)))
}

pub(super) fn format_of(format: PlanFormat) -> Format {
    match format {
        PlanFormat::Text => Format::Text,
        PlanFormat::Json => Format::Json,
        PlanFormat::Markdown => Format::Markdown,
    }
}

pub(super) fn run(args: &PlanArgs, cx: &mut Context<'_>) -> Outcome {
    let mut config = cx.load_config()?;
    let mut backend = cx.state_backend(Some(&config))?;
    // Listing comes before the lock: it may take a while.
    let listings = if args.refresh { Some(refresh_cmd::list(&config)?) } else { None };
    let guard = backend.read_guard("plan", cx.global.lock_timeout)?;
    let (mut plan, loaded) = if let Some(listings) = &listings {
        let loaded = backend.load()?;
        let scope = super::scope(&args.scope, &config, loaded.state.as_ref())?;
        let (state, refreshed) =
            refresh_cmd::observe(&config, listings, loaded.state.as_ref(), args.reactivate, args.max_removal_fraction)?;
        let planner = plan::Planner::new(&config, &scope, crate::clock::now()).refreshed(refreshed);
        (plan::compute_with(planner, state.as_ref()), Some(loaded))
    } else if args.scope.targets.is_empty() && args.scope.providers.is_empty() {
        // The common case: plan while the state is read, record by record,
        // so a large state is never held in memory whole.
        // The planner takes the members out of the config, and moves each
        // into the change that needs it (a first plan holds them once).
        let everything = Scope::default();
        let mut planner = plan::Planner::owning(&mut config, &everything, crate::clock::now());
        match backend.each_record(&mut |resource| planner.record(resource))? {
            Streamed::Missing => (planner.finish(None, 0), None),
            Streamed::Done { lineage, serial } => (planner.finish(Some(lineage), serial), None),
            Streamed::Fallback => {
                // A state out of address order (edited by hand) is planned
                // from whole, with the members the planner took read again.
                drop(planner);
                let again = cx.load_config()?;
                if again.digest != config.digest {
                    return Err(Error::user("the config files changed while the plan was being made")
                        .with_hint("run `memberctl plan` again"));
                }
                config = again;
                plan_loaded(args, &config, backend.as_mut())?
            }
        }
    } else {
        plan_loaded(args, &config, backend.as_mut())?
    };
    cx.report_recovery(guard.stale.as_ref(), loaded.as_ref().and_then(|l| l.replay.as_ref()), false)?;
    drop(guard);
    plan.state_location = backend.location();
    drop(backend);
    let color = cx.ui.color() && args.format == PlanFormat::Text;
    // A reader that stops early (`plan | head`) takes neither the saved
    // plan nor the exit code with it.
    past_a_closed_pipe(cx.ui.render(|out| render::render(&plan, format_of(args.format), color, out)))?;
    if let Some(path) = &args.out {
        plan_file::save(&mut plan, path)?;
        cx.ui.note(&format!(
            "\nSaved the plan to `{}`. Apply exactly this plan with `memberctl apply {}`.",
            path.display(),
            path.display()
        ))?;
    }
    let code = if args.detailed_exitcode && !plan.no_changes { Success::ChangesPresent } else { Success::Done };
    // The process ends right after this: freeing a large plan one
    // allocation at a time is time it pays for nothing, as the OS reclaims
    // it all at once anyway. The benchmark's first plan of 100k (114,850
    // changes): 0.58 s with the drop, 0.52 s without (medians of 7
    // alternating runs); of 1M: 5.9 s against 5.1 s (2 each); its steady
    // plan (5,662 changes) shows no difference (0.65 and 0.67 s, 5 each).
    // See docs/PERFORMANCE.md.
    std::mem::forget((config, loaded, plan));
    Ok(code)
}
