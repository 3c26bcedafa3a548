//! `memberctl apply`.

use std::io::BufRead;
use std::sync::Arc;

use super::plan_cmd::format_of;
use super::progress;
use super::ui::past_a_closed_pipe;
use super::{plan_file, refresh_cmd, scope, ApplyArgs, Context, Outcome, PlanFormat, Success, SummaryFormat};
use crate::apply::summary::ApplySummary;
use crate::apply::{self, Cancel};
use crate::atomic_write::write_atomically;
use crate::error::{exit, Error};
use crate::plan::{self, render, Action};
use crate::state::edit::{self, Edit};
use crate::state::{Backend, State, StateError};

fn confirm(cx: &mut Context<'_>, format: PlanFormat) -> Result<bool, Error> {
    const QUESTION: &str = "\nDo you want to perform these actions? Invitations are emails and cannot be unsent.\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ";
    // On stdout beside a text plan, as terraform asks; on stderr when
    // stdout is a JSON or markdown document.
    if format == PlanFormat::Text {
        cx.ui.print(QUESTION)?;
        cx.ui.flush()?;
    } else {
        cx.ui.ask(QUESTION)?;
    }
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|source| Error::stream("read", "<stdin>", source))?;
    Ok(answer.trim() == "yes")
}

/// Raises `cancel` on the first Ctrl-C or SIGTERM; exits at once on the second.
///
/// The handlers are installed before this returns (it must be called inside
/// the runtime), so a signal that arrives as soon as sending starts is never
/// met by the default action, which would kill the process without recording
/// the batches in flight.
fn watch_signals(cancel: Cancel) {
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(interrupt), Ok(terminate)) => Some((interrupt, terminate)),
            _ => None,
        }
    };
    #[cfg(unix)]
    let Some((mut interrupt, mut terminate)) = streams
    else {
        log::warn!("cannot watch for Ctrl-C and SIGTERM; an interrupted apply recovers from the journal");
        return;
    };
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            #[cfg(unix)]
            {
                let received = tokio::select! {
                    signal = interrupt.recv() => signal,
                    signal = terminate.recv() => signal,
                };
                if received.is_none() {
                    return;
                }
            }
            #[cfg(not(unix))]
            {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
            }
            count += 1;
            if count == 1 {
                cancel.cancel();
            } else {
                // The journal already holds every intent: the next run
                // recovers them as uncertain.
                eprintln!("Stopped at once; the next run recovers from the journal.");
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
}

/// Records what a refresh observed (one journaled write), when there is a
/// state and anything to record.
fn record_observed(backend: &mut dyn Backend, state: Option<State>, observed: &[Edit]) -> Result<Option<State>, Error> {
    match state {
        Some(state) if !observed.is_empty() => {
            Ok(Some(edit::record(state, observed.to_vec(), |state| backend.recorder(state))?))
        }
        state => Ok(state),
    }
}

pub(super) fn run(args: &ApplyArgs, cx: &mut Context<'_>) -> Outcome {
    let mut summary = None;
    let outcome = apply(args, cx, &mut summary);
    let Some(path) = &args.summary_out else { return outcome };
    // Written whatever happened: a failed apply is what a pull request most
    // needs to hear about.
    let summary = summary.unwrap_or_else(|| {
        ApplySummary::not_started(outcome.as_ref().err().map_or_else(String::new, ToString::to_string))
    });
    let written = write_atomically(path, |out| match args.summary_format {
        SummaryFormat::Markdown => summary.markdown(out),
        SummaryFormat::Json => summary.json(out),
    });
    match (written, outcome) {
        (Ok(_), outcome) => outcome,
        (Err(error), Ok(_)) => Err(error.into()),
        // The apply's own error comes first; the summary's is said beside it.
        (Err(error), Err(outcome)) => {
            cx.ui.warn(&format!(
                "{error}: {}",
                std::error::Error::source(&error).map_or(String::new(), ToString::to_string)
            ))?;
            Err(outcome)
        }
    }
}

