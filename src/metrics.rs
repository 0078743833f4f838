//! Prometheus metrics (`GET /metrics` when `metrics_enabled`): requests by route and status,
//! latency, logins by outcome, 2FA failures, API-key verifications, throttling, sessions and
//! store size. Counting is lock-free on the hot path; gauges are sampled at scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// All metrics of the process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    logins: Family<Outcome, Counter>,
    two_factor_failures: Counter,
    key_verifications: Family<Outcome, Counter>,
    throttled: Counter,
    sessions: Gauge,
    store_bytes: Gauge,
    store_writable: Gauge,
    /// Outgoing mail: `queued` (waiting, sampled at scrape), `sent` and `failed` (given up).
    mail_queued: Gauge,
    mail_sent: Counter,
    mail_failed: Counter,
}

/// The store's side of a scrape.
pub struct StoreFacts {
    /// Stored sessions, when the store could be read.
    pub sessions: Option<u64>,
    /// Size of the database file.
    pub bytes: u64,
    /// Whether writes are accepted (see `Store::writable`).
    pub writable: bool,
    /// Messages in the outbox, when the store could be read.
    pub mail_queued: Option<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("posta");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency = Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let logins = Family::<Outcome, Counter>::default();
        let two_factor_failures = Counter::default();
        let key_verifications = Family::<Outcome, Counter>::default();
        let throttled = Counter::default();
        let sessions = Gauge::default();
        let store_bytes = Gauge::default();
        let store_writable = Gauge::default();
        let (mail_queued, mail_sent, mail_failed) =
            (Gauge::default(), Counter::default(), Counter::default());
        registry.register(
            "mail_queued",
            "Messages waiting in the outbox",
            mail_queued.clone(),
        );
        registry.register(
            "mail_sent",
            "Messages delivered to the SMTP relay",
            mail_sent.clone(),
        );
        registry.register(
            "mail_failed",
            "Messages given up (refused by the relay, or undeliverable for a day)",
            mail_failed.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by route",
            latency.clone(),
        );
        registry.register("logins", "Password sign-ins by outcome", logins.clone());
        registry.register(
            "two_factor_failures",
            "Wrong or replayed 2FA codes",
            two_factor_failures.clone(),
        );
        registry.register(
            "api_key_verifications",
            "API-key authentications by outcome",
            key_verifications.clone(),
        );
        registry.register(
            "throttled_requests",
            "Requests answered 429",
            throttled.clone(),
        );
        registry.register("sessions_active", "Stored sessions", sessions.clone());
        registry.register(
            "store_size_bytes",
            "Size of the database file",
            store_bytes.clone(),
        );
        registry.register(
            "store_writable",
            "1 while the database accepts writes, 0 while a failed write (a full disk) keeps them refused",
            store_writable.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            logins,
            two_factor_failures,
            key_verifications,
            throttled,
            sessions,
            store_bytes,
            store_writable,
            mail_queued,
            mail_sent,
            mail_failed,
        }
    }
}

/// What one request contributes.
pub struct Observation<'a> {
    /// Route name, or `unmatched`.
    pub route: &'static str,
    /// Status code.
    pub status: u16,
    /// Latency in seconds.
    pub seconds: f64,
    /// Envelope error code, if any.
    pub error_code: Option<&'a str>,
    /// The bearer credential was an API key.
    pub api_key: bool,
}

impl Metrics {
    /// Record one finished request.
    pub fn observe(&self, o: &Observation<'_>) {
        self.requests
            .get_or_create(&RouteStatus {
                route: o.route,
                status: o.status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route: o.route })
            .observe(o.seconds);
        if o.status == 429 {
            self.throttled.inc();
        }
        if o.route == "login" {
            let outcome = match (o.status, o.error_code) {
                (200, _) => "success",
                (429, _) => "throttled",
                (403, _) => "disabled",
                (401, Some("TWO_FACTOR_REQUIRED")) => "two_factor_required",
                (401, _) => "failure",
                _ => "error",
            };
            self.logins.get_or_create(&Outcome { outcome }).inc();
        }
        if o.api_key {
            let outcome = match o.status {
                200..=299 => "success",
                401 => "invalid",
                403 => "forbidden",
                _ => "error",
            };
            self.key_verifications
                .get_or_create(&Outcome { outcome })
                .inc();
        }
    }

    /// A message delivered to the relay.
    pub fn mail_sent(&self) {
        self.mail_sent.inc();
    }

    /// A message given up.
    pub fn mail_failed(&self) {
        self.mail_failed.inc();
    }

    /// A wrong or replayed second-factor code.
    pub fn two_factor_failure(&self) {
        self.two_factor_failures.inc();
    }

    /// Render in the Prometheus text format, after sampling the gauges.
    pub fn render(&self, store: &StoreFacts) -> String {
        // A store that cannot be read keeps the last count: the scrape still answers.
        if let Some(n) = store.sessions {
            self.sessions.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.store_bytes
            .set(i64::try_from(store.bytes).unwrap_or(i64::MAX));
        self.store_writable.set(i64::from(store.writable));
        if let Some(n) = store.mail_queued {
            self.mail_queued.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}
