//! The `meta` table: schema version and platform settings.

use redb::ReadableTable;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::META;
use crate::error::{Error, Result};
use crate::model::Settings;

/// Schema version recorded in the file, if any.
pub fn schema_version(tx: &impl Tx) -> Result<Option<u32>> {
    let Some(t) = tx.table(META)? else {
        return Ok(None);
    };
    let Some(v) = t.get("schema_version")? else {
        return Ok(None);
    };
    let b: [u8; 4] = v
        .value()
        .try_into()
        .map_err(|_| Error::Store("schema_version is not 4 bytes".into()))?;
    Ok(Some(u32::from_le_bytes(b)))
}

/// Record the schema version.
pub fn set_schema_version(tx: &WriteTransaction, v: u32) -> Result<()> {
    tx.open_table(META)?
        .insert("schema_version", v.to_le_bytes().as_slice())?;
    Ok(())
}

/// Stored settings, or the defaults when never saved.
pub fn settings(tx: &impl Tx) -> Result<Settings> {
    let Some(t) = tx.table(META)? else {
        return Ok(Settings::default());
    };
    match t.get("settings")? {
        Some(v) => codec::decode_settings(v.value()),
        None => Ok(Settings::default()),
    }
}

/// Save settings.
pub fn put_settings(tx: &WriteTransaction, s: &Settings) -> Result<()> {
    let bytes = codec::encode_settings(s)?;
    tx.open_table(META)?.insert("settings", bytes.as_slice())?;
    Ok(())
}

/// The key check value of the encryption key the store's secrets are sealed with (an HMAC of
/// a constant under the key: it tells a wrong key, never the key).
pub fn key_check(tx: &impl Tx) -> Result<Option<[u8; 16]>> {
    let Some(t) = tx.table(META)? else {
        return Ok(None);
    };
    Ok(t.get("encryption_key_check")?
        .and_then(|v| <[u8; 16]>::try_from(v.value()).ok()))
}

/// Record the key check value.
pub fn set_key_check(tx: &WriteTransaction, kcv: &[u8; 16]) -> Result<()> {
    tx.open_table(META)?
        .insert("encryption_key_check", kcv.as_slice())?;
    Ok(())
}

/// The recovery-code hash key, sealed under the encryption key, once a rotation kept it.
pub fn code_key_sealed(tx: &impl Tx) -> Result<Option<Vec<u8>>> {
    let Some(t) = tx.table(META)? else {
        return Ok(None);
    };
    Ok(t.get("code_key_sealed")?.map(|v| v.value().to_vec()))
}

/// Record the sealed recovery-code hash key.
pub fn set_code_key_sealed(tx: &WriteTransaction, sealed: &[u8]) -> Result<()> {
    tx.open_table(META)?.insert("code_key_sealed", sealed)?;
    Ok(())
}

/// When this store first ran with outgoing mail configured (unix seconds), if it has.
pub fn mail_since(tx: &impl Tx) -> Result<Option<i64>> {
    let Some(t) = tx.table(META)? else {
        return Ok(None);
    };
    Ok(t.get("mail_since")?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map(i64::from_le_bytes))
}

/// Record the first start with mail; an existing record is kept.
pub fn set_mail_since_once(tx: &WriteTransaction, at: i64) -> Result<()> {
    let mut t = tx.open_table(META)?;
    if t.get("mail_since")?.is_none() {
        t.insert("mail_since", at.to_le_bytes().as_slice())?;
    }
    Ok(())
}
