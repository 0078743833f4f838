//! API keys: minting, listing, revocation, deletion and authentication (the hot path).

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::auth::api_key as keyfmt;
use crate::config::parse_net;
use crate::error::{Error, Result};
use crate::model::ApiKey;
use crate::state::AppState;
use crate::store;

use super::{Caller, ClientInfo, Page, audit};
use crate::auth::credential_cache::{Grant, VerificationId, Verified};

/// Scopes a key may carry.
pub const SCOPES: &[&str] = &["send", "read", "*"];

/// Validated creation input.
#[derive(Debug, Default)]
pub struct NewKeyInput {
    /// Label.
    pub name: String,
    /// IPs/CIDRs.
    pub allowed_ips: Vec<String>,
    /// Days until expiry; 0 = never; none = the owner's `api_key_expiry_days`.
    pub expires_in_days: Option<u32>,
    /// Scopes; default `send`.
    pub scopes: Option<Vec<String>>,
}

/// A minted key: shown once.
#[derive(Debug)]
pub struct Minted {
    /// The full key text.
    pub key: String,
    /// The stored record.
    pub record: ApiKey,
}

/// `POST /users/me/api-keys`.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: NewKeyInput,
    given: Option<super::reauth::Given<'_>>,
    client: &ClientInfo,
) -> Result<Minted> {
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "is required (1-100 characters)"));
    }
    // A key outlives a password change: minting one needs a recent proof of identity.
    super::reauth::require_recent(state, caller, given, client, "create an API key").await?;
    let scopes = input.scopes.unwrap_or_else(|| vec!["send".into()]);
    if scopes.is_empty() {
        return Err(Error::invalid("scopes", "must not be empty"));
    }
    for s in &scopes {
        if !SCOPES.contains(&s.as_str()) {
            return Err(Error::invalid(
                "scopes",
                format!("unknown scope {s:?} (allowed: send, read, *)"),
            ));
        }
    }
    let mut allowed_ips = Vec::new();
    for ip in &input.allowed_ips {
        let net = parse_net(ip.trim())
            .ok_or_else(|| Error::invalid("allowed_ips", format!("{ip:?} is not an IP or CIDR")))?;
        allowed_ips.push(net.to_string());
    }
    let now = state.now();
    // Omitted: the owner's `api_key_expiry_days` (Posta's default 90); 0: never.
    let days = match input.expires_in_days {
        Some(d) => d,
        None => super::prefs::api_key_expiry_days(state, caller.user.id)?,
    };
    let expires_at = match days {
        0 => None,
        d if d > 3650 => {
            return Err(Error::invalid("expires_in_days", "must be at most 3650"));
        }
        d => Some(now + i64::from(d) * 86_400),
    };
    let minted = keyfmt::generate()?;
    let record = ApiKey {
        id: Uuid::new_v4(),
        user_id: caller.user.id,
        name,
        prefix: minted.prefix,
        hash: minted.hash,
        scopes,
        allowed_ips,
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    let (st, cl, rec) = (state.clone(), client.clone(), record.clone());
    state
        .store
        .write(move |tx| {
            store::api_key::put(tx, &rec)?;
            let mut ev = audit::event(
                "api_key.created",
                Some(rec.user_id),
                Some(rec.user_id),
                Some(&cl),
            );
            ev.detail = format!("key {} ({})", rec.id, rec.prefix);
            ev.record(&st, tx, now)
        })
        .await?;
    Ok(Minted {
        key: minted.key,
        record,
    })
}

/// Keys of the caller, newest first, paged, with pending usage merged in.
pub fn list_own(
    state: &AppState,
    caller: &Caller,
    page: usize,
    size: usize,
) -> Result<Page<ApiKey>> {
    let mut all = state
        .store
        .read(|tx| store::api_key::list_of(tx, caller.user.id))?;
    sort_and_merge(state, &mut all);
    Ok(Page::of(all, page, size))
}

/// One of the caller's keys (someone else's is not found).
pub fn get_own(state: &AppState, caller: &Caller, id: Uuid) -> Result<ApiKey> {
    let mut k = state
        .store
        .read(|tx| store::api_key::get(tx, id))?
        .filter(|k| k.user_id == caller.user.id)
        .ok_or(Error::NotFound("api key"))?;
    sort_and_merge(state, std::slice::from_mut(&mut k));
    Ok(k)
}

