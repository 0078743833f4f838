//! The domain's data types: users, sessions, API keys, audit events, settings.
//!
//! Plain data shared by `domain` (which applies rules) and `store` (which persists them through
//! its own versioned record types, `store::records`). No I/O and no serialisation here: a field
//! added to one of these types changes nothing on disk until a new record version says so.

use uuid::Uuid;

/// Access level of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Own account and own keys.
    User,
    /// Also everything under `/api/v1/admin`.
    Admin,
}

impl Role {
    /// Wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
    /// Parse the wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An enrolled TOTP factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    /// The shared secret, sealed with the encryption key.
    pub secret_sealed: Vec<u8>,
    /// Last accepted 30-second step: codes at or before it are replays.
    pub last_step: u64,
    /// Keyed hashes of the unused recovery codes.
    pub recovery_hashes: Vec<[u8; 32]>,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable identifier.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Canonical email (trimmed, lower-case, IDNA domain).
    pub email: String,
    /// argon2id PHC string; `None` for SSO-only accounts.
    pub password_hash: Option<String>,
    /// Access level.
    pub role: Role,
    /// Disabled accounts cannot sign in and their credentials stop working.
    pub active: bool,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Last successful sign-in.
    pub last_login_at: Option<i64>,
    /// Enabled second factor.
    pub totp: Option<Totp>,
    /// Secret awaiting its first code (sealed).
    pub pending_totp: Option<Vec<u8>>,
    /// When the email was shown to be the owner's (`None`: not shown). Only an account whose
    /// email is verified, and which was not self-registered, is ever linked to an identity
    /// provider's account by email alone.
    pub email_verified_at: Option<i64>,
    /// How the account came to be.
    pub origin: Origin,
    /// When a scheduled deletion happens (the account is deactivated until then; an admin
    /// can cancel it).
    pub scheduled_deletion_at: Option<i64>,
    /// Whether a sign-in from a new browser is mailed to the owner.
    pub login_alerts: bool,
}

/// How an account came to be: it decides whether an identity provider may be linked to it by
/// email alone (never for a self-registered one, whoever verified it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written by a release that did not record it (treated as self-registered).
    Unknown,
    /// `POST /auth/register`.
    SelfRegistered,
    /// Created by an admin (API or host command), or the first admin.
    Admin,
    /// Created by accepting an invitation.
    Invitation,
    /// Created by a sign-in through an identity provider.
    Sso,
}

impl Origin {
    /// Whether an identity provider that verified the same email may link to the account
    /// without its owner asking.
    #[must_use]
    pub fn may_link_by_email(self) -> bool {
        matches!(self, Origin::Admin | Origin::Invitation | Origin::Sso)
    }
}

impl User {
    /// A new active account with no second factor and an unverified email.
    #[must_use]
    pub fn new(
        name: String,
        email: String,
        password_hash: Option<String>,
        role: Role,
        now: i64,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            name,
            email,
            password_hash,
            role,
            active: true,
            created_at: now,
            updated_at: now,
            last_login_at: None,
            totp: None,
            pending_totp: None,
            email_verified_at: None,
            origin: Origin::Unknown,
            scheduled_deletion_at: None,
            login_alerts: true,
        }
    }

    /// Whether the email is verified.
    #[must_use]
    pub fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

/// A signed-in browser or client: the `jti` of a JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The JWT's `jti`.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Client address at sign-in.
    pub ip: String,
    /// Client user agent at sign-in (truncated).
    pub user_agent: String,
    /// Sign-in time.
    pub created_at: i64,
    /// Equal to the JWT's `exp`.
    pub expires_at: i64,
    /// The last proof of identity in this session: its sign-in (with its second factor, or
    /// through SSO), or a later password or code (`/users/me/reauth`, or given with a
    /// sensitive change). Sensitive changes need it within `reauth_window_minutes`.
    pub proved_at: i64,
}

