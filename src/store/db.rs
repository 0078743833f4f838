//! The database handle: one redb file owning every table and transaction, reopened after a
//! failed write. (Opening with migrations, and the schema checks, are in `store`: this module
//! names no table of its own but the ones it is handed.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, TryLockError};
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, Key, ReadOnlyTable, ReadableDatabase, ReadableTable, Table,
    TableDefinition, Value,
};

use crate::error::{Error, Result};

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
    shared: Arc<Shared>,
}

struct Shared {
    /// Every transaction runs under the read side. Reopening takes the write side, so it
    /// waits for the transactions in flight and none sees the database replaced under it.
    slot: RwLock<Slot>,
    // Committed write transactions since open; see [`Store::generation`].
    generation: AtomicU64,
    /// The generation, for tasks that wait for the next commit (the audit event stream).
    commits: tokio::sync::watch::Sender<u64>,
    path: PathBuf,
    cache_bytes: usize,
}

struct Slot {
    /// `None` after a failed reopen, until one succeeds.
    db: Option<Database>,
    /// Bumped by each reopen, so writers that met the same failure reopen once.
    epoch: u64,
    /// When a reopen was last tried: the next waits [`REOPEN_SPACING`].
    reopened_at: Option<Instant>,
    /// A write failed and the database has not been reopened since (logged once).
    failing: bool,
}

/// Bytes a scratch file must take before the database is closed to be reopened.
const PROBE_BYTES: usize = 64 * 1024;

/// Whether `dir` takes a write now: a scratch file of [`PROBE_BYTES`] written, synced and
/// removed.
fn takes_writes(dir: &Path) -> bool {
    let path = dir.join(".posta-write-probe");
    let ok = write_private(&path, &[0; PROBE_BYTES][..]).is_ok();
    let _ = std::fs::remove_file(&path);
    ok
}

/// Least time between two reopens. Each runs redb's recovery under the write side, when reads
/// are refused; while the disk stays full, writes would otherwise fail and reopen back to back.
const REOPEN_SPACING: Duration = Duration::from_secs(1);

/// Whether a redb failure means the open database refuses further writes until reopened (redb
/// latches any failed file operation and then answers `PreviousIo`).
fn needs_reopen(e: &redb::StorageError) -> bool {
    matches!(
        e,
        redb::StorageError::Io(_)
            | redb::StorageError::PreviousIo
            | redb::StorageError::DatabaseClosed
    )
}

fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError> {
    let warned = std::sync::atomic::AtomicBool::new(false);
    Database::builder()
        .set_cache_size(cache_bytes)
        .set_repair_callback(move |_| {
            // Called with each step of progress; said once.
            if !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "database was not closed cleanly; redb is recovering the last committed state"
                );
            }
        })
        .create(path)
}

