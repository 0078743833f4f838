//! Accounts: email canonicalisation, creation, profile, password change, the first admin.

use crate::auth::password;
use crate::error::{Error, Result};
use crate::model::{Origin, Role, User};
use crate::state::AppState;
use crate::store;

use super::proof::{self, Proofs};
use super::{Caller, ClientInfo, audit};

/// Canonical form of an email with the default rules: an RFC 5321 dot-atom ASCII local part
/// (see [`canonical_email_with`]).
pub fn canonical_email(raw: &str) -> Result<String> {
    canonical_email_with(raw, false)
}

/// Canonical form of an email under this server's rules (`email_utf8_local_parts`).
pub fn canonical(state: &AppState, raw: &str) -> Result<String> {
    canonical_email_with(raw, state.cfg.email_utf8_local_parts)
}

/// RFC 5322 `atext`: what a dot-atom's atoms are made of.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// Canonical form of an email: trimmed, lower-case local part, IDNA (punycode, lower-case)
/// domain; equal accounts compare equal on this form. The local part is a dot-atom of ASCII
/// `atext` (no `,` `;` `<` or quoting, which reach forward-auth headers and mail clients), or,
/// with `utf8`, may also hold letters of one script (a Latin `a` beside a Cyrillic `а` is a
/// look-alike of another address, and is refused).
pub fn canonical_email_with(raw: &str, utf8: bool) -> Result<String> {
    let s = raw.trim();
    let bad = |r: &str| Err(Error::invalid("email", r.to_owned()));
    if s.is_empty() {
        return bad("is required");
    }
    if s.len() > 254 {
        return bad("is too long");
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("must not contain spaces or control characters");
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return bad("is not a valid email address");
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') || domain.is_empty() {
        return bad("is not a valid email address");
    }
    let atoms_ok = local
        .split('.')
        .all(|a| !a.is_empty() && a.bytes().all(|b| is_atext(b) || (utf8 && b >= 0x80)));
    if !atoms_ok {
        return bad("may hold only letters, digits, dots and !#$%&'*+-/=?^_`{|}~ before the @");
    }
    if utf8 && !local.is_ascii() {
        use unicode_script::{Script, UnicodeScript};
        let mut seen: Option<Script> = None;
        for c in local.chars().filter(|c| c.is_alphabetic()) {
            let s = c.script();
            if matches!(s, Script::Common | Script::Inherited) {
                continue;
            }
            match seen {
                Some(first) if first != s => return bad("mixes letters of different scripts"),
                _ => seen = Some(s),
            }
        }
    }
    let Ok(domain) = idna::domain_to_ascii(domain) else {
        return bad("has an invalid domain");
    };
    if domain.is_empty()
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return bad("has an invalid domain");
    }
    Ok(format!("{}@{domain}", local.to_lowercase()))
}

