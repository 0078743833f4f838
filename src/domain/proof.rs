//! Proofs of identity and their throttle: a password at sign-in, a TOTP or recovery code, the
//! current password to change it, a code to turn 2FA off. One set of rules for all of them,
//! reserve-then-settle: the slot is taken before the proof is verified (parallel guesses
//! cannot outrun the count) and settled after it (a right proof gives it back, a wrong one
//! keeps it; an account that reaches its ceiling is persisted with the audit event, in one
//! transaction).
//!
//! A leaf among the use cases: `session`, `user` and `mfa` call it, it calls none of them. It
//! works on a narrow context ([`Proofs`]: the limiter, the store, the limits in force and the
//! audit bound), so its rules are tested below without a server.

use uuid::Uuid;

use crate::auth::throttle::{Attempt, Limiter, Limits};
use crate::error::{Error, Result};
use crate::model::Settings;
use crate::state::AppState;
use crate::store::{self, Store};

use super::{ClientInfo, audit};

/// What the proof rules need, borrowed from the application state.
pub struct Proofs<'a> {
    limiter: &'a Limiter,
    store: &'a Store,
    limits: Option<Limits>,
    audit_max: u64,
}

/// The limits in force: `None` when throttling is turned off in the configuration.
#[must_use]
pub fn limits(enabled: bool, s: &Settings) -> Option<Limits> {
    enabled.then(|| Limits {
        count: s.login_rate_limit_count.max(1),
        window: i64::from(s.login_rate_limit_window_minutes.max(1)) * 60,
    })
}

/// The proof rules over the application state, with the settings as they are now.
#[must_use]
pub fn of(state: &AppState) -> Proofs<'_> {
    Proofs {
        limiter: &state.limiter,
        store: &state.store,
        limits: limits(state.cfg.auth_rate_limit_enabled, &state.settings()),
        audit_max: state.cfg.audit_max_events,
    }
}

impl<'a> Proofs<'a> {
    /// A context of its own (tests, and a host command that has no server around it).
    #[must_use]
    pub fn new(
        limiter: &'a Limiter,
        store: &'a Store,
        limits: Option<Limits>,
        audit_max: u64,
    ) -> Self {
        Self {
            limiter,
            store,
            limits,
            audit_max,
        }
    }

    /// The limits in force (`None`: throttling is off).
    #[must_use]
    pub fn limits(&self) -> Option<Limits> {
        self.limits
    }

