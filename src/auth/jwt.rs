//! Session JWTs: HS256 signing and strict verification with typed claims.
//!
//! The algorithm is pinned, `aud` and `iss` are checked, and `exp` is checked against the
//! injected clock (not the library's wall clock) so tests can move time.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Audience of dashboard session tokens.
pub const AUDIENCE: &str = "posta";

/// Claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Email at issue time (informational; the stored user is authoritative).
    pub email: String,
    /// Role at issue time (informational; the stored role is used for decisions).
    pub role: String,
    /// Audience, always [`AUDIENCE`].
    pub aud: String,
    /// Issuer.
    pub iss: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Session id.
    pub jti: String,
}

/// Signing and verification keys, built once at start-up.
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    header: Header,
    issuer: String,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys([redacted])")
    }
}

impl JwtKeys {
    /// Keys over an HMAC secret.
    #[must_use]
    pub fn new(secret: &[u8], issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        // exp is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Self {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
            header: Header::new(Algorithm::HS256),
            issuer: issuer.to_owned(),
        }
    }

    /// The issuer these keys sign as.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Sign claims.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&self.header, claims, &self.enc)
            .map_err(|e| Error::Internal(format!("jwt sign: {e}")))
    }

    /// Verify signature, algorithm, audience, issuer and expiry at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation)
            .map_err(|_| Error::Unauthorized)?;
        if data.claims.exp <= now {
            return Err(Error::Unauthorized);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn claims(now: i64) -> Claims {
        Claims {
            sub: "u".into(),
            email: "a@b.c".into(),
            role: "user".into(),
            aud: AUDIENCE.into(),
            iss: "posta".into(),
            iat: now,
            exp: now + 86_400,
            jti: "s".into(),
        }
    }

    #[test]
    fn sign_verify_expire() {
        let k = JwtKeys::new(&[1; 32], "posta");
        let t = k.sign(&claims(1000)).unwrap();
        assert_eq!(k.verify(&t, 1000).unwrap().sub, "u");
        assert!(k.verify(&t, 1000 + 86_400).is_err());
        assert!(JwtKeys::new(&[2; 32], "posta").verify(&t, 1000).is_err());
        assert!(JwtKeys::new(&[1; 32], "other").verify(&t, 1000).is_err());
    }

    #[test]
    fn alg_none_and_tampering_refused() {
        let k = JwtKeys::new(&[1; 32], "posta");
        let t = k.sign(&claims(1000)).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(
            k.verify(&format!("{none_header}.{}.", parts[1]), 1000)
                .is_err()
        );
        let mut c = claims(1000);
        c.role = "admin".into();
        let forged_payload = b64.encode(serde_json::to_vec(&c).unwrap());
        assert!(
            k.verify(&format!("{}.{forged_payload}.{}", parts[0], parts[2]), 1000)
                .is_err()
        );
    }
}
