//! Errors for CI: the problems of a configuration as JSON, or as GitHub
//! workflow commands (`::error file=…,line=…,col=…::…`) that put each
//! problem on the pull request's diff.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::config::Problem;
use crate::error::Error;

/// How errors are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ErrorFormat {
    /// For people: a snippet with a caret under each problem
    #[default]
    Human,
    /// A JSON list of problems: file, line, column, message, hint, rule
    /// (documented by schema/problems.schema.json)
    Json,
    /// GitHub Actions workflow commands, one `::error` line per problem
    Github,
}

/// `error` in `format`. Problems are located relative to `root` for GitHub
/// (the repository's top level, where annotations are anchored).
#[must_use]
pub fn render(error: &Error, format: ErrorFormat, all_problems: bool, root: &Path) -> String {
    let problems = error.config_problems();
    match (format, problems) {
        (ErrorFormat::Human, _) => crate::error::render(error, all_problems),
        (ErrorFormat::Json, Some(problems)) => json(problems),
        (ErrorFormat::Json, None) => {
            // Not a problem in a file: the same shape, with no place and no rule.
            let entries: Vec<serde_json::Value> = error
                .unplaced()
                .into_iter()
                .map(|(message, hint)| {
                    serde_json::json!({
                        "file": null, "line": null, "column": null, "message": message, "hint": hint, "rule": null,
                    })
                })
                .collect();
            format!("{:#}\n", serde_json::Value::Array(entries))
        }
        (ErrorFormat::Github, Some(problems)) => github(problems, root),
        (ErrorFormat::Github, None) => {
            let mut out = String::new();
            for (mut message, hint) in error.unplaced() {
                if let Some(hint) = hint {
                    write!(message, "\nhint: {hint}").expect("writing to a String cannot fail");
                }
                writeln!(out, "::error::{}", escape_data(&message)).expect("writing to a String cannot fail");
            }
            out
        }
    }
}

/// The problems as a pretty JSON list (`[]` when there are none).
#[must_use]
pub fn json(problems: &[Problem]) -> String {
    let mut out = serde_json::to_string_pretty(problems).expect("problems serialise");
    out.push('\n');
    out
}

/// One `::error` line per problem, its hint on a second line of the message.
/// The properties are exactly `file`, `line` and `col`, the shape DESIGN
/// gives (`::error file=F,line=L,col=C::message`); the rule is in
/// `--format json`.
#[must_use]
pub fn github(problems: &[Problem], root: &Path) -> String {
    let mut out = String::new();
    for problem in problems {
        let file = relative_to(&problem.place.file, root);
        let mut properties = format!("file={}", escape_property(&file));
        if let Some(position) = problem.place.position {
            write!(properties, ",line={},col={}", position.line, position.column)
                .expect("writing to a String cannot fail");
        }
        let mut message = problem.message.clone();
        if let Some(hint) = &problem.hint {
            write!(message, "\nhint: {hint}").expect("writing to a String cannot fail");
        }
        writeln!(out, "::error {properties}::{}", escape_data(&message)).expect("writing to a String cannot fail");
    }
    out
}

/// The message part of a workflow command: `%`, CR and LF are escaped.
#[must_use]
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A property value: also `:` and `,`, which end it.
#[must_use]
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `file` relative to `root`, with `/` separators; as given when it lies
/// outside `root`.
fn relative_to(file: &Path, root: &Path) -> String {
    let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let shown = absolute.strip_prefix(&root).map_or_else(|_| file.to_owned(), Path::to_owned);
    shown.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Where annotations are anchored: the git repository's top level, else the
/// current directory.
#[must_use]
pub fn repository_root() -> PathBuf {
    let toplevel = std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| PathBuf::from(text.trim_end_matches(['\n', '\r'])))
        .filter(|path| !path.as_os_str().is_empty());
    toplevel.or_else(|| std::env::current_dir().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{escape_data, escape_property};

    #[test]
    fn workflow_command_values_are_escaped() {
        assert_eq!(escape_data("50% of\r\na: b, c"), "50%25 of%0D%0Aa: b, c");
        assert_eq!(escape_property("teams/a,b:c%.yaml"), "teams/a%2Cb%3Ac%25.yaml");
    }
}
