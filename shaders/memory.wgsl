// The compressive memory of one layer across a chunk of segments, in order. Q and
// K arrive as σ(Q) and σ(K) (sigma_apply.wgsl). For each segment s, first the
// reads with the memory of the segments before it,
//   A_mem = σ(Q) M / (σ(Q) z)         (Q without position encoding; 0 on the first
//                                      segment of a text, or with memory switched off)
//   R     = σ(K) M / (σ(K) z)         (delta rule only; 0 without memory)
// then, if the chunk is committed, the write
//   M += σ(K)ᵀ (V − R),   z += Σ_t σ(K_t).
// Two walks of the same arithmetic. `main`, for software adapters (lavapipe): one
// workgroup of 64 invocations per head walks the chunk. Both halves are small
// matrix products, tiled so that each load feeds several FMAs (on a software adapter
// such as lavapipe every load is a loop over the SIMD lanes; see matmul_vec4.wgsl):
// in the reads an invocation takes 4 tokens × 8 columns of M (17 loads for 72 FMAs
// per row i of M), in the write 8 rows × 8 columns of M (16 loads for 64 FMAs per
// token). Barriers separate the reads of M from its write, and the write from the
// next segment's reads. `columns`, for GPUs: see there.
// A walk covers segments `first` .. `first + segments` of the chunk (the engine splits
// long chunks: see Recorder::memory); `segments_written` counts the text's segments before it.
struct Params { n: u32, n_heads: u32, head_dim: u32, flags: u32, segments: u32, segments_written: u32, first: u32 }

const READ: u32 = 1u;
const DELTA: u32 = 2u;
const COMMIT: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sq: array<f32>;
@group(0) @binding(2) var<storage, read> sk: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> z: array<f32>;
@group(0) @binding(6) var<storage, read_write> a_mem: array<f32>;
// Scratch: V − R, what the write adds to M.
@group(0) @binding(7) var<storage, read_write> surprise: array<f32>;

// Elements first..first+3 of a buffer, each index clamped to `last`: tiles that
// overhang head_dim compute repeats, which are not stored.
fn m_four(first: u32, last: u32) -> vec4<f32> {
    return vec4(m[min(first, last)], m[min(first + 1u, last)], m[min(first + 2u, last)], m[min(first + 3u, last)]);
}

fn sk_four(first: u32, last: u32) -> vec4<f32> {
    return vec4(sk[min(first, last)], sk[min(first + 1u, last)], sk[min(first + 2u, last)], sk[min(first + 3u, last)]);
}

fn surprise_four(first: u32, last: u32) -> vec4<f32> {
    return vec4(surprise[min(first, last)], surprise[min(first + 1u, last)], surprise[min(first + 2u, last)], surprise[min(first + 3u, last)]);
}

