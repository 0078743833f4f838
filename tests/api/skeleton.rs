//! Health, envelope, limits, configuration, store locking/corruption, restart, signals.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_users_and_sessions() {
    let s = TestServer::start().await;
    let (token, _) = s.register("Ada", "ada@example.com").await;
    let (dir, clock) = s.stop().await;
    let cfg = test_config(dir.path());
    let s = TestServer::start_in(dir, cfg, clock).await;
    let (st, v) = s.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["email"], "ada@example.com");
    s.login("ada@example.com", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_layers_config_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_file = dir.path().join("config.toml");
    std::fs::write(
        &cfg_file,
        "port = 1\nregistration_enabled = true\nlog_format = \"json\"\n",
    )
    .unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.arg("--config")
        .arg(&cfg_file)
        .env("POSTA_REGISTRATION_ENABLED", "false");
    let mut b = Binary::spawn(cmd);
    b.ready().await;
    // env (port 0, registration off) overrides the file (port 1, registration on).
    assert!(!b.addr.ends_with(":1"));
    let v: Value = reqwest::get(format!("{}/api/v1/auth/registration-status", b.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["registration_enabled"], false);
    // A second instance on the same data dir is refused with a clear message.
    let out = posta_cmd(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another running posta"), "{err}");
    // healthcheck subcommand against the running server.
    let port = b.addr.rsplit(':').next().unwrap().to_owned();
    let out = posta_cmd(dir.path())
        .env("POSTA_PORT", &port)
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_ok(&out);
    // Requests are logged as JSON lines (log_format from the file), secrets never.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", b.url()))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["data"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    reqwest::Client::new()
        .get(format!("{}/api/v1/users/me", b.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    b.signal(15);
    let status = b.wait_exit(15).await;
    assert!(status.success(), "exit {status:?}");
    let logs = b.stderr.lock().unwrap().clone();
    let request_lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert!(
        request_lines.iter().any(|v| v["path"] == "/api/v1/users/me"
            && v["status"] == 200
            && v["micros"].is_u64()
            && v["request_id"].is_u64()),
        "{logs}"
    );
    assert!(
        !logs.contains(ADMIN_PASSWORD) && !logs.contains(&token),
        "secrets in logs"
    );
    // After a clean stop the file opens again.
    let out = posta_cmd(dir.path())
        .args(["admin", "list-users"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains(ADMIN_EMAIL));
}

/// The log filter decides whether access lines are written (the access log asks it once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_filter_decides_whether_requests_are_logged() {
    for (filter, logged) in [
        (None, true),
        (Some("warn"), false),
        (Some("posta=info"), true),
        // The README's recipe for keeping everything but the access lines.
        (Some("info,posta::http::access_log=off"), false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = posta_cmd(dir.path());
        if let Some(f) = filter {
            cmd.env("POSTA_LOG", f);
        }
        let mut b = Binary::spawn(cmd);
        b.ready().await;
        for path in ["/api/v1/healthz", "/api/v1/nowhere"] {
            reqwest::get(format!("{}{path}", b.url())).await.unwrap();
        }
        b.signal(15);
        assert!(b.wait_exit(15).await.success());
        let logs = b.stderr.lock().unwrap().clone();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(" INFO posta::http: request request_id="))
            .collect();
        if logged {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("path=/api/v1/healthz status=200")),
                "{filter:?}: {logs}"
            );
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("path=/api/v1/nowhere status=404")
                        && l.ends_with("code=NOT_FOUND")),
                "{filter:?}: {logs}"
            );
        } else {
            assert!(lines.is_empty(), "{filter:?}: {logs}");
        }
    }
}

/// The device and inode systemd would name in `JOURNAL_STREAM` for this pipe.
fn stream_id(end: &std::io::PipeWriter) -> String {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::File::from(end.as_fd().try_clone_to_owned().unwrap())
        .metadata()
        .unwrap();
    format!("{}:{}", m.dev(), m.ino())
}

