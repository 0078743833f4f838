//! The dashboard's session cookie and its CSRF rules.
//!
//! The cookie carries the same JWT as the `Authorization` header. Because browsers attach it
//! on their own, a cookie-authenticated request must also prove it comes from our pages: it
//! must carry `X-Requested-With` (a custom header a cross-site form cannot send, and which a
//! cross-site script can send only after a CORS preflight we refuse) and, when present, an
//! `Origin` equal to this server's.

use http::header;

use crate::error::{Error, Result};
use crate::state::AppState;

use super::request::Req;

/// Name of the session cookie.
pub const SESSION: &str = "posta_session";

fn secure(state: &AppState) -> &'static str {
    let https = state.cfg.tls_cert.is_some()
        || state
            .cfg
            .web_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
    if https { "; Secure" } else { "" }
}

/// `Set-Cookie` value for a new session. `lax` is for the SSO callback, which arrives as a
/// cross-site navigation; password sign-in uses `Strict`.
#[must_use]
pub fn session(state: &AppState, token: &str, max_age: i64, lax: bool) -> String {
    let site = if lax { "Lax" } else { "Strict" };
    format!(
        "{SESSION}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={site}{}",
        secure(state)
    )
}

/// `Set-Cookie` value that removes the session cookie.
#[must_use]
pub fn clear(state: &AppState) -> String {
    format!(
        "{SESSION}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        secure(state)
    )
}

/// A cookie with the given path and lifetime (the SSO browser binding).
#[must_use]
pub fn scoped(state: &AppState, name: &str, value: &str, path: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        secure(state)
    )
}

/// Name of the device cookie: `__Host-` under HTTPS (no sibling host can plant or scope it),
/// the plain name over HTTP, where browsers refuse that prefix.
#[must_use]
pub fn device_name(state: &AppState) -> &'static str {
    if secure(state).is_empty() {
        "posta_device"
    } else {
        "__Host-posta_device"
    }
}

/// How long a browser keeps its device id: 400 days, the most browsers allow.
const DEVICE_MAX_AGE: i64 = 400 * 24 * 3600;

/// Give a sign-in request its device: the hash of the browser's device id from its cookie, or
/// of a fresh one. Returns the `Set-Cookie` value to send when the id is fresh.
pub fn device(state: &AppState, req: &mut Req) -> Result<Option<String>> {
    let name = device_name(state);
    let sent = req
        .cookie(name)
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned);
    let (id, fresh) = match sent {
        Some(id) => (id, false),
        None => {
            use base64::Engine as _;
            let raw = crate::auth::crypto::random_bytes::<32>()?;
            (
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
                true,
            )
        }
    };
    req.client.device = Some(crate::auth::crypto::sha256(id.as_bytes()));
    Ok(fresh.then(|| {
        format!(
            "{name}={id}; Path=/; Max-Age={DEVICE_MAX_AGE}; HttpOnly; SameSite=Lax{}",
            secure(state)
        )
    }))
}

/// The credential of a request: the bearer token, else the session cookie under the CSRF rules.
/// Borrowed from the request, as bytes: authenticating copies nothing and scans nothing
/// before the cache lookup.
pub fn credential<'r>(state: &AppState, req: &'r Req) -> Result<Option<&'r [u8]>> {
    if let Some(b) = req.bearer() {
        return Ok(Some(b));
    }
    let Some(token) = req.cookie(SESSION).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let h = &req.parts.headers;
    if h.get("x-requested-with").is_none() {
        return Err(Error::Forbidden(
            "cookie sessions require the X-Requested-With header".into(),
        ));
    }
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.parts.uri.authority().map(http::uri::Authority::as_str));
        let same_host = origin.split_once("://").map(|(_, h)| h) == host;
        let known = state.cfg.web_url.as_deref() == Some(origin)
            || state.cors_origins.iter().any(|o| o == origin);
        if !same_host && !known {
            return Err(Error::Forbidden("cross-origin request refused".into()));
        }
    }
    Ok(Some(token.as_bytes()))
}
