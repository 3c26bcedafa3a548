//! Resolving members: each member's entry in the config, with the defaults
//! and catalogs, into the attributes of each of its addresses. Runs of
//! members are resolved on every core; the duplicate check that follows
//! (in `resolve`) needs them all.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use super::load::Run;
use super::model::{Catalog, MemberConfig};
use super::owners::Granted;
use super::problem::{rules, suggestion, Pending, Rule};
use super::resolve::{small, Defaults, Origin};
use super::validate::{check_member_keys, is_valid_email, singular, Report};
use crate::address::{normalize_email, Address};
use crate::attributes::{Attributes, Method};
use crate::provider::{CatalogKind, NameFields, ProviderSettings};

/// One member as a worker resolved it, waiting for the duplicate check.
/// Every member of the config is held this way at once (a million at the
/// benchmark's largest), so what most members lack is boxed apart: 32
/// bytes each instead of 112.
pub(super) struct ResolvedMember {
    /// The normalized email; none when the member has no email (and nothing
    /// more was done with it).
    pub(super) key: Option<Box<str>>,
    /// Its addresses, as positions in its run's `resolved`.
    pub(super) entries: Range<u32>,
    /// Its problems and its email as written, when it has any.
    pub(super) rest: Option<Box<MemberRest>>,
}

/// What few members have.
#[derive(Default)]
pub(super) struct MemberRest {
    /// Problems found before the duplicate check: a missing or invalid email.
    pub(super) before: Vec<Pending>,
    /// The email as written, trimmed, when it is not `key`: a duplicate's
    /// message quotes it.
    pub(super) shown: Option<String>,
    /// Problems found resolving it; dropped with it if it is a duplicate.
    pub(super) after: Vec<Pending>,
}

impl ResolvedMember {
    fn new(key: Option<String>, entries: Range<usize>, rest: MemberRest) -> Self {
        let some = !rest.before.is_empty() || rest.shown.is_some() || !rest.after.is_empty();
        ResolvedMember {
            key: key.map(String::into_boxed_str),
            entries: small(entries.start)..small(entries.end),
            rest: some.then(|| Box::new(rest)),
        }
    }
}

/// A run of members as a worker resolved it.
pub(super) struct ResolvedRun {
    pub(super) file: usize,
    /// The index in its file of the run's first member.
    pub(super) run_start: usize,
    pub(super) members: Vec<ResolvedMember>,
    pub(super) resolved: Vec<super::desired::Entry>,
}

/// Parses (when cut from a large file) and resolves every file's runs of
/// members, on every core, and answers them in file order; each run is
/// freed as soon as it is resolved. A run the fast reader declines answers
/// its file.
pub(super) fn resolve_runs(
    members: Vec<Vec<Run<'_>>>,
    resolve_run: impl Fn(usize, usize, Vec<MemberConfig>) -> ResolvedRun + Sync,
) -> Vec<Result<ResolvedRun, usize>> {
    let mut work = Vec::new();
    for (file, runs) in members.into_iter().enumerate() {
        let mut run_start = 0;
        for run in runs {
            let len = match &run {
                Run::Parsed(members) => members.len(),
                Run::Text { items, .. } => *items,
            };
            work.push((file, run_start, run));
            run_start += len;
        }
    }
    let work_on = |(file, run_start, run): (usize, usize, Run<'_>)| {
        let members = match run {
            Run::Parsed(members) => members,
            Run::Text { text, items } => {
                super::fast_yaml::parse_members(text, items).filter(|members| members.len() == items).ok_or(file)?
            }
        };
        Ok(resolve_run(file, run_start, members))
    };
    crate::parallel::map_in_order(work, work_on, || ()).0
}

