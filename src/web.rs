//! The browser's entry points (wasm-bindgen). A [`WebModel`] is loaded once per page
//! and shared: its weights live on one WebGPU device. Every view gets a [`Session`]
//! of its own (activations and memory M, z) on that device. Text flows in through a
//! [`WebEncoder`], segments run one at a time, and each returns a [`SegmentResult`]:
//! the taps the panels draw. Nothing here draws; nothing in the page computes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wasm_bindgen::prelude::*;

use crate::engine::Engine;
use crate::gate::{sigmoid, HeadKind, LOCAL_BELOW, MEMORY_ABOVE};
use crate::generate::Generator;
use crate::gpu::{Gpu, GpuModel};
use crate::passkey;
use crate::recall::{RecallLog, RECALL_SEGMENTS};
use crate::reference::{self, Reference};
use crate::stream::Stream;
use crate::taps::{LayerMemory, Segment, SegmentOutput, Taps};
use crate::tokenizer::{Pieces, StreamEncoder};
use crate::{Error, MemoryMode, Model, RunOptions};

fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The allocator, counting the bytes it has handed out and not taken back, so that a
/// soak can tell a leak (live bytes grow) from a heap that is only fragmented (the
/// WebAssembly memory grows while live bytes do not).
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only the counter
// is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes of the engine's heap in use (allocated, not freed) right now.
#[wasm_bindgen]
pub fn live_bytes() -> f64 {
    LIVE_BYTES.load(Ordering::Relaxed) as f64
}

/// Bytes in binary units, as the CLI writes them ([`crate::units::bytes`]).
#[wasm_bindgen]
pub fn bytes(n: f64) -> String {
    crate::units::bytes(n as u64)
}

#[wasm_bindgen]
pub struct WebModel {
    model: Arc<Model>,
    gpu: Option<Arc<GpuModel>>,
    note: Option<String>,
}

/// The SIMD this build of the engine's WebAssembly uses: Trunk's build has SIMD128,
/// its post-build hook adds one with relaxed SIMD (`cargo xtask wasm-relaxed`), and
/// the worker loads that one where the browser validates it (scope/wasm-build.js).
const WASM_SIMD: &str = if cfg!(target_feature = "relaxed-simd") {
    "relaxed SIMD"
} else {
    "SIMD128"
};

#[wasm_bindgen]
impl WebModel {
    /// Validates the three files of a model folder and, when `use_gpu`, uploads the
    /// weights to a WebGPU device. If that fails the model still loads, runs on the
    /// CPU reference, and `note` says why.
    pub async fn load(
        config: Vec<u8>,
        weights: Vec<u8>,
        tokenizer: Vec<u8>,
        use_gpu: bool,
    ) -> Result<WebModel, JsError> {
        let model = Arc::new(Model::from_bytes(&config, &weights, &tokenizer).map_err(js_error)?);
        let mut note = None;
        let mut gpu = None;
        if use_gpu {
            let device = Gpu::new().await;
            match device.and_then(|device| GpuModel::upload(Arc::new(device), Arc::clone(&model))) {
                Ok(shared) => gpu = Some(shared),
                Err(e) => note = Some(format!("{e}; running on the CPU reference instead")),
            }
        }
        Ok(WebModel { model, gpu, note })
    }

