//! Single sign-on: provider administration, the authorization-code flow with PKCE, state
//! and nonce, account resolution (link, verified-email match, auto-registration), unlinking.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::auth::oidc::{self as mech, ClientConfig, Endpoints, Identity, OidcError};
use crate::error::{Error, Result};
use crate::logsafe::Untrusted;
use crate::model::{OauthLink, OauthProvider, OauthState, Origin, ProviderKind, Role, User};
use crate::state::AppState;
use crate::store;

use super::session::{SignedIn, complete_sign_in};
use super::{Caller, ClientInfo, audit, user};

/// Lifetime of a pending authorization.
pub const STATE_TTL: i64 = 600;
/// How long discovery documents and JWKS are reused.
const DISCOVERY_TTL: i64 = 3600;

/// Why an SSO callback failed; `code()` is what the dashboard receives.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// State missing, reused, expired, or not bound to this browser.
    #[error("invalid or expired sign-in attempt")]
    InvalidState,
    /// The provider refused or the code exchange failed.
    #[error("could not complete sign-in with the identity provider")]
    ExchangeFailed,
    /// The provider did not verify the email.
    #[error("the identity provider did not verify this email")]
    EmailNotVerified,
    /// The email domain is not allowed for this provider.
    #[error("this email domain is not allowed")]
    DomainNotAllowed,
    /// No account and auto-registration is off.
    #[error("no account for this identity and sign-up is disabled")]
    RegistrationDisabled,
    /// The account is disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// The provider reported an error or is misconfigured.
    #[error("identity provider error")]
    ProviderError,
    /// An account with this email exists and may not be linked by email alone: its owner
    /// links the provider from the account page while signed in.
    #[error("an account with this email exists; sign in and link this provider from your account")]
    AccountExists,
    /// The account is already linked to another account of this provider.
    #[error("this account is already linked to another account of this provider")]
    AlreadyLinked,
    /// The account has Posta 2FA: the sign-in continues with the code and this token.
    #[error("two-factor code required")]
    SecondFactor(String, Vec<&'static str>),
    /// This identity-provider account is linked to another Posta account.
    #[error("this identity is linked to another account")]
    LinkedElsewhere,
    /// Internal failure.
    #[error(transparent)]
    Internal(#[from] Error),
}

impl SsoError {
    /// Stable code for `?error=`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            SsoError::InvalidState => "invalid_state",
            SsoError::AccountExists => "account_exists",
            SsoError::AlreadyLinked => "already_linked",
            SsoError::LinkedElsewhere => "linked_elsewhere",
            SsoError::SecondFactor(..) => "two_factor_required",
            SsoError::ExchangeFailed => "exchange_failed",
            SsoError::EmailNotVerified => "email_not_verified",
            SsoError::DomainNotAllowed => "domain_not_allowed",
            SsoError::RegistrationDisabled => "registration_disabled",
            SsoError::AccountDisabled => "account_disabled",
            SsoError::ProviderError => "provider_error",
            SsoError::Internal(_) => "server_error",
        }
    }
}

/// Admin input for a provider (create: all required fields; update: any subset).
#[derive(Debug, Default, Clone)]
pub struct ProviderInput {
    /// Display name.
    pub name: Option<String>,
    /// Slug.
    pub slug: Option<String>,
    /// `google` or `oidc`.
    pub kind: Option<String>,
    /// Client id.
    pub client_id: Option<String>,
    /// Client secret (write-only; empty keeps the stored one on update).
    pub client_secret: Option<String>,
    /// Issuer.
    pub issuer: Option<String>,
    /// Authorization endpoint.
    pub auth_url: Option<String>,
    /// Token endpoint.
    pub token_url: Option<String>,
    /// Userinfo endpoint.
    pub userinfo_url: Option<String>,
    /// Scopes.
    pub scopes: Option<String>,
    /// Auto-register.
    pub auto_register: Option<bool>,
    /// Allowed domains.
    pub allowed_domains: Option<Vec<String>>,
    /// Enabled.
    pub enabled: Option<bool>,
    /// Every email this provider gives is verified, said or not.
    pub trust_email: Option<bool>,
    /// The provider owns the second factor: no Posta code step after it.
    pub skip_local_2fa: Option<bool>,
    /// Left off the login page's list.
    pub hidden: Option<bool>,
}

