//! The one integration test binary: a module per feature.

// YAML fixtures read best as raw strings; snapshots build strings freely.
#![allow(clippy::needless_raw_string_hashes, clippy::format_push_string)]

mod support;

mod config_checks;
mod config_props;
mod e2e;
mod examples;
mod fuzz;
mod gitops;
mod lifecycle;
mod org;
mod output;
mod postgres;
mod providers;
mod refresh;
mod scim;
mod scim_infra;
mod state;
