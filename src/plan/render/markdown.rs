//! The pull-request comment rendering of a plan.
//!
//! It opens with a hidden marker so a pipeline can find and update its
//! earlier comment, then the summary line, prominent warnings, a table per
//! provider and the attribute details folded in `<details>`. A comment is
//! kept under [`MARKDOWN_BUDGET`] characters (GitHub refuses 65,536): rows
//! past the budget are summarised as counts, and the comment says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::attributes::printable;
use crate::plan::{Action, Change, Plan, Reasons, Refreshed};
use crate::provider::CatalogKind;

/// The hidden marker that starts every comment.
pub const MARKER: &str = "<!-- memberctl-plan -->";

/// The most characters a comment may have.
pub const MARKDOWN_BUDGET: usize = 60_000;

/// Room kept for the closing lines after the budget is reached.
const RESERVE: usize = 4_000;

/// `writeln!` into a `String`, which cannot fail.
macro_rules! put_line {
    ($doc:expr, $($arg:tt)*) => {
        writeln!($doc, $($arg)*).expect("writing to a String cannot fail")
    };
}

fn icon(action: Action) -> &'static str {
    match action {
        Action::Invite => "➕ invite",
        Action::Resend => "🔁 resend",
        Action::Update => "✏️ update",
        Action::Remove => "➖ remove",
        Action::Manual => "⚠️ manual",
    }
}

/// The most characters of one table cell or warning: one member's very
/// long value must not eat the whole comment.
const MAX_CELL: usize = 1_000;

