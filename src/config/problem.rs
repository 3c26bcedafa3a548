//! One validation problem, and the "did you mean" that goes with many.

use std::fmt;
use std::path::PathBuf;

use super::locate::Position;

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

/// One thing wrong with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub place: Place,
    /// The source line at `place`, for the caret snippet.
    pub snippet: Option<String>,
    /// What is wrong (lowercase, names in backticks).
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// Where a problem sits before positions are looked up: a file and a path
/// inside it (`members[3].email`), pointing at the key or the value.
#[derive(Clone, Debug)]
pub struct Pending {
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

/// The candidate closest to `word`, if it is close enough to be a typo, or
/// failing that one that extends it (`api_key` for `api_key_env`).
#[must_use]
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let lower = word.to_lowercase();
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), *c))
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

/// Edit distance counting a swap of two neighbours as one edit (optimal
/// string alignment), since `emial` is one slip from `email`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(did_you_mean("emial", ["email", "name"]), Some("email"));
        assert_eq!(did_you_mean("comunity", ["community", "workforce"]), Some("community"));
        assert_eq!(did_you_mean("zzz", ["email"]), None);
        assert_eq!(suggestion("zzz", "roles", ["a", "b"]), "known roles: `a`, `b`");
    }
}
