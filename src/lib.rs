//! memberctl: declarative membership for SaaS platforms.
//!
//! People, roles, plans and groups are declared in YAML; [`plan`] diffs that
//! against a local state file and [`apply`] carries the difference out
//! through [`provider`] clients, recording every outcome in [`state`].

pub mod address;
pub mod attributes;
pub mod clock;
pub mod provider;
pub mod config;
pub mod state;
pub mod plan;
pub mod apply;
pub mod error;
pub mod cli;
