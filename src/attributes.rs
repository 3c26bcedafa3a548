//! The resolved attributes of one member at one provider.
//!
//! These are what a provider is asked to carry out and what the state
//! records: catalog names are already turned into the provider's remote ids,
//! and fields the provider type has no notion of are already dropped. Plan
//! compares two of these; nothing secret is ever held here (a direct-add
//! password is referenced by the env var or file that holds it).

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::names::Names;
use crate::provider::CatalogKind;

/// A catalog id (a role's, plan's, group's or position's remote id):
/// shared, not copied, by every member that has it. A config's ids are
/// shared through its catalogs; ids read back (from the state, from a
/// provider's listing) through [`id`].
pub type Id = std::sync::Arc<str>;

/// The shared [`Id`] for `text`: a large state or listing names the same
/// few catalog ids over and over, and each would otherwise be its own
/// allocation. Remembered per thread, up to a bound, so that a listing of
/// ids that are all different costs no more than copying them.
#[must_use]
pub fn id(text: &str) -> Id {
    const REMEMBERED: usize = 1 << 14;
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashSet<Id>> =
            std::cell::RefCell::new(std::collections::HashSet::new());
    }
    SEEN.with_borrow_mut(|seen| {
        if let Some(known) = seen.get(text) {
            return known.clone();
        }
        let new = Id::from(text);
        if seen.len() < REMEMBERED {
            seen.insert(new.clone());
        }
        new
    })
}

/// How a member is brought into a provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// An invitation email (Networked `method=1`, Aptly bulk invite).
    #[default]
    Invite,
    /// A Networked direct add (`method=2`): the account is created at once and
    /// the credentials are mailed.
    Direct,
}

impl Method {
    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes `&T`
    fn is_invite(&self) -> bool {
        *self == Method::Invite
    }
}

/// Reads a list of catalog ids, each through [`id`] (never a `String` first).
pub(crate) fn ids<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Id>, D::Error> {
    Vec::<SharedId>::deserialize(deserializer).map(|ids| ids.into_iter().map(|SharedId(id)| id).collect())
}

/// Reads an optional catalog id through [`id`].
pub(crate) fn optional_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Id>, D::Error> {
    Option::<SharedId>::deserialize(deserializer).map(|id| id.map(|SharedId(id)| id))
}

struct SharedId(Id);

