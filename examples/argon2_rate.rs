//! Raw argon2id verifications per second on all cores, with Posta's parameters: the physical
//! limit a login can approach. Each thread reuses one block of working memory, the cheapest
//! way the argon2 crate offers. Usage: `argon2_rate [SECONDS] [M_KIB] [T] [P]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use posta::auth::password::{self, Cost};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: u32| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let secs = arg(1, 10);
    let cost = Cost {
        m_kib: arg(2, 19 * 1024),
        t: arg(3, 2),
        p: arg(4, 1),
    };
    let hash = match password::hash("violet-tractor-41-moss", cost) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}");
            return;
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(u64::from(secs));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (done, hash) = (done.clone(), hash.clone());
            std::thread::spawn(move || {
                let mut scratch = password::Scratch::default();
                while Instant::now() < deadline {
                    let _ = password::verify_in(&mut scratch, &hash, "wrong-password-for-rate");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let n = done.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "argon2id m={} t={} p={} threads={threads}: {rate:.1} verifications/s",
        cost.m_kib, cost.t, cost.p
    );
}
