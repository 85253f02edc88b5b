// σ applied in place to Q and K before the memory walk, so that kernel does not
// recompute it for every cell it touches. Q and K are not read again afterwards
// (the local attention reads their RoPE copies).
struct Params { len: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> k: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.len) { return; }
    q[i] = sigma(q[i]);
    k[i] = sigma(k[i]);
}