    /// The adapter the model runs on, for people.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        match &self.gpu {
            Some(shared) => format!("WebGPU: {}", shared.gpu.describe()),
            None => format!("CPU reference (WebAssembly, {WASM_SIMD})"),
        }
    }

    /// Whether the model runs on a WebGPU device (else on the CPU reference).
    #[wasm_bindgen(getter)]
    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// Why the model is not on the GPU although it was asked to be.
    #[wasm_bindgen(getter)]
    pub fn note(&self) -> Option<String> {
        self.note.clone()
    }

    /// config.json plus what the panels derive from it, as JSON.
    #[wasm_bindgen(getter)]
    pub fn info(&self) -> String {
        let c = &self.model.config;
        serde_json::json!({
            "config": c,
            "parameters": c.n_params(),
            "memory_bytes": c.memory_floats() * 4,
            "kv_bytes_per_token": c.kv_cache_floats(1) * 4,
            // Where a head counts as specialized (src/gate.rs), for the page's labels.
            "thresholds": { "local_below": LOCAL_BELOW, "memory_above": MEMORY_ABOVE },
        })
        .to_string()
    }

    /// g = sigmoid(β) of every head, layer by layer.
    pub fn gates(&self) -> Vec<f32> {
        self.model
            .weights
            .layers
            .iter()
            .flat_map(|layer| layer.beta.iter().map(|&b| sigmoid(b)))
            .collect()
    }

    /// "specialized-local", "mixer" or "specialized-memory" for every head, as [`Self::gates`].
    pub fn head_kinds(&self) -> Vec<String> {
        self.gates()
            .into_iter()
            .map(|g| HeadKind::of_gate(g).label().to_string())
            .collect()
    }

    pub fn encoder(&self) -> WebEncoder {
        WebEncoder {
            model: Arc::clone(&self.model),
            encoder: StreamEncoder::default(),
            pieces: Pieces::default(),
        }
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, JsError> {
        self.model.tokenizer.decode(ids).map_err(js_error)
    }

    /// The passkey haystack of the CLI's `passkey` command: `length` tokens of the
    /// paper's filler, the key at `depth`, the question, then the key's digits.
    pub fn passkey(&self, length: usize, depth: f32, key: u32) -> Result<WebPasskey, JsError> {
        let tokenizer = &self.model.tokenizer;
        let filler = tokenizer.encode(passkey::REPETITIVE).map_err(js_error)?;
        let haystack = passkey::build(tokenizer, length, depth, key, &filler).map_err(js_error)?;
        let mut pieces = Pieces::default();
        Ok(WebPasskey {
            answer_at: haystack.answer_at(),
            pieces: haystack
                .tokens
                .iter()
                .map(|&id| pieces.next(tokenizer, id))
                .collect(),
            inner: haystack,
        })
    }

    /// Destroys the WebGPU device, as a driver reset would: for testing recovery.
    pub fn lose_device(&self) {
        if let Some(shared) = &self.gpu {
            shared.gpu.device.destroy();
        }
    }
}

#[wasm_bindgen]
pub struct WebPasskey {
    inner: passkey::Passkey,
    pieces: Vec<String>,
    answer_at: usize,
}

#[wasm_bindgen]
impl WebPasskey {
    #[wasm_bindgen(getter)]
    pub fn tokens(&self) -> Vec<u32> {
        self.inner.tokens.clone()
    }
    /// The text of each token, as [`Tokens::pieces`].
    #[wasm_bindgen(getter)]
    pub fn pieces(&self) -> Vec<String> {
        self.pieces.clone()
    }
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> String {
        self.inner.key.clone()
    }
    /// Position of the first answer digit (predicted at the position before it).
    #[wasm_bindgen(getter)]
    pub fn answer_at(&self) -> usize {
        self.answer_at
    }
    /// Position of the needle's first token.
    #[wasm_bindgen(getter)]
    pub fn needle_at(&self) -> usize {
        self.inner.needle_at
    }
}

/// Tokenizes a text handed over in pieces, with each token's own text.
#[wasm_bindgen]
pub struct WebEncoder {
    model: Arc<Model>,
    encoder: StreamEncoder,
    pieces: Pieces,
}

#[wasm_bindgen]
impl WebEncoder {
    pub fn push(&mut self, text: &str) -> Result<Tokens, JsError> {
        let ids = self
            .encoder
            .push(&self.model.tokenizer, text)
            .map_err(js_error)?;
        Ok(self.tokens(ids))
    }

    pub fn finish(&mut self) -> Result<Tokens, JsError> {
        let ids = self
            .encoder
            .finish(&self.model.tokenizer)
            .map_err(js_error)?;
        Ok(self.tokens(ids))
    }

    fn tokens(&mut self, ids: Vec<u32>) -> Tokens {
        let pieces = ids
            .iter()
            .map(|&id| self.pieces.next(&self.model.tokenizer, id))
            .collect();
        Tokens { ids, pieces }
    }
}

#[wasm_bindgen]
pub struct Tokens {
    ids: Vec<u32>,
    pieces: Vec<String>,
}

#[wasm_bindgen]
impl Tokens {
    #[wasm_bindgen(getter)]
    pub fn ids(&self) -> Vec<u32> {
        self.ids.clone()
    }
    /// The text of each token; joined, exactly the text pushed.
    #[wasm_bindgen(getter)]
    pub fn pieces(&self) -> Vec<String> {
        self.pieces.clone()
    }
}

