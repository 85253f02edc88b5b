// The matmul op for shapes whose k and n are multiples of 4 (every projection of
// the shipped models): c[m×n] = a[m×k] · b, b stored [k×n], or [n×k] when
// TRANSPOSE_B. Two tilings of the same product, picked by the kind of adapter:
//
// `main`, for GPUs: each invocation keeps 8 rows × 4 columns of c (32 registers);
// the rows come from the workgroup id, so a warp loads each value of a once.
//
// `simd`, for software adapters (lavapipe), which run invocations as the CPU's SIMD
// lanes: there, every load of a storage buffer, even one at the same address in
// every lane, is a loop over the lanes with a bounds check and a scalar load each
// (read from lavapipe's JIT code with gdb, Mesa 22.3), far dearer than the FMAs it
// feeds. So the cost is the loads, and a square tile needs the fewest per FMA: each
// invocation keeps 16 rows × 16 columns, 32 vec4 loads for 1,024 FMAs per k-step
// (8 × 4: 12 loads for 128). The accumulators are named, not an array indexed in a
// loop, because such a loop is not unrolled and the array then lives in per-lane
// memory. Measured with `infiniscope bench` on lavapipe, idle: 3.67 GFLOP/s, against
// 1.91 for 32 × 4 and 1.43 for 8 × 4 (registers spill, cheaply, to the CPU's stack).
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
// last row again (and are not stored), so every lane stays active.
fn rows_of_a(row: u32, k4: u32, kk4: u32) -> mat4x4<f32> {
    let last = p.m - 1u;
    return mat4x4(
        a[min(row, last) * k4 + kk4],
        a[min(row + 1u, last) * k4 + kk4],
        a[min(row + 2u, last) * k4 + kk4],
        a[min(row + 3u, last) * k4 + kk4],
    );
}

// Rows row..row+3 of c at column group col4: the columns of `block · rows_of_a`.
fn store(row: u32, n4: u32, col4: u32, block: mat4x4<f32>) {
    if (col4 >= n4) { return; }
    for (var i = 0u; i < 4u; i++) {
        if (row + i < p.m) { c[(row + i) * n4 + col4] = block[i]; }
    }
}

// 32 invocations cover 128 columns × 8 rows of c. Columns past the end compute the
// last column again (and are not stored).
@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    let col4 = wg.x * 32u + lid.x;
    let row0 = wg.y * 8u;
    var acc0 = mat4x4<f32>();
    var acc1 = mat4x4<f32>();
    for (var kk4 = 0u; kk4 < k4; kk4++) {
        let bb = block(kk4, min(col4, n4 - 1u), k4, n4);
        acc0 += bb * rows_of_a(row0, k4, kk4);
        acc1 += bb * rows_of_a(row0 + 4u, k4, kk4);
    }
    store(row0, n4, col4, acc0);
    store(row0 + 4u, n4, col4, acc1);
}

// 8 invocations (one SIMD batch of a 256-bit CPU) cover 128 columns × 16 rows of c:
// invocation l takes column groups l, l + 8, l + 16 and l + 24. acc{j}{g} holds
// column group j's rows row0 + 4g ..= row0 + 4g + 3.
@compute @workgroup_size(8)
fn simd(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    let col0 = wg.x * 32u + lid.x;
    let row0 = wg.y * 16u;
    var acc00 = mat4x4<f32>();
    var acc01 = mat4x4<f32>();
    var acc02 = mat4x4<f32>();
    var acc03 = mat4x4<f32>();
    var acc10 = mat4x4<f32>();
    var acc11 = mat4x4<f32>();
    var acc12 = mat4x4<f32>();
    var acc13 = mat4x4<f32>();
    var acc20 = mat4x4<f32>();
    var acc21 = mat4x4<f32>();
    var acc22 = mat4x4<f32>();
    var acc23 = mat4x4<f32>();
    var acc30 = mat4x4<f32>();
    var acc31 = mat4x4<f32>();
    var acc32 = mat4x4<f32>();
    var acc33 = mat4x4<f32>();
    for (var kk4 = 0u; kk4 < k4; kk4++) {
        let b0 = block(kk4, min(col0 + 0u, n4 - 1u), k4, n4);
        let b1 = block(kk4, min(col0 + 8u, n4 - 1u), k4, n4);
        let b2 = block(kk4, min(col0 + 16u, n4 - 1u), k4, n4);
        let b3 = block(kk4, min(col0 + 24u, n4 - 1u), k4, n4);
        let a0 = rows_of_a(row0 + 0u, k4, kk4);
        let a1 = rows_of_a(row0 + 4u, k4, kk4);
        let a2 = rows_of_a(row0 + 8u, k4, kk4);
        let a3 = rows_of_a(row0 + 12u, k4, kk4);
        acc00 += b0 * a0;
        acc01 += b0 * a1;
        acc02 += b0 * a2;
        acc03 += b0 * a3;
        acc10 += b1 * a0;
        acc11 += b1 * a1;
        acc12 += b1 * a2;
        acc13 += b1 * a3;
        acc20 += b2 * a0;
        acc21 += b2 * a1;
        acc22 += b2 * a2;
        acc23 += b2 * a3;
        acc30 += b3 * a0;
        acc31 += b3 * a1;
        acc32 += b3 * a2;
        acc33 += b3 * a3;
    }
    store(row0 + 0u, n4, col0 + 0u, acc00);
    store(row0 + 4u, n4, col0 + 0u, acc01);
    store(row0 + 8u, n4, col0 + 0u, acc02);
    store(row0 + 12u, n4, col0 + 0u, acc03);
    store(row0 + 0u, n4, col0 + 8u, acc10);
    store(row0 + 4u, n4, col0 + 8u, acc11);
    store(row0 + 8u, n4, col0 + 8u, acc12);
    store(row0 + 12u, n4, col0 + 8u, acc13);
    store(row0 + 0u, n4, col0 + 16u, acc20);
    store(row0 + 4u, n4, col0 + 16u, acc21);
    store(row0 + 8u, n4, col0 + 16u, acc22);
    store(row0 + 12u, n4, col0 + 16u, acc23);
    store(row0 + 0u, n4, col0 + 24u, acc30);
    store(row0 + 4u, n4, col0 + 24u, acc31);
    store(row0 + 8u, n4, col0 + 24u, acc32);
    store(row0 + 12u, n4, col0 + 24u, acc33);
}
