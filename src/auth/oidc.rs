//! OpenID Connect and plain OAuth 2.0 mechanics: discovery, authorization URLs with PKCE and
//! nonce, code exchange, ID-token validation. No storage, no configuration globals.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    TokenUrl, UserInfoUrl,
};

/// Google's issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Why a flow failed; the variants map to the callback's error codes.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery or configuration problem.
    #[error("provider configuration: {0}")]
    Provider(String),
    /// The code could not be exchanged.
    #[error("code exchange failed: {0}")]
    Exchange(String),
    /// The ID token did not validate (signature, iss, aud, exp, nonce).
    #[error("id token rejected: {0}")]
    IdToken(String),
}

/// How to reach a provider: discovered metadata, explicit endpoints, or both (explicit wins).
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// Discovered OIDC metadata, when the provider has an issuer.
    pub metadata: Option<CoreProviderMetadata>,
    /// Explicit authorization endpoint.
    pub auth_url: Option<String>,
    /// Explicit token endpoint.
    pub token_url: Option<String>,
    /// Explicit userinfo endpoint.
    pub userinfo_url: Option<String>,
}

/// The client's registration at the provider.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Client id.
    pub client_id: String,
    /// Client secret, for confidential clients.
    pub client_secret: Option<String>,
    /// Our callback URL, registered at the provider.
    pub redirect_uri: String,
    /// Scopes to request.
    pub scopes: Vec<String>,
}

/// What the browser is sent to, and what the callback must remember.
#[derive(Debug)]
pub struct AuthRequest {
    /// Provider URL to redirect to.
    pub url: String,
    /// The `state` parameter.
    pub state: String,
    /// The `nonce` parameter.
    pub nonce: String,
    /// PKCE verifier (secret until the exchange).
    pub pkce_verifier: String,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Stable subject identifier at the provider.
    pub subject: String,
    /// Email, if released.
    pub email: Option<String>,
    /// Whether the provider verified the email.
    pub email_verified: bool,
    /// Display name, if released.
    pub name: Option<String>,
}

/// HTTP client for provider calls: no redirects (SSRF), bounded time.
pub fn http_client() -> Result<reqwest::Client, OidcError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OidcError::Provider(e.to_string()))
}