fn apply(args: &ApplyArgs, cx: &mut Context<'_>, summary: &mut Option<ApplySummary>) -> Outcome {
    // A saved plan is applied without the config, when there is none.
    let config = if args.plan.is_some() && !args.refresh { cx.config_if_any()? } else { Some(cx.load_config()?) };
    let mut backend = cx.state_backend(config.as_ref())?;
    // With `--refresh`, the providers are listed before the lock is taken.
    let listings = match (args.refresh, &config) {
        (true, Some(config)) => Some(refresh_cmd::list(config)?),
        _ => None,
    };
    let lock = backend.lock("apply", cx.global.lock_timeout)?;
    let loaded = backend.load_and_recover()?;
    cx.report_recovery(lock.stale.as_ref(), loaded.replay.as_ref(), true)?;
    let mut plan = if let (Some(config), Some(listings)) = (&config, &listings) {
        let scope = scope(&args.scope, config, loaded.state.as_ref())?;
        let (observed, refreshed) =
            refresh_cmd::observe(config, listings, loaded.state.as_ref(), args.reactivate, args.max_removal_fraction)?;
        let planner = plan::Planner::new(config, &scope, crate::clock::now()).refreshed(refreshed);
        plan::compute_with(planner, observed.as_ref())
    } else if let Some(file) = &args.plan {
        if !args.scope.targets.is_empty() || !args.scope.providers.is_empty() {
            return Err(Error::usage(
                "`--target` and `--provider` cannot narrow a saved plan",
                "pass them to `memberctl plan --out FILE` instead",
            ));
        }
        let plan = plan_file::read(file)?;
        if plan.state_location != backend.location() {
            let made = plan
                .state_location
                .as_ref()
                .map_or_else(|| "a state file".to_owned(), |l| format!("{} state `{}`", l.backend, l.name));
            return Err(apply::ApplyError::Stale {
                reason: format!("it was made against {made}, not {}", backend.describe()),
            }
            .into());
        }
        apply::check_fresh(&plan, loaded.state.as_ref())?;
        plan
    } else {
        let config = config.as_ref().expect("loaded above without a saved plan");
        let scope = scope(&args.scope, config, loaded.state.as_ref())?;
        // Copied into the changes, not moved as `plan` does: apply walks
        // every change's attributes again, to send and to record, and the
        // copies lie in address order where the originals lie as the
        // workers resolved them. Moving them (only a pointer each, since
        // the config boxes them) took a 100k sandbox apply from 1.08-1.38 s
        // of CPU to 1.55-1.82 s (3 alternating runs).
        plan::compute(config, loaded.state.as_ref(), &scope, crate::clock::now())
    };
    plan.warn_at_limits(args.max_changes, args.max_removal_fraction);
    if !cx.global.quiet || plan.no_changes {
        let color = cx.ui.color() && args.format == PlanFormat::Text;
        // Not the quiet success of a closed pipe that `plan | head` is:
        // nothing was applied, and the exit code must say so.
        let sends = plan.applyable && !plan.no_changes;
        cx.ui.render(|out| render::render(&plan, format_of(args.format), color, out)).map_err(|error| {
            if error.is_broken_pipe() && sends {
                Error::user("the output was closed before the plan could be shown; nothing was sent")
                    .with_hint("let apply write its whole output (`memberctl apply ... > apply.log`), or pass `-q`")
            } else {
                error
            }
        })?;
    }
    // A plan made with `--refresh` was made against the state as the
    // providers showed it: that is recorded before anything is sent (once
    // the apply is approved), or now when there is nothing to send.
    let observed = plan.refresh.as_ref().map_or(&[][..], |r| r.observed.as_slice());
    if plan.no_changes || !plan.applyable {
        record_observed(backend.as_mut(), loaded.state, observed)?;
        let nothing_sent = apply::ApplyReport {
            manual: plan.changes.iter().filter(|c| c.action == Action::Manual).map(|c| c.address.clone()).collect(),
            ..apply::ApplyReport::default()
        };
        let outcome = ApplySummary::of(&nothing_sent, &plan);
        match args.format {
            PlanFormat::Text if !plan.no_changes => cx.ui.println(&format!(
                "\nNothing memberctl can carry out: {} change(s) are manual (see above).",
                plan.summary.manual
            ))?,
            PlanFormat::Text => {}
            format => show_outcome(cx, format, &outcome)?,
        }
        *summary = Some(outcome);
        return Ok(Success::Done);
    }
    // The plan is all that is needed from here on: the config (every
    // member, resolved) is not kept in memory while sending.
    drop(listings);
    let config_files = config.map(|config| config.files).unwrap_or_default();
    apply::check_brake(&plan, args.max_changes, args.max_removal_fraction)?;
    apply::check_deletes(&plan, args.allow_delete)?;
    // Credentials and passwords are checked before anyone is asked `yes`.
    let env = |name: &str| std::env::var(name).ok();
    let clients = apply::preflight(&plan, &env).map_err(|error| placed(error, &config_files))?;
    // A saved plan was reviewed when it was made (on the pull request, in
    // the GitOps flow), so applying it does not ask again, as with
    // `terraform apply PLANFILE`; the safety brakes above still hold.
    if !args.auto_approve && args.plan.is_none() {
        if !cx.ui.stdin_tty {
            return Err(Error::usage(
                "apply needs confirmation, and there is no terminal to ask on",
                "review the plan, then pass `--auto-approve` (as CI pipelines do)",
            ));
        }
        if !confirm(cx, args.format)? {
            return Err(Error::user("apply cancelled; nothing was sent")
                .with_hint("answer `yes` to apply, or pass `--auto-approve`"));
        }
    }
    // What the refresh observed of a recorded state is journaled with the
    // apply's own outcomes and written with them: one state write, at the end.
    let observed = match &loaded.state {
        Some(state) => {
            edit::check(state, observed)?;
            observed
        }
        None => &[][..],
    };
    let mut recorder = backend.recorder(loaded.state.unwrap_or_else(State::new))?;
    if !observed.is_empty() {
        edit::journal(&mut recorder, observed.to_vec())?;
    }
    // One thread: this one. The CLI holds the stdout and stderr locks for the
    // whole command (`cli::run`), and the std locks are only re-entrant for
    // the thread that holds them, so a log line or progress line written
    // from another thread (a provider's `log::warn!`, the HTTP layer's
    // `-v` retry lines) would block forever. Sending is network-bound: one
    // thread drives all batches concurrently just as well.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::internal(format!("cannot start the async runtime: {source}")))?;
    let progress = Arc::new(cx.ui.progress());
    let cancel = Cancel::new();
    let result = runtime.block_on(async {
        watch_signals(cancel.clone());
        apply::run(&mut plan, clients, recorder, progress.clone(), cancel.clone()).await
    });
    let progress_written = progress.finish();
    drop(lock);
    drop(backend);
    // CI runners are thrown away with their files: a rescue journal goes
    // to the log too.
    match &result {
        Err(apply::ApplyError::State(error @ StateError::Rescued { document, path, .. })) => {
            *summary = Some(ApplySummary::unrecorded(error.to_string()));
            cx.ui.warn(&format!("rescue journal `{}`:\n{document}", path.display()))?;
        }
        Err(apply::ApplyError::State(error @ StateError::Unrecorded { document, rescue, .. })) => {
            *summary = Some(ApplySummary::unrecorded(error.to_string()));
            let path = rescue.as_ref().map_or_else(|| "(not saved)".to_owned(), |path| path.display().to_string());
            cx.ui.warn(&format!("rescue journal `{path}`:\n{document}"))?;
        }
        _ => {}
    }
    let (state, report) = result?;
    // The state is written, and only the summary is left before the process
    // exits: freeing the records one by one (some 15 allocations each) took
    // 47 ms of a 100k-member sandbox apply, measured with perf; the exit
    // returns the memory at once.
    std::mem::forget(state);
    let outcome = ApplySummary::of(&report, &plan);
    // Once anything was sent, a closed output (`apply | head`) must not
    // end the run before the exit code says how the apply went.
    past_a_closed_pipe(match args.format {
        PlanFormat::Text => cx.ui.render(|out| progress::summary(&report, &plan, out)),
        format => show_outcome(cx, format, &outcome),
    })?;
    *summary = Some(outcome);
    past_a_closed_pipe(progress_written)?;
    if !report.adopted.is_empty() {
        past_a_closed_pipe(cx.ui.warn(&adopted_warning(&report.adopted)))?;
    }
    if report.interrupted {
        return Err(Error::interrupted("apply was interrupted; what was in flight is recorded")
            .with_hint("run `memberctl apply` again to carry out the rest"));
    }
    if !report.failed.is_empty() || !report.uncertain.is_empty() {
        return Err(Error::provider(format!(
            "apply finished with {} failed and {} uncertain member(s); the successes are recorded",
            report.failed.len(),
            report.uncertain.len()
        ))
        .with_hint("see the reasons above; fix them and run `memberctl apply` again"));
    }
    Ok(Success::Done)
}

