//! Checks of the parts of a config file that are not members: unknown keys,
//! providers, and catalogs.

use std::collections::BTreeMap;
use std::path::Path;

use super::model::{
    CapabilityName, Catalog, ConfigFile, MemberConfig, ProviderConfig, UnknownKeys, CONFIG_KEYS, DEFAULTS_KEYS,
    INVITES_KEYS, MEMBER_KEYS, PROVIDER_KEYS, SAFETY_KEYS, STATE_KEYS,
};
use super::problem::{did_you_mean, suggestion, Pending};
use crate::provider::{defaults, Capabilities, CatalogKind, ProviderSettings};

/// Collects problems for one file at a time.
pub(crate) struct Report<'a> {
    pub file: usize,
    pub pending: &'a mut Vec<Pending>,
}

impl Report<'_> {
    /// A problem at the value at `path`.
    pub fn at(&mut self, path: impl Into<String>, message: impl Into<String>, hint: impl Into<Option<String>>) {
        self.push(path.into(), false, message.into(), hint.into());
    }

    /// A problem at the key that ends `path`.
    pub fn at_key(&mut self, path: impl Into<String>, message: impl Into<String>, hint: impl Into<Option<String>>) {
        self.push(path.into(), true, message.into(), hint.into());
    }

    fn push(&mut self, path: String, at_key: bool, message: String, hint: Option<String>) {
        self.pending.push(Pending { file: self.file, path, at_key, message, hint, known: None, also: None });
    }
}

fn unknown_keys(report: &mut Report<'_>, prefix: &str, unknown: &UnknownKeys, known: &[&str]) {
    for key in unknown.keys() {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let hint = if key == "password" {
            "passwords never go in YAML: use `password_env` or `password_file`".to_owned()
        } else {
            did_you_mean(key, known.iter().copied()).map_or_else(
                || {
                    format!(
                        "known keys here: {}",
                        known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    )
                },
                |best| format!("did you mean `{best}`?"),
            )
        };
        report.at_key(path, format!("unknown key `{key}`"), hint);
    }
}

/// Reports every unknown key in a file (whose members are given apart).
pub(crate) fn check_unknown_keys(report: &mut Report<'_>, file: &ConfigFile, members: &[MemberConfig]) {
    unknown_keys(report, "", &file.unknown, CONFIG_KEYS);
    for (name, provider) in &file.providers {
        unknown_keys(report, &format!("providers.{name}"), &provider.unknown, PROVIDER_KEYS);
    }
    if let Some(d) = &file.defaults {
        unknown_keys(report, "defaults", &d.unknown, DEFAULTS_KEYS);
    }
    if let Some(s) = &file.safety {
        unknown_keys(report, "safety", &s.unknown, SAFETY_KEYS);
    }
    if let Some(i) = &file.invites {
        unknown_keys(report, "invites", &i.unknown, INVITES_KEYS);
    }
    if let Some(s) = &file.state {
        unknown_keys(report, "state", &s.unknown, STATE_KEYS);
    }
    for (index, member) in members.iter().enumerate() {
        if !member.unknown.is_empty() {
            unknown_keys(report, &format!("members[{index}]"), &member.unknown, MEMBER_KEYS);
        }
    }
}

/// Whether `name` can be an environment variable name.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a base URL; answers why it is refused. Loopback is decided by the
/// same function the HTTP client uses, so validation and apply agree.
fn check_base_url(url: &str) -> Option<String> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Some(format!("`{url}` is not a URL"));
    };
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Some(format!("`{url}` has no host"));
    };
    match parsed.scheme() {
        "https" => None,
        "http" if crate::provider::http::is_loopback(&parsed) => None,
        "http" => Some(format!("plain `http://` is refused for `{host}`, which is not loopback")),
        other => Some(format!("unsupported scheme `{other}`")),
    }
}

