//! Administration: user management with last-admin safety, settings, the audit log.

use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Origin, Role, Settings, User};
use crate::state::AppState;
use crate::store;

use super::{Actor, Caller, ClientInfo, Page, audit, user};

/// `POST /admin/users`.
pub async fn create_user(
    state: &AppState,
    actor: Actor<'_>,
    name: &str,
    email: &str,
    password: &str,
    role: Role,
    email_verified: bool,
) -> Result<User> {
    let n = user::prepare(state, name, email, password, role).await?;
    let now = state.now();
    let u = user::new_record(n, now, Origin::Admin, email_verified);
    let (st, cl, aid, origin) = (state.clone(), actor.client(), actor.id(), actor.origin());
    state
        .store
        .write(move |tx| {
            store::user::insert(tx, &u)?;
            let mut ev = audit::event("user.created", aid, Some(u.id), cl.as_ref());
            ev.email = Some(&u.email);
            ev.detail = format!("role {}{origin}", u.role.as_str());
            ev.record(&st, tx, now)?;
            Ok(u.clone())
        })
        .await
}

/// `GET /admin/users?search=`: case-insensitive match on name or email, newest first.
pub fn list_users(
    state: &AppState,
    search: Option<&str>,
    page: usize,
    size: usize,
) -> Result<Page<User>> {
    let needle = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase);
    let mut all = Vec::new();
    state.store.read(|tx| {
        store::user::for_each(tx, |u| {
            if needle.as_ref().is_none_or(|n| {
                u.email.contains(n.as_str()) || u.name.to_lowercase().contains(n.as_str())
            }) {
                all.push(u);
            }
            true
        })
    })?;
    all.sort_by_key(|u| std::cmp::Reverse((u.created_at, u.id)));
    Ok(Page::of(all, page, size))
}

/// Changes an admin may make to a user.
#[derive(Debug, Default)]
pub struct UserPatch {
    /// New name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Enable or disable.
    pub active: Option<bool>,
    /// Mark the email verified (or not).
    pub email_verified: Option<bool>,
}

/// `PUT /admin/users/{id}`.
pub async fn update_user(
    state: &AppState,
    actor: Actor<'_>,
    id: Uuid,
    patch: UserPatch,
) -> Result<User> {
    let name = patch.name.as_deref().map(user::valid_name).transpose()?;
    let aid = actor.id();
    if aid == Some(id) && patch.active == Some(false) {
        return Err(Error::BadRequest(
            "you cannot disable your own account".into(),
        ));
    }
    let (st, cl, now, origin) = (state.clone(), actor.client(), state.now(), actor.origin());
    state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
            let was_active_admin = u.active && u.role == Role::Admin;
            let mut changes = Vec::new();
            if let Some(n) = &name {
                u.name.clone_from(n);
            }
            if let Some(r) = patch.role.filter(|r| *r != u.role) {
                changes.push((
                    "user.role_changed",
                    format!("{} -> {}{origin}", u.role.as_str(), r.as_str()),
                ));
                u.role = r;
            }
            if let Some(a) = patch.active.filter(|a| *a != u.active) {
                changes.push(("user.active_changed", format!("active = {a}{origin}")));
                u.active = a;
                // Reactivating an account scheduled for deletion cancels the deletion.
                if a {
                    u.scheduled_deletion_at = None;
                }
            }
            // An address verified now ends every session opened before: whoever held the
            // account while the address was unproven (a stranger who registered it first)
            // is out.
            let mut verified_now = false;
            if let Some(v) = patch.email_verified.filter(|v| *v != u.email_verified()) {
                changes.push((
                    "user.email_verified_changed",
                    format!("email_verified = {v}{origin}"),
                ));
                u.email_verified_at = v.then_some(now);
                verified_now = v;
            }
            let still_active_admin = u.active && u.role == Role::Admin;
            if was_active_admin && !still_active_admin && store::user::active_admins(tx)? <= 1 {
                return Err(Error::BadRequest(
                    "the last active admin can be neither demoted nor disabled".into(),
                ));
            }
            u.updated_at = now;
            store::user::update(tx, &u)?;
            if !u.active || verified_now {
                // Disabling ends the sessions now; keys are refused while the user is inactive.
                store::session::remove_all_of(tx, id, None)?;
            }
            for (kind, detail) in changes {
                let mut ev = audit::event(kind, aid, Some(id), cl.as_ref());
                ev.detail = detail;
                ev.email = Some(&u.email);
                ev.record(&st, tx, now)?;
            }
            Ok(u)
        })
        .await
}

