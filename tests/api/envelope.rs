//! Health, readiness and info; the JSON envelope of every answer and error; security headers.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_info() {
    let s = TestServer::start().await;
    for p in ["/api/v1/healthz", "/healthz"] {
        let (st, v) = s.get(p, None).await;
        assert_eq!(st, 200);
        assert_eq!(v["success"], true);
        assert_eq!(v["data"]["status"], "ok");
        assert!(v["data"]["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    for p in ["/api/v1/readyz", "/readyz"] {
        let (st, v) = s.get(p, None).await;
        assert_eq!(st, 200);
        assert_eq!(
            v["data"],
            json!({"status": "ok", "checks": {"database": "ok"}})
        );
    }
    let (st, v) = s.get("/api/v1/info", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["name"], "posta");
    assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["data"]["commit"].is_string());
    // Posta's names beside ours.
    assert_eq!(v["data"]["commit_id"], v["data"]["commit"]);
    assert_eq!(v["data"]["openapi_docs"], true);
    let r = s
        .client
        .get(format!("{}/api/v1/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["content-type"], "application/json");
}

/// JSON answers take their headers from a prepared map (per verification for forward auth);
/// pages and other bodies get them inserted on the way out. Every kind carries the whole set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_response_carries_the_security_headers() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Hedda", "hedda@example.com").await;
    let (key, _) = s.api_key(&t, json!({"name": "mailer"})).await;
    let get = |path: &str, credential: Option<&str>| {
        let mut r = s.client.get(format!("{}{path}", s.url));
        if let Some(c) = credential {
            r = r.bearer_auth(c);
        }
        r.send()
    };
    let mut ids = std::collections::HashSet::new();
    // Twice each: a cached verification's second answer reuses its prepared headers.
    for (path, credential, status, csp) in [
        ("/api/v1/healthz", None, 200, "default-src 'none'"),
        ("/nope", None, 404, "default-src 'none'"),
        (
            "/api/v1/users/me",
            Some(t.as_str()),
            200,
            "default-src 'none'",
        ),
        (
            "/api/v1/auth/verify",
            Some(key.as_str()),
            200,
            "default-src 'none'",
        ),
        (
            "/api/v1/auth/verify",
            Some(t.as_str()),
            200,
            "default-src 'none'",
        ),
        ("/login", None, 200, "script-src 'self'"),
        ("/assets/app.js", None, 200, "script-src 'self'"),
    ]
    .into_iter()
    .flat_map(|c| [c, c])
    {
        let r = get(path, credential).await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        let h = r.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(h.get_all(name).iter().count(), 1, "{path} {name}");
            assert_eq!(h[name], value, "{path} {name}");
        }
        assert_eq!(h.get_all("content-security-policy").iter().count(), 1);
        assert!(h["content-security-policy"].to_str().unwrap().contains(csp));
        // Framing is refused by CSP (which makes browsers ignore X-Frame-Options).
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(h.get("x-frame-options").is_none(), "{path}");
        assert!(h.get("strict-transport-security").is_none(), "plain HTTP");
        assert_eq!(h.get_all("x-request-id").iter().count(), 1, "{path}");
        let id: u64 = h["x-request-id"].to_str().unwrap().parse().unwrap();
        assert!(ids.insert(id), "{path}: request id {id} seen before");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_can_require_a_token() {
    let s = TestServer::start_with(|c| c.info_public = false).await;
    let (st, v) = s.get("/api/v1/info", None).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    let t = s.admin().await;
    assert_eq!(s.get("/api/v1/info", Some(&t)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_envelopes() {
    let s = TestServer::start().await;
    let (st, v) = s.get("/nope", None).await;
    assert_eq!((st, err_code(&v)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    assert_eq!(v["data"], Value::Null);
    let (st, v) = s.get("/api/v1/auth/login", None).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    );
    // Malformed JSON.
    let r = s
        .client
        .post(format!("{}/api/v1/auth/login", s.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(err_code(&r.json().await.unwrap()), "BAD_REQUEST");
    // Wrong content type.
    let r = s
        .client
        .post(format!("{}/api/v1/auth/login", s.url))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(err_code(&r.json().await.unwrap()), "UNSUPPORTED_MEDIA_TYPE");
    // Oversized body, announced and streamed.
    let big = format!(
        "{{\"email\":\"{}\",\"password\":\"x\"}}",
        "a".repeat(70 * 1024)
    );
    let r = s
        .client
        .post(format!("{}/api/v1/auth/login", s.url))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(err_code(&r.json().await.unwrap()), "PAYLOAD_TOO_LARGE");
    // Chunked (no Content-Length): the cap is enforced while reading. Raw TCP, so the whole
    // body is written before the answer is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let mut raw = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in big.as_bytes().chunks(4096) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    tcp.write_all(&raw).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("PAYLOAD_TOO_LARGE"));
    // Missing token.
    let (st, v) = s.get("/api/v1/users/me", None).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
}
