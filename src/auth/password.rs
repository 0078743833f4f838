//! argon2id hashing, verification and rehash detection, plus the password policy.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Longest accepted password in bytes; longer ones are refused before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

/// Blocks of argon2 working memory asked of the allocator at the least: just over 32 MiB.
///
/// glibc serves an allocation this large with its own `mmap` and gives it back with `munmap`
/// when it is freed. A smaller one (Posta's default 19 MiB) is mmapped only the first time:
/// freeing it raises glibc's dynamic mmap threshold to its size (mallopt(3), up to
/// `DEFAULT_MMAP_THRESHOLD_MAX`, 32 MiB on 64-bit), so every later one came from a per-thread
/// arena that is never trimmed below twice that threshold. Measured at ad401d6: 226 MiB
/// resident after one client signed in for 3 s, never given back (BENCHMARKS.md, memory).
/// Only the blocks argon2 uses are ever touched, so the rest is address space, not memory.
const MMAP_FLOOR_BLOCKS: usize = 32 * 1024 + 1;

/// argon2 working memory, kept by a hashing thread while it is busy and dropped (returned
/// to the operating system at once, see [`MMAP_FLOOR_BLOCKS`]) when it goes idle.
#[derive(Default)]
pub struct Scratch {
    blocks: Vec<Block>,
}

impl Scratch {
    /// At least `n` blocks, allocated on first need or when a larger cost needs more.
    fn blocks(&mut self, n: usize) -> Result<&mut [Block]> {
        if self.blocks.len() < n {
            self.blocks = Vec::new();
            let mut v = Vec::new();
            v.try_reserve_exact(n.max(MMAP_FLOOR_BLOCKS))
                .map_err(|e| Error::Internal(format!("argon2 memory: {e}")))?;
            v.resize(n, Block::default());
            self.blocks = v;
        }
        Ok(&mut self.blocks)
    }

    /// Whether working memory is held now.
    #[must_use]
    pub fn is_held(&self) -> bool {
        !self.blocks.is_empty()
    }
}

fn params(c: Cost) -> Result<Params> {
    Params::new(c.m_kib, c.t, c.p, None).map_err(|e| Error::Internal(format!("argon2 params: {e}")))
}

/// Hash a password into a PHC string with a fresh salt (working memory allocated and freed
/// here: for one-off use; the server hashes on its pool with [`hash_in`]).
pub fn hash(password: &str, c: Cost) -> Result<String> {
    hash_in(&mut Scratch::default(), password, c)
}

/// Hash a password into a PHC string with a fresh salt, in `scratch`.
pub fn hash_in(scratch: &mut Scratch, password: &str, c: Cost) -> Result<String> {
    let mut salt = [0u8; 16];
    crate::auth::crypto::fill_random(&mut salt)?;
    let params = params(c)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            scratch.blocks(params.block_count())?,
        )
        .map_err(|e| Error::Internal(format!("argon2: {e}")))?;
    let err = |e: argon2::password_hash::Error| Error::Internal(format!("argon2: {e}"));
    let salt = SaltString::encode_b64(&salt).map_err(err)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(err)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(err)?),
    };
    Ok(phc.to_string())
}

/// Verify a password against a PHC string (one-off use; see [`verify_in`]).
#[must_use]
pub fn verify(phc: &str, password: &str) -> bool {
    verify_in(&mut Scratch::default(), phc, password)
}

/// Verify a password against a PHC string in `scratch`; the comparison is constant time.
#[must_use]
pub fn verify_in(scratch: &mut Scratch, phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // The parameters come from the hash itself, so old hashes keep verifying.
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(version), Some(salt), Some(expected)) = (version, parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let Ok(blocks) = scratch.blocks(params.block_count()) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        .is_ok()
        && out.as_slice().ct_eq(expected.as_bytes()).into()
}

/// True when the stored hash is weaker than `c` (or not argon2id): rehash on next login.
#[must_use]
pub fn needs_rehash(phc: &str, c: Cost) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    let Ok(p) = Params::try_from(&parsed) else {
        return true;
    };
    p.m_cost() < c.m_kib || p.t_cost() < c.t || p.p_cost() < c.p
}

/// The password policy: length bounds, and no very common or email-derived passwords.
pub fn check_policy(password: &str, min_len: usize, email: &str, name: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if password.chars().count() < min_len {
        return Err(Error::invalid(
            "password",
            format!("must be at least {min_len} characters"),
        ));
    }
    let local = email.split('@').next().unwrap_or_default();
    let lower = password.to_lowercase();
    if !local.is_empty() && local.len() >= 4 && lower.contains(&local.to_lowercase()) {
        // Says which part: "admin" in "Quiet-admin-2" surprised people told it held their
        // whole address.
        return Err(Error::invalid(
            "password",
            format!("must not contain parts of your email address: {local}"),
        ));
    }
    let inputs = [email, local, name, "posta"];
    let est = zxcvbn::zxcvbn(password, &inputs);
    if (est.score() as u8) < 2 {
        return Err(Error::invalid(
            "password",
            "is too common or too easy to guess; use a longer passphrase",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Cost = Cost {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn hash_verify_rehash() {
        let h = hash("correct horse battery", CHEAP).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterx"));
        assert!(!verify("garbage", "x"));
        assert!(!needs_rehash(&h, CHEAP));
        assert!(needs_rehash(
            &h,
            Cost {
                m_kib: 19456,
                t: 2,
                p: 1
            }
        ));
    }

    #[test]
    fn compatible_with_the_argon2_crates_own_phc_strings() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let params = Params::new(64, 1, 1, None).unwrap();
        let crate_hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = crate_hasher
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        let mut s = Scratch::default();
        assert!(verify_in(&mut s, &theirs, "correct horse battery"));
        assert!(!verify_in(&mut s, &theirs, "correct horse batterx"));
        let ours = hash_in(&mut s, "correct horse battery", CHEAP).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        // A stored hash with other parameters (an older, weaker cost) verifies in the same
        // scratch, which grows to the larger of the two.
        let bigger = hash_in(
            &mut s,
            "x-correct horse",
            Cost {
                m_kib: 512,
                ..CHEAP
            },
        )
        .unwrap();
        assert!(verify_in(&mut s, &bigger, "x-correct horse"));
        assert!(verify_in(&mut s, &ours, "correct horse battery"));
        assert!(!verify_in(
            &mut s,
            "$argon2id$v=19$m=64,t=1,p=1$bm9zYWx0$",
            "x"
        ));
    }

    #[test]
    fn policy() {
        let p = |pw: &str| check_policy(pw, 8, "alice@example.com", "Alice");
        assert!(p("short").is_err());
        assert!(p("password").is_err());
        assert!(p("password123").is_err());
        assert!(p("alice@example.com1").is_err());
        let e = p("Quiet-alice-Harbor-71").unwrap_err().to_string();
        assert!(
            e.contains("must not contain parts of your email address: alice"),
            "{e}"
        );
        assert!(p(&"x".repeat(1025)).is_err());
        assert!(p("violet-tractor-41-moss").is_ok());
    }
}
