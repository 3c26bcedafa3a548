//! `memberctl import provider NAME`: members YAML for what a provider
//! holds, so an existing community can be brought under memberctl without
//! typing it in; `--adopt` records them in the state, so they are never
//! invited.
//!
//! Remote ids are written as the catalog names that map to them; an id no
//! catalog entry maps to cannot be written in YAML (members name catalog
//! entries, never raw ids), so it is left out with a warning naming it.

use std::collections::BTreeMap;
use std::path::Path;

use super::{import, refresh_cmd, Context, Outcome, Success};
use crate::address::Address;
use crate::config::{self, MemberValue};
use crate::error::Error;
use crate::provider::{CatalogKind, NameFields, Observed};
use crate::state::edit::{self, Edit};

pub(super) fn run(name: &str, adopt: bool, append: Option<&Path>, cx: &mut Context<'_>) -> Outcome {
    let config = cx.load_config()?;
    let Some(settings) = config.providers.get(name) else {
        return Err(Error::usage(
            format!("no provider `{name}` in the config"),
            config::problem::suggestion(name, "providers", config.providers.keys().map(String::as_str)),
        ));
    };
    if !settings.capabilities.list {
        return Err(Error::usage(
            format!("provider `{name}` cannot list its members, so there is nothing to import from it"),
            "`import csv` imports an export of the members instead",
        ));
    }
    let listing = refresh_cmd::list_one(settings)?;
    let names = config.names.get(name).cloned().unwrap_or_default();
    let fields = settings.kind.member_fields();
    let mut members = Vec::new();
    let mut imported = Vec::new();
    let mut already = 0usize;
    for observed in &listing.members {
        let address = Address::new(name, &observed.attributes.email);
        if config.desired.contains_key(&address) {
            already += 1;
            continue;
        }
        let mut member = BTreeMap::new();
        let text = |member: &mut BTreeMap<String, MemberValue>, key: &str, value: &Option<String>| {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                member.insert(key.to_owned(), MemberValue::Text(value.clone()));
            }
        };
        let a = &observed.attributes;
        member.insert("email".to_owned(), MemberValue::Text(a.email.clone()));
        text(&mut member, "name", &a.name);
        if fields.names == NameFields::Separate {
            text(&mut member, "first_name", &a.first_name);
            text(&mut member, "last_name", &a.last_name);
        }
        if fields.phone {
            text(&mut member, "phone", &a.phone);
        }
        if fields.manager_id {
            text(&mut member, "manager_id", &a.manager_id);
        }
        member.insert("providers".to_owned(), MemberValue::List(vec![name.to_owned()]));
        for (kind, ids) in [
            (CatalogKind::Roles, &a.roles),
            (CatalogKind::Plans, &a.plans),
            (CatalogKind::Groups, &a.groups),
            (CatalogKind::Positions, &a.positions),
        ] {
            if !settings.kind.uses(kind) {
                continue;
            }
            let mut listed = Vec::new();
            for id in ids {
                match names.of(kind).get(&**id) {
                    Some(catalog_name) => listed.push(catalog_name.clone()),
                    None => cx.ui.warn(&format!(
                        "`{address}`: {} id `{id}` is in no `{}` catalog entry, so it is left out; add an entry for it and import again",
                        kind.key().trim_end_matches('s'),
                        kind.key()
                    ))?,
                }
            }
            // Written even when empty, so `defaults` do not add to what the
            // provider holds.
            member.insert(kind.key().to_owned(), MemberValue::List(listed));
        }
        members.push(member);
        imported.push((address, observed));
    }
    let yaml = config::emit_members(&members);
    let mut items = String::with_capacity(yaml.len() + 2 * members.len());
    for line in yaml.lines() {
        items.push_str("  ");
        items.push_str(line);
        items.push('\n');
    }
    match append {
        Some(path) => {
            import::append(path, &items)?;
            cx.ui.note(&format!("Appended {} member(s) to `{}`.", members.len(), path.display()))?;
        }
        None => cx.ui.print(&format!("members:\n{items}"))?,
    }
    if already > 0 {
        cx.ui.note(&format!("{already} member(s) `{name}` holds are configured already and were left out."))?;
    }
    if adopt && !imported.is_empty() {
        adopt_all(cx, &config, &imported)?;
        if append.is_none() {
            warn_until_configured(cx, imported.len())?;
        }
    }
    Ok(Success::Done)
}

/// Records each imported member as adopted, with the attributes the
/// provider holds and its ids, so the next plan neither invites nor updates
/// them once the YAML is in the config.
fn adopt_all(cx: &mut Context<'_>, config: &config::Config, imported: &[(Address, &Observed)]) -> Result<(), Error> {
    let mut backend = cx.state_backend(Some(config))?;
    let lock = backend.lock("import provider", cx.global.lock_timeout)?;
    let loaded = backend.load_and_recover()?;
    cx.report_recovery(lock.stale.as_ref(), loaded.replay.as_ref(), true)?;
    let state = loaded.state.unwrap_or_default();
    let edits: Vec<Edit> = imported
        .iter()
        .filter(|(address, _)| !state.resources.contains_key(address))
        .map(|(address, observed)| Edit::Observed {
            address: address.clone(),
            attributes: observed.attributes.clone(),
            remote: observed.remote.clone(),
            settled: true,
        })
        .collect();
    let count = edits.len();
    edit::record(state, edits, |state| backend.recorder(state))?;
    drop(lock);
    cx.ui.note(&format!("Recorded {count} member(s) in the state as adopted; they will not be invited."))?;
    Ok(())
}

/// Recorded but not configured, an adopted member is planned for removal:
/// said at once when the YAML went to stdout rather than into the config.
fn warn_until_configured(cx: &mut Context<'_>, count: usize) -> Result<(), Error> {
    cx.ui.warn(&format!(
        "{count} member(s) are recorded as adopted but not yet configured: add the YAML above to the config before the next `memberctl plan`, or it plans to remove them (`--append FILE` writes it there)"
    ))
}
