//! The terraform-like text rendering of a plan.

use std::io::{self, BufWriter, Write};

use similar::{ChangeTag, TextDiff};

use crate::attributes::printable;
use crate::paint::{Paint, BOLD, CYAN, DIM, GREEN, MAGENTA, RED, YELLOW};
use crate::plan::{Action, Change, Plan, Reasons, Refreshed};

fn color_of(action: Action) -> &'static str {
    match action {
        Action::Invite => GREEN,
        Action::Resend => CYAN,
        Action::Update => YELLOW,
        Action::Remove => RED,
        Action::Manual => MAGENTA,
    }
}

/// Writes the text rendering, through its own 64 KiB buffer so callers may pass an unbuffered stream.
pub fn text(plan: &Plan, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(super::BUFFER, out);
    write_text(plan, color, &mut out)?;
    out.flush()
}

fn write_text(plan: &Plan, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let painter = Paint::new(color);
    for warning in &plan.warnings {
        writeln!(out, "{} {warning}", painter.paint(YELLOW, "warning:"))?;
    }
    if plan.no_changes {
        if !plan.warnings.is_empty() {
            writeln!(out)?;
        }
        writeln!(out, "{}", painter.paint(BOLD, "No changes. Membership matches the configuration."))?;
        if let Some(refreshed) = &plan.refresh {
            refresh_text(refreshed, color, out)?;
        }
        return Ok(());
    }
    writeln!(out, "memberctl will perform the following actions:")?;
    let reasons = Reasons::of(plan);
    for change in &plan.changes {
        writeln!(out)?;
        change_text(change, &reasons, painter, out)?;
    }
    writeln!(out)?;
    writeln!(out, "{}", painter.paint(BOLD, &plan.summary.line()))?;
    if let Some(refreshed) = &plan.refresh {
        refresh_text(refreshed, color, out)?;
    }
    Ok(())
}

/// What a refresh found: which providers were checked, the drift, and the
/// unmanaged users (listed by address: text and JSON only).
pub fn refresh_text(refreshed: &Refreshed, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let painter = Paint::new(color);
    let names = |list: &[String]| list.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ");
    writeln!(out)?;
    if refreshed.checked.is_empty() {
        writeln!(out, "Refresh: no provider can list its members.")?;
    } else {
        writeln!(out, "Refresh: listed {}.", names(&refreshed.checked))?;
    }
    if !refreshed.not_checked.is_empty() {
        writeln!(out, "Not checked (they cannot list their members): {}.", names(&refreshed.not_checked))?;
    }
    for note in &refreshed.notes {
        writeln!(out, "{} {note}", painter.paint(YELLOW, "note:"))?;
    }
    if refreshed.drift.is_empty() {
        if !refreshed.checked.is_empty() {
            writeln!(out, "No drift: the listed providers hold what the state records.")?;
        }
    } else {
        writeln!(out, "{}", painter.paint(YELLOW, &format!("Drift at {} address(es):", refreshed.drift.len())))?;
        for drift in &refreshed.drift {
            writeln!(out, "  {}  {}", printable(drift.address.as_str()), drift.found)?;
        }
    }
    if refreshed.unmanaged_count > 0 {
        writeln!(
            out,
            "Unmanaged: {} user(s) neither configured nor recorded (memberctl never removes them):",
            refreshed.unmanaged_count
        )?;
        for address in &refreshed.unmanaged {
            writeln!(out, "  {}", printable(address.as_str()))?;
        }
    }
    Ok(())
}

fn change_text(change: &Change, reasons: &Reasons<'_>, painter: Paint, out: &mut dyn Write) -> io::Result<()> {
    let code = color_of(change.action);
    let head = format!("{} {}", change.action.symbol(), change.action.as_str());
    let wanted = change.wanted.map(|w| format!(" ({})", w.as_str())).unwrap_or_default();
    writeln!(
        out,
        "  {} {}{wanted}",
        painter.paint(code, &head),
        painter.paint(BOLD, &printable(change.address.as_str()))
    )?;
    match (&change.before, &change.after) {
        (Some(before), Some(after)) if !change.fields.is_empty() => {
            let old = before.lines_named(&change.names).join("\n") + "\n";
            let new = after.lines_named(&change.names).join("\n") + "\n";
            let diff = TextDiff::from_lines(&old, &new);
            for line in diff.iter_all_changes() {
                let text = line.value().trim_end_matches('\n');
                match line.tag() {
                    ChangeTag::Delete => writeln!(out, "      {}", painter.paint(RED, &format!("- {text}")))?,
                    ChangeTag::Insert => writeln!(out, "      {}", painter.paint(GREEN, &format!("+ {text}")))?,
                    ChangeTag::Equal => {}
                }
            }
            // Each changed field on one line too, by names, as DESIGN
            // writes it (`roles: member → admin`) and the markdown shows it.
            for field in &change.fields {
                let line = format!("~ {}: {} → {}", field.field, field.shown_before(), field.shown_after());
                writeln!(out, "      {}", painter.paint(YELLOW, &line))?;
            }
        }
        (None, Some(after)) => {
            for line in after.lines_named(&change.names).iter().skip(1) {
                writeln!(out, "      {line}")?;
            }
        }
        _ => {}
    }
    if let Some(reason) = reasons.shown(change) {
        writeln!(out, "      {}", painter.paint(DIM, &format!("# {}", printable(&reason))))?;
    }
    Ok(())
}