fn valid_url(field: &'static str, v: Option<String>) -> Result<Option<String>> {
    let Some(v) = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let u =
        openidconnect::url::Url::parse(&v).map_err(|_| Error::invalid(field, "is not a URL"))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(Error::invalid(field, "must be an http(s) URL"));
    }
    Ok(Some(v.trim_end_matches('/').to_owned()))
}

fn apply(p: &mut OauthProvider, i: ProviderInput, state: &AppState) -> Result<()> {
    if let Some(n) = i.name {
        p.name = user::valid_name(&n)
            .map_err(|_| Error::invalid("name", "is required (1-100 characters)"))?;
    }
    if let Some(s) = i.slug {
        let s = s.trim().to_lowercase();
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if !ok {
            return Err(Error::invalid(
                "slug",
                "must be 1-63 characters of a-z, 0-9 and -",
            ));
        }
        p.slug = s;
    }
    if let Some(k) = i.kind {
        p.kind = match k.as_str() {
            "google" => ProviderKind::Google,
            "oidc" => ProviderKind::Oidc,
            _ => return Err(Error::invalid("type", "must be \"google\" or \"oidc\"")),
        };
    }
    if let Some(c) = i.client_id {
        if c.trim().is_empty() {
            return Err(Error::invalid("client_id", "is required"));
        }
        p.client_id = c.trim().to_owned();
    }
    if let Some(s) = i.client_secret.filter(|s| !s.is_empty()) {
        p.client_secret_sealed = Some(state.sealer.seal(s.as_bytes(), &secret_aad(p.id))?);
    }
    if i.issuer.is_some() {
        p.issuer = valid_url("issuer", i.issuer)?;
    }
    if i.auth_url.is_some() {
        p.auth_url = valid_url("auth_url", i.auth_url)?;
    }
    if i.token_url.is_some() {
        p.token_url = valid_url("token_url", i.token_url)?;
    }
    if i.userinfo_url.is_some() {
        p.userinfo_url = valid_url("userinfo_url", i.userinfo_url)?;
    }
    if let Some(s) = i.scopes {
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        p.scopes = if s.is_empty() {
            "openid email profile".into()
        } else {
            s
        };
    }
    if let Some(a) = i.auto_register {
        p.auto_register = a;
    }
    if let Some(d) = i.allowed_domains {
        let mut out = Vec::new();
        for x in d.iter().flat_map(|x| crate::config::split_list(x)) {
            let dom = idna::domain_to_ascii(x.trim_start_matches('@'))
                .ok()
                .filter(|d| d.contains('.'))
                .ok_or_else(|| {
                    Error::invalid("allowed_domains", format!("{x:?} is not a domain"))
                })?;
            out.push(dom);
        }
        p.allowed_domains = out;
    }
    if let Some(e) = i.enabled {
        p.enabled = e;
    }
    if let Some(t) = i.trust_email {
        p.trust_email = t;
    }
    if let Some(t) = i.skip_local_2fa {
        p.skip_local_2fa = t;
    }
    if let Some(h) = i.hidden {
        p.hidden = h;
    }
    if p.kind == ProviderKind::Oidc
        && p.issuer.is_none()
        && (p.auth_url.is_none() || p.token_url.is_none() || p.userinfo_url.is_none())
    {
        return Err(Error::invalid(
            "issuer",
            "is required for type oidc (or give auth_url, token_url and userinfo_url)",
        ));
    }
    Ok(())
}

pub(crate) fn secret_aad(id: Uuid) -> Vec<u8> {
    format!("oauth-client-secret:{id}").into_bytes()
}

