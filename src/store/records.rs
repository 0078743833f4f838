//! The stored form of every value, one record type per table and version, apart from the
//! domain's types in `model`: a field added to a domain type does not change what is on disk
//! until a new version is written here, with its conversion.
//!
//! bincode is not self-describing, so each stored value is an enum whose variant is its
//! version (`UserRecord::V1`), and a version's struct never changes once released: a new field
//! means a `V2` struct, a `V2` variant, and a conversion from `V1`. `codec` pins the bytes of
//! each version (golden tests). Records are built by value from the domain type when written
//! (a copy of a few strings per write; writes are rare next to reads) and moved into it when
//! read.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{
    ApiKey, EmailToken, Event, Invitation, Mail, OauthLink, OauthProvider, OauthState, Origin,
    Passkey, PrefValue, ProviderKind, Role, Session, Settings, TokenKind, Totp, User, UserPrefs,
};

/// `users_v1` values.
#[derive(Serialize, Deserialize)]
pub enum UserRecord {
    /// Since the first release.
    V1(UserV1),
    /// Adds whether (and when) the email was verified, and how the account came to be.
    V2(UserV2),
    /// Adds a scheduled deletion and the sign-in alert switch.
    V3(UserV3),
}

/// A user with a scheduled deletion and the sign-in alert switch.
#[derive(Serialize, Deserialize)]
pub struct UserV3 {
    v2: UserV2,
    scheduled_deletion_at: Option<i64>,
    login_alerts: bool,
}

/// A user with its email verification and origin.
#[derive(Serialize, Deserialize)]
pub struct UserV2 {
    v1: UserV1,
    email_verified_at: Option<i64>,
    origin: OriginV2,
}

/// How an account came to be, as stored from V2 on.
#[derive(Serialize, Deserialize, Clone, Copy)]
enum OriginV2 {
    Unknown,
    SelfRegistered,
    Admin,
    Invitation,
    Sso,
}

/// A user as first stored.
#[derive(Serialize, Deserialize)]
pub struct UserV1 {
    id: Uuid,
    name: String,
    email: String,
    password_hash: Option<String>,
    role: RoleV1,
    active: bool,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
    totp: Option<TotpV1>,
    pending_totp: Option<Vec<u8>>,
}

/// Role as stored: variant index 0 user, 1 admin.
#[derive(Serialize, Deserialize, Clone, Copy)]
enum RoleV1 {
    User,
    Admin,
}

/// An enrolled TOTP factor as stored inside `UserV1`.
#[derive(Serialize, Deserialize)]
struct TotpV1 {
    secret_sealed: Vec<u8>,
    last_step: u64,
    recovery_hashes: Vec<[u8; 32]>,
}

/// `sessions_v1` values.
#[derive(Serialize, Deserialize)]
pub enum SessionRecord {
    /// Since the first release.
    V1(SessionV1),
    /// Adds the time of the session's last proof of identity.
    V2(SessionV2),
}

/// A session with its last proof.
#[derive(Serialize, Deserialize)]
pub struct SessionV2 {
    v1: SessionV1,
    proved_at: i64,
}

/// A session as first stored.
#[derive(Serialize, Deserialize)]
pub struct SessionV1 {
    id: Uuid,
    user_id: Uuid,
    ip: String,
    user_agent: String,
    created_at: i64,
    expires_at: i64,
}

/// `api_keys_v1` values.
#[derive(Serialize, Deserialize)]
pub enum ApiKeyRecord {
    /// Since the first release.
    V1(ApiKeyV1),
}

