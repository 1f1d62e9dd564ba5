//! Every integration test in one binary, so the shared fixture (`common`) and the crate's
//! dev-dependencies link once. Each module is what used to be a file of its own under
//! `tests/`; modules that need a feature say so in their first lines (or here).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod accounts;
mod attacks;
mod authorize;
mod browser;
mod concurrency;
mod demo_server;
mod email_mfa;
mod fake_idp;
mod federation;
mod http_routes;
mod login_flow;
#[cfg(feature = "smtp")]
mod mail;
mod malformed_input;
mod medplum_client;
mod multi_instance;
mod oidc_interop;
mod oidc_loopback;
mod property;
mod registration;
mod seed;
#[cfg(feature = "test-util")]
mod store_conformance;
mod tokens;
mod ui_pages;
