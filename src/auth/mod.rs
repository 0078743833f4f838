//! Credential mechanisms as pure functions: password hashing, JWTs, TOTP, API keys, sealing.
//!
//! No store, no configuration globals, no logging of secrets. Callers run the slow ones
//! (argon2) off the async runtime.

pub mod api_key;
pub mod crypto;
pub mod hash_pool;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod totp;
