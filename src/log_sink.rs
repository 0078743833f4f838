//! Where log lines go: every thread appends whole lines to one shared buffer, and a background
//! thread writes the buffer out every [`INTERVAL`] (sooner when it fills).
//!
//! A request's access line then costs a short lock and a copy: no write(2), and no wake-up of
//! another thread. Measured under load on two cores, a channel to a writer thread cost about
//! 0.7 system calls per request (futex wake-ups, `sched_yield` spins, writes) plus a third
//! runnable thread competing with the workers. Lines are never dropped: past [`HARD_CAP`] the
//! appending thread waits for the writer (back-pressure), and dropping the [`FlushGuard`]
//! writes everything still buffered. Lines buffered when the process is killed are lost, as
//! they would be in any user-space log buffer.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// How long a line may wait in the buffer.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// Buffered bytes that wake the writer early.
const SOFT_CAP: usize = 256 * 1024;
/// Buffered bytes past which appenders wait for the writer.
pub const HARD_CAP: usize = 4 * 1024 * 1024;

type Out = Box<dyn Write + Send>;

struct Shared {
    // Lock order, everywhere: `out`, then `buf`. Whoever writes holds `out` from taking the
    // batch until it is written, so batches reach the output in the order they were buffered.
    out: Mutex<Out>,
    buf: Mutex<Vec<u8>>,
    writer: OnceLock<Thread>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain bytes behind; keep logging.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Write out whatever is buffered. `spare` is swapped in to keep one allocation per side.
    fn flush(&self, spare: &mut Vec<u8>) {
        let mut out = lock(&self.out);
        std::mem::swap(&mut *lock(&self.buf), spare);
        if !spare.is_empty() {
            // Nowhere to report a failing log output; the next batch tries again.
            let _ = out.write_all(spare);
            let _ = out.flush();
            spare.clear();
        }
    }
}

/// A cloneable handle that appends lines; also a `tracing` writer.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
    /// Whether lines start with their journal priority (see [`stderr_is_journal`]).
    journal: bool,
}

/// Whether standard error is a stream systemd connected to its journal.
///
/// systemd names that stream's device and inode in `JOURNAL_STREAM`. Both are compared with
/// what stderr is now, because a process started from a shell inside a service inherits the
/// variable without the stream.
#[must_use]
pub fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    // A duplicate of the descriptor, as a file, to ask for its metadata (fstat).
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The prefix (sd-daemon(3)) by which the journal learns a line's priority.
///
/// Without it every line is stored as `info`: `journalctl -p warning` finds no warning, and
/// journald's rate limit, which keeps one budget per priority, lets a flood of access lines
/// suppress the errors with them.
#[must_use]
pub fn priority(level: tracing::Level) -> &'static [u8] {
    match level {
        tracing::Level::ERROR => b"<3>",
        tracing::Level::WARN => b"<4>",
        tracing::Level::INFO => b"<6>",
        _ => b"<7>",
    }
}

/// Stops the writer thread and writes what is left, when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogSink {
    /// A sink writing to `out` from a background thread; with `journal`, each line starts
    /// with its priority.
    pub fn new(
        out: impl Write + Send + 'static,
        journal: bool,
    ) -> std::io::Result<(Self, FlushGuard)> {
        let shared = Arc::new(Shared {
            out: Mutex::new(Box::new(out) as Out),
            buf: Mutex::new(Vec::with_capacity(64 * 1024)),
            writer: OnceLock::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("posta-log".into())
            .spawn(move || {
                let mut spare = Vec::with_capacity(64 * 1024);
                loop {
                    let stopping = s.stop.load(Ordering::Acquire);
                    s.flush(&mut spare);
                    if stopping {
                        break;
                    }
                    std::thread::park_timeout(INTERVAL);
                }
            })?;
        let _ = shared.writer.set(thread.thread().clone());
        Ok((
            Self {
                shared: shared.clone(),
                journal,
            },
            FlushGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// What a line of `level` starts with: its journal priority, or nothing.
    #[must_use]
    pub fn prefix(&self, level: tracing::Level) -> &'static [u8] {
        if self.journal { priority(level) } else { b"" }
    }

    /// Append one or more whole lines.
    pub fn append(&self, bytes: &[u8]) {
        let len = {
            let mut buf = lock(&self.shared.buf);
            buf.extend_from_slice(bytes);
            buf.len()
        };
        if len >= HARD_CAP {
            // The writer is behind (a blocked pipe, a slow disk): write here, in order.
            self.shared.flush(&mut Vec::new());
        } else if len >= SOFT_CAP
            && let Some(t) = self.shared.writer.get()
        {
            t.unpark();
        }
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSink")
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // Anything appended after the writer's last pass.
        self.shared.flush(&mut Vec::new());
    }
}

/// The writer `tracing` formats each event into (it writes a whole event per call).
#[derive(Debug)]
pub struct EventWriter<'a> {
    sink: &'a LogSink,
    prefix: &'static [u8],
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.prefix.is_empty() {
            self.sink.append(buf);
        } else {
            // The journal reads a priority at the start of every line of a multi-line event.
            let mut lines = Vec::with_capacity(buf.len() + 4 * self.prefix.len());
            for line in buf.split_inclusive(|&b| b == b'\n') {
                lines.extend_from_slice(self.prefix);
                lines.extend_from_slice(line);
            }
            self.sink.append(&lines);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = EventWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            sink: self,
            prefix: b"",
        }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        EventWriter {
            sink: self,
            prefix: self.prefix(*meta.level()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_from_many_threads() {
        let out = Captured::default();
        let (sink, guard) = LogSink::new(out.clone(), false).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    // Enough to pass the hard cap, so appenders also write themselves.
                    for i in 0..40_000 {
                        sink.append(format!("t{t} {i:06} {}\n", "x".repeat(64)).as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(lock(&out.0).clone()).unwrap();
        for t in 0..4 {
            let seq: Vec<usize> = text
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .map(|l| l[3..9].parse().unwrap())
                .collect();
            assert_eq!(seq, (0..40_000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    fn logged(journal: bool) -> String {
        let out = Captured::default();
        let (sink, guard) = LogSink::new(out.clone(), journal).unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(sink)
            .without_time()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("store failed");
            tracing::warn!("first line\nsecond line");
            tracing::info!("listening");
            tracing::debug!("detail");
        });
        drop(guard);
        String::from_utf8(lock(&out.0).clone()).unwrap()
    }

    #[test]
    fn journal_lines_start_with_their_priority() {
        let text = logged(true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("<3>ERROR") && lines[0].ends_with("store failed"));
        // Each line of a multi-line event: the journal stores them as separate entries.
        assert!(lines[1].starts_with("<4> WARN") && lines[1].ends_with("first line"));
        assert_eq!(lines[2], "<4>second line");
        assert!(lines[3].starts_with("<6> INFO") && lines[3].ends_with("listening"));
        assert!(lines[4].starts_with("<7>DEBUG") && lines[4].ends_with("detail"));
        let plain = logged(false);
        assert!(plain.lines().all(|l| !l.starts_with('<')), "{plain}");
        assert_eq!(plain.lines().count(), 5);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a plain thread, no runtime to block
    fn a_quiet_line_is_written_within_the_interval() {
        let out = Captured::default();
        let (sink, _guard) = LogSink::new(out.clone(), false).unwrap();
        sink.append(b"hello\n");
        let deadline = std::time::Instant::now() + INTERVAL * 50;
        while lock(&out.0).is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(INTERVAL / 4);
        }
        assert_eq!(&*lock(&out.0), b"hello\n");
    }
}
