//! The CPU reference's threads: a call large enough spreads independent work (the
//! heads of a layer, the losses of segments) over the cores.

/// Rows below which a call stays on one thread: starting threads costs tens of
/// microseconds, and far more on a busy machine (a 16K-token passkey run of one
/// segment per call, threaded, beside two training runs: 131 s of wall time for 7 s
/// of CPU time, the threads waiting for cores).
const THREADED_ROWS: usize = 128;

/// `[f(0), f(1), …, f(n − 1)]`, computed on every core (in contiguous runs) when the
/// call has `rows` ≥ [`THREADED_ROWS`], else in order.
pub(super) fn parallel_map<T: Send>(
    rows: usize,
    n: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = if rows >= THREADED_ROWS { cores() } else { 1 };
    let per_thread = n.div_ceil(threads.min(n).max(1));
    if per_thread >= n {
        return (0..n).map(f).collect();
    }
    let f = &f;
    let run = move |start: usize| {
        (start..(start + per_thread).min(n))
            .map(f)
            .collect::<Vec<T>>()
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = (per_thread..n)
            .step_by(per_thread)
            .map(|start| scope.spawn(move || run(start)))
            .collect();
        let mut all = run(0);
        for other in others {
            all.extend(
                other
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        all
    })
}

/// Threads worth starting: this machine's cores natively; one in the browser, whose
/// page has a single thread here.
fn cores() -> usize {
    #[cfg(target_arch = "wasm32")]
    return 1;
    #[cfg(not(target_arch = "wasm32"))]
    {
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |c| c.get()))
    }
}
