//! Policy on the desired state as a whole (`policy:`): the fewest members
//! that must hold a role, and addresses that must stay configured. Both guard
//! against a pull request that removes the last admins, which no per-member
//! check can see.

use std::collections::BTreeMap;

use super::model::{Catalog, Policy};
use super::problem::{rules, suggestion, Rule};
use super::validate::Report;
use crate::address::Address;
use crate::provider::{CatalogKind, ProviderSettings};

/// Checks `policy` against the resolved members; problems point into the
/// file that declares it.
pub(crate) fn check(
    report: &mut Report<'_>,
    policy: &Policy,
    roles: &Catalog,
    providers: &BTreeMap<String, ProviderSettings>,
    desired: &super::Desired,
) {
    for (role, &least) in &policy.min_members {
        let path = format!("policy.min_members.{role}");
        let Some(ids) = roles.get(role) else {
            report.at_key(
                Rule::unknown_in(CatalogKind::Roles),
                path,
                format!("unknown role `{role}`"),
                suggestion(role, "roles", roles.keys().map(String::as_str)),
            );
            continue;
        };
        // Per provider that uses the role: an admin at one provider does
        // not administer another.
        for (provider, id) in ids.iter().filter(|(p, _)| providers.contains_key(p.as_str())) {
            let holders =
                desired.range(Address::provider_range(provider)).filter(|(_, a)| a.roles.contains(id)).count();
            if holders < least {
                report.at(
                    rules::MIN_MEMBERS,
                    path.clone(),
                    format!(
                        "{holders} member(s) of `{provider}` would hold role `{role}`, but `policy.min_members` asks for at least {least}"
                    ),
                    format!("keep or add a member with role `{role}` at `{provider}`, or lower the minimum"),
                );
            }
        }
    }
    for (i, text) in policy.required.iter().enumerate() {
        let path = format!("policy.required[{i}]");
        match Address::parse(text) {
            Err(message) => report.at(rules::REQUIRED_MEMBER, path, message, None),
            Ok(address) if !desired.contains_key(&address) => report.at(
                rules::REQUIRED_MEMBER,
                path,
                format!("`{address}` must stay configured (`policy.required`), but no member declares it"),
                format!(
                    "restore the member at provider `{}`, or remove it from `policy.required` in a reviewed change",
                    address.provider()
                ),
            ),
            Ok(_) => {}
        }
    }
}
