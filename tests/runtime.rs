//! The worker runtime: every accepted request completes exactly once with
//! the score the inline path gives, under load, across shutdown, and with
//! queue-full, deadline and panic faults counted exactly.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tickscore::input::FeatureRows;
use tickscore::runtime::FaultHook;
use tickscore::{
    Engine, EngineConfig, IdleStrategy, LoadOptions, Model, RequestError, SubmitError, Ticket,
};

fn model(name: &str) -> Model {
    Model::load(common::model_path(name), &LoadOptions::default()).unwrap()
}

fn inline_scores(model: &Model, rows: &FeatureRows) -> Vec<f32> {
    let mut scorer = model.scorer().unwrap();
    let mut out = vec![0f32; rows.rows()];
    for (i, o) in out.iter_mut().enumerate() {
        scorer.score(rows.row(i), std::slice::from_mut(o)).unwrap();
    }
    out
}

struct ProducerTally {
    submitted: u64,
    accepted: u64,
    busy: u64,
    completed: u64,
    wrong: u64,
    shut_down: bool,
}

/// Submit `n` requests (rows cycled), keeping up to `window` in flight;
/// stop early if the engine shuts down. Checks every score.
fn produce(
    engine: &Engine,
    rows: &FeatureRows,
    expected: &[f32],
    n: usize,
    offset: usize,
    lane: bool,
) -> ProducerTally {
    // A registered producer submits through its own SPSC lane; otherwise
    // through the shared queue.
    let mut producer = lane.then(|| engine.register_producer().expect("registered"));
    let mut t = ProducerTally {
        submitted: 0,
        accepted: 0,
        busy: 0,
        completed: 0,
        wrong: 0,
        shut_down: false,
    };
    let mut in_flight: VecDeque<(Ticket<'_>, usize)> = VecDeque::with_capacity(64);
    let mut out = [0f32];
    let mut settle = |(ticket, row): (Ticket<'_>, usize), t: &mut ProducerTally| {
        match engine.wait(ticket, &mut out) {
            Ok(_) if out[0] == expected[row] => {}
            _ => t.wrong += 1,
        }
        t.completed += 1;
    };
    let mut i = 0;
    while i < n {
        let row = (i + offset) % rows.rows();
        t.submitted += 1;
        let submitted = match &mut producer {
            Some(p) => p.submit(rows.row(row)),
            None => engine.submit(rows.row(row)),
        };
        match submitted {
            Ok(ticket) => {
                t.accepted += 1;
                in_flight.push_back((ticket, row));
                i += 1;
            }
            Err(SubmitError::Busy) => {
                t.busy += 1;
                if let Some(front) = in_flight.pop_front() {
                    settle(front, &mut t);
                }
            }
            Err(SubmitError::ShutDown) => {
                t.shut_down = true;
                break;
            }
            Err(e) => panic!("unexpected submit error {e}"),
        }
        if in_flight.len() >= 32 {
            let front = in_flight.pop_front().unwrap();
            settle(front, &mut t);
        }
    }
    while let Some(front) = in_flight.pop_front() {
        settle(front, &mut t);
    }
    t
}

/// `lanes`: which of the two producers submit through registered lanes.
fn stress(workers: usize, per_producer: usize, lanes: [bool; 2]) {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let config = EngineConfig {
        workers,
        // Two producers keep up to 32 in flight each: a 40-deep shared
        // queue and 16-deep lanes make them meet Busy, so accepted + busy =
        // submitted is tested for real.
        queue_depth: 40,
        lane_depth: 16,
        idle: IdleStrategy::SpinThenPark(Duration::from_micros(20)),
        ..EngineConfig::default()
    };
    let engine = Engine::start(&model, &config).unwrap();
    let tallies: Vec<ProducerTally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|p| {
                let (engine, rows, expected) = (&engine, &rows, &expected);
                let lane = lanes[p];
                s.spawn(move || produce(engine, rows, expected, per_producer, p * 7, lane))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    engine.shutdown();
    let snap = engine.snapshot();
    let sum = |f: fn(&ProducerTally) -> u64| tallies.iter().map(f).sum::<u64>();
    println!("{workers} worker(s), lanes {lanes:?}: {:?}", snap.counters);
    assert_eq!(
        sum(|t| t.accepted),
        2 * per_producer as u64,
        "every request eventually accepted"
    );
    assert_eq!(
        sum(|t| t.accepted) + sum(|t| t.busy),
        sum(|t| t.submitted),
        "accepted + busy = submitted"
    );
    assert_eq!(
        sum(|t| t.completed),
        sum(|t| t.accepted),
        "0 lost: each accepted request completed once"
    );
    assert_eq!(sum(|t| t.wrong), 0, "every score equals the inline score");
    assert_eq!(snap.counters.accepted, sum(|t| t.accepted));
    assert_eq!(snap.counters.busy, sum(|t| t.busy));
    assert_eq!(
        snap.counters.completed, snap.counters.accepted,
        "0 duplicated: one completion each"
    );
    assert_eq!(snap.counters.scored, snap.counters.accepted);
    assert_eq!(
        snap.end_to_end.count, snap.counters.completed,
        "every completion timed"
    );
    assert!(snap.counters.busy > 0, "the load met a full queue");
}

#[test]
fn two_producers_one_million_each_one_worker() {
    stress(1, 1_000_000, [false, false]);
}

#[test]
fn two_producers_one_million_each_two_workers() {
    stress(2, 1_000_000, [false, false]);
}

#[test]
fn two_registered_producers_one_million_each_on_their_lanes() {
    stress(1, 1_000_000, [true, true]);
    stress(2, 1_000_000, [true, true]);
}

#[test]
fn a_registered_and_a_shared_producer_together() {
    stress(2, 500_000, [true, false]);
}

#[test]
fn shutdown_in_the_middle_of_the_load_loses_nothing() {
    let model = model("german_xgboost");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let engine = Engine::start(
        &model,
        &EngineConfig {
            workers: 2,
            queue_depth: 32,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let tallies: Vec<ProducerTally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|p| {
                let (engine, rows, expected) = (&engine, &rows, &expected);
                // One producer on its own lane, one on the shared queue.
                s.spawn(move || produce(engine, rows, expected, usize::MAX, p, p == 1))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        engine.shutdown();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let snap = engine.snapshot();
    let accepted: u64 = tallies.iter().map(|t| t.accepted).sum();
    assert!(
        tallies.iter().all(|t| t.shut_down),
        "producers saw ShutDown"
    );
    assert!(accepted > 1000, "load was running ({accepted} accepted)");
    assert_eq!(
        tallies.iter().map(|t| t.completed).sum::<u64>(),
        accepted,
        "every accepted request completed"
    );
    assert_eq!(tallies.iter().map(|t| t.wrong).sum::<u64>(), 0);
    assert_eq!(snap.counters.completed, accepted);
    assert!(matches!(
        engine.submit(rows.row(0)),
        Err(SubmitError::ShutDown)
    ));
    assert!(matches!(
        engine.register_producer(),
        Err(SubmitError::ShutDown)
    ));
}

/// A hook that holds the worker while `gate` is closed.
fn gated(gate: &Arc<AtomicBool>) -> FaultHook {
    let gate = gate.clone();
    Arc::new(move |_row: &[f32]| {
        while !gate.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(100));
        }
    })
}

#[test]
fn a_full_queue_refuses_at_once_and_counts_exactly() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let engine = Engine::start(
        &model,
        &EngineConfig {
            workers: 1,
            queue_depth: 4,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    engine.set_fault_injection(gated(&gate));
    let tickets: Vec<Ticket<'_>> = (0..4)
        .map(|i| engine.submit(rows.row(i)).expect("room for 4"))
        .collect();
    // The worker holds one request; three wait; the fourth slot is taken too.
    let t0 = std::time::Instant::now();
    assert_eq!(engine.submit(rows.row(5)).unwrap_err(), SubmitError::Busy);
    assert_eq!(engine.submit(rows.row(6)).unwrap_err(), SubmitError::Busy);
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "Busy is returned at once"
    );
    gate.store(true, Ordering::Release);
    let mut out = [0f32];
    for t in tickets {
        engine.wait(t, &mut out).unwrap();
    }
    let c = engine.snapshot().counters;
    assert_eq!((c.accepted, c.busy, c.completed, c.scored), (4, 2, 4, 4));
}

#[test]
fn a_full_lane_refuses_at_once_and_counts_exactly() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let engine = Engine::start(
        &model,
        &EngineConfig {
            workers: 1,
            lane_depth: 4,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    engine.set_fault_injection(gated(&gate));
    let mut producer = engine.register_producer().unwrap();
    let tickets: Vec<Ticket<'_>> = (0..4)
        .map(|i| producer.submit(rows.row(i)).expect("room for 4"))
        .collect();
    // The worker holds the first; the lane's 4 places are all in flight.
    let t0 = std::time::Instant::now();
    assert_eq!(producer.submit(rows.row(5)).unwrap_err(), SubmitError::Busy);
    assert_eq!(producer.submit(rows.row(6)).unwrap_err(), SubmitError::Busy);
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "Busy is returned at once"
    );
    // The shared queue is another path: still open.
    let shared = engine
        .submit(rows.row(7))
        .expect("the shared queue has room");
    gate.store(true, Ordering::Release);
    let mut out = [0f32];
    for (i, t) in tickets.into_iter().enumerate() {
        engine.wait(t, &mut out).unwrap();
        assert_eq!(out[0], expected[i]);
    }
    engine.wait(shared, &mut out).unwrap();
    assert_eq!(out[0], expected[7]);
    // Places are free again once their results are taken: 4 more fit.
    let again: Vec<Ticket<'_>> = (8..12)
        .map(|i| producer.submit(rows.row(i)).expect("room again"))
        .collect();
    for (i, t) in (8..12).zip(again) {
        engine.wait(t, &mut out).unwrap();
        assert_eq!(out[0], expected[i]);
    }
    let c = engine.snapshot().counters;
    assert_eq!((c.accepted, c.busy, c.completed, c.scored), (9, 2, 9, 9));
}

#[test]
fn producers_are_limited_and_their_lanes_reused() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let engine = Engine::start(
        &model,
        &EngineConfig {
            workers: 2,
            max_producers: 2,
            lane_depth: 8,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let mut out = [0f32];
    let mut a = engine.register_producer().unwrap();
    let b = engine.register_producer().unwrap();
    assert_eq!(
        engine.register_producer().unwrap_err(),
        SubmitError::Busy,
        "max_producers lanes in use"
    );
    // A ticket of a dropped producer stays valid, and keeps its lane's
    // places from being handed to a new producer until it is taken.
    let held = a.submit(rows.row(3)).unwrap();
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // The worker lets the closed lane go; the region still has a ticket out.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(engine.register_producer().unwrap_err(), SubmitError::Busy);
    engine.wait(held, &mut out).unwrap();
    assert_eq!(out[0], expected[3]);
    let mut c = loop {
        match engine.register_producer() {
            Ok(p) => break p,
            Err(SubmitError::Busy) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("the dropped producer's lane never came back: {e}"),
        }
    };
    for (i, want) in expected.iter().enumerate().take(100) {
        let t = c.submit(rows.row(i)).unwrap();
        engine.wait(t, &mut out).unwrap();
        assert_eq!(out[0], *want, "row {i} through the reused lane");
    }
    drop(b);
}

#[test]
fn lane_requests_past_their_deadline_are_not_scored() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let engine = Engine::start(&model, &EngineConfig::default()).unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    engine.set_fault_injection(gated(&gate));
    let mut producer = engine.register_producer().unwrap();
    let first = producer.submit(rows.row(0)).unwrap();
    std::thread::sleep(Duration::from_millis(5)); // the worker now holds `first`
    let late = producer
        .submit_with_deadline(rows.row(1), Some(Duration::from_millis(1)))
        .unwrap();
    let patient = producer
        .submit_with_deadline(rows.row(2), Some(Duration::from_secs(60)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    gate.store(true, Ordering::Release);
    let mut out = [0f32];
    assert!(engine.wait(first, &mut out).is_ok());
    assert_eq!(
        engine.wait(late, &mut out),
        Err(RequestError::DeadlineExceeded)
    );
    let times = engine.wait(patient, &mut out).unwrap();
    assert!(times.queue_wait_ns >= 20_000_000, "{times:?}");
    let c = engine.snapshot().counters;
    assert_eq!((c.completed, c.scored, c.deadline_exceeded), (3, 2, 1));
}

#[test]
fn a_stalled_worker_does_not_hold_up_a_reclaiming_producer() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let engine = Engine::start(&model, &EngineConfig::default()).unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let hook = {
        let (gate, entered) = (gate.clone(), entered.clone());
        Arc::new(move |_row: &[f32]| {
            entered.store(true, Ordering::Release);
            while !gate.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    engine.set_fault_injection(hook);
    let mut producer = engine
        .register_producer()
        .unwrap()
        // Long enough that a healthy worker (even one parked, on a loaded
        // machine) is never overtaken; the gate makes the stall.
        .with_reclaim(Duration::from_millis(200))
        .unwrap();
    let mut out = [0f32];
    // A: the worker takes it and stalls (the gate); after 200 ms the producer
    // takes it back and scores it itself.
    let a = producer.submit(rows.row(0)).unwrap();
    while !entered.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_micros(100));
    }
    let t = producer.wait(a, &mut out).unwrap();
    assert!(t.reclaimed, "{t:?}");
    assert!(
        t.queue_wait_ns >= 200_000_000,
        "reclaimed only once overdue: {t:?}"
    );
    assert_eq!(out[0], expected[0]);
    // B: the worker has not got past A, so B is taken back at once.
    let b = producer.submit(rows.row(1)).unwrap();
    let t = producer.wait(b, &mut out).unwrap();
    assert!(t.reclaimed, "{t:?}");
    assert!(
        t.queue_wait_ns < 200_000_000,
        "no second wait for a stalled worker: {t:?}"
    );
    assert_eq!(out[0], expected[1]);
    // The worker comes back: it finishes A (result dropped), finds B
    // reclaimed and skips it, then serves C as usual.
    gate.store(true, Ordering::Release);
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while engine.snapshot().counters.completed < 2 {
        assert!(
            std::time::Instant::now() < give_up,
            "the worker never caught up"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // (Until it has got past B, C would be taken back at once too.)
    let c = producer.submit(rows.row(2)).unwrap();
    let t = producer.wait(c, &mut out).unwrap();
    assert!(!t.reclaimed, "{t:?}");
    assert_eq!(out[0], expected[2]);
    let n = engine.snapshot().counters;
    assert_eq!(
        (
            n.accepted,
            n.completed,
            n.scored,
            n.reclaimed,
            n.reclaimed_unscored
        ),
        (3, 3, 2, 2, 1),
        "{n:?}"
    );
    // Every place comes back: a full lane's worth goes through again.
    for (i, want) in expected.iter().enumerate() {
        let t = producer.submit(rows.row(i)).unwrap();
        producer.wait(t, &mut out).unwrap();
        assert_eq!(out[0], *want);
    }
}

#[test]
fn absurd_lane_configurations_are_refused_not_panicked_on() {
    let model = model("german_logreg");
    for (max_producers, lane_depth) in [(1, usize::MAX), (usize::MAX, 2), (8, 1 << 40)] {
        let e = Engine::start(
            &model,
            &EngineConfig {
                max_producers,
                lane_depth,
                ..EngineConfig::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(e, tickscore::runtime::EngineError::Config(_)),
            "{max_producers} × {lane_depth}: {e}"
        );
    }
}

#[test]
fn requests_past_their_deadline_are_not_scored() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let engine = Engine::start(
        &model,
        &EngineConfig {
            workers: 1,
            queue_depth: 16,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    engine.set_fault_injection(gated(&gate));
    let first = engine.submit(rows.row(0)).unwrap();
    std::thread::sleep(Duration::from_millis(5)); // the worker now holds `first`
    let late: Vec<Ticket<'_>> = (1..4)
        .map(|i| {
            engine
                .submit_with_deadline(rows.row(i), Some(Duration::from_millis(1)))
                .unwrap()
        })
        .collect();
    let patient = engine
        .submit_with_deadline(rows.row(4), Some(Duration::from_secs(60)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    gate.store(true, Ordering::Release);
    let mut out = [0f32];
    assert!(engine.wait(first, &mut out).is_ok());
    for t in late {
        assert_eq!(
            engine.wait(t, &mut out),
            Err(RequestError::DeadlineExceeded)
        );
    }
    assert!(engine.wait(patient, &mut out).is_ok());
    let c = engine.snapshot().counters;
    assert_eq!((c.completed, c.scored, c.deadline_exceeded), (5, 2, 3));
}

#[test]
fn a_panicking_model_fails_the_request_not_the_worker() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let engine = Engine::start(&model, &EngineConfig::default()).unwrap();
    engine.set_fault_injection(Arc::new(|row: &[f32]| {
        if row[0] == 999.0 {
            panic!("injected fault");
        }
    }));
    let mut out = [0f32];
    let (mut scored, mut panicked) = (0, 0);
    for (i, want) in expected.iter().enumerate().take(10) {
        let mut row = rows.row(i).to_vec();
        if i % 3 == 0 {
            row[0] = 999.0;
        }
        match engine.wait(engine.submit(&row).unwrap(), &mut out) {
            Ok(_) => {
                assert_eq!(out[0], *want);
                scored += 1;
            }
            Err(RequestError::Panicked) => panicked += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((scored, panicked), (6, 4));
    let c = engine.snapshot().counters;
    assert_eq!((c.completed, c.scored, c.panics), (10, 6, 4));
}

#[test]
fn invalid_rows_and_parked_waiters_and_abandoned_tickets() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let engine = Engine::start(
        &model,
        &EngineConfig {
            workers: 1,
            queue_depth: 8,
            idle: IdleStrategy::Park,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        engine.submit(&rows.values[..3]).unwrap_err(),
        SubmitError::WidthMismatch {
            expected: 61,
            got: 3
        }
    );
    let mut nan = rows.row(0).to_vec();
    nan[2] = f32::NAN;
    let mut out = [0f32];
    assert!(matches!(
        engine.wait(engine.submit(&nan).unwrap(), &mut out),
        Err(RequestError::Score(tickscore::ScoreError::NonFinite {
            column: 2,
            ..
        }))
    ));
    // A waiter that parks (the worker is held for 10 ms) is woken.
    let gate = Arc::new(AtomicBool::new(false));
    engine.set_fault_injection(gated(&gate));
    let t = engine.submit(rows.row(1)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(10));
            gate.store(true, Ordering::Release);
        });
        assert!(engine.wait(t, &mut out).is_ok());
    });
    // Dropped tickets recycle their slots: far more submissions than slots.
    for i in 0..100 {
        loop {
            match engine.submit(rows.row(i % rows.rows())) {
                Ok(t) => {
                    drop(t);
                    break;
                }
                Err(SubmitError::Busy) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }
    engine.shutdown();
    assert_eq!(engine.snapshot().counters.completed, 102);
}

#[test]
fn detached_tickets_are_checked_and_taken_once() {
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let engine = Engine::start(
        &model,
        &EngineConfig {
            workers: 1,
            queue_depth: 4,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let mut out = [0f32];
    let id = engine.submit_detached(rows.row(3), None).unwrap();
    assert!(engine.wait_detached(id, &mut out).unwrap().is_ok());
    assert_eq!(out[0], expected[3]);
    // Taken once: the same id again, or a forged one, is refused.
    assert!(engine.wait_detached(id, &mut out).is_err());
    assert!(engine
        .poll_detached(tickscore::TicketId::from_u64(u64::MAX), &mut out)
        .is_err());
    // A recycled slot's old id stays refused (generation check).
    let ids: Vec<_> = (0..4)
        .map(|i| engine.submit_detached(rows.row(i), None).unwrap())
        .collect();
    assert!(engine.poll_detached(id, &mut out).is_err(), "stale id");
    for (i, id) in ids.into_iter().enumerate() {
        let id = tickscore::TicketId::from_u64(id.to_u64());
        loop {
            match engine.poll_detached(id, &mut out).unwrap() {
                Some(r) => {
                    assert!(r.is_ok());
                    assert_eq!(out[0], expected[i]);
                    break;
                }
                None => std::hint::spin_loop(),
            }
        }
    }
    assert_eq!(engine.snapshot().counters.completed, 5);
}

#[test]
fn batches_are_all_or_nothing_and_score_like_single_rows() {
    let model = model("german_xgboost");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let engine = Engine::start(
        &model,
        &EngineConfig {
            workers: 2,
            queue_depth: 100,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let mut tickets = Vec::with_capacity(100);
    let mut out = [0f32];
    for start in (0..300).step_by(60) {
        engine
            .submit_batch(&rows.values[start * 61..(start + 60) * 61], &mut tickets)
            .unwrap();
        for (k, t) in tickets.drain(..).enumerate() {
            engine.wait(t, &mut out).unwrap();
            assert_eq!(out[0], expected[start + k]);
        }
    }
    // 60 in flight + a batch of 60 does not fit in 100 slots: nothing queued.
    engine
        .submit_batch(&rows.values[..60 * 61], &mut tickets)
        .unwrap();
    let mut more = Vec::with_capacity(60);
    assert_eq!(
        engine
            .submit_batch(&rows.values[..60 * 61], &mut more)
            .unwrap_err(),
        SubmitError::Busy
    );
    assert!(more.is_empty(), "a refused batch hands out no ticket");
    for t in tickets.drain(..) {
        engine.wait(t, &mut out).unwrap();
    }
    engine
        .submit_batch(&rows.values[..60 * 61], &mut more)
        .unwrap();
    assert_eq!(more.len(), 60, "the slots came back");
    for t in more.drain(..) {
        engine.wait(t, &mut out).unwrap();
    }
    assert_eq!(
        engine
            .submit_batch(&rows.values[..100], &mut more)
            .unwrap_err(),
        SubmitError::WidthMismatch {
            expected: 61,
            got: 39
        }
    );
    let c = engine.snapshot().counters;
    assert_eq!((c.accepted, c.busy, c.completed), (420, 60, 420));
}

#[test]
fn callbacks_receive_every_result_on_the_worker() {
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;
    let model = model("german_logreg");
    let rows = common::test_rows(&model);
    let expected = inline_scores(&model, &rows);
    let received = Arc::new(Mutex::new(vec![f32::NAN; 300]));
    let failed = Arc::new(AtomicU64::new(0));
    let (sink, fails) = (received.clone(), failed.clone());
    let config = EngineConfig {
        workers: 2,
        queue_depth: 64,
        on_complete: Some(Arc::new(move |c: tickscore::Completion<'_>| {
            match c.result {
                Ok(_) => sink.lock().unwrap()[c.tag as usize] = c.scores[0],
                Err(_) => {
                    fails.fetch_add(1, Ordering::Relaxed);
                }
            }
        })),
        ..EngineConfig::default()
    };
    let engine = Engine::start(&model, &config).unwrap();
    for i in 0..300 {
        while engine.submit_with_callback(rows.row(i), i as u64) == Err(SubmitError::Busy) {
            std::thread::yield_now();
        }
    }
    let mut nan = rows.row(0).to_vec();
    nan[0] = f32::NAN;
    engine.submit_with_callback(&nan, 999).unwrap();
    engine.shutdown();
    assert_eq!(
        *received.lock().unwrap(),
        expected,
        "every callback got its row's score"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        1,
        "the NaN row's failure reached the callback"
    );
    assert_eq!(engine.snapshot().counters.completed, 301);
    let plain = Engine::start(&model, &EngineConfig::default()).unwrap();
    assert_eq!(
        plain.submit_with_callback(rows.row(0), 1),
        Err(SubmitError::NoCallback)
    );
}
