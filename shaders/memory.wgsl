// The compressive memory of one layer across a chunk of segments, in order. Q and
// K arrive as σ(Q) and σ(K) (sigma_apply.wgsl). For each segment s, first the
// reads with the memory of the segments before it,
//   A_mem = σ(Q) M / (σ(Q) z)         (Q without position encoding; 0 on the first
//                                      segment of a text, or with memory switched off)
//   R     = σ(K) M / (σ(K) z)         (delta rule only; 0 without memory)
// then, if the chunk is committed, the write
//   M += σ(K)ᵀ (V − R),   z += Σ_t σ(K_t).
// One workgroup per head walks the chunk: the segments depend on each other only
// through M and z, which that workgroup alone owns, so barriers suffice.
struct Params { n: u32, n_heads: u32, head_dim: u32, flags: u32, segments: u32, written: u32 }

const READ: u32 = 1u;
const DELTA: u32 = 2u;
const COMMIT: u32 = 4u;
const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sq: array<f32>;
@group(0) @binding(2) var<storage, read> sk: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> z: array<f32>;
@group(0) @binding(6) var<storage, read_write> a_mem: array<f32>;
@group(0) @binding(7) var<storage, read_write> retrieved: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
    let h = wg.x;
    let d = p.head_dim;
    let dm = p.n_heads * d;
    let read = (p.flags & READ) != 0u;
    let delta = (p.flags & DELTA) != 0u;
    for (var s = 0u; s < p.segments; s++) {
        let has_memory = p.written + s > 0u;
        let first = s * p.n;
        // Reads: one output element (token, j) per step.
        for (var e = lid; e < p.n * d; e += THREADS) {
            let row = (first + e / d) * dm + h * d;
            let j = e % d;
            var num_q = 0.0;
            var den_q = 0.0;
            var num_k = 0.0;
            var den_k = 0.0;
            if (has_memory) {
                for (var i = 0u; i < d; i++) {
                    let mij = m[(h * d + i) * d + j];
                    let zi = z[h * d + i];
                    num_q += sq[row + i] * mij;
                    den_q += sq[row + i] * zi;
                    num_k += sk[row + i] * mij;
                    den_k += sk[row + i] * zi;
                }
            }
            a_mem[row + j] = select(0.0, num_q / max(den_q, MEMORY_EPS), has_memory && read);
            retrieved[row + j] = select(0.0, num_k / max(den_k, MEMORY_EPS), has_memory && delta);
        }
        storageBarrier();
        workgroupBarrier();
        if ((p.flags & COMMIT) != 0u) {
            // Write: one memory cell (i, j) per step.
            for (var c = lid; c < d * d; c += THREADS) {
                let i = c / d;
                let j = c % d;
                var dm_ij = 0.0;
                var dz_i = 0.0;
                for (var t = first; t < first + p.n; t++) {
                    let row = t * dm + h * d;
                    let s_k = sk[row + i];
                    dm_ij += s_k * (v[row + j] - retrieved[row + j]);
                    dz_i += s_k;
                }
                m[(h * d + i) * d + j] += dm_ij;
                if (j == 0u) {
                    z[h * d + i] += dz_i;
                }
            }
        }
        storageBarrier();
        workgroupBarrier();
    }
}
