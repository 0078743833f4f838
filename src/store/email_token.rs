//! Single-use tokens sent by mail (`email_tokens_v1`), stored under their SHA-256.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::EMAIL_TOKENS;
use crate::error::Result;
use crate::model::{EmailToken, TokenKind};

/// Store a token under the hash of its secret.
pub fn put(tx: &WriteTransaction, hash: &[u8; 32], t: &EmailToken) -> Result<()> {
    let bytes = codec::encode_token(t)?;
    tx.open_table(EMAIL_TOKENS)?
        .insert(hash, bytes.as_slice())?;
    Ok(())
}

/// A token by the hash of its secret, without consuming it.
pub fn get(tx: &impl Tx, hash: &[u8; 32]) -> Result<Option<EmailToken>> {
    let Some(t) = tx.table(EMAIL_TOKENS)? else {
        return Ok(None);
    };
    t.get(hash)?
        .map(|v| codec::decode_token(v.value()))
        .transpose()
}

/// Remove and return a token (single use: whoever takes it in a transaction that commits
/// used it).
pub fn take(tx: &WriteTransaction, hash: &[u8; 32]) -> Result<Option<EmailToken>> {
    let mut t = tx.open_table(EMAIL_TOKENS)?;
    let v = t.remove(hash)?;
    v.map(|v| codec::decode_token(v.value())).transpose()
}

/// Remove a user's tokens of one kind (a newer one replaces them, or the account changed);
/// returns how many.
pub fn remove_of(tx: &WriteTransaction, user: Uuid, kind: Option<TokenKind>) -> Result<usize> {
    let mut t = tx.open_table(EMAIL_TOKENS)?;
    let mut gone = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let tok = codec::decode_token(v.value())?;
        if tok.user_id == user && kind.is_none_or(|kd| kd == tok.kind) {
            gone.push(k.value());
        }
    }
    for k in &gone {
        t.remove(k)?;
    }
    Ok(gone.len())
}

/// Remove expired tokens; returns how many.
pub fn prune(tx: &WriteTransaction, now: i64) -> Result<usize> {
    let mut t = tx.open_table(EMAIL_TOKENS)?;
    let mut gone = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        if codec::decode_token(v.value())?.expires_at <= now {
            gone.push(k.value());
        }
    }
    for k in &gone {
        t.remove(k)?;
    }
    Ok(gone.len())
}

/// Rows stored.
pub fn count(tx: &impl super::db::Tx) -> Result<u64> {
    use redb::ReadableTableMetadata;
    Ok(match tx.table(EMAIL_TOKENS)? {
        Some(t) => t.len()?,
        None => 0,
    })
}