/// Create a provider.
pub async fn create_provider(
    state: &AppState,
    actor: &Caller,
    i: ProviderInput,
    client: &ClientInfo,
) -> Result<OauthProvider> {
    for (f, v) in [
        ("name", &i.name),
        ("slug", &i.slug),
        ("type", &i.kind),
        ("client_id", &i.client_id),
    ] {
        if v.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(Error::invalid(f, "is required"));
        }
    }
    let now = state.now();
    let mut p = OauthProvider {
        id: Uuid::new_v4(),
        name: String::new(),
        slug: String::new(),
        kind: ProviderKind::Oidc,
        client_id: String::new(),
        client_secret_sealed: None,
        issuer: None,
        auth_url: None,
        token_url: None,
        userinfo_url: None,
        scopes: "openid email profile".into(),
        auto_register: true,
        allowed_domains: Vec::new(),
        enabled: true,
        trust_email: false,
        skip_local_2fa: false,
        hidden: false,
        created_at: now,
        updated_at: now,
    };
    apply(&mut p, i, state)?;
    if p.kind == ProviderKind::Google && p.issuer.is_none() {
        p.issuer = Some(mech::GOOGLE_ISSUER.into());
    }
    let (st, cl, aid, rec) = (state.clone(), client.clone(), actor.user.id, p.clone());
    state
        .store
        .write(move |tx| {
            store::oauth::put_provider(tx, &rec, None)?;
            let mut ev = audit::event("oauth_provider.created", Some(aid), None, Some(&cl));
            ev.detail = format!("{} ({})", rec.slug, rec.id);
            ev.record(&st, tx, now)
        })
        .await?;
    Ok(p)
}

/// Update a provider.
pub async fn update_provider(
    state: &AppState,
    actor: &Caller,
    id: Uuid,
    i: ProviderInput,
    client: &ClientInfo,
) -> Result<OauthProvider> {
    let now = state.now();
    // Refused input changes nothing: checked against the provider as it is now, then applied
    // again inside the transaction to the provider as it is then (concurrent edits of
    // different fields both stay).
    let current = state
        .store
        .read(|tx| store::oauth::provider(tx, id))?
        .ok_or(Error::NotFound("provider"))?;
    apply(&mut current.clone(), i.clone(), state)?;
    let (st, cl, aid) = (state.clone(), client.clone(), actor.user.id);
    let p = state
        .store
        .write(move |tx| {
            let mut p = store::oauth::provider(tx, id)?.ok_or(Error::NotFound("provider"))?;
            let old_slug = p.slug.clone();
            apply(&mut p, i.clone(), &st)?;
            p.updated_at = now;
            store::oauth::put_provider(tx, &p, Some(&old_slug))?;
            let mut ev = audit::event("oauth_provider.updated", Some(aid), None, Some(&cl));
            ev.detail = format!("{} ({})", p.slug, p.id);
            ev.record(&st, tx, now)?;
            Ok(p)
        })
        .await?;
    state.oidc_cache.forget(id);
    Ok(p)
}

/// Delete a provider and its links.
pub async fn delete_provider(
    state: &AppState,
    actor: &Caller,
    id: Uuid,
    client: &ClientInfo,
) -> Result<()> {
    let (st, cl, aid, now) = (state.clone(), client.clone(), actor.user.id, state.now());
    state
        .store
        .write(move |tx| {
            let p = store::oauth::provider(tx, id)?.ok_or(Error::NotFound("provider"))?;
            store::oauth::remove_provider(tx, &p)?;
            let mut ev = audit::event("oauth_provider.deleted", Some(aid), None, Some(&cl));
            ev.detail = format!("{} ({})", p.slug, p.id);
            ev.record(&st, tx, now)
        })
        .await?;
    state.oidc_cache.forget(id);
    Ok(())
}

