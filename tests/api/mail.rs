//! Outgoing mail against a real SMTP server (npm `smtp-server`, tests/oidc/smtp.mjs):
//! verification and reset end to end through the delivered message, STARTTLS with a test
//! CA, the durable outbox across kill -9, caps, permanent refusals, and forgot-password's
//! answers alike for known and unknown addresses.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// The test SMTP server and what it received.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub got: Arc<Mutex<Vec<Value>>>,
}

impl Smtp {
    pub fn start(env: &[(&str, String)]) -> Self {
        crate::idp::ensure_npm();
        let mut c = Command::new("node");
        c.arg(crate::idp::oidc_dir().join("smtp.mjs"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("node");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("port=")
            .unwrap_or_else(|| panic!("smtp said {line:?}"))
            .parse()
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Self { child, port, got }
    }

    /// Wait until `n` messages to `to` arrived; returns them.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<Value> {
        for _ in 0..1000 {
            let v: Vec<Value> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m["to"][0] == to)
                .cloned()
                .collect();
            if v.len() >= n {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {n} message(s) to {to}: {:?}", self.got.lock().unwrap());
    }

    pub fn count(&self, to: &str) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["to"][0] == to)
            .count()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token in a mailed link to `path` (`/auth/verify-email`, …).
fn token_in(mail: &Value, path: &str) -> String {
    let text = mail["text"].as_str().unwrap();
    let at = text
        .find(&format!("{path}?token="))
        .unwrap_or_else(|| panic!("{text}"));
    let rest = &text[at + path.len() + 7..];
    rest.split_whitespace().next().unwrap().to_owned()
}

pub fn with_smtp(c: &mut posta::config::Config, url: &str, port: u16) {
    c.web_url = Some(url.to_owned());
    c.smtp_host = Some("127.0.0.1".into());
    c.smtp_port = port;
    c.smtp_tls = "none".into();
    c.smtp_from = Some("Posta <posta@example.com>".into());
}

/// Registration mails a verification link that opens a page (no token is used by the GET of
/// the page); confirming it verifies the address once. Forgot-password mails a reset link to
/// an existing account only, with the same answer for an unknown address; the reset sets the
/// password, ends every session, proves the address, and a notice follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_and_reset_through_the_mailed_links() {
    let smtp = Smtp::start(&[]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| with_smtp(c, url, port)).await;
    let (_, v) = s.get("/api/v1/auth/registration-status", None).await;
    assert_eq!(v["data"]["password_reset_enabled"], true);
    let (t, _) = s.register("Vera", "vera@example.com").await;
    let mail = &smtp.wait_for("vera@example.com", 1).await[0];
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .contains("confirm your email")
    );
    assert!(
        mail["html"]
            .as_str()
            .unwrap()
            .contains("/auth/verify-email?token=")
    );
    assert!(
        !mail["html"].as_str().unwrap().contains("<img"),
        "no remote images"
    );
    let token = token_in(mail, "/auth/verify-email");
    // The link opens the dashboard's page, which asks before it consumes.
    let page = s
        .client
        .get(format!("{}/auth/verify-email?token={token}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let (_, me) = s.get("/api/v1/users/me", Some(&t)).await;
    assert_eq!(
        me["data"]["email_verified"], false,
        "opening the page verifies nothing"
    );
    let (st, v) = s
        .post("/api/v1/auth/verify-email", None, json!({"token": token}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, me) = s.get("/api/v1/users/me", Some(&t)).await;
    assert_eq!(me["data"]["email_verified"], true);
    let (st, _) = s
        .post("/api/v1/auth/verify-email", None, json!({"token": token}))
        .await;
    assert_eq!(st, 400, "single use");

    // Forgot-password: the same answer for a known and an unknown address.
    let (st1, known) = s
        .post(
            "/api/v1/auth/forgot-password",
            None,
            json!({"email": "vera@example.com"}),
        )
        .await;
    let (st2, unknown) = s
        .post(
            "/api/v1/auth/forgot-password",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!((st1, &known), (st2, &unknown));
    let mail = smtp.wait_for("vera@example.com", 2).await[1].clone();
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .contains("reset your password")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count("nobody@example.com"), 0);
    // At most one link per account per five minutes.
    s.post(
        "/api/v1/auth/forgot-password",
        None,
        json!({"email": "vera@example.com"}),
    )
    .await;
    let token = token_in(&mail, "/auth/reset-password");
    let (st, _) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": token, "new_password": "short"}),
        )
        .await;
    assert_eq!(st, 400, "the password rules of everywhere");
    let (st, v) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": token, "new_password": "lantern-quartz-71-river"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        s.get("/api/v1/users/me", Some(&t)).await.0,
        401,
        "every session ended"
    );
    s.login("vera@example.com", "lantern-quartz-71-river").await;
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "vera@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 401, "the old password is gone");
    let (st, _) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": token, "new_password": "another-long-pass-42"}),
        )
        .await;
    assert_eq!(st, 400, "single use");
    let notice = smtp.wait_for("vera@example.com", 3).await[2].clone();
    assert!(
        notice["subject"]
            .as_str()
            .unwrap()
            .contains("password was changed"),
        "{notice}"
    );
    assert_eq!(
        smtp.count("vera@example.com"),
        3,
        "no second reset link within five minutes"
    );
}