/// An API key as first stored.
#[derive(Serialize, Deserialize)]
pub struct ApiKeyV1 {
    id: Uuid,
    user_id: Uuid,
    name: String,
    prefix: String,
    hash: [u8; 32],
    scopes: Vec<String>,
    allowed_ips: Vec<String>,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// `events_v1` values.
#[derive(Serialize, Deserialize)]
pub enum EventRecord {
    /// Since the first release.
    V1(EventV1),
}

/// An audit event as first stored.
#[derive(Serialize, Deserialize)]
pub struct EventV1 {
    id: u64,
    at: i64,
    kind: String,
    actor: Option<Uuid>,
    subject: Option<Uuid>,
    email: Option<String>,
    ip: Option<String>,
    detail: String,
}

/// The `settings` value of `meta_v1`.
#[derive(Serialize, Deserialize)]
pub enum SettingsRecord {
    /// Since the first release.
    V1(SettingsV1),
    /// Adds `reauth_window_minutes`.
    V2(SettingsV2),
    /// Adds the deletion grace period and the audit log's retention.
    V3(SettingsV3),
}

/// Settings with the deletion grace period and the audit retention.
#[derive(Serialize, Deserialize)]
pub struct SettingsV3 {
    v2: SettingsV2,
    account_deletion_grace_days: u32,
    audit_log_retention_days: u32,
    require_email_verification: bool,
    password_reset_enabled: bool,
    unverified_account_days: u32,
}

/// Settings with the re-authentication window.
#[derive(Serialize, Deserialize)]
pub struct SettingsV2 {
    v1: SettingsV1,
    reauth_window_minutes: u32,
}

/// Settings as first stored.
#[derive(Serialize, Deserialize)]
pub struct SettingsV1 {
    registration_enabled: bool,
    allowed_signup_domains: Vec<String>,
    two_factor_required: bool,
    login_rate_limit_count: u32,
    login_rate_limit_window_minutes: u32,
}

/// `oauth_providers_v1` values.
#[derive(Serialize, Deserialize)]
pub enum ProviderRecord {
    /// Since the first release.
    V1(ProviderV1),
    /// Adds `trust_email` and `skip_local_2fa`.
    V2(ProviderV2),
    /// Adds `hidden`.
    V3(ProviderV3),
}

/// An identity provider that may be hidden from the login page.
#[derive(Serialize, Deserialize)]
pub struct ProviderV3 {
    v2: ProviderV2,
    hidden: bool,
}

/// An identity provider with `trust_email` and `skip_local_2fa`.
#[derive(Serialize, Deserialize)]
pub struct ProviderV2 {
    v1: ProviderV1,
    trust_email: bool,
    skip_local_2fa: bool,
}

/// An identity provider as first stored.
#[derive(Serialize, Deserialize)]
pub struct ProviderV1 {
    id: Uuid,
    name: String,
    slug: String,
    kind: KindV1,
    client_id: String,
    client_secret_sealed: Option<Vec<u8>>,
    issuer: Option<String>,
    auth_url: Option<String>,
    token_url: Option<String>,
    userinfo_url: Option<String>,
    scopes: String,
    auto_register: bool,
    allowed_domains: Vec<String>,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
}

/// Provider kind as stored: variant index 0 Google, 1 OIDC.
#[derive(Serialize, Deserialize, Clone, Copy)]
enum KindV1 {
    Google,
    Oidc,
}

/// `oauth_links_v1` values.
#[derive(Serialize, Deserialize)]
pub enum LinkRecord {
    /// Since the first release.
    V1(LinkV1),
}

/// A provider link as first stored.
#[derive(Serialize, Deserialize)]
pub struct LinkV1 {
    provider_id: Uuid,
    subject: String,
    user_id: Uuid,
    email: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

/// `oauth_states_v1` values.
#[derive(Serialize, Deserialize)]
pub enum StateRecord {
    /// Since the first release.
    V1(StateV1),
    /// Adds the (user, session) an explicit link was started for.
    V2(StateV2),
}

/// A pending authorization that may be a link.
#[derive(Serialize, Deserialize)]
pub struct StateV2 {
    v1: StateV1,
    link_for: Option<(Uuid, Uuid)>,
}

/// A pending authorization as first stored.
#[derive(Serialize, Deserialize)]
pub struct StateV1 {
    provider_id: Uuid,
    pkce_verifier_sealed: Vec<u8>,
    nonce: String,
    binding: [u8; 32],
    created_at: i64,
    expires_at: i64,
}

/// `user_prefs_v1` values.
#[derive(Serialize, Deserialize)]
pub enum PrefsRecord {
    /// Since this table was added.
    V1(PrefsV1),
}

/// A user's preferences as first stored: typed values by key.
#[derive(Serialize, Deserialize)]
pub struct PrefsV1 {
    values: Vec<(String, PrefValueV1)>,
    created_at: i64,
    updated_at: i64,
}

/// One preference's value as stored: variant 0 null, 1 bool, 2 integer, 3 text.
#[derive(Serialize, Deserialize)]
enum PrefValueV1 {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
}

impl Record for PrefsRecord {
    type Value = UserPrefs;
    const NAME: &'static str = "user settings";
    fn new(p: &UserPrefs) -> Self {
        Self::V1(PrefsV1 {
            values: p
                .values
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        PrefValue::Null => PrefValueV1::Null,
                        PrefValue::Bool(b) => PrefValueV1::Bool(*b),
                        PrefValue::Int(i) => PrefValueV1::Int(*i),
                        PrefValue::Text(t) => PrefValueV1::Text(t.clone()),
                    };
                    (k.clone(), v)
                })
                .collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        })
    }
    fn into_value(self) -> UserPrefs {
        let Self::V1(p) = self;
        UserPrefs {
            values: p
                .values
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        PrefValueV1::Null => PrefValue::Null,
                        PrefValueV1::Bool(b) => PrefValue::Bool(b),
                        PrefValueV1::Int(i) => PrefValue::Int(i),
                        PrefValueV1::Text(t) => PrefValue::Text(t),
                    };
                    (k, v)
                })
                .collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `outbox_v1` values.
