//! Settings: built-in defaults, then a TOML file, then `POSTA_*` environment variables (figment).
//!
//! This module and `clock.rs` are the only readers of the process environment. Everything else
//! receives a validated [`Config`].

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Path read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/posta/config.toml";

/// A string that never prints itself.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret value. Callers must not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The whole configuration. Keys are the `POSTA_` variable names, lower-case, without prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // every key is documented in config.toml.example
pub struct Config {
    /// Where this configuration came from (not a setting).
    #[serde(skip)]
    pub provenance: Provenance,
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub jwt_secret: Option<Secret>,
    pub jwt_issuer: String,
    pub session_ttl_hours: u32,
    pub encryption_key: Option<Secret>,
    pub registration_enabled: Option<bool>,
    pub email_utf8_local_parts: bool,
    pub admin_email: String,
    pub admin_password: Option<Secret>,
    pub web_url: Option<String>,
    pub oauth_callback_url: Option<String>,
    /// SMTP relay for outgoing mail; unset: no mail (the flows that need it are off).
    pub smtp_host: Option<String>,
    /// SMTP port (587, submission).
    pub smtp_port: u16,
    /// SMTP user name, when the relay wants one.
    pub smtp_username: Option<String>,
    /// SMTP password (also the `smtp_password` systemd credential).
    pub smtp_password: Option<Secret>,
    /// `starttls` (default), `tls` (implicit TLS, port 465) or `none` (loopback relays only).
    pub smtp_tls: String,
    /// Sender address of every message (`Posta <posta@example.com>` or a bare address).
    pub smtp_from: Option<String>,
    /// An extra CA certificate (PEM) to trust for the relay, for an internal CA.
    pub smtp_ca: Option<PathBuf>,
    /// The WebAuthn relying party id for passkeys: the host of `web_url` unless set (to a
    /// parent domain of it, so that passkeys work across its subdomains).
    pub webauthn_rp_id: Option<String>,
    /// `POSTA_EMAIL_VERIFICATION_REQUIRED`: forces the `require_email_verification` setting
    /// (as `POSTA_REGISTRATION_ENABLED` forces registration).
    pub email_verification_required: Option<bool>,
    /// After SSO, also put the session token in the redirect's query (`?token=`) for Posta's
    /// seed-era dashboard, which reads it there. Off: a token in a URL lands in proxy logs and
    /// browser history.
    pub oauth_token_in_url: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub auth_rate_limit_enabled: bool,
    pub throttle_ipv6_prefix: u8,
    pub cors_origins: String,
    pub trusted_proxies: String,
    pub info_public: bool,
    pub metrics_enabled: bool,
    pub openapi_docs: bool,
    pub log: String,
    pub log_format: String,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub password_min_length: usize,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_connections: usize,
    pub shutdown_grace_secs: u64,
    pub audit_max_events: u64,
    pub store_cache_mib: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            provenance: Provenance::default(),
            host: "0.0.0.0".into(),
            port: 9000,
            data_dir: PathBuf::from("./data"),
            jwt_secret: None,
            jwt_issuer: "posta".into(),
            session_ttl_hours: 24,
            encryption_key: None,
            registration_enabled: None,
            email_utf8_local_parts: false,
            admin_email: "admin@posta.local".into(),
            admin_password: None,
            web_url: None,
            oauth_callback_url: None,
            oauth_token_in_url: false,
            smtp_host: None,
            smtp_port: 587,
            smtp_username: None,
            smtp_password: None,
            smtp_tls: "starttls".into(),
            smtp_from: None,
            smtp_ca: None,
            webauthn_rp_id: None,
            email_verification_required: None,
            tls_cert: None,
            tls_key: None,
            auth_rate_limit_enabled: true,
            throttle_ipv6_prefix: 64,
            cors_origins: String::new(),
            trusted_proxies: String::new(),
            info_public: true,
            metrics_enabled: false,
            openapi_docs: true,
            log: "info".into(),
            log_format: "text".into(),
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            password_min_length: 8,
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            header_read_timeout_secs: 30,
            idle_timeout_secs: 120,
            max_connections: 4096,
            shutdown_grace_secs: 10,
            audit_max_events: 100_000,
            store_cache_mib: 64,
        }
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Where a loaded configuration came from, for messages that must say which store or file a
/// command looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    /// Where `data_dir` was set: the environment, the file, or the default.
    pub data_dir: String,
}

