//! Recently verified bearer credentials, so a repeated JWT or API key costs one keyed hash
//! lookup instead of a signature check, a store read and two record decodes.
//!
//! Correctness rests on the store's write generation: an entry remembers the generation read
//! *before* the store read that justified it, and is trusted only while the generation is
//! unchanged. Every committed write (a revocation, a disabled user, a role change, a deleted
//! key) bumps it, so the next request after any change takes the full path. Time-dependent
//! checks (expiry) and per-request ones (a key's address allow-list) run on every hit.
//! Only successes are cached; a failed credential always pays the full verification.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::model::User;

/// Entries kept before the cache starts over. An entry is about 1 KiB (token plus user), so
/// the cache stays within ~16 MiB however many distinct credentials arrive.
const CAPACITY: usize = 16 * 1024;

/// What a verified credential grants, as of the generation it was read at.
#[derive(Debug, Clone)]
pub enum Grant {
    /// A session JWT whose session row existed.
    Session {
        /// Session id (`jti`).
        id: Uuid,
        /// Slugs of the identity providers linked to the user (the profile shows them).
        linked_providers: Arc<[String]>,
    },
    /// An API key that was neither revoked nor expired.
    ApiKey {
        /// Key id.
        id: Uuid,
        /// Granted scopes.
        scopes: Arc<[String]>,
        /// Address allow-list; `None` admits any address.
        allowed_ips: Option<Arc<[ipnet::IpNet]>>,
        /// The last second this key's use was reported to the usage tracker, so a busy key
        /// takes the tracker's lock once a second instead of on every request.
        reported: Arc<AtomicI64>,
    },
}

/// The outcome of a full verification.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The stored, active user.
    pub user: Arc<User>,
    /// What the credential is.
    pub grant: Grant,
    /// Unix time from which the credential is expired (token, session or key expiry).
    pub valid_until: i64,
}

struct Entry {
    token: Box<[u8]>,
    generation: u64,
    verified: Verified,
}

/// The cache; one per process.
pub struct CredentialCache {
    entries: RwLock<HashMap<u64, Entry>>,
    // Keyed per process, so nobody can aim presented tokens at a chosen bucket.
    hasher: RandomState,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            hasher: RandomState::new(),
        }
    }
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialCache([redacted])")
    }
}

impl CredentialCache {
    /// The verification of `token`, if one was made at store generation `generation`.
    #[must_use]
    pub fn get(&self, token: &str, generation: u64) -> Option<Verified> {
        let slot = self.hasher.hash_one(token.as_bytes());
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let e = map.get(&slot)?;
        // SECURITY: the whole presented token must equal the verified one, compared in
        // constant time (the 64-bit slot alone is not proof).
        (e.generation == generation
            && constant_time_eq::constant_time_eq(&e.token, token.as_bytes()))
        .then(|| e.verified.clone())
    }

    /// Remember a verification made with data read at `generation`.
    pub fn insert(&self, token: &str, generation: u64, verified: Verified) {
        let slot = self.hasher.hash_one(token.as_bytes());
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY && !map.contains_key(&slot) {
            map.clear();
        }
        map.insert(
            slot,
            Entry {
                token: token.as_bytes().into(),
                generation,
                verified,
            },
        );
    }

    /// Number of entries (stale ones included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Verified {
        let user = User::new(
            "A".into(),
            "a@example.com".into(),
            None,
            crate::model::Role::User,
            0,
        );
        Verified {
            user: Arc::new(user),
            grant: Grant::Session {
                id: Uuid::new_v4(),
                linked_providers: Arc::from([]),
            },
            valid_until: 100,
        }
    }

    #[test]
    fn hit_only_for_same_token_and_generation() {
        let c = CredentialCache::default();
        c.insert("tok-a", 7, verified());
        assert!(c.get("tok-a", 7).is_some());
        assert!(c.get("tok-a", 8).is_none(), "a write since invalidates");
        assert!(c.get("tok-b", 7).is_none());
        assert!(c.get("tok-", 7).is_none());
        c.insert("tok-a", 8, verified());
        assert!(c.get("tok-a", 8).is_some());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn bounded() {
        let c = CredentialCache::default();
        for i in 0..CAPACITY + 10 {
            c.insert(&format!("t{i}"), 1, verified());
        }
        assert!(c.len() <= CAPACITY);
        assert!(c.get(&format!("t{}", CAPACITY + 9), 1).is_some());
    }
}
