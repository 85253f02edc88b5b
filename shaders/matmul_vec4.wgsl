// The matmul op for shapes whose k and n are multiples of 4 (every projection of
// the shipped models): c[m×n] = a[m×k] · b, b stored [k×n], or [n×k] when
// TRANSPOSE_B. The same 4×4 block per invocation as matmul.wgsl, but every load
// is a vec4 along k or n and the loop has no bounds checks: a quarter of the load
// instructions, which is what bounds a software adapter.
override TRANSPOSE_B: bool = false;

struct Params { m: u32, k: u32, n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

// acc += a_row · (the 4×4 block of b at k-step kk4 and column group col4).
fn step(a_row: vec4<f32>, kk4: u32, col4: u32, k4: u32, n4: u32) -> vec4<f32> {
    if (TRANSPOSE_B) {
        let base = col4 * 4u * k4 + kk4;
        return vec4(
            dot(a_row, b[base]),
            dot(a_row, b[base + k4]),
            dot(a_row, b[base + 2u * k4]),
            dot(a_row, b[base + 3u * k4]),
        );
    }
    let base = kk4 * 4u * n4 + col4;
    return a_row.x * b[base] + a_row.y * b[base + n4] + a_row.z * b[base + 2u * n4] + a_row.w * b[base + 3u * n4];
}

// 8×8 invocations cover a 32×32 block of c.
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    let col4 = gid.x;
    let row0 = gid.y * 4u;
    if (row0 >= p.m || col4 >= n4) { return; }
    // Rows past the end read the last row again (and are not stored): no branches.
    let last = p.m - 1u;
    let r0 = row0 * k4;
    let r1 = min(row0 + 1u, last) * k4;
    let r2 = min(row0 + 2u, last) * k4;
    let r3 = min(row0 + 3u, last) * k4;
    var acc0 = vec4(0.0);
    var acc1 = vec4(0.0);
    var acc2 = vec4(0.0);
    var acc3 = vec4(0.0);
    for (var kk4 = 0u; kk4 < k4; kk4++) {
        acc0 += step(a[r0 + kk4], kk4, col4, k4, n4);
        acc1 += step(a[r1 + kk4], kk4, col4, k4, n4);
        acc2 += step(a[r2 + kk4], kk4, col4, k4, n4);
        acc3 += step(a[r3 + kk4], kk4, col4, k4, n4);
    }
    c[row0 * n4 + col4] = acc0;
    if (row0 + 1u < p.m) { c[(row0 + 1u) * n4 + col4] = acc1; }
    if (row0 + 2u < p.m) { c[(row0 + 2u) * n4 + col4] = acc2; }
    if (row0 + 3u < p.m) { c[(row0 + 3u) * n4 + col4] = acc3; }
}
