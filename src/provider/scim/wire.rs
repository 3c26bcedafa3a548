//! Tolerant reading of what SCIM services send, and encoding of what goes
//! into URLs.
//!
//! RFC 7643 §2.1 makes attribute names case-insensitive, and services use
//! that freedom (`Resources` and `resources`, `userName` and `username`).
//! Rather than sprinkle aliases over every struct, an answer is first passed
//! through [`canonicalize`], which rewrites every known name to the spelling
//! the wire types use and drops `null`s (so an attribute sent as `null` reads
//! as absent). Numbers, booleans and statuses that sloppy services send as
//! strings are read by the `lenient_*` helpers.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Every attribute name the wire types read, in the spelling they use.
const CANONICAL_NAMES: &[&str] = &[
    "$ref",
    "Operations",
    "Resources",
    "active",
    "bulk",
    "bulkId",
    "changePassword",
    "code",
    "created",
    "data",
    "detail",
    "display",
    "displayName",
    "emails",
    "entitlements",
    "etag",
    "externalId",
    "failOnErrors",
    "familyName",
    "filter",
    "formatted",
    "givenName",
    "groups",
    "id",
    "itemsPerPage",
    "lastModified",
    "location",
    "manager",
    "maxOperations",
    "maxPayloadSize",
    "maxResults",
    "members",
    "meta",
    "method",
    "name",
    "op",
    "patch",
    "path",
    "phoneNumbers",
    "primary",
    "resourceType",
    "response",
    "roles",
    "schemas",
    "scimType",
    "sort",
    "startIndex",
    "status",
    "supported",
    "totalResults",
    "type",
    "userName",
    "value",
    "version",
    super::ENTERPRISE_USER_SCHEMA,
];

/// The canonical spelling of `name`, or `name` itself when it is not one the
/// wire types read.
fn canonical_name(name: &str) -> Option<&'static str> {
    CANONICAL_NAMES.iter().copied().find(|known| known.eq_ignore_ascii_case(name))
}

/// Rewrites every known attribute name in `value` (at any depth) to its
/// canonical spelling and drops `null` members of objects.
///
/// When one object holds a name in two spellings, the canonical spelling
/// wins, else the first one met.
#[must_use]
pub fn canonicalize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, inner) in map {
                if inner.is_null() {
                    continue;
                }
                let (name, exact) = match canonical_name(&key) {
                    Some(name) => (name.to_owned(), name == key),
                    None => (key, true),
                };
                if exact || !out.contains_key(&name) {
                    out.insert(name, canonicalize(inner));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonicalize).collect()),
        other => other,
    }
}

/// Deserializes a SCIM answer, matching attribute names case-insensitively.
///
/// Use this (not `serde_json::from_value`) for anything a service sent.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(canonicalize(value))
}

/// [`from_value`] for raw bytes.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    from_value(serde_json::from_slice(bytes)?)
}

/// A boolean, also when sent as `"true"`/`"False"`; anything else is `None`.
#[must_use]
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A non-negative integer, also when sent as a string (`"1000"`) or as a
/// float without a fraction (`1000.0`); anything else is `None`.
#[must_use]
pub fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9e15).map(|f| f as u64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An HTTP status: `201`, `"201"`, `"201 Created"`, or the old drafts'
/// `{"code": "201"}`.
#[must_use]
pub fn as_status(value: &Value) -> Option<u16> {
    match value {
        Value::Object(map) => map.get("code").and_then(as_status),
        Value::String(s) => {
            let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        }
        other => as_u64(other).and_then(|n| u16::try_from(n).ok()),
    }
}

/// A string, also when a service sends an id or value as a number.
#[must_use]
pub fn as_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Serde helper: an optional boolean read with [`as_bool`].
pub fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.as_ref().and_then(as_bool))
}

/// Serde helper: an optional integer read with [`as_u64`].
pub fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.as_ref().and_then(as_u64))
}

/// Serde helper: an optional HTTP status read with [`as_status`].
pub fn lenient_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.as_ref().and_then(as_status))
}

/// Serde helper: an optional string read with [`as_string`].
pub fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.as_ref().and_then(as_string))
}

/// Serde helper: a string read with [`as_string`], empty when absent or of
/// another type.
pub fn lenient_string_or_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(lenient_string(deserializer)?.unwrap_or_default())
}

/// Percent-encodes `text` for use in a URL: everything but RFC 3986's
/// unreserved characters is escaped, so a space becomes `%20` (never `+`,
/// which strict servers read literally in a query).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
    out
}

/// Encodes a resource id as one URL path segment (ids are opaque and may
/// hold `/` or spaces).
#[must_use]
pub fn encode_path_segment(text: &str) -> String {
    percent_encode(text)
}

/// Encodes a query parameter value (a filter, say).
#[must_use]
pub fn encode_query_value(text: &str) -> String {
    percent_encode(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonicalize_rewrites_known_names_at_any_depth_and_keeps_unknown_ones() {
        let value = json!({
            "resources": [{"USERNAME": "a", "Emails": [{"VALUE": "a@x.io"}], "customThing": 1}],
            "TotalResults": 1,
        });
        assert_eq!(
            canonicalize(value),
            json!({
                "Resources": [{"userName": "a", "emails": [{"value": "a@x.io"}], "customThing": 1}],
                "totalResults": 1,
            })
        );
    }

    #[test]
    fn canonicalize_drops_nulls_and_prefers_the_canonical_spelling() {
        let value = json!({"resources": [1], "Resources": [2], "roles": null});
        assert_eq!(canonicalize(value), json!({"Resources": [2]}));
        let value = json!({"Resources": [2], "resources": [1]});
        assert_eq!(canonicalize(value), json!({"Resources": [2]}));
    }

    #[test]
    fn canonicalize_matches_the_enterprise_urn_case_insensitively() {
        let value = json!({"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER": {"Manager": {"value": "m"}}});
        assert_eq!(canonicalize(value), json!({(super::super::ENTERPRISE_USER_SCHEMA): {"manager": {"value": "m"}}}));
    }

    #[test]
    fn lenient_scalars() {
        assert_eq!(as_bool(&json!("TRUE")), Some(true));
        assert_eq!(as_bool(&json!(" false ")), Some(false));
        assert_eq!(as_bool(&json!("yes")), None);
        assert_eq!(as_u64(&json!("1000")), Some(1000));
        assert_eq!(as_u64(&json!(1000.0)), Some(1000));
        assert_eq!(as_u64(&json!(1.5)), None);
        assert_eq!(as_u64(&json!(-1)), None);
        assert_eq!(as_status(&json!(201)), Some(201));
        assert_eq!(as_status(&json!("201")), Some(201));
        assert_eq!(as_status(&json!("409 Conflict")), Some(409));
        assert_eq!(as_status(&json!({"code": "201"})), Some(201));
        assert_eq!(as_status(&json!({"code": 400})), Some(400));
        assert_eq!(as_status(&json!("created")), None);
        assert_eq!(as_string(&json!(42)), Some("42".to_owned()));
        assert_eq!(as_string(&json!(true)), None);
    }

    #[test]
    fn encoding_escapes_everything_but_unreserved_characters() {
        assert_eq!(encode_query_value(r#"userName eq "a b""#), "userName%20eq%20%22a%20b%22");
        assert_eq!(encode_path_segment("a/b+c~d"), "a%2Fb%2Bc~d");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }
}