/// With verification required, an unverified account reaches only its profile, the resend
/// and logout, and its API keys do not verify; the resend is capped per address per hour.
/// Without mail the setting cannot be turned on (tested in admin.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_accounts_wait_when_verification_is_required() {
    let smtp = Smtp::start(&[]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| with_smtp(c, url, port)).await;
    let admin = s.admin().await;
    let (t, _) = s.register("Una", "una@example.com").await;
    let (key, _) = s.api_key(&t, json!({"name": "k"})).await;
    let (st, v) = s
        .put(
            "/api/v1/admin/settings",
            Some(&admin),
            json!({"settings": [{"key": "require_email_verification", "value": "true"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, me) = s.get("/api/v1/users/me", Some(&t)).await;
    assert_eq!(me["data"]["email_verification_required"], true);
    let (st, v) = s.get("/api/v1/users/me/api-keys", Some(&t)).await;
    assert_eq!(st, 403, "{v}");
    let r = s
        .client
        .get(format!("{}/api/v1/auth/verify", s.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the unverified account's key does not verify"
    );
    // Resend: capped at five messages per address per hour (one went at registration).
    for _ in 0..8 {
        let (st, _) = s
            .post("/api/v1/users/me/verify-email/resend", Some(&t), json!({}))
            .await;
        assert_eq!(st, 200);
    }
    let mails = smtp.wait_for("una@example.com", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count("una@example.com"), 5, "capped");
    // Only the newest link works.
    let first = token_in(&mails[0], "/auth/verify-email");
    let (st, _) = s
        .post("/api/v1/auth/verify-email", None, json!({"token": first}))
        .await;
    assert_eq!(st, 400, "superseded");
    let last = token_in(mails.last().unwrap(), "/auth/verify-email");
    let (st, _) = s
        .post("/api/v1/auth/verify-email", None, json!({"token": last}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.get("/api/v1/users/me/api-keys", Some(&t)).await.0, 200);
    let r = s
        .client
        .get(format!("{}/api/v1/auth/verify", s.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A relay that refuses for good (550): the message is given up at once and audited; one that
/// answers "try later" (451) keeps it queued for a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_mail_is_given_up_and_audited() {
    let smtp = Smtp::start(&[("REJECT", "550".into())]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| with_smtp(c, url, port)).await;
    let admin = s.admin().await;
    s.register("Rex", "rex@example.com").await;
    let mut failed = Value::Null;
    for _ in 0..300 {
        let (_, v) = s
            .get("/api/v1/admin/events?type=mail.failed", Some(&admin))
            .await;
        if v["pageable"]["total_elements"] == 1 {
            failed = v["data"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(failed["metadata"]["email"], "rex@example.com", "{failed}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("verify_email after 1 attempt")
    );
}

/// STARTTLS to a relay whose certificate comes from a private CA (`smtp_ca`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let ca_pem = write("ca.pem", ca.pem());
    let cert = write("cert.pem", leaf.pem());
    let key = write("key.pem", leaf_key.serialize_pem());
    let smtp = Smtp::start(&[
        ("TLS_CERT", cert.display().to_string()),
        ("TLS_KEY", key.display().to_string()),
    ]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| {
        with_smtp(c, url, port);
        c.smtp_host = Some("localhost".into());
        c.smtp_tls = "starttls".into();
        c.smtp_ca = Some(ca_pem.clone());
    })
    .await;
    s.register("Tia", "tia@example.com").await;
    let m = &smtp.wait_for("tia@example.com", 1).await[0];
    assert_eq!(m["secure"], true, "delivered over STARTTLS");

    // `posta admin send-test-mail` proves the same settings from the host; without the CA
    // the relay's certificate is refused and the command says where it tried.
    let cmd = |with_ca: bool| {
        let mut c = posta_cmd(dir.path());
        c.env("POSTA_WEB_URL", "http://127.0.0.1:1")
            .env("POSTA_SMTP_HOST", "localhost")
            .env("POSTA_SMTP_PORT", port.to_string())
            .env("POSTA_SMTP_FROM", "posta@example.com")
            .args(["admin", "send-test-mail", "--to", "ops@example.com"]);
        if with_ca {
            c.env("POSTA_SMTP_CA", &ca_pem);
        }
        c.output().unwrap()
    };
    let out = cmd(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    smtp.wait_for("ops@example.com", 1).await;
    let out = cmd(false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("localhost:{port}")), "{err}");
    assert!(
        !Path::new(&dir.path().join("posta.redb")).exists(),
        "send-test-mail needs no store"
    );
}

/// The outbox is durable: with the relay down, three messages are queued (their requests
/// answered at once), the server is killed with SIGKILL, and after both come back each of the
/// three arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_mail_survives_kill_9() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut c = posta_cmd(dir.path());
        c.env("POSTA_SMTP_HOST", "127.0.0.1")
            .env("POSTA_SMTP_PORT", port.to_string())
            .env("POSTA_SMTP_TLS", "none")
            .env("POSTA_SMTP_FROM", "posta@example.com")
            .env("POSTA_WEB_URL", "http://127.0.0.1:9");
        c
    };
    let mut b = Binary::spawn(cmd());
    b.ready().await;
    let c = reqwest::Client::new();
    for i in 0..3 {
        let started = std::time::Instant::now();
        let v = post_json(
            &c,
            &format!("{}/api/v1/auth/register", b.url()),
            None,
            json!({"name": format!("Kay {i}"), "email": format!("kay{i}@example.com"), "password": PASSWORD}),
        )
        .await;
        assert_eq!(v["success"], true, "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the answer does not wait for SMTP"
        );
    }
    b.signal(9);
    b.wait_exit(10).await;

    let smtp = Smtp::start(&[("PORT", port.to_string())]);
    let b = Binary::spawn(cmd());
    b.ready().await;
    for i in 0..3 {
        smtp.wait_for(&format!("kay{i}@example.com"), 1).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        assert_eq!(
            smtp.count(&format!("kay{i}@example.com")),
            1,
            "delivered once"
        );
    }
    drop(b);
}

/// `forgot-password` answers a known and an unknown address alike: same status and body, and
/// median times within 5 ms of each other over 50 alternating requests (the lookup happens
/// after the answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_does_not_tell_who_has_an_account() {
    let smtp = Smtp::start(&[]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| with_smtp(c, url, port)).await;
    s.register("Kim", "kim@example.com").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let mut bodies = std::collections::HashSet::new();
    for i in 0..100 {
        let email = if i % 2 == 0 {
            "kim@example.com".to_owned()
        } else {
            format!("ghost{i}@example.com")
        };
        let t = std::time::Instant::now();
        let r = s
            .client
            .post(format!("{}/api/v1/auth/forgot-password", s.url))
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        let body = r.text().await.unwrap();
        let took = t.elapsed();
        bodies.insert((st, body));
        if i % 2 == 0 {
            known.push(took)
        } else {
            unknown.push(took)
        }
    }
    assert_eq!(bodies.len(), 1, "one status and body for all: {bodies:?}");
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (k, u) = (median(&mut known), median(&mut unknown));
    let diff = k.abs_diff(u);
    assert!(diff < Duration::from_millis(5), "known {k:?} unknown {u:?}");
    // And only the known address got mail (one link: at most one per five minutes).
    smtp.wait_for("kim@example.com", 2).await;
    assert!(
        smtp.got
            .lock()
            .unwrap()
            .iter()
            .all(|m| m["to"][0] != "ghost1@example.com")
    );
}

/// A sign-in from a browser the account has not used before mails the owner (time, address,
/// browser), at most once per ten minutes, unless turned off; the first sign-in after
/// registration and a known browser send nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_device_sign_in_alert() {
    let smtp = Smtp::start(&[]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| with_smtp(c, url, port)).await;
    let (t, _) = s.register("Nia", "nia@example.com").await;
    smtp.wait_for("nia@example.com", 1).await; // the verification link
    // A browser keeping its cookies: its first sign-in is the account's first; nothing.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
        .build()
        .unwrap();
    let login = |c: reqwest::Client| {
        let url = format!("{}/api/v1/auth/login", s.url);
        async move {
            let r = c
                .post(url)
                .json(&json!({"email": "nia@example.com", "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    login(browser.clone()).await;
    // The same browser again: known.
    login(browser.clone()).await;
    // Another browser: alerted.
    let other = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (Windows NT 10.0) Chrome/126.0")
        .build()
        .unwrap();
    login(other.clone()).await;
    let alert = smtp.wait_for("nia@example.com", 2).await[1].clone();
    let text = alert["text"].as_str().unwrap();
    assert!(
        alert["subject"].as_str().unwrap().contains("new sign-in"),
        "{alert}"
    );
    assert!(
        text.contains("127.0.0.1") && text.contains("Chrome/126.0"),
        "{text}"
    );
    // Within ten minutes, no second alert.
    login(other.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count("nia@example.com"), 2);
    // Turned off by the owner: none after the ten minutes either.
    let (st, v) = s
        .put("/api/v1/users/me", Some(&t), json!({"login_alerts": false}))
        .await;
    assert_eq!(st, 200, "{v}");
    s.clock.advance(11 * 60);
    login(other.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.count("nia@example.com"), 2);
    // Back on: alerted again.
    let t = s.login("nia@example.com", PASSWORD).await;
    s.put("/api/v1/users/me", Some(&t), json!({"login_alerts": true}))
        .await;
    s.clock.advance(11 * 60);
    login(other).await;
    smtp.wait_for("nia@example.com", 3).await;
}

/// Invitations: mailed (7 days, single use), shown to the sign-up page, used to register
/// with the invited address and role even while registration is closed, verified; listed and
/// revocable; without mail the answer carries the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_let_one_person_in() {
    let smtp = Smtp::start(&[]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| {
        with_smtp(c, url, port);
        c.registration_enabled = Some(false);
    })
    .await;
    let admin = s.admin().await;
    let (st, v) = s
        .post(
            "/api/v1/admin/invitations",
            Some(&admin),
            json!({"email": "Ina@Example.com", "role": "admin", "name": "Ina"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["data"]["email"], "ina@example.com");
    assert!(v["data"].get("link").is_none(), "mailed, not answered");
    let mail = smtp.wait_for("ina@example.com", 1).await[0].clone();
    let token = token_in(&mail, "/auth/invitation");
    let (_, v) = s.get("/api/v1/admin/invitations", Some(&admin)).await;
    assert_eq!(v["pageable"]["total_elements"], 1);

    let (st, v) = s
        .get(&format!("/api/v1/auth/invitations/{token}"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["email"], "ina@example.com");
    assert_eq!(v["data"]["role"], "admin");
    // Registration is closed, but not to the invited.
    let (st, _) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "X", "email": "x@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .post("/api/v1/auth/register", None, json!({"name": "Ina", "email": "other@example.com", "password": PASSWORD, "invite_token": token}))
        .await;
    assert_eq!(st, 400, "not another address");
    let (st, v) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Ina", "password": PASSWORD, "invite_token": token}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["data"]["user"]["email"], "ina@example.com");
    assert_eq!(v["data"]["user"]["role"], "admin");
    assert_eq!(v["data"]["user"]["email_verified"], true);
    let (st, _) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Again", "password": PASSWORD, "invite_token": token}),
        )
        .await;
    assert_eq!(st, 400, "single use");
    let (_, v) = s.get("/api/v1/admin/invitations", Some(&admin)).await;
    assert_eq!(v["pageable"]["total_elements"], 0);
    // Inviting an existing account is a conflict; a revoked invitation no longer works.
    let (st, _) = s
        .post(
            "/api/v1/admin/invitations",
            Some(&admin),
            json!({"email": "ina@example.com"}),
        )
        .await;
    assert_eq!(st, 409);
    let (_, v) = s
        .post(
            "/api/v1/admin/invitations",
            Some(&admin),
            json!({"email": "rob@example.com"}),
        )
        .await;
    let id = v["data"]["id"].as_str().unwrap().to_owned();
    let rob = token_in(
        &smtp.wait_for("rob@example.com", 1).await[0],
        "/auth/invitation",
    );
    let (st, _) = s
        .delete(&format!("/api/v1/admin/invitations/{id}"), Some(&admin))
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .get(&format!("/api/v1/auth/invitations/{rob}"), None)
        .await;
    assert_eq!(st, 400);
    // Expired after seven days.
    let (_, _) = s
        .post(
            "/api/v1/admin/invitations",
            Some(&admin),
            json!({"email": "eve@example.com"}),
        )
        .await;
    let eve = token_in(
        &smtp.wait_for("eve@example.com", 1).await[0],
        "/auth/invitation",
    );
    s.clock.advance(7 * 86_400 + 1);
    let (st, _) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Eve", "password": PASSWORD, "invite_token": eve}),
        )
        .await;
    assert_eq!(st, 400, "expired");
}

/// Without mail, the invitation's answer carries the link for the admin to hand over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_link_without_mail() {
    let s = TestServer::start_with_url(|c, url| c.web_url = Some(url.to_owned())).await;
    let admin = s.admin().await;
    let (st, v) = s
        .post(
            "/api/v1/admin/invitations",
            Some(&admin),
            json!({"email": "noa@example.com"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let link = v["data"]["link"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}/auth/invitation?token=", s.url)),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap();
    let (st, v) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Noa", "password": PASSWORD, "invite_token": token}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["data"]["user"]["role"], "user");
}

/// Email change: a confirmation link to the new address (a recent proof needed); the change
/// happens when it is followed; the old address gets a notice. A taken address is answered
/// like a free one, and its link then fails cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_change_is_confirmed_from_the_new_address() {
    let smtp = Smtp::start(&[]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| with_smtp(c, url, port)).await;
    let (t, _) = s.register("Ema", "ema@example.com").await;
    let (_, _) = s.register("Tak", "taken@example.com").await;
    s.clock.advance(11 * 60); // past the sign-in's proof: the password is asked for
    let (st, v) = s
        .put(
            "/api/v1/users/me/email",
            Some(&t),
            json!({"email": "new@example.com"}),
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["error"]["code"].clone()),
        (403, json!("REAUTH_REQUIRED"))
    );
    let (st, taken) = s
        .put(
            "/api/v1/users/me/email",
            Some(&t),
            json!({"email": "taken@example.com", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 200, "{taken}");
    let taken_link = smtp
        .wait_for("taken@example.com", 2)
        .await
        .into_iter()
        .find(|m| m["subject"].as_str().unwrap().contains("new email"))
        .unwrap();
    let (st, v) = s
        .post(
            "/api/v1/auth/confirm-email",
            None,
            json!({"token": token_in(&taken_link, "/auth/confirm-email")}),
        )
        .await;
    assert_eq!(st, 409, "fails cleanly: {v}");
    let (st2, free) = s
        .put(
            "/api/v1/users/me/email",
            Some(&t),
            json!({"email": "New@Example.com", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (200, &taken),
        (st2.as_u16(), &free),
        "a taken address is answered like a free one"
    );
    // Nothing changed yet.
    let (_, me) = s.get("/api/v1/users/me", Some(&t)).await;
    assert_eq!(me["data"]["email"], "ema@example.com");
    let link = smtp.wait_for("new@example.com", 1).await[0].clone();
    let token = token_in(&link, "/auth/confirm-email");
    let (st, v) = s
        .post("/api/v1/auth/confirm-email", None, json!({"token": token}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, me) = s.get("/api/v1/users/me", Some(&t)).await;
    assert_eq!(me["data"]["email"], "new@example.com");
    assert_eq!(me["data"]["email_verified"], true);
    s.login("new@example.com", PASSWORD).await;
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ema@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 401, "the old address no longer signs in");
    let notice = smtp
        .wait_for("ema@example.com", 2)
        .await
        .into_iter()
        .find(|m| m["subject"].as_str().unwrap().contains("was changed"))
        .unwrap();
    assert!(notice["text"].as_str().unwrap().contains("new@example.com"));
    let (st, _) = s
        .post("/api/v1/auth/confirm-email", None, json!({"token": token}))
        .await;
    assert_eq!(st, 400, "single use");
}

/// Self-registered accounts never verified within `unverified_account_days` are deleted by
/// the background job; verified ones and accounts an admin created stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_never_verified_are_removed() {
    let smtp = Smtp::start(&[]);
    let port = smtp.port;
    // An account from before a relay was configured was never sent a link: it stays.
    let s = TestServer::start().await;
    s.register("Old", "old@example.com").await;
    let (dir, clock) = s.stop().await;
    clock.advance(3_600);
    let mut cfg = test_config(dir.path());
    with_smtp(&mut cfg, "http://127.0.0.1:9", port);
    let s = TestServer::start_in(dir, cfg, clock).await;
    let admin = s.admin().await;
    s.register("Una", "una@example.com").await;
    s.register("Val", "val@example.com").await;
    let token = token_in(
        &smtp.wait_for("val@example.com", 1).await[0],
        "/auth/verify-email",
    );
    s.post("/api/v1/auth/verify-email", None, json!({"token": token}))
        .await;
    s.post(
        "/api/v1/admin/users",
        Some(&admin),
        json!({"name": "Ada", "email": "ada@example.com", "password": PASSWORD, "email_verified": false}),
    )
    .await;
    let (dir, clock) = s.stop().await;
    clock.advance(8 * 86_400);
    let mut cfg = test_config(dir.path());
    with_smtp(&mut cfg, "http://127.0.0.1:9", port);
    let s = TestServer::start_in(dir, cfg, clock).await;
    let admin = s.admin().await;
    let mut left = Vec::new();
    for _ in 0..200 {
        let (_, v) = s.get("/api/v1/admin/users?size=100", Some(&admin)).await;
        left = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect();
        if !left.contains(&"una@example.com".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!left.contains(&"una@example.com".to_owned()), "{left:?}");
    assert!(
        left.contains(&"val@example.com".to_owned())
            && left.contains(&"ada@example.com".to_owned())
            && left.contains(&"old@example.com".to_owned()),
        "{left:?}"
    );
}

/// One client asking resets for many accounts: the first 20 an hour are mailed, the rest are
/// answered alike and send nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_spray_reset_mail() {
    let smtp = Smtp::start(&[]);
    let port = smtp.port;
    let s = TestServer::start_with_url(|c, url| with_smtp(c, url, port)).await;
    let admin = s.admin().await;
    for i in 0..24 {
        let (st, v) = s
            .post(
                "/api/v1/admin/users",
                Some(&admin),
                json!({"name": format!("U{i}"), "email": format!("u{i}@example.com"),
                       "password": PASSWORD, "email_verified": true}),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
    for i in 0..24 {
        let (st, _) = s
            .post(
                "/api/v1/auth/forgot-password",
                None,
                json!({"email": format!("u{i}@example.com")}),
            )
            .await;
        assert_eq!(st, 200, "answered alike");
    }
    let mailed = || -> usize {
        (0..24)
            .map(|i| smtp.count(&format!("u{i}@example.com")))
            .sum()
    };
    for _ in 0..500 {
        if mailed() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time for any message past the cap to arrive too, were one queued.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mailed(), 20, "the per-source cap");
    assert_eq!(smtp.count("u23@example.com"), 0);
}
