//! Building audit events. Callers append them inside their own transaction.

use uuid::Uuid;

use crate::error::Result;
use crate::model::Event;
use crate::state::AppState;
use crate::store::{self, WriteTransaction};

use super::ClientInfo;

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
    state
        .store
        .write(move |tx| store::audit::prune_before(tx, cutoff))
        .await
}
