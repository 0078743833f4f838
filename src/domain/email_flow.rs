//! The flows that prove an address or recover an account by mail: email verification and
//! password reset. Tokens are 32 random bytes, stored as their SHA-256 (a lookup by hash
//! compares no secret byte by byte), single use (taken in the transaction that acts on them),
//! and never logged. Every attempt to use one is throttled like a sign-in, per address.

use uuid::Uuid;

use crate::auth::crypto;
use crate::error::{Error, Result};
use crate::model::{TokenKind, User};
use crate::state::AppState;
use crate::store::{self, WriteTransaction};

use super::mail::{self, Compose};
use super::{Caller, ClientInfo, audit, proof, user};

/// Reset requests handled per source address per hour (beyond: ignored, answered alike).
const PER_SENDER_PER_HOUR: u32 = 20;

/// A reset link is not sent to one account more often than this.
const RESET_SPACING: i64 = 300;

/// Queue the verification link for `u` in `tx` (registration, resend). Without mail: nothing.
pub fn send_verification(state: &AppState, tx: &WriteTransaction, u: &User) -> Result<()> {
    if !state.cfg.mail_enabled() || !mail::may_send(state, tx, &u.email)? {
        return Ok(());
    }
    let token = mail::issue_token(
        state,
        tx,
        TokenKind::VerifyEmail,
        u.id,
        &u.email,
        mail::VERIFY_TTL,
    )?;
    mail::queue(
        state,
        tx,
        &Compose {
            kind: "verify_email",
            to: &u.email,
            subject: "confirm your email address",
            paragraphs: &[
                format!("Hello {},", u.name),
                "Confirm that this address is yours by opening the page below and pressing Confirm. The link works once, for 24 hours.".into(),
                "If you did not create an account, ignore this message.".into(),
            ],
            action: Some((
                "Confirm your email address",
                format!("/auth/verify-email?token={}", mail::query_value(&token)),
            )),
        },
    )?;
    Ok(())
}

/// `POST /users/me/verify-email/resend`: a new link (the old one stops working). The hourly
/// cap per address bounds how often.
pub async fn resend(state: &AppState, caller: &Caller) -> Result<()> {
    if !state.cfg.mail_enabled() {
        return Err(Error::BadRequest(
            "this server sends no mail (no SMTP relay is configured)".into(),
        ));
    }
    if caller.user.email_verified() {
        return Err(Error::BadRequest(
            "your email address is already verified".into(),
        ));
    }
    let (st, uid) = (state.clone(), caller.user.id);
    state
        .store
        .write(move |tx| {
            let u = store::user::get(tx, uid)?.ok_or(Error::Unauthorized)?;
            send_verification(&st, tx, &u)
        })
        .await
}

/// Find, check and take a token of `kind` in `tx`: unknown, used, expired or of another kind
/// are all the same "invalid or expired link".
fn take(
    tx: &WriteTransaction,
    token: &str,
    kind: TokenKind,
    now: i64,
) -> Result<crate::model::EmailToken> {
    let invalid = || Error::BadRequest("this link is invalid or has expired".into());
    let hash = crypto::sha256(token.trim().as_bytes());
    match store::email_token::get(tx, &hash)? {
        Some(t) if t.kind == kind && t.expires_at > now => {
            store::email_token::take(tx, &hash)?;
            Ok(t)
        }
        Some(t) if t.expires_at <= now => {
            store::email_token::take(tx, &hash)?;
            Err(invalid())
        }
        _ => Err(invalid()),
    }
}

/// Count a token attempt from `client` against the sign-in throttle (a token is a proof).
fn throttle(state: &AppState, client: &ClientInfo) -> Result<()> {
    if let Some(l) = proof::of(state).limits() {
        state
            .limiter
            .register_attempt(client.ip, l, state.now())
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
    }
    Ok(())
}

