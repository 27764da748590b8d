//! The worker runtime: a bounded lock-free queue feeding worker threads
//! pinned to CPU cores, each with its own scorer, and preallocated
//! completion slots the caller polls or waits on.
//!
//! ```text
//! Producer::submit(row) ─► its lane's next request slot (row, then header tag) ─┐
//! Engine::submit(row) ─► free slot ◄─ row ─► shared queue (slot index) ──────────┤
//!                                                                  pinned worker ─► Scorer
//!     Ticket ─► poll / wait (spin, then futex) ◄─ completion slot: scores + stage times ◄─┘
//! ```
//!
//! Two ways in: a registered [`Producer`] (a trading thread) writes into its
//! own lane, a disruptor-style ring whose slots the worker polls directly
//! (`lane.rs`); unregistered callers share a bounded MPMC queue of slot
//! indices. The hot path of a lane submit takes no read-modify-write after
//! the row is written (counters have one writer; the wake-up check pairs a
//! compiler fence with a `membarrier` on the sleeping side, `sync.rs`), so
//! the submit does not wait for the row's cache lines to leave its core.
//!
//! What it must never do: block a submitter (a full queue or no free slot
//! returns [`SubmitError::Busy`] at once, the row still the caller's),
//! allocate per request once started (see `tests/runtime_zero_alloc.rs`) or
//! wait on a lock (telemetry takes an uncontended `try_lock` and never
//! waits), lose or duplicate an accepted request (every accepted request
//! completes exactly once, also across shutdown), or let a model's panic
//! kill a worker.

pub(crate) mod clock;
mod lane;
mod slot;
mod sync;
mod worker;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::model::Model;
use crate::registry::{Deployment, VersionedScorer};
use crate::telemetry::LatencySummary;
pub use slot::{RequestError, StageTimes};

use lane::Lane;
use slot::{AfterPublish, Rows, Slot, DONE, PARKED, PENDING, TAKING};

/// What an idle worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Spin forever: lowest latency, burns its core.
    BusySpin,
    /// Spin this long after the last request, then sleep until woken.
    SpinThenPark(Duration),
    /// Sleep as soon as the queue is empty (a wake-up costs a futex call).
    Park,
}

/// What a completion callback receives.
#[derive(Debug)]
pub struct Completion<'a> {
    /// The tag given to [`Engine::submit_with_callback`].
    pub tag: u64,
    /// Stage times, or why the request failed.
    pub result: Result<StageTimes, RequestError>,
    /// The scores (meaningful when `result` is `Ok`).
    pub scores: &'a [f32],
}

/// Called on the worker thread as each callback request completes. Keep it
/// short and non-blocking: the worker scores nothing else meanwhile. A
/// panic in it is contained and counted as a panic.
pub type CompletionCallback = Arc<dyn Fn(Completion<'_>) + Send + Sync>;

/// How to build an [`Engine`].
#[derive(Clone)]
pub struct EngineConfig {
    /// Worker threads (default 1).
    pub workers: usize,
    /// Cores to pin workers to, in order (default: the cores the *calling
    /// thread* may run on, from the last, so core 0 stays with the caller).
    /// A caller already pinned to one core must list the workers' cores
    /// here, or they would share its core. An empty list leaves workers
    /// unpinned.
    pub cores: Option<Vec<usize>>,
    /// Requests the shared queue holds (default 1024); also the number of
    /// its completion slots, so at most this many are in flight through it.
    pub queue_depth: usize,
    /// Most producers registered at once ([`Engine::register_producer`];
    /// default 8). Each has its own lane of `lane_depth` requests, made at
    /// start.
    pub max_producers: usize,
    /// Requests in flight per registered producer (default 256; rounded
    /// up to a power of two).
    pub lane_depth: usize,
    /// Idle behaviour (default: spin 50 µs, then park).
    pub idle: IdleStrategy,
    /// Longest queue wait before a request is failed with
    /// [`RequestError::DeadlineExceeded`] instead of being scored late
    /// (default: none).
    pub default_deadline: Option<Duration>,
    /// Receives the results of [`Engine::submit_with_callback`] requests
    /// (default: none).
    pub on_complete: Option<CompletionCallback>,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("workers", &self.workers)
            .field("cores", &self.cores)
            .field("queue_depth", &self.queue_depth)
            .field("max_producers", &self.max_producers)
            .field("lane_depth", &self.lane_depth)
            .field("idle", &self.idle)
            .field("default_deadline", &self.default_deadline)
            .field("on_complete", &self.on_complete.is_some())
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            cores: None,
            queue_depth: 1024,
            max_producers: 8,
            lane_depth: 256,
            idle: IdleStrategy::SpinThenPark(Duration::from_micros(50)),
            default_deadline: None,
            on_complete: None,
        }
    }
}