/// Every key (admin), paged.
pub fn list_all(state: &AppState, page: usize, size: usize) -> Result<Page<ApiKey>> {
    let mut all = state.store.read(store::api_key::list_all)?;
    sort_and_merge(state, &mut all);
    Ok(Page::of(all, page, size))
}

fn sort_and_merge(state: &AppState, v: &mut [ApiKey]) {
    for k in v.iter_mut() {
        if let Some(t) = state.key_usage.pending(k.id) {
            k.last_used_at = Some(t);
        }
    }
    v.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.id)));
}

/// `PUT /users/me/api-keys/{id}/revoke`.
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    client: &ClientInfo,
) -> Result<ApiKey> {
    let (st, cl, uid, now) = (state.clone(), client.clone(), caller.user.id, state.now());
    state
        .store
        .write(move |tx| {
            let mut k = store::api_key::get(tx, id)?
                .filter(|k| k.user_id == uid)
                .ok_or(Error::NotFound("api key"))?;
            if k.revoked_at.is_none() {
                k.revoked_at = Some(now);
                store::api_key::put(tx, &k)?;
                let mut ev = audit::event("api_key.revoked", Some(uid), Some(uid), Some(&cl));
                ev.detail = format!("key {} ({})", k.id, k.prefix);
                ev.record(&st, tx, now)?;
            }
            Ok(k)
        })
        .await
}

/// `DELETE /users/me/api-keys/{id}` (own, revoked or expired) and the admin delete (any).
pub async fn delete(
    state: &AppState,
    actor: &Caller,
    id: Uuid,
    as_admin: bool,
    client: &ClientInfo,
) -> Result<()> {
    let (st, cl, uid, now) = (state.clone(), client.clone(), actor.user.id, state.now());
    state
        .store
        .write(move |tx| {
            let k = store::api_key::get(tx, id)?
                .filter(|k| as_admin || k.user_id == uid)
                .ok_or(Error::NotFound("api key"))?;
            let dead = k.revoked_at.is_some() || k.expires_at.is_some_and(|e| e <= now);
            if !as_admin && !dead {
                return Err(Error::BadRequest(
                    "revoke the key before deleting it".into(),
                ));
            }
            store::api_key::remove(tx, &k)?;
            let mut ev = audit::event("api_key.deleted", Some(uid), Some(k.user_id), Some(&cl));
            ev.detail = format!("key {} ({})", k.id, k.prefix);
            ev.record(&st, tx, now)
        })
        .await
}

/// Verify a presented key: it exists (one point read by its SHA-256), is neither revoked nor
/// expired, and its user is active. Per-request checks (address, expiry against the clock)
/// are the caller's, so they also apply to cached verifications.
pub fn verify(state: &AppState, presented: &str, now: i64) -> Result<Verified> {
    let hash = keyfmt::hash(presented);
    let (key, user) = state.store.read(|tx| {
        let Some(k) = store::api_key::by_hash(tx, &hash)? else {
            return Ok((None, None));
        };
        let u = store::user::get(tx, k.user_id)?;
        Ok((Some(k), u))
    })?;
    let key = key
        .filter(|k| bool::from(k.hash.ct_eq(&hash)))
        .ok_or(Error::Unauthorized)?;
    if key.revoked_at.is_some() || key.expires_at.is_some_and(|e| e <= now) {
        return Err(Error::Unauthorized);
    }
    let user = user.filter(|u| u.active).ok_or(Error::Unauthorized)?;
    Ok(Verified {
        user: Arc::new(user),
        grant: Grant::ApiKey {
            id: key.id,
            // An allow-list stays one even if no entry parses: it then admits nobody.
            allowed_ips: (!key.allowed_ips.is_empty()).then(|| {
                key.allowed_ips
                    .iter()
                    .filter_map(|n| parse_net(n))
                    .collect()
            }),
            scopes: key.scopes.into(),
            reported: Arc::new(AtomicI64::new(i64::MIN)),
        },
        valid_until: key.expires_at.unwrap_or(i64::MAX),
        id: VerificationId::new(),
    })
}

/// Write pending `last_used_at` values in one transaction.
pub async fn flush_usage(state: &AppState) -> Result<usize> {
    let pending = state.key_usage.take();
    if pending.is_empty() {
        return Ok(0);
    }
    state
        .store
        .write(move |tx| {
            let mut n = 0;
            for (&id, &t) in &pending {
                if let Some(mut k) = store::api_key::get(tx, id)?
                    && k.last_used_at.is_none_or(|old| old < t)
                {
                    k.last_used_at = Some(t);
                    store::api_key::put(tx, &k)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
}