thread_local! {
    /// What to do once the write transaction running on this thread has committed.
    static AFTER_COMMIT: std::cell::RefCell<Vec<Box<dyn FnOnce()>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` once the write transaction running on this thread has committed, and never if it
/// does not (a log line about a change must not outlive a rolled-back or failed write).
pub fn after_commit(f: impl FnOnce() + 'static) {
    AFTER_COMMIT.with_borrow_mut(|v| v.push(Box::new(f)));
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
    /// Open (or create) the database file, refusing locked or corrupt files; no schema check
    /// (see `Store::open`). Also says whether the file existed with content.
    pub(super) fn open_unmigrated(
        path: &Path,
        cache_bytes: usize,
    ) -> Result<(Self, bool), OpenError> {
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
        let db = match open_database(path, cache_bytes) {
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
            shared: Arc::new(Shared {
                slot: RwLock::new(Slot {
                    db: Some(db),
                    epoch: 0,
                    reopened_at: None,
                    failing: false,
                }),
                generation: AtomicU64::new(0),
                commits: tokio::sync::watch::Sender::new(0),
                path: path.to_owned(),
                cache_bytes,
            }),
        };
        Ok((store, existed))
    }

    /// A read transaction; `f` must not block.
    ///
    /// While the database is being reopened, or could not be, this answers
    /// [`Error::Unavailable`] at once rather than hold a request thread.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let slot = match self.shared.slot.try_read() {
            Ok(slot) => slot,
            Err(TryLockError::WouldBlock) => return Err(Error::Unavailable),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let db = slot.db.as_ref().ok_or(Error::Unavailable)?;
        let tx = db.begin_read()?;
        f(&tx)
    }

    /// One write transaction on the blocking pool; committed only if `f` returns `Ok`.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .map_err(|e| Error::Internal(format!("store task: {e}")))?
    }

    /// A write transaction on the current thread, for the CLI and start-up.
    ///
    /// A write refused because an earlier one failed (the database latched the failure) is
    /// run again once the database is reopened; a write whose own commit failed is reported
    /// as failed, and the database is reopened for the next one.
    pub fn write_blocking<T>(&self, f: impl FnMut(&WriteTransaction) -> Result<T>) -> Result<T> {
        let slot = self.slot_blocking();
        let epoch = slot.epoch;
        let begun = match slot.db.as_ref() {
            Some(db) => db.begin_write().map_err(Some),
            None => Err(None),
        };
        match begun {
            Ok(tx) => return self.run_write(slot, tx, f),
            Err(Some(redb::TransactionError::Storage(e))) if needs_reopen(&e) => {
                drop(slot);
                self.reopen(epoch, &e)?;
            }
            Err(Some(e)) => return Err(e.into()),
            Err(None) => {
                drop(slot);
                self.reopen(epoch, &"no database open")?;
            }
        }
        // Once, on the database just reopened: no loop if it fails again.
        let slot = self.slot_blocking();
        let tx = slot.db.as_ref().ok_or(Error::Unavailable)?.begin_write()?;
        self.run_write(slot, tx, f)
    }

    /// Run `f` in `tx` and commit, holding the slot's read side throughout (a reopen waits).
    fn run_write<T>(
        &self,
        slot: RwLockReadGuard<'_, Slot>,
        tx: WriteTransaction,
        f: impl FnOnce(&WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        AFTER_COMMIT.with_borrow_mut(Vec::clear);
        let outcome = f(&tx);
        let pending = AFTER_COMMIT.with_borrow_mut(std::mem::take);
        match outcome {
            Ok(v) => {
                let committed = tx.commit();
                // Bumped after the commit (whatever its outcome): a reader that sees the new
                // generation is guaranteed to read the new data.
                let generation = self.shared.generation.fetch_add(1, Ordering::Release) + 1;
                self.shared.commits.send_replace(generation);
                if let Err(redb::CommitError::Storage(e)) = &committed
                    && needs_reopen(e)
                {
                    // This write is lost (its caller hears so); the next finds the file
                    // recovered. A failure to reopen is logged and retried by that next write.
                    let epoch = slot.epoch;
                    drop(slot);
                    let _ = self.reopen(epoch, e);
                }
                committed?;
                pending.into_iter().for_each(|f| f());
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

    /// The slot's read side, waiting for a reopen in progress (writers run on the blocking
    /// pool or the CLI, where waiting is allowed).
    fn slot_blocking(&self) -> RwLockReadGuard<'_, Slot> {
        self.shared
            .slot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Close the database and open it again (redb recovers the last committed state), unless
    /// another thread has done so since `epoch`.
    ///
    /// A database that refuses writes still serves reads from what it has cached (forward auth
    /// keeps working on a full disk), and a new one cannot be opened while the file takes no
    /// writes (recovery writes). So it is closed only once a scratch file in its directory can
    /// be written. Attempts are [`REOPEN_SPACING`] apart; until one succeeds, writes are
    /// answered [`Error::Unavailable`].
    fn reopen(&self, epoch: u64, cause: &dyn std::fmt::Display) -> Result<()> {
        let mut slot = self
            .shared
            .slot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.epoch != epoch {
            return if slot.db.is_some() {
                Ok(())
            } else {
                Err(Error::Unavailable)
            };
        }
        if slot
            .reopened_at
            .is_some_and(|t| t.elapsed() < REOPEN_SPACING)
        {
            return Err(Error::Unavailable);
        }
        slot.reopened_at = Some(Instant::now());
        if !slot.failing {
            slot.failing = true;
            tracing::error!(error = %cause, "database write failed; writes are refused until the database is reopened, which is tried every second once its directory takes writes");
        }
        let dir = self.shared.path.parent().unwrap_or(Path::new("."));
        if slot.db.is_some() && !takes_writes(dir) {
            return Err(Error::Unavailable);
        }
        // Dropping closes the file and releases its lock (no transaction is in flight: they
        // all hold the read side).
        drop(slot.db.take());
        match open_database(&self.shared.path, self.shared.cache_bytes) {
            Ok(db) => {
                slot.db = Some(db);
                slot.epoch += 1;
                slot.failing = false;
                // Whatever was cached from before is read again.
                self.shared.generation.fetch_add(1, Ordering::Release);
                tracing::warn!("database reopened; writes resume");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "database cannot be reopened; trying again with a write in a second");
                Err(Error::Unavailable)
            }
        }
    }

    /// Whether writes are accepted: false from a failed write until the database is reopened
    /// (and while a reopen runs).
    #[must_use]
    pub fn writable(&self) -> bool {
        self.shared
            .slot
            .try_read()
            .is_ok_and(|slot| slot.db.is_some() && !slot.failing)
    }

    /// How many write transactions have committed since the store was opened. A reader that
    /// keeps what it read loads this *before* its read transaction and trusts its copy only
    /// while the value is unchanged.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Live handles on this store (clones held by tasks); the file closes with the last.
    #[must_use]
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.shared)
    }

    /// Changes after every committed write (it carries the generation).
    #[must_use]
    pub fn watch_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.commits.subscribe()
    }

    /// Open an existing file read-only; no schema check (see `Store::open_read_only`).
    pub(super) fn open_read_only_unchecked(path: &Path) -> Result<Snapshot, OpenError> {
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
        Ok(Snapshot { db })
    }

    /// The database, when this is its last handle (to compact it).
    pub(super) fn into_database(self) -> Option<Database> {
        Arc::try_unwrap(self.shared)
            .ok()
            .and_then(|s| s.slot.into_inner().ok())
            .and_then(|s| s.db)
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

/// Write `content` into a new owner-only file at `path` and sync it, replacing a file left
/// there by an interrupted run (a backup's `.partial`, a restore's copy, the write probe).
pub fn write_private(path: &Path, mut content: impl std::io::Read) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = private_file(path)?;
    std::io::copy(&mut content, &mut f)?;
    f.sync_all()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn after_commit_runs_only_for_a_committed_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("posta.redb")).unwrap();
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        let failed: Result<()> = store.write_blocking(move |_| {
            let r = r.clone();
            after_commit(move || r.set(r.get() + 1));
            Err(Error::Conflict("rolled back".into()))
        });
        assert!(failed.is_err());
        assert_eq!(ran.get(), 0, "a rolled-back write says nothing");
        let r = ran.clone();
        store
            .write_blocking(move |_| {
                let r = r.clone();
                after_commit(move || r.set(r.get() + 10));
                Ok(())
            })
            .unwrap();
        assert_eq!(ran.get(), 10, "only the committed write's work ran");
    }

    #[test]
    fn a_latched_failure_reads_as_unavailable() {
        assert!(matches!(
            Error::from(redb::StorageError::PreviousIo),
            Error::Unavailable
        ));
        assert!(matches!(
            Error::from(redb::CommitError::Storage(redb::StorageError::PreviousIo)),
            Error::Unavailable
        ));
        assert!(matches!(
            Error::from(redb::StorageError::Io(std::io::Error::other("disk"))),
            Error::Store(_)
        ));
    }
}
