//! API key format: `posta_` + 43 URL-safe characters (32 random bytes); stored as SHA-256.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Result;

/// Every key starts with this.
pub const PREFIX: &str = "posta_";
/// Characters kept for display.
pub const DISPLAY_LEN: usize = 10;

/// A freshly minted key: the full text (shown once) and its hash (stored).
pub struct NewKey {
    /// The full key.
    pub key: String,
    /// SHA-256 of the full key.
    pub hash: [u8; 32],
    /// Display prefix.
    pub prefix: String,
}

/// Mint a key from 32 bytes of OS randomness.
pub fn generate() -> Result<NewKey> {
    let raw = crate::auth::crypto::random_bytes::<32>()?;
    let key = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let prefix = key.chars().take(DISPLAY_LEN).collect();
    Ok(NewKey {
        hash: hash(&key),
        prefix,
        key,
    })
}

/// SHA-256 of a presented key. The key has full entropy, so a fast hash is right here.
#[must_use]
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether a bearer credential is shaped like an API key (bytes: the request path asks before
/// the token is known to be text).
#[must_use]
pub fn looks_like_key(token: &[u8]) -> bool {
    token.starts_with(PREFIX.as_bytes())
}

/// `last_used_at` updates held in memory and flushed in one transaction periodically.
#[derive(Debug, Default)]
pub struct KeyUsage(Mutex<HashMap<Uuid, i64>>);

impl KeyUsage {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, i64>) -> T) -> T {
        match self.0.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }
    /// Note a use.
    pub fn touch(&self, id: Uuid, now: i64) {
        self.with(|m| {
            m.insert(id, now);
        });
    }
    /// A not yet flushed use.
    #[must_use]
    pub fn pending(&self, id: Uuid) -> Option<i64> {
        self.with(|m| m.get(&id).copied())
    }
    /// Every pending use, leaving none.
    pub fn take(&self) -> HashMap<Uuid, i64> {
        self.with(std::mem::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format() {
        let k = generate().unwrap();
        assert!(k.key.starts_with("posta_"));
        assert_eq!(k.key.len(), 6 + 43);
        assert_eq!(k.prefix, k.key[..10]);
        assert_eq!(hash(&k.key), k.hash);
        assert!(
            k.key[6..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(generate().unwrap().key, k.key);
    }
}
