//! Passkeys: adding, naming and removing them on the account, signing in with one as the
//! second factor after a password (or SSO), and signing in with one alone.
//!
//! Every ceremony is stateless until it succeeds (`auth::passkey`); the start of a sign-in
//! costs no storage and is throttled per address; every finish goes through the proof
//! throttle (reserve, then settle) and the audit log.

use uuid::Uuid;

use crate::auth::passkey::{
    self as rp, Account, Assertion, Purpose, Refusal, RelyingParty, Started, StoredCredential,
};
use crate::error::{Error, Result};
use crate::model::{Passkey, User};
use crate::state::AppState;
use crate::store;

use super::proof::{self, Proofs};
use super::session::{self, SignedIn};
use super::{Actor, Caller, ClientInfo, audit, reauth};

/// Passkeys one account may hold.
pub const MAX_PER_ACCOUNT: usize = 20;

/// Longest passkey name, in characters.
const NAME_MAX: usize = 64;

fn relying_party(state: &AppState) -> Result<&RelyingParty> {
    state
        .passkeys
        .as_ref()
        .map_err(|why| Error::BadRequest(format!("passkeys are not available: {why}")))
}

fn clean_name(name: Option<&str>) -> Result<String> {
    let n = name.map_or("", str::trim);
    if n.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    if n.chars().count() > NAME_MAX {
        return Err(Error::invalid(
            "name",
            format!("at most {NAME_MAX} characters"),
        ));
    }
    Ok(if n.is_empty() {
        "Passkey".to_owned()
    } else {
        n.to_owned()
    })
}

fn session_binding(caller: &Caller) -> Result<Vec<u8>> {
    caller
        .session_id()
        .map(|s| s.as_bytes().to_vec())
        .ok_or_else(|| Error::Forbidden("sign in to do this".into()))
}

/// Mark a ceremony used; a second use (or a full set) is refused before anything is checked.
fn spend(state: &AppState, c: &rp::Ceremony) -> Result<()> {
    state
        .spent_ceremonies
        .spend(c, state.now())
        .map_err(|why| match why {
            rp::NotSpent::Replay => {
                Error::BadRequest("this passkey ceremony was already used: start again".into())
            }
            rp::NotSpent::Full => Error::Unavailable,
        })
}

/// `POST /users/me/passkeys/register/start`: creation options, with a recent proof.
pub async fn register_start(
    state: &AppState,
    caller: &Caller,
    given: Option<reauth::Given<'_>>,
    client: &ClientInfo,
) -> Result<Started> {
    let party = relying_party(state)?;
    let binding = session_binding(caller)?;
    reauth::require_recent(state, caller, given, client, "add a passkey").await?;
    let uid = caller.user.id;
    let existing = state.store.read(|tx| store::passkey::list_of(tx, uid))?;
    if existing.len() >= MAX_PER_ACCOUNT {
        return Err(Error::BadRequest(format!(
            "an account holds at most {MAX_PER_ACCOUNT} passkeys: remove one first"
        )));
    }
    let handle = existing
        .first()
        .and_then(|p| <[u8; rp::HANDLE_LEN]>::try_from(p.user_handle.as_slice()).ok())
        .unwrap_or_else(RelyingParty::new_user_handle);
    let exclude: Vec<(Vec<u8>, u8)> = existing
        .iter()
        .map(|p| (p.credential_id.clone(), p.transports))
        .collect();
    let account = Account {
        handle,
        email: &caller.user.email,
        name: &caller.user.name,
    };
    party.start_registration(&state.sealer, &binding, &account, &exclude, state.now())
}

