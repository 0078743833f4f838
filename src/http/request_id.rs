//! Request ids: unique in the process, drawn without touching memory the other worker
//! threads write. Each thread takes ids in blocks from the process counter, so ids stay
//! unique but are ordered only within a thread: one counter bumped per request made both
//! cores write the same cache line on every request.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

/// Ids a thread takes at once.
const BLOCK: u64 = 4096;

static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The next id of this thread's block, and the end of the block.
    static NEXT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A fresh request id (never 0).
pub fn next() -> u64 {
    NEXT.with(|c| {
        let (mut id, mut end) = c.get();
        if id == end {
            id = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed) + 1;
            end = id + BLOCK;
        }
        c.set((id + 1, end));
        id
    })
}

/// `id` as a header value, in one allocation (`HeaderValue::from(u64)` formats into a
/// `BytesMut` and freezes it: two). Sharing one per-thread buffer among the values cost as
/// many instructions as the allocation it saved (splitting, reference counts).
pub fn header_value(id: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    // Digits are always a valid header value.
    HeaderValue::from_str(digits.format(id)).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_across_threads_and_render_as_decimal() {
        let per_thread = usize::try_from(BLOCK).unwrap() * 2 + 7;
        let threads: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..per_thread)
                        .map(|_| {
                            let id = next();
                            assert_eq!(header_value(id), id.to_string().as_str());
                            id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            let ids = t.join().unwrap();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ordered within a thread"
            );
            for id in ids {
                assert!(id > 0);
                assert!(seen.insert(id), "{id} handed out twice");
            }
        }
    }

    #[test]
    fn extreme_ids_render() {
        assert_eq!(header_value(u64::MAX), u64::MAX.to_string().as_str());
        assert_eq!(header_value(1), "1");
    }
}
