//! Pending invitations (`invitations_v1`), stored under the SHA-256 of their token.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::INVITATIONS;
use crate::error::Result;
use crate::model::Invitation;

/// Store an invitation under the hash of its token.
pub fn put(tx: &WriteTransaction, hash: &[u8; 32], i: &Invitation) -> Result<()> {
    let bytes = codec::encode_invitation(i)?;
    tx.open_table(INVITATIONS)?.insert(hash, bytes.as_slice())?;
    Ok(())
}

/// An invitation by its token's hash.
pub fn get(tx: &impl Tx, hash: &[u8; 32]) -> Result<Option<Invitation>> {
    let Some(t) = tx.table(INVITATIONS)? else {
        return Ok(None);
    };
    t.get(hash)?
        .map(|v| codec::decode_invitation(v.value()))
        .transpose()
}

/// Remove and return an invitation by its token's hash.
pub fn take(tx: &WriteTransaction, hash: &[u8; 32]) -> Result<Option<Invitation>> {
    let mut t = tx.open_table(INVITATIONS)?;
    let v = t.remove(hash)?;
    v.map(|v| codec::decode_invitation(v.value())).transpose()
}

/// Every invitation, newest first.
pub fn list(tx: &impl Tx) -> Result<Vec<Invitation>> {
    let Some(t) = tx.table(INVITATIONS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(codec::decode_invitation(row?.1.value())?);
    }
    out.sort_by_key(|i| std::cmp::Reverse((i.created_at, i.id)));
    Ok(out)
}

/// Remove invitations matching `f`; returns how many.
pub fn remove_where(tx: &WriteTransaction, f: impl Fn(&Invitation) -> bool) -> Result<usize> {
    let mut t = tx.open_table(INVITATIONS)?;
    let mut gone = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        if f(&codec::decode_invitation(v.value())?) {
            gone.push(k.value());
        }
    }
    for k in &gone {
        t.remove(k)?;
    }
    Ok(gone.len())
}

/// Remove the invitation `id`; whether there was one.
pub fn remove(tx: &WriteTransaction, id: Uuid) -> Result<bool> {
    Ok(remove_where(tx, |i| i.id == id)? > 0)
}
