//! Account deletion as Posta does it: a request (the owner's, or an admin's) deactivates the
//! account at once (sessions end, API keys stop verifying) and schedules its deletion after
//! `account_deletion_grace_days`; an admin can cancel it or, for an inactive account, delete
//! now; a background job deletes what is due, each account in its own transaction.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Role, User};
use crate::state::AppState;
use crate::store::{self, WriteTransaction};

use super::{Actor, Caller, ClientInfo, audit, reauth};

/// Deactivate `id` and schedule its deletion, in one transaction. Already scheduled: kept as
/// it is (the earlier date stands). The last active admin cannot be scheduled.
async fn schedule(state: &AppState, actor: Actor<'_>, id: Uuid) -> Result<User> {
    let grace = i64::from(state.settings().account_deletion_grace_days) * 86_400;
    let (aid, cl, origin) = actor.owned();
    let (st, now) = (state.clone(), state.now());
    state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
            if u.scheduled_deletion_at.is_some() {
                return Ok(u);
            }
            if u.active && u.role == Role::Admin && store::user::active_admins(tx)? <= 1 {
                return Err(Error::BadRequest(
                    "the last active admin cannot be deleted".into(),
                ));
            }
            let at = now + grace;
            u.active = false;
            u.scheduled_deletion_at = Some(at);
            u.updated_at = now;
            store::user::update(tx, &u)?;
            store::session::remove_all_of(tx, id, None)?;
            let mut ev = audit::event("user.deletion_scheduled", aid, Some(id), cl.as_ref());
            ev.email = Some(&u.email);
            ev.detail = format!("deleted at {}{origin}", crate::clock::rfc3339(at));
            ev.record(&st, tx, now)?;
            Ok(u)
        })
        .await
}

/// `POST /users/me/delete`: with the password or a code in the request, or a recent proof.
pub async fn request_own(
    state: &AppState,
    caller: &Caller,
    given: Option<reauth::Given<'_>>,
    client: &ClientInfo,
) -> Result<User> {
    reauth::require_recent(state, caller, given, client, "delete your account").await?;
    schedule(state, Actor::Admin(caller, client), caller.user.id).await
}

/// `DELETE /admin/users/{id}`: schedule another account's deletion.
pub async fn schedule_by_admin(state: &AppState, actor: Actor<'_>, id: Uuid) -> Result<User> {
    if actor.id() == Some(id) {
        return Err(Error::BadRequest(
            "you cannot delete your own account here (use your account page)".into(),
        ));
    }
    schedule(state, actor, id).await
}

/// `POST /admin/users/{id}/cancel-deletion`: reactivate a scheduled account.
pub async fn cancel(state: &AppState, actor: Actor<'_>, id: Uuid) -> Result<User> {
    let (aid, cl, origin) = actor.owned();
    let (st, now) = (state.clone(), state.now());
    state
        .store
        .write(move |tx| {
            let mut u = store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
            if u.scheduled_deletion_at.is_none() {
                return Err(Error::Conflict(
                    "no deletion is scheduled for this user".into(),
                ));
            }
            u.scheduled_deletion_at = None;
            u.active = true;
            u.updated_at = now;
            store::user::update(tx, &u)?;
            let mut ev = audit::event("user.deletion_cancelled", aid, Some(id), cl.as_ref());
            ev.email = Some(&u.email);
            ev.detail = format!("reactivated{origin}");
            ev.record(&st, tx, now)?;
            Ok(u)
        })
        .await
}

/// `DELETE /admin/users/{id}/force`: delete an inactive account now.
pub async fn force(state: &AppState, actor: Actor<'_>, id: Uuid) -> Result<()> {
    if actor.id() == Some(id) {
        return Err(Error::BadRequest(
            "you cannot delete your own account".into(),
        ));
    }
    let (aid, cl, origin) = actor.owned();
    let (st, now) = (state.clone(), state.now());
    state
        .store
        .write(move |tx| {
            let u = store::user::get(tx, id)?.ok_or(Error::NotFound("user"))?;
            if u.active {
                return Err(Error::Conflict(
                    "only an inactive account can be deleted at once: disable it or schedule its deletion first".into(),
                ));
            }
            purge(tx, &u)?;
            let mut ev = audit::event("user.deleted", aid, Some(id), cl.as_ref());
            ev.email = Some(&u.email);
            ev.detail = format!("deleted at once{origin}");
            ev.record(&st, tx, now)
        })
        .await
}

/// Remove a user with everything that hangs off it.
pub fn purge(tx: &WriteTransaction, u: &User) -> Result<()> {
    let id = u.id;
    store::session::remove_all_of(tx, id, None)?;
    for k in store::api_key::list_of(tx, id)? {
        store::api_key::remove(tx, &k)?;
    }
    for l in store::oauth::links_of(tx, id)? {
        store::oauth::remove_link(tx, &l)?;
    }
    store::throttle::forget_devices(tx, id)?;
    store::prefs::remove(tx, id)?;
    store::passkey::remove_all_of(tx, id)?;
    store::user::remove(tx, u)
}

/// The background job: delete every account whose scheduled time has come. Each in its own
/// transaction, re-checked there (an admin may have cancelled it meanwhile), so each is
/// deleted once. Returns how many were deleted.
pub async fn run_due(state: &AppState) -> Result<usize> {
    let now = state.now();
    let due = state.store.read(|tx| {
        let mut ids = Vec::new();
        store::user::for_each(tx, |u| {
            if u.scheduled_deletion_at.is_some_and(|at| at <= now) {
                ids.push(u.id);
            }
            true
        })?;
        Ok(ids)
    })?;
    let mut deleted = 0;
    for id in due {
        let st = state.clone();
        let done = state
            .store
            .write(move |tx| {
                let Some(u) = store::user::get(tx, id)? else {
                    return Ok(false);
                };
                if u.active || u.scheduled_deletion_at.is_none_or(|at| at > now) {
                    return Ok(false);
                }
                purge(tx, &u)?;
                let mut ev = audit::event("user.deleted", None, Some(id), None);
                ev.email = Some(&u.email);
                ev.detail = "scheduled deletion".into();
                ev.record(&st, tx, now)?;
                Ok(true)
            })
            .await?;
        deleted += usize::from(done);
    }
    Ok(deleted)
}
