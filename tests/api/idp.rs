//! The real OpenID Provider (npm `oidc-provider`, tests/oidc/idp.mjs) and a cookie-keeping
//! "browser" that walks its login and consent forms.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use reqwest::{StatusCode, Url};

static NPM: Mutex<bool> = Mutex::new(false);

pub fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Install the IdP's npm packages once (from the committed lock file).
pub fn ensure_npm() {
    let mut done = NPM
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *done {
        return;
    }
    crate::common::ensure_command("node", "nodejs");
    crate::common::ensure_command("npm", "npm");
    let dir = oidc_dir();
    if !dir.join("node_modules/oidc-provider/package.json").exists()
        || !dir.join("node_modules/smtp-server/package.json").exists()
    {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("the SSO tests need node and npm on PATH (test-only dependency)");
        assert!(
            out.status.success(),
            "npm ci failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    *done = true;
}

pub struct Idp {
    child: Child,
    pub issuer: String,
}

impl Idp {
    pub fn start(redirect_uris: &[String]) -> Self {
        ensure_npm();
        let mut child = Command::new("node")
            .arg(oidc_dir().join("idp.mjs"))
            .env("REDIRECT_URIS", redirect_uris.join(","))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        // Keep draining: the IdP must never write into a closed pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        let issuer = line
            .trim()
            .strip_prefix("issuer=")
            .unwrap_or_else(|| panic!("idp said {line:?}"))
            .to_owned();
        Self { child, issuer }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser: keeps cookies, follows redirects by hand, submits the IdP's forms.
pub struct Browser {
    pub client: reqwest::Client,
}

/// Where a walk stopped.
pub struct Stop {
    /// The URL that answered.
    pub url: Url,
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

fn form_action(html: &str) -> Option<String> {
    let i = html.find("<form")?;
    let rest = &html[i..];
    let a = rest.find("action=\"")? + 8;
    let end = rest[a..].find('"')?;
    Some(rest[a..a + end].replace("&amp;", "&"))
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// GET `url` and keep going (redirects, login form with `login`, consent) until a response
    /// comes from a URL starting with `stop_prefix` or is neither a redirect nor a form.
    pub async fn walk(&self, url: &str, login: &str, stop_prefix: &str) -> Stop {
        self.walk_inner(url, login, stop_prefix, false).await
    }

    /// Like `walk`, but return the first URL under `stop_prefix` without requesting it.
    pub async fn until(&self, url: &str, login: &str, stop_prefix: &str) -> Url {
        self.walk_inner(url, login, stop_prefix, true).await.url
    }

    async fn walk_inner(&self, url: &str, login: &str, stop_prefix: &str, halt: bool) -> Stop {
        let mut url = Url::parse(url).unwrap();
        let mut post: Option<Vec<(String, String)>> = None;
        for _ in 0..20 {
            if halt && url.as_str().starts_with(stop_prefix) {
                return Stop {
                    url,
                    status: StatusCode::OK,
                    location: None,
                    set_cookies: vec![],
                    body: String::new(),
                };
            }
            let req = match post.take() {
                Some(form) => self.client.post(url.clone()).form(&form),
                None => self.client.get(url.clone()),
            };
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let location = resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            let set_cookies = resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let body = resp.text().await.unwrap();
            let at_stop = url.as_str().starts_with(stop_prefix);
            if at_stop {
                return Stop {
                    url,
                    status,
                    location,
                    set_cookies,
                    body,
                };
            }
            if status.is_redirection() {
                url = url.join(location.as_deref().unwrap()).unwrap();
                continue;
            }
            if status == StatusCode::OK
                && let Some(action) = form_action(&body)
            {
                let prompt = if body.contains("name=\"prompt\" value=\"login\"") {
                    "login"
                } else {
                    "consent"
                };
                let mut form = vec![("prompt".to_owned(), prompt.to_owned())];
                if prompt == "login" {
                    form.push(("login".into(), login.into()));
                    form.push(("password".into(), "any-password".into()));
                }
                url = url.join(&action).unwrap();
                post = Some(form);
                continue;
            }
            return Stop {
                url,
                status,
                location,
                set_cookies,
                body,
            };
        }
        panic!("too many hops");
    }
}
