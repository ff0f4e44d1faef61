//! Ordered parallel map: run a CPU-heavy function over a stream of work items on
//! several threads, and hand the results to one consumer **in input order**.
//!
//! This is the shape of every image writer: reading and compressing grains or
//! clusters is CPU-bound and independent per item, but the output file is written
//! sequentially (tables point at offsets that depend on everything written
//! before). So the caller's thread pulls items from the input iterator and runs the
//! consumer, and `threads` workers run the function in between.
//!
//! Guarantees:
//! - **Order**: the consumer sees result *i* only after results *0..i*.
//! - **Bounded memory**: at most `max_in_flight` items exist at once between being
//!   pulled from the input and being consumed (queued, being worked on, or finished
//!   and waiting for an earlier one). The input is not pulled ahead further.
//! - **First error stops everything**: an error from the function, from the
//!   consumer, or a panic in a worker ends the run; items not yet started are
//!   skipped, no further input is pulled, every worker thread is joined before
//!   [`map_ordered`] returns, and the error is returned. Which error wins when two
//!   happen at once is not specified, except that an error is never lost in favour
//!   of success.
//! - **Panics** in the work function are caught and returned as
//!   `E::from(WorkerPanic)` (with the panic message), so a bug in one grain's
//!   encoder does not abort the process with a half-written temporary file. This
//!   needs `panic = "unwind"` (the default); with `panic = "abort"` the process
//!   aborts as usual. A panic in the *consumer* or the *input iterator* happens on
//!   the caller's thread and unwinds normally, after the workers are shut down.
//! - **No busy-waiting**: every wait blocks on a channel.
//!
//! ```
//! use vmscrub_parmap::{Options, WorkerPanic, map_ordered};
//! let mut out = Vec::new();
//! map_ordered(
//!     &Options { threads: 4, max_in_flight: 8 },
//!     1..=100u64,
//!     |n| Ok::<_, std::io::Error>(n * n),
//!     |sq| {
//!         out.push(sq);
//!         Ok(())
//!     },
//! )
//! .unwrap();
//! assert_eq!(out, (1..=100u64).map(|n| n * n).collect::<Vec<_>>());
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

/// How many threads, and how much work may be outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Worker threads running the function (at least 1 is used).
    pub threads: usize,
    /// Items between input and consumer at any time (at least 1 is used). Twice the
    /// thread count keeps every worker busy while the consumer writes.
    pub max_in_flight: usize,
}

impl Default for Options {
    /// One worker per available core, two items in flight per worker.
    fn default() -> Self {
        Self::with_threads(available_threads())
    }
}

impl Options {
    /// `threads` workers with `2 × threads` items in flight.
    pub fn with_threads(threads: usize) -> Self {
        let threads = threads.max(1);
        Self {
            threads,
            max_in_flight: threads * 2,
        }
    }
}

/// The number of cores the process may use (1 if unknown).
pub fn available_threads() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// A worker panicked while processing item `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPanic {
    /// Position of the item in the input (0-based).
    pub index: u64,
    /// The panic payload when it was a string.
    pub message: String,
}

impl fmt::Display for WorkerPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "internal error: a worker thread panicked on item {}: {}",
            self.index, self.message
        )
    }
}

impl std::error::Error for WorkerPanic {}

