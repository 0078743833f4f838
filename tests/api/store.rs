//! The store across restarts: kept data, a corrupt or newer file refused and left untouched,
//! the v1 layout migrated at open.

use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_users_and_sessions() {
    let s = TestServer::start().await;
    let (token, _) = s.register("Ada", "ada@example.com").await;
    let (dir, clock) = s.stop().await;
    let cfg = test_config(dir.path());
    let s = TestServer::start_in(dir, cfg, clock).await;
    let (st, v) = s.get("/api/v1/users/me", Some(&token)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["email"], "ada@example.com");
    s.login("ada@example.com", PASSWORD).await;
}

#[test]
fn corrupt_store_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(db_path(dir.path()), &garbage).unwrap();
    let out = posta_cmd(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt or not a posta database"), "{err}");
    assert_eq!(
        std::fs::read(db_path(dir.path())).unwrap(),
        garbage,
        "file untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = posta::store::Store::open(&db_path(dir.path())).unwrap();
        store
            .write_blocking(|tx| {
                posta::store::meta::set_schema_version(tx, posta::store::SCHEMA_VERSION + 1)
            })
            .unwrap();
    }
    let out = posta_cmd(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this binary supports"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_store_is_migrated_at_open() {
    // A store in the v1 layout: users but no admin index, schema_version 1.
    let s = TestServer::start().await;
    s.register("Old", "old@example.com").await;
    let (dir, clock) = s.stop().await;
    {
        let store = posta::store::Store::open(&db_path(dir.path())).unwrap();
        store
            .write_blocking(|tx| {
                tx.delete_table(posta::store::tables::ADMINS).unwrap();
                posta::store::meta::set_schema_version(tx, 1)
            })
            .unwrap();
        let v = store.read(posta::store::meta::schema_version).unwrap();
        assert_eq!(v, Some(1));
    }
    let cfg = test_config(dir.path());
    let s = TestServer::start_in(dir, cfg, clock).await;
    let admin = s.admin().await;
    let (_, users) = s.get("/api/v1/admin/users", Some(&admin)).await;
    assert_eq!(
        users["pageable"]["total_elements"], 2,
        "no second admin was created"
    );
    // The rebuilt index knows the admin: alone it cannot be demoted; with a second admin it
    // can (an empty index would count one admin in both cases).
    let (_, me) = s.get("/api/v1/users/me", Some(&admin)).await;
    let me = me["data"]["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .put(
            &format!("/api/v1/admin/users/{me}"),
            Some(&admin),
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .post("/api/v1/admin/users", Some(&admin), json!({"name": "Two", "email": "two@example.com", "password": PASSWORD, "role": "admin"}))
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .put(
            &format!("/api/v1/admin/users/{me}"),
            Some(&admin),
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(st, 200);
    let (dir, _) = s.stop().await;
    let store = posta::store::Store::open(&db_path(dir.path())).unwrap();
    assert_eq!(
        store.read(posta::store::meta::schema_version).unwrap(),
        Some(posta::store::SCHEMA_VERSION)
    );
}

/// A store and its encryption key belong together: a server finding the key missing does not
/// make up a new one for a store with sealed secrets, a wrong key stops start-up with a clear
/// message (before: a 500 at the first 2FA sign-in), and the right key starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_never_starts_with_another_encryption_key() {
    use posta::clock::{Clock, SystemClock};
    let dir = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut c = posta_cmd(dir.path());
        c.env_remove("POSTA_ENCRYPTION_KEY");
        c
    };
    let b = Binary::spawn(cmd());
    b.ready().await;
    let c = reqwest::Client::new();
    let url = b.url();
    let reg = post_json(
        &c,
        &format!("{url}/api/v1/auth/register"),
        None,
        json!({"name": "Kim", "email": "kim@example.com", "password": PASSWORD}),
    )
    .await;
    let t = reg["data"]["token"].as_str().unwrap().to_owned();
    let setup = post_json(
        &c,
        &format!("{url}/api/v1/users/me/2fa/setup"),
        Some(&t),
        json!({}),
    )
    .await;
    let secret = setup["data"]["secret"].as_str().unwrap().to_owned();
    let r = c
        .post(format!("{url}/api/v1/users/me/2fa/verify"))
        .bearer_auth(&t)
        .json(&json!({"code": totp(&secret, SystemClock.now())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    b.signal(15);
    let mut b = b;
    b.wait_exit(20).await;
    let key = dir.path().join("encryption.key");
    let kept = dir.path().join("encryption.key.kept");
    std::fs::rename(&key, &kept).unwrap();
    // No key: refused, and none made up.
    // The log is read by a thread of its own: wait for the line, not for a time.
    async fn said(b: &Binary, what: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let err = b.stderr.lock().unwrap().clone();
            if err.contains(what) || std::time::Instant::now() > deadline {
                return err;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let mut b = Binary::spawn(cmd());
    assert!(!b.wait_exit(20).await.success());
    let err = said(&b, "no key was found").await;
    assert!(
        err.contains("no key was found") && err.contains("encryption.key"),
        "{err}"
    );
    assert!(!key.exists(), "a new key was generated");
    // Another key: refused.
    let mut other = cmd();
    other.env("POSTA_ENCRYPTION_KEY", "22".repeat(32));
    let mut b = Binary::spawn(other);
    assert!(!b.wait_exit(20).await.success());
    let err = said(&b, "does not match").await;
    assert!(err.contains("does not match"), "{err}");
    // The right one: the 2FA user signs in.
    std::fs::rename(&kept, &key).unwrap();
    let b = Binary::spawn(cmd());
    b.ready().await;
    let r = c
        .post(format!("{}/api/v1/auth/login", b.url()))
        .json(&json!({"email": "kim@example.com", "password": PASSWORD,
            "two_factor_code": totp(&secret, SystemClock.now() + 30)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Run `posta args…` on `dir` with its keys in the data directory (no key in the
/// environment), `stdin` as its first input line.
fn posta_keyless(
    dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = posta_cmd(dir);
    c.env_remove("POSTA_ENCRYPTION_KEY")
        .env_remove("POSTA_JWT_SECRET")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(format!("{s}\n").as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn keyless_server(dir: &std::path::Path) -> Binary {
    let mut c = posta_cmd(dir);
    c.env_remove("POSTA_ENCRYPTION_KEY")
        .env_remove("POSTA_JWT_SECRET");
    Binary::spawn(c)
}

async fn sign_in(url: &str, email: &str, code: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD, "two_factor_code": code}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn me(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Day two on a new host: `backup --with-keys` (taken while the server runs) holds the keys
/// and the store encrypted under a passphrase; `restore` on an empty data directory puts both
/// back, and the 2FA user signs in there with her session still valid. Then the keys are
/// rotated (server stopped): sessions end, the TOTP secret and the recovery codes still work,
/// the old key is kept for older backups, and a rotation interrupted before or after the
/// store's commit is settled at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_travel_with_an_encrypted_backup_and_rotate_without_losing_2fa() {
    use posta::clock::{Clock, SystemClock};
    const PASSPHRASE: &str = "orchard lamp ninety rivers";
    let a = tempfile::tempdir().unwrap();
    let mut server = keyless_server(a.path());
    server.ready().await;
    let c = reqwest::Client::new();
    let url = server.url();
    let reg = post_json(
        &c,
        &format!("{url}/api/v1/auth/register"),
        None,
        json!({"name": "Kim", "email": "kim@example.com", "password": PASSWORD}),
    )
    .await;
    let t = reg["data"]["token"].as_str().unwrap().to_owned();
    let setup = post_json(
        &c,
        &format!("{url}/api/v1/users/me/2fa/setup"),
        Some(&t),
        json!({}),
    )
    .await;
    let secret = setup["data"]["secret"].as_str().unwrap().to_owned();
    let v = post_json(
        &c,
        &format!("{url}/api/v1/users/me/2fa/verify"),
        Some(&t),
        json!({"code": totp(&secret, SystemClock.now())}),
    )
    .await;
    let recovery: Vec<String> = v["data"]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();

    // Backup with keys while the server runs; the passphrase comes from stdin.
    let archive = a.path().join("posta.backup.age");
    let out = posta_keyless(
        a.path(),
        &["backup", "--with-keys", archive.to_str().unwrap()],
        Some("too short"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    assert!(!archive.exists());
    let out = posta_keyless(
        a.path(),
        &["backup", "--with-keys", archive.to_str().unwrap()],
        Some(PASSPHRASE),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup with keys written"));
    let bytes = std::fs::read(&archive).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    let enc_key = std::fs::read_to_string(a.path().join("encryption.key")).unwrap();
    let jwt_key = std::fs::read_to_string(a.path().join("jwt.key")).unwrap();
    // Nothing in the file is readable without the passphrase: not the keys, not the emails.
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(enc_key.trim()) && !text.contains("kim@example.com"));
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&archive).unwrap().permissions()
        ) & 0o777,
        0o600
    );
    server.signal(15);
    assert!(server.wait_exit(20).await.success());

    // A new host: a wrong passphrase changes nothing there.
    let b = tempfile::tempdir().unwrap();
    let bdir = b.path().join("data");
    let out = posta_keyless(
        &bdir_ready(&bdir),
        &["restore", archive.to_str().unwrap()],
        Some("not the passphrase"),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot decrypt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_dir(&bdir).unwrap().next().is_none(),
        "a failed restore left files"
    );
    let pass_file = b.path().join("passphrase");
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n")).unwrap();
    let out = posta_keyless(
        &bdir,
        &[
            "restore",
            archive.to_str().unwrap(),
            "--passphrase-file",
            pass_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("restored") && said.contains("encryption key written"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(bdir.join("encryption.key")).unwrap(),
        enc_key
    );
    assert_eq!(
        std::fs::read_to_string(bdir.join("jwt.key")).unwrap(),
        jwt_key
    );

    let mut server = keyless_server(&bdir);
    server.ready().await;
    let url = server.url();
    assert_eq!(me(&url, &t).await, 200, "the session came with its JWT key");
    // (A recovery code: the enrolment used this 30-second step's TOTP code already.)
    let (st, v) = sign_in(&url, "kim@example.com", &recovery[2]).await;
    assert_eq!(st, 200, "{v}");
    // Rotation needs the server stopped.
    let out = posta_keyless(&bdir, &["rotate-keys"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it"));
    server.signal(15);
    assert!(server.wait_exit(20).await.success());

    let out = posta_keyless(&bdir, &["rotate-keys"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("1 TOTP secrets") && said.contains("sessions ended"),
        "{said}"
    );
    let new_key = std::fs::read_to_string(bdir.join("encryption.key")).unwrap();
    assert_ne!(new_key, enc_key);
    assert_eq!(
        std::fs::read_to_string(bdir.join("encryption.key.previous")).unwrap(),
        enc_key
    );
    assert_ne!(
        std::fs::read_to_string(bdir.join("jwt.key")).unwrap(),
        jwt_key
    );
    assert!(!bdir.join("encryption.key.new").exists());

    // A rotation stopped before the store committed: the staged key is dropped at start.
    std::fs::write(bdir.join("encryption.key.new"), "33".repeat(32)).unwrap();
    let mut server = keyless_server(&bdir);
    server.ready().await;
    let url = server.url();
    assert!(!bdir.join("encryption.key.new").exists());
    assert_eq!(
        std::fs::read_to_string(bdir.join("encryption.key")).unwrap(),
        new_key
    );
    assert_eq!(
        me(&url, &t).await,
        401,
        "sessions signed with the old JWT secret ended"
    );
    let (st, v) = sign_in(
        &url,
        "kim@example.com",
        &totp(&secret, SystemClock.now() + 30),
    )
    .await;
    assert_eq!(st, 200, "TOTP after rotation: {v}");
    let (st, v) = sign_in(&url, "kim@example.com", &recovery[0]).await;
    assert_eq!(st, 200, "recovery code after rotation: {v}");
    server.signal(15);
    assert!(server.wait_exit(20).await.success());

    // A rotation stopped after the commit, before the rename: finished at start.
    std::fs::rename(bdir.join("encryption.key"), bdir.join("encryption.key.new")).unwrap();
    std::fs::copy(
        bdir.join("encryption.key.previous"),
        bdir.join("encryption.key"),
    )
    .unwrap();
    let mut server = keyless_server(&bdir);
    server.ready().await;
    assert_eq!(
        std::fs::read_to_string(bdir.join("encryption.key")).unwrap(),
        new_key
    );
    let (st, v) = sign_in(&server.url(), "kim@example.com", &recovery[1]).await;
    assert_eq!(st, 200, "{v}");
    server.signal(15);
    assert!(server.wait_exit(20).await.success());
}

fn bdir_ready(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    dir.to_owned()
}
