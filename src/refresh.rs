//! Refresh: read what each provider holds and reconcile the state with it.
//!
//! [`list`] asks every provider that can list for its members (the only
//! network I/O here, through the providers); [`reconcile`] is pure: it
//! compares the state's records with the listings and answers the state as
//! the providers show it, with a report of the drift it found. Plans made
//! against that state carry members deleted or changed out of band back to
//! the configuration.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::address::{normalize_email, Address};
use crate::attributes::{AttributeChange, Attributes};
use crate::config::Config;
use crate::provider::{self, BatchError, Listing, Provider, ProviderSettings};
use crate::state::edit::Edit;
use crate::state::{Resource, State, Status};

/// Fewer missing users than this are never suspicious: a team of three may
/// lose one.
pub const SUSPICIOUS_MINIMUM: usize = 10;

/// What refresh found at one address.
#[derive(Clone, Debug, PartialEq)]
pub enum DriftKind {
    /// Recorded, but the provider no longer holds it (deleted out of band).
    Deleted,
    /// Managed attributes were changed at the provider.
    Changed(Vec<AttributeChange>),
    /// The provider holds it deactivated, and memberctl did not do that (it
    /// may be a suspension): reported, not undone.
    Deactivated,
    /// An uncertain send settled by the listing: the member is there.
    SettledPresent,
    /// An uncertain send settled by the listing: the member is not there.
    SettledAbsent,
}

/// One address's drift.
#[derive(Clone, Debug, PartialEq)]
pub struct Drift {
    /// The address.
    pub address: Address,
    /// What was found.
    pub kind: DriftKind,
}

impl Drift {
    /// A one-line explanation, used as the reason of the planned change.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.kind {
            DriftKind::Deleted => "drift: deleted at the provider, outside memberctl".to_owned(),
            // The fields only: their values are remote ids, which text and
            // markdown plans never show, and the change's own diff shows
            // them by catalog name.
            DriftKind::Changed(changes) => format!(
                "drift: changed at the provider, outside memberctl ({})",
                changes.iter().map(|c| c.field).collect::<Vec<_>>().join(", ")
            ),
            DriftKind::Deactivated => {
                "drift: deactivated at the provider, outside memberctl (reported, not reactivated)".to_owned()
            }
            DriftKind::SettledPresent => "the uncertain send arrived: the provider lists the member".to_owned(),
            DriftKind::SettledAbsent => {
                "the uncertain send did not arrive: the provider does not list the member".to_owned()
            }
        }
    }

    /// Whether this changes the state (a deactivation is only reported).
    #[must_use]
    pub fn changes_state(&self) -> bool {
        self.kind != DriftKind::Deactivated
    }
}

/// Everything refresh found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Drift, by address order.
    pub drift: Vec<Drift>,
    /// Members a provider holds that are neither configured nor recorded:
    /// counted and listed, never removed.
    pub unmanaged: Vec<Address>,
    /// Providers that were listed.
    pub checked: Vec<String>,
    /// Providers that cannot list: "not checked", never "in sync".
    pub not_checked: Vec<String>,
    /// What listings could not do.
    pub notes: Vec<String>,
}

impl Report {
    /// The report as a plan carries it, with the state edits it implies.
    #[must_use]
    pub fn into_plan_part(self, observed: Vec<Edit>) -> crate::plan::Refreshed {
        crate::plan::Refreshed {
            checked: self.checked,
            not_checked: self.not_checked,
            drift: self
                .drift
                .iter()
                .map(|d| crate::plan::DriftNote { address: d.address.clone(), found: d.describe() })
                .collect(),
            unmanaged_count: self.unmanaged.len(),
            unmanaged: self.unmanaged,
            notes: self.notes,
            observed,
        }
    }

    /// Whether refresh found anything that changes the state or needs a
    /// person (unmanaged users are counted, but are not drift).
    #[must_use]
    pub fn has_drift(&self) -> bool {
        !self.drift.is_empty()
    }