#[derive(Serialize, Deserialize)]
pub enum MailRecord {
    /// Since the outbox was added.
    V1(MailV1),
}

/// A queued message as first stored.
#[derive(Serialize, Deserialize)]
pub struct MailV1 {
    id: u64,
    kind: String,
    to: String,
    subject: String,
    text: String,
    html: String,
    created_at: i64,
    attempts: u32,
    next_attempt_at: i64,
}

impl Record for MailRecord {
    type Value = Mail;
    const NAME: &'static str = "queued mail";
    fn new(m: &Mail) -> Self {
        Self::V1(MailV1 {
            id: m.id,
            kind: m.kind.clone(),
            to: m.to.clone(),
            subject: m.subject.clone(),
            text: m.text.clone(),
            html: m.html.clone(),
            created_at: m.created_at,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
        })
    }
    fn into_value(self) -> Mail {
        let Self::V1(m) = self;
        Mail {
            id: m.id,
            kind: m.kind,
            to: m.to,
            subject: m.subject,
            text: m.text,
            html: m.html,
            created_at: m.created_at,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
        }
    }
}

/// `email_tokens_v1` values.
#[derive(Serialize, Deserialize)]
pub enum TokenRecord {
    /// Since emailed tokens were added.
    V1(TokenV1),
}

/// An emailed token as first stored.
#[derive(Serialize, Deserialize)]
pub struct TokenV1 {
    kind: TokenKindV1,
    user_id: Uuid,
    email: String,
    created_at: i64,
    expires_at: i64,
}

/// Token kind as stored: variant 0 verify email, 1 password reset, 2 email change.
#[derive(Serialize, Deserialize, Clone, Copy)]
enum TokenKindV1 {
    VerifyEmail,
    PasswordReset,
    EmailChange,
}

