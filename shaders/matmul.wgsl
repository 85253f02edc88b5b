// c[m×n] = a[m×k] · b, with b stored [k×n], or [n×k] when TRANSPOSE_B (the tied
// output projection). Each invocation computes a 4×4 block of c in registers: no
// workgroup memory and no barriers, which software adapters (lavapipe,
// SwiftShader) run far faster than shared-memory tiling.
override TRANSPOSE_B: bool = false;

struct Params { m: u32, k: u32, n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

fn load_b(kk: u32, col: u32) -> f32 {
    if (col >= p.n) { return 0.0; }
    if (TRANSPOSE_B) { return b[col * p.k + kk]; }
    return b[kk * p.n + col];
}

fn load_a(row: u32, kk: u32) -> f32 {
    if (row >= p.m) { return 0.0; }
    return a[row * p.k + kk];
}

// 8×8 invocations cover a 32×32 block of c.
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) { return; }
    var acc: array<vec4<f32>, 4>;
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4(load_b(kk, col0), load_b(kk, col0 + 1u), load_b(kk, col0 + 2u), load_b(kk, col0 + 3u));
        acc[0] += load_a(row0, kk) * bv;
        acc[1] += load_a(row0 + 1u, kk) * bv;
        acc[2] += load_a(row0 + 2u, kk) * bv;
        acc[3] += load_a(row0 + 3u, kk) * bv;
    }
    for (var r = 0u; r < 4u; r++) {
        let row = row0 + r;
        if (row >= p.m) { break; }
        for (var j = 0u; j < 4u; j++) {
            if (col0 + j < p.n) { c[row * p.n + col0 + j] = acc[r][j]; }
        }
    }
}
