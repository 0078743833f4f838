//! RFC 6238 TOTP (SHA1, 6 digits, 30 s) with replay protection by time step.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::error::{Error, Result};

/// Seconds per step.
pub const STEP: u64 = 30;
/// Issuer shown by authenticator apps.
pub const ISSUER: &str = "Posta";

fn totp(secret: &[u8], email: &str) -> TOTP {
    TOTP::new_unchecked(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        secret.to_vec(),
        Some(ISSUER.to_owned()),
        email.to_owned(),
    )
}

/// A fresh 160-bit secret.
pub fn generate_secret() -> Result<[u8; 20]> {
    crate::auth::crypto::random_bytes::<20>()
}

/// Base32 (no padding) rendering of a secret, as apps expect.
#[must_use]
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

/// `otpauth://totp/Posta:<email>?secret=…&issuer=Posta`.
#[must_use]
pub fn otpauth_url(secret: &[u8], email: &str) -> String {
    totp(secret, email).get_url()
}

/// The code for a given Unix time (used by tests and the CLI).
#[must_use]
pub fn code_at(secret: &[u8], now: u64) -> String {
    totp(secret, "").generate(now)
}

/// Check `code` at `now` with ±1 step of drift. Returns the matched step, which must be
/// strictly greater than `last_step` (a code is accepted once per window).
pub fn verify(secret: &[u8], code: &str, now: i64, last_step: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now).ok()?;
    let current = now / STEP;
    let t = totp(secret, "");
    let mut found = None;
    // Check all three candidates so timing does not reveal which one matched.
    for step in [current.saturating_sub(1), current, current + 1] {
        let expected = t.generate(step * STEP);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && step > last_step {
            found = Some(step);
        }
    }
    found
}

/// An inline SVG QR code of `text`, as a data URI.
pub fn qr_svg_data_uri(text: &str) -> Result<String> {
    use base64::Engine;
    let code =
        qrcode::QrCode::new(text.as_bytes()).map_err(|e| Error::Internal(format!("qr: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA1 secret "12345678901234567890", truncated to 6 digits.
    #[test]
    fn rfc6238_vectors() {
        let s = b"12345678901234567890";
        assert_eq!(code_at(s, 59), "287082");
        assert_eq!(code_at(s, 1_111_111_109), "081804");
        assert_eq!(code_at(s, 1_234_567_890), "005924");
        assert_eq!(code_at(s, 2_000_000_000), "279037");
    }

    #[test]
    fn drift_and_replay() {
        let s = b"12345678901234567890";
        let now = 1_111_111_109;
        let code = code_at(s, now as u64);
        let step = verify(s, &code, now, 0).unwrap();
        assert!(verify(s, &code, now, step).is_none(), "replay refused");
        assert!(verify(s, &code, now + 30, 0).is_some(), "one step late ok");
        assert!(
            verify(s, &code, now + 90, 0).is_none(),
            "three steps late refused"
        );
        assert!(verify(s, "12345", now, 0).is_none());
    }

    #[test]
    fn url_shape() {
        let u = otpauth_url(&[0; 20], "a@b.c");
        assert!(u.starts_with("otpauth://totp/Posta:a%40b.c?secret="), "{u}");
        assert!(u.contains("issuer=Posta"));
        assert!(
            qr_svg_data_uri(&u)
                .unwrap()
                .starts_with("data:image/svg+xml;base64,")
        );
    }
}