/// One reader of one text: its engine (on the shared device or the CPU) with its
/// memory state, the segments waiting to run, and after the text the open segment
/// that continue-writing extends.
#[wasm_bindgen]
pub struct Session {
    state: Rc<RefCell<State>>,
}

struct State {
    model: Arc<Model>,
    options: RunOptions,
    engine: Engine,
    stream: Stream,
    /// Segments written to memory, and the memory after the last of them: what a
    /// CPU engine continues from if the GPU is lost.
    segments_written: usize,
    memory: Vec<LayerMemory>,
    /// After the text: continue-writing.
    generator: Option<Generator>,
    /// When asked for ([`Session::keep_recall`]): what recall maps need.
    recall: Option<RecallLog>,
    /// When the reading is split over two workers: the part of the model this one runs.
    part: Option<Part>,
}

/// A part of the model (its blocks, [`reference::blocks`]): the page's CPU path runs
/// the first in one worker and the rest in another, each on a core of its own, the
/// second part of one chunk beside the first part of the next (scope/engine-worker.js).
struct Part {
    blocks: Range<usize>,
    /// The rest's memory, joined after the text ([`Session::join`]): generation runs
    /// the whole model.
    joined: bool,
}

/// Everything the panels draw: loss, memory shares and the memory state.
const PANEL_TAPS: Taps = Taps {
    logits: false,
    recall: false,
    ..Taps::ALL
};

fn busy() -> JsError {
    JsError::new("this session is still running a segment")
}

// A session's state stays borrowed while its segment runs on the GPU: a second call
// in the meantime gets a "busy" error from try_borrow_mut instead of a panic.
#[allow(clippy::await_holding_refcell_ref)]
#[wasm_bindgen]
impl Session {
    /// A fresh reader; `memory_on = false` runs with memory off (docs/DESIGN.md §1.4).
    #[wasm_bindgen(constructor)]
    pub fn new(model: &WebModel, memory_on: bool) -> Session {
        let shared = Arc::clone(&model.model);
        let options = RunOptions {
            memory: if memory_on {
                MemoryMode::On
            } else {
                MemoryMode::Off
            },
            ..RunOptions::for_config(&shared.config)
        };
        let engine = match &model.gpu {
            Some(gpu) => Engine::on(Arc::clone(gpu), options),
            None => Engine::Cpu(Reference::new(Arc::clone(&shared), options)),
        };
        let c = &shared.config;
        let state = State {
            memory: vec![LayerMemory::zeros(c.n_heads, c.head_dim); c.n_layers],
            stream: Stream::new(c.segment_len),
            model: shared,
            options,
            engine,
            segments_written: 0,
            generator: None,
            recall: None,
            part: None,
        };
        Session {
            state: Rc::new(RefCell::new(state)),
        }
    }

