//! A registered producer's lane: a single-producer, single-consumer ring of
//! request slots that belong to the producer, read in order by one worker.
//!
//! Disruptor-style: no index travels between the threads. A request slot
//! is `1 + ceil(width / 15)` consecutive cache lines: a header (submit time,
//! deadline), then the row. The producer writes the row, then the header;
//! the header's sequence tag, stored last with release, publishes the
//! request. The worker polls only the next slot's header tag (acquire), then
//! reads the row. After writing, the producer `cldemote`s the slot's lines
//! to the shared L3, so the worker's misses are served there instead of by
//! a snoop into the producer's core. The result goes back through the
//! request's completion [`Slot`](super::slot::Slot), which this lane owns
//! too (`base..base + depth` in the engine's slot array): the producer may
//! reuse request slot `j` only once completion slot `base + j` is `FREE`
//! again, that is once the worker has read the request, published its
//! result, and the result was taken (or abandoned). A lane is therefore
//! full when the request `depth` submissions ago is still in flight.
//!
//! Measured alternatives (`examples/lane_probe.rs`, one request at a time,
//! round-trip p50, logistic model / 119-feature XGBoost), each worse than
//! what is kept: the worker polling the tags of *every* line of the slot
//! (605–650 ns vs 555–600 ns logistic: its reads kept taking lines back
//! from the producer mid-write); headers in an array apart from the rows
//! (685–700 ns); the row as plain memory copied with vector moves instead
//! of 4-byte atomic stores (logistic 633–640 vs 513–520 ns, 119-feature
//! 1,334–1,340 vs 1,181–1,188 ns). Every line still carries the tag, as in
//! the layout that measured fastest; only the header's is polled.
//!
//! Tags: request `n` (0-based, per lane) is tagged `n + 1` (as `u32`,
//! wrapping): a slot's previous request carries a tag `depth` lower, and
//! `depth` < 2^32, so a stale header never matches. Everything shared is an
//! atomic (no `unsafe`); the protocol is model-checked with loom
//! (`tests/loom_lane.rs`).

use super::slot::Slot;
use super::sync::{AtomicBool, AtomicU32, Ordering};

/// Values per line after the tag.
const PER_LINE: usize = 15;

/// One cache line of a request slot: its tag, then 15 values (`f32` bits;
/// the first line holds the submit time and deadline instead).
#[repr(C, align(64))]
pub(crate) struct Line {
    tag: AtomicU32,
    vals: [AtomicU32; PER_LINE],
}

