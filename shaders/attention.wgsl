// Segment-local causal attention over a chunk of segments, each attending only to
// itself: A_dot = softmax(QKᵀ/√d) V, in three steps. `scores` and `softmax` fill
// probs[segment][h][t][s]; `weighted_values` weights V by them.
struct Params { n: u32, n_heads: u32, head_dim: u32, scale: f32, segments: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// One invocation per (segment, head, query, key): the scaled score, 0 above the diagonal.
@compute @workgroup_size(64)
fn scores(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.segments * p.n_heads * p.n * p.n) { return; }
    let segment = i / (p.n_heads * p.n * p.n);
    let h = (i / (p.n * p.n)) % p.n_heads;
    let t = (i / p.n) % p.n;
    let s = i % p.n;
    if (s > t) {
        probs[i] = 0.0;
        return;
    }
    let dm = p.n_heads * p.head_dim;
    let first = segment * p.n;
    var dot = 0.0;
    for (var j = 0u; j < p.head_dim; j++) {
        dot += q[(first + t) * dm + h * p.head_dim + j] * k[(first + s) * dm + h * p.head_dim + j];
    }
    probs[i] = dot * p.scale;
}

// One invocation per (segment, head, query): softmax over the keys s <= t, in place.
@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.segments * p.n_heads * p.n) { return; }
    let t = i % p.n;
    let row = i * p.n;
    var max_score = probs[row];
    for (var s = 1u; s <= t; s++) {
        max_score = max(max_score, probs[row + s]);
    }
    var sum = 0.0;
    for (var s = 0u; s <= t; s++) {
        let e = exp(probs[row + s] - max_score);
        probs[row + s] = e;
        sum += e;
    }
    for (var s = 0u; s <= t; s++) {
        probs[row + s] /= sum;
    }
}

// One invocation per output element (row of the chunk, head, j).
@compute @workgroup_size(64)
fn weighted_values(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let dm = p.n_heads * p.head_dim;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.segments * p.n * dm) { return; }
    let segment = i / (p.n * dm);
    let t = (i / dm) % p.n;
    let c = i % dm;
    let h = c / p.head_dim;
    let first = segment * p.n;
    let row = ((segment * p.n_heads + h) * p.n + t) * p.n;
    var acc = 0.0;
    for (var s = 0u; s <= t; s++) {
        acc += probs[row + s] * v[(first + s) * dm + c];
    }
    out[i] = acc;
}