/// A display name: trimmed, 1–100 characters, no control characters.
pub fn valid_name(raw: &str) -> Result<String> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(Error::invalid("name", "is required"));
    }
    if n.chars().count() > 100 {
        return Err(Error::invalid("name", "must be at most 100 characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(n.to_owned())
}

/// Validated input for a new password account.
pub struct NewUser {
    /// Display name.
    pub name: String,
    /// Canonical email.
    pub email: String,
    /// argon2id hash.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

/// Validate name, email and password policy and hash the password (off the runtime).
pub async fn prepare(
    state: &AppState,
    name: &str,
    email: &str,
    password: &str,
    role: Role,
) -> Result<NewUser> {
    let (name, email) = validate_new(state, name, email, password)?;
    hash_new(state, name, email, password, role).await
}

/// Validate name, email and password policy: `(name, canonical email)`.
pub fn validate_new(
    state: &AppState,
    name: &str,
    email: &str,
    password: &str,
) -> Result<(String, String)> {
    let name = valid_name(name)?;
    let email = canonical(state, email)?;
    password::check_policy(password, state.cfg.password_min_length, &email, &name)?;
    Ok((name, email))
}

/// Hash the password of validated input (off the runtime).
pub async fn hash_new(
    state: &AppState,
    name: String,
    email: String,
    password: &str,
    role: Role,
) -> Result<NewUser> {
    let cost = state.cost();
    let pw = password.to_owned();
    let password_hash = state
        .hash_work(move |mem| password::hash_in(mem, &pw, cost))
        .await??;
    Ok(NewUser {
        name,
        email,
        password_hash,
        role,
    })
}

/// A fresh user record.
#[must_use]
pub fn new_record(n: NewUser, now: i64, origin: Origin, email_verified: bool) -> User {
    User {
        origin,
        email_verified_at: email_verified.then_some(now),
        ..User::new(n.name, n.email, Some(n.password_hash), n.role, now)
    }
}

/// Update the caller's own name.
pub async fn update_profile(
    state: &AppState,
    caller: &Caller,
    name: Option<&str>,
    login_alerts: Option<bool>,
) -> Result<User> {
    let name = name.map(valid_name).transpose()?;
    let id = caller.user.id;
    let now = state.now();
    state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
            if let Some(n) = &name {
                u.name.clone_from(n);
            }
            if let Some(a) = login_alerts {
                u.login_alerts = a;
            }
            u.updated_at = now;
            store::user::update(tx, &u)?;
            Ok(u)
        })
        .await
}

/// Check `password` against the policy for `u` and hash it (off the runtime): a new password
/// set for an existing account (an admin's reset, a reset link).
pub async fn hash_checked_password(state: &AppState, u: &User, password: &str) -> Result<String> {
    password::check_policy(password, state.cfg.password_min_length, &u.email, &u.name)?;
    let (pw, cost) = (password.to_owned(), state.cost());
    state
        .hash_work(move |mem| password::hash_in(mem, &pw, cost))
        .await?
}

/// Change the caller's password and end its other sessions.
pub async fn change_password(
    state: &AppState,
    caller: &Caller,
    current: &str,
    new: &str,
    revoke_api_keys: bool,
    client: &ClientInfo,
) -> Result<(usize, usize)> {
    if current.len() > password::MAX_PASSWORD_BYTES {
        return Err(Error::invalid("current_password", "is incorrect"));
    }
    let u = &caller.user;
    password::check_policy(new, state.cfg.password_min_length, &u.email, &u.name)?;
    let now = state.now();
    let proofs = proof::of(state);
    let attempt = proofs.reserve(&u.email, client, false, now).await?;
    let stored = u.password_hash.clone();
    let (cur, next, cost) = (current.to_owned(), new.to_owned(), state.cost());
    // An SSO-only account has no current password; it may set one only through the admin.
    let ok_and_hash = state
        .hash_work(move |mem| {
            let ok = stored
                .as_deref()
                .is_some_and(|h| password::verify_in(mem, h, &cur));
            if ok {
                password::hash_in(mem, &next, cost).map(Some)
            } else {
                Ok(None)
            }
        })
        .await??;
    let Some(hash) = ok_and_hash else {
        proofs
            .failed(
                attempt,
                "password.change_failure",
                Some(u.id),
                &u.email,
                "wrong current password",
                client,
                now,
            )
            .await?;
        return Err(Error::invalid("current_password", "is incorrect"));
    };
    Proofs::succeeded(attempt);
    let (id, keep, st, client) = (u.id, caller.session_id(), state.clone(), client.clone());
    state
        .store
        .write(move |tx| {
            let (_, n) = set_password(tx, id, &hash, keep, now)?;
            // Keys a thief minted with the session outlive the password unless revoked too.
            let keys = if revoke_api_keys {
                store::api_key::revoke_all_of(tx, id, now)?
            } else {
                0
            };
            let mut ev = audit::event("password.changed", Some(id), Some(id), Some(&client));
            ev.detail = format!("{n} other sessions ended, {keys} API keys revoked");
            ev.record(&st, tx, now)?;
            Ok((n, keys))
        })
        .await
}

/// Inside `tx`: store a new password hash and end the user's sessions but `keep`. The user as
/// saved, and how many sessions ended.
pub fn set_password(
    tx: &store::WriteTransaction,
    id: uuid::Uuid,
    hash: &str,
    keep: Option<uuid::Uuid>,
    now: i64,
) -> Result<(User, usize)> {
    let mut u = store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
    u.password_hash = Some(hash.to_owned());
    u.updated_at = now;
    store::user::update(tx, &u)?;
    let n = store::session::remove_all_of(tx, id, keep)?;
    Ok((u, n))
}

/// Create the first admin when the store has none. Returns the generated password, if one
/// had to be made up, so the caller can show it once.
pub async fn ensure_first_admin(state: &AppState) -> Result<Option<String>> {
    let has_admin = state
        .store
        .read(|tx| Ok(!store::user::admin_ids(tx)?.is_empty()))?;
    if has_admin {
        return Ok(None);
    }
    let (password, generated) = match &state.cfg.admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (generate_password()?, true),
    };
    let n = prepare(
        state,
        "Admin",
        &state.cfg.admin_email,
        &password,
        Role::Admin,
    )
    .await
    .map_err(|e| Error::Internal(format!("admin_email/admin_password: {e}")))?;
    let now = state.now();
    // The operator chose this address: verified.
    let u = new_record(n, now, Origin::Admin, true);
    let st = state.clone();
    state
        .store
        .write(move |tx| {
            store::user::insert(tx, &u)?;
            let mut ev = audit::event("user.created", None, Some(u.id), None);
            ev.email = Some(&u.email);
            ev.detail = "first admin".into();
            ev.record(&st, tx, now)
        })
        .await?;
    Ok(generated.then_some(password))
}

