//! Checks of the parts of a config file that are not members: unknown keys,
//! providers, and catalogs.

use std::collections::BTreeMap;
use std::path::Path;

use super::model::{
    CapabilityName, Catalog, ConfigFile, MemberConfig, ProviderConfig, UnknownKeys, CONFIG_KEYS, DEFAULTS_KEYS,
    INVITES_KEYS, MEMBER_KEYS, MOVED_KEYS, OWNER_RULE_KEYS, POLICY_KEYS, PROVIDER_KEYS, SAFETY_KEYS, STATE_KEYS,
};
use super::problem::{did_you_mean, rules, suggestion, Pending, Rule};
use crate::provider::scim::mapping::ScimSettings;
use crate::provider::{defaults, Capabilities, CatalogKind, ProviderSettings};

/// Collects problems for one file at a time.
pub(crate) struct Report<'a> {
    pub file: usize,
    pub pending: &'a mut Vec<Pending>,
}

impl Report<'_> {
    /// A problem at the value at `path`.
    pub fn at(
        &mut self,
        rule: Rule,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        self.push(rule, path.into(), false, message.into(), hint.into());
    }

    /// A problem at the key that ends `path`.
    pub fn at_key(
        &mut self,
        rule: Rule,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        self.push(rule, path.into(), true, message.into(), hint.into());
    }

    fn push(&mut self, rule: Rule, path: String, at_key: bool, message: String, hint: Option<String>) {
        self.pending.push(Pending { rule, file: self.file, path, at_key, message, hint, known: None, also: None });
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
        report.at_key(rules::UNKNOWN_KEY, path, format!("unknown key `{key}`"), hint);
    }
}

/// Keys a file uses that memberctl does not know, outside its members (see
/// [`check_member_keys`]).
pub(crate) fn check_unknown_keys(report: &mut Report<'_>, file: &ConfigFile) {
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
    for (index, moved) in file.moved.iter().enumerate() {
        unknown_keys(report, &format!("moved[{index}]"), &moved.unknown, MOVED_KEYS);
    }
    for (index, rule) in file.owners.iter().enumerate() {
        unknown_keys(report, &format!("owners[{index}]"), &rule.unknown, OWNER_RULE_KEYS);
    }
    if let Some(p) = &file.policy {
        unknown_keys(report, "policy", &p.unknown, POLICY_KEYS);
    }
    if let Some(s) = &file.state {
        unknown_keys(report, "state", &s.unknown, STATE_KEYS);
    }
}

/// Keys a member uses that memberctl does not know; `path` is the member's.
pub(crate) fn check_member_keys(report: &mut Report<'_>, path: &str, member: &MemberConfig) {
    unknown_keys(report, path, &member.unknown, MEMBER_KEYS);
}

/// Whether `name` can be an environment variable name.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The base URL rule, shared with the HTTP client ([`crate::url_policy`]),
/// so validation and apply agree.
fn check_base_url(url: &str) -> Option<(String, &'static str)> {
    crate::url_policy::check(url).err().map(|refusal| (refusal.message, refusal.hint))
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
        ("user_name", config.user_name.is_some()),
        ("match_on", config.match_on.is_some()),
        ("manage", config.manage.is_some()),
        ("on_remove", config.on_remove.is_some()),
        ("base_url", config.base_url.is_some() && !kind.uses_network()),
    ];
    for (key, set) in type_specific {
        if set && (key == "base_url" || !kind.own_settings().contains(&key)) {
            report.at_key(
                rules::SETTING_FOR_OTHER_TYPE,
                format!("{path}.{key}"),
                format!("`{key}` is not a setting of `{kind}` providers, like `{name}`"),
                "remove it, or change the provider's `type`".to_owned(),
            );
        }
    }

    let base_url = config.base_url.clone().or_else(|| kind.default_base_url().map(str::to_owned));
    if let (Some(url), Some(_)) = (&base_url, &config.base_url) {
        if let Some((why, hint)) = check_base_url(url) {
            report.at(rules::BASE_URL, format!("{path}.base_url"), why, hint.to_owned());
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
                rules::ENV_NAME,
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
            report.at(rules::ZERO, format!("{path}.{key}"), format!("`{key}` must be at least 1"), None);
        }
    };
    positive("batch_size", config.batch_size);
    positive("concurrency", config.concurrency);
    positive("max_attempts", config.max_attempts.map(|n| n as usize));
    let rate_limit = config.rate_limit.unwrap_or(defaults::RATE_LIMIT);
    if !rate_limit.is_finite() || rate_limit < 0.0 {
        report.at(
            rules::RATE_LIMIT,
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
                    rules::DURATION,
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
                report.at(rules::DURATION, format!("{path}.retry_budget"), format!("`{text}` is not a duration"), hint);
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
                        rules::CAPABILITY,
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
        // The SCIM keys, for the types that take them (the key check above
        // refuses them elsewhere).
        scim: kind.own_settings().contains(&"on_remove").then(|| ScimSettings {
            user_name: config.user_name.clone().unwrap_or_default(),
            match_on: config.match_on.unwrap_or_default(),
            manage: config.manage.clone().unwrap_or_default(),
            on_remove: config.on_remove.unwrap_or_default(),
        }),
    };
    if config.batch_size.is_none() {
        settings.batch_size = kind.default_batch_size(&settings);
    }
    settings.batch_size = settings.batch_size.max(1);
    for problem in kind.check_settings(&settings) {
        let rule = Rule { key: problem.rule, summary: problem.summary };
        if problem.key.is_empty() {
            report.at_key(rule, path.clone(), problem.message, problem.hint);
        } else {
            report.at(rule, format!("{path}.{}", problem.key), problem.message, problem.hint);
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
                    rules::UNKNOWN_PROVIDER,
                    path,
                    format!("{} `{name}` names unknown provider `{provider}`", singular(kind)),
                    suggestion(provider, "providers", providers.keys().map(String::as_str)),
                );
                continue;
            };
            if !settings.kind.uses(kind) {
                report.at_key(
                    rules::CATALOG_UNUSED,
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
                    rules::REMOTE_ID,
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

#[cfg(test)]
mod tests {
    use super::check_base_url;
    use crate::url_policy::hide_userinfo;

    // Regression: #9 defect 6, a base URL with a user and password passed validation.
    #[test]
    fn base_urls_with_credentials_are_refused_without_echoing_them() {
        for url in ["https://user:s3cret@host.example", "https://token@host.example/v1", "http://a:b@127.0.0.1:8080"] {
            let (why, _) = check_base_url(url).expect("refused");
            assert_eq!(why, "`base_url` carries a user name or password", "{url}");
        }
        assert_eq!(check_base_url("https://host.example/v1"), None);
        assert_eq!(check_base_url("http://127.0.0.1:8080"), None);
    }

    #[test]
    fn userinfo_is_hidden_wherever_a_url_appears() {
        assert_eq!(hide_userinfo("base_url: https://u:p@h.example/x"), "base_url: https://[redacted]@h.example/x");
        assert_eq!(
            hide_userinfo("'https://u:p@h' and http://k@x?q=a@b"),
            "'https://[redacted]@h' and http://[redacted]@x?q=a@b"
        );
        assert_eq!(hide_userinfo("no url: a@b.example"), "no url: a@b.example");
        assert_eq!(hide_userinfo("https://h.example/@x"), "https://h.example/@x");
        assert_eq!(hide_userinfo("not a URL: https://u:p@"), "not a URL: https://[redacted]@");
    }
}
