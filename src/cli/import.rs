//! `memberctl import csv`: turn a CSV export into members YAML.
//!
//! Columns map to member fields by header name (`Email`, `First Name`,
//! `roles`, ...) or by `--map COLUMN=FIELD`. Every row is validated with the
//! config's own rules, together with the existing config, so duplicates
//! within the CSV or against the config are caught. Bad rows are reported
//! with their CSV line and skipped, or refuse the whole import (`--strict`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Context, ImportArgs, ImportCommand, Outcome, Success};
use crate::atomic_write::write_atomically;
use crate::config::model::MEMBER_KEYS;
use crate::config::{self, ConfigError, MemberValue};
use crate::error::Error;

/// Fields holding lists; a cell splits on `;` or `|`.
const LIST_FIELDS: [&str; 5] = ["roles", "plans", "groups", "positions", "providers"];

/// Fields a CSV may fill (no secrets: a password never comes from a CSV).
fn importable(field: &str) -> bool {
    MEMBER_KEYS.contains(&field) && !matches!(field, "password_env" | "password_file" | "existing_user" | "method")
}

/// `First Name` → `first_name`, plus a few common export spellings.
fn field_for_header(header: &str) -> Option<&'static str> {
    let key: String = header
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let alias = match key.as_str() {
        "e_mail" | "email_address" | "mail" | "work_email" => "email",
        "full_name" | "display_name" => "name",
        "first" | "given_name" | "firstname" => "first_name",
        "last" | "surname" | "family_name" | "lastname" => "last_name",
        "mobile" | "mobile_phone" | "phone_number" | "telephone" => "phone",
        "role" => "roles",
        "plan" => "plans",
        "group" | "team" => "groups",
        "position" | "title" => "positions",
        "manager" => "manager_id",
        "provider" => "providers",
        other => other,
    };
    MEMBER_KEYS.iter().copied().find(|k| *k == alias && importable(k))
}

struct Row {
    line: usize,
    fields: BTreeMap<String, MemberValue>,
}

fn read_rows(path: &Path, mapping: &[(String, String)], cx: &mut Context<'_>) -> Result<Vec<Row>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!("cannot read CSV `{}`: {e}", path.display()), "pass a UTF-8 CSV file with a header row")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // Spreadsheets in many locales export with `;` (or tabs): the header
    // row says which.
    let header_line = text.lines().next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| (header_line.bytes().filter(|b| b == d).count(), *d == b','))
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::usage(format!("`{}`: {e}", path.display()), "the first row must name the columns"))?
        .clone();
    let mut columns: Vec<Option<String>> = Vec::with_capacity(headers.len());
    for header in &headers {
        let mapped = mapping.iter().find(|(col, _)| col.eq_ignore_ascii_case(header.trim())).map(|(_, f)| f.clone());
        let field = mapped.or_else(|| field_for_header(header).map(str::to_owned));
        if field.is_none() {
            cx.ui.warn(&format!(
                "column `{header}` is not mapped to a member field; ignored (use `--map '{header}=FIELD'`)"
            ))?;
        }
        columns.push(field);
    }
    if !columns.iter().any(|c| c.as_deref() == Some("email")) {
        return Err(Error::usage(
            format!("`{}` has no email column", path.display()),
            "name a column `email`, or map one with `--map 'Work Email=email'`",
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::usage(format!("`{}`: {e}", path.display()), "fix the CSV row"))?;
        // Counted from the text, so CRLF files number their lines as editors do.
        let line = record.position().map_or(0, |p| {
            let mut offset = (p.byte() as usize).min(text.len());
            // With CRLF the reader may place a record on the `\n` before it.
            while text.as_bytes().get(offset).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                offset += 1;
            }
            text.get(..offset).map_or(0, |head| head.matches('\n').count()) + 1
        });
        let mut fields = BTreeMap::new();
        for (cell, field) in record.iter().zip(&columns) {
            let (Some(field), false) = (field, cell.is_empty()) else { continue };
            let value = if LIST_FIELDS.contains(&field.as_str()) {
                MemberValue::List(
                    cell.split([';', '|']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                )
            } else {
                MemberValue::Text(cell.to_owned())
            };
            fields.insert(field.clone(), value);
        }
        if fields.is_empty() {
            continue;
        }
        rows.push(Row { line, fields });
    }
    Ok(rows)
}

/// The members YAML for `rows`, and the line of the text where each row starts.
fn render(rows: &[&Row]) -> (String, Vec<usize>) {
    let mut text = String::from("members:\n");
    let mut starts = Vec::with_capacity(rows.len());
    for row in rows {
        starts.push(text.lines().count() + 1);
        let item = config::emit_members(std::slice::from_ref(&row.fields));
        for line in item.lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    (text, starts)
}

/// Appends members to a file whose last key is `members:` (or creates it).
pub(super) fn append(path: &Path, items: &str) -> Result<(), Error> {
    let io = |action, source| Error::io(action, path, source);
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomically(path, |out| write!(out, "members:\n{items}"))?;
            return Ok(());
        }
        Err(e) => return Err(io("read", e)),
    };
    let last_key = existing.lines().rev().find(|l| !l.is_empty() && !l.starts_with([' ', '\t', '#', '-']));
    if !last_key.is_some_and(|l| l.starts_with("members:")) {
        return Err(Error::usage(
            format!("cannot append to `{}`: `members:` is not its last key", path.display()),
            "append to a members-only file, e.g. `--append members.yaml` in a config directory",
        ));
    }
    let members_line = existing.lines().rev().find(|l| l.starts_with("members:")).unwrap_or("members:");
    let inline = members_line["members:".len()..].trim();
    if !inline.is_empty() && !inline.starts_with('#') {
        return Err(Error::usage(
            format!("cannot append to `{}`: its `members:` is written on one line (`{members_line}`)", path.display()),
            "write it as a block list (`members:` then one `- email: ...` per member), or append to another file",
        ));
    }
    let indent = existing
        .lines()
        .skip_while(|l| !l.starts_with("members:"))
        .skip(1)
        .find(|l| l.trim_start().starts_with("- "))
        .map_or(2, |l| l.len() - l.trim_start().len());
    let mut text = existing;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    for line in items.lines() {
        let line = line.strip_prefix("  ").unwrap_or(line);
        text.push_str(&" ".repeat(indent));
        text.push_str(line);
        text.push('\n');
    }
    // Whatever the file's layout, never leave it unreadable.
    if let Err(error) = serde_yaml::from_str::<serde_yaml::Value>(&text) {
        return Err(Error::usage(
            format!("cannot append to `{}`: the members would not read back as YAML ({error})", path.display()),
            "append to a members-only file in block style, e.g. `--append members.yaml`",
        ));
    }
    write_atomically(path, |out| out.write_all(text.as_bytes()))?;
    Ok(())
}

