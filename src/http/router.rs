//! Routes: one table (method, path, summary) that produces an [`Endpoint`] with typed path
//! parameters and generates the OpenAPI document; each endpoint group declares the
//! authentication it needs.

use std::collections::HashMap;
use std::sync::LazyLock;

use http::Method;
use uuid::Uuid;

use crate::error::{Error, Result};
use rustc_hash::FxBuildHasher;

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

/// Every operation of the API, grouped by the handler module that answers it: the router's
/// one `match` over this enum (`http::route`) and each handler's `match` over its group have no
/// wildcard arm, so a route added to the table and forgotten by its handler does not compile
/// (garage's `Endpoint` pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /auth/verify`: forward auth.
    Verify,
    /// `GET /info`.
    Info,
    /// `GET /users/me`.
    Me,
    /// Probes and documents.
    Probe(Probe),
    /// Password sign-in and registration.
    SignIn(SignIn),
    /// SSO, before a session exists.
    Sso(Sso),
    /// The signed-in user's account.
    Account(Account),
    /// The signed-in user's identity-provider links.
    Links(Links),
    /// User administration, settings and the audit log.
    Admin(Admin),
    /// Identity-provider administration.
    AdminSso(AdminSso),
}

/// Probes and documents (`http::auth::probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant's doc would repeat its path; see `ROUTES`
pub enum Probe {
    Healthz,
    Readyz,
    RegistrationStatus,
    OpenApi,
    Metrics,
}

/// `http::auth::sign_in`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum SignIn {
    Login,
    Register,
    VerifyEmailLink,
    VerifyEmail,
    ConfirmEmail,
    Invitation(String),
    ForgotPassword,
    ResetPassword,
    PasskeyStart,
    PasskeyFinish,
    PasskeySecondStart,
    PasskeySecondFinish,
}

/// `http::oauth::public`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Sso {
    Providers,
    Discover,
    Authorize(String),
    Callback(Option<String>),
}

/// `http::account::handle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Account {
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
    GetApiKey(Uuid),
    AuditLog,
    AuditEvent(u64),
    ResendVerification,
    ChangeEmail,
    DeleteMe,
    GetSettings,
    PutSettings,
    Workspaces,
    Reauth,
    RevokeApiKey(Uuid),
    DeleteApiKey(Uuid),
    PasskeyRegisterStart,
    PasskeyRegisterFinish,
    ListPasskeys,
    RenamePasskey(Uuid),
    DeletePasskey(Uuid),
}

/// `http::oauth::links`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Links {
    List,
    Start(String),
    Unlink(Uuid),
}

/// `http::admin::handle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Admin {
    CreateUser,
    ListUsers,
    UpdateUser(Uuid),
    DeleteUser(Uuid),
    ForceDeleteUser(Uuid),
    CancelDeletion(Uuid),
    ResetLink(Uuid),
    RemovePasskeys(Uuid),
    CreateInvitation,
    ListInvitations,
    DeleteInvitation(Uuid),
    Reset2fa(Uuid),
    RevokeSessions(Uuid),
    ListApiKeys,
    DeleteApiKey(Uuid),
    GetSettings,
    PutSettings,
    Events,
    Event(u64),
    EventStream,
}

/// `http::oauth::admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AdminSso {
    List,
    Create,
    Update(Uuid),
    Delete(Uuid),
}

fn id(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| Error::NotFound("resource"))
}

