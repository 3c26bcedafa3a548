//! Where a provider or a member is declared, for problems found after the
//! config has loaded and been let go: apply's missing credentials and
//! passwords, which DESIGN reports like any config problem, at
//! `file:line:col`. Like [`super::locate`], this reads the files again and
//! runs only on that error path.

use std::path::{Path, PathBuf};

use super::locate::{Lines, Locations, Position};
use super::problem::{Place, Problem, Rule};
use crate::address::normalize_email;

/// Something declared in the config.
#[derive(Clone, Copy, Debug)]
pub enum Declared<'a> {
    /// The provider `name`; `keys` are its settings to point at, the first
    /// one written wins (else the provider's name).
    Provider {
        /// The provider's name.
        name: &'a str,
        /// Settings to point at, in order of preference.
        keys: &'a [&'a str],
    },
    /// The member with this email (compared as addresses compare it);
    /// `keys` as for a provider (else the member's `email`).
    Member {
        /// The member's email.
        email: &'a str,
        /// Settings to point at, in order of preference.
        keys: &'a [&'a str],
    },
}

/// A problem at the place `what` is declared in `files`, or in the first
/// file without a line when it cannot be found there (a file changed since).
#[must_use]
pub fn problem_at(files: &[PathBuf], what: Declared<'_>, rule: Rule, message: String, hint: String) -> Problem {
    let found = files.iter().find_map(|file| {
        let text = std::fs::read_to_string(file).ok()?;
        let position = position_in(&text, what)?;
        let snippet = Lines::new(&text).get(position.line).map(str::to_owned);
        Some((file.clone(), position, snippet))
    });
    let (place, snippet) = match found {
        Some((file, position, snippet)) => (Place { file, position: Some(position) }, snippet),
        None => (
            Place {
                file: files.first().cloned().unwrap_or_else(|| Path::new("memberctl.yaml").to_owned()),
                position: None,
            },
            None,
        ),
    };
    Problem { rule, place, snippet, message, hint: Some(hint) }
}

fn position_in(text: &str, what: Declared<'_>) -> Option<Position> {
    let locations = Locations::index(text);
    let (base, keys) = match what {
        Declared::Provider { name, keys } => {
            let base = format!("providers.{name}");
            locations.key(&base)?;
            (base, keys)
        }
        Declared::Member { email, keys } => {
            let wanted = normalize_email(email);
            let lines = Lines::new(text);
            let index = (0..)
                .map_while(|i| Some((i, locations.value(&format!("members[{i}].email"))?)))
                .find(|(_, at)| scalar_at(&lines, *at).is_some_and(|written| normalize_email(written) == wanted))?
                .0;
            let base = format!("members[{index}]");
            if let Some(at) = keys.iter().find_map(|key| locations.key(&format!("{base}.{key}"))) {
                return Some(at);
            }
            return locations.key(&format!("{base}.email"));
        }
    };
    keys.iter().find_map(|key| locations.key(&format!("{base}.{key}"))).or_else(|| locations.key(&base))
}

/// The one-line scalar that starts at `at` (plain or quoted, in block or
/// flow style), without its quotes.
fn scalar_at<'a>(lines: &Lines<'a>, at: Position) -> Option<&'a str> {
    let line = lines.get(at.line)?;
    let start = line.char_indices().nth(at.column.checked_sub(1)?).map(|(i, _)| i)?;
    let rest = &line[start..];
    if let Some(quote) = rest.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        let inner = &rest[1..];
        return inner.find(quote).map(|end| &inner[..end]);
    }
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::{position_in, Declared};
    use crate::config::locate::Position;

    const YAML: &str = "version: 1\nproviders:\n  community:\n    type: networked\n    api_key_env: NET_KEY\n  workforce: { type: aptly }\nmembers:\n  - email: Jane@Example.com\n    method: direct\n    password_env: JANE_PW\n  - { email: \"kim@example.com\", name: Kim }\n";

    #[allow(clippy::unnecessary_wraps)] // compared with what `position_in` answers
    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn a_provider_is_found_at_its_setting_or_its_name() {
        let keys = &["api_key_env", "token_env"];
        assert_eq!(position_in(YAML, Declared::Provider { name: "community", keys }), at(5, 5));
        assert_eq!(position_in(YAML, Declared::Provider { name: "workforce", keys }), at(6, 3));
        assert_eq!(position_in(YAML, Declared::Provider { name: "elsewhere", keys }), None);
    }

    #[test]
    fn a_member_is_found_by_email_as_addresses_compare_it() {
        let keys = &["password_env", "password_file"];
        assert_eq!(position_in(YAML, Declared::Member { email: "jane@example.com", keys }), at(10, 5));
        assert_eq!(position_in(YAML, Declared::Member { email: "KIM@example.com", keys }), at(11, 7));
        assert_eq!(position_in(YAML, Declared::Member { email: "nobody@example.com", keys }), None);
    }
}