/// Whether the config `paths` (files and directories) already read `file`.
fn covered(paths: &[PathBuf], file: &Path) -> bool {
    let Ok(file) = std::fs::canonicalize(file) else { return false };
    paths
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .any(|p| file == p || (p.is_dir() && file.starts_with(&p)))
}

/// Rewrites `FILE:LINE:COL` references into the generated YAML as CSV lines.
fn csv_lines(message: &str, name: &str, starts: &[usize], rows: &[Row]) -> String {
    let marker = format!("{name}:");
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(&marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let Ok(yaml_line) = digits.parse::<usize>() else {
            out.push_str(&marker);
            rest = after;
            continue;
        };
        let index = starts.iter().rposition(|s| *s <= yaml_line).unwrap_or(0);
        write!(out, "{name}:{}", rows[index].line).expect("writing to a String cannot fail");
        let skip = after[digits.len()..]
            .strip_prefix(':')
            .map_or(digits.len(), |tail| digits.len() + 1 + tail.chars().take_while(char::is_ascii_digit).count());
        rest = &after[skip..];
    }
    out.push_str(rest);
    out
}

pub(super) fn run(args: &ImportArgs, cx: &mut Context<'_>) -> Outcome {
    let ImportCommand::Csv { file, map, strict, append: append_to } = &args.command else {
        return Err(Error::internal("`import csv` was dispatched another import"));
    };
    let mut mapping = Vec::new();
    for entry in map {
        let Some((col, field)) = entry.split_once('=') else {
            return Err(Error::usage(
                format!("`--map {entry}` is not `COLUMN=FIELD`"),
                "e.g. `--map 'Work Email=email'`",
            ));
        };
        if !importable(field.trim()) {
            return Err(Error::usage(
                format!("`{}` is not a member field that can be imported", field.trim()),
                format!(
                    "fields: {}",
                    MEMBER_KEYS.iter().filter(|k| importable(k)).copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        mapping.push((col.trim().to_owned(), field.trim().to_owned()));
    }
    let rows = read_rows(file, &mapping, cx)?;
    let mut existing: Vec<PathBuf> = cx.config_paths().into_iter().filter(|p| p.exists()).collect();
    // The file appended to is checked too, so that a row it already holds
    // is a duplicate here rather than in the config afterwards.
    if let Some(target) = append_to.as_ref().filter(|t| t.exists() && !covered(&existing, t)) {
        existing.push(target.clone());
    }
    let csv_name = PathBuf::from(format!("{}", file.display()));
    let mut bad: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let all: Vec<&Row> = rows.iter().collect();
    let (text, starts) = render(&all);
    match config::load_with(&existing, Some((&csv_name, &text))) {
        Ok(_) => {}
        Err(ConfigError::Invalid { problems }) => {
            for problem in problems {
                let in_csv = problem.place.file == csv_name;
                let Some(pos) = problem.place.position.filter(|_| in_csv) else {
                    return Err(ConfigError::Invalid { problems: vec![problem] }.into());
                };
                let index = starts.iter().rposition(|s| *s <= pos.line).unwrap_or(0);
                let mut message = csv_lines(&problem.message, &csv_name.display().to_string(), &starts, &rows);
                if let Some(hint) = &problem.hint {
                    message = format!("{message} (hint: {hint})");
                }
                bad.entry(rows[index].line).or_default().push(message);
            }
        }
        Err(other) => return Err(other.into()),
    }
    for (line, messages) in &bad {
        for message in messages {
            cx.ui.note(&format!("{}:{line}: {message}", file.display()))?;
        }
    }
    if !bad.is_empty() && *strict {
        return Err(Error::usage(
            format!("{} of {} row(s) are invalid; nothing was imported", bad.len(), rows.len()),
            "fix them, or drop `--strict` to skip them",
        ));
    }
    let good: Vec<&Row> = rows.iter().filter(|r| !bad.contains_key(&r.line)).collect();
    let (text, _) = render(&good);
    match append_to {
        Some(path) => {
            let items = text.strip_prefix("members:\n").unwrap_or(&text);
            append(path, items)?;
            cx.ui.note(&format!("Appended {} member(s) to `{}`.", good.len(), path.display()))?;
        }
        None => {
            cx.ui.print(&text)?;
        }
    }
    if !bad.is_empty() {
        return Err(Error::user(format!("skipped {} invalid row(s) of {}", bad.len(), rows.len()))
            .with_hint("the reasons are above, by CSV line; fix them and import those rows again"));
    }
    Ok(Success::Done)
}
