//! Outgoing mail: the SMTP relay (lettre over rustls, no OpenSSL) and the sender task that
//! drains the outbox.
//!
//! A request that causes mail commits the message into the outbox in the same transaction as
//! the change, and returns without waiting for SMTP. This task delivers what is due, oldest
//! first: a delivered message leaves the outbox in a transaction of its own (a crash between
//! the relay's acceptance and that commit sends it once more, as SMTP itself may); a permanent
//! refusal (5xx) gives it up at once, audited; a temporary failure is retried with exponential
//! backoff for a day, then given up, audited. The outbox survives restarts and kill -9.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Config;
use crate::domain::audit;
use crate::model::Mail;
use crate::state::AppState;
use crate::store;

/// Messages sent per pass before the outbox is looked at again.
const BATCH: usize = 20;
/// A message undeliverable for this long is given up.
const GIVE_UP_AFTER: i64 = 86_400;
/// Longest wait between two attempts at one message.
const MAX_BACKOFF: i64 = 3_600;

/// The configured relay.
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Why a message was not delivered.
#[derive(Debug)]
pub struct SendError {
    /// The relay refused it for good (5xx), or it cannot be built: no retry.
    pub permanent: bool,
    /// What happened (never the message body).
    pub reason: String,
}

impl Relay {
    /// The relay `cfg` names; `Ok(None)` when no SMTP host is configured.
    pub fn from_config(cfg: &Config) -> Result<Option<Self>, String> {
        let Some(host) = &cfg.smtp_host else {
            return Ok(None);
        };
        let from: Mailbox = cfg
            .smtp_from
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| format!("smtp_from: {e}"))?;
        let tls = if cfg.smtp_tls == "none" {
            Tls::None
        } else {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(ca) = &cfg.smtp_ca {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("smtp_ca {}: {e}", ca.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("smtp_ca {}: {e}", ca.display()))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("smtp tls: {e}"))?;
            if cfg.smtp_tls == "tls" {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        };
        // `builder_dangerous` only means "TLS as configured here": Tls::None is refused by the
        // configuration for anything but a loopback relay.
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
            .port(cfg.smtp_port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(30)));
        if let Some(user) = &cfg.smtp_username {
            let pw = cfg
                .smtp_password
                .as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default();
            b = b.credentials(Credentials::new(user.clone(), pw));
        }
        Ok(Some(Self {
            transport: b.build(),
            from,
        }))
    }

    /// Hand one message to the relay.
    pub async fn send(&self, m: &Mail) -> Result<(), SendError> {
        let msg = build(&self.from, m)?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| SendError {
                permanent: e.is_permanent(),
                reason: e.to_string(),
            })
    }
}

/// The message as it goes out: text and HTML alternatives, typed headers.
fn build(from: &Mailbox, m: &Mail) -> Result<Message, SendError> {
    let permanent = |reason: String| SendError {
        permanent: true,
        reason,
    };
    let to: Mailbox =
        m.to.parse()
            .map_err(|e| permanent(format!("recipient: {e}")))?;
    // Typed headers: lettre encodes the subject and the addresses, so nothing a user typed
    // can start a header of its own; line breaks are dropped before that too.
    let subject: String = m.subject.chars().filter(|c| !c.is_control()).collect();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(
            m.text.clone(),
            m.html.clone(),
        ))
        .map_err(|e| permanent(format!("message: {e}")))
}

/// Seconds to wait after the `attempts`-th failure: 30 s, doubling, at most an hour.
fn backoff(attempts: u32) -> i64 {
    (30_i64 << attempts.min(10)).min(MAX_BACKOFF)
}

/// The sender task: deliver what is due, then sleep until the next message is due, one is
/// queued, or the server stops.
pub async fn run(state: AppState, relay: Relay) {
    let mut closing = state.closing.subscribe();
    // A start retries everything queued at once (a restart is what an operator does after
    // fixing the relay); later passes keep to each message's backoff.
    let mut everything = true;
    loop {
        let pass = deliver_due(&state, &relay, everything).await;
        everything = false;
        let next = match pass {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "mail: reading the outbox failed");
                Some(state.now() + 30)
            }
        };
        let wait = next.map_or(Duration::from_secs(3_600), |at| {
            Duration::from_secs(u64::try_from(at - state.now()).unwrap_or(0).min(3_600))
        });
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            () = state.mail_wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = closing.wait_for(|c| *c) => return,
        }
    }
}

