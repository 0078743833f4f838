//! The dashboard's session cookie and its CSRF rules.
//!
//! The cookie carries the same JWT as the `Authorization` header. Under HTTPS it is
//! `__Host-posta_session` (Secure, Path=/, no Domain: no sibling host can plant or scope one);
//! over plain HTTP, where browsers refuse that prefix, `posta_session`. Several session
//! cookies in one request are refused (401) rather than one picked.
//!
//! Because browsers attach the cookie on their own, a cookie-authenticated request must show
//! it comes from this server's pages: an `Origin` that is this server's own (scheme, host and
//! port compared) or a configured one; else the browser's `Sec-Fetch-Site: same-origin` (or
//! `none`, a navigation); a foreign `Origin`, or `Sec-Fetch-Site: same-site`/`cross-site`, is
//! refused. A request with neither header (not a current browser) is served for safe methods
//! and refused for unsafe ones. `X-Requested-With` is accepted, never required.

use http::header;

use crate::error::{Error, Result};
use crate::state::AppState;

use super::request::Req;

/// Name of the session cookie over plain HTTP.
pub const SESSION: &str = "posta_session";
/// Name of the session cookie under HTTPS.
pub const SESSION_HOST: &str = "__Host-posta_session";

/// Whether a request reached this server over HTTPS: TLS on this listener, a `POSTA_WEB_URL`
/// that is `https://` (the address users are given), or `X-Forwarded-Proto: https` from a
/// trusted proxy (never believed from anyone else).
#[must_use]
pub fn is_https(
    state: &AppState,
    tls: bool,
    peer: std::net::SocketAddr,
    h: &http::HeaderMap,
) -> bool {
    tls || state
        .cfg
        .web_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || (!state.trusted_proxies.is_empty()
            && h.get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
            && state.trusted_proxies.iter().any(|n| n.contains(&peer.ip())))
}

/// The session cookie's name for a request over HTTPS or not.
#[must_use]
pub fn session_name(https: bool) -> &'static str {
    if https { SESSION_HOST } else { SESSION }
}

fn secure(https: bool) -> &'static str {
    if https { "; Secure" } else { "" }
}

/// `Set-Cookie` value for a new session. `lax` is for the SSO callback, which arrives as a
/// cross-site navigation; password sign-in uses `Strict`.
#[must_use]
pub fn session(https: bool, token: &str, max_age: i64, lax: bool) -> String {
    let site = if lax { "Lax" } else { "Strict" };
    format!(
        "{}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={site}{}",
        session_name(https),
        secure(https)
    )
}

/// `Set-Cookie` value that removes the session cookie.
#[must_use]
pub fn clear(https: bool) -> String {
    format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        session_name(https),
        secure(https)
    )
}

/// A cookie with the given path and lifetime (the SSO browser binding).
#[must_use]
pub fn scoped(https: bool, name: &str, value: &str, path: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        secure(https)
    )
}

/// Name of the device cookie: `__Host-` under HTTPS (no sibling host can plant or scope it),
/// the plain name over HTTP, where browsers refuse that prefix.
#[must_use]
pub fn device_name(https: bool) -> &'static str {
    if !https {
        "posta_device"
    } else {
        "__Host-posta_device"
    }
}

/// How long a browser keeps its device id: 400 days, the most browsers allow.
const DEVICE_MAX_AGE: i64 = 400 * 24 * 3600;

/// Give a sign-in request its device: the hash of the browser's device id from its cookie, or
/// of a fresh one. Returns the `Set-Cookie` value to send when the id is fresh.
pub fn device(req: &mut Req) -> Result<Option<String>> {
    let name = device_name(req.https);
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
            secure(req.https)
        )
    }))
}

/// The session cookie of a request, if exactly one was sent.
pub fn session_cookie(https: bool, h: &http::HeaderMap) -> Result<Option<&str>> {
    let mut all = super::request::cookies(h, session_name(https)).filter(|t| !t.is_empty());
    let first = all.next();
    if all.next().is_some() {
        return Err(Error::Unauthorized);
    }
    Ok(first)
}

/// This server's own origin: `POSTA_WEB_URL`'s when set, else the request's scheme (see
/// [`is_https`]) and `Host`.
fn own_origin<'a>(state: &'a AppState, req: &'a Req) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(w) = state.cfg.web_url.as_deref() {
        return Some(std::borrow::Cow::Borrowed(w.trim_end_matches('/')));
    }
    let host = req
        .parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())?;
    let scheme = if req.https { "https" } else { "http" };
    Some(std::borrow::Cow::Owned(format!("{scheme}://{host}")))
}

/// The credential of a request: the bearer token, else the session cookie under the CSRF rules.
/// Borrowed from the request, as bytes: authenticating copies nothing and scans nothing
/// before the cache lookup.
pub fn credential<'r>(state: &AppState, req: &'r Req) -> Result<Option<&'r [u8]>> {
    if let Some(b) = req.bearer() {
        return Ok(Some(b));
    }
    let h = &req.parts.headers;
    let Some(token) = session_cookie(req.https, h)? else {
        return Ok(None);
    };
    let refused = |why: &str| {
        Err(Error::Forbidden(format!(
            "cross-origin request refused ({why})"
        )))
    };
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin = origin.trim_end_matches('/');
        let own = own_origin(state, req).is_some_and(|o| o.eq_ignore_ascii_case(origin));
        let configured = state
            .cors_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin));
        return if own || configured {
            Ok(Some(token.as_bytes()))
        } else {
            refused("foreign Origin")
        };
    }
    match h.get("sec-fetch-site").map(http::HeaderValue::as_bytes) {
        Some(b"same-origin" | b"none") => Ok(Some(token.as_bytes())),
        Some(_) => refused("Sec-Fetch-Site"),
        // Every current browser sends one of the two with an unsafe request; a client that
        // sends neither is not a browser page and authenticates with the bearer header.
        None if req.parts.method.is_safe() => Ok(Some(token.as_bytes())),
        None => refused("an unsafe cookie request needs Origin or Sec-Fetch-Site"),
    }
}
