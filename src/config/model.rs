//! The configuration file format: the serde types the loader reads and the
//! JSON Schema (`memberctl schema`) is generated from.
//!
//! Every struct captures keys it does not know in an `unknown` map instead of
//! failing on the first one, so that validation can report all of them, each
//! with its location and a "did you mean".
//!
//! [`ConfigFile`] and [`MemberConfig`] deserialize by hand: `#[serde(flatten)]`
//! would buffer every value of the file (all members) in serde's generic
//! `Content` first and then deserialize it a second time, which dominated the
//! load time of large files. The hand-written visitors read each known key
//! straight into its field and only unknown keys into `unknown`; they behave
//! as the derive did (defaults for missing keys, an error for a key given
//! twice).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use serde::Deserialize;

use crate::attributes::Method;
use crate::provider::scim::mapping::{Manage, MatchOn, OnRemove, UserNameTemplate};
use crate::provider::{InviteEndpoint, ProviderKind, UncertainPolicy};

/// Keys a struct did not recognise, with their values.
pub type UnknownKeys = BTreeMap<String, serde_yaml::Value>;

/// A catalog: logical name → (provider name → remote id).
pub type Catalog = BTreeMap<String, BTreeMap<String, crate::attributes::Id>>;

/// One configuration file.
#[derive(Debug, Default, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields, title = "memberctl configuration")]
pub struct ConfigFile {
    /// Format version; must be `1`.
    pub version: Option<u32>,
    /// Targets, by a name you choose (used in addresses: `NAME/EMAIL`).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Role names → remote id at each provider.
    pub roles: Catalog,
    /// Paid plan names → remote id at each provider (Networked monetization plans).
    pub plans: Catalog,
    /// Group names → remote id at each provider (Aptly groups).
    pub groups: Catalog,
    /// Position names → remote id at each provider (Aptly positions).
    pub positions: Catalog,
    /// Values a member gets when it does not set them.
    pub defaults: Option<Defaults>,
    /// Limits that stop an apply before it sends anything.
    pub safety: Option<Safety>,
    /// Invitation lifecycle settings.
    pub invites: Option<Invites>,
    /// Where the state lives (default: the file `memberctl.state.json`).
    pub state: Option<StateConfig>,
    /// The people, keyed by email.
    pub members: Vec<MemberConfig>,
    /// Renamed members: each `from` address became `to` at the providers
    /// that can rename, so the user is renamed rather than removed and
    /// invited anew.
    pub moved: Vec<Moved>,
    /// What the members of matching files may grant (team folders). A
    /// file matched by any rule may declare only `version` and `members`.
    pub owners: Vec<OwnerRule>,
    /// Rules on the desired state as a whole.
    pub policy: Option<Policy>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`ConfigFile`] knows, for "did you mean".
pub const CONFIG_KEYS: &[&str] = &[
    "version",
    "providers",
    "roles",
    "plans",
    "groups",
    "positions",
    "defaults",
    "safety",
    "invites",
    "members",
    "moved",
    "owners",
    "policy",
    "state",
];

/// One provider (a community, a tenant, or the sandbox).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider type.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// API base URL (defaults: networked `https://backend.networked.co`, aptly
    /// `https://api.us.aptlydone.com`). `http://` is refused unless the host is loopback.
    #[serde(default)]
    pub base_url: Option<String>,
    /// networked: the env var that holds the `x-api-key` (default `NETWORKED_API_KEY`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// aptly, scim: the env var that holds the bearer token (default
    /// `APTLY_TOKEN`, `SCIM_TOKEN`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// aptly: the tenant id (a UUID).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// networked: `bulk` (invites/emails, the default) or `single` (addExternalUsers).
    #[serde(default)]
    pub invite_endpoint: Option<InviteEndpoint>,
    /// Most members per request (default 100; 1 for networked `single`).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Most requests in flight at once (default 4).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Most requests started per second (default 10; 0 = unlimited).
    #[serde(default)]
    pub rate_limit: Option<f64>,
    /// Per-request timeout, e.g. `30s`, `2m` (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Most attempts per request, the first included (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// How long HTTP 429 answers may pause this provider in one run, e.g.
    /// `10m` (the default) or `0s`; 429s do not count against `max_attempts`.
    #[serde(default)]
    pub retry_budget: Option<String>,
    /// What to do with members whose last send had no known outcome:
    /// `send_again` (default; a duplicate answer adopts them) or `hold`.
    #[serde(default)]
    pub uncertain: Option<UncertainPolicy>,
    /// sandbox: the outbox file (JSON lines), relative to this config file
    /// (default `memberctl.outbox.jsonl`).
    #[serde(default)]
    pub outbox: Option<String>,
    /// scim: how `userName` is made from the email: `email` (the default) or
    /// a template using `{local}`, `{domain}`, `{email}`.
    #[serde(default)]
    pub user_name: Option<UserNameTemplate>,
    /// scim: how an existing user is found: `userName` (default), `emails`
    /// or `externalId`.
    #[serde(default)]
    pub match_on: Option<MatchOn>,
    /// scim: the attributes memberctl owns (default: `name`, `phone`,
    /// `roles`, `entitlements`, `groups`, `manager`).
    #[serde(default)]
    pub manage: Option<Manage>,
    /// scim: what removing a member does: `deactivate` (default) or `delete`
    /// (which apply only does with `--allow-delete`).
    #[serde(default)]
    pub on_remove: Option<OnRemove>,
    /// What the provider may do: any of `invite`, `update`, `remove`
    /// (sandbox default: all three; networked and aptly can only invite).
    #[serde(default)]
    pub capabilities: Option<Vec<CapabilityName>>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`ProviderConfig`] knows.
