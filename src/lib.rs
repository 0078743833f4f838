//! Posta's authentication appliance: users, sessions, TOTP, API keys and forward auth over one
//! embedded redb store, served directly on hyper.
//!
//! Layout (arrows point one way; `packaging/import_cycles.py` checks): `main` → `cli` →
//! [`run`] → `http` (routing to an exhaustive `Endpoint`, envelope, auth once per request) and
//! `control` (host commands) → `domain` (use cases, one transaction each) → `state`, `auth`
//! (credential mechanics) and `store` (tables, versioned records, migrations). `model`,
//! `config`, `clock`, `error`, `version`, `metrics` and `log_sink` are leaves.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod domain;
pub mod error;
pub mod http;
pub mod keyring;
pub mod log_sink;
pub mod logsafe;
pub mod mail;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod state;
pub mod store;
pub mod version;

pub use version::{COMMIT, VERSION};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use clock::{Clock, SystemClock};
use config::Config;
use state::AppState;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store refused to open.
    #[error(transparent)]
    Store(#[from] store::OpenError),
    /// Anything else at start-up.
    #[error("{0}")]
    Startup(String),
}

/// Run the server on `listener` until `shutdown` resolves, with the system clock.
pub async fn run(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_clock(cfg, listener, shutdown, Arc::new(SystemClock)).await
}

/// Open the state (store, keys, first admin) for `cfg`.
pub async fn open_state(cfg: Config, clock: Arc<dyn Clock>) -> Result<AppState, RunError> {
    let path = cfg.db_path();
    let cache = cfg.store_cache_mib.saturating_mul(1024 * 1024);
    let store = tokio::task::spawn_blocking(move || store::Store::open_with_cache(&path, cache))
        .await
        .map_err(|e| RunError::Startup(e.to_string()))??;
    // A rotation stopped between the store's commit and the key files' rename ends here.
    if cfg.encryption_key.is_none() {
        let store = &store;
        if keyring::settle(&cfg, store).map_err(RunError::Startup)? {
            tracing::warn!("completed an interrupted key rotation: the new key files are in place");
        }
    }
    let key_file = cfg.data_dir.join("encryption.key");
    if cfg.encryption_key.is_none() && !key_file.exists() {
        domain::keys::refuse_a_new_key(&store, &key_file)
            .map_err(|e| RunError::Startup(e.to_string()))?;
    }
    let state = AppState::new(cfg, store, clock).map_err(|e| RunError::Startup(e.to_string()))?;
    domain::keys::check(&state)
        .await
        .map_err(|e| RunError::Startup(e.to_string()))?;
    let locked = domain::proof::of(&state)
        .restore_lockouts(state.now())
        .map_err(|e| RunError::Startup(e.to_string()))?;
    if locked > 0 {
        tracing::info!(accounts = locked, "brute-force lock-outs restored");
    }
    let repaired = domain::oidc::repair_links(&state)
        .await
        .map_err(|e| RunError::Startup(e.to_string()))?;
    if repaired > 0 {
        tracing::warn!(
            rows = repaired,
            "removed inconsistent SSO link rows (audited as oauth.link_repaired)"
        );
    }
    match domain::user::ensure_first_admin(&state).await {
        Ok(Some(pw)) => {
            eprintln!(
                "\n  Created the first admin account.\n    email:    {}\n    password: {pw}\n  This password is shown only once: sign in and change it.\n",
                state.cfg.admin_email
            );
            if state.registration_enabled() {
                eprintln!(
                    "  Self-registration is open: anyone who reaches this server can create an\n  account. Close it with POSTA_REGISTRATION_ENABLED=false (or the admin setting\n  registration_enabled).\n"
                );
            }
        }
        Ok(None) => {}
        Err(e) => return Err(RunError::Startup(e.to_string())),
    }
    Ok(state)
}

