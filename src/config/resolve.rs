//! Merging config files into one model: providers, catalogs, defaults,
//! policy and state settings once each, members resolved (`member.rs`) and
//! checked for duplicates across files.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use foldhash::fast::RandomState;

use super::load::{Run, Source};
use super::member::{resolve_members, resolve_runs, MemberContext, MemberRest, ResolvedMember, ResolvedRun};
use super::model::{Catalog, ConfigFile, MemberConfig, Policy, StateBackendKind, StateConfig};
use super::names::CatalogNames;
use super::problem::{rules, suggestion, Pending, Rule};
use super::validate::{check_catalog, check_unknown_keys, is_valid_email, provider_settings, singular, Report};
use super::{Config, StateSettings, DEFAULT_DATABASE_URL_ENV, DEFAULT_MAX_CHANGES, DEFAULT_MAX_REMOVAL_FRACTION};
use crate::address::normalize_email;
use crate::provider::{CatalogKind, ProviderSettings};

/// A value and the file and path that defined it.
pub(super) struct Origin<T> {
    pub(super) value: T,
    pub(super) file: usize,
    pub(super) path: String,
}

/// Merged defaults, each with where it came from.
#[derive(Default)]
pub(super) struct Defaults<'a> {
    pub(super) providers: Option<Origin<&'a Vec<String>>>,
    pub(super) roles: Option<Origin<&'a Vec<String>>>,
    pub(super) plans: Option<Origin<&'a Vec<String>>>,
    pub(super) groups: Option<Origin<&'a Vec<String>>>,
    pub(super) note: Option<Origin<&'a String>>,
}

fn duplicate(pending: &mut Vec<Pending>, file: usize, path: String, first: (usize, String), what: &str) {
    pending.push(Pending {
        rule: rules::DUPLICATE,
        file,
        path,
        at_key: true,
        message: format!("{what} is defined twice"),
        hint: Some("keep one definition".to_owned()),
        known: None,
        also: Some(first),
    });
}

/// Sets `slot` once; a second definition is a duplicate naming both places.
fn set_once<T>(
    pending: &mut Vec<Pending>,
    slot: &mut Option<Origin<T>>,
    value: T,
    file: usize,
    path: String,
    what: &str,
) {
    if let Some(first) = slot {
        duplicate(pending, file, path, (first.file, first.path.clone()), what);
    } else {
        *slot = Some(Origin { value, file, path });
    }
}

