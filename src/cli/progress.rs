//! Apply progress (a bar on a terminal, plain periodic lines in CI) and the
//! final summary.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::address::Address;
use crate::apply::{ApplyReport, Event, Reporter};
use crate::attributes::printable;
use crate::error::Error;
use crate::paint::{Paint, GREEN, RED};
use crate::plan::Plan;
use crate::provider::UncertainPolicy;

/// Progress of an apply. Lines go to stderr from the engine's task, where a
/// failed write cannot be returned: the first one is kept and reported by
/// [`Progress::finish`].
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Mutex<PlainState>,
    quiet: bool,
    paint: Paint,
}

struct PlainState {
    last: Instant,
    every: Duration,
    write_error: Option<io::Error>,
}

impl Progress {
    pub(super) fn new(quiet: bool, color: bool) -> Self {
        let tty = io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = (tty && !quiet).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} members  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        let plain = PlainState { last: Instant::now(), every: Duration::from_secs(5), write_error: None };
        Self { bar, plain: Mutex::new(plain), quiet, paint: Paint::new(color) }
    }

    /// Clears the bar; answers the first line that could not be written.
    pub fn finish(&self) -> Result<(), Error> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        match self.state().write_error.take() {
            Some(source) => Err(Error::stream("write progress to", "<stderr>", source)),
            None => Ok(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PlainState> {
        self.plain.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn line(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.println(text);
        } else if let Err(error) = writeln!(io::stderr(), "{text}") {
            self.state().write_error.get_or_insert(error);
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::Start { operations, batches } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(*operations as u64);
                } else if !self.quiet {
                    self.line(&format!("Applying {operations} change(s) in {batches} batch(es)..."));
                }
            }
            Event::Batch { provider, done, total, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*done as u64);
                    bar.set_message((*provider).to_owned());
                } else if !self.quiet {
                    let mut plain = self.state();
                    if plain.last.elapsed() >= plain.every || done == total {
                        plain.last = Instant::now();
                        drop(plain);
                        self.line(&format!("progress: {done}/{total} change(s) done"));
                    }
                }
            }
            Event::ProviderStopped { provider, message, hint } => {
                self.line(&format!("{} {message}", self.paint.paint(RED, "error:")));
                if let Some(hint) = hint {
                    self.line(&format!("{} {hint}", self.paint.paint(GREEN, "hint:")));
                }
                self.line(&format!("note: no further requests go to `{provider}` in this run"));
            }
            Event::Interrupted { grace } => {
                self.line(&format!(
                    "Interrupted: no new batches; waiting up to {}s for those in flight (Ctrl-C again to stop at once)",
                    grace.as_secs()
                ));
            }
        }
    }
}

/// The final summary of an apply.
pub fn summary(report: &ApplyReport, plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "\nApply {}: {} invited, {} added, {} adopted, {} updated, {} removed, {} failed, {} uncertain, {} manual.",
        if report.interrupted {
            "interrupted"
        } else if report.succeeded() {
            "complete"
        } else {
            "finished with failures"
        },
        report.invited.len(),
        report.added.len(),
        report.adopted.len(),
        report.updated.len(),
        report.removed.len(),
        report.failed.len(),
        report.uncertain.len(),
        report.manual.len(),
    )?;
    table(out, "Adopted (the provider already had them)", &report.adopted)?;
    table(
        out,
        "Gone: deleted at the provider, outside memberctl (drift; the next plan invites them again)",
        &report.gone,
    )?;
    table(out, "Failed", &report.failed)?;
    // What happens to an uncertain address next depends on its provider's
    // `uncertain` setting; the summary must not promise a resend under `hold`.
    let is_held = |address: &Address| {
        plan.providers.get(address.provider()).is_some_and(|p| p.uncertain == UncertainPolicy::Hold)
    };
    let (hold, send_again): (Vec<_>, Vec<_>) = report.uncertain.iter().cloned().partition(|(a, _)| is_held(a));
    table(out, "Uncertain (the next apply sends again; a duplicate answer adopts them)", &send_again)?;
    table(
        out,
        "Uncertain, held (`uncertain: hold`: the next plan shows them as manual; check at the provider, then `memberctl state import` or `memberctl state rm`)",
        &hold,
    )?;
    if !report.manual.is_empty() {
        writeln!(out, "\nManual (not carried out; see the plan for what to do by hand):")?;
        for address in &report.manual {
            writeln!(out, "  {}", printable(address.as_str()))?;
        }
    }
    Ok(())
}

fn table(out: &mut dyn Write, title: &str, rows: &[(Address, String)]) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{title}:")?;
    // Many addresses failing for one reason (a provider down) read best grouped.
    if rows.len() > 10 {
        let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (address, reason) in rows {
            by_reason.entry(reason.as_str()).or_default().push(address.as_str());
        }
        for (reason, addresses) in by_reason {
            let shown = addresses.iter().take(3).copied().collect::<Vec<_>>().join(", ");
            let more = addresses.len().saturating_sub(3);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            writeln!(out, "  {} address(es): {}\n    {}{more}", addresses.len(), printable(reason), printable(&shown))?;
        }
        return Ok(());
    }
    let width = rows.iter().map(|(a, _)| a.as_str().len()).max().unwrap_or(0);
    for (address, reason) in rows {
        writeln!(out, "  {:width$}  {}", printable(address.as_str()), printable(reason))?;
    }
    Ok(())
}

/// `-v`/`-q` set the level; `RUST_LOG` overrides. Logs go to stderr.
pub fn init_logging(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let env = env_logger::Env::default().default_filter_or(format!("memberctl={level}"));
    // A logger installed already (by an embedding program) is kept.
    env_logger::Builder::from_env(env).format_timestamp(None).format_target(false).try_init().ok();
}
