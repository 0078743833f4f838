//! Routes: one variant per operation with typed path parameters, parsed from method and path
//! segments, each declaring the authentication it needs.

use http::Method;
use uuid::Uuid;

use crate::error::{Error, Result};

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
}

fn id(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| Error::NotFound("resource"))
}

macro_rules! methods {
    ($m:expr, $($method:ident => $route:expr),+ $(,)?) => {
        match *$m {
            $(Method::$method => Ok($route),)+
            _ => Err(Error::MethodNotAllowed),
        }
    };
}

impl Route {
    /// Match the path first, then the method: a known path with another method is a 405.
    pub fn parse(m: &Method, path: &str) -> Result<Route> {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let rest = match segs.as_slice() {
            ["healthz"] => return methods!(m, GET => Route::Healthz),
            ["readyz"] => return methods!(m, GET => Route::Readyz),
            ["api", "v1", rest @ ..] => rest,
            _ => return Err(Error::NotFound("route")),
        };
        match rest {
            ["healthz"] => methods!(m, GET => Route::Healthz),
            ["readyz"] => methods!(m, GET => Route::Readyz),
            ["info"] => methods!(m, GET => Route::Info),
            ["auth", "login"] => methods!(m, POST => Route::Login),
            ["auth", "register"] => methods!(m, POST => Route::Register),
            ["auth", "registration-status"] => methods!(m, GET => Route::RegistrationStatus),
            ["auth", "verify"] => methods!(m, GET => Route::Verify),
            ["users", "me"] => methods!(m, GET => Route::Me, PUT => Route::UpdateMe),
            ["users", "me", "password"] => methods!(m, PUT => Route::ChangePassword),
            ["users", "me", "2fa", "setup"] => methods!(m, POST => Route::MfaSetup),
            ["users", "me", "2fa", "verify"] => methods!(m, POST => Route::MfaVerify),
            ["users", "me", "2fa", "disable"] => methods!(m, POST => Route::MfaDisable),
            ["users", "me", "sessions"] => methods!(m, GET => Route::ListSessions),
            ["users", "me", "sessions", "revoke-others"] => {
                methods!(m, POST => Route::RevokeOtherSessions)
            }
            ["users", "me", "sessions", "logout"] => methods!(m, POST => Route::Logout),
            ["users", "me", "sessions", s] => methods!(m, DELETE => Route::RevokeSession(id(s)?)),
            ["users", "me", "api-keys"] => {
                methods!(m, GET => Route::ListApiKeys, POST => Route::CreateApiKey)
            }
            ["users", "me", "api-keys", k] => methods!(m, DELETE => Route::DeleteApiKey(id(k)?)),
            ["users", "me", "api-keys", k, "revoke"] => {
                methods!(m, PUT => Route::RevokeApiKey(id(k)?))
            }
            ["admin", "users"] => {
                methods!(m, GET => Route::AdminListUsers, POST => Route::AdminCreateUser)
            }
            ["admin", "users", u] => methods!(m,
                PUT => Route::AdminUpdateUser(id(u)?),
                DELETE => Route::AdminDeleteUser(id(u)?),
            ),
            ["admin", "users", u, "2fa"] => methods!(m, DELETE => Route::AdminReset2fa(id(u)?)),
            ["admin", "users", u, "revoke-sessions"] => {
                methods!(m, POST => Route::AdminRevokeSessions(id(u)?))
            }
            ["admin", "api-keys"] => methods!(m, GET => Route::AdminListApiKeys),
            ["admin", "api-keys", k] => methods!(m, DELETE => Route::AdminDeleteApiKey(id(k)?)),
            ["admin", "settings"] => {
                methods!(m, GET => Route::AdminGetSettings, PUT => Route::AdminPutSettings)
            }
            ["admin", "events"] => methods!(m, GET => Route::AdminEvents),
            ["auth", "oauth", "providers"] => methods!(m, GET => Route::OauthProviders),
            ["auth", "oauth", "callback"] => methods!(m, GET => Route::OauthCallback(None)),
            ["auth", "oauth", slug, "authorize"] => {
                methods!(m, GET => Route::OauthAuthorize((*slug).to_owned()))
            }
            ["auth", "oauth", slug, "callback"] => {
                methods!(m, GET => Route::OauthCallback(Some((*slug).to_owned())))
            }
            ["users", "me", "oauth"] => methods!(m, GET => Route::MyOauthLinks),
            ["users", "me", "oauth", p] => methods!(m, DELETE => Route::UnlinkOauth(id(p)?)),
            ["admin", "oauth", "providers"] => {
                methods!(m, GET => Route::AdminListProviders, POST => Route::AdminCreateProvider)
            }
            ["admin", "oauth", "providers", p] => methods!(m,
                PUT => Route::AdminUpdateProvider(id(p)?),
                DELETE => Route::AdminDeleteProvider(id(p)?),
            ),
            _ => Err(Error::NotFound("route")),
        }
    }

    /// The authentication this route needs. Exhaustive: a new route must choose.
    #[must_use]
    pub fn access(&self) -> Access {
        use Route::*;
        match self {
            Healthz | Readyz | Info | Login | Register | RegistrationStatus | OauthProviders
            | OauthAuthorize(_) | OauthCallback(_) => Access::Public,
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
