//! Connections: slow or idle ones closed, a trickling body cut off, shutdown draining what is
//! in flight.

use crate::common::*;

/// Read until the server closes `conn`, failing with `stayed_open` if it has not within 10 s.
async fn until_closed(conn: &mut tokio::net::TcpStream, stayed_open: &str) {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut rest),
    )
    .await;
    assert!(read.is_ok(), "{stayed_open}");
}

/// A keep-alive connection that has been answered one health check, and is now silent.
async fn served_keep_alive(addr: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    conn.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    conn
}

/// Slowloris: a request head that never completes, or a keep-alive connection that never
/// sends its next request, is closed after `header_read_timeout_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| c.header_read_timeout_secs = 1).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    until_closed(&mut slow, "an incomplete head kept the connection open").await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "closed before the timeout"
    );
    // A served keep-alive connection that then stays silent is closed too.
    let mut idle = served_keep_alive(&addr).await;
    until_closed(&mut idle, "an idle keep-alive connection stayed open").await;
    // A keep-alive connection in use is not closed, however long it lives.
    let mut busy = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for i in 0..8 {
        busy.write_all(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"}") {
            let mut b = [0u8; 512];
            let n = busy.read(&mut b).await.unwrap();
            assert!(n > 0, "connection closed while in use (request {i})");
            head.extend_from_slice(&b[..n]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"));
        // Time passing while the connection is in use is what this checks (8 x 400 ms, past
        // the 1 s timeouts): there is no event to wait for instead.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
}

/// Slow body (R.U.D.Y.): a request whose head arrived but whose body trickles in, a byte now
/// and then, holds its connection (and one of `max_connections`) only until the body deadline
/// — `header_read_timeout_secs` — and is then answered 408 with the envelope and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_cut_off() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| c.header_read_timeout_secs = 1).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    // Keep trickling for up to 8 s (the watchdog alone would never close a request in flight).
    while started.elapsed() < Duration::from_secs(8) {
        let mut b = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&b[..n]),
            Err(_) => {
                if conn.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{elapsed:?}: {answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert!(
        elapsed >= Duration::from_millis(900),
        "cut off early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "cut off late: {elapsed:?}"
    );
    until_closed(&mut conn, "the connection stayed open after the 408").await;
    // A body that arrives in time is read as before.
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            serde_json::json!({"email": "nobody@example.com", "password": "not-the-password"}),
        )
        .await;
    assert_eq!(st, 401);
}

/// Shutdown lets a request in flight finish (its answer says the connection closes), closes
/// idle keep-alive connections at once instead of waiting out the grace period, and then
/// returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight_and_closes_idle_connections() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| {
        c.shutdown_grace_secs = 60;
        c.header_read_timeout_secs = 60;
    })
    .await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    // Idle: served once, then silent (the watchdog alone would keep it for a minute).
    let mut idle = served_keep_alive(&addr).await;
    // In flight: a sign-in whose body is still arriving.
    let body = br#"{"email":"nobody@example.com","password":"not-the-password"}"#;
    let mut busy = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    busy.write_all(head.as_bytes()).await.unwrap();
    // The server says `100 Continue` when the handler starts reading the body: from then on
    // the request is in flight.
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 64];
        let n = busy.read(&mut b).await.unwrap();
        assert!(n > 0, "closed before 100 Continue");
        got.extend_from_slice(&b[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 100 Continue"), "{got:?}");

    let started = std::time::Instant::now();
    let mut stopping = tokio::spawn(s.stop());
    // Shutdown has begun once the idle connection is closed; the request in flight holds it.
    until_closed(&mut idle, "an idle connection was kept through shutdown").await;
    assert!(!stopping.is_finished(), "returned with a request in flight");

    busy.write_all(&body[..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), busy.read_to_end(&mut answer))
        .await
        .expect("the request in flight was not answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), &mut stopping)
        .await
        .expect("shutdown did not return once drained")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited for the grace period"
    );
}
