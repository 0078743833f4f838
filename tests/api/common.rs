//! Test harness: the real server in-process on 127.0.0.1:0 with a temporary data dir, a
//! manual clock and a real HTTP client; plus helpers to run the real binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use posta::clock::{Clock, ManualClock, SystemClock};
use posta::config::{Config, Secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "Secret-passphrase-42-bolt";
pub const PASSWORD: &str = "violet-tractor-41-moss";
pub const TEST_JWT_SECRET: &str = "test-jwt-secret-that-is-long-enough-0123456789";

/// Cheap argon2 and fixed secrets so tests are fast and deterministic.
pub fn test_config(dir: &Path) -> Config {
    Config {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.to_path_buf(),
        jwt_secret: Some(Secret(TEST_JWT_SECRET.into())),
        encryption_key: Some(Secret("11".repeat(32))),
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(Secret(ADMIN_PASSWORD.into())),
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        ..Config::default()
    }
}

pub struct TestServer {
    pub url: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(dir.path());
        f(&mut cfg);
        Self::start_in(dir, cfg, ManualClock::new(SystemClock.now())).await
    }

    pub async fn start_in(dir: TempDir, cfg: Config, clock: Arc<ManualClock>) -> Self {
        Self::start_bound(dir, cfg, clock, |_, _| {}).await
    }

    /// Like `start_with`, but `f` also receives the server's own URL (for `web_url`).
    pub async fn start_with_url(f: impl FnOnce(&mut Config, &str)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = test_config(dir.path());
        Self::start_bound(dir, cfg, ManualClock::new(SystemClock.now()), f).await
    }

    async fn start_bound(
        dir: TempDir,
        mut cfg: Config,
        clock: Arc<ManualClock>,
        f: impl FnOnce(&mut Config, &str),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        f(&mut cfg, &format!("http://{addr}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let c: Arc<dyn Clock> = clock.clone();
        let task = tokio::spawn(async move {
            posta::run_with_clock(
                cfg,
                listener,
                async move {
                    let _ = rx.await;
                },
                c,
            )
            .await
            .unwrap();
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let url = format!("http://{addr}");
        // The listener is bound before run() opens the store: wait for readiness.
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{url}/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self {
            url,
            client,
            clock,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stop the server and wait for it, keeping the data dir.
    pub async fn stop(mut self) -> (TempDir, Arc<ManualClock>) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, self.clock.clone())
    }

    pub async fn req(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.req(Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.req(Method::POST, path, token, Some(body)).await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.req(Method::PUT, path, token, Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.req(Method::DELETE, path, token, None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let (s, v) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login {email}: {v}");
        v["data"]["token"].as_str().unwrap().to_owned()
    }

    pub async fn admin(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Register a user; returns (token, user id).
    pub async fn register(&self, name: &str, email: &str) -> (String, String) {
        let (s, v) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"name": name, "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "register {email}: {v}");
        (
            v["data"]["token"].as_str().unwrap().to_owned(),
            v["data"]["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Create an API key for the session `token` (`body` as the API takes it); returns
    /// (key, key id).
    pub async fn api_key(&self, token: &str, body: Value) -> (String, String) {
        let (st, v) = self
            .post("/api/v1/users/me/api-keys", Some(token), body)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        (
            v["data"]["key"].as_str().unwrap().to_owned(),
            v["data"]["id"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Assert the error envelope shape and return its code.
pub fn err_code(v: &Value) -> &str {
    assert_eq!(v["success"], false, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    v["error"]["code"].as_str().unwrap()
}

/// RFC 6238 TOTP computed independently of the server (HMAC-SHA1, 6 digits, 30 s).
pub fn totp(secret_b32: &str, unix: i64) -> String {
    use hmac::{Hmac, Mac};
    let key = base32_decode(secret_b32);
    let counter = (unix as u64 / 30).to_be_bytes();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&counter);
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off]) & 0x7f) << 24
        | u32::from(h[off + 1]) << 16
        | u32::from(h[off + 2]) << 8
        | u32::from(h[off + 3]);
    format!("{:06}", bin % 1_000_000)
}

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = alphabet
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// The real binary with a private data dir and env; stdout/stderr captured.
pub struct Binary {
    pub child: Child,
    pub addr: String,
    /// Everything the process wrote to stderr (its logs) so far.
    pub stderr: Arc<std::sync::Mutex<String>>,
}

/// Fail with the command's stderr unless it exited successfully.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn posta_cmd(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_posta"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("POSTA_DATA_DIR", data_dir)
        .env("POSTA_HOST", "127.0.0.1")
        .env("POSTA_PORT", "0")
        .env("POSTA_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("POSTA_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("POSTA_ARGON2_MEMORY_KIB", "256")
        .env("POSTA_ARGON2_ITERATIONS", "1")
        // The in-process servers' keys (`test_config`): a host command on their store needs
        // them, and never makes key files of its own.
        .env("POSTA_JWT_SECRET", TEST_JWT_SECRET)
        .env("POSTA_ENCRYPTION_KEY", "11".repeat(32))
        .current_dir(data_dir);
    c
}

impl Binary {
    /// Spawn and wait for the `posta listening on` log line.
    pub fn spawn(cmd: Command) -> Self {
        Self::spawn_on(cmd, std::io::pipe().unwrap())
    }

    /// [`Binary::spawn`] with stderr on a pipe the caller made (to know which stream it is).
    pub fn spawn_on(
        mut cmd: Command,
        (err, err_end): (std::io::PipeReader, std::io::PipeWriter),
    ) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = cmd.stdout(Stdio::piped()).stderr(err_end).spawn().unwrap();
        // The command holds our copy of the pipe's write end: close it, so the reader ends
        // when the process does.
        drop(cmd);
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
        // The address comes from the start-up log line on stderr, text or JSON:
        // `posta listening on http://ADDR`.
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http")
                    && let Some(t) = tx.take()
                {
                    let rest = &line[at..];
                    let rest = &rest[rest.find("://").unwrap() + 3..];
                    let end = rest.find([' ', '"']).unwrap_or(rest.len());
                    let _ = t.send(rest[..end].to_owned());
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "no `listening on` line; stderr:\n{}",
                    stderr.lock().unwrap()
                )
            });
        Self {
            child,
            addr,
            stderr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Wait until /readyz answers 200.
    pub async fn ready(&self) {
        let c = reqwest::Client::new();
        for _ in 0..500 {
            if let Ok(r) = c.get(format!("{}/readyz", self.url())).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("server never became ready");
    }

    pub fn signal(&self, sig: i32) {
        unsafe_free_kill(self.child.id(), sig);
    }

    /// Wait for exit with a deadline; returns the exit status.
    pub async fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process did not exit in {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_free_kill(pid: u32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// POST `body` to a real binary's `url` (bearer `token` if given); the JSON answer.
pub async fn post_json(c: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> Value {
    let mut rb = c.post(url).json(&body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    rb.send().await.unwrap().json().await.unwrap()
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("posta.redb")
}

/// Install a Debian package when its command is missing (the test suite does its own set-up).
pub fn ensure_command(cmd: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .unwrap()
        .status
        .success();
    if found {
        return;
    }
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("(apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{cmd} is needed: apt-get install {package}");
}
