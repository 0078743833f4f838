//! Building audit events. Callers append them inside their own transaction.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::Event;
use crate::state::AppState;
use crate::store::{self, WriteTransaction};

use super::{ClientInfo, Page};

/// An event about to be recorded.
pub struct Audit<'a> {
    /// Event kind, such as `login.failure`.
    pub kind: &'static str,
    /// Acting user.
    pub actor: Option<Uuid>,
    /// Affected user.
    pub subject: Option<Uuid>,
    /// Email involved.
    pub email: Option<&'a str>,
    /// Client.
    pub client: Option<&'a ClientInfo>,
    /// Detail (never a secret).
    pub detail: String,
}

impl Audit<'_> {
    /// Append this event in `tx`, keeping the configured number of events.
    pub fn record(self, state: &AppState, tx: &WriteTransaction, now: i64) -> Result<()> {
        self.append(tx, state.cfg.audit_max_events, now)
    }

    /// Append this event in `tx`, keeping at most `max` events.
    pub fn append(self, tx: &WriteTransaction, max: u64, now: i64) -> Result<()> {
        let e = Event {
            id: 0,
            at: now,
            kind: self.kind.to_owned(),
            actor: self.actor,
            subject: self.subject,
            email: self.email.map(str::to_owned),
            ip: self.client.map(|c| c.ip.to_string()),
            detail: self.detail,
        };
        let (kind, actor, subject) = (self.kind, self.actor, self.subject);
        store::after_commit(move || {
            // Ids plainly (`actor=- subject=<uuid>`), not `Some(..)`/`None`.
            let id = |u: Option<Uuid>| u.map_or_else(|| "-".to_owned(), |u| u.to_string());
            tracing::info!(event = kind, actor = %id(actor), subject = %id(subject), "audit");
        });
        store::audit::append(tx, e, max)
    }
}

/// Shorthand constructor.
#[must_use]
pub fn event<'a>(
    kind: &'static str,
    actor: Option<Uuid>,
    subject: Option<Uuid>,
    client: Option<&'a ClientInfo>,
) -> Audit<'a> {
    Audit {
        kind,
        actor,
        subject,
        email: None,
        client,
        detail: String::new(),
    }
}

/// Drop events older than `audit_log_retention_days` (0 keeps them; the count bound still
/// applies). Returns how many went.
pub async fn prune(state: &AppState) -> Result<usize> {
    let days = state.settings().audit_log_retention_days;
    if days == 0 {
        return Ok(0);
    }
    let cutoff = state.now() - i64::from(days) * 86_400;
    // Read first: most runs find nothing to prune and need no write.
    let oldest = state
        .store
        .read(|tx| Ok(store::audit::after(tx, 0, 1)?.first().map(|e| e.at)))?;
    if oldest.is_none_or(|at| at >= cutoff) {
        return Ok(0);
    }
    state
        .store
        .write(move |tx| store::audit::prune_before(tx, cutoff))
        .await
}

/// Kinds about attacks on accounts and the keys (Posta's `security` category).
const SECURITY: &[&str] = &[
    "login.failure",
    "login.locked",
    "2fa.disable_failure",
    "password.change_failure",
    "reauth.failure",
    "keys.rotated",
    "oauth.link_repaired",
    "passkey.cloned",
];

/// Posta's category of an event: `security` (failed proofs, lock-outs, key rotation),
/// `admin` (providers, settings, and what an admin or a host command did to an account),
/// `user` (what people did to their own accounts).
#[must_use]
pub fn category(e: &Event) -> &'static str {
    if SECURITY.contains(&e.kind.as_str()) {
        "security"
    } else if e.kind.starts_with("oauth_provider.")
        || e.kind.starts_with("settings.")
        || e.detail.ends_with("(host command)")
        || matches!((e.actor, e.subject), (Some(a), Some(s)) if a != s)
    {
        "admin"
    } else {
        "user"
    }
}