/// Fetch `<issuer>/.well-known/openid-configuration` and the JWKS.
pub async fn discover(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<CoreProviderMetadata, OidcError> {
    let iss = IssuerUrl::new(issuer.to_owned()).map_err(|e| OidcError::Provider(e.to_string()))?;
    CoreProviderMetadata::discover_async(iss, http)
        .await
        .map_err(|e| OidcError::Provider(format!("discovery of {issuer}: {e}")))
}

fn url<T>(s: &str, f: impl FnOnce(String) -> Result<T, url_error::E>) -> Result<T, OidcError> {
    f(s.to_owned()).map_err(|e| OidcError::Provider(format!("{s}: {e}")))
}

mod url_error {
    pub type E = openidconnect::url::ParseError;
}

fn oidc_client(
    meta: &CoreProviderMetadata,
    ep: &Endpoints,
    c: &ClientConfig,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    OidcError,
> {
    let mut meta = meta.clone();
    if let Some(a) = &ep.auth_url {
        meta = meta.set_authorization_endpoint(url(a, AuthUrl::new)?);
    }
    if let Some(t) = &ep.token_url {
        meta = meta.set_token_endpoint(Some(url(t, TokenUrl::new)?));
    }
    if let Some(u) = &ep.userinfo_url {
        meta = meta.set_userinfo_endpoint(Some(url(u, UserInfoUrl::new)?));
    }
    Ok(CoreClient::from_provider_metadata(
        meta,
        ClientId::new(c.client_id.clone()),
        c.client_secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(url(&c.redirect_uri, RedirectUrl::new)?))
}

/// Build the authorization URL with a fresh state, nonce and PKCE S256 challenge.
pub fn authorize(ep: &Endpoints, c: &ClientConfig) -> Result<AuthRequest, OidcError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    if let Some(meta) = &ep.metadata {
        let client = oidc_client(meta, ep, c)?;
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in c.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (u, state, nonce) = req.set_pkce_challenge(challenge).url();
        return Ok(AuthRequest {
            url: u.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        });
    }
    // Plain OAuth 2.0: explicit endpoints, no ID token.
    let auth = ep
        .auth_url
        .as_deref()
        .ok_or_else(|| OidcError::Provider("no authorization endpoint".into()))?;
    let state = CsrfToken::new_random().secret().clone();
    let mut u =
        openidconnect::url::Url::parse(auth).map_err(|e| OidcError::Provider(e.to_string()))?;
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &c.client_id)
        .append_pair("redirect_uri", &c.redirect_uri)
        .append_pair("scope", &c.scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("code_challenge", challenge.as_str())
        .append_pair("code_challenge_method", "S256");
    Ok(AuthRequest {
        url: u.to_string(),
        state,
        nonce: String::new(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// Exchange the code (OIDC) for tokens.
pub async fn exchange_oidc(
    http: &reqwest::Client,
    meta: &CoreProviderMetadata,
    ep: &Endpoints,
    c: &ClientConfig,
    code: &str,
    verifier: &str,
) -> Result<CoreTokenResponse, OidcError> {
    let client = oidc_client(meta, ep, c)?;
    client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| OidcError::Provider(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| OidcError::Exchange(e.to_string()))
}

/// Validate the ID token (signature against the JWKS, iss, aud, exp, nonce) and read the
/// identity; fall back to userinfo for a missing email.
pub async fn identity_oidc(
    http: &reqwest::Client,
    meta: &CoreProviderMetadata,
    ep: &Endpoints,
    c: &ClientConfig,
    tokens: &CoreTokenResponse,
    nonce: &str,
) -> Result<Identity, OidcError> {
    let client = oidc_client(meta, ep, c)?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| OidcError::IdToken("no id_token in the token response".into()))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
        .map_err(|e| OidcError::IdToken(e.to_string()))?;
    let mut ident = Identity {
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|e| e.as_str().to_owned()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
    };
    if ident.email.is_none()
        && let Ok(req) = client.user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
    {
        let info: openidconnect::core::CoreUserInfoClaims = req
            .request_async(http)
            .await
            .map_err(|e| OidcError::Exchange(format!("userinfo: {e}")))?;
        ident.email = info.email().map(|e| e.as_str().to_owned());
        ident.email_verified = info.email_verified().unwrap_or(false);
    }
    Ok(ident)
}

/// Plain OAuth 2.0: exchange the code by hand and read the userinfo endpoint. Its email counts
/// as verified only when the answer says so (`email_verified: true`, or Google's
/// `verified_email: true`); a provider that verifies every email is marked `trust_email`.
pub async fn identity_oauth2(
    http: &reqwest::Client,
    ep: &Endpoints,
    c: &ClientConfig,
    code: &str,
    verifier: &str,
) -> Result<Identity, OidcError> {
    let token_url = ep
        .token_url
        .as_deref()
        .ok_or_else(|| OidcError::Provider("no token endpoint".into()))?;
    let userinfo_url = ep
        .userinfo_url
        .as_deref()
        .ok_or_else(|| OidcError::Provider("no userinfo endpoint".into()))?;
    let mut req = http.post(token_url).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", c.redirect_uri.as_str()),
        ("code_verifier", verifier),
        ("client_id", c.client_id.as_str()),
    ]);
    if let Some(s) = &c.client_secret {
        req = req.basic_auth(&c.client_id, Some(s));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| OidcError::Exchange(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(OidcError::Exchange(format!(
            "token endpoint answered {}",
            resp.status()
        )));
    }
    let tok: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| OidcError::Exchange(e.to_string()))?;
    let access = tok["access_token"]
        .as_str()
        .ok_or_else(|| OidcError::Exchange("no access_token".into()))?;
    let info: serde_json::Value = http
        .get(userinfo_url)
        .bearer_auth(access)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| OidcError::Exchange(format!("userinfo: {e}")))?
        .json()
        .await
        .map_err(|e| OidcError::Exchange(format!("userinfo: {e}")))?;
    let subject = info["sub"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| info["id"].as_i64().map(|i| i.to_string()))
        .or_else(|| info["id"].as_str().map(str::to_owned))
        .ok_or_else(|| OidcError::Exchange("userinfo without sub or id".into()))?;
    Ok(Identity {
        subject,
        email: info["email"].as_str().map(str::to_owned),
        email_verified: info["email_verified"].as_bool() == Some(true)
            || info["verified_email"].as_bool() == Some(true),
        name: info["name"].as_str().map(str::to_owned),
    })
}

/// Discovery documents per provider, so a login does not fetch them.
#[derive(Default)]
pub struct DiscoveryCache(Mutex<HashMap<Uuid, (i64, CoreProviderMetadata)>>);

impl DiscoveryCache {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, (i64, CoreProviderMetadata)>) -> T) -> T {
        match self.0.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }
    /// The provider's documents, when fetched less than `ttl` seconds before `now`.
    #[must_use]
    pub fn get(&self, id: Uuid, now: i64, ttl: i64) -> Option<CoreProviderMetadata> {
        self.with(|m| {
            m.get(&id)
                .filter(|(at, _)| now - at < ttl)
                .map(|(_, meta)| meta.clone())
        })
    }
    /// Keep the provider's documents fetched at `now`.
    pub fn put(&self, id: Uuid, now: i64, meta: CoreProviderMetadata) {
        self.with(|m| m.insert(id, (now, meta)));
    }
    /// Forget a provider's documents (after an edit, or an unknown signing key).
    pub fn forget(&self, id: Uuid) {
        self.with(|m| m.remove(&id));
    }
}