/// One pass over the due messages; returns when the next one is due.
async fn deliver_due(
    state: &AppState,
    relay: &Relay,
    everything: bool,
) -> crate::error::Result<Option<i64>> {
    let mut tried = 0_u64;
    loop {
        let now = state.now();
        let due = if everything {
            // Each queued message once, in order, whatever its next attempt.
            state
                .store
                .read(|tx| store::outbox::from(tx, tried, BATCH))?
        } else {
            state.store.read(|tx| store::outbox::due(tx, now, BATCH))?
        };
        if due.is_empty() {
            return state.store.read(store::outbox::next_due);
        }
        for m in due {
            tried = tried.max(m.id);
            let outcome = relay.send(&m).await;
            settle(state, m, outcome).await?;
        }
    }
}

/// Record one attempt's outcome in the outbox.
async fn settle(
    state: &AppState,
    mut m: Mail,
    outcome: Result<(), SendError>,
) -> crate::error::Result<()> {
    let now = state.now();
    let max = state.cfg.audit_max_events;
    match outcome {
        Ok(()) => {
            tracing::info!(id = m.id, kind = %m.kind, "mail delivered to the relay");
            state.metrics.mail_sent();
            let id = m.id;
            state
                .store
                .write(move |tx| store::outbox::remove(tx, id).map(|_| ()))
                .await
        }
        Err(e) => {
            m.attempts += 1;
            let give_up = e.permanent || now - m.created_at >= GIVE_UP_AFTER;
            if give_up {
                tracing::warn!(id = m.id, kind = %m.kind, reason = %e.reason, "mail given up");
                state.metrics.mail_failed();
            } else {
                tracing::info!(id = m.id, kind = %m.kind, attempts = m.attempts, reason = %e.reason, "mail delivery failed; will retry");
                m.next_attempt_at = now + backoff(m.attempts);
            }
            state
                .store
                .write(move |tx| {
                    if give_up {
                        if store::outbox::remove(tx, m.id)? {
                            let mut ev = audit::event("mail.failed", None, None, None);
                            ev.email = Some(&m.to);
                            ev.detail =
                                format!("{} after {} attempt(s): {}", m.kind, m.attempts, e.reason);
                            ev.append(tx, max, now)?;
                        }
                    } else if store::outbox::get(tx, m.id)?.is_some() {
                        store::outbox::update(tx, &m)?;
                    }
                    Ok(())
                })
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff, build};
    use crate::model::Mail;

    fn mail(to: &str, subject: &str) -> Mail {
        Mail {
            id: 1,
            kind: "test".into(),
            to: to.into(),
            subject: subject.into(),
            text: "Hello Eve\r\nBcc: body@example.com".into(),
            html: "<p>hi</p>".into(),
            created_at: 0,
            attempts: 0,
            next_attempt_at: 0,
        }
    }

    /// Line breaks in a subject or an address cannot add a header.
    #[test]
    fn user_input_cannot_add_headers() {
        let from = "Posta <posta@example.com>".parse().unwrap();
        let m = build(
            &from,
            &mail("ada@example.com", "Hi\r\nBcc: spy@example.com"),
        )
        .unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(
            !head
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{head}"
        );
        assert_eq!(m.envelope().to().len(), 1);
        let bad = build(
            &from,
            &mail("ada@example.com\r\nBcc: spy@example.com", "Hi"),
        );
        assert!(bad.is_err_and(|e| e.permanent));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), 60);
        assert_eq!(backoff(2), 120);
        assert_eq!(backoff(6), 1_920);
        assert_eq!(backoff(7), 3_600);
        assert_eq!(backoff(40), 3_600);
    }
}
