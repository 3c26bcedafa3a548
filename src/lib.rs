//! memberctl: declarative membership for `SaaS` platforms.
//!
//! People, roles, plans and groups are declared in YAML; [`plan`] diffs that
//! against a local state file and [`apply`] carries the difference out
//! through [`provider`] clients, recording every outcome in [`state`].

pub mod address;
pub mod apply;
pub mod atomic_write;
pub mod attributes;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod paint;
mod parallel;
pub mod plan;
pub mod provider;
pub mod refresh;
pub mod state;
pub mod url_policy;
