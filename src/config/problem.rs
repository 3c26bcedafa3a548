//! One validation problem, its rule, how a list of them is rendered, and
//! the "did you mean" that goes with many.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use super::locate::Position;
use crate::provider::CatalogKind;

/// A place in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The file.
    pub file: PathBuf,
    /// Where in it, when known.
    pub position: Option<Position>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(pos) = self.position {
            write!(f, ":{}:{}", pos.line, pos.column)?;
        }
        Ok(())
    }
}

/// The kind of a problem: a stable key for machines (`validate --format
/// json` prints it as `rule`) and a short phrase for people, used when many
/// problems of one kind are summed up in one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Stable, kebab-case: `unknown-key`, `group-no-id`.
    pub key: &'static str,
    /// Lowercase, no final stop: `unknown key`, `group has no id for provider`.
    pub summary: &'static str,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key)
    }
}

/// A rule is written as its key (`"rule": "unknown-key"`).
impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key)
    }
}

/// Every rule a config problem can break.
pub mod rules {
    use super::Rule;

    macro_rules! rules {
        ($($name:ident = $key:literal, $summary:literal;)*) => {
            $(#[doc = concat!("`", $key, "`: ", $summary, ".")]
            pub const $name: Rule = Rule { key: $key, summary: $summary };)*
            /// All of them, for tests that keep keys unique.
            pub const ALL: &[Rule] = &[$($name),*];
        };
    }

    rules! {
        FILE_TOO_LARGE = "file-too-large", "file larger than the size limit";
        PARSE = "parse", "file that cannot be read";
        UNKNOWN_KEY = "unknown-key", "unknown key";
        DUPLICATE = "duplicate", "defined twice";
        UNSUPPORTED_VERSION = "unsupported-version", "unsupported `version`";
        NO_VERSION = "no-version", "no `version: 1`";
        PROVIDER_NAME = "provider-name", "provider name unusable in addresses";
        SETTING_FOR_OTHER_TYPE = "setting-for-other-type", "setting for another provider type";
        BASE_URL = "base-url", "base URL refused";
        ENV_NAME = "env-name", "not an environment variable name";
        ZERO = "zero", "setting must be at least 1";
        REMOVAL_FRACTION = "removal-fraction", "`max_removal_fraction` is not a fraction";
        STATE = "state", "`state` settings that do not fit the backend";
        RATE_LIMIT = "rate-limit", "invalid `rate_limit`";
        DURATION = "duration", "not a duration";
        CAPABILITY = "capability", "capability the provider type lacks";
        UNKNOWN_PROVIDER = "unknown-provider", "unknown provider";
        UNKNOWN_ROLE = "unknown-role", "unknown role";
        UNKNOWN_PLAN = "unknown-plan", "unknown plan";
        UNKNOWN_GROUP = "unknown-group", "unknown group";
        UNKNOWN_POSITION = "unknown-position", "unknown position";
        CATALOG_UNUSED = "catalog-unused", "catalog id for a provider type without that catalog";
        REMOTE_ID = "remote-id", "invalid remote id";
        MEMBER_NO_EMAIL = "member-no-email", "member has no `email`";
        EMAIL = "email", "invalid email address";
        MEMBER_NO_PROVIDER = "member-no-provider", "member joins no provider";
        DIRECT_NO_PASSWORD = "direct-no-password", "direct add without a password source";
        PASSWORD_WITHOUT_DIRECT = "password-without-direct", "password source without `method: direct`";
        PRIMARY_GROUP = "primary-group", "primary group not among the member's groups";
        NO_DIRECT_ADD = "no-direct-add", "direct add to a provider without one";
        ROLE_NO_ID = "role-no-id", "role has no id for provider";
        PLAN_NO_ID = "plan-no-id", "plan has no id for provider";
        GROUP_NO_ID = "group-no-id", "group has no id for provider";
        POSITION_NO_ID = "position-no-id", "position has no id for provider";
        PROVIDER_REQUIREMENT = "provider-requirement", "member lacks what its provider requires";
        MOVED = "moved", "`moved:` entry that is not a rename of a configured member";
        OWNERS = "owners", "member grants what its file's `owners` rule does not allow";
        OWNED_FILE_KEY = "owned-file-key", "key a file restricted by `owners` may not declare";
        OWNERS_GLOB = "owners-glob", "invalid `owners` glob";
        MIN_MEMBERS = "min-members", "fewer members hold a role than `policy.min_members` asks";
        REQUIRED_MEMBER = "required-member", "address in `policy.required` not configured";
        MISSING_AT_APPLY = "missing-at-apply", "credential or password missing when apply starts";
    }
}

