//! The listener: accept loop with a connection cap, lazy TLS handshakes in the connection task,
//! HTTP/1.1 and HTTP/2 (hyper-util auto), timeouts, and graceful draining on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Notify, RwLock, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::Answer;
use crate::state::AppState;

/// Build a rustls server config from PEM files (certificate chain and private key).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_cert {}: no certificate found", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_cert/tls_key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A TLS acceptor that can be swapped at run time (certificate reload on SIGHUP).
pub type SharedTls = Arc<RwLock<TlsAcceptor>>;

/// Serve until `shutdown` resolves, then drain in-flight requests for at most the grace period.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    tls: Option<SharedTls>,
    shutdown: impl Future<Output = ()>,
) {
    let cfg = &state.cfg;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No HTTP/1 timer: hyper's header-read timeout arms and drops a timer on every request;
    // `serve_conn`'s watchdog bounds slow heads and idle connections with one per connection.
    // No writev: hyper's default queues the head and the body as separate buffers and sends
    // them with writev(2); copying the body (a few hundred bytes here) behind the head and
    // sending one buffer with one write cost ~500 fewer instructions per request (3.5 % of a
    // cached `/auth/verify`). Large bodies (dashboard assets) are copied once more; they are
    // rare and cached by the browser.
    builder
        .http1()
        .header_read_timeout(None)
        .writev(false)
        .max_buf_size(cfg.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(cfg.idle_timeout_secs))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let closing = Arc::new(Closing::default());
    // Every connection (TLS handshake included) holds a permit until it ends: when all are
    // back, all connections are closed.
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    // The watchdog period of every connection (see `serve_conn`).
    let limit = Duration::from_secs(cfg.header_read_timeout_secs.max(1));
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => { backoff = Duration::from_millis(5); x }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        let closing = closing.clone();
        let tls = match &tls {
            Some(t) => Some(t.read().await.clone()),
            None => None,
        };
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    serve_conn(
                        &builder,
                        &closing,
                        TokioIo::new(stream),
                        state,
                        peer,
                        false,
                        limit,
                    )
                    .await
                }
                Some(acc) => {
                    match tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await {
                        Ok(Ok(s)) => {
                            serve_conn(
                                &builder,
                                &closing,
                                TokioIo::new(s),
                                state,
                                peer,
                                true,
                                limit,
                            )
                            .await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining connections");
    closing.now.store(true, Ordering::Release);
    closing.wake.notify_waiters();
    // Long-lived answers (event streams) end, so their connections can drain.
    state.closing.send_replace(true);
    let all = u32::try_from(cfg.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
}

/// Shutdown as connections see it: a flag each one reads when it wakes, and a notification
/// that wakes them all (idle ones included) once.
///
/// Replaces hyper-util's `GracefulShutdown`, whose watcher polls a `watch` channel on every
/// wake-up of every connection, taking the lock of one `Notify` that all connections on both
/// cores share: about 1.5 % of a request's instructions, and a contended cache line.
#[derive(Debug, Default)]
struct Closing {
    now: AtomicBool,
    wake: Notify,
}

/// What a connection's watchdog watches: requests started, and requests not yet answered.
#[derive(Debug, Default)]
struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

/// Marks one request answered (or abandoned) when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The service's future: the handler's answer, as the body the connection sends.
struct Served {
    answer: Answer,
    guard: Option<InFlight>,
}

impl Future for Served {
    type Output = Result<hyper::Response<super::stream::Body>, std::convert::Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        std::pin::Pin::new(&mut this.answer)
            .poll(cx)
            .map(|r| r.map(|resp| super::stream::into_body(resp, this.guard.take())))
    }
}

/// Serve one connection, closing it once a whole watchdog period (`limit`) passed in which no
/// request started and none was in flight. A new connection that does not complete a request
/// head within `limit` (slowloris) is closed at `limit`; one idle between keep-alive requests,
/// or writing to a client that stopped reading, between one and two `limit`s later.
async fn serve_conn<I>(
    builder: &auto::Builder<TokioExecutor>,
    closing: &Closing,
    io: I,
    state: AppState,
    peer: SocketAddr,
    tls: bool,
    limit: Duration,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let seen = activity.clone();
    let svc = service_fn(move |req| {
        seen.started.fetch_add(1, Ordering::Relaxed);
        let answer = super::handle(&state, req, peer, tls);
        // A request that waits is "in flight" for the watchdog until it is answered, or,
        // for a stream, until the stream ends.
        let guard = matches!(answer, Answer::Later(_)).then(|| {
            seen.in_flight.fetch_add(1, Ordering::Relaxed);
            InFlight(seen.clone())
        });
        Served { answer, guard }
    });
    let conn = builder.serve_connection(io, svc).into_owned();
    tokio::pin!(conn);
    // Polled once, to register this task for the shutdown wake-up: a task's waker stays the
    // same, so later wake-ups need only read the flag.
    let shutdown = closing.wake.notified();
    tokio::pin!(shutdown);
    let mut registered = false;
    let mut draining = false;
    // A connection that has not completed a request head by the first deadline is closed then.
    let tick = tokio::time::sleep(limit);
    tokio::pin!(tick);
    let mut armed = false;
    let mut last_started = 0;
    std::future::poll_fn(|cx| {
        if !registered {
            registered = true;
            let _ = shutdown.as_mut().poll(cx);
        }
        if !draining && closing.now.load(Ordering::Acquire) {
            // Finish the request in flight (HTTP/1 answers it with `Connection: close`,
            // HTTP/2 sends GOAWAY); an idle connection closes now.
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
            return Poll::Ready(());
        }
        // Polling a timer on every wake (every request) cost ~3 % of a request's
        // instructions. A pending timer wakes the task of its last poll when it fires, so it
        // is enough to poll it when armed, then only look whether it fired (a load).
        if armed && !tick.is_elapsed() {
            return Poll::Pending;
        }
        if armed {
            let started = activity.started.load(Ordering::Relaxed);
            let busy = activity.in_flight.load(Ordering::Relaxed) > 0;
            if !busy && started == last_started {
                tracing::debug!(%peer, "closing idle or stalled connection");
                return Poll::Ready(());
            }
            last_started = started;
            tick.as_mut().reset(tokio::time::Instant::now() + limit);
        }
        armed = true;
        if tick.as_mut().poll(cx).is_ready() {
            // Already due (a very short limit): look again on the next turn.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await;
}
