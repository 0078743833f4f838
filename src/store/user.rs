//! Users and the email uniqueness index.

use redb::ReadableTable;
use uuid::Uuid;

use super::tables::{USERS, USERS_BY_EMAIL};
use super::{Tx, WriteTransaction, codec};
use crate::error::{Error, Result};
use crate::model::{Role, User};

/// A user by id.
pub fn get(tx: &impl Tx, id: Uuid) -> Result<Option<User>> {
    let Some(t) = tx.table(USERS)? else {
        return Ok(None);
    };
    t.get(id.as_u128())?
        .map(|v| codec::decode_user(v.value()))
        .transpose()
}

/// A user by canonical email.
pub fn by_email(tx: &impl Tx, email: &str) -> Result<Option<User>> {
    let Some(idx) = tx.table(USERS_BY_EMAIL)? else {
        return Ok(None);
    };
    let Some(id) = idx.get(email)?.map(|v| v.value()) else {
        return Ok(None);
    };
    drop(idx);
    get(tx, Uuid::from_u128(id))
}

/// Insert a new user; `Conflict` when the email is taken.
pub fn insert(tx: &WriteTransaction, u: &User) -> Result<()> {
    let mut idx = tx.open_table(USERS_BY_EMAIL)?;
    if idx.get(u.email.as_str())?.is_some() {
        return Err(Error::Conflict("email already registered".into()));
    }
    idx.insert(u.email.as_str(), u.id.as_u128())?;
    let bytes = codec::encode_user(u)?;
    tx.open_table(USERS)?
        .insert(u.id.as_u128(), bytes.as_slice())?;
    Ok(())
}

/// Overwrite an existing user (the email never changes through this path).
pub fn update(tx: &WriteTransaction, u: &User) -> Result<()> {
    let bytes = codec::encode_user(u)?;
    tx.open_table(USERS)?
        .insert(u.id.as_u128(), bytes.as_slice())?;
    Ok(())
}

/// Remove a user and its email index entry (sessions and keys are removed by their modules).
pub fn remove(tx: &WriteTransaction, u: &User) -> Result<()> {
    tx.open_table(USERS)?.remove(u.id.as_u128())?;
    tx.open_table(USERS_BY_EMAIL)?.remove(u.email.as_str())?;
    Ok(())
}

/// Visit every user in id order; stop when `f` returns false.
pub fn for_each(tx: &impl Tx, mut f: impl FnMut(User) -> bool) -> Result<()> {
    let Some(t) = tx.table(USERS)? else {
        return Ok(());
    };
    for row in t.iter()? {
        let (_, v) = row?;
        if !f(codec::decode_user(v.value())?) {
            break;
        }
    }
    Ok(())
}

/// Number of active admins.
pub fn active_admins(tx: &impl Tx) -> Result<usize> {
    let mut n = 0;
    for_each(tx, |u| {
        if u.active && u.role == Role::Admin {
            n += 1;
        }
        true
    })?;
    Ok(n)
}

/// Total number of users.
pub fn count(tx: &impl Tx) -> Result<u64> {
    use redb::ReadableTableMetadata;
    Ok(match tx.table(USERS)? {
        Some(t) => t.len()?,
        None => 0,
    })
}
