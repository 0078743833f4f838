//! Invitations: an admin lets one person in, even while registration is closed. The link (7
//! days, single use) opens the dashboard's sign-up page with the address fixed; registering
//! with it creates the account with the invited address, verified (the mail proved it), and
//! the invited role, in the transaction that uses the invitation up.

use uuid::Uuid;

use crate::auth::crypto;
use crate::error::{Error, Result};
use crate::model::{Invitation, Origin, Role};
use crate::state::AppState;
use crate::store;

use super::mail::{self, Compose};
use super::session::{self, SignedIn};
use super::{Actor, ClientInfo, Page, audit, proof, user};

/// An invitation lives a week.
pub const TTL: i64 = 7 * 86_400;

/// `POST /admin/invitations`: the invitation, and its link (also mailed when mail is
/// configured; the admin hands it over otherwise). A newer invitation to the same address
/// replaces the older one.
pub async fn create(
    state: &AppState,
    actor: Actor<'_>,
    email: &str,
    role: Role,
    name: Option<String>,
) -> Result<(Invitation, String)> {
    let email = user::canonical(state, email)?;
    let name = name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(user::valid_name)
        .transpose()?;
    let secret = crypto::random_bytes::<32>()?;
    let token = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    };
    let hash = crypto::sha256(token.as_bytes());
    let now = state.now();
    let inv = Invitation {
        id: Uuid::new_v4(),
        email,
        role,
        name,
        invited_by: actor.id(),
        created_at: now,
        expires_at: now + TTL,
    };
    let path = format!("/auth/invitation?token={}", mail::query_value(&token));
    let (st, cl, origin, i, p) = (
        state.clone(),
        actor.client(),
        actor.origin(),
        inv.clone(),
        path.clone(),
    );
    state
        .store
        .write(move |tx| {
            if store::user::by_email(tx, &i.email)?.is_some() {
                return Err(Error::Conflict(
                    "an account with this email already exists".into(),
                ));
            }
            store::invitation::remove_where(tx, |x| x.email == i.email)?;
            store::invitation::put(tx, &hash, &i)?;
            if st.cfg.mail_enabled() {
                mail::queue(
                    &st,
                    tx,
                    &Compose {
                        kind: "invitation",
                        to: &i.email,
                        subject: "you are invited",
                        paragraphs: &[
                            "Hello,".into(),
                            "You are invited to create an account. Open the page below to choose your password. The link works once, for 7 days.".into(),
                        ],
                        action: Some(("Create your account", p.clone())),
                    },
                )?;
            }
            let mut ev = audit::event("invitation.created", i.invited_by, None, cl.as_ref());
            ev.email = Some(&i.email);
            ev.detail = format!("role {}{origin}", i.role.as_str());
            ev.record(&st, tx, now)
        })
        .await?;
    let web = state.cfg.web_url.as_deref().unwrap_or_default();
    Ok((inv, format!("{web}{path}")))
}

/// `GET /admin/invitations`: pending ones, newest first.
pub fn list(state: &AppState, page: usize, size: usize) -> Result<Page<Invitation>> {
    let now = state.now();
    let all: Vec<Invitation> = state
        .store
        .read(store::invitation::list)?
        .into_iter()
        .filter(|i| i.expires_at > now)
        .collect();
    Ok(Page::of(all, page, size))
}

/// `DELETE /admin/invitations/{id}`: the link stops working.
pub async fn revoke(state: &AppState, actor: Actor<'_>, id: Uuid) -> Result<()> {
    let (st, cl, aid, now) = (state.clone(), actor.client(), actor.id(), state.now());
    state
        .store
        .write(move |tx| {
            if !store::invitation::remove(tx, id)? {
                return Err(Error::NotFound("invitation"));
            }
            let mut ev = audit::event("invitation.revoked", aid, None, cl.as_ref());
            ev.detail = format!("invitation {id}");
            ev.record(&st, tx, now)
        })
        .await
}

fn count_attempt(state: &AppState, client: &ClientInfo) -> Result<()> {
    if let Some(l) = proof::of(state).limits() {
        state
            .limiter
            .register_attempt(client.ip, l, state.now())
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
    }
    Ok(())
}

fn invalid() -> Error {
    Error::BadRequest("this invitation is invalid or has expired".into())
}

/// `GET /auth/invitations/{token}`: what the sign-up page shows (the address and role).
pub fn peek(state: &AppState, token: &str, client: &ClientInfo) -> Result<Invitation> {
    count_attempt(state, client)?;
    let now = state.now();
    state
        .store
        .read(|tx| store::invitation::get(tx, &crypto::sha256(token.trim().as_bytes())))?
        .filter(|i| i.expires_at > now)
        .ok_or_else(invalid)
}

/// `POST /auth/register` with `invite_token`: the invited address and role, verified, open
/// registration or not. The body's email, when given, must be the invited one.
pub async fn register(
    state: &AppState,
    token: &str,
    name: &str,
    email: Option<&str>,
    password: &str,
    client: &ClientInfo,
) -> Result<SignedIn> {
    let inv = peek(state, token, client)?;
    if let Some(e) = email.filter(|e| !e.trim().is_empty())
        && user::canonical(state, e)? != inv.email
    {
        return Err(Error::invalid(
            "email",
            "must be the address the invitation was sent to",
        ));
    }
    let (name, canonical) = user::validate_new(state, name, &inv.email, password)?;
    let n = user::hash_new(state, name, canonical, password, inv.role).await?;
    let now = state.now();
    let u = user::new_record(n, now, Origin::Invitation, true);
    let hash = crypto::sha256(token.trim().as_bytes());
    session::register_with(state, u, client, move |tx| {
        store::invitation::take(tx, &hash)?
            .filter(|i| i.expires_at > now)
            .map(|_| ())
            .ok_or_else(invalid)
    })
    .await
}
