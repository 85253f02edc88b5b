// Per position, one workgroup each: argmax of the logits (ties to the lowest id) and,
// where a target is known, the cross-entropy log Σ exp(logit) − logit[target].
struct Params { n: u32, n_targets: u32, vocab: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> argmax: array<u32>;

var<workgroup> best_value: array<f32, 64>;
var<workgroup> best_index: array<u32, 64>;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
    let t = wg.x + wg.y * nwg.x;
    if (t >= p.n) { return; }
    let base = t * p.vocab;
    var bv = -3.4e38;
    var bi = 0xffffffffu;
    for (var c = li; c < p.vocab; c += 64u) {
        if (logits[base + c] > bv) { bv = logits[base + c]; bi = c; }
    }
    best_value[li] = bv;
    best_index[li] = bi;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            let ov = best_value[li + stride];
            let oi = best_index[li + stride];
            if (ov > best_value[li] || (ov == best_value[li] && oi < best_index[li])) {
                best_value[li] = ov;
                best_index[li] = oi;
            }
        }
        workgroupBarrier();
    }
    let max_logit = best_value[0];
    var sum = 0.0;
    for (var c = li; c < p.vocab; c += 64u) {
        sum += exp(logits[base + c] - max_logit);
    }
    partial[li] = sum;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (li < stride) { partial[li] += partial[li + stride]; }
        workgroupBarrier();
    }
    if (li == 0u) {
        argmax[t] = best_index[0];
        if (t < p.n_targets) {
            loss[t] = log(partial[0]) + max_logit - logits[base + targets[t]];
        }
    }
}
