//! Answers that depend only on a verified credential (`GET /users/me` for a session, the
//! forward-auth answer of `/auth/verify`), rendered on the first request with it and kept
//! with its verification in the credential cache, so the next requests send the same bytes
//! without serialising JSON or building header maps again. A write that could change them
//! (a profile edit, a role change, a new SSO link) invalidates the verification, and with it
//! these renderings.

use std::sync::OnceLock;

use bytes::Bytes;
use http::HeaderMap;

use crate::domain::Caller;

/// The renderings of one verification.
#[derive(Default)]
struct Rendered {
    profile: OnceLock<Option<Bytes>>,
    forward: OnceLock<Option<Forward>>,
}

/// The forward-auth answer: the JSON body, and the headers of a JSON answer with the
/// `X-Posta-*` ones added.
#[derive(Clone)]
pub struct Forward {
    /// The envelope.
    pub body: Bytes,
    /// [`super::response::json_headers`] plus the forward-auth headers.
    pub headers: HeaderMap,
}

/// The caller's rendered profile body, rendered by `render` the first time.
pub fn profile(c: &Caller, render: impl FnOnce() -> Option<Bytes>) -> Option<Bytes> {
    kept(c, |r| &r.profile, render)
}

/// The caller's forward-auth answer, rendered by `render` the first time.
pub fn forward(c: &Caller, render: impl FnOnce() -> Option<Forward>) -> Option<Forward> {
    kept(c, |r| &r.forward, render)
}

/// The rendering in `slot` of the caller's verification, made by `render` if it is the first.
fn kept<T: Clone>(
    c: &Caller,
    slot: impl FnOnce(&Rendered) -> &OnceLock<Option<T>>,
    render: impl FnOnce() -> Option<T>,
) -> Option<T> {
    match c.derived.get_or_init(Rendered::default) {
        Some(r) => slot(r).get_or_init(render).clone(),
        None => render(),
    }
}