impl From<WorkerPanic> for std::io::Error {
    fn from(p: WorkerPanic) -> Self {
        std::io::Error::other(p)
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// [`map_ordered_with`] without per-worker state.
pub fn map_ordered<T, U, E, I, F, C>(opts: &Options, input: I, work: F, consume: C) -> Result<(), E>
where
    I: IntoIterator<Item = T>,
    T: Send,
    U: Send,
    E: Send + From<WorkerPanic>,
    F: Fn(T) -> Result<U, E> + Sync,
    C: FnMut(U) -> Result<(), E>,
{
    map_ordered_with(opts, || (), input, |_, item| work(item), consume)
}

/// Runs `work(&mut state, item)` for every item of `input` on `opts.threads`
/// workers (each with its own `state` from `init`, for reusable scratch such as a
/// compressor), and calls `consume` with the results in input order on the
/// calling thread. See the crate documentation for the guarantees.
pub fn map_ordered_with<S, T, U, E, I, N, F, C>(
    opts: &Options,
    init: N,
    input: I,
    work: F,
    mut consume: C,
) -> Result<(), E>
where
    I: IntoIterator<Item = T>,
    T: Send,
    U: Send,
    E: Send + From<WorkerPanic>,
    N: Fn() -> S + Sync,
    F: Fn(&mut S, T) -> Result<U, E> + Sync,
    C: FnMut(U) -> Result<(), E>,
{
    let threads = opts.threads.max(1);
    let max_in_flight = opts.max_in_flight.max(1);
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        // Jobs: bounded by max_in_flight, which the loop below never exceeds, so a
        // send never blocks. Workers share the receiver through a mutex held only
        // while taking one job.
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, T)>(max_in_flight);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = mpsc::channel::<(u64, Result<U, E>)>();
        for _ in 0..threads {
            let job_rx = Arc::clone(&job_rx);
            let res_tx = res_tx.clone();
            let (init, work, stop) = (&init, &work, &stop);
            scope.spawn(move || worker(&job_rx, &res_tx, init, work, stop));
        }
        // Only workers hold result senders: if they all exit, recv() fails instead
        // of blocking forever.
        drop(res_tx);
        let result = drive(
            input.into_iter(),
            &job_tx,
            &res_rx,
            max_in_flight,
            &mut consume,
        );
        if result.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        // Closing the job channel lets idle workers exit; the scope joins them.
        drop(job_tx);
        result
    })
}

fn worker<S, T, U, E>(
    jobs: &Mutex<mpsc::Receiver<(u64, T)>>,
    results: &mpsc::Sender<(u64, Result<U, E>)>,
    init: &(dyn Fn() -> S + Sync),
    work: &(dyn Fn(&mut S, T) -> Result<U, E> + Sync),
    stop: &AtomicBool,
) where
    E: From<WorkerPanic>,
{
    let mut state: Option<S> = None;
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            // Another worker panicked while holding the lock: impossible (recv does
            // not panic), but never hang on it.
            Err(_) => return,
        };
        let Ok((index, item)) = job else {
            return; // channel closed: the run is over
        };
        if stop.load(Ordering::Relaxed) {
            continue; // drain without working; the caller is shutting down
        }
        let out = catch_unwind(AssertUnwindSafe(|| {
            let st = state.get_or_insert_with(init);
            work(st, item)
        }));
        let out = match out {
            Ok(r) => r,
            Err(payload) => {
                // The state may be half-updated: start afresh for the next item.
                state = None;
                Err(E::from(WorkerPanic {
                    index,
                    message: panic_message(&*payload),
                }))
            }
        };
        if results.send((index, out)).is_err() {
            return; // the caller has gone
        }
    }
}

/// The caller's loop: keep up to `max_in_flight` items out, consume in order.
fn drive<T, U, E>(
    mut input: impl Iterator<Item = T>,
    jobs: &mpsc::SyncSender<(u64, T)>,
    results: &mpsc::Receiver<(u64, Result<U, E>)>,
    max_in_flight: usize,
    consume: &mut dyn FnMut(U) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<WorkerPanic>,
{
    let mut next_in = 0u64;
    let mut next_out = 0u64;
    let mut in_flight = 0usize;
    let mut input_done = false;
    // Finished results waiting for an earlier one; never more than max_in_flight.
    let mut ready: BTreeMap<u64, U> = BTreeMap::new();
    loop {
        while let Some(u) = ready.remove(&next_out) {
            next_out += 1;
            in_flight -= 1;
            consume(u)?;
        }
        if !input_done && in_flight < max_in_flight {
            match input.next() {
                Some(item) => {
                    if jobs.send((next_in, item)).is_err() {
                        return Err(E::from(WorkerPanic {
                            index: next_in,
                            message: "every worker thread has exited".into(),
                        }));
                    }
                    next_in += 1;
                    in_flight += 1;
                    continue;
                }
                None => input_done = true,
            }
        }
        if in_flight == 0 {
            return Ok(());
        }
        match results.recv() {
            Ok((index, Ok(u))) => {
                ready.insert(index, u);
            }
            Ok((_, Err(e))) => return Err(e),
            Err(_) => {
                return Err(E::from(WorkerPanic {
                    index: next_out,
                    message: "every worker thread has exited".into(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests;