/// Builds an [`Endpoint`] from the path parameters captured by a [`Spec`].
type Build = fn(&[&str]) -> Result<Endpoint>;

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
    /// The endpoint this row produces for the given parameters.
    pub fn build(&self, params: &[&str]) -> Result<Endpoint> {
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

/// A numeric id (audit events); anything else is not found, like a malformed UUID.
fn n0(p: &[&str]) -> Result<u64> {
    p.first()
        .and_then(|s| s.parse().ok())
        .ok_or(Error::NotFound("resource"))
}

fn s0(p: &[&str]) -> String {
    p.first().copied().unwrap_or_default().to_owned()
}

/// Every route. Literal paths come before parameterised ones that could shadow them.
pub static ROUTES: &[Spec] = &[
    spec!(GET "/api/v1/auth/verify", "Forward auth: who does this JWT or API key belong to", |_| Ok(Endpoint::Verify)),
    spec!(GET "/api/v1/healthz", "Liveness probe", |_| Ok(Endpoint::Probe(Probe::Healthz))),
    spec!(GET "/healthz", "Liveness probe (alias)", |_| Ok(Endpoint::Probe(Probe::Healthz))),
    spec!(GET "/api/v1/readyz", "Readiness probe (reads the store)", |_| Ok(Endpoint::Probe(Probe::Readyz))),
    spec!(GET "/readyz", "Readiness probe (alias)", |_| Ok(Endpoint::Probe(Probe::Readyz))),
    spec!(GET "/api/v1/info", "Application name, version and commit", |_| Ok(Endpoint::Info)),
    spec!(GET "/api/v1/openapi.json", "This document", |_| Ok(Endpoint::Probe(Probe::OpenApi))),
    spec!(GET "/metrics", "Prometheus metrics (when enabled)", |_| Ok(Endpoint::Probe(Probe::Metrics))),
    spec!(POST "/api/v1/auth/login", "Sign in with email, password and optional TOTP code", |_| Ok(Endpoint::SignIn(SignIn::Login))),
    spec!(POST "/api/v1/auth/register", "Create an account and sign in", |_| Ok(Endpoint::SignIn(SignIn::Register))),
    spec!(GET "/api/v1/auth/verify-email", "Verify an email address with the mailed token (?token=; Posta's, kept for compatibility)", |_| Ok(Endpoint::SignIn(SignIn::VerifyEmailLink))),
    spec!(POST "/api/v1/auth/verify-email", "Verify an email address with the mailed token", |_| Ok(Endpoint::SignIn(SignIn::VerifyEmail))),
    spec!(GET "/api/v1/auth/invitations/{token}", "The address and role of a pending invitation (for the sign-up page)", |p| Ok(Endpoint::SignIn(SignIn::Invitation(s0(p))))),
    spec!(POST "/api/v1/auth/confirm-email", "Move the account to its new address with the mailed token", |_| Ok(Endpoint::SignIn(SignIn::ConfirmEmail))),
    spec!(POST "/api/v1/auth/forgot-password", "Mail a password reset link (same answer for every address)", |_| Ok(Endpoint::SignIn(SignIn::ForgotPassword))),
    spec!(POST "/api/v1/auth/reset-password", "Set a new password with a mailed reset token (ends every session)", |_| Ok(Endpoint::SignIn(SignIn::ResetPassword))),
    spec!(POST "/api/v1/auth/passkey/start", "Start a sign-in with a passkey alone (request options and a sealed ceremony; nothing stored)", |_| Ok(Endpoint::SignIn(SignIn::PasskeyStart))),
    spec!(POST "/api/v1/auth/passkey/finish", "Sign in with a passkey (user verification: both factors)", |_| Ok(Endpoint::SignIn(SignIn::PasskeyFinish))),
    spec!(POST "/api/v1/auth/login/passkey/start", "Start the passkey step of a sign-in waiting for its second factor", |_| Ok(Endpoint::SignIn(SignIn::PasskeySecondStart))),
    spec!(POST "/api/v1/auth/login/passkey/finish", "Complete a sign-in waiting for its second factor with a passkey", |_| Ok(Endpoint::SignIn(SignIn::PasskeySecondFinish))),
    spec!(GET "/api/v1/auth/registration-status", "Whether self-registration is open", |_| Ok(Endpoint::Probe(Probe::RegistrationStatus))),
    spec!(GET "/api/v1/auth/oauth/providers", "Enabled identity providers", |_| Ok(Endpoint::Sso(Sso::Providers))),
    spec!(POST "/api/v1/auth/oauth/discover", "The identity provider for an email's domain", |_| Ok(Endpoint::Sso(Sso::Discover))),
    spec!(GET "/api/v1/auth/oauth/callback", "SSO callback", |_| Ok(Endpoint::Sso(Sso::Callback(None)))),
    spec!(GET "/api/v1/auth/oauth/{slug}/authorize", "Start SSO with a provider", |p| Ok(Endpoint::Sso(Sso::Authorize(s0(p))))),
    spec!(GET "/api/v1/auth/oauth/{slug}/callback", "SSO callback (per provider)", |p| Ok(Endpoint::Sso(Sso::Callback(Some(s0(p)))))),
    spec!(GET "/api/v1/users/me", "The signed-in user's profile", |_| Ok(Endpoint::Me)),
    spec!(PUT "/api/v1/users/me", "Change the display name", |_| Ok(Endpoint::Account(Account::UpdateMe))),
    spec!(PUT "/api/v1/users/me/password", "Change the password (ends other sessions)", |_| Ok(Endpoint::Account(Account::ChangePassword))),
    spec!(POST "/api/v1/users/me/2fa/setup", "Start TOTP enrolment", |_| Ok(Endpoint::Account(Account::MfaSetup))),
    spec!(POST "/api/v1/users/me/2fa/verify", "Enable TOTP; returns recovery codes", |_| Ok(Endpoint::Account(Account::MfaVerify))),
    spec!(POST "/api/v1/users/me/2fa/disable", "Disable TOTP with a code", |_| Ok(Endpoint::Account(Account::MfaDisable))),
    spec!(POST "/api/v1/users/me/reauth", "Prove identity again (password or code) for sensitive changes", |_| Ok(Endpoint::Account(Account::Reauth))),
    spec!(GET "/api/v1/users/me/passkeys", "The user's passkeys", |_| Ok(Endpoint::Account(Account::ListPasskeys))),
    spec!(POST "/api/v1/users/me/passkeys/register/start", "Start adding a passkey (creation options; needs a recent proof)", |_| Ok(Endpoint::Account(Account::PasskeyRegisterStart))),
    spec!(POST "/api/v1/users/me/passkeys/register/finish", "Add the passkey the authenticator created", |_| Ok(Endpoint::Account(Account::PasskeyRegisterFinish))),
    spec!(PUT "/api/v1/users/me/passkeys/{id}", "Rename a passkey", |p| Ok(Endpoint::Account(Account::RenamePasskey(p0(p)?)))),
    spec!(DELETE "/api/v1/users/me/passkeys/{id}", "Remove a passkey (needs a recent proof; not the last way to sign in)", |p| Ok(Endpoint::Account(Account::DeletePasskey(p0(p)?)))),
    spec!(GET "/api/v1/users/me/sessions", "Active sessions", |_| Ok(Endpoint::Account(Account::ListSessions))),
    spec!(POST "/api/v1/users/me/sessions/revoke-others", "End every other session", |_| Ok(Endpoint::Account(Account::RevokeOtherSessions))),
    spec!(POST "/api/v1/users/me/sessions/logout", "End this session", |_| Ok(Endpoint::Account(Account::Logout))),
    spec!(DELETE "/api/v1/users/me/sessions/{id}", "End one session", |p| Ok(Endpoint::Account(Account::RevokeSession(p0(p)?)))),
    spec!(GET "/api/v1/users/me/api-keys", "The user's API keys (paged)", |_| Ok(Endpoint::Account(Account::ListApiKeys))),
    spec!(POST "/api/v1/users/me/api-keys", "Create an API key (shown once)", |_| Ok(Endpoint::Account(Account::CreateApiKey))),
    spec!(PUT "/api/v1/users/me/api-keys/{id}/revoke", "Revoke an API key", |p| Ok(Endpoint::Account(Account::RevokeApiKey(p0(p)?)))),
    spec!(DELETE "/api/v1/users/me/api-keys/{id}", "Delete a revoked or expired API key", |p| Ok(Endpoint::Account(Account::DeleteApiKey(p0(p)?)))),
    spec!(GET "/api/v1/users/me/api-keys/{id}", "One of the user's API keys", |p| Ok(Endpoint::Account(Account::GetApiKey(p0(p)?)))),
    spec!(GET "/api/v1/workspaces", "Workspaces (none here: Posta's dashboard then works in personal mode)", |_| Ok(Endpoint::Account(Account::Workspaces))),
    spec!(GET "/api/v1/workspaces/current/api-keys", "The user's API keys at Posta's current path (X-Posta-Workspace-Id ignored)", |_| Ok(Endpoint::Account(Account::ListApiKeys))),
    spec!(POST "/api/v1/workspaces/current/api-keys", "Create an API key at Posta's current path", |_| Ok(Endpoint::Account(Account::CreateApiKey))),
    spec!(GET "/api/v1/workspaces/current/api-keys/{id}", "One API key at Posta's current path", |p| Ok(Endpoint::Account(Account::GetApiKey(p0(p)?)))),
    spec!(PUT "/api/v1/workspaces/current/api-keys/{id}/revoke", "Revoke an API key at Posta's current path", |p| Ok(Endpoint::Account(Account::RevokeApiKey(p0(p)?)))),
    spec!(DELETE "/api/v1/workspaces/current/api-keys/{id}", "Delete a revoked or expired API key at Posta's current path", |p| Ok(Endpoint::Account(Account::DeleteApiKey(p0(p)?)))),
    spec!(GET "/api/v1/users/me/audit-log", "The user's own events (paged, ?category=&type=&search=)", |_| Ok(Endpoint::Account(Account::AuditLog))),
    spec!(GET "/api/v1/workspaces/current/audit-log", "The user's own events at Posta's current path", |_| Ok(Endpoint::Account(Account::AuditLog))),
    spec!(GET "/api/v1/workspaces/current/audit-log/{event_id}", "One of the user's own events", |p| Ok(Endpoint::Account(Account::AuditEvent(n0(p)?)))),
    spec!(PUT "/api/v1/users/me/email", "Change the address (takes effect when the link mailed to the new one is followed)", |_| Ok(Endpoint::Account(Account::ChangeEmail))),
    spec!(POST "/api/v1/users/me/verify-email/resend", "Mail a new verification link", |_| Ok(Endpoint::Account(Account::ResendVerification))),
    spec!(POST "/api/v1/users/me/delete", "Deactivate this account now and delete it after account_deletion_grace_days (needs a recent proof)", |_| Ok(Endpoint::Account(Account::DeleteMe))),
    spec!(GET "/api/v1/users/me/settings", "The user's own settings (Posta's object)", |_| Ok(Endpoint::Account(Account::GetSettings))),
    spec!(PUT "/api/v1/users/me/settings", "Change the user's own settings (the keys given)", |_| Ok(Endpoint::Account(Account::PutSettings))),
    spec!(GET "/api/v1/users/me/oauth", "Linked identity-provider accounts", |_| Ok(Endpoint::Links(Links::List))),
    spec!(POST "/api/v1/users/me/oauth/{slug}/link", "Link an identity provider to this account (returns the URL to visit)", |p| Ok(Endpoint::Links(Links::Start(s0(p))))),
    spec!(DELETE "/api/v1/users/me/oauth/{provider_id}", "Unlink an identity provider", |p| Ok(Endpoint::Links(Links::Unlink(p0(p)?)))),
    spec!(GET "/api/v1/admin/users", "Users (paged, ?search=)", |_| Ok(Endpoint::Admin(Admin::ListUsers))),
    spec!(POST "/api/v1/admin/users", "Create a user", |_| Ok(Endpoint::Admin(Admin::CreateUser))),
    spec!(PUT "/api/v1/admin/users/{id}", "Change a user's name, role or active flag", |p| Ok(Endpoint::Admin(Admin::UpdateUser(p0(p)?)))),
    spec!(DELETE "/api/v1/admin/users/{id}", "Deactivate a user now and delete it (sessions, keys, links) after account_deletion_grace_days", |p| Ok(Endpoint::Admin(Admin::DeleteUser(p0(p)?)))),
    spec!(DELETE "/api/v1/admin/users/{id}/force", "Delete an inactive user now", |p| Ok(Endpoint::Admin(Admin::ForceDeleteUser(p0(p)?)))),
    spec!(POST "/api/v1/admin/users/{id}/reset-link", "A one-time password reset link to hand over (also mailed when mail is configured)", |p| Ok(Endpoint::Admin(Admin::ResetLink(p0(p)?)))),
    spec!(DELETE "/api/v1/admin/users/{id}/passkeys", "Remove every passkey of a user (a lost device)", |p| Ok(Endpoint::Admin(Admin::RemovePasskeys(p0(p)?)))),
    spec!(POST "/api/v1/admin/users/{id}/cancel-deletion", "Cancel a scheduled deletion and reactivate the user", |p| Ok(Endpoint::Admin(Admin::CancelDeletion(p0(p)?)))),
    spec!(DELETE "/api/v1/admin/users/{id}/2fa", "Turn a user's 2FA off", |p| Ok(Endpoint::Admin(Admin::Reset2fa(p0(p)?)))),
    spec!(POST "/api/v1/admin/users/{id}/revoke-sessions", "End all of a user's sessions", |p| Ok(Endpoint::Admin(Admin::RevokeSessions(p0(p)?)))),
    spec!(GET "/api/v1/admin/invitations", "Pending invitations (paged)", |_| Ok(Endpoint::Admin(Admin::ListInvitations))),
    spec!(POST "/api/v1/admin/invitations", "Invite someone by email (the link is mailed, or answered without mail)", |_| Ok(Endpoint::Admin(Admin::CreateInvitation))),
    spec!(DELETE "/api/v1/admin/invitations/{id}", "Revoke an invitation", |p| Ok(Endpoint::Admin(Admin::DeleteInvitation(p0(p)?)))),
    spec!(GET "/api/v1/admin/api-keys", "All API keys (paged)", |_| Ok(Endpoint::Admin(Admin::ListApiKeys))),
    spec!(DELETE "/api/v1/admin/api-keys/{id}", "Delete any API key", |p| Ok(Endpoint::Admin(Admin::DeleteApiKey(p0(p)?)))),
    spec!(GET "/api/v1/admin/settings", "Platform settings", |_| Ok(Endpoint::Admin(Admin::GetSettings))),
    spec!(PUT "/api/v1/admin/settings", "Update platform settings (all or nothing)", |_| Ok(Endpoint::Admin(Admin::PutSettings))),
    spec!(GET "/api/v1/admin/events", "Audit log in Posta's shape (paged, ?category=&type=&user_id=&search=)", |_| Ok(Endpoint::Admin(Admin::Events))),
    spec!(GET "/api/v1/admin/events/stream", "Audit events as they happen (Server-Sent Events; Last-Event-ID resumes)", |_| Ok(Endpoint::Admin(Admin::EventStream))),
    spec!(GET "/api/v1/admin/events/{event_id}", "One audit event", |p| Ok(Endpoint::Admin(Admin::Event(n0(p)?)))),
    spec!(GET "/api/v1/admin/oauth/providers", "Identity providers", |_| Ok(Endpoint::AdminSso(AdminSso::List))),
    spec!(POST "/api/v1/admin/oauth/providers", "Add an identity provider", |_| Ok(Endpoint::AdminSso(AdminSso::Create))),
    spec!(PUT "/api/v1/admin/oauth/providers/{id}", "Change an identity provider", |p| Ok(Endpoint::AdminSso(AdminSso::Update(p0(p)?)))),
    spec!(DELETE "/api/v1/admin/oauth/providers/{id}", "Remove an identity provider and its links", |p| Ok(Endpoint::AdminSso(AdminSso::Delete(p0(p)?)))),
];

/// [`ROUTES`] indexed for matching: literal paths by exact lookup, the templated rest scanned in
/// table order. Built once; matching was the largest own cost of a cheap request.
struct Table {
    literal: HashMap<&'static str, Vec<&'static Spec>, FxBuildHasher>,
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

impl Endpoint {
    /// Match the path first, then the method: a known path with another method is a 405.
    pub fn parse(m: &Method, path: &str) -> Result<Endpoint> {
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

    /// The authentication this endpoint needs. Exhaustive: a new group must choose.
    #[must_use]
    pub fn access(&self) -> Access {
        match self {
            Endpoint::Info | Endpoint::Probe(_) | Endpoint::SignIn(_) | Endpoint::Sso(_) => {
                Access::Public
            }
            Endpoint::Verify => Access::Any,
            Endpoint::Me | Endpoint::Account(_) | Endpoint::Links(_) => Access::Session,
            Endpoint::Admin(_) | Endpoint::AdminSso(_) => Access::Admin,
        }
    }

    /// Endpoints that may create a session (and so record the user agent).
    #[must_use]
    pub fn opens_session(&self) -> bool {
        matches!(self, Endpoint::SignIn(_) | Endpoint::Sso(Sso::Callback(_)))
    }

    /// What an account that must verify its email can still do.
    #[must_use]
    pub fn allowed_before_verification(&self) -> bool {
        matches!(
            self,
            Endpoint::Me
                | Endpoint::Account(
                    Account::UpdateMe | Account::Logout | Account::ResendVerification
                )
        )
    }

    /// Endpoints a session may use before completing a required 2FA enrolment.
    #[must_use]
    pub fn allowed_before_2fa_setup(&self) -> bool {
        matches!(
            self,
            Endpoint::Me
                | Endpoint::Account(
                    Account::MfaSetup
                        | Account::MfaVerify
                        | Account::Logout
                        | Account::ListPasskeys
                        | Account::PasskeyRegisterStart
                        | Account::PasskeyRegisterFinish
                )
        )
    }

    /// A stable name for logs and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Verify => "verify",
            Endpoint::Info => "info",
            Endpoint::Me => "me",
            Endpoint::Probe(p) => match p {
                Probe::Healthz => "healthz",
                Probe::Readyz => "readyz",
                Probe::RegistrationStatus => "registration_status",
                Probe::OpenApi => "openapi",
                Probe::Metrics => "metrics",
            },
            Endpoint::SignIn(SignIn::Login) => "login",
            Endpoint::SignIn(SignIn::Register) => "register",
            Endpoint::SignIn(SignIn::VerifyEmailLink) => "verify_email_link",
            Endpoint::SignIn(SignIn::VerifyEmail) => "verify_email",
            Endpoint::SignIn(SignIn::Invitation(_)) => "invitation",
            Endpoint::SignIn(SignIn::ConfirmEmail) => "confirm_email",
            Endpoint::SignIn(SignIn::ForgotPassword) => "forgot_password",
            Endpoint::SignIn(SignIn::ResetPassword) => "reset_password",
            Endpoint::SignIn(SignIn::PasskeyStart) => "passkey_start",
            Endpoint::SignIn(SignIn::PasskeyFinish) => "passkey_finish",
            Endpoint::SignIn(SignIn::PasskeySecondStart) => "passkey_second_start",
            Endpoint::SignIn(SignIn::PasskeySecondFinish) => "passkey_second_finish",
            Endpoint::Sso(s) => match s {
                Sso::Providers => "oauth_providers",
                Sso::Discover => "oauth_discover",
                Sso::Authorize(_) => "oauth_authorize",
                Sso::Callback(_) => "oauth_callback",
            },
            Endpoint::Account(a) => match a {
                Account::UpdateMe => "update_me",
                Account::ChangePassword => "change_password",
                Account::MfaSetup => "mfa_setup",
                Account::MfaVerify => "mfa_verify",
                Account::MfaDisable => "mfa_disable",
                Account::ListSessions => "list_sessions",
                Account::RevokeSession(_) => "revoke_session",
                Account::RevokeOtherSessions => "revoke_other_sessions",
                Account::Logout => "logout",
                Account::CreateApiKey => "create_api_key",
                Account::ListApiKeys => "list_api_keys",
                Account::GetApiKey(_) => "get_api_key",
                Account::DeleteMe => "delete_me",
                Account::AuditLog => "own_audit_log",
                Account::AuditEvent(_) => "own_audit_event",
                Account::ResendVerification => "resend_verification",
                Account::ChangeEmail => "change_email",
                Account::GetSettings => "get_user_settings",
                Account::PutSettings => "put_user_settings",
                Account::Workspaces => "workspaces",
                Account::PasskeyRegisterStart => "passkey_register_start",
                Account::PasskeyRegisterFinish => "passkey_register_finish",
                Account::ListPasskeys => "list_passkeys",
                Account::RenamePasskey(_) => "rename_passkey",
                Account::DeletePasskey(_) => "delete_passkey",
                Account::Reauth => "reauth",
                Account::RevokeApiKey(_) => "revoke_api_key",
                Account::DeleteApiKey(_) => "delete_api_key",
            },
            Endpoint::Links(Links::List) => "my_oauth_links",
            Endpoint::Links(Links::Start(_)) => "link_oauth",
            Endpoint::Links(Links::Unlink(_)) => "unlink_oauth",
            Endpoint::Admin(a) => match a {
                Admin::CreateUser => "admin_create_user",
                Admin::ListUsers => "admin_list_users",
                Admin::UpdateUser(_) => "admin_update_user",
                Admin::DeleteUser(_) => "admin_delete_user",
                Admin::ForceDeleteUser(_) => "admin_force_delete_user",
                Admin::CancelDeletion(_) => "admin_cancel_deletion",
                Admin::ResetLink(_) => "admin_reset_link",
                Admin::RemovePasskeys(_) => "admin_remove_passkeys",
                Admin::CreateInvitation => "admin_create_invitation",
                Admin::ListInvitations => "admin_list_invitations",
                Admin::DeleteInvitation(_) => "admin_delete_invitation",
                Admin::Reset2fa(_) => "admin_reset_2fa",
                Admin::RevokeSessions(_) => "admin_revoke_sessions",
                Admin::ListApiKeys => "admin_list_api_keys",
                Admin::DeleteApiKey(_) => "admin_delete_api_key",
                Admin::GetSettings => "admin_get_settings",
                Admin::PutSettings => "admin_put_settings",
                Admin::Events => "admin_events",
                Admin::Event(_) => "admin_event",
                Admin::EventStream => "admin_event_stream",
            },
            Endpoint::AdminSso(a) => match a {
                AdminSso::List => "admin_list_providers",
                AdminSso::Create => "admin_create_provider",
                AdminSso::Update(_) => "admin_update_provider",
                AdminSso::Delete(_) => "admin_delete_provider",
            },
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
            (
                Method::GET,
                "/healthz".to_owned(),
                Endpoint::Probe(Probe::Healthz),
            ),
            (
                Method::GET,
                "/api/v1/healthz".to_owned(),
                Endpoint::Probe(Probe::Healthz),
            ),
            (
                Method::GET,
                "/api/v1/readyz/".to_owned(),
                Endpoint::Probe(Probe::Readyz),
            ),
            (
                Method::POST,
                "/api/v1/auth/login".to_owned(),
                Endpoint::SignIn(SignIn::Login),
            ),
            (
                Method::DELETE,
                format!("/api/v1/users/me/sessions/{u}"),
                Endpoint::Account(Account::RevokeSession(u)),
            ),
            (
                Method::POST,
                "/api/v1/users/me/sessions/logout".to_owned(),
                Endpoint::Account(Account::Logout),
            ),
            (
                Method::PUT,
                format!("/api/v1/users/me/api-keys/{u}/revoke"),
                Endpoint::Account(Account::RevokeApiKey(u)),
            ),
            (
                Method::DELETE,
                format!("/api/v1/admin/users/{u}/2fa"),
                Endpoint::Admin(Admin::Reset2fa(u)),
            ),
            (
                Method::PUT,
                "/api/v1/admin/settings".to_owned(),
                Endpoint::Admin(Admin::PutSettings),
            ),
        ];
        for (m, p, r) in cases {
            assert_eq!(Endpoint::parse(&m, &p).unwrap(), r, "{m} {p}");
        }
        assert!(matches!(
            Endpoint::parse(&Method::GET, "/api/v1/auth/login"),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(
            Endpoint::parse(&Method::GET, "/api/v1/nope"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            Endpoint::parse(&Method::GET, "/"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            Endpoint::parse(&Method::DELETE, "/api/v1/users/me/sessions/not-a-uuid"),
            Err(Error::NotFound(_))
        ));
    }

    /// Every row of the table produces the endpoint its name says, and no two rows share a
    /// method and path: the table, the names in logs and the OpenAPI document agree.
    #[test]
    fn every_row_is_reachable() {
        let u = Uuid::nil().to_string();
        let mut seen = std::collections::HashSet::new();
        for spec in ROUTES {
            let path = spec
                .path
                .replace("{id}", &u)
                .replace("{provider_id}", &u)
                .replace("{event_id}", "7")
                .replace("{slug}", "corp");
            let e = Endpoint::parse(&spec.method, &path).unwrap();
            assert!(
                seen.insert((spec.method.clone(), spec.path)),
                "{} {}",
                spec.method,
                spec.path
            );
            assert!(!e.name().is_empty());
        }
    }

    #[test]
    fn access() {
        assert_eq!(Endpoint::SignIn(SignIn::Login).access(), Access::Public);
        assert_eq!(Endpoint::Info.access(), Access::Public);
        assert_eq!(Endpoint::Verify.access(), Access::Any);
        assert_eq!(
            Endpoint::Account(Account::CreateApiKey).access(),
            Access::Session
        );
        assert_eq!(Endpoint::Admin(Admin::Events).access(), Access::Admin);
    }
}