/// Under systemd, stderr is the journal's stream: every line then starts with its priority
/// (`<3>` error, `<4>` warning, `<6>` info), so the journal files warnings and errors as such
/// and its per-priority rate limit cannot drop them with a flood of access lines. Elsewhere,
/// including a shell that merely inherited `JOURNAL_STREAM`, lines are left as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_lines_carry_their_priority() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = std::io::pipe().unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.env("JOURNAL_STREAM", stream_id(&pipe.1))
        .env("POSTA_LOG_FORMAT", "json")
        .env("POSTA_NO_SUCH_SETTING", "1");
    let mut b = Binary::spawn_on(cmd, pipe);
    b.ready().await;
    reqwest::get(format!("{}/api/v1/healthz", b.url()))
        .await
        .unwrap();
    // A second instance on the same store fails; its reason is an error to the journal, and
    // without the journal a plain line.
    for journal in [true, false] {
        let (err, err_end) = std::io::pipe().unwrap();
        let id = if journal {
            stream_id(&err_end)
        } else {
            "1:1".into()
        };
        let mut cmd = posta_cmd(dir.path());
        let status = cmd
            .env("JOURNAL_STREAM", id)
            .stderr(err_end)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        drop(cmd);
        assert!(!status.success());
        let text = std::io::read_to_string(err).unwrap();
        let last = text.lines().last().unwrap_or_default();
        let expected = if journal { "<3>posta: " } else { "posta: " };
        assert!(
            last.starts_with(expected) && last.contains("locked by another running posta"),
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| l.starts_with('<')).count(),
            usize::from(journal) * text.lines().count(),
            "{text}"
        );
    }
    b.signal(15);
    assert!(b.wait_exit(15).await.success());
    let mut logs = String::new();
    for _ in 0..200 {
        logs = b.stderr.lock().unwrap().clone();
        if logs.contains("\"stopped\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let lines: Vec<(&str, Value)> = logs
        .lines()
        .map(|l| {
            let (prefix, json) = l.split_at(3.min(l.len()));
            (prefix, serde_json::from_str(json).unwrap_or(Value::Null))
        })
        .collect();
    assert!(lines.len() >= 4, "{logs}");
    for (prefix, v) in &lines {
        let expected = match v["level"].as_str() {
            Some("ERROR") => "<3>",
            Some("WARN") => "<4>",
            Some("INFO") => "<6>",
            _ => panic!("not a JSON log line behind a priority: {logs}"),
        };
        assert_eq!(*prefix, expected, "{logs}");
    }
    let has = |prefix: &str, what: &dyn Fn(&Value) -> bool| {
        lines.iter().any(|(p, v)| *p == prefix && what(v))
    };
    assert!(
        has("<4>", &|v| v["message"]
            .as_str()
            .is_some_and(|m| m.contains("POSTA_NO_SUCH_SETTING"))),
        "{logs}"
    );
    assert!(
        has("<6>", &|v| v["message"] == "request"
            && v["path"] == "/api/v1/healthz"),
        "{logs}"
    );
    assert!(has("<6>", &|v| v["message"] == "stopped"), "{logs}");
}

#[test]
fn bad_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = posta_cmd(dir.path())
        .env("POSTA_PORT", "abc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("\"port\""), "{err}");
    let out = posta_cmd(dir.path())
        .env("POSTA_TLS_CERT", "/nonexistent/cert.pem")
        .env("POSTA_TLS_KEY", "/nonexistent/key.pem")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls_cert"));
    let toml = dir.path().join("bad.toml");
    std::fs::write(&toml, "prot = 9000\n").unwrap();
    let out = posta_cmd(dir.path())
        .arg("--config")
        .arg(&toml)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prot"));
}

#[test]
fn check_config_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = posta_cmd(dir.path())
        .env("POSTA_JWT_SECRET", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-xx")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("jwt_secret = \"********\""), "{text}");
    assert!(!text.contains("s3cr3t"));
    assert!(!text.contains(ADMIN_PASSWORD));
}

#[test]
fn corrupt_store_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(db_path(dir.path()), &garbage).unwrap();
    let out = posta_cmd(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt or not a posta database"), "{err}");
    assert_eq!(
        std::fs::read(db_path(dir.path())).unwrap(),
        garbage,
        "file untouched"
    );
}

