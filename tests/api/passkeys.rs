//! Passkeys over the API without a browser: what is off without a secure origin, that an
//! unauthenticated start stores nothing and is bounded per address, and that bad input is a
//! clear error that changes nothing. The ceremonies themselves: `auth::passkey`'s unit tests
//! and `tests/browser/passkeys.mjs` (a virtual authenticator in Chromium).

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_are_off_without_a_secure_web_url() {
    let s = TestServer::start_with(|c| c.web_url = Some("http://posta.example.com".into())).await;
    let (_, v) = s.get("/api/v1/auth/registration-status", None).await;
    assert_eq!(v["data"]["passkeys_enabled"], false);
    let (st, v) = s.post("/api/v1/auth/passkey/start", None, json!({})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("https://") && m.contains("web_url"), "{m}");
    let (t, _) = s.register("Ana", "ana@example.com").await;
    let (st, _) = s
        .post(
            "/api/v1/users/me/passkeys/register/start",
            Some(&t),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

/// Anyone may start a passkey sign-in: the answer is a sealed ceremony, nothing is written,
/// and one address may start only so many (20 × `login_rate_limit_count` per window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_starts_store_nothing_and_are_bounded_per_address() {
    let s = TestServer::start_with(|c| c.web_url = Some("https://posta.example.com".into())).await;
    let admin = s.admin().await;
    let (st, v) = s
        .put(
            "/api/v1/admin/settings",
            Some(&admin),
            json!({"settings": [{"key": "login_rate_limit_count", "value": "1", "type": "int"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let events = |v: &serde_json::Value| v["pageable"]["total_elements"].as_u64().unwrap();
    let (_, before) = s.get("/api/v1/admin/events?size=1", Some(&admin)).await;
    for i in 0..20 {
        let (st, v) = s.post("/api/v1/auth/passkey/start", None, json!({})).await;
        assert_eq!(st, StatusCode::OK, "start {i}: {v}");
        assert_eq!(v["data"]["options"]["rpId"], "posta.example.com");
        assert_eq!(v["data"]["options"]["userVerification"], "required");
        assert!(v["data"]["ceremony"].as_str().unwrap().len() > 40);
    }
    let (st, v) = s.post("/api/v1/auth/passkey/start", None, json!({})).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let (_, after) = s.get("/api/v1/admin/events?size=1", Some(&admin)).await;
    assert_eq!(events(&before), events(&after), "no event written");
    s.clock.advance(15 * 60 + 1);
    let (st, _) = s.post("/api/v1/auth/passkey/start", None, json!({})).await;
    assert_eq!(st, StatusCode::OK, "the window ends");
}

/// A forged or garbled finish is a clear JSON error and signs nobody in; a ceremony is spent
/// by its first finish, whatever came of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_passkey_finishes_are_clear_errors() {
    let s = TestServer::start_with(|c| c.web_url = Some("https://posta.example.com".into())).await;
    let (st, v) = s
        .post(
            "/api/v1/auth/passkey/finish",
            None,
            json!({"ceremony": "AAAA", "credential": {}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("start again")
    );
    let (_, started) = s.post("/api/v1/auth/passkey/start", None, json!({})).await;
    let ceremony = started["data"]["ceremony"].as_str().unwrap();
    let (st, v) = s
        .post(
            "/api/v1/auth/passkey/finish",
            None,
            json!({"ceremony": ceremony, "credential": {"id": "x"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "credential");
    // The ceremony was spent by that attempt: it cannot be tried again.
    let (st, v) = s
        .post(
            "/api/v1/auth/passkey/finish",
            None,
            json!({"ceremony": ceremony, "credential": {"id": "x"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{v}"
    );
    // Unknown fields are refused.
    let (st, _) = s
        .post(
            "/api/v1/auth/passkey/finish",
            None,
            json!({"ceremony": ceremony, "credential": {}, "user_id": "admin"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // The second-factor start needs a live pending sign-in of an account with a passkey.
    let (st, _) = s
        .post(
            "/api/v1/auth/login/passkey/start",
            None,
            json!({"pending_token": "posta_nothing"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
