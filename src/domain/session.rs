//! Sign-in, registration, session tokens and request authentication.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use uuid::Uuid;

use crate::auth::jwt::{AUDIENCE, Claims};
use crate::auth::{api_key as keyfmt, password};
use crate::error::{Error, Result};
use crate::model::{Origin, Role, Session, User};
use crate::state::AppState;
use crate::store::{self, WriteTransaction};

use super::proof::{self, Proofs};
use super::{AuthKind, Caller, ClientInfo, audit, user};
use crate::auth::credential_cache::{Grant, VerificationId, Verified};
use crate::auth::throttle::Attempt;

/// A successful sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The session JWT.
    pub token: String,
    /// The user as stored after sign-in.
    pub user: User,
    /// Session expiry.
    pub expires_at: i64,
    /// The platform requires 2FA and the user must enrol before doing anything else.
    pub two_factor_setup_required: bool,
}

/// Create a session and its token inside `tx`.
pub fn open_session(
    state: &AppState,
    tx: &WriteTransaction,
    u: &User,
    client: &ClientInfo,
    now: i64,
) -> Result<(String, i64)> {
    let ttl = i64::from(state.cfg.session_ttl_hours) * 3600;
    let s = Session {
        id: Uuid::new_v4(),
        user_id: u.id,
        ip: client.ip.to_string(),
        user_agent: client.user_agent.clone(),
        created_at: now,
        expires_at: now + ttl,
        proved_at: now,
    };
    store::session::insert(tx, &s)?;
    let claims = Claims {
        sub: u.id.to_string(),
        email: u.email.clone(),
        role: u.role.as_str().to_owned(),
        aud: AUDIENCE.to_owned(),
        iss: state.jwt.issuer().to_owned(),
        iat: now,
        exp: s.expires_at,
        jti: s.id.to_string(),
    };
    Ok((state.jwt.sign(&claims)?, s.expires_at))
}

/// The common end of every sign-in, inside its transaction: record the login, open a
/// session, audit it.
pub fn complete_sign_in(
    state: &AppState,
    tx: &WriteTransaction,
    mut u: User,
    client: &ClientInfo,
    now: i64,
    how: &str,
    two_factor_setup_required: bool,
) -> Result<SignedIn> {
    let signed_in_before = u.last_login_at.is_some();
    u.last_login_at = Some(now);
    store::user::update(tx, &u)?;
    let mut new_device = false;
    if let Some(d) = &client.device {
        new_device = !store::throttle::device_known(tx, u.id, d)?;
        store::throttle::remember_device(tx, u.id, d, now)?;
    }
    if new_device && signed_in_before {
        super::email_flow::new_device_alert(state, tx, &u, client, how, now)?;
    }
    let (token, expires_at) = open_session(state, tx, &u, client, now)?;
    let mut ev = audit::event("login.success", Some(u.id), Some(u.id), Some(client));
    ev.email = Some(&u.email);
    ev.detail = how.to_owned();
    ev.record(state, tx, now)?;
    Ok(SignedIn {
        token,
        user: u,
        expires_at,
        two_factor_setup_required,
    })
}

/// The second factors `u` has, as a pending sign-in's `methods` lists them (none: the
/// password alone signs in).
pub fn second_factors(tx: &impl store::Tx, u: &User) -> Result<Vec<&'static str>> {
    let mut m = Vec::new();
    if u.totp.is_some() {
        m.extend(["totp", "recovery_code"]);
    }
    if store::passkey::count_of(tx, u.id)? > 0 {
        m.push("passkey");
    }
    Ok(m)
}

/// How long a first step waits for its second factor.
pub const PENDING_TTL: i64 = 5 * 60;