/// Why a request was not accepted. The row is untouched and still the
/// caller's: nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full (or every completion slot is in flight). Retry
    /// later, shed the request, or score inline.
    #[error("busy: the queue is full")]
    Busy,
    /// The engine is shutting down and accepts nothing new.
    #[error("the engine is shutting down")]
    ShutDown,
    /// `submit_with_callback` on an engine started without `on_complete`.
    #[error("no completion callback configured")]
    NoCallback,
    /// The row does not have the model's width.
    #[error("row has {got} features, the model takes {expected}")]
    WidthMismatch {
        /// The model's width.
        expected: usize,
        /// The row's width.
        got: usize,
    },
}

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is unusable.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// A worker's scorer could not be built.
    #[error("cannot create a worker's scorer: {0}")]
    Scorer(#[from] crate::error::LoadError),
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Counters since the engine started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Requests accepted by `submit`.
    pub accepted: u64,
    /// Requests refused with `Busy`.
    pub busy: u64,
    /// Requests completed (scored or failed).
    pub completed: u64,
    /// Completed with scores.
    pub scored: u64,
    /// Failed with `DeadlineExceeded`.
    pub deadline_exceeded: u64,
    /// Failed with a scoring error (invalid row, engine failure).
    pub errors: u64,
    /// Failed with a contained panic.
    pub panics: u64,
    /// Lane requests their producer took back and scored on its own thread
    /// ([`Producer::with_reclaim`]). Still counted in `completed` (the
    /// worker recycles their slots) but not in `scored`.
    pub reclaimed: u64,
    /// Of those, how many the worker found reclaimed before scoring them
    /// (the rest it scored too, and dropped the result).
    pub reclaimed_unscored: u64,
}

/// A snapshot of the engine's telemetry, merged over workers.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Counters.
    pub counters: Counters,
    /// From submit to a worker taking the request.
    pub queue_wait: LatencySummary,
    /// Scoring on the worker.
    pub compute: LatencySummary,
    /// From submit to the result being published.
    pub end_to_end: LatencySummary,
}

/// Per-worker histograms: queue wait, compute, end to end.
pub(crate) struct StageHistograms {
    pub hist: [Histogram<u64>; 3],
}

impl StageHistograms {
    fn new() -> StageHistograms {
        let h = || Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid constant bounds");
        StageHistograms {
            hist: [h(), h(), h()],
        }
    }

    pub fn record(&mut self, t: &StageTimes) {
        for (h, v) in self
            .hist
            .iter_mut()
            .zip([t.queue_wait_ns, t.compute_ns, t.end_to_end_ns])
        {
            h.saturating_record(v.clamp(1, 60_000_000_000));
        }
    }
}

/// Per-worker counters and histograms. The worker records into `hist` with
/// `try_lock` (one uncontended CAS) and never waits: while a snapshot holds
/// the lock, it records into its own spill histograms and merges them next
/// time.
pub(crate) struct WorkerStats {
    pub completed: AtomicU64,
    pub scored: AtomicU64,
    pub deadline: AtomicU64,
    pub errors: AtomicU64,
    pub panics: AtomicU64,
    /// Lane requests found reclaimed by their producer, not scored.
    pub reclaimed_skipped: AtomicU64,
    pub hist: Mutex<StageHistograms>,
}

/// What one lane region's producer counts. Only that producer writes
/// these (plain load and store, no read-modify-write: a locked instruction
/// after the row is written would wait for its cache lines to leave).
pub(crate) struct LaneStats {
    /// A submit is between its `accepting` check and its publication.
    pub submitting: AtomicBool,
    pub accepted: AtomicU64,
    pub busy: AtomicU64,
    pub reclaimed: AtomicU64,
}

/// `counter += 1` for a counter with one writer.
#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

pub(crate) struct Shared {
    /// What the workers score: follows the registry's publications.
    pub deployment: Deployment,
    pub width: usize,
    pub score_width: usize,
    pub queue: ArrayQueue<u32>,
    pub free: ArrayQueue<u32>,
    /// Completion slots: `queue_depth` for the shared queue, then
    /// `lane_depth` for each of `max_producers` lane regions.
    pub slots: Box<[CachePadded<Slot>]>,
    /// Shared-queue slots (the first `queue_depth` of `slots`).
    pub queue_depth: usize,
    pub lane_depth: usize,
    /// Lane regions of `slots` in use by a live lane.
    pub regions: Box<[AtomicBool]>,
    /// Per lane region: its producers' counters and submit flag.
    pub lane_stats: Box<[CachePadded<LaneStats>]>,
    /// Each shared-queue slot's row (apart from the slot: see [`Rows`]).
    pub rows: Rows,
    /// Stage times and deadlines (ns since start).
    pub clock: clock::Clock,
    pub default_deadline_ns: u64,
    pub idle: IdleStrategy,
    /// Requests submitted but not yet pushed (shutdown waits for 0).
    pub submitting: CachePadded<AtomicU64>,
    pub accepting: AtomicBool,
    /// Workers exit once this is set and the queue is empty.
    pub draining: AtomicBool,
    /// Futex word sleeping workers wait on; bumped to wake them.
    pub wake_epoch: CachePadded<AtomicU32>,
    pub sleepers: CachePadded<AtomicU32>,
    pub accepted: CachePadded<AtomicU64>,
    pub busy: CachePadded<AtomicU64>,
    pub stats: Box<[CachePadded<WorkerStats>]>,
    /// Lanes registered for each worker and not yet adopted by it.
    pub new_lanes: Box<[crossbeam_queue::SegQueue<Arc<Lane>>]>,
    /// Producers dropped so far (workers let their closed lanes go when
    /// this changes).
    pub lanes_closed: CachePadded<AtomicU64>,
    /// Producers registered so far (lanes go to workers round-robin).
    pub lanes_registered: AtomicU64,
    /// Test hook: runs on the worker before scoring (e.g. to inject a panic).
    pub fault: OnceLock<FaultHook>,
    /// Receives callback requests' results.
    pub on_complete: Option<CompletionCallback>,
}

/// A function run on the worker before each row is scored (tests use it
/// to inject panics and stalls).
pub type FaultHook = Arc<dyn Fn(&[f32]) + Send + Sync>;