fn known_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl Config {
    /// Load defaults → TOML file → `POSTA_*` env. `path` is `--config`; without it the
    /// default path is read only when it exists. Returns the config and warnings to log.
    pub fn load(path: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => {
                if !p.exists() {
                    return Err(ConfigError(format!(
                        "config file {} not found",
                        p.display()
                    )));
                }
                fig = fig.merge(Toml::file_exact(p));
            }
            None => {
                if Path::new(DEFAULT_CONFIG_PATH).exists() {
                    fig = fig.merge(Toml::file_exact(DEFAULT_CONFIG_PATH));
                }
            }
        }
        let known = known_keys();
        let mut warnings = Vec::new();
        #[allow(clippy::disallowed_methods)]
        for (k, _) in std::env::vars() {
            if let Some(rest) = k.strip_prefix("POSTA_") {
                let key = rest.to_ascii_lowercase();
                // POSTA_COMMIT names the build's commit for `build.rs`, not a setting.
                if !known.contains(&key) && k != "POSTA_COMMIT" {
                    warnings.push(format!("ignoring unknown environment variable {k}"));
                }
            }
        }
        let known_env = known.clone();
        fig = fig.merge(
            Env::prefixed("POSTA_")
                .filter(move |k| known_env.iter().any(|n| k.as_str().eq_ignore_ascii_case(n))),
        );
        let data_dir_from = match fig.find_metadata("data_dir") {
            Some(m) if m.name.contains("environment") => {
                "the POSTA_DATA_DIR environment variable".to_owned()
            }
            Some(figment::Metadata {
                source: Some(figment::Source::File(f)),
                ..
            }) => format!("data_dir in {}", f.display()),
            _ => "the default (./data, relative to the working directory)".to_owned(),
        };
        let file = match path {
            Some(p) => Some(p.to_owned()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        };
        // A secret in a file others can read is a leaked secret.
        let in_file: Vec<&str> = [
            "jwt_secret",
            "encryption_key",
            "admin_password",
            "smtp_password",
        ]
        .into_iter()
        .filter(|k| {
            matches!(
                fig.find_metadata(k),
                Some(figment::Metadata {
                    source: Some(figment::Source::File(_)),
                    ..
                })
            ) && fig.find_value(k).is_ok()
        })
        .collect();
        #[cfg(unix)]
        if let Some(f) = &file
            && !in_file.is_empty()
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = std::fs::metadata(f).ok();
            let mode = meta.as_ref().map_or(0, |m| m.permissions().mode());
            // The packaged file is root:posta 0640: the service's own group may read it.
            let service_group =
                meta.is_some_and(|m| group_name(m.gid()).as_deref() == Some("posta"));
            let exposed = if service_group { 0o007 } else { 0o077 };
            if mode & exposed != 0 {
                warnings.push(format!(
                    "configuration file {} holds {} and is readable by group or others (mode {:o}): chmod 600 it, or pass secrets as systemd credentials (LoadCredential=jwt_secret:… and encryption_key:…) or environment variables",
                    f.display(),
                    in_file.join(", "),
                    mode & 0o777
                ));
            }
        }
        let cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError(e.to_string().replace("  ", " ")))?;
        let mut cfg = cfg.normalized().with_credentials()?;
        cfg.provenance = Provenance {
            file,
            data_dir: data_dir_from,
        };
        #[allow(clippy::disallowed_methods)]
        if std::env::var_os("POSTA_LOG").is_none()
            && let Ok(rust_log) = std::env::var("RUST_LOG")
        {
            cfg.log = rust_log;
        }
        cfg.validate()?;
        Ok((cfg, warnings))
    }

    /// Empty strings in optional keys (`POSTA_WEB_URL=`) mean unset.
    #[must_use]
    pub fn normalized(mut self) -> Self {
        let blank = |s: &Option<String>| s.as_deref().is_some_and(|v| v.trim().is_empty());
        if blank(&self.web_url) {
            self.web_url = None;
        }
        if blank(&self.oauth_callback_url) {
            self.oauth_callback_url = None;
        }
        for o in [
            &mut self.smtp_host,
            &mut self.smtp_username,
            &mut self.smtp_from,
            &mut self.webauthn_rp_id,
        ] {
            if blank(o) {
                *o = None;
            }
        }
        if self
            .smtp_ca
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.smtp_ca = None;
        }
        if let Some(u) = &mut self.web_url {
            *u = u.trim_end_matches('/').to_owned();
        }
        for s in [
            &mut self.jwt_secret,
            &mut self.encryption_key,
            &mut self.admin_password,
            &mut self.smtp_password,
        ] {
            if s.as_ref().is_some_and(|v| v.0.is_empty()) {
                *s = None;
            }
        }
        if self
            .tls_cert
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.tls_cert = None;
        }
        if self
            .tls_key
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.tls_key = None;
        }
        self
    }

    /// systemd `LoadCredential=`: `jwt_secret` and `encryption_key` files in
    /// `$CREDENTIALS_DIRECTORY` fill the keys left unset.
    fn with_credentials(mut self) -> Result<Self, ConfigError> {
        #[allow(clippy::disallowed_methods)]
        let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
            return Ok(self);
        };
        let dir = PathBuf::from(dir);
        let read = |name: &str| -> Result<Option<Secret>, ConfigError> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(None);
            }
            std::fs::read_to_string(&p)
                .map(|s| Some(Secret(s.trim().to_owned())))
                .map_err(|e| ConfigError(format!("credential {}: {e}", p.display())))
        };
        if self.jwt_secret.is_none() {
            self.jwt_secret = read("jwt_secret")?;
        }
        if self.encryption_key.is_none() {
            self.encryption_key = read("encryption_key")?;
        }
        if self.smtp_password.is_none() {
            self.smtp_password = read("smtp_password")?;
        }
        Ok(self)
    }

    /// Checks that need more than types. Each message names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = |m: String| Err(ConfigError(m));
        if self.host.parse::<IpAddr>().is_err() && self.host != "localhost" {
            return e(format!("host: {:?} is not an IP address", self.host));
        }
        if let Some(s) = &self.jwt_secret
            && s.expose().len() < 32
        {
            return e("jwt_secret: must be at least 32 bytes".into());
        }
        if let Some(k) = &self.encryption_key
            && crate::auth::crypto::parse_key(k.expose()).is_none()
        {
            return e("encryption_key: must be 32 bytes, hex (64 chars) or base64".into());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                for (name, p) in [("tls_cert", c), ("tls_key", k)] {
                    if !p.is_file() {
                        return e(format!("{name}: file {} not found", p.display()));
                    }
                }
            }
            (None, None) => {}
            _ => return e("tls_cert and tls_key must be set together".into()),
        }
        if self.session_ttl_hours == 0 {
            return e("session_ttl_hours: must be positive".into());
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism || self.argon2_iterations == 0 {
            return e("argon2_memory_kib/argon2_iterations: invalid argon2 parameters".into());
        }
        if !(32..=64).contains(&self.throttle_ipv6_prefix) {
            return e("throttle_ipv6_prefix: must be between 32 and 64".into());
        }
        if self.password_min_length < 8 {
            return e("password_min_length: must be at least 8".into());
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return e("log_format: must be \"text\" or \"json\"".into());
        }
        self.trusted_proxy_nets()?;
        if let Some(u) = &self.web_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return e("web_url: must start with http:// or https://".into());
        }
        if let Some(h) = &self.smtp_host {
            match self.smtp_tls.as_str() {
                "starttls" | "tls" => {}
                "none" => {
                    // A password and every reset link would cross the network in clear.
                    let loopback =
                        h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
                    if !loopback {
                        return e(format!(
                            "smtp_tls: \"none\" is allowed only for a relay on this machine (smtp_host {h:?} is not loopback); use starttls or tls"
                        ));
                    }
                }
                other => {
                    return e(format!("smtp_tls: {other:?} must be starttls, tls or none"));
                }
            }
            if self.web_url.is_none() {
                return e("web_url: required when smtp_host is set (mailed links open the dashboard's pages there)".into());
            }
            let Some(from) = &self.smtp_from else {
                return e("smtp_from: required when smtp_host is set (the sender address)".into());
            };
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return e(format!(
                    "smtp_from: {from:?} is not an address (\"Posta <posta@example.com>\" or \"posta@example.com\")"
                ));
            }
            if let Some(ca) = &self.smtp_ca
                && !ca.is_file()
            {
                return e(format!("smtp_ca: file {} not found", ca.display()));
            }
        }
        if self.max_body_bytes == 0 || self.max_connections == 0 {
            return e("max_body_bytes/max_connections: must be positive".into());
        }
        Ok(())
    }

    /// `trusted_proxies` parsed as networks (a bare IP is a /32 or /128).
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        split_list(&self.trusted_proxies)
            .map(|s| {
                parse_net(s).ok_or_else(|| {
                    ConfigError(format!("trusted_proxies: {s:?} is not an IP or CIDR"))
                })
            })
            .collect()
    }

    /// `cors_origins` as a list of exact origins.
    #[must_use]
    pub fn cors_origin_list(&self) -> Vec<String> {
        split_list(&self.cors_origins)
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect()
    }

    /// The effective configuration as TOML with secrets masked, for `posta check-config`.
    #[must_use]
    pub fn masked_toml(&self) -> String {
        let mut c = self.clone();
        let mask = |s: &mut Option<Secret>| {
            if s.is_some() {
                *s = Some(Secret("********".into()));
            }
        };
        mask(&mut c.jwt_secret);
        mask(&mut c.encryption_key);
        mask(&mut c.admin_password);
        mask(&mut c.smtp_password);
        toml_string(&c)
    }

    /// Whether outgoing mail is configured.
    #[must_use]
    pub fn mail_enabled(&self) -> bool {
        self.smtp_host.is_some()
    }

    /// Where the store lives.
    #[must_use]
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("posta.redb")
    }
}

