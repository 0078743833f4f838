//! Sign-ins waiting for their second factor: the first step (a password, an SSO sign-in)
//! succeeded and handed out a single-use `pending_token`; its SHA-256 names the row.

use redb::ReadableTable;
use uuid::Uuid;

use super::db::{Tx, WriteTransaction};
use super::tables::PENDING_SIGN_INS;
use crate::error::Result;

/// A sign-in waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The account.
    pub user_id: Uuid,
    /// The first step's client address: the second step must come from it.
    pub ip: String,
    /// How the first step signed in (`password`, `sso:<slug>`).
    pub method: String,
    /// Unix time from which the token is refused.
    pub expires_at: i64,
}

/// Keep a pending sign-in under the token's hash.
pub fn put(tx: &WriteTransaction, hash: &[u8; 32], p: &Pending) -> Result<()> {
    tx.open_table(PENDING_SIGN_INS)?.insert(
        *hash,
        (
            p.user_id.as_u128(),
            p.ip.as_str(),
            p.method.as_str(),
            p.expires_at,
        ),
    )?;
    Ok(())
}

/// The pending sign-in of a token's hash.
pub fn get(tx: &impl Tx, hash: &[u8; 32]) -> Result<Option<Pending>> {
    let Some(t) = tx.table(PENDING_SIGN_INS)? else {
        return Ok(None);
    };
    Ok(t.get(*hash)?.map(|v| {
        let (u, ip, method, expires_at) = v.value();
        Pending {
            user_id: Uuid::from_u128(u),
            ip: ip.to_owned(),
            method: method.to_owned(),
            expires_at,
        }
    }))
}

/// Forget a pending sign-in (used, or its user gone).
pub fn remove(tx: &WriteTransaction, hash: &[u8; 32]) -> Result<()> {
    tx.open_table(PENDING_SIGN_INS)?.remove(*hash)?;
    Ok(())
}

/// Drop the expired ones; how many went.
pub fn prune(tx: &WriteTransaction, now: i64) -> Result<usize> {
    let mut t = tx.open_table(PENDING_SIGN_INS)?;
    let gone = t
        .extract_if(|_, (_, _, _, expires_at)| expires_at <= now)?
        .count();
    Ok(gone)
}
