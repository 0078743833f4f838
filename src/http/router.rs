//! Routes: one variant per operation with typed path parameters, parsed from method and path
//! segments, each declaring the authentication it needs.

use std::collections::HashMap;
use std::sync::LazyLock;

use http::Method;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::fast_hash::FastBuild;

/// What a route requires of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nobody needs to be signed in.
    Public,
    /// A session JWT or an API key.
    Any,
    /// A session JWT (account management never takes an API key).
    Session,
    /// A session JWT of an admin.
    Admin,
}

/// Every operation of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // each variant's doc would repeat its path; see `Route::parse`
pub enum Route {
    Healthz,
    Readyz,
    Info,
    Login,
    Register,
    RegistrationStatus,
    Verify,
    Me,
    UpdateMe,
    ChangePassword,
    MfaSetup,
    MfaVerify,
    MfaDisable,
    ListSessions,
    RevokeSession(Uuid),
    RevokeOtherSessions,
    Logout,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey(Uuid),
    DeleteApiKey(Uuid),
    AdminCreateUser,
    AdminListUsers,
    AdminUpdateUser(Uuid),
    AdminDeleteUser(Uuid),
    AdminReset2fa(Uuid),
    AdminRevokeSessions(Uuid),
    AdminListApiKeys,
    AdminDeleteApiKey(Uuid),
    AdminGetSettings,
    AdminPutSettings,
    AdminEvents,
    OauthProviders,
    OauthAuthorize(String),
    OauthCallback(Option<String>),
    MyOauthLinks,
    UnlinkOauth(Uuid),
    AdminListProviders,
    AdminCreateProvider,
    AdminUpdateProvider(Uuid),
    AdminDeleteProvider(Uuid),
    OpenApi,
    Metrics,
}

fn id(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| Error::NotFound("resource"))
}

/// Builds a [`Route`] from the path parameters captured by a [`Spec`].
type Build = fn(&[&str]) -> Result<Route>;

/// One row of the routing table: the single source for routing and the OpenAPI document.
pub struct Spec {
    /// HTTP method.
    pub method: Method,
    /// Path template; `{name}` segments are parameters.
    pub path: &'static str,
    /// One-line description.
    pub summary: &'static str,
    build: Build,
}

impl Spec {
    /// The route this row produces for the given parameters.
    pub fn build(&self, params: &[&str]) -> Result<Route> {
        (self.build)(params)
    }
}

macro_rules! spec {
    ($m:ident $path:literal, $summary:literal, $build:expr) => {
        Spec {
            method: Method::$m,
            path: $path,
            summary: $summary,
            build: $build,
        }
    };
}

fn p0(p: &[&str]) -> Result<Uuid> {
    id(p.first().copied().unwrap_or_default())
}

fn s0(p: &[&str]) -> String {
    p.first().copied().unwrap_or_default().to_owned()
}

