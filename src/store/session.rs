//! Sessions (JWT ids) and the per-user session index.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::{SESSIONS, USER_SESSIONS};
use crate::error::Result;
use crate::model::Session;

/// A session by id.
pub fn get(tx: &impl Tx, id: Uuid) -> Result<Option<Session>> {
    let Some(t) = tx.table(SESSIONS)? else {
        return Ok(None);
    };
    t.get(id.as_u128())?
        .map(|v| codec::decode_session(v.value()))
        .transpose()
}

/// Store a new session.
pub fn insert(tx: &WriteTransaction, s: &Session) -> Result<()> {
    let bytes = codec::encode_session(s)?;
    tx.open_table(SESSIONS)?
        .insert(s.id.as_u128(), bytes.as_slice())?;
    tx.open_table(USER_SESSIONS)?
        .insert((s.user_id.as_u128(), s.id.as_u128()), ())?;
    Ok(())
}

/// Remove one session; returns whether it existed.
pub fn remove(tx: &WriteTransaction, user_id: Uuid, id: Uuid) -> Result<bool> {
    let existed = tx.open_table(SESSIONS)?.remove(id.as_u128())?.is_some();
    tx.open_table(USER_SESSIONS)?
        .remove((user_id.as_u128(), id.as_u128()))?;
    Ok(existed)
}

/// Session ids of a user.
pub fn ids_of(tx: &impl Tx, user_id: Uuid) -> Result<Vec<Uuid>> {
    let Some(t) = tx.table(USER_SESSIONS)? else {
        return Ok(Vec::new());
    };
    let u = user_id.as_u128();
    let mut out = Vec::new();
    for row in t.range((u, 0)..=(u, u128::MAX))? {
        let (k, ()) = (row?.0.value(), ());
        out.push(Uuid::from_u128(k.1));
    }
    Ok(out)
}

/// Sessions of a user.
pub fn list_of(tx: &impl Tx, user_id: Uuid) -> Result<Vec<Session>> {
    let mut out = Vec::new();
    for id in ids_of(tx, user_id)? {
        if let Some(s) = get(tx, id)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Remove every session of a user except `keep`; returns how many were removed.
pub fn remove_all_of(tx: &WriteTransaction, user_id: Uuid, keep: Option<Uuid>) -> Result<usize> {
    let mut n = 0;
    for id in ids_of(tx, user_id)? {
        if Some(id) != keep && remove(tx, user_id, id)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Delete sessions that expired before `now`; returns how many.
pub fn prune_expired(tx: &WriteTransaction, now: i64) -> Result<usize> {
    let mut dead = Vec::new();
    {
        let t = tx.open_table(SESSIONS)?;
        for row in t.iter()? {
            let (_, v) = row?;
            let s = codec::decode_session(v.value())?;
            if s.expires_at <= now {
                dead.push((s.user_id, s.id));
            }
        }
    }
    for (u, id) in &dead {
        remove(tx, *u, *id)?;
    }
    Ok(dead.len())
}

/// Number of stored sessions.
pub fn count(tx: &impl Tx) -> Result<u64> {
    use redb::ReadableTableMetadata;
    Ok(match tx.table(SESSIONS)? {
        Some(t) => t.len()?,
        None => 0,
    })
}
