// Rotary position embedding, rotate-half pairing (i with i + d/2); positions restart
// at 0 in every segment (rows t of a chunk are at position t mod n). Only the local
// attention sees it, never the memory.
struct Params { n: u32, n_heads: u32, head_dim: u32, base: f32, segments: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let half = p.head_dim / 2u;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.segments * p.n * p.n_heads * half) { return; }
    let t = i / (p.n_heads * half);
    let h = (i / half) % p.n_heads;
    let j = i % half;
    let angle = f32(t % p.n) * pow(p.base, -f32(2u * j) / f32(p.head_dim));
    let cs = cos(angle);
    let sn = sin(angle);
    let lo = t * p.n_heads * p.head_dim + h * p.head_dim + j;
    let a = x[lo];
    let b = x[lo + half];
    y[lo] = a * cs - b * sn;
    y[lo + half] = a * sn + b * cs;
}
