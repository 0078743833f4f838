//! The encryption key and the store belong together: the store records a check value of the
//! key its secrets are sealed with, and a server never starts with another key (a restored
//! store on a new host would otherwise get a freshly generated key, and every 2FA sign-in
//! would fail with a bare 500).

use std::path::Path;

use crate::auth::crypto::{self, Sealer};
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
    let kcv = check_value(&state.sealer)?;
    let wrong = || Error::Internal(crate::auth::crypto::WRONG_KEY.into());
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

/// The key check value of a sealer's encryption key.
fn check_value(sealer: &Sealer) -> Result<[u8; 16]> {
    let full = sealer.keyed_hash(CHECK)?;
    let mut k = [0u8; 16];
    k.copy_from_slice(full.get(..16).unwrap_or_default());
    Ok(k)
}

/// Whether `key` is the one the store's check value names.
pub fn store_is_sealed_with(store: &Store, key: [u8; 32]) -> Result<bool> {
    is_check_value_of(store.read(store::meta::key_check)?, key)
}

/// Whether the key check value `kcv` (read from a store) names `key`.
pub fn is_check_value_of(kcv: Option<[u8; 16]>, key: [u8; 32]) -> Result<bool> {
    Ok(kcv == Some(check_value(&Sealer::new(key))?))
}

/// What a rotation changed.
#[derive(Debug, Default)]
pub struct Rotated {
    /// TOTP secrets (enrolled and pending) re-sealed.
    pub totp: usize,
    /// Identity providers' client secrets re-sealed.
    pub provider_secrets: usize,
    /// Sessions ended (they were signed with the old JWT secret).
    pub sessions: usize,
}