impl Record for TokenRecord {
    type Value = EmailToken;
    const NAME: &'static str = "emailed token";
    fn new(t: &EmailToken) -> Self {
        Self::V1(TokenV1 {
            kind: match t.kind {
                TokenKind::VerifyEmail => TokenKindV1::VerifyEmail,
                TokenKind::PasswordReset => TokenKindV1::PasswordReset,
                TokenKind::EmailChange => TokenKindV1::EmailChange,
            },
            user_id: t.user_id,
            email: t.email.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
        })
    }
    fn into_value(self) -> EmailToken {
        let Self::V1(t) = self;
        EmailToken {
            kind: match t.kind {
                TokenKindV1::VerifyEmail => TokenKind::VerifyEmail,
                TokenKindV1::PasswordReset => TokenKind::PasswordReset,
                TokenKindV1::EmailChange => TokenKind::EmailChange,
            },
            user_id: t.user_id,
            email: t.email,
            created_at: t.created_at,
            expires_at: t.expires_at,
        }
    }
}

/// `invitations_v1` values.
#[derive(Serialize, Deserialize)]
pub enum InvitationRecord {
    /// Since invitations were added.
    V1(InvitationV1),
}

/// An invitation as first stored.
#[derive(Serialize, Deserialize)]
pub struct InvitationV1 {
    id: Uuid,
    email: String,
    role: RoleV1,
    name: Option<String>,
    invited_by: Option<Uuid>,
    created_at: i64,
    expires_at: i64,
}