/// All providers (admin).
pub fn list_providers(state: &AppState) -> Result<Vec<OauthProvider>> {
    let mut v = state.store.read(store::oauth::providers)?;
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// Enabled providers (public login page).
pub fn enabled_providers(state: &AppState) -> Result<Vec<OauthProvider>> {
    Ok(list_providers(state)?
        .into_iter()
        .filter(|p| p.enabled)
        .collect())
}

/// `POST /auth/oauth/discover`: the enabled provider (hidden ones included: discovery is
/// what they are for) whose allowed domains hold the email's domain. Only providers are
/// read, never users, so the answer says nothing about accounts.
pub fn discover(state: &AppState, email: &str) -> Result<Option<OauthProvider>> {
    let email = user::canonical(state, email)?;
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    Ok(enabled_providers(state)?
        .into_iter()
        .find(|p| p.allowed_domains.iter().any(|d| d == domain)))
}

fn redirect_uri(state: &AppState) -> Result<String> {
    if let Some(u) = &state.cfg.oauth_callback_url {
        return Ok(u.clone());
    }
    state
        .cfg
        .web_url
        .as_ref()
        .map(|w| format!("{w}/api/v1/auth/oauth/callback"))
        .ok_or_else(|| {
            Error::BadRequest(
                "SSO needs POSTA_WEB_URL (or POSTA_OAUTH_CALLBACK_URL) to be configured".into(),
            )
        })
}

async fn endpoints(
    state: &AppState,
    p: &OauthProvider,
    refresh: bool,
) -> Result<Endpoints, OidcError> {
    let mut ep = Endpoints {
        metadata: None,
        auth_url: p.auth_url.clone(),
        token_url: p.token_url.clone(),
        userinfo_url: p.userinfo_url.clone(),
    };
    let Some(issuer) = &p.issuer else {
        return Ok(ep);
    };
    let now = state.now();
    let cached = if refresh {
        None
    } else {
        state.oidc_cache.get(p.id, now, DISCOVERY_TTL)
    };
    let meta = match cached {
        Some(m) => m,
        None => {
            let m = mech::discover(&state.http, issuer).await?;
            state.oidc_cache.put(p.id, now, m.clone());
            m
        }
    };
    ep.metadata = Some(meta);
    Ok(ep)
}

fn client_config(state: &AppState, p: &OauthProvider) -> Result<ClientConfig> {
    let secret = p
        .client_secret_sealed
        .as_ref()
        .map(|s| state.sealer.open(s, &secret_aad(p.id)))
        .transpose()?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok(ClientConfig {
        client_id: p.client_id.clone(),
        client_secret: secret,
        redirect_uri: redirect_uri(state)?,
        scopes: p.scopes.split_whitespace().map(str::to_owned).collect(),
    })
}

/// Start a sign-in: the provider URL and the browser-binding value to set as a cookie.
pub async fn authorize(
    state: &AppState,
    slug: &str,
    client: &ClientInfo,
) -> Result<(String, String)> {
    start(state, slug, client, None).await
}

/// Start linking a provider to the signed-in caller's account (the owner's explicit choice,
/// the only way an account that may not be linked by email gets a link).
pub async fn start_link(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    client: &ClientInfo,
) -> Result<(String, String)> {
    let session = caller
        .session_id()
        .ok_or_else(|| Error::Forbidden("sign in to link an identity provider".into()))?;
    super::reauth::require_recent(state, caller, None, client, "link an identity provider").await?;
    start(state, slug, client, Some((caller.user.id, session))).await
}

async fn start(
    state: &AppState,
    slug: &str,
    client: &ClientInfo,
    link_for: Option<(Uuid, Uuid)>,
) -> Result<(String, String)> {
    let p = state
        .store
        .read(|tx| store::oauth::provider_by_slug(tx, slug))?
        .filter(|p| p.enabled)
        .ok_or(Error::NotFound("provider"))?;
    // Each start stores a pending state until it expires: bounded per address.
    if let Some(l) = super::proof::of(state).limits() {
        state
            .limiter
            .sso_start(client.ip, l, state.now())
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
    }
    let cc = client_config(state, &p)?;
    let ep = endpoints(state, &p, false).await.map_err(|e| {
        tracing::warn!(provider = %p.slug, error = %Untrusted(&e.to_string()), "identity provider unreachable");
        Error::Unavailable
    })?;
    let req = mech::authorize(&ep, &cc).map_err(|e| Error::BadRequest(e.to_string()))?;
    let binding = crate::auth::api_key::generate()?.key;
    let now = state.now();
    let rec = OauthState {
        provider_id: p.id,
        pkce_verifier_sealed: state
            .sealer
            .seal(req.pkce_verifier.as_bytes(), req.state.as_bytes())?,
        nonce: req.nonce,
        binding: Sha256::digest(binding.as_bytes()).into(),
        created_at: now,
        expires_at: now + STATE_TTL,
        link_for,
    };
    let key = req.state.clone();
    state
        .store
        .write(move |tx| store::oauth::put_state(tx, &key, &rec))
        .await?;
    Ok((req.url, binding))
}

/// Parameters of a callback.
#[derive(Debug, Default)]
pub struct Callback {
    /// `slug` from the path, when the per-provider path was used.
    pub slug: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `error` reported by the provider.
    pub error: Option<String>,
    /// The browser-binding cookie.
    pub binding: Option<String>,
}

/// Finish a flow: validate, exchange, resolve the account, open a session.
pub async fn callback(
    state: &AppState,
    cb: Callback,
    client: &ClientInfo,
) -> Result<Finished, SsoError> {
    let now = state.now();
    let st_param = cb
        .state
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(SsoError::InvalidState)?;
    // A state never issued costs a read, not a write transaction.
    if !state
        .store
        .read(|tx| store::oauth::has_state(tx, &st_param))?
    {
        return Err(SsoError::InvalidState);
    }
    // Consume the state first (single use), whatever happens next.
    let key = st_param.clone();
    let pending = state
        .store
        .write(move |tx| store::oauth::take_state(tx, &key))
        .await?
        .ok_or(SsoError::InvalidState)?;
    if pending.expires_at <= now {
        return Err(SsoError::InvalidState);
    }
    let presented: [u8; 32] = Sha256::digest(cb.binding.unwrap_or_default().as_bytes()).into();
    if !bool::from(presented.ct_eq(&pending.binding)) {
        return Err(SsoError::InvalidState);
    }
    let p = state
        .store
        .read(|tx| store::oauth::provider(tx, pending.provider_id))?
        .filter(|p| p.enabled)
        .ok_or(SsoError::InvalidState)?;
    if cb.slug.as_deref().is_some_and(|s| s != p.slug) {
        return Err(SsoError::InvalidState);
    }
    if let Some(e) = cb.error {
        tracing::info!(provider = %p.slug, error = %Untrusted(&e), "identity provider returned an error");
        return Err(SsoError::ProviderError);
    }
    let code = cb
        .code
        .filter(|c| !c.is_empty())
        .ok_or(SsoError::ExchangeFailed)?;
    let verifier = String::from_utf8(
        state
            .sealer
            .open(&pending.pkce_verifier_sealed, st_param.as_bytes())?,
    )
    .map_err(|_| SsoError::InvalidState)?;
    let cc = client_config(state, &p)?;
    let ident = identify(state, &p, &cc, &code, &verifier, &pending.nonce).await?;
    match pending.link_for {
        Some((uid, session)) => link(state, &p, ident, uid, session, client, now)
            .await
            .map(|()| Finished::Linked(p.slug.clone())),
        None => finish(state, &p, ident, client, now)
            .await
            .map(|s| Finished::SignedIn(Box::new(s))),
    }
}

fn new_link(
    p: &OauthProvider,
    subject: &str,
    user_id: Uuid,
    email: &str,
    now: i64,
    used: Option<i64>,
) -> OauthLink {
    OauthLink {
        provider_id: p.id,
        subject: subject.to_owned(),
        user_id,
        email: email.to_owned(),
        created_at: now,
        last_used_at: used,
    }
}

/// Inside `tx`: store `l` unless its user already has a link to the provider. One link per
/// provider: a second subject never hides behind the first (it used to overwrite the user's
/// index while its own row stayed, unlisted, and outlived an unlink).
fn add_link(tx: &store::WriteTransaction, l: &OauthLink) -> Result<Result<(), SsoError>> {
    if store::oauth::links_of(tx, l.user_id)?
        .iter()
        .any(|x| x.provider_id == l.provider_id)
    {
        return Ok(Err(SsoError::AlreadyLinked));
    }
    store::oauth::put_link(tx, l)?;
    Ok(Ok(()))
}

/// What a callback did.
#[derive(Debug)]
pub enum Finished {
    /// Someone signed in.
    SignedIn(Box<SignedIn>),
    /// The provider (this slug) was linked to the account that asked.
    Linked(String),
}

/// Link `ident` to the user who started the flow, if that session still exists.
async fn link(
    state: &AppState,
    p: &OauthProvider,
    ident: Identity,
    uid: Uuid,
    session: Uuid,
    client: &ClientInfo,
    now: i64,
) -> Result<(), SsoError> {
    let (st, cl, prov) = (state.clone(), client.clone(), p.clone());
    state
        .store
        .write(move |tx| {
            // The session that asked must still be there (a logout or revocation since cancels).
            let alive = store::session::get(tx, session)?.is_some_and(|s| s.user_id == uid);
            let Some(u) = store::user::get(tx, uid)?.filter(|u| u.active && alive) else {
                return Ok(Err(SsoError::InvalidState));
            };
            if let Some(other) = store::oauth::link(tx, prov.id, &ident.subject)? {
                return Ok(Err(if other.user_id == uid {
                    SsoError::AlreadyLinked
                } else {
                    SsoError::LinkedElsewhere
                }));
            }
            let email = ident.email.clone().unwrap_or_default();
            let l = new_link(&prov, &ident.subject, uid, &email, now, None);
            if let Err(e) = add_link(tx, &l)? {
                return Ok(Err(e));
            }
            let mut ev = audit::event("oauth.linked", Some(uid), Some(uid), Some(&cl));
            ev.email = Some(&u.email);
            ev.detail = format!("sso:{} (linked by the owner)", prov.slug);
            ev.record(&st, tx, now)?;
            Ok(Ok(()))
        })
        .await?
}

async fn identify(
    state: &AppState,
    p: &OauthProvider,
    cc: &ClientConfig,
    code: &str,
    verifier: &str,
    nonce: &str,
) -> Result<Identity, SsoError> {
    let log = |e: &OidcError| {
        tracing::warn!(provider = %p.slug, error = %Untrusted(&e.to_string()), "sso failed");
    };
    let ep = endpoints(state, p, false).await.map_err(|e| {
        log(&e);
        SsoError::ProviderError
    })?;
    let Some(meta) = ep.metadata.clone() else {
        return mech::identity_oauth2(&state.http, &ep, cc, code, verifier)
            .await
            .map_err(|e| {
                log(&e);
                SsoError::ExchangeFailed
            });
    };
    let tokens = mech::exchange_oidc(&state.http, &meta, &ep, cc, code, verifier)
        .await
        .map_err(|e| {
            log(&e);
            SsoError::ExchangeFailed
        })?;
    match mech::identity_oidc(&state.http, &meta, &ep, cc, &tokens, nonce).await {
        Ok(i) => Ok(i),
        Err(OidcError::IdToken(first)) => {
            // Perhaps the provider rotated its keys: refresh the JWKS once and re-check.
            state.oidc_cache.forget(p.id);
            let ep2 = endpoints(state, p, true).await.map_err(|e| {
                log(&e);
                SsoError::ProviderError
            })?;
            let meta2 = ep2.metadata.clone().ok_or(SsoError::ProviderError)?;
            mech::identity_oidc(&state.http, &meta2, &ep2, cc, &tokens, nonce)
                .await
                .map_err(|e| {
                    tracing::warn!(
                        provider = %p.slug,
                        error = %Untrusted(&e.to_string()),
                        first = %Untrusted(&first.to_string()),
                        "id token rejected"
                    );
                    SsoError::ExchangeFailed
                })
        }
        Err(e) => {
            log(&e);
            Err(SsoError::ExchangeFailed)
        }
    }
}

async fn finish(
    state: &AppState,
    p: &OauthProvider,
    ident: Identity,
    client: &ClientInfo,
    now: i64,
) -> Result<SignedIn, SsoError> {
    let email = match &ident.email {
        Some(e) => Some(user::canonical(state, e).map_err(|_| SsoError::ProviderError)?),
        None => None,
    };
    let (st, cl, prov) = (state.clone(), client.clone(), p.clone());
    let setup_required = false; // the identity provider owns the second factor
    state
        .store
        .write(move |tx| {
            let link = store::oauth::link(tx, prov.id, &ident.subject)?;
            let u: User = match link {
                Some(mut l) => {
                    l.last_used_at = Some(now);
                    store::oauth::put_link(tx, &l)?;
                    match store::user::get(tx, l.user_id)? {
                        Some(u) => u,
                        None => return Ok(Err(SsoError::AccountDisabled)),
                    }
                }
                None => {
                    let Some(email) = email.clone() else {
                        return Ok(Err(SsoError::EmailNotVerified));
                    };
                    if !(ident.email_verified || prov.trust_email) {
                        return Ok(Err(SsoError::EmailNotVerified));
                    }
                    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                    if !prov.allowed_domains.is_empty()
                        && !prov.allowed_domains.iter().any(|d| d == domain)
                    {
                        return Ok(Err(SsoError::DomainNotAllowed));
                    }
                    let existing = store::user::by_email(tx, &email)?;
                    let (u, created) = match existing {
                        // SECURITY: an account is linked by email alone only when the address
                        // is proven on both sides and nobody could have claimed it first: made
                        // by an admin, an invitation or SSO (never self-registered, whoever
                        // verified it since), verified, and neither an admin nor protected by
                        // a second factor (those link only while signed in).
                        Some(u)
                            if u.origin.may_link_by_email()
                                && u.email_verified()
                                && u.role != Role::Admin
                                && u.totp.is_none() =>
                        {
                            (u, false)
                        }
                        Some(_) => return Ok(Err(SsoError::AccountExists)),
                        None => {
                            if !prov.auto_register {
                                return Ok(Err(SsoError::RegistrationDisabled));
                            }
                            let name = ident
                                .name
                                .clone()
                                .and_then(|n| user::valid_name(&n).ok())
                                .unwrap_or_else(|| {
                                    email.split('@').next().unwrap_or("user").to_owned()
                                });
                            let u = User {
                                origin: Origin::Sso,
                                email_verified_at: Some(now),
                                ..User::new(name, email.clone(), None, Role::User, now)
                            };
                            store::user::insert(tx, &u)?;
                            (u, true)
                        }
                    };
                    if !u.active {
                        return Ok(Err(SsoError::AccountDisabled));
                    }
                    let l = new_link(&prov, &ident.subject, u.id, &email, now, Some(now));
                    if let Err(e) = add_link(tx, &l)? {
                        return Ok(Err(e));
                    }
                    let kind = if created {
                        "user.registered"
                    } else {
                        "oauth.linked"
                    };
                    let mut ev = audit::event(kind, Some(u.id), Some(u.id), Some(&cl));
                    ev.email = Some(&u.email);
                    ev.detail = format!("sso:{}", prov.slug);
                    ev.record(&st, tx, now)?;
                    u
                }
            };
            if !u.active {
                let mut ev = audit::event("login.failure", Some(u.id), Some(u.id), Some(&cl));
                ev.detail = format!("account disabled (sso:{})", prov.slug);
                ev.record(&st, tx, now)?;
                return Ok(Err(SsoError::AccountDisabled));
            }
            let how = format!("sso:{}", prov.slug);
            let methods = super::session::second_factors(tx, &u)?;
            if !methods.is_empty() && !prov.skip_local_2fa {
                // Posta's second factor still applies after the provider's sign-in.
                let token = super::session::issue_pending(tx, u.id, &cl.ip.to_string(), &how, now)?;
                return Ok(Err(SsoError::SecondFactor(token, methods)));
            }
            complete_sign_in(&st, tx, u, &cl, now, &how, setup_required).map(Ok)
        })
        .await?
}

/// At start-up: remove link rows no listing shows (a second subject of a provider whose row
/// an earlier release kept after the user's index moved to another, or a row whose user or
/// provider is gone) and index rows without their link, and audit each. Returns how many.
pub async fn repair_links(state: &AppState) -> Result<usize> {
    let st = state.clone();
    let now = state.now();
    state
        .store
        .write(move |tx| {
            let (links, index) = store::oauth::link_tables(tx)?;
            let mut removed = Vec::new();
            for l in &links {
                let indexed = index
                    .iter()
                    .any(|(u, p, s)| *u == l.user_id && *p == l.provider_id && *s == l.subject);
                let owner = store::user::get(tx, l.user_id)?.is_some();
                let provider = store::oauth::provider(tx, l.provider_id)?.is_some();
                if !(indexed && owner && provider) {
                    store::oauth::remove_link_rows(tx, Some((l.provider_id, &l.subject)), None)?;
                    removed.push((
                        l.user_id,
                        format!("unlisted link to {} ({})", l.provider_id, l.subject),
                    ));
                }
            }
            for (u, p, s) in &index {
                if !links
                    .iter()
                    .any(|l| l.user_id == *u && l.provider_id == *p && l.subject == *s)
                {
                    store::oauth::remove_link_rows(tx, None, Some((*u, *p)))?;
                    removed.push((*u, format!("index without its link to {p} ({s})")));
                }
            }
            for (u, detail) in &removed {
                let mut ev = audit::event("oauth.link_repaired", None, Some(*u), None);
                ev.detail.clone_from(detail);
                ev.record(&st, tx, now)?;
            }
            Ok(removed.len())
        })
        .await
}

/// The caller's links, with provider names.
pub fn links(state: &AppState, caller: &Caller) -> Result<Vec<(OauthLink, Option<OauthProvider>)>> {
    state.store.read(|tx| {
        store::oauth::links_of(tx, caller.user.id)?
            .into_iter()
            .map(|l| {
                let p = store::oauth::provider(tx, l.provider_id)?;
                Ok((l, p))
            })
            .collect()
    })
}

/// Unlink a provider, unless it is the last way to sign in.
pub async fn unlink(
    state: &AppState,
    caller: &Caller,
    provider_id: Uuid,
    client: &ClientInfo,
) -> Result<()> {
    let (st, cl, uid, now) = (state.clone(), client.clone(), caller.user.id, state.now());
    state
        .store
        .write(move |tx| {
            let u = store::user::get(tx, uid)?.ok_or(Error::NotFound("user"))?;
            let all = store::oauth::links_of(tx, uid)?;
            let l = all
                .iter()
                .find(|l| l.provider_id == provider_id)
                .cloned()
                .ok_or(Error::NotFound("link"))?;
            // A passkey signs in on its own: it is a way in as good as a password.
            if u.password_hash.is_none()
                && all.len() <= 1
                && store::passkey::count_of(tx, uid)? == 0
            {
                return Err(Error::BadRequest(
                    "this is your only way to sign in: set a password, add a passkey or link another provider first".into(),
                ));
            }
            // Every row of this user and provider goes, listed or not.
            let n = store::oauth::remove_links_to(tx, uid, l.provider_id)?;
            let mut ev = audit::event("oauth.unlinked", Some(uid), Some(uid), Some(&cl));
            ev.detail = format!("{provider_id} ({n} links)");
            ev.record(&st, tx, now)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing;

    /// A store as an earlier release could leave it: a second subject of the same provider
    /// linked to the same user moved the user's index to it, and the first subject's row
    /// stayed, unlisted, able to sign in. Start-up removes it (and an index row left without
    /// its link), audited.
    #[test]
    fn start_up_removes_hidden_and_orphaned_link_rows() {
        let (st, _dir) = testing::state();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let u = User::new("Ann".into(), "ann@example.com".into(), None, Role::User, 1);
        let p = OauthProvider {
            id: Uuid::new_v4(),
            name: "Corp".into(),
            slug: "corp".into(),
            kind: ProviderKind::Oidc,
            client_id: "posta".into(),
            client_secret_sealed: None,
            issuer: Some("https://idp.example".into()),
            auth_url: None,
            token_url: None,
            userinfo_url: None,
            scopes: "openid".into(),
            auto_register: false,
            allowed_domains: Vec::new(),
            enabled: true,
            trust_email: false,
            skip_local_2fa: false,
            hidden: false,
            created_at: 1,
            updated_at: 1,
        };
        let (uid, pid) = (u.id, p.id);
        st.store
            .write_blocking(|tx| {
                store::user::insert(tx, &u)?;
                store::oauth::put_provider(tx, &p, None)?;
                for s in ["first", "second"] {
                    store::oauth::put_link(tx, &new_link(&p, s, uid, "ann@example.com", 1, None))?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(rt.block_on(repair_links(&st)).unwrap(), 1);
        st.store
            .read(|tx| {
                assert!(
                    store::oauth::link(tx, pid, "first")?.is_none(),
                    "hidden row gone"
                );
                assert!(store::oauth::link(tx, pid, "second")?.is_some());
                assert_eq!(store::oauth::links_of(tx, uid)?.len(), 1);
                Ok(())
            })
            .unwrap();
        // An index row whose link row is gone.
        st.store
            .write_blocking(|tx| store::oauth::remove_link_rows(tx, Some((pid, "second")), None))
            .unwrap();
        assert_eq!(rt.block_on(repair_links(&st)).unwrap(), 1);
        assert_eq!(
            rt.block_on(repair_links(&st)).unwrap(),
            0,
            "nothing left to repair"
        );
        let audited = st
            .store
            .read(|tx| store::audit::page(tx, |e| e.kind == "oauth.link_repaired", 0, 10))
            .unwrap()
            .1;
        assert_eq!(audited, 2);
    }
}