/// `POST /auth/verify-email {token}` (and Posta's `GET …?token=`): the address is the
/// owner's. The account must still have the address the link was sent to.
pub async fn verify(state: &AppState, token: &str, client: &ClientInfo) -> Result<()> {
    throttle(state, client)?;
    let (st, token, cl, now) = (state.clone(), token.to_owned(), client.clone(), state.now());
    state
        .store
        .write(move |tx| {
            let t = take(tx, &token, TokenKind::VerifyEmail, now)?;
            let mut u = store::user::get(tx, t.user_id)?
                .filter(|u| u.email == t.email)
                .ok_or_else(|| Error::BadRequest("this link is invalid or has expired".into()))?;
            if u.email_verified_at.is_none() {
                u.email_verified_at = Some(now);
                u.updated_at = now;
                store::user::update(tx, &u)?;
                let mut ev = audit::event("user.email_verified", Some(u.id), Some(u.id), Some(&cl));
                ev.email = Some(&u.email);
                ev.record(&st, tx, now)?;
            }
            Ok(())
        })
        .await
}

/// `POST /auth/forgot-password`: the answer never waits for (or depends on) the lookup. The
/// address goes to a bounded queue; when it is full the request is dropped, which looks the
/// same to the caller. A crash in that instant loses one reset mail, which the user asks for
/// again.
pub fn request_reset(state: &AppState, email: &str, client: &ClientInfo) -> Result<()> {
    if !state.cfg.mail_enabled() {
        return Err(Error::BadRequest(
            "password reset by email is not available on this server (no SMTP relay is configured)"
                .into(),
        ));
    }
    if email.len() > 320 {
        return Err(Error::invalid("email", "is too long"));
    }
    if state
        .reset_requests
        .try_send((email.to_owned(), client.ip))
        .is_err()
    {
        tracing::warn!("password reset queue full: a request was dropped");
    }
    Ok(())
}

/// The background side of `forgot-password`: for an existing active account, a reset link
/// (at most one per account per five minutes), committed with its message.
pub async fn process_reset(state: &AppState, email: &str, ip: std::net::IpAddr) -> Result<()> {
    let Ok(canonical) = user::canonical(state, email) else {
        return Ok(());
    };
    let cl = ClientInfo {
        ip,
        user_agent: String::new(),
        device: None,
    };
    let (st, now) = (state.clone(), state.now());
    // One source cannot spray reset mail over many addresses either (grouped as the sign-in
    // throttle groups addresses: an IPv6 client holds a whole /64).
    let sender = format!("sender:{}", state.limiter.net(ip));
    state
        .store
        .write(move |tx| {
            if !store::mail_caps::take_in(tx, &sender, now, PER_SENDER_PER_HOUR, 3_600)? {
                return Ok(());
            }
            let Some(u) = store::user::by_email(tx, &canonical)?.filter(|u| u.active) else {
                return Ok(());
            };
            if recently_sent(tx, u.id, now)? || !mail::may_send(&st, tx, &u.email)? {
                return Ok(());
            }
            let token = mail::issue_token(
                &st,
                tx,
                TokenKind::PasswordReset,
                u.id,
                &u.email,
                mail::RESET_TTL,
            )?;
            let queued = mail::queue(
                &st,
                tx,
                &Compose {
                    kind: "password_reset",
                    to: &u.email,
                    subject: "reset your password",
                    paragraphs: &[
                        format!("Hello {},", u.name),
                        "Someone (hopefully you) asked to reset the password of your account. Open the page below to choose a new one. The link works once, for one hour.".into(),
                        "If it was not you, ignore this message: your password stays as it is.".into(),
                    ],
                    action: Some((
                        "Choose a new password",
                        format!("/auth/reset-password?token={}", mail::query_value(&token)),
                    )),
                },
            )?;
            if queued {
                let mut ev =
                    audit::event("password.reset_requested", None, Some(u.id), Some(&cl));
                ev.email = Some(&u.email);
                ev.record(&st, tx, now)?;
            }
            Ok(())
        })
        .await
}

