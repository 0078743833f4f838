//! Answers that depend only on a verified credential (`GET /users/me` for a session, the
//! forward-auth answer of `/auth/verify`), rendered on the first request with it and kept
//! with its verification in the credential cache, so the next requests send the same bytes
//! without serialising JSON or building header maps again. A write that could change them
//! (a profile edit, a role change, a new SSO link) invalidates the verification, and with it
//! these renderings.

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;
use http::HeaderMap;
use rustc_hash::FxBuildHasher;

use crate::auth::credential_cache::VerificationId;
use crate::domain::Caller;

/// Renderings a thread keeps before it starts over (as the credential cache does).
const CAPACITY: usize = 4 * 1024;

/// The renderings of one verification.
#[derive(Default)]
struct Rendered {
    profile: Option<Option<Bytes>>,
    forward: Option<Option<Forward>>,
}

thread_local! {
    /// This thread's renderings, by the verification they were made from. Per thread like
    /// the credential cache, whose hits they follow: a hit writes only its own core's memory.
    static RENDERED: RefCell<HashMap<VerificationId, Rendered, FxBuildHasher>> =
        RefCell::new(HashMap::default());
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
    kept(c, |r| &mut r.profile, render)
}

/// The caller's forward-auth answer, rendered by `render` the first time.
pub fn forward(c: &Caller, render: impl FnOnce() -> Option<Forward>) -> Option<Forward> {
    kept(c, |r| &mut r.forward, render)
}

/// The rendering in `slot` of the caller's verification, made by `render` if it is the first
/// on this thread.
fn kept<T: Clone>(
    c: &Caller,
    slot: impl Fn(&mut Rendered) -> &mut Option<Option<T>>,
    render: impl FnOnce() -> Option<T>,
) -> Option<T> {
    let found =
        RENDERED.with_borrow_mut(|m| m.get_mut(&c.verification).and_then(|r| slot(r).clone()));
    if let Some(v) = found {
        return v;
    }
    // Rendered outside the borrow: `render` may itself ask for a rendering.
    let v = render();
    RENDERED.with_borrow_mut(|m| {
        if m.len() >= CAPACITY && !m.contains_key(&c.verification) {
            m.clear();
        }
        *slot(m.entry(c.verification).or_default()) = Some(v.clone());
    });
    v
}
