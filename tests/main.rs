//! The one integration test binary: a module per feature.

// YAML fixtures read best as raw strings; snapshots build strings freely.
#![allow(clippy::needless_raw_string_hashes, clippy::format_push_string)]

mod support;

mod e2e;
mod examples;
mod gitops;
mod lifecycle;
mod output;
mod postgres;
mod providers;
mod refresh;
mod scim_infra;
mod state;
