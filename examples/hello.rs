//! The ceiling for any HTTP answer on this machine: a bare hyper hello-world with the same
//! server stack as Posta (hyper-util auto builder, HTTP/1.1 keep-alive, each response sent
//! as one buffer with one write), used by `packaging/bench.sh` as the baseline. It is tuned
//! exactly as Posta's listener is, so that a ratio measures Posta's work, not a setting.
//!
//! Usage: `hello [ADDR] [--verify-bytes]` (default 127.0.0.1:0). With `--verify-bytes` it
//! answers with the same status line, headers and body size as Posta's `/api/v1/auth/verify`
//! (forward-auth headers, security headers, request id), all static and cloned from a map
//! built once (the cheapest way to hand hyper a dozen headers): the cost of merely sending
//! what the API contract requires, without doing any of the work behind it.

use std::convert::Infallible;
use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

const VERIFY_BODY: &[u8] = br#"{"success":true,"data":{"user_id":"31eb4d7e-af67-433b-8767-d67c069fb8fb","email":"bench@example.com","role":"user","auth":"api_key","scopes":["send"]}}"#;
const VERIFY_HEADERS: &[(&str, &str)] = &[
    ("x-posta-user-id", "31eb4d7e-af67-433b-8767-d67c069fb8fb"),
    ("x-posta-user-email", "bench@example.com"),
    ("x-posta-user-role", "user"),
    ("x-posta-auth", "api_key"),
    ("x-posta-scopes", "send"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("x-request-id", "3"),
];

/// The `--verify-bytes` headers, built once.
static PREPARED: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut h = HeaderMap::with_capacity(16);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (k, v) in VERIFY_HEADERS {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
});

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verify_bytes = args.iter().any(|a| a == "--verify-bytes");
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening addr={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                let body: &'static [u8] = if verify_bytes {
                    VERIFY_BODY
                } else {
                    br#"{"success":true,"data":{"status":"ok"}}"#
                };
                let mut r = Response::new(Full::new(Bytes::from_static(body)));
                if verify_bytes {
                    // Cloned from a map built once, as Posta does: the cheapest way to hand
                    // hyper a dozen headers.
                    *r.headers_mut() = PREPARED.clone();
                } else {
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                Ok::<_, Infallible>(r)
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // As Posta (`http/server.rs`): head and body in one buffer, one write(2).
            builder.http1().writev(false);
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
