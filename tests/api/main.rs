//! One integration test binary (links once): the real server over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod admin;
mod api_keys;
mod browser;
mod common;
mod connections;
mod dashboards;
mod envelope;
mod host;
mod idp;
mod mail;
mod mfa;
mod ops;
mod packaging;
mod passkeys;
mod process;
mod sso;
mod store;
mod throttle;
mod tls;
mod upgrade;
