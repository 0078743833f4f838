//! Brute-force throttling of every proof of identity, in bounded memory.
//!
//! An attempt **reserves** its slot before anything is verified and is **settled** when the
//! outcome is known: a success gives the slot back (and clears its (account, address)
//! counter), a failure keeps it. The check and the reservation are one step under one lock,
//! so no interleaving of parallel attempts admits more than a limit. At most
//! [`IN_FLIGHT`] proofs per account and per address are being verified at once; a further one
//! waits up to [`IN_FLIGHT_WAIT`] for a turn, then gets 429.
//!
//! Failures are counted per (account, address), per address and per account in fixed
//! windows. Addresses are grouped by network: IPv4 per address, IPv6 per `/64` (configurable).
//! The per-account ceiling is ten times the pair limit and does not apply to a browser that
//! has signed in to this account before (the owner's device), so a distributed attack cannot
//! lock the owner out.
//!
//! Every table has a fixed capacity ([`TABLE_CAP`] or [`SMALL_TABLE_CAP`] entries; about
//! 7 MiB for all of them at most, see [`memory_bound`]). A counter over its limit is never dropped. When the address
//! table is full, new addresses are counted under their coarse network (IPv4 `/24`, IPv6
//! `/48`) instead; when a table cannot take a key at all, the key shares one of
//! [`OVERFLOW_BUCKETS`] fixed counters with others, which can only over-count.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Proofs per account, and per address, being verified at once.
pub const IN_FLIGHT: u32 = 4;
/// How long an attempt waits for an in-flight turn before it is refused.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(2);
/// Entries per table of the proof counters: (account, address) pairs, addresses, accounts.
pub const TABLE_CAP: usize = 1 << 15;
/// Entries per table of the coarse networks, registrations and SSO starts.
pub const SMALL_TABLE_CAP: usize = 1 << 13;
/// Shared counters a table falls back on when it cannot take a key.
pub const OVERFLOW_BUCKETS: usize = 1024;
/// The per-address limit as a multiple of the (account, address) limit.
pub const PER_ADDRESS: u32 = 5;
/// The per-account ceiling as a multiple of the (account, address) limit.
pub const PER_ACCOUNT: u32 = 10;
/// SSO sign-ins an address may start per window, as a multiple of the login limit: generous,
/// since one office behind one address signs in through its provider every morning, yet each
/// start is a stored pending state, so an address cannot make them without bound.
pub const SSO_STARTS_PER_LIMIT: u32 = 20;

/// Limits in force for one check.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures per (account, address) per window.
    pub count: u32,
    /// Window length in seconds.
    pub window: i64,
}

/// An address group: the address masked to its network prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net {
    /// The address bits kept (IPv6: the top 64 bits, since no group is smaller than a /64).
    bits: u64,
    len: u8,
    v6: bool,
}

/// `203.0.113.7/32`, `2001:db8:1:2::/64`: a stable name for keys outside this module.
impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.v6 {
            let addr = std::net::Ipv6Addr::from(u128::from(self.bits) << 64);
            write!(f, "{addr}/{}", self.len)
        } else {
            let addr = std::net::Ipv4Addr::from(u32::try_from(self.bits).unwrap_or(0));
            write!(f, "{addr}/{}", self.len)
        }
    }
}

