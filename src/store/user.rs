//! Users and the email uniqueness index.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::{ADMINS, USERS, USERS_BY_EMAIL};
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
    drop(idx);
    update(tx, u)
}

/// Overwrite an existing user (the email never changes through this path), keeping the
/// admin index in step with the role.
pub fn update(tx: &WriteTransaction, u: &User) -> Result<()> {
    let bytes = codec::encode_user(u)?;
    tx.open_table(USERS)?
        .insert(u.id.as_u128(), bytes.as_slice())?;
    let mut admins = tx.open_table(ADMINS)?;
    if u.role == Role::Admin {
        admins.insert(u.id.as_u128(), ())?;
    } else {
        admins.remove(u.id.as_u128())?;
    }
    Ok(())
}

/// Give `u` the address `new` (canonical): the index moves with it; `Conflict` when another
/// account has it.
pub fn change_email(tx: &WriteTransaction, u: &mut User, new: &str) -> Result<()> {
    let mut idx = tx.open_table(USERS_BY_EMAIL)?;
    if idx.get(new)?.is_some() {
        return Err(Error::Conflict(
            "this address is used by another account".into(),
        ));
    }
    idx.remove(u.email.as_str())?;
    idx.insert(new, u.id.as_u128())?;
    drop(idx);
    u.email = new.to_owned();
    update(tx, u)
}

/// Remove a user and its email index entry (sessions and keys are removed by their modules).
pub fn remove(tx: &WriteTransaction, u: &User) -> Result<()> {
    tx.open_table(USERS)?.remove(u.id.as_u128())?;
    tx.open_table(USERS_BY_EMAIL)?.remove(u.email.as_str())?;
    tx.open_table(ADMINS)?.remove(u.id.as_u128())?;
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

/// Ids of admins (active or not), from the admin index.
pub fn admin_ids(tx: &impl Tx) -> Result<Vec<Uuid>> {
    let Some(t) = tx.table(ADMINS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(Uuid::from_u128(row?.0.value()));
    }
    Ok(out)
}

/// Number of active admins.
pub fn active_admins(tx: &impl Tx) -> Result<usize> {
    let mut n = 0;
    for id in admin_ids(tx)? {
        if get(tx, id)?.is_some_and(|u| u.active && u.role == Role::Admin) {
            n += 1;
        }
    }
    Ok(n)
}

/// Rebuild the admin index from the users table (migration 1 → 2).
pub fn rebuild_admin_index(tx: &WriteTransaction) -> Result<usize> {
    let mut ids = Vec::new();
    for_each(tx, |u| {
        if u.role == Role::Admin {
            ids.push(u.id);
        }
        true
    })?;
    let mut t = tx.open_table(ADMINS)?;
    for id in &ids {
        t.insert(id.as_u128(), ())?;
    }
    Ok(ids.len())
}

/// Total number of users.
pub fn count(tx: &impl Tx) -> Result<u64> {
    use redb::ReadableTableMetadata;
    Ok(match tx.table(USERS)? {
        Some(t) => t.len()?,
        None => 0,
    })
}
