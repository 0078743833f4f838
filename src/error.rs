//! The one crate-wide error type and its mapping to the API's status codes and error codes.
//!
//! It knows nothing of hyper bodies: `http::response` renders it. Internal variants carry the
//! cause for the log; the client only ever sees a generic message for them.

use serde::Serialize;

/// Every failure a use case can end in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request (bad JSON, bad query, unknown setting…).
    #[error("{0}")]
    BadRequest(String),
    /// A field failed validation; the message names the field.
    #[error("{field}: {reason}")]
    Validation {
        /// Name of the offending field, as the client sent it.
        field: &'static str,
        /// Human explanation of the rule.
        reason: String,
    },
    /// No or unusable credentials.
    #[error("authentication required")]
    Unauthorized,
    /// Wrong email or password: one message for both, on purpose.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The first step was right but the account needs its second factor; the token completes
    /// the sign-in with the code alone (`POST /auth/login {pending_token, two_factor_code}`).
    #[error("two-factor code required")]
    TwoFactorRequired {
        /// Single use, 5 minutes, from the same address.
        pending_token: String,
        /// What the account can complete it with (`totp`, `recovery_code`, `passkey`).
        methods: Vec<&'static str>,
    },
    /// A sensitive change needs a recent proof of identity; the message says what to do and
    /// a dashboard shows it as it is.
    #[error("{0}")]
    ReauthRequired(String),
    /// The TOTP or recovery code was wrong or already used.
    #[error("invalid two-factor code")]
    InvalidTwoFactorCode,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The platform requires 2FA and this session has not enrolled yet.
    #[error("two-factor enrolment required before using this endpoint")]
    TwoFactorSetupRequired,
    /// The named thing does not exist (or is not the caller's).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Known path, wrong method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Uniqueness violated.
    #[error("{0}")]
    Conflict(String),
    /// Body larger than the configured cap.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body did not arrive within the deadline (a trickling client).
    #[error("request body not received in time")]
    RequestTimeout,
    /// Body is not JSON.
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    /// Throttled; retry after that many seconds.
    #[error("too many attempts, retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds until the window frees a slot.
        retry_after: u64,
    },
    /// A dependency (the store) cannot serve now.
    #[error("service unavailable")]
    Unavailable,
    /// The store failed; the text goes to the log only.
    #[error("store: {0}")]
    Store(String),
    /// Anything else unexpected; the text goes to the log only.
    #[error("internal: {0}")]
    Internal(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The stable, upper-case codes of the API envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    TwoFactorRequired,
    Forbidden,
    TwoFactorSetupRequired,
    ReauthRequired,
    NotFound,
    MethodNotAllowed,
    Conflict,
    RequestTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    InternalServerError,
    ServiceUnavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::TwoFactorRequired => "TWO_FACTOR_REQUIRED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::TwoFactorSetupRequired => "TWO_FACTOR_SETUP_REQUIRED",
            ErrorCode::ReauthRequired => "REAUTH_REQUIRED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }
}

impl Error {
    /// HTTP status for this error. Exhaustive on purpose: a new variant must pick one.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) | Error::Validation { .. } => 400,
            Error::Unauthorized
            | Error::InvalidCredentials
            | Error::TwoFactorRequired { .. }
            | Error::InvalidTwoFactorCode => 401,
            Error::Forbidden(_) | Error::TwoFactorSetupRequired | Error::ReauthRequired(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed => 405,
            Error::Conflict(_) => 409,
            Error::RequestTimeout => 408,
            Error::PayloadTooLarge => 413,
            Error::UnsupportedMediaType => 415,
            Error::RateLimited { .. } => 429,
            Error::Store(_) | Error::Internal(_) => 500,
            Error::Unavailable => 503,
        }
    }

    /// Envelope code for this error.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRequest(_) | Error::Validation { .. } => ErrorCode::BadRequest,
            Error::Unauthorized | Error::InvalidCredentials | Error::InvalidTwoFactorCode => {
                ErrorCode::Unauthorized
            }
            Error::TwoFactorRequired { .. } => ErrorCode::TwoFactorRequired,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::TwoFactorSetupRequired => ErrorCode::TwoFactorSetupRequired,
            Error::ReauthRequired(_) => ErrorCode::ReauthRequired,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::RequestTimeout => ErrorCode::RequestTimeout,
            Error::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Error::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Error::RateLimited { .. } => ErrorCode::TooManyRequests,
            Error::Store(_) | Error::Internal(_) => ErrorCode::InternalServerError,
            Error::Unavailable => ErrorCode::ServiceUnavailable,
        }
    }

    /// The message a client may see. Internal causes are never exposed.
    #[must_use]
    pub fn public_message(&self) -> String {
        match self {
            Error::Store(_) | Error::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// The field a validation error names, for the envelope.
    #[must_use]
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::Validation { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Shorthand for a validation error.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Validation {
            field,
            reason: reason.into(),
        }
    }

    /// True for failures of the server rather than of the request.
    #[must_use]
    pub fn is_internal(&self) -> bool {
        self.status() >= 500
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        match e {
            // The store is reopening the database after a failed write (see `store`).
            redb::Error::PreviousIo | redb::Error::DatabaseClosed => Error::Unavailable,
            e => Error::Store(e.to_string()),
        }
    }
}

impl From<redb::StorageError> for Error {
    fn from(e: redb::StorageError) -> Self {
        match e {
            redb::StorageError::PreviousIo | redb::StorageError::DatabaseClosed => {
                Error::Unavailable
            }
            e => Error::Store(e.to_string()),
        }
    }
}

macro_rules! store_error_from {
    ($($t:ident),*) => {$(
        impl From<redb::$t> for Error {
            fn from(e: redb::$t) -> Self {
                match e {
                    redb::$t::Storage(e) => e.into(),
                    e => Error::Store(e.to_string()),
                }
            }
        }
    )*};
}
store_error_from!(TransactionError, TableError, CommitError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        assert_eq!(Error::InvalidCredentials.status(), 401);
        assert_eq!(Error::InvalidCredentials.code().as_str(), "UNAUTHORIZED");
        assert_eq!(
            Error::TwoFactorRequired {
                pending_token: String::new(),
                methods: vec!["totp"],
            }
            .code()
            .as_str(),
            "TWO_FACTOR_REQUIRED"
        );
        assert_eq!(Error::RateLimited { retry_after: 3 }.status(), 429);
        assert_eq!(
            Error::Store("disk on fire".into()).public_message(),
            "internal error"
        );
        assert_eq!(Error::invalid("email", "bad").field(), Some("email"));
        assert_eq!(
            serde_json::to_string(&ErrorCode::TooManyRequests).unwrap(),
            "\"TOO_MANY_REQUESTS\""
        );
    }
}
