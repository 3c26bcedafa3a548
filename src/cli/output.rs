//! Terminal output: colors, logging, apply progress and the final summary.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{ColorChoice, Global};
use crate::apply::{ApplyReport, Event, Reporter};

pub const RED: &str = "\x1b[31m";
pub const YELLOW: &str = "\x1b[33m";
pub const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// Colors follow `--color`, then `NO_COLOR`, `CLICOLOR_FORCE`, `CLICOLOR`,
/// then whether the stream is a terminal.
pub fn use_color(choice: ColorChoice, stream: &impl IsTerminal) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if set("NO_COLOR") {
                false
            } else if std::env::var("CLICOLOR_FORCE").is_ok_and(|v| v != "0") {
                true
            } else if std::env::var("CLICOLOR").is_ok_and(|v| v == "0") {
                false
            } else {
                stream.is_terminal()
            }
        }
    }
}

pub fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("{code}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

/// Colors the `error:` and `hint:` prefixes of a rendered error.
pub fn color_error(color: bool, text: &str) -> String {
    if !color {
        return text.to_owned();
    }
    text.lines()
        .map(|line| {
            if let Some(rest) = line.strip_prefix("error:") {
                format!("{RED}error:{RESET}{rest}")
            } else if let Some(rest) = line.strip_prefix("hint:") {
                format!("{GREEN}hint:{RESET}{rest}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `-v`/`-q` set the level; `RUST_LOG` overrides. Logs go to stderr.
pub fn init_logging(global: &Global) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let env = env_logger::Env::default().default_filter_or(format!("memberctl={level}"));
    let _ = env_logger::Builder::from_env(env).format_timestamp(None).format_target(false).try_init();
}

/// Progress of an apply: a bar on a terminal, plain lines otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Mutex<PlainState>,
    quiet: bool,
}

struct PlainState {
    last: Instant,
    every: Duration,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = (tty && !quiet).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} members  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar, plain: Mutex::new(PlainState { last: Instant::now(), every: Duration::from_secs(5) }), quiet }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.println(text);
        } else {
            let _ = writeln!(std::io::stderr(), "{text}");
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
                    let mut plain = self.plain.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if plain.last.elapsed() >= plain.every || done == total {
                        plain.last = Instant::now();
                        drop(plain);
                        self.line(&format!("progress: {done}/{total} change(s) done"));
                    }
                }
            }
            Event::ProviderStopped { provider, message, hint } => {
                self.line(&format!("error: {message}"));
                if let Some(hint) = hint {
                    self.line(&format!("hint: {hint}"));
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
pub fn summary(report: &ApplyReport, out: &mut dyn Write) {
    let _ = writeln!(
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
    );
    let table = |out: &mut dyn Write, title: &str, rows: &[(crate::address::Address, String)]| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{title}:");
        // Many addresses failing for one reason (a provider down) read best grouped.
        if rows.len() > 10 {
            let mut by_reason: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
            for (address, reason) in rows {
                by_reason.entry(reason.as_str()).or_default().push(address.as_str());
            }
            for (reason, addresses) in by_reason {
                let shown = addresses.iter().take(3).copied().collect::<Vec<_>>().join(", ");
                let more = addresses.len().saturating_sub(3);
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                let _ = writeln!(out, "  {} address(es): {reason}\n    {shown}{more}", addresses.len());
            }
            return;
        }
        let width = rows.iter().map(|(a, _)| a.as_str().len()).max().unwrap_or(0);
        for (address, reason) in rows {
            let _ = writeln!(out, "  {:width$}  {reason}", address.as_str());
        }
    };
    table(out, "Adopted (the provider already had them)", &report.adopted);
    table(out, "Failed", &report.failed);
    table(out, "Uncertain (the next apply sends again; a duplicate answer adopts them)", &report.uncertain);
    if !report.manual.is_empty() {
        let _ = writeln!(out, "\nManual (not carried out; see the plan for what to do by hand):");
        for address in &report.manual {
            let _ = writeln!(out, "  {address}");
        }
    }
}
