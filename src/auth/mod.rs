//! Credential mechanisms: password hashing, JWTs, TOTP, API keys, sealing, and the in-memory
//! machinery the rules in `domain` drive (the brute-force limiter, the credential cache, the
//! pending key-usage buffer, the OIDC discovery cache).
//!
//! Leaves of the import graph: nothing here imports `domain`, `state`, `store` or `http`. No
//! configuration globals, no logging of secrets. Callers run the slow ones (argon2) off the
//! async runtime.

pub mod api_key;
pub mod credential_cache;
pub mod crypto;
pub mod hash_pool;
pub mod jwt;
pub mod oidc;
pub mod passkey;
pub mod password;
pub mod throttle;
pub mod totp;