// x·y for four y at once: the outer product as a matrix whose column b is x · y[b].
fn outer(x: vec4<f32>, y: vec4<f32>) -> mat4x4<f32> {
    return mat4x4(x * y.x, x * y.y, x * y.z, x * y.w);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
    let h = wg.x;
    let d = p.head_dim;
    let dm = p.n_heads * d;
    let read = (p.flags & READ) != 0u;
    let delta = (p.flags & DELTA) != 0u;
    let m0 = h * d * d;
    let z0 = h * d;
    // This invocation's eight columns of M (in the reads and the write) and eight
    // rows of M (in the write); its first token quad (in the reads).
    let j0 = (lid % 8u) * 8u;
    let i0 = (lid / 8u) * 8u;
    for (var s = 0u; s < p.segments; s++) {
        let has_memory = p.segments_written + s > 0u;
        let start = (p.first + s) * p.n;
        let last = start + p.n - 1u;
        for (var t0 = (lid / 8u) * 4u; t0 < p.n; t0 += 32u) {
            // Column b of nq_lo: token t0 + b's numerators for columns j0..j0+3.
            var nq_lo = mat4x4<f32>();
            var nq_hi = mat4x4<f32>();
            var nk_lo = mat4x4<f32>();
            var nk_hi = mat4x4<f32>();
            var den_q = vec4(0.0);
            var den_k = vec4(0.0);
            let rows = vec4(min(start + t0, last), min(start + t0 + 1u, last), min(start + t0 + 2u, last), min(start + t0 + 3u, last)) * dm + h * d;
            if (has_memory) {
                for (var i = 0u; i < d; i++) {
                    let row = m0 + i * d;
                    let m_lo = m_four(row + j0, row + d - 1u);
                    let m_hi = m_four(row + j0 + 4u, row + d - 1u);
                    let q = vec4(sq[rows.x + i], sq[rows.y + i], sq[rows.z + i], sq[rows.w + i]);
                    let k = vec4(sk[rows.x + i], sk[rows.y + i], sk[rows.z + i], sk[rows.w + i]);
                    let zi = z[z0 + i];
                    nq_lo += outer(m_lo, q);
                    nq_hi += outer(m_hi, q);
                    nk_lo += outer(m_lo, k);
                    nk_hi += outer(m_hi, k);
                    den_q += q * zi;
                    den_k += k * zi;
                }
            }
            let eps = vec4(MEMORY_EPS);
            let on_q = select(vec4(0.0), 1.0 / max(den_q, eps), has_memory && read);
            let on_k = select(vec4(0.0), 1.0 / max(den_k, eps), has_memory && delta);
            for (var b = 0u; b < 4u; b++) {
                if (t0 + b < p.n) {
                    for (var c = 0u; c < 4u; c++) {
                        for (var hi = 0u; hi < 2u; hi++) {
                            let j = j0 + 4u * hi + c;
                            if (j < d) {
                                let nq = select(nq_lo[b][c], nq_hi[b][c], hi == 1u);
                                let nk = select(nk_lo[b][c], nk_hi[b][c], hi == 1u);
                                a_mem[rows[b] + j] = nq * on_q[b];
                                surprise[rows[b] + j] = v[rows[b] + j] - nk * on_k[b];
                            }
                        }
                    }
                }
            }
        }
        // Every read of M (and every V − R) is done before the write changes M.
        storageBarrier();
        if ((p.flags & COMMIT) != 0u) {
            // Column c of w_ab: row i0 + 4a + c of M, its columns j0 + 4b ..= +3.
            var w_00 = mat4x4<f32>();
            var w_01 = mat4x4<f32>();
            var w_10 = mat4x4<f32>();
            var w_11 = mat4x4<f32>();
            var z_lo = vec4(0.0);
            var z_hi = vec4(0.0);
            for (var t = start; t <= last; t++) {
                let row = t * dm + h * d;
                let k_lo = sk_four(row + i0, row + d - 1u);
                let k_hi = sk_four(row + i0 + 4u, row + d - 1u);
                let u_lo = surprise_four(row + j0, row + d - 1u);
                let u_hi = surprise_four(row + j0 + 4u, row + d - 1u);
                w_00 += outer(u_lo, k_lo);
                w_01 += outer(u_hi, k_lo);
                w_10 += outer(u_lo, k_hi);
                w_11 += outer(u_hi, k_hi);
                z_lo += k_lo;
                z_hi += k_hi;
            }
            for (var c = 0u; c < 4u; c++) {
                for (var a = 0u; a < 2u; a++) {
                    let i = i0 + 4u * a + c;
                    if (i < d) {
                        let lo = select(w_00[c], w_10[c], a == 1u);
                        let hi = select(w_01[c], w_11[c], a == 1u);
                        for (var e = 0u; e < 4u; e++) {
                            if (j0 + e < d) { m[m0 + i * d + j0 + e] += lo[e]; }
                            if (j0 + 4u + e < d) { m[m0 + i * d + j0 + 4u + e] += hi[e]; }
                        }
                        // One invocation per row of M adds to z.
                        if (j0 == 0u) { z[z0 + i] += select(z_lo[c], z_hi[c], a == 1u); }
                    }
                }
            }
        }
        // The write is done before the next segment reads M and z.
        storageBarrier();
    }
}

// On a GPU one workgroup per head leaves all but a few multiprocessors idle and each
// invocation's long chains of loads unhidden: on an H200 that walk took 68% of a chunk
// (BENCHMARKS.md §7). But a column j of M needs only itself, σ(K), z and column j of V:
//   A_mem[:, j] = σ(Q) M[:, j] / (σ(Q) z),   M[:, j] += σ(K)ᵀ (V[:, j] − R[:, j]).
// So `columns` gives each workgroup one head's block of COLUMNS columns, held in
// workgroup memory across the walk with a private copy of z, which every block of
// the head advances alike; `z_sum`, dispatched after it, adds the chunk's Σ σ(K_t) to
// z (a block that wrote z could race the others' reads of it). 256 invocations: in
// the reads one token × 2 columns each, in the write one row × 4 columns.
const COLUMNS: u32 = 16u;
// Largest head_dim either walk takes (`main` tiles M in 8 × 8 blocks of 64 invocations).
const MAX_HEAD_DIM: u32 = 64u;
var<workgroup> m_block: array<f32, 1024>; // [i][COLUMNS], i < head_dim ≤ MAX_HEAD_DIM
var<workgroup> z_block: array<f32, 64>; // [i]

