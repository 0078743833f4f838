//! API keys and forward auth.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// `GET /auth/verify` with `credential`, for its headers as well as its body.
async fn forward_auth(s: &TestServer, credential: &str) -> reqwest::Response {
    s.client
        .get(format!("{}/api/v1/auth/verify", s.url))
        .bearer_auth(credential)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_use_list_revoke_delete() {
    let s = TestServer::start().await;
    let (t, uid) = s.register("Kay", "kay@example.com").await;
    let (st, v) = s
        .post(
            "/api/v1/users/me/api-keys",
            Some(&t),
            json!({"name": "mailer", "expires_in_days": 0}),
        )
        .await;
    assert_eq!(st, 201);
    let d = &v["data"];
    let key = d["key"].as_str().unwrap().to_owned();
    let id = d["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("posta_") && key.len() >= 6 + 43);
    assert_eq!(d["prefix"], key[..10]);
    assert_eq!(d["scopes"], json!(["send"]));
    assert_eq!(d["expires_at"], Value::Null);
    assert!(d["message"].is_string());

    // Forward auth.
    let r = forward_auth(&s, &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-posta-user-id"], uid.as_str());
    assert_eq!(r.headers()["x-posta-user-email"], "kay@example.com");
    assert_eq!(r.headers()["x-posta-user-role"], "user");
    assert_eq!(r.headers()["x-posta-auth"], "api_key");
    assert_eq!(r.headers()["x-posta-scopes"], "send");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["data"],
        json!({"user_id": uid, "email": "kay@example.com", "role": "user", "auth": "api_key", "scopes": ["send"]})
    );
    assert_eq!(
        s.get("/api/v1/auth/verify?scope=send", Some(&key)).await.0,
        200
    );
    let (st, v) = s.get("/api/v1/auth/verify?scope=read", Some(&key)).await;
    assert_eq!((st, err_code(&v)), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    // A JWT works on verify too.
    let (st, v) = s.get("/api/v1/auth/verify", Some(&t)).await;
    assert_eq!((st, &v["data"]["auth"]), (StatusCode::OK, &json!("jwt")));
    assert_eq!(
        s.get("/api/v1/auth/verify", Some("posta_notakey")).await.0,
        401
    );
    assert_eq!(s.get("/api/v1/auth/verify", None).await.0, 401);
    // Bytes that are not text, around the cached key's own tail (the cache's slot): refused
    // with the envelope, not matched, not a crash.
    let raw = [b"Bearer posta_\xc3\xa9".as_slice(), &key.as_bytes()[8..]].concat();
    let r = s
        .client
        .get(format!("{}/api/v1/auth/verify", s.url))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(&raw).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(err_code(&r.json().await.unwrap()), "UNAUTHORIZED");
    assert_eq!(forward_auth(&s, &key).await.status(), 200, "still cached");

    // Listed without the secret; last_used_at is tracked.
    let (st, v) = s
        .get("/api/v1/users/me/api-keys?page=0&size=10", Some(&t))
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["pageable"]["total_elements"], 1);
    assert_eq!(v["pageable"]["current_page"], 0);
    let item = &v["data"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["key_prefix"], key[..10]);
    assert_eq!(item["revoked"], false);
    assert!(item["last_used_at"].is_string());
    assert!(!v.to_string().contains(&key[10..]), "secret never listed");

    // Delete refused while active; revoke then refused at once; then delete.
    let (st, _) = s
        .delete(&format!("/api/v1/users/me/api-keys/{id}"), Some(&t))
        .await;
    assert_eq!(st, 400);
    let (st, v) = s
        .req(
            Method::PUT,
            &format!("/api/v1/users/me/api-keys/{id}/revoke"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["revoked"], true);
    assert_eq!(s.get("/api/v1/auth/verify", Some(&key)).await.0, 401);
    let (st, _) = s
        .delete(&format!("/api/v1/users/me/api-keys/{id}"), Some(&t))
        .await;
    assert_eq!(st, 200);
    let (_, v) = s.get("/api/v1/users/me/api-keys", Some(&t)).await;
    assert_eq!(v["pageable"]["total_elements"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_expiry_and_ownership() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Lou", "lou@example.com").await;
    let (other, _) = s.register("Max", "max@example.com").await;
    for bad in [
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "allowed_ips": ["not-an-ip"]}),
        json!({"name": "x", "allowed_ips": ["10.0.0.0/33"]}),
        json!({"name": ""}),
        json!({"name": "x", "extra": 1}),
    ] {
        let (st, v) = s
            .post("/api/v1/users/me/api-keys", Some(&t), bad.clone())
            .await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
    let (key, id) = s
        .api_key(
            &t,
            json!({"name": "short", "expires_in_days": 1, "scopes": ["read", "send"]}),
        )
        .await;
    assert_eq!(
        s.get("/api/v1/auth/verify?scope=read", Some(&key)).await.0,
        200
    );
    // Another user's key id is a 404.
    let (st, _) = s
        .req(
            Method::PUT,
            &format!("/api/v1/users/me/api-keys/{id}/revoke"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .delete(&format!("/api/v1/users/me/api-keys/{id}"), Some(&other))
        .await;
    assert_eq!(st, 404);
    // Expiry, then deletion of an expired key is allowed.
    s.clock.advance(86_400 + 1);
    assert_eq!(s.get("/api/v1/auth/verify", Some(&key)).await.0, 401);
    let t = s.login("lou@example.com", PASSWORD).await; // the session expired too
    let (st, _) = s
        .delete(&format!("/api/v1/users/me/api-keys/{id}"), Some(&t))
        .await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_manage_accounts() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (key, _) = s
        .api_key(&admin, json!({"name": "admin-key", "scopes": ["*"]}))
        .await;
    for (m, p) in [
        (Method::GET, "/api/v1/users/me"),
        (Method::GET, "/api/v1/users/me/api-keys"),
        (Method::POST, "/api/v1/users/me/api-keys"),
        (Method::GET, "/api/v1/admin/users"),
        (Method::GET, "/api/v1/admin/settings"),
    ] {
        let (st, v) = s
            .req(m.clone(), p, Some(&key), Some(json!({"name": "x"})))
            .await;
        assert_eq!(
            (st, err_code(&v)),
            (StatusCode::FORBIDDEN, "FORBIDDEN"),
            "{m} {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_and_disabled_user() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (t, uid) = s.register("Ned", "ned@example.com").await;
    let (far, _) = s
        .api_key(
            &t,
            json!({"name": "far", "allowed_ips": ["203.0.113.0/24"]}),
        )
        .await;
    let (near, _) = s
        .api_key(
            &t,
            json!({"name": "near", "allowed_ips": ["203.0.113.0/24", "127.0.0.1", "::1/128"]}),
        )
        .await;
    let (st, v) = s.get("/api/v1/auth/verify", Some(&far)).await;
    assert_eq!((st, err_code(&v)), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    assert_eq!(s.get("/api/v1/auth/verify", Some(&near)).await.0, 200);
    // X-Forwarded-For from an untrusted peer is ignored.
    let r = s
        .client
        .get(format!("{}/api/v1/auth/verify", s.url))
        .bearer_auth(&far)
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Disabling the user kills its keys at once.
    let (st, _) = s
        .put(
            &format!("/api/v1/admin/users/{uid}"),
            Some(&admin),
            json!({"active": false}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.get("/api/v1/auth/verify", Some(&near)).await.0, 401);
    assert_eq!(s.get("/api/v1/users/me", Some(&t)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_honoured_from_trusted_proxy() {
    let s = TestServer::start_with(|c| c.trusted_proxies = "127.0.0.1/32".into()).await;
    let (t, _) = s.register("Oli", "oli@example.com").await;
    let (far, _) = s
        .api_key(
            &t,
            json!({"name": "far", "allowed_ips": ["203.0.113.0/24"]}),
        )
        .await;
    assert_eq!(s.get("/api/v1/auth/verify", Some(&far)).await.0, 403);
    // The status of `/auth/verify` with the key, from the trusted proxy forwarding `xff`.
    let through = async |xff: &str| {
        s.client
            .get(format!("{}/api/v1/auth/verify", s.url))
            .bearer_auth(&far)
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(
        through("198.51.100.1, 203.0.113.7").await,
        200,
        "right-most untrusted address is the client"
    );
    assert_eq!(
        through("203.0.113.7, 198.51.100.1").await,
        403,
        "a spoofed left-most entry does not help"
    );
    // A proxy that appends something other than an address (`unknown`): the client's own
    // entry to its left must not be believed.
    assert_eq!(
        through("203.0.113.7, unknown").await,
        403,
        "an unreadable hop is not skipped"
    );
    // A proxy that appends the address with its port.
    assert_eq!(
        through("198.51.100.1, 203.0.113.7:4711").await,
        200,
        "an address with a port is read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sees_and_deletes_all_keys() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (t, _) = s.register("Pia", "pia@example.com").await;
    let (key, id) = s.api_key(&t, json!({"name": "pia-key"})).await;
    let (st, v) = s.get("/api/v1/admin/api-keys", Some(&admin)).await;
    assert_eq!(st, 200);
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id.as_str())
    );
    assert_eq!(s.get("/api/v1/admin/api-keys", Some(&t)).await.0, 403);
    let (st, _) = s
        .delete(&format!("/api/v1/admin/api-keys/{id}"), Some(&admin))
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.get("/api/v1/auth/verify", Some(&key)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_is_flushed_and_survives_restart() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Quin", "quin@example.com").await;
    let (key, _) = s.api_key(&t, json!({"name": "k"})).await;
    assert_eq!(s.get("/api/v1/auth/verify", Some(&key)).await.0, 200);
    let (dir, clock) = s.stop().await; // shutdown flushes
    let cfg = test_config(dir.path());
    let s = TestServer::start_in(dir, cfg, clock).await;
    let t = s.login("quin@example.com", PASSWORD).await;
    let (_, v) = s.get("/api/v1/users/me/api-keys", Some(&t)).await;
    assert!(v["data"][0]["last_used_at"].is_string(), "{v}");
}

/// Verifications are cached; a revocation must still win on the very next request even while
/// other requests keep re-verifying (and re-caching) the same key concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_wins_over_concurrent_cached_use() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let s = TestServer::start().await;
    let (t, _) = s.register("Quinn", "quinn@example.com").await;
    for round in 0..10 {
        let (key, id) = s.api_key(&t, json!({"name": format!("k{round}")})).await;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let hammers: Vec<_> = (0..4)
            .map(|_| {
                let (client, url, key, stop, served) = (
                    s.client.clone(),
                    s.url.clone(),
                    key.clone(),
                    stop.clone(),
                    served.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let r = client
                            .get(format!("{url}/api/v1/auth/verify"))
                            .bearer_auth(&key)
                            .send()
                            .await
                            .unwrap();
                        if r.status() == 200 {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        // Revoke once the key is in use (cached) on every hammer's side.
        while served.load(Ordering::Relaxed) < 8 {
            tokio::task::yield_now().await;
        }
        let (st, _) = s
            .req(
                Method::PUT,
                &format!("/api/v1/users/me/api-keys/{id}/revoke"),
                Some(&t),
                None,
            )
            .await;
        assert_eq!(st, 200);
        for _ in 0..5 {
            assert_eq!(
                s.get("/api/v1/auth/verify", Some(&key)).await.0,
                401,
                "round {round}"
            );
        }
        stop.store(true, Ordering::Relaxed);
        for h in hammers {
            h.await.unwrap();
        }
    }
}

/// `/auth/verify` and `/users/me` are rendered once per cached verification: every write that
/// changes what they show must show on the next request, on whichever worker it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_follow_account_changes() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (t, uid) = s.register("Kay", "kay@example.com").await;
    let (key, _) = s.api_key(&t, json!({"name": "mailer"})).await;
    // Warm the cache, and its renderings, on whichever worker serves these requests.
    for _ in 0..8 {
        let (st, v) = s.get("/api/v1/auth/verify", Some(&key)).await;
        assert_eq!((st, &v["data"]["role"]), (StatusCode::OK, &json!("user")));
        let (st, v) = s.get("/api/v1/users/me", Some(&t)).await;
        assert_eq!((st, &v["data"]["name"]), (StatusCode::OK, &json!("Kay")));
    }

    let (st, v) = s
        .put(
            &format!("/api/v1/admin/users/{uid}"),
            Some(&admin),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = s
        .put("/api/v1/users/me", Some(&t), json!({"name": "Kay Two"}))
        .await;
    assert_eq!(st, 200);
    for _ in 0..8 {
        let r = forward_auth(&s, &key).await;
        assert_eq!(r.headers()["x-posta-user-role"], "admin");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["data"]["role"], "admin");
        let (st, v) = s.get("/api/v1/users/me", Some(&t)).await;
        assert_eq!(st, 200);
        assert_eq!(
            (&v["data"]["name"], &v["data"]["role"]),
            (&json!("Kay Two"), &json!("admin"))
        );
    }
}

/// A stolen session cannot make its access outlive the owner: 10 minutes after the sign-in,
/// minting an API key or enrolling 2FA (a thief's authenticator would lock the owner out)
/// needs a fresh proof: 403 `REAUTH_REQUIRED` with a message to show, passed with the
/// current password in the request or after `POST /users/me/reauth`; a wrong one is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_changes_need_a_recent_proof() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Rae", "rae@example.com").await;
    // Fresh from sign-in: allowed.
    let (st, _) = s
        .post("/api/v1/users/me/api-keys", Some(&t), json!({"name": "k1"}))
        .await;
    assert_eq!(st, 201);
    s.clock.advance(11 * 60);
    let (st, v) = s
        .post("/api/v1/users/me/api-keys", Some(&t), json!({"name": "k2"}))
        .await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(err_code(&v), "REAUTH_REQUIRED");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("sign in again to create an API key")
    );
    let (st, v) = s
        .req(Method::POST, "/api/v1/users/me/2fa/setup", Some(&t), None)
        .await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(err_code(&v), "REAUTH_REQUIRED");
    // A wrong password with the request: refused and counted.
    let (st, v) = s
        .post(
            "/api/v1/users/me/api-keys",
            Some(&t),
            json!({"name": "k2", "current_password": "not-my-password-at-all"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    // The right one with the request.
    let (st, v) = s
        .post(
            "/api/v1/users/me/api-keys",
            Some(&t),
            json!({"name": "k2", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    // Or once, for the window: then 2FA enrolment goes through without a body.
    s.clock.advance(11 * 60);
    let (st, _) = s
        .post(
            "/api/v1/users/me/reauth",
            Some(&t),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .req(Method::POST, "/api/v1/users/me/2fa/setup", Some(&t), None)
        .await;
    assert_eq!(st, 200, "{v}");
    let admin = s.admin().await;
    let (_, ev) = s
        .get("/api/v1/admin/events?type=reauth.failure", Some(&admin))
        .await;
    assert_eq!(ev["data"].as_array().unwrap().len(), 1, "{ev}");
}

/// The owner who changes a password after a theft can revoke the keys the thief minted with
/// the stolen session (`revoke_api_keys`), and so can an admin revoking the user's sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_or_an_admin_can_revoke_every_key() {
    let s = TestServer::start().await;
    let (t, uid) = s.register("Ugo", "ugo@example.com").await;
    let (thief_key, _) = s.api_key(&t, json!({"name": "minted-by-a-thief"})).await;
    assert_eq!(s.get("/api/v1/auth/verify", Some(&thief_key)).await.0, 200);
    // By default a password change leaves keys alone (they are the owner's integrations).
    let (st, v) = s
        .put(
            "/api/v1/users/me/password",
            Some(&t),
            json!({"current_password": PASSWORD, "new_password": "quartz-lantern-93-fjord"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["revoked_api_keys"], 0);
    assert_eq!(s.get("/api/v1/auth/verify", Some(&thief_key)).await.0, 200);
    let (st, v) = s
        .put(
            "/api/v1/users/me/password",
            Some(&t),
            json!({"current_password": "quartz-lantern-93-fjord", "new_password": "amber-cobalt-meadow-38", "revoke_api_keys": true}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["revoked_api_keys"], 1);
    assert_eq!(s.get("/api/v1/auth/verify", Some(&thief_key)).await.0, 401);
    // The admin's way.
    let (key2, _) = s.api_key(&t, json!({"name": "second"})).await;
    let admin = s.admin().await;
    let (st, v) = s
        .post(
            &format!("/api/v1/admin/users/{uid}/revoke-sessions"),
            Some(&admin),
            json!({"revoke_api_keys": true}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["revoked_api_keys"], 1);
    assert_eq!(s.get("/api/v1/auth/verify", Some(&key2)).await.0, 401);
    assert_eq!(s.get("/api/v1/users/me", Some(&t)).await.0, 401);
}