/// Escapes text for a table cell, shortened to 1,000 characters.
#[must_use]
pub fn cell(text: &str) -> String {
    // Line breaks become spaces (a cell is one line); any other control
    // character quotes the text.
    let one_line = text.replace(['\r', '\n'], " ");
    let escaped = printable(&one_line).replace('|', "\\|").replace('<', "&lt;");
    match escaped.char_indices().nth(MAX_CELL) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

/// `text` as a code span: between single backticks, or between a run one
/// longer than any it holds (an email may hold a backtick).
fn code(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    if longest == 0 {
        return format!("`{text}`");
    }
    let fence = "`".repeat(longest + 1);
    format!("{fence} {text} {fence}")
}

fn what_changes(change: &Change) -> String {
    let by_hand = change.wanted.map(|w| format!("{} by hand", w.as_str()));
    if !change.fields.is_empty() {
        let fields = change
            .fields
            .iter()
            .map(|f| format!("{}: {} → {}", f.field, f.shown_before(), f.shown_after()))
            .collect::<Vec<_>>()
            .join("; ");
        return by_hand.map_or(fields.clone(), |b| format!("{b}: {fields}"));
    }
    if let Some(by_hand) = by_hand {
        return by_hand;
    }
    match change.action {
        Action::Invite | Action::Resend => change.after.as_ref().map_or_else(String::new, |a| {
            let mut parts = Vec::new();
            if let Some(n) = &a.name {
                parts.push(n.clone());
            }
            if !a.roles.is_empty() {
                parts.push(format!("roles: {}", change.names.show_list(CatalogKind::Roles, &a.roles)));
            }
            if !a.plans.is_empty() {
                parts.push(format!("plans: {}", change.names.show_list(CatalogKind::Plans, &a.plans)));
            }
            if !a.groups.is_empty() {
                parts.push(format!("groups: {}", change.names.show_list(CatalogKind::Groups, &a.groups)));
            }
            parts.join("; ")
        }),
        _ => String::new(),
    }
}

/// What a refresh found, in one line of counts. Unmanaged users are only
/// counted: the comment is public to everyone who can read the repository.
fn refresh_line(refreshed: &Refreshed) -> String {
    refresh_counts(&refreshed.checked, &refreshed.not_checked, refreshed.drift.len(), refreshed.unmanaged_count)
}

/// What a refresh found, in one line of counts (unmanaged users counted,
/// never named), for the plan's comment and the apply's.
#[must_use]
pub fn refresh_counts(checked: &[String], not_checked: &[String], drifted: usize, unmanaged: usize) -> String {
    let names = |list: &[String]| list.iter().map(|p| code(&cell(p))).collect::<Vec<_>>().join(", ");
    let mut line = if checked.is_empty() {
        "Refreshed: no provider can list its members".to_owned()
    } else {
        format!("Refreshed {}: {drifted} address(es) drifted, {unmanaged} unmanaged user(s)", names(checked))
    };
    if !not_checked.is_empty() {
        write!(line, "; not checked (cannot list): {}", names(not_checked)).expect("writing to a String cannot fail");
    }
    line.push('.');
    line
}

/// Drift the plan does not put back (a user suspended at the service is
/// reported, not reactivated): named, as the counts include it and no
/// table row does. Drift is of managed members, whom the comment may name.
fn unplanned_drift(doc: &mut String, plan: &Plan, refreshed: &Refreshed) {
    const NAMED: usize = 20;
    let planned: std::collections::HashSet<&crate::address::Address> =
        plan.changes.iter().map(|change| &change.address).collect();
    let unplanned: Vec<_> = refreshed.drift.iter().filter(|note| !planned.contains(&note.address)).collect();
    if unplanned.is_empty() {
        return;
    }
    put_line!(doc, "Drift reported, nothing planned:\n");
    for note in unplanned.iter().take(NAMED) {
        put_line!(doc, "- {}: {}", code(&cell(note.address.as_str())), cell(&note.found));
    }
    if unplanned.len() > NAMED {
        put_line!(doc, "- and {} more (`memberctl refresh --check` lists them)", unplanned.len() - NAMED);
    }
    doc.push('\n');
}

/// Writes the comment.
pub fn markdown(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    let mut doc = String::with_capacity(8 * 1024);
    put_line!(doc, "{MARKER}");
    put_line!(doc, "### memberctl plan\n");
    if plan.no_changes {
        put_line!(doc, "**No changes. Membership matches the configuration.**");
        for warning in &plan.warnings {
            put_line!(doc, "\n> [!WARNING]\n> {}", cell(warning));
        }
        if let Some(refreshed) = &plan.refresh {
            put_line!(doc, "\n{}", refresh_line(refreshed));
            unplanned_drift(&mut doc, plan, refreshed);
        }
        return out.write_all(doc.as_bytes());
    }
    put_line!(doc, "**{}**\n", plan.summary.line());
    if let Some(refreshed) = &plan.refresh {
        put_line!(doc, "{}\n", refresh_line(refreshed));
        unplanned_drift(&mut doc, plan, refreshed);
    }
    let mut warnings: Vec<String> = plan.warnings.clone();
    if plan.summary.manual > 0 {
        warnings.push(format!(
            "{} change(s) cannot be made through the provider's API and need a person: see the ⚠️ rows.",
            plan.summary.manual
        ));
    }
    // Warnings are a few as a rule, but one a provider can be many: a
    // quarter of the budget for them, then a count.
    for (index, warning) in warnings.iter().enumerate() {
        let shown = format!("> [!WARNING]\n> {}\n", cell(warning));
        if doc.len() + shown.len() > MARKDOWN_BUDGET / 4 {
            put_line!(
                doc,
                "> [!WARNING]\n> {} more warning(s): run `memberctl plan` to see them all.\n",
                warnings.len() - index
            );
            break;
        }
        put_line!(doc, "{shown}");
    }

    let mut by_provider: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for change in &plan.changes {
        by_provider.entry(change.provider()).or_default().push(change);
    }
    let body_budget = MARKDOWN_BUDGET - RESERVE;
    let mut shown = 0usize;
    let mut truncated = false;
    let mut unlisted = 0usize;
    for (provider, changes) in &by_provider {
        let kind = plan.providers.get(*provider).map_or_else(|| "not configured".to_owned(), |s| s.kind.to_string());
        let mut counts: BTreeMap<Action, usize> = BTreeMap::new();
        for c in changes {
            *counts.entry(c.action).or_default() += 1;
        }
        let counts = counts.iter().map(|(a, n)| format!("{n} {}", a.as_str())).collect::<Vec<_>>().join(", ");
        let heading = format!("#### {} ({kind}): {counts}\n", code(&cell(provider)));
        if truncated && doc.len() + heading.len() > body_budget / 2 {
            // Past the tables' half of the budget, providers are counted,
            // not each given a heading.
            unlisted += 1;
            continue;
        }
        put_line!(doc, "{heading}");
        if truncated {
            continue;
        }
        put_line!(doc, "| Address | Action | What changes |\n|---|---|---|");
        for change in changes {
            // The row is measured before it is added, so no single row can
            // carry the comment past the budget.
            let row = format!(
                "| {} | {} | {} |\n",
                code(&cell(change.address.as_str())),
                icon(change.action),
                cell(&what_changes(change))
            );
            if doc.len() + row.len() > body_budget / 2 {
                truncated = true;
                break;
            }
            doc.push_str(&row);
            shown += 1;
        }
        doc.push('\n');
    }
    // Details: one fenced diff per change, until the budget is used.
    let mut details = String::new();
    let mut detailed = 0usize;
    let reasons = Reasons::of(plan);
    for change in &plan.changes {
        let mut entry = String::new();
        put_line!(
            entry,
            "{} {} {}",
            change.action.symbol(),
            change.action.as_str(),
            printable(change.address.as_str())
        );
        for f in &change.fields {
            put_line!(entry, "-   {}: {}\n+   {}: {}", f.field, f.shown_before(), f.field, f.shown_after());
        }
        if change.fields.is_empty() {
            if let Some(after) = &change.after {
                for line in after.lines_named(&change.names).iter().skip(1) {
                    put_line!(entry, "    {line}");
                }
            }
        }
        if let Some(reason) = reasons.shown(change) {
            put_line!(entry, "#   {}", printable(&reason));
        }
        if doc.len() + details.len() + entry.len() > body_budget {
            truncated = true;
            break;
        }
        details.push_str(&entry.replace("```", "'''"));
        detailed += 1;
    }
    if !details.is_empty() {
        put_line!(
            doc,
            "<details><summary>Details ({detailed} of {} changes)</summary>\n\n```diff\n{details}```\n</details>\n",
            plan.changes.len()
        );
    }
    if truncated {
        put_line!(
            doc,
            "> [!NOTE]\n> This plan is large: the tables show {shown} and the details {detailed} of {} changes, to stay under {MARKDOWN_BUDGET} characters. Run `memberctl plan` or see the pipeline's saved plan for all of them.\n",
            plan.changes.len()
        );
        if unlisted > 0 {
            put_line!(doc, "> {unlisted} more provider(s) with changes are not listed.\n");
        }
    }
    out.write_all(doc.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::{cell, code};

    // Found by a review: a CR broke a table row, and a backtick in an email
    // (which validation allows) ended the code span around the address.
    #[test]
    fn cells_and_code_spans_hold_whatever_a_value_holds() {
        assert_eq!(code("jane@example.com"), "`jane@example.com`");
        assert_eq!(code("ja`ne@example.com"), "`` ja`ne@example.com ``");
        assert_eq!(code("a``b"), "``` a``b ```");
        assert_eq!(cell("a|b<c"), "a\\|b&lt;c");
        assert!(!cell("one\rtwo\nthree").contains(['\r', '\n']), "{}", cell("one\rtwo\nthree"));
        assert!(!cell("\u{1b}[31mred").contains('\u{1b}'));
    }
}
