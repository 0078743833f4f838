//! Recently verified bearer credentials, so a repeated JWT or API key costs one hash lookup
//! and a constant-time comparison instead of a signature check, a store read and two record
//! decodes.
//!
//! Correctness rests on the store's write generation: an entry remembers the generation read
//! *before* the store read that justified it, and is trusted only while the generation is
//! unchanged. Every committed write (a revocation, a disabled user, a role change, a deleted
//! key) bumps it, so the next request after any change takes the full path. Time-dependent
//! checks (expiry) and per-request ones (a key's address allow-list) run on every hit.
//! Only successes are cached; a failed credential always pays the full verification.
//!
//! Each thread keeps its own entries. A shared map made every hit touch cache lines both
//! cores write (the lock word, the reference counts of the cached user and grant), and a
//! forward-auth deployment sends the same key from many connections at once; per thread, a
//! hit writes only memory its own core owns. The price is one full verification per thread
//! and credential.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use rustc_hash::FxBuildHasher;
use uuid::Uuid;

use crate::model::User;

/// Entries a thread keeps before it starts over. An entry is about 1 KiB (token plus user),
/// so each thread's cache stays within ~4 MiB however many distinct credentials arrive.
const CAPACITY: usize = 4 * 1024;

/// What a verified credential grants, as of the generation it was read at.
#[derive(Debug, Clone)]
pub enum Grant {
    /// A session JWT whose session row existed.
    Session {
        /// Session id (`jti`).
        id: Uuid,
        /// Slugs of the identity providers linked to the user (the profile shows them).
        linked_providers: Arc<[String]>,
        /// The user has a passkey (a second factor for `two_factor_required`).
        has_passkey: bool,
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
    /// Names this verification (shared by the entry and its hits): what a presentation layer
    /// renders from it can be kept under this name, and is exactly as fresh.
    pub id: VerificationId,
}

/// A process-unique name of one verification. A write that invalidates the verification
/// makes the next request verify again, under a new name, so a rendering kept under the old
/// one is never served again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationId(u64);

static NEXT_VERIFICATION: AtomicU64 = AtomicU64::new(0);

impl VerificationId {
    /// A name no other verification of this process has.
    #[must_use]
    pub fn new() -> Self {
        Self(NEXT_VERIFICATION.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for VerificationId {
    fn default() -> Self {
        Self::new()
    }
}

struct Entry {
    token: Box<[u8]>,
    generation: u64,
    verified: Verified,
}

/// The cache of one server (its entries live in the threads that serve it).
pub struct CredentialCache {
    // Several servers may share threads (tests run many in one process): entries are keyed by
    // the cache they belong to as well as by the token.
    id: u64,
}

/// Bytes of a token that choose its slot.
const TAIL: usize = 32;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's entries of every cache, by (cache id, hash of the token's tail).
    static ENTRIES: RefCell<HashMap<(u64, u64), Entry, FxBuildHasher>> =
        RefCell::new(HashMap::default());
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialCache([redacted])")
    }
}

impl CredentialCache {
    fn slot(&self, token: &[u8]) -> (u64, u64) {
        // The tail alone: a JWT ends in its signature, a key in random characters, so the tail
        // tells cached credentials apart, and hashing 300 bytes of JWT cost more than the
        // lookup. Presented tokens sharing a cached one's tail only share its slot: a hit
        // still needs the whole token to match.
        //
        // No secret key (SipHash here was ~2 % of a request): only verified credentials are
        // inserted, and their tails are an HMAC or server-drawn randomness, so nobody can
        // fill the map with colliding slots; a presented token only probes it.
        let tail = token
            .get(token.len().saturating_sub(TAIL)..)
            .unwrap_or(token);
        (self.id, FxBuildHasher.hash_one(tail))
    }

    /// The verification of `token`, if this thread made one at store generation `generation`.
    #[must_use]
    pub fn get(&self, token: &[u8], generation: u64) -> Option<Verified> {
        let slot = self.slot(token);
        ENTRIES.with_borrow(|map| {
            let e = map.get(&slot)?;
            // SECURITY: the whole presented token must equal the verified one, compared in
            // constant time (the 64-bit slot alone is not proof). `constant_time_eq` rather
            // than `subtle`, used elsewhere: on a 300-byte JWT, subtle's byte-at-a-time
            // comparison cost 4 200 instructions per request, 38 % of a cached `/users/me`
            // (BENCHMARKS.md, fourteenth round); constant_time_eq compares words.
            (e.generation == generation && constant_time_eq::constant_time_eq(&e.token, token))
                .then(|| e.verified.clone())
        })
    }

    /// Remember, for this thread, a verification made with data read at `generation`.
    pub fn insert(&self, token: &[u8], generation: u64, verified: Verified) {
        let slot = self.slot(token);
        ENTRIES.with_borrow_mut(|map| {
            if map.len() >= CAPACITY && !map.contains_key(&slot) {
                map.clear();
            }
            map.insert(
                slot,
                Entry {
                    token: token.into(),
                    generation,
                    verified,
                },
            );
        });
    }

    /// Number of this thread's entries of this cache (stale ones included).
    #[must_use]
    pub fn len(&self) -> usize {
        ENTRIES.with_borrow(|map| map.keys().filter(|(id, _)| *id == self.id).count())
    }

    /// True when this thread holds nothing for this cache.
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
                has_passkey: false,
            },
            valid_until: 100,
            id: VerificationId::new(),
        }
    }

    #[test]
    fn hit_only_for_same_token_and_generation() {
        let c = CredentialCache::default();
        c.insert(b"tok-a", 7, verified());
        assert!(c.get(b"tok-a", 7).is_some());
        assert!(c.get(b"tok-a", 8).is_none(), "a write since invalidates");
        assert!(c.get(b"tok-b", 7).is_none());
        assert!(c.get(b"tok-", 7).is_none());
        c.insert(b"tok-a", 8, verified());
        assert!(c.get(b"tok-a", 8).is_some());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn caches_sharing_a_thread_do_not_see_each_other() {
        let (a, b) = (CredentialCache::default(), CredentialCache::default());
        a.insert(b"tok", 1, verified());
        assert!(a.get(b"tok", 1).is_some());
        assert!(b.get(b"tok", 1).is_none(), "another server's entry");
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn entries_belong_to_their_thread() {
        let c = Arc::new(CredentialCache::default());
        c.insert(b"tok", 1, verified());
        let other = c.clone();
        let seen = std::thread::spawn(move || other.get(b"tok", 1).is_some())
            .join()
            .unwrap_or(true);
        assert!(!seen, "another thread verifies for itself");
        assert!(c.get(b"tok", 1).is_some());
    }

    #[test]
    fn bounded() {
        let c = CredentialCache::default();
        for i in 0..CAPACITY + 10 {
            c.insert(format!("t{i}").as_bytes(), 1, verified());
        }
        assert!(c.len() <= CAPACITY);
        assert!(c.get(format!("t{}", CAPACITY + 9).as_bytes(), 1).is_some());
    }
}
