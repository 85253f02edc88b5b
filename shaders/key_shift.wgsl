// The memory's keys of the key-shift variant (beyond the paper): K̃_t = a ⊙ K_t + b ⊙ K_{t−1},
// with K_{t−1} = 0 at each segment's first token (rows t with t mod n = 0), so a
// segment's keys depend on that segment alone. shift is [a; b], each [d_model].
struct Params { n: u32, d_model: u32, rows: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.rows * p.d_model) { return; }
    let t = i / p.d_model;
    let c = i % p.d_model;
    var y = shift[c] * k[i];
    if (t % p.n != 0u) {
        y += shift[p.d_model + c] * k[i - p.d_model];
    }
    out[i] = y;
}
