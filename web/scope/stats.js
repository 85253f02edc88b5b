// Numbers the panels show, computed off the DOM: the worker digests each segment with
// these (scope/engine-worker.js), so the page's main thread only draws.

/** Frobenius norm of `len` values from `offset`. */
export function norm(values, offset, len) {
  let s = 0;
  for (let i = offset; i < offset + len; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}

/** The mean of an array of numbers (NaN for none). */
export function mean(values) {
  let s = 0;
  for (const v of values) s += v;
  return values.length ? s / values.length : NaN;
}

/** The q-quantile of |values| (robust colour scale: a few large entries do not wash the rest out). */
export function absQuantile(values, q) {
  const step = Math.max(1, Math.floor(values.length / 4096));
  const sample = new Float32Array(Math.ceil(values.length / step));
  for (let i = 0, j = 0; i < values.length; i += step, j++) sample[j] = Math.abs(values[i]);
  if (!sample.length) return 0;
  return select(sample, Math.min(sample.length - 1, Math.floor(q * sample.length))) || 0;
}

/** The k-th smallest of `a` (reordered in place): quickselect, linear on average. */
function select(a, k) {
  let [lo, hi] = [0, a.length - 1];
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let [i, j] = [lo, hi];
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k];
}

/**
 * What the panels show of one segment beside its raw arrays: each head's memory share
 * summed and averaged over the segment's `n` tokens (`share` [layer][token][head]),
 * and, when M and z came with it, each head's ‖M‖, ‖z‖ and colour scales (98th
 * percentile of |M|, |z|).
 */
export function summarise({ share, m, z }, n, { n_layers: layers, n_heads: heads, head_dim: d }) {
  const shareSums = new Float32Array(layers * heads);
  for (let l = 0; l < layers; l++) {
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < heads; h++) shareSums[l * heads + h] += share[(l * n + t) * heads + h];
    }
  }
  const headShares = shareSums.map((s) => s / Math.max(n, 1));
  if (m.length === 0) return { shareSums, headShares, memory: null };
  const memory = { mNorms: [], zNorms: [], mScales: [], zScales: [] };
  for (let i = 0; i < layers * heads; i++) {
    memory.mNorms.push(norm(m, i * d * d, d * d));
    memory.zNorms.push(norm(z, i * d, d));
    memory.mScales.push(absQuantile(m.subarray(i * d * d, (i + 1) * d * d), 0.98));
    memory.zScales.push(absQuantile(z.subarray(i * d, (i + 1) * d), 0.98));
  }
  return { shareSums, headShares, memory };
}
