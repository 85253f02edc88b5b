// RMSNorm, one workgroup per row: y = x / sqrt(mean(x²) + eps) * w.
struct Params { rows: u32, cols: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    var sum = 0.0;
    for (var c = li; c < p.cols; c += 64u) {
        let v = x[base + c];
        sum += v * v;
    }
    partial[li] = sum;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (li < stride) { partial[li] += partial[li + stride]; }
        workgroupBarrier();
    }
    let r = 1.0 / sqrt(partial[0] / f32(p.cols) + p.eps);
    for (var c = li; c < p.cols; c += 64u) {
        y[base + c] = x[base + c] * r * w[c];
    }
}
