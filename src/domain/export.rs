//! `posta export --format jsonl`: settings, users, API keys (hashes only) and providers
//! (secrets omitted), one JSON object per line. TOTP secrets and recovery codes are omitted.

use serde_json::json;

use crate::clock::rfc3339 as rfc;
use crate::error::Result;
use crate::store::{self, ReadTransaction};

/// Render the whole store as JSON lines.
pub fn jsonl(tx: &ReadTransaction) -> Result<String> {
    let mut lines = vec![json!({
        "type": "settings",
        "settings": super::admin::settings_view(&store::meta::settings(tx)?),
    })];
    store::user::for_each(tx, |u| {
        lines.push(json!({
            "type": "user", "id": u.id, "name": u.name, "email": u.email, "role": u.role.as_str(),
            "active": u.active, "password_hash": u.password_hash, "two_factor_enabled": u.totp.is_some(),
            "created_at": rfc(u.created_at), "last_login_at": u.last_login_at.map(rfc),
        }));
        true
    })?;
    for k in store::api_key::list_all(tx)? {
        lines.push(json!({
            "type": "api_key", "id": k.id, "user_id": k.user_id, "name": k.name, "prefix": k.prefix,
            "sha256": crate::auth::crypto::to_hex(&k.hash), "scopes": k.scopes, "allowed_ips": k.allowed_ips,
            "created_at": rfc(k.created_at), "expires_at": k.expires_at.map(rfc), "revoked": k.revoked_at.is_some(),
        }));
    }
    for p in store::oauth::providers(tx)? {
        lines.push(json!({
            "type": "oauth_provider", "id": p.id, "name": p.name, "slug": p.slug, "provider_type": p.kind.as_str(),
            "client_id": p.client_id, "issuer": p.issuer, "auth_url": p.auth_url, "token_url": p.token_url,
            "userinfo_url": p.userinfo_url, "scopes": p.scopes, "auto_register": p.auto_register,
            "allowed_domains": p.allowed_domains, "enabled": p.enabled,
        }));
    }
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.to_string());
        out.push('\n');
    }
    Ok(out)
}
