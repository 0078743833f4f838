//! SSO against a real OpenID Provider (npm oidc-provider on loopback).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::idp::{Browser, Idp};

struct Env {
    s: TestServer,
    idp: Idp,
    admin: String,
    callback: String,
}

async fn setup_with(f: impl FnOnce(&mut posta::config::Config, &str)) -> Env {
    let s = TestServer::start_with_url(|c, url| {
        c.web_url = Some(url.to_owned());
        f(c, url);
    })
    .await;
    let callback = format!("{}/api/v1/auth/oauth/callback", s.url);
    let idp = Idp::start(std::slice::from_ref(&callback));
    let admin = s.admin().await;
    Env {
        s,
        idp,
        admin,
        callback,
    }
}

async fn setup() -> Env {
    setup_with(|_, _| {}).await
}

impl Env {
    async fn provider(&self, extra: Value) -> Value {
        let mut body = json!({
            "name": "Test IdP", "slug": "test", "type": "oidc",
            "client_id": "posta", "client_secret": "posta-test-client-secret",
            "issuer": self.idp.issuer,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, v) = self
            .s
            .post("/api/v1/admin/oauth/providers", Some(&self.admin), body)
            .await;
        assert_eq!(st, 201, "{v}");
        v["data"].clone()
    }

    /// The same IdP as plain OAuth 2.0: explicit endpoints, its userinfo answer read as is.
    async fn plain_oauth2_provider(&self) -> Value {
        let iss = &self.idp.issuer;
        self.provider(json!({
            "issuer": null,
            "auth_url": format!("{iss}/auth"),
            "token_url": format!("{iss}/token"),
            "userinfo_url": format!("{iss}/me"),
            "scopes": "openid email",
        }))
        .await
    }

    /// Change a provider as an admin.
    async fn edit_provider(&self, p: &Value, body: Value) {
        let path = format!(
            "/api/v1/admin/oauth/providers/{}",
            p["id"].as_str().unwrap()
        );
        let (st, v) = self.s.put(&path, Some(&self.admin), body).await;
        assert_eq!(st, 200, "{v}");
    }

    fn authorize(&self, slug: &str) -> String {
        format!("{}/api/v1/auth/oauth/{slug}/authorize", self.s.url)
    }

    /// Sign in through the IdP as `login`; returns the callback's answer.
    async fn sso(&self, login: &str) -> crate::idp::Stop {
        Browser::new()
            .walk(&self.authorize("test"), login, &self.callback)
            .await
    }
}

/// The session a successful SSO sign-in hands over: the browser goes to the dashboards'
/// `/auth/oauth/callback` page with the session cookie, and no token in the URL.
fn token_from(stop: &crate::idp::Stop, web: &str) -> String {
    assert_eq!(stop.status, StatusCode::FOUND, "{}", stop.body);
    let loc = stop.location.as_deref().unwrap();
    assert_eq!(loc, format!("{web}/auth/oauth/callback"));
    stop.set_cookies
        .iter()
        .find_map(|c| c.strip_prefix("posta_session="))
        .and_then(|c| c.split(';').next())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("no session cookie: {:?}", stop.set_cookies))
        .to_owned()
}

