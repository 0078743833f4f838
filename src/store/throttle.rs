//! What the brute-force throttle keeps across restarts: known devices per account, and
//! accounts over their ceiling.

use redb::ReadableTable;
use uuid::Uuid;

use super::db::{Tx, WriteTransaction};
use super::tables::{DEVICES, LOCKOUTS};
use crate::error::Result;

/// Devices remembered per account; the least recently used one goes first.
pub const DEVICES_PER_ACCOUNT: usize = 32;

/// Whether the device (its hash) has signed in to `user` before.
pub fn device_known(tx: &impl Tx, user: Uuid, device: &[u8; 32]) -> Result<bool> {
    let Some(t) = tx.table(DEVICES)? else {
        return Ok(false);
    };
    Ok(t.get((user.as_u128(), *device))?.is_some())
}

/// Remember a device that just signed in to `user`, keeping at most
/// [`DEVICES_PER_ACCOUNT`].
pub fn remember_device(
    tx: &WriteTransaction,
    user: Uuid,
    device: &[u8; 32],
    now: i64,
) -> Result<()> {
    let mut t = tx.open_table(DEVICES)?;
    let u = user.as_u128();
    t.insert((u, *device), now)?;
    let mut seen = Vec::new();
    for row in t.range((u, [0u8; 32])..=(u, [0xffu8; 32]))? {
        let (k, v) = row?;
        seen.push((v.value(), k.value().1));
    }
    if seen.len() > DEVICES_PER_ACCOUNT {
        seen.sort_unstable();
        for (_, d) in &seen[..seen.len() - DEVICES_PER_ACCOUNT] {
            t.remove((u, *d))?;
        }
    }
    Ok(())
}

/// Forget every device of `user` (the account is deleted).
pub fn forget_devices(tx: &WriteTransaction, user: Uuid) -> Result<()> {
    let mut t = tx.open_table(DEVICES)?;
    let u = user.as_u128();
    t.retain_in((u, [0u8; 32])..=(u, [0xffu8; 32]), |_, _| false)?;
    Ok(())
}

/// Persist an account over its ceiling, and drop the lock-outs whose window has ended.
pub fn put_lockout(
    tx: &WriteTransaction,
    account: &str,
    start: i64,
    count: u32,
    window: i64,
    now: i64,
) -> Result<()> {
    let mut t = tx.open_table(LOCKOUTS)?;
    t.retain(|_, (s, _)| s + window > now)?;
    t.insert(account, (start, count))?;
    Ok(())
}

/// Every persisted lock-out: `(account, window start, failures)`.
pub fn lockouts(tx: &impl Tx) -> Result<Vec<(String, i64, u32)>> {
    let Some(t) = tx.table(LOCKOUTS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let (start, count) = v.value();
        out.push((k.value().to_owned(), start, count));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn devices_are_bounded_per_account_and_forgotten_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("posta.redb")).unwrap();
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let device = |i: u8| [i; 32];
        store
            .write_blocking(|tx| {
                for i in 0..40u8 {
                    remember_device(tx, alice, &device(i), i64::from(i))?;
                }
                remember_device(tx, bob, &device(0), 0)
            })
            .unwrap();
        let known = |u: Uuid, i: u8| store.read(|tx| device_known(tx, u, &device(i))).unwrap();
        assert!(!known(alice, 7), "the least recently used went first");
        assert!(known(alice, 8) && known(alice, 39));
        assert!(!known(bob, 1) && known(bob, 0), "per account");
        store
            .write_blocking(|tx| forget_devices(tx, alice))
            .unwrap();
        assert!((0..40).all(|i| !known(alice, i)));
        assert!(known(bob, 0), "another account's devices stay");
    }
}