    /// The drift reasons by address, for the plan.
    #[must_use]
    pub fn reasons(&self) -> HashMap<Address, String> {
        self.drift.iter().map(|d| (d.address.clone(), d.describe())).collect()
    }
}

/// Why refresh refused.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// A provider's listing failed.
    #[error("cannot list provider `{provider}`: {error}")]
    List {
        /// The provider.
        provider: String,
        /// What went wrong.
        error: BatchError,
    },
    /// A listing misses too many recorded users to be believed.
    #[error(
        "the listing of `{provider}` misses {missing} of the {recorded} members the state records there, more than `safety.max_removal_fraction` ({fraction}) allows: refusing to plan them all as re-created"
    )]
    Suspicious {
        /// The provider.
        provider: String,
        /// Recorded members missing from the listing.
        missing: usize,
        /// Members the state records at the provider.
        recorded: usize,
        /// The limit.
        fraction: f64,
    },
}

impl RefreshError {
    /// What to do about it.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            RefreshError::List { error, .. } => error.hint.clone(),
            RefreshError::Suspicious { .. } => Some(
                "check the provider (a wrong tenant or base URL, a paging bug, a mass deletion); if the listing is right, raise the limit for this run with `--max-removal-fraction F` (or `safety.max_removal_fraction` in the config)".to_owned(),
            ),
        }
    }
}