impl Shared {
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Take a free slot and fill it with a request (state PENDING).
    #[inline]
    fn prepare(
        &self,
        row: &[f32],
        deadline: Option<Duration>,
        callback_tag: u64,
    ) -> Result<u32, SubmitError> {
        let ix = self.free.pop().ok_or(SubmitError::Busy)?;
        let slot = &self.slots[ix as usize];
        slot.generation.fetch_add(1, Ordering::Relaxed);
        self.rows.write(ix, row);
        slot.deadline_ns.store(
            deadline.map_or(self.default_deadline_ns, |d| d.as_nanos() as u64),
            Ordering::Relaxed,
        );
        slot.callback_tag.store(callback_tag, Ordering::Relaxed);
        slot.set_time(0, self.now_ns());
        slot.state.store(PENDING, Ordering::Relaxed);
        Ok(ix)
    }

    /// Take lane region `r` if no live lane uses it and every one of its
    /// completion slots is free (no ticket of a former lane outstanding).
    fn claim_region(&self, r: usize) -> bool {
        if self.regions[r]
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let base = self.queue_depth + r * self.lane_depth;
        let free = self.slots[base..base + self.lane_depth]
            .iter()
            .all(|c| c.is_free());
        if !free {
            self.regions[r].store(false, Ordering::Release);
        }
        free
    }

    /// Wake sleeping workers after queueing: one for the shared queue, all
    /// for a lane (only its own worker can take it).
    #[inline]
    fn wake(&self, all: bool) {
        // Pairs with the heavy fence in `worker::sleep`: either the worker
        // sees the request, or we see it sleeping and wake it. Light: a
        // full fence here would wait for the row's cache lines to reach the
        // worker's core before the submit could return.
        sync::light_fence();
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            self.wake_epoch.fetch_add(1, Ordering::Release);
            if all {
                atomic_wait::wake_all(&*self.wake_epoch);
            } else {
                atomic_wait::wake_one(&*self.wake_epoch);
            }
        }
    }

    /// Return a slot: to the free list (shared-queue slots), or to its lane
    /// (which reuses it once it sees it `FREE`).
    pub(crate) fn release(&self, ix: u32) {
        self.slots[ix as usize].set_free();
        if (ix as usize) < self.queue_depth {
            // Cannot fail: there are exactly as many slots as free-list places.
            let _ = self.free.push(ix);
        }
    }
}

/// A request in flight. Poll it with [`Engine::poll`] or wait with
/// [`Engine::wait`]; dropping it abandons the result (the slot is
/// recycled when the worker is done).
#[derive(Debug)]
#[must_use = "a ticket is the only way to get the result"]
pub struct Ticket<'e> {
    engine: &'e Engine,
    slot: u32,
}

/// A ticket id that does not borrow the engine: slot and generation, as
/// one `u64` for FFI callers ([`TicketId::to_u64`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketId {
    slot: u32,
    generation: u32,
}

impl TicketId {
    /// Encode for a C caller.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.slot)
    }
    /// Decode an id from [`TicketId::to_u64`] (validated on use).
    pub fn from_u64(v: u64) -> TicketId {
        TicketId {
            slot: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

/// A detached ticket id that is unknown, stale, or whose result was
/// already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown, stale or already-taken ticket")]
pub struct UnknownTicket;

/// A registered producer: submits through its own lane to one worker (see
/// [`Engine::register_producer`]). `Send`, not `Sync`: one thread submits
/// through it. Dropping it closes the lane; requests already in it are
/// still scored, and their tickets stay valid.
pub struct Producer<'e> {
    engine: &'e Engine,
    lane: Arc<Lane>,
    /// Sequence number of the next request.
    next: u64,
    /// Scoring on this thread for requests no worker finished in time.
    reclaim: Option<Box<Reclaim>>,
}

/// What a producer needs to score its own requests ([`Producer::with_reclaim`]).
struct Reclaim {
    after_ns: u64,
    scorer: VersionedScorer,
    row: Vec<f32>,
    out: Vec<f32>,
}

impl std::fmt::Debug for Producer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("submitted", &self.next)
            .field(
                "reclaim_after_ns",
                &self.reclaim.as_ref().map(|r| r.after_ns),
            )
            .finish_non_exhaustive()
    }
}

impl<'e> Producer<'e> {
    /// Queue `row` on this producer's lane with the default deadline.
    /// Never blocks; `Busy` when the lane is full (the row stays yours).
    #[inline]
    pub fn submit(&mut self, row: &[f32]) -> Result<Ticket<'e>, SubmitError> {
        self.submit_with_deadline(row, None)
    }

    /// Queue `row` with its own queue-wait deadline. Never blocks. The lane
    /// is full (`Busy`) when the request `lane_depth` submissions ago is
    /// still in flight (not yet scored, or its result not yet taken).
    pub fn submit_with_deadline(
        &mut self,
        row: &[f32],
        deadline: Option<Duration>,
    ) -> Result<Ticket<'e>, SubmitError> {
        let engine = self.engine;
        let s = &*engine.shared;
        if row.len() != s.width {
            return Err(SubmitError::WidthMismatch {
                expected: s.width,
                got: row.len(),
            });
        }
        let (lane, seq) = (&*self.lane, self.next);
        let stats = &s.lane_stats[lane.region];
        // Announce the submit, then check for shutdown (pairs with the
        // heavy fence in `Engine::shutdown`).
        stats.submitting.store(true, Ordering::Relaxed);
        sync::light_fence();
        if !s.accepting.load(Ordering::SeqCst) {
            stats.submitting.store(false, Ordering::Release);
            return Err(SubmitError::ShutDown);
        }
        let deadline = deadline.map_or(s.default_deadline_ns, |d| d.as_nanos() as u64);
        // Full when the request that used this place is still in flight.
        let ix = lane.completion_slot(seq);
        if !lane.try_submit(&s.slots[ix as usize], seq, row, s.now_ns(), deadline) {
            stats.submitting.store(false, Ordering::Release);
            bump(&stats.busy);
            return Err(SubmitError::Busy);
        }
        // Published: shutdown may now rely on the worker seeing it.
        stats.submitting.store(false, Ordering::Release);
        bump(&stats.accepted);
        s.wake(true);
        let slot = ix;
        self.next += 1;
        Ok(Ticket { engine, slot })
    }
}