/// A programmatic credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Identifier used by the management API.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Label chosen by the owner.
    pub name: String,
    /// First characters of the key, for display.
    pub prefix: String,
    /// SHA-256 of the whole key.
    pub hash: [u8; 32],
    /// Granted scopes (`send`, `read`, `*`).
    pub scopes: Vec<String>,
    /// Allowed client networks; empty means any.
    pub allowed_ips: Vec<String>,
    /// Creation time.
    pub created_at: i64,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// Last use (flushed periodically).
    pub last_used_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Monotonic sequence number.
    pub id: u64,
    /// When it happened.
    pub at: i64,
    /// Kind, such as `login.success`.
    pub kind: String,
    /// Who did it.
    pub actor: Option<Uuid>,
    /// Whom it concerns.
    pub subject: Option<Uuid>,
    /// Email involved, when useful to the reader.
    pub email: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Free text detail (never a secret).
    pub detail: String,
}

/// Platform settings editable by admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Password self-registration allowed (the config can force it off).
    pub registration_enabled: bool,
    /// Email domains allowed to self-register; empty means all.
    pub allowed_signup_domains: Vec<String>,
    /// Every account must enrol TOTP.
    pub two_factor_required: bool,
    /// Failed logins allowed per window (per account and address).
    pub login_rate_limit_count: u32,
    /// Window length.
    pub login_rate_limit_window_minutes: u32,
    /// How recent a session's last proof of identity must be for a sensitive change.
    pub reauth_window_minutes: u32,
    /// Days between a deletion request and the deletion.
    pub account_deletion_grace_days: u32,
    /// Audit events older than this many days are pruned (0 keeps them, up to the count
    /// bound).
    pub audit_log_retention_days: u32,
    /// An unverified account reaches only its profile until its email is verified. It can be
    /// turned on only where mail can be sent (a verification link must reach the user).
    pub require_email_verification: bool,
    /// Password reset by mail offered (it also needs a relay).
    pub password_reset_enabled: bool,
    /// Self-registered accounts still unverified after this many days are deleted (0 keeps
    /// them; only while a relay can send the link).
    pub unverified_account_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            registration_enabled: true,
            allowed_signup_domains: Vec::new(),
            two_factor_required: false,
            login_rate_limit_count: 10,
            login_rate_limit_window_minutes: 15,
            reauth_window_minutes: 10,
            account_deletion_grace_days: 7,
            audit_log_retention_days: 90,
            require_email_verification: false,
            password_reset_enabled: true,
            unverified_account_days: 7,
        }
    }
}

/// Kind of identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Google (endpoints filled in).
    Google,
    /// Any OpenID Connect provider (discovery) or plain OAuth 2.0 (explicit endpoints).
    Oidc,
}

impl ProviderKind {
    /// Wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Google => "google",
            ProviderKind::Oidc => "oidc",
        }
    }
}

/// An identity provider configured by an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthProvider {
    /// Identifier.
    pub id: Uuid,
    /// Display name ("Sign in with …").
    pub name: String,
    /// URL-safe unique name used in paths.
    pub slug: String,
    /// Google or generic.
    pub kind: ProviderKind,
    /// OAuth client id.
    pub client_id: String,
    /// Client secret sealed with the instance key (none for public clients).
    pub client_secret_sealed: Option<Vec<u8>>,
    /// OIDC issuer (discovery).
    pub issuer: Option<String>,
    /// Explicit authorization endpoint (overrides discovery).
    pub auth_url: Option<String>,
    /// Explicit token endpoint.
    pub token_url: Option<String>,
    /// Explicit userinfo endpoint.
    pub userinfo_url: Option<String>,
    /// Requested scopes, space separated.
    pub scopes: String,
    /// Create accounts for new verified emails.
    pub auto_register: bool,
    /// Email domains allowed to sign in through this provider; empty means any.
    pub allowed_domains: Vec<String>,
    /// Shown and usable.
    pub enabled: bool,
    /// The provider verifies every email it gives, whether or not its answer says so (off:
    /// an email not said to be verified is not).
    pub trust_email: bool,
    /// Accounts with Posta 2FA sign in through this provider without Posta's second step (the
    /// provider owns the second factor). Off: they get Posta's code step after the provider.
    pub skip_local_2fa: bool,
    /// Left off the login page's list (its authorize URL still works).
    pub hidden: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A user's own preferences (Posta's `/users/me/settings` object), as typed values by key.