/// Set a user's password (an admin's reset, `posta admin reset-password`): the policy
/// applies, every session of the user ends.
pub async fn reset_password(
    state: &AppState,
    actor: Actor<'_>,
    id: Uuid,
    password: &str,
) -> Result<User> {
    let u = state
        .store
        .read(|tx| store::user::get(tx, id))?
        .ok_or(Error::NotFound("user"))?;
    let hash = user::hash_checked_password(state, &u, password).await?;
    let (aid, cl, origin) = actor.owned();
    let (st, now) = (state.clone(), state.now());
    state
        .store
        .write(move |tx| {
            let (u, n) = user::set_password(tx, id, &hash, None, now)?;
            let mut ev = audit::event("password.changed", aid, Some(id), cl.as_ref());
            ev.email = Some(&u.email);
            ev.detail = format!("reset; {n} sessions ended{origin}");
            ev.record(&st, tx, now)?;
            Ok(u)
        })
        .await
}

/// `POST /admin/users/{id}/revoke-sessions`.
pub async fn revoke_sessions(
    state: &AppState,
    actor: &Caller,
    id: Uuid,
    revoke_api_keys: bool,
    client: &ClientInfo,
) -> Result<(usize, usize)> {
    let (st, cl, now, aid) = (state.clone(), client.clone(), state.now(), actor.user.id);
    state
        .store
        .write(move |tx| {
            store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
            let n = store::session::remove_all_of(tx, id, None)?;
            let keys = if revoke_api_keys {
                store::api_key::revoke_all_of(tx, id, now)?
            } else {
                0
            };
            let mut ev = audit::event("sessions.revoked", Some(aid), Some(id), Some(&cl));
            ev.detail = format!("{n} sessions, {keys} API keys");
            ev.record(&st, tx, now)?;
            Ok((n, keys))
        })
        .await
}

/// One setting as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SettingView {
    /// Name.
    pub key: &'static str,
    /// Value as text.
    pub value: String,
    /// `bool`, `int` or `string`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// The settings as a list.
#[must_use]
pub fn settings_view(s: &Settings) -> Vec<SettingView> {
    vec![
        SettingView {
            key: "registration_enabled",
            value: s.registration_enabled.to_string(),
            kind: "bool",
        },
        SettingView {
            key: "allowed_signup_domains",
            value: s.allowed_signup_domains.join(","),
            kind: "string",
        },
        SettingView {
            key: "two_factor_required",
            value: s.two_factor_required.to_string(),
            kind: "bool",
        },
        SettingView {
            key: "login_rate_limit_count",
            value: s.login_rate_limit_count.to_string(),
            kind: "int",
        },
        SettingView {
            key: "login_rate_limit_window_minutes",
            value: s.login_rate_limit_window_minutes.to_string(),
            kind: "int",
        },
        SettingView {
            key: "reauth_window_minutes",
            value: s.reauth_window_minutes.to_string(),
            kind: "int",
        },
        SettingView {
            key: "account_deletion_grace_days",
            value: s.account_deletion_grace_days.to_string(),
            kind: "int",
        },
        SettingView {
            key: "audit_log_retention_days",
            value: s.audit_log_retention_days.to_string(),
            kind: "int",
        },
        SettingView {
            key: "require_email_verification",
            value: s.require_email_verification.to_string(),
            kind: "bool",
        },
        SettingView {
            key: "password_reset_enabled",
            value: s.password_reset_enabled.to_string(),
            kind: "bool",
        },
        SettingView {
            key: "unverified_account_days",
            value: s.unverified_account_days.to_string(),
            kind: "int",
        },
    ]
}