#[test]
fn version_prints_commit() {
    let dir = tempfile::tempdir().unwrap();
    let out = posta_cmd(dir.path()).arg("version").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.starts_with(&format!("posta {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{s}"
    );
}

fn self_signed(
    dir: &std::path::Path,
    tag: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join(format!("{tag}-cert.pem"));
    let key = dir.join(format!("{tag}-key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key, c.cert.der().to_vec())
}

fn tls_client(der: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(der).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_http2_and_hsts() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, der) = self_signed(certs.path(), "a");
    let s = TestServer::start_with(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let port = s.url.rsplit(':').next().unwrap().to_owned();
    let r = tls_client(&der)
        .get(format!("https://localhost:{port}/api/v1/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN h2");
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    // Plain HTTP is not served on the TLS port.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http2_prior_knowledge() {
    let s = TestServer::start().await;
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/api/v1/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert!(r.headers().get("strict-transport-security").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, der_a) = self_signed(dir.path(), "a");
    let (cert_b, key_b, der_b) = self_signed(dir.path(), "b");
    let live_cert = dir.path().join("cert.pem");
    let live_key = dir.path().join("key.pem");
    std::fs::copy(&cert_a, &live_cert).unwrap();
    std::fs::copy(&key_a, &live_key).unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.env("POSTA_TLS_CERT", &live_cert)
        .env("POSTA_TLS_KEY", &live_key);
    let b = Binary::spawn(cmd);
    let port = b.addr.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}/api/v1/healthz");
    let peer = |r: &reqwest::Response| {
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .unwrap()
            .peer_certificate()
            .unwrap()
            .to_vec()
    };
    let mut first = None;
    for _ in 0..200 {
        if let Ok(r) = tls_client(&der_a).get(&url).send().await {
            first = Some(peer(&r));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(first.unwrap(), der_a);
    // A connection opened before the reload keeps working afterwards.
    let keep = tls_client(&der_a);
    assert_eq!(keep.get(&url).send().await.unwrap().status(), 200);
    std::fs::copy(&cert_b, &live_cert).unwrap();
    std::fs::copy(&key_b, &live_key).unwrap();
    b.signal(1);
    let mut reloaded = false;
    for _ in 0..200 {
        if let Ok(r) = tls_client(&der_b).get(&url).send().await {
            assert_eq!(peer(&r), der_b);
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reloaded, "new certificate served after SIGHUP");
    assert_eq!(
        keep.get(&url).send().await.unwrap().status(),
        200,
        "old connection survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = posta::store::Store::open(&db_path(dir.path())).unwrap();
        store
            .write_blocking(|tx| {
                posta::store::meta::set_schema_version(tx, posta::store::SCHEMA_VERSION + 1)
            })
            .unwrap();
    }
    let out = posta_cmd(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this binary supports"), "{err}");
}

#[test]
fn admin_cli_manages_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut c = posta_cmd(dir.path());
        c.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(
        &[
            "admin",
            "create-user",
            "--email",
            "Cli@Example.com",
            "--name",
            "Cli",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("cli-pass-phrase-77\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("created cli@example.com (admin)"), "{out}");
    let (ok, _, err) = run(
        &[
            "admin",
            "create-user",
            "--email",
            "cli@example.com",
            "--name",
            "Again",
        ],
        None,
    );
    assert!(!ok && err.contains("already"), "{err}");
    let (ok, out, _) = run(
        &["admin", "reset-password", "--email", "cli@example.com"],
        None,
    );
    assert!(ok);
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 20);
    let (ok, _, err) = run(
        &[
            "admin",
            "set-role",
            "--email",
            "cli@example.com",
            "--role",
            "user",
        ],
        None,
    );
    assert!(!ok && err.contains("last active admin"), "{err}");
    let (ok, out, err) = run(
        &[
            "admin",
            "create-user",
            "--email",
            "bob@example.com",
            "--name",
            "Bob",
        ],
        None,
    );
    assert!(ok && out.contains("password: "), "{err}");
    let (ok, _, err) = run(
        &[
            "admin",
            "set-role",
            "--email",
            "bob@example.com",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        &[
            "admin",
            "set-role",
            "--email",
            "cli@example.com",
            "--role",
            "user",
        ],
        None,
    );
    assert!(ok, "{err}");
    let (ok, out, _) = run(&["admin", "list-users"], None);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.contains("cli@example.com") && l.contains(" user ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("bob@example.com") && l.contains(" admin ")),
        "{out}"
    );
    let (ok, _, err) = run(
        &[
            "admin",
            "set-role",
            "--email",
            "ghost@example.com",
            "--role",
            "user",
        ],
        None,
    );
    assert!(!ok && err.contains("no user"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_store_is_migrated_at_open() {
    // A store in the v1 layout: users but no admin index, schema_version 1.
    let s = TestServer::start().await;
    s.register("Old", "old@example.com").await;
    let (dir, clock) = s.stop().await;
    {
        let store = posta::store::Store::open(&db_path(dir.path())).unwrap();
        store
            .write_blocking(|tx| {
                tx.delete_table(posta::store::tables::ADMINS).unwrap();
                posta::store::meta::set_schema_version(tx, 1)
            })
            .unwrap();
        let v = store.read(posta::store::meta::schema_version).unwrap();
        assert_eq!(v, Some(1));
    }
    let cfg = test_config(dir.path());
    let s = TestServer::start_in(dir, cfg, clock).await;
    let admin = s.admin().await;
    let (_, users) = s.get("/api/v1/admin/users", Some(&admin)).await;
    assert_eq!(
        users["pageable"]["total_elements"], 2,
        "no second admin was created"
    );
    // The rebuilt index knows the admin: alone it cannot be demoted; with a second admin it
    // can (an empty index would count one admin in both cases).
    let (_, me) = s.get("/api/v1/users/me", Some(&admin)).await;
    let me = me["data"]["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .put(
            &format!("/api/v1/admin/users/{me}"),
            Some(&admin),
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .post("/api/v1/admin/users", Some(&admin), json!({"name": "Two", "email": "two@example.com", "password": PASSWORD, "role": "admin"}))
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .put(
            &format!("/api/v1/admin/users/{me}"),
            Some(&admin),
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(st, 200);
    let (dir, _) = s.stop().await;
    let store = posta::store::Store::open(&db_path(dir.path())).unwrap();
    assert_eq!(
        store.read(posta::store::meta::schema_version).unwrap(),
        Some(posta::store::SCHEMA_VERSION)
    );
}

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
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    busy.write_all(head.as_bytes()).await.unwrap();
    busy.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    let mut stopping = tokio::spawn(s.stop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!stopping.is_finished(), "returned with a request in flight");
    until_closed(&mut idle, "an idle connection was kept through shutdown").await;

    busy.write_all(&body[10..]).await.unwrap();
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
