//! The JSON envelope: success, paged and error bodies, plus the headers every response carries.

use bytes::Bytes;
use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use serde_json::json;

use crate::domain::Page;
use crate::error::Error;

/// Response type used everywhere.
pub type Resp = Response<Full<Bytes>>;

/// Room for the prepared headers plus the forward-auth, CORS and `Retry-After` ones, so the
/// hash table is allocated once instead of grown.
const HEADER_ROOM: usize = 16;

/// The request id every response carries (named once: a `&str` name is parsed on every insert).
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The security headers every response carries (HSTS, which depends on the listener, aside).
///
/// Framing is refused by the policy's `frame-ancestors 'none'` (every policy Posta sends has
/// it), not by `X-Frame-Options`: CSP Level 2 and 3 tell browsers to ignore
/// `X-Frame-Options` when `frame-ancestors` is present, and every browser that still gets
/// updates implements it, so the legacy header would only be bytes to build, send and parse
/// (ASVS 4.0 14.4.7 asks for either).
pub fn insert_security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
}

/// The headers of a JSON answer, prepared once: a request-id slot first, which the way out
/// always fills (see [`request_id_slot`]), then the content type and the security headers.
/// Cloning it copies a few words per header, where inserting them one by one hashed and
/// probed each: about a sixth of the instructions of a cached `/users/me`.
pub fn json_headers() -> HeaderMap {
    static PREPARED: LazyLock<HeaderMap> = LazyLock::new(|| {
        let mut h = HeaderMap::with_capacity(HEADER_ROOM);
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("0"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        insert_security_headers(&mut h);
        h
    });
    PREPARED.clone()
}

/// The request-id slot of headers prepared by [`json_headers`] (whose first entry it is, since
/// a map keeps its entries in insertion order), or `None` for headers built otherwise. Finding
/// it there costs a name comparison; inserting the id hashed the name and probed the table
/// (~250 instructions, 2 % of a cached `/auth/verify`). Finding it also tells that the
/// security headers are present.
pub fn request_id_slot(h: &mut HeaderMap) -> Option<&mut HeaderValue> {
    match h.iter_mut().next() {
        Some((name, value)) if *name == X_REQUEST_ID => Some(value),
        _ => None,
    }
}

/// A JSON response with an already encoded body.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    json_response_with(status, body, json_headers())
}

/// A JSON response whose headers were prepared from [`json_headers`].
pub fn json_response_with(status: StatusCode, body: impl Into<Bytes>, headers: HeaderMap) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// `{"success": true, "data": …}` with `status`.
pub fn ok<T: Serialize>(status: StatusCode, data: &T) -> Resp {
    match envelope(data) {
        Ok(body) => json_response(status, body),
        Err(e) => error(&e),
    }
}

/// The success envelope's bytes, for a body kept and sent again.
pub fn envelope<T: Serialize>(data: &T) -> Result<Vec<u8>, Error> {
    #[derive(Serialize)]
    struct Env<'a, T> {
        success: bool,
        data: &'a T,
    }
    // Most bodies fit; sizing up front saves the growth copies.
    let mut body = Vec::with_capacity(512);
    serde_json::to_writer(
        &mut body,
        &Env {
            success: true,
            data,
        },
    )
    .map_err(|e| Error::Internal(format!("serialize: {e}")))?;
    Ok(body)
}

/// A paged list with the `pageable` block.
pub fn paged<'a, T, V: Serialize>(page: &'a Page<T>, view: impl Fn(&'a T) -> V) -> Resp {
    let items: Vec<V> = page.items.iter().map(view).collect();
    let total_pages = page.total.div_ceil(page.size.max(1));
    let body = json!({
        "success": true,
        "data": items,
        "pageable": {
            "current_page": page.page,
            "size": page.size,
            "total_pages": total_pages,
            "total_elements": page.total,
            "empty": page.items.is_empty(),
        }
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// The error envelope, with `Retry-After` where the status calls for it.
pub fn error(e: &Error) -> Resp {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let data = match e {
        Error::TwoFactorRequired {
            pending_token,
            methods,
        } => json!({
            "requires_2fa": true,
            "methods": methods,
            "pending_token": pending_token,
        }),
        Error::TwoFactorSetupRequired => json!({"two_factor_setup_required": true}),
        _ => serde_json::Value::Null,
    };
    let mut err = json!({"code": e.code().as_str(), "message": e.public_message()});
    if let Some(f) = e.field() {
        err["field"] = json!(f);
    }
    let body = json!({"success": false, "data": data, "error": err});
    let mut r = json_response(status, body.to_string().into_bytes());
    let retry = match e {
        Error::RateLimited { retry_after } => Some(*retry_after),
        Error::Unavailable => Some(5),
        _ => None,
    };
    if let Some(s) = retry
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A body that is not the envelope (the OpenAPI document, Prometheus text, dashboard assets).
pub fn ok_raw(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A 302 to `location`.
pub fn redirect(location: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Append a `Set-Cookie` header.
pub fn set_cookie(r: &mut Resp, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A bare status with an empty JSON success body (preflight and the like).
pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Resp) -> serde_json::Value {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn envelopes() {
        let v = body(error(&Error::InvalidCredentials)).await;
        assert_eq!(
            v,
            json!({"success": false, "data": null, "error": {"code": "UNAUTHORIZED", "message": "invalid credentials"}})
        );
        let r = error(&Error::RateLimited { retry_after: 42 });
        assert_eq!(r.headers()["retry-after"], "42");
        let v = body(error(&Error::TwoFactorRequired {
            pending_token: "t".into(),
            methods: vec!["totp", "recovery_code"],
        }))
        .await;
        assert_eq!(v["data"]["requires_2fa"], true);
        assert_eq!(v["error"]["code"], "TWO_FACTOR_REQUIRED");
        let v = body(ok(StatusCode::OK, &json!({"a": 1}))).await;
        assert_eq!(v, json!({"success": true, "data": {"a": 1}}));
    }

    #[test]
    fn request_id_slot_is_found_only_in_prepared_headers() {
        let mut h = json_headers();
        h.insert("x-posta-auth", HeaderValue::from_static("jwt"));
        *request_id_slot(&mut h).unwrap() = HeaderValue::from_static("42");
        assert_eq!(h[&X_REQUEST_ID], "42");
        assert_eq!(h.len(), json_headers().len() + 1, "filled, not added");
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let mut other = HeaderMap::new();
        other.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        other.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("1"));
        assert!(
            request_id_slot(&mut other).is_none(),
            "not first: built otherwise"
        );
        assert!(request_id_slot(&mut HeaderMap::new()).is_none());
    }
}
