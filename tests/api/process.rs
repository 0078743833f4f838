//! The binary as a process: configuration layers and errors, signals, logs (filter, journal
//! priorities), `check-config`, `version`.

use crate::common::*;
use serde_json::{Value, json};

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
        // Warnings only (but the start-up line, which tells the harness the address).
        (Some("warn,posta::cli=info"), false),
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
        .env("POSTA_WEB_URL", "https://posta.example.com")
        .env("POSTA_SMTP_HOST", "smtp.example.com")
        .env("POSTA_SMTP_FROM", "posta@example.com")
        .env("POSTA_SMTP_USERNAME", "relay-user")
        .env("POSTA_SMTP_PASSWORD", "relay-pa55word-relay")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("jwt_secret = \"********\""), "{text}");
    assert!(text.contains("smtp_password = \"********\""), "{text}");
    assert!(text.contains("relay-user"), "{text}");
    assert!(!text.contains("s3cr3t") && !text.contains("relay-pa55word"));
    assert!(!text.contains(ADMIN_PASSWORD));
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

/// Only `serve` creates a store: every other command on a missing one fails, says which path
/// it looked at and where that path came from, and creates nothing (no directory, no keys).
/// `check-config` names its file; the build's POSTA_COMMIT is no unknown setting; a failing
/// health check names the URL it tried.
#[test]
fn host_commands_never_create_a_store_and_say_where_they_looked() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("not-the-data-dir");
    for args in [
        vec!["admin", "list-users"],
        vec!["admin", "reset-password", "--email", "a@example.com"],
        vec!["backup", "/dev/null/x"],
        vec!["export"],
        vec!["compact"],
    ] {
        let mut c = posta_cmd(&missing);
        let out = c.current_dir(root.path()).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "no store at {}",
                missing.join("posta.redb").display()
            )) && err.contains("POSTA_DATA_DIR"),
            "{args:?}: {err}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    let out = posta_cmd(&missing)
        .current_dir(root.path())
        .env("POSTA_COMMIT", "0123abc")
        .arg("check-config")
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# no configuration file"), "{text}");
    assert!(
        text.contains("# data_dir from the POSTA_DATA_DIR environment variable"),
        "{text}"
    );
    assert!(
        out.stderr.is_empty(),
        "no warning: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = root.path().join("posta.toml");
    std::fs::write(&file, "port = 9123\n").unwrap();
    let out = posta_cmd(&missing)
        .current_dir(root.path())
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("# configuration file: {}", file.display()))
    );
    let out = posta_cmd(&missing)
        .current_dir(root.path())
        .env("POSTA_PORT", "1")
        .arg("healthcheck")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http://127.0.0.1:1/api/v1/healthz"), "{err}");
}

/// A first start says that self-registration is open and how to close it; a clean start on
/// loopback logs no warning; listening beyond loopback with neither TLS nor a trusted proxy
/// is warned about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_says_what_is_open_and_warns_when_exposed() {
    async fn log_until(b: &Binary, what: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = b.stderr.lock().unwrap().clone();
            if log.contains(what) {
                return log;
            }
            assert!(std::time::Instant::now() < deadline, "no {what:?} in {log}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.env_remove("POSTA_ADMIN_PASSWORD");
    let b = Binary::spawn(cmd);
    b.ready().await;
    let log = log_until(&b, "Self-registration is open").await;
    assert!(log.contains("POSTA_REGISTRATION_ENABLED=false"), "{log}");
    assert!(
        !log.contains(" WARN "),
        "a clean start warns about nothing: {log}"
    );
    drop(b);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.env("POSTA_HOST", "0.0.0.0");
    let b = Binary::spawn(cmd);
    b.ready().await;
    let log = log_until(&b, "without TLS and without POSTA_TRUSTED_PROXIES").await;
    assert!(log.contains(" WARN "), "{log}");
}

/// A configuration file that holds a secret and that group or others can read is warned
/// about, by `check-config` and at start-up; an owner-only one is not.
#[test]
fn a_readable_file_holding_a_secret_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "jwt_secret = \"file-secret-file-secret-file-secret-42\"\n",
    )
    .unwrap();
    let check = || {
        let mut c = posta_cmd(dir.path());
        c.env_remove("POSTA_JWT_SECRET")
            .args(["--config", file.to_str().unwrap(), "check-config"]);
        let out = c.output().unwrap();
        assert_ok(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = check();
    assert!(
        err.contains("holds jwt_secret and is readable by group or others (mode 644)"),
        "{err}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(check().is_empty());
}
