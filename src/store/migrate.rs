//! Schema versioning: the version lives in `meta`; each migration is one transaction; a file
//! newer than this binary is refused.

use std::path::Path;

use redb::ReadableTable;

use super::db::{OpenError, Store};
use super::meta;
use super::tables::*;
use crate::error::{Error, Result};

/// The layout this binary reads and writes.
pub const SCHEMA_VERSION: u32 = 3;

/// Migration steps: `MIGRATIONS[i]` upgrades version `i + 1` to `i + 2`, each in its own
/// write transaction together with the version bump.
type Step = fn(&redb::WriteTransaction) -> Result<()>;
const MIGRATIONS: &[Step] = &[migration_001_admin_index, migration_002_v3_records];

/// v1 → v2: index admins so start-up and last-admin checks do not scan every user.
fn migration_001_admin_index(tx: &redb::WriteTransaction) -> Result<()> {
    let n = super::user::rebuild_admin_index(tx)?;
    tracing::info!(admins = n, "built the admin index");
    Ok(())
}

/// v2 → v3: from here on users, settings and identity providers may be written as their V3
/// records, users' settings live in `user_prefs_v1`, and passkeys in `passkeys_v1` (which an
/// older binary would ignore: a passkey-protected sign-in would lose its second factor). Every older record still decodes, so
/// nothing is rewritten; the version itself is the change: a binary of an earlier release
/// refuses this file as too new instead of failing on the first record it cannot decode.
#[allow(clippy::unnecessary_wraps)]
fn migration_002_v3_records(_tx: &redb::WriteTransaction) -> Result<()> {
    Ok(())
}

pub(super) fn run(store: &Store, path: &Path, existed: bool) -> Result<(), OpenError> {
    let corrupt = |e: Error| OpenError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let found = store.read(meta::schema_version).map_err(corrupt)?;
    let found = match found {
        Some(v) => v,
        None if existed && store.read(has_any_table).map_err(corrupt)? => {
            return Err(OpenError::Corrupt {
                path: path.to_owned(),
                reason: "redb file without a posta schema version".into(),
            });
        }
        None => {
            store
                .write_blocking(|tx| meta::set_schema_version(tx, SCHEMA_VERSION))
                .map_err(corrupt)?;
            tracing::info!(version = SCHEMA_VERSION, "created new database");
            return Ok(());
        }
    };
    if found > SCHEMA_VERSION {
        return Err(OpenError::TooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for v in found..SCHEMA_VERSION {
        let idx = usize::try_from(v - 1).unwrap_or(usize::MAX);
        let Some(step) = MIGRATIONS.get(idx) else {
            return Err(corrupt(Error::Internal(format!("no migration from {v}"))));
        };
        store
            .write_blocking(|tx| {
                step(tx)?;
                meta::set_schema_version(tx, v + 1)
            })
            .map_err(corrupt)?;
        tracing::info!(from = v, to = v + 1, "migrated database");
    }
    Ok(())
}

fn has_any_table(tx: &redb::ReadTransaction) -> Result<bool> {
    Ok(tx.list_tables()?.next().is_some())
}

macro_rules! copy_tables {
    ($src:expr, $dst:expr, $($t:expr),*) => {{
        $(
            // A table the source never created is skipped; any other failure to read one
            // fails the copy, so an incomplete backup is never reported as a good one.
            match $src.open_table($t) {
                Ok(from) => {
                    let mut to = $dst.open_table($t)?;
                    for row in from.iter()? {
                        let (k, v) = row?;
                        to.insert(k.value(), v.value())?;
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
        )*
    }};
}

/// Copy every table visible in `src` into a new database file at `dest`.
pub fn copy_snapshot(src: &redb::ReadTransaction, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::Conflict(format!(
            "{} already exists",
            dest.display()
        )));
    }
    super::db::private_file(dest)
        .map_err(|e| Error::Internal(format!("{}: {e}", dest.display())))?;
    let out = redb::Database::create(dest).map_err(|e| Error::Store(e.to_string()))?;
    {
        let dst = out.begin_write()?;
        super::tables::with_every_table!(copy_tables!(src, dst));
        // A table this binary does not know (written by a newer release, or by hand) would
        // be left out: refuse rather than call the copy complete.
        let known = super::tables::names();
        for t in src.list_tables()? {
            let name = redb::TableHandle::name(&t);
            if !known.contains(&name) {
                return Err(Error::Store(format!(
                    "table {name} is unknown to this release; not copying an incomplete store"
                )));
            }
        }
        dst.commit()?;
    }
    Ok(())
}

/// The bytes of a new database file holding every table visible in `src`. The file is
/// assembled in `scratch_dir` (which must be writable: the data dir) and removed afterwards.
pub fn snapshot_bytes(src: &redb::ReadTransaction, scratch_dir: &Path) -> Result<Vec<u8>> {
    let tmp = scratch_dir.join(format!("backup-{}.redb.tmp", uuid::Uuid::new_v4()));
    let bytes = copy_snapshot(src, &tmp)
        .and_then(|()| std::fs::read(&tmp).map_err(|e| Error::Internal(format!("backup: {e}"))));
    let _ = std::fs::remove_file(&tmp);
    bytes
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTableMetadata};

    use super::*;

    fn rows(tx: &redb::ReadTransaction) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = tx
            .list_tables()
            .unwrap()
            .map(|t| {
                let n = tx.open_untyped_table(t.clone()).unwrap().len().unwrap();
                (redb::TableHandle::name(&t).to_owned(), n)
            })
            .collect();
        out.sort();
        out
    }

    /// A backup of the store the release at ad401d6 wrote holds every one of its tables,
    /// row for row.
    #[test]
    fn a_backup_copies_every_table_and_row() {
        let src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ad401d6/data/posta.redb");
        let snap = Store::open_read_only(&src).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("copy.redb");
        snap.read(|tx| copy_snapshot(tx, &dest)).unwrap();
        let before = snap.read(|tx| Ok(rows(tx))).unwrap();
        let after = rows(&redb::Database::open(&dest).unwrap().begin_read().unwrap());
        assert_eq!(before, after);
        assert!(before.len() >= 14, "{before:?}");
        for (name, _) in &before {
            assert!(
                names().contains(&name.as_str()),
                "{name} is in the one table list"
            );
        }
    }

    /// A table the list does not name is not silently left out of a backup.
    #[test]
    fn an_unknown_table_fails_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("src.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<u64, u64>::new("from_the_future_v9"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        tx.commit().unwrap();
        let err = copy_snapshot(&db.begin_read().unwrap(), &dir.path().join("b.redb"));
        assert!(
            err.unwrap_err().to_string().contains("from_the_future_v9"),
            "the backup names what it could not copy"
        );
    }
}
