//! Response DTOs: what the API shows of domain types (never a hash or secret).

use serde::Serialize;
use uuid::Uuid;

use crate::clock::rfc3339;
use crate::domain::Caller;
use crate::model::{ApiKey, Event, Session, User};

/// The `user` object of the API.
#[derive(Debug, Serialize)]
pub struct UserView {
    id: Uuid,
    name: String,
    email: String,
    role: &'static str,
    active: bool,
    two_factor_enabled: bool,
    created_at: String,
    last_login_at: Option<String>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            name: u.name.clone(),
            email: u.email.clone(),
            role: u.role.as_str(),
            active: u.active,
            two_factor_enabled: u.totp.is_some(),
            created_at: rfc3339(u.created_at),
            last_login_at: u.last_login_at.map(rfc3339),
        }
    }
}

/// `GET /users/me`: the user plus how it can sign in.
#[derive(Debug, Serialize)]
pub struct ProfileView {
    #[serde(flatten)]
    user: UserView,
    auth_methods: Vec<String>,
}

impl ProfileView {
    /// The profile of `u`, whose identity-provider links have the given slugs.
    #[must_use]
    pub fn new(u: &User, sso: &[String]) -> Self {
        let mut auth_methods = Vec::new();
        if u.password_hash.is_some() {
            auth_methods.push("password".to_owned());
        }
        if u.totp.is_some() {
            auth_methods.push("totp".to_owned());
        }
        auth_methods.extend(sso.iter().map(|s| format!("oauth:{s}")));
        Self {
            user: u.into(),
            auth_methods,
        }
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
