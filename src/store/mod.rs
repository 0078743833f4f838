//! The store: every table, record and transaction, and the boundary the use cases see.
//!
//! The boundary, which a second backend (PostgreSQL, for replicas) implements without the
//! domain changing: a use case reads through [`Store::read`] (one closure over a consistent
//! snapshot) and writes through [`Store::write`] (one closure, one serializable transaction).
//! Inside, it calls only the per-table functions of this module (`store::user::get`,
//! `store::session::insert`, ...) with the transaction handle, which it treats as opaque, and
//! it passes and receives domain types (`model`); how they are stored is `records`. The write
//! closure is `FnMut` and its side effects outside the store wait for [`after_commit`], so a
//! backend whose transactions can fail on serialization may run it again. Outside `store/`,
//! only `error.rs` names redb (its errors' conversions).

pub mod api_key;
pub mod audit;
pub mod codec;
mod db;
pub mod email_token;
pub mod invitation;
pub mod mail_caps;
pub mod meta;
mod migrate;
pub mod oauth;
pub mod outbox;
pub mod passkey;
pub mod pending;
pub mod prefs;
pub mod records;
pub mod session;
pub mod tables;
pub mod throttle;
pub mod user;

use std::path::Path;

use crate::error::Result;

pub use db::{
    DEFAULT_CACHE_BYTES, OpenError, ReadTransaction, Snapshot, Store, Tx, WriteTransaction,
    after_commit, private_dir, private_file, write_private,
};
pub use migrate::{SCHEMA_VERSION, snapshot_bytes};

impl Store {
    /// Open (or create) the database file, refusing locked, corrupt or newer files, and run
    /// pending migrations.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page-cache budget in bytes.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, OpenError> {
        let (store, existed) = Self::open_unmigrated(path, cache_bytes)?;
        migrate::run(&store, path, existed)?;
        Ok(store)
    }

    /// Open an existing file read-only, alongside a running server (for backup and export).
    pub fn open_read_only(path: &Path) -> Result<Snapshot, OpenError> {
        if !path.exists() {
            return Err(OpenError::Io {
                path: path.to_owned(),
                reason: "no such file".into(),
            });
        }
        let db = Self::open_read_only_unchecked(path)?;
        let snap = db;
        let version = snap
            .read(meta::schema_version)
            .map_err(|e| OpenError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| OpenError::Corrupt {
                path: path.to_owned(),
                reason: "no posta schema version".into(),
            })?;
        if version > SCHEMA_VERSION {
            return Err(OpenError::TooNew {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(snap)
    }

    /// Rewrite the file compactly (server stopped). Returns the sizes before and after.
    pub fn compact_file(path: &Path) -> Result<(u64, u64), OpenError> {
        let before = Self::file_size(path);
        let store = Self::open(path)?;
        let db = store.into_database();
        let Some(mut db) = db else {
            return Err(OpenError::Io {
                path: path.to_owned(),
                reason: "database still in use".into(),
            });
        };
        db.compact().map_err(|e| OpenError::Io {
            path: path.to_owned(),
            reason: format!("compaction: {e}"),
        })?;
        drop(db);
        Ok((before, Self::file_size(path)))
    }

    /// Readiness probe: a real read of the meta table.
    pub fn check(&self) -> Result<()> {
        self.read(|tx| meta::schema_version(tx).map(|_| ()))
    }
}