impl<'e> Producer<'e> {
    /// Let this producer take back any of its requests that no worker has
    /// finished `after` its submission, and score it on its own thread:
    /// a worker stalled (its core taken away, a long request ahead) then
    /// delays this caller by about `after` plus one inline score, instead
    /// of by the stall. While the worker has not got past an overdue
    /// reclaimed request, the next ones are taken back at once (without
    /// waiting `after` again). Only [`Producer::poll`] and [`Producer::wait`] do
    /// this (the engine's `poll`/`wait` never reclaim). The worker skips a
    /// request it finds reclaimed, or drops its own result; either way the
    /// caller gets exactly one. Control plane: builds and warms a scorer
    /// for this thread (allocates).
    pub fn with_reclaim(
        mut self,
        after: Duration,
    ) -> Result<Producer<'e>, crate::error::LoadError> {
        let s = &*self.engine.shared;
        let mut scorer = s.deployment.scorer()?;
        let row = vec![0f32; s.width];
        let mut out = vec![0f32; s.score_width];
        // Warm it on this thread, as workers do.
        let _ = scorer.score(&row, &mut out);
        self.reclaim = Some(Box::new(Reclaim {
            after_ns: after.as_nanos().min(u128::from(u64::MAX)) as u64,
            scorer,
            row,
            out,
        }));
        Ok(self)
    }

    /// Score `row` on this thread, now, with this producer's own scorer
    /// (the one reclaim uses): for a caller whose lane is full (`Busy`,
    /// e.g. the worker's core has been taken away for a while) and who will
    /// not wait for it. Returns the version that scored. `None` unless
    /// [`Producer::with_reclaim`] gave this producer a scorer. Allocates
    /// nothing.
    pub fn score_inline(
        &mut self,
        row: &[f32],
        out: &mut [f32],
    ) -> Option<Result<u64, crate::error::ScoreError>> {
        let r = self.reclaim.as_deref_mut()?;
        Some(r.scorer.score(row, out))
    }

    /// The result if it is ready (scores into `out`); with
    /// [`Producer::with_reclaim`], a request still unfinished `after` its
    /// submission is taken back and scored here, now. Otherwise the ticket
    /// is handed back.
    pub fn poll(
        &mut self,
        ticket: Ticket<'e>,
        out: &mut [f32],
    ) -> Result<Result<StageTimes, RequestError>, Ticket<'e>> {
        match self.engine.poll(ticket, out) {
            Ok(result) => Ok(result),
            Err(ticket) => self.try_reclaim(ticket, out),
        }
    }

    /// Wait for the result by spinning (never parks); with
    /// [`Producer::with_reclaim`], score it here once it is overdue.
    /// Without reclaim, the same as [`Engine::wait`] (spin, then park).
    pub fn wait(
        &mut self,
        ticket: Ticket<'e>,
        out: &mut [f32],
    ) -> Result<StageTimes, RequestError> {
        if self.reclaim.is_none() {
            return self.engine.wait(ticket, out);
        }
        let mut ticket = ticket;
        loop {
            match self.poll(ticket, out) {
                Ok(result) => return result,
                Err(t) => {
                    ticket = t;
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// Take `ticket`'s request back and score it here, if reclaim is on,
    /// the ticket is this lane's, it is overdue, and no worker has
    /// published it.
    fn try_reclaim(
        &mut self,
        ticket: Ticket<'e>,
        out: &mut [f32],
    ) -> Result<Result<StageTimes, RequestError>, Ticket<'e>> {
        let Some(r) = self.reclaim.as_deref_mut() else {
            return Err(ticket);
        };
        let s = &*self.engine.shared;
        let lane = &*self.lane;
        let Some(seq) = lane.seq_of(ticket.slot) else {
            return Err(ticket); // another path's ticket
        };
        let submitted = lane.submitted_at(seq);
        let now = s.now_ns();
        // Overdue; or the request before it was reclaimed, is itself overdue
        // and the worker has not got past it yet (the worker is stalled:
        // waiting again would add `after` to every request behind the
        // stall). A worker merely a request or two behind is waited for.
        let overdue = now.saturating_sub(submitted) >= r.after_ns
            || lane.previous_slot(seq).is_some_and(|p| {
                s.slots[p as usize].is_reclaimed()
                    && now.saturating_sub(lane.submitted_at(seq.wrapping_sub(1))) >= r.after_ns
            });
        if !overdue || !s.slots[ticket.slot as usize].reclaim() {
            return Err(ticket);
        }
        // Ours now: the worker recycles the slot when it gets there.
        std::mem::forget(ticket);
        let stats = &s.lane_stats[lane.region];
        bump(&stats.reclaimed);
        lane.read(seq, &mut r.row);
        let scored = catch_unwind(AssertUnwindSafe(|| r.scorer.score(&r.row, &mut r.out)));
        let done = s.now_ns();
        Ok(match scored {
            Ok(Ok(version)) => {
                let n = out.len().min(r.out.len());
                out[..n].copy_from_slice(&r.out[..n]);
                Ok(StageTimes {
                    queue_wait_ns: now.saturating_sub(submitted),
                    compute_ns: done.saturating_sub(now),
                    end_to_end_ns: done.saturating_sub(submitted),
                    model_version: version,
                    reclaimed: true,
                })
            }
            Ok(Err(e)) => Err(RequestError::Score(e)),
            Err(_) => {
                // The scorer may be inconsistent after a panic: replace it.
                if let Ok(fresh) = s.deployment.scorer() {
                    r.scorer = fresh;
                }
                Err(RequestError::Panicked)
            }
        })
    }
}

impl Drop for Producer<'_> {
    fn drop(&mut self) {
        self.lane.close();
        self.engine
            .shared
            .lanes_closed
            .fetch_add(1, Ordering::AcqRel);
        // A sleeping worker notices the closed lane and lets it go.
        self.engine.shared.wake(true);
    }
}

/// A pool of pinned worker threads scoring one model.
pub struct Engine {
    shared: Arc<Shared>,
    /// Control plane only (shutdown), never touched per request.
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("workers", &self.shared.stats.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Start `config.workers` workers for `model`. Each builds and warms
    /// its own scorer before this returns.
    pub fn start(model: &Model, config: &EngineConfig) -> Result<Engine, EngineError> {
        Engine::start_deployment(&Deployment::fixed(model.clone()), config)
    }

    /// Start workers that score whatever version `deployment` serves: a
    /// publish or rollback in the registry reaches every worker at its next
    /// request, with no pause; each result's [`StageTimes::model_version`]
    /// says which version scored it. The row width is fixed at start: a
    /// version published with a different width (only possible with
    /// `force_schema_change`) fails each request with a width error.
    pub fn start_deployment(
        deployment: &Deployment,
        config: &EngineConfig,
    ) -> Result<Engine, EngineError> {
        if config.workers == 0
            || config.queue_depth == 0
            || config.queue_depth > u32::MAX as usize / 2
        {
            return Err(EngineError::Config(format!(
                "need at least one worker and a queue depth in 1..2^31 (workers {}, queue_depth {})",
                config.workers, config.queue_depth
            )));
        }
        let cores: Vec<usize> = match &config.cores {
            Some(c) => c.clone(),
            None => core_affinity::get_core_ids()
                .unwrap_or_default()
                .iter()
                .rev()
                .map(|c| c.id)
                .collect(),
        };
        let current = deployment.current();
        let info = current.model().info();
        sync::init_asymmetric_fence();
        let depth = config.queue_depth;
        let free = ArrayQueue::new(depth);
        for i in 0..depth as u32 {
            let _ = free.push(i);
        }
        let regions = config.max_producers;
        // A power of two: a lane finds a request's place with a mask.
        let lane_depth = config
            .lane_depth
            .max(1)
            .checked_next_power_of_two()
            .filter(|&d| d <= u32::MAX as usize / 2)
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "lane_depth {} is too large (at most 2^30)",
                    config.lane_depth
                ))
            })?;
        let total = depth
            .checked_add(regions.saturating_mul(lane_depth))
            .filter(|&t| t <= u32::MAX as usize / 2)
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "queue_depth + max_producers × lane_depth must stay below 2^31 (got {depth} + {regions} × {lane_depth})"
                ))
            })?;
        let shared = Arc::new(Shared {
            deployment: deployment.clone(),
            width: info.input_width,
            score_width: info.score_width,
            queue: ArrayQueue::new(depth),
            free,
            slots: (0..total)
                .map(|_| CachePadded::new(Slot::new(info.score_width)))
                .collect(),
            queue_depth: depth,
            lane_depth,
            regions: (0..regions).map(|_| AtomicBool::new(false)).collect(),
            lane_stats: (0..regions)
                .map(|_| {
                    CachePadded::new(LaneStats {
                        submitting: AtomicBool::new(false),
                        accepted: AtomicU64::new(0),
                        busy: AtomicU64::new(0),
                        reclaimed: AtomicU64::new(0),
                    })
                })
                .collect(),
            rows: Rows::new(depth, info.input_width),
            clock: clock::Clock::start(),
            default_deadline_ns: config.default_deadline.map_or(0, |d| d.as_nanos() as u64),
            idle: config.idle,
            submitting: CachePadded::new(AtomicU64::new(0)),
            accepting: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            wake_epoch: CachePadded::new(AtomicU32::new(0)),
            sleepers: CachePadded::new(AtomicU32::new(0)),
            accepted: CachePadded::new(AtomicU64::new(0)),
            busy: CachePadded::new(AtomicU64::new(0)),
            stats: (0..config.workers)
                .map(|_| {
                    CachePadded::new(WorkerStats {
                        completed: AtomicU64::new(0),
                        scored: AtomicU64::new(0),
                        deadline: AtomicU64::new(0),
                        errors: AtomicU64::new(0),
                        panics: AtomicU64::new(0),
                        reclaimed_skipped: AtomicU64::new(0),
                        hist: Mutex::new(StageHistograms::new()),
                    })
                })
                .collect(),
            new_lanes: (0..config.workers)
                .map(|_| crossbeam_queue::SegQueue::new())
                .collect(),
            lanes_registered: AtomicU64::new(0),
            lanes_closed: CachePadded::new(AtomicU64::new(0)),
            fault: OnceLock::new(),
            on_complete: config.on_complete.clone(),
        });
        let mut workers = Vec::with_capacity(config.workers);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for w in 0..config.workers {
            let core = (!cores.is_empty()).then(|| cores[w % cores.len()]);
            let scorer = deployment.scorer()?;
            let shared = shared.clone();
            let ready = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("tickscore-worker-{w}"))
                .spawn(move || worker::run(shared, w, core, scorer, ready))?;
            workers.push(handle);
        }
        drop(ready_tx);
        // Every worker has pinned itself and warmed up before traffic.
        for _ in 0..config.workers {
            let _ = ready_rx.recv();
        }
        Ok(Engine {
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// Features per row.
    pub fn input_width(&self) -> usize {
        self.shared.width
    }

    /// Scores per row.
    pub fn score_width(&self) -> usize {
        self.shared.score_width
    }

    /// Queue `row` for a worker, with the default deadline. Never blocks.
    #[inline]
    pub fn submit(&self, row: &[f32]) -> Result<Ticket<'_>, SubmitError> {
        self.submit_with_deadline(row, None)
    }

    /// Queue `row` with its own queue-wait deadline. Never blocks.
    pub fn submit_with_deadline(
        &self,
        row: &[f32],
        deadline: Option<Duration>,
    ) -> Result<Ticket<'_>, SubmitError> {
        let slot = self.submit_inner(row, deadline, 0)?;
        Ok(Ticket { engine: self, slot })
    }

    /// Queue `row`; its result goes to the engine's `on_complete` callback
    /// with `tag`, on the worker thread, and the slot recycles itself. Never
    /// blocks; allocates nothing.
    pub fn submit_with_callback(&self, row: &[f32], tag: u64) -> Result<(), SubmitError> {
        if self.shared.on_complete.is_none() {
            return Err(SubmitError::NoCallback);
        }
        // Stored as tag + 1 (0 marks a ticket request); u64::MAX stays u64::MAX.
        self.submit_inner(row, None, tag.saturating_add(1))
            .map(|_| ())
    }

    /// Submit and return the slot; `callback_tag` 0 = a ticket request.
    fn submit_inner(
        &self,
        row: &[f32],
        deadline: Option<Duration>,
        callback_tag: u64,
    ) -> Result<u32, SubmitError> {
        let s = &*self.shared;
        if row.len() != s.width {
            return Err(SubmitError::WidthMismatch {
                expected: s.width,
                got: row.len(),
            });
        }
        self.counted(1, || self.push(row, deadline, callback_tag))
    }

    /// Run a submission of `n` rows: shutdown waits for it to finish, and
    /// its outcome is counted (accepted or busy).
    fn counted<T>(
        &self,
        n: u64,
        submit: impl FnOnce() -> Result<T, SubmitError>,
    ) -> Result<T, SubmitError> {
        let s = &*self.shared;
        s.submitting.fetch_add(1, Ordering::SeqCst);
        let result = submit();
        s.submitting.fetch_sub(1, Ordering::SeqCst);
        match &result {
            Ok(_) => s.accepted.fetch_add(n, Ordering::Relaxed),
            Err(SubmitError::Busy) => s.busy.fetch_add(n, Ordering::Relaxed),
            Err(_) => 0,
        };
        result
    }

    fn push(
        &self,
        row: &[f32],
        deadline: Option<Duration>,
        callback_tag: u64,
    ) -> Result<u32, SubmitError> {
        let s = &*self.shared;
        if !s.accepting.load(Ordering::SeqCst) {
            return Err(SubmitError::ShutDown);
        }
        let ix = s.prepare(row, deadline, callback_tag)?;
        if s.queue.push(ix).is_err() {
            // Unreachable while slots == queue depth; keep the slot anyway.
            s.release(ix);
            return Err(SubmitError::Busy);
        }
        s.wake(false);
        Ok(ix)
    }

    /// Register a producer: a handle with its own single-producer,
    /// single-consumer lane to one worker, for a thread that submits often
    /// (a trading thread registers once at start). The lane's request
    /// slots belong to the producer and the worker polls them directly
    /// (see `runtime/lane.rs`), which is cheaper per request than the
    /// shared queue (`benches/ring.rs`); same tickets, deadlines, counters
    /// and shutdown guarantees. Lanes are spread over the workers
    /// round-robin. Control plane: allocates the lane. `Busy` when
    /// `max_producers` lanes are in use (a dropped producer's lane is
    /// reusable once its worker has let it go and its tickets are taken);
    /// `ShutDown` once shutdown has begun.
    pub fn register_producer(&self) -> Result<Producer<'_>, SubmitError> {
        let s = &*self.shared;
        if !s.accepting.load(Ordering::SeqCst) {
            return Err(SubmitError::ShutDown);
        }
        let region = (0..s.regions.len())
            .find(|&r| s.claim_region(r))
            .ok_or(SubmitError::Busy)?;
        let base = (s.queue_depth + region * s.lane_depth) as u32;
        let lane = Arc::new(Lane::new(s.lane_depth, s.width, base, region));
        let worker =
            s.lanes_registered.fetch_add(1, Ordering::Relaxed) as usize % s.new_lanes.len();
        s.new_lanes[worker].push(lane.clone());
        // The worker adopts it at its next loop (or when woken).
        s.wake(true);
        Ok(Producer {
            engine: self,
            lane,
            next: 0,
            reclaim: None,
        })
    }

    /// Queue every row of `rows` (back to back, `input_width` each) or none:
    /// if the queue cannot take them all, nothing is queued and `Busy` is
    /// returned. Tickets are appended to `tickets` in row order (reserve its
    /// capacity to keep this allocation-free). Never blocks.
    pub fn submit_batch<'e>(
        &'e self,
        rows: &[f32],
        tickets: &mut Vec<Ticket<'e>>,
    ) -> Result<(), SubmitError> {
        let s = &*self.shared;
        if rows.is_empty() || rows.len() % s.width != 0 {
            return Err(SubmitError::WidthMismatch {
                expected: s.width,
                got: rows.len() % s.width,
            });
        }
        let n = rows.len() / s.width;
        self.counted(n as u64, || self.push_batch(rows, n, tickets))
    }

    fn push_batch<'e>(
        &'e self,
        rows: &[f32],
        n: usize,
        tickets: &mut Vec<Ticket<'e>>,
    ) -> Result<(), SubmitError> {
        let s = &*self.shared;
        if !s.accepting.load(Ordering::SeqCst) {
            return Err(SubmitError::ShutDown);
        }
        // Reserve every slot first, so that a batch is all or nothing.
        let first = tickets.len();
        for _ in 0..n {
            match s.free.pop() {
                Some(ix) => tickets.push(Ticket {
                    engine: self,
                    slot: ix,
                }),
                None => {
                    for t in tickets.drain(first..) {
                        let ix = t.slot;
                        std::mem::forget(t);
                        let _ = s.free.push(ix);
                    }
                    return Err(SubmitError::Busy);
                }
            }
        }
        let now = s.now_ns();
        for (t, row) in tickets[first..].iter().zip(rows.chunks_exact(s.width)) {
            let slot = &s.slots[t.slot as usize];
            slot.generation.fetch_add(1, Ordering::Relaxed);
            s.rows.write(t.slot, row);
            slot.deadline_ns
                .store(s.default_deadline_ns, Ordering::Relaxed);
            slot.callback_tag.store(0, Ordering::Relaxed);
            slot.set_time(0, now);
            slot.state.store(PENDING, Ordering::Relaxed);
            // Cannot fail: the queue has room for every slot.
            let _ = s.queue.push(t.slot);
        }
        s.wake(true);
        Ok(())
    }

    /// Queue `row` and return a ticket id that does not borrow the engine
    /// (for callers across an FFI boundary). Every id must be polled until
    /// ready or waited on, once; otherwise its slot stays taken until the
    /// engine is dropped.
    pub fn submit_detached(
        &self,
        row: &[f32],
        deadline: Option<Duration>,
    ) -> Result<TicketId, SubmitError> {
        let ticket = self.submit_with_deadline(row, deadline)?;
        let slot = ticket.slot;
        std::mem::forget(ticket);
        let generation = self.shared.slots[slot as usize]
            .generation
            .load(Ordering::Relaxed);
        Ok(TicketId { slot, generation })
    }

    /// The result of a detached ticket if ready (`Ok(None)` if pending);
    /// `Err` if the id is unknown, stale or already taken.
    pub fn poll_detached(
        &self,
        id: TicketId,
        out: &mut [f32],
    ) -> Result<Option<Result<StageTimes, RequestError>>, UnknownTicket> {
        let slot = self.detached_slot(id)?;
        match slot.state.load(Ordering::Acquire) {
            DONE => self.take_detached(id, out).map(Some),
            PENDING | PARKED => Ok(None),
            _ => Err(UnknownTicket),
        }
    }

    /// Wait for a detached ticket's result (spin, then sleep).
    pub fn wait_detached(
        &self,
        id: TicketId,
        out: &mut [f32],
    ) -> Result<Result<StageTimes, RequestError>, UnknownTicket> {
        settle(self.detached_slot(id)?);
        self.take_detached(id, out)
    }

    fn detached_slot(&self, id: TicketId) -> Result<&Slot, UnknownTicket> {
        let slot = self
            .shared
            .slots
            .get(id.slot as usize)
            .ok_or(UnknownTicket)?;
        if slot.generation.load(Ordering::Acquire) != id.generation {
            return Err(UnknownTicket);
        }
        Ok(slot)
    }

    fn take_detached(
        &self,
        id: TicketId,
        out: &mut [f32],
    ) -> Result<Result<StageTimes, RequestError>, UnknownTicket> {
        let slot = self.detached_slot(id)?;
        // Claim the result exclusively; a second taker of the same id loses.
        if slot
            .state
            .compare_exchange(DONE, TAKING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(UnknownTicket);
        }
        if slot.generation.load(Ordering::Acquire) != id.generation {
            // The slot was recycled and re-used between our checks.
            slot.state.store(DONE, Ordering::Release);
            return Err(UnknownTicket);
        }
        Ok(self.take(
            Ticket {
                engine: self,
                slot: id.slot,
            },
            out,
        ))
    }

    /// The result if it is ready: scores into `out` (`score_width` floats),
    /// or the request's error; `None` (ticket handed back) if still pending.
    pub fn poll<'e>(
        &'e self,
        ticket: Ticket<'e>,
        out: &mut [f32],
    ) -> Result<Result<StageTimes, RequestError>, Ticket<'e>> {
        let slot = &self.shared.slots[ticket.slot as usize];
        if slot.is_done() {
            Ok(self.take(ticket, out))
        } else {
            Err(ticket)
        }
    }

    /// Wait for the result: spin briefly, then sleep until the worker wakes
    /// us. Scores go to `out` (`score_width` floats).
    pub fn wait(&self, ticket: Ticket<'_>, out: &mut [f32]) -> Result<StageTimes, RequestError> {
        settle(&self.shared.slots[ticket.slot as usize]);
        self.take(ticket, out)
    }

    fn take(&self, ticket: Ticket<'_>, out: &mut [f32]) -> Result<StageTimes, RequestError> {
        let ix = ticket.slot;
        std::mem::forget(ticket);
        let n = out.len().min(self.shared.score_width);
        let result = self.shared.slots[ix as usize].result(&mut out[..n]);
        self.shared.release(ix);
        result
    }

    /// Counters and per-stage latency percentiles, merged over workers.
    /// Allocates; never on a worker's hot path.
    pub fn snapshot(&self) -> Snapshot {
        let s = &*self.shared;
        let mut merged = StageHistograms::new();
        let mut c = Counters {
            accepted: s.accepted.load(Ordering::Relaxed),
            busy: s.busy.load(Ordering::Relaxed),
            ..Counters::default()
        };
        for l in s.lane_stats.iter() {
            c.accepted += l.accepted.load(Ordering::Relaxed);
            c.busy += l.busy.load(Ordering::Relaxed);
            c.reclaimed += l.reclaimed.load(Ordering::Relaxed);
        }
        for w in s.stats.iter() {
            c.completed += w.completed.load(Ordering::Relaxed);
            c.scored += w.scored.load(Ordering::Relaxed);
            c.deadline_exceeded += w.deadline.load(Ordering::Relaxed);
            c.errors += w.errors.load(Ordering::Relaxed);
            c.panics += w.panics.load(Ordering::Relaxed);
            c.reclaimed_unscored += w.reclaimed_skipped.load(Ordering::Relaxed);
            let h = w.hist.lock();
            for (m, x) in merged.hist.iter_mut().zip(h.hist.iter()) {
                let _ = m.add(x);
            }
        }
        Snapshot {
            counters: c,
            queue_wait: LatencySummary::of(&merged.hist[0]),
            compute: LatencySummary::of(&merged.hist[1]),
            end_to_end: LatencySummary::of(&merged.hist[2]),
        }
    }

    /// Stop accepting, complete every accepted request, join the workers.
    /// Tickets still held stay valid until dropped or taken. Safe to call
    /// from any thread, while others submit (they get `ShutDown`), and more
    /// than once.
    pub fn shutdown(&self) {
        let s = &*self.shared;
        s.accepting.store(false, Ordering::SeqCst);
        // Pairs with the light fence of a lane submit: it sees the close, or
        // we see its flag.
        sync::heavy_fence();
        // A submit that passed the check before we closed may still push.
        while s.submitting.load(Ordering::SeqCst) != 0
            || s.lane_stats
                .iter()
                .any(|l| l.submitting.load(Ordering::Acquire))
        {
            std::hint::spin_loop();
        }
        s.draining.store(true, Ordering::SeqCst);
        s.wake_epoch.fetch_add(1, Ordering::Release);
        atomic_wait::wake_all(&*s.wake_epoch);
        let handles: Vec<JoinHandle<()>> = self.workers.lock().drain(..).collect();
        for handle in handles {
            let _ = handle.join();
        }
    }

    #[doc(hidden)]
    /// Test hook: run `hook` on the worker before each row is scored (to
    /// inject panics). Can be set once.
    pub fn set_fault_injection(&self, hook: FaultHook) {
        let _ = self.shared.fault.set(hook);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        // Abandoned: let the worker recycle the slot, or recycle it now if done.
        let s = &*self.engine.shared;
        if s.slots[self.slot as usize].abandon() {
            s.release(self.slot);
        }
    }
}

