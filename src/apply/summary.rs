//! The outcome of an apply for machines and pull requests
//! (`apply --summary-out FILE`): counts per provider, each failure with its
//! reason, uncertain addresses and the manual changes still open, as JSON or
//! as a markdown comment with the plan comment's conventions (a hidden
//! marker, a size cap).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use super::ApplyReport;
use crate::address::Address;
use crate::plan::render::{cell, refresh_counts, MARKDOWN_BUDGET};
use crate::plan::{Action, Plan};

/// The hidden marker that starts every apply comment.
pub const APPLY_MARKER: &str = "<!-- memberctl-apply -->";

/// The summary format version.
pub const SUMMARY_FORMAT_VERSION: u32 = 1;

/// How an apply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyStatus {
    /// Everything planned was carried out (or there was nothing to do).
    Complete,
    /// Some members failed or are uncertain; the successes are recorded.
    FinishedWithFailures,
    /// Ctrl-C or SIGTERM stopped it; what was in flight is recorded.
    Interrupted,
    /// It did not start (a refused plan, missing credentials, a held lock…):
    /// nothing was sent.
    NotStarted,
}

/// Counts at one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProviderCounts {
    /// Invitations sent.
    pub invited: usize,
    /// Members added directly.
    pub added: usize,
    /// Members the provider already had.
    pub adopted: usize,
    /// Members updated.
    pub updated: usize,
    /// Members removed (or deactivated).
    pub removed: usize,
    /// Refusals.
    pub failed: usize,
    /// Unknown outcomes.
    pub uncertain: usize,
    /// Changes left for a person.
    pub manual: usize,
}

/// One address and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `PROVIDER/EMAIL`.
    pub address: Address,
    /// The reason, in the provider's words where it gave any.
    pub reason: String,
}

/// What `--summary-out` writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApplySummary {
    /// The summary format.
    pub format_version: u32,
    /// How the apply ended.
    pub status: ApplyStatus,
    /// Why it did not start (only for `not_started`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Counts per provider.
    pub providers: BTreeMap<String, ProviderCounts>,
    /// Each refusal with its reason.
    pub failed: Vec<Item>,
    /// Each unknown outcome with its reason.
    pub uncertain: Vec<Item>,
    /// Members the provider already had, with its words.
    pub adopted: Vec<Item>,
    /// Members found deleted at the provider when they were to be updated
    /// (drift: the next plan invites them again).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<Item>,
    /// Manual changes still open, with what to do.
    pub manual: Vec<Item>,
    /// What the refresh before it found (`apply --refresh`, or a plan saved
    /// with `--refresh`): counts only, as in the plan's comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshCounts>,
}

/// What a refresh found, counted: unmanaged users are counted in every
/// format, and listed only where the repository's readers cannot see them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefreshCounts {
    /// Providers that were listed.
    pub checked: Vec<String>,
    /// Providers that cannot list: not checked (never "in sync").
    pub not_checked: Vec<String>,
    /// Addresses where a provider differed from the state.
    pub drifted: usize,
    /// Users the providers hold that are neither configured nor recorded.
    pub unmanaged: usize,
}

