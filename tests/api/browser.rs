//! The dashboard in a real browser: Debian's chromium driven by playwright-core
//! (tests/browser/flows.mjs) against the real server and the real identity provider.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::common::*;
use crate::idp::Idp;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium and playwright-core, installed when missing.
fn ensure_browser() {
    ensure_command("chromium", "chromium");
    crate::idp::ensure_npm();
    if !browser_dir()
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(browser_dir())
            .output()
            .expect("npm");
        assert!(
            out.status.success(),
            "npm ci: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Run one of the browser scripts against `base`; its stdout, after asserting it passed.
async fn run_script(script: &str, base: &str, env: Vec<(&'static str, String)>) -> PathBuf {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let (script, base) = (script.to_owned(), base.to_owned());
    let out = tokio::task::spawn_blocking({
        let out_dir = out_dir.clone();
        let script = script.clone();
        move || {
            Command::new("node")
                .arg(browser_dir().join(&script))
                .env("BASE", base)
                .env("ADMIN_EMAIL", ADMIN_EMAIL)
                .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("OUT", &out_dir)
                .envs(env)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\nscreenshots in {}", out_dir.display());
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" flows passed"), "{stdout}");
    out_dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_flows_in_chromium() {
    ensure_browser();
    let s = TestServer::start_with_url(|c, url| c.web_url = Some(url.to_owned())).await;
    let idp = Idp::start(&[format!("{}/api/v1/auth/oauth/callback", s.url)]);
    let admin = s.admin().await;
    let (st, v) = s
        .post(
            "/api/v1/admin/oauth/providers",
            Some(&admin),
            json!({
                "name": "Test IdP", "slug": "test", "type": "oidc", "client_id": "posta",
                "client_secret": "posta-test-client-secret", "issuer": idp.issuer,
            }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let out_dir = run_script("flows.mjs", &s.url, vec![("SSO_NAME", "Test IdP".into())]).await;
    for shot in [
        "login",
        "register",
        "account",
        "two-factor-setup",
        "two-factor-recovery-codes",
        "admin",
        "account-sso",
    ] {
        assert!(out_dir.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
}

/// Every email flow from the dashboard, with the mail read from a real SMTP server: sign-up
/// and the verification page, email change, forgot/reset password, an invitation from the
/// admin page, the admin's reset-link button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_flows_in_chromium() {
    ensure_browser();
    // The script starts the SMTP server on this port before anything is mailed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = TestServer::start_with_url(|c, url| crate::mail::with_smtp(c, url, port)).await;
    let out_dir = run_script("mail.mjs", &s.url, vec![("SMTP_PORT", port.to_string())]).await;
    for shot in [
        "verify-email",
        "confirm-email",
        "forgot-password",
        "reset-password",
        "invitation",
        "admin-reset-link",
    ] {
        assert!(out_dir.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_served_with_a_strict_policy() {
    let s = TestServer::start().await;
    let r = s.client.get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/login");
    for p in ["/login", "/register", "/account", "/admin"] {
        let r = s.client.get(format!("{}{p}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let body = r.text().await.unwrap();
        assert!(
            body.contains("/assets/app.js") && !body.contains("<script>"),
            "no inline script"
        );
    }
    let r = s
        .client
        .get(format!("{}/assets/app.js", s.url))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    // Signed in (cookie from the login answer): / goes to the account page.
    let r = s
        .client
        .post(format!("{}/api/v1/auth/login", s.url))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let r = s
        .client
        .get(format!("{}/", s.url))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/account");
    // The cookie works for a safe request that no browser marks cross-site, and not from
    // another origin.
    let me = |extra: Vec<(&'static str, &'static str)>| {
        let mut rb = s
            .client
            .get(format!("{}/api/v1/users/me", s.url))
            .header("cookie", &pair);
        for (k, v) in extra {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    assert_eq!(me(vec![]).await.unwrap().status(), 200);
    assert_eq!(
        me(vec![("sec-fetch-site", "cross-site")])
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        me(vec![("x-requested-with", "posta")])
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        me(vec![
            ("x-requested-with", "posta"),
            ("origin", "https://evil.example")
        ])
        .await
        .unwrap()
        .status(),
        403
    );
    // Logout clears the cookie.
    let r = s
        .client
        .post(format!("{}/api/v1/users/me/sessions/logout", s.url))
        .header("cookie", &pair)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        me(vec![("x-requested-with", "posta")])
            .await
            .unwrap()
            .status(),
        401
    );
}

/// Passkeys in Chromium with a virtual authenticator: add one on the account page, sign in
/// with it alone and as the second factor after the password, a replay and another browser
/// refused, remove it. WebAuthn needs a secure context: the dashboard is on localhost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_in_chromium() {
    ensure_browser();
    let s = TestServer::start_with_url(|c, url| {
        c.web_url = Some(url.replace("127.0.0.1", "localhost"));
    })
    .await;
    let base = s.url.replace("127.0.0.1", "localhost");
    let out_dir = run_script("passkeys.mjs", &base, vec![]).await;
    for shot in ["passkeys", "login-passkey", "login-second-factor-passkey"] {
        assert!(out_dir.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
    // Every attempt is in the audit log.
    let admin = s.admin().await;
    let (_, v) = s.get("/api/v1/admin/events?size=100", Some(&admin)).await;
    let kinds: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for k in [
        "passkey.added",
        "passkey.removed",
        "passkey.reset",
        "login.failure",
        "login.success",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    // The script left one passkey ("Tablet"): the host command removes it while the server
    // runs (through its control socket).
    let dir = s.dir.path().to_owned();
    let out = crate::host::posta(
        &dir,
        &[
            "admin",
            "remove-passkeys",
            "--email",
            "passkey.user@example.com",
        ],
        None,
    )
    .await;
    let text = crate::host::stdout(&out);
    assert!(text.contains("1 passkey(s) removed"), "{text}");
}