impl<'de> Deserialize<'de> for SharedId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = SharedId;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SharedId, E> {
                Ok(SharedId(id(text)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// One member's resolved attributes at one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// The email as written in the config (trimmed).
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Given name (explicit, or derived from `name` for providers that need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name (explicit, or derived from `name` for providers that need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Phone number, sent as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Remote role ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "ids")]
    pub roles: Vec<Id>,
    /// Remote plan ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "ids")]
    pub plans: Vec<Id>,
    /// Remote group ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "ids")]
    pub groups: Vec<Id>,
    /// Remote id of the primary group (one of `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_id")]
    pub primary_group: Option<Id>,
    /// Remote position ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "ids")]
    pub positions: Vec<Id>,
    /// Remote id of the member's manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_id: Option<String>,
    /// Message included with the invitation (sent once, never updated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Invite or direct add (used once, never updated).
    #[serde(default, skip_serializing_if = "Method::is_invite")]
    pub method: Method,
    /// Name of the env var holding the direct-add password (never its value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Path of the file holding the direct-add password (never its content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Aptly `existingUser` object, passed through as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_user: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One attribute that differs between two attribute sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeChange {
    /// The attribute's name, as in the config.
    pub field: &'static str,
    /// The old value, rendered for people (`(none)` when absent).
    pub before: String,
    /// The new value, rendered for people.
    pub after: String,
}

fn render_opt(value: Option<&str>) -> String {
    value.map_or_else(|| "(none)".to_owned(), |v| format!("{v:?}"))
}

fn render_list(values: &[Id]) -> String {
    if values.is_empty() {
        "[]".to_owned()
    } else {
        format!("[{}]", values.join(", "))
    }
}

impl Attributes {
    /// The membership attributes that differ from `newer`.
    ///
    /// `note`, `method`, the password references and `existing_user` only
    /// shape the first invitation, so changing them later changes nothing at
    /// the provider and is not an update. The email's case is not compared
    /// either: addresses are case-insensitive.
    #[must_use]
    pub fn changes_to(&self, newer: &Attributes) -> Vec<AttributeChange> {
        let mut out = Vec::new();
        // In the order `lines` shows them, so diffs and change lists agree.
        scalar_change(&mut out, "name", self.name.as_deref(), newer.name.as_deref());
        scalar_change(&mut out, "first_name", self.first_name.as_deref(), newer.first_name.as_deref());
        scalar_change(&mut out, "last_name", self.last_name.as_deref(), newer.last_name.as_deref());
        scalar_change(&mut out, "phone", self.phone.as_deref(), newer.phone.as_deref());
        list_change(&mut out, "roles", &self.roles, &newer.roles);
        list_change(&mut out, "plans", &self.plans, &newer.plans);
        list_change(&mut out, "groups", &self.groups, &newer.groups);
        scalar_change(&mut out, "primary_group", self.primary_group.as_deref(), newer.primary_group.as_deref());
        list_change(&mut out, "positions", &self.positions, &newer.positions);
        scalar_change(&mut out, "manager_id", self.manager_id.as_deref(), newer.manager_id.as_deref());
        out
    }

    /// Whether any membership attribute differs from `newer`: what
    /// [`changes_to`](Self::changes_to) answers empty for, without
    /// rendering anything (plan asks this of every recorded address).
    #[must_use]
    pub fn differs_from(&self, newer: &Attributes) -> bool {
        self.name != newer.name
            || self.first_name != newer.first_name
            || self.last_name != newer.last_name
            || self.phone != newer.phone
            || !same_set(&self.roles, &newer.roles)
            || !same_set(&self.plans, &newer.plans)
            || !same_set(&self.groups, &newer.groups)
            || self.primary_group != newer.primary_group
            || !same_set(&self.positions, &newer.positions)
            || self.manager_id != newer.manager_id
    }

    /// Renders the membership attributes as `field: value` lines, for diffs.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.lines_with(None)
    }

    /// Like [`Attributes::lines`], with catalog ids shown by their names
    /// (`roles: member, admin`), for people reviewing a plan.
    #[must_use]
    pub fn lines_named(&self, names: &Names) -> Vec<String> {
        self.lines_with(Some(names))
    }

    fn lines_with(&self, names: Option<&Names>) -> Vec<String> {
        let list = |lines: &mut Vec<String>, field: &str, kind: CatalogKind, ids: &[Id]| match names {
            Some(names) if !ids.is_empty() => {
                lines.push(format!("{field}: {}", printable(&names.show_list(kind, ids))));
            }
            _ => push_list(lines, field, ids),
        };
        let mut lines = vec![format!("email: {}", printable(&self.email))];
        push_opt(&mut lines, "name", self.name.as_deref());
        push_opt(&mut lines, "first_name", self.first_name.as_deref());
        push_opt(&mut lines, "last_name", self.last_name.as_deref());
        push_opt(&mut lines, "phone", self.phone.as_deref());
        list(&mut lines, "roles", CatalogKind::Roles, &self.roles);
        list(&mut lines, "plans", CatalogKind::Plans, &self.plans);
        list(&mut lines, "groups", CatalogKind::Groups, &self.groups);
        let primary = match (names, &self.primary_group) {
            (Some(names), Some(id)) => Some(names.show(CatalogKind::Groups, id)),
            (_, primary) => primary.as_deref().map(str::to_owned),
        };
        push_opt(&mut lines, "primary_group", primary.as_deref());
        list(&mut lines, "positions", CatalogKind::Positions, &self.positions);
        push_opt(&mut lines, "manager_id", self.manager_id.as_deref());
        if self.method == Method::Direct {
            lines.push("method: direct".to_owned());
        }
        lines
    }

    /// Every catalog id these attributes hold, with its kind.
    pub fn catalog_ids(&self) -> impl Iterator<Item = (CatalogKind, &str)> {
        list(CatalogKind::Roles, &self.roles)
            .chain(list(CatalogKind::Plans, &self.plans))
            .chain(list(CatalogKind::Groups, &self.groups))
            .chain(self.primary_group.iter().map(|id| (CatalogKind::Groups, &**id)))
            .chain(list(CatalogKind::Positions, &self.positions))
    }
}

fn list(kind: CatalogKind, ids: &[Id]) -> impl Iterator<Item = (CatalogKind, &str)> {
    ids.iter().map(move |id| (kind, &**id))
}

impl Attributes {
    /// A changed catalog field's value by names (`member, admin`), for the
    /// `field` [`Attributes::changes_to`] reports; `None` for other fields.
    #[must_use]
    pub fn named_value(&self, field: &str, names: &Names) -> Option<String> {
        let (kind, ids): (CatalogKind, &[Id]) = match field {
            "roles" => (CatalogKind::Roles, &self.roles),
            "plans" => (CatalogKind::Plans, &self.plans),
            "groups" => (CatalogKind::Groups, &self.groups),
            "positions" => (CatalogKind::Positions, &self.positions),
            "primary_group" => {
                return Some(
                    self.primary_group
                        .as_ref()
                        .map_or_else(|| "(none)".to_owned(), |id| names.show(CatalogKind::Groups, id)),
                )
            }
            _ => return None,
        };
        Some(names.show_list(kind, ids))
    }
}

fn push_opt(lines: &mut Vec<String>, field: &str, value: Option<&str>) {
    if let Some(value) = value {
        lines.push(format!("{field}: {}", printable(value)));
    }
}

/// `text` as a terminal or a pull-request comment may show it: as it is,
/// or quoted with escapes when it holds a control character (a newline
/// that would forge a plan line, an ESC that would colour or clear the
/// terminal) or an invisible one that reorders what is shown (bidi
/// overrides). Values come from config files under review and from what
/// services list, so neither is trusted to be plain text.
#[must_use]
pub fn printable(text: &str) -> Cow<'_, str> {
    // Not every character Rust's escaping escapes: combining marks and
    // emoji variation selectors are text.
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if text.chars().any(hostile) {
        Cow::Owned(format!("{text:?}"))
    } else {
        Cow::Borrowed(text)
    }
}