    /// Where this session runs now (it moves to the CPU if the GPU is lost).
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        match self.state.try_borrow() {
            Ok(state) => state.engine.describe(),
            Err(_) => "busy".into(),
        }
    }

    /// More tokens of the text.
    pub fn feed(&self, ids: &[u32]) -> Result<(), JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        state.stream.push(ids);
        Ok(())
    }

    /// The text is complete: its last tokens become a last segment, which is read
    /// but not written to memory, so that continue-writing can extend it.
    pub fn end_text(&self) -> Result<(), JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        // Seed 0: a page's continuation is the same every time.
        state.generator = state.stream.end_open().map(|open| Generator::new(open, 0));
        Ok(())
    }

    /// Keeps what recall maps need from here on (docs/DESIGN.md §6): Δz of every
    /// segment written (d floats per head, up to [`RECALL_SEGMENTS`] segments) and σ(Q)
    /// of the last [`RECALL_WINDOW`](crate::recall::RECALL_WINDOW) segments read.
    pub fn keep_recall(&self) -> Result<(), JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        state.recall = Some(RecallLog::default());
        Ok(())
    }

    /// The recall shares of token `token` of the text (0 = its first) over every
    /// segment before its own, `[layer][head][j]`, as `infiniscope recall --json`
    /// gives them. The token's segment must be among the last [`RECALL_WINDOW`](crate::recall::RECALL_WINDOW) read.
    pub fn token_recall(&self, token: usize) -> Result<Vec<f32>, JsError> {
        let state = self.state.try_borrow().map_err(|_| busy())?;
        let log = state
            .recall
            .as_ref()
            .ok_or_else(|| JsError::new("this session keeps no recall maps"))?;
        // A part's log holds its own layers.
        let config = crate::Config {
            n_layers: state.layers(),
            ..state.model.config.clone()
        };
        log.shares(&config, token).map_err(|e| JsError::new(&e))
    }

    /// Segments a text may have and still get recall maps.
    #[wasm_bindgen(getter)]
    pub fn recall_segments(&self) -> usize {
        RECALL_SEGMENTS
    }

    /// From now on `step` runs the first part of the model, blocks 0 to `cut`
    /// ([`reference::balanced_cut`] when `cut` is 0), and each result carries its rows
    /// of the residual stream, `x`, for [`Self::step_from`] of a session that runs the
    /// rest. Only on the CPU, before anything is read; returns the cut.
    pub fn split_front(&self, cut: usize) -> Result<usize, JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        let cut = match cut {
            0 => reference::balanced_cut(&state.model.config),
            cut => cut,
        };
        state.split(0..cut)?;
        Ok(cut)
    }

    /// From now on this session runs the model from block `cut` on, with
    /// [`Self::step_from`]: the rest of a reading whose first part another session runs.
    pub fn split_back(&self, cut: usize) -> Result<(), JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        let blocks = reference::blocks(&state.model.config);
        state.split(cut..blocks)
    }

    /// Runs the rest of the model over the next `segments` segments, from the residual
    /// stream `x` (`[row][d_model]`) of a first part's results over the same segments;
    /// resolves to their results, as [`Self::step`] does.
    pub fn step_from(&self, x: Vec<f32>, segments: usize) -> js_sys::Promise {
        let state = Rc::clone(&self.state);
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = state.try_borrow_mut().map_err(|_| busy())?;
            if state.part.as_ref().is_none_or(|p| p.blocks.start == 0) {
                return Err(
                    JsError::new("step_from runs the second part of a split session").into(),
                );
            }
            let chunk = state.stream.next_chunk(segments);
            if chunk.len() != segments {
                let ready = chunk.len();
                return Err(JsError::new(&format!(
                    "the first part ran {segments} segments; this session had {ready} of them"
                ))
                .into());
            }
            state.step(&chunk, Some(x)).await
        })
    }

    /// The first part of a split reading takes the rest's memory (M and z of its layers,
    /// as its last result gave them), so that generation can run the whole model.
    pub fn join(&self, m: Vec<f32>, z: Vec<f32>) -> Result<(), JsError> {
        let mut state = self.state.try_borrow_mut().map_err(|_| busy())?;
        let c = state.model.config.clone();
        let Some(part) = state.part.as_mut().filter(|p| p.blocks.start == 0) else {
            return Err(JsError::new(
                "join is for the first part of a split session",
            ));
        };
        let layers = reference::attention_layers(&(part.blocks.end..reference::blocks(&c)));
        let (hdd, hd) = (c.n_heads * c.head_dim * c.head_dim, c.n_heads * c.head_dim);
        if m.len() != layers.len() * hdd || z.len() != layers.len() * hd {
            return Err(JsError::new(&format!(
                "the rest's memory is {} layers of M and z; got {} and {} floats",
                layers.len(),
                m.len(),
                z.len()
            )));
        }
        part.joined = true;
        let memory = m.chunks_exact(hdd).zip(z.chunks_exact(hd));
        let memory = memory.map(|(m, z)| LayerMemory {
            m: m.to_vec(),
            z: z.to_vec(),
        });
        let Engine::Cpu(engine) = &mut state.engine else {
            unreachable!("only the CPU reference is split");
        };
        engine.set_layers(layers.start, memory.collect());
        Ok(())
    }

    /// Segments ready to run.
    #[wasm_bindgen(getter)]
    pub fn pending(&self) -> usize {
        self.state.try_borrow().map_or(0, |s| s.stream.pending())
    }

    /// Runs the next segments, as many as the engine takes at once (up to `most`, at
    /// most a GPU chunk or [`CPU_CHUNK`](crate::engine::CPU_CHUNK)); resolves to an
    /// array of [`SegmentResult`]s, empty when none is ready. Only the last carries M and z.
    pub fn step(&self, most: usize) -> js_sys::Promise {
        let state = Rc::clone(&self.state);
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = state.try_borrow_mut().map_err(|_| busy())?;
            if state.part.as_ref().is_some_and(|p| p.blocks.start > 0) {
                return Err(
                    JsError::new("the second part of a split session runs with step_from").into(),
                );
            }
            let most = most.clamp(1, state.engine.chunk());
            let chunk = state.stream.next_chunk(most);
            state.step(&chunk, None).await
        })
    }

    /// Generates one token after the text read so far; resolves to its text (empty
    /// while a character is split over tokens).
    pub fn generate(&self, temperature: f32) -> js_sys::Promise {
        let state = Rc::clone(&self.state);
        wasm_bindgen_futures::future_to_promise(async move {
            let mut state = state.try_borrow_mut().map_err(|_| busy())?;
            if state.stream.pending() > 0 {
                return Err(JsError::new("the text is still being read").into());
            }
            if state.part.as_ref().is_some_and(|p| !p.joined) {
                return Err(JsError::new(
                    "a split session generates once the rest's memory is joined",
                )
                .into());
            }
            let Some(segment) = state.generator.as_ref().map(Generator::segment) else {
                return Err(JsError::new("read a text first: there is nothing to continue").into());
            };
            let taps = Taps {
                logits: true,
                memory: segment.commit,
                ..Taps::default()
            };
            let (mut outputs, _) = state.run(std::slice::from_ref(&segment), taps).await?;
            let logits = outputs.pop().and_then(|o| o.logits).expect("logits tapped");
            let state = &mut *state;
            let generator = state.generator.as_mut().expect("checked above");
            let piece = generator.next(&state.model.tokenizer, &logits, temperature);
            Ok(JsValue::from(piece))
        })
    }
}

