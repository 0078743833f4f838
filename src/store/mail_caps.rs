//! Per-recipient mail counts (`mail_caps_v1`): how many messages an address was sent in its
//! current hour, so that no request can aim a flood of mail at one address.

use redb::ReadableTable;

use super::db::WriteTransaction;
use super::tables::MAIL_CAPS;
use crate::error::Result;

/// Count one message to `address` at `now` if fewer than `max` went there in its current
/// hour; whether it may be sent.
pub fn take(tx: &WriteTransaction, address: &str, now: i64, max: u32) -> Result<bool> {
    take_in(tx, &address.to_lowercase(), now, max, 3_600)
}

/// [`take`] for any key and window (`window` seconds; windows over an hour are not kept past
/// the hour by [`prune`]).
pub fn take_in(tx: &WriteTransaction, key: &str, now: i64, max: u32, window: i64) -> Result<bool> {
    let mut t = tx.open_table(MAIL_CAPS)?;
    let (start, n) = t
        .get(key)?
        .map(|v| v.value())
        .filter(|(start, _)| now - start < window)
        .unwrap_or((now, 0));
    if n >= max {
        return Ok(false);
    }
    t.insert(key, (start, n + 1))?;
    Ok(true)
}

/// Whether one more message to `address` at `now` stays within `max` (counts nothing).
pub fn allows(tx: &WriteTransaction, address: &str, now: i64, max: u32) -> Result<bool> {
    let t = tx.open_table(MAIL_CAPS)?;
    let n = t
        .get(address.to_lowercase().as_str())?
        .map(|v| v.value())
        .filter(|(start, _)| now - start < 3_600)
        .map_or(0, |(_, n)| n);
    Ok(n < max)
}

/// Forget hours that are over; returns how many.
pub fn prune(tx: &WriteTransaction, now: i64) -> Result<usize> {
    let mut t = tx.open_table(MAIL_CAPS)?;
    let mut old = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        if now - v.value().0 >= 3_600 {
            old.push(k.value().to_owned());
        }
    }
    for k in &old {
        t.remove(k.as_str())?;
    }
    Ok(old.len())
}

/// Rows stored.
pub fn count(tx: &impl super::db::Tx) -> Result<u64> {
    use redb::ReadableTableMetadata;
    Ok(match tx.table(MAIL_CAPS)? {
        Some(t) => t.len()?,
        None => 0,
    })
}
