//! The access log: one line per request, in the same layout as every other log line (text or
//! JSON), formatted by hand into a reused buffer and handed to the log writer thread.
//!
//! Why not `tracing::info!`: its generic formatter (field visitors, `Debug`, timestamp
//! `Display`, ANSI wrappers) cost about 15 % of a health check's CPU. Lines still go through
//! the same [`LogSink`], so they interleave in order with the other logs, and the
//! `POSTA_LOG` filter still decides whether they are written. When no sink is installed (an
//! interactive terminal, tests, library use) the line goes through `tracing` as before.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::log_sink::LogSink;

/// Where formatted lines go.
struct Sink {
    writer: LogSink,
    json: bool,
    /// The journal's priority prefix (`info`), or nothing.
    prefix: &'static [u8],
    /// Whether `POSTA_LOG` lets access lines through. The process's filter is set once at
    /// start and never reloaded, so it is asked once: asking `tracing` on every request
    /// (dispatcher look-up, directive match) cost ~100 instructions.
    enabled: OnceLock<bool>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Route access lines straight to `writer` (the process's log writer), as JSON or text.
pub fn install(writer: LogSink, json: bool) {
    let _ = SINK.set(Sink {
        prefix: writer.prefix(tracing::Level::INFO),
        writer,
        json,
        enabled: OnceLock::new(),
    });
}

/// What one request line says. The query string is never part of it (OAuth codes live there).
#[derive(Debug)]
pub struct Line<'a> {
    /// The `x-request-id` sent back.
    pub request_id: u64,
    /// HTTP method.
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Response status.
    pub status: u16,
    /// Time spent, in microseconds.
    pub micros: u64,
    /// Error code, for refused requests.
    pub code: Option<&'a str>,
}

/// Write the line, if `info` is enabled for this module.
pub fn record(l: &Line<'_>) {
    let Some(sink) = SINK.get() else {
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        let Line {
            request_id,
            method,
            path,
            status,
            micros,
            code,
        } = *l;
        match code {
            Some(code) => tracing::info!(request_id, method, path, status, micros, code, "request"),
            None => tracing::info!(request_id, method, path, status, micros, "request"),
        }
        return;
    };
    // Asked on the first request, long after the subscriber was installed.
    if !*sink
        .enabled
        .get_or_init(|| tracing::enabled!(tracing::Level::INFO))
    {
        return;
    }
    thread_local! {
        // Bytes, not a `String`: every piece is already text, and a `String` would have its
        // timestamp checked as UTF-8 again on each line.
        static BUF: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
    }
    // Log timestamps are wall-clock time, like every other log line (not the injected clock).
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now();
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        buf.extend_from_slice(sink.prefix);
        format(buf, l, now, sink.json);
        sink.writer.append(buf);
    });
}

fn format(buf: &mut Vec<u8>, l: &Line<'_>, at: SystemTime, json: bool) {
    let mut n = itoa::Buffer::new();
    if json {
        buf.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(buf, at);
        buf.extend_from_slice(b"\",\"level\":\"INFO\",\"request_id\":");
        buf.extend_from_slice(n.format(l.request_id).as_bytes());
        buf.extend_from_slice(b",\"method\":\"");
        json_str(buf, l.method);
        buf.extend_from_slice(b"\",\"path\":\"");
        json_str(buf, l.path);
        buf.extend_from_slice(b"\",\"status\":");
        buf.extend_from_slice(n.format(l.status).as_bytes());
        buf.extend_from_slice(b",\"micros\":");
        buf.extend_from_slice(n.format(l.micros).as_bytes());
        if let Some(code) = l.code {
            buf.extend_from_slice(b",\"code\":\"");
            json_str(buf, code);
            buf.push(b'"');
        }
        buf.extend_from_slice(b",\"message\":\"request\",\"target\":\"posta::http\"}\n");
    } else {
        timestamp(buf, at);
        buf.extend_from_slice(b"  INFO posta::http: request request_id=");
        buf.extend_from_slice(n.format(l.request_id).as_bytes());
        buf.extend_from_slice(b" method=");
        buf.extend_from_slice(l.method.as_bytes());
        buf.extend_from_slice(b" path=");
        buf.extend_from_slice(l.path.as_bytes());
        buf.extend_from_slice(b" status=");
        buf.extend_from_slice(n.format(l.status).as_bytes());
        buf.extend_from_slice(b" micros=");
        buf.extend_from_slice(n.format(l.micros).as_bytes());
        if let Some(code) = l.code {
            buf.extend_from_slice(b" code=");
            buf.extend_from_slice(code.as_bytes());
        }
        buf.push(b'\n');
    }
}

/// RFC 3339 UTC with microseconds, as the rest of the log writes it.
fn timestamp(buf: &mut Vec<u8>, at: SystemTime) {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    buf.extend_from_slice(crate::clock::Rfc3339Buf::default().bytes(secs, Some(d.subsec_micros())));
}

/// A JSON string body: quotes, backslashes and control characters escaped (every other byte,
/// UTF-8 sequences included, is copied as it is).
fn json_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in s.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            0..=0x1f => buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            _ => buf.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(code: Option<&'static str>) -> Line<'static> {
        Line {
            request_id: 7,
            method: "GET",
            path: "/api/v1/\"x\\",
            status: 401,
            micros: 12,
            code,
        }
    }

    #[test]
    fn json_line_is_valid_json() {
        let mut b = Vec::new();
        let mut l = line(Some("UNAUTHORIZED"));
        l.path = "/api/v1/\"x\\\u{1}\u{1f}é";
        format(&mut b, &l, UNIX_EPOCH, true);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["path"], "/api/v1/\"x\\\u{1}\u{1f}é");
        assert_eq!(v["status"], 401);
        assert_eq!(v["micros"], 12);
        assert_eq!(v["request_id"], 7);
        assert_eq!(v["code"], "UNAUTHORIZED");
        assert_eq!(v["message"], "request");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000000Z");
        assert!(b.ends_with(b"}\n"));
    }

    #[test]
    fn text_line_matches_the_other_log_lines() {
        let mut b = Vec::new();
        format(&mut b, &line(None), UNIX_EPOCH, false);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "1970-01-01T00:00:00.000000Z  INFO posta::http: request request_id=7 method=GET \
             path=/api/v1/\"x\\ status=401 micros=12\n"
        );
    }
}