/// Whether a reset link went to `user` in the last five minutes.
fn recently_sent(tx: &WriteTransaction, user: Uuid, now: i64) -> Result<bool> {
    use redb::ReadableTable;
    let t = tx.open_table(crate::store::tables::EMAIL_TOKENS)?;
    for row in t.iter()? {
        let tok = crate::store::codec::decode_token(row?.1.value())?;
        if tok.user_id == user
            && tok.kind == TokenKind::PasswordReset
            && now - tok.created_at < RESET_SPACING
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `POST /auth/reset-password {token, new_password}`: the password rules of everywhere; every
/// session of the account ends; the address counts as verified (the link proved it); a
/// notice goes to the address.
pub async fn reset(
    state: &AppState,
    token: &str,
    new_password: &str,
    client: &ClientInfo,
) -> Result<()> {
    throttle(state, client)?;
    // Which account, to check the password against its email and name before hashing.
    let hash = crypto::sha256(token.trim().as_bytes());
    let now = state.now();
    let invalid = || Error::BadRequest("this link is invalid or has expired".into());
    let t = state
        .store
        .read(|tx| store::email_token::get(tx, &hash))?
        .filter(|t| t.kind == TokenKind::PasswordReset && t.expires_at > now)
        .ok_or_else(invalid)?;
    let u = state
        .store
        .read(|tx| store::user::get(tx, t.user_id))?
        .ok_or_else(invalid)?;
    let phc = user::hash_checked_password(state, &u, new_password).await?;
    let (st, token, cl) = (state.clone(), token.to_owned(), client.clone());
    state
        .store
        .write(move |tx| {
            let t = take(tx, &token, TokenKind::PasswordReset, now)?;
            let mut u = store::user::get(tx, t.user_id)?
                .filter(|u| u.email == t.email && u.active)
                .ok_or_else(invalid)?;
            u.password_hash = Some(phc.clone());
            u.email_verified_at.get_or_insert(now);
            u.updated_at = now;
            store::user::update(tx, &u)?;
            store::session::remove_all_of(tx, u.id, None)?;
            let mut ev = audit::event("password.reset", Some(u.id), Some(u.id), Some(&cl));
            ev.email = Some(&u.email);
            ev.record(&st, tx, now)?;
            mail::queue(
                &st,
                tx,
                &Compose {
                    kind: "password_changed",
                    to: &u.email,
                    subject: "your password was changed",
                    paragraphs: &[
                        format!("Hello {},", u.name),
                        "The password of your account was just reset with a link sent to this address, and every session was signed out.".into(),
                        "If this was not you, contact your administrator at once.".into(),
                    ],
                    action: None,
                },
            )?;
            Ok(())
        })
        .await
}

/// The worker behind `forgot-password`: one request at a time, off the request path.
pub async fn reset_worker(state: AppState) {
    let inbox = match state.reset_inbox.lock() {
        Ok(mut g) => g.take(),
        Err(p) => p.into_inner().take(),
    };
    let Some(mut inbox) = inbox else {
        return;
    };
    while let Some((email, ip)) = inbox.recv().await {
        if let Err(e) = process_reset(&state, &email, ip).await {
            tracing::warn!(error = %e, "password reset request failed");
        }
    }
}

/// Sign-in alerts go to one account at most this often.
const ALERT_SPACING: i64 = 600;

/// Inside a sign-in's transaction: mail the owner about a sign-in from a browser this
/// account has not used before (unless turned off: `login_alerts`, or Posta's
/// `email_notifications`), at most once per ten minutes.
pub fn new_device_alert(
    state: &AppState,
    tx: &WriteTransaction,
    u: &User,
    client: &ClientInfo,
    how: &str,
    now: i64,
) -> Result<()> {
    if !state.cfg.mail_enabled() || !u.login_alerts {
        return Ok(());
    }
    if !super::prefs::notifications_on(store::prefs::get(tx, u.id)?.as_ref()) {
        return Ok(());
    }
    if !store::mail_caps::take_in(tx, &format!("login-alert:{}", u.id), now, 1, ALERT_SPACING)? {
        return Ok(());
    }
    let browser = if client.user_agent.is_empty() {
        "an unknown browser".to_owned()
    } else {
        client.user_agent.chars().take(200).collect()
    };
    mail::queue(
        state,
        tx,
        &Compose {
            kind: "new_device",
            to: &u.email,
            subject: "new sign-in to your account",
            paragraphs: &[
                format!("Hello {},", u.name),
                format!(
                    "Your account was signed in to from a browser it had not used before, at {} (UTC) from the address {}, with {browser} ({how}).",
                    crate::clock::rfc3339(now),
                    client.ip
                ),
                "If this was you, there is nothing to do. If not, change your password now and end your other sessions from your account page.".into(),
            ],
            action: Some(("Open your account", "/account".into())),
        },
    )?;
    Ok(())
}

/// An admin-issued reset link lives a day: it is handed over by hand.
pub const ADMIN_LINK_TTL: i64 = 86_400;

/// `POST /admin/users/{id}/reset-link` and `posta admin reset-link`: a one-time reset link for
/// the admin to hand over (mailed to the user as well when mail is configured). The link
/// works like a mailed one: the person chooses the password, the admin never knows it.
pub async fn admin_reset_link(
    state: &AppState,
    actor: super::Actor<'_>,
    id: Uuid,
) -> Result<(String, i64)> {
    let (aid, cl, origin) = actor.owned();
    let (st, now) = (state.clone(), state.now());
    let token = state
        .store
        .write(move |tx| {
            let u = store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
            if !u.active {
                return Err(Error::BadRequest(
                    "the account is disabled: enable it first".into(),
                ));
            }
            let token = mail::issue_token(
                &st,
                tx,
                TokenKind::PasswordReset,
                u.id,
                &u.email,
                ADMIN_LINK_TTL,
            )?;
            let path = format!("/auth/reset-password?token={}", mail::query_value(&token));
            if st.cfg.mail_enabled() {
                mail::queue(
                    &st,
                    tx,
                    &Compose {
                        kind: "password_reset",
                        to: &u.email,
                        subject: "reset your password",
                        paragraphs: &[
                            format!("Hello {},", u.name),
                            "An administrator sent you a link to choose a new password. It works once, for 24 hours.".into(),
                        ],
                        action: Some(("Choose a new password", path.clone())),
                    },
                )?;
            }
            let mut ev = audit::event("password.reset_link_issued", aid, Some(u.id), cl.as_ref());
            ev.email = Some(&u.email);
            ev.detail = format!("valid 24 h{origin}");
            ev.record(&st, tx, now)?;
            Ok(path)
        })
        .await?;
    let web = state.cfg.web_url.as_deref().unwrap_or_default();
    Ok((format!("{web}{token}"), now + ADMIN_LINK_TTL))
}

/// Remove expired tokens and per-recipient hours that are over.
pub async fn prune(state: &AppState) -> Result<usize> {
    let now = state.now();
    // Read first: most runs find nothing to remove and need no write.
    let any = state
        .store
        .read(|tx| Ok(store::email_token::count(tx)? + store::mail_caps::count(tx)?))?;
    if any == 0 {
        return Ok(0);
    }
    state
        .store
        .write(
            move |tx| Ok(store::email_token::prune(tx, now)? + store::mail_caps::prune(tx, now)?),
        )
        .await
}

/// `PUT /users/me/email {email, current_password}`: a confirmation link to the new address;
/// the change happens when it is followed. A taken address is answered like a free one (its
/// link then fails cleanly), so the answer tells nobody who has an account.
pub async fn request_email_change(
    state: &AppState,
    caller: &Caller,
    new_email: &str,
    given: Option<super::reauth::Given<'_>>,
    client: &ClientInfo,
) -> Result<()> {
    if !state.cfg.mail_enabled() {
        return Err(Error::BadRequest(
            "changing the address needs outgoing mail (no SMTP relay is configured); an admin can help".into(),
        ));
    }
    let new_email = user::canonical(state, new_email)?;
    if new_email == caller.user.email {
        return Err(Error::invalid("email", "is already your address"));
    }
    super::reauth::require_recent(state, caller, given, client, "change your email address")
        .await?;
    let (st, uid, cl, now) = (state.clone(), caller.user.id, client.clone(), state.now());
    state
        .store
        .write(move |tx| {
            let u = store::user::get(tx, uid)?.ok_or(Error::Unauthorized)?;
            if !mail::may_send(&st, tx, &new_email)? {
                return Ok(());
            }
            let token =
                mail::issue_token(&st, tx, TokenKind::EmailChange, uid, &new_email, mail::VERIFY_TTL)?;
            mail::queue(
                &st,
                tx,
                &Compose {
                    kind: "email_change",
                    to: &new_email,
                    subject: "confirm your new email address",
                    paragraphs: &[
                        format!("Hello {},", u.name),
                        "Confirm that your account should use this address from now on. The link works once, for 24 hours.".into(),
                        "If you did not ask for this, ignore this message.".into(),
                    ],
                    action: Some((
                        "Confirm the new address",
                        format!("/auth/confirm-email?token={}", mail::query_value(&token)),
                    )),
                },
            )?;
            let mut ev = audit::event("email.change_requested", Some(uid), Some(uid), Some(&cl));
            ev.email = Some(&u.email);
            ev.record(&st, tx, now)
        })
        .await
}

/// `POST /auth/confirm-email {token}`: the account moves to the new address (verified: the
/// link proved it); the old address gets a notice. An address taken meanwhile fails cleanly.
pub async fn confirm_email_change(
    state: &AppState,
    token: &str,
    client: &ClientInfo,
) -> Result<()> {
    throttle(state, client)?;
    let (st, token, cl, now) = (state.clone(), token.to_owned(), client.clone(), state.now());
    state
        .store
        .write(move |tx| {
            let t = take(tx, &token, TokenKind::EmailChange, now)?;
            let mut u = store::user::get(tx, t.user_id)?
                .filter(|u| u.active)
                .ok_or_else(|| Error::BadRequest("this link is invalid or has expired".into()))?;
            let old = u.email.clone();
            store::user::change_email(tx, &mut u, &t.email).map_err(|e| match e {
                Error::Conflict(_) => Error::Conflict(
                    "this address is already used by another account; the change was not made"
                        .into(),
                ),
                other => other,
            })?;
            u.email_verified_at = Some(now);
            u.updated_at = now;
            store::user::update(tx, &u)?;
            // Links sent to the old address no longer apply.
            store::email_token::remove_of(tx, u.id, None)?;
            let mut ev = audit::event("email.changed", Some(u.id), Some(u.id), Some(&cl));
            ev.email = Some(&u.email);
            ev.detail = format!("from {old}");
            ev.record(&st, tx, now)?;
            mail::queue(
                &st,
                tx,
                &Compose {
                    kind: "email_changed",
                    to: &old,
                    subject: "your email address was changed",
                    paragraphs: &[
                        format!("Hello {},", u.name),
                        format!(
                            "Your account now uses the address {} instead of this one.",
                            u.email
                        ),
                        "If this was not you, contact your administrator at once.".into(),
                    ],
                    action: None,
                },
            )?;
            Ok(())
        })
        .await
}

/// Delete self-registered accounts left unverified for `unverified_account_days` (0 keeps
/// them; only while a relay can send the link, which is the only way to verify). Each in its
/// own transaction, re-checked there. Returns how many.
pub async fn delete_unverified(state: &AppState) -> Result<usize> {
    let days = state.settings().unverified_account_days;
    if days == 0 || !state.cfg.mail_enabled() {
        return Ok(0);
    }
    let cutoff = state.now() - i64::from(days) * 86_400;
    // Only accounts created since mail was first configured were sent a link; older ones
    // (from before an upgrade, or from an install without a relay) are never removed.
    let Some(since) = state.store.read(store::meta::mail_since)? else {
        return Ok(0);
    };
    let stale = move |u: &User| {
        u.origin == crate::model::Origin::SelfRegistered
            && u.email_verified_at.is_none()
            && u.created_at >= since
            && u.created_at < cutoff
    };
    let ids = state.store.read(|tx| {
        let mut ids = Vec::new();
        store::user::for_each(tx, |u| {
            if stale(&u) {
                ids.push(u.id);
            }
            true
        })?;
        Ok(ids)
    })?;
    let mut n = 0;
    for id in ids {
        let (st, now) = (state.clone(), state.now());
        let done = state
            .store
            .write(move |tx| {
                let Some(u) = store::user::get(tx, id)?.filter(stale) else {
                    return Ok(false);
                };
                super::deletion::purge(tx, &u)?;
                let mut ev = audit::event("user.deleted", None, Some(id), None);
                ev.email = Some(&u.email);
                ev.detail = format!("email never verified in {days} days");
                ev.record(&st, tx, now)?;
                Ok(true)
            })
            .await?;
        n += usize::from(done);
    }
    Ok(n)
}

/// Remember when this store first ran with a relay configured: the unverified-account removal
/// only concerns accounts that were sent a verification link.
pub async fn mark_mail_start(state: &AppState) -> Result<()> {
    let now = state.now();
    state
        .store
        .write(move |tx| store::meta::set_mail_since_once(tx, now))
        .await
}