impl Rule {
    /// `unknown-role`, `unknown-group`, ...
    #[must_use]
    pub fn unknown_in(kind: CatalogKind) -> Rule {
        match kind {
            CatalogKind::Roles => rules::UNKNOWN_ROLE,
            CatalogKind::Plans => rules::UNKNOWN_PLAN,
            CatalogKind::Groups => rules::UNKNOWN_GROUP,
            CatalogKind::Positions => rules::UNKNOWN_POSITION,
        }
    }

    /// `role-no-id`, `group-no-id`, ...
    #[must_use]
    pub fn no_id_in(kind: CatalogKind) -> Rule {
        match kind {
            CatalogKind::Roles => rules::ROLE_NO_ID,
            CatalogKind::Plans => rules::PLAN_NO_ID,
            CatalogKind::Groups => rules::GROUP_NO_ID,
            CatalogKind::Positions => rules::POSITION_NO_ID,
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Which rule it breaks.
    pub rule: Rule,
    /// Where it is.
    pub place: Place,
    /// The source line at `place`, for the caret snippet.
    pub snippet: Option<String>,
    /// What is wrong (lowercase, names in backticks).
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// A problem for machines (`validate --format json`): `file`, `line` and
/// `column` (null when unknown), `message`, `hint` and `rule`.
impl serde::Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Problem", 6)?;
        out.serialize_field("file", &self.place.file)?;
        out.serialize_field("line", &self.place.position.map(|p| p.line))?;
        out.serialize_field("column", &self.place.position.map(|p| p.column))?;
        out.serialize_field("message", &self.message)?;
        out.serialize_field("hint", &self.hint)?;
        out.serialize_field("rule", &self.rule)?;
        out.end()
    }
}

/// Where a problem sits before positions are looked up: a file and a path
/// inside it (`members[3].email`), pointing at the key or the value.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Which rule it breaks.
    pub rule: Rule,
    /// Index of the file in the load order.
    pub file: usize,
    /// Path inside the file.
    pub path: String,
    /// Point at the key rather than the value.
    pub at_key: bool,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// A position known already (from the YAML parser).
    pub known: Option<Position>,
    /// The other place of a duplicate: file index and path of its key.
    pub also: Option<(usize, String)>,
}

/// How many problems of one rule are shown with their snippet before the
/// rest are summed up in one line.
pub const SNIPPETS_PER_RULE: usize = 10;

/// How many places the summary line of hidden problems lists.
const PLACES_LISTED: usize = 3;

/// Renders problems the way memberctl prints them: each as `error: ...`,
/// the location, the source line with a caret, and a hint; then the total.
///
/// Unless `show_all`, only the first [`SNIPPETS_PER_RULE`] problems of each
/// rule are shown in full, and the rest of each rule become one line that
/// counts them and names where the first few are, so that one mistake
/// repeated over thousands of members does not flood the terminal.
#[must_use]
pub fn render_problems(problems: &[Problem], show_all: bool) -> String {
    Rendered { problems, show_all }.to_string()
}

/// [`render_problems`] as a `Display`, to write straight to an output.
#[derive(Clone, Copy, Debug)]
pub struct Rendered<'a> {
    /// The problems, in file and line order.
    pub problems: &'a [Problem],
    /// Show every snippet instead of the first few of each rule.
    pub show_all: bool,
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rules in order of first appearance, with the problems not shown.
        let mut hidden: Vec<(Rule, Vec<&Problem>)> = Vec::new();
        let mut shown: HashMap<Rule, usize> = HashMap::new();
        for problem in self.problems {
            let count = shown.entry(problem.rule).or_default();
            if self.show_all || *count < SNIPPETS_PER_RULE {
                *count += 1;
                write_one(f, problem)?;
            } else if let Some((_, rest)) = hidden.iter_mut().find(|(rule, _)| *rule == problem.rule) {
                rest.push(problem);
            } else {
                hidden.push((problem.rule, vec![problem]));
            }
        }
        for (rule, rest) in &hidden {
            writeln!(f, "… and {} more `{}` ({})", thousands(rest.len()), rule.summary, places(rest))?;
        }
        if !hidden.is_empty() {
            writeln!(f, "hint: `--all` shows every problem")?;
        }
        writeln!(f, "error: {} in the configuration; nothing was sent", super::count(self.problems.len()))
    }
}

