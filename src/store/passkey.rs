//! Passkeys (`passkeys_v1`, keyed by credential id) and each account's list
//! (`user_passkeys_v1`).

use redb::ReadableTable;
use uuid::Uuid;

use super::codec;
use super::db::{Tx, WriteTransaction};
use super::tables::{PASSKEYS, USER_PASSKEYS};
use crate::error::{Error, Result};
use crate::model::Passkey;

/// Store a new passkey; a credential id already registered (to any account) is a conflict.
pub fn insert(tx: &WriteTransaction, p: &Passkey) -> Result<()> {
    let bytes = codec::encode_passkey(p)?;
    let mut t = tx.open_table(PASSKEYS)?;
    if t.get(p.credential_id.as_slice())?.is_some() {
        return Err(Error::Conflict("this passkey is already registered".into()));
    }
    t.insert(p.credential_id.as_slice(), bytes.as_slice())?;
    tx.open_table(USER_PASSKEYS)?.insert(
        (p.user_id.as_u128(), p.id.as_u128()),
        p.credential_id.as_slice(),
    )?;
    Ok(())
}

/// Rewrite a stored passkey (name, counter, last use).
pub fn update(tx: &WriteTransaction, p: &Passkey) -> Result<()> {
    let bytes = codec::encode_passkey(p)?;
    tx.open_table(PASSKEYS)?
        .insert(p.credential_id.as_slice(), bytes.as_slice())?;
    Ok(())
}

/// The passkey with this credential id.
pub fn by_credential(tx: &impl Tx, credential_id: &[u8]) -> Result<Option<Passkey>> {
    let Some(t) = tx.table(PASSKEYS)? else {
        return Ok(None);
    };
    t.get(credential_id)?
        .map(|v| codec::decode_passkey(v.value()))
        .transpose()
}

/// An account's passkeys, oldest first.
pub fn list_of(tx: &impl Tx, user: Uuid) -> Result<Vec<Passkey>> {
    let Some(t) = tx.table(USER_PASSKEYS)? else {
        return Ok(Vec::new());
    };
    let u = user.as_u128();
    let mut creds = Vec::new();
    for row in t.range((u, 0)..=(u, u128::MAX))? {
        creds.push(row?.1.value().to_vec());
    }
    drop(t);
    let mut out = Vec::with_capacity(creds.len());
    for c in creds {
        if let Some(p) = by_credential(tx, &c)? {
            out.push(p);
        }
    }
    out.sort_by_key(|p| (p.created_at, p.id));
    Ok(out)
}

/// How many passkeys an account has.
pub fn count_of(tx: &impl Tx, user: Uuid) -> Result<usize> {
    let Some(t) = tx.table(USER_PASSKEYS)? else {
        return Ok(0);
    };
    let u = user.as_u128();
    Ok(t.range((u, 0)..=(u, u128::MAX))?.count())
}

/// Remove one passkey of `user`; whether it existed.
pub fn remove(tx: &WriteTransaction, user: Uuid, id: Uuid) -> Result<bool> {
    let cred = tx
        .open_table(USER_PASSKEYS)?
        .remove((user.as_u128(), id.as_u128()))?
        .map(|v| v.value().to_vec());
    let Some(cred) = cred else {
        return Ok(false);
    };
    tx.open_table(PASSKEYS)?.remove(cred.as_slice())?;
    Ok(true)
}

/// Remove every passkey of `user`; how many.
pub fn remove_all_of(tx: &WriteTransaction, user: Uuid) -> Result<usize> {
    let ids: Vec<Uuid> = list_of(tx, user)?.into_iter().map(|p| p.id).collect();
    for id in &ids {
        remove(tx, user, *id)?;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn passkey(user: Uuid, cred: &[u8]) -> Passkey {
        Passkey {
            id: Uuid::new_v4(),
            user_id: user,
            credential_id: cred.to_vec(),
            user_handle: vec![1; 64],
            name: "k".into(),
            public_key: vec![1],
            state: [0; 7],
            transports: 0,
            backed_up: false,
            created_at: 1,
            last_used_at: None,
        }
    }

    #[test]
    fn credential_ids_are_unique_across_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("posta.redb")).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        store
            .write_blocking(|tx| insert(tx, &passkey(a, b"cred-1")))
            .unwrap();
        let again = store.write_blocking(|tx| insert(tx, &passkey(b, b"cred-1")));
        assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
        store
            .write_blocking(|tx| insert(tx, &passkey(a, b"cred-2")))
            .unwrap();
        assert_eq!(store.read(|tx| count_of(tx, a)).unwrap(), 2);
        assert_eq!(store.read(|tx| count_of(tx, b)).unwrap(), 0);
        assert_eq!(store.write_blocking(|tx| remove_all_of(tx, a)).unwrap(), 2);
        assert!(
            store
                .read(|tx| by_credential(tx, b"cred-1"))
                .unwrap()
                .is_none()
        );
    }
}