/// Every route. Literal paths come before parameterised ones that could shadow them.
pub static ROUTES: &[Spec] = &[
    spec!(GET "/api/v1/auth/verify", "Forward auth: who does this JWT or API key belong to", |_| Ok(Route::Verify)),
    spec!(GET "/api/v1/healthz", "Liveness probe", |_| Ok(Route::Healthz)),
    spec!(GET "/healthz", "Liveness probe (alias)", |_| Ok(Route::Healthz)),
    spec!(GET "/api/v1/readyz", "Readiness probe (reads the store)", |_| Ok(Route::Readyz)),
    spec!(GET "/readyz", "Readiness probe (alias)", |_| Ok(Route::Readyz)),
    spec!(GET "/api/v1/info", "Application name, version and commit", |_| Ok(Route::Info)),
    spec!(GET "/api/v1/openapi.json", "This document", |_| Ok(Route::OpenApi)),
    spec!(GET "/metrics", "Prometheus metrics (when enabled)", |_| Ok(Route::Metrics)),
    spec!(POST "/api/v1/auth/login", "Sign in with email, password and optional TOTP code", |_| Ok(Route::Login)),
    spec!(POST "/api/v1/auth/register", "Create an account and sign in", |_| Ok(Route::Register)),
    spec!(GET "/api/v1/auth/registration-status", "Whether self-registration is open", |_| Ok(Route::RegistrationStatus)),
    spec!(GET "/api/v1/auth/oauth/providers", "Enabled identity providers", |_| Ok(Route::OauthProviders)),
    spec!(GET "/api/v1/auth/oauth/callback", "SSO callback", |_| Ok(Route::OauthCallback(None))),
    spec!(GET "/api/v1/auth/oauth/{slug}/authorize", "Start SSO with a provider", |p| Ok(Route::OauthAuthorize(s0(p)))),
    spec!(GET "/api/v1/auth/oauth/{slug}/callback", "SSO callback (per provider)", |p| Ok(Route::OauthCallback(Some(s0(p))))),
    spec!(GET "/api/v1/users/me", "The signed-in user's profile", |_| Ok(Route::Me)),
    spec!(PUT "/api/v1/users/me", "Change the display name", |_| Ok(Route::UpdateMe)),
    spec!(PUT "/api/v1/users/me/password", "Change the password (ends other sessions)", |_| Ok(Route::ChangePassword)),
    spec!(POST "/api/v1/users/me/2fa/setup", "Start TOTP enrolment", |_| Ok(Route::MfaSetup)),
    spec!(POST "/api/v1/users/me/2fa/verify", "Enable TOTP; returns recovery codes", |_| Ok(Route::MfaVerify)),
    spec!(POST "/api/v1/users/me/2fa/disable", "Disable TOTP with a code", |_| Ok(Route::MfaDisable)),
    spec!(GET "/api/v1/users/me/sessions", "Active sessions", |_| Ok(Route::ListSessions)),
    spec!(POST "/api/v1/users/me/sessions/revoke-others", "End every other session", |_| Ok(Route::RevokeOtherSessions)),
    spec!(POST "/api/v1/users/me/sessions/logout", "End this session", |_| Ok(Route::Logout)),
    spec!(DELETE "/api/v1/users/me/sessions/{id}", "End one session", |p| Ok(Route::RevokeSession(p0(p)?))),
    spec!(GET "/api/v1/users/me/api-keys", "The user's API keys (paged)", |_| Ok(Route::ListApiKeys)),
    spec!(POST "/api/v1/users/me/api-keys", "Create an API key (shown once)", |_| Ok(Route::CreateApiKey)),
    spec!(PUT "/api/v1/users/me/api-keys/{id}/revoke", "Revoke an API key", |p| Ok(Route::RevokeApiKey(p0(p)?))),
    spec!(DELETE "/api/v1/users/me/api-keys/{id}", "Delete a revoked or expired API key", |p| Ok(Route::DeleteApiKey(p0(p)?))),
    spec!(GET "/api/v1/users/me/oauth", "Linked identity-provider accounts", |_| Ok(Route::MyOauthLinks)),
    spec!(DELETE "/api/v1/users/me/oauth/{provider_id}", "Unlink an identity provider", |p| Ok(Route::UnlinkOauth(p0(p)?))),
    spec!(GET "/api/v1/admin/users", "Users (paged, ?search=)", |_| Ok(Route::AdminListUsers)),
    spec!(POST "/api/v1/admin/users", "Create a user", |_| Ok(Route::AdminCreateUser)),
    spec!(PUT "/api/v1/admin/users/{id}", "Change a user's name, role or active flag", |p| Ok(Route::AdminUpdateUser(p0(p)?))),
    spec!(DELETE "/api/v1/admin/users/{id}", "Delete a user with its sessions, keys and links", |p| Ok(Route::AdminDeleteUser(p0(p)?))),
    spec!(DELETE "/api/v1/admin/users/{id}/2fa", "Turn a user's 2FA off", |p| Ok(Route::AdminReset2fa(p0(p)?))),
    spec!(POST "/api/v1/admin/users/{id}/revoke-sessions", "End all of a user's sessions", |p| Ok(Route::AdminRevokeSessions(p0(p)?))),
    spec!(GET "/api/v1/admin/api-keys", "All API keys (paged)", |_| Ok(Route::AdminListApiKeys)),
    spec!(DELETE "/api/v1/admin/api-keys/{id}", "Delete any API key", |p| Ok(Route::AdminDeleteApiKey(p0(p)?))),
    spec!(GET "/api/v1/admin/settings", "Platform settings", |_| Ok(Route::AdminGetSettings)),
    spec!(PUT "/api/v1/admin/settings", "Update platform settings (all or nothing)", |_| Ok(Route::AdminPutSettings)),
    spec!(GET "/api/v1/admin/events", "Audit log (paged, ?type=&user_id=)", |_| Ok(Route::AdminEvents)),
    spec!(GET "/api/v1/admin/oauth/providers", "Identity providers", |_| Ok(Route::AdminListProviders)),
    spec!(POST "/api/v1/admin/oauth/providers", "Add an identity provider", |_| Ok(Route::AdminCreateProvider)),
    spec!(PUT "/api/v1/admin/oauth/providers/{id}", "Change an identity provider", |p| Ok(Route::AdminUpdateProvider(p0(p)?))),
    spec!(DELETE "/api/v1/admin/oauth/providers/{id}", "Remove an identity provider and its links", |p| Ok(Route::AdminDeleteProvider(p0(p)?))),
];

