//! What a service says it supports: `GET /ServiceProviderConfig`
//! (RFC 7643 §5).
//!
//! Read once per run. Services are sloppy here (`"supported": "true"`,
//! `"maxOperations": "1000"`, sections left out), so reading never fails: an
//! unreadable or absent value takes the default a client can live with, and
//! a service without the endpoint at all is taken as [`assumed`](ServiceProviderConfig::assumed).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bulk::BulkLimits;
use super::wire::{as_bool, as_u64, canonicalize};

/// The payload limit assumed when a service supports bulk but gives none:
/// the RFC's own example value (1 MiB).
pub const DEFAULT_MAX_PAYLOAD_SIZE: u64 = 1_048_576;

/// The capabilities memberctl reads from a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProviderConfig {
    /// PATCH is supported.
    pub patch: bool,
    /// `/Bulk` support and limits.
    pub bulk: BulkSupport,
    /// Filtering support and limits.
    pub filter: FilterSupport,
    /// Resources carry entity tags (`meta.version`) and honour `If-Match`.
    pub etag: bool,
}

/// The `bulk` section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkSupport {
    /// `/Bulk` is supported.
    pub supported: bool,
    /// Most operations in one request, when the service says.
    pub max_operations: Option<u64>,
    /// Most bytes in one request body, when the service says.
    pub max_payload_size: Option<u64>,
}

/// The `filter` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSupport {
    /// Filters are supported.
    pub supported: bool,
    /// Most results a filtered query returns, when the service says.
    pub max_results: Option<u64>,
}

impl ServiceProviderConfig {
    /// What is assumed of a service that does not describe itself: PATCH
    /// and filters (which every provisioning target needs and has), no
    /// bulk, no entity tags.
    #[must_use]
    pub fn assumed() -> Self {
        Self {
            patch: true,
            bulk: BulkSupport::default(),
            filter: FilterSupport { supported: true, max_results: None },
            etag: false,
        }
    }

    /// Reads a `ServiceProviderConfig` body; every section or value that is
    /// missing or unreadable keeps its [`assumed`](Self::assumed) value.
    #[must_use]
    pub fn parse(body: &Value) -> Self {
        let body = canonicalize(body.clone());
        let assumed = Self::assumed();
        let section = |name: &str| body.get(name).filter(|v| v.is_object());
        let flag = |name: &str, default: bool| {
            section(name).and_then(|s| s.get("supported")).and_then(as_bool).unwrap_or(default)
        };
        let number = |name: &str, key: &str| section(name).and_then(|s| s.get(key)).and_then(as_u64);
        Self {
            patch: flag("patch", assumed.patch),
            bulk: BulkSupport {
                supported: flag("bulk", assumed.bulk.supported),
                max_operations: number("bulk", "maxOperations"),
                max_payload_size: number("bulk", "maxPayloadSize"),
            },
            filter: FilterSupport {
                supported: flag("filter", assumed.filter.supported),
                max_results: number("filter", "maxResults"),
            },
            etag: flag("etag", assumed.etag),
        }
    }

    /// The limits `/Bulk` requests are chunked to, or `None` when bulk is
    /// not to be used (unsupported, or a limit of zero). Chunks hold at most
    /// `min(batch_size, maxOperations)` operations and `maxPayloadSize`
    /// bytes ([`DEFAULT_MAX_PAYLOAD_SIZE`] when the service gives none).
    #[must_use]
    pub fn bulk_limits(&self, batch_size: usize) -> Option<BulkLimits> {
        if !self.bulk.supported {
            return None;
        }
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let max_operations = self.bulk.max_operations.map_or(batch_size, |n| batch_size.min(to_usize(n)));
        let max_payload_size = to_usize(self.bulk.max_payload_size.unwrap_or(DEFAULT_MAX_PAYLOAD_SIZE));
        (max_operations > 0 && max_payload_size > 0).then(|| BulkLimits::new(max_operations, max_payload_size))
    }

    /// The page size to ask for when listing: `wanted`, capped by the
    /// filter's `maxResults` when the service gives one.
    #[must_use]
    pub fn page_size(&self, wanted: u64) -> u64 {
        self.filter.max_results.filter(|n| *n > 0).map_or(wanted, |n| wanted.min(n)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_rfc_example_reads_fully() {
        let config = ServiceProviderConfig::parse(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "http://example.com/help/scim.html",
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 1_048_576},
            "filter": {"supported": true, "maxResults": 200},
            "changePassword": {"supported": true},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{"type": "oauthbearertoken", "primary": true}]
        }));
        assert_eq!(
            config,
            ServiceProviderConfig {
                patch: true,
                bulk: BulkSupport { supported: true, max_operations: Some(1000), max_payload_size: Some(1_048_576) },
                filter: FilterSupport { supported: true, max_results: Some(200) },
                etag: true,
            }
        );
        assert_eq!(config.bulk_limits(100), Some(BulkLimits::new(100, 1_048_576)));
        assert_eq!(config.bulk_limits(5000), Some(BulkLimits::new(1000, 1_048_576)));
        assert_eq!(config.page_size(500), 200);
        assert_eq!(config.page_size(100), 100);
    }

    #[test]
    fn sloppy_values_and_names_are_understood() {
        let config = ServiceProviderConfig::parse(&json!({
            "Patch": {"Supported": "True"},
            "BULK": {"supported": "true", "maxoperations": "50", "MaxPayloadSize": "2048"},
            "filter": {"supported": "false"},
            "etag": {"supported": "FALSE"}
        }));
        assert!(config.patch);
        assert_eq!(
            config.bulk,
            BulkSupport { supported: true, max_operations: Some(50), max_payload_size: Some(2048) }
        );
        assert!(!config.filter.supported);
        assert!(!config.etag);
        assert_eq!(config.bulk_limits(100), Some(BulkLimits::new(50, 2048)));
    }

    #[test]
    fn absent_or_unreadable_values_take_the_defaults() {
        assert_eq!(ServiceProviderConfig::parse(&json!({})), ServiceProviderConfig::assumed());
        assert_eq!(ServiceProviderConfig::parse(&json!("not json object")), ServiceProviderConfig::assumed());
        let config = ServiceProviderConfig::parse(&json!({
            "patch": "yes", "bulk": {"supported": true, "maxOperations": "many"}, "etag": null
        }));
        assert!(config.patch);
        assert!(!config.etag);
        assert_eq!(config.bulk.max_operations, None);
        // No limits given: the batch size and the default payload size.
        assert_eq!(config.bulk_limits(100), Some(BulkLimits::new(100, 1_048_576)));
        assert_eq!(config.page_size(0), 1);
    }

    #[test]
    fn bulk_is_not_used_when_unsupported_or_limited_to_nothing() {
        assert_eq!(ServiceProviderConfig::assumed().bulk_limits(100), None);
        let zero_ops = ServiceProviderConfig::parse(&json!({"bulk": {"supported": true, "maxOperations": 0}}));
        assert_eq!(zero_ops.bulk_limits(100), None);
        let zero_bytes = ServiceProviderConfig::parse(&json!({"bulk": {"supported": true, "maxPayloadSize": 0}}));
        assert_eq!(zero_bytes.bulk_limits(100), None);
        let off = ServiceProviderConfig::parse(&json!({"bulk": {"supported": false, "maxOperations": 10}}));
        assert_eq!(off.bulk_limits(100), None);
    }
}
