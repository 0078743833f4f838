//! The embedded store: one redb file owning every table and transaction.
//!
//! Nothing outside this module names redb types in its logic. Use cases run one closure in one
//! transaction: [`Store::read`] on the caller's thread (redb reads are microseconds and never
//! block on writers), [`Store::write`] on the blocking pool (commits fsync).

pub mod api_key;
pub mod audit;
pub mod codec;
pub mod meta;
mod migrate;
pub mod oauth;
pub mod session;
pub mod tables;
pub mod user;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, DatabaseError, Key, ReadOnlyTable, ReadableDatabase, ReadableTable, Table,
    TableDefinition, Value,
};

use crate::error::{Error, Result};

pub use migrate::{SCHEMA_VERSION, snapshot_bytes};
pub use redb::{ReadTransaction, WriteTransaction};

/// Why the store could not be opened. Each message is meant for an operator.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the file lock.
    #[error(
        "database {0} is locked by another running posta process (redb file lock); stop it first"
    )]
    Locked(PathBuf),
    /// The file was written by a newer posta.
    #[error(
        "database {path} has schema version {found}, newer than this binary supports ({supported}); upgrade posta"
    )]
    TooNew {
        /// File path.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Highest version this binary knows.
        supported: u32,
    },
    /// Not a redb file, or damaged beyond redb's own recovery.
    #[error(
        "database {path} is corrupt or not a posta database ({reason}); it was left untouched — restore a backup"
    )]
    Corrupt {
        /// File path.
        path: PathBuf,
        /// What redb or the migrator said.
        reason: String,
    },
    /// The file was not closed cleanly (a crash or kill -9) and a read-only open cannot run
    /// redb's recovery; opening it for writing recovers the last committed state.
    #[error("database {0} was not closed cleanly and needs recovery by a writable open")]
    NeedsRecovery(PathBuf),
    /// The data directory or file cannot be created or read.
    #[error("cannot open database {path}: {reason}")]
    Io {
        /// File path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

/// Default page-cache budget: enough for the hot tables of a large install, small enough
/// that the process stays light (redb's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Cheaply cloneable handle on the database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    // Committed write transactions since open; see [`Store::generation`].
    generation: Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Tables readable from either kind of transaction, so read helpers serve both.
pub trait Tx {
    /// The table type this transaction opens.
    type Table<'a, K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>
    where
        Self: 'a;
    /// Open a table for reading; a missing table reads as empty via `None`.
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'_, K, V>,
    ) -> Result<Option<Self::Table<'_, K, V>>>;
}

impl Tx for ReadTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = ReadOnlyTable<K, V>;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'_, K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>> {
        match self.open_table(def) {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl Tx for WriteTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = Table<'a, K, V>;
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'_, K, V>,
    ) -> Result<Option<Table<'_, K, V>>> {
        Ok(Some(self.open_table(def)?))
    }
}

impl Store {
    /// Open (or create) the database file, refusing locked, corrupt or newer files, and run
    /// pending migrations.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page-cache budget in bytes.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, OpenError> {
        let io = |e: std::io::Error| OpenError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            private_dir(dir).map_err(io)?;
        }
        let existed = path.exists() && std::fs::metadata(path).map_err(io)?.len() > 0;
        if !existed {
            match private_file(path) {
                // Created; or there already, empty (an earlier run stopped before redb wrote
                // it) or made just now by another process, whose lock redb then reports.
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        let db = match Database::builder()
            .set_cache_size(cache_bytes)
            .set_repair_callback(|_| {
                tracing::warn!(
                    "database was not closed cleanly; redb is recovering the last committed state"
                );
            })
            .create(path)
        {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(OpenError::Locked(path.to_owned()));
            }
            Err(DatabaseError::Storage(redb::StorageError::Io(e)))
                if e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                return Err(OpenError::Locked(path.to_owned()));
            }
            Err(e) => {
                return Err(OpenError::Corrupt {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        let store = Store {
            db: Arc::new(db),
            generation: Arc::new(AtomicU64::new(0)),
        };
        migrate::run(&store, path, existed)?;
        Ok(store)
    }

    /// A read transaction; `f` must not block.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_read()?;
        f(&tx)
    }

    /// One write transaction on the blocking pool; committed only if `f` returns `Ok`.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .map_err(|e| Error::Internal(format!("store task: {e}")))?
    }

    /// A write transaction on the current thread, for the CLI and start-up.
    pub fn write_blocking<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_write()?;
        match f(&tx) {
            Ok(v) => {
                let committed = tx.commit();
                // Bumped after the commit (whatever its outcome): a reader that sees the new
                // generation is guaranteed to read the new data.
                self.generation.fetch_add(1, Ordering::Release);
                committed?;
                Ok(v)
            }
            Err(e) => {
                if let Err(abort) = tx.abort() {
                    tracing::error!(error = %abort, "aborting transaction failed");
                }
                Err(e)
            }
        }
    }

    /// How many write transactions have committed since the store was opened. A reader that
    /// keeps what it read loads this *before* its read transaction and trusts its copy only
    /// while the value is unchanged.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Open an existing file read-only, alongside a running server (for backup and export).
    pub fn open_read_only(path: &Path) -> Result<Snapshot, OpenError> {
        if !path.exists() {
            return Err(OpenError::Io {
                path: path.to_owned(),
                reason: "no such file".into(),
            });
        }
        let db = redb::Builder::new()
            .open_read_only(path)
            .map_err(|e| match e {
                DatabaseError::DatabaseAlreadyOpen => OpenError::Locked(path.to_owned()),
                DatabaseError::RepairAborted => OpenError::NeedsRecovery(path.to_owned()),
                other => OpenError::Corrupt {
                    path: path.to_owned(),
                    reason: other.to_string(),
                },
            })?;
        let snap = Snapshot { db };
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
        let Ok(mut db) = Arc::try_unwrap(store.db) else {
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

    /// Size of the file on disk in bytes, when known.
    #[must_use]
    pub fn file_size(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

/// Create `dir` and its missing parents readable by the owner only (0700); an existing
/// directory keeps the mode its administrator gave it.
///
/// The store holds password hashes, e-mail addresses and the audit log's client addresses: on
/// a hand-started server (no systemd `UMask=0077`) the default umask would leave them
/// readable by every local user.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Create an empty file readable by the owner only (0600), for redb to initialise (it opens
/// an empty file as a new database) or for a copy of the store; an existing file is an error.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// A read-only view of a database file that another process may be writing.
pub struct Snapshot {
    db: redb::ReadOnlyDatabase,
}

impl Snapshot {
    /// Run `f` in one read transaction (a consistent snapshot).
    pub fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_read()?;
        f(&tx)
    }
}
