//! Public endpoints (health, info, login, register) and forward-auth verification.

use std::sync::LazyLock;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::session::{self, SignedIn};
use crate::domain::{AuthKind, Caller, email_flow, passkey};
use crate::error::{Error, Result};
use crate::state::AppState;

use super::rendered::{self, Forward};
use super::request::Req;
use super::response::{self, Resp};
use super::router::{Probe, SignIn};
use super::view::{Time, UserView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    two_factor_code: Option<String>,
    /// The second step alone: the token a first step answered with, and the code.
    #[serde(default)]
    pending_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    name: String,
    #[serde(default)]
    email: Option<String>,
    password: String,
    /// An invitation's token: the account gets the invited address and role, open
    /// registration or not.
    #[serde(default)]
    invite_token: Option<String>,
}

fn signed_in(state: &AppState, https: bool, status: StatusCode, s: &SignedIn) -> Resp {
    let mut data = json!({
        "token": s.token,
        "user": UserView::of(state, &s.user),
        "expires_at": crate::clock::rfc3339(s.expires_at),
    });
    if s.two_factor_setup_required {
        data["two_factor_setup_required"] = json!(true);
    }
    let mut r = response::ok(status, &data);
    let ttl = s.expires_at - state.now();
    response::set_cookie(&mut r, &super::cookie::session(https, &s.token, ttl, false));
    r
}

/// Probes and documents: no caller, nothing awaited.
pub fn probe(state: &AppState, route: Probe) -> Result<Resp> {
    match route {
        Probe::Healthz => {
            #[derive(Serialize)]
            struct Health {
                status: &'static str,
                timestamp: Time,
            }
            Ok(response::ok(
                StatusCode::OK,
                &Health {
                    status: "ok",
                    timestamp: Time(state.now()),
                },
            ))
        }
        Probe::Readyz => match state.store.check() {
            Ok(()) => Ok(response::ok(
                StatusCode::OK,
                &json!({"status": "ok", "checks": {"database": "ok"}}),
            )),
            Err(e) => {
                tracing::error!(error = %e, "readiness check failed");
                let mut r = response::error(&Error::Unavailable);
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                Ok(r)
            }
        },
        Probe::RegistrationStatus => Ok(response::ok(
            StatusCode::OK,
            &json!({
                "registration_enabled": state.registration_enabled(),
                // Posta's field: reset by email needs a relay to send the link.
                "password_reset_enabled": state.password_reset_enabled(),
                "email_verification_required": state.email_verification_required(),
                // Whether a relay is configured: the flows that need mail are off without.
                "email_enabled": state.cfg.mail_enabled(),
                // WebAuthn needs a secure web_url (https, or http://localhost).
                "passkeys_enabled": state.passkeys.is_ok(),
            }),
        )),
        Probe::OpenApi if state.cfg.openapi_docs => Ok(response::ok_raw(
            StatusCode::OK,
            "application/json",
            super::openapi::document().to_string(),
        )),
        Probe::Metrics if state.cfg.metrics_enabled => Ok(metrics(state)),
        Probe::OpenApi | Probe::Metrics => Err(Error::NotFound("route")),
    }
}

fn metrics(state: &AppState) -> Resp {
    let facts = crate::metrics::StoreFacts {
        sessions: state.store.read(crate::store::session::count).ok(),
        bytes: crate::store::Store::file_size(&state.cfg.db_path()),
        writable: state.store.writable(),
        mail_queued: state.store.read(crate::store::outbox::len).ok(),
    };
    response::ok_raw(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        state.metrics.render(&facts),
    )
}

/// `POST /auth/passkey/finish` and `POST /auth/login/passkey/finish`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasskeyBody {
    #[serde(default)]
    pending_token: Option<String>,
    ceremony: String,
    /// `PublicKeyCredential.toJSON()` of the assertion.
    credential: serde_json::Value,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingBody {
    pending_token: String,
}

/// `POST /auth/login` and `POST /auth/register`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: String,
    new_password: String,
}

