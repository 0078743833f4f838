//! A word-at-a-time multiplicative hasher (the `FxHash` recipe) for maps whose keys nobody can
//! aim: the route table (fixed at start-up) and the credential cache (whose entries are only
//! ever verified credentials, keyed by their server-made tails). `std`'s SipHash protects maps
//! that attacker-chosen keys fill; here it only cost a few hundred instructions per request.

use std::hash::{BuildHasherDefault, Hasher};

/// Build [`FastHasher`]s.
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(26);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w.get_mut(..rest.len())
                .unwrap_or_default()
                .copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn distinct_inputs_hash_apart_and_maps_work() {
        let b = FastBuild::default();
        let paths = [
            "/api/v1/healthz",
            "/api/v1/readyz",
            "/api/v1/users/me",
            "/api/v1/users/m",
        ];
        let hashes: Vec<u64> = paths.iter().map(|p| b.hash_one(p)).collect();
        for (i, h) in hashes.iter().enumerate() {
            assert!(!hashes[..i].contains(h), "{}", paths[i]);
        }
        let m: HashMap<&str, usize, FastBuild> = paths.iter().copied().zip(0..).collect();
        assert_eq!(m.get("/api/v1/users/me"), Some(&2));
        assert_eq!(m.get("/api/v1/users"), None);
    }
}
