//! What Posta's own dashboards send and read: API keys at Posta's current path, the user's
//! settings object, identity providers' `hidden`/`sso_available`/discovery, the user and
//! session objects' fields, `/info`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// Posta's current dashboard manages keys under `/workspaces/current/api-keys` (with a
/// workspace header it may send), and falls back to personal mode on an empty workspace
/// list. The keys are the caller's own; another user's key is not found there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_at_posta_current_path_and_the_expiry_default() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Wes", "wes@example.com").await;
    let (other, _) = s.register("Oda", "oda@example.com").await;
    let (st, v) = s.get("/api/v1/workspaces", Some(&t)).await;
    assert_eq!((st.as_u16(), v["data"].clone()), (200, json!([])));

    // Created at the workspace path with the header Posta sends; no expiry given: the
    // user's `api_key_expiry_days` (Posta's default 90).
    let r = s
        .client
        .post(format!("{}/api/v1/workspaces/current/api-keys", s.url))
        .bearer_auth(&t)
        .header("X-Posta-Workspace-Id", "7")
        .json(&json!({"name": "mailer", "current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["data"]["id"].as_str().unwrap().to_owned();
    let key = v["data"]["key"].as_str().unwrap().to_owned();
    let created = {
        use posta::clock::Clock;
        s.clock.now()
    };
    assert_eq!(
        v["data"]["expires_at"],
        posta::clock::rfc3339(created + 90 * 86_400)
    );

    // The same key under both paths, listed and fetched.
    for base in [
        "/api/v1/workspaces/current/api-keys",
        "/api/v1/users/me/api-keys",
    ] {
        let (st, v) = s.get(&format!("{base}?page=0"), Some(&t)).await;
        assert_eq!(st, 200);
        assert_eq!(v["data"][0]["id"], id.as_str());
        let (st, v) = s.get(&format!("{base}/{id}"), Some(&t)).await;
        assert_eq!(
            (st.as_u16(), v["data"]["name"].clone()),
            (200, json!("mailer"))
        );
        assert!(!v.to_string().contains(&key), "the key is shown once");
        let (st, _) = s.get(&format!("{base}/{id}"), Some(&other)).await;
        assert_eq!(st, 404, "another user's key");
    }
    // Revoke and delete at the workspace path.
    let (st, v) = s
        .put(
            &format!("/api/v1/workspaces/current/api-keys/{id}/revoke"),
            Some(&t),
            json!({}),
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["data"]["revoked"].clone()),
        (200, json!(true))
    );
    let (st, _) = s
        .delete(
            &format!("/api/v1/workspaces/current/api-keys/{id}"),
            Some(&t),
        )
        .await;
    assert_eq!(st, 200);

    // The user's default changes the next key's expiry; 0 means never, as does an explicit 0.
    let (st, v) = s
        .put(
            "/api/v1/users/me/settings",
            Some(&t),
            json!({"api_key_expiry_days": 0}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = s
        .post(
            "/api/v1/users/me/api-keys",
            Some(&t),
            json!({"name": "forever", "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(v["data"]["expires_at"], Value::Null);
    let (_, v) = s
        .post(
            "/api/v1/users/me/api-keys",
            Some(&t),
            json!({"name": "week", "expires_in_days": 7, "current_password": PASSWORD}),
        )
        .await;
    assert!(v["data"]["expires_at"].is_string());
}

/// `GET/PUT /users/me/settings` round-trips Posta's object: every key with its default,
/// partial updates, the object sent back whole (with its read-only fields), bad values
/// refused without changing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_settings_round_trip() {
    let s = TestServer::start().await;
    let (t, uid) = s.register("Sia", "sia@example.com").await;
    let (st, v) = s.get("/api/v1/users/me/settings", Some(&t)).await;
    assert_eq!(st, 200);
    let d = &v["data"];
    assert_eq!(d["user_id"], uid.as_str());
    assert_eq!(d["api_key_expiry_days"], 90);
    assert_eq!(d["email_notifications"], true);
    assert_eq!(d["notify_api_key_expiry"], true);
    assert_eq!(d["timezone"], "UTC");
    assert_eq!(d["default_template_id"], Value::Null);
    // Posta's settings page sends the switches it shows.
    let (st, v) = s
        .put(
            "/api/v1/users/me/settings",
            Some(&t),
            json!({"email_notifications": false, "notification_email": "", "daily_report": true,
                   "notify_bounce_alerts": false, "notify_api_key_expiry": false,
                   "notify_workspace_activity": true}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["email_notifications"], false);
    assert_eq!(v["data"]["daily_report"], true);
    // The whole object back, read-only fields included, changes one more thing.
    let mut whole = v["data"].clone();
    whole["timezone"] = json!("Europe/Rome");
    let (st, v) = s.put("/api/v1/users/me/settings", Some(&t), whole).await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = s.get("/api/v1/users/me/settings", Some(&t)).await;
    assert_eq!(v["data"]["timezone"], "Europe/Rome");
    assert_eq!(v["data"]["notify_api_key_expiry"], false);
    // All or nothing: one bad value, nothing changes.
    for bad in [
        json!({"timezone": "UTC", "api_key_expiry_days": 100000}),
        json!({"daily_report": "yes"}),
        json!({"theme": "dark"}),
        json!(["not", "an", "object"]),
    ] {
        let (st, v) = s.put("/api/v1/users/me/settings", Some(&t), bad).await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["success"], false);
    }
    let (_, v) = s.get("/api/v1/users/me/settings", Some(&t)).await;
    assert_eq!(v["data"]["timezone"], "Europe/Rome");
    // Another user's settings are their own.
    let (o, _) = s.register("Oli", "oli@example.com").await;
    let (_, v) = s.get("/api/v1/users/me/settings", Some(&o)).await;
    assert_eq!(v["data"]["timezone"], "UTC");
}

/// The admin form always sends `hidden`; a hidden provider is left off the login page's
/// list but still works, and discovery by email domain finds it. `sso_available` says
/// whether any provider is enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_providers_and_discovery() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (_, v) = s.get("/api/v1/auth/oauth/providers", None).await;
    assert_eq!(v["data"], json!({"providers": [], "sso_available": false}));
    let (st, v) = s
        .post(
            "/api/v1/admin/oauth/providers",
            Some(&admin),
            json!({"name": "Corp", "slug": "corp", "type": "oidc", "client_id": "posta",
                   "client_secret": "s3cret", "issuer": "https://idp.corp.example",
                   "allowed_domains": ["corp.example"], "enabled": true, "hidden": true}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["data"]["hidden"], true);
    let pid = v["data"]["id"].as_str().unwrap().to_owned();
    let (_, v) = s.get("/api/v1/auth/oauth/providers", None).await;
    assert_eq!(v["data"], json!({"providers": [], "sso_available": true}));
    // Discovery: the provider for the domain, whatever the local part and case; none for
    // another domain; a bad address is a 400.
    let (st, v) = s
        .post(
            "/api/v1/auth/oauth/discover",
            None,
            json!({"email": "Ann@Corp.Example"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["data"],
        json!({"slug": "corp", "name": "Corp", "type": "oidc"})
    );
    let (st, v) = s
        .post(
            "/api/v1/auth/oauth/discover",
            None,
            json!({"email": "ann@elsewhere.example"}),
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["error"]["code"].clone()),
        (404, json!("NOT_FOUND"))
    );
    let (st, _) = s
        .post(
            "/api/v1/auth/oauth/discover",
            None,
            json!({"email": "not an email"}),
        )
        .await;
    assert_eq!(st, 400);
    // Shown again once not hidden; a disabled one is not discovered.
    let (st, _) = s
        .put(
            &format!("/api/v1/admin/oauth/providers/{pid}"),
            Some(&admin),
            json!({"hidden": false}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = s.get("/api/v1/auth/oauth/providers", None).await;
    assert_eq!(v["data"]["providers"][0]["slug"], "corp");
    s.put(
        &format!("/api/v1/admin/oauth/providers/{pid}"),
        Some(&admin),
        json!({"enabled": false}),
    )
    .await;
    let (st, _) = s
        .post(
            "/api/v1/auth/oauth/discover",
            None,
            json!({"email": "ann@corp.example"}),
        )
        .await;
    assert_eq!(st, 404);
    let (_, v) = s.get("/api/v1/auth/oauth/providers", None).await;
    assert_eq!(v["data"]["sso_available"], false);
}

/// The user object carries what the current dashboard's banner and profile read, and
/// sessions say which browser, system and device they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_session_fields() {
    let s = TestServer::start().await;
    let (t, _) = s.register("Uma", "uma@example.com").await;
    let (_, v) = s.get("/api/v1/users/me", Some(&t)).await;
    let u = &v["data"];
    for f in [
        "email_verified",
        "email_verified_at",
        "email_verification_required",
        "scheduled_deletion_at",
    ] {
        assert!(u.get(f).is_some(), "{f} missing: {u}");
    }
    assert_eq!(u["email_verified"], false);
    assert_eq!(u["email_verification_required"], false);
    assert_eq!(u["scheduled_deletion_at"], Value::Null);
    let admin = s.admin().await;
    let (_, v) = s.get("/api/v1/admin/users?search=uma", Some(&admin)).await;
    assert!(v["data"][0].get("email_verification_required").is_some());

    let firefox =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let r = s
        .client
        .post(format!("{}/api/v1/auth/login", s.url))
        .header("User-Agent", firefox)
        .json(&json!({"email": "uma@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let ft = v["data"]["token"].as_str().unwrap().to_owned();
    let (_, v) = s
        .req(Method::GET, "/api/v1/users/me/sessions", Some(&ft), None)
        .await;
    let mine = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["current"] == true)
        .unwrap()
        .clone();
    assert_eq!(mine["browser"], "Firefox");
    assert_eq!(mine["os"], "Windows 10");
    assert_eq!(mine["device"], "desktop");
    assert_eq!(mine["label"], "Firefox on Windows 10");
    assert_eq!(mine["user_agent"], firefox);
}

async fn user_row(s: &TestServer, admin: &str, email: &str) -> Option<Value> {
    let (_, v) = s
        .get(&format!("/api/v1/admin/users?search={email}"), Some(admin))
        .await;
    v["data"].as_array().unwrap().first().cloned()
}

/// Deletion as Posta does it: the owner's request (a recent proof needed) deactivates at once
/// and schedules the deletion after the grace period; an admin cancels it, schedules one,
/// deletes an inactive account at once; the last admin cannot go; the background job
/// deletes what is due (here: at the next start, with the clock past the grace period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_deletion_is_scheduled_and_cancellable() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (t, uid) = s.register("Del", "del@example.com").await;
    let (key, _) = s.api_key(&t, json!({"name": "k"})).await;
    assert_eq!(forward(&s, &key).await, 200);

    // Just signed in: a recent proof; Posta sends no body.
    let r = s
        .client
        .post(format!("{}/api/v1/users/me/delete", s.url))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let now = {
        use posta::clock::Clock;
        s.clock.now()
    };
    assert_eq!(
        v["data"]["scheduled_deletion_at"],
        posta::clock::rfc3339(now + 7 * 86_400)
    );
    // Deactivated now: the session, the key and the password no longer work.
    assert_eq!(s.get("/api/v1/users/me", Some(&t)).await.0, 401);
    assert_eq!(forward(&s, &key).await, 401);
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "del@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 403);
    let row = user_row(&s, &admin, "del@example.com").await.unwrap();
    assert_eq!(
        (
            row["active"].clone(),
            row["scheduled_deletion_at"].is_string()
        ),
        (json!(false), true)
    );

    // An admin cancels: active again, nothing scheduled.
    let (st, v) = s
        .post(
            &format!("/api/v1/admin/users/{uid}/cancel-deletion"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["user"]["scheduled_deletion_at"], Value::Null);
    let (st, _) = s
        .post(
            &format!("/api/v1/admin/users/{uid}/cancel-deletion"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(st, 409, "nothing left to cancel");
    let t = s.login("del@example.com", PASSWORD).await;

    // A session whose last proof is older than the window needs the password.
    s.clock.advance(11 * 60);
    let (st, v) = s.post("/api/v1/users/me/delete", Some(&t), json!({})).await;
    assert_eq!(
        (st.as_u16(), v["error"]["code"].clone()),
        (403, json!("REAUTH_REQUIRED"))
    );
    let (st, _) = s
        .post(
            "/api/v1/users/me/delete",
            Some(&t),
            json!({"current_password": "wrong-password-1"}),
        )
        .await;
    assert_eq!(
        st, 400,
        "a wrong password, as for every proof given with a request"
    );
    assert_eq!(
        s.get("/api/v1/users/me", Some(&t)).await.0,
        200,
        "nothing changed"
    );
    let (st, _) = s
        .post(
            "/api/v1/users/me/delete",
            Some(&t),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 200);

    // Admin: schedule another user; delete at once only an inactive one.
    let (_, oid) = s.register("Oth", "oth@example.com").await;
    let (st, _) = s
        .delete(&format!("/api/v1/admin/users/{oid}/force"), Some(&admin))
        .await;
    assert_eq!(st, 409, "an active account is not deleted at once");
    let (st, v) = s
        .delete(&format!("/api/v1/admin/users/{oid}"), Some(&admin))
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["data"]["scheduled_deletion_at"].is_string());
    let (st, _) = s
        .delete(&format!("/api/v1/admin/users/{oid}/force"), Some(&admin))
        .await;
    assert_eq!(st, 200);
    assert!(user_row(&s, &admin, "oth@example.com").await.is_none());

    // The last active admin cannot schedule its own deletion.
    let (st, v) = s
        .post(
            "/api/v1/users/me/delete",
            Some(&admin),
            json!({"current_password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(st, 400, "{v}");

    // Past the grace period, the job deletes `del` (once, audited) at the next start.
    let (dir, clock) = s.stop().await;
    clock.advance(7 * 86_400 + 1);
    let cfg = test_config(dir.path());
    let s = TestServer::start_in(dir, cfg, clock).await;
    let admin = s.admin().await;
    let mut gone = false;
    for _ in 0..200 {
        if user_row(&s, &admin, "del@example.com").await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "the scheduled deletion ran");
    let (_, v) = s
        .get("/api/v1/admin/events?type=user.deleted", Some(&admin))
        .await;
    let deleted: Vec<&Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["metadata"]["user_id"] == uid.as_str() || e["user_id"] == uid.as_str())
        .collect();
    assert_eq!(deleted.len(), 1, "{v}");
}

async fn forward(s: &TestServer, key: &str) -> u16 {
    s.client
        .get(format!("{}/api/v1/auth/verify", s.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Admin events in Posta's shape with its filters, one event by id, and the user's own log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_posta_shape() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (t, uid) = s.register("Eve", "eve@example.com").await;
    s.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "eve@example.com", "password": "wrong-password-9"}),
    )
    .await;
    let (_, other) = s.register("Ivo", "ivo@example.com").await;
    s.put(
        &format!("/api/v1/admin/users/{other}"),
        Some(&admin),
        json!({"role": "admin"}),
    )
    .await;

    let (st, v) = s.get("/api/v1/admin/events?size=100", Some(&admin)).await;
    assert_eq!(st, 200);
    let all = v["data"].as_array().unwrap().clone();
    let reg = all
        .iter()
        .find(|e| e["type"] == "user.registered" && e["metadata"]["user_id"] == uid.as_str())
        .unwrap();
    for f in [
        "id",
        "category",
        "type",
        "actor_id",
        "actor_name",
        "client_ip",
        "message",
        "metadata",
        "created_at",
    ] {
        assert!(reg.get(f).is_some(), "{f} in {reg}");
    }
    assert_eq!(reg["category"], "user");
    assert_eq!(reg["actor_name"], "Eve");
    assert_eq!(reg["client_ip"], "127.0.0.1");
    assert_eq!(reg["message"], "Account registered");
    assert_eq!(reg["metadata"]["email"], "eve@example.com");

    // Filters: category, type (exact or prefix), both.
    let (_, v) = s
        .get("/api/v1/admin/events?category=security", Some(&admin))
        .await;
    let sec = v["data"].as_array().unwrap();
    assert!(
        !sec.is_empty() && sec.iter().all(|e| e["category"] == "security"),
        "{v}"
    );
    assert!(sec.iter().any(|e| e["type"] == "login.failure"));
    let (_, v) = s
        .get("/api/v1/admin/events?category=admin", Some(&admin))
        .await;
    let adm = v["data"].as_array().unwrap();
    let role = adm
        .iter()
        .find(|e| e["type"] == "user.role_changed")
        .unwrap();
    assert_eq!(role["actor_name"], "Admin");
    let (_, v) = s.get("/api/v1/admin/events?type=login", Some(&admin)).await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"].as_str().unwrap().starts_with("login."))
    );
    let (_, v) = s
        .get(
            "/api/v1/admin/events?category=user&type=user.registered",
            Some(&admin),
        )
        .await;
    assert_eq!(v["pageable"]["total_elements"], 2);
    let (st, _) = s
        .get("/api/v1/admin/events?category=nonsense", Some(&admin))
        .await;
    assert_eq!(st, 400);

    // One by id; an unknown one is a 404.
    let id = reg["id"].as_u64().unwrap();
    let (st, v) = s
        .get(&format!("/api/v1/admin/events/{id}"), Some(&admin))
        .await;
    assert_eq!(
        (st.as_u16(), v["data"]["type"].clone()),
        (200, json!("user.registered"))
    );
    let (st, _) = s.get("/api/v1/admin/events/999999", Some(&admin)).await;
    assert_eq!(st, 404);
    let (st, _) = s.get(&format!("/api/v1/admin/events/{id}"), Some(&t)).await;
    assert_eq!(st, 403, "admins only");

    // The user's own log: hers only (her registration and sign-in failure), paged.
    let (st, v) = s
        .get("/api/v1/users/me/audit-log?page=0&size=50", Some(&t))
        .await;
    assert_eq!(st, 200);
    let mine = v["data"].as_array().unwrap();
    assert!(!mine.is_empty());
    assert!(
        mine.iter()
            .all(|e| e["actor_id"] == uid.as_str() || e["metadata"]["user_id"] == uid.as_str()),
        "{v}"
    );
    assert!(mine.iter().any(|e| e["type"] == "user.registered"));
    assert!(
        !mine
            .iter()
            .any(|e| e["metadata"]["email"] == "ivo@example.com")
    );
}

/// Audit events past `audit_log_retention_days` are pruned by the background job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_are_pruned() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    s.register("Old", "old@example.com").await;
    let (st, _) = s
        .put(
            "/api/v1/admin/settings",
            Some(&admin),
            json!({"settings": [{"key": "audit_log_retention_days", "value": "2"}]}),
        )
        .await;
    assert_eq!(st, 200);
    let (dir, clock) = s.stop().await;
    clock.advance(3 * 86_400);
    let cfg = test_config(dir.path());
    let s = TestServer::start_in(dir, cfg, clock).await;
    let admin = s.admin().await;
    let mut left = u64::MAX;
    for _ in 0..200 {
        let (_, v) = s
            .get("/api/v1/admin/events?type=user.registered", Some(&admin))
            .await;
        left = v["pageable"]["total_elements"].as_u64().unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "events older than the retention were pruned");
    // Events of the new start are kept.
    let (_, v) = s
        .get("/api/v1/admin/events?type=login.success", Some(&admin))
        .await;
    assert!(v["pageable"]["total_elements"].as_u64().unwrap() >= 1);
}

/// Read Server-Sent Events frames from a streaming response until `want` is seen.
async fn read_until(r: &mut reqwest::Response, want: &str, buf: &mut String) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !buf.contains(want) {
        match tokio::time::timeout_at(deadline, r.chunk()).await {
            Ok(Ok(Some(c))) => buf.push_str(&String::from_utf8_lossy(&c)),
            _ => return false,
        }
    }
    true
}

/// The live stream: events arrive as they are committed; `Last-Event-ID` resumes; the
/// number of streams is bounded (503 beyond); admins only; shutdown ends streams at once
/// instead of waiting out the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_event_stream() {
    let s = TestServer::start_with(|c| c.shutdown_grace_secs = 30).await;
    let admin = s.admin().await;
    let url = format!("{}/api/v1/admin/events/stream", s.url);
    let (user, _) = s.register("Sam", "sam@example.com").await;
    let r = s.client.get(&url).bearer_auth(&user).send().await.unwrap();
    assert_eq!(r.status(), 403, "admins only");

    let mut r = s.client.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buf = String::new();
    assert!(read_until(&mut r, ": connected", &mut buf).await);
    assert!(
        !buf.contains("user.registered"),
        "only what happens from now on"
    );
    s.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "sam@example.com", "password": "wrong-password-7"}),
    )
    .await;
    assert!(
        read_until(&mut r, "\"type\":\"login.failure\"", &mut buf).await,
        "{buf}"
    );
    // Unnamed events: an `EventSource` hands them to its `message` listener.
    assert!(
        !buf.contains("event:") && buf.contains("\"category\":\"security\""),
        "{buf}"
    );
    let id: u64 = buf
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .unwrap()
        .parse()
        .unwrap();

    // Resuming after an earlier id replays what came since.
    let mut again = s
        .client
        .get(&url)
        .bearer_auth(&admin)
        .header("Last-Event-ID", (id - 1).to_string())
        .send()
        .await
        .unwrap();
    let mut b2 = String::new();
    assert!(
        read_until(&mut again, &format!("id: {id}\n"), &mut b2).await,
        "{b2}"
    );
    drop(again);

    // Bounded in number: the streams beyond the bound are refused with 503 and Retry-After.
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..posta::state::EVENT_STREAMS + 1 {
        let r = s.client.get(&url).bearer_auth(&admin).send().await.unwrap();
        if r.status() == 503 {
            refused = Some(r);
            break;
        }
        open.push(r);
    }
    let refused = refused.expect("a stream beyond the bound is refused");
    assert!(refused.headers().contains_key("retry-after"));
    drop(open);

    // Shutdown ends the stream (the body finishes) well before the 30 s grace period.
    let started = std::time::Instant::now();
    let stop = tokio::spawn(s.stop());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match r.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ended at shutdown");
    stop.await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
