use super::*;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq)]
enum TestError {
    Item(u64),
    Consumer(u64),
    Panic(WorkerPanic),
}

impl From<WorkerPanic> for TestError {
    fn from(p: WorkerPanic) -> Self {
        TestError::Panic(p)
    }
}

/// Deterministic xorshift so failures reproduce.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

#[test]
fn order_is_preserved_under_random_delays() {
    for threads in [1, 2, 3, 8] {
        let mut r = rng(threads as u64 * 7919);
        let delays: Vec<u64> = (0..300).map(|_| r() % 300).collect();
        let mut out = Vec::new();
        map_ordered(
            &Options {
                threads,
                max_in_flight: threads * 3,
            },
            delays.iter().copied().enumerate(),
            |(i, d)| {
                thread::sleep(Duration::from_micros(d));
                Ok::<_, TestError>(i * 2)
            },
            |v| {
                out.push(v);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            out,
            (0..300).map(|i| i * 2).collect::<Vec<_>>(),
            "{threads} threads"
        );
    }
}

/// Counts items between being pulled from the input and being consumed, and checks
/// the bound is never exceeded, even when early items are slow (so later ones pile
/// up finished behind them).
#[test]
fn in_flight_is_bounded() {
    let pulled = AtomicUsize::new(0);
    let consumed = AtomicUsize::new(0);
    let max_seen = AtomicUsize::new(0);
    let opts = Options {
        threads: 4,
        max_in_flight: 5,
    };
    let input = (0..200u64).inspect(|_| {
        let p = pulled.fetch_add(1, Ordering::SeqCst) + 1;
        let live = p - consumed.load(Ordering::SeqCst);
        max_seen.fetch_max(live, Ordering::SeqCst);
    });
    map_ordered(
        &opts,
        input,
        |i| {
            // Every 10th item is slow: the others finish and wait behind it.
            if i % 10 == 0 {
                thread::sleep(Duration::from_millis(3));
            }
            Ok::<_, TestError>(i)
        },
        |_| {
            consumed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(consumed.load(Ordering::SeqCst), 200);
    let max = max_seen.load(Ordering::SeqCst);
    assert!(max <= 5, "{max} items in flight, bound is 5");
    assert!(
        max >= 4,
        "only {max} items in flight: workers were not kept busy"
    );
}

#[test]
fn an_item_error_stops_the_run() {
    let started = AtomicUsize::new(0);
    let mut consumed = Vec::new();
    let t0 = Instant::now();
    let err = map_ordered(
        &Options {
            threads: 3,
            max_in_flight: 6,
        },
        0..1_000_000u64,
        |i| {
            started.fetch_add(1, Ordering::SeqCst);
            if i == 50 {
                Err(TestError::Item(i))
            } else {
                Ok(i)
            }
        },
        |v| {
            consumed.push(v);
            Ok(())
        },
    )
    .unwrap_err();
    assert_eq!(err, TestError::Item(50));
    // Nothing at or after the failed item reached the consumer, everything before
    // it that was consumed came in order, and the input was not drained.
    assert!(consumed.iter().all(|&v| v < 50));
    assert!(consumed.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(started.load(Ordering::SeqCst) < 50 + 6 + 3);
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_consumer_error_stops_the_run() {
    let started = AtomicUsize::new(0);
    let err = map_ordered(
        &Options::with_threads(2),
        0..1_000_000u64,
        |i| {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(i)
        },
        |v| {
            if v == 10 {
                Err(TestError::Consumer(v))
            } else {
                Ok(())
            }
        },
    )
    .unwrap_err();
    assert_eq!(err, TestError::Consumer(10));
    assert!(started.load(Ordering::SeqCst) <= 11 + 4);
}

#[test]
fn a_worker_panic_becomes_an_error() {
    let mut consumed = 0;
    let err = map_ordered(
        &Options::with_threads(2),
        0..100u64,
        |i| {
            if i == 7 {
                panic!("grain {i} exploded");
            }
            Ok::<_, TestError>(i)
        },
        |_| {
            consumed += 1;
            Ok(())
        },
    )
    .unwrap_err();
    match err {
        TestError::Panic(p) => {
            assert_eq!(p.index, 7);
            assert!(p.message.contains("grain 7 exploded"), "{p}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert!(consumed <= 7);
}

#[test]
fn panics_map_into_io_errors() {
    let err = map_ordered(
        &Options::with_threads(1),
        0..3u64,
        |_| -> std::io::Result<u64> { panic!("boom") },
        |_| Ok(()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
}

#[test]
fn one_thread_and_one_slot_work() {
    let mut out = Vec::new();
    map_ordered(
        &Options {
            threads: 1,
            max_in_flight: 1,
        },
        0..50u32,
        |i| Ok::<_, TestError>(i + 1),
        |v| {
            out.push(v);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(out, (1..=50).collect::<Vec<_>>());
    // Zero is treated as one, not as "hang forever".
    let mut n = 0;
    map_ordered(
        &Options {
            threads: 0,
            max_in_flight: 0,
        },
        0..5u32,
        Ok::<_, TestError>,
        |_| {
            n += 1;
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(n, 5);
}

#[test]
fn empty_input_is_fine() {
    map_ordered(
        &Options::default(),
        std::iter::empty::<u8>(),
        Ok::<_, TestError>,
        |_| panic!("nothing to consume"),
    )
    .unwrap();
}

/// Each worker builds its state once and reuses it; a panic discards it.
#[test]
fn per_worker_state_is_reused() {
    let inits = AtomicUsize::new(0);
    let mut total = 0u64;
    map_ordered_with(
        &Options::with_threads(3),
        || {
            inits.fetch_add(1, Ordering::SeqCst);
            Vec::<u8>::with_capacity(16)
        },
        0..500u64,
        |scratch, i| {
            scratch.clear();
            scratch.extend_from_slice(&i.to_le_bytes());
            Ok::<_, TestError>(scratch.len() as u64)
        },
        |n| {
            total += n;
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(total, 500 * 8);
    assert!(inits.load(Ordering::SeqCst) <= 3);
}

/// A consumer that panics unwinds through `map_ordered` after the workers have been
/// told to stop and were joined (no hang).
#[test]
fn a_consumer_panic_unwinds_without_hanging() {
    let r = std::panic::catch_unwind(|| {
        map_ordered(
            &Options::with_threads(2),
            0..1_000_000u64,
            Ok::<_, TestError>,
            |v| {
                assert!(v < 20, "consumer gives up");
                Ok(())
            },
        )
    });
    assert!(r.is_err());
}