/// Inside `tx`: hand out a single-use token completing `user`'s sign-in with its second
/// factor, from the address `ip`, within [`PENDING_TTL`]. Only its SHA-256 is kept.
pub fn issue_pending(
    tx: &WriteTransaction,
    user: Uuid,
    ip: &str,
    method: &str,
    now: i64,
) -> Result<String> {
    let token = keyfmt::generate()?.key;
    let p = store::pending::Pending {
        user_id: user,
        ip: ip.to_owned(),
        method: method.to_owned(),
        expires_at: now + PENDING_TTL,
    };
    store::pending::prune(tx, now)?;
    store::pending::put(tx, &crate::auth::crypto::sha256(token.as_bytes()), &p)?;
    Ok(token)
}

/// `POST /auth/login {pending_token, two_factor_code}`: the second step of a sign-in whose
/// first step (a password, an SSO sign-in) succeeded. The token is single use (taken with the
/// sign-in it completes), bound to the first step's address, and wrong codes count against the
/// account as at any other proof.
pub async fn complete_pending(
    state: &AppState,
    token: &str,
    code: &str,
    client: &ClientInfo,
) -> Result<SignedIn> {
    let now = state.now();
    let hash = crate::auth::crypto::sha256(token.trim().as_bytes());
    let ip = client.ip.to_string();
    let found = state.store.read(|tx| {
        let Some(p) = store::pending::get(tx, &hash)? else {
            return Ok(None);
        };
        let u = store::user::get(tx, p.user_id)?;
        Ok(u.map(|u| (p, u)))
    })?;
    let Some((pending, u)) = found.filter(|(p, _)| p.expires_at > now && p.ip == ip) else {
        return Err(Error::InvalidCredentials);
    };
    let proofs = proof::of(state);
    let attempt = proofs.reserve(&u.email, client, false, now).await?;
    let setup_required = false;
    let (st, cl, code, id) = (state.clone(), client.clone(), code.to_owned(), u.id);
    let res = state
        .store
        .write(move |tx| {
            // Taken here, with the sign-in: of two requests racing with one token, one wins.
            if store::pending::get(tx, &hash)?.is_none() {
                return Ok(Err(false));
            }
            let mut u = store::user::get(tx, id)?.ok_or(Error::InvalidCredentials)?;
            if !u.active {
                return Ok(Err(false));
            }
            // An account without TOTP (its second factor is a passkey) has no code to give.
            if u.totp.is_none() || !super::factor::consume_code(&st, &mut u, &code, now)? {
                return Ok(Err(true));
            }
            store::pending::remove(tx, &hash)?;
            complete_sign_in(&st, tx, u, &cl, now, &pending.method, setup_required).map(Ok)
        })
        .await?;
    match res {
        Ok(s) => {
            Proofs::succeeded(attempt);
            Ok(s)
        }
        Err(false) => {
            Proofs::passed(attempt);
            Err(Error::InvalidCredentials)
        }
        Err(true) => {
            let reason = "invalid two-factor code";
            let e = fail(&proofs, attempt, &u.email, Some(id), reason, client, now).await;
            Err(if matches!(e, Error::InvalidCredentials) {
                Error::InvalidTwoFactorCode
            } else {
                e
            })
        }
    }
}

