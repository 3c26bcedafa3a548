//! Ownership rules (`owners:`): which providers, roles, groups and plans the
//! members declared in a team's files may grant.
//!
//! A team owns a folder through CODEOWNERS; the rule keeps that team from
//! granting, say, `admin` from inside its folder. Every rule that matches a
//! file applies (their allowances intersect), so a team cannot loosen its own
//! folder's rule by adding a more specific one; and a matched file may declare
//! only `version` and `members`, so it cannot add rules, providers or catalog
//! entries either.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use super::load::Source;
use super::model::ConfigFile;
use super::problem::{rules, suggestion, Rule};
use super::validate::Report;
use crate::provider::CatalogKind;

/// One compiled rule, with where it was declared.
pub(crate) struct OwnerRule {
    /// Index of the declaring file.
    file: usize,
    /// The declaring file's path, for messages.
    declared_in: String,
    /// Its index in that file's `owners`.
    index: usize,
    /// The glob as written.
    glob: String,
    matcher: GlobMatcher,
    providers: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    plans: Option<Vec<String>>,
}

impl OwnerRule {
    /// `` `teams/design/**` (owners[0] in `org/memberctl.yaml`) ``.
    fn name(&self) -> String {
        format!("`{}` (owners[{}] in `{}`)", self.glob, self.index, self.declared_in)
    }

    fn allowed(&self, key: &str) -> Option<&[String]> {
        match key {
            "providers" => self.providers.as_deref(),
            "roles" => self.roles.as_deref(),
            "groups" => self.groups.as_deref(),
            "plans" => self.plans.as_deref(),
            _ => None,
        }
    }
}

/// `path` without `.` components, so `./teams/a.yaml` and `teams/a.yaml`
/// match the same globs.
fn normal(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// Compiles every file's `owners` rules; a bad glob is a problem at it.
pub(crate) fn compile(
    sources: &[Source],
    files: &[(usize, &ConfigFile)],
    pending: &mut Vec<super::problem::Pending>,
) -> Vec<OwnerRule> {
    let mut compiled = Vec::new();
    for &(file, config) in files {
        let dir = sources[file].path.parent().map(normal).unwrap_or_default();
        for (index, rule) in config.owners.iter().enumerate() {
            let mut report = Report { file, pending };
            let path = format!("owners[{index}].files");
            if rule.files.trim().is_empty() || Path::new(&rule.files).is_absolute() {
                report.at(
                    rules::OWNERS_GLOB,
                    path,
                    "`files` must be a glob relative to this file",
                    "e.g. `teams/design/**`".to_owned(),
                );
                continue;
            }
            // The folder is literal text, whatever characters its name has.
            let prefix = globset::escape(&dir.to_string_lossy());
            let pattern = if prefix.is_empty() { rule.files.clone() } else { format!("{prefix}/{}", rule.files) };
            let built = GlobBuilder::new(&pattern).literal_separator(true).build();
            match built {
                Ok(glob) => compiled.push(OwnerRule {
                    file,
                    declared_in: sources[file].path.display().to_string(),
                    index,
                    glob: rule.files.clone(),
                    matcher: glob.compile_matcher(),
                    providers: rule.providers.clone(),
                    roles: rule.roles.clone(),
                    groups: rule.groups.clone(),
                    plans: rule.plans.clone(),
                }),
                Err(err) => report.at(
                    rules::OWNERS_GLOB,
                    path,
                    format!("`{}` is not a glob: {}", rule.files, err.kind()),
                    "`*` matches within one folder, `**` across folders".to_owned(),
                ),
            }
        }
    }
    compiled
}

/// The rules that cover the file at `path`.
pub(crate) fn matching<'a>(rules: &'a [OwnerRule], path: &Path) -> Vec<&'a OwnerRule> {
    let path = normal(path);
    rules.iter().filter(|rule| rule.matcher.is_match(&path)).collect()
}

