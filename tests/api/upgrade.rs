//! A store written by an earlier release opens in this one and keeps everything.
//!
//! `tests/fixtures/ad401d6/data` was written by the release at ad401d6 (`make.py` there says
//! how): the first admin, Grace with TOTP and recovery codes, an API key and a revoked one,
//! both users' sessions, an identity provider with a sealed secret, Grace's link to it and
//! changed settings. `facts.json` holds what the maker saw (tokens, the TOTP secret, codes).

use std::path::Path;

use posta::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, err_code, test_config, totp};

/// When the fixture was written (the tokens' `iat`): its sessions are still valid a minute on.
const WRITTEN_AT: i64 = 1_796_423_431;

fn fixture_copy() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ad401d6/data");
    let dir = tempfile::tempdir().unwrap();
    for f in ["posta.redb", "jwt.key", "encryption.key"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn facts() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ad401d6/facts.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_ad401d6_opens_and_keeps_everything() {
    let f = facts();
    let dir = fixture_copy();
    let mut cfg = test_config(dir.path());
    // The release's own key files, not the test secrets: TOTP secrets and tokens need them.
    cfg.jwt_secret = None;
    cfg.encryption_key = None;
    cfg.admin_email = "admin@fixture.test".into();
    cfg.admin_password = None;
    let s = TestServer::start_in(dir, cfg, ManualClock::new(WRITTEN_AT + 60)).await;
    let admin = f["admin_token"].as_str().unwrap();
    let grace = f["grace_token"].as_str().unwrap();

    // Sessions written then still authenticate; roles and links are intact.
    let (st, me) = s.get("/api/v1/users/me", Some(admin)).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["data"]["role"], "admin");
    let (st, me) = s.get("/api/v1/users/me", Some(grace)).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["data"]["email"], "grace@fixture.test");
    assert_eq!(me["data"]["name"], "Grace");
    assert_eq!(me["data"]["two_factor_enabled"], true);
    assert_eq!(
        me["data"]["auth_methods"],
        json!(["password", "totp", "oauth:fixture"])
    );
    let (_, sessions) = s.get("/api/v1/users/me/sessions", Some(grace)).await;
    // Registration signed Grace in, then the maker signed in again: two sessions.
    let sessions = sessions["data"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        sessions
            .iter()
            .all(|x| x["user_agent"] == "fixture-maker/1")
    );

    // The API key authenticates with its scope; the revoked one does not.
    let key = f["api_key"].as_str().unwrap();
    let (st, v) = s.get("/api/v1/auth/verify?scope=send", Some(key)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["email"], "grace@fixture.test");
    let (_, keys) = s.get("/api/v1/users/me/api-keys", Some(grace)).await;
    let revoked = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == f["revoked_key_id"])
        .unwrap()
        .clone();
    assert_eq!(revoked["revoked"], true, "{revoked}");

    // The sealed TOTP secret opens with the old key; a recovery code works once.
    let login = |code: Option<String>| {
        let mut body = json!({"email": "grace@fixture.test", "password": "Amber-Cobalt-Meadow-38"});
        if let Some(c) = code {
            body["two_factor_code"] = json!(c);
        }
        s.post("/api/v1/auth/login", None, body)
    };
    let (st, v) = login(None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(err_code(&v), "TWO_FACTOR_REQUIRED");
    assert_eq!(v["data"]["requires_2fa"], true, "{v}");
    let secret = f["totp_secret"].as_str().unwrap();
    let (st, v) = login(Some(totp(secret, WRITTEN_AT + 60))).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["data"]["token"].is_string(), "{v}");
    let code = f["recovery_codes"][3].as_str().unwrap().to_owned();
    let (st, _) = login(Some(code.clone())).await;
    assert_eq!(st, 200);
    let (st, v) = login(Some(code)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(
        err_code(&v),
        "UNAUTHORIZED",
        "a used recovery code is refused"
    );

    // The provider and the settings an admin changed.
    let (_, p) = s.get("/api/v1/admin/oauth/providers", Some(admin)).await;
    let p = &p["data"][0];
    assert_eq!(p["slug"], "fixture");
    assert_eq!(p["id"], f["provider_id"]);
    assert_eq!(p["has_client_secret"], true);
    assert_eq!(p["allowed_domains"], json!(["fixture.test"]));
    let (_, set) = s.get("/api/v1/admin/settings", Some(admin)).await;
    let value = |k: &str| {
        set["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == k)
            .map(|e| e["value"].clone())
            .unwrap()
    };
    assert_eq!(value("login_rate_limit_count"), json!("7"));
    assert_eq!(value("login_rate_limit_window_minutes"), json!("11"));
    assert_eq!(value("allowed_signup_domains"), json!("fixture.test"));

    // The audit log the old release wrote reads back, older entries included.
    let (_, ev) = s
        .get("/api/v1/admin/events?type=api_key.revoked", Some(admin))
        .await;
    assert_eq!(ev["data"].as_array().unwrap().len(), 1, "{ev}");
}
