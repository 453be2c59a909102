//! The relay's read buffers: memory that follows the load.
//!
//! Two things decide what a busy host's consoles cost, and this module holds both:
//!
//! - **Where a buffer's memory comes from.** A buffer of a page or more is its own
//!   anonymous mapping ([`memmap2::MmapMut::map_anon`]), not a heap block. Dropping it
//!   unmaps it, so a session that goes quiet gives its pages back to the kernel at once,
//!   and the pages a buffer never touched (a 256 KiB buffer that only ever saw 20 KiB
//!   reads) are never resident. With heap blocks, glibc kept the freed 256 KiB blocks
//!   (its mmap threshold rises to the size of the first block freed): a host that had
//!   1,000 busy consoles kept about 120 KiB per session after they went quiet, as much
//!   as a relay that never frees anything (bench/README.md has the figures).
//! - **How large a buffer is** ([`Sizer`]). It starts at [`START`], as large as the
//!   bare relay's, and doubles (up to the configured maximum) only while reads keep
//!   filling it back to back: a stream (one large download) gets the large frames that
//!   make it fast, while a console's bursts of up to a few hundred KiB with gaps in
//!   between never grow it. Reads that stay small bring it back to [`START`]. What all
//!   sessions together hold above [`START`] is bounded by [`GROWTH_BUDGET`]: on a host
//!   so loaded that every console's reads come back full, buffers stay at [`START`]
//!   instead of all growing at once.
//!
//! Mapping a buffer is a system call and the first touch of each page a fault; both
//! happen once per busy period (the relay frees buffers after half a second without
//! reads), never per read.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};

/// First size of a buffer (bytes, header room included for the down direction): the
/// bare relay's 64 KiB, so bursts cost no more system calls than there.
pub(super) const START: usize = 64 << 10;
/// Consecutive reads that filled the buffer before it doubles: 8 × 64 KiB is 512 KiB
/// back to back, more than a framebuffer burst and less than a tenth of what a stream
/// moves in a second.
const GROW_AFTER: u32 = 8;
/// Consecutive reads under half the buffer before a grown buffer shrinks to [`START`].
const SHRINK_AFTER: u32 = 32;
/// What all buffers of the process may hold above [`START`] together: room for 32
/// streams at 256 KiB each way; past it, buffers stay at their size.
const GROWTH_BUDGET: usize = 16 << 20;
/// Bytes of [`GROWTH_BUDGET`] granted to sizers now.
static GROWN: AtomicUsize = AtomicUsize::new(0);

/// Smallest buffer given its own mapping: one page. Smaller ones (only `close_with`
/// asks for them) come from the heap.
const MAP_MIN: usize = 4096;

/// A zeroed byte buffer of fixed length; empty means "no buffer held".
#[derive(Default)]
pub(super) struct Buffer(Mem);

#[derive(Default)]
enum Mem {
    /// No buffer (the quiet state), or a small one, or the fallback if mapping failed.
    #[default]
    None,
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
}

impl Buffer {
    /// A buffer of `len` zero bytes: its own mapping when `len` is a page or more and
    /// the kernel grants it (a process near `vm.max_map_count` falls back to the heap).
    pub(super) fn new(len: usize) -> Buffer {
        if len >= MAP_MIN {
            if let Ok(map) = memmap2::MmapMut::map_anon(len) {
                return Buffer(Mem::Mapped(map));
            }
        }
        Buffer(Mem::Heap(vec![0; len]))
    }

    /// Bytes held (0 when there is no buffer).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.len()
    }
}

impl Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Mem::None => &[],
            Mem::Heap(v) => v,
            Mem::Mapped(m) => m,
        }
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Mem::None => &mut [],
            Mem::Heap(v) => v,
            Mem::Mapped(m) => m,
        }
    }
}

/// The size one direction's next buffer should have, learned from its reads.
#[derive(Debug)]
pub(super) struct Sizer {
    size: usize,
    max: usize,
    full_reads: u32,
    small_reads: u32,
    /// Bytes above the start size taken from [`GROWTH_BUDGET`]; given back on shrink,
    /// reset and drop.
    granted: usize,
}

