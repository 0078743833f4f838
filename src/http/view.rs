//! Response DTOs: what the API shows of domain types (never a hash or secret).

use serde::Serialize;
use uuid::Uuid;

use crate::clock::rfc3339;
use crate::domain::Caller;
use crate::domain::audit::{self, Entry};
use crate::model::{ApiKey, Session, User};
use crate::state::AppState;

/// A Unix time shown as RFC 3339, written straight into the output (no intermediate string).
#[derive(Debug, Clone, Copy)]
pub struct Time(pub i64);

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = crate::clock::Rfc3339Buf::default();
        s.serialize_str(buf.format(self.0))
    }
}

/// The `user` object of the API; for `GET /users/me` also how the user can sign in.
#[derive(Debug, Serialize)]
pub struct UserView<'a> {
    id: Uuid,
    name: &'a str,
    email: &'a str,
    role: &'static str,
    active: bool,
    two_factor_enabled: bool,
    email_verified: bool,
    email_verified_at: Option<Time>,
    /// This account must verify its email before it can do more (the platform requires it
    /// and it is not verified yet).
    email_verification_required: bool,
    scheduled_deletion_at: Option<Time>,
    created_at: Time,
    last_login_at: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_methods: Option<AuthMethods<'a>>,
}

impl<'a> UserView<'a> {
    /// The user object of `u` on this server.
    #[must_use]
    pub fn of(state: &AppState, u: &'a User) -> Self {
        Self {
            id: u.id,
            name: &u.name,
            email: &u.email,
            role: u.role.as_str(),
            active: u.active,
            two_factor_enabled: u.totp.is_some(),
            email_verified: u.email_verified(),
            email_verified_at: u.email_verified_at.map(Time),
            email_verification_required: state.email_verification_required() && !u.email_verified(),
            scheduled_deletion_at: u.scheduled_deletion_at.map(Time),
            created_at: Time(u.created_at),
            last_login_at: u.last_login_at.map(Time),
            auth_methods: None,
        }
    }

    /// `GET /users/me`: the user plus its sign-in methods, given the slugs of its linked
    /// identity providers.
    #[must_use]
    pub fn profile(state: &AppState, u: &'a User, sso: &'a [String]) -> Self {
        Self {
            auth_methods: Some(AuthMethods {
                password: u.password_hash.is_some(),
                totp: u.totp.is_some(),
                sso,
            }),
            ..Self::of(state, u)
        }
    }
}

/// `["password", "totp", "oauth:<slug>", …]`, serialised without building the strings.
#[derive(Debug)]
struct AuthMethods<'a> {
    password: bool,
    totp: bool,
    sso: &'a [String],
}

impl Serialize for AuthMethods<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        struct Oauth<'a>(&'a str);
        impl std::fmt::Display for Oauth<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("oauth:")?;
                f.write_str(self.0)
            }
        }
        let n = usize::from(self.password) + usize::from(self.totp) + self.sso.len();
        let mut seq = s.serialize_seq(Some(n))?;
        if self.password {
            seq.serialize_element("password")?;
        }
        if self.totp {
            seq.serialize_element("totp")?;
        }
        for slug in self.sso {
            seq.serialize_element(&format_args!("{}", Oauth(slug)))?;
        }
        seq.end()
    }
}

/// A session in the caller's list.
#[derive(Debug, Serialize)]
pub struct SessionView {
    id: Uuid,
    ip_address: String,
    user_agent: String,
    browser: String,
    os: String,
    device: &'static str,
    /// "Firefox on Linux", for a list a person reads.
    label: String,
    created_at: String,
    expires_at: String,
    current: bool,
}

impl SessionView {
    /// View of `s`, marking the caller's own.
    #[must_use]
    pub fn new(s: &Session, caller: &Caller) -> Self {
        let agent = Agent::parse(&s.user_agent);
        Self {
            id: s.id,
            ip_address: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            label: agent.label(),
            browser: agent.browser,
            os: agent.os,
            device: agent.device,
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            current: caller.session_id() == Some(s.id),
        }
    }
}

/// What a session's User-Agent says, parsed with `woothee` (its patterns are maintained
/// with the crate). The input is bounded: only the first 512 bytes are looked at.
struct Agent {
    browser: String,
    os: String,
    device: &'static str,
}