/// One problem with its snippet. The layout is rustc's: `-->` under the
/// message, then the numbered line with a caret under the column.
fn write_one(f: &mut fmt::Formatter<'_>, problem: &Problem) -> fmt::Result {
    writeln!(f, "error: {}", problem.message)?;
    let gutter = problem.place.position.map_or(1, |p| p.line.to_string().len());
    writeln!(f, "{}--> {}", " ".repeat(gutter), problem.place)?;
    if let (Some(pos), Some(line)) = (problem.place.position, &problem.snippet) {
        let number = pos.line.to_string();
        let pad = " ".repeat(number.len() + 1);
        // Tabs stay tabs so the caret lines up under the same terminal column.
        let caret_pad: String =
            line.chars().take(pos.column.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        writeln!(f, "{pad}|\n{number} | {line}\n{pad}| {caret_pad}^")?;
    }
    if let Some(hint) = &problem.hint {
        writeln!(f, "hint: {hint}")?;
    }
    writeln!(f)
}

/// `lines 51, 67, 83, …` when the problems share one file, else
/// `a.yaml:51, b.yaml:3, …`.
fn places(problems: &[&Problem]) -> String {
    let one_file = problems.windows(2).all(|w| w[0].place.file == w[1].place.file);
    let listed: Vec<String> = problems
        .iter()
        .take(PLACES_LISTED)
        .map(|p| match (one_file, p.place.position) {
            (true, Some(pos)) => pos.line.to_string(),
            (true, None) => "?".to_owned(),
            (false, Some(pos)) => format!("{}:{}", p.place.file.display(), pos.line),
            (false, None) => p.place.file.display().to_string(),
        })
        .collect();
    let more = if problems.len() > PLACES_LISTED { ", …" } else { "" };
    let label = match (one_file, problems.len()) {
        (false, _) => "",
        (true, 1) => "line ",
        (true, _) => "lines ",
    };
    format!("{label}{}{more}", listed.join(", "))
}

/// `13336` → `13,336`.
#[must_use]
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The candidate closest to `word`, if it is close enough to be a typo, or
/// failing that one that extends it (`api_key` for `api_key_env`).
///
/// Distance is optimal string alignment, which counts a swap of two
/// neighbours as one edit, since `emial` is one slip from `email`.
#[must_use]
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let lower = word.to_lowercase();
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    candidates
        .iter()
        .map(|c| (strsim::osa_distance(&lower, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
        .or_else(|| candidates.iter().copied().find(|c| lower.len() >= 3 && c.to_lowercase().starts_with(&lower)))
}

/// A hint that proposes the closest candidate, or lists them all.
#[must_use]
pub fn suggestion<'a>(word: &str, what: &str, candidates: impl IntoIterator<Item = &'a str> + Clone) -> String {
    if let Some(best) = did_you_mean(word, candidates.clone()) {
        return format!("did you mean `{best}`?");
    }
    let all: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    if all.is_empty() {
        format!("no {what} is defined")
    } else {
        format!("known {what}: {}", all.join(", "))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn problem(rule: Rule, file: &str, line: usize) -> Problem {
        Problem {
            rule,
            place: Place { file: file.into(), position: Some(Position { line, column: 3 }) },
            snippet: Some("  x: y".to_owned()),
            message: format!("{} here", rule.summary),
            hint: None,
        }
    }

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(did_you_mean("emial", ["email", "name"]), Some("email"));
        assert_eq!(did_you_mean("comunity", ["community", "workforce"]), Some("community"));
        assert_eq!(did_you_mean("zzz", ["email"]), None);
        assert_eq!(did_you_mean("api_key", ["api_key_env", "token_env"]), Some("api_key_env"));
        assert_eq!(suggestion("zzz", "roles", ["a", "b"]), "known roles: `a`, `b`");
    }

    #[test]
    fn rule_keys_are_unique_and_kebab_case() {
        let mut keys: Vec<&str> = rules::ALL.iter().map(|r| r.key).collect();
        assert!(keys.iter().all(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')));
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before);
    }

    #[test]
    fn problems_serialise_with_their_rule_key() {
        let json = serde_json::to_value(problem(rules::GROUP_NO_ID, "a.yaml", 51)).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "file": "a.yaml", "line": 51, "column": 3, "message": "group has no id for provider here",
                "hint": null, "rule": "group-no-id"
            })
        );
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(13_336), "13,336");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    // Regression: #9 defect 5. Hidden problems spread over files name the file.
    #[test]
    fn summary_of_hidden_problems_names_files_when_they_differ() {
        let mut problems: Vec<Problem> = (1..=11).map(|line| problem(rules::UNKNOWN_KEY, "a.yaml", line)).collect();
        problems.push(problem(rules::UNKNOWN_KEY, "b.yaml", 4));
        let rendered = render_problems(&problems, false);
        assert!(rendered.contains("… and 2 more `unknown key` (a.yaml:11, b.yaml:4)\n"), "{rendered}");
        problems.pop();
        let rendered = render_problems(&problems, false);
        assert!(rendered.contains("… and 1 more `unknown key` (line 11)\n"), "{rendered}");
        assert!(render_problems(&problems, true).contains("--> a.yaml:11:3"));
    }
}
