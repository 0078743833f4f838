//! A fixed set of threads for password hashing, each with argon2 working memory that it keeps
//! while busy and gives back when idle.
//!
//! Bounding the threads bounds the memory: at most `threads × m_cost` is in use at once, and
//! a thread that waited [`IDLE`] for work drops its block, which goes straight back to the
//! operating system (see `password::Scratch`). Reusing the block while busy saves the page
//! faults of a fresh 19 MiB per hash. Jobs wait in a queue; admission (how many may wait) is
//! the throttle's business, not the pool's.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::auth::password::Scratch;
use crate::error::{Error, Result};

/// How long a hashing thread keeps its working memory without work. Long enough that a
/// steady trickle of sign-ins reuses it, short enough that the appliance is back to its idle
/// size seconds after the last one.
pub const IDLE: Duration = Duration::from_secs(1);

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The pool; dropping it lets its threads finish the queued jobs and exit.
pub struct HashPool {
    shared: Arc<Shared>,
}

impl HashPool {
    /// Start `threads` hashing threads.
    #[must_use]
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("posta-hash-{i}"))
                .spawn(move || work(&shared));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        Self { shared }
    }

    /// Run `f` on a hashing thread, with that thread's working memory, and await its result.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |scratch| {
            let _ = done.send(f(scratch));
        });
        {
            let mut q = self.shared.lock();
            if q.closed {
                return Err(Error::Unavailable);
            }
            q.jobs.push_back(job);
        }
        self.shared.ready.notify_one();
        result
            .await
            .map_err(|_| Error::Internal("hashing thread failed".into()))
    }

    /// Jobs waiting for a thread now (for metrics and tests).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.shared.lock().jobs.len()
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

fn work(shared: &Shared) {
    let mut scratch = Scratch::default();
    loop {
        let mut q = shared.lock();
        let job = loop {
            if let Some(job) = q.jobs.pop_front() {
                break job;
            }
            if q.closed {
                return;
            }
            if scratch.is_held() {
                let (guard, timeout) = shared
                    .ready
                    .wait_timeout(q, IDLE)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                q = guard;
                if timeout.timed_out() && q.jobs.is_empty() {
                    // Idle: give the working memory back before waiting without a limit.
                    drop(q);
                    scratch = Scratch::default();
                    q = shared.lock();
                }
            } else {
                q = shared
                    .ready
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        drop(q);
        // A panicking job must not take the thread with it; its memory is dropped with it,
        // since a half-written block is of no use.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut scratch))).is_err() {
            scratch = Scratch::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::{self, Cost};

    const CHEAP: Cost = Cost {
        m_kib: 256,
        t: 1,
        p: 1,
    };

    #[tokio::test]
    async fn runs_jobs_and_drops_memory_when_idle() {
        let pool = HashPool::new(2);
        let h = pool
            .run(|s| password::hash_in(s, "violet-tractor-41-moss", CHEAP))
            .await
            .unwrap()
            .unwrap();
        let held = pool
            .run(move |s| {
                (
                    password::verify_in(s, &h, "violet-tractor-41-moss"),
                    s.is_held(),
                )
            })
            .await
            .unwrap();
        assert_eq!(held, (true, true), "verified, memory kept while busy");
        tokio::time::sleep(IDLE * 3).await;
        // Both threads have been idle for longer than IDLE: whichever takes this job has
        // given its block back and starts without one.
        let held = pool.run(|s| s.is_held()).await.unwrap();
        assert!(!held, "working memory given back after {IDLE:?} idle");
        let panicked = pool.run(|_| -> u8 { panic!("job panics") }).await;
        assert!(panicked.is_err());
        assert_eq!(pool.run(|_| 7).await.unwrap(), 7, "thread survives a panic");
        assert_eq!(pool.queued(), 0);
    }
}
