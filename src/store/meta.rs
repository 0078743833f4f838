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
