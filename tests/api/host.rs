//! `posta admin …` on the host: every command, with the server running (through its control
//! socket, into the same use cases as the HTTP API) and with it stopped (in the command's own
//! process), under the same rules.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::{Value, json};

use crate::common::{ADMIN_EMAIL, PASSWORD, TestServer, posta_cmd, test_config};
use crate::mfa::enrol;

const NEW_PASSWORD: &str = "quartz-lantern-93-fjord";

/// Run `posta args…` on `dir` off the runtime (the server may be answering in this process).
pub async fn posta(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let (dir, args, stdin): (PathBuf, Vec<String>, Option<String>) = (
        dir.to_owned(),
        args.iter().map(|a| (*a).to_owned()).collect(),
        stdin.map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || {
        let cfg = test_config(&dir);
        let mut c = posta_cmd(&dir);
        c.env("POSTA_JWT_SECRET", cfg.jwt_secret.unwrap().0)
            .env("POSTA_ENCRYPTION_KEY", cfg.encryption_key.unwrap().0)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{s}\n").as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

pub fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn refused(o: &Output, why: &str) {
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(why), "{err}");
}

/// The whole set on one store; `server` is the running server, if any.
async fn every_command(dir: &Path, server: Option<&TestServer>, who: &str) {
    let email = format!("{who}@example.com");
    let out = posta(
        dir,
        &[
            "admin",
            "create-user",
            "--email",
            &email,
            "--name",
            who,
            "--password-stdin",
        ],
        Some(PASSWORD),
    )
    .await;
    assert!(stdout(&out).starts_with(&format!("created {email} (user) id=")));
    // The password policy of the API applies to the host as well.
    let weak = posta(
        dir,
        &[
            "admin",
            "create-user",
            "--email",
            "weak@example.com",
            "--name",
            "W",
            "--password-stdin",
        ],
        Some("short"),
    )
    .await;
    refused(&weak, "password");

    let boss = format!("{who}-boss@example.com");
    let out = posta(
        dir,
        &[
            "admin",
            "create-user",
            "--email",
            &boss,
            "--name",
            "Boss",
            "--role",
            "admin",
        ],
        None,
    )
    .await;
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("created {boss} (admin) id=")),
        "{text}"
    );
    assert!(
        text.contains("\npassword: "),
        "a generated password is shown once: {text}"
    );
    let list = stdout(&posta(dir, &["admin", "list-users"], None).await);
    assert!(
        list.lines()
            .any(|l| l.contains(&boss) && l.contains(" admin ")),
        "{list}"
    );
    assert!(
        list.contains(&email) && list.contains(ADMIN_EMAIL),
        "{list}"
    );

    let out = posta(
        dir,
        &["admin", "set-role", "--email", &email, "--role", "admin"],
        None,
    )
    .await;
    assert_eq!(stdout(&out), format!("{email} is now admin\n"));

    let session = match server {
        Some(s) => Some(s.login(&email, PASSWORD).await),
        None => None,
    };
    let out = posta(dir, &["admin", "reset-password", "--email", &email], None).await;
    let text = stdout(&out);
    assert!(text.contains("all its sessions were ended"), "{text}");
    let generated = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    if let (Some(s), Some(t)) = (server, session) {
        // Effective on the very next request, and the new password works.
        assert_eq!(s.get("/api/v1/users/me", Some(&t)).await.0, 401);
        let t = s.login(&email, &generated).await;
        let (_, me) = s.get("/api/v1/users/me", Some(&t)).await;
        assert_eq!(me["data"]["role"], "admin");
    }
    let out = posta(
        dir,
        &[
            "admin",
            "reset-password",
            "--email",
            &email,
            "--password-stdin",
        ],
        Some(NEW_PASSWORD),
    )
    .await;
    stdout(&out);

    // The last-admin rule is the API's: demoting one of two admins works, the last one not.
    let out = posta(
        dir,
        &["admin", "set-role", "--email", &email, "--role", "user"],
        None,
    )
    .await;
    stdout(&out);
    let out = posta(
        dir,
        &["admin", "set-role", "--email", &boss, "--role", "user"],
        None,
    )
    .await;
    stdout(&out);
    let out = posta(
        dir,
        &[
            "admin",
            "set-role",
            "--email",
            ADMIN_EMAIL,
            "--role",
            "user",
        ],
        None,
    )
    .await;
    refused(&out, "last active admin");
    let out = posta(
        dir,
        &[
            "admin",
            "set-role",
            "--email",
            "nobody@example.com",
            "--role",
            "user",
        ],
        None,
    )
    .await;
    refused(&out, "no user with email nobody@example.com");
}