/// Lists every configured provider that can list. Providers that cannot are
/// answered as `None`.
pub async fn list(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Option<Listing>>, RefreshError> {
    let mut listings = BTreeMap::new();
    let mut clients: Vec<(String, Arc<dyn Provider>)> = Vec::new();
    for (name, settings) in &config.providers {
        if !settings.capabilities.list {
            listings.insert(name.clone(), None);
            continue;
        }
        clients.push((name.clone(), client(settings, env)?));
    }
    // Providers are listed one after another: each paginates on its own,
    // and a refresh is dominated by the largest provider anyway.
    for (name, client) in clients {
        let listing = client.list().await.map_err(|error| RefreshError::List { provider: name.clone(), error })?;
        listings.insert(name, Some(listing));
    }
    Ok(listings)
}

/// Lists one provider (which must be able to list).
pub async fn list_one(
    settings: &ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Listing, RefreshError> {
    client(settings, env)?.list().await.map_err(|error| RefreshError::List { provider: settings.name.clone(), error })
}

fn client(
    settings: &ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Provider>, RefreshError> {
    let client = provider::build(settings, env).map_err(|e| RefreshError::List {
        provider: settings.name.clone(),
        error: BatchError { uncertain: false, fatal: true, message: e.to_string(), hint: None },
    })?;
    Ok(Arc::from(client))
}

/// Reconciles `state` with the listings: answers the state as the providers
/// show it, the edits that make it so, and the report.
pub fn reconcile(
    config: &Config,
    state: &State,
    listings: &BTreeMap<String, Option<Listing>>,
    max_removal_fraction: f64,
) -> Result<(State, Vec<Edit>, Report), RefreshError> {
    let mut report = Report::default();
    let mut refreshed = state.clone();
    let mut edits = Vec::new();
    for (provider, listing) in listings {
        let Some(listing) = listing else {
            report.not_checked.push(provider.clone());
            continue;
        };
        report.checked.push(provider.clone());
        report.notes.extend(listing.notes.iter().cloned());
        // A record is found by the user id the provider gave it, else by
        // email: an adopted user's email at the service may differ from the
        // configured one (a `user_name` template, another primary email).
        let listed: HashMap<String, usize> =
            listing.members.iter().enumerate().map(|(i, m)| (normalize_email(&m.attributes.email), i)).collect();
        let by_id: HashMap<&str, usize> = listing
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((m.remote.user_id.as_deref().filter(|id| !id.is_empty())?, i)))
            .collect();
        let find = |record: &Resource| {
            record
                .remote
                .user_id
                .as_deref()
                .filter(|id| !id.is_empty())
                .and_then(|id| by_id.get(id))
                .or_else(|| listed.get(&normalize_email(&record.email)))
                .copied()
        };
        // Each record with the listed member it is, found once.
        let recorded: Vec<(&Resource, Option<usize>)> =
            state.resources.range(Address::provider_range(provider)).map(|(_, r)| (r, find(r))).collect();
        let fields = compared_fields(provider, listing, &recorded, &mut report.notes);
        let confirmed = recorded.iter().filter(|(r, _)| r.status != Status::Uncertain).count();
        let missing = recorded.iter().filter(|(r, found)| r.status != Status::Uncertain && found.is_none()).count();
        if missing >= SUSPICIOUS_MINIMUM && missing as f64 > max_removal_fraction * confirmed as f64 {
            return Err(RefreshError::Suspicious {
                provider: provider.clone(),
                missing,
                recorded: confirmed,
                fraction: max_removal_fraction,
            });
        }
        let mut known = BTreeSet::new();
        for (record, found) in recorded {
            known.extend(found);
            let address = record.address.clone();
            let drift = match (found.map(|i| &listing.members[i]), record.status) {
                (None, Status::Uncertain) => {
                    refreshed.resources.remove(&address);
                    edits.push(Edit::Forget { address: address.clone() });
                    Some(DriftKind::SettledAbsent)
                }
                (None, _) => {
                    refreshed.resources.remove(&address);
                    edits.push(Edit::Forget { address: address.clone() });
                    Some(DriftKind::Deleted)
                }
                (Some(observed), status) => {
                    let attributes = overlay(&record.attributes, &observed.attributes, &fields);
                    let changes = record.attributes.changes_to(&attributes);
                    let settled = status == Status::Uncertain;
                    if settled || !changes.is_empty() {
                        let entry = refreshed.resources.get_mut(&address).expect("recorded above");
                        entry.attributes = attributes.clone();
                        if settled {
                            entry.status = Status::Adopted;
                            entry.remote = observed.remote.clone();
                        }
                        edits.push(Edit::Observed {
                            address: address.clone(),
                            attributes,
                            remote: observed.remote.clone(),
                            settled,
                        });
                    }
                    if settled {
                        Some(DriftKind::SettledPresent)
                    } else if !observed.active && status != Status::Deactivated {
                        Some(DriftKind::Deactivated)
                    } else if changes.is_empty() {
                        None
                    } else {
                        Some(DriftKind::Changed(changes))
                    }
                }
            };
            if let Some(kind) = drift {
                report.drift.push(Drift { address, kind });
            }
        }
        for (index, observed) in listing.members.iter().enumerate() {
            let address = Address::new(provider, &observed.attributes.email);
            if !known.contains(&index) && !config.desired.contains_key(&address) {
                report.unmanaged.push(address);
            }
        }
    }
    report.drift.sort_by(|a, b| a.address.cmp(&b.address));
    report.unmanaged.sort();
    Ok((refreshed, edits, report))
}

/// The fields compared at a provider: those its listing observes, and of
/// those no listed user carries, the ones the service does not simply
/// ignore. Memberctl recorded such an attribute for at least two of the
/// listed users and none carries it: the service drops it (comparing it
/// would plan it back on every run), said in a note. Otherwise it is
/// compared, so a user that lost it at the service is drift.
fn compared_fields(
    provider: &str,
    listing: &Listing,
    recorded: &[(&Resource, Option<usize>)],
    notes: &mut Vec<String>,
) -> Vec<&'static str> {
    const IGNORED_FROM: usize = 2;
    let mut fields = listing.fields.clone();
    for uncarried in &listing.uncarried {
        let holders = recorded
            .iter()
            .filter(|(r, found)| found.is_some() && uncarried.fields.iter().any(|f| carries(&r.attributes, f)))
            .count();
        if holders >= IGNORED_FROM {
            notes.push(format!(
                "`{provider}`: no listed user carries `{}`, though memberctl recorded it for {holders} of them: the service ignores it, so it is not compared",
                uncarried.attribute
            ));
        } else {
            fields.extend(uncarried.fields.iter().copied());
        }
    }
    fields
}

/// Whether `attributes` holds a value for `field`.
fn carries(attributes: &Attributes, field: &str) -> bool {
    match field {
        "name" => attributes.name.is_some(),
        "first_name" => attributes.first_name.is_some(),
        "last_name" => attributes.last_name.is_some(),
        "phone" => attributes.phone.is_some(),
        "roles" => !attributes.roles.is_empty(),
        "plans" => !attributes.plans.is_empty(),
        "groups" => !attributes.groups.is_empty(),
        "primary_group" => attributes.primary_group.is_some(),
        "positions" => !attributes.positions.is_empty(),
        "manager_id" => attributes.manager_id.is_some(),
        _ => false,
    }
}

/// The recorded attributes with the observed fields taken from the listing;
/// fields a listing does not observe (the invitation note, the method) stay
/// as recorded.
fn overlay(recorded: &Attributes, observed: &Attributes, fields: &[&str]) -> Attributes {
    let mut out = recorded.clone();
    for field in fields {
        match *field {
            "name" => out.name.clone_from(&observed.name),
            "first_name" => out.first_name.clone_from(&observed.first_name),
            "last_name" => out.last_name.clone_from(&observed.last_name),
            "phone" => out.phone.clone_from(&observed.phone),
            "roles" => out.roles.clone_from(&observed.roles),
            "plans" => out.plans.clone_from(&observed.plans),
            "groups" => out.groups.clone_from(&observed.groups),
            "primary_group" => out.primary_group.clone_from(&observed.primary_group),
            "positions" => out.positions.clone_from(&observed.positions),
            "manager_id" => out.manager_id.clone_from(&observed.manager_id),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{reconcile, DriftKind, RefreshError};
    use crate::address::Address;
    use crate::attributes::Attributes;
    use crate::config::Config;
    use crate::provider::{Listing, Observed, RemoteIds};
    use crate::state::{Resource, State, Status};

    fn config() -> Config {
        Config {
            files: Vec::new(),
            digest: String::new(),
            providers: BTreeMap::new(),
            desired: crate::config::Desired::new(),
            member_count: 0,
            max_changes: 100,
            max_removal_fraction: 0.25,
            resend_after: None,
            moved: Vec::new(),
            names: BTreeMap::new(),
            state: crate::config::StateSettings::File { path: None },
        }
    }

    fn attrs(email: &str, roles: &[&str]) -> Attributes {
        Attributes {
            email: email.to_owned(),
            roles: roles.iter().map(|r| (*r).into()).collect(),
            note: Some("welcome".to_owned()),
            ..Attributes::default()
        }
    }

    fn state(emails: &[(&str, Status)]) -> State {
        let mut state = State::new();
        for (email, status) in emails {
            let address = Address::new("sbx", email);
            state.resources.insert(
                address.clone(),
                Resource {
                    address,
                    provider: "sbx".to_owned(),
                    email: (*email).to_owned(),
                    status: *status,
                    attributes: attrs(email, &["member"]),
                    remote: RemoteIds::default(),
                    created_at: String::new(),
                    updated_at: String::new(),
                    invited_at: None,
                    resends: 0,
                    message: None,
                },
            );
        }
        state
    }

    fn listing(members: &[(&str, &[&str])]) -> BTreeMap<String, Option<Listing>> {
        let members = members
            .iter()
            .map(|(email, roles)| Observed {
                attributes: Attributes { note: None, ..attrs(email, roles) },
                remote: RemoteIds { user_id: Some(format!("id-{email}")), ..RemoteIds::default() },
                active: true,
            })
            .collect();
        BTreeMap::from([("sbx".to_owned(), Some(Listing { members, fields: vec!["roles"], ..Listing::default() }))])
    }

    #[test]
    fn deleted_changed_settled_and_unmanaged_are_told_apart() {
        let state = state(&[
            ("gone@x.io", Status::Invited),
            ("changed@x.io", Status::Added),
            ("same@x.io", Status::Added),
            ("maybe@x.io", Status::Uncertain),
            ("never@x.io", Status::Uncertain),
        ]);
        let listings = listing(&[
            ("changed@x.io", &["admin"]),
            ("same@x.io", &["member"]),
            ("maybe@x.io", &["member"]),
            ("stranger@x.io", &[]),
        ]);
        let (refreshed, edits, report) = reconcile(&config(), &state, &listings, 0.25).unwrap();
        let kinds: Vec<_> = report.drift.iter().map(|d| (d.address.as_str().to_owned(), d.kind.clone())).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert_eq!(kinds[0].0, "sbx/changed@x.io");
        assert!(matches!(&kinds[0].1, DriftKind::Changed(c) if c[0].field == "roles"));
        assert_eq!(kinds[1], ("sbx/gone@x.io".to_owned(), DriftKind::Deleted));
        assert_eq!(kinds[2], ("sbx/maybe@x.io".to_owned(), DriftKind::SettledPresent));
        assert_eq!(kinds[3], ("sbx/never@x.io".to_owned(), DriftKind::SettledAbsent));
        assert_eq!(report.unmanaged, vec![Address::new("sbx", "stranger@x.io")]);
        assert_eq!(edits.len(), 4);
        let changed = &refreshed.resources[&Address::new("sbx", "changed@x.io")];
        assert_eq!(changed.attributes.roles, ["admin".into()]);
        assert_eq!(changed.attributes.note.as_deref(), Some("welcome"), "unobserved fields stay as recorded");
        assert_eq!(refreshed.resources[&Address::new("sbx", "maybe@x.io")].status, Status::Adopted);
        assert!(!refreshed.resources.contains_key(&Address::new("sbx", "gone@x.io")));
    }

    #[test]
    fn a_listing_missing_too_many_is_refused_but_a_small_team_may_lose_one() {
        let emails: Vec<String> = (0..40).map(|i| format!("p{i}@x.io")).collect();
        let recorded: Vec<(&str, Status)> = emails.iter().map(|e| (e.as_str(), Status::Added)).collect();
        let empty = listing(&[]);
        let err = reconcile(&config(), &state(&recorded), &empty, 0.25).unwrap_err();
        assert!(matches!(err, RefreshError::Suspicious { missing: 40, recorded: 40, .. }), "{err}");
        let small = state(&[("a@x.io", Status::Added), ("b@x.io", Status::Added), ("c@x.io", Status::Added)]);
        let (_, _, report) = reconcile(&config(), &small, &listing(&[("a@x.io", &["member"])]), 0.25).unwrap();
        assert_eq!(report.drift.len(), 2);
    }

    // Found by a review: an adopted user whose email at the service is not
    // the configured one was planned as deleted (and listed as unmanaged)
    // on every refresh, and adopted again by every apply.
    #[test]
    fn a_record_is_found_by_its_user_id_before_its_email() {
        let mut recorded = state(&[("nora@x.io", Status::Adopted)]);
        let address = Address::new("sbx", "nora@x.io");
        recorded.resources.get_mut(&address).expect("recorded").remote.user_id = Some("id-nora@other.org".to_owned());
        let listings = listing(&[("nora@other.org", &["member"])]);
        let (_, edits, report) = reconcile(&config(), &recorded, &listings, 0.25).unwrap();
        assert!(report.drift.is_empty(), "{:?}", report.drift);
        assert!(report.unmanaged.is_empty(), "{:?}", report.unmanaged);
        assert!(edits.is_empty());
    }

    #[test]
    fn a_provider_that_cannot_list_is_not_checked() {
        let listings = BTreeMap::from([("sbx".to_owned(), None)]);
        let (_, edits, report) = reconcile(&config(), &state(&[("a@x.io", Status::Added)]), &listings, 0.25).unwrap();
        assert_eq!(report.not_checked, vec!["sbx".to_owned()]);
        assert!(edits.is_empty() && report.drift.is_empty());
    }
}
