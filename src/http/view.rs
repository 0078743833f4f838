//! Response DTOs: what the API shows of domain types (never a hash or secret).

use serde::Serialize;
use uuid::Uuid;

use crate::clock::rfc3339;
use crate::domain::Caller;
use crate::model::{ApiKey, Event, Session, User};

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
    created_at: Time,
    last_login_at: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_methods: Option<AuthMethods<'a>>,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> Self {
        Self {
            id: u.id,
            name: &u.name,
            email: &u.email,
            role: u.role.as_str(),
            active: u.active,
            two_factor_enabled: u.totp.is_some(),
            email_verified: u.email_verified(),
            email_verified_at: u.email_verified_at.map(Time),
            created_at: Time(u.created_at),
            last_login_at: u.last_login_at.map(Time),
            auth_methods: None,
        }
    }
}

impl<'a> UserView<'a> {
    /// `GET /users/me`: the user plus its sign-in methods, given the slugs of its linked
    /// identity providers.
    #[must_use]
    pub fn profile(u: &'a User, sso: &'a [String]) -> Self {
        Self {
            auth_methods: Some(AuthMethods {
                password: u.password_hash.is_some(),
                totp: u.totp.is_some(),
                sso,
            }),
            ..Self::from(u)
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
    created_at: String,
    expires_at: String,
    current: bool,
}

impl SessionView {
    /// View of `s`, marking the caller's own.
    #[must_use]
    pub fn new(s: &Session, caller: &Caller) -> Self {
        Self {
            id: s.id,
            ip_address: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            current: caller.session_id() == Some(s.id),
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

/// An audit event.
#[derive(Debug, Serialize)]
pub struct EventView {
    id: u64,
    #[serde(rename = "type")]
    kind: String,
    created_at: String,
    actor_id: Option<Uuid>,
    user_id: Option<Uuid>,
    email: Option<String>,
    ip_address: Option<String>,
    detail: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            id: e.id,
            kind: e.kind.clone(),
            created_at: rfc3339(e.at),
            actor_id: e.actor,
            user_id: e.subject,
            email: e.email.clone(),
            ip_address: e.ip.clone(),
            detail: e.detail.clone(),
        }
    }
}
