//! Time as a parameter: the only place that reads the wall clock.
//!
//! Use cases receive `now` (Unix seconds) from a [`Clock`], so tests move time instead of sleeping.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::format_description::well_known::Rfc3339;

/// A source of the current time in Unix seconds.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// A clock tests set and advance.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock frozen at `start`.
    #[must_use]
    pub fn new(start: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(start)))
    }
    /// Move time forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    /// Set an absolute time.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 UTC rendering of a Unix time, as the API shows times.
#[must_use]
pub fn rfc3339(ts: i64) -> String {
    let mut s = String::with_capacity(20);
    push_rfc3339(&mut s, ts, None);
    s
}

/// Append `ts` as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` (microseconds when given). Years outside
/// 0000–9999 have no RFC 3339 form and append nothing.
pub fn push_rfc3339(out: &mut String, ts: i64, micros: Option<u32>) {
    let mut b = Rfc3339Buf::default();
    out.push_str(b.render(ts, micros));
}

/// Room for one rendering on the stack, for serialisers that must not allocate.
#[derive(Debug, Default)]
pub struct Rfc3339Buf {
    buf: [u8; 27],
    len: usize,
}

impl Rfc3339Buf {
    /// Render `ts` (whole seconds) into the buffer.
    pub fn format(&mut self, ts: i64) -> &str {
        self.render(ts, None)
    }

    fn render(&mut self, ts: i64, micros: Option<u32>) -> &str {
        // Only ASCII digits and separators are written.
        std::str::from_utf8(self.bytes(ts, micros)).unwrap_or_default()
    }

    /// The one renderer, as bytes for a byte buffer (the access log) to take without a UTF-8
    /// check. It runs on every health check and log line, where a general date formatter
    /// cost more than the rest of the line: so each thread keeps the last second it rendered,
    /// and only a new second is formatted.
    pub fn bytes(&mut self, ts: i64, micros: Option<u32>) -> &[u8] {
        thread_local! {
            // The last second this thread rendered: log lines and health checks ask for the
            // same second thousands of times.
            static LAST: Cell<Option<(i64, [u8; 27])>> = const { Cell::new(None) };
        }
        self.len = 0;
        match LAST.get() {
            Some((at, bytes)) if at == ts => self.buf = bytes,
            _ => {
                // The date by the `time` crate, once per second per thread (above): its cost
                // does not show; only the microseconds are filled in here.
                let mut date = [0u8; 20];
                let written = time::OffsetDateTime::from_unix_timestamp(ts)
                    .ok()
                    .and_then(|t| t.format_into(&mut &mut date[..], &Rfc3339).ok());
                if written != Some(20) {
                    // Years outside 0000-9999 have no RFC 3339 form.
                    return b"";
                }
                self.buf = *b"0000-00-00T00:00:00.000000Z";
                if let (Some(to), Some(from)) = (self.buf.get_mut(..19), date.get(..19)) {
                    to.copy_from_slice(from);
                }
                LAST.set(Some((ts, self.buf)));
            }
        }
        if let Some(us) = micros {
            digits(
                self.buf.get_mut(20..26).unwrap_or_default(),
                i64::from(us.min(999_999)),
            );
        }
        self.len = if micros.is_some() {
            27
        } else {
            if let Some(z) = self.buf.get_mut(19) {
                *z = b'Z';
            }
            20
        };
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Fill `out` with the last `out.len()` decimal digits of `v` (non-negative).
fn digits(out: &mut [u8], mut v: i64) {
    for c in out.iter_mut().rev() {
        *c = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // Against the `time` crate over leap years, centuries and the far ends of the range.
        let fmt = &time::format_description::well_known::Rfc3339;
        let mut ts = -62_167_219_200; // 0000-01-01
        while ts < 253_402_300_799 {
            let want = time::OffsetDateTime::from_unix_timestamp(ts)
                .unwrap()
                .format(fmt)
                .unwrap();
            assert_eq!(rfc3339(ts), want, "{ts}");
            ts += 86_400 * 37 + 3_607;
        }
        assert_eq!(rfc3339(253_402_300_800), "", "year 10000");
        let mut b = Rfc3339Buf::default();
        assert_eq!(b.format(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(b.format(0), "1970-01-01T00:00:00Z");
        let mut s = String::new();
        push_rfc3339(&mut s, 1_795_737_599, Some(42));
        assert_eq!(s, "2026-11-26T23:59:59.000042Z");
        push_rfc3339(&mut s, 0, Some(1_234_567));
        assert_eq!(
            &s[27..],
            "1970-01-01T00:00:00.999999Z",
            "clamped to microseconds"
        );
        // The same second again (from the thread's last rendering), with and without micros.
        s.clear();
        push_rfc3339(&mut s, 0, Some(7));
        push_rfc3339(&mut s, 0, None);
        assert_eq!(s, "1970-01-01T00:00:00.000007Z1970-01-01T00:00:00Z");
        let c = ManualClock::new(100);
        c.advance(5);
        assert_eq!(c.now(), 105);
    }
}