/// `POST /auth/login`.
pub async fn login(
    state: &AppState,
    email: &str,
    pw: &str,
    code: Option<&str>,
    client: &ClientInfo,
) -> Result<SignedIn> {
    let now = state.now();
    // Malformed emails still go through the same path and cost, keyed on the raw text.
    let account = user::canonical(state, email).unwrap_or_else(|_| email.trim().to_lowercase());
    if pw.len() > password::MAX_PASSWORD_BYTES {
        return Err(Error::InvalidCredentials);
    }
    let (found, owner, methods) = state.store.read(|tx| {
        let found = store::user::by_email(tx, &account)?;
        let owner = match (&found, &client.device) {
            (Some(u), Some(d)) => store::throttle::device_known(tx, u.id, d)?,
            _ => false,
        };
        let methods = match &found {
            Some(u) => second_factors(tx, u)?,
            None => Vec::new(),
        };
        Ok((found, owner, methods))
    })?;
    // The slot is taken before argon2 runs: parallel guesses cannot outrun the count.
    let proofs = proof::of(state);
    let attempt = proofs.reserve(&account, client, owner, now).await?;
    // SECURITY: unknown emails and password-less accounts verify against a dummy hash, so
    // every failure costs one argon2 verification and returns the same body.
    let hash = found
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_hash.clone());
    let (pw_owned, cost) = (pw.to_owned(), state.cost());
    let (ok, rehash) = state
        .hash_work(move |mem| {
            let ok = password::verify_in(mem, &hash, &pw_owned);
            let rehash = (ok && password::needs_rehash(&hash, cost))
                .then(|| password::hash_in(mem, &pw_owned, cost).ok())
                .flatten();
            (ok, rehash)
        })
        .await?;
    let u = match found {
        Some(u) if ok && u.password_hash.is_some() => u,
        other => {
            let reason = if other.is_some() {
                "wrong password"
            } else {
                "unknown email"
            };
            let subject = other.map(|u| u.id);
            return Err(fail(&proofs, attempt, &account, subject, reason, client, now).await);
        }
    };
    if !u.active {
        return Err(proofs
            .refuse_disabled(attempt, u.id, &account, client, now)
            .await);
    }
    // A code in the request completes a TOTP account at once; a passkey account always takes
    // the second step (its factor cannot ride in this request).
    let code_given = code.is_some_and(|c| !c.trim().is_empty());
    let completes_now = code_given && u.totp.is_some();
    if !methods.is_empty() && !completes_now {
        // The password was right: the slot goes back, the second step takes its own.
        Proofs::passed(attempt);
        let (uid, ip) = (u.id, client.ip.to_string());
        let pending_token = state
            .store
            .write(move |tx| issue_pending(tx, uid, &ip, "password", now))
            .await?;
        return Err(Error::TwoFactorRequired {
            pending_token,
            methods,
        });
    }
    let setup_required = state.settings().two_factor_required && methods.is_empty();
    let (st, cl, code) = (state.clone(), client.clone(), code.map(str::to_owned));
    let id = u.id;
    let res = state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, id)?.ok_or(Error::InvalidCredentials)?;
            if let Some(code) = &code
                && u.totp.is_some()
                && !super::factor::consume_code(&st, &mut u, code, now)?
            {
                return Ok(Err(()));
            }
            if let Some(h) = rehash.clone() {
                u.password_hash = Some(h);
            }
            complete_sign_in(&st, tx, u, &cl, now, "password", setup_required).map(Ok)
        })
        .await?;
    match res {
        Ok(s) => {
            Proofs::succeeded(attempt);
            Ok(s)
        }
        Err(()) => {
            let reason = "invalid two-factor code";
            let e = fail(&proofs, attempt, &account, Some(id), reason, client, now).await;
            Err(if matches!(e, Error::InvalidCredentials) {
                Error::InvalidTwoFactorCode
            } else {
                e
            })
        }
    }
}

async fn fail(
    proofs: &Proofs<'_>,
    attempt: Option<Attempt<'_>>,
    account: &str,
    subject: Option<Uuid>,
    reason: &str,
    client: &ClientInfo,
    now: i64,
) -> Error {
    let counted = proofs.failed(
        attempt,
        "login.failure",
        subject,
        account,
        reason,
        client,
        now,
    );
    match counted.await {
        Ok(()) => Error::InvalidCredentials,
        Err(e) => e,
    }
}