/// Wait until `slot` stops being pending: spin briefly, then announce a
/// sleeper (PENDING → PARKED, which the worker's publish sees and wakes)
/// and sleep on the state word. Returns the state reached (DONE for a
/// ticket its owner waits on; a detached take re-checks it).
fn settle(slot: &Slot) -> u32 {
    for _ in 0..20_000 {
        match slot.state.load(Ordering::Acquire) {
            PENDING | PARKED => std::hint::spin_loop(),
            state => return state,
        }
    }
    // Fails harmlessly if the result is in, or another waiter already parked.
    let _ = slot
        .state
        .compare_exchange(PENDING, PARKED, Ordering::AcqRel, Ordering::Acquire);
    loop {
        match slot.state.load(Ordering::Acquire) {
            PARKED => sync::wait(&slot.state, PARKED),
            state => return state,
        }
    }
}

/// The lane and completion-slot protocol, exposed for the loom model check
/// only (`tests/loom_lane.rs`, `--features loom`): the same functions the
/// engine calls, driven by loom's threads.
#[cfg(feature = "loom")]
#[doc(hidden)]
pub mod model_check {
    pub use super::lane::{Lane, Taken};
    pub use super::slot::{AfterPublish, Slot};
}

/// Act on [`Slot::publish`]'s answer (called by workers after publishing a
/// result): wake a parked caller, or recycle an abandoned slot.
pub(crate) fn after_publish(shared: &Shared, ix: u32, after: AfterPublish) {
    match after {
        // wake_all: a detached ticket may have more than one waiter (all but
        // one are then refused); parking is off the fast path anyway.
        AfterPublish::Wake => sync::wake_all(&shared.slots[ix as usize].state),
        AfterPublish::Recycle => shared.release(ix),
        AfterPublish::Nothing => {}
    }
}