impl Agent {
    fn parse(ua: &str) -> Self {
        let mut end = ua.len().min(512);
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        let unknown = || Self {
            browser: "Unknown".into(),
            os: "Unknown".into(),
            device: "unknown",
        };
        let Some(r) = woothee::parser::Parser::new().parse(ua.get(..end).unwrap_or_default())
        else {
            return unknown();
        };
        let known = |v: &str| {
            if v == woothee::woothee::VALUE_UNKNOWN {
                "Unknown".to_owned()
            } else {
                v.to_owned()
            }
        };
        Self {
            browser: known(r.name),
            os: known(r.os),
            device: match r.category {
                "pc" => "desktop",
                "smartphone" | "mobilephone" => "mobile",
                "appliance" => "appliance",
                "crawler" => "bot",
                _ => "unknown",
            },
        }
    }

    fn label(&self) -> String {
        match (self.browser.as_str(), self.os.as_str()) {
            ("Unknown", "Unknown") => "Unknown device".into(),
            (b, "Unknown") => b.to_owned(),
            ("Unknown", o) => o.to_owned(),
            (b, o) => format!("{b} on {o}"),
        }
    }
}

/// An API key in a list (Posta's field names).
#[derive(Debug, Serialize)]
pub struct ApiKeyView {
    id: Uuid,
    user_id: Uuid,
    name: String,
    key_prefix: String,
    scopes: Vec<String>,
    allowed_ips: Vec<String>,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked: bool,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id,
            user_id: k.user_id,
            name: k.name.clone(),
            key_prefix: k.prefix.clone(),
            scopes: k.scopes.clone(),
            allowed_ips: k.allowed_ips.clone(),
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked: k.revoked_at.is_some(),
        }
    }
}

/// An audit event in Posta's shape (`category`, `type`, `actor_name`, `client_ip`,
/// `message`, `metadata`), plus this appliance's earlier fields (`user_id`, `email`,
/// `ip_address`, `detail`) for the clients that read them.
#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    id: u64,
    category: &'static str,
    #[serde(rename = "type")]
    kind: &'a str,
    actor_id: Option<Uuid>,
    actor_name: Option<&'a str>,
    client_ip: Option<&'a str>,
    message: String,
    metadata: EventMetadata<'a>,
    created_at: Time,
    user_id: Option<Uuid>,
    email: Option<&'a str>,
    ip_address: Option<&'a str>,
    detail: &'a str,
}

#[derive(Debug, Serialize)]
struct EventMetadata<'a> {
    user_id: Option<Uuid>,
    email: Option<&'a str>,
    detail: &'a str,
}

impl<'a> From<&'a Entry> for EventView<'a> {
    fn from(en: &'a Entry) -> Self {
        let e = &en.event;
        let what = audit::describe(&e.kind);
        Self {
            id: e.id,
            category: audit::category(e),
            kind: &e.kind,
            actor_id: e.actor,
            actor_name: en.actor_name.as_deref(),
            client_ip: e.ip.as_deref(),
            message: if e.detail.is_empty() {
                what.to_owned()
            } else {
                format!("{what}: {}", e.detail)
            },
            metadata: EventMetadata {
                user_id: e.subject,
                email: e.email.as_deref(),
                detail: &e.detail,
            },
            created_at: Time(e.at),
            user_id: e.subject,
            email: e.email.as_deref(),
            ip_address: e.ip.as_deref(),
            detail: &e.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Agent;

    #[test]
    fn user_agents_become_labels() {
        let chrome = Agent::parse(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        );
        assert_eq!(
            (chrome.browser.as_str(), chrome.os.as_str(), chrome.device),
            ("Chrome", "Linux", "desktop")
        );
        assert_eq!(chrome.label(), "Chrome on Linux");
        let iphone = Agent::parse(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(
            (iphone.browser.as_str(), iphone.os.as_str(), iphone.device),
            ("Safari", "iPhone", "mobile")
        );
        let curl = Agent::parse("curl/8.5.0");
        assert_eq!(
            (curl.label().as_str(), curl.device),
            ("HTTP Library", "unknown")
        );
        let none = Agent::parse("");
        assert_eq!(none.label(), "Unknown device");
        // Long and multi-byte input: bounded, never split inside a character.
        let long = format!("{}é{}", "a".repeat(511), "b".repeat(100_000));
        assert_eq!(Agent::parse(&long).device, "unknown");
    }
}

/// A passkey as the API shows it (never its key or counter).
#[derive(Debug, Serialize)]
pub struct PasskeyView {
    id: Uuid,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
    backed_up: bool,
}

impl PasskeyView {
    /// The view of a stored passkey.
    #[must_use]
    pub fn of(p: &crate::model::Passkey) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            created_at: rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(rfc3339),
            backed_up: p.backed_up,
        }
    }
}