/// Merges, validates and resolves. Problems go to `pending`; the returned
/// config is only meaningful when none were added.
///
/// `members` are each file's members, in runs, taken out of the parsed files
/// (a large file is cut into pieces, a run each, parsed here on a worker);
/// each run is dropped once resolved, so that a large file's members and
/// their resolved attributes are not all in memory at once.
///
/// # Errors
///
/// The files with a piece the fast reader declined, to be read whole.
pub(crate) fn resolve(
    sources: &[Source],
    parsed: &[Option<ConfigFile>],
    members: Vec<Vec<Run<'_>>>,
    digest: String,
    pending: &mut Vec<Pending>,
) -> Result<Config, Vec<usize>> {
    let files: Vec<(usize, &ConfigFile)> =
        parsed.iter().enumerate().filter_map(|(i, f)| f.as_ref().map(|f| (i, f))).collect();
    let dir_of = |i: usize| sources[i].path.parent().map_or_else(|| Path::new(".").to_owned(), Path::to_owned);

    // Providers, catalogs and settings merge by key.
    let mut providers: BTreeMap<String, ProviderSettings> = BTreeMap::new();
    let mut provider_origin: HashMap<&str, (usize, String)> = HashMap::new();
    let mut catalogs: [(CatalogKind, Catalog); 4] =
        [CatalogKind::Roles, CatalogKind::Plans, CatalogKind::Groups, CatalogKind::Positions]
            .map(|k| (k, Catalog::new()));
    let mut catalog_origin: HashMap<(usize, String), (usize, String)> = HashMap::new();
    let mut defaults = Defaults::default();
    let mut max_changes: Option<Origin<usize>> = None;
    let mut max_removal_fraction: Option<Origin<f64>> = None;
    let mut resend_after: Option<Origin<&String>> = None;
    let mut policy: Option<Origin<&Policy>> = None;
    let mut state: Option<Origin<StateSettings>> = None;

    let mut declared_version = false;
    for &(file, config) in &files {
        declared_version |= config.version.is_some();
        let mut report = Report { file, pending };
        check_unknown_keys(&mut report, config);
        if let Some(version) = config.version {
            if version != 1 {
                report.at(
                    rules::UNSUPPORTED_VERSION,
                    "version",
                    format!("config `version: {version}` is not supported"),
                    "this memberctl reads `version: 1`; a newer memberctl may read this file".to_owned(),
                );
            }
        }
        for (name, provider) in &config.providers {
            let path = format!("providers.{name}");
            if let Some(first) = provider_origin.get(name.as_str()) {
                duplicate(pending, file, path, first.clone(), &format!("provider `{name}`"));
                continue;
            }
            let mut report = Report { file, pending };
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
                report.at_key(
                    rules::PROVIDER_NAME,
                    path.clone(),
                    format!("provider name `{name}` cannot be used in addresses"),
                    "use letters, digits, `-` and `_`".to_owned(),
                );
            }
            provider_origin.insert(name, (file, path));
            providers.insert(name.clone(), provider_settings(&mut report, name, provider, &dir_of(file)));
        }
        for (slot, (kind, merged)) in catalogs.iter_mut().enumerate() {
            let source = match kind {
                CatalogKind::Roles => &config.roles,
                CatalogKind::Plans => &config.plans,
                CatalogKind::Groups => &config.groups,
                CatalogKind::Positions => &config.positions,
            };
            for (name, ids) in source {
                let path = format!("{}.{name}", kind.key());
                if let Some(first) = catalog_origin.get(&(slot, name.clone())) {
                    duplicate(pending, file, path, first.clone(), &format!("{} `{name}`", singular(*kind)));
                    continue;
                }
                catalog_origin.insert((slot, name.clone()), (file, path));
                merged.insert(name.clone(), ids.clone());
            }
        }
        if let Some(d) = &config.defaults {
            if let Some(v) = &d.providers {
                set_once(
                    pending,
                    &mut defaults.providers,
                    v,
                    file,
                    "defaults.providers".into(),
                    "`defaults.providers`",
                );
            }
            if let Some(v) = &d.roles {
                set_once(pending, &mut defaults.roles, v, file, "defaults.roles".into(), "`defaults.roles`");
            }
            if let Some(v) = &d.plans {
                set_once(pending, &mut defaults.plans, v, file, "defaults.plans".into(), "`defaults.plans`");
            }
            if let Some(v) = &d.groups {
                set_once(pending, &mut defaults.groups, v, file, "defaults.groups".into(), "`defaults.groups`");
            }
            if let Some(v) = &d.note {
                set_once(pending, &mut defaults.note, v, file, "defaults.note".into(), "`defaults.note`");
            }
        }
        if let Some(n) = config.safety.as_ref().and_then(|s| s.max_changes) {
            set_once(pending, &mut max_changes, n, file, "safety.max_changes".into(), "`safety.max_changes`");
        }
        if let Some(f) = config.safety.as_ref().and_then(|s| s.max_removal_fraction) {
            let mut report = Report { file, pending };
            if !(0.0..=1.0).contains(&f) {
                report.at(
                    rules::REMOVAL_FRACTION,
                    "safety.max_removal_fraction".to_owned(),
                    format!("`max_removal_fraction` is {f}, not a fraction between 0 and 1"),
                    "e.g. `0.25` refuses losing more than a quarter of a provider's members at once".to_owned(),
                );
            }
            let pending = report.pending;
            set_once(
                pending,
                &mut max_removal_fraction,
                f,
                file,
                "safety.max_removal_fraction".into(),
                "`safety.max_removal_fraction`",
            );
        }
        if let Some(p) = &config.policy {
            set_once(pending, &mut policy, p, file, "policy".into(), "`policy`");
        }
        if let Some(settings) = &config.state {
            let resolved = resolve_state(&mut Report { file, pending }, settings);
            set_once(pending, &mut state, resolved, file, "state".into(), "`state`");
        }
        if let Some(r) = config.invites.as_ref().and_then(|i| i.resend_after.as_ref()) {
            set_once(pending, &mut resend_after, r, file, "invites.resend_after".into(), "`invites.resend_after`");
        }
    }

    for &(file, _) in files.iter().take(1) {
        let mut report = Report { file, pending };
        for (kind, catalog) in &catalogs {
            check_catalog(&mut report, *kind, catalog, &providers);
        }
    }
    // Catalog problems belong to the file that defined the entry; re-home them.
    rehome_catalog_problems(pending, &catalog_origin, &catalogs);
    // One file must say which format the set is written in, so a future
    // format is never read by guesswork.
    if let (Some(&(file, _)), false) = (files.first(), declared_version) {
        Report { file, pending }.at(
            rules::NO_VERSION,
            "",
            "no config file declares `version: 1`",
            "add `version: 1` at the top of the main config file".to_owned(),
        );
    }

    // Ownership: rules from every file, then the files they cover.
    let owner_rules = super::owners::compile(sources, &files, pending);
    let known = |key: &str| -> Vec<String> {
        let names = |kind: CatalogKind| catalog_of(&catalogs, kind).keys().cloned().collect();
        match key {
            "providers" => providers.keys().cloned().collect(),
            "roles" => names(CatalogKind::Roles),
            "plans" => names(CatalogKind::Plans),
            _ => names(CatalogKind::Groups),
        }
    };
    super::owners::check_rule_names(pending, &owner_rules, &known);
    let covering: Vec<Vec<&super::owners::OwnerRule>> =
        sources.iter().map(|s| super::owners::matching(&owner_rules, &s.path)).collect();
    for &(file, config) in &files {
        super::owners::check_file_keys(&mut Report { file, pending }, config, &covering[file]);
    }

    let resend_after = resend_after.and_then(|origin| {
        if let Ok(d) = humantime::parse_duration(origin.value) {
            Some(d)
        } else {
            Report { file: origin.file, pending }.at(
                rules::DURATION,
                origin.path,
                format!("`{}` is not a duration", origin.value),
                "write e.g. `14d` or `72h`".to_owned(),
            );
            None
        }
    });

    // Defaults must name things that exist.
    let catalog = |kind: CatalogKind| &catalogs.iter().find(|(k, _)| *k == kind).expect("all kinds present").1;
    if let Some(origin) = &defaults.providers {
        for (i, name) in origin.value.iter().enumerate() {
            if !providers.contains_key(name) {
                Report { file: origin.file, pending }.at(
                    rules::UNKNOWN_PROVIDER,
                    format!("{}[{i}]", origin.path),
                    format!("unknown provider `{name}`"),
                    suggestion(name, "providers", providers.keys().map(String::as_str)),
                );
            }
        }
    }
    for (kind, origin) in [
        (CatalogKind::Roles, &defaults.roles),
        (CatalogKind::Plans, &defaults.plans),
        (CatalogKind::Groups, &defaults.groups),
    ] {
        if let Some(origin) = origin {
            for (i, name) in origin.value.iter().enumerate() {
                if !catalog(kind).contains_key(name) {
                    Report { file: origin.file, pending }.at(
                        Rule::unknown_in(kind),
                        format!("{}[{i}]", origin.path),
                        format!("unknown {} `{name}`", singular(kind)),
                        suggestion(name, kind.key(), catalog(kind).keys().map(String::as_str)),
                    );
                }
            }
        }
    }

    let only_provider: Option<Vec<String>> = (providers.len() == 1).then(|| providers.keys().cloned().collect());
    // Each run of members is resolved into a run of addresses, sized once.
    let default_providers =
        defaults.providers.as_ref().map_or(only_provider.as_ref().map_or(0, Vec::len), |d| d.value.len());
    let addresses_of =
        |run: &[MemberConfig]| run.iter().map(|m| m.providers.as_ref().map_or(default_providers, Vec::len)).sum();
    let dirs: Vec<PathBuf> = sources.iter().enumerate().map(|(i, _)| dir_of(i)).collect();
    let resolve_run = |file: usize, run_start: usize, run: Vec<MemberConfig>| {
        let context = MemberContext {
            providers: &providers,
            catalogs: &catalogs,
            defaults: &defaults,
            only_provider: only_provider.as_deref(),
            dir: &dirs[file],
        };
        let resolved = Vec::with_capacity(addresses_of(&run));
        resolve_members(file, run_start, run, &context, &covering[file], resolved)
    };
    let runs = resolve_runs(members, resolve_run);
    let declined: Vec<usize> = runs.iter().filter_map(|run| run.as_ref().err().copied()).collect();
    if !declined.is_empty() {
        return Err(declined);
    }

    // The duplicate check needs every member before it: made here, in file
    // order, on what the workers resolved.
    let mut desired = Vec::with_capacity(runs.len());
    // Where each email was first seen: file and member index (the path is
    // only spelled out for a duplicate).
    let mut seen: Seen = Seen::with_capacity_and_hasher(
        runs.iter().flatten().map(|run| run.members.len()).sum(),
        RandomState::default(),
    );
    let mut member_count = 0;
    for run in runs.into_iter().flatten() {
        let ResolvedRun { file, run_start, members, mut resolved } = run;
        let mut duplicates = Vec::new();
        for (offset, member) in members.into_iter().enumerate() {
            let index = run_start + offset;
            member_count += 1;
            let ResolvedMember { key, entries, rest } = member;
            let MemberRest { before, shown, after } = rest.map(|rest| *rest).unwrap_or_default();
            pending.extend(before);
            let Some(key) = key else { continue };
            match seen.entry(key) {
                Entry::Occupied(first) => {
                    let &(first_file, first_index) = first.get();
                    let first_at = (first_file as usize, format!("members[{first_index}].email"));
                    let shown = shown.as_deref().unwrap_or(first.key());
                    duplicate(pending, file, format!("members[{index}].email"), first_at, &format!("member `{shown}`"));
                    duplicates.push(entries.start as usize..entries.end as usize);
                    continue;
                }
                Entry::Vacant(slot) => {
                    slot.insert((small(file), small(index)));
                }
            }
            pending.extend(after);
        }
        // A duplicate is reported and not resolved (its problems and
        // addresses are dropped), as if it had been skipped.
        if !duplicates.is_empty() {
            let mut dropped = vec![false; resolved.len()];
            for range in duplicates {
                dropped[range].fill(true);
            }
            let mut dropped = dropped.into_iter();
            resolved.retain(|_| !dropped.next().unwrap_or(false));
        }
        desired.push(resolved);
    }
    let moved = check_moved(&files, &seen, pending);

    let desired = super::Desired::from_runs(desired);
    if let Some(origin) = &policy {
        let roles = catalog_of(&catalogs, CatalogKind::Roles);
        super::policy::check(&mut Report { file: origin.file, pending }, origin.value, roles, &providers, &desired);
    }
    let names = catalog_names(&catalogs);
    let max_changes = max_changes.map_or(DEFAULT_MAX_CHANGES, |o| o.value);
    let max_removal_fraction = max_removal_fraction.map_or(DEFAULT_MAX_REMOVAL_FRACTION, |o| o.value);
    Ok(Config {
        files: sources.iter().map(|s| s.path.clone()).collect(),
        digest,
        providers,
        desired,
        member_count,
        max_changes,
        max_removal_fraction,
        resend_after,
        moved,
        names,
        state: state.map_or(StateSettings::File { path: None }, |o| o.value),
    })
}