/// The outcome after the plan, in the plan's format when that is not text:
/// a second JSON document, or the markdown an apply summary comment holds.
fn show_outcome(cx: &mut Context<'_>, format: PlanFormat, outcome: &ApplySummary) -> Result<(), Error> {
    cx.ui.render(|out| {
        out.write_all(b"\n")?;
        if format == PlanFormat::Json {
            outcome.json(out)
        } else {
            outcome.markdown(out)
        }
    })
}

/// The warning DESIGN asks for when a provider answers that a member
/// already exists: memberctl adopted the account rather than inviting, so
/// someone may want to check it is the person the config means. The
/// addresses are in the summary above; the warning names a few.
fn adopted_warning(adopted: &[(crate::address::Address, String)]) -> String {
    const NAMED: usize = 5;
    let mut named: Vec<String> = adopted.iter().take(NAMED).map(|(address, _)| format!("`{address}`")).collect();
    if adopted.len() > NAMED {
        named.push(format!("and {} more", adopted.len() - NAMED));
    }
    format!(
        "{} member(s) already had an account at the provider and were adopted, not invited: {}",
        adopted.len(),
        named.join(", ")
    )
}

/// Apply's missing credentials and passwords as config problems, at the
/// file, line and column that declare the provider or the member (DESIGN
/// lists them with the other validation problems), so every
/// `--error-format` shows each of them; as they are without a config.
fn placed(error: apply::ApplyError, files: &[std::path::PathBuf]) -> Error {
    use crate::config::declared::{problem_at, Declared};
    match error {
        apply::ApplyError::Preflight { problems } if !files.is_empty() => {
            let mut problems: Vec<_> = problems
                .into_iter()
                .map(|problem| {
                    let what = match &problem.subject {
                        apply::Subject::Provider(name) => {
                            Declared::Provider { name, keys: &["api_key_env", "token_env"] }
                        }
                        apply::Subject::Member(address) => {
                            Declared::Member { email: address.email(), keys: &["password_env", "password_file"] }
                        }
                    };
                    problem_at(files, what, crate::config::rules::MISSING_AT_APPLY, problem.message, problem.hint)
                })
                .collect();
            // In file and line order, as config problems are listed.
            problems.sort_by(|a, b| {
                let line = |p: &crate::config::Problem| p.place.position.map(|at| (at.line, at.column));
                (&a.place.file, line(a)).cmp(&(&b.place.file, line(b)))
            });
            crate::config::ConfigError::Invalid { problems }.into()
        }
        error => error.into(),
    }
}
