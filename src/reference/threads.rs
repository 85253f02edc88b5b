//! The CPU reference's threads: a call large enough spreads independent work (the
//! heads of a layer, the losses of segments) over the cores, on rayon's pool (started
//! once, not per call).

/// Rows below which a call stays on one thread: handing work to other cores costs
/// more than a short call's work, and far more on a busy machine (a 16K-token passkey
/// run of one segment per call, threaded, beside two training runs: 131 s of wall
/// time for 7 s of CPU time, the threads waiting for cores).
#[cfg(not(target_arch = "wasm32"))]
const THREADED_ROWS: usize = 128;

/// `[f(0), f(1), …, f(n − 1)]`, computed on every core when the call has `rows` ≥
/// [`THREADED_ROWS`] (natively; the page has one thread), else in order.
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
pub(super) fn parallel_map<T: Send>(
    rows: usize,
    n: usize,
    f: impl Fn(usize) -> T + Sync + Send,
) -> Vec<T> {
    #[cfg(not(target_arch = "wasm32"))]
    if rows >= THREADED_ROWS && threaded() {
        use rayon::prelude::*;
        return (0..n).into_par_iter().map(f).collect();
    }
    (0..n).map(f).collect()
}

/// Whether rayon's pool has more than one thread (one where the process may use one
/// core, `taskset -c 0`): a pool of one only hands each call to another thread and
/// back, a wake-up and a switch per call for no parallelism.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn threaded() -> bool {
    rayon::current_num_threads() > 1
}
