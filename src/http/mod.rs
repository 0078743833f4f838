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
mod rendered;
pub mod request;
mod request_id;
pub mod response;
pub mod router;
pub mod server;
pub mod stream;
mod view;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use hyper::body::Incoming;

use crate::domain::{AuthKind, Caller, ClientInfo, session};
use crate::error::{Error, Result};
use crate::state::AppState;
use request::Req;
use response::Resp;
use router::{Access, Endpoint};

type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A request's answer, as hyper's service future.
///
/// Most requests (health, `/auth/verify`, `/users/me`, pages) await nothing and are answered
/// inside the service call: the request, and hyper's read buffer its headers share, are then
/// released before hyper polls the connection again. A future that still held them would make
/// hyper allocate a fresh 8 KiB read buffer for every request. Only work that waits (a body,
/// argon2, the store's writer, an identity provider) becomes a boxed future.
pub enum Answer {
    /// Answered.
    Now(std::future::Ready<Result<Resp, Infallible>>),
    /// Still working.
    Later(Pending<Resp>),
}

impl Future for Answer {
    type Output = Result<Resp, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Answer::Now(r) => Pin::new(r).poll(cx),
            Answer::Later(f) => f.as_mut().poll(cx).map(Ok),
        }
    }
}

/// A routed request: its result, or the work still to do.
enum Step {
    Now(Result<Resp>),
    Later(Pending<Result<Resp>>),
}

/// The work of a route that awaits, owning what it needs (cloning the state is an `Arc` bump).
fn later<F, Fut>(state: &AppState, req: Req, work: F) -> Step
where
    F: FnOnce(AppState, Req) -> Fut,
    Fut: Future<Output = Result<Resp>> + Send + 'static,
{
    Step::Later(Box::pin(work(state.clone(), req)))
}

/// Serve one request. Never fails: errors become the JSON envelope.
pub fn handle(state: &AppState, req: Request<Incoming>, peer: SocketAddr, tls: bool) -> Answer {
    // The `Origin` matters to a preflight, or when some origin may be allowed; with no CORS
    // origins configured (the default) other requests skip the header lookup.
    let origin = (req.method() == Method::OPTIONS || !state.cors_origins.is_empty())
        .then(|| req.headers().get(header::ORIGIN))
        .flatten()
        .and_then(|v| v.to_str().ok());
    let is_preflight = req.method() == Method::OPTIONS && origin.is_some();
    let mut exchange = Exchange {
        started: Instant::now(),
        rid: request_id::next(),
        method: req.method().clone(),
        http1: req.version() <= http::Version::HTTP_11,
        // The query is never logged: OAuth callbacks carry codes there. (A `Uri` clone shares
        // the request's bytes; no copy.)
        uri: req.uri().clone(),
        tls,
        allowed_origin: origin
            .filter(|o| state.cors_origins.iter().any(|a| a == o))
            .map(str::to_owned),
        // Only metrics need to know the credential kind; skip the header scan otherwise.
        api_key: state.cfg.metrics_enabled
            && request::bearer(req.headers()).is_some_and(crate::auth::api_key::looks_like_key),
        route_name: "unmatched",
    };
    let step = if is_preflight {
        Step::Now(preflight(exchange.allowed_origin.is_some()))
    } else {
        route(state, req, peer, tls, &mut exchange.route_name).unwrap_or_else(|e| Step::Now(Err(e)))
    };
    match step {
        Step::Now(result) => Answer::Now(std::future::ready(Ok(exchange.finish(state, result)))),
        Step::Later(work) => {
            let state = state.clone();
            Answer::Later(Box::pin(async move {
                let result = work.await;
                exchange.finish(&state, result)
            }))
        }
    }
}

/// What the response headers, metrics and the access line need once a request is answered.
struct Exchange {
    started: Instant,
    rid: u64,
    method: Method,
    http1: bool,
    uri: Uri,
    tls: bool,
    allowed_origin: Option<String>,
    api_key: bool,
    route_name: &'static str,
}

