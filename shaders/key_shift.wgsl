// The memory's keys of the key-shift variant (beyond the paper): K̃_t = Σ_i c_i ⊙ K_{t−i}
// over `taps` taps, with no term from before a segment's first token (row t is token
// t mod n of its segment), so a segment's keys depend on that segment alone.
// shift is [c_0; …; c_{taps−1}], each [d_model]. The memory's queries of a query-shift
// model go through the same op with their own taps.
struct Params { n: u32, d_model: u32, rows: u32, taps: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.rows * p.d_model) { return; }
    let c = i % p.d_model;
    let reach = min(p.taps, (i / p.d_model) % p.n + 1u);
    var y = 0.0;
    for (var tap = 0u; tap < reach; tap++) {
        y += shift[tap * p.d_model + c] * k[i - tap * p.d_model];
    }
    out[i] = y;
}