pub async fn sign_in(state: &AppState, route: SignIn, req: &mut Req) -> Result<Resp> {
    match route {
        SignIn::Login => {
            let b: LoginRequest = req.json().await?;
            let new_device = super::cookie::device(req)?;
            let s = match (b.pending_token, b.email, b.password) {
                // Email and password resent with the code (Posta's dashboards do) still work.
                (_, Some(email), Some(password)) => {
                    let code = b.two_factor_code.as_deref();
                    session::login(state, &email, &password, code, &req.client).await?
                }
                (Some(token), None, None) => {
                    let code = b
                        .two_factor_code
                        .filter(|c| !c.trim().is_empty())
                        .ok_or_else(|| Error::invalid("two_factor_code", "is required"))?;
                    session::complete_pending(state, &token, &code, &req.client).await?
                }
                _ => {
                    return Err(Error::BadRequest(
                        "send email and password, or pending_token and two_factor_code".into(),
                    ));
                }
            };
            let mut r = signed_in(state, req.https, StatusCode::OK, &s);
            if let Some(c) = new_device {
                response::set_cookie(&mut r, &c);
            }
            Ok(r)
        }
        SignIn::PasskeyStart | SignIn::PasskeySecondStart => {
            let started = if route == SignIn::PasskeyStart {
                passkey::sign_in_start(state, &req.client)?
            } else {
                let b: PendingBody = req.json().await?;
                passkey::second_factor_start(state, &b.pending_token, &req.client)?
            };
            Ok(response::ok(
                StatusCode::OK,
                &json!({"options": started.options, "ceremony": started.ceremony}),
            ))
        }
        SignIn::PasskeyFinish | SignIn::PasskeySecondFinish => {
            let b: PasskeyBody = req.json().await?;
            let new_device = super::cookie::device(req)?;
            let credential = serde_json::to_vec(&b.credential)
                .map_err(|_| Error::invalid("credential", "is not JSON"))?;
            let s = if route == SignIn::PasskeyFinish {
                passkey::sign_in_finish(state, &b.ceremony, &credential, &req.client).await?
            } else {
                let token = b
                    .pending_token
                    .ok_or_else(|| Error::invalid("pending_token", "is required"))?;
                passkey::second_factor_finish(state, &token, &b.ceremony, &credential, &req.client)
                    .await?
            };
            let mut r = signed_in(state, req.https, StatusCode::OK, &s);
            if let Some(c) = new_device {
                response::set_cookie(&mut r, &c);
            }
            Ok(r)
        }
        SignIn::VerifyEmailLink => {
            let token = req
                .query("token")
                .ok_or_else(|| Error::invalid("token", "is required"))?;
            email_flow::verify(state, &token, &req.client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "email address verified"}),
            ))
        }
        SignIn::Invitation(token) => {
            let i = crate::domain::invitation::peek(state, &token, &req.client)?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"email": i.email, "role": i.role.as_str(), "name": i.name}),
            ))
        }
        SignIn::ConfirmEmail => {
            let b: TokenBody = req.json().await?;
            email_flow::confirm_email_change(state, &b.token, &req.client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "your account now uses the new address"}),
            ))
        }
        SignIn::VerifyEmail => {
            let b: TokenBody = req.json().await?;
            email_flow::verify(state, &b.token, &req.client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "email address verified"}),
            ))
        }
        SignIn::ForgotPassword => {
            let b: EmailBody = req.json().await?;
            email_flow::request_reset(state, &b.email, &req.client)?;
            // The same answer whether or not the address has an account.
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "if an account uses this address, a reset link is on its way"}),
            ))
        }
        SignIn::ResetPassword => {
            let b: ResetBody = req.json().await?;
            email_flow::reset(state, &b.token, &b.new_password, &req.client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "password changed; sign in with the new one"}),
            ))
        }
        SignIn::Register => {
            let b: RegisterRequest = req.json().await?;
            let new_device = super::cookie::device(req)?;
            let s = match b.invite_token.filter(|t| !t.trim().is_empty()) {
                Some(token) => {
                    crate::domain::invitation::register(
                        state,
                        &token,
                        &b.name,
                        b.email.as_deref(),
                        &b.password,
                        &req.client,
                    )
                    .await?
                }
                None => {
                    let email = b
                        .email
                        .ok_or_else(|| Error::invalid("email", "is required"))?;
                    session::register(state, &b.name, &email, &b.password, &req.client).await?
                }
            };
            let mut r = signed_in(state, req.https, StatusCode::CREATED, &s);
            if let Some(c) = new_device {
                response::set_cookie(&mut r, &c);
            }
            Ok(r)
        }
    }
}

