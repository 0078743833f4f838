//! HTTP: the per-request entry point, routing, authentication once per request, the envelope,
//! CORS and security headers, and one access-log line. Handlers decode, call a use case, encode.

pub mod access_log;
mod account;
mod admin;
mod auth;
mod cookie;
mod oauth;
pub mod openapi;
mod pages;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
mod view;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Incoming;

use crate::domain::{AuthKind, Caller, ClientInfo, session};
use crate::error::{Error, Result};
use crate::state::AppState;
use request::Req;
use response::Resp;
use router::{Access, Route};

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

/// Serve one request. Never fails: errors become the JSON envelope.
pub async fn handle(
    state: AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let rid = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let http1 = req.version() <= http::Version::HTTP_11;
    // The query is never logged: OAuth callbacks carry codes there. (A `Uri` clone shares
    // the request's bytes; no copy.)
    let uri = req.uri().clone();
    let path = uri.path();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed_origin = origin
        .as_deref()
        .filter(|o| state.cors_origins.iter().any(|a| a == o))
        .map(str::to_owned);

    // Only metrics need to know the credential kind; skip the header scan otherwise.
    let api_key = state.cfg.metrics_enabled
        && request::bearer(req.headers()).is_some_and(crate::auth::api_key::looks_like_key);
    let mut route_name = "unmatched";
    let result = if method == Method::OPTIONS && origin.is_some() {
        preflight(allowed_origin.is_some())
    } else {
        route_and_run(&state, req, peer, &mut route_name).await
    };
    let (mut resp, err) = match result {
        Ok(r) => (r, None),
        Err(e) => (response::error(&e), Some(e)),
    };
    finish_headers(&mut resp, rid, tls, allowed_origin.as_deref());
    if http1 && matches!(err, Some(Error::PayloadTooLarge)) {
        // The unread body makes the connection unusable: tell the client not to reuse it.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if state.cfg.metrics_enabled {
        if matches!(err, Some(Error::InvalidTwoFactorCode)) {
            state.metrics.two_factor_failure();
        }
        state.metrics.observe(&crate::metrics::Observation {
            route: route_name,
            status,
            seconds: elapsed.as_secs_f64(),
            error_code: err.as_ref().map(|e| e.code().as_str()),
            api_key,
        });
    }
    match &err {
        Some(e) if e.is_internal() => {
            tracing::error!(request_id = rid, %method, %path, status, micros, error = %e, "request failed");
        }
        _ => access_log::record(&access_log::Line {
            request_id: rid,
            method: method.as_str(),
            path,
            status,
            micros,
            code: err.as_ref().map(|e| e.code().as_str()),
        }),
    }
    Ok(resp)
}

fn preflight(allowed: bool) -> Result<Resp> {
    if !allowed {
        return Err(Error::Forbidden("origin not allowed".into()));
    }
    let mut r = response::empty(StatusCode::NO_CONTENT);
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-requested-with"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    Ok(r)
}

// Named once: a `&str` header name is parsed again on every insert.
static X_FRAME_OPTIONS: HeaderName = HeaderName::from_static("x-frame-options");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn finish_headers(r: &mut Resp, rid: u64, tls: bool, origin: Option<&str>) {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_FRAME_OPTIONS.clone(), HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    h.insert(X_REQUEST_ID.clone(), HeaderValue::from(rid));
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

async fn route_and_run(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
    route_name: &mut &'static str,
) -> Result<Resp> {
    let mut client = ClientInfo {
        ip: request::client_ip(peer, req.headers(), &state.trusted_proxies),
        user_agent: String::new(),
    };
    if let Some(page) = pages::serve(state, &req, &client) {
        *route_name = "dashboard";
        return Ok(page);
    }
    let route = Route::parse(req.method(), req.uri().path())?;
    *route_name = route.name();
    if route.opens_session() {
        // Only sign-ins record the user agent (with the session); skip the copy elsewhere.
        client.user_agent = request::user_agent(req.headers());
    }
    let (parts, body) = req.into_parts();
    let mut req = Req::new(parts, body, state.cfg.max_body_bytes, client);
    let access = match route {
        Route::Info if !state.cfg.info_public => Access::Any,
        ref r => r.access(),
    };
    let caller = authorize(state, &route, access, &req)?;
    dispatch(state, route, &mut req, caller).await
}

fn authorize(state: &AppState, route: &Route, access: Access, req: &Req) -> Result<Option<Caller>> {
    if access == Access::Public {
        return Ok(None);
    }
    let token = cookie::credential(state, req)?.ok_or(Error::Unauthorized)?;
    let caller = session::authenticate(state, token, &req.client)?;
    match (&caller.kind, access) {
        (AuthKind::ApiKey { .. }, Access::Session | Access::Admin) => {
            return Err(Error::Forbidden(
                "API keys cannot access this endpoint; sign in".into(),
            ));
        }
        (
            AuthKind::Session {
                setup_required: true,
                ..
            },
            _,
        ) if !route.allowed_before_2fa_setup() => {
            return Err(Error::TwoFactorSetupRequired);
        }
        _ => {}
    }
    if access == Access::Admin && !caller.is_admin() {
        return Err(Error::Forbidden("admin role required".into()));
    }
    Ok(Some(caller))
}

async fn dispatch(
    state: &AppState,
    route: Route,
    req: &mut Req,
    caller: Option<Caller>,
) -> Result<Resp> {
    let Some(c) = caller else {
        return match route {
            Route::OauthProviders | Route::OauthAuthorize(_) | Route::OauthCallback(_) => {
                oauth::public(state, route, req).await
            }
            Route::OpenApi if state.cfg.openapi_docs => Ok(response::ok_raw(
                StatusCode::OK,
                "application/json",
                openapi::document().to_string(),
            )),
            Route::Metrics if state.cfg.metrics_enabled => {
                let sessions = state.store.read(crate::store::session::count)?;
                let size = crate::store::Store::file_size(&state.cfg.db_path());
                Ok(response::ok_raw(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    state.metrics.render(sessions, size),
                ))
            }
            Route::OpenApi | Route::Metrics => Err(Error::NotFound("route")),
            other => auth::public(state, other, req).await,
        };
    };
    match route {
        Route::Verify | Route::Info => auth::verify(state, route, req, &c),
        Route::AdminCreateUser
        | Route::AdminListUsers
        | Route::AdminUpdateUser(_)
        | Route::AdminDeleteUser(_)
        | Route::AdminReset2fa(_)
        | Route::AdminRevokeSessions(_)
        | Route::AdminListApiKeys
        | Route::AdminDeleteApiKey(_)
        | Route::AdminGetSettings
        | Route::AdminPutSettings
        | Route::AdminEvents => admin::handle(state, route, req, &c).await,
        Route::MyOauthLinks
        | Route::UnlinkOauth(_)
        | Route::AdminListProviders
        | Route::AdminCreateProvider
        | Route::AdminUpdateProvider(_)
        | Route::AdminDeleteProvider(_) => oauth::authenticated(state, route, req, &c).await,
        other => account::handle(state, other, req, &c).await,
    }
}
