//! Users' own settings (`user_prefs_v1`), one record per user.

use redb::ReadableTable;
use uuid::Uuid;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::USER_PREFS;
use crate::error::Result;
use crate::model::UserPrefs;

/// A user's saved settings, if any were ever saved.
pub fn get(tx: &impl Tx, user: Uuid) -> Result<Option<UserPrefs>> {
    let Some(t) = tx.table(USER_PREFS)? else {
        return Ok(None);
    };
    t.get(user.as_u128())?
        .map(|v| codec::decode_prefs(v.value()))
        .transpose()
}

/// Save a user's settings.
pub fn put(tx: &WriteTransaction, user: Uuid, p: &UserPrefs) -> Result<()> {
    let bytes = codec::encode_prefs(p)?;
    tx.open_table(USER_PREFS)?
        .insert(user.as_u128(), bytes.as_slice())?;
    Ok(())
}

/// Forget a user's settings (the user is deleted).
pub fn remove(tx: &WriteTransaction, user: Uuid) -> Result<()> {
    tx.open_table(USER_PREFS)?.remove(user.as_u128())?;
    Ok(())
}
