//! The audit log: an append-only, bounded sequence of events.

use redb::{ReadableTable, ReadableTableMetadata};

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::EVENTS;
use crate::error::Result;
use crate::model::Event;

/// Append an event (its id is assigned here) and drop the oldest beyond `max`.
pub fn append(tx: &WriteTransaction, mut e: Event, max: u64) -> Result<()> {
    let mut t = tx.open_table(EVENTS)?;
    let next = t.last()?.map_or(1, |(k, _)| k.value() + 1);
    e.id = next;
    let bytes = codec::encode_event(&e)?;
    t.insert(next, bytes.as_slice())?;
    let mut len = t.len()?;
    while len > max {
        if t.pop_first()?.is_none() {
            break;
        }
        len -= 1;
    }
    Ok(())
}

/// Drop events from before `cutoff` (they are stored oldest first); returns how many.
pub fn prune_before(tx: &WriteTransaction, cutoff: i64) -> Result<usize> {
    let mut t = tx.open_table(EVENTS)?;
    let mut n = 0;
    loop {
        let old = match t.first()? {
            Some((_, v)) => codec::decode_event(v.value())?.at < cutoff,
            None => false,
        };
        if !old {
            return Ok(n);
        }
        t.pop_first()?;
        n += 1;
    }
}

/// The newest event's id (0 when there is none).
pub fn last_id(tx: &impl Tx) -> Result<u64> {
    let Some(t) = tx.table(EVENTS)? else {
        return Ok(0);
    };
    Ok(t.last()?.map_or(0, |(k, _)| k.value()))
}

/// Up to `limit` events after id `last`, oldest first.
pub fn after(tx: &impl Tx, last: u64, limit: usize) -> Result<Vec<Event>> {
    let Some(t) = tx.table(EVENTS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.range(last.saturating_add(1)..)?.take(limit) {
        out.push(codec::decode_event(row?.1.value())?);
    }
    Ok(out)
}

/// One event by id.
pub fn get(tx: &impl Tx, id: u64) -> Result<Option<Event>> {
    let Some(t) = tx.table(EVENTS)? else {
        return Ok(None);
    };
    t.get(id)?
        .map(|v| codec::decode_event(v.value()))
        .transpose()
}

/// Events newest first, filtered, as (page items, total matching).
pub fn page(
    tx: &impl Tx,
    filter: impl Fn(&Event) -> bool,
    offset: usize,
    limit: usize,
) -> Result<(Vec<Event>, usize)> {
    let Some(t) = tx.table(EVENTS)? else {
        return Ok((Vec::new(), 0));
    };
    let mut items = Vec::new();
    let mut total = 0;
    for row in t.iter()?.rev() {
        let e = codec::decode_event(row?.1.value())?;
        if filter(&e) {
            if total >= offset && items.len() < limit {
                items.push(e);
            }
            total += 1;
        }
    }
    Ok((items, total))
}
