//! Time as a parameter: the only place that reads the wall clock.
//!
//! Use cases receive `now` (Unix seconds) from a [`Clock`], so tests move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

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
    let _ = write_rfc3339(out, ts, micros);
}

/// Room for one rendering on the stack, for serialisers that must not allocate.
#[derive(Debug, Default)]
pub struct Rfc3339Buf {
    bytes: [u8; 32],
    len: usize,
}

impl Rfc3339Buf {
    /// Render `ts` (whole seconds) into the buffer.
    pub fn format(&mut self, ts: i64) -> &str {
        self.len = 0;
        let _ = write_rfc3339(self, ts, None);
        // Only ASCII was written.
        std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl std::fmt::Write for Rfc3339Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The one renderer. Hand-rolled because it runs on every health check, profile and log line,
/// where a general date formatter cost more than the rest of the line.
fn write_rfc3339(out: &mut impl std::fmt::Write, ts: i64, micros: Option<u32>) -> std::fmt::Result {
    let (days, secs) = (ts.div_euclid(86_400), ts.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Ok(());
    }
    let fields = [
        (y, 4, "-"),
        (m, 2, "-"),
        (d, 2, "T"),
        (secs / 3600, 2, ":"),
        (secs / 60 % 60, 2, ":"),
    ];
    for (v, width, sep) in fields {
        padded(out, v, width)?;
        out.write_str(sep)?;
    }
    padded(out, secs % 60, 2)?;
    if let Some(us) = micros {
        out.write_str(".")?;
        padded(out, i64::from(us.min(999_999)), 6)?;
    }
    out.write_str("Z")
}

fn padded(out: &mut impl std::fmt::Write, v: i64, width: usize) -> std::fmt::Result {
    let mut n = itoa::Buffer::new();
    let s = n.format(v);
    for _ in s.len()..width {
        out.write_str("0")?;
    }
    out.write_str(s)
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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
        let c = ManualClock::new(100);
        c.advance(5);
        assert_eq!(c.now(), 105);
    }
}
