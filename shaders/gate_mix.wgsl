// Gate: A = g·A_mem + (1−g)·A_dot with g = sigmoid(β) per head, and each token's
// memory share g‖A_mem‖ / (g‖A_mem‖ + (1−g)‖A_dot‖).
struct Params { n: u32, n_heads: u32, head_dim: u32, share_offset: u32, segments: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a_mem: array<f32>;
@group(0) @binding(2) var<storage, read> a_dot: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> share: array<f32>;

// One invocation per (token, head).
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.segments * p.n * p.n_heads) { return; }
    let h = i % p.n_heads;
    let g = 1.0 / (1.0 + exp(-beta[h]));
    var norm_m = 0.0;
    var norm_l = 0.0;
    for (var j = 0u; j < p.head_dim; j++) {
        let e = i * p.head_dim + j;
        let gm = g * a_mem[e];
        let gl = (1.0 - g) * a_dot[e];
        out[e] = gm + gl;
        norm_m += gm * gm;
        norm_l += gl * gl;
    }
    norm_m = sqrt(norm_m);
    norm_l = sqrt(norm_l);
    share[p.share_offset + i] = select(0.0, norm_m / (norm_m + norm_l), norm_m + norm_l > 0.0);
}