/// Where each configured email was first seen: file and member index (the
/// path is only spelled out for a duplicate). Held for every member at
/// once, hence the small types. Hashed with foldhash rather than std's
/// `SipHash`: `SipHash` was a third of the 1M plan's duplicate check, which
/// runs on one thread (its inputs are config files the repository's
/// reviewers already read, and foldhash's seed is random per run).
type Seen = HashMap<Box<str>, (u32, u32), RandomState>;

/// A file or member index as [`Seen`] and [`ResolvedMember`] hold it.
pub(super) fn small(index: usize) -> u32 {
    u32::try_from(index).expect("a config holds fewer than 4 billion files and members")
}

/// The `moved:` entries of every file, normalized: each must name two valid,
/// different emails, the member as now configured (`to`) and an email no
/// longer configured (`from`), or it could not be a rename.
fn check_moved(files: &[(usize, &ConfigFile)], configured: &Seen, pending: &mut Vec<Pending>) -> Vec<(String, String)> {
    let mut moved = Vec::new();
    for &(file, config) in files {
        for (index, entry) in config.moved.iter().enumerate() {
            let mut report = Report { file, pending };
            let path = format!("moved[{index}]");
            let (from, to) = (entry.from.trim(), entry.to.trim());
            let mut valid = true;
            for (key, email) in [("from", from), ("to", to)] {
                if !is_valid_email(email) {
                    valid = false;
                    report.at(
                        rules::EMAIL,
                        format!("{path}.{key}"),
                        format!("`{email}` is not a valid email address"),
                        "write it as `name@example.com`".to_owned(),
                    );
                }
            }
            if !valid {
                continue;
            }
            let (from, to) = (normalize_email(from), normalize_email(to));
            let problem = if from == to {
                Some(("from", "`from` and `to` are the same email".to_owned(), "name the old email in `from`"))
            } else if !configured.contains_key(to.as_str()) {
                Some((
                    "to",
                    format!("`{}` is not a configured member", entry.to.trim()),
                    "`to` is the member's email as now configured; add the member or fix the email",
                ))
            } else if configured.contains_key(from.as_str()) {
                Some((
                    "from",
                    format!("`{}` is still a configured member", entry.from.trim()),
                    "a renamed member is configured under its new email only; remove the old entry",
                ))
            } else {
                None
            };
            if let Some((key, message, hint)) = problem {
                report.at(rules::MOVED, format!("{path}.{key}"), message, hint.to_owned());
            } else {
                moved.push((from, to));
            }
        }
    }
    moved
}