fn error_from(stop: &crate::idp::Stop, web: &str) -> String {
    assert_eq!(stop.status, StatusCode::FOUND, "{}", stop.body);
    let loc = stop.location.as_deref().unwrap();
    assert!(loc.starts_with(&format!("{web}/login?error=")), "{loc}");
    loc.split("error=").nth(1).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_creates_then_reuses_the_account() {
    let e = setup().await;
    let p = e.provider(json!({})).await;
    assert!(p.get("client_secret").is_none(), "write-only");
    assert_eq!(p["has_client_secret"], true);
    let (_, v) = e.s.get("/api/v1/auth/oauth/providers", None).await;
    assert_eq!(
        v["data"]["providers"],
        json!([{"id": p["id"], "slug": "test", "name": "Test IdP", "type": "oidc"}])
    );

    // authorize: state, PKCE S256 and nonce on the way out; a browser-binding cookie.
    let r = e.s.client.get(e.authorize("test")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(loc.starts_with(&e.idp.issuer));
    for part in [
        "state=",
        "nonce=",
        "code_challenge=",
        "code_challenge_method=S256",
        "client_id=posta",
    ] {
        assert!(loc.contains(part), "{part} in {loc}");
    }
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("posta_oauth=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
    );

    let stop = e.sso("alice").await;
    let token = token_from(&stop, &e.s.url);
    assert!(
        stop.set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("posta_session={token}")) && c.contains("HttpOnly"))
    );
    let (st, me) = e.s.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(st, 200);
    assert_eq!(me["data"]["email"], "alice@example.com");
    assert_eq!(me["data"]["role"], "user");
    assert_eq!(me["data"]["auth_methods"], json!(["oauth:test"]));
    let id = me["data"]["id"].clone();
    // Second sign-in: same account through the link.
    let token2 = token_from(&e.sso("alice").await, &e.s.url);
    let (_, me2) = e.s.get("/api/v1/users/me", Some(&token2)).await;
    assert_eq!(me2["data"]["id"], id);
    let (_, links) = e.s.get("/api/v1/users/me/oauth", Some(&token2)).await;
    assert_eq!(links["data"][0]["provider_slug"], "test");
    assert_eq!(links["data"][0]["email"], "alice@example.com");
    // The only way in: unlinking is refused.
    let (st, _) =
        e.s.delete(
            &format!("/api/v1/users/me/oauth/{}", p["id"].as_str().unwrap()),
            Some(&token2),
        )
        .await;
    assert_eq!(st, 400);
    // The audit log has the SSO sign-in.
    let (_, ev) =
        e.s.get("/api/v1/admin/events?type=login.success", Some(&e.admin))
            .await;
    assert!(
        ev["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["detail"] == "sso:test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_bound_single_use_and_expires() {
    let e = setup().await;
    e.provider(json!({})).await;
    let b = Browser::new();
    // Tampered state.
    let mut cb = b.until(&e.authorize("test"), "alice", &e.callback).await;
    let pairs: Vec<(String, String)> = cb
        .query_pairs()
        .map(|(k, v)| {
            let tampered = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), tampered)
        })
        .collect();
    cb.query_pairs_mut().clear().extend_pairs(pairs);
    let stop = b.walk(cb.as_str(), "alice", &e.callback).await;
    assert_eq!(error_from(&stop, &e.s.url), "invalid_state");
    // Reused state: the first use wins, the second is refused.
    let cb = b.until(&e.authorize("test"), "alice", &e.callback).await;
    token_from(&b.walk(cb.as_str(), "alice", &e.callback).await, &e.s.url);
    assert_eq!(
        error_from(&b.walk(cb.as_str(), "alice", &e.callback).await, &e.s.url),
        "invalid_state"
    );
    // Another browser (no binding cookie) cannot complete someone else's flow (login CSRF).
    let cb = b.until(&e.authorize("test"), "alice", &e.callback).await;
    let other = Browser::new();
    assert_eq!(
        error_from(
            &other.walk(cb.as_str(), "alice", &e.callback).await,
            &e.s.url
        ),
        "invalid_state"
    );
    // Expired state (10 minutes).
    let cb = b.until(&e.authorize("test"), "alice", &e.callback).await;
    e.s.clock.advance(601);
    assert_eq!(
        error_from(&b.walk(cb.as_str(), "alice", &e.callback).await, &e.s.url),
        "invalid_state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let e = setup().await;
    let p = e.provider(json!({})).await;
    assert_eq!(
        error_from(&e.sso("unverified-bob").await, &e.s.url),
        "email_not_verified"
    );
    // Domain restriction.
    let pid = p["id"].as_str().unwrap();
    let (st, _) =
        e.s.put(
            &format!("/api/v1/admin/oauth/providers/{pid}"),
            Some(&e.admin),
            json!({"allowed_domains": "corp.example"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        error_from(&e.sso("carol").await, &e.s.url),
        "domain_not_allowed"
    );
    token_from(&e.sso("dave@corp.example").await, &e.s.url);
    // Auto-registration off.
    e.s.put(
        &format!("/api/v1/admin/oauth/providers/{pid}"),
        Some(&e.admin),
        json!({"allowed_domains": [], "auto_register": false}),
    )
    .await;
    assert_eq!(
        error_from(&e.sso("erin").await, &e.s.url),
        "registration_disabled"
    );
    // A disabled account is refused.
    let (_, users) =
        e.s.get("/api/v1/admin/users?search=dave@corp", Some(&e.admin))
            .await;
    let dave = users["data"][0]["id"].as_str().unwrap().to_owned();
    e.s.put(
        &format!("/api/v1/admin/users/{dave}"),
        Some(&e.admin),
        json!({"active": false}),
    )
    .await;
    assert_eq!(
        error_from(&e.sso("dave@corp.example").await, &e.s.url),
        "account_disabled"
    );
    // A disabled provider is a 404 at authorize and leaves the public list.
    e.s.put(
        &format!("/api/v1/admin/oauth/providers/{pid}"),
        Some(&e.admin),
        json!({"enabled": false}),
    )
    .await;
    let r = e.s.client.get(e.authorize("test")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let (_, v) = e.s.get("/api/v1/auth/oauth/providers", None).await;
    assert_eq!(v["data"]["providers"], json!([]));
    assert_eq!(
        e.s.client
            .get(e.authorize("nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// Pre-registration takeover: a stranger registers the victim's address with a password
/// before the victim ever signs in through the company IdP. The IdP's verified sign-in must not
/// land in (and link to) the stranger's account, even once the address is marked verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_registered_account_does_not_capture_the_sso_identity() {
    let e = setup().await;
    e.provider(json!({"auto_register": true})).await;
    let (stranger, uid) = e.s.register("Frank", "frank@example.com").await;
    let (_, me) = e.s.get("/api/v1/users/me", Some(&stranger)).await;
    assert_eq!(
        me["data"]["email_verified"], false,
        "self-registered: unverified"
    );
    assert_eq!(
        error_from(&e.sso("frank").await, &e.s.url),
        "account_exists"
    );
    // An admin verifies the address (the owner answered a mail, say): still no link by email,
    // and the stranger's sessions end.
    let (st, v) =
        e.s.put(
            &format!("/api/v1/admin/users/{uid}"),
            Some(&e.admin),
            json!({"email_verified": true}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["email_verified"], true);
    assert!(v["data"]["email_verified_at"].is_string());
    assert_eq!(e.s.get("/api/v1/users/me", Some(&stranger)).await.0, 401);
    assert_eq!(
        error_from(&e.sso("frank").await, &e.s.url),
        "account_exists"
    );
    let t = e.s.login("frank@example.com", PASSWORD).await;
    let (_, links) = e.s.get("/api/v1/users/me/oauth", Some(&t)).await;
    assert_eq!(links["data"], json!([]));
}

/// An account an admin made (verified) links by email and unlinks; a second subject of the
/// same provider with the same email is refused instead of hiding the first, and after an
/// unlink no row is left that signs in (before: the first subject still did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_link_per_provider_and_unlink_leaves_nothing() {
    let e = setup().await;
    let p = e.provider(json!({"auto_register": false})).await;
    let (st, v) =
        e.s.post(
            "/api/v1/admin/users",
            Some(&e.admin),
            json!({"name": "Frank", "email": "frank@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["data"]["email_verified"], true);
    let uid = v["data"]["id"].as_str().unwrap().to_owned();
    let token = token_from(&e.sso("frank").await, &e.s.url);
    let (_, me) = e.s.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(me["data"]["id"], uid.as_str());
    assert_eq!(
        me["data"]["auth_methods"],
        json!(["password", "oauth:test"])
    );
    // A second subject ("frank@example.com" is another IdP account) with the same email.
    assert_eq!(
        error_from(&e.sso("frank@example.com").await, &e.s.url),
        "already_linked"
    );
    // 2FA on: from now on nothing links this account by email alone.
    let pw = e.s.login("frank@example.com", PASSWORD).await;
    crate::mfa::enrol(&e.s, &pw).await;
    let (st, _) =
        e.s.delete(
            &format!("/api/v1/users/me/oauth/{}", p["id"].as_str().unwrap()),
            Some(&pw),
        )
        .await;
    assert_eq!(st, 200);
    let (_, links) = e.s.get("/api/v1/users/me/oauth", Some(&pw)).await;
    assert_eq!(links["data"], json!([]));
    for login in ["frank", "frank@example.com"] {
        assert_eq!(
            error_from(&e.sso(login).await, &e.s.url),
            "account_exists",
            "{login}"
        );
    }
}

/// Admins and accounts with 2FA link only while signed in, never by email alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_is_never_linked_by_email() {
    let e = setup().await;
    e.provider(json!({})).await;
    let (st, _) = e
        .s
        .post(
            "/api/v1/admin/users",
            Some(&e.admin),
            json!({"name": "Boss", "email": "boss@example.com", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(error_from(&e.sso("boss").await, &e.s.url), "account_exists");
}

/// Plain OAuth 2.0: a userinfo answer that does not say the email is verified is not taken
/// as verified (before: absent meant verified), unless the admin marked the provider
/// `trust_email`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_oauth2_without_email_verified_is_unverified() {
    let e = setup().await;
    let p = e.plain_oauth2_provider().await;
    assert_eq!(p["trust_email"], false);
    assert_eq!(
        error_from(&e.sso("silent-sam").await, &e.s.url),
        "email_not_verified"
    );
    e.edit_provider(&p, json!({"trust_email": true})).await;
    let token = token_from(&e.sso("silent-sam").await, &e.s.url);
    let (_, me) = e.s.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(me["data"]["email"], "silent-sam@example.com");
    assert_eq!(me["data"]["email_verified"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_oauth2_with_explicit_endpoints() {
    let e = setup().await;
    e.plain_oauth2_provider().await;
    let token = token_from(&e.sso("grace").await, &e.s.url);
    let (_, me) = e.s.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(me["data"]["email"], "grace@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_admin_validation_and_secret_at_rest() {
    let e = setup().await;
    for bad in [
        json!({"name": "x", "slug": "Bad Slug", "type": "oidc", "client_id": "c", "issuer": "https://idp.example"}),
        json!({"name": "x", "slug": "ok", "type": "saml", "client_id": "c", "issuer": "https://idp.example"}),
        json!({"name": "x", "slug": "ok", "type": "oidc", "client_id": "c"}),
        json!({"name": "x", "slug": "ok", "type": "oidc", "client_id": "c", "issuer": "ftp://x"}),
        json!({"name": "x", "slug": "ok", "type": "oidc", "client_id": "c", "issuer": "https://i.example", "bogus": 1}),
    ] {
        let (st, v) =
            e.s.post("/api/v1/admin/oauth/providers", Some(&e.admin), bad.clone())
                .await;
        assert_eq!(st, 400, "{bad} -> {v}");
    }
    let g = e.s.post("/api/v1/admin/oauth/providers", Some(&e.admin), json!({
        "name": "Google", "slug": "google", "type": "google", "client_id": "gid", "client_secret": "super-secret-google-value"
    })).await;
    assert_eq!(g.0, 201);
    assert_eq!(g.1["data"]["issuer"], "https://accounts.google.com");
    let (st, _) =
        e.s.post(
            "/api/v1/admin/oauth/providers",
            Some(&e.admin),
            json!({
                "name": "Dup", "slug": "google", "type": "google", "client_id": "x"
            }),
        )
        .await;
    assert_eq!(st, 409);
    let (_, user) = e.s.register("Hal", "hal@example.com").await;
    let _ = user;
    let (st, v) =
        e.s.get("/api/v1/admin/oauth/providers", Some(&e.admin))
            .await;
    assert_eq!(st, 200);
    assert!(!v.to_string().contains("super-secret-google-value"));
    let (st, _) =
        e.s.delete(
            &format!(
                "/api/v1/admin/oauth/providers/{}",
                g.1["data"]["id"].as_str().unwrap()
            ),
            Some(&e.admin),
        )
        .await;
    assert_eq!(st, 200);
    let e2 = setup_with(|_, _| {}).await;
    e2.provider(json!({"client_secret": "another-secret-value-123"}))
        .await;
    let (dir, _) = e2.s.stop().await;
    let raw = std::fs::read(db_path(dir.path())).unwrap();
    assert!(!raw.windows(24).any(|w| w == b"another-secret-value-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_web_url_errors_are_json() {
    let s = TestServer::start_with_url(|c, url| {
        c.oauth_callback_url = Some(format!("{url}/api/v1/auth/oauth/callback"))
    })
    .await;
    let callback = format!("{}/api/v1/auth/oauth/callback", s.url);
    let idp = Idp::start(std::slice::from_ref(&callback));
    let admin = s.admin().await;
    s.post(
        "/api/v1/admin/oauth/providers",
        Some(&admin),
        json!({
            "name": "T", "slug": "test", "type": "oidc", "client_id": "posta",
            "client_secret": "posta-test-client-secret", "issuer": idp.issuer,
        }),
    )
    .await;
    let b = Browser::new();
    let stop = b
        .walk(
            &format!("{}/api/v1/auth/oauth/test/authorize", s.url),
            "ivy",
            &callback,
        )
        .await;
    assert_eq!(stop.status, 200, "{}", stop.body);
    let v: Value = serde_json::from_str(&stop.body).unwrap();
    assert_eq!(v["data"]["user"]["email"], "ivy@example.com");
    let (st, v) = s
        .get("/api/v1/auth/oauth/callback?code=x&state=y", None)
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["data"]["error"], "invalid_state");
    assert_eq!(err_code(&v), "BAD_REQUEST");
}

/// Every start stores a pending state until it expires: an address may start only so many
/// (20 × `login_rate_limit_count` per window) before it is told to wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_starts_are_bounded_per_address() {
    let e = setup().await;
    e.provider(json!({})).await;
    let (st, v) =
        e.s.put(
            "/api/v1/admin/settings",
            Some(&e.admin),
            json!({"settings": [{"key": "login_rate_limit_count", "value": "1", "type": "int"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    for i in 0..20 {
        let r = e.s.client.get(e.authorize("test")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "start {i}");
    }
    let r = e.s.client.get(e.authorize("test")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(err_code(&v), "TOO_MANY_REQUESTS");
    // The window ends.
    e.s.clock.advance(15 * 60 + 1);
    let r = e.s.client.get(e.authorize("test")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
}

/// Log injection: the callback's `error` parameter (anyone can send one, with a state they
/// started themselves) reaches the text log escaped, on one line, however many CR/LF it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_error_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = posta_cmd(dir.path());
    cmd.env(
        "POSTA_OAUTH_CALLBACK_URL",
        "http://127.0.0.1/api/v1/auth/oauth/callback",
    )
    .env("POSTA_LOG_FORMAT", "text");
    let b = Binary::spawn(cmd);
    b.ready().await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let admin = post_json(
        &c,
        &format!("{}/api/v1/auth/login", b.url()),
        None,
        json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    )
    .await;
    let admin = admin["data"]["token"].as_str().unwrap();
    // A plain OAuth 2.0 provider: explicit endpoints, nothing fetched to start a sign-in.
    let r = c
        .post(format!("{}/api/v1/admin/oauth/providers", b.url()))
        .bearer_auth(admin)
        .json(
            &json!({"name": "Plain", "slug": "plain", "type": "oidc", "client_id": "posta",
            "auth_url": "http://127.0.0.1:9/authorize", "token_url": "http://127.0.0.1:9/token",
            "userinfo_url": "http://127.0.0.1:9/userinfo"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .get(format!("{}/api/v1/auth/oauth/plain/authorize", b.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let state = loc
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .unwrap()
        .to_owned();
    let binding = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let forged = "2026-12-04T00:00:00.000000Z ERROR posta::domain::session: FORGED admin login";
    let error = format!("access_denied\r\n{forged}\n{forged}");
    let r = c
        .get(format!("{}/api/v1/auth/oauth/callback", b.url()))
        .query(&[("state", state.as_str()), ("error", error.as_str())])
        .header("Cookie", binding)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection() || r.status().is_client_error(),
        "{}",
        r.status()
    );
    // Wait for the fact: the refusal is logged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = b.stderr.lock().unwrap().clone();
        if log.contains("identity provider returned an error") {
            break log;
        }
        assert!(std::time::Instant::now() < deadline, "not logged: {log}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        !log.lines()
            .any(|l| l.starts_with(forged) || l.contains("FORGED") && !l.contains("\\u{a}")),
        "a forged line: {log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("identity provider returned an error"))
        .unwrap();
    assert!(
        line.contains("access_denied\\u{d}\\u{a}2026-12-04"),
        "{line}"
    );
    // Audit lines give ids plainly: the first admin's creation has no actor.
    let audit = log
        .lines()
        .find(|l| l.contains("event=\"user.created\""))
        .unwrap();
    assert!(audit.contains("actor=- subject="), "{audit}");
    assert!(!log.contains("Some(") && !log.contains("=None"), "{log}");
}

/// The owner of an account that may not be linked by email links it while signed in: the
/// flow carries the account it was started for, and the IdP account then signs in there.
/// Another account's identity, or a session ended meanwhile, links nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_links_a_provider_while_signed_in() {
    let e = setup().await;
    e.provider(json!({"auto_register": false})).await;
    let (token, uid) = e.s.register("Frank", "frank@example.com").await;
    assert_eq!(
        error_from(&e.sso("frank").await, &e.s.url),
        "account_exists"
    );
    let start = |b: &Browser, token: String| {
        let url = format!("{}/api/v1/users/me/oauth/test/link", e.s.url);
        let c = b.client.clone();
        async move {
            let r = c.post(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v["data"]["url"].as_str().unwrap().to_owned()
        }
    };
    let b = Browser::new();
    let url = start(&b, token.clone()).await;
    let stop = b.walk(&url, "frank", &e.callback).await;
    assert_eq!(
        stop.location.as_deref(),
        Some(format!("{}/#linked=test", e.s.url).as_str())
    );
    let signed_in = token_from(&e.sso("frank").await, &e.s.url);
    let (_, me) = e.s.get("/api/v1/users/me", Some(&signed_in)).await;
    assert_eq!(me["data"]["id"], uid.as_str());
    assert_eq!(
        me["data"]["auth_methods"],
        json!(["password", "oauth:test"])
    );
    // Bob cannot take Frank's IdP identity; a link started by a session that has since
    // ended links nothing.
    let (bob, _) = e.s.register("Bob", "bob@example.com").await;
    let b = Browser::new();
    let url = start(&b, bob.clone()).await;
    let stop = b.walk(&url, "frank", &e.callback).await;
    assert_eq!(error_from(&stop, &e.s.url), "linked_elsewhere");
    let b = Browser::new();
    let url = start(&b, bob.clone()).await;
    let (st, _) =
        e.s.post("/api/v1/users/me/sessions/logout", Some(&bob), json!({}))
            .await;
    assert_eq!(st, 200);
    let stop = b.walk(&url, "bob", &e.callback).await;
    assert_eq!(error_from(&stop, &e.s.url), "invalid_state");
}

/// An account with Posta 2FA gets Posta's code step after the identity provider (before: the
/// provider's sign-in skipped it), completed with the pending token; an admin may mark a
/// provider `skip_local_2fa` when it owns the second factor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_keeps_the_local_second_factor() {
    let e = setup().await;
    let p = e.provider(json!({"auto_register": true})).await;
    let token = token_from(&e.sso("zoe").await, &e.s.url);
    let (secret, _) = crate::mfa::enrol(&e.s, &token).await;
    let stop = e.sso("zoe").await;
    let loc = stop.location.clone().unwrap();
    let prefix = format!(
        "{}/login?requires_2fa=true&methods=totp,recovery_code#pending_token=",
        e.s.url
    );
    assert!(loc.starts_with(&prefix), "{loc}");
    assert!(
        !stop
            .set_cookies
            .iter()
            .any(|c| c.starts_with("posta_session=")),
        "no session before the code"
    );
    let pending = &loc[prefix.len()..];
    use crate::mfa::Now;
    e.s.clock.advance(30);
    let (st, v) =
        e.s.post(
            "/api/v1/auth/login",
            None,
            json!({"pending_token": pending, "two_factor_code": totp(&secret, e.s.clock_now())}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["user"]["email"], "zoe@example.com");
    e.edit_provider(&p, json!({"skip_local_2fa": true})).await;
    token_from(&e.sso("zoe").await, &e.s.url);
}

/// The hand-over to Posta's dashboards: `<web_url>/auth/oauth/callback` with the session
/// cookie; with `oauth_token_in_url` also `?token=` (the seed-era dashboard reads it there).
/// The built-in dashboard serves that page; no API route takes a token from the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_over_to_the_dashboards_callback_page() {
    let e = setup_with(|c, _| c.oauth_token_in_url = true).await;
    e.provider(json!({})).await;
    let stop = e.sso("alice").await;
    let loc = stop.location.clone().unwrap();
    let web = &e.s.url;
    let in_url = loc
        .strip_prefix(&format!("{web}/auth/oauth/callback?token="))
        .unwrap_or_else(|| panic!("{loc}"))
        .to_owned();
    let cookie = stop
        .set_cookies
        .iter()
        .find_map(|c| c.strip_prefix("posta_session="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    assert_eq!(in_url, cookie, "the same session both ways");
    let (st, _) = e.s.get("/api/v1/users/me", Some(&in_url)).await;
    assert_eq!(st, 200);
    // A token in the query string is no credential.
    let (st, _) =
        e.s.get(&format!("/api/v1/users/me?token={in_url}"), None)
            .await;
    assert_eq!(st, 401);
    // The built-in dashboard has the page (HTML under its CSP, not a JSON 404).
    let r =
        e.s.client
            .get(format!("{web}/auth/oauth/callback"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.headers().contains_key("content-security-policy"));
}