/// Checks that the names a rule allows exist, so a typo in a rule does not
/// silently forbid everything.
pub(crate) fn check_rule_names(
    pending: &mut Vec<super::problem::Pending>,
    rules: &[OwnerRule],
    known: &dyn Fn(&str) -> Vec<String>,
) {
    for rule in rules {
        for key in ["providers", "roles", "groups", "plans"] {
            let Some(names) = rule.allowed(key) else { continue };
            let candidates = known(key);
            for (i, name) in names.iter().enumerate() {
                if !candidates.contains(name) {
                    let what = key.trim_end_matches('s');
                    let problem_rule = match key {
                        "providers" => rules::UNKNOWN_PROVIDER,
                        "roles" => Rule::unknown_in(CatalogKind::Roles),
                        "groups" => Rule::unknown_in(CatalogKind::Groups),
                        _ => Rule::unknown_in(CatalogKind::Plans),
                    };
                    Report { file: rule.file, pending }.at(
                        problem_rule,
                        format!("owners[{}].{key}[{i}]", rule.index),
                        format!("unknown {what} `{name}`"),
                        suggestion(name, key, candidates.iter().map(String::as_str)),
                    );
                }
            }
        }
    }
}

/// A file covered by rules may declare only `version` and `members`.
pub(crate) fn check_file_keys(report: &mut Report<'_>, config: &ConfigFile, covering: &[&OwnerRule]) {
    let Some(first) = covering.first() else { return };
    let declared = [
        ("providers", !config.providers.is_empty()),
        ("roles", !config.roles.is_empty()),
        ("plans", !config.plans.is_empty()),
        ("groups", !config.groups.is_empty()),
        ("positions", !config.positions.is_empty()),
        ("defaults", config.defaults.is_some()),
        ("safety", config.safety.is_some()),
        ("invites", config.invites.is_some()),
        ("owners", !config.owners.is_empty()),
        ("policy", config.policy.is_some()),
        ("state", config.state.is_some()),
        // A rename hands a recorded user to another address: not a team's call.
        ("moved", !config.moved.is_empty()),
    ];
    for (key, _) in declared.iter().filter(|(_, set)| *set) {
        report.at_key(
            rules::OWNED_FILE_KEY,
            (*key).to_owned(),
            format!("`{key}` cannot be declared in a file covered by owners rule {}", first.name()),
            "a team's file may declare only `version` and `members`; move this to a file no rule covers".to_owned(),
        );
    }
}

/// One of a member's effective lists: its key, the names, and whether the
/// member wrote them (else they came from `defaults`).
pub(crate) struct Granted<'a> {
    pub key: &'static str,
    pub names: &'a [String],
    pub written: bool,
}

/// Checks one member against every rule covering its file.
pub(crate) fn check_member(
    report: &mut Report<'_>,
    path: &str,
    email: &str,
    granted: &[Granted<'_>],
    covering: &[&OwnerRule],
) {
    for rule in covering {
        for list in granted {
            let Some(allowed) = rule.allowed(list.key) else { continue };
            for (i, name) in list.names.iter().enumerate() {
                if allowed.contains(name) {
                    continue;
                }
                let what = list.key.trim_end_matches('s');
                let verb = if list.key == "providers" { "joins" } else { "is given" };
                let from = if list.written { "" } else { " (from `defaults`)" };
                let allowed_list = if allowed.is_empty() {
                    format!("the rule allows no {}", list.key)
                } else {
                    format!("allowed: {}", allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "))
                };
                let message = format!(
                    "member `{email}` {verb} {what} `{name}`{from}, which owners rule {} does not allow",
                    rule.name()
                );
                let hint = format!("{allowed_list}; ask the owners of `{}` to change the rule", rule.declared_in);
                if list.written {
                    report.at(rules::OWNERS, format!("{path}.{}[{i}]", list.key), message, hint);
                } else {
                    report.at_key(rules::OWNERS, path.to_owned(), message, hint);
                }
            }
        }
    }
}