/// `POST /users/me/passkeys/register/finish {name, ceremony, credential}`.
pub async fn register_finish(
    state: &AppState,
    caller: &Caller,
    name: Option<&str>,
    ceremony: &str,
    credential: &[u8],
    client: &ClientInfo,
) -> Result<Passkey> {
    let party = relying_party(state)?;
    let binding = session_binding(caller)?;
    let name = clean_name(name)?;
    let now = state.now();
    let c = rp::open(&state.sealer, Purpose::Register, &binding, ceremony, now)?;
    spend(state, &c)?;
    let new = party.finish_registration(&c, credential)?;
    let (st, cl, uid) = (state.clone(), client.clone(), caller.user.id);
    state
        .store
        .write(move |tx| {
            let u = store::user::get(tx, uid)?.ok_or(Error::Unauthorized)?;
            if !u.active {
                return Err(Error::Unauthorized);
            }
            let existing = store::passkey::list_of(tx, uid)?;
            if existing.len() >= MAX_PER_ACCOUNT {
                return Err(Error::BadRequest(format!(
                    "an account holds at most {MAX_PER_ACCOUNT} passkeys: remove one first"
                )));
            }
            // All of an account's passkeys share its handle; two first registrations racing
            // would give it two: the later one starts again.
            if existing
                .first()
                .is_some_and(|p| p.user_handle != new.user_handle)
            {
                return Err(Error::Conflict(
                    "another passkey was added meanwhile: start again".into(),
                ));
            }
            let p = Passkey {
                id: Uuid::new_v4(),
                user_id: uid,
                credential_id: new.id.clone(),
                user_handle: new.user_handle.to_vec(),
                name: name.clone(),
                public_key: new.static_state.clone(),
                state: new.dynamic_state,
                transports: new.transports,
                backed_up: new.backed_up,
                created_at: now,
                last_used_at: None,
            };
            store::passkey::insert(tx, &p)?;
            let mut ev = audit::event("passkey.added", Some(uid), Some(uid), Some(&cl));
            ev.email = Some(&u.email);
            ev.detail = p.name.clone();
            ev.record(&st, tx, now)?;
            Ok(p)
        })
        .await
}

/// `GET /users/me/passkeys`.
pub fn list(state: &AppState, caller: &Caller) -> Result<Vec<Passkey>> {
    let uid = caller.user.id;
    state.store.read(|tx| store::passkey::list_of(tx, uid))
}

/// `PUT /users/me/passkeys/{id} {name}`.
pub async fn rename(state: &AppState, caller: &Caller, id: Uuid, name: &str) -> Result<Passkey> {
    let name = clean_name(Some(name))?;
    let uid = caller.user.id;
    state
        .store
        .write(move |tx| {
            let mut p = store::passkey::list_of(tx, uid)?
                .into_iter()
                .find(|p| p.id == id)
                .ok_or(Error::NotFound("passkey"))?;
            p.name = name.clone();
            store::passkey::update(tx, &p)?;
            Ok(p)
        })
        .await
}

/// Whether `u` can still sign in without passkeys: a password or a linked identity provider.
fn other_way_in(tx: &impl store::Tx, u: &User) -> Result<bool> {
    Ok(u.password_hash.is_some() || !store::oauth::links_of(tx, u.id)?.is_empty())
}

/// `DELETE /users/me/passkeys/{id}`, with a recent proof; refused when it is the last way in.
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    given: Option<reauth::Given<'_>>,
    client: &ClientInfo,
) -> Result<()> {
    reauth::require_recent(state, caller, given, client, "remove a passkey").await?;
    let (st, cl, uid, now) = (state.clone(), client.clone(), caller.user.id, state.now());
    state
        .store
        .write(move |tx| {
            let u = store::user::get(tx, uid)?.ok_or(Error::Unauthorized)?;
            let keys = store::passkey::list_of(tx, uid)?;
            let p = keys
                .iter()
                .find(|p| p.id == id)
                .ok_or(Error::NotFound("passkey"))?;
            if keys.len() == 1 && !other_way_in(tx, &u)? {
                return Err(Error::BadRequest(
                    "this is your only way to sign in: add another passkey (or a password) first"
                        .into(),
                ));
            }
            store::passkey::remove(tx, uid, id)?;
            let mut ev = audit::event("passkey.removed", Some(uid), Some(uid), Some(&cl));
            ev.email = Some(&u.email);
            ev.detail = p.name.clone();
            ev.record(&st, tx, now)
        })
        .await
}