impl Line {
    fn new() -> Line {
        Line {
            tag: AtomicU32::new(0),
            vals: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// The lane's shared part (the producer's and the worker's cursors live
/// with each of them).
pub struct Lane {
    lines: Box<[Line]>,
    /// Lines per request slot: a header, then the row.
    per_req: usize,
    /// Request slots - 1 (a power of two minus one).
    mask: u64,
    /// Features per row.
    width: usize,
    /// Index of this lane's first completion slot in the engine's array.
    pub base: u32,
    /// Which region of completion slots this lane uses (returned to the
    /// engine when the worker drops the lane).
    pub region: usize,
    /// Set when the producer is dropped: nothing more will come.
    closed: AtomicBool,
}

/// A request as the worker reads it from a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Index of the request's completion slot (engine-wide).
    pub slot: u32,
    /// Submit time, ns since the engine's epoch.
    pub submitted: u64,
    /// Queue-wait deadline, ns (0 = none).
    pub deadline: u64,
}

impl Lane {
    /// A lane of `depth` request slots (a power of two) for rows of
    /// `width` values, using completion slots `base..base + depth` (region
    /// `region`).
    pub fn new(depth: usize, width: usize, base: u32, region: usize) -> Lane {
        assert!(
            depth.is_power_of_two(),
            "lane depth {depth} is not a power of two"
        );
        let per_req = 1 + width.div_ceil(PER_LINE);
        Lane {
            lines: (0..depth * per_req).map(|_| Line::new()).collect(),
            per_req,
            mask: depth as u64 - 1,
            width,
            base,
            region,
            closed: AtomicBool::new(false),
        }
    }

    #[inline]
    fn slot_lines(&self, seq: u64) -> &[Line] {
        let j = (seq & self.mask) as usize;
        &self.lines[j * self.per_req..(j + 1) * self.per_req]
    }

    /// The completion slot (engine-wide index) of request `seq`.
    pub fn completion_slot(&self, seq: u64) -> u32 {
        self.base + (seq & self.mask) as u32
    }

    /// Producer: write request `seq`, row first, header last, then demote
    /// the lines to L3. The caller has seen (acquire) its completion slot
    /// `FREE`, so the worker is done with the request that used this place
    /// before.
    fn write(&self, seq: u64, row: &[f32], submitted: u64, deadline: u64) {
        debug_assert_eq!(row.len(), self.width);
        let tag = tag_of(seq);
        let lines = self.slot_lines(seq);
        for (line, chunk) in lines[1..].iter().zip(row.chunks(PER_LINE)) {
            for (cell, v) in line.vals.iter().zip(chunk) {
                cell.store(v.to_bits(), Ordering::Relaxed);
            }
            line.tag.store(tag, Ordering::Release);
        }
        let h = &lines[0];
        for (cell, v) in h
            .vals
            .iter()
            .zip(split(submitted).into_iter().chain(split(deadline)))
        {
            cell.store(v, Ordering::Relaxed);
        }
        h.tag.store(tag, Ordering::Release);
        for line in lines {
            super::sync::demote(line);
        }
    }

    /// Producer: publish `row` as request `seq` if its place is free, that
    /// is if `completion` (the slot at [`Lane::completion_slot`]`(seq)`) is
    /// FREE (acquire), marking it PENDING. `false` when the lane is full
    /// (nothing written).
    #[inline]
    pub fn try_submit(
        &self,
        completion: &Slot,
        seq: u64,
        row: &[f32],
        submitted: u64,
        deadline: u64,
    ) -> bool {
        if !completion.is_free() {
            return false;
        }
        // Ordered before the worker's DONE by the header's release/acquire.
        completion
            .state
            .store(super::slot::PENDING, Ordering::Relaxed);
        self.write(seq, row, submitted, deadline);
        true
    }

    /// Worker: whether request `seq` has been published (its header tag,
    /// stored last).
    #[inline]
    pub fn ready(&self, seq: u64) -> bool {
        self.slot_lines(seq)[0].tag.load(Ordering::Acquire) == tag_of(seq)
    }

    /// Worker: read request `seq` (after [`Lane::ready`] said so) into
    /// `row` (`width` values).
    pub fn read(&self, seq: u64, row: &mut [f32]) -> Taken {
        let lines = self.slot_lines(seq);
        for (line, chunk) in lines[1..].iter().zip(row.chunks_mut(PER_LINE)) {
            for (v, cell) in chunk.iter_mut().zip(line.vals.iter()) {
                *v = f32::from_bits(cell.load(Ordering::Relaxed));
            }
        }
        Taken {
            slot: self.completion_slot(seq),
            submitted: self.header_word(seq, 0),
            deadline: self.header_word(seq, 2),
        }
    }

    /// The `u64` at word `i` of request `seq`'s header (0: submit time,
    /// 2: deadline), as `write` stored it.
    fn header_word(&self, seq: u64, i: usize) -> u64 {
        let h = &self.slot_lines(seq)[0].vals;
        join(
            h[i].load(Ordering::Relaxed),
            h[i + 1].load(Ordering::Relaxed),
        )
    }

    /// Producer: the sequence number (modulo the lane's depth, which is
    /// all the lane looks at) of the request whose completion slot is `ix`,
    /// if `ix` is this lane's.
    pub fn seq_of(&self, ix: u32) -> Option<u64> {
        let j = u64::from(ix.checked_sub(self.base)?);
        (j <= self.mask).then_some(j)
    }

    /// The completion slot of the request before `seq` (in this lane), if
    /// it is another place.
    pub fn previous_slot(&self, seq: u64) -> Option<u32> {
        (self.mask > 0).then(|| self.completion_slot(seq.wrapping_sub(1)))
    }

    /// Producer: request `seq`'s submit time (its own write).
    pub fn submitted_at(&self, seq: u64) -> u64 {
        self.header_word(seq, 0)
    }

    /// Producer: no more requests will come (called on drop, after its
    /// last write).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Worker: the producer has closed the lane. Requests written before
    /// the close are visible to a [`Lane::ready`] check made after this
    /// returned `true`.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

fn tag_of(seq: u64) -> u32 {
    (seq as u32).wrapping_add(1)
}

fn split(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

fn join(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_ready_once_its_header_is_published() {
        let lane = Lane::new(2, 20, 7, 0);
        assert!(!lane.ready(0));
        let row: Vec<f32> = (0..20).map(|i| i as f32 * 0.5).collect();
        lane.write(0, &row, 123, u64::MAX - 5);
        assert!(lane.ready(0));
        assert!(!lane.ready(1));
        let mut back = vec![0f32; 20];
        let t = lane.read(0, &mut back);
        assert_eq!(back, row);
        assert_eq!(
            t,
            Taken {
                slot: 7,
                submitted: 123,
                deadline: u64::MAX - 5
            }
        );
        // Request 2 reuses slot 0: request 0's tags do not make it ready.
        assert!(!lane.ready(2));
        assert_eq!(lane.completion_slot(2), 7);
        assert_eq!(lane.completion_slot(3), 8);
        // A request whose header is not (yet) published is not ready.
        lane.write(1, &row, 1, 0);
        lane.slot_lines(1)[0].tag.store(0, Ordering::Relaxed);
        assert!(!lane.ready(1));
        lane.slot_lines(1)[0]
            .tag
            .store(tag_of(1), Ordering::Release);
        assert!(lane.ready(1));
    }
}