fn as_bool(key: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(Error::BadRequest(format!("setting {key}: expected a bool"))),
    }
}

fn as_int(key: &str, v: &Value, min: u32, max: u32) -> Result<u32> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| u32::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            Error::BadRequest(format!("setting {key}: expected an integer {min}..={max}"))
        })
}

/// Apply `(key, value, type?)` updates to `s`, all or nothing.
fn apply_settings(
    s: &mut Settings,
    updates: &[(String, Value, Option<String>)],
    mail_enabled: bool,
) -> Result<()> {
    for (key, v, ty) in updates {
        let expected = settings_view(s)
            .iter()
            .find(|x| x.key == key.as_str())
            .map(|x| x.kind)
            .ok_or_else(|| Error::BadRequest(format!("unknown setting {key}")))?;
        if let Some(t) = ty
            && t != expected
        {
            return Err(Error::BadRequest(format!(
                "setting {key}: type must be {expected}"
            )));
        }
        match key.as_str() {
            "registration_enabled" => s.registration_enabled = as_bool(key, v)?,
            "two_factor_required" => s.two_factor_required = as_bool(key, v)?,
            "login_rate_limit_count" => s.login_rate_limit_count = as_int(key, v, 1, 1_000_000)?,
            "login_rate_limit_window_minutes" => {
                s.login_rate_limit_window_minutes = as_int(key, v, 1, 10_080)?;
            }
            "reauth_window_minutes" => s.reauth_window_minutes = as_int(key, v, 1, 1_440)?,
            "account_deletion_grace_days" => {
                s.account_deletion_grace_days = as_int(key, v, 0, 365)?;
            }
            "audit_log_retention_days" => s.audit_log_retention_days = as_int(key, v, 0, 3_650)?,
            "require_email_verification" => {
                // A verification link must be able to reach the user: without outgoing mail
                // every unverified account would be stuck.
                let on = as_bool(key, v)?;
                if on && !mail_enabled {
                    return Err(Error::BadRequest(format!(
                        "setting {key}: needs outgoing mail (POSTA_SMTP_HOST), which is not configured; unverified accounts could never verify"
                    )));
                }
                s.require_email_verification = on;
            }
            "password_reset_enabled" => s.password_reset_enabled = as_bool(key, v)?,
            "unverified_account_days" => s.unverified_account_days = as_int(key, v, 0, 3_650)?,
            "allowed_signup_domains" => {
                let Value::String(text) = v else {
                    return Err(Error::BadRequest(format!(
                        "setting {key}: expected a string"
                    )));
                };
                let mut domains = Vec::new();
                for d in crate::config::split_list(text) {
                    let d = idna::domain_to_ascii(d.trim_start_matches('@'))
                        .ok()
                        .filter(|d| !d.is_empty() && d.contains('.'))
                        .ok_or_else(|| {
                            Error::BadRequest(format!("setting {key}: {d:?} is not a domain"))
                        })?;
                    domains.push(d);
                }
                s.allowed_signup_domains = domains;
            }
            _ => return Err(Error::BadRequest(format!("unknown setting {key}"))),
        }
    }
    Ok(())
}

