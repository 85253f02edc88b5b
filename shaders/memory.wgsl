// The compressive memory of one layer across a chunk of segments, in order. Q and
// K arrive as σ(Q) and σ(K) (sigma_apply.wgsl). For each segment s, first the
// reads with the memory of the segments before it,
//   A_mem = σ(Q) M / (σ(Q) z)         (Q without position encoding; 0 on the first
//                                      segment of a text, or with memory switched off)
//   R     = σ(K) M / (σ(K) z)         (delta rule only; 0 without memory)
// then, if the chunk is committed, the write
//   M += σ(K)ᵀ (V − R),   z += Σ_t σ(K_t).
// One workgroup per head walks the chunk, one invocation per column j of M: every
// read and write of M[·][j], A_mem[·][j] and (V − R)[·][j] is that invocation's
// own, so the walk needs no barriers. The loops run over tokens and rows i that are
// the same for every invocation, so loads of σ(Q), σ(K) and z are uniform; a
// software adapter (lavapipe) turns those into one load instead of a gather per lane.
// A walk covers segments `first` .. `first + segments` of the chunk (the engine splits
// long chunks: see Recorder::memory); `written` counts the text's segments before it.
struct Params { n: u32, n_heads: u32, head_dim: u32, flags: u32, segments: u32, written: u32, first: u32 }

const READ: u32 = 1u;
const DELTA: u32 = 2u;
const COMMIT: u32 = 4u;
// head_dim ≤ MAX_HEAD_DIM (checked by the engine).
const MAX_HEAD_DIM: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sq: array<f32>;
@group(0) @binding(2) var<storage, read> sk: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> z: array<f32>;
@group(0) @binding(6) var<storage, read_write> a_mem: array<f32>;
// Scratch: V − R, what the write adds to M.
@group(0) @binding(7) var<storage, read_write> surprise: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
    let h = wg.x;
    let d = p.head_dim;
    let dm = p.n_heads * d;
    let read = (p.flags & READ) != 0u;
    let delta = (p.flags & DELTA) != 0u;
    // Invocations past head_dim repeat the last column and store nothing, so every
    // invocation stays active and the uniform loads stay uniform.
    let j = min(lid, d - 1u);
    let owner = lid < d;
    // z is needed whole by every invocation: each keeps its own (equal) copy.
    var zl: array<f32, MAX_HEAD_DIM>;
    for (var i = 0u; i < d; i++) {
        zl[i] = z[h * d + i];
    }
    // Every copy is taken before any invocation writes z back at the end.
    workgroupBarrier();
    for (var s = 0u; s < p.segments; s++) {
        let has_memory = p.written + s > 0u;
        let start = (p.first + s) * p.n;
        let last = start + p.n - 1u;
        // Reads, four tokens at a time (the last block repeats the last token).
        for (var t0 = 0u; t0 < p.n; t0 += 4u) {
            let rows = vec4(
                min(start + t0, last),
                min(start + t0 + 1u, last),
                min(start + t0 + 2u, last),
                min(start + t0 + 3u, last),
            ) * dm + h * d;
            var num_q = vec4(0.0);
            var den_q = vec4(0.0);
            var num_k = vec4(0.0);
            var den_k = vec4(0.0);
            if (has_memory) {
                for (var i = 0u; i < d; i++) {
                    let mij = m[(h * d + i) * d + j];
                    let q = vec4(sq[rows.x + i], sq[rows.y + i], sq[rows.z + i], sq[rows.w + i]);
                    let k = vec4(sk[rows.x + i], sk[rows.y + i], sk[rows.z + i], sk[rows.w + i]);
                    num_q += q * mij;
                    den_q += q * zl[i];
                    num_k += k * mij;
                    den_k += k * zl[i];
                }
            }
            let eps = vec4(MEMORY_EPS);
            let a = select(vec4(0.0), num_q / max(den_q, eps), has_memory && read);
            let r = select(vec4(0.0), num_k / max(den_k, eps), has_memory && delta);
            for (var b = 0u; b < 4u; b++) {
                if (owner && t0 + b < p.n) {
                    a_mem[rows[b] + j] = a[b];
                    surprise[rows[b] + j] = v[rows[b] + j] - r[b];
                }
            }
        }
        if ((p.flags & COMMIT) != 0u) {
            // Write: rows i of M (and z), eight at a time (clamped where head_dim is
            // not a multiple of 8; the repeats are not stored).
            let im = d - 1u;
            for (var i0 = 0u; i0 < d; i0 += 8u) {
                var lo = vec4(0.0);
                var hi = vec4(0.0);
                var z_lo = vec4(0.0);
                var z_hi = vec4(0.0);
                for (var t = start; t <= last; t++) {
                    let row = t * dm + h * d;
                    let u = surprise[row + j];
                    let k_lo = vec4(sk[row + min(i0, im)], sk[row + min(i0 + 1u, im)], sk[row + min(i0 + 2u, im)], sk[row + min(i0 + 3u, im)]);
                    let k_hi = vec4(sk[row + min(i0 + 4u, im)], sk[row + min(i0 + 5u, im)], sk[row + min(i0 + 6u, im)], sk[row + min(i0 + 7u, im)]);
                    lo += u * k_lo;
                    hi += u * k_hi;
                    z_lo += k_lo;
                    z_hi += k_hi;
                }
                for (var b = 0u; b < 4u; b++) {
                    if (i0 + b < d) {
                        zl[i0 + b] += z_lo[b];
                        if (owner) { m[(h * d + i0 + b) * d + j] += lo[b]; }
                    }
                    if (i0 + 4u + b < d) {
                        zl[i0 + 4u + b] += z_hi[b];
                        if (owner) { m[(h * d + i0 + 4u + b) * d + j] += hi[b]; }
                    }
                }
            }
        }
    }
    if (owner) {
        z[h * d + j] = zl[j];
    }
}