/// Checks `state:` and resolves it.
fn resolve_state(report: &mut Report<'_>, settings: &StateConfig) -> StateSettings {
    let only_for = |report: &mut Report<'_>, key: &str, backend: &str| {
        report.at(
            rules::STATE,
            format!("state.{key}"),
            format!("`state.{key}` applies only to `backend: {backend}`"),
            format!("remove it, or set `backend: {backend}`"),
        );
    };
    match settings.backend.unwrap_or(StateBackendKind::File) {
        StateBackendKind::File => {
            for (key, set) in [("url_env", settings.url_env.is_some()), ("name", settings.name.is_some())] {
                if set {
                    only_for(report, key, "postgres");
                }
            }
            StateSettings::File { path: settings.path.as_ref().map(PathBuf::from) }
        }
        StateBackendKind::Postgres => {
            if settings.path.is_some() {
                only_for(report, "path", "file");
            }
            let name = settings.name.clone().unwrap_or_default();
            if name.trim().is_empty() {
                report.at(
                    rules::STATE,
                    "state.name",
                    "`backend: postgres` needs a `state.name`",
                    "one name per complete configuration, e.g. `name: acme-community`".to_owned(),
                );
            }
            let url_env = settings.url_env.clone().unwrap_or_else(|| DEFAULT_DATABASE_URL_ENV.to_owned());
            if url_env.is_empty() {
                report.at(
                    rules::STATE,
                    "state.url_env",
                    "`state.url_env` is empty",
                    "the default is `MEMBERCTL_DATABASE_URL`".to_owned(),
                );
            }
            StateSettings::Postgres { url_env, name }
        }
    }
}

