//! argon2id hashing, verification and rehash detection, plus the password policy.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

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

fn hasher(c: Cost) -> Result<Argon2<'static>> {
    let params = Params::new(c.m_kib, c.t, c.p, None)
        .map_err(|e| Error::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a password into a PHC string with a fresh salt.
pub fn hash(password: &str, c: Cost) -> Result<String> {
    let mut salt = [0u8; 16];
    crate::auth::crypto::fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
    hasher(c)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

/// Verify a password against a PHC string (constant time inside argon2).
#[must_use]
pub fn verify(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // The parameters come from the hash itself, so old hashes keep verifying.
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
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
        return Err(Error::invalid(
            "password",
            "must not contain your email address",
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
    fn policy() {
        let p = |pw: &str| check_policy(pw, 8, "alice@example.com", "Alice");
        assert!(p("short").is_err());
        assert!(p("password").is_err());
        assert!(p("password123").is_err());
        assert!(p("alice@example.com1").is_err());
        assert!(p(&"x".repeat(1025)).is_err());
        assert!(p("violet-tractor-41-moss").is_ok());
    }
}
