// The matmul op for shapes whose k and n are multiples of 4 (every projection of
// the shipped models): c[m×n] = a[m×k] · b, b stored [k×n], or [n×k] when
// TRANSPOSE_B. Each invocation keeps a block of ROWS rows × 4 columns; the rows come
// from the workgroup id alone, so every load of a is the same address across the
// workgroup. A software adapter (lavapipe) runs invocations as SIMD lanes: a uniform
// load is one load, a per-lane load is a gather of one load per lane. Here only b is
// gathered, once per ROWS rows, and neighbouring lanes read neighbouring columns.
// Measured on lavapipe (`infiniscope bench`): 1.35× the older 4×4-per-invocation
// kernel; the mirror image (b uniform, a gathered from rows 512 bytes apart) 2.6×
// slower than this one.
override TRANSPOSE_B: bool = false;
const ROWS: u32 = 8u;

struct Params { m: u32, k: u32, n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

// The 4×4 block of b at k-step kk4 and column group col4, as four columns
// (TRANSPOSE_B: rows of b) or four rows of the block.
fn block(kk4: u32, col4: u32, k4: u32, n4: u32) -> mat4x4<f32> {
    if (TRANSPOSE_B) {
        let base = col4 * 4u * k4 + kk4;
        return transpose(mat4x4(b[base], b[base + k4], b[base + 2u * k4], b[base + 3u * k4]));
    }
    let base = kk4 * 4u * n4 + col4;
    return mat4x4(b[base], b[base + n4], b[base + 2u * n4], b[base + 3u * n4]);
}

// 32 invocations cover 128 columns × ROWS rows of c.
@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    // Columns past the end compute the last column again (and are not stored), so
    // every lane stays active and the loads of a stay uniform.
    let col = wg.x * 32u + lid.x;
    let col4 = min(col, n4 - 1u);
    let row0 = wg.y * ROWS;
    var acc: array<vec4<f32>, ROWS>;
    for (var kk4 = 0u; kk4 < k4; kk4++) {
        let bb = block(kk4, col4, k4, n4);
        for (var r = 0u; r < ROWS; r++) {
            // Rows past the end read the last row again (and are not stored).
            acc[r] += bb * a[min(row0 + r, p.m - 1u) * k4 + kk4];
        }
    }
    if (col >= n4) { return; }
    for (var r = 0u; r < ROWS; r++) {
        if (row0 + r < p.m) { c[(row0 + r) * n4 + col4] = acc[r]; }
    }
}