@compute @workgroup_size(256)
fn columns(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
    let d = p.head_dim;
    let blocks = (d + COLUMNS - 1u) / COLUMNS;
    let h = wg.x / blocks;
    let c0 = (wg.x % blocks) * COLUMNS;
    let dm = p.n_heads * d;
    let m0 = h * d * d;
    let read = (p.flags & READ) != 0u;
    let delta = (p.flags & DELTA) != 0u;
    // Columns past head_dim (a block that overhangs it) hold 0 and are not stored.
    for (var e = lid; e < d * COLUMNS; e += 256u) {
        let j = c0 + e % COLUMNS;
        m_block[e] = select(0.0, m[m0 + (e / COLUMNS) * d + min(j, d - 1u)], j < d);
    }
    if (lid < d) {
        z_block[lid] = z[h * d + lid];
    }
    workgroupBarrier();
    let pair = (lid % 8u) * 2u;
    let quad = (lid % 4u) * 4u;
    for (var s = 0u; s < p.segments; s++) {
        let has_memory = p.segments_written + s > 0u;
        let start = (p.first + s) * p.n;
        for (var t = lid / 8u; t < p.n; t += 32u) {
            let row = (start + t) * dm + h * d;
            var nq = vec2(0.0);
            var nk = vec2(0.0);
            var den_q = 0.0;
            var den_k = 0.0;
            if (has_memory) {
                for (var i = 0u; i < d; i++) {
                    let mi = vec2(m_block[i * COLUMNS + pair], m_block[i * COLUMNS + pair + 1u]);
                    let q = sq[row + i];
                    let k = sk[row + i];
                    nq += mi * q;
                    nk += mi * k;
                    den_q += q * z_block[i];
                    den_k += k * z_block[i];
                }
            }
            let on_q = select(0.0, 1.0 / max(den_q, MEMORY_EPS), has_memory && read);
            let on_k = select(0.0, 1.0 / max(den_k, MEMORY_EPS), has_memory && delta);
            for (var c = 0u; c < 2u; c++) {
                let j = c0 + pair + c;
                if (j < d) {
                    a_mem[row + j] = nq[c] * on_q;
                    surprise[row + j] = v[row + j] - nk[c] * on_k;
                }
            }
        }
        // Every V − R is stored, and every read of the block and z done, before the write.
        storageBarrier();
        workgroupBarrier();
        if ((p.flags & COMMIT) != 0u) {
            let i = lid / 4u;
            if (i < d) {
                var w = vec4(0.0);
                var zi = 0.0;
                for (var t = start; t < start + p.n; t++) {
                    let row = t * dm + h * d;
                    let k = sk[row + i];
                    let j = row + c0 + quad;
                    let end = row + d - 1u;
                    w += k * vec4(surprise[min(j, end)], surprise[min(j + 1u, end)], surprise[min(j + 2u, end)], surprise[min(j + 3u, end)]);
                    zi += k;
                }
                for (var e = 0u; e < 4u; e++) {
                    m_block[i * COLUMNS + quad + e] += w[e];
                }
                if (quad == 0u) {
                    z_block[i] += zi;
                }
            }
        }
        // The write is done before the next segment reads the block and z.
        workgroupBarrier();
    }
    // An uncommitted walk (a generation step, say) left the block as it found it.
    if ((p.flags & COMMIT) != 0u) {
        for (var e = lid; e < d * COLUMNS; e += 256u) {
            let j = c0 + e % COLUMNS;
            if (j < d) {
                m[m0 + (e / COLUMNS) * d + j] = m_block[e];
            }
        }
    }
}

// After `columns` commits: z += Σ σ(K_t) over the walk's segments. One workgroup per
// element of z, its invocations summing every 64th token, then halving.
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn z_sum(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
    let e = wg.x; // head · head_dim + i
    let dm = p.n_heads * p.head_dim;
    let start = p.first * p.n;
    var sum = 0.0;
    for (var t = start + lid; t < start + p.segments * p.n; t += 64u) {
        sum += sk[t * dm + e];
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if (lid < half) {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        z[e] += partial[0];
    }
}