/// `DELETE /admin/users/{id}/passkeys` and `posta admin remove-passkeys` (a lost device):
/// every passkey of the account goes; how many.
pub async fn admin_remove_all(state: &AppState, actor: Actor<'_>, id: Uuid) -> Result<usize> {
    let (aid, cl, origin) = actor.owned();
    let (st, now) = (state.clone(), state.now());
    state
        .store
        .write(move |tx| {
            let u = store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
            let n = store::passkey::remove_all_of(tx, id)?;
            let mut ev = audit::event("passkey.reset", aid, Some(id), cl.as_ref());
            ev.email = Some(&u.email);
            ev.detail = format!("{n} passkeys removed{origin}");
            ev.record(&st, tx, now)?;
            Ok(n)
        })
        .await
}

/// Whether `user` has a passkey (it then counts as a second factor).
pub fn has_any(tx: &impl store::Tx, user: Uuid) -> Result<bool> {
    Ok(store::passkey::count_of(tx, user)? > 0)
}

/// `POST /auth/passkey/start`: request options for a sign-in with a passkey alone. Nothing is
/// stored; starts are counted per address.
pub fn sign_in_start(state: &AppState, client: &ClientInfo) -> Result<Started> {
    let party = relying_party(state)?;
    let now = state.now();
    if let Some(l) = proof::of(state).limits() {
        state
            .limiter
            .ceremony_start(client.ip, l, now)
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
    }
    party.start_authentication(&state.sealer, Purpose::SignIn, b"", now)
}

/// `POST /auth/login/passkey/start {pending_token}`: request options for the second step of
/// a sign-in whose first step succeeded.
pub fn second_factor_start(
    state: &AppState,
    pending_token: &str,
    client: &ClientInfo,
) -> Result<Started> {
    let party = relying_party(state)?;
    let now = state.now();
    let hash = crate::auth::crypto::sha256(pending_token.trim().as_bytes());
    let ip = client.ip.to_string();
    let ok = state.store.read(|tx| {
        let Some(p) = store::pending::get(tx, &hash)? else {
            return Ok(false);
        };
        Ok(p.expires_at > now && p.ip == ip && has_any(tx, p.user_id)?)
    })?;
    if !ok {
        return Err(Error::InvalidCredentials);
    }
    party.start_authentication(&state.sealer, Purpose::SecondFactor, &hash, now)
}

/// What an assertion is allowed to complete.
enum Goal {
    /// A sign-in with the passkey alone: any account's passkey.
    SignIn,
    /// The second step of the pending sign-in with this token hash.
    SecondFactor([u8; 32]),
}

/// `POST /auth/passkey/finish {ceremony, credential}`: a session, like a login. A passkey
/// with user verification is both factors: no TOTP is asked.
pub async fn sign_in_finish(
    state: &AppState,
    ceremony: &str,
    credential: &[u8],
    client: &ClientInfo,
) -> Result<SignedIn> {
    finish(state, Goal::SignIn, ceremony, credential, client).await
}

/// `POST /auth/login/passkey/finish {pending_token, ceremony, credential}`.
pub async fn second_factor_finish(
    state: &AppState,
    pending_token: &str,
    ceremony: &str,
    credential: &[u8],
    client: &ClientInfo,
) -> Result<SignedIn> {
    let hash = crate::auth::crypto::sha256(pending_token.trim().as_bytes());
    finish(
        state,
        Goal::SecondFactor(hash),
        ceremony,
        credential,
        client,
    )
    .await
}