/// `GET /info` (public unless `info_public = false`).
pub fn info(state: &AppState) -> Resp {
    // `commit_id` is Posta's name for the commit; `commit` stays for earlier clients.
    response::ok(
        StatusCode::OK,
        &json!({
            "name": "posta",
            "version": crate::version::VERSION,
            "commit": crate::version::COMMIT,
            "commit_id": crate::version::COMMIT,
            "openapi_docs": state.cfg.openapi_docs,
        }),
    )
}

/// The forward-auth answer; borrowed, so the hot path builds no intermediate JSON tree.
#[derive(Serialize)]
struct VerifyView<'a> {
    user_id: uuid::Uuid,
    email: &'a str,
    role: &'static str,
    auth: &'static str,
    scopes: &'a [String],
}

/// What a session may do: everything.
static ALL_SCOPES: LazyLock<[String; 1]> = LazyLock::new(|| ["*".to_owned()]);

/// `GET /auth/verify` (forward auth).
pub fn verify(req: &Req, c: &Caller) -> Result<Resp> {
    let (_, scopes) = grant(c);
    if let Some(need) = req.query("scope")
        && !scopes.iter().any(|s| s == "*" || *s == need)
    {
        return Err(Error::Forbidden(format!("scope {need} required")));
    }
    let f = rendered::forward(c, || forward(c))
        .ok_or_else(|| Error::Internal("verify answer not serialisable".into()))?;
    Ok(response::json_response_with(
        StatusCode::OK,
        f.body,
        f.headers,
    ))
}

/// How the caller authenticated, and what it may do.
fn grant(c: &Caller) -> (&'static str, &[String]) {
    match &c.kind {
        AuthKind::Session { .. } => ("jwt", &*ALL_SCOPES),
        AuthKind::ApiKey { scopes, .. } => ("api_key", scopes),
    }
}

/// Render the forward-auth answer of a caller.
fn forward(c: &Caller) -> Option<Forward> {
    let (auth, scopes) = grant(c);
    let body = response::envelope(&VerifyView {
        user_id: c.user.id,
        email: &c.user.email,
        role: c.user.role.as_str(),
        auth,
        scopes,
    })
    .ok()?;
    let mut id = uuid::Uuid::encode_buffer();
    let mut headers = response::json_headers();
    headers.insert(
        X_POSTA_USER_ID.clone(),
        HeaderValue::from_str(c.user.id.hyphenated().encode_lower(&mut id)).ok()?,
    );
    // Header values are plain ASCII (`HeaderValue` would take UTF-8 bytes as obs-text, which
    // proxies and the services behind them read each their own way): a non-ASCII address
    // (allowed by `email_utf8_local_parts`) is left to the body.
    if c.user.email.is_ascii()
        && let Ok(v) = HeaderValue::from_str(&c.user.email)
    {
        headers.insert(X_POSTA_USER_EMAIL.clone(), v);
    }
    headers.insert(
        X_POSTA_USER_ROLE.clone(),
        HeaderValue::from_static(c.user.role.as_str()),
    );
    headers.insert(X_POSTA_AUTH.clone(), HeaderValue::from_static(auth));
    let scopes = match scopes {
        [one] if one == "*" => Ok(HeaderValue::from_static("*")),
        [one] => HeaderValue::from_str(one),
        many => HeaderValue::from_str(&many.join(",")),
    };
    if let Ok(v) = scopes {
        headers.insert(X_POSTA_SCOPES.clone(), v);
    }
    Some(Forward {
        body: body.into(),
        headers,
    })
}

// The forward-auth headers, named once (a `&str` name is parsed on every insert).
static X_POSTA_USER_ID: HeaderName = HeaderName::from_static("x-posta-user-id");
static X_POSTA_USER_EMAIL: HeaderName = HeaderName::from_static("x-posta-user-email");
static X_POSTA_USER_ROLE: HeaderName = HeaderName::from_static("x-posta-user-role");
static X_POSTA_AUTH: HeaderName = HeaderName::from_static("x-posta-auth");
static X_POSTA_SCOPES: HeaderName = HeaderName::from_static("x-posta-scopes");
