//! SSO endpoints: the public provider list, authorize and callback redirects, the caller's
//! links, and provider administration.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::domain::Caller;
use crate::domain::oidc::{self, Callback, Finished, ProviderInput, SsoError};
use crate::error::{Error, Result};
use crate::model::{OauthLink, OauthProvider};
use crate::state::AppState;

use super::cookie;
use super::request::Req;
use super::response::{self, Resp};
use super::router::{AdminSso, Links, Sso};
use super::view::UserView;

/// Cookie binding an authorization to the browser that started it (login CSRF defence).
const BINDING_COOKIE: &str = "posta_oauth";
/// Path the binding cookie is limited to.
const OAUTH_PATH: &str = "/api/v1/auth/oauth";

#[derive(Deserialize)]
#[serde(untagged)]
enum Domains {
    List(Vec<String>),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderBody {
    name: Option<String>,
    slug: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    issuer: Option<String>,
    auth_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    scopes: Option<String>,
    auto_register: Option<bool>,
    allowed_domains: Option<Domains>,
    enabled: Option<bool>,
    trust_email: Option<bool>,
    skip_local_2fa: Option<bool>,
    hidden: Option<bool>,
}

impl From<ProviderBody> for ProviderInput {
    fn from(b: ProviderBody) -> Self {
        ProviderInput {
            name: b.name,
            slug: b.slug,
            kind: b.kind,
            client_id: b.client_id,
            client_secret: b.client_secret,
            issuer: b.issuer,
            auth_url: b.auth_url,
            token_url: b.token_url,
            userinfo_url: b.userinfo_url,
            scopes: b.scopes,
            auto_register: b.auto_register,
            allowed_domains: b.allowed_domains.map(|d| match d {
                Domains::List(v) => v,
                Domains::Text(t) => vec![t],
            }),
            enabled: b.enabled,
            trust_email: b.trust_email,
            skip_local_2fa: b.skip_local_2fa,
            hidden: b.hidden,
        }
    }
}

/// A provider as admins see it: never the secret.
#[derive(Serialize)]
struct ProviderView {
    id: Uuid,
    name: String,
    slug: String,
    #[serde(rename = "type")]
    kind: &'static str,
    client_id: String,
    has_client_secret: bool,
    issuer: Option<String>,
    auth_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    scopes: String,
    auto_register: bool,
    allowed_domains: Vec<String>,
    enabled: bool,
    trust_email: bool,
    skip_local_2fa: bool,
    hidden: bool,
    created_at: String,
    updated_at: String,
}

impl From<&OauthProvider> for ProviderView {
    fn from(p: &OauthProvider) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            slug: p.slug.clone(),
            kind: p.kind.as_str(),
            client_id: p.client_id.clone(),
            has_client_secret: p.client_secret_sealed.is_some(),
            issuer: p.issuer.clone(),
            auth_url: p.auth_url.clone(),
            token_url: p.token_url.clone(),
            userinfo_url: p.userinfo_url.clone(),
            scopes: p.scopes.clone(),
            auto_register: p.auto_register,
            allowed_domains: p.allowed_domains.clone(),
            enabled: p.enabled,
            trust_email: p.trust_email,
            skip_local_2fa: p.skip_local_2fa,
            hidden: p.hidden,
            created_at: crate::clock::rfc3339(p.created_at),
            updated_at: crate::clock::rfc3339(p.updated_at),
        }
    }
}

/// Public SSO routes.
pub async fn public(state: &AppState, route: Sso, req: &mut Req) -> Result<Resp> {
    match route {
        Sso::Providers => {
            let enabled = oidc::enabled_providers(state)?;
            let list: Vec<_> = enabled
                .iter()
                .filter(|p| !p.hidden)
                .map(|p| json!({"id": p.id, "slug": p.slug, "name": p.name, "type": p.kind.as_str()}))
                .collect();
            // Hidden providers still make SSO available (through discovery by email domain).
            Ok(response::ok(
                StatusCode::OK,
                &json!({"providers": list, "sso_available": !enabled.is_empty()}),
            ))
        }
        Sso::Discover => {
            #[derive(Deserialize)]
            struct Body {
                email: String,
            }
            let b: Body = req.json().await?;
            match oidc::discover(state, &b.email)? {
                Some(p) => Ok(response::ok(
                    StatusCode::OK,
                    &json!({"slug": p.slug, "name": p.name, "type": p.kind.as_str()}),
                )),
                None => Err(Error::NotFound("identity provider for this domain")),
            }
        }
        Sso::Authorize(slug) => {
            let (url, binding) = oidc::authorize(state, &slug, &req.client).await?;
            let mut r = response::redirect(&url);
            response::set_cookie(&mut r, &binding_cookie(req.https, &binding));
            Ok(r)
        }
        Sso::Callback(slug) => {
            let cb = Callback {
                slug,
                code: req.query("code"),
                state: req.query("state"),
                error: req.query("error"),
                binding: req.cookie(BINDING_COOKIE).map(str::to_owned),
            };
            let result = oidc::callback(state, cb, &req.client).await;
            Ok(callback_response(state, req.https, result))
        }
    }
}

/// The cookie binding a started authorization to this browser.
fn binding_cookie(https: bool, binding: &str) -> String {
    cookie::scoped(https, BINDING_COOKIE, binding, OAUTH_PATH, oidc::STATE_TTL)
}

