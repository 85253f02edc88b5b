// Memory write, after the read: M += σ(K)ᵀ V (linear) or σ(K)ᵀ (V − R) (delta, R the
// retrieval σ(K)M/(σ(K)z) computed beforehand by memory_read); z += Σ_t σ(K_t).
struct Params { n: u32, n_heads: u32, head_dim: u32, delta: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> retrieved: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> z: array<f32>;

// One invocation per memory cell (head, i, j).
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let d = p.head_dim;
    let dm = p.n_heads * d;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= p.n_heads * d * d) { return; }
    let h = idx / (d * d);
    let i = (idx / d) % d;
    let j = idx % d;
    var dm_ij = 0.0;
    var dz_i = 0.0;
    for (var t = 0u; t < p.n; t++) {
        let sk = sigma(k[t * dm + h * d + i]);
        var value = v[t * dm + h * d + j];
        if (p.delta != 0u) { value -= retrieved[t * dm + h * d + j]; }
        dm_ij += sk * value;
        dz_i += sk;
    }
    m[idx] += dm_ij;
    if (j == 0u) { z[h * d + i] += dz_i; }
}
