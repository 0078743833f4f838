//! Operations: online backup under write load, restore, export.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restore_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.env("POSTA_AUTH_RATE_LIMIT_ENABLED", "false");
    let b = Binary::spawn(cmd);
    b.ready().await;
    let url = b.url();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let email = format!("load{i}@example.com");
                let r = c
                    .post(format!("{url}/api/v1/auth/register"))
                    .json(&json!({"name": "Load", "email": email, "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                acked.lock().unwrap().push(email);
                i += 1;
            }
        })
    };
    while acked.lock().unwrap().len() < 15 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let backup = dir.path().join("backup.redb");
    // What an interrupted backup leaves behind does not stand in the way of the next one.
    std::fs::write(dir.path().join("backup.partial"), b"interrupted").unwrap();
    let out = {
        let mut c = posta_cmd(dir.path());
        c.arg("backup").arg(&backup);
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    };
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup written"));
    // The store and its backup hold password hashes: owner-only, whatever the umask.
    assert_eq!(mode(&backup), 0o600, "backup file");
    assert_eq!(mode(&dir.path().join("posta.redb")), 0o600, "store file");
    // Export while running: keys as hashes only, no secrets.
    let out = posta_cmd(dir.path())
        .args(["export", "--format", "jsonl"])
        .output()
        .unwrap();
    assert_ok(&out);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "settings");
    assert!(lines.iter().filter(|l| l["type"] == "user").count() >= before.len());
    // Restoring over a running server's store is refused.
    let out = posta_cmd(dir.path())
        .args(["restore", "--force"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    drop(b);
    // With the server stopped, backup and export read the file themselves.
    let offline = dir.path().join("offline.redb");
    let out = posta_cmd(dir.path())
        .arg("backup")
        .arg(&offline)
        .output()
        .unwrap();
    assert_ok(&out);
    let out = posta_cmd(dir.path()).arg("export").output().unwrap();
    assert!(out.status.success());
    let users = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(r#""type":"user""#))
        .count();
    assert!(users > before.len(), "{users} users exported offline");
    // To a file: owner-only (it holds the password hashes), never over an existing one.
    let file = dir.path().join("export.jsonl");
    let out = posta_cmd(dir.path())
        .args(["export", "--output"])
        .arg(&file)
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(mode(&file), 0o600);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("$argon2id$")
    );
    let out = posta_cmd(dir.path())
        .args(["export", "--output"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "no overwrite");

    // Restore into a fresh data dir: every user acknowledged before the backup is there.
    let fresh = tempfile::tempdir().unwrap();
    let out = posta_cmd(fresh.path())
        .arg("restore")
        .arg(&backup)
        .output()
        .unwrap();
    assert_ok(&out);
    let out = posta_cmd(fresh.path())
        .arg("restore")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!out.status.success(), "no overwrite without --force");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let out = posta_cmd(fresh.path())
        .args(["restore", "--force"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(out.status.success());
    // Every time, it says which keys must come with the store.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("encryption.key") && said.contains("jwt.key"),
        "{said}"
    );
    let out = posta_cmd(fresh.path())
        .args(["admin", "list-users"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    for e in &before {
        assert!(listed.contains(e.as_str()), "{e} lost");
    }
    // Restored into a data dir that does not exist yet: created owner-only, file owner-only,
    // though the backup was made readable by all.
    std::fs::set_permissions(&backup, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let nested = fresh.path().join("new").join("data");
    let out = posta_cmd(&nested)
        .current_dir(fresh.path())
        .arg("restore")
        .arg(&backup)
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(mode(&fresh.path().join("new")), 0o700, "created parent");
    assert_eq!(mode(&nested), 0o700, "created data dir");
    assert_eq!(mode(&nested.join("posta.redb")), 0o600, "restored store");
    // A server started on a data dir that does not exist creates it the same way.
    let first = fresh.path().join("first-run");
    let mut cmd = posta_cmd(&first);
    cmd.current_dir(fresh.path());
    let b = Binary::spawn(cmd);
    b.ready().await;
    drop(b);
    assert_eq!(mode(&first), 0o700, "data dir of a first run");
    assert_eq!(
        mode(&first.join("posta.redb")),
        0o600,
        "store of a first run"
    );
    // A garbage file is not a backup.
    let junk = fresh.path().join("junk");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let out = posta_cmd(fresh.path())
        .args(["restore", "--force"])
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a usable backup"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_the_router() {
    let s = TestServer::start().await;
    let (st, doc) = s.get("/api/v1/openapi.json", None).await;
    assert_eq!(st, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for (p, ops) in paths {
        for (m, op) in ops.as_object().unwrap() {
            documented.insert((m.to_uppercase(), p.clone()));
            // The documented operation is what the router does with a concrete path.
            let concrete = p
                .replace("{slug}", "example")
                .replace("{id}", "00000000-0000-0000-0000-000000000001")
                .replace("{provider_id}", "00000000-0000-0000-0000-000000000002")
                .replace("{event_id}", "3");
            let route =
                posta::http::router::Endpoint::parse(&m.to_uppercase().parse().unwrap(), &concrete)
                    .unwrap();
            assert_eq!(op["operationId"], route.name(), "{m} {p}");
        }
    }
    let routed: std::collections::BTreeSet<(String, String)> = posta::http::router::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
    assert!(documented.contains(&("GET".to_owned(), "/api/v1/auth/verify".to_owned())));
    assert_eq!(
        doc["paths"]["/api/v1/admin/users"]["get"]["security"],
        json!([{"bearerJwt": []}])
    );
    assert_eq!(
        doc["paths"]["/api/v1/auth/login"]["post"]["security"],
        json!([])
    );
    let off = TestServer::start_with(|c| c.openapi_docs = false).await;
    assert_eq!(off.get("/api/v1/openapi.json", None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_when_enabled() {
    let off = TestServer::start().await;
    assert_eq!(off.get("/metrics", None).await.0, 404);
    let s = TestServer::start_with(|c| c.metrics_enabled = true).await;
    let admin = s.admin().await;
    s.post(
        "/api/v1/auth/login",
        None,
        json!({"email": ADMIN_EMAIL, "password": "wrong-password-1"}),
    )
    .await;
    let (key, _) = s.api_key(&admin, json!({"name": "m"})).await;
    s.get("/api/v1/auth/verify", Some(&key)).await;
    s.get("/api/v1/auth/verify", Some("posta_wrong")).await;
    let r = s
        .client
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for needle in [
        "posta_http_requests_total{route=\"login\",status=\"200\"} 1",
        "posta_http_requests_total{route=\"login\",status=\"401\"} 1",
        "posta_logins_total{outcome=\"success\"} 1",
        "posta_logins_total{outcome=\"failure\"} 1",
        "posta_api_key_verifications_total{outcome=\"success\"} 1",
        "posta_api_key_verifications_total{outcome=\"invalid\"} 1",
        "posta_http_request_duration_seconds_bucket{le=",
        "posta_sessions_active 1",
        "posta_store_size_bytes ",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    assert!(!text.contains(&key));
}

/// Permission bits of a file or directory.
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A write the file system refuses (a full disk) fails that request, and redb then refuses
/// every later write until the database is opened again. The server reopens it itself: while
/// the file cannot grow, writes fail with a JSON error and change nothing; once it can, they
/// resume without a restart, and everything committed before is intact. The file size limit
/// (`RLIMIT_FSIZE`, raised and lowered on the running process with `prlimit`) stands in for
/// the full disk: writes past it fail as writes to a full disk do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_the_disk_was_full() {
    ensure_command("prlimit", "util-linux");
    let dir = tempfile::tempdir().unwrap();
    let base = posta_cmd(dir.path());
    // The shell ignores SIGXFSZ before it becomes posta, as a full disk sends no signal.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; exec \"$0\" serve")
        .arg(env!("CARGO_BIN_EXE_posta"))
        .env_clear()
        .current_dir(dir.path());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.env("POSTA_REGISTRATION_ENABLED", "true")
        .env("POSTA_AUTH_RATE_LIMIT_ENABLED", "false")
        .env("POSTA_METRICS_ENABLED", "true");
    let mut b = Binary::spawn(cmd);
    b.ready().await;
    let c = reqwest::Client::new();
    let register = |email: &'static str| {
        let (c, url) = (c.clone(), b.url());
        async move {
            let r = c
                .post(format!("{url}/api/v1/auth/register"))
                .json(&json!({"name": "Disk", "email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let writable = || {
        let (c, url) = (c.clone(), b.url());
        async move {
            let text = c
                .get(format!("{url}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("posta_store_writable "))
                .unwrap_or_else(|| panic!("{text}"))
                .to_owned();
            line.ends_with(" 1")
        }
    };
    let fsize = |limit: &str| {
        let out = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", b.child.id()))
            .arg(format!("--fsize={limit}"))
            .output()
            .unwrap();
        assert_ok(&out);
    };
    assert_eq!(register("before@example.com").await.0, 201);
    assert!(writable().await);
    let me = c
        .post(format!("{}/api/v1/auth/login", b.url()))
        .json(&json!({"email": "before@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    fsize("1:unlimited");
    for email in [
        "full1@example.com",
        "full2@example.com",
        "full3@example.com",
    ] {
        let (status, v) = register(email).await;
        assert!(status == 500 || status == 503, "{status} {v}");
        assert_eq!(v["success"], false, "{v}");
        assert!(
            ["INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"].contains(&err_code(&v)),
            "{v}"
        );
    }
    assert!(!writable().await, "the scrape says writes are refused");
    // Signed-in callers are still answered meanwhile.
    let r = c
        .get(format!("{}/api/v1/users/me", b.url()))
        .bearer_auth(&me)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    fsize("unlimited");
    // Reopens are at most one a second, tried by the next write: writes resume on their own,
    // within a few seconds, with no restart.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, v) = register("after@example.com").await;
        if status == 201 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "writes never resumed: {status} {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = c
        .post(format!("{}/api/v1/auth/login", b.url()))
        .json(&json!({"email": "before@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(format!("{}/readyz", b.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(writable().await);

    b.signal(15);
    assert!(b.wait_exit(15).await.success());
    let logs = b.stderr.lock().unwrap().clone();
    assert_eq!(logs.matches("database write failed").count(), 1, "{logs}");
    assert!(logs.contains("database reopened; writes resume"), "{logs}");
    // The audit log line is written for committed changes only.
    assert_eq!(logs.matches("user.registered").count(), 2, "{logs}");

    // After a restart: what was acknowledged is there, what failed is not.
    let out = posta_cmd(dir.path())
        .args(["admin", "list-users"])
        .output()
        .unwrap();
    assert_ok(&out);
    let users = String::from_utf8_lossy(&out.stdout);
    assert!(users.contains("before@example.com") && users.contains("after@example.com"));
    assert!(!users.contains("full"), "{users}");
}