/// The user with this email (canonicalised as at sign-up).
pub fn find_by_email(state: &AppState, email: &str) -> Result<User> {
    let e = canonical(state, email)?;
    state
        .store
        .read(|tx| store::user::by_email(tx, &e))?
        .ok_or(Error::NotFound("user"))
}

/// A strong random password (20 characters from a 56-symbol unambiguous alphabet, ~116 bits).
pub fn generate_password() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = crate::auth::crypto::random_bytes::<64>()?;
    // Rejection sampling keeps the distribution uniform.
    let limit = 256 - (256 % ALPHABET.len());
    let mut out: String = bytes
        .iter()
        .filter(|b| usize::from(**b) < limit)
        .filter_map(|b| ALPHABET.get(usize::from(*b) % ALPHABET.len()))
        .take(20)
        .map(|b| char::from(*b))
        .collect();
    while out.len() < 20 {
        out.push_str(&generate_password()?);
        out.truncate(20);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            canonical_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert_eq!(
            canonical_email("a@bücher.de").unwrap(),
            "a@xn--bcher-kva.de"
        );
        assert!(canonical_email("a\0b@x.y").is_err());
        assert!(canonical_email("no-at-sign").is_err());
        assert!(canonical_email("@x.y").is_err());
        assert!(canonical_email("a@").is_err());
        assert!(canonical_email("a b@x.y").is_err());
        // Forward-auth headers and mail clients see the local part: no specials, no quoting,
        // no look-alikes from other scripts.
        for bad in [
            "a,b@x.y",
            "a;b@x.y",
            "a<b@x.y",
            "\"a\"@x.y",
            ".a@x.y",
            "a..b@x.y",
            "аdmin@x.y",
        ] {
            assert!(canonical_email(bad).is_err(), "{bad}");
        }
        assert_eq!(canonical_email("o'neil+tag@x.y").unwrap(), "o'neil+tag@x.y");
        // Allowed UTF-8 local parts: one script at a time.
        assert_eq!(canonical_email_with("Jörg@x.y", true).unwrap(), "jörg@x.y");
        assert_eq!(canonical_email_with("пётр@x.y", true).unwrap(), "пётр@x.y");
        assert!(
            canonical_email_with("аdmin@x.y", true).is_err(),
            "Cyrillic а with Latin"
        );
        assert!(canonical_email_with("a,b@x.y", true).is_err());
    }

    #[test]
    fn passwords_are_strong() {
        let p = generate_password().unwrap();
        assert_eq!(p.len(), 20);
        assert_ne!(p, generate_password().unwrap());
    }
}