impl Record for InvitationRecord {
    type Value = Invitation;
    const NAME: &'static str = "invitation";
    fn new(i: &Invitation) -> Self {
        Self::V1(InvitationV1 {
            id: i.id,
            email: i.email.clone(),
            role: match i.role {
                Role::User => RoleV1::User,
                Role::Admin => RoleV1::Admin,
            },
            name: i.name.clone(),
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
        })
    }
    fn into_value(self) -> Invitation {
        let Self::V1(i) = self;
        Invitation {
            id: i.id,
            email: i.email,
            role: match i.role {
                RoleV1::User => Role::User,
                RoleV1::Admin => Role::Admin,
            },
            name: i.name,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// `passkeys_v1` values.
#[derive(Serialize, Deserialize)]
pub enum PasskeyRecord {
    /// Since passkeys were added.
    V1(PasskeyV1),
}

/// A passkey as first stored.
#[derive(Serialize, Deserialize)]
pub struct PasskeyV1 {
    id: Uuid,
    user_id: Uuid,
    credential_id: Vec<u8>,
    user_handle: Vec<u8>,
    name: String,
    public_key: Vec<u8>,
    state: [u8; 7],
    transports: u8,
    backed_up: bool,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl Record for PasskeyRecord {
    type Value = Passkey;
    const NAME: &'static str = "passkey";
    fn new(p: &Passkey) -> Self {
        Self::V1(PasskeyV1 {
            id: p.id,
            user_id: p.user_id,
            credential_id: p.credential_id.clone(),
            user_handle: p.user_handle.clone(),
            name: p.name.clone(),
            public_key: p.public_key.clone(),
            state: p.state,
            transports: p.transports,
            backed_up: p.backed_up,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        })
    }
    fn into_value(self) -> Passkey {
        let Self::V1(p) = self;
        Passkey {
            id: p.id,
            user_id: p.user_id,
            credential_id: p.credential_id,
            user_handle: p.user_handle,
            name: p.name,
            public_key: p.public_key,
            state: p.state,
            transports: p.transports,
            backed_up: p.backed_up,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// A record type: which domain type it stores, how the newest version is built from it, and
/// how every version becomes it.
pub trait Record: Serialize + for<'de> Deserialize<'de> {
    /// The domain type.
    type Value;
    /// Name used in error messages.
    const NAME: &'static str;
    /// The newest version, from the domain value.
    fn new(v: &Self::Value) -> Self;
    /// Any version, upgraded to the domain value.
    fn into_value(self) -> Self::Value;
}

impl UserV1 {
    fn new(u: &User) -> Self {
        UserV1 {
            id: u.id,
            name: u.name.clone(),
            email: u.email.clone(),
            password_hash: u.password_hash.clone(),
            role: match u.role {
                Role::User => RoleV1::User,
                Role::Admin => RoleV1::Admin,
            },
            active: u.active,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
            totp: u.totp.as_ref().map(|t| TotpV1 {
                secret_sealed: t.secret_sealed.clone(),
                last_step: t.last_step,
                recovery_hashes: t.recovery_hashes.clone(),
            }),
            pending_totp: u.pending_totp.clone(),
        }
    }

    /// The user as V1 knew it. Migration to V2: an admin's email counts as verified (at the
    /// account's creation); anyone else's not, and the origin is unknown (never linked by
    /// email alone).
    fn into_value(self) -> User {
        let role = match self.role {
            RoleV1::User => Role::User,
            RoleV1::Admin => Role::Admin,
        };
        User {
            id: self.id,
            name: self.name,
            email: self.email,
            password_hash: self.password_hash,
            role,
            active: self.active,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_login_at: self.last_login_at,
            totp: self.totp.map(|t| Totp {
                secret_sealed: t.secret_sealed,
                last_step: t.last_step,
                recovery_hashes: t.recovery_hashes,
            }),
            pending_totp: self.pending_totp,
            email_verified_at: (role == Role::Admin).then_some(self.created_at),
            origin: Origin::Unknown,
            scheduled_deletion_at: None,
            login_alerts: true,
        }
    }
}

impl UserV2 {
    fn new(u: &User) -> Self {
        UserV2 {
            v1: UserV1::new(u),
            email_verified_at: u.email_verified_at,
            origin: match u.origin {
                Origin::Unknown => OriginV2::Unknown,
                Origin::SelfRegistered => OriginV2::SelfRegistered,
                Origin::Admin => OriginV2::Admin,
                Origin::Invitation => OriginV2::Invitation,
                Origin::Sso => OriginV2::Sso,
            },
        }
    }

    /// Migration to V3: nothing scheduled, sign-in alerts on.
    fn into_value(self) -> User {
        User {
            email_verified_at: self.email_verified_at,
            origin: match self.origin {
                OriginV2::Unknown => Origin::Unknown,
                OriginV2::SelfRegistered => Origin::SelfRegistered,
                OriginV2::Admin => Origin::Admin,
                OriginV2::Invitation => Origin::Invitation,
                OriginV2::Sso => Origin::Sso,
            },
            ..self.v1.into_value()
        }
    }
}

impl Record for UserRecord {
    type Value = User;
    const NAME: &'static str = "user";
    fn new(u: &User) -> Self {
        Self::V3(UserV3 {
            v2: UserV2::new(u),
            scheduled_deletion_at: u.scheduled_deletion_at,
            login_alerts: u.login_alerts,
        })
    }
    fn into_value(self) -> User {
        match self {
            Self::V1(u) => u.into_value(),
            Self::V2(u) => u.into_value(),
            Self::V3(u) => User {
                scheduled_deletion_at: u.scheduled_deletion_at,
                login_alerts: u.login_alerts,
                ..u.v2.into_value()
            },
        }
    }
}

impl Record for SessionRecord {
    type Value = Session;
    const NAME: &'static str = "session";
    fn new(s: &Session) -> Self {
        Self::V2(SessionV2 {
            v1: SessionV1 {
                id: s.id,
                user_id: s.user_id,
                ip: s.ip.clone(),
                user_agent: s.user_agent.clone(),
                created_at: s.created_at,
                expires_at: s.expires_at,
            },
            proved_at: s.proved_at,
        })
    }
    fn into_value(self) -> Session {
        // Migration: a V1 session's last proof is its sign-in.
        let (s, proved_at) = match self {
            Self::V1(s) => {
                let at = s.created_at;
                (s, at)
            }
            Self::V2(s) => (s.v1, s.proved_at),
        };
        Session {
            id: s.id,
            user_id: s.user_id,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            expires_at: s.expires_at,
            proved_at,
        }
    }
}

impl Record for ApiKeyRecord {
    type Value = ApiKey;
    const NAME: &'static str = "API key";
    fn new(k: &ApiKey) -> Self {
        Self::V1(ApiKeyV1 {
            id: k.id,
            user_id: k.user_id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            hash: k.hash,
            scopes: k.scopes.clone(),
            allowed_ips: k.allowed_ips.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        })
    }
    fn into_value(self) -> ApiKey {
        let Self::V1(k) = self;
        ApiKey {
            id: k.id,
            user_id: k.user_id,
            name: k.name,
            prefix: k.prefix,
            hash: k.hash,
            scopes: k.scopes,
            allowed_ips: k.allowed_ips,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

impl Record for EventRecord {
    type Value = Event;
    const NAME: &'static str = "event";
    fn new(e: &Event) -> Self {
        Self::V1(EventV1 {
            id: e.id,
            at: e.at,
            kind: e.kind.clone(),
            actor: e.actor,
            subject: e.subject,
            email: e.email.clone(),
            ip: e.ip.clone(),
            detail: e.detail.clone(),
        })
    }
    fn into_value(self) -> Event {
        let Self::V1(e) = self;
        Event {
            id: e.id,
            at: e.at,
            kind: e.kind,
            actor: e.actor,
            subject: e.subject,
            email: e.email,
            ip: e.ip,
            detail: e.detail,
        }
    }
}

impl Record for SettingsRecord {
    type Value = Settings;
    const NAME: &'static str = "settings";
    fn new(s: &Settings) -> Self {
        Self::V3(SettingsV3 {
            v2: SettingsV2 {
                v1: SettingsV1 {
                    registration_enabled: s.registration_enabled,
                    allowed_signup_domains: s.allowed_signup_domains.clone(),
                    two_factor_required: s.two_factor_required,
                    login_rate_limit_count: s.login_rate_limit_count,
                    login_rate_limit_window_minutes: s.login_rate_limit_window_minutes,
                },
                reauth_window_minutes: s.reauth_window_minutes,
            },
            account_deletion_grace_days: s.account_deletion_grace_days,
            audit_log_retention_days: s.audit_log_retention_days,
            require_email_verification: s.require_email_verification,
            password_reset_enabled: s.password_reset_enabled,
            unverified_account_days: s.unverified_account_days,
        })
    }
    fn into_value(self) -> Settings {
        // Migration: what an older version lacks takes its default.
        let d = Settings::default();
        let (s, window, v3) = match self {
            Self::V1(s) => (s, d.reauth_window_minutes, None),
            Self::V2(s) => (s.v1, s.reauth_window_minutes, None),
            Self::V3(s) => (
                s.v2.v1,
                s.v2.reauth_window_minutes,
                Some((
                    s.account_deletion_grace_days,
                    s.audit_log_retention_days,
                    s.require_email_verification,
                    s.password_reset_enabled,
                    s.unverified_account_days,
                )),
            ),
        };
        let (grace, retention, require_email_verification, reset, unverified_days) =
            v3.unwrap_or((
                d.account_deletion_grace_days,
                d.audit_log_retention_days,
                d.require_email_verification,
                d.password_reset_enabled,
                d.unverified_account_days,
            ));
        Settings {
            registration_enabled: s.registration_enabled,
            allowed_signup_domains: s.allowed_signup_domains,
            two_factor_required: s.two_factor_required,
            login_rate_limit_count: s.login_rate_limit_count,
            login_rate_limit_window_minutes: s.login_rate_limit_window_minutes,
            reauth_window_minutes: window,
            account_deletion_grace_days: grace,
            audit_log_retention_days: retention,
            require_email_verification,
            password_reset_enabled: reset,
            unverified_account_days: unverified_days,
        }
    }
}

impl ProviderV1 {
    fn new(p: &OauthProvider) -> Self {
        ProviderV1 {
            id: p.id,
            name: p.name.clone(),
            slug: p.slug.clone(),
            kind: match p.kind {
                ProviderKind::Google => KindV1::Google,
                ProviderKind::Oidc => KindV1::Oidc,
            },
            client_id: p.client_id.clone(),
            client_secret_sealed: p.client_secret_sealed.clone(),
            issuer: p.issuer.clone(),
            auth_url: p.auth_url.clone(),
            token_url: p.token_url.clone(),
            userinfo_url: p.userinfo_url.clone(),
            scopes: p.scopes.clone(),
            auto_register: p.auto_register,
            allowed_domains: p.allowed_domains.clone(),
            enabled: p.enabled,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    /// Migration to V2: no provider is trusted beyond what its answers say, and Posta's own
    /// second factor applies after every provider.
    fn into_value(self) -> OauthProvider {
        OauthProvider {
            id: self.id,
            name: self.name,
            slug: self.slug,
            kind: match self.kind {
                KindV1::Google => ProviderKind::Google,
                KindV1::Oidc => ProviderKind::Oidc,
            },
            client_id: self.client_id,
            client_secret_sealed: self.client_secret_sealed,
            issuer: self.issuer,
            auth_url: self.auth_url,
            token_url: self.token_url,
            userinfo_url: self.userinfo_url,
            scopes: self.scopes,
            auto_register: self.auto_register,
            allowed_domains: self.allowed_domains,
            enabled: self.enabled,
            trust_email: false,
            skip_local_2fa: false,
            hidden: false,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl Record for ProviderRecord {
    type Value = OauthProvider;
    const NAME: &'static str = "identity provider";
    fn new(p: &OauthProvider) -> Self {
        Self::V3(ProviderV3 {
            v2: ProviderV2 {
                v1: ProviderV1::new(p),
                trust_email: p.trust_email,
                skip_local_2fa: p.skip_local_2fa,
            },
            hidden: p.hidden,
        })
    }
    fn into_value(self) -> OauthProvider {
        // Migration: earlier providers are listed (not hidden).
        let v2 = |p: ProviderV2| OauthProvider {
            trust_email: p.trust_email,
            skip_local_2fa: p.skip_local_2fa,
            ..p.v1.into_value()
        };
        match self {
            Self::V1(p) => p.into_value(),
            Self::V2(p) => v2(p),
            Self::V3(p) => OauthProvider {
                hidden: p.hidden,
                ..v2(p.v2)
            },
        }
    }
}

impl Record for LinkRecord {
    type Value = OauthLink;
    const NAME: &'static str = "provider link";
    fn new(l: &OauthLink) -> Self {
        Self::V1(LinkV1 {
            provider_id: l.provider_id,
            subject: l.subject.clone(),
            user_id: l.user_id,
            email: l.email.clone(),
            created_at: l.created_at,
            last_used_at: l.last_used_at,
        })
    }
    fn into_value(self) -> OauthLink {
        let Self::V1(l) = self;
        OauthLink {
            provider_id: l.provider_id,
            subject: l.subject,
            user_id: l.user_id,
            email: l.email,
            created_at: l.created_at,
            last_used_at: l.last_used_at,
        }
    }
}

impl Record for StateRecord {
    type Value = OauthState;
    const NAME: &'static str = "authorization state";
    fn new(s: &OauthState) -> Self {
        Self::V2(StateV2 {
            v1: StateV1 {
                provider_id: s.provider_id,
                pkce_verifier_sealed: s.pkce_verifier_sealed.clone(),
                nonce: s.nonce.clone(),
                binding: s.binding,
                created_at: s.created_at,
                expires_at: s.expires_at,
            },
            link_for: s.link_for,
        })
    }
    fn into_value(self) -> OauthState {
        let (s, link_for) = match self {
            // Migration: a pending sign-in (V1 knew no other kind).
            Self::V1(s) => (s, None),
            Self::V2(s) => (s.v1, s.link_for),
        };
        OauthState {
            provider_id: s.provider_id,
            pkce_verifier_sealed: s.pkce_verifier_sealed,
            nonce: s.nonce,
            binding: s.binding,
            created_at: s.created_at,
            expires_at: s.expires_at,
            link_for,
        }
    }
}