impl ApplySummary {
    /// The summary of an apply that ran.
    #[must_use]
    pub fn of(report: &ApplyReport, plan: &Plan) -> Self {
        let mut providers: BTreeMap<String, ProviderCounts> = BTreeMap::new();
        let mut count = |address: &Address, field: fn(&mut ProviderCounts) -> &mut usize| {
            *field(providers.entry(address.provider().to_owned()).or_default()) += 1;
        };
        report.invited.iter().for_each(|a| count(a, |c| &mut c.invited));
        report.added.iter().for_each(|a| count(a, |c| &mut c.added));
        report.adopted.iter().for_each(|(a, _)| count(a, |c| &mut c.adopted));
        report.updated.iter().for_each(|a| count(a, |c| &mut c.updated));
        report.removed.iter().for_each(|a| count(a, |c| &mut c.removed));
        report.failed.iter().for_each(|(a, _)| count(a, |c| &mut c.failed));
        report.uncertain.iter().for_each(|(a, _)| count(a, |c| &mut c.uncertain));
        report.manual.iter().for_each(|a| count(a, |c| &mut c.manual));
        let items = |rows: &[(Address, String)]| {
            rows.iter().map(|(address, reason)| Item { address: address.clone(), reason: reason.clone() }).collect()
        };
        let manual = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Manual)
            .map(|c| Item { address: c.address.clone(), reason: c.reason.clone().unwrap_or_default() })
            .collect();
        let status = if report.interrupted {
            ApplyStatus::Interrupted
        } else if report.succeeded() {
            ApplyStatus::Complete
        } else {
            ApplyStatus::FinishedWithFailures
        };
        ApplySummary {
            format_version: SUMMARY_FORMAT_VERSION,
            status,
            error: None,
            providers,
            failed: items(&report.failed),
            uncertain: items(&report.uncertain),
            adopted: items(&report.adopted),
            gone: items(&report.gone),
            manual,
            refresh: plan.refresh.as_ref().map(|r| RefreshCounts {
                checked: r.checked.clone(),
                not_checked: r.not_checked.clone(),
                drifted: r.drift.len(),
                unmanaged: r.unmanaged_count,
            }),
        }
    }

    /// The summary of an apply that did not start.
    #[must_use]
    pub fn not_started(error: String) -> Self {
        ApplySummary {
            format_version: SUMMARY_FORMAT_VERSION,
            status: ApplyStatus::NotStarted,
            error: Some(error),
            providers: BTreeMap::new(),
            failed: Vec::new(),
            uncertain: Vec::new(),
            adopted: Vec::new(),
            gone: Vec::new(),
            manual: Vec::new(),
            refresh: None,
        }
    }

    /// The summary of an apply that sent, and whose answers could not all
    /// be recorded (they are in a rescue journal): not "not started".
    #[must_use]
    pub fn unrecorded(error: String) -> Self {
        ApplySummary { status: ApplyStatus::FinishedWithFailures, ..Self::not_started(error) }
    }

    /// Writes the summary as JSON.
    pub fn json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self).map_err(io::Error::from)?;
        out.write_all(b"\n")
    }

    /// Writes the summary as a pull-request comment, kept under
    /// [`MARKDOWN_BUDGET`] characters: lists past the budget are counted,
    /// not shown, and the comment says so.
    pub fn markdown(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut doc = String::with_capacity(4 * 1024);
        let line = |doc: &mut String, text: &str| {
            doc.push_str(text);
            doc.push('\n');
        };
        line(&mut doc, APPLY_MARKER);
        line(&mut doc, "### memberctl apply\n");
        let status = match self.status {
            ApplyStatus::Complete => "✅ **Apply complete.**",
            ApplyStatus::FinishedWithFailures => "❌ **Apply finished with failures**; the successes are recorded.",
            ApplyStatus::Interrupted => "⏹️ **Apply interrupted**; what was in flight is recorded.",
            ApplyStatus::NotStarted => "❌ **Apply did not start**; nothing was sent.",
        };
        line(&mut doc, status);
        if let Some(error) = &self.error {
            line(&mut doc, &format!("\n> {}", cell(error)));
        }
        if let Some(r) = &self.refresh {
            line(&mut doc, &format!("\n{}", refresh_counts(&r.checked, &r.not_checked, r.drifted, r.unmanaged)));
        }
        if !self.providers.is_empty() {
            line(
                &mut doc,
                "\n| Provider | Invited | Added | Adopted | Updated | Removed | Failed | Uncertain | Manual |",
            );
            line(&mut doc, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            for (name, c) in &self.providers {
                line(
                    &mut doc,
                    &format!(
                        "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
                        cell(name),
                        c.invited,
                        c.added,
                        c.adopted,
                        c.updated,
                        c.removed,
                        c.failed,
                        c.uncertain,
                        c.manual
                    ),
                );
            }
        }
        let body_budget = MARKDOWN_BUDGET - 2_000;
        let mut left_out = 0usize;
        for (title, items) in [
            ("Failed", &self.failed),
            ("Uncertain (the next apply settles them)", &self.uncertain),
            ("Manual changes still open", &self.manual),
            ("Adopted (the provider already had them)", &self.adopted),
            ("Gone: deleted at the provider, outside memberctl (the next plan invites them again)", &self.gone),
        ] {
            if items.is_empty() {
                continue;
            }
            line(&mut doc, &format!("\n<details><summary>{title}: {}</summary>\n", items.len()));
            for item in items {
                let row = format!("- `{}`: {}\n", cell(item.address.as_str()), cell(&item.reason));
                // Measured before it is added, so no row carries the comment past the budget.
                if doc.len() + row.len() > body_budget {
                    left_out += 1;
                } else {
                    doc.push_str(&row);
                }
            }
            line(&mut doc, "\n</details>");
        }
        if left_out > 0 {
            write!(
                doc,
                "\n> [!NOTE]\n> {left_out} row(s) are left out to stay under {MARKDOWN_BUDGET} characters; the pipeline's log has all of them.\n"
            )
            .expect("writing to a String cannot fail");
        }
        out.write_all(doc.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::{ApplyStatus, ApplySummary, Item};
    use crate::address::Address;
    use crate::plan::render::MARKDOWN_BUDGET;

    #[test]
    fn a_huge_failure_list_stays_under_the_comment_limit() {
        let mut summary = ApplySummary::not_started(String::new());
        summary.status = ApplyStatus::FinishedWithFailures;
        summary.error = None;
        summary.failed = (0..5_000)
            .map(|i| Item { address: Address::new("p", &format!("m{i}@example.com")), reason: "x".repeat(200) })
            .collect();
        let mut out = Vec::new();
        summary.markdown(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.chars().count() < MARKDOWN_BUDGET, "{} characters", text.chars().count());
        assert!(text.starts_with("<!-- memberctl-apply -->"));
        assert!(text.contains("row(s) are left out"));
    }
}
