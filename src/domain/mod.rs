//! Use cases: each takes plain inputs plus the state, applies the rules, and runs one store
//! transaction. Nothing here knows HTTP.

pub mod admin;
pub mod api_key;
pub mod audit;
pub mod deletion;
pub mod email_flow;
pub mod export;
pub mod factor;
pub mod invitation;
pub mod keys;
pub mod mail;
pub mod mfa;
pub mod oidc;
pub mod passkey;
pub mod prefs;
pub mod proof;
pub mod reauth;
pub mod session;
pub mod user;

use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::model::{Role, User};

/// Facts about the client that use cases record or check.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Client address (after trusted-proxy resolution).
    pub ip: IpAddr,
    /// User agent, truncated.
    pub user_agent: String,
    /// SHA-256 of the browser's device id (sign-in requests only): a browser that signed in
    /// to an account before is exempt from that account's brute-force ceiling.
    pub device: Option<[u8; 32]>,
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum AuthKind {
    /// A dashboard session (JWT).
    Session {
        /// The session id (`jti`).
        id: Uuid,
        /// The platform requires 2FA and this user has not enrolled.
        setup_required: bool,
        /// Slugs of the identity providers linked to the user, read with the session.
        linked_providers: Arc<[String]>,
    },
    /// An API key.
    ApiKey {
        /// Key id.
        id: Uuid,
        /// Granted scopes.
        scopes: Arc<[String]>,
    },
}

/// An authenticated caller, with the stored (authoritative) user.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user as stored now (shared with the credential cache).
    pub user: Arc<User>,
    /// The credential used.
    pub kind: AuthKind,
    /// Names the verification this caller rests on: a presentation layer may keep what it
    /// renders from it under this name.
    pub verification: crate::auth::credential_cache::VerificationId,
}

impl Caller {
    /// True for an admin.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
    /// The session id, when authenticated by session.
    #[must_use]
    pub fn session_id(&self) -> Option<Uuid> {
        match self.kind {
            AuthKind::Session { id, .. } => Some(id),
            AuthKind::ApiKey { .. } => None,
        }
    }
}

/// Who performs an administrative use case: an admin over the API, or the operator on the
/// host (`posta admin …`, authorized by the file permissions of the data directory). Both go
/// through the same rules (the last-admin safety, the password policy, the audit log).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A signed-in admin, from a client.
    Admin(&'a Caller, &'a ClientInfo),
    /// The operator, on the host.
    Host,
}

impl Actor<'_> {
    /// The acting user, for the audit log.
    #[must_use]
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Actor::Admin(c, _) => Some(c.user.id),
            Actor::Host => None,
        }
    }
    /// The client, for the audit log.
    #[must_use]
    pub fn client(&self) -> Option<ClientInfo> {
        match self {
            Actor::Admin(_, cl) => Some((*cl).clone()),
            Actor::Host => None,
        }
    }
    /// How the audit log's detail says where the change came from.
    #[must_use]
    pub fn origin(&self) -> &'static str {
        match self {
            Actor::Admin(..) => "",
            Actor::Host => " (host command)",
        }
    }
    /// The acting user, the client and the origin note, owned: what an administrative write
    /// carries into its transaction for the audit log.
    #[must_use]
    pub fn owned(&self) -> (Option<Uuid>, Option<ClientInfo>, &'static str) {
        (self.id(), self.client(), self.origin())
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// Page number, counting from 0 as Posta does.
    pub page: usize,
    /// Page size.
    pub size: usize,
    /// Total matching items.
    pub total: usize,
}

impl<T> Page<T> {
    /// Slice `all` into the requested page.
    #[must_use]
    pub fn of(all: Vec<T>, page: usize, size: usize) -> Self {
        let total = all.len();
        let items = all
            .into_iter()
            .skip(page.saturating_mul(size))
            .take(size)
            .collect();
        Self {
            items,
            page,
            size,
            total,
        }
    }
}

/// A use case's surroundings without a server: an application state over a store in a
/// temporary directory, cheap argon2, a manual clock.
#[cfg(test)]
pub(crate) mod testing {
    use crate::clock::ManualClock;
    use crate::config::{Config, Secret};
    use crate::state::AppState;
    use crate::store::Store;

    /// The state (and the directory that must outlive it).
    pub fn state() -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("tempdir: {e}"));
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            jwt_secret: Some(Secret("unit-test-jwt-secret-long-enough-0123456789".into())),
            encryption_key: Some(Secret("22".repeat(32))),
            argon2_memory_kib: 256,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            ..Config::default()
        };
        let store = Store::open(&cfg.db_path()).unwrap_or_else(|e| unreachable!("store: {e}"));
        let state = AppState::new(cfg, store, ManualClock::new(1_800_000_000))
            .unwrap_or_else(|e| unreachable!("state: {e}"));
        (state, dir)
    }
}