async fn events(s: &TestServer, kind: &str) -> Vec<Value> {
    let admin = s.admin().await;
    let (_, v) = s
        .get(
            &format!("/api/v1/admin/events?type={kind}&size=100"),
            Some(&admin),
        )
        .await;
    v["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_command_works_with_the_server_running_and_stopped() {
    let s = TestServer::start().await;
    let dir = s.dir.path().to_owned();
    every_command(&dir, Some(&s), "hal").await;
    // disable-2fa for a lost device, while the server runs.
    let (t, _) = s.register("Ray", "ray@example.com").await;
    enrol(&s, &t).await;
    let out = posta(
        &dir,
        &["admin", "disable-2fa", "--email", "ray@example.com"],
        None,
    )
    .await;
    assert_eq!(
        stdout(&out),
        "two-factor authentication disabled for ray@example.com\n"
    );
    s.login("ray@example.com", PASSWORD).await;
    // Audited as the API's changes are, marked as coming from the host.
    let changed = events(&s, "password.changed").await;
    assert!(
        changed
            .iter()
            .any(|e| e["detail"].as_str().unwrap().ends_with("(host command)")),
        "{changed:?}"
    );

    // The same commands with the server stopped, in the command's own process.
    let (dir_guard, clock) = s.stop().await;
    every_command(dir_guard.path(), None, "ivy").await;
    let s = TestServer::start_in(dir_guard, test_config(&dir), clock).await;
    let t = s.login("ivy@example.com", NEW_PASSWORD).await;
    enrol(&s, &t).await;
    let (dir_guard, clock) = s.stop().await;
    let out = posta(
        dir_guard.path(),
        &["admin", "disable-2fa", "--email", "ivy@example.com"],
        None,
    )
    .await;
    stdout(&out);
    let s = TestServer::start_in(dir_guard, test_config(&dir), clock).await;
    let (st, v) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ivy@example.com", "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(st, 200, "2FA is off: {v}");
}

/// The token in a printed or answered reset link.
fn link_token(text: &str) -> String {
    let at = text.find("token=").unwrap_or_else(|| panic!("{text}"));
    text[at + 6..].split_whitespace().next().unwrap().to_owned()
}

/// An admin-issued reset link, for installs without mail and for support: from the API and
/// from the host (server running, through the control socket, and stopped). The person
/// chooses the password; the link works once; every session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_links_from_the_api_and_the_host() {
    let s = TestServer::start().await;
    let dir = s.dir.path().to_owned();
    let admin = s.admin().await;
    let (t, uid) = s.register("Liv", "liv@example.com").await;
    let (st, v) = s
        .post(
            &format!("/api/v1/admin/users/{uid}/reset-link"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["mailed"], false, "no relay configured");
    let link = v["data"]["link"].as_str().unwrap().to_owned();
    assert!(link.contains("/auth/reset-password?token="), "{link}");
    let (st, _) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": link_token(&link), "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.get("/api/v1/users/me", Some(&t)).await.0,
        401,
        "sessions ended"
    );
    let (st, _) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": link_token(&link), "new_password": "another-long-pass-42"}),
        )
        .await;
    assert_eq!(st, 400, "single use");
    let (st, _) = s
        .post(
            "/api/v1/admin/users/00000000-0000-0000-0000-000000000009/reset-link",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(st, 404);

    // From the host while the server runs: a newer link replaces the older one.
    let out = posta(
        &dir,
        &["admin", "reset-link", "--email", "liv@example.com"],
        None,
    )
    .await;
    let first = link_token(&stdout(&out));
    let out = posta(
        &dir,
        &["admin", "reset-link", "--email", "liv@example.com"],
        None,
    )
    .await;
    let second = link_token(&stdout(&out));
    let (st, _) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": first, "new_password": "river-lamp-88-quartz"}),
        )
        .await;
    assert_eq!(st, 400, "superseded by the newer link");
    let (st, _) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": second, "new_password": "river-lamp-88-quartz"}),
        )
        .await;
    assert_eq!(st, 200);
    s.login("liv@example.com", "river-lamp-88-quartz").await;
    let issued = events(&s, "password.reset_link_issued").await;
    assert_eq!(issued.len(), 3);
    assert!(
        issued[0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("(host command)")
    );

    // And with the server stopped, in the command's own process.
    let (dir_guard, clock) = s.stop().await;
    let out = posta(
        dir_guard.path(),
        &["admin", "reset-link", "--email", "liv@example.com"],
        None,
    )
    .await;
    let third = link_token(&stdout(&out));
    let s = TestServer::start_in(dir_guard, test_config(&dir), clock).await;
    let (st, _) = s
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": third, "new_password": "maple-orbit-19-stone"}),
        )
        .await;
    assert_eq!(st, 200);
    s.login("liv@example.com", "maple-orbit-19-stone").await;
}
