//! Rendering a plan: terraform-like text, JSON, and a pull-request comment.
//!
//! Every renderer writes to an `io::Write` as it goes, so a plan with
//! 100,000 changes is streamed rather than built up in one string.

mod json;
mod markdown;
mod pretty_json;
mod text;

use std::io::{self, Write};

pub use json::json;
pub use markdown::{cell, markdown, refresh_counts, MARKDOWN_BUDGET, MARKER};
pub use text::{refresh_text, text};

use super::Plan;

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// terraform-like text.
    Text,
    /// The JSON documented by `schema/plan.schema.json`.
    Json,
    /// A pull-request comment.
    Markdown,
}

/// Output is buffered here, whatever `out` is: a plan of 100,000 changes
/// is many small writes, and a bare `Stdout` is line-buffered.
const BUFFER: usize = 64 * 1024;

/// Writes `plan` in `format`; `color` applies to text only.
pub fn render(plan: &Plan, format: Format, color: bool, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Text => text(plan, color, out),
        Format::Json => json(plan, out),
        Format::Markdown => markdown(plan, out),
    }
}