/// The merged catalog of one kind.
fn catalog_of(catalogs: &[(CatalogKind, Catalog); 4], kind: CatalogKind) -> &Catalog {
    &catalogs.iter().find(|(k, _)| *k == kind).expect("all kinds present").1
}

/// Reads the catalogs backwards: per provider, what each remote id stands for.
fn catalog_names(catalogs: &[(CatalogKind, Catalog); 4]) -> CatalogNames {
    let mut names = CatalogNames::new();
    for (kind, catalog) in catalogs {
        for (name, ids) in catalog {
            for (provider, id) in ids {
                names.entry(provider.clone()).or_default().insert(*kind, id, name);
            }
        }
    }
    names
}

/// Moves catalog problems (reported against file 0) to the file that defined the entry.
fn rehome_catalog_problems(
    pending: &mut [Pending],
    origin: &HashMap<(usize, String), (usize, String)>,
    catalogs: &[(CatalogKind, Catalog); 4],
) {
    // Duplicates already point at the second definition and name the first.
    for problem in pending.iter_mut().filter(|p| p.also.is_none()) {
        for (slot, (kind, _)) in catalogs.iter().enumerate() {
            let Some(rest) = problem.path.strip_prefix(kind.key()).and_then(|r| r.strip_prefix('.')) else { continue };
            let name = rest.split('.').next().unwrap_or_default();
            if let Some((file, _)) = origin.get(&(slot, name.to_owned())) {
                problem.file = *file;
            }
        }
    }
}
