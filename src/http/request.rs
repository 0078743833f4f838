//! Reading requests: capped JSON bodies, queries, bearer credentials, the client address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, header, request::Parts};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::domain::ClientInfo;
use crate::error::{Error, Result};

/// A request split into its head and an unread body.
pub struct Req {
    /// Method, URI, headers.
    pub parts: Parts,
    body: Option<Incoming>,
    max_body: usize,
    /// How long the body may take to arrive once it is read.
    body_deadline: Duration,
    /// The resolved client.
    pub client: ClientInfo,
    /// The client reached this server over HTTPS: TLS here, `POSTA_WEB_URL` is `https://`,
    /// or a trusted proxy said `X-Forwarded-Proto: https`. Names the session cookie and the
    /// server's own origin.
    pub https: bool,
}

impl Req {
    /// Wrap a request whose body may hold `max_body` bytes and must arrive within
    /// `body_deadline`.
    pub fn new(
        parts: Parts,
        body: Incoming,
        max_body: usize,
        body_deadline: Duration,
        client: ClientInfo,
        https: bool,
    ) -> Self {
        Self {
            parts,
            body: Some(body),
            max_body,
            body_deadline,
            client,
            https,
        }
    }

    async fn bytes(&mut self) -> Result<Bytes> {
        if let Some(len) = self
            .parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            && len > self.max_body
        {
            return Err(Error::PayloadTooLarge);
        }
        let Some(body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        // A deadline for the whole body: the connection watchdog never closes a connection
        // with a request in flight, so a client trickling its body a byte at a time would
        // otherwise hold the connection (and one of `max_connections`) for ever.
        let read = Limited::new(body, self.max_body).collect();
        match tokio::time::timeout(self.body_deadline, read).await {
            Err(_) => Err(Error::RequestTimeout),
            Ok(Ok(c)) => Ok(c.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Error::PayloadTooLarge),
            Ok(Err(_)) => Err(Error::BadRequest("could not read request body".into())),
        }
    }

    /// Decode a JSON body (content type checked, size capped). Unknown fields are refused by
    /// the DTOs' `deny_unknown_fields`.
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T> {
        let ct = self
            .parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(Error::UnsupportedMediaType);
        }
        let b = self.bytes().await?;
        serde_json::from_slice(&b).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
    }

    /// A JSON body that may be absent (no body, or an empty one): `T::default()` then.
    pub async fn json_or_default<T: DeserializeOwned + Default>(&mut self) -> Result<T> {
        let has_body = self
            .parts
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
            || self.parts.headers.contains_key(header::TRANSFER_ENCODING);
        if has_body {
            self.json().await
        } else {
            Ok(T::default())
        }
    }