async fn finish(
    state: &AppState,
    goal: Goal,
    ceremony: &str,
    credential: &[u8],
    client: &ClientInfo,
) -> Result<SignedIn> {
    let party = relying_party(state)?;
    let now = state.now();
    let (purpose, binding): (Purpose, &[u8]) = match &goal {
        Goal::SignIn => (Purpose::SignIn, b""),
        Goal::SecondFactor(h) => (Purpose::SecondFactor, h),
    };
    let c = rp::open(&state.sealer, purpose, binding, ceremony, now)?;
    spend(state, &c)?;
    let assertion = Assertion::parse(credential)?;
    let cred_id = assertion.credential_id();
    let found = state.store.read(|tx| {
        let Some(p) = store::passkey::by_credential(tx, &cred_id)? else {
            return Ok(None);
        };
        Ok(store::user::get(tx, p.user_id)?.map(|u| (p, u)))
    })?;
    // The throttle's account: the owner's address, or (unknown credential) the id itself,
    // so that guesses count on the client's address either way.
    let account = found.as_ref().map_or_else(
        || format!("passkey:{}", crate::auth::crypto::to_hex(&cred_id)),
        |(_, u)| u.email.clone(),
    );
    let proofs = proof::of(state);
    let attempt = proofs.reserve(&account, client, false, now).await?;
    // How the pending sign-in's first step went (`password`, `sso:<slug>`).
    let mut first_step = String::new();
    // (kind, reason) of a refusal, for the audit log.
    let refuse = |reason: &str| ("login.failure", reason.to_owned());
    let checked = match &found {
        None => Err(refuse("unknown passkey")),
        Some((p, u)) => {
            let pending_ok = match &goal {
                Goal::SignIn => true,
                Goal::SecondFactor(h) => {
                    let pd = state.store.read(|tx| store::pending::get(tx, h))?;
                    pd.filter(|pd| {
                        pd.user_id == u.id && pd.expires_at > now && pd.ip == client.ip.to_string()
                    })
                    .map(|pd| first_step = pd.method)
                    .is_some()
                }
            };
            if !pending_ok {
                Err(refuse(
                    "passkey of another account than the pending sign-in",
                ))
            } else if assertion.user_handle().as_slice() != p.user_handle.as_slice() {
                Err(refuse("user handle does not match the passkey"))
            } else {
                let stored = StoredCredential {
                    id: &p.credential_id,
                    user_handle: assertion.user_handle(),
                    static_state: &p.public_key,
                    dynamic_state: p.state,
                };
                match party.finish_authentication(&c, &assertion, &stored) {
                    Ok(v) => Ok(v),
                    Err(Refusal::CounterRegressed) => Err((
                        "passkey.cloned",
                        "signature counter went backwards: a copy of the passkey?".to_owned(),
                    )),
                    Err(Refusal::Invalid(why)) => Err(refuse(&format!("passkey refused: {why}"))),
                }
            }
        }
    };
    let verified = match checked {
        Ok(v) => v,
        Err((kind, reason)) => {
            let subject = found.as_ref().map(|(_, u)| u.id);
            let counted = proofs.failed(attempt, kind, subject, &account, &reason, client, now);
            return Err(match counted.await {
                Ok(()) => Error::InvalidCredentials,
                Err(e) => e,
            });
        }
    };
    let Some((p, u)) = found else {
        return Err(Error::InvalidCredentials);
    };
    if !u.active {
        return Err(proofs
            .refuse_disabled(attempt, u.id, &account, client, now)
            .await);
    }
    let (st, cl, cred) = (state.clone(), client.clone(), p.credential_id.clone());
    let how = match goal {
        Goal::SignIn => "passkey".to_owned(),
        Goal::SecondFactor(_) => format!("{first_step}+passkey"),
    };
    let res = state
        .store
        .write(move |tx| {
            if let Goal::SecondFactor(h) = &goal {
                // Taken with the sign-in: of two requests racing with one token, one wins.
                if store::pending::get(tx, h)?.is_none() {
                    return Ok(None);
                }
                store::pending::remove(tx, h)?;
            }
            let Some(mut p) = store::passkey::by_credential(tx, &cred)? else {
                return Ok(None);
            };
            if let Some(s) = verified.dynamic_state {
                p.state = s;
            }
            p.backed_up = verified.backed_up;
            p.last_used_at = Some(now);
            store::passkey::update(tx, &p)?;
            let u = store::user::get(tx, p.user_id)?.ok_or(Error::InvalidCredentials)?;
            if !u.active {
                return Ok(None);
            }
            session::complete_sign_in(&st, tx, u, &cl, now, &how, false).map(Some)
        })
        .await?;
    match res {
        Some(s) => {
            Proofs::succeeded(attempt);
            Ok(s)
        }
        None => {
            Proofs::passed(attempt);
            Err(Error::InvalidCredentials)
        }
    }
}
