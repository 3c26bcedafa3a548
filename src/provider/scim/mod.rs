//! SCIM 2.0 (RFC 7643/7644): the protocol layer of the `scim` provider.
//!
//! Everything but [`client`] is pure: wire types, the mapping between a
//! member's [`Attributes`](crate::attributes::Attributes) and a SCIM User,
//! PATCH and `/Bulk` request builders, paging arithmetic, and the reading of
//! answers. [`client`] only moves these bodies over the shared HTTP layer,
//! and the type's description (config keys, catalogs, capabilities) is
//! [`TYPE`].
//!
//! Real services are imperfect, so every parser here is tolerant: attribute
//! names match case-insensitively ([`wire::from_value`]), numbers and
//! booleans may arrive as strings, unknown attributes are ignored and absent
//! optional ones take their defaults.

pub mod bulk;
pub mod client;
mod descriptor;
pub mod discovery;
pub mod filter;
pub mod mapping;
pub mod outcome;
pub mod paging;
pub mod patch;
pub mod resource;
pub mod wire;

pub use descriptor::{ScimType, TYPE};

/// Schema URN of the core User resource.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Schema URN of the enterprise User extension (which carries `manager`).
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Schema URN of the core Group resource.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Message URN of a list (query) response.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Message URN of a PATCH request body.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Message URN of a `/Bulk` request body.
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// Message URN of a `/Bulk` response body.
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// Message URN of an error body.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Path of the Users endpoint, relative to the base URL.
pub const USERS_PATH: &str = "/Users";
/// Path of the Groups endpoint, relative to the base URL.
pub const GROUPS_PATH: &str = "/Groups";
/// Path of the Bulk endpoint, relative to the base URL.
pub const BULK_PATH: &str = "/Bulk";
/// Path of the discovery endpoint, relative to the base URL.
pub const SERVICE_PROVIDER_CONFIG_PATH: &str = "/ServiceProviderConfig";

/// The path of one user, `/Users/{id}`.
#[must_use]
pub fn user_path(id: &str) -> String {
    format!("{USERS_PATH}/{}", wire::encode_path_segment(id))
}

/// The path of one group, `/Groups/{id}`.
#[must_use]
pub fn group_path(id: &str) -> String {
    format!("{GROUPS_PATH}/{}", wire::encode_path_segment(id))
}
