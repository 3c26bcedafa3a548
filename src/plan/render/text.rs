//! The terraform-like text rendering of a plan.

use std::io::{self, BufWriter, Write};

use similar::{ChangeTag, TextDiff};

use crate::plan::{Action, Change, Plan};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

fn color_of(action: Action) -> &'static str {
    match action {
        Action::Invite => "\x1b[32m",
        Action::Resend => "\x1b[36m",
        Action::Update => "\x1b[33m",
        Action::Remove => "\x1b[31m",
        Action::Manual => "\x1b[35m",
    }
}

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

/// Writes the text rendering, through its own 64 KiB buffer so callers may pass an unbuffered stream.
pub fn text(plan: &Plan, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(super::BUFFER, out);
    write_text(plan, color, &mut out)?;
    out.flush()
}

fn write_text(plan: &Plan, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let painter = Painter { color };
    for warning in &plan.warnings {
        writeln!(out, "{} {warning}", painter.paint("\x1b[33m", "warning:"))?;
    }
    if plan.no_changes {
        if !plan.warnings.is_empty() {
            writeln!(out)?;
        }
        writeln!(out, "{}", painter.paint(BOLD, "No changes. Membership matches the configuration."))?;
        return Ok(());
    }
    writeln!(out, "memberctl will perform the following actions:")?;
    for change in &plan.changes {
        writeln!(out)?;
        change_text(change, &painter, out)?;
    }
    writeln!(out)?;
    writeln!(out, "{}", painter.paint(BOLD, &plan.summary.line()))?;
    Ok(())
}

fn change_text(change: &Change, painter: &Painter, out: &mut dyn Write) -> io::Result<()> {
    let code = color_of(change.action);
    let head = format!("{} {}", change.action.symbol(), change.action.as_str());
    let wanted = change.wanted.map(|w| format!(" ({})", w.as_str())).unwrap_or_default();
    writeln!(out, "  {} {}{wanted}", painter.paint(code, &head), painter.paint(BOLD, change.address.as_str()))?;
    match (&change.before, &change.after) {
        (Some(before), Some(after)) if !change.fields.is_empty() => {
            let old = before.lines().join("\n") + "\n";
            let new = after.lines().join("\n") + "\n";
            let diff = TextDiff::from_lines(&old, &new);
            for line in diff.iter_all_changes() {
                let text = line.value().trim_end_matches('\n');
                match line.tag() {
                    ChangeTag::Delete => writeln!(out, "      {}", painter.paint("\x1b[31m", &format!("- {text}")))?,
                    ChangeTag::Insert => writeln!(out, "      {}", painter.paint("\x1b[32m", &format!("+ {text}")))?,
                    ChangeTag::Equal => {}
                }
            }
        }
        (None, Some(after)) => {
            for line in after.lines().iter().skip(1) {
                writeln!(out, "      {line}")?;
            }
        }
        _ => {}
    }
    if let Some(reason) = &change.reason {
        writeln!(out, "      {}", painter.paint("\x1b[2m", &format!("# {reason}")))?;
    }
    Ok(())
}
