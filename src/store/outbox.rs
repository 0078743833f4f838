//! The outbox (`outbox_v1`): messages committed with the change that caused them, delivered
//! by the mail sender, and removed once delivered or given up.

use redb::{ReadableTable, ReadableTableMetadata};

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::OUTBOX;
use crate::error::Result;
use crate::model::Mail;

/// Queue `m` (its id is assigned here). Beyond `cap` messages the oldest one that already
/// failed an attempt gives way first, else the oldest; returns the dropped one, if any.
pub fn push(tx: &WriteTransaction, mut m: Mail, cap: u64) -> Result<Option<Mail>> {
    let mut t = tx.open_table(OUTBOX)?;
    let next = t.last()?.map_or(1, |(k, _)| k.value() + 1);
    m.id = next;
    let bytes = codec::encode_mail(&m)?;
    t.insert(next, bytes.as_slice())?;
    if t.len()? <= cap {
        return Ok(None);
    }
    let mut victim = None;
    for row in t.iter()? {
        let (k, v) = row?;
        let mail = codec::decode_mail(v.value())?;
        if mail.attempts > 0 {
            victim = Some((k.value(), mail));
            break;
        }
    }
    let victim = match victim {
        Some(v) => Some(v),
        None => match t.first()? {
            Some((k, v)) => Some((k.value(), codec::decode_mail(v.value())?)),
            None => None,
        },
    };
    if let Some((k, _)) = &victim {
        t.remove(*k)?;
    }
    Ok(victim.map(|(_, m)| m))
}

/// Up to `limit` messages due at `now`, oldest first.
pub fn due(tx: &impl Tx, now: i64, limit: usize) -> Result<Vec<Mail>> {
    let Some(t) = tx.table(OUTBOX)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        let m = codec::decode_mail(row?.1.value())?;
        if m.next_attempt_at <= now {
            out.push(m);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Up to `limit` messages after id `after`, oldest first, due or not.
pub fn from(tx: &impl Tx, after: u64, limit: usize) -> Result<Vec<Mail>> {
    let Some(t) = tx.table(OUTBOX)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.range(after.saturating_add(1)..)?.take(limit) {
        out.push(codec::decode_mail(row?.1.value())?);
    }
    Ok(out)
}

/// When the next message is due (`None`: the outbox is empty).
pub fn next_due(tx: &impl Tx) -> Result<Option<i64>> {
    let Some(t) = tx.table(OUTBOX)? else {
        return Ok(None);
    };
    let mut next: Option<i64> = None;
    for row in t.iter()? {
        let m = codec::decode_mail(row?.1.value())?;
        next = Some(next.map_or(m.next_attempt_at, |n| n.min(m.next_attempt_at)));
    }
    Ok(next)
}

/// A queued message by id.
pub fn get(tx: &impl Tx, id: u64) -> Result<Option<Mail>> {
    let Some(t) = tx.table(OUTBOX)? else {
        return Ok(None);
    };
    t.get(id)?
        .map(|v| codec::decode_mail(v.value()))
        .transpose()
}

/// Store a changed message (attempts, next attempt).
pub fn update(tx: &WriteTransaction, m: &Mail) -> Result<()> {
    let bytes = codec::encode_mail(m)?;
    tx.open_table(OUTBOX)?.insert(m.id, bytes.as_slice())?;
    Ok(())
}

/// Remove a message (delivered or given up); whether it was there.
pub fn remove(tx: &WriteTransaction, id: u64) -> Result<bool> {
    Ok(tx.open_table(OUTBOX)?.remove(id)?.is_some())
}

/// Messages waiting.
pub fn len(tx: &impl Tx) -> Result<u64> {
    Ok(match tx.table(OUTBOX)? {
        Some(t) => t.len()?,
        None => 0,
    })
}