/// A sentence for the event's kind, for a list a person reads.
#[must_use]
pub fn describe(kind: &str) -> &'static str {
    match kind {
        "login.success" => "Signed in",
        "login.failure" => "Failed sign-in",
        "login.locked" => "Sign-in locked after repeated failures",
        "user.registered" => "Account registered",
        "user.created" => "Account created",
        "user.deleted" => "Account deleted",
        "user.deletion_scheduled" => "Account deactivated; deletion scheduled",
        "user.deletion_cancelled" => "Scheduled deletion cancelled",
        "user.role_changed" => "Role changed",
        "user.active_changed" => "Account enabled or disabled",
        "user.email_verified_changed" => "Email verification changed",
        "password.changed" => "Password changed",
        "password.change_failure" => "Wrong current password",
        "2fa.enabled" => "Two-factor authentication enabled",
        "2fa.disabled" => "Two-factor authentication disabled",
        "2fa.reset" => "Two-factor authentication reset",
        "2fa.disable_failure" => "Wrong code to disable two-factor authentication",
        "reauth.failure" => "Failed re-authentication",
        "sessions.revoked" => "Sessions ended",
        "api_key.created" => "API key created",
        "api_key.revoked" => "API key revoked",
        "api_key.deleted" => "API key deleted",
        "oauth.linked" => "Identity provider linked",
        "oauth.unlinked" => "Identity provider unlinked",
        "oauth.link_repaired" => "Inconsistent identity-provider link removed",
        "oauth_provider.created" => "Identity provider added",
        "oauth_provider.updated" => "Identity provider changed",
        "oauth_provider.deleted" => "Identity provider removed",
        "settings.changed" => "Platform settings changed",
        "keys.rotated" => "Encryption key and JWT secret rotated",
        "passkey.added" => "Passkey added",
        "passkey.removed" => "Passkey removed",
        "passkey.reset" => "Passkeys removed by an administrator",
        "passkey.cloned" => "Passkey refused: its signature counter went backwards (a copy?)",
        _ => "Event",
    }
}

/// An event with the name of who acted, as the event list shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The stored event.
    pub event: Event,
    /// The acting user's name (gone when the user was deleted).
    pub actor_name: Option<String>,
}

fn named(tx: &impl store::Tx, events: Vec<Event>) -> Result<Vec<Entry>> {
    let mut names: Vec<(uuid::Uuid, Option<String>)> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let actor_name = match event.actor {
            Some(a) => match names.iter().find(|(id, _)| *id == a) {
                Some((_, n)) => n.clone(),
                None => {
                    let n = store::user::get(tx, a)?.map(|u| u.name);
                    names.push((a, n.clone()));
                    n
                }
            },
            None => None,
        };
        out.push(Entry { event, actor_name });
    }
    Ok(out)
}

/// Which events a list asks for.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// Posta's category (`user`, `admin`, `security`).
    pub category: Option<&'a str>,
    /// A kind, or a kind's prefix (`login` for `login.*`).
    pub kind: Option<&'a str>,
    /// Events by or about this user.
    pub user_id: Option<Uuid>,
    /// Words the type, email, address or detail contain (any case).
    pub search: Option<&'a str>,
}

impl Filter<'_> {
    fn keeps(&self, e: &Event) -> bool {
        self.category.is_none_or(|c| category(e) == c)
            && self.kind.is_none_or(|k| {
                e.kind == k || e.kind.strip_prefix(k).is_some_and(|r| r.starts_with('.'))
            })
            && self
                .user_id
                .is_none_or(|u| e.actor == Some(u) || e.subject == Some(u))
            && self.search.is_none_or(|q| {
                let q = q.to_lowercase();
                [
                    Some(e.kind.as_str()),
                    e.email.as_deref(),
                    e.ip.as_deref(),
                    Some(e.detail.as_str()),
                ]
                .into_iter()
                .flatten()
                .any(|f| f.to_lowercase().contains(&q))
            })
    }
}

/// A page of events, newest first.
pub fn page(
    state: &AppState,
    filter: &Filter<'_>,
    page: usize,
    size: usize,
) -> Result<Page<Entry>> {
    if let Some(c) = filter.category
        && !["user", "admin", "security"].contains(&c)
    {
        return Err(Error::BadRequest(
            "query category must be user, admin or security".into(),
        ));
    }
    let (items, total) = state.store.read(|tx| {
        let (events, total) =
            store::audit::page(tx, |e| filter.keeps(e), page.saturating_mul(size), size)?;
        Ok((named(tx, events)?, total))
    })?;
    Ok(Page {
        items,
        page,
        size,
        total,
    })
}

/// One of `user`'s own events (by or about them); another's is not found.
pub fn get_own(state: &AppState, user: Uuid, id: u64) -> Result<Entry> {
    let e = get(state, id)?;
    if e.event.actor == Some(user) || e.event.subject == Some(user) {
        Ok(e)
    } else {
        Err(Error::NotFound("event"))
    }
}

/// One event.
pub fn get(state: &AppState, id: u64) -> Result<Entry> {
    state.store.read(|tx| {
        let e = store::audit::get(tx, id)?.ok_or(Error::NotFound("event"))?;
        named(tx, vec![e])?
            .into_iter()
            .next()
            .ok_or(Error::NotFound("event"))
    })
}

/// The newest event's id.
pub fn last_id(state: &AppState) -> Result<u64> {
    state.store.read(store::audit::last_id)
}

/// Up to `limit` events after id `last`, oldest first.
pub fn after(state: &AppState, last: u64, limit: usize) -> Result<Vec<Entry>> {
    state
        .store
        .read(|tx| named(tx, store::audit::after(tx, last, limit)?))
}
