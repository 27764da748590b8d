//! Completion slots: preallocated places where a request's row, scores,
//! outcome and stage timestamps live between submit and completion.
//!
//! Everything a caller and a worker share is an atomic (floats as `u32`
//! bits), so no `unsafe` is needed: the slot index travels through the
//! work queue, whose push/pop are release/acquire, and the `state` word
//! publishes the result. Relaxed loads and stores of the data are ordered
//! by those two edges.

use super::sync::{AtomicU32, AtomicU64, Ordering};

use crate::error::{NonFiniteKind, ScoreError};

/// The slot is on the free list.
pub(crate) const FREE: u32 = 0;
/// Queued or being scored; the caller may poll.
pub(crate) const PENDING: u32 = 1;
/// Pending, and the caller is asleep on `state` (the worker must wake it).
pub(crate) const PARKED: u32 = 2;
/// Result written; the caller may read it.
pub(crate) const DONE: u32 = 3;
/// The caller dropped its ticket; the worker frees the slot when done.
pub(crate) const ABANDONED: u32 = 4;
/// One caller is reading the result of a detached ticket.
pub(crate) const TAKING: u32 = 5;
/// A lane's producer took the request back to score it on its own thread
/// (the worker, when it gets there, only recycles the slot).
pub(crate) const RECLAIMED: u32 = 6;

/// Why a request produced no scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The row was invalid (width, NaN/inf per policy) or the engine failed.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// The request waited in the queue longer than its deadline and was not
    /// scored. Retry, shed load, or use a fallback.
    #[error("deadline exceeded in the queue")]
    DeadlineExceeded,
    /// The model panicked on this request; the panic was contained and the
    /// worker carries on. Report it.
    #[error("the model panicked on this request (contained)")]
    Panicked,
}

/// Outcome codes stored in a slot.
const OK: u32 = 0;
const DEADLINE: u32 = 1;
const PANICKED: u32 = 2;
const WIDTH: u32 = 3;
const OUTPUT: u32 = 4;
const NON_FINITE: u32 = 5;
const ENGINE: u32 = 6;
const OUT_OF_BOUNDS: u32 = 7;

/// Stage timestamps of one request, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageTimes {
    /// From submit to a worker taking the request.
    pub queue_wait_ns: u64,
    /// Scoring on the worker.
    pub compute_ns: u64,
    /// From submit to the result being published.
    pub end_to_end_ns: u64,
    /// The version of the model that scored the request (registry version,
    /// or the ONNX `model_version` of a fixed model). For a request that
    /// failed, the version that was serving when the worker took it.
    pub model_version: u64,
    /// Scored on the caller's own thread because no worker had finished it
    /// in time ([`Producer::with_reclaim`](super::Producer::with_reclaim));
    /// `queue_wait_ns` is then the wait before the caller took it back.
    pub reclaimed: bool,
}

/// What a worker does after publishing a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPublish {
    /// The caller will find it.
    Nothing,
    /// A caller is asleep on the state word: wake it.
    Wake,
    /// The ticket was dropped: recycle the slot.
    Recycle,
}

/// Scores kept on a slot's completion line (wider outputs live apart).
const INLINE_SCORES: usize = 4;

/// One request's place. Laid out for the two hand-offs: the first 64
/// bytes (state, outcome, times, version, up to 4 scores) are written by
/// the worker and read by the caller, so a caller that sees `DONE` has the
/// scores on the same cache line; the next line is written by the producer
/// and read by the worker. The row lives in [`Rows`], at an address known
/// from the slot index alone, so the worker fetches it in parallel with
/// this slot instead of after it.
#[repr(C)]
pub struct Slot {
    /// FREE, PENDING, PARKED, DONE, ABANDONED, TAKING or RECLAIMED.
    pub state: AtomicU32,
    outcome: [AtomicU32; 3],
    /// submitted, started, completed (ns since the engine's epoch).
    times: [AtomicU64; 3],
    /// The model version that scored the request.
    pub model_version: AtomicU64,
    scores: [AtomicU32; INLINE_SCORES],
    /// Bumped each time the slot is handed out: detached ticket ids carry it,
    /// so a stale or repeated id is refused instead of reading another
    /// request's result.
    pub generation: AtomicU32,
    /// Deadline for the queue wait, ns; 0 = none.
    pub deadline_ns: AtomicU64,
    /// Callback tag + 1, or 0 for a ticket request.
    pub callback_tag: AtomicU64,
    /// Scores beyond `INLINE_SCORES` (empty for most models).
    wide: Box<[AtomicU32]>,
}