/// Resolves one run of a file's members, everything but the duplicate
/// check (which needs the members before it, on other threads).
pub(super) fn resolve_members(
    file: usize,
    run_start: usize,
    run: Vec<MemberConfig>,
    context: &MemberContext<'_>,
    covering: &[&super::owners::OwnerRule],
    mut resolved: Vec<super::desired::Entry>,
) -> ResolvedRun {
    let mut members = Vec::with_capacity(run.len());
    let mut path = String::new();
    for (offset, member) in run.into_iter().enumerate() {
        path.clear();
        write!(path, "members[{}]", run_start + offset).expect("writing to a String cannot fail");
        // Kept whatever comes of the member, duplicate or not.
        let mut before = Vec::new();
        if !member.unknown.is_empty() {
            check_member_keys(&mut Report { file, pending: &mut before }, &path, &member);
        }
        let email = member.email.trim();
        let start = resolved.len();
        if email.is_empty() {
            Report { file, pending: &mut before }.at_key(
                rules::MEMBER_NO_EMAIL,
                path.clone(),
                "member has no `email`",
                "every member needs `email:`".to_owned(),
            );
            members.push(ResolvedMember::new(None, start..start, MemberRest { before, ..MemberRest::default() }));
            continue;
        }
        if !is_valid_email(email) {
            Report { file, pending: &mut before }.at(
                rules::EMAIL,
                format!("{path}.email"),
                format!("`{email}` is not a valid email address"),
                "write it as `name@example.com`".to_owned(),
            );
        }
        let key = normalize_email(email);
        let shown = (email != key).then(|| email.to_owned());
        let mut after = Vec::new();
        if !covering.is_empty() {
            let granted = granted(&member, context);
            super::owners::check_member(&mut Report { file, pending: &mut after }, &path, email, &granted, covering);
        }
        resolve_member(&mut Report { file, pending: &mut after }, &path, member, context, &mut resolved);
        members.push(ResolvedMember::new(Some(key), start..resolved.len(), MemberRest { before, shown, after }));
    }
    ResolvedRun { file, run_start, members, resolved }
}

pub(super) struct MemberContext<'a> {
    pub(super) providers: &'a BTreeMap<String, ProviderSettings>,
    pub(super) catalogs: &'a [(CatalogKind, Catalog); 4],
    pub(super) defaults: &'a Defaults<'a>,
    pub(super) only_provider: Option<&'a [String]>,
    pub(super) dir: &'a Path,
}

impl MemberContext<'_> {
    fn catalog(&self, kind: CatalogKind) -> &Catalog {
        &self.catalogs.iter().find(|(k, _)| *k == kind).expect("all kinds present").1
    }
}

/// Names from the member, else from defaults; with the member's key when
/// the member wrote them (problems then point there).
fn names_for<'a>(
    own: Option<&'a Vec<String>>,
    default: Option<&'a Origin<&'a Vec<String>>>,
    key: &'static str,
) -> (&'a [String], Option<&'static str>) {
    match (own, default) {
        (Some(v), _) => (v, Some(key)),
        (None, Some(d)) => (d.value, None),
        (None, None) => (&[], None),
    }
}

/// What a member grants, as ownership rules see it: its own lists, else
/// the defaults (a team cannot escape a rule through them either).
fn granted<'a>(member: &'a MemberConfig, ctx: &'a MemberContext<'_>) -> [Granted<'a>; 4] {
    let (providers, written) = match (&member.providers, &ctx.defaults.providers, ctx.only_provider) {
        (Some(v), _, _) => (v.as_slice(), true),
        (None, Some(d), _) => (d.value.as_slice(), false),
        (None, None, Some(only)) => (only, false),
        (None, None, None) => (&[][..], false),
    };
    let list = |own: Option<&'a Vec<String>>, default: Option<&'a Origin<&'a Vec<String>>>, key: &'static str| {
        let (names, written) = names_for(own, default, key);
        Granted { key, names, written: written.is_some() }
    };
    [
        Granted { key: "providers", names: providers, written },
        list(member.roles.as_ref(), ctx.defaults.roles.as_ref(), "roles"),
        list(member.groups.as_ref(), ctx.defaults.groups.as_ref(), "groups"),
        list(member.plans.as_ref(), ctx.defaults.plans.as_ref(), "plans"),
    ]
}

/// The value of a member's field for one of its providers: a copy, or the
/// value itself for the last provider (the member is dropped afterwards).
fn grab<T: Clone>(field: &mut Option<T>, last: bool) -> Option<T> {
    if last {
        field.take()
    } else {
        field.clone()
    }
}