/// [`run`] with an injected clock (tests move time with it).
pub async fn run_with_clock(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    clock: Arc<dyn Clock>,
) -> Result<(), RunError> {
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => {
            let sc = http::server::tls_config(c, k).map_err(RunError::Startup)?;
            Some(Arc::new(tokio::sync::RwLock::new(
                tokio_rustls::TlsAcceptor::from(sc),
            )))
        }
        _ => None,
    };
    let relay = mail::Relay::from_config(&cfg).map_err(RunError::Startup)?;
    let state = open_state(cfg, clock).await?;
    if relay.is_some() {
        domain::email_flow::mark_mail_start(&state)
            .await
            .map_err(|e| RunError::Startup(e.to_string()))?;
    }
    let background = spawn_background(state.clone(), tls.clone());
    // Outgoing mail: the sender drains the outbox; `forgot-password` work runs beside it.
    let mailer = relay.map(|r| {
        tracing::info!("outgoing mail through the configured SMTP relay");
        (
            tokio::spawn(mail::run(state.clone(), r)),
            tokio::spawn(domain::email_flow::reset_worker(state.clone())),
        )
    });
    #[cfg(unix)]
    let control = tokio::spawn(control::serve(state.clone()));
    http::server::serve(state.clone(), listener, tls, shutdown).await;
    background.abort();
    let _ = background.await;
    if let Some((sender, resets)) = mailer {
        // Whatever is not delivered yet stays in the outbox for the next start.
        sender.abort();
        resets.abort();
        let _ = sender.await;
        let _ = resets.await;
    }
    #[cfg(unix)]
    {
        control.abort();
        let _ = control.await;
        control::cleanup(&state.cfg.data_dir);
    }
    if let Err(e) = domain::api_key::flush_usage(&state).await {
        tracing::error!(error = %e, "flushing api key usage at shutdown failed");
    }
    // Close the store: wait briefly for connection tasks to drop their handles, so the file
    // lock is released when `run` returns (a restart in the same process can reopen it).
    // A background write cancelled mid-way still runs to its end on the blocking pool with a
    // handle of its own: wait for the store's handles too.
    let held = |state: &AppState| Arc::strong_count(&state.0) > 1 || state.store.handles() > 1;
    for _ in 0..200 {
        if !held(&state) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if held(&state) {
        tracing::warn!("connections still hold the store; it closes when they end");
    }
    drop(state);
    tracing::info!("stopped");
    Ok(())
}

fn spawn_background(
    state: AppState,
    tls: Option<http::server::SharedTls>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut flush = tokio::time::interval(Duration::from_secs(5));
        let mut prune = tokio::time::interval(Duration::from_secs(600));
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hup_fut = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_fut = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = flush.tick() => {
                    if let Err(e) = domain::api_key::flush_usage(&state).await {
                        tracing::warn!(error = %e, "flushing api key usage failed");
                    }
                }
                _ = prune.tick() => housekeeping(&state).await,
                _ = hup_fut => reload_tls(&state, tls.as_ref()).await,
            }
        }
    })
}

/// The periodic jobs: expired sessions, accounts whose deletion is due, old audit events.
async fn housekeeping(state: &AppState) {
    match domain::session::prune(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "expired sessions removed"),
        Err(e) => tracing::warn!(error = %e, "pruning sessions failed"),
    }
    match domain::deletion::run_due(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "accounts deleted as scheduled"),
        Err(e) => tracing::warn!(error = %e, "scheduled account deletion failed"),
    }
    match domain::email_flow::delete_unverified(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "accounts never verified removed"),
        Err(e) => tracing::warn!(error = %e, "removing unverified accounts failed"),
    }
    match domain::email_flow::prune(state).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(pruned = n, "expired mail tokens and mail caps removed"),
        Err(e) => tracing::warn!(error = %e, "pruning mail tokens failed"),
    }
    match domain::audit::prune(state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "audit events past their retention removed"),
        Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
    }
}

async fn reload_tls(state: &AppState, tls: Option<&http::server::SharedTls>) {
    let (Some(shared), Some(c), Some(k)) = (tls, &state.cfg.tls_cert, &state.cfg.tls_key) else {
        tracing::info!("SIGHUP: no TLS configured, nothing to reload");
        return;
    };
    match http::server::tls_config(c, k) {
        Ok(sc) => {
            *shared.write().await = tokio_rustls::TlsAcceptor::from(sc);
            tracing::info!("SIGHUP: TLS certificate reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the old certificate")
        }
    }
}