/// Validates one provider and builds its settings.
pub(crate) fn provider_settings(
    report: &mut Report<'_>,
    name: &str,
    config: &ProviderConfig,
    config_dir: &Path,
) -> ProviderSettings {
    let path = format!("providers.{name}");
    let kind = config.kind;
    // Settings of one type given to another are mistakes, not ignored.
    let type_specific = [
        ("api_key_env", config.api_key_env.is_some()),
        ("token_env", config.token_env.is_some()),
        ("tenant_id", config.tenant_id.is_some()),
        ("invite_endpoint", config.invite_endpoint.is_some()),
        ("outbox", config.outbox.is_some()),
        ("base_url", config.base_url.is_some() && !kind.uses_network()),
    ];
    for (key, set) in type_specific {
        if set && (key == "base_url" || !kind.own_settings().contains(&key)) {
            report.at_key(
                format!("{path}.{key}"),
                format!("`{key}` is not a setting of `{kind}` providers, like `{name}`"),
                "remove it, or change the provider's `type`".to_owned(),
            );
        }
    }

    let base_url = config.base_url.clone().or_else(|| kind.default_base_url().map(str::to_owned));
    if let (Some(url), Some(_)) = (&base_url, &config.base_url) {
        if let Some(why) = check_base_url(url) {
            report.at(
                format!("{path}.base_url"),
                why,
                "use `https://`; plain `http://` is for loopback test servers".to_owned(),
            );
        }
    }
    let credential = kind.credential();
    let credential_key = credential.map_or("", |c| c.key);
    let credential_env = credential.and_then(|spec| {
        config.api_key_env.clone().or_else(|| config.token_env.clone()).or_else(|| Some(spec.default_env.to_owned()))
    });
    if let Some(var) = &credential_env {
        if !is_env_name(var) {
            report.at(
                format!("{path}.{credential_key}"),
                format!("`{var}` is not an environment variable name"),
                "name the env var that holds the credential, e.g. `NETWORKED_API_KEY`; never the credential itself"
                    .to_owned(),
            );
        }
    }
    let invite_endpoint = config.invite_endpoint.unwrap_or_default();
    let mut positive = |key: &str, value: Option<usize>| {
        if value == Some(0) {
            report.at(format!("{path}.{key}"), format!("`{key}` must be at least 1"), None);
        }
    };
    positive("batch_size", config.batch_size);
    positive("concurrency", config.concurrency);
    positive("max_attempts", config.max_attempts.map(|n| n as usize));
    let rate_limit = config.rate_limit.unwrap_or(defaults::RATE_LIMIT);
    if !rate_limit.is_finite() || rate_limit < 0.0 {
        report.at(
            format!("{path}.rate_limit"),
            "`rate_limit` must be a number of requests per second, 0 or more",
            "0 means unlimited".to_owned(),
        );
    }
    let timeout_ms = match &config.timeout {
        None => defaults::TIMEOUT_MS,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            _ => {
                report.at(
                    format!("{path}.timeout"),
                    format!("`{text}` is not a duration"),
                    "write e.g. `30s` or `2m`".to_owned(),
                );
                defaults::TIMEOUT_MS
            }
        },
    };
    let retry_budget_ms = match &config.retry_budget {
        None => defaults::RETRY_BUDGET_MS,
        Some(text) => humantime::parse_duration(text).map_or_else(
            |_| {
                let hint = "write e.g. `10m` or `90s`".to_owned();
                report.at(format!("{path}.retry_budget"), format!("`{text}` is not a duration"), hint);
                defaults::RETRY_BUDGET_MS
            },
            |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        ),
    };
    let most = kind.capabilities();
    let capabilities = match &config.capabilities {
        None => most,
        Some(names) => {
            let mut caps = Capabilities::NONE;
            for (i, cap) in names.iter().enumerate() {
                let (slot, allowed, word) = match cap {
                    CapabilityName::Invite => (&mut caps.invite, most.invite, "invite"),
                    CapabilityName::Update => (&mut caps.update, most.update, "update"),
                    CapabilityName::Remove => (&mut caps.remove, most.remove, "remove"),
                    CapabilityName::List => (&mut caps.list, most.list, "list"),
                };
                if allowed {
                    *slot = true;
                } else {
                    report.at(
                        format!("{path}.capabilities[{i}]"),
                        format!("`{kind}` providers cannot {word} members: the API has no endpoint for it"),
                        "remove it; such changes are planned as `manual`".to_owned(),
                    );
                }
            }
            caps
        }
    };
    let outbox = kind
        .own_settings()
        .contains(&"outbox")
        .then(|| config_dir.join(config.outbox.as_deref().unwrap_or("memberctl.outbox.jsonl")));
    let mut settings = ProviderSettings {
        name: name.to_owned(),
        kind,
        base_url: base_url.map(|u| u.trim_end_matches('/').to_owned()),
        credential_env,
        tenant_id: config.tenant_id.clone(),
        invite_endpoint,
        batch_size: config.batch_size.unwrap_or(0),
        concurrency: config.concurrency.unwrap_or(defaults::CONCURRENCY).max(1),
        rate_limit,
        timeout_ms,
        max_attempts: config.max_attempts.unwrap_or(defaults::MAX_ATTEMPTS).max(1),
        retry_budget_ms,
        outbox,
        capabilities,
        uncertain: config.uncertain.unwrap_or_default(),
    };
    if config.batch_size.is_none() {
        settings.batch_size = kind.default_batch_size(&settings);
    }
    settings.batch_size = settings.batch_size.max(1);
    for (key, message, hint) in kind.check_settings(&settings) {
        if key.is_empty() {
            report.at_key(path.clone(), message, hint);
        } else {
            report.at(format!("{path}.{key}"), message, hint);
        }
    }
    settings
}

/// Checks one catalog's entries against the providers.
pub(crate) fn check_catalog(
    report: &mut Report<'_>,
    kind: CatalogKind,
    catalog: &Catalog,
    providers: &BTreeMap<String, ProviderSettings>,
) {
    for (name, ids) in catalog {
        for (provider, id) in ids {
            let path = format!("{}.{name}.{provider}", kind.key());
            let Some(settings) = providers.get(provider) else {
                report.at_key(
                    path,
                    format!("{} `{name}` names unknown provider `{provider}`", singular(kind)),
                    suggestion(provider, "providers", providers.keys().map(String::as_str)),
                );
                continue;
            };
            if !settings.kind.uses(kind) {
                report.at_key(
                    path,
                    format!(
                        "`{}` providers have no {}, but {} `{name}` gives an id for `{provider}`",
                        settings.kind,
                        kind.key(),
                        singular(kind)
                    ),
                    format!("remove the `{provider}` entry"),
                );
            } else if let Some(expected) = settings.kind.check_id(id) {
                report.at(
                    path,
                    format!("`{id}` is not a valid {} id: expected {expected}", settings.kind),
                    "copy the id from the provider's admin pages".to_owned(),
                );
            }
        }
    }
}

/// `role`, `plan`, `group`, `position`.
#[must_use]
pub fn singular(kind: CatalogKind) -> &'static str {
    match kind {
        CatalogKind::Roles => "role",
        CatalogKind::Plans => "plan",
        CatalogKind::Groups => "group",
        CatalogKind::Positions => "position",
    }
}

/// A rough email check: one `@`, a local part, a dotted domain, no spaces.
#[must_use]
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
}
