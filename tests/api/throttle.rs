//! Brute force as an attacker runs it: hundreds of parallel guesses, one HTTP/2 connection,
//! many source addresses, floods, a restart. Each test performs the attack and counts what
//! reached a verification through the audit log (every verified wrong proof is audited).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use crate::mfa::{Now, enrol};

/// How many audited events of `kind` there are.
async fn audited(s: &TestServer, kind: &str) -> u64 {
    s.clock.advance(15 * 60 + 1); // the admin's own sign-in must not meet the window
    let admin = s.admin().await;
    let (st, v) = s
        .get(
            &format!("/api/v1/admin/events?type={kind}&size=1"),
            Some(&admin),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["pageable"]["total_elements"].as_u64().unwrap()
}

/// Send `n` requests at once; the statuses. Each request's connection is opened (and used
/// once, for `/healthz`) first and all of them are released together, so that the guesses
/// arrive while the first ones are still being verified, as an attacker would arrange it.
async fn parallel(
    n: usize,
    warm: impl Fn(usize) -> reqwest::RequestBuilder,
    make: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<StatusCode> {
    let mut set = tokio::task::JoinSet::new();
    let go = Arc::new(tokio::sync::Barrier::new(n));
    for i in 0..n {
        let (w, rb, go) = (warm(i), make(i), go.clone());
        set.spawn(async move {
            assert_eq!(w.send().await.unwrap().status(), 200);
            go.wait().await;
            rb.send().await.unwrap().status()
        });
    }
    let mut out = Vec::new();
    while let Some(st) = set.join_next().await {
        out.push(st.unwrap());
    }
    out
}

/// `n` six-digit codes, none of them valid now (nor in the neighbouring steps).
fn wrong_codes(s: &TestServer, secret: &str, n: usize) -> Vec<String> {
    let now = s.clock_now();
    let near: Vec<String> = [-30, 0, 30].iter().map(|d| totp(secret, now + d)).collect();
    (0..)
        .map(|k: u32| format!("{:06}", (k * 7919) % 1_000_000))
        .filter(|g| !near.contains(g))
        .take(n)
        .collect()
}

fn count(statuses: &[StatusCode], code: u16) -> usize {
    statuses.iter().filter(|s| s.as_u16() == code).count()
}

/// A server whose argon2 takes milliseconds, as in production, not microseconds: the window
/// the attack races through.
async fn slow_hashing() -> TestServer {
    TestServer::start_with(|c| {
        c.argon2_memory_kib = 4096;
        c.argon2_iterations = 2;
    })
    .await
}

/// [`parallel`] with one client, so one connection, per request.
async fn on_own_connections(
    s: &TestServer,
    n: usize,
    make: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder,
) -> Vec<StatusCode> {
    let health = format!("{}/api/v1/healthz", s.url);
    let c: Vec<_> = (0..n).map(|_| reqwest::Client::new()).collect();
    parallel(n, |i| c[i].get(&health), |i| make(&c[i], i)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_cannot_outrun_the_limit() {
    let s = slow_hashing().await;
    s.register("Vic", "vic@example.com").await;
    let url = format!("{}/api/v1/auth/login", s.url);
    let statuses = on_own_connections(&s, 500, |c, i| {
        c.post(&url)
            .json(&json!({"email": "vic@example.com", "password": format!("wrong-guess-{i}")}))
    })
    .await;
    assert_eq!(count(&statuses, 401), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 490);
    assert_eq!(
        audited(&s, "login.failure").await,
        10,
        "only the limit was verified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_streams_on_one_http2_connection_cannot_outrun_the_limit() {
    let s = slow_hashing().await;
    s.register("Vic", "vic@example.com").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("{}/api/v1/auth/login", s.url);
    let health = format!("{}/api/v1/healthz", s.url);
    let statuses = parallel(
        200,
        |_| h2.get(&health),
        |i| {
            h2.post(&url)
                .json(&json!({"email": "vic@example.com", "password": format!("wrong-guess-{i}")}))
        },
    )
    .await;
    assert_eq!(count(&statuses, 401), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 190);
    assert_eq!(audited(&s, "login.failure").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_totp_codes_after_the_right_password_cannot_outrun_the_limit() {
    let s = slow_hashing().await;
    let (t, _) = s.register("Tia", "tia@example.com").await;
    let (secret, _) = enrol(&s, &t).await;
    let guesses = wrong_codes(&s, &secret, 200);
    let url = format!("{}/api/v1/auth/login", s.url);
    let statuses = on_own_connections(&s, 200, |c, i| {
        c.post(&url).json(&json!({
            "email": "tia@example.com", "password": PASSWORD, "two_factor_code": guesses[i]
        }))
    })
    .await;
    assert_eq!(count(&statuses, 401), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 190);
    // The right password alone (answered "code required") does not reset the count.
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "tia@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(st, 429);
    assert_eq!(audited(&s, "login.failure").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_current_passwords_cannot_outrun_the_limit() {
    let s = slow_hashing().await;
    let (t, _) = s.register("Gus", "gus@example.com").await;
    let url = format!("{}/api/v1/users/me/password", s.url);
    let statuses = on_own_connections(&s, 200, |c, i| {
        c.put(&url).bearer_auth(&t).json(&json!({
            "current_password": format!("guess-number-{i}"), "new_password": "new-horse-staple-99"
        }))
    })
    .await;
    assert_eq!(count(&statuses, 400), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 190);
    assert_eq!(audited(&s, "password.change_failure").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_codes_on_2fa_disable_cannot_outrun_the_limit() {
    let s = slow_hashing().await;
    let (t, _) = s.register("Dee", "dee@example.com").await;
    let (secret, _) = enrol(&s, &t).await;
    let guesses = wrong_codes(&s, &secret, 200);
    let url = format!("{}/api/v1/users/me/2fa/disable", s.url);
    let statuses = on_own_connections(&s, 200, |c, i| {
        c.post(&url)
            .bearer_auth(&t)
            .json(&json!({"code": guesses[i]}))
    })
    .await;
    assert_eq!(count(&statuses, 401), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 190);
    assert_eq!(audited(&s, "2fa.disable_failure").await, 10);
}

/// A client from `ip` with its own cookie jar, or the given one (the same browser).
fn from(ip: [u8; 4], jar: Option<Arc<Jar>>) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .cookie_provider(jar.unwrap_or_default())
        .build()
        .unwrap()
}

async fn login_from(s: &TestServer, c: &reqwest::Client, email: &str, pw: &str) -> u16 {
    c.post(format!("{}/api/v1/auth/login", s.url))
        .json(&json!({"email": email, "password": pw}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A distributed attack reaches the per-account ceiling; the owner's browser, which signed in
/// before, still gets in from a new address, and a stranger's does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_browser_signs_in_during_a_distributed_attack() {
    let s = TestServer::start().await;
    s.register("Owen", "owen@example.com").await;
    // The owner's browser signs in once and keeps its device cookie.
    let jar = Arc::new(Jar::default());
    let owner = from([127, 0, 0, 1], Some(jar.clone()));
    assert_eq!(
        login_from(&s, &owner, "owen@example.com", PASSWORD).await,
        200
    );
    let url: reqwest::Url = s.url.parse().unwrap();
    let cookies = jar.cookies(&url).unwrap();
    assert!(
        cookies.to_str().unwrap().contains("posta_device="),
        "{cookies:?}"
    );
    // Ten failures (the pair limit) from each of ten addresses: the account ceiling (100).
    for a in 0..10u8 {
        let attacker = from([127, 0, 1, a + 1], None);
        for i in 0..10 {
            let st = login_from(&s, &attacker, "owen@example.com", &format!("guess-{i}")).await;
            assert_eq!(st, 401);
        }
    }
    let stranger = from([127, 0, 2, 1], None);
    assert_eq!(
        login_from(&s, &stranger, "owen@example.com", PASSWORD).await,
        429,
        "a fresh address meets the account ceiling"
    );
    // A made-up device id is no key either.
    let forger = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 2, 2)))
        .build()
        .unwrap();
    let r = forger
        .post(format!("{}/api/v1/auth/login", s.url))
        .header("cookie", format!("posta_device={}", "A".repeat(43)))
        .json(&json!({"email": "owen@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // The owner's browser (same cookie jar) from yet another address.
    let owner_elsewhere = from([127, 0, 3, 1], Some(jar));
    assert_eq!(
        login_from(&s, &owner_elsewhere, "owen@example.com", PASSWORD).await,
        200,
        "the owner's browser from a new address"
    );
    // Reaching the ceiling is audited once, at the failure that reached it.
    assert_eq!(audited(&s, "login.locked").await, 1);
}

/// Requests from many source addresses, each on its own connection: `n` raw HTTP/1.1
/// requests, 64 at a time, from 127.x.y.z (x ≥ 10). Returns how many were answered.
async fn flood(addr: &str, n: u32, request: &[u8]) -> u32 {
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = tokio::task::JoinSet::new();
    let request: Arc<[u8]> = request.into();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mut answered = 0;
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let request = request.clone();
        set.spawn(async move {
            let _permit = permit;
            let [_, b, c, d] = (0x0A00_0000 + i + 1).to_be_bytes();
            let src = Ipv4Addr::new(127, b, c, d);
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind((src, 0).into()).unwrap();
            let mut conn = sock.connect(addr).await.unwrap();
            conn.write_all(&request).await.unwrap();
            let mut answer = Vec::new();
            let _ = conn.read_to_end(&mut answer).await;
            answer.starts_with(b"HTTP/1.1 4")
        });
        while set.len() > 256 {
            if set.join_next().await.unwrap().unwrap() {
                answered += 1;
            }
        }
    }
    while let Some(r) = set.join_next().await {
        if r.unwrap() {
            answered += 1;
        }
    }
    answered
}

/// 120 000 cheap requests (registrations with a malformed email, which touch no counter),
/// each from its own address in 127.0.0.0/8, do not unlock an account locked before them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_addresses_does_not_unlock_an_account() {
    let s = TestServer::start().await;
    s.register("Lou", "lou@example.com").await;
    for i in 0..10 {
        let (st, _) = s
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": "lou@example.com", "password": format!("guess-{i}")}),
            )
            .await;
        assert_eq!(st, 401);
    }
    let locked = |st: StatusCode| assert_eq!(st, 429);
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "lou@example.com", "password": PASSWORD}),
        )
        .await;
    locked(st);
    let body = r#"{"name":"x","email":"not-an-email","password":"violet-tractor-41-moss"}"#;
    let request = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: posta\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let addr = s.url.trim_start_matches("http://").to_owned();
    let answered = flood(&addr, 120_000, request.as_bytes()).await;
    assert_eq!(answered, 120_000, "every flood request was answered 4xx");
    let (st, _) = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "lou@example.com", "password": PASSWORD}),
        )
        .await;
    locked(st);
}

/// An account over its ceiling stays locked when the process is killed and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_does_not_unlock_an_account_over_its_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let spawn = || {
        let mut c = posta_cmd(dir.path());
        c.env("POSTA_TRUSTED_PROXIES", "127.0.0.1/32");
        Binary::spawn(c)
    };
    let b = spawn();
    b.ready().await;
    let c = reqwest::Client::new();
    let url = b.url();
    let login = |xff: String, pw: String| {
        c.post(format!("{url}/api/v1/auth/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": ADMIN_EMAIL, "password": pw}))
            .send()
    };
    // The pair limit from each of ten addresses: the account ceiling.
    for a in 0..10 {
        for i in 0..10 {
            let r = login(format!("198.51.100.{a}"), format!("guess-{i}"))
                .await
                .unwrap();
            assert_eq!(r.status(), 401);
        }
    }
    let r = login("203.0.113.1".into(), ADMIN_PASSWORD.into())
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    b.signal(9);
    drop(b);
    let b = spawn();
    b.ready().await;
    let r = c
        .post(format!("{}/api/v1/auth/login", b.url()))
        .header("x-forwarded-for", "203.0.113.2")
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let st = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(st, 429, "still locked after kill -9: {v}");
    // The log line is read from the process's stderr by another thread: wait for it.
    let mut log = String::new();
    for _ in 0..500 {
        log = b.stderr.lock().unwrap().clone();
        if log.contains("lock-outs restored") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        log.contains("lock-outs restored"),
        "the restart says so: {log}"
    );
}
