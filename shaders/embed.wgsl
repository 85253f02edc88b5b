// Embedding gather: x[t] = table[tokens[t]].
struct Params { n: u32, d_model: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.n * p.d_model) { return; }
    let t = i / p.d_model;
    x[i] = table[tokens[t] * p.d_model + i % p.d_model];
}
