// The matmul op for shapes whose k and n are multiples of 4 (every projection of
// the shipped models): c[m×n] = a[m×k] · b, b stored [k×n], or [n×k] when
// TRANSPOSE_B. Each invocation keeps a block of 32 rows × 4 columns of c; the rows
// come from the workgroup id alone, so every load of a is the same address across
// the workgroup.
//
// Why this shape: a software adapter (lavapipe) runs invocations as SIMD lanes. A
// uniform load is one load; a per-lane load becomes a loop over the lanes with a
// bounds check and a scalar load each, ~20 cycles per lane (read from its JIT code
// with gdb), far more than the FMAs it feeds. So only b is loaded per lane, and each
// of those loads feeds 32 rows. The accumulators are named, not an array indexed in
// a loop: a long loop is not unrolled, and a dynamically indexed array goes to
// per-lane memory. Measured with `infiniscope bench` on lavapipe: 32 rows 1.38× the
// 8-row array version (16 rows 1.26×, 64 rows 1.47× but wasting half a block on a
// single 32-token segment).
override TRANSPOSE_B: bool = false;

struct Params { m: u32, k: u32, n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

// The 4×4 block of b at k-step kk4 and column group col4, as a matrix whose column
// i is k-row kk4·4 + i of b's four columns (TRANSPOSE_B: read across b's rows).
fn block(kk4: u32, col4: u32, k4: u32, n4: u32) -> mat4x4<f32> {
    if (TRANSPOSE_B) {
        let base = col4 * 4u * k4 + kk4;
        return transpose(mat4x4(b[base], b[base + k4], b[base + 2u * k4], b[base + 3u * k4]));
    }
    let base = kk4 * 4u * n4 + col4;
    return mat4x4(b[base], b[base + n4], b[base + 2u * n4], b[base + 3u * n4]);
}

// k-step kk4 of rows row..row+3 of a, one row per column. Rows past the end read the
// last row again (and are not stored).
fn rows_of_a(row: u32, k4: u32, kk4: u32) -> mat4x4<f32> {
    let last = p.m - 1u;
    return mat4x4(
        a[min(row, last) * k4 + kk4],
        a[min(row + 1u, last) * k4 + kk4],
        a[min(row + 2u, last) * k4 + kk4],
        a[min(row + 3u, last) * k4 + kk4],
    );
}

// Rows row..row+3 of c at column group col4, from the columns of `block`.
fn store(row: u32, n4: u32, col4: u32, block: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        if (row + i < p.m) { c[(row + i) * n4 + col4] = block[i]; }
    }
}

// 32 invocations cover 128 columns × 32 rows of c.
@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    // Columns past the end compute the last column again (and are not stored), so
    // every lane stays active and the loads of a stay uniform.
    let col = wg.x * 32u + lid.x;
    let col4 = min(col, n4 - 1u);
    let row0 = wg.y * 32u;
    // acc{g} column i: row row0 + 4g + i.
    var acc0 = mat4x4<f32>();
    var acc1 = mat4x4<f32>();
    var acc2 = mat4x4<f32>();
    var acc3 = mat4x4<f32>();
    var acc4 = mat4x4<f32>();
    var acc5 = mat4x4<f32>();
    var acc6 = mat4x4<f32>();
    var acc7 = mat4x4<f32>();
    for (var kk4 = 0u; kk4 < k4; kk4++) {
        let bb = block(kk4, col4, k4, n4);
        acc0 += bb * rows_of_a(row0 + 0u, k4, kk4);
        acc1 += bb * rows_of_a(row0 + 4u, k4, kk4);
        acc2 += bb * rows_of_a(row0 + 8u, k4, kk4);
        acc3 += bb * rows_of_a(row0 + 12u, k4, kk4);
        acc4 += bb * rows_of_a(row0 + 16u, k4, kk4);
        acc5 += bb * rows_of_a(row0 + 20u, k4, kk4);
        acc6 += bb * rows_of_a(row0 + 24u, k4, kk4);
        acc7 += bb * rows_of_a(row0 + 28u, k4, kk4);
    }
    if (col >= n4) { return; }
    store(row0 + 0u, n4, col4, acc0);
    store(row0 + 4u, n4, col4, acc1);
    store(row0 + 8u, n4, col4, acc2);
    store(row0 + 12u, n4, col4, acc3);
    store(row0 + 16u, n4, col4, acc4);
    store(row0 + 20u, n4, col4, acc5);
    store(row0 + 24u, n4, col4, acc6);
    store(row0 + 28u, n4, col4, acc7);
}