/// The keys this appliance acts on and the others a dashboard stores are all validated
/// against `domain::prefs::KEYS`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPrefs {
    /// Values set by the user; a key not here has its default.
    pub values: Vec<(String, PrefValue)>,
    /// First saved.
    pub created_at: i64,
    /// Last saved.
    pub updated_at: i64,
}

/// One preference's value.
#[derive(Debug, Clone, PartialEq)]
pub enum PrefValue {
    /// No value (a nullable field).
    Null,
    /// A switch.
    Bool(bool),
    /// A number.
    Int(i64),
    /// Text.
    Text(String),
}

/// A user's link to an identity-provider account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthLink {
    /// Provider.
    pub provider_id: Uuid,
    /// The provider's subject identifier.
    pub subject: String,
    /// Linked user.
    pub user_id: Uuid,
    /// Email the provider asserted when linked.
    pub email: String,
    /// Link time.
    pub created_at: i64,
    /// Last sign-in through it.
    pub last_used_at: Option<i64>,
}

/// A pending authorization: what the callback needs to finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthState {
    /// Provider the flow was started for.
    pub provider_id: Uuid,
    /// PKCE verifier (sealed).
    pub pkce_verifier_sealed: Vec<u8>,
    /// Expected ID-token nonce.
    pub nonce: String,
    /// SHA-256 of the browser-binding cookie.
    pub binding: [u8; 32],
    /// Creation time.
    pub created_at: i64,
    /// Expiry (10 minutes).
    pub expires_at: i64,
    /// For a link started by a signed-in user: that user and the session it was started from.
    /// The callback then links the identity to this user instead of signing anyone in (it is
    /// a cross-site navigation: no `SameSite=Strict` session cookie comes with it).
    pub link_for: Option<(Uuid, Uuid)>,
}

/// A message in the outbox, committed with the change that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Position in the outbox (assigned when queued).
    pub id: u64,
    /// What it is (`verify_email`, `password_reset`, …), for logs and metrics.
    pub kind: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// When it was queued.
    pub created_at: i64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_attempt_at: i64,
}

/// What a single-use emailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Prove the address of an account.
    VerifyEmail,
    /// Set a new password.
    PasswordReset,
    /// Move the account to a new address (`EmailToken::email` is the new one).
    EmailChange,
}

/// A single-use token sent by mail (stored under the SHA-256 of the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    /// What it is for.
    pub kind: TokenKind,
    /// The account.
    pub user_id: Uuid,
    /// The address it was sent to (the account's at the time).
    pub email: String,
    /// Issued.
    pub created_at: i64,
    /// Not valid from then on.
    pub expires_at: i64,
}

/// An invitation to create an account (closed registration included), sent by mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Identifier for the admin API.
    pub id: Uuid,
    /// The address invited; the account gets it, verified.
    pub email: String,
    /// The role the account gets.
    pub role: Role,
    /// A name to suggest on the sign-up page.
    pub name: Option<String>,
    /// The admin who invited (none: a host command).
    pub invited_by: Option<Uuid>,
    /// Issued.
    pub created_at: i64,
    /// Not valid from then on.
    pub expires_at: i64,
}

/// A passkey (WebAuthn credential) of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// Identifier for the API.
    pub id: Uuid,
    /// The account.
    pub user_id: Uuid,
    /// The credential id the authenticator chose (unique across accounts).
    pub credential_id: Vec<u8>,
    /// The account's user handle (random, the same for all its passkeys).
    pub user_handle: Vec<u8>,
    /// The name the user gave it.
    pub name: String,
    /// Public key and static extension outputs (the relying party's encoding).
    pub public_key: Vec<u8>,
    /// Flags and signature counter (the relying party's encoding).
    pub state: [u8; 7],
    /// Transports the authenticator named.
    pub transports: u8,
    /// Whether it is backed up (synced between devices).
    pub backed_up: bool,
    /// Registered.
    pub created_at: i64,
    /// Last sign-in with it.
    pub last_used_at: Option<i64>,
}