/// Like [`grab`], trimmed.
fn grab_trimmed(field: &mut Option<String>, last: bool) -> Option<String> {
    match field.as_deref() {
        Some(text) if text.trim().len() != text.len() => Some(text.trim().to_owned()),
        _ => grab(field, last),
    }
}

fn resolve_member(
    report: &mut Report<'_>,
    path: &str,
    mut member: MemberConfig,
    ctx: &MemberContext<'_>,
    desired: &mut Vec<super::desired::Entry>,
) {
    let email = member.email.trim();
    if member.providers.as_ref().is_some_and(Vec::is_empty) {
        report.at(
            rules::MEMBER_NO_PROVIDER,
            format!("{path}.providers"),
            format!("member `{email}` joins no provider: `providers` is empty"),
            "name at least one provider, or remove the member".to_owned(),
        );
        return;
    }
    let provider_names: &[String] = match (&member.providers, &ctx.defaults.providers, ctx.only_provider) {
        (Some(v), _, _) => v,
        (None, Some(d), _) => d.value,
        (None, None, Some(only)) => only,
        (None, None, None) => {
            report.at_key(
                rules::MEMBER_NO_PROVIDER,
                path.to_owned(),
                format!("member `{email}` joins no provider"),
                "set `providers:` on the member, or `defaults.providers`".to_owned(),
            );
            return;
        }
    };
    let method = member.method.unwrap_or_default();
    if method == Method::Direct && member.password_env.is_none() && member.password_file.is_none() {
        report.at(
            rules::DIRECT_NO_PASSWORD,
            format!("{path}.method"),
            format!("direct add of `{email}` needs a password source"),
            "set `password_env` (an env var name) or `password_file`".to_owned(),
        );
    }
    if method == Method::Invite && (member.password_env.is_some() || member.password_file.is_some()) {
        let key = if member.password_env.is_some() { "password_env" } else { "password_file" };
        report.at_key(
            rules::PASSWORD_WITHOUT_DIRECT,
            format!("{path}.{key}"),
            format!("`{key}` is only used with `method: direct`"),
            "add `method: direct`, or remove it".to_owned(),
        );
    }
    if let Some(var) = &member.password_env {
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            report.at(
                rules::ENV_NAME,
                format!("{path}.password_env"),
                format!("`{var}` is not an environment variable name"),
                "name the env var that holds the password, never the password".to_owned(),
            );
        }
    }
    let lists = [
        (CatalogKind::Roles, names_for(member.roles.as_ref(), ctx.defaults.roles.as_ref(), "roles")),
        (CatalogKind::Plans, names_for(member.plans.as_ref(), ctx.defaults.plans.as_ref(), "plans")),
        (CatalogKind::Groups, names_for(member.groups.as_ref(), ctx.defaults.groups.as_ref(), "groups")),
        (CatalogKind::Positions, names_for(member.positions.as_ref(), None, "positions")),
    ];
    // Names must exist in their catalog (defaults were checked once already).
    for (kind, (names, written_at)) in &lists {
        let Some(at) = written_at else { continue };
        for (i, name) in names.iter().enumerate() {
            if !ctx.catalog(*kind).contains_key(name.as_str()) {
                report.at(
                    Rule::unknown_in(*kind),
                    format!("{path}.{at}[{i}]"),
                    format!("unknown {} `{name}`", singular(*kind)),
                    suggestion(name, kind.key(), ctx.catalog(*kind).keys().map(String::as_str)),
                );
            }
        }
    }
    if let Some(primary) = &member.primary_group {
        if !lists[2].1 .0.contains(primary) {
            report.at(
                rules::PRIMARY_GROUP,
                format!("{path}.primary_group"),
                format!("primary group `{primary}` is not one of the member's groups"),
                "add it to `groups`".to_owned(),
            );
        }
    }
    for (i, provider_name) in provider_names.iter().enumerate() {
        let Some(settings) = ctx.providers.get(provider_name.as_str()) else {
            // One from `defaults.providers` was reported there, once.
            if member.providers.is_some() {
                report.at(
                    rules::UNKNOWN_PROVIDER,
                    format!("{path}.providers[{i}]"),
                    format!("unknown provider `{provider_name}`"),
                    suggestion(provider_name, "providers", ctx.providers.keys().map(String::as_str)),
                );
            }
            continue;
        };
        let kind = settings.kind;
        let fields = kind.member_fields();
        if method == Method::Direct && !fields.direct_add {
            report.at(
                rules::NO_DIRECT_ADD,
                format!("{path}.method"),
                format!("{kind} provider `{provider_name}` has no direct add"),
                format!("use `method: invite` for {kind}, or list the member twice under different providers"),
            );
        }
        let mut ids: [Vec<crate::attributes::Id>; 4] = Default::default();
        for (slot, (catalog_kind, (names, written_at))) in lists.iter().enumerate() {
            if !kind.uses(*catalog_kind) {
                continue;
            }
            // Sized exactly: a list grown from empty holds room for four
            // ids, and most members have one role (7 MB of the 100k plan).
            ids[slot].reserve_exact(names.len());
            for name in *names {
                let Some(entry) = ctx.catalog(*catalog_kind).get(name.as_str()) else { continue };
                if let Some(id) = entry.get(provider_name.as_str()) {
                    ids[slot].push(id.clone());
                } else {
                    let at = written_at.map_or_else(|| format!("{path}.email"), |key| format!("{path}.{key}"));
                    report.at(Rule::no_id_in(*catalog_kind),
                        at,
                        format!("{} `{name}` has no id for provider `{provider_name}`", singular(*catalog_kind)),
                        format!("add `{provider_name}: <id>` under `{}.{name}`, or leave `{provider_name}` out of this member's providers", catalog_kind.key()),
                    );
                }
            }
        }
        let [roles, plans, groups, positions] = ids;
        let primary_group = member
            .primary_group
            .as_ref()
            .filter(|_| kind.uses(CatalogKind::Groups))
            .and_then(|g| ctx.catalog(CatalogKind::Groups).get(g))
            .and_then(|ids| ids.get(provider_name.as_str()))
            .cloned();
        // Each provider type gets the fields it has a notion of; the last
        // provider takes the member's own strings instead of copies.
        let last = i + 1 == provider_names.len();
        let password_file = member.password_file.as_ref().map(|f| ctx.dir.join(f).to_string_lossy().into_owned());
        let mut attributes = Attributes {
            email: email.to_owned(),
            roles,
            plans,
            groups,
            primary_group,
            positions,
            method,
            password_file,
            ..Attributes::default()
        };
        match fields.names {
            NameFields::Joined => {
                attributes.name = if member.name.is_some() {
                    grab_trimmed(&mut member.name, last)
                } else {
                    let joined = [&member.first_name, &member.last_name]
                        .iter()
                        .filter_map(|p| p.as_deref())
                        .collect::<Vec<_>>()
                        .join(" ");
                    (!joined.is_empty()).then_some(joined)
                };
            }
            NameFields::Separate => {
                attributes.name = grab_trimmed(&mut member.name, last);
                attributes.first_name = grab(&mut member.first_name, last);
                attributes.last_name = grab(&mut member.last_name, last);
            }
        }
        if fields.phone {
            attributes.phone = grab(&mut member.phone, last);
        }
        if fields.manager_id {
            attributes.manager_id = grab(&mut member.manager_id, last);
        }
        if fields.existing_user {
            attributes.existing_user = grab(&mut member.existing_user, last);
        }
        if fields.note {
            attributes.note =
                grab(&mut member.note, last).or_else(|| ctx.defaults.note.as_ref().map(|d| d.value.clone()));
        }
        kind.finish_attributes(&mut attributes, settings);
        attributes.password_env = grab(&mut member.password_env, last);
        for (message, hint) in kind.validate_member(&attributes, settings) {
            report.at(
                rules::PROVIDER_REQUIREMENT,
                format!("{path}.email"),
                format!("`{provider_name}/{}`: {message}", email.to_lowercase()),
                hint,
            );
        }
        desired.push((Address::new(provider_name, email), Box::new(attributes)));
    }
}
