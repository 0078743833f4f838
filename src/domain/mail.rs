//! Messages the appliance sends: composed here (plain text and HTML, links to the dashboard's
//! pages built from `POSTA_WEB_URL`, no remote images) and queued in the outbox inside the
//! caller's transaction. Mailed links open pages that show what will happen and consume the
//! token with a POST: a mail scanner fetching every link uses nothing up.
//!
//! Mail bombing is capped: at most [`PER_RECIPIENT_PER_HOUR`] messages to one address per
//! hour; over the cap the request answers as usual and nothing is queued.

use crate::auth::crypto;
use crate::error::Result;
use crate::model::{EmailToken, Mail, TokenKind};
use crate::state::AppState;
use crate::store::{self, WriteTransaction};

/// Messages one address may be sent per hour.
pub const PER_RECIPIENT_PER_HOUR: u32 = 5;
/// A verification link lives a day.
pub const VERIFY_TTL: i64 = 86_400;
/// A reset link lives an hour.
pub const RESET_TTL: i64 = 3_600;
/// Messages kept in the outbox at most.
const OUTBOX_CAP: u64 = 10_000;

/// A message to compose: a heading, paragraphs, and one button.
pub struct Compose<'a> {
    /// Outbox kind (`verify_email`, …).
    pub kind: &'static str,
    /// Recipient.
    pub to: &'a str,
    /// Subject (the product name is put in front).
    pub subject: &'a str,
    /// Paragraphs of plain text.
    pub paragraphs: &'a [String],
    /// The button: its label and the dashboard path (with query) it opens.
    pub action: Option<(&'a str, String)>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The text and HTML bodies of a message.
fn render(state: &AppState, c: &Compose<'_>) -> (String, String) {
    let web = state.cfg.web_url.as_deref().unwrap_or_default();
    let mut text = String::new();
    let mut html = String::from(
        "<!doctype html><html><body style=\"font-family:sans-serif;max-width:560px;margin:auto\">\
         <h2>Posta</h2>",
    );
    for p in c.paragraphs {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str("<p>");
        html.push_str(&escape(p));
        html.push_str("</p>");
    }
    if let Some((label, path)) = &c.action {
        let url = format!("{web}{path}");
        text.push_str(&format!("{label}: {url}\n\n"));
        html.push_str(&format!(
            "<p><a href=\"{u}\" style=\"display:inline-block;padding:10px 16px;background:#7c3aed;color:#fff;text-decoration:none;border-radius:6px\">{l}</a></p><p style=\"color:#666;font-size:12px\">{u}</p>",
            u = escape(&url),
            l = escape(label)
        ));
    }
    text.push_str("-- \nPosta\n");
    html.push_str("<p style=\"color:#666;font-size:12px\">Posta</p></body></html>");
    (text, html)
}

/// Queue a message in `tx`, unless its address reached the hourly cap (then nothing is queued
/// and the caller answers as usual). Returns whether it was queued.
pub fn queue(state: &AppState, tx: &WriteTransaction, c: &Compose<'_>) -> Result<bool> {
    let now = state.now();
    if !store::mail_caps::take(tx, c.to, now, PER_RECIPIENT_PER_HOUR)? {
        tracing::info!(
            kind = c.kind,
            "mail not queued: the recipient's hourly cap is reached"
        );
        return Ok(false);
    }
    let (text, html) = render(state, c);
    let m = Mail {
        id: 0,
        kind: c.kind.to_owned(),
        to: c.to.to_owned(),
        subject: format!("Posta: {}", c.subject),
        text,
        html,
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
    };
    if let Some(dropped) = store::outbox::push(tx, m, OUTBOX_CAP)? {
        tracing::warn!(id = dropped.id, kind = %dropped.kind, "outbox full: the oldest undeliverable message was given up");
    }
    let st = state.clone();
    store::after_commit(move || st.mail_wake.notify_one());
    Ok(true)
}

/// Whether a message to `to` would be queued now (the hourly cap): checked before a token is
/// issued, so that a capped request does not replace a link already mailed.
pub fn may_send(state: &AppState, tx: &WriteTransaction, to: &str) -> Result<bool> {
    store::mail_caps::allows(tx, to, state.now(), PER_RECIPIENT_PER_HOUR)
}

/// A new single-use token for `user` (earlier ones of the same kind stop working), stored as
/// its hash in `tx`; returns the token to mail.
pub fn issue_token(
    state: &AppState,
    tx: &WriteTransaction,
    kind: TokenKind,
    user: uuid::Uuid,
    email: &str,
    ttl: i64,
) -> Result<String> {
    let secret = crypto::random_bytes::<32>()?;
    let token = base64_url(&secret);
    let now = state.now();
    store::email_token::remove_of(tx, user, Some(kind))?;
    store::email_token::put(
        tx,
        &crypto::sha256(token.as_bytes()),
        &EmailToken {
            kind,
            user_id: user,
            email: email.to_owned(),
            created_at: now,
            expires_at: now + ttl,
        },
    )?;
    Ok(token)
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Percent-encode a token for a link's query (it is URL-safe base64 already; this keeps it so
/// whatever it holds).
#[must_use]
pub fn query_value(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
