//! One integration test binary (links once): the real server over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod admin;
mod api_keys;
mod browser;
mod common;
mod host;
mod idp;
mod mfa;
mod ops;
mod packaging;
mod skeleton;
mod sso;
mod throttle;
mod upgrade;
