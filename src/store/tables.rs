//! Every redb table of the store, with its key/value layout. Names carry a version: a layout
//! change means a new table and a migration, never a silent reinterpretation.

use redb::TableDefinition;

/// `&str → bytes`: `schema_version` (u32 LE), `settings` (SettingsRecord).
pub const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta_v1");
/// `user id (u128) → UserRecord`.
pub const USERS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("users_v1");
/// `canonical email → user id`: the uniqueness index.
pub const USERS_BY_EMAIL: TableDefinition<'_, &str, u128> =
    TableDefinition::new("users_by_email_v1");
/// `session id (jti) → SessionRecord`.
pub const SESSIONS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("sessions_v1");
/// `(user id, session id) → ()`: a user's sessions, for listing and revocation.
pub const USER_SESSIONS: TableDefinition<'_, (u128, u128), ()> =
    TableDefinition::new("user_sessions_v1");
/// `SHA-256(key) → ApiKeyRecord`: one point read authenticates a key.
pub const API_KEYS: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("api_keys_v1");
/// `key id → SHA-256(key)`.
pub const API_KEY_IDS: TableDefinition<'_, u128, [u8; 32]> = TableDefinition::new("api_key_ids_v1");
/// `(user id, key id) → ()`: a user's keys.
pub const USER_API_KEYS: TableDefinition<'_, (u128, u128), ()> =
    TableDefinition::new("user_api_keys_v1");
/// `sequence → EventRecord`: the bounded audit log, oldest first.
pub const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events_v1");
/// `provider id → OauthProviderRecord`.
pub const OAUTH_PROVIDERS: TableDefinition<'_, u128, &[u8]> =
    TableDefinition::new("oauth_providers_v1");
/// `slug → provider id`: the slug uniqueness index.
pub const OAUTH_PROVIDER_SLUGS: TableDefinition<'_, &str, u128> =
    TableDefinition::new("oauth_provider_slugs_v1");
/// `(provider id, subject) → OauthLinkRecord`: one point read at sign-in.
pub const OAUTH_LINKS: TableDefinition<'_, (u128, &str), &[u8]> =
    TableDefinition::new("oauth_links_v1");
/// `(user id, provider id) → subject`: a user's links.
pub const USER_OAUTH_LINKS: TableDefinition<'_, (u128, u128), &str> =
    TableDefinition::new("user_oauth_links_v1");
/// `state → OauthStateRecord`: pending authorizations (single use, 10 minutes).
pub const OAUTH_STATES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("oauth_states_v1");
/// `user id → ()` for every user whose role is admin (schema v2): first-admin and last-admin
/// checks without scanning all users.
pub const ADMINS: TableDefinition<'_, u128, ()> = TableDefinition::new("admins_v1");
/// `(user id, SHA-256(device id)) → last sign-in (Unix seconds)`: browsers that signed in to
/// an account before, exempt from its brute-force ceiling (schema v2, added without a
/// migration: an absent table reads as empty).
pub const DEVICES: TableDefinition<'_, (u128, [u8; 32]), i64> = TableDefinition::new("devices_v1");
/// `account (canonical email as typed) → (window start, failures)`: accounts over their
/// brute-force ceiling, so that a restart does not reset them.
pub const LOCKOUTS: TableDefinition<'_, &str, (i64, u32)> = TableDefinition::new("lockouts_v1");

/// `SHA-256(pending_token) → (user id, first step's address, method, expires at)`: sign-ins
/// waiting for their second factor (5 minutes, single use).
pub const PENDING_SIGN_INS: TableDefinition<'_, [u8; 32], (u128, &str, &str, i64)> =
    TableDefinition::new("pending_sign_ins_v1");

/// `user id → PrefsRecord`: a user's own settings (Posta's `/users/me/settings`); added
/// without a migration: an absent table reads as empty.
pub const USER_PREFS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("user_prefs_v1");

/// `sequence → MailRecord`: the outbox, oldest first; a message leaves it when delivered or
/// given up.
pub const OUTBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("outbox_v1");
/// `SHA-256(token) → TokenRecord`: single-use tokens sent by mail.
pub const EMAIL_TOKENS: TableDefinition<'_, [u8; 32], &[u8]> =
    TableDefinition::new("email_tokens_v1");

/// `SHA-256(token) → InvitationRecord`: pending invitations (single use, 7 days).
pub const INVITATIONS: TableDefinition<'_, [u8; 32], &[u8]> =
    TableDefinition::new("invitations_v1");
/// `recipient address (lower case) → (hour start, messages)`: the per-recipient mail cap.
pub const MAIL_CAPS: TableDefinition<'_, &str, (i64, u32)> = TableDefinition::new("mail_caps_v1");

/// `credential id → PasskeyRecord`: one point read finds the passkey an assertion names (and
/// keeps credential ids unique across accounts).
pub const PASSKEYS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("passkeys_v1");
/// `(user id, passkey id) → credential id`: an account's passkeys.
pub const USER_PASSKEYS: TableDefinition<'_, (u128, u128), &[u8]> =
    TableDefinition::new("user_passkeys_v1");

/// Calls `$m!($($arg,)* TABLE, TABLE, …)` with every table above: the one list that backup,
/// restore and the completeness check derive from, so that a table added here is copied
/// without a second list to keep.
macro_rules! with_every_table {
    ($m:ident!($($arg:expr),*)) => {
        $m!($($arg,)* META, USERS, USERS_BY_EMAIL, SESSIONS, USER_SESSIONS, API_KEYS,
            API_KEY_IDS, USER_API_KEYS, EVENTS, OAUTH_PROVIDERS, OAUTH_PROVIDER_SLUGS,
            OAUTH_LINKS, USER_OAUTH_LINKS, OAUTH_STATES, ADMINS, DEVICES, LOCKOUTS,
            PENDING_SIGN_INS, USER_PREFS, OUTBOX, EMAIL_TOKENS, MAIL_CAPS, INVITATIONS, PASSKEYS,
            USER_PASSKEYS)
    };
}
pub(crate) use with_every_table;

macro_rules! names {
    ($($t:expr),*) => {
        [$(redb::TableHandle::name(&$t)),*]
    };
}

/// The names of every table this binary knows.
#[must_use]
pub fn names() -> Vec<&'static str> {
    with_every_table!(names!()).to_vec()
}