/// One cache line of row values.
#[repr(align(64))]
struct Line([AtomicU32; 16]);

/// Every slot's row, `lines_per_row` cache lines each, in one array.
pub(crate) struct Rows {
    lines: Box<[Line]>,
    per_row: usize,
}

impl Rows {
    pub fn new(slots: usize, width: usize) -> Rows {
        let per_row = width.div_ceil(16).max(1);
        Rows {
            lines: (0..slots * per_row)
                .map(|_| Line(std::array::from_fn(|_| AtomicU32::new(0))))
                .collect(),
            per_row,
        }
    }

    fn cells(&self, ix: u32) -> impl Iterator<Item = &AtomicU32> {
        let start = ix as usize * self.per_row;
        self.lines[start..start + self.per_row]
            .iter()
            .flat_map(|l| l.0.iter())
    }

    pub fn write(&self, ix: u32, row: &[f32]) {
        for (cell, v) in self.cells(ix).zip(row) {
            cell.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn read(&self, ix: u32, row: &mut [f32]) {
        for (v, cell) in row.iter_mut().zip(self.cells(ix)) {
            *v = f32::from_bits(cell.load(Ordering::Relaxed));
        }
    }
}

impl Slot {
    /// A free slot for results of `scores` values.
    pub fn new(scores: usize) -> Slot {
        Slot {
            state: AtomicU32::new(FREE),
            outcome: std::array::from_fn(|_| AtomicU32::new(0)),
            times: std::array::from_fn(|_| AtomicU64::new(0)),
            model_version: AtomicU64::new(0),
            scores: std::array::from_fn(|_| AtomicU32::new(0)),
            generation: AtomicU32::new(0),
            deadline_ns: AtomicU64::new(0),
            callback_tag: AtomicU64::new(0),
            wide: (0..scores.saturating_sub(INLINE_SCORES))
                .map(|_| AtomicU32::new(0))
                .collect(),
        }
    }

    fn score_cells(&self) -> impl Iterator<Item = &AtomicU32> {
        self.scores.iter().chain(self.wide.iter())
    }

    /// Store the scores (relaxed: published by the state word).
    pub fn write_output(&self, scores: &[f32]) {
        for (cell, v) in self.score_cells().zip(scores) {
            cell.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    /// Load the scores (after seeing DONE).
    pub fn read_output(&self, out: &mut [f32]) {
        for (v, cell) in out.iter_mut().zip(self.score_cells()) {
            *v = f32::from_bits(cell.load(Ordering::Relaxed));
        }
    }

    /// Store stage time `which` (0 submitted, 1 started, 2 completed).
    pub fn set_time(&self, which: usize, ns: u64) {
        self.times[which].store(ns, Ordering::Relaxed);
    }

    /// Load stage time `which`.
    pub fn time(&self, which: usize) -> u64 {
        self.times[which].load(Ordering::Relaxed)
    }

    /// The request's stage times and model version.
    pub fn stage_times(&self) -> StageTimes {
        let (s, b, c) = (self.time(0), self.time(1), self.time(2));
        StageTimes {
            queue_wait_ns: b.saturating_sub(s),
            compute_ns: c.saturating_sub(b),
            end_to_end_ns: c.saturating_sub(s),
            model_version: self.model_version.load(Ordering::Relaxed),
            reclaimed: false,
        }
    }

    /// Producer: whether the slot is free for a new request (acquire: the
    /// last user is done with it).
    #[inline]
    pub fn is_free(&self) -> bool {
        self.state.load(Ordering::Acquire) == FREE
    }

    /// Consumer of a result: whether it is in (acquire: the result is
    /// visible).
    #[inline]
    pub fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Back to free (release: everything this thread did with the slot
    /// happens-before its next user's work).
    #[inline]
    pub fn set_free(&self) {
        self.state.store(FREE, Ordering::Release);
    }

    /// Worker: write the whole result in one burst, then publish it. The
    /// caller may be spinning on this cache line: every store before the
    /// last would have to take the line back from it, so nothing is written
    /// early. Returns what the worker must do next.
    #[inline]
    pub fn complete(
        &self,
        outcome: Result<(), RequestError>,
        scores: &[f32],
        times: [u64; 3],
        model_version: u64,
    ) -> AfterPublish {
        if outcome.is_ok() {
            self.write_output(scores);
        }
        self.set_outcome(outcome);
        for (i, t) in times.into_iter().enumerate() {
            self.set_time(i, t);
        }
        self.model_version.store(model_version, Ordering::Relaxed);
        self.publish()
    }

    /// Mark the result DONE (release: the result is visible to whoever
    /// sees DONE) and say whether a parked caller must be woken or the slot
    /// recycled (its ticket was dropped).
    #[inline]
    pub fn publish(&self) -> AfterPublish {
        match self.state.swap(DONE, Ordering::AcqRel) {
            PARKED => AfterPublish::Wake,
            ABANDONED | RECLAIMED => AfterPublish::Recycle,
            _ => AfterPublish::Nothing,
        }
    }

    /// Caller (a lane's producer): take a request back that no worker has
    /// published yet. `true` if it is now the caller's to score; `false` if
    /// the result is in (take it).
    pub fn reclaim(&self) -> bool {
        self.state
            .compare_exchange(PENDING, RECLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Worker: whether the caller has taken this request back.
    pub fn is_reclaimed(&self) -> bool {
        self.state.load(Ordering::Acquire) == RECLAIMED
    }

    /// Caller: give up on the result (a dropped ticket). `true` if the
    /// result is already in and the caller must release the slot now;
    /// otherwise the worker recycles it when it publishes.
    pub fn abandon(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            match state {
                DONE => return true,
                PENDING | PARKED => match self.state.compare_exchange(
                    state,
                    ABANDONED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return false,
                    Err(now) => state = now,
                },
                _ => return false,
            }
        }
    }

    /// Caller, after seeing DONE: the outcome, the scores into `out`, the
    /// stage times. The slot stays DONE: release it afterwards.
    pub fn result(&self, out: &mut [f32]) -> Result<StageTimes, RequestError> {
        let outcome = self.outcome();
        if outcome.is_ok() {
            self.read_output(out);
        }
        let times = self.stage_times();
        outcome.map(|()| times)
    }

    /// Store the outcome (relaxed: published by the state word).
    pub fn set_outcome(&self, outcome: Result<(), RequestError>) {
        let (code, a, b) = match outcome {
            Ok(()) => (OK, 0, 0),
            Err(RequestError::DeadlineExceeded) => (DEADLINE, 0, 0),
            Err(RequestError::Panicked) => (PANICKED, 0, 0),
            Err(RequestError::Score(e)) => match e {
                ScoreError::WidthMismatch { expected, got } => (WIDTH, expected as u32, got as u32),
                ScoreError::OutputMismatch { expected, got } => {
                    (OUTPUT, expected as u32, got as u32)
                }
                ScoreError::NonFinite { column, kind, .. } => (
                    NON_FINITE,
                    column as u32,
                    match kind {
                        NonFiniteKind::NaN => 0,
                        NonFiniteKind::PosInf => 1,
                        NonFiniteKind::NegInf => 2,
                    },
                ),
                ScoreError::OutOfBounds { column, .. } => (OUT_OF_BOUNDS, column as u32, 0),
                ScoreError::Engine => (ENGINE, 0, 0),
            },
        };
        for (cell, v) in self.outcome.iter().zip([code, a, b]) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    /// Load the outcome (after seeing DONE).
    pub fn outcome(&self) -> Result<(), RequestError> {
        let [code, a, b] = [0, 1, 2].map(|i| self.outcome[i].load(Ordering::Relaxed));
        let score = |e| Err(RequestError::Score(e));
        match code {
            OK => Ok(()),
            DEADLINE => Err(RequestError::DeadlineExceeded),
            PANICKED => Err(RequestError::Panicked),
            WIDTH => score(ScoreError::WidthMismatch {
                expected: a as usize,
                got: b as usize,
            }),
            OUTPUT => score(ScoreError::OutputMismatch {
                expected: a as usize,
                got: b as usize,
            }),
            NON_FINITE => score(ScoreError::NonFinite {
                row: 0,
                column: a as usize,
                kind: match b {
                    0 => NonFiniteKind::NaN,
                    1 => NonFiniteKind::PosInf,
                    _ => NonFiniteKind::NegInf,
                },
            }),
            OUT_OF_BOUNDS => score(ScoreError::OutOfBounds {
                row: 0,
                column: a as usize,
            }),
            _ => score(ScoreError::Engine),
        }
    }
}