/// Apply `(key, value, type?)` updates all-or-nothing and persist them. The settings are read,
/// changed and written in one transaction (two admins saving different keys at once both
/// keep theirs), and what is answered and published is what was committed.
pub async fn put_settings(
    state: &AppState,
    actor: &Caller,
    updates: Vec<(String, Value, Option<String>)>,
    client: &ClientInfo,
) -> Result<Settings> {
    // Refused input changes nothing and costs no write.
    let mail = state.cfg.mail_enabled();
    apply_settings(&mut state.settings(), &updates, mail)?;
    let (st, cl, now, aid) = (state.clone(), client.clone(), state.now(), actor.user.id);
    let saved = state
        .store
        .write(move |tx| {
            let mut s = store::meta::settings(tx)?;
            apply_settings(&mut s, &updates, mail)?;
            store::meta::put_settings(tx, &s)?;
            let mut ev = audit::event("settings.changed", Some(aid), None, Some(&cl));
            ev.detail = updates
                .iter()
                .map(|(k, _, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(",");
            ev.record(&st, tx, now)?;
            Ok(s)
        })
        .await?;
    state.refresh_settings()?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing;

    const PW: &str = "violet-tractor-41-moss";

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// The last active admin can be neither demoted, disabled nor deleted, whoever asks; a
    /// second admin lifts the rule for the first.
    #[test]
    fn the_last_active_admin_stays() {
        let (st, _dir) = testing::state();
        rt().block_on(async {
            let a = create_user(
                &st,
                Actor::Host,
                "Ann",
                "ann@example.com",
                PW,
                Role::Admin,
                true,
            )
            .await
            .unwrap();
            let demote = UserPatch {
                role: Some(Role::User),
                ..UserPatch::default()
            };
            let disable = UserPatch {
                active: Some(false),
                ..UserPatch::default()
            };
            for patch in [demote, disable] {
                let e = update_user(&st, Actor::Host, a.id, patch)
                    .await
                    .unwrap_err();
                assert!(e.to_string().contains("last active admin"), "{e}");
            }
            // Deleting needs a caller other than the admin deleted.
            let b = create_user(
                &st,
                Actor::Host,
                "Bo",
                "bo@example.com",
                PW,
                Role::Admin,
                true,
            )
            .await
            .unwrap();
            let demote_b = UserPatch {
                role: Some(Role::User),
                ..UserPatch::default()
            };
            let b = update_user(&st, Actor::Host, b.id, demote_b).await.unwrap();
            assert_eq!(b.role, Role::User);
            let demote_a = UserPatch {
                role: Some(Role::User),
                ..UserPatch::default()
            };
            assert!(update_user(&st, Actor::Host, a.id, demote_a).await.is_err());
            // With a second active admin, the first may go.
            let promote_b = UserPatch {
                role: Some(Role::Admin),
                ..UserPatch::default()
            };
            update_user(&st, Actor::Host, b.id, promote_b)
                .await
                .unwrap();
            let demote_a = UserPatch {
                role: Some(Role::User),
                ..UserPatch::default()
            };
            let a = update_user(&st, Actor::Host, a.id, demote_a).await.unwrap();
            assert_eq!(a.role, Role::User);
        });
        // Every change is in the audit log, marked as the host's.
        let roles = st
            .store
            .read(|tx| store::audit::page(tx, |e| e.kind == "user.role_changed", 0, 100))
            .unwrap()
            .0;
        assert_eq!(roles.len(), 3);
        assert!(roles.iter().all(|e| e.detail.ends_with("(host command)")));
    }

    /// A reset password obeys the policy and ends the user's sessions.
    #[test]
    fn reset_password_checks_the_policy() {
        let (st, _dir) = testing::state();
        rt().block_on(async {
            let u = create_user(
                &st,
                Actor::Host,
                "Cy",
                "cy@example.com",
                PW,
                Role::User,
                true,
            )
            .await
            .unwrap();
            assert!(
                reset_password(&st, Actor::Host, u.id, "short")
                    .await
                    .is_err()
            );
            let after = reset_password(&st, Actor::Host, u.id, "amber-cobalt-meadow-38")
                .await
                .unwrap();
            assert_ne!(after.password_hash, u.password_hash);
        });
    }
}
