//! TOTP enrolment, login with codes, replay, recovery codes, disable, reset, encryption at rest.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

pub(crate) async fn enrol(s: &TestServer, token: &str) -> (String, Vec<String>) {
    let (st, v) = s
        .req(
            Method::POST,
            "/api/v1/users/me/2fa/setup",
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let secret = v["data"]["secret"].as_str().unwrap().to_owned();
    let code = totp(&secret, s.clock_now());
    let (st, v) = s
        .post(
            "/api/v1/users/me/2fa/verify",
            Some(token),
            json!({"code": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let codes = v["data"]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

pub(crate) trait Now {
    fn clock_now(&self) -> i64;
}
impl Now for TestServer {
    fn clock_now(&self) -> i64 {
        use posta::clock::Clock;
        self.clock.now()
    }
}

async fn login2(s: &TestServer, email: &str, code: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let Some(c) = code {
        body["two_factor_code"] = json!(c);
    }
    s.post("/api/v1/auth/login", None, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_login_replay_recovery_disable() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Tess", "tess@example.com").await;
    let (st, v) = s
        .req(Method::POST, "/api/v1/users/me/2fa/setup", Some(&t), None)
        .await;
    assert_eq!(st, 200);
    let secret = v["data"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160-bit base32");
    let url = v["data"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/Posta:tess%40example.com?secret="),
        "{url}"
    );
    assert!(url.contains("issuer=Posta"));
    assert!(
        v["data"]["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    // Setup alone does not enable 2FA.
    let (st, _) = login2(&s, "tess@example.com", None).await;
    assert_eq!(st, 200);
    // A wrong code is refused; the right one enables.
    let (st, _) = s
        .post(
            "/api/v1/users/me/2fa/verify",
            Some(&t),
            json!({"code": "000000"}),
        )
        .await;
    assert_eq!(st, 401);
    let code = totp(&secret, s.clock_now());
    let (st, v) = s
        .post(
            "/api/v1/users/me/2fa/verify",
            Some(&t),
            json!({"code": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let recovery: Vec<String> = v["data"]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert_eq!(
        s.get("/api/v1/users/me", Some(&t)).await.1["data"]["two_factor_enabled"],
        true
    );

    // Login now asks for the code, but only after the password was right.
    let (st, v) = login2(&s, "tess@example.com", None).await;
    assert_eq!(st, 401);
    assert_eq!(err_code(&v), "TWO_FACTOR_REQUIRED");
    assert_eq!(v["data"]["requires_2fa"], true);
    let (st, v) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "tess@example.com", "password": "wrong-pass-12345"}),
        )
        .await;
    assert_eq!(st, 401);
    assert_eq!(v["data"], Value::Null, "no 2FA hint without the password");

    // The enrolment code was used in this window: replay refused. Next window's code works once.
    let (st, _) = login2(&s, "tess@example.com", Some(&code)).await;
    assert_eq!(st, 401, "replay of the enrolment code");
    s.clock.advance(30);
    let code2 = totp(&secret, s.clock_now());
    let (st, v) = login2(&s, "tess@example.com", Some(&code2)).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = login2(&s, "tess@example.com", Some(&code2)).await;
    assert_eq!(st, 401, "same code twice");
    // Three steps later: a never-used code from two steps ago is outside the drift window.
    s.clock.advance(90);
    let old = totp(&secret, s.clock_now() - 60);
    let (st, _) = login2(&s, "tess@example.com", Some(&old)).await;
    assert_eq!(st, 401, "two steps ago");
    // One step of drift is accepted, once.
    let late = totp(&secret, s.clock_now() - 30);
    let (st, _) = login2(&s, "tess@example.com", Some(&late)).await;
    assert_eq!(st, 200, "one step late");
    let (st, _) = login2(&s, "tess@example.com", Some(&late)).await;
    assert_eq!(st, 401, "replay of the late code");

    // A recovery code works once.
    let (st, _) = login2(&s, "tess@example.com", Some(&recovery[0])).await;
    assert_eq!(st, 200);
    let (st, _) = login2(&s, "tess@example.com", Some(&recovery[0])).await;
    assert_eq!(st, 401);

    // Disable with a recovery code.
    let (st, _) = s
        .post(
            "/api/v1/users/me/2fa/disable",
            Some(&t),
            json!({"code": "123456"}),
        )
        .await;
    assert_eq!(st, 401);
    let (st, _) = s
        .post(
            "/api/v1/users/me/2fa/disable",
            Some(&t),
            json!({"code": recovery[1].to_uppercase()}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = login2(&s, "tess@example.com", None).await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reset_and_secret_encrypted_at_rest() {
    let s = TestServer::start().await;
    let (t, id) = s.register("Ray", "ray@example.com").await;
    let (secret, _) = enrol(&s, &t).await;
    let admin = s.admin().await;
    let (st, _) = s
        .delete(&format!("/api/v1/admin/users/{id}/2fa"), Some(&t))
        .await;
    assert_eq!(st, 403, "users cannot reset");
    let (st, v) = s
        .delete(&format!("/api/v1/admin/users/{id}/2fa"), Some(&admin))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = login2(&s, "ray@example.com", None).await;
    assert_eq!(st, 200);
    // Re-enrol, then look for the secret in the raw file.
    let (secret2, codes) = enrol(&s, &t).await;
    let (dir, _) = s.stop().await;
    let raw = std::fs::read(db_path(dir.path())).unwrap();
    let raw_text = String::from_utf8_lossy(&raw).to_uppercase();
    for sec in [&secret, &secret2] {
        assert!(!raw_text.contains(sec.as_str()), "base32 secret in file");
        let bytes = base32(sec);
        assert!(
            !raw.windows(bytes.len()).any(|w| w == bytes.as_slice()),
            "raw secret in file"
        );
    }
    for c in codes {
        assert!(
            !raw_text.contains(&c.to_uppercase()),
            "recovery code in file"
        );
    }
    // The CLI reset for a lost device.
    let out = posta_cmd(dir.path())
        .env("POSTA_ENCRYPTION_KEY", "11".repeat(32))
        .args(["admin", "disable-2fa", "--email", "ray@example.com"])
        .output()
        .unwrap();
    assert_ok(&out);
}

fn base32(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut n, mut out) = (0u64, 0, Vec::new());
    for c in s.bytes() {
        bits = (bits << 5) | alphabet.iter().position(|a| *a == c).unwrap() as u64;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_required_setting_is_enforced() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (t, _) = s.register("Una", "una@example.com").await;
    let (key, _) = s.api_key(&t, json!({"name": "ci"})).await;
    let (st, _) = s
        .put(
            "/api/v1/admin/settings",
            Some(&admin),
            json!({"settings": [{"key": "two_factor_required", "value": true}]}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = login2(&s, "una@example.com", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["two_factor_setup_required"], true);
    let t = v["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/api/v1/users/me", Some(&t)).await.0, 200);
    let (st, v) = s.get("/api/v1/users/me/sessions", Some(&t)).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::FORBIDDEN, "TWO_FACTOR_SETUP_REQUIRED")
    );
    // API keys keep working (machine credentials).
    assert_eq!(s.get("/api/v1/auth/verify", Some(&key)).await.0, 200);
    enrol(&s, &t).await;
    assert_eq!(s.get("/api/v1/users/me/sessions", Some(&t)).await.0, 200);
    // The admin itself is restricted too until it enrols.
    assert_eq!(s.get("/api/v1/admin/users", Some(&admin)).await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cannot_brute_force_the_code_that_disables_2fa() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Uma", "uma@example.com").await;
    let (secret, _) = enrol(&s, &t).await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        // Six digits that are not the current code (nor the neighbouring steps').
        let near: Vec<String> = [-30, 0, 30]
            .iter()
            .map(|d| totp(&secret, s.clock_now() + d))
            .collect();
        let guess = (0..)
            .map(|n| format!("{:06}", (i * 7919 + n) % 1_000_000))
            .find(|g| !near.contains(g))
            .unwrap();
        let (st, _) = s
            .post(
                "/api/v1/users/me/2fa/disable",
                Some(&t),
                json!({"code": guess}),
            )
            .await;
        statuses.push(st.as_u16());
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    // The right code is refused too while the window lasts.
    s.clock.advance(30);
    let (st, _) = s
        .post(
            "/api/v1/users/me/2fa/disable",
            Some(&t),
            json!({"code": totp(&secret, s.clock_now())}),
        )
        .await;
    assert_eq!(st, 429);
    s.clock.advance(15 * 60);
    let admin = s.admin().await;
    let (_, v) = s
        .get(
            "/api/v1/admin/events?type=2fa.disable_failure&size=100",
            Some(&admin),
        )
        .await;
    assert_eq!(v["pageable"]["total_elements"], 10, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/users/me/2fa/disable",
            Some(&t),
            json!({"code": totp(&secret, s.clock_now())}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

/// The second step by its handle: the first step's `TWO_FACTOR_REQUIRED` carries a
/// `pending_token`; with a code it completes the sign-in once, within 5 minutes; a wrong code
/// is counted as any proof is; the old way (email and password again with the code) still
/// works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_step_completes_with_a_pending_token() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Pat", "pat@example.com").await;
    let (secret, _) = enrol(&s, &t).await;
    let first = || {
        s.post(
            "/api/v1/auth/login",
            None,
            json!({"email": "pat@example.com", "password": PASSWORD}),
        )
    };
    let (st, v) = first().await;
    assert_eq!(st, 401);
    assert_eq!(err_code(&v), "TWO_FACTOR_REQUIRED");
    assert_eq!(v["data"]["methods"], json!(["totp", "recovery_code"]));
    let token = v["data"]["pending_token"].as_str().unwrap().to_owned();
    let second = |token: &str, code: String| {
        s.post(
            "/api/v1/auth/login",
            None,
            json!({"pending_token": token, "two_factor_code": code}),
        )
    };
    let (st, v) = second(&token, "000000".into()).await;
    assert_eq!(st, 401, "{v}");
    s.clock.advance(30);
    let (st, v) = second(&token, totp(&secret, s.clock_now())).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["data"]["token"].is_string());
    s.clock.advance(30);
    let (st, _) = second(&token, totp(&secret, s.clock_now())).await;
    assert_eq!(st, 401, "single use");
    // Expired after 5 minutes.
    let (_, v) = first().await;
    let token = v["data"]["pending_token"].as_str().unwrap().to_owned();
    s.clock.advance(301);
    let (st, _) = second(&token, totp(&secret, s.clock_now())).await;
    assert_eq!(st, 401, "expired");
    // Bound to the first step's address: the same token from another client is refused.
    let s2 = TestServer::start_with(|c| c.trusted_proxies = "127.0.0.1/32".into()).await;
    let (t2, _) = s2.register("Pia", "pia@example.com").await;
    let (secret2, _) = enrol(&s2, &t2).await;
    let from = |ip: &'static str, body: Value| {
        s2.client
            .post(format!("{}/api/v1/auth/login", s2.url))
            .header("x-forwarded-for", ip)
            .json(&body)
            .send()
    };
    let v: Value = from(
        "203.0.113.7",
        json!({"email": "pia@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token2 = v["data"]["pending_token"].as_str().unwrap().to_owned();
    s2.clock.advance(30);
    let code2 = totp(&secret2, s2.clock_now());
    let elsewhere = from(
        "198.51.100.9",
        json!({"pending_token": token2, "two_factor_code": code2}),
    )
    .await
    .unwrap();
    assert_eq!(elsewhere.status(), 401, "another address");
    let here = from(
        "203.0.113.7",
        json!({"pending_token": token2, "two_factor_code": code2}),
    )
    .await
    .unwrap();
    assert_eq!(here.status(), 200, "the first step's address");
    // Neither a token nor credentials: a clear 400.
    let (st, v) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"two_factor_code": "123456"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    // Counted like any wrong code.
    let (_, v) = s
        .get(
            "/api/v1/admin/events?type=login.failure",
            Some(&s.admin().await),
        )
        .await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"] == "invalid two-factor code"),
        "{v}"
    );
}
