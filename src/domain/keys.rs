//! The encryption key and the store belong together: the store records a check value of the
//! key its secrets are sealed with, and a server never starts with another key (a restored
//! store on a new host would otherwise get a freshly generated key, and every 2FA sign-in
//! would fail with a bare 500).

use std::path::Path;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{self, Store};

use super::{factor, oidc};

const CHECK: &[u8] = b"posta encryption key check v1";

/// Whether the store holds anything sealed with an encryption key (TOTP secrets, pending
/// enrolments, identity providers' client secrets), or records which key it was.
pub fn store_needs_its_key(store: &Store) -> Result<bool> {
    store.read(|tx| {
        if store::meta::key_check(tx)?.is_some() {
            return Ok(true);
        }
        let mut sealed = store::oauth::providers(tx)?
            .iter()
            .any(|p| p.client_secret_sealed.is_some());
        if !sealed {
            store::user::for_each(tx, |u| {
                sealed = u.totp.is_some() || u.pending_totp.is_some();
                !sealed
            })?;
        }
        Ok(sealed)
    })
}

/// Refuse to make up an encryption key for a store that needs its own.
pub fn refuse_a_new_key(store: &Store, key_file: &Path) -> Result<()> {
    if store_needs_its_key(store)? {
        return Err(Error::Internal(format!(
            "the store holds secrets sealed with an encryption key, and no key was found (looked for POSTA_ENCRYPTION_KEY, $CREDENTIALS_DIRECTORY/encryption_key and {}); put the key this store was used with there (it travels with its backups) instead of letting a new one be generated",
            key_file.display()
        )));
    }
    Ok(())
}

/// At start-up: the key in use must be the store's. A store without a check value (written
/// by an earlier release) is checked against one of its sealed secrets, then given one.
pub async fn check(state: &AppState) -> Result<()> {
    let kcv: [u8; 16] = {
        let full = state.sealer.keyed_hash(CHECK)?;
        let mut k = [0u8; 16];
        k.copy_from_slice(full.get(..16).unwrap_or_default());
        k
    };
    let wrong = || {
        Error::Internal(
            "the encryption key does not match the one this store's secrets are sealed with (POSTA_ENCRYPTION_KEY, or encryption.key in the data directory): use the key that came with this store; a new key would make every 2FA sign-in fail".into(),
        )
    };
    match state.store.read(store::meta::key_check)? {
        Some(k) if k == kcv => return Ok(()),
        Some(_) => return Err(wrong()),
        None => {}
    }
    // An earlier release's store: try one sealed secret before recording the key.
    let opens = state.store.read(|tx| {
        for p in store::oauth::providers(tx)? {
            if let Some(s) = &p.client_secret_sealed {
                return Ok(Some(state.sealer.open(s, &oidc::secret_aad(p.id)).is_ok()));
            }
        }
        let mut found = None;
        store::user::for_each(tx, |u| {
            if let Some(t) = &u.totp {
                found = Some(
                    state
                        .sealer
                        .open(&t.secret_sealed, &factor::aad(u.id))
                        .is_ok(),
                );
            }
            found.is_none()
        })?;
        Ok(found)
    })?;
    if opens == Some(false) {
        return Err(wrong());
    }
    state
        .store
        .write(move |tx| store::meta::set_key_check(tx, &kcv))
        .await
}