impl Exchange {
    fn finish(self, state: &AppState, result: Result<Resp>) -> Resp {
        let (mut resp, err) = match result {
            Ok(r) => (r, None),
            Err(e) => (response::error(&e), Some(e)),
        };
        finish_headers(
            &mut resp,
            self.rid,
            self.tls,
            self.allowed_origin.as_deref(),
        );
        if self.http1 && matches!(err, Some(Error::PayloadTooLarge | Error::RequestTimeout)) {
            // The unread body makes the connection unusable: tell the client not to reuse it.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let status = resp.status().as_u16();
        let elapsed = self.started.elapsed();
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if state.cfg.metrics_enabled {
            if matches!(err, Some(Error::InvalidTwoFactorCode)) {
                state.metrics.two_factor_failure();
            }
            state.metrics.observe(&crate::metrics::Observation {
                route: self.route_name,
                status,
                seconds: elapsed.as_secs_f64(),
                error_code: err.as_ref().map(|e| e.code().as_str()),
                api_key: self.api_key,
            });
        }
        let (method, path, rid) = (&self.method, self.uri.path(), self.rid);
        match &err {
            Some(e) if e.is_internal() => {
                let path = crate::logsafe::Untrusted(path);
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
        resp
    }
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

/// Fill in the request id and what every response carries. A response built on
/// [`response::json_headers`] already has the security headers and a request-id slot.
fn finish_headers(r: &mut Resp, rid: u64, tls: bool, origin: Option<&str>) {
    let h = r.headers_mut();
    let id = request_id::header_value(rid);
    match response::request_id_slot(h) {
        Some(slot) => *slot = id,
        None => {
            h.insert(response::X_REQUEST_ID.clone(), id);
            response::insert_security_headers(h);
        }
    }
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

fn route(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
    route_name: &mut &'static str,
) -> Result<Step> {
    let https = cookie::is_https(state, tls, peer, req.headers());
    let mut client = ClientInfo {
        ip: request::client_ip(peer, req.headers(), &state.trusted_proxies),
        user_agent: String::new(),
        device: None,
    };
    if let Some(page) = pages::serve(state, &req, &client, https) {
        *route_name = "dashboard";
        return Ok(Step::Now(Ok(page)));
    }
    let endpoint = Endpoint::parse(req.method(), req.uri().path())?;
    *route_name = endpoint.name();
    if endpoint.opens_session() {
        // Only sign-ins record the user agent (with the session); skip the copy elsewhere.
        client.user_agent = request::user_agent(req.headers());
    }
    let (parts, body) = req.into_parts();
    let req = Req::new(
        parts,
        body,
        state.cfg.max_body_bytes,
        // The body gets as long as the head had (`header_read_timeout_secs`).
        std::time::Duration::from_secs(state.cfg.header_read_timeout_secs.max(1)),
        client,
        https,
    );
    let access = match endpoint {
        Endpoint::Info if !state.cfg.info_public => Access::Any,
        ref e => e.access(),
    };
    let caller = authorize(state, &endpoint, access, &req)?;
    // One match, no wildcard: each group goes to its handler, whose own match over the group
    // has none either. The hot answers (forward auth, `/info`, `/users/me`) borrow the
    // request; the others own it in a future.
    Ok(match endpoint {
        Endpoint::Verify => Step::Now(auth::verify(&req, signed_in(caller.as_ref())?)),
        Endpoint::Info => Step::Now(Ok(auth::info(state))),
        Endpoint::Me => Step::Now(account::me(state, signed_in(caller.as_ref())?)),
        Endpoint::Probe(p) => Step::Now(auth::probe(state, p)),
        Endpoint::SignIn(s) => later(state, req, move |state, mut req| async move {
            auth::sign_in(&state, s, &mut req).await
        }),
        Endpoint::Sso(s) => later(state, req, move |state, mut req| async move {
            oauth::public(&state, s, &mut req).await
        }),
        Endpoint::Account(a) => {
            let c = owned(caller)?;
            later(state, req, move |state, mut req| async move {
                account::handle(&state, a, &mut req, &c).await
            })
        }
        Endpoint::Links(l) => {
            let c = owned(caller)?;
            later(state, req, move |state, mut req| async move {
                oauth::links(&state, l, &mut req, &c).await
            })
        }
        Endpoint::Admin(a) => {
            let c = owned(caller)?;
            later(state, req, move |state, mut req| async move {
                admin::handle(&state, a, &mut req, &c).await
            })
        }
        Endpoint::AdminSso(a) => {
            let c = owned(caller)?;
            later(state, req, move |state, mut req| async move {
                oauth::admin(&state, a, &mut req, &c).await
            })
        }
    })
}

/// The caller of an endpoint whose access is not public (`authorize` made sure of one).
fn signed_in(caller: Option<&Caller>) -> Result<&Caller> {
    caller.ok_or(Error::Unauthorized)
}

fn owned(caller: Option<Caller>) -> Result<Caller> {
    caller.ok_or(Error::Unauthorized)
}

fn authorize(
    state: &AppState,
    route: &Endpoint,
    access: Access,
    req: &Req,
) -> Result<Option<Caller>> {
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
    // Until its address is verified (when the platform requires it), an account reaches only
    // its profile, the resend and logout; its API keys do not verify.
    if state.email_verification_required() && !caller.user.email_verified() {
        match caller.kind {
            AuthKind::ApiKey { .. } => return Err(Error::Unauthorized),
            AuthKind::Session { .. } if !route.allowed_before_verification() => {
                return Err(Error::Forbidden(
                    "verify your email address first (see the link we mailed you)".into(),
                ));
            }
            AuthKind::Session { .. } => {}
        }
    }
    if access == Access::Admin && !caller.is_admin() {
        return Err(Error::Forbidden("admin role required".into()));
    }
    Ok(Some(caller))
}
