//! API keys, keyed by the hash of the key, with id and per-user indexes.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::{API_KEY_IDS, API_KEYS, USER_API_KEYS};
use crate::error::Result;
use crate::model::ApiKey;

/// The key whose SHA-256 is `hash`: one point read.
pub fn by_hash(tx: &impl Tx, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
    let Some(t) = tx.table(API_KEYS)? else {
        return Ok(None);
    };
    t.get(hash)?
        .map(|v| codec::decode_api_key(v.value()))
        .transpose()
}

/// A key by id.
pub fn get(tx: &impl Tx, id: Uuid) -> Result<Option<ApiKey>> {
    let Some(ids) = tx.table(API_KEY_IDS)? else {
        return Ok(None);
    };
    let Some(hash) = ids.get(id.as_u128())?.map(|v| v.value()) else {
        return Ok(None);
    };
    drop(ids);
    by_hash(tx, &hash)
}

/// Insert or overwrite a key.
pub fn put(tx: &WriteTransaction, k: &ApiKey) -> Result<()> {
    let bytes = codec::encode_api_key(k)?;
    tx.open_table(API_KEYS)?.insert(&k.hash, bytes.as_slice())?;
    tx.open_table(API_KEY_IDS)?
        .insert(k.id.as_u128(), &k.hash)?;
    tx.open_table(USER_API_KEYS)?
        .insert((k.user_id.as_u128(), k.id.as_u128()), ())?;
    Ok(())
}

/// Delete a key.
pub fn remove(tx: &WriteTransaction, k: &ApiKey) -> Result<()> {
    tx.open_table(API_KEYS)?.remove(&k.hash)?;
    tx.open_table(API_KEY_IDS)?.remove(k.id.as_u128())?;
    tx.open_table(USER_API_KEYS)?
        .remove((k.user_id.as_u128(), k.id.as_u128()))?;
    Ok(())
}

/// Revoke every key of `user_id` not yet revoked; how many.
pub fn revoke_all_of(tx: &WriteTransaction, user_id: Uuid, now: i64) -> Result<usize> {
    let mut n = 0;
    for mut k in list_of(tx, user_id)? {
        if k.revoked_at.is_none() {
            k.revoked_at = Some(now);
            put(tx, &k)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Keys of one user, oldest id first.
pub fn list_of(tx: &impl Tx, user_id: Uuid) -> Result<Vec<ApiKey>> {
    let Some(t) = tx.table(USER_API_KEYS)? else {
        return Ok(Vec::new());
    };
    let u = user_id.as_u128();
    let mut ids = Vec::new();
    for row in t.range((u, 0)..=(u, u128::MAX))? {
        ids.push(Uuid::from_u128(row?.0.value().1));
    }
    drop(t);
    let mut out = Vec::new();
    for id in ids {
        if let Some(k) = get(tx, id)? {
            out.push(k);
        }
    }
    Ok(out)
}

/// Every key.
pub fn list_all(tx: &impl Tx) -> Result<Vec<ApiKey>> {
    let Some(t) = tx.table(API_KEYS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(codec::decode_api_key(row?.1.value())?);
    }
    Ok(out)
}