fn push_list(lines: &mut Vec<String>, field: &str, values: &[Id]) {
    if !values.is_empty() {
        lines.push(format!("{field}: {}", printable(&render_list(values))));
    }
}

fn scalar_change(out: &mut Vec<AttributeChange>, field: &'static str, a: Option<&str>, b: Option<&str>) {
    if a != b {
        out.push(AttributeChange { field, before: render_opt(a), after: render_opt(b) });
    }
}

fn list_change(out: &mut Vec<AttributeChange>, field: &'static str, a: &[Id], b: &[Id]) {
    if !same_set(a, b) {
        out.push(AttributeChange { field, before: render_list(a), after: render_list(b) });
    }
}

/// Order-insensitive comparison: `roles: [a, b]` and `[b, a]` are the same membership.
fn same_set(a: &[Id], b: &[Id]) -> bool {
    if a == b {
        // The common case, and without the two allocations below.
        return true;
    }
    if a.len() != b.len() || a.len() < 2 {
        return false;
    }
    let mut a: Vec<&Id> = a.iter().collect();
    let mut b: Vec<&Id> = b.iter().collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        Attributes { email: "a@x.io".into(), roles: vec!["r1".into(), "r2".into()], ..Attributes::default() }
    }

    // Found by a review: a newline in a name forged plan lines, and an ESC
    // reached the terminal, even without colour.
    #[test]
    fn values_with_control_or_reordering_characters_are_shown_quoted() {
        for plain in
            ["Jane Doe", "O'Brien \"JD\" \\ co", "Zoë Ŝmith", "Zoe\u{301}", "⚠\u{fe0f} 👩\u{200d}💻", "李小龍", ""]
        {
            assert_eq!(printable(plain), plain);
        }
        for (raw, shown) in [
            ("Jane\n  - remove sandbox/ceo@example.com", r#""Jane\n  - remove sandbox/ceo@example.com""#),
            ("\u{1b}[2Jcleared", r#""\u{1b}[2Jcleared""#),
            ("tab\there", r#""tab\there""#),
            ("car\rriage", r#""car\rriage""#),
            ("evil\u{202e}txt.exe", r#""evil\u{202e}txt.exe""#),
        ] {
            assert_eq!(printable(raw), shown);
        }
        let lines = Attributes { name: Some("Jane\nPlan: 0 to invite".into()), ..attrs() }.lines();
        assert!(lines.iter().all(|line| !line.contains('\n')), "{lines:?}");
    }

    #[test]
    fn an_id_read_twice_is_one_id_and_any_number_are_read_right() {
        assert!(std::sync::Arc::ptr_eq(&id("69baa36beddb9f0012fdf101"), &id("69baa36beddb9f0012fdf101")));
        let read: Attributes =
            serde_json::from_str(r#"{"email":"a@x.io","roles":["r1"],"groups":["g","g"],"primary_group":"g"}"#)
                .expect("attributes");
        assert!(std::sync::Arc::ptr_eq(&read.groups[0], &read.groups[1]));
        assert!(std::sync::Arc::ptr_eq(&read.groups[0], read.primary_group.as_ref().expect("a primary group")));
        let refused =
            serde_json::from_str::<Attributes>(r#"{"email":"a@x.io","roles":[5]}"#).expect_err("not a string");
        assert!(refused.to_string().contains("expected a string"), "{refused}");
        // Past what is remembered, ids are still read as written, only no
        // longer shared.
        for n in 0..(1 << 14) + 10 {
            let text = format!("id-{n}");
            assert_eq!(*id(&text), *text);
        }
    }

    #[test]
    fn reordered_lists_and_notes_are_not_changes() {
        let mut b = attrs();
        b.roles.reverse();
        b.note = Some("hello".into());
        b.email = "A@X.io".into();
        assert!(attrs().changes_to(&b).is_empty());
    }

    #[test]
    fn changed_role_and_name_are_reported_in_field_order() {
        let mut b = attrs();
        b.roles = vec!["r3".into()];
        b.name = Some("Jo".into());
        let changes = attrs().changes_to(&b);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].field, "name");
        assert_eq!(changes[0].before, "(none)");
        assert_eq!(changes[1].after, "[r3]");
    }

    type Edit = Box<dyn Fn(&mut Attributes)>;

    #[test]
    fn differs_from_is_changes_to_being_non_empty() {
        let base = Attributes { phone: Some("1".into()), groups: vec!["g1".into()], ..attrs() };
        let variants: Vec<Edit> = vec![
            Box::new(|_| {}),
            Box::new(|a| a.roles.reverse()),
            Box::new(|a| a.roles.push("r1".into())),
            Box::new(|a| a.roles = vec!["r1".into(), "r1".into()]),
            Box::new(|a| a.roles.clear()),
            Box::new(|a| a.name = Some("N".into())),
            Box::new(|a| a.first_name = Some("F".into())),
            Box::new(|a| a.last_name = Some("L".into())),
            Box::new(|a| a.phone = None),
            Box::new(|a| a.plans = vec!["p".into()]),
            Box::new(|a| a.groups = vec!["g2".into()]),
            Box::new(|a| a.primary_group = Some("g1".into())),
            Box::new(|a| a.positions = vec!["x".into()]),
            Box::new(|a| a.manager_id = Some("m".into())),
            Box::new(|a| a.note = Some("only the first invitation".into())),
            Box::new(|a| a.method = Method::Direct),
            Box::new(|a| a.email = "A@X.IO".into()),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut newer = base.clone();
            change(&mut newer);
            assert_eq!(base.differs_from(&newer), !base.changes_to(&newer).is_empty(), "variant {i}");
            assert_eq!(newer.differs_from(&base), !newer.changes_to(&base).is_empty(), "variant {i} reversed");
        }
    }
}
