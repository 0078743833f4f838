//! The second factor's checks, shared by the sign-in, 2FA management and re-authentication:
//! a TOTP code or a recovery code, consumed when right. A leaf among the use cases.

use uuid::Uuid;

use crate::auth::totp;
use crate::error::Result;
use crate::model::User;
use crate::state::AppState;

/// Associated data sealing a user's TOTP secret.
pub fn aad(user: Uuid) -> Vec<u8> {
    format!("totp:{user}").into_bytes()
}

/// The keyed hash a recovery code is stored as (normalised: letters and digits, lower case).
pub fn recovery_hash(state: &AppState, user: Uuid, code: &str) -> Result<[u8; 32]> {
    let norm: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    state.sealer.code_hash(format!("{user}:{norm}").as_bytes())
}

/// Check a TOTP or recovery code for `u` and consume it (advance the step or burn the
/// recovery code). The caller persists `u` in the same transaction.
pub fn consume_code(state: &AppState, u: &mut User, code: &str, now: i64) -> Result<bool> {
    let uid = u.id;
    let Some(t) = u.totp.as_mut() else {
        return Ok(false);
    };
    let secret = state.sealer.open(&t.secret_sealed, &aad(uid))?;
    if let Some(step) = totp::verify(&secret, code, now, t.last_step) {
        t.last_step = step;
        return Ok(true);
    }
    let h = recovery_hash(state, uid, code)?;
    let before = t.recovery_hashes.len();
    // SECURITY: compare every stored hash in constant time, no early exit.
    t.recovery_hashes
        .retain(|x| !bool::from(subtle::ConstantTimeEq::ct_eq(x.as_slice(), h.as_slice())));
    Ok(t.recovery_hashes.len() < before)
}