/// `POST /auth/register`.
pub async fn register(
    state: &AppState,
    name: &str,
    email: &str,
    pw: &str,
    client: &ClientInfo,
) -> Result<SignedIn> {
    if !state.registration_enabled() {
        return Err(Error::Forbidden("registration is disabled".into()));
    }
    let now = state.now();
    let (name, canonical) = user::validate_new(state, name, email, pw)?;
    let allowed = state.settings().allowed_signup_domains;
    let domain = canonical
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    if !allowed.is_empty() && !allowed.iter().any(|d| d == domain) {
        return Err(Error::Forbidden(
            "registration is not open to this email domain".into(),
        ));
    }
    // Counted once the input is valid (bad input costs nothing and touches no counter), and
    // before argon2 runs.
    if let Some(l) = proof::of(state).limits() {
        state
            .limiter
            .register_attempt(client.ip, l, now)
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
    }
    let n = user::hash_new(state, name, canonical, pw, Role::User).await?;
    // Nothing proved the address yet: unverified, and never linked to an identity provider
    // by email alone.
    let u = user::new_record(n, now, Origin::SelfRegistered, false);
    register_with(state, u, client, |_| Ok(())).await
}

/// Store a new account `u` and sign it in, in one transaction with `also` (an invitation used
/// up), which can refuse it.
pub async fn register_with(
    state: &AppState,
    u: User,
    client: &ClientInfo,
    mut also: impl FnMut(&WriteTransaction) -> Result<()> + Send + 'static,
) -> Result<SignedIn> {
    let now = state.now();
    let setup_required = state.settings().two_factor_required;
    let (st, cl) = (state.clone(), client.clone());
    state
        .store
        .write(move |tx| {
            also(tx)?;
            store::user::insert(tx, &u)?;
            if let Some(d) = &cl.device {
                store::throttle::remember_device(tx, u.id, d, now)?;
            }
            let (token, expires_at) = open_session(&st, tx, &u, &cl, now)?;
            let mut ev = audit::event("user.registered", Some(u.id), Some(u.id), Some(&cl));
            ev.email = Some(&u.email);
            if u.origin == Origin::Invitation {
                ev.detail = format!("invited, role {}", u.role.as_str());
            }
            ev.record(&st, tx, now)?;
            if u.email_verified_at.is_none() {
                super::email_flow::send_verification(&st, tx, &u)?;
            }
            Ok(SignedIn {
                token,
                user: u.clone(),
                expires_at,
                two_factor_setup_required: setup_required,
            })
        })
        .await
}

/// Authenticate a bearer credential (JWT or API key). Read-only: no write per request.
///
/// A credential verified since the last committed write is taken from the credential cache;
/// otherwise it is verified in full (signature or key hash, then the store) and cached.
/// `bearer` is the credential as presented: on a cache hit it equals, byte for byte, one that
/// was verified; anything else must be ASCII text before it is looked at.
pub fn authenticate(state: &AppState, bearer: &[u8], client: &ClientInfo) -> Result<Caller> {
    let now = state.now();
    // Loaded before any read, so a write committed meanwhile makes this copy stale.
    let generation = state.store.generation();
    let verified = match state.credentials.get(bearer, generation) {
        Some(v) => v,
        None => {
            let bearer = std::str::from_utf8(bearer)
                .ok()
                .filter(|b| b.is_ascii())
                .ok_or(Error::Unauthorized)?;
            let v = if keyfmt::looks_like_key(bearer.as_bytes()) {
                super::api_key::verify(state, bearer, now)?
            } else {
                verify_token(state, bearer, now)?
            };
            state
                .credentials
                .insert(bearer.as_bytes(), generation, v.clone());
            v
        }
    };
    admit(state, verified, client, now)
}

/// Verify a session JWT against its session row and user.
fn verify_token(state: &AppState, bearer: &str, now: i64) -> Result<Verified> {
    let claims = state.jwt.verify(bearer, now)?;
    let sid = Uuid::parse_str(&claims.jti).map_err(|_| Error::Unauthorized)?;
    let uid = Uuid::parse_str(&claims.sub).map_err(|_| Error::Unauthorized)?;
    let found = state.store.read(|tx| {
        let session = match store::session::get(tx, sid)? {
            Some(s) if s.user_id == uid && s.expires_at > now => s,
            _ => return Ok(None),
        };
        let Some(user) = store::user::get(tx, uid)? else {
            return Ok(None);
        };
        let mut linked = Vec::new();
        for l in store::oauth::links_of(tx, uid)? {
            if let Some(p) = store::oauth::provider(tx, l.provider_id)? {
                linked.push(p.slug);
            }
        }
        let has_passkey = store::passkey::count_of(tx, uid)? > 0;
        Ok(Some((session, user, linked, has_passkey)))
    })?;
    let (session, user, linked, has_passkey) = found
        .filter(|(_, u, _, _)| u.active)
        .ok_or(Error::Unauthorized)?;
    Ok(Verified {
        user: Arc::new(user),
        grant: Grant::Session {
            id: sid,
            linked_providers: linked.into(),
            has_passkey,
        },
        valid_until: claims.exp.min(session.expires_at),
        id: VerificationId::new(),
    })
}

