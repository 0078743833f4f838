//! Login, register, JWT validation, sessions and profile.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

fn claims(token: &str) -> Value {
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_matches_the_seed() {
    let s = TestServer::start().await;
    let (st, v) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["success"], true);
    let u = &v["data"]["user"];
    assert_eq!(u["email"], ADMIN_EMAIL);
    assert_eq!(u["role"], "admin");
    assert_eq!(u["name"], "Admin");
    assert_eq!(u["active"], true);
    assert_eq!(u["two_factor_enabled"], false);
    assert!(uuid::Uuid::parse_str(u["id"].as_str().unwrap()).is_ok());
    let token = v["data"]["token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        24 * 3600
    );
    assert_eq!(c["aud"], "posta");
    assert_eq!(c["sub"], u["id"]);
    assert!(c["jti"].is_string() && c["iss"].is_string());
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    let (st, me) = s.get("/api/v1/users/me", Some(token)).await;
    assert_eq!(st, 200);
    assert_eq!(me["data"]["email"], ADMIN_EMAIL);
    assert_eq!(me["data"]["auth_methods"], json!(["password"]));
    // The email is compared case-insensitively and trimmed.
    s.login("  ADMIN@Example.com ", ADMIN_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_known_emails_fail_identically() {
    let s = TestServer::start().await;
    let (st1, v1) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": "wrong-password-123"}),
        )
        .await;
    let (st2, v2) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ghost@example.com", "password": "wrong-password-123"}),
        )
        .await;
    assert_eq!(st1, StatusCode::UNAUTHORIZED);
    assert_eq!((st1, &v1), (st2, &v2));
    assert_eq!(
        v1,
        json!({"success": false, "data": null, "error": {"code": "UNAUTHORIZED", "message": "invalid credentials"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_validates_and_never_escalates() {
    let s = TestServer::start().await;
    let (st, v) = s.get("/api/v1/auth/registration-status", None).await;
    assert_eq!(
        (st, &v["data"]),
        (
            StatusCode::OK,
            &json!({"registration_enabled": true, "password_reset_enabled": false,
                    "email_enabled": false, "passkeys_enabled": false,
                    "email_verification_required": false})
        )
    );
    // Unknown fields are refused, so a smuggled role is never applied.
    let (st, v) = s
        .post("/api/v1/auth/register", None, json!({"name": "Eve", "email": "eve@example.com", "password": PASSWORD, "role": "admin"}))
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Eve", "email": "eve@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["data"]["user"]["role"], "user");
    let token = v["data"]["token"].as_str().unwrap();
    assert_eq!(s.get("/api/v1/users/me", Some(token)).await.0, 200);
    // Duplicate email, in another case.
    let (st, v) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Eve2", "email": " EVE@example.COM", "password": PASSWORD}),
        )
        .await;
    assert_eq!((st, err_code(&v)), (StatusCode::CONFLICT, "CONFLICT"));
    for (body, field) in [
        (
            json!({"name": "", "email": "x@example.com", "password": PASSWORD}),
            "name",
        ),
        (
            json!({"name": "X", "email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"name": "X", "email": "x\u{0}@example.com", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"name": "X", "email": "x@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"name": "X", "email": "x@example.com", "password": "password123"}),
            "password",
        ),
        (
            json!({"name": "X", "email": "xavier@example.com", "password": "xavier@example.com"}),
            "password",
        ),
        (
            json!({"name": "X", "email": "x@example.com", "password": "y".repeat(1025)}),
            "password",
        ),
    ] {
        let (st, v) = s.post("/api/v1/auth/register", None, body.clone()).await;
        assert_eq!(st, 400, "{body} -> {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with(field));
    }
    // IDNA domain normalisation.
    let (st, v) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "Jo", "email": "jo@Bücher.de", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(v["data"]["user"]["email"], "jo@xn--bcher-kva.de");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_disabled_by_config() {
    let s = TestServer::start_with(|c| c.registration_enabled = Some(false)).await;
    let (_, v) = s.get("/api/v1/auth/registration-status", None).await;
    assert_eq!(v["data"]["registration_enabled"], false);
    let (st, v) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "A", "email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!((st, err_code(&v)), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    // The stored setting cannot re-open it.
    let admin = s.admin().await;
    let (st, _) = s
        .put(
            "/api/v1/admin/settings",
            Some(&admin),
            json!({"settings": [{"key": "registration_enabled", "value": "true", "type": "bool"}]}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = s.get("/api/v1/auth/registration-status", None).await;
    assert_eq!(v["data"]["registration_enabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_expired_tokens_are_refused() {
    let s = TestServer::start().await;
    let (token, _) = s.register("Bob", "bob@example.com").await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims(&token);
    // alg none
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    // changed payload, original signature
    c["role"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64.encode(c.to_string()), parts[2]);
    // signed with another secret
    let other = {
        use hmac::{Hmac, Mac};
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        let mut m =
            Hmac::<sha2_like::Sha256>::new_from_slice(b"another-secret-another-secret-!!").unwrap();
        m.update(signing_input.as_bytes());
        format!("{signing_input}.{}", b64.encode(m.finalize().into_bytes()))
    };
    for bad in [
        none,
        tampered,
        other,
        "garbage".to_owned(),
        format!("{token}x"),
    ] {
        let (st, v) = s.get("/api/v1/users/me", Some(&bad)).await;
        assert_eq!(
            (st, err_code(&v)),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            "{bad}"
        );
    }
    assert_eq!(s.get("/api/v1/users/me", Some(&token)).await.0, 200);
    s.clock.advance(24 * 3600 - 10);
    assert_eq!(s.get("/api/v1/users/me", Some(&token)).await.0, 200);
    s.clock.advance(11);
    assert_eq!(
        s.get("/api/v1/users/me", Some(&token)).await.0,
        401,
        "expired after 24 h"
    );
}

mod sha2_like {
    pub use sha2::Sha256;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_logout_revoke_and_password_change() {
    let s = TestServer::start().await;
    let (t1, _) = s.register("Cy", "cy@example.com").await;
    let t2 = s.login("cy@example.com", PASSWORD).await;
    let t3 = s.login("cy@example.com", PASSWORD).await;
    let (st, v) = s.get("/api/v1/users/me/sessions", Some(&t1)).await;
    assert_eq!(st, 200);
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|x| x["current"] == true).count(), 1);
    assert!(
        list[0]["ip_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1")
    );
    // Revoke one by id.
    let jti3 = claims(&t3)["jti"].as_str().unwrap().to_owned();
    let (st, _) = s
        .delete(&format!("/api/v1/users/me/sessions/{jti3}"), Some(&t1))
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.get("/api/v1/users/me", Some(&t3)).await.0, 401);
    // Logout ends the current session on the very next request.
    let (st, _) = s
        .req(
            reqwest::Method::POST,
            "/api/v1/users/me/sessions/logout",
            Some(&t2),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.get("/api/v1/users/me", Some(&t2)).await.0, 401);
    // revoke-others keeps the caller's session.
    let t4 = s.login("cy@example.com", PASSWORD).await;
    let (st, v) = s
        .req(
            reqwest::Method::POST,
            "/api/v1/users/me/sessions/revoke-others",
            Some(&t1),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["revoked"], 1);
    assert_eq!(s.get("/api/v1/users/me", Some(&t4)).await.0, 401);
    assert_eq!(s.get("/api/v1/users/me", Some(&t1)).await.0, 200);
    // Password change ends the other sessions.
    let t5 = s.login("cy@example.com", PASSWORD).await;
    let (st, v) = s
        .put(
            "/api/v1/users/me/password",
            Some(&t1),
            json!({"current_password": "wrong-one-123", "new_password": "new-horse-staple-99"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .put(
            "/api/v1/users/me/password",
            Some(&t1),
            json!({"current_password": PASSWORD, "new_password": "new-horse-staple-99"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.get("/api/v1/users/me", Some(&t5)).await.0, 401);
    assert_eq!(s.get("/api/v1/users/me", Some(&t1)).await.0, 200);
    s.login("cy@example.com", "new-horse-staple-99").await;
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "cy@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_update_and_stored_role_wins() {
    let s = TestServer::start().await;
    let (t, id) = s.register("Dee", "dee@example.com").await;
    let (st, v) = s
        .put("/api/v1/users/me", Some(&t), json!({"name": "  Dee Dee "}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["name"], "Dee Dee");
    let (st, _) = s
        .put(
            "/api/v1/users/me",
            Some(&t),
            json!({"name": "x", "role": "admin"}),
        )
        .await;
    assert_eq!(st, 400);
    // Promote, then demote: the same token follows the stored role at once.
    let admin = s.admin().await;
    let (st, _) = s
        .put(
            &format!("/api/v1/admin/users/{id}"),
            Some(&admin),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.get("/api/v1/admin/users", Some(&t)).await.0, 200);
    s.put(
        &format!("/api/v1/admin/users/{id}"),
        Some(&admin),
        json!({"role": "user"}),
    )
    .await;
    assert_eq!(s.get("/api/v1/admin/users", Some(&t)).await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_stored_hash_is_upgraded_at_login() {
    let s = TestServer::start().await;
    s.register("Gil", "gil@example.com").await;
    let (dir, clock) = s.stop().await;
    let mut cfg = test_config(dir.path());
    cfg.argon2_memory_kib = 512;
    cfg.argon2_iterations = 2;
    let s = TestServer::start_in(dir, cfg, clock).await;
    s.login("gil@example.com", PASSWORD).await;
    let (dir, _) = s.stop().await;
    let out = posta_cmd(dir.path())
        .args(["admin", "list-users"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // The stored hash now carries the stronger parameters.
    let bytes = std::fs::read(db_path(dir.path())).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("m=512,t=2,p=1"), "rehashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_no_unthrottled_password_oracle() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Gus", "gus@example.com").await;
    let change = |current: &'static str| json!({"current_password": current, "new_password": "new-horse-staple-99"});
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let (st, _) = s
            .put(
                "/api/v1/users/me/password",
                Some(&t),
                change("guess-number-one"),
            )
            .await;
        statuses.push(st.as_u16());
    }
    assert_eq!(statuses[..10], [400; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    // The counters are the login's: the right password is refused from here for now, and so
    // is a login to the account from this address.
    let (st, v) = s
        .put("/api/v1/users/me/password", Some(&t), change(PASSWORD))
        .await;
    assert_eq!(st, 429, "{v}");
    assert_eq!(err_code(&v), "TOO_MANY_REQUESTS");
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "gus@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 429);
    // Each wrong guess is audited, without the guess.
    let admin_token = {
        s.clock.advance(15 * 60 + 1);
        s.admin().await
    };
    let (st, v) = s
        .get(
            "/api/v1/admin/events?type=password.change_failure&size=100",
            Some(&admin_token),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["pageable"]["total_elements"], 10, "{v}");
    assert_eq!(v["data"][0]["email"], "gus@example.com");
    assert_eq!(v["data"][0]["detail"], "wrong current password");
    assert!(!v.to_string().contains("guess-number-one"));
    // The window ends; the right password works. (The session outlives the window: 15 min.)
    let (st, v) = s
        .put("/api/v1/users/me/password", Some(&t), change(PASSWORD))
        .await;
    assert_eq!(st, 200, "{v}");
}

/// Confusable identities: a Cyrillic `а` in `аdmin@…`, or `,` `;` `<` in a local part, never
/// make an account (they reached `X-Posta-User-Email` raw before). With UTF-8 local parts
/// allowed, a one-script address registers, and forward auth leaves a non-ASCII address to
/// the body (headers stay plain ASCII).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confusable_or_special_local_parts_are_refused() {
    let s = TestServer::start().await;
    for email in [
        "\u{430}dmin@example.com",
        "a,b@example.com",
        "a;b@example.com",
        "a<b>@example.com",
        "\"q\"@example.com",
    ] {
        let (st, v) = s
            .post(
                "/api/v1/auth/register",
                None,
                json!({"name": "X", "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(st, 400, "{email}: {v}");
    }
    let s = TestServer::start_with(|c| c.email_utf8_local_parts = true).await;
    let (st, _) = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"name": "X", "email": "\u{430}dmin@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 400, "mixed scripts stay refused");
    let (token, _) = s.register("Jörg", "jörg@bücher.example").await;
    let (key, _) = s.api_key(&token, json!({"name": "k"})).await;
    let r = s
        .client
        .get(format!("{}/api/v1/auth/verify", s.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (name, value) in r.headers() {
        assert!(value.as_bytes().is_ascii(), "{name}: {value:?}");
    }
    assert!(r.headers().get("x-posta-user-email").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["email"], "jörg@xn--bcher-kva.example");
}

/// Cookie hardening: under HTTPS the cookie is `__Host-posta_session`; two session cookies
/// (one planted by a sibling host) are refused rather than one picked; origins are compared
/// whole (scheme, host, port: `http://` or `ftp://` with our host is foreign); an unsafe
/// cookie request with neither `Origin` nor `Sec-Fetch-Site` needs `X-Requested-With`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_follow_the_origin_rules() {
    let s = TestServer::start_with(|c| c.web_url = Some("https://posta.example".into())).await;
    s.register("Cleo", "cleo@example.com").await;
    let r = s
        .client
        .post(format!("{}/api/v1/auth/login", s.url))
        .json(&json!({"email": "cleo@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-posta_session="))
        .unwrap();
    assert!(
        session.contains("Secure") && session.contains("Path=/") && !session.contains("Domain")
    );
    let pair = session.split(';').next().unwrap().to_owned();
    let call = |method: Method, cookie: String, extra: Vec<(&'static str, &'static str)>| {
        let mut rb = s
            .client
            .request(
                method,
                format!("{}/api/v1/users/me/sessions/revoke-others", s.url),
            )
            .header("cookie", cookie);
        for (k, v) in extra {
            rb = rb.header(k, v);
        }
        async move { rb.send().await.unwrap().status() }
    };
    let ok = StatusCode::OK;
    assert_eq!(
        call(
            Method::POST,
            pair.clone(),
            vec![("origin", "https://posta.example")]
        )
        .await,
        ok
    );
    assert_eq!(
        call(
            Method::POST,
            pair.clone(),
            vec![("sec-fetch-site", "same-origin")]
        )
        .await,
        ok
    );
    for foreign in [
        "http://posta.example",
        "ftp://posta.example",
        "https://posta.example:8443",
        "https://evil.example",
    ] {
        assert_eq!(
            call(Method::POST, pair.clone(), vec![("origin", foreign)]).await,
            403,
            "{foreign}"
        );
    }
    assert_eq!(
        call(
            Method::POST,
            pair.clone(),
            vec![("sec-fetch-site", "same-site")]
        )
        .await,
        403
    );
    assert_eq!(
        call(Method::POST, pair.clone(), vec![]).await,
        403,
        "unsafe without any mark"
    );
    assert_eq!(
        call(
            Method::POST,
            pair.clone(),
            vec![("x-requested-with", "posta")]
        )
        .await,
        403,
        "X-Requested-With alone does not authorize an unsafe cookie request"
    );
    // A second session cookie (planted) makes the request unauthenticated.
    let planted = format!("{pair}; __Host-posta_session=planted.by.sibling");
    assert_eq!(
        call(
            Method::POST,
            planted,
            vec![("sec-fetch-site", "same-origin")]
        )
        .await,
        401
    );
    // The plain name is not read under HTTPS.
    let plain = pair.replacen("__Host-posta_session", "posta_session", 1);
    assert_eq!(
        call(Method::POST, plain, vec![("sec-fetch-site", "same-origin")]).await,
        401
    );
}

/// Behind a proxy that terminates TLS, `X-Forwarded-Proto: https` names the cookie
/// `__Host-posta_session` when the proxy is trusted, and is ignored from anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_https_is_believed_only_from_trusted_proxies() {
    for (trusted, name) in [(true, "__Host-posta_session="), (false, "posta_session=")] {
        let s = TestServer::start_with(|c| {
            if trusted {
                c.trusted_proxies = "127.0.0.1/32".into();
            }
        })
        .await;
        s.register("Nia", "nia@example.com").await;
        let r = s
            .client
            .post(format!("{}/api/v1/auth/login", s.url))
            .header("x-forwarded-proto", "https")
            .json(&json!({"email": "nia@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let set: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            set.iter().any(|c| c.starts_with(name)),
            "trusted={trusted}: {set:?}"
        );
    }
}
