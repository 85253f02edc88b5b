// σ(x) = ELU(x) + 1, shared by the memory read and write shaders (prepended to them).
fn sigma(x: f32) -> f32 {
    return select(exp(x), x + 1.0, x > 0.0);
}

// Lower clamp of the memory read's denominator σ(q)·z.
const MEMORY_EPS: f32 = 1e-6;