    /// A query parameter (form-decoded: `%xx` and `+`).
    #[must_use]
    pub fn query(&self, name: &str) -> Option<String> {
        let q = self.parts.uri.query()?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// `?page=&size=` with the API's rules: pages count from 0 (Posta's dashboards ask for
    /// `page=0` first), size 1..=100 (default 20).
    pub fn paging(&self) -> Result<(usize, usize)> {
        let num = |n: &str, d: usize| -> Result<usize> {
            match self.query(n) {
                None => Ok(d),
                Some(v) if v.is_empty() => Ok(d),
                Some(v) => v
                    .parse::<usize>()
                    .map_err(|_| Error::BadRequest(format!("query {n} must be a number"))),
            }
        };
        let page = num("page", 0)?;
        let size = num("size", 20)?;
        if !(1..=100).contains(&size) {
            return Err(Error::BadRequest(
                "query size must be between 1 and 100".into(),
            ));
        }
        Ok((page, size))
    }

    /// A cookie's value.
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<&str> {
        cookie(&self.parts.headers, name)
    }

    /// The bearer credential, if any (bytes: see [`bearer`]).
    #[must_use]
    pub fn bearer(&self) -> Option<&[u8]> {
        bearer(&self.parts.headers)
    }
}

/// Every value of cookie `name` in the `Cookie` headers (a browser sends one per matching
/// cookie, and a sibling host can add its own under the same name).
pub fn cookies<'h>(h: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The value of cookie `name` in the `Cookie` headers.
#[must_use]
pub fn cookie<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Authorization: Bearer <x>` (the scheme in any case), as bytes. It runs on every
/// authenticated request, so it does not scan the token: a cached credential is matched
/// byte for byte against one that was verified (hence well-formed), and only a token that
/// misses the cache is checked as text (`session::authenticate`). Scanning a 300-byte JWT
/// twice (ASCII, then UTF-8) cost about 600 instructions, 5 % of a cached `/users/me`.
#[must_use]
pub fn bearer(h: &HeaderMap) -> Option<&[u8]> {
    let v = h.get(header::AUTHORIZATION)?.as_bytes();
    let scheme = v.get(..7)?;
    // The usual spelling is one 7-byte comparison; folding case byte by byte cost ~50
    // instructions per request.
    if scheme != b"Bearer " && !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let t = v.get(7..)?.trim_ascii();
    (!t.is_empty()).then_some(t)
}

/// The client address: the TCP peer, unless the peer is a trusted proxy, in which case the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy (or, when every
/// hop is trusted, the left-most, as nginx's `real_ip_recursive` does).
///
/// SECURITY: the walk from the right stops at the first entry that is not an address (a proxy
/// may append `unknown`, or something this parser does not read). Skipping it would reach the
/// entries to its left, which the client wrote itself, and let it choose the address that
/// throttling and API-key allow-lists see. The answer is then the nearest trusted hop.
#[must_use]
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer_ip) {
        return peer_ip;
    }
    let mut nearest = peer_ip;
    // Several header lines form one list, in order (RFC 9110, section 5.3).
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        for hop in line.as_bytes().rsplit(|&b| b == b',') {
            let Some(ip) = hop_address(hop) else {
                return nearest;
            };
            if !is_trusted(&ip) {
                return ip;
            }
            nearest = ip;
        }
    }
    nearest
}

/// One `X-Forwarded-For` entry as an address: `192.0.2.1`, `2001:db8::1`, and the forms with
/// a port or brackets that some proxies append (`192.0.2.1:4711`, `[2001:db8::1]:4711`,
/// `[2001:db8::1]`).
fn hop_address(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    let ip = hop
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .or_else(|| {
            hop.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(canonical(ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// User agent, truncated to 256 characters.
#[must_use]
pub fn user_agent(h: &HeaderMap) -> String {
    h.get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 10.0.0.9".parse().unwrap());
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &[]),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        let t = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(peer, &h, &t),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        let outsider: SocketAddr = "8.8.8.8:1".parse().unwrap();
        assert_eq!(
            client_ip(outsider, &h, &t),
            "8.8.8.8".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_for_never_skips_what_it_cannot_read() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let t = vec!["10.0.0.0/8".parse().unwrap()];
        let of = |lines: &[&str]| {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append("x-forwarded-for", l.parse().unwrap());
            }
            client_ip(peer, &h, &t).to_string()
        };
        // The proxy appended something that is not an address: the client's own entry to
        // its left is not believed; the nearest trusted hop is the answer.
        assert_eq!(of(&["203.0.113.7, unknown"]), "10.0.0.1");
        assert_eq!(of(&["203.0.113.7, 10.0.0.5, bogus, 10.0.0.9"]), "10.0.0.9");
        assert_eq!(of(&["203.0.113.7,"]), "10.0.0.1");
        // Addresses with ports or brackets are read, not skipped.
        assert_eq!(of(&["203.0.113.7, 198.51.100.1:4711"]), "198.51.100.1");
        assert_eq!(of(&["203.0.113.7, [2001:db8::1]:4711"]), "2001:db8::1");
        assert_eq!(of(&["203.0.113.7, [2001:db8::1]"]), "2001:db8::1");
        assert_eq!(of(&["203.0.113.7, ::ffff:198.51.100.1"]), "198.51.100.1");
        // Several header lines are one list, the last line holding the nearest hops.
        assert_eq!(of(&["198.51.100.1", "203.0.113.7"]), "203.0.113.7");
        assert_eq!(of(&["198.51.100.1", "10.0.0.5"]), "198.51.100.1");
        // Every hop trusted: the furthest one is the client.
        assert_eq!(of(&["10.1.2.3, 10.0.0.5"]), "10.1.2.3");
        assert_eq!(of(&[]), "10.0.0.1");
    }

    #[test]
    fn bearer_scheme_and_token() {
        let of = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                http::HeaderValue::from_bytes(v).unwrap(),
            );
            bearer(&h).map(<[u8]>::to_vec)
        };
        assert_eq!(of(b"Bearer posta_abc").as_deref(), Some(&b"posta_abc"[..]));
        assert_eq!(of(b"bEaReR   tok ").as_deref(), Some(&b"tok"[..]));
        assert_eq!(of(b"Bearer "), None);
        assert_eq!(of(b"Bearer"), None);
        assert_eq!(of(b"Basic dXNlcjpwdw=="), None);
        assert_eq!(of(b"Bearertok"), None);
        // Passed on as presented; `session::authenticate` refuses what is not ASCII.
        assert_eq!(of(b"Bearer t\xc3\xa9").as_deref(), Some(&b"t\xc3\xa9"[..]));
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
