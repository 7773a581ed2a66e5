//! Event buffers handed back when an event is dropped, and reused by the next event
//! serialised, instead of freed and allocated again.
//!
//! Natively, `track()` serialises each event on the caller's thread ([`crate::message::seal`])
//! into a buffer that the background thread drops once the event is stored or delivered.
//! With glibc's allocator, freeing a block that another thread allocated takes that
//! thread's arena lock (for blocks over the fastbin size, as an event's JSON is), and the
//! caller takes the same lock whenever an allocation misses its thread cache, which it
//! always does when every block it allocates is freed elsewhere. The two threads contend,
//! and the caller's tail shows it: in the benchmark report's burst of 100,000 calls, p99
//! of 10-18 us in a quarter of the rounds where the others were at 3-4 us. A buffer put
//! back on a shelf and taken by the next `track()` is neither freed nor allocated.
//!
//! The shelf is shared by every client of the process and never waited for: a `track()`
//! that finds it busy allocates, an event dropped while it is busy frees its buffer, as
//! before. It holds at most [`SHELF_BYTES`] of buffers, each at most [`MAX_BUFFER`]: what
//! it keeps after the traffic stops is bounded, and an event a hundred times the usual
//! size does not pin its buffer.

use std::sync::Mutex;

/// The most the shelf keeps, in bytes of buffer capacity: about 400 buffers of a typical
/// 600-byte event, more than one commit of [`crate::Policy::commit_max_events`] (256) or
/// one batch of [`crate::Policy::max_batch_events`] (500) needs, since the background
/// thread drops events a commit's or a batch's worth at a time while callers take one per
/// call. 256 KiB is what an idle SDK may keep after a burst.
pub const SHELF_BYTES: usize = 256 * 1024;

/// The largest buffer the shelf keeps: events are usually under 1 KB; a rare large one
/// (up to [`crate::Policy::max_event_bytes`]) is freed rather than lent to a small one.
pub const MAX_BUFFER: usize = 4096;

/// A shelf of buffers; [`EVENT_BUFFERS`] is the one events use.
#[derive(Debug)]
pub struct Shelf {
    inner: Mutex<Stock>,
}

#[derive(Debug)]
struct Stock {
    buffers: Vec<Vec<u8>>,
    /// Sum of the buffers' capacities.
    bytes: usize,
}

/// The shelf of events' JSON buffers, for every client of the process.
pub static EVENT_BUFFERS: Shelf = Shelf::new();

impl Shelf {
    /// An empty shelf.
    pub const fn new() -> Shelf {
        Shelf {
            inner: Mutex::new(Stock {
                buffers: Vec::new(),
                bytes: 0,
            }),
        }
    }

    /// An empty buffer for about `hint` bytes: the last one given back when its capacity
    /// is between half and twice `hint`, else a new one of `hint`. Never waits.
    pub fn take(&self, hint: usize) -> Vec<u8> {
        let last = self.inner.try_lock().ok().and_then(|mut stock| {
            let buf = stock.buffers.pop()?;
            stock.bytes -= buf.capacity();
            Some(buf)
        });
        match last {
            Some(mut buf) if (hint / 2..=hint.saturating_mul(2)).contains(&buf.capacity()) => {
                buf.clear();
                buf
            }
            // One of another size (dropped here, after the lock), or none.
            _ => Vec::with_capacity(hint),
        }
    }

    /// Puts `buf` on the shelf if it is at most [`MAX_BUFFER`] and fits in
    /// [`SHELF_BYTES`]; frees it otherwise, or if the shelf is busy. Never waits.
    pub fn give(&self, buf: Vec<u8>) {
        let capacity = buf.capacity();
        if capacity == 0 || capacity > MAX_BUFFER {
            return;
        }
        if let Ok(mut stock) = self.inner.try_lock() {
            if stock.bytes + capacity <= SHELF_BYTES {
                stock.bytes += capacity;
                stock.buffers.push(buf);
            }
        }
    }

    /// How many buffers the shelf holds, and their capacity in bytes (`None` while busy).
    pub fn stock(&self) -> Option<(usize, usize)> {
        let stock = self.inner.try_lock().ok()?;
        Some((stock.buffers.len(), stock.bytes))
    }
}

impl Default for Shelf {
    fn default() -> Self {
        Shelf::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer given back is the next one taken, empty, when its size suits.
    #[test]
    fn a_buffer_given_back_is_taken_again() {
        let shelf = Shelf::new();
        let mut buf = shelf.take(600);
        assert!(buf.capacity() >= 600);
        buf.extend_from_slice(b"{\"event\":\"x\"}");
        let ptr = buf.as_ptr();
        shelf.give(buf);
        assert_eq!(shelf.stock().unwrap().0, 1);
        let again = shelf.take(620);
        assert_eq!(again.as_ptr(), ptr, "the same allocation");
        assert!(again.is_empty());
        assert_eq!(shelf.stock().unwrap(), (0, 0));
        // Empty: a new one.
        assert!(shelf.take(100).capacity() >= 100);
    }

    /// A buffer much smaller or larger than the one wanted is not lent: it is freed, and a
    /// buffer of the wanted size allocated.
    #[test]
    fn a_buffer_of_another_size_is_not_lent() {
        let shelf = Shelf::new();
        shelf.give(Vec::with_capacity(3000));
        let small = shelf.take(500);
        assert!(small.capacity() >= 500 && small.capacity() < 3000);
        assert_eq!(shelf.stock().unwrap(), (0, 0), "the large one was freed");
        shelf.give(Vec::with_capacity(100));
        assert!(shelf.take(1000).capacity() >= 1000);
    }

    /// The shelf keeps at most `SHELF_BYTES`, no buffer over `MAX_BUFFER` and none empty.
    #[test]
    fn the_shelf_is_bounded() {
        let shelf = Shelf::new();
        shelf.give(Vec::with_capacity(MAX_BUFFER + 1));
        shelf.give(Vec::new());
        assert_eq!(shelf.stock().unwrap(), (0, 0));
        for _ in 0..2 * SHELF_BYTES / 1000 {
            shelf.give(Vec::with_capacity(1000));
        }
        let (count, bytes) = shelf.stock().unwrap();
        assert!(
            bytes <= SHELF_BYTES && bytes > SHELF_BYTES - 1100,
            "{bytes}"
        );
        assert_eq!(count, bytes / 1000);
    }

    /// A busy shelf is not waited for: `take` allocates, `give` frees, nothing blocks.
    #[test]
    fn a_busy_shelf_is_not_waited_for() {
        let shelf = Shelf::new();
        shelf.give(Vec::with_capacity(600));
        let held = shelf.inner.lock().unwrap();
        let buf = shelf.take(600);
        assert!(buf.capacity() >= 600);
        shelf.give(buf);
        assert_eq!(held.buffers.len(), 1, "neither taken nor added while busy");
        drop(held);
        assert_eq!(shelf.stock().unwrap().0, 1);
    }
}
