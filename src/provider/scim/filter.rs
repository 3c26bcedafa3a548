//! SCIM filter expressions (RFC 7644 §3.4.2.2), for finding a user and for
//! PATCH value paths.
//!
//! A filter's compared value is a JSON string literal, so quoting it the way
//! JSON does escapes `"` and `\` (and control characters) exactly as the RFC
//! grammar expects: `userName eq "a\"b"`.

use super::mapping::{external_id, MatchOn, ScimSettings};

/// `value` as a filter string literal, quotes included.
#[must_use]
pub fn quote(value: &str) -> String {
    serde_json::to_string(value).expect("a string always serializes")
}

/// `attribute eq "value"`.
#[must_use]
pub fn eq(attribute: &str, value: &str) -> String {
    format!("{attribute} eq {}", quote(value))
}

/// A PATCH path selecting one entry of a multi-valued attribute by its
/// value: `roles[value eq "admin"]`.
#[must_use]
pub fn value_path(attribute: &str, value: &str) -> String {
    format!("{attribute}[{}]", eq("value", value))
}

/// The filter that finds the existing user for `email` by the settings'
/// `match_on` (after a 409, say).
#[must_use]
pub fn lookup(email: &str, settings: &ScimSettings) -> String {
    match settings.match_on {
        MatchOn::UserName => eq("userName", &settings.user_name.render(email)),
        // `emails.value` rather than `emails[value eq …]`: the RFC allows
        // both in a query, and the dotted form is the one services support.
        MatchOn::Emails => eq("emails.value", email.trim()),
        MatchOn::ExternalId => eq("externalId", &external_id(email)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::scim::mapping::UserNameTemplate;

    #[test]
    fn values_are_escaped_as_json_strings() {
        assert_eq!(eq("userName", r#"a"b"#), r#"userName eq "a\"b""#);
        assert_eq!(eq("userName", r"a\b"), r#"userName eq "a\\b""#);
        assert_eq!(eq("userName", "a\nb"), r#"userName eq "a\nb""#);
        assert_eq!(eq("userName", "åsa"), r#"userName eq "åsa""#);
        assert_eq!(value_path("roles", r#"x"] or value pr or ["#), r#"roles[value eq "x\"] or value pr or ["]"#);
    }

    #[test]
    fn lookup_follows_match_on() {
        let mut settings = ScimSettings::default();
        assert_eq!(lookup(" Ada@X.io", &settings), r#"userName eq "Ada@X.io""#);
        settings.user_name = UserNameTemplate::try_from("{local}".to_owned()).unwrap();
        assert_eq!(lookup("ada@x.io", &settings), r#"userName eq "ada""#);
        settings.match_on = MatchOn::Emails;
        assert_eq!(lookup(" Ada@X.io ", &settings), r#"emails.value eq "Ada@X.io""#);
        settings.match_on = MatchOn::ExternalId;
        assert_eq!(lookup("Ada@X.io", &settings), r#"externalId eq "ada@x.io""#);
    }
}