pub const PROVIDER_KEYS: &[&str] = &[
    "type",
    "base_url",
    "api_key_env",
    "token_env",
    "tenant_id",
    "invite_endpoint",
    "batch_size",
    "concurrency",
    "rate_limit",
    "timeout",
    "max_attempts",
    "retry_budget",
    "uncertain",
    "outbox",
    "user_name",
    "match_on",
    "manage",
    "on_remove",
    "capabilities",
];

/// One capability a provider can be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityName {
    /// Invite members.
    Invite,
    /// Update members' attributes.
    Update,
    /// Remove members.
    Remove,
    /// List members (for `--refresh` and drift checks).
    List,
}

/// Defaults applied to every member that does not set the field.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Defaults {
    /// Providers a member joins when it names none.
    pub providers: Option<Vec<String>>,
    /// Roles a member gets when it names none.
    pub roles: Option<Vec<String>>,
    /// Plans a member gets when it names none.
    pub plans: Option<Vec<String>>,
    /// Groups a member gets when it names none.
    pub groups: Option<Vec<String>>,
    /// Invitation note when the member has none.
    pub note: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`Defaults`] knows.
pub const DEFAULTS_KEYS: &[&str] = &["providers", "roles", "plans", "groups", "note"];

/// Safety limits.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Safety {
    /// Apply refuses a plan that invites or removes more members than this
    /// (default 100); `--max-changes N` overrides it for one run.
    pub max_changes: Option<usize>,
    /// Of the members the state records at a provider, the largest fraction
    /// that a refresh may find missing, or a plan may remove, before it is
    /// refused as suspicious (default 0.25; only when at least 10 are
    /// involved).
    pub max_removal_fraction: Option<f64>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`Safety`] knows.
pub const SAFETY_KEYS: &[&str] = &["max_changes", "max_removal_fraction"];

/// One ownership rule: what members declared in the matching files may do.
/// A key left out does not restrict; an empty list allows none.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct OwnerRule {
    /// Glob of the files the rule covers, relative to the file declaring the
    /// rule (`teams/design/**`; `*` stays within one folder, `**` crosses them).
    pub files: String,
    /// Providers the members may join.
    pub providers: Option<Vec<String>>,
    /// Roles the members may be given.
    pub roles: Option<Vec<String>>,
    /// Groups the members may be put in.
    pub groups: Option<Vec<String>>,
    /// Plans the members may be given.
    pub plans: Option<Vec<String>>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// Where the state lives.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct StateConfig {
    /// `file` (the default) or `postgres`.
    pub backend: Option<StateBackendKind>,
    /// postgres: the environment variable holding the `postgres://` URL
    /// (default `MEMBERCTL_DATABASE_URL`). The URL is never printed.
    pub url_env: Option<String>,
    /// postgres: the state's name; one name is one complete configuration.
    pub name: Option<String>,
    /// file: the state file (default `memberctl.state.json`); `--state` overrides it.
    pub path: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`OwnerRule`] knows.
pub const OWNER_RULE_KEYS: &[&str] = &["files", "providers", "roles", "groups", "plans"];