impl Net {
    /// The group of `ip`: IPv4 per address, IPv6 per `/v6_prefix` (at most 64).
    #[must_use]
    pub fn of(ip: IpAddr, v6_prefix: u8) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4), v6_prefix),
                None => {
                    let top = u64::try_from(u128::from(v6) >> 64).unwrap_or(0);
                    Self::masked(top, v6_prefix, true)
                }
            },
            IpAddr::V4(v4) => Self::masked(u64::from(u32::from(v4)), 32, false),
        }
    }

    fn masked(bits: u64, len: u8, v6: bool) -> Self {
        let width: u8 = if v6 { 64 } else { 32 };
        let len = len.min(width);
        let drop = u32::from(width - len);
        let bits = if drop >= 64 {
            0
        } else {
            (bits >> drop) << drop
        };
        Self { bits, len, v6 }
    }

    /// The coarse network new addresses are counted under when the table is full.
    #[must_use]
    pub fn coarse(self) -> Self {
        if self.v6 {
            Self::masked(self.bits, self.len.min(48), true)
        } else {
            Self::masked(self.bits, 24, false)
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    start: i64,
    count: u32,
    in_flight: u32,
}

impl Counter {
    /// The counter as of `now`: a finished window starts over.
    fn live(&mut self, now: i64, window: i64) -> &mut Self {
        if self.start + window <= now {
            self.start = now;
            self.count = 0;
        }
        self
    }

    fn over(&self, max: u32, now: i64, window: i64) -> Option<u64> {
        (self.start + window > now && self.count >= max)
            .then(|| u64::try_from(self.start + window - now).unwrap_or(1).max(1))
    }
}

/// Where a key's counter lives.
#[derive(Debug, Clone, Copy)]
enum Slot<K> {
    Key(K),
    Bucket(usize),
}

/// One family of counters with a fixed capacity.
struct Table<K> {
    map: HashMap<K, Counter>,
    cap: usize,
    /// When finished windows were last dropped: a full table is scanned at most once a
    /// second, not once per newcomer.
    purged_at: i64,
    overflow: Vec<Counter>,
    hasher: RandomState,
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            cap,
            purged_at: i64::MIN,
            overflow: vec![Counter::default(); OVERFLOW_BUCKETS],
            hasher: RandomState::new(),
        }
    }

    fn has_room_for(&mut self, key: &K, now: i64, window: i64) -> bool {
        if self.map.len() < self.cap || self.map.contains_key(key) {
            return true;
        }
        if self.purged_at < now {
            // Full: finished windows go first (never one with an attempt in flight).
            self.purged_at = now;
            self.map
                .retain(|_, c| c.in_flight > 0 || c.start + window > now);
        }
        self.map.len() < self.cap
    }

    /// Make room by dropping the lowest counters that are under `max` (an eighth of the
    /// table, so the scan is paid once per many insertions). Never one over its limit.
    fn evict_under(&mut self, max: u32) {
        let mut under: Vec<(u32, K)> = self
            .map
            .iter()
            .filter(|(_, c)| c.count < max && c.in_flight == 0)
            .map(|(k, c)| (c.count, *k))
            .collect();
        let n = (self.cap / 8).min(under.len());
        if n == 0 {
            return;
        }
        under.select_nth_unstable_by_key(n - 1, |(count, _)| *count);
        for (_, k) in &under[..n] {
            self.map.remove(k);
        }
    }

    /// Where `key` is counted; `evict_max` allows dropping counters under that limit.
    fn locate(&mut self, key: K, now: i64, window: i64, evict_max: Option<u32>) -> Slot<K> {
        if self.has_room_for(&key, now, window) {
            return Slot::Key(key);
        }
        if let Some(max) = evict_max {
            self.evict_under(max);
            if self.map.len() < self.cap {
                return Slot::Key(key);
            }
        }
        let bucket = usize::try_from(self.hasher.hash_one(key)).unwrap_or(0) % OVERFLOW_BUCKETS;
        Slot::Bucket(bucket)
    }

    fn peek(&self, slot: Slot<K>) -> Counter {
        match slot {
            Slot::Key(k) => self.map.get(&k).copied().unwrap_or_default(),
            Slot::Bucket(i) => self.overflow.get(i).copied().unwrap_or_default(),
        }
    }

    fn get(&mut self, slot: Slot<K>, now: i64, window: i64) -> Option<&mut Counter> {
        let c = match slot {
            Slot::Key(k) => self.map.entry(k).or_insert(Counter {
                start: now,
                ..Counter::default()
            }),
            Slot::Bucket(i) => self.overflow.get_mut(i)?,
        };
        Some(c.live(now, window))
    }

    /// Settle one reserved attempt: give its in-flight turn back, and its count too when
    /// `refund`.
    fn settle(&mut self, slot: Slot<K>, refund: bool) {
        let c = match slot {
            Slot::Key(k) => self.map.get_mut(&k),
            Slot::Bucket(i) => self.overflow.get_mut(i),
        };
        if let Some(c) = c {
            c.in_flight = c.in_flight.saturating_sub(1);
            if refund {
                c.count = c.count.saturating_sub(1);
            }
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

struct Tables {
    pairs: Table<(u64, Net)>,
    nets: Table<Net>,
    coarse: Table<Net>,
    accounts: Table<u64>,
    register: Table<Net>,
    sso: Table<Net>,
    ceremonies: Table<Net>,
}

/// Why an attempt was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over a limit; retry after this many seconds.
    Limited(u64),
    /// Too many proofs for this account or address are being verified right now.
    Busy,
}

/// The limiter; one per process.
pub struct Limiter {
    tables: Mutex<Tables>,
    released: tokio::sync::Notify,
    accounts: RandomState,
    v6_prefix: u8,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

/// The most memory the tables can hold, in bytes: every table at capacity, with hashbrown's
/// power-of-two growth and one control byte per slot, plus the overflow buckets. About
/// 7 MiB; the tables start empty and grow only with failures.
#[must_use]
pub fn memory_bound() -> usize {
    let per = |cap: usize, key: usize| {
        let entry = key + std::mem::size_of::<Counter>();
        // hashbrown keeps at most 7/8 of its slots full: 2^15 entries need 2^16 slots.
        2 * cap * (entry + 1) + OVERFLOW_BUCKETS * std::mem::size_of::<Counter>()
    };
    let net = std::mem::size_of::<Net>();
    per(TABLE_CAP, std::mem::size_of::<(u64, Net)>())
        + per(TABLE_CAP, net)
        + per(TABLE_CAP, 8)
        + 3 * per(SMALL_TABLE_CAP, net)
}

/// A reserved attempt. Settle it with [`Attempt::succeeded`] or [`Attempt::failed`]; one
/// dropped unsettled (an error, a cancelled request) counts as a failure.
#[must_use = "an attempt must be settled"]
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    pair: Slot<(u64, Net)>,
    /// The address counter: in the exact table, or (`true`) the coarse one.
    net: (Slot<Net>, bool),
    account: Slot<u64>,
    ceiling: u32,
    settled: bool,
}

impl Attempt<'_> {
    /// The proof was right: the slot is given back and the (account, address) counter
    /// cleared.
    pub fn succeeded(mut self) {
        self.settle(Outcome::Success);
    }

    /// The proof was right but the sign-in is not complete (a second factor is due): the slot
    /// is given back, the (account, address) counter stays as it is, so a known password
    /// cannot be used to reset the count of wrong codes.
    pub fn passed(mut self) {
        self.settle(Outcome::Passed);
    }

    /// The proof was wrong: the slot stays taken. Returns the account's counter window
    /// `(start, count)` when this failure reached the per-account ceiling (to persist it).
    pub fn failed(mut self) -> Option<(i64, u32)> {
        self.settle(Outcome::Failure)
    }

    fn settle(&mut self, outcome: Outcome) -> Option<(i64, u32)> {
        if self.settled {
            return None;
        }
        self.settled = true;
        let success = outcome != Outcome::Failure;
        let mut t = self.limiter.lock();
        match self.net {
            (slot, false) => t.nets.settle(slot, success),
            (slot, true) => t.coarse.settle(slot, success),
        }
        t.accounts.settle(self.account, success);
        let at_ceiling = if success {
            t.pairs.settle(self.pair, true);
            if let (Outcome::Success, Slot::Key(k)) = (outcome, self.pair) {
                // Cleared, except for the attempts still in flight: they keep their slots.
                match t.pairs.map.get_mut(&k) {
                    Some(c) if c.in_flight > 0 => c.count = c.in_flight,
                    _ => {
                        t.pairs.map.remove(&k);
                    }
                }
            }
            None
        } else {
            t.pairs.settle(self.pair, false);
            let c = t.accounts.peek(self.account);
            (c.count >= self.ceiling).then_some((c.start, c.count))
        };
        drop(t);
        self.limiter.released.notify_waiters();
        at_ceiling
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let _ = self.settle(Outcome::Failure);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Passed,
    Failure,
}

impl Limiter {
    /// A limiter grouping IPv6 addresses per `/v6_prefix`.
    #[must_use]
    pub fn new(v6_prefix: u8) -> Self {
        Self {
            tables: Mutex::new(Tables {
                pairs: Table::new(TABLE_CAP),
                nets: Table::new(TABLE_CAP),
                coarse: Table::new(SMALL_TABLE_CAP),
                accounts: Table::new(TABLE_CAP),
                register: Table::new(SMALL_TABLE_CAP),
                sso: Table::new(SMALL_TABLE_CAP),
                ceremonies: Table::new(SMALL_TABLE_CAP),
            }),
            released: tokio::sync::Notify::new(),
            accounts: RandomState::new(),
            v6_prefix,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn account_key(&self, account: &str) -> u64 {
        self.accounts.hash_one(account)
    }

    /// The address group of `ip` under this limiter's grouping.
    #[must_use]
    pub fn net(&self, ip: IpAddr) -> Net {
        Net::of(ip, self.v6_prefix)
    }

    /// Reserve one proof of identity for `account` from `ip`, now or not at all. `owner`
    /// (a browser that signed in to this account before) is exempt from the account ceiling.
    pub fn try_reserve(
        &self,
        account: &str,
        ip: IpAddr,
        owner: bool,
        l: Limits,
        now: i64,
    ) -> Result<Attempt<'_>, Refused> {
        let (acc, net, w) = (self.account_key(account), self.net(ip), l.window);
        let (pair_max, net_max) = (l.count, l.count.saturating_mul(PER_ADDRESS));
        let ceiling = l.count.saturating_mul(PER_ACCOUNT);
        let mut t = self.lock();
        let pair = t.pairs.locate((acc, net), now, w, Some(pair_max));
        let account = t.accounts.locate(acc, now, w, Some(ceiling));
        let (net_slot, coarse) = if t.nets.has_room_for(&net, now, w) {
            (Slot::Key(net), None)
        } else {
            // The address table is full: count this address under its coarse network.
            let c = t.coarse.locate(net.coarse(), now, w, None);
            (c, Some(c))
        };
        // A coarse counter made while the table was full keeps counting for its network.
        let coarse_seen = t.coarse.map.get(&net.coarse()).copied();
        let mut over = [
            t.pairs.peek(pair).over(pair_max, now, w),
            t.nets.peek(net_slot).over(net_max, now, w),
            coarse_seen.and_then(|c| c.over(net_max, now, w)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(c) = coarse {
            over = over.max(t.coarse.peek(c).over(net_max, now, w));
        }
        if !owner {
            over = over.max(t.accounts.peek(account).over(ceiling, now, w));
        }
        if let Some(retry_after) = over {
            return Err(Refused::Limited(retry_after));
        }
        let busy = |c: Counter| c.in_flight >= IN_FLIGHT;
        let net_counter = match coarse {
            Some(c) => t.coarse.peek(c),
            None => t.nets.peek(net_slot),
        };
        if busy(net_counter) || busy(t.accounts.peek(account)) {
            return Err(Refused::Busy);
        }
        if let Some(c) = t.pairs.get(pair, now, w) {
            c.count += 1;
            c.in_flight += 1;
        }
        let net_counter = match coarse {
            Some(c) => t.coarse.get(c, now, w),
            None => t.nets.get(net_slot, now, w),
        };
        if let Some(c) = net_counter {
            c.count += 1;
            c.in_flight += 1;
        }
        if let Some(c) = t.accounts.get(account, now, w) {
            c.count += 1;
            c.in_flight += 1;
        }
        drop(t);
        Ok(Attempt {
            limiter: self,
            pair,
            net: (net_slot, coarse.is_some()),
            account,
            ceiling,
            settled: false,
        })
    }

    /// [`Self::try_reserve`], waiting up to [`IN_FLIGHT_WAIT`] for an in-flight turn.
    /// `Err(retry_after)` when refused.
    pub async fn reserve(
        &self,
        account: &str,
        ip: IpAddr,
        owner: bool,
        l: Limits,
        now: i64,
    ) -> Result<Attempt<'_>, u64> {
        let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
        loop {
            let released = self.released.notified();
            match self.try_reserve(account, ip, owner, l, now) {
                Ok(a) => return Ok(a),
                Err(Refused::Limited(r)) => return Err(r),
                Err(Refused::Busy) => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return Err(1);
                    }
                }
            }
        }
    }

    /// Restore an account's counter from the store at start-up (it was over its ceiling when
    /// persisted): a restart is no free reset.
    pub fn restore_account(&self, account: &str, start: i64, count: u32, l: Limits, now: i64) {
        if start + l.window <= now {
            return;
        }
        let acc = self.account_key(account);
        let mut t = self.lock();
        let slot = t.accounts.locate(acc, now, l.window, None);
        if let Some(c) = t.accounts.get(slot, now, l.window) {
            c.start = start;
            c.count = c.count.max(count);
        }
    }

    fn count_per_net(
        &self,
        pick: impl Fn(&mut Tables) -> &mut Table<Net>,
        ip: IpAddr,
        max: u32,
        l: Limits,
        now: i64,
    ) -> Result<(), u64> {
        let net = self.net(ip);
        let mut t = self.lock();
        let table = pick(&mut t);
        let slot = table.locate(net, now, l.window, Some(max));
        if let Some(r) = table.peek(slot).over(max, now, l.window) {
            return Err(r);
        }
        if let Some(c) = table.get(slot, now, l.window) {
            c.count += 1;
        }
        Ok(())
    }

    /// Count a registration attempt whose input validated; `Err(retry_after)` when over.
    pub fn register_attempt(&self, ip: IpAddr, l: Limits, now: i64) -> Result<(), u64> {
        self.count_per_net(|t| &mut t.register, ip, l.count, l, now)
    }

    /// Count the start of an SSO sign-in from `ip`; `Err(retry_after)` when over the limit.
    pub fn sso_start(&self, ip: IpAddr, l: Limits, now: i64) -> Result<(), u64> {
        let max = l.count.saturating_mul(SSO_STARTS_PER_LIMIT);
        self.count_per_net(|t| &mut t.sso, ip, max, l, now)
    }

    /// Count the start of a passkey sign-in from `ip` (nothing is stored for it, but each
    /// answer costs a signature-free seal and a spent-set slot later); `Err(retry_after)` when
    /// over: as generous as SSO starts.
    pub fn ceremony_start(&self, ip: IpAddr, l: Limits, now: i64) -> Result<(), u64> {
        let max = l.count.saturating_mul(SSO_STARTS_PER_LIMIT);
        self.count_per_net(|t| &mut t.ceremonies, ip, max, l, now)
    }

    /// Number of live counters in all tables (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        let t = self.lock();
        t.pairs.len()
            + t.nets.len()
            + t.coarse.len()
            + t.accounts.len()
            + t.register.len()
            + t.sso.len()
            + t.ceremonies.len()
    }

    /// True when no counter is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        count: 3,
        window: 60,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    #[test]
    fn a_group_names_its_network() {
        assert_eq!(Net::of(ip("203.0.113.7"), 64).to_string(), "203.0.113.7/32");
        assert_eq!(
            Net::of(ip("2001:db8:1:2:aaaa::1"), 64).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            Net::of(ip("2001:db8:1:2:bbbb::9"), 56).to_string(),
            "2001:db8:1::/56"
        );
        assert_eq!(
            Net::of(ip("::ffff:198.51.100.4"), 64).to_string(),
            "198.51.100.4/32"
        );
    }

    #[test]
    fn parallel_reservations_never_pass_the_limit() {
        let l = Limiter::new(64);
        let a = ip("10.0.0.1");
        // Reserved, not yet settled: the limit counts them.
        let held: Vec<_> = (0..IN_FLIGHT.min(3))
            .filter_map(|_| l.try_reserve("a", a, false, L, 100).ok())
            .collect();
        assert_eq!(held.len(), 3);
        assert_eq!(
            l.try_reserve("a", a, false, L, 100).err(),
            Some(Refused::Limited(60))
        );
        for h in held {
            let _ = h.failed();
        }
        assert_eq!(
            l.try_reserve("a", a, false, L, 110).err(),
            Some(Refused::Limited(50))
        );
        assert!(
            l.try_reserve("a", ip("10.0.0.2"), false, L, 110).is_ok(),
            "owner elsewhere not locked out"
        );
        assert!(l.try_reserve("a", a, false, L, 160).is_ok(), "window over");
    }

    #[test]
    fn success_gives_the_slot_back_and_passed_keeps_the_count() {
        let l = Limiter::new(64);
        let a = ip("10.0.0.1");
        let _ = l.try_reserve("a", a, false, L, 100).unwrap().failed();
        let _ = l.try_reserve("a", a, false, L, 100).unwrap().failed();
        // A right password with a second factor due: the slot goes back, the two failures
        // stay, so one more wrong code and the pair is locked.
        l.try_reserve("a", a, false, L, 100).unwrap().passed();
        let _ = l.try_reserve("a", a, false, L, 100).unwrap().failed();
        assert!(l.try_reserve("a", a, false, L, 100).is_err());
        // A complete sign-in clears the pair counter (from a fresh window here).
        l.try_reserve("a", a, false, L, 200).unwrap().succeeded();
        for _ in 0..3 {
            let _ = l.try_reserve("a", a, false, L, 200).unwrap().failed();
        }
        assert!(l.try_reserve("a", a, false, L, 200).is_err());
    }

    #[test]
    fn a_success_does_not_clear_the_slots_of_attempts_still_in_flight() {
        let l = Limiter::new(64);
        let a = ip("10.0.0.1");
        let _ = l.try_reserve("a", a, false, L, 100).unwrap().failed();
        let right = l.try_reserve("a", a, false, L, 100).unwrap();
        let wrong = l.try_reserve("a", a, false, L, 100).unwrap();
        right.succeeded();
        // The earlier failure is cleared; the guess still being verified is not.
        let _ = wrong.failed();
        let _ = l.try_reserve("a", a, false, L, 100).unwrap().failed();
        let _ = l.try_reserve("a", a, false, L, 100).unwrap().failed();
        assert!(l.try_reserve("a", a, false, L, 100).is_err());
    }

    #[test]
    fn an_unsettled_attempt_counts_as_a_failure() {
        let l = Limiter::new(64);
        for _ in 0..3 {
            drop(l.try_reserve("a", ip("10.0.0.1"), false, L, 100).unwrap());
        }
        assert!(l.try_reserve("a", ip("10.0.0.1"), false, L, 100).is_err());
    }

    /// Limits that are never reached: only the in-flight bound refuses.
    const BIG: Limits = Limits {
        count: 1000,
        window: 60,
    };

    /// Every in-flight turn of account "a" taken, from as many addresses.
    fn busy_account(l: &Limiter) -> Vec<Attempt<'_>> {
        (0..IN_FLIGHT)
            .map(|i| l.try_reserve("a", v4(i), false, BIG, 100).unwrap())
            .collect()
    }

    #[test]
    fn in_flight_is_bounded_per_account_and_per_address() {
        let l = Limiter::new(64);
        let big = BIG;
        let held = busy_account(&l);
        assert_eq!(
            l.try_reserve("a", v4(99), false, big, 100).err(),
            Some(Refused::Busy),
            "account busy"
        );
        let other: Vec<_> = (0..IN_FLIGHT)
            .map(|i| {
                l.try_reserve(&format!("b{i}"), v4(500), false, big, 100)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            l.try_reserve("c", v4(500), false, big, 100).err(),
            Some(Refused::Busy),
            "address busy"
        );
        drop(held);
        drop(other);
        assert!(l.try_reserve("a", v4(99), false, big, 100).is_ok());
    }

    #[tokio::test]
    async fn a_busy_attempt_waits_for_a_turn() {
        let l = std::sync::Arc::new(Limiter::new(64));
        let big = BIG;
        let held = busy_account(&l);
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            l2.reserve("a", v4(99), false, big, 100)
                .await
                .map(Attempt::succeeded)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits while the account is busy");
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[test]
    fn the_owners_device_passes_the_account_ceiling() {
        let l = Limiter::new(64);
        // A distributed attack: the pair limit from each of many addresses.
        for i in 0..PER_ACCOUNT {
            for _ in 0..L.count {
                let _ = l.try_reserve("a", v4(i), false, L, 100).unwrap().failed();
            }
        }
        let fresh = v4(1000);
        assert!(matches!(
            l.try_reserve("a", fresh, false, L, 100),
            Err(Refused::Limited(_))
        ));
        assert!(l.try_reserve("a", fresh, true, L, 100).is_ok());
    }

    #[test]
    fn ipv6_is_grouped_per_64() {
        let l = Limiter::new(64);
        for i in 0..L.count {
            let addr = ip(&format!("2001:db8:1:2::{:x}", i + 1));
            let _ = l.try_reserve("a", addr, false, L, 100).unwrap().failed();
        }
        let same_64 = ip("2001:db8:1:2:ffff::1");
        assert!(l.try_reserve("a", same_64, false, L, 100).is_err());
        assert!(
            l.try_reserve("a", ip("2001:db8:1:3::1"), false, L, 100)
                .is_ok()
        );
        // IPv4-mapped addresses count as their IPv4 address.
        assert_eq!(
            Net::of(ip("::ffff:10.0.0.1"), 64),
            Net::of(ip("10.0.0.1"), 64)
        );
        assert_ne!(Net::of(ip("10.0.0.1"), 64), Net::of(ip("10.0.0.2"), 64));
    }

    #[test]
    fn restart_restores_an_account_over_its_ceiling() {
        let l = Limiter::new(64);
        l.restore_account("a", 90, L.count * PER_ACCOUNT, L, 100);
        assert!(matches!(
            l.try_reserve("a", v4(7), false, L, 100),
            Err(Refused::Limited(50))
        ));
        assert!(
            l.try_reserve("a", v4(7), false, L, 150).is_ok(),
            "window over"
        );
    }

    /// A million addresses, IPv4 and IPv6, each failing once on its own account: no counter
    /// over its limit is forgotten, the tables stay at their capacity, and a newcomer from
    /// elsewhere is admitted.
    #[test]
    fn a_million_addresses_neither_evict_nor_lock_out() {
        let l = Limiter::new(64);
        let w = Limits {
            count: 10,
            window: 3600,
        };
        // Locked before the flood: an account over its ceiling, a pair, an address.
        let target = ip("192.0.2.7");
        for _ in 0..w.count {
            let _ = l
                .try_reserve("locked-pair", target, true, w, 100)
                .unwrap()
                .failed();
        }
        for i in 0..w.count * PER_ACCOUNT {
            let _ = l
                .try_reserve("victim", v4(0xC633_6400 + i), false, w, 100)
                .unwrap()
                .failed();
        }
        for i in 0..500_000u32 {
            // 10.0.0.0/8 and 2001:db8::/32, one address (or /64) each.
            let a4 = v4(0x0A00_0000 + i);
            let a6 = IpAddr::from(
                (0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + (u128::from(i) << 64))
                    .to_be_bytes(),
            );
            for (n, a) in [(0, a4), (1, a6)] {
                if let Ok(at) = l.try_reserve(&format!("flood{n}-{i}"), a, false, w, 200) {
                    let _ = at.failed();
                }
            }
        }
        let bound = 3 * TABLE_CAP + 3 * SMALL_TABLE_CAP;
        assert!(
            l.len() <= bound,
            "{} counters for a bound of {bound}",
            l.len()
        );
        assert!(memory_bound() < 8 * 1024 * 1024, "{}", memory_bound());
        assert!(
            matches!(
                l.try_reserve("victim", ip("203.0.113.9"), false, w, 300),
                Err(Refused::Limited(_))
            ),
            "the account over its ceiling stays locked"
        );
        assert!(
            matches!(
                l.try_reserve("locked-pair", target, true, w, 300),
                Err(Refused::Limited(_))
            ),
            "the pair over its limit stays locked"
        );
        assert!(
            l.try_reserve("newcomer", ip("203.0.113.9"), false, w, 300)
                .is_ok(),
            "a newcomer from elsewhere is admitted"
        );
        assert!(
            l.try_reserve("newcomer6", ip("2a00:1450::1"), false, w, 300)
                .is_ok(),
            "an IPv6 newcomer from elsewhere is admitted"
        );
    }
}
