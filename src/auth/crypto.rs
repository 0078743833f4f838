//! Randomness, sealing (XChaCha20-Poly1305) and keyed hashing with the instance key.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// Fill `buf` from the OS CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Internal(format!("os random: {e}")))
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    Sha256::digest(data).into()
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    fill_random(&mut b)?;
    Ok(b)
}

/// Parse a 32-byte key given as 64 hex characters or base64.
#[must_use]
pub fn parse_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(out);
    }
    let b = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
        .ok()?;
    b.try_into().ok()
}

/// Hex rendering of a key, as written to the key file.
#[must_use]
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The instance's secret for data at rest: sealing secrets and keying hashes.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// A sealer over a 32-byte key.
    #[must_use]
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// Encrypt and authenticate: `nonce(24) || ciphertext`. `aad` binds it to its owner.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let cipher = XChaCha20Poly1305::new((&self.key).into());
        let nonce = random_bytes::<24>()?;
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                chacha20poly1305::aead::Payload { msg: plain, aad },
            )
            .map_err(|_| Error::Internal("seal failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypt what [`Sealer::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (nonce, ct) = sealed
            .split_at_checked(24)
            .ok_or_else(|| Error::Internal("sealed value too short".into()))?;
        XChaCha20Poly1305::new((&self.key).into())
            .decrypt(
                XNonce::from_slice(nonce),
                chacha20poly1305::aead::Payload { msg: ct, aad },
            )
            .map_err(|_| {
                Error::Internal("cannot decrypt a stored secret: wrong encryption key?".into())
            })
    }

    /// HMAC-SHA256 under the instance key, for low-entropy one-time codes.
    pub fn keyed_hash(&self, data: &[u8]) -> Result<[u8; 32]> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .map_err(|_| Error::Internal("hmac key".into()))?;
        m.update(data);
        Ok(m.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open() {
        let s = Sealer::new([7; 32]);
        let c = s.seal(b"hello", b"user1").unwrap();
        assert_eq!(s.open(&c, b"user1").unwrap(), b"hello");
        assert!(s.open(&c, b"user2").is_err(), "aad binds the owner");
        assert!(Sealer::new([8; 32]).open(&c, b"user1").is_err());
        assert!(!c.windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn keys_parse() {
        assert_eq!(parse_key(&"ab".repeat(32)), Some([0xab; 32]));
        assert!(parse_key("short").is_none());
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert_eq!(parse_key(&b64), Some([1; 32]));
    }
}
