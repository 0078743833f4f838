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
    if s.len() == 64
        && let Some(k) = from_hex(s)
    {
        return k.try_into().ok();
    }
    let b = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
        .ok()?;
    b.try_into().ok()
}

/// Bytes from hex text; `None` unless every pair of characters is a hex byte.
#[must_use]
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Hex rendering of a key, as written to the key file.
#[must_use]
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a server or command says when the key it was given is not the store's.
pub const WRONG_KEY: &str = "the encryption key does not match the one this store's secrets are sealed with (POSTA_ENCRYPTION_KEY, $CREDENTIALS_DIRECTORY/encryption_key, or encryption.key in the data directory): use the key that came with this store; a new key would make every 2FA sign-in fail";

/// Associated data of the sealed recovery-code hash key in the store's meta table.
pub const CODE_KEY_AAD: &[u8] = b"posta recovery-code hash key";

/// The instance's secret for data at rest: sealing secrets and keying hashes.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
    /// Keys the recovery-code hashes. It is the encryption key until the first rotation,
    /// which keeps the old key for this alone (sealed under the new one): the codes exist
    /// only as hashes, so they cannot be re-keyed, and users must not lose them.
    code_key: [u8; 32],
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
        Self { key, code_key: key }
    }

    /// The same sealer, hashing recovery codes under `code_key` (see the field).
    #[must_use]
    pub fn with_code_key(mut self, code_key: [u8; 32]) -> Self {
        self.code_key = code_key;
        self
    }

    /// The key recovery codes are hashed under, to carry over to a new encryption key.
    #[must_use]
    pub fn code_key(&self) -> [u8; 32] {
        self.code_key
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

    /// HMAC-SHA256 under the encryption key (the store's key check value).
    pub fn keyed_hash(&self, data: &[u8]) -> Result<[u8; 32]> {
        hmac(&self.key, data)
    }

    /// HMAC-SHA256 for low-entropy one-time codes, under the code key.
    pub fn code_hash(&self, data: &[u8]) -> Result<[u8; 32]> {
        hmac(&self.code_key, data)
    }
}

fn hmac(key: &[u8; 32], data: &[u8]) -> Result<[u8; 32]> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| Error::Internal("hmac key".into()))?;
    m.update(data);
    Ok(m.finalize().into_bytes().into())
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