/// The checks that hold per request, cached or not: expiry against the clock, a key's
/// address allow-list, and the platform's 2FA requirement (settings can change any time).
fn admit(state: &AppState, v: Verified, client: &ClientInfo, now: i64) -> Result<Caller> {
    if now >= v.valid_until {
        return Err(Error::Unauthorized);
    }
    let kind = match v.grant {
        Grant::Session {
            id,
            linked_providers,
            has_passkey,
        } => AuthKind::Session {
            id,
            // A passkey counts as the second factor (read with the session, cached with it:
            // adding or removing one is a write, which ends the cached verification).
            setup_required: v.user.totp.is_none() && !has_passkey && state.two_factor_required(),
            linked_providers,
        },
        Grant::ApiKey {
            id,
            scopes,
            allowed_ips,
            reported,
        } => {
            if allowed_ips.is_some_and(|nets| !nets.iter().any(|n| n.contains(&client.ip))) {
                return Err(Error::Forbidden(
                    "api key not allowed from this address".into(),
                ));
            }
            // Checked before swapping, so the shared line is only written once a second.
            if reported.load(Ordering::Relaxed) != now
                && reported.swap(now, Ordering::Relaxed) != now
            {
                state.key_usage.touch(id, now);
            }
            AuthKind::ApiKey { id, scopes }
        }
    };
    Ok(Caller {
        user: v.user,
        kind,
        verification: v.id,
    })
}

/// Sessions of the caller, newest first.
pub fn list(state: &AppState, caller: &Caller) -> Result<Vec<Session>> {
    let now = state.now();
    let mut v = state
        .store
        .read(|tx| store::session::list_of(tx, caller.user.id))?;
    v.retain(|s| s.expires_at > now);
    v.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(v)
}

/// Revoke one of the caller's sessions.
pub async fn revoke(state: &AppState, caller: &Caller, id: Uuid) -> Result<()> {
    let uid = caller.user.id;
    let removed = state
        .store
        .write(move |tx| match store::session::get(tx, id)? {
            Some(s) if s.user_id == uid => store::session::remove(tx, uid, id),
            _ => Ok(false),
        })
        .await?;
    if removed {
        Ok(())
    } else {
        Err(Error::NotFound("session"))
    }
}

/// Revoke all the caller's sessions but the current one.
pub async fn revoke_others(state: &AppState, caller: &Caller) -> Result<usize> {
    let (uid, keep) = (caller.user.id, caller.session_id());
    state
        .store
        .write(move |tx| store::session::remove_all_of(tx, uid, keep))
        .await
}

/// Revoke the current session.
pub async fn logout(state: &AppState, caller: &Caller) -> Result<()> {
    let sid = caller
        .session_id()
        .ok_or(Error::Forbidden("not a session".into()))?;
    let uid = caller.user.id;
    state
        .store
        .write(move |tx| store::session::remove(tx, uid, sid).map(|_| ()))
        .await
}

/// Delete expired sessions, abandoned SSO states and pending sign-ins (background task).
pub async fn prune(state: &AppState) -> Result<usize> {
    let now = state.now();
    state
        .store
        .write(move |tx| {
            Ok(store::session::prune_expired(tx, now)?
                + store::oauth::prune_states(tx, now)?
                + store::pending::prune(tx, now)?)
        })
        .await
}