fn callback_response(state: &AppState, https: bool, result: Result<Finished, SsoError>) -> Resp {
    let clear_binding = cookie::scoped(https, BINDING_COOKIE, "", OAUTH_PATH, 0);
    let web = state.cfg.web_url.clone();
    let mut r = match (result, web) {
        (Ok(Finished::Linked(slug)), Some(web)) => {
            response::redirect(&format!("{web}/#linked={slug}"))
        }
        (Ok(Finished::Linked(slug)), None) => {
            response::ok(StatusCode::OK, &json!({"linked": slug}))
        }
        (Ok(Finished::SignedIn(s)), Some(web)) => {
            // Posta's dashboards finish SSO at this page: the current one with the cookie,
            // the seed-era one with `?token=` (only when configured: see the setting).
            let target = if state.cfg.oauth_token_in_url {
                format!("{web}/auth/oauth/callback?token={}", s.token)
            } else {
                format!("{web}/auth/oauth/callback")
            };
            let mut r = response::redirect(&target);
            let ttl = s.expires_at - state.now();
            response::set_cookie(&mut r, &cookie::session(https, &s.token, ttl, true));
            r
        }
        (Ok(Finished::SignedIn(s)), None) => response::ok(
            StatusCode::OK,
            &json!({"token": s.token, "user": UserView::of(state, &s.user)}),
        ),
        (Err(SsoError::SecondFactor(token, methods)), Some(web)) => {
            // The token rides in the fragment: it never reaches a server's log.
            response::redirect(&format!(
                "{web}/login?requires_2fa=true&methods={}#pending_token={token}",
                methods.join(",")
            ))
        }
        (Err(SsoError::SecondFactor(pending_token, methods)), None) => {
            response::error(&Error::TwoFactorRequired {
                pending_token,
                methods,
            })
        }
        (Err(e), web) => {
            if let SsoError::Internal(inner) = &e {
                tracing::error!(error = %crate::logsafe::Untrusted(&inner.to_string()), "sso callback failed");
            } else {
                tracing::info!(code = e.code(), "sso callback refused");
            }
            match web {
                Some(web) => response::redirect(&format!("{web}/login?error={}", e.code())),
                None => {
                    let mut r = response::error(&Error::BadRequest(e.to_string()));
                    if let Ok(body) = serde_json::to_vec(&json!({
                        "success": false,
                        "data": {"error": e.code()},
                        "error": {"code": "BAD_REQUEST", "message": e.to_string()},
                    })) {
                        *r.body_mut() = http_body_util::Full::new(bytes::Bytes::from(body));
                    }
                    r
                }
            }
        }
    };
    response::set_cookie(&mut r, &clear_binding);
    r
}

fn link_view(l: &OauthLink, p: Option<&OauthProvider>) -> serde_json::Value {
    json!({
        "provider_id": l.provider_id,
        "provider_slug": p.map(|p| p.slug.clone()),
        "provider_name": p.map(|p| p.name.clone()),
        "email": l.email,
        "created_at": crate::clock::rfc3339(l.created_at),
        "last_used_at": l.last_used_at.map(crate::clock::rfc3339),
    })
}

/// A signed-in caller's own identity-provider links.
pub async fn links(state: &AppState, route: Links, req: &mut Req, c: &Caller) -> Result<Resp> {
    match route {
        Links::Start(slug) => {
            let (url, binding) = oidc::start_link(state, c, &slug, &req.client).await?;
            let mut r = response::ok(StatusCode::OK, &json!({"url": url}));
            response::set_cookie(&mut r, &binding_cookie(req.https, &binding));
            Ok(r)
        }
        Links::List => {
            let v: Vec<_> = oidc::links(state, c)?
                .iter()
                .map(|(l, p)| link_view(l, p.as_ref()))
                .collect();
            Ok(response::ok(StatusCode::OK, &v))
        }
        Links::Unlink(pid) => {
            oidc::unlink(state, c, pid, &req.client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "unlinked"}),
            ))
        }
    }
}

/// Identity-provider administration (the caller is an admin with a session).
pub async fn admin(state: &AppState, route: AdminSso, req: &mut Req, c: &Caller) -> Result<Resp> {
    let client = req.client.clone();
    match route {
        AdminSso::List => {
            let v: Vec<ProviderView> = oidc::list_providers(state)?
                .iter()
                .map(ProviderView::from)
                .collect();
            Ok(response::ok(StatusCode::OK, &v))
        }
        AdminSso::Create => {
            let b: ProviderBody = req.json().await?;
            let p = oidc::create_provider(state, c, b.into(), &client).await?;
            Ok(response::ok(StatusCode::CREATED, &ProviderView::from(&p)))
        }
        AdminSso::Update(id) => {
            let b: ProviderBody = req.json().await?;
            let p = oidc::update_provider(state, c, id, b.into(), &client).await?;
            Ok(response::ok(StatusCode::OK, &ProviderView::from(&p)))
        }
        AdminSso::Delete(id) => {
            oidc::delete_provider(state, c, id, &client).await?;
            Ok(response::ok(
                StatusCode::OK,
                &json!({"message": "provider deleted"}),
            ))
        }
    }
}
