// Memory read: A_mem = σ(Q) M / (σ(Q) z) per head, Q without position encoding.
// Exactly 0 while there is no memory (first segment, or memory switched off).
// Also the delta rule's retrieval σ(K) M / (σ(K) z), with K bound as `q`.
struct Params { n: u32, n_heads: u32, head_dim: u32, has_memory: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;
@group(0) @binding(3) var<storage, read> z: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// One invocation per output element (token, head, j).
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let d = p.head_dim;
    let dm = p.n_heads * d;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= p.n * dm) { return; }
    if (p.has_memory == 0u) {
        out[idx] = 0.0;
        return;
    }
    let t = idx / dm;
    let h = (idx % dm) / d;
    let j = idx % d;
    var num = 0.0;
    var den = 0.0;
    for (var i = 0u; i < d; i++) {
        let sq = sigma(q[t * dm + h * d + i]);
        num += sq * m[(h * d + i) * d + j];
        den += sq * z[h * d + i];
    }
    out[idx] = num / max(den, MEMORY_EPS);
}
