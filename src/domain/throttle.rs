//! Brute-force throttling of login and registration, in memory and bounded.
//!
//! Failed logins are counted per (account, address), per address and per account in fixed
//! windows. The per-(account, address) limit is the tight one; the per-account ceiling is ten
//! times looser, so an attacker hammering one account from one address cannot lock its owner
//! out from elsewhere, while a distributed attack still hits a ceiling.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// What a counter is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    AccountIp(String, IpAddr),
    Ip(IpAddr),
    Account(String),
    Register(IpAddr),
    SsoStart(IpAddr),
}

/// SSO sign-ins an address may start per window, as a multiple of the login limit: generous,
/// since one office behind one address signs in through its provider every morning, yet each
/// start is a stored pending state, so an address cannot make them without bound.
const SSO_STARTS_PER_LIMIT: u32 = 20;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    count: u32,
}

/// The limiter; one per process.
#[derive(Debug)]
pub struct Limiter {
    cap: usize,
    map: Mutex<HashMap<Key, Window>>,
}

/// Limits in force for one check.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures per (account, address) per window.
    pub count: u32,
    /// Window length in seconds.
    pub window: i64,
}

impl Limiter {
    /// A limiter holding at most `cap` counters.
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Key, Window>) -> T) -> T {
        match self.map.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn blocked(
        map: &HashMap<Key, Window>,
        key: &Key,
        max: u32,
        l: Limits,
        now: i64,
    ) -> Option<u64> {
        let w = map.get(key)?;
        if w.start + l.window > now && w.count >= max {
            Some(u64::try_from(w.start + l.window - now).unwrap_or(1).max(1))
        } else {
            None
        }
    }

    /// `Err(retry_after)` when a login for `account` from `ip` must be refused now.
    pub fn check_login(&self, account: &str, ip: IpAddr, l: Limits, now: i64) -> Result<(), u64> {
        self.with(|m| {
            let keys = [
                (Key::AccountIp(account.to_owned(), ip), l.count),
                (Key::Ip(ip), l.count.saturating_mul(5)),
                (Key::Account(account.to_owned()), l.count.saturating_mul(10)),
            ];
            match keys
                .iter()
                .filter_map(|(k, max)| Self::blocked(m, k, *max, l, now))
                .max()
            {
                Some(r) => Err(r),
                None => Ok(()),
            }
        })
    }

    /// Count a failed login.
    pub fn login_failed(&self, account: &str, ip: IpAddr, l: Limits, now: i64) {
        self.with(|m| {
            self.bound(m, now, l.window);
            for k in [
                Key::AccountIp(account.to_owned(), ip),
                Key::Ip(ip),
                Key::Account(account.to_owned()),
            ] {
                bump(m, k, l.window, now);
            }
        });
    }

    /// A successful login clears its (account, address) counter.
    pub fn login_succeeded(&self, account: &str, ip: IpAddr) {
        self.with(|m| {
            m.remove(&Key::AccountIp(account.to_owned(), ip));
        });
    }

    /// Count a registration attempt; `Err(retry_after)` when over the limit.
    pub fn register_attempt(&self, ip: IpAddr, l: Limits, now: i64) -> Result<(), u64> {
        self.with(|m| {
            let k = Key::Register(ip);
            if let Some(r) = Self::blocked(m, &k, l.count, l, now) {
                return Err(r);
            }
            self.bound(m, now, l.window);
            bump(m, k, l.window, now);
            Ok(())
        })
    }

    /// Count the start of an SSO sign-in from `ip`; `Err(retry_after)` when over the limit.
    pub fn sso_start(&self, ip: IpAddr, l: Limits, now: i64) -> Result<(), u64> {
        self.with(|m| {
            let k = Key::SsoStart(ip);
            let max = l.count.saturating_mul(SSO_STARTS_PER_LIMIT);
            if let Some(r) = Self::blocked(m, &k, max, l, now) {
                return Err(r);
            }
            self.bound(m, now, l.window);
            bump(m, k, l.window, now);
            Ok(())
        })
    }

    /// Keep memory bounded: drop finished windows, then the oldest half if still full.
    fn bound(&self, m: &mut HashMap<Key, Window>, now: i64, window: i64) {
        if m.len() < self.cap {
            return;
        }
        m.retain(|_, w| w.start + window > now);
        if m.len() >= self.cap {
            let mut starts: Vec<i64> = m.values().map(|w| w.start).collect();
            starts.sort_unstable();
            let cut = starts.get(starts.len() / 2).copied().unwrap_or(now);
            m.retain(|_, w| w.start > cut);
        }
    }

    /// Number of live counters (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.with(|m| m.len())
    }

    /// True when no counter is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn bump(m: &mut HashMap<Key, Window>, k: Key, window: i64, now: i64) {
    let w = m.entry(k).or_insert(Window {
        start: now,
        count: 0,
    });
    if w.start + window <= now {
        *w = Window {
            start: now,
            count: 0,
        };
    }
    w.count = w.count.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        count: 3,
        window: 60,
    };

    #[test]
    fn per_account_ip_then_window_reset() {
        let l = Limiter::new(1000);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check_login("a", ip, L, 100).is_ok());
            l.login_failed("a", ip, L, 100);
        }
        assert_eq!(l.check_login("a", ip, L, 110), Err(50));
        assert!(
            l.check_login("a", other, L, 110).is_ok(),
            "owner elsewhere not locked out"
        );
        assert!(l.check_login("a", ip, L, 160).is_ok(), "window over");
    }

    #[test]
    fn sso_starts_per_address() {
        let l = Limiter::new(1000);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 * SSO_STARTS_PER_LIMIT {
            assert!(l.sso_start(ip, L, 100).is_ok());
        }
        assert_eq!(l.sso_start(ip, L, 110), Err(50));
        assert!(
            l.sso_start(other, L, 110).is_ok(),
            "other addresses unaffected"
        );
        assert!(
            l.check_login("a", ip, L, 110).is_ok(),
            "logins keep their own counters"
        );
        assert!(l.sso_start(ip, L, 160).is_ok(), "window over");
    }

    #[test]
    fn bounded_memory() {
        let l = Limiter::new(100);
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            l.login_failed(&format!("user{i}"), ip, L, i64::from(i));
        }
        assert!(l.len() <= 100 + 3, "len {}", l.len());
    }
}
