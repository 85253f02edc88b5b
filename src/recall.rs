//! Where a token's memory read comes from (docs/DESIGN.md §6). The read
//! A_mem = σ(q) M_{s−1} / σ(q) z_{s−1} is a sum over the segments j < s that wrote
//! M and z, so it splits exactly: segment j's **recall share** of the normaliser,
//! w_j = σ(q)·Δz_j / σ(q)·z_{s−1} (the shares sum to 1), and its **contribution**
//! to the read, c_j = σ(q) ΔM_j / σ(q)·z_{s−1} (the contributions sum to A_mem).
//!
//! Δz_j is d floats per head, so the shares come from one reading of the text
//! ([`crate::taps::RecallTap`]). ΔM_j is d×d per head and is not kept: once σ(q) is
//! known, a second reading with the memory tapped after every segment gives each
//! σ(q) M_j, and the contributions are their differences.

use std::collections::VecDeque;

use crate::reference::{dot, MEMORY_EPS};
use crate::taps::{LayerMemory, RecallTap, Segment};
use crate::Config;
#[cfg(not(target_arch = "wasm32"))]
use crate::{engine::Engine, reference::matmul, segment::segments, taps::Taps, Error};

/// The recall map of one token: every layer and head, over the segments before its own.
#[derive(Clone, Debug, PartialEq)]
pub struct Recall {
    /// Position of the token in the text, and of its segment s.
    pub token: usize,
    pub segment: usize,
    /// `[layer][head][d]`: the token's σ(q), its memory read A_mem and
    /// `[layer][head]` the read's normaliser σ(q)·z_{s−1}.
    pub sigma_q: Vec<f32>,
    pub a_mem: Vec<f32>,
    pub normaliser: Vec<f32>,
    /// `[layer][head][j]`, j < s: the recall shares.
    pub shares: Vec<f32>,
    /// `[layer][head][j][d]`: the contributions, when asked for (a second reading).
    pub contributions: Option<Vec<f32>>,
}

impl Recall {
    /// Segment j's share for a layer and head.
    pub fn share(&self, config: &Config, layer: usize, head: usize, j: usize) -> f32 {
        self.shares[(layer * config.n_heads + head) * self.segment + j]
    }

    /// Segment j's contribution (a d-vector) for a layer and head.
    pub fn contribution<'a>(
        &'a self,
        config: &Config,
        layer: usize,
        head: usize,
        j: usize,
    ) -> Option<&'a [f32]> {
        let d = config.head_dim;
        let at = ((layer * config.n_heads + head) * self.segment + j) * d;
        Some(&self.contributions.as_ref()?[at..at + d])
    }
}

/// The recall shares of a query σ(q) `[layer][head][d]` over the segments whose Δz
/// are `delta_z` (each `[layer][head][d]`), read against z_{s−1} `[layer][head][d]`:
/// the read's normaliser `[layer][head]` and the shares `[layer][head][j]`.
pub fn shares(
    config: &Config,
    sigma_q: &[f32],
    delta_z: &[Vec<f32>],
    z: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let d = config.head_dim;
    let rows = config.n_layers * config.n_heads;
    let mut normaliser = Vec::with_capacity(rows);
    let mut shares = Vec::with_capacity(rows * delta_z.len());
    for row in 0..rows {
        let at = row * d;
        let q = &sigma_q[at..at + d];
        let den = dot(q, &z[at..at + d]).max(MEMORY_EPS);
        normaliser.push(den);
        shares.extend(delta_z.iter().map(|dz| dot(q, &dz[at..at + d]) / den));
    }
    (normaliser, shares)
}

/// z of every layer's memory, `[layer][head][d]`.
pub fn z_of(memory: &[LayerMemory]) -> Vec<f32> {
    memory.iter().flat_map(|l| l.z.iter().copied()).collect()
}

/// z after the segments whose Δz are `delta_z`, `[layer][head][d]`: their sum, in
/// reading order as the engines add them.
pub fn z_after(delta_z: &[Vec<f32>], width: usize) -> Vec<f32> {
    delta_z.iter().fold(vec![0.0; width], |mut z, dz| {
        z.iter_mut().zip(dz).for_each(|(z, dz)| *z += dz);
        z
    })
}

/// Row `t` of a `[layer][t][head][d]` tap of a segment of `n` tokens: `[layer][head][d]`.
pub fn token_row(config: &Config, tap: &[f32], n: usize, t: usize) -> Vec<f32> {
    let width = config.n_heads * config.head_dim;
    (0..config.n_layers)
        .flat_map(|l| &tap[(l * n + t) * width..][..width])
        .copied()
        .collect()
}

/// Segments whose σ(Q) a session keeps for recall maps: the last this many read.
pub const RECALL_WINDOW: usize = 64;
/// Segments whose Δz a session keeps (4 KiB each for infini-tiny): past this, a text
/// has no recall maps rather than an ever-growing log.
pub const RECALL_SEGMENTS: usize = 16_384;

/// What a reader keeps, segment by segment, to give the recall shares of any recent
/// token without reading the text again (the page's recall maps).
#[derive(Default)]
pub struct RecallLog {
    /// Δz of every segment written so far, `[layer][head][d]` each.
    delta_z: Vec<Vec<f32>>,
    /// σ(Q) `[layer][t][head][d]` of the last [`RECALL_WINDOW`] segments read (the
    /// text's open segment, read but not written, included): (segment index, σ(Q),
    /// tokens).
    sigma_q: VecDeque<(usize, Vec<f32>, usize)>,
    /// Set once the text outgrew [`RECALL_SEGMENTS`]: nothing more is kept.
    full: bool,
}