impl State {
    /// Makes this session a part of the model (see [`Part`]).
    fn split(&mut self, blocks: Range<usize>) -> Result<(), JsError> {
        let n_blocks = reference::blocks(&self.model.config);
        if blocks.is_empty() || blocks.end > n_blocks {
            return Err(JsError::new(&format!(
                "blocks {blocks:?} of a model of {n_blocks}"
            )));
        }
        if self.engine.is_gpu() || self.segments_written > 0 || self.part.is_some() {
            return Err(JsError::new(
                "only a CPU session that has read nothing yet can be split",
            ));
        }
        self.part = Some(Part {
            blocks,
            joined: false,
        });
        Ok(())
    }

    /// The model's layers whose taps this session gives: all, or a part's.
    fn layers(&self) -> usize {
        let c = &self.model.config;
        let blocks = self
            .part
            .as_ref()
            .map_or(0..reference::blocks(c), |p| p.blocks.clone());
        reference::attention_layers(&blocks).len()
    }

    /// Runs a chunk (a part's, from `x` for the second) with the panels' taps, keeps
    /// its recall taps and resolves to its results.
    async fn step(&mut self, chunk: &[Segment], x: Option<Vec<f32>>) -> Result<JsValue, JsValue> {
        let results = js_sys::Array::new();
        if chunk.is_empty() {
            return Ok(results.into());
        }
        let taps = Taps {
            recall: self.recall.is_some(),
            ..PANEL_TAPS
        };
        let (mut outputs, x, recovered) = match &self.part {
            None => {
                let (outputs, recovered) = self.run(chunk, taps).await?;
                (outputs, None, recovered)
            }
            Some(part) => {
                let Engine::Cpu(engine) = &mut self.engine else {
                    unreachable!("only the CPU reference is split");
                };
                let (outputs, x) = engine
                    .part(chunk, x, part.blocks.clone(), taps)
                    .map_err(js_error)?;
                if chunk.iter().all(|s| s.commit) {
                    self.segments_written += chunk.len();
                }
                (outputs, x, None)
            }
        };
        if let Some(log) = self.recall.as_mut() {
            for (segment, out) in chunk.iter().zip(&mut outputs) {
                log.keep(segment, out.recall.take().expect("recall tapped"));
            }
        }
        let width = self.model.config.d_model;
        let mut rows = x.as_deref().unwrap_or_default();
        for (segment, out) in chunk.iter().zip(outputs) {
            let mut result = SegmentResult::new(self, segment, out, recovered.clone());
            if !rows.is_empty() {
                let (own, rest) = rows.split_at(segment.tokens.len() * width);
                result.x = own.to_vec();
                rows = rest;
            }
            results.push(&result.into());
        }
        Ok(results.into())
    }

