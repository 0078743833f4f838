//! The dashboard: static pages embedded in the binary (no CDN, works air-gapped), served with a
//! strict Content-Security-Policy. The pages talk to the JSON API with the session cookie.

use http::{HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Incoming;

use crate::domain::{ClientInfo, session};
use crate::state::AppState;

use super::response::{self, Resp};

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");

/// No inline script or style, nothing from elsewhere; QR codes are `data:` images.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Paths of the dashboard's pages.
pub const PAGES: &[&str] = &[
    "/login",
    "/register",
    "/account",
    "/admin",
    "/auth/oauth/callback",
    "/auth/verify-email",
    "/auth/invitation",
    "/auth/confirm-email",
    "/auth/forgot-password",
    "/auth/reset-password",
];

fn with_csp(mut r: Resp) -> Resp {
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

/// Serve a dashboard path, or `None` when the request is for the API.
pub fn serve(
    state: &AppState,
    req: &Request<Incoming>,
    client: &ClientInfo,
    https: bool,
) -> Option<Resp> {
    if !(req.method() == Method::GET || req.method() == Method::HEAD) {
        return None;
    }
    let path = req.uri().path();
    let page = |ct: &'static str, body: &'static str| {
        // Static bytes: served without a copy.
        Some(with_csp(response::ok_raw(StatusCode::OK, ct, body)))
    };
    match path {
        "/" => {
            // Signed in (a valid session cookie) goes to the account page, else to sign-in.
            let signed_in = super::cookie::session_cookie(https, req.headers())
                .ok()
                .flatten()
                .is_some_and(|t| session::authenticate(state, t.as_bytes(), client).is_ok());
            Some(with_csp(response::redirect(if signed_in {
                "/account"
            } else {
                "/login"
            })))
        }
        "/assets/app.js" => page("text/javascript; charset=utf-8", APP_JS),
        "/assets/app.css" => page("text/css; charset=utf-8", APP_CSS),
        p if PAGES.contains(&p) => page("text/html; charset=utf-8", INDEX),
        _ => None,
    }
}
