// c[m×n] = a[m×k] · b, with b stored [k×n], or [n×k] when TRANSPOSE_B (the tied
// output projection). 16×16 tiles staged in workgroup memory.
override TRANSPOSE_B: bool = false;

struct Params { m: u32, k: u32, n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const TILE: u32 = 16u;
var<workgroup> tile_a: array<f32, 256>;
var<workgroup> tile_b: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
    let row = wg.y * TILE + lid.y;
    let col = wg.x * TILE + lid.x;
    var acc = 0.0;
    for (var k0 = 0u; k0 < p.k; k0 += TILE) {
        let ka = k0 + lid.x;
        var av = 0.0;
        if (row < p.m && ka < p.k) { av = a[row * p.k + ka]; }
        tile_a[lid.y * TILE + lid.x] = av;
        let kb = k0 + lid.y;
        var bv = 0.0;
        if (kb < p.k && col < p.n) {
            if (TRANSPOSE_B) { bv = b[col * p.k + kb]; } else { bv = b[kb * p.n + col]; }
        }
        tile_b[lid.y * TILE + lid.x] = bv;
        workgroupBarrier();
        for (var i = 0u; i < TILE; i++) {
            acc += tile_a[lid.y * TILE + i] * tile_b[i * TILE + lid.x];
        }
        workgroupBarrier();
    }
    if (row < p.m && col < p.n) { c[row * p.n + col] = acc; }
}
