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