    /// Runs segments; if the GPU fails (device lost, out of memory), continues on
    /// the CPU reference from the memory of the last committed segment and says so.
    async fn run(
        &mut self,
        segments: &[Segment],
        taps: Taps,
    ) -> Result<(Vec<SegmentOutput>, Option<String>), JsError> {
        let mut recovered = None;
        let first = segments.first().map_or(0, |s| s.index);
        let outputs = match self.engine.segments_async(segments, taps).await {
            Err(Error::Gpu(message)) if self.engine.is_gpu() => {
                self.engine = Engine::cpu_from(
                    Arc::clone(&self.model),
                    self.options,
                    self.memory.clone(),
                    self.segments_written,
                );
                recovered = Some(format!(
                    "the GPU failed ({message}); continuing on the CPU reference from segment {first}"
                ));
                self.engine.segments_async(segments, taps).await
            }
            other => other,
        }
        .map_err(js_error)?;
        if segments.iter().all(|s| s.commit) {
            self.segments_written += segments.len();
            if let Some(memory) = outputs.last().and_then(|o| o.memory.as_ref()) {
                self.memory = memory.clone();
            }
        }
        Ok((outputs, recovered))
    }
}

/// What one segment left behind, for the panels.
#[wasm_bindgen]
pub struct SegmentResult {
    index: usize,
    tokens: Vec<u32>,
    loss: Vec<f32>,
    argmax: Vec<u32>,
    share: Vec<f32>,
    m: Vec<f32>,
    z: Vec<f32>,
    /// A first part's rows of the residual stream, `[t][d_model]` (else empty).
    x: Vec<f32>,
    recovered: Option<String>,
    device: String,
}

impl SegmentResult {
    fn new(
        state: &State,
        segment: &Segment,
        out: SegmentOutput,
        recovered: Option<String>,
    ) -> Self {
        let memory = out.memory.unwrap_or_default();
        Self {
            index: segment.index,
            tokens: segment.tokens.clone(),
            loss: out.loss.unwrap_or_default(),
            argmax: out.argmax.unwrap_or_default(),
            share: out.memory_share.unwrap_or_default(),
            m: memory.iter().flat_map(|l| l.m.iter().copied()).collect(),
            z: memory.iter().flat_map(|l| l.z.iter().copied()).collect(),
            x: Vec::new(),
            recovered,
            device: state.engine.describe(),
        }
    }
}

#[wasm_bindgen]
impl SegmentResult {
    /// Position of this segment in the text (0 for the first).
    #[wasm_bindgen(getter)]
    pub fn index(&self) -> usize {
        self.index
    }
    #[wasm_bindgen(getter)]
    pub fn tokens(&self) -> Vec<u32> {
        self.tokens.clone()
    }
    /// Cross-entropy (nats) of each position whose next token is known.
    #[wasm_bindgen(getter)]
    pub fn loss(&self) -> Vec<f32> {
        self.loss.clone()
    }
    /// The most likely next token at every position.
    #[wasm_bindgen(getter)]
    pub fn argmax(&self) -> Vec<u32> {
        self.argmax.clone()
    }
    /// Memory share `[layer][t][head]`: how much of each head's output came from memory.
    #[wasm_bindgen(getter)]
    pub fn share(&self) -> Vec<f32> {
        self.share.clone()
    }
    /// M of every head after this segment, `[layer][head][i][j]`.
    #[wasm_bindgen(getter)]
    pub fn m(&self) -> Vec<f32> {
        self.m.clone()
    }
    /// z of every head after this segment, `[layer][head][i]`.
    #[wasm_bindgen(getter)]
    pub fn z(&self) -> Vec<f32> {
        self.z.clone()
    }
    /// The first part of a split session: this segment's rows of the residual stream
    /// `[t][d_model]`, for the rest ([`Session::step_from`]); else empty.
    #[wasm_bindgen(getter)]
    pub fn x(&self) -> Vec<f32> {
        self.x.clone()
    }
    /// Set when the GPU failed during this segment and the session moved to the CPU.
    #[wasm_bindgen(getter)]
    pub fn recovered(&self) -> Option<String> {
        self.recovered.clone()
    }
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }
}
