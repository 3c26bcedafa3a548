//! The catalogs read backwards: which catalog name a provider's remote id
//! stands for, so that a reviewer reads `roles: member → admin` instead of
//! two 24-digit ids.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::provider::CatalogKind;

/// What an id no catalog entry maps to is shown with.
pub const NOT_IN_CATALOG: &str = "(not in catalog)";

/// Remote id → catalog name, per catalog kind, at one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Names {
    /// Role ids → role names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, String>,
    /// Plan ids → plan names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plans: BTreeMap<String, String>,
    /// Group ids → group names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, String>,
    /// Position ids → position names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub positions: BTreeMap<String, String>,
}

impl Names {
    /// No names: every id shows as not in a catalog.
    pub const NONE: Names =
        Names { roles: BTreeMap::new(), plans: BTreeMap::new(), groups: BTreeMap::new(), positions: BTreeMap::new() };

    /// The map of one catalog kind.
    #[must_use]
    pub fn of(&self, kind: CatalogKind) -> &BTreeMap<String, String> {
        match kind {
            CatalogKind::Roles => &self.roles,
            CatalogKind::Plans => &self.plans,
            CatalogKind::Groups => &self.groups,
            CatalogKind::Positions => &self.positions,
        }
    }

    fn of_mut(&mut self, kind: CatalogKind) -> &mut BTreeMap<String, String> {
        match kind {
            CatalogKind::Roles => &mut self.roles,
            CatalogKind::Plans => &mut self.plans,
            CatalogKind::Groups => &mut self.groups,
            CatalogKind::Positions => &mut self.positions,
        }
    }

    /// Records that `id` stands for `name`. When two entries give one id,
    /// the first (catalogs are read in name order) is kept.
    pub fn insert(&mut self, kind: CatalogKind, id: &str, name: &str) {
        self.of_mut(kind).entry(id.to_owned()).or_insert_with(|| name.to_owned());
    }

    /// True when nothing is mapped.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.plans.is_empty() && self.groups.is_empty() && self.positions.is_empty()
    }

    /// `member`, or `ID (not in catalog)`.
    #[must_use]
    pub fn show(&self, kind: CatalogKind, id: &str) -> String {
        self.of(kind).get(id).map_or_else(|| format!("{id} {NOT_IN_CATALOG}"), Clone::clone)
    }

    /// `member, admin`, or `(none)` for an empty list.
    #[must_use]
    pub fn show_list<S: std::borrow::Borrow<str>>(&self, kind: CatalogKind, ids: &[S]) -> String {
        if ids.is_empty() {
            return "(none)".to_owned();
        }
        ids.iter().map(|id| self.show(kind, id.borrow())).collect::<Vec<_>>().join(", ")
    }

    /// The entries of `self` for the ids in `ids` only (what one change needs).
    #[must_use]
    pub fn subset<'a>(&self, ids: impl IntoIterator<Item = (CatalogKind, &'a str)>) -> Names {
        let mut out = Names::default();
        for (kind, id) in ids {
            if let Some(name) = self.of(kind).get(id) {
                out.of_mut(kind).insert(id.to_owned(), name.clone());
            }
        }
        out
    }
}

/// Per provider name, what its remote ids stand for.
pub type CatalogNames = BTreeMap<String, Names>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_ids_say_so_and_the_first_name_wins() {
        let mut names = Names::default();
        names.insert(CatalogKind::Roles, "r1", "admin");
        names.insert(CatalogKind::Roles, "r1", "owner");
        assert_eq!(names.show(CatalogKind::Roles, "r1"), "admin");
        assert_eq!(names.show(CatalogKind::Groups, "r1"), "r1 (not in catalog)");
        assert_eq!(names.show_list(CatalogKind::Roles, &["r1", "r9"]), "admin, r9 (not in catalog)");
        assert_eq!(names.show_list::<&str>(CatalogKind::Roles, &[]), "(none)");
    }
}