/// Rules on the desired state, checked by `validate`, `plan` and `apply`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Policy {
    /// Role name → the fewest members that must hold it, at every provider
    /// the role has an id for (e.g. `{ admin: 2 }`).
    #[serde(deserialize_with = "unique_counts")]
    pub min_members: BTreeMap<String, usize>,
    /// Addresses (`PROVIDER/EMAIL`) that must stay configured.
    pub required: Vec<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`Policy`] knows.
pub const POLICY_KEYS: &[&str] = &["min_members", "required"];

/// The state backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateBackendKind {
    /// A JSON file.
    File,
    /// A `PostgreSQL` database.
    Postgres,
}

/// The keys [`StateConfig`] knows.
pub const STATE_KEYS: &[&str] = &["backend", "url_env", "name", "path"];

/// Invitation lifecycle.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Invites {
    /// Propose re-sending invitations unconfirmed for this long, e.g. `14d`
    /// (default: never).
    pub resend_after: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`Invites`] knows.
pub const INVITES_KEYS: &[&str] = &["resend_after"];

/// One rename: `{from: old@example.com, to: new@example.com}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Moved {
    /// The email the member had (no longer configured).
    pub from: String,
    /// The email the member has now (configured).
    pub to: String,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`Moved`] knows.
pub const MOVED_KEYS: &[&str] = &["from", "to"];

/// One person.
#[derive(Debug, Default, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct MemberConfig {
    /// Email address: the member's key (trimmed, compared case-insensitively, sent as written).
    pub email: String,
    /// Display name (networked requires a name; aptly derives first and last
    /// name from it when they are not given: the last word is the last name).
    pub name: Option<String>,
    /// Given name (aptly `firstName`).
    pub first_name: Option<String>,
    /// Family name (aptly `lastName`).
    pub last_name: Option<String>,
    /// Phone number, sent as written (aptly `mobilePhone`).
    pub phone: Option<String>,
    /// Role names (networked takes exactly one). Default: `defaults.roles`.
    pub roles: Option<Vec<String>>,
    /// Plan names (networked only). Default: `defaults.plans`.
    pub plans: Option<Vec<String>>,
    /// Group names (aptly only). Default: `defaults.groups`.
    pub groups: Option<Vec<String>>,
    /// The primary group's name (one of `groups`; aptly `isPrimaryOrg`).
    pub primary_group: Option<String>,
    /// Position names (aptly only).
    pub positions: Option<Vec<String>>,
    /// The manager's remote user id (aptly `managerId`).
    pub manager_id: Option<String>,
    /// Message included with the invitation. Default: `defaults.note`.
    pub note: Option<String>,
    /// Provider names this member joins. Default: `defaults.providers`.
    pub providers: Option<Vec<String>>,
    /// `invite` (default) or `direct` (networked direct add, `method=2`).
    pub method: Option<Method>,
    /// direct: the env var holding the initial password (never put it in YAML).
    pub password_env: Option<String>,
    /// direct: a file holding the initial password, relative to this config file.
    pub password_file: Option<String>,
    /// aptly `existingUser` object, passed through as written (default `{}`).
    pub existing_user: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(flatten)]
    #[schemars(skip)]
    #[doc(hidden)]
    pub unknown: UnknownKeys,
}

/// The keys [`MemberConfig`] knows.
pub const MEMBER_KEYS: &[&str] = &[
    "email",
    "name",
    "first_name",
    "last_name",
    "phone",
    "roles",
    "plans",
    "groups",
    "primary_group",
    "positions",
    "manager_id",
    "note",
    "providers",
    "method",
    "password_env",
    "password_file",
    "existing_user",
];

/// A map key: the index of a known key, or an unknown key as written.
enum Key {
    Known(usize),
    Unknown(String),
}

/// Reads a key, matching it against `known` without allocating for it.
struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(self.0.iter().position(|k| *k == key).map_or_else(|| Key::Unknown(key.to_owned()), Key::Known))
    }
}

/// A mapping read with each key once: YAML keeps the last of two equal
/// keys, which would drop a provider or a catalog entry without a word.
struct UniqueKeys<V>(BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueKeys<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Unique<V>(std::marker::PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for Unique<V> {
            type Value = UniqueKeys<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "`{key}` is defined twice in this mapping (YAML would keep only the last)"
                        )));
                    }
                    let value = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(UniqueKeys(out))
            }
        }

        deserializer.deserialize_map(Unique(std::marker::PhantomData))
    }
}