fn toml_string(c: &Config) -> String {
    // figment reads TOML but writes none: the `toml` crate renders the values (quoting and
    // escaping are TOML's own); keys without a value, which TOML cannot write, follow as
    // comments so that every key shows.
    let mut out = toml::to_string(c).unwrap_or_else(|e| format!("# not renderable: {e}\n"));
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(c) {
        for (k, _) in m.iter().filter(|(_, v)| v.is_null()) {
            out.push_str(&format!("# {k} = (unset)\n"));
        }
    }
    out
}

/// Comma- or whitespace-separated list, empties dropped.
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
}

/// An IP or CIDR.
#[must_use]
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

/// The name of group `gid` in /etc/group.
#[cfg(unix)]
fn group_name(gid: u32) -> Option<String> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse::<u32>().ok()?;
        (id == gid).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_sets_every_key() {
        let text = include_str!("../config.toml.example");
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .unwrap();
        cfg.normalized().validate().unwrap();
        let documented: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim_start_matches('#').trim().split_once('='))
            .map(|(k, _)| k.trim().to_owned())
            .collect();
        for k in known_keys() {
            assert!(documented.contains(&k), "config.toml.example lacks {k}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let c = Config {
            jwt_secret: Some(Secret("x".repeat(40))),
            ..Config::default()
        };
        let t = c.masked_toml();
        assert!(!t.contains(&"x".repeat(40)));
        assert!(t.contains("jwt_secret = \"********\""));
        assert!(t.contains("# tls_cert = (unset)"), "{t}");
        // What is printed reads back as the same configuration.
        let back: Config = toml::from_str(&t).unwrap();
        assert_eq!(back.port, c.port);
        assert_eq!(back.cors_origins, c.cors_origins);
        assert_eq!(format!("{:?}", c.jwt_secret), "Some([redacted])");
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = Config {
            trusted_proxies: "10.0.0.0/8, nonsense".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().0.contains("trusted_proxies"));
        let c = Config {
            jwt_secret: Some(Secret("short".into())),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().0.contains("jwt_secret"));
    }
}