/// Re-seal every encrypted secret under `new_key` and record its check value, all in one
/// transaction: the store is sealed under the old key or the new one, never a mix. Every
/// session ends with it, because the JWT secret is replaced beside it (a leaked JWT secret
/// forges sessions, so its tokens must not keep verifying until they expire). Recovery codes
/// exist only as hashes: their hash key carries over, sealed under the new key.
pub async fn rotate(state: &AppState, new_key: [u8; 32]) -> Result<Rotated> {
    let old = state.sealer.clone();
    let new = Sealer::new(new_key).with_code_key(old.code_key());
    let kcv = check_value(&new)?;
    let code_key = new.seal(&old.code_key(), crypto::CODE_KEY_AAD)?;
    let now = state.now();
    let max = state.cfg.audit_max_events;
    state
        .store
        .write(move |tx| {
            let mut done = Rotated::default();
            let reseal = |sealed: &[u8], aad: &[u8]| new.seal(&old.open(sealed, aad)?, aad);
            let mut users = Vec::new();
            store::user::for_each(tx, |u| {
                users.push(u);
                true
            })?;
            for mut u in users {
                let aad = factor::aad(u.id);
                let mut changed = false;
                if let Some(t) = u.totp.as_mut() {
                    t.secret_sealed = reseal(&t.secret_sealed, &aad)?;
                    changed = true;
                }
                if let Some(p) = u.pending_totp.take() {
                    u.pending_totp = Some(reseal(&p, &aad)?);
                    changed = true;
                }
                if changed {
                    store::user::update(tx, &u)?;
                    done.totp += 1;
                }
                done.sessions += store::session::remove_all_of(tx, u.id, None)?;
            }
            for mut p in store::oauth::providers(tx)? {
                if let Some(sealed) = p.client_secret_sealed.take() {
                    p.client_secret_sealed = Some(reseal(&sealed, &oidc::secret_aad(p.id))?);
                    store::oauth::put_provider(tx, &p, None)?;
                    done.provider_secrets += 1;
                }
            }
            store::meta::set_code_key_sealed(tx, &code_key)?;
            store::meta::set_key_check(tx, &kcv)?;
            super::audit::Audit {
                detail: format!(
                    "{} TOTP secrets and {} provider secrets re-sealed; {} sessions ended (host command)",
                    done.totp, done.provider_secrets, done.sessions
                ),
                ..super::audit::event("keys.rotated", None, None, None)
            }
            .append(tx, max, now)?;
            Ok(done)
        })
        .await
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::testing;
    use crate::model::{OauthProvider, ProviderKind, Role, Totp, User};

    /// Every sealed secret opens under the new key and no longer under the old one; the
    /// recovery codes' hashes still match; the check value names the new key; sessions end.
    #[test]
    fn rotation_reseals_everything_in_one_go() {
        let (st, _dir) = testing::state();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut u = User::new("Ann".into(), "ann@example.com".into(), None, Role::User, 1);
        let aad = factor::aad(u.id);
        u.totp = Some(Totp {
            secret_sealed: st.sealer.seal(b"totp secret", &aad).unwrap(),
            last_step: 0,
            recovery_hashes: vec![factor::recovery_hash(&st, u.id, "abcd-efgh").unwrap()],
        });
        u.pending_totp = Some(st.sealer.seal(b"pending secret", &aad).unwrap());
        let pid = Uuid::new_v4();
        let p = OauthProvider {
            id: pid,
            name: "Corp".into(),
            slug: "corp".into(),
            kind: ProviderKind::Oidc,
            client_id: "posta".into(),
            client_secret_sealed: Some(
                st.sealer
                    .seal(b"client secret", &oidc::secret_aad(pid))
                    .unwrap(),
            ),
            issuer: Some("https://idp.example".into()),
            auth_url: None,
            token_url: None,
            userinfo_url: None,
            scopes: "openid".into(),
            auto_register: false,
            allowed_domains: Vec::new(),
            enabled: true,
            trust_email: false,
            skip_local_2fa: false,
            hidden: false,
            created_at: 1,
            updated_at: 1,
        };
        let uid = u.id;
        let session = crate::model::Session {
            id: Uuid::new_v4(),
            user_id: uid,
            ip: "127.0.0.1".into(),
            user_agent: String::new(),
            created_at: 1,
            expires_at: 100_000,
            proved_at: 1,
        };
        st.store
            .write_blocking(|tx| {
                store::user::insert(tx, &u)?;
                store::oauth::put_provider(tx, &p, None)?;
                store::session::insert(tx, &session)
            })
            .unwrap();
        rt.block_on(check(&st)).unwrap();

        let new_key = [0x5a; 32];
        let done = rt.block_on(rotate(&st, new_key)).unwrap();
        assert_eq!((done.totp, done.provider_secrets, done.sessions), (1, 1, 1));

        let (u, p, sealed_code_key) = st
            .store
            .read(|tx| {
                Ok((
                    store::user::get(tx, uid)?.unwrap(),
                    store::oauth::provider(tx, pid)?.unwrap(),
                    store::meta::code_key_sealed(tx)?.unwrap(),
                ))
            })
            .unwrap();
        let new = Sealer::new(new_key);
        let t = u.totp.unwrap();
        assert_eq!(new.open(&t.secret_sealed, &aad).unwrap(), b"totp secret");
        assert!(st.sealer.open(&t.secret_sealed, &aad).is_err());
        assert_eq!(
            new.open(&u.pending_totp.unwrap(), &aad).unwrap(),
            b"pending secret"
        );
        let secret = p.client_secret_sealed.unwrap();
        assert_eq!(
            new.open(&secret, &oidc::secret_aad(pid)).unwrap(),
            b"client secret"
        );
        // The recovery codes' hash key came along, sealed under the new key.
        let code_key: [u8; 32] = new
            .open(&sealed_code_key, crypto::CODE_KEY_AAD)
            .unwrap()
            .try_into()
            .unwrap();
        let after = new.with_code_key(code_key);
        assert_eq!(
            after
                .code_hash(format!("{uid}:abcdefgh").as_bytes())
                .unwrap(),
            t.recovery_hashes[0]
        );
        assert!(store_is_sealed_with(&st.store, new_key).unwrap());
        assert!(!store_is_sealed_with(&st.store, [0x22; 32]).unwrap());
        assert_eq!(st.store.read(store::session::count).unwrap(), 0);
    }
}
