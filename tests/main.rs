//! The one integration test binary: a module per feature.

mod support;

mod examples;
mod lifecycle;
mod providers;
mod state;