/// [`ROUTES`] indexed for matching: literal paths by exact lookup, the templated rest scanned in
/// table order. Built once; matching was the largest own cost of a cheap request.
struct Table {
    literal: HashMap<&'static str, Vec<&'static Spec>, FastBuild>,
    templated: Vec<&'static Spec>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut t = Table {
        literal: HashMap::default(),
        templated: Vec::new(),
    };
    for spec in ROUTES {
        if spec.path.contains('{') {
            t.templated.push(spec);
        } else {
            t.literal.entry(spec.path).or_default().push(spec);
        }
    }
    t
});

/// Match `path` against a template; on success fill `params` with the captured segments.
fn matches<'a>(template: &str, path: &'a str, params: &mut [&'a str; 2]) -> Option<usize> {
    let mut t = template.split('/');
    let mut p = path.split('/');
    let mut n = 0;
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(n),
            (Some(ts), Some(ps)) if ts.starts_with('{') => {
                if ps.is_empty() {
                    return None;
                }
                *params.get_mut(n)? = ps;
                n += 1;
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

impl Route {
    /// Match the path first, then the method: a known path with another method is a 405.
    pub fn parse(m: &Method, path: &str) -> Result<Route> {
        let path = if path.len() > 1 {
            path.strip_suffix('/').unwrap_or(path)
        } else {
            path
        };
        let table = &*TABLE;
        let mut known_path = false;
        if let Some(rows) = table.literal.get(path) {
            if let Some(spec) = rows.iter().find(|s| s.method == *m) {
                return spec.build(&[]);
            }
            known_path = true;
        }
        let mut params = [""; 2];
        for spec in &table.templated {
            if let Some(n) = matches(spec.path, path, &mut params) {
                if spec.method == *m {
                    return spec.build(params.get(..n).unwrap_or_default());
                }
                known_path = true;
            }
        }
        Err(if known_path {
            Error::MethodNotAllowed
        } else {
            Error::NotFound("route")
        })
    }

    /// The authentication this route needs. Exhaustive: a new route must choose.
    #[must_use]
    pub fn access(&self) -> Access {
        use Route::*;
        match self {
            Healthz | Readyz | Info | OpenApi | Metrics | Login | Register | RegistrationStatus
            | OauthProviders | OauthAuthorize(_) | OauthCallback(_) => Access::Public,
            Verify => Access::Any,
            Me | UpdateMe | ChangePassword | MfaSetup | MfaVerify | MfaDisable | ListSessions
            | RevokeSession(_) | RevokeOtherSessions | Logout | CreateApiKey | ListApiKeys
            | RevokeApiKey(_) | DeleteApiKey(_) | MyOauthLinks | UnlinkOauth(_) => Access::Session,
            AdminCreateUser
            | AdminListUsers
            | AdminUpdateUser(_)
            | AdminDeleteUser(_)
            | AdminReset2fa(_)
            | AdminRevokeSessions(_)
            | AdminListApiKeys
            | AdminDeleteApiKey(_)
            | AdminGetSettings
            | AdminPutSettings
            | AdminEvents
            | AdminListProviders
            | AdminCreateProvider
            | AdminUpdateProvider(_)
            | AdminDeleteProvider(_) => Access::Admin,
        }
    }

    /// Routes that may create a session (and so record the user agent).
    #[must_use]
    pub fn opens_session(&self) -> bool {
        matches!(
            self,
            Route::Login | Route::Register | Route::OauthCallback(_)
        )
    }

    /// Routes a session may use before completing a required 2FA enrolment.
    #[must_use]
    pub fn allowed_before_2fa_setup(&self) -> bool {
        matches!(
            self,
            Route::Me | Route::MfaSetup | Route::MfaVerify | Route::Logout
        )
    }

    /// A stable name for logs.
    #[must_use]
    pub fn name(&self) -> &'static str {
        use Route::*;
        match self {
            Healthz => "healthz",
            OpenApi => "openapi",
            Metrics => "metrics",
            Readyz => "readyz",
            Info => "info",
            Login => "login",
            Register => "register",
            RegistrationStatus => "registration_status",
            Verify => "verify",
            Me => "me",
            UpdateMe => "update_me",
            ChangePassword => "change_password",
            MfaSetup => "mfa_setup",
            MfaVerify => "mfa_verify",
            MfaDisable => "mfa_disable",
            ListSessions => "list_sessions",
            RevokeSession(_) => "revoke_session",
            RevokeOtherSessions => "revoke_other_sessions",
            Logout => "logout",
            CreateApiKey => "create_api_key",
            ListApiKeys => "list_api_keys",
            RevokeApiKey(_) => "revoke_api_key",
            DeleteApiKey(_) => "delete_api_key",
            AdminCreateUser => "admin_create_user",
            AdminListUsers => "admin_list_users",
            AdminUpdateUser(_) => "admin_update_user",
            AdminDeleteUser(_) => "admin_delete_user",
            AdminReset2fa(_) => "admin_reset_2fa",
            AdminRevokeSessions(_) => "admin_revoke_sessions",
            AdminListApiKeys => "admin_list_api_keys",
            AdminDeleteApiKey(_) => "admin_delete_api_key",
            AdminGetSettings => "admin_get_settings",
            AdminPutSettings => "admin_put_settings",
            AdminEvents => "admin_events",
            OauthProviders => "oauth_providers",
            OauthAuthorize(_) => "oauth_authorize",
            OauthCallback(_) => "oauth_callback",
            MyOauthLinks => "my_oauth_links",
            UnlinkOauth(_) => "unlink_oauth",
            AdminListProviders => "admin_list_providers",
            AdminCreateProvider => "admin_create_provider",
            AdminUpdateProvider(_) => "admin_update_provider",
            AdminDeleteProvider(_) => "admin_delete_provider",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let u = Uuid::new_v4();
        let cases = [
            (Method::GET, "/healthz".to_owned(), Route::Healthz),
            (Method::GET, "/api/v1/healthz".to_owned(), Route::Healthz),
            (Method::GET, "/api/v1/readyz/".to_owned(), Route::Readyz),
            (Method::POST, "/api/v1/auth/login".to_owned(), Route::Login),
            (
                Method::DELETE,
                format!("/api/v1/users/me/sessions/{u}"),
                Route::RevokeSession(u),
            ),
            (
                Method::POST,
                "/api/v1/users/me/sessions/logout".to_owned(),
                Route::Logout,
            ),
            (
                Method::PUT,
                format!("/api/v1/users/me/api-keys/{u}/revoke"),
                Route::RevokeApiKey(u),
            ),
            (
                Method::DELETE,
                format!("/api/v1/admin/users/{u}/2fa"),
                Route::AdminReset2fa(u),
            ),
            (
                Method::PUT,
                "/api/v1/admin/settings".to_owned(),
                Route::AdminPutSettings,
            ),
        ];
        for (m, p, r) in cases {
            assert_eq!(Route::parse(&m, &p).unwrap(), r, "{m} {p}");
        }
        assert!(matches!(
            Route::parse(&Method::GET, "/api/v1/auth/login"),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(
            Route::parse(&Method::GET, "/api/v1/nope"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            Route::parse(&Method::GET, "/"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            Route::parse(&Method::DELETE, "/api/v1/users/me/sessions/not-a-uuid"),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn access() {
        assert_eq!(Route::Login.access(), Access::Public);
        assert_eq!(Route::Verify.access(), Access::Any);
        assert_eq!(Route::CreateApiKey.access(), Access::Session);
        assert_eq!(Route::AdminEvents.access(), Access::Admin);
    }
}
