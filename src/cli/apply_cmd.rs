//! `memberctl apply`.

use std::io::BufRead;
use std::sync::Arc;

use super::output::{self, Progress};
use super::plan_cmd::{report_recovery, scope};
use super::{ApplyArgs, Context, Outcome};
use crate::apply::{self, Cancel};
use crate::error::{exit, Error};
use crate::plan::{self, render, Plan};
use crate::state::{self, Lock, Recorder, State};

fn read_plan(path: &std::path::Path) -> Result<Plan, Error> {
    let bytes =
        std::fs::read(path).map_err(|source| Error::Io { action: "read the plan", path: path.to_owned(), source })?;
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

fn confirm(cx: &mut Context<'_>) -> Result<bool, Error> {
    let _ = write!(cx.stdout, "\nDo you want to perform these actions? Invitations are emails and cannot be unsent.\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    let _ = cx.stdout.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|source| Error::Io {
        action: "read",
        path: "<stdin>".into(),
        source,
    })?;
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

pub(super) fn run(args: &ApplyArgs, cx: &mut Context<'_>) -> Outcome {
    let paths = cx.state_paths();
    let lock = Lock::acquire(&paths, "apply", cx.global.lock_timeout)?;
    let loaded = state::load_and_recover(&paths)?;
    report_recovery(cx, &lock, loaded.replay.as_ref(), true);
    let plan = if let Some(file) = &args.plan {
        if !args.scope.targets.is_empty() || !args.scope.providers.is_empty() {
            return Err(Error::usage(
                "`--target` and `--provider` cannot narrow a saved plan",
                "pass them to `memberctl plan --out FILE` instead",
            ));
        }
        let plan = read_plan(file)?;
        apply::check_fresh(&plan, loaded.state.as_ref())?;
        plan
    } else {
        let config = cx.load_config()?;
        let scope = scope(&args.scope, &config, loaded.state.as_ref())?;
        plan::compute(&config, loaded.state.as_ref(), &scope, crate::clock::now())
    };
    if !cx.global.quiet || plan.no_changes {
        let _ = render::text(&plan, cx.color, cx.stdout);
    }
    if plan.no_changes {
        return Ok(exit::OK);
    }
    if !plan.applyable {
        let _ = writeln!(
            cx.stdout,
            "\nNothing memberctl can carry out: {} change(s) are manual (see above).",
            plan.summary.manual
        );
        return Ok(exit::OK);
    }
    apply::check_brake(&plan, args.max_changes)?;
    // Credentials and passwords are checked before anyone is asked `yes`.
    let env = |name: &str| std::env::var(name).ok();
    let clients = apply::preflight(&plan, &env)?;
    if !args.auto_approve {
        if !cx.stdin_tty {
            return Err(Error::usage(
                "apply needs confirmation, and there is no terminal to ask on",
                "review the plan, then pass `--auto-approve` (as CI pipelines do)",
            ));
        }
        if !confirm(cx)? {
            let _ = writeln!(cx.stdout, "\nApply cancelled; nothing was sent.");
            return Ok(exit::ERROR);
        }
    }
    let recorder = Recorder::begin(&paths, loaded.state.unwrap_or_else(State::new))?;
    // One thread: this one. The CLI holds the stdout and stderr locks for the
    // whole command (`cli::run`), and the std locks are only re-entrant for
    // the thread that holds them, so a log line or progress line written
    // from another thread (a provider's `log::warn!`, the HTTP layer's
    // `-v` retry lines) would block forever. Sending is network-bound: one
    // thread drives all batches concurrently just as well.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|source| Error::Io {
        action: "start the async runtime for",
        path: "apply".into(),
        source,
    })?;
    let progress = Arc::new(Progress::new(cx.global.quiet));
    let cancel = Cancel::new();
    let result = runtime.block_on(async {
        watch_signals(cancel.clone());
        apply::run(&plan, clients, recorder, progress.clone(), cancel.clone()).await
    });
    progress.finish();
    drop(lock);
    let (_state, report) = result?;
    output::summary(&report, cx.stdout);
    Ok(if report.interrupted {
        exit::INTERRUPTED
    } else if report.failed.is_empty() && report.uncertain.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}
