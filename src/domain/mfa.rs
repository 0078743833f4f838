//! TOTP enrolment, verification with replay protection, recovery codes, and reset.

use uuid::Uuid;

use crate::auth::totp;
use crate::error::{Error, Result};
use crate::model::Totp;
use crate::state::AppState;
use crate::store;

use super::factor::{aad, recovery_hash};
use super::proof::{self, Proofs};
use super::{Caller, ClientInfo, audit};

/// Number of recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// What setup shows once.
#[derive(Debug)]
pub struct Enrolment {
    /// Base32 secret.
    pub secret: String,
    /// otpauth URL.
    pub url: String,
    /// The URL as an SVG QR code data URI.
    pub qr_code: String,
}

/// `POST /users/me/2fa/setup`: a fresh pending secret (replacing any earlier pending one).
pub async fn setup(
    state: &AppState,
    caller: &Caller,
    given: Option<super::reauth::Given<'_>>,
    client: &ClientInfo,
) -> Result<Enrolment> {
    if caller.user.totp.is_some() {
        return Err(Error::Conflict(
            "two-factor authentication is already enabled".into(),
        ));
    }
    // A thief's own authenticator would lock the owner out: enrolling needs a recent proof.
    super::reauth::require_recent(
        state,
        caller,
        given,
        client,
        "set up two-factor authentication",
    )
    .await?;
    let secret = totp::generate_secret()?;
    let uid = caller.user.id;
    let sealed = state.sealer.seal(&secret, &aad(uid))?;
    let now = state.now();
    state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, uid)?.ok_or(Error::NotFound("user"))?;
            u.pending_totp = Some(sealed.clone());
            u.updated_at = now;
            store::user::update(tx, &u)
        })
        .await?;
    let url = totp::otpauth_url(&secret, &caller.user.email);
    Ok(Enrolment {
        secret: totp::secret_base32(&secret),
        qr_code: totp::qr_svg_data_uri(&url)?,
        url,
    })
}

fn new_recovery_code() -> Result<String> {
    const A: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let b = crate::auth::crypto::random_bytes::<10>()?;
    let s: String = b
        .iter()
        .filter_map(|x| A.get(usize::from(*x) % A.len()))
        .map(|c| char::from(*c))
        .collect();
    Ok(format!(
        "{}-{}",
        s.get(..5).unwrap_or_default(),
        s.get(5..).unwrap_or_default()
    ))
}

/// `POST /users/me/2fa/verify`: enable 2FA with the first code; returns the recovery codes.
pub async fn verify(
    state: &AppState,
    caller: &Caller,
    code: &str,
    client: &ClientInfo,
) -> Result<Vec<String>> {
    let uid = caller.user.id;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    let mut hashes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let c = new_recovery_code()?;
        hashes.push(recovery_hash(state, uid, &c)?);
        codes.push(c);
    }
    let (st, cl, code, now) = (state.clone(), client.clone(), code.to_owned(), state.now());
    state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, uid)?.ok_or(Error::NotFound("user"))?;
            if u.totp.is_some() {
                return Err(Error::Conflict(
                    "two-factor authentication is already enabled".into(),
                ));
            }
            let sealed = u
                .pending_totp
                .clone()
                .ok_or_else(|| Error::BadRequest("call /users/me/2fa/setup first".into()))?;
            let secret = st.sealer.open(&sealed, &aad(uid))?;
            let step = totp::verify(&secret, &code, now, 0).ok_or(Error::InvalidTwoFactorCode)?;
            u.totp = Some(Totp {
                secret_sealed: sealed,
                last_step: step,
                recovery_hashes: hashes.clone(),
            });
            u.pending_totp = None;
            u.updated_at = now;
            store::user::update(tx, &u)?;
            audit::event("2fa.enabled", Some(uid), Some(uid), Some(&cl)).record(&st, tx, now)
        })
        .await?;
    Ok(codes)
}

/// `POST /users/me/2fa/disable` with a TOTP or recovery code.
pub async fn disable(
    state: &AppState,
    caller: &Caller,
    code: &str,
    client: &ClientInfo,
) -> Result<()> {
    let now = state.now();
    let proofs = proof::of(state);
    let attempt = proofs
        .reserve(&caller.user.email, client, false, now)
        .await?;
    let (st, cl, code, uid) = (
        state.clone(),
        client.clone(),
        code.to_owned(),
        caller.user.id,
    );
    let ok = state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, uid)?.ok_or(Error::NotFound("user"))?;
            if u.totp.is_none() {
                return Err(Error::BadRequest(
                    "two-factor authentication is not enabled".into(),
                ));
            }
            if !super::factor::consume_code(&st, &mut u, &code, now)? {
                return Ok(false);
            }
            u.totp = None;
            u.updated_at = now;
            store::user::update(tx, &u)?;
            audit::event("2fa.disabled", Some(uid), Some(uid), Some(&cl)).record(&st, tx, now)?;
            Ok(true)
        })
        .await?;
    if ok {
        Proofs::succeeded(attempt);
        Ok(())
    } else {
        proofs
            .failed(
                attempt,
                "2fa.disable_failure",
                Some(uid),
                &caller.user.email,
                "invalid two-factor code",
                client,
                now,
            )
            .await?;
        Err(Error::InvalidTwoFactorCode)
    }
}

/// Turn 2FA off for a user who lost the device (admin API and CLI).
pub async fn reset(
    state: &AppState,
    actor: Option<Uuid>,
    uid: Uuid,
    client: Option<&ClientInfo>,
) -> Result<()> {
    let (st, cl, now) = (state.clone(), client.cloned(), state.now());
    state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, uid)?.ok_or(Error::NotFound("user"))?;
            u.totp = None;
            u.pending_totp = None;
            u.updated_at = now;
            store::user::update(tx, &u)?;
            let mut ev = audit::event("2fa.reset", actor, Some(uid), cl.as_ref());
            ev.detail = "by administrator".into();
            ev.record(&st, tx, now)
        })
        .await
}