impl Sizer {
    /// Starts at [`START`] (or `max` when that is smaller); never above `max`.
    pub(super) fn new(max: usize) -> Sizer {
        Sizer {
            size: START.min(max),
            max,
            full_reads: 0,
            small_reads: 0,
            granted: 0,
        }
    }

    /// Sets the size, taking the growth above the start size from the budget; false
    /// (and no change) when the budget has no room.
    fn resize(&mut self, size: usize) -> bool {
        let want = size.saturating_sub(START.min(self.max));
        if want > self.granted {
            let more = want - self.granted;
            let taken = GROWN.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |g| {
                (g + more <= GROWTH_BUDGET).then_some(g + more)
            });
            if taken.is_err() {
                return false;
            }
        } else {
            GROWN.fetch_sub(self.granted - want, Ordering::Relaxed);
        }
        self.granted = want;
        self.size = size;
        true
    }

    /// The size a buffer allocated now gets.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// Records a read of `n` bytes into `room` free bytes of the current buffer.
    pub(super) fn read(&mut self, n: usize, room: usize) {
        if n >= room {
            self.full_reads += 1;
            self.small_reads = 0;
            if self.full_reads >= GROW_AFTER && self.size < self.max {
                self.resize((self.size * 2).min(self.max));
                self.full_reads = 0;
            }
        } else {
            self.full_reads = 0;
            if n < self.size / 2 && self.size > START {
                self.small_reads += 1;
                if self.small_reads >= SHRINK_AFTER {
                    self.resize(START.min(self.max));
                    self.small_reads = 0;
                }
            } else {
                self.small_reads = 0;
            }
        }
    }

    /// The session went quiet and freed its buffer: the next busy period starts small.
    pub(super) fn reset(&mut self) {
        self.resize(START.min(self.max));
        (self.full_reads, self.small_reads) = (0, 0);
    }
}

impl Drop for Sizer {
    fn drop(&mut self) {
        GROWN.fetch_sub(self.granted, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_and_sized_and_empty_means_none() {
        for len in [0, 1024, 4096, 64 << 10] {
            let b = Buffer::new(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0));
        }
        let none = Buffer::default();
        assert!(none.is_empty());
        assert_eq!(none.capacity(), 0);
        let mut b = Buffer::new(8192);
        b[8191] = 7;
        assert_eq!(b[8191], 7);
    }

    #[test]
    fn the_size_grows_only_while_reads_fill_the_buffer_back_to_back() {
        let mut s = Sizer::new(256 << 10);
        assert_eq!(s.size(), START);
        // A 256 KiB burst is four full reads, then the socket drains: no growth.
        for _ in 0..10 {
            for _ in 0..4 {
                s.read(START, START);
            }
            s.read(100, START);
        }
        assert_eq!(s.size(), START);
        // A stream: full reads back to back double it up to the maximum.
        for _ in 0..100 {
            let size = s.size();
            s.read(size, size);
        }
        assert_eq!(s.size(), 256 << 10);
        // Small reads for a while bring it back.
        for _ in 0..SHRINK_AFTER {
            s.read(1000, 256 << 10);
        }
        assert_eq!(s.size(), START);
    }

    #[test]
    fn growth_beyond_the_budget_is_refused_and_given_back_on_drop() {
        let mut s = Sizer::new(usize::MAX);
        assert!(
            !s.resize(GROWTH_BUDGET + 2 * START),
            "more than the whole budget"
        );
        assert_eq!(s.size(), START);
        assert!(s.resize(2 * START));
        assert_eq!(s.granted, START);
        drop(s);
        // Other tests run at once and take from the same budget: only check that
        // this sizer's grant came back (the budget is far larger than they use).
        assert!(GROWN.load(Ordering::Relaxed) <= GROWTH_BUDGET);
    }

    #[test]
    fn the_maximum_caps_the_start_and_reset_starts_over() {
        assert_eq!(Sizer::new(16 << 10).size(), 16 << 10);
        let mut s = Sizer::new(1 << 20);
        for _ in 0..GROW_AFTER {
            s.read(START, START);
        }
        assert_eq!(s.size(), 2 * START);
        s.reset();
        assert_eq!(s.size(), START);
    }
}
