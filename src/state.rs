//! Shared application state: configuration, store, keys, clock and in-memory helpers.
//!
//! Built once by `lib::run` (or the CLI) and cloned cheaply into every request.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::auth::api_key::KeyUsage;
use crate::auth::crypto::{self, Sealer};
use crate::auth::hash_pool::HashPool;
use crate::auth::jwt::JwtKeys;
use crate::auth::password::{Cost, Scratch};
use crate::auth::throttle::Limiter;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Settings;
use crate::store::Store;

/// Everything a request may need. Cloning is an `Arc` bump.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// Validated configuration.
    pub cfg: Config,
    /// The database.
    pub store: Store,
    /// Session token keys.
    pub jwt: JwtKeys,
    /// Data-at-rest key.
    pub sealer: Sealer,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Threads that run argon2, one per core.
    pub hash_pool: HashPool,
    /// Hash verified for unknown emails so they cost the same as known ones.
    pub dummy_hash: String,
    /// Cached platform settings (this process is the only writer; through `refresh_settings`,
    /// which keeps `two_factor_required` in step).
    settings: RwLock<Settings>,
    /// `settings.two_factor_required`, readable without the lock: every session request asks,
    /// and a read lock writes its reader count to a line both cores share.
    two_factor_required: AtomicBool,
    /// `settings.require_email_verification`, read the same way (every user object shows it).
    email_verification_required: AtomicBool,
    /// Login/register throttling.
    pub limiter: Limiter,
    /// Pending `last_used_at` updates of API keys.
    pub key_usage: KeyUsage,
    /// Recently verified bearer credentials.
    pub credentials: crate::auth::credential_cache::CredentialCache,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Allowed CORS origins.
    pub cors_origins: Vec<String>,
    /// Cached OIDC discovery documents.
    pub oidc_cache: crate::auth::oidc::DiscoveryCache,
    /// HTTP client for identity providers.
    pub http: reqwest::Client,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Set once the server stops accepting: long-lived answers (event streams) end.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// `forgot-password` hands the address (and the client's address) to the background here,
    /// so that its answer never waits for the lookup; bounded.
    pub reset_requests: tokio::sync::mpsc::Sender<(String, std::net::IpAddr)>,
    /// The receiving end, taken by the worker at start.
    pub reset_inbox:
        std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<(String, std::net::IpAddr)>>>,
    /// Wakes the mail sender when a message is queued.
    pub mail_wake: tokio::sync::Notify,
    /// Open audit event streams, bounded in number.
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// The WebAuthn relying party, or why passkeys are off (no secure `web_url`).
    pub passkeys: std::result::Result<crate::auth::passkey::RelyingParty, String>,
    /// Passkey ceremonies already used, until they expire.
    pub spent_ceremonies: crate::auth::passkey::Spent,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Build state over an opened store: loads or creates the instance secrets.
    pub fn new(cfg: Config, store: Store, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::open(cfg, store, clock, true)
    }

    /// Build state over an opened store; with `create_keys` false (host commands) a missing
    /// key file is an error naming it, never a new key.
    pub fn open(
        cfg: Config,
        store: Store,
        clock: Arc<dyn Clock>,
        create_keys: bool,
    ) -> Result<Self> {
        let jwt_secret = match &cfg.jwt_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => load_or_create_key(&cfg.data_dir.join("jwt.key"), create_keys)?.to_vec(),
        };
        let enc_key = match &cfg.encryption_key {
            Some(s) => crypto::parse_key(s.expose())
                .ok_or_else(|| Error::Internal("encryption_key is not 32 bytes".into()))?,
            None => load_or_create_key(&cfg.data_dir.join("encryption.key"), create_keys)?,
        };
        let mut sealer = Sealer::new(enc_key);
        if let Some(sealed) = store.read(crate::store::meta::code_key_sealed)? {
            let code_key = sealer
                .open(&sealed, crypto::CODE_KEY_AAD)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
                .ok_or_else(|| Error::Internal(crypto::WRONG_KEY.into()))?;
            sealer = sealer.with_code_key(code_key);
        }
        let cost = cost(&cfg);
        let dummy_hash = crate::auth::password::hash("posta-dummy-password-for-timing", cost)?;
        let settings = store.read(crate::store::meta::settings)?;
        let permits = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let trusted_proxies = cfg
            .trusted_proxy_nets()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let cors_origins = cfg.cors_origin_list();
        let (reset_requests, reset_inbox) = tokio::sync::mpsc::channel(RESET_QUEUE);
        Ok(Self(Arc::new(Inner {
            jwt: JwtKeys::new(&jwt_secret, &cfg.jwt_issuer),
            sealer,
            clock,
            hash_pool: HashPool::new(permits),
            dummy_hash,
            two_factor_required: AtomicBool::new(settings.two_factor_required),
            email_verification_required: AtomicBool::new(
                cfg.email_verification_required
                    .unwrap_or(settings.require_email_verification),
            ),
            settings: RwLock::new(settings),
            limiter: Limiter::new(cfg.throttle_ipv6_prefix),
            key_usage: KeyUsage::default(),
            credentials: Default::default(),
            trusted_proxies,
            cors_origins,
            oidc_cache: crate::auth::oidc::DiscoveryCache::default(),
            metrics: crate::metrics::Metrics::default(),
            closing: tokio::sync::watch::Sender::new(false),
            mail_wake: tokio::sync::Notify::new(),
            reset_requests,
            reset_inbox: std::sync::Mutex::new(Some(reset_inbox)),
            event_streams: Arc::new(tokio::sync::Semaphore::new(EVENT_STREAMS)),
            passkeys: crate::auth::passkey::RelyingParty::new(
                cfg.web_url.as_deref(),
                cfg.webauthn_rp_id.as_deref(),
            ),
            spent_ceremonies: crate::auth::passkey::Spent::default(),
            http: crate::auth::oidc::http_client().map_err(|e| Error::Internal(e.to_string()))?,
            store,
            cfg,
        })))
    }

    /// Current Unix time.
    #[must_use]
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A snapshot of the settings.
    #[must_use]
    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .map_or_else(|p| p.into_inner().clone(), |s| s.clone())
    }

    /// Whether every account must enrol TOTP (hot path: no lock).
    #[must_use]
    pub fn two_factor_required(&self) -> bool {
        self.two_factor_required.load(Ordering::Acquire)
    }

    /// Whether password reset by mail is offered: a relay, and the setting.
    #[must_use]
    pub fn password_reset_enabled(&self) -> bool {
        self.cfg.mail_enabled() && self.settings().password_reset_enabled
    }

    /// Whether the platform requires verified email addresses.
    #[must_use]
    pub fn email_verification_required(&self) -> bool {
        self.email_verification_required.load(Ordering::Acquire)
    }

    /// Publish the committed settings after an update. They are read from the store under
    /// the cache's write lock: of two updates finishing together, whichever publishes last
    /// reads the later commit, so the cache never goes back to an older value.
    pub fn refresh_settings(&self) -> Result<()> {
        let mut g = match self.settings.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let s = self.store.read(crate::store::meta::settings)?;
        self.two_factor_required
            .store(s.two_factor_required, Ordering::Release);
        // POSTA_EMAIL_VERIFICATION_REQUIRED wins over the stored setting.
        self.email_verification_required.store(
            self.cfg
                .email_verification_required
                .unwrap_or(s.require_email_verification),
            Ordering::Release,
        );
        *g = s;
        Ok(())
    }

    /// argon2 parameters in force.
    #[must_use]
    pub fn cost(&self) -> Cost {
        cost(&self.cfg)
    }

    /// Run CPU-heavy work (argon2) on the dedicated hashing threads, one per core, with the
    /// thread's argon2 working memory.
    pub async fn hash_work<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T> {
        self.hash_pool.run(f).await
    }

    /// Whether password self-registration is open now (config `false` always wins).
    #[must_use]
    pub fn registration_enabled(&self) -> bool {
        self.cfg.registration_enabled != Some(false) && self.settings().registration_enabled
    }
}

fn cost(cfg: &Config) -> Cost {
    Cost {
        m_kib: cfg.argon2_memory_kib,
        t: cfg.argon2_iterations,
        p: cfg.argon2_parallelism,
    }
}

/// `forgot-password` requests waiting for the background at most (beyond: dropped).
const RESET_QUEUE: usize = 256;

/// At most this many audit event streams at once (each holds a task and a connection).
pub const EVENT_STREAMS: usize = 32;

/// Read a 32-byte hex key file, or create one (mode 0600) with OS randomness when `create`.
fn load_or_create_key(path: &Path, create: bool) -> Result<[u8; 32]> {
    let io = |e: std::io::Error| Error::Internal(format!("key file {}: {e}", path.display()));
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(io)?;
        return crypto::parse_key(&text)
            .ok_or_else(|| Error::Internal(format!("key file {} is malformed", path.display())));
    }
    if !create {
        return Err(Error::Internal(format!(
            "key file {} is missing (set the key in the environment the server uses, or run the command where the server's data directory is)",
            path.display()
        )));
    }
    let key = crypto::random_bytes::<32>()?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(crypto::to_hex(&key).as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(key)
}