    /// Reserve a proof of identity for `account` from the client's address, before it is
    /// checked. A signed-in caller proving who it is again counts on the same counters as a
    /// login: otherwise a stolen session would be an unthrottled oracle for the password or
    /// the code. `None` when throttling is off. `owner`: the client is a browser that signed in
    /// to this account before (exempt from the per-account ceiling, not from its own).
    pub async fn reserve(
        &self,
        account: &str,
        client: &ClientInfo,
        owner: bool,
        now: i64,
    ) -> Result<Option<Attempt<'a>>> {
        let Some(l) = self.limits else {
            return Ok(None);
        };
        self.limiter
            .reserve(account, client.ip, owner, l, now)
            .await
            .map(Some)
            .map_err(|retry_after| Error::RateLimited { retry_after })
    }

    /// The proof was right: its slot goes back.
    pub fn succeeded(attempt: Option<Attempt<'_>>) {
        if let Some(a) = attempt {
            a.succeeded();
        }
    }

    /// The proof was right but the step is not over (a code is still to come): the slot goes
    /// back without clearing the failures.
    pub fn passed(attempt: Option<Attempt<'_>>) {
        if let Some(a) = attempt {
            a.passed();
        }
    }

    /// The proof was right but the account is disabled: the slot goes back, the refusal is
    /// audited, and the answer is the error to return.
    pub async fn refuse_disabled(
        &self,
        attempt: Option<Attempt<'_>>,
        user: Uuid,
        account: &str,
        client: &ClientInfo,
        now: i64,
    ) -> Error {
        Self::passed(attempt);
        let recorded = self
            .record(
                "login.failure",
                Some(user),
                account,
                "account disabled",
                client,
                None,
                now,
            )
            .await;
        match recorded {
            Ok(()) => Error::Forbidden("account disabled".into()),
            Err(e) => e,
        }
    }

    /// Settle a wrong proof as a failure (the slot stays taken), and audit it as `kind`; an
    /// account that reached its ceiling is persisted in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn failed(
        &self,
        attempt: Option<Attempt<'_>>,
        kind: &'static str,
        subject: Option<Uuid>,
        account: &str,
        reason: &str,
        client: &ClientInfo,
        now: i64,
    ) -> Result<()> {
        let lockout = attempt.and_then(Attempt::failed);
        self.record(kind, subject, account, reason, client, lockout, now)
            .await
    }

    /// Audit a refused proof (and a lockout it caused) in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        kind: &'static str,
        subject: Option<Uuid>,
        email: &str,
        reason: &str,
        client: &ClientInfo,
        lockout: Option<(i64, u32)>,
        now: i64,
    ) -> Result<()> {
        let (cl, email, reason, max) = (
            client.clone(),
            email.to_owned(),
            reason.to_owned(),
            self.audit_max,
        );
        let window = self.limits.map_or(0, |l| l.window);
        self.store
            .write(move |tx| {
                if let Some((start, count)) = lockout {
                    store::throttle::put_lockout(tx, &email, start, count, window, now)?;
                    let mut ev = audit::event("login.locked", subject, subject, Some(&cl));
                    ev.email = Some(&email);
                    ev.detail = format!("{count} failures since {}", crate::clock::rfc3339(start));
                    ev.append(tx, max, now)?;
                }
                let mut ev = audit::event(kind, subject, subject, Some(&cl));
                ev.email = Some(&email);
                ev.detail.clone_from(&reason);
                ev.append(tx, max, now)
            })
            .await
    }

    /// Load the accounts persisted over their ceiling into the limiter (at start-up).
    pub fn restore_lockouts(&self, now: i64) -> Result<usize> {
        let Some(l) = self.limits else {
            return Ok(0);
        };
        let rows = self.store.read(store::throttle::lockouts)?;
        let mut n = 0;
        for (account, start, count) in rows {
            if start + l.window > now {
                self.limiter.restore_account(&account, start, count, l, now);
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const LIMITS: Limits = Limits {
        count: 3,
        window: 900,
    };

    fn client(last: u8) -> ClientInfo {
        ClientInfo {
            ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            user_agent: String::new(),
            device: None,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn events(store: &Store, kind: &str) -> usize {
        store
            .read(|tx| store::audit::page(tx, |e| e.kind == kind, 0, 100))
            .unwrap()
            .1
    }

    async fn fail(p: &Proofs<'_>, account: &str, c: &ClientInfo) -> Result<()> {
        let a = p.reserve(account, c, false, NOW).await?;
        p.failed(a, "login.failure", None, account, "wrong password", c, NOW)
            .await
    }

    /// Wrong proofs up to the limit are counted and audited; the next is refused before it
    /// is verified, and the ceiling is on disk with its audit event.
    #[test]
    fn failures_reach_the_limit_and_the_lockout_is_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.redb")).unwrap();
        let limiter = Limiter::new(64);
        let p = Proofs::new(&limiter, &store, Some(LIMITS), 1000);
        rt().block_on(async {
            for _ in 0..3 {
                fail(&p, "ada@example.com", &client(1)).await.unwrap();
            }
            let refused = p.reserve("ada@example.com", &client(1), false, NOW).await;
            assert!(matches!(refused, Err(Error::RateLimited { .. })));
        });
        assert_eq!(events(&store, "login.failure"), 3);
        // Other addresses, one failure each, until the per-account ceiling locks the account.
        rt().block_on(async {
            let mut n = 2;
            while fail(&p, "ada@example.com", &client(n)).await.is_ok() {
                n += 1;
                assert!(n < 200, "the per-account ceiling never came");
            }
        });
        assert_eq!(events(&store, "login.locked"), 1);
        let rows = store.read(store::throttle::lockouts).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "ada@example.com");

        // A restart: a new limiter learns the lockout from the store.
        let fresh = Limiter::new(64);
        let p2 = Proofs::new(&fresh, &store, Some(LIMITS), 1000);
        assert_eq!(p2.restore_lockouts(NOW + 1).unwrap(), 1);
        let refused = rt().block_on(p2.reserve("ada@example.com", &client(250), false, NOW + 1));
        assert!(matches!(refused, Err(Error::RateLimited { .. })));
        // The browser that signed in before still gets its own tries.
        let owner = rt().block_on(p2.reserve("ada@example.com", &client(250), true, NOW + 1));
        assert!(owner.unwrap().is_some());
        // After the window, the persisted lockout no longer applies.
        let later = Limiter::new(64);
        let p3 = Proofs::new(&later, &store, Some(LIMITS), 1000);
        assert_eq!(p3.restore_lockouts(NOW + 901).unwrap(), 0);
    }

    /// A right proof gives its slot back and clears the pair's failures: the owner who
    /// mistyped twice is not one typo from the limit.
    #[test]
    fn success_settles_without_counting() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.redb")).unwrap();
        let limiter = Limiter::new(64);
        let p = Proofs::new(&limiter, &store, Some(LIMITS), 1000);
        rt().block_on(async {
            let c = client(9);
            for _ in 0..2 {
                fail(&p, "bo@example.com", &c).await.unwrap();
            }
            Proofs::succeeded(p.reserve("bo@example.com", &c, false, NOW).await.unwrap());
            for _ in 0..3 {
                fail(&p, "bo@example.com", &c).await.unwrap();
            }
            assert!(p.reserve("bo@example.com", &c, false, NOW).await.is_err());
        });
    }

    /// With throttling off nothing is reserved and nothing is refused.
    #[test]
    fn off_means_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.redb")).unwrap();
        let limiter = Limiter::new(64);
        let p = Proofs::new(&limiter, &store, limits(false, &Settings::default()), 1000);
        rt().block_on(async {
            for _ in 0..20 {
                fail(&p, "cy@example.com", &client(3)).await.unwrap();
            }
        });
        assert_eq!(events(&store, "login.failure"), 20);
        assert!(store.read(store::throttle::lockouts).unwrap().is_empty());
    }
}