impl RecallLog {
    /// Records one segment's recall tap.
    pub fn keep(&mut self, segment: &Segment, tap: RecallTap) {
        if self.full {
            return;
        }
        if self.delta_z.len() >= RECALL_SEGMENTS {
            *self = RecallLog {
                full: true,
                ..RecallLog::default()
            };
            return;
        }
        if segment.commit {
            self.delta_z.push(tap.delta_z);
        }
        if self.sigma_q.len() == RECALL_WINDOW {
            self.sigma_q.pop_front();
        }
        self.sigma_q
            .push_back((segment.index, tap.sigma_q, segment.tokens.len()));
    }

    /// The recall shares of token `token` of the text, `[layer][head][j]` over the
    /// segments before its own.
    pub fn shares(&self, config: &Config, token: usize) -> Result<Vec<f32>, String> {
        if self.full {
            return Err(format!(
                "recall maps are kept for texts of up to {RECALL_SEGMENTS} segments; this one is longer"
            ));
        }
        let (s, t) = (token / config.segment_len, token % config.segment_len);
        if self.sigma_q.back().is_none_or(|(last, ..)| s > *last) {
            return Err(format!("token {token} has not been read"));
        }
        let Some((_, sigma_q, n)) = self.sigma_q.iter().find(|(index, ..)| *index == s) else {
            return Err(format!(
                "token {token} is in segment {s}: σ(q) is kept for the last {RECALL_WINDOW} segments read"
            ));
        };
        if t >= *n {
            return Err(format!("token {token} has not been read"));
        }
        let q = token_row(config, sigma_q, *n, t);
        let before = &self.delta_z[..s.min(self.delta_z.len())];
        let z = z_after(before, q.len());
        Ok(shares(config, &q, before, &z).1)
    }
}

/// Reads `tokens` up to the segment of token `token` and returns its recall map; the
/// contributions too if `contributions` (a second reading, one segment per call).
#[cfg(not(target_arch = "wasm32"))]
pub fn recall(
    engine: &mut Engine,
    config: &Config,
    tokens: &[u32],
    token: usize,
    contributions: bool,
) -> Result<Recall, Error> {
    let n = config.segment_len;
    if token >= tokens.len() {
        return Err(Error::Text(format!(
            "token {token} is past the end of the text ({} tokens)",
            tokens.len()
        )));
    }
    let s = token / n;
    let t = token % n;
    let mut all = segments(&tokens[..((s + 1) * n).min(tokens.len())], n);
    let mut own = all.pop().expect("the token's segment");
    // Read, not written: the memory tapped after it is the memory it read.
    own.commit = false;
    let before = all;

    engine.reset();
    let recall_taps = Taps {
        recall: true,
        ..Taps::default()
    };
    // `[j][layer][head][d]`
    let mut delta_z: Vec<Vec<f32>> = Vec::with_capacity(s);
    for chunk in before.chunks(engine.chunk()) {
        for out in engine.segments(chunk, recall_taps)? {
            delta_z.push(out.recall.ok_or_else(untapped)?.delta_z);
        }
    }
    let out = engine.segment(
        &own,
        Taps {
            memory: true,
            ..recall_taps
        },
    )?;
    let tap = out.recall.ok_or_else(untapped)?;
    let memory = out.memory.ok_or_else(untapped)?;
    let sigma_q = token_row(config, &tap.sigma_q, own.tokens.len(), t);
    let a_mem = token_row(config, &tap.a_mem, own.tokens.len(), t);
    let (normaliser, shares) = shares(config, &sigma_q, &delta_z, &z_of(&memory));
    let contributions = if contributions {
        Some(contributions_of(
            engine,
            config,
            &before,
            &sigma_q,
            &normaliser,
        )?)
    } else {
        None
    };
    Ok(Recall {
        token,
        segment: s,
        sigma_q,
        a_mem,
        normaliser,
        shares,
        contributions,
    })
}

#[cfg(not(target_arch = "wasm32"))]
fn untapped() -> Error {
    Error::Text("the engine returned no recall taps".into())
}

/// c_j = (σ(q) M_j − σ(q) M_{j−1}) / normaliser, `[layer][head][j][d]`, reading
/// `before` again one segment at a time with the memory tapped after each.
#[cfg(not(target_arch = "wasm32"))]
fn contributions_of(
    engine: &mut Engine,
    config: &Config,
    before: &[Segment],
    sigma_q: &[f32],
    normaliser: &[f32],
) -> Result<Vec<f32>, Error> {
    let (heads, d, s) = (config.n_heads, config.head_dim, before.len());
    // σ(q) M, `[layer][head][d]`, for the memory as it stands.
    let read = |memory: &[LayerMemory]| -> Vec<f32> {
        let mut out = Vec::with_capacity(sigma_q.len());
        for (l, layer) in memory.iter().enumerate() {
            for h in 0..heads {
                let q = &sigma_q[(l * heads + h) * d..][..d];
                let m = &layer.m[h * d * d..(h + 1) * d * d];
                out.extend(matmul(q, m, 1, d, d));
            }
        }
        out
    };
    engine.reset();
    let mut previous = vec![0.0; sigma_q.len()];
    let mut out = vec![0.0; sigma_q.len() * s];
    let taps = Taps {
        memory: true,
        ..Taps::default()
    };
    for (j, segment) in before.iter().enumerate() {
        let memory = engine.segment(segment, taps)?.memory.ok_or_else(untapped)?;
        let now = read(&memory);
        for (lh, den) in normaliser.iter().enumerate() {
            for i in 0..d {
                let at = lh * d + i;
                out[(lh * s + j) * d + i] = (now[at] - previous[at]) / den;
            }
        }
        previous = now;
    }
    Ok(out)
}
