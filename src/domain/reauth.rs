//! Recent proof of identity for sensitive changes (creating an API key, enrolling 2FA,
//! linking an identity provider): a stolen session must not be able to make its access
//! outlive the owner's next password change, or lock the owner out.
//!
//! A change passes when the session's last proof (its sign-in, or a later one) is less than
//! `reauth_window_minutes` old, or when the request carries one (`current_password` or
//! `code`), verified under the same throttle as a login. Otherwise: 403 `REAUTH_REQUIRED` with
//! a message a dashboard can show as it is.

use crate::auth::password;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store;

use super::proof::{self, Proofs};
use super::{Caller, ClientInfo, factor};

/// A proof given with a request.
#[derive(Clone, Copy)]
pub enum Given<'a> {
    /// The current password.
    Password(&'a str),
    /// A TOTP or recovery code.
    Code(&'a str),
}

/// Which kind of proof, never the proof.
impl std::fmt::Debug for Given<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Given::Password(_) => "Given::Password([redacted])",
            Given::Code(_) => "Given::Code([redacted])",
        })
    }
}

impl<'a> Given<'a> {
    /// The proof in a request's optional `current_password` and `code` fields.
    #[must_use]
    pub fn from_fields(password: Option<&'a str>, code: Option<&'a str>) -> Option<Self> {
        let some = |s: Option<&'a str>| s.filter(|s| !s.trim().is_empty());
        some(password)
            .map(Given::Password)
            .or_else(|| some(code).map(Given::Code))
    }
}

/// Let `what` (as in "sign in again to {what}") through if the caller's session proved its
/// identity recently or `given` proves it now (which then counts as the session's last proof).
pub async fn require_recent(
    state: &AppState,
    caller: &Caller,
    given: Option<Given<'_>>,
    client: &ClientInfo,
    what: &str,
) -> Result<()> {
    let Some(sid) = caller.session_id() else {
        return Err(Error::Forbidden("sign in to do this".into()));
    };
    let now = state.now();
    let window = i64::from(state.settings().reauth_window_minutes.max(1)) * 60;
    let proved_at = state
        .store
        .read(|tx| store::session::get(tx, sid))?
        .map_or(i64::MIN, |s| s.proved_at);
    if given.is_none() && proved_at.saturating_add(window) > now {
        return Ok(());
    }
    match given {
        Some(g) => prove(state, caller, g, client).await,
        None => Err(Error::ReauthRequired(format!(
            "sign in again to {what} (or confirm with your current password or a two-factor code)"
        ))),
    }
}

/// `POST /users/me/reauth`: prove identity now; the session's last proof becomes now.
pub async fn prove(
    state: &AppState,
    caller: &Caller,
    given: Given<'_>,
    client: &ClientInfo,
) -> Result<()> {
    let sid = caller
        .session_id()
        .ok_or_else(|| Error::Forbidden("sign in to do this".into()))?;
    let now = state.now();
    let u = &caller.user;
    let proofs = proof::of(state);
    let attempt = proofs.reserve(&u.email, client, false, now).await?;
    let ok = match given {
        Given::Password(pw) => {
            let (stored, pw) = (u.password_hash.clone(), pw.to_owned());
            state
                .hash_work(move |mem| {
                    stored
                        .as_deref()
                        .is_some_and(|h| password::verify_in(mem, h, &pw))
                })
                .await?
        }
        Given::Code(_) => false,
    };
    let code = match given {
        Given::Code(c) => Some(c.to_owned()),
        Given::Password(_) => None,
    };
    let (st, uid) = (state.clone(), u.id);
    let proved = state
        .store
        .write(move |tx| {
            let mut ok = ok;
            if let Some(c) = &code {
                let mut u = store::user::get(tx, uid)?.ok_or(Error::Unauthorized)?;
                ok = u.totp.is_some() && factor::consume_code(&st, &mut u, c, now)?;
                if ok {
                    store::user::update(tx, &u)?;
                }
            }
            if !ok {
                return Ok(false);
            }
            let Some(mut s) = store::session::get(tx, sid)? else {
                return Err(Error::Unauthorized);
            };
            s.proved_at = now;
            store::session::insert(tx, &s)?;
            Ok(true)
        })
        .await?;
    if proved {
        Proofs::succeeded(attempt);
        return Ok(());
    }
    let reason = "wrong proof on re-authentication";
    proofs
        .failed(
            attempt,
            "reauth.failure",
            Some(u.id),
            &u.email,
            reason,
            client,
            now,
        )
        .await?;
    Err(match given {
        Given::Password(_) => Error::invalid("current_password", "is incorrect"),
        Given::Code(_) => Error::InvalidTwoFactorCode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_proof() {
        let shown = format!(
            "{:?} {:?}",
            Given::Password("hunter2-pw"),
            Given::Code("123456")
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("123456"),
            "{shown}"
        );
    }
}