/// `min_members` with each role given once.
fn unique_counts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, usize>, D::Error> {
    Ok(UniqueKeys::deserialize(deserializer)?.0)
}

/// A catalog with each name, and each provider of a name, given once.
fn unique_catalog<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Catalog, A::Error> {
    let names: UniqueKeys<UniqueKeys<crate::attributes::Id>> = map.next_value()?;
    Ok(names.0.into_iter().map(|(name, ids)| (name, ids.0)).collect())
}

/// The known keys already read, to refuse one given twice.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn first<E: serde::de::Error>(&mut self, index: usize, keys: &[&'static str]) -> Result<(), E> {
        let bit = 1u32 << index;
        if self.0 & bit != 0 {
            return Err(E::duplicate_field(keys[index]));
        }
        self.0 |= bit;
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ConfigFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FileVisitor;

        impl<'de> Visitor<'de> for FileVisitor {
            type Value = ConfigFile;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct ConfigFile")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigFile, A::Error> {
                let mut file = ConfigFile::default();
                let mut seen = Seen::default();
                while let Some(key) = map.next_key_seed(KeySeed(CONFIG_KEYS))? {
                    let index = match key {
                        Key::Known(index) => index,
                        Key::Unknown(key) => {
                            let value = map.next_value()?;
                            file.unknown.insert(key, value);
                            continue;
                        }
                    };
                    seen.first::<A::Error>(index, CONFIG_KEYS)?;
                    match CONFIG_KEYS[index] {
                        "version" => file.version = map.next_value()?,
                        "providers" => file.providers = map.next_value::<UniqueKeys<_>>()?.0,
                        "roles" => file.roles = unique_catalog(&mut map)?,
                        "plans" => file.plans = unique_catalog(&mut map)?,
                        "groups" => file.groups = unique_catalog(&mut map)?,
                        "positions" => file.positions = unique_catalog(&mut map)?,
                        "defaults" => file.defaults = map.next_value()?,
                        "safety" => file.safety = map.next_value()?,
                        "invites" => file.invites = map.next_value()?,
                        "state" => file.state = map.next_value()?,
                        "members" => file.members = map.next_value()?,
                        "moved" => file.moved = map.next_value()?,
                        "owners" => file.owners = map.next_value()?,
                        "policy" => file.policy = map.next_value()?,
                        other => return Err(A::Error::unknown_field(other, CONFIG_KEYS)),
                    }
                }
                Ok(file)
            }
        }

        deserializer.deserialize_map(FileVisitor)
    }
}

impl<'de> Deserialize<'de> for MemberConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor;

        impl<'de> Visitor<'de> for MemberVisitor {
            type Value = MemberConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct MemberConfig")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MemberConfig, A::Error> {
                let mut member = MemberConfig::default();
                let mut seen = Seen::default();
                while let Some(key) = map.next_key_seed(KeySeed(MEMBER_KEYS))? {
                    let index = match key {
                        Key::Known(index) => index,
                        Key::Unknown(key) => {
                            let value = map.next_value()?;
                            member.unknown.insert(key, value);
                            continue;
                        }
                    };
                    seen.first::<A::Error>(index, MEMBER_KEYS)?;
                    match MEMBER_KEYS[index] {
                        "email" => member.email = map.next_value()?,
                        "name" => member.name = map.next_value()?,
                        "first_name" => member.first_name = map.next_value()?,
                        "last_name" => member.last_name = map.next_value()?,
                        "phone" => member.phone = map.next_value()?,
                        "roles" => member.roles = map.next_value()?,
                        "plans" => member.plans = map.next_value()?,
                        "groups" => member.groups = map.next_value()?,
                        "primary_group" => member.primary_group = map.next_value()?,
                        "positions" => member.positions = map.next_value()?,
                        "manager_id" => member.manager_id = map.next_value()?,
                        "note" => member.note = map.next_value()?,
                        "providers" => member.providers = map.next_value()?,
                        "method" => member.method = map.next_value()?,
                        "password_env" => member.password_env = map.next_value()?,
                        "password_file" => member.password_file = map.next_value()?,
                        "existing_user" => member.existing_user = map.next_value()?,
                        other => return Err(A::Error::unknown_field(other, MEMBER_KEYS)),
                    }
                }
                Ok(member)
            }
        }

        deserializer.deserialize_map(MemberVisitor)
    }
}
