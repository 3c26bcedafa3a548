//! Test support: the harness that runs the real binary, and fake provider servers.
#![allow(dead_code)]

pub mod bench_configs;
pub mod fake_aptly;
pub mod fake_common;
pub mod fake_networked;
pub mod fault_proxy;
pub mod harness;
pub mod pooler;
pub mod postgres;
pub mod scim_server;
