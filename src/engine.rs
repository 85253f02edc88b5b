//! The engine that runs a model: the GPU when an adapter exists, else the CPU
//! reference. The same choice natively (the CLI) and in the browser (the page).

use std::sync::Arc;

use crate::gpu::{GpuEngine, GpuModel};
use crate::reference::Reference;
use crate::taps::{LayerMemory, RunOptions, Segment, SegmentOutput, Taps};
use crate::{Error, Model};

/// Segments the CPU reference takes at once: enough rows for its products to run
/// near the CPU's peak. The page's worker asks for fewer per step where a step would
/// last longer than it redraws (scope/engine-worker.js).
pub const CPU_CHUNK: usize = 32;

/// The memory an engine holds at some point ([`Engine::save`]), to come back to.
pub enum Saved {
    Cpu(Vec<LayerMemory>, usize),
    Gpu(crate::gpu::engine::SavedMemory),
}

pub enum Engine {
    Cpu(Reference),
    // Boxed: its buffers make it far larger than the CPU variant.
    Gpu(Box<GpuEngine>),
}

impl Engine {
    /// The CPU reference when `cpu` is set, else the GPU; without an adapter it falls
    /// back to the CPU and says why in the second value.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(model: Arc<Model>, options: RunOptions, cpu: bool) -> (Self, Option<String>) {
        if cpu {
            return (Self::Cpu(Reference::new(model, options)), None);
        }
        match Self::gpu(Arc::clone(&model), options) {
            Ok(engine) => (engine, None),
            Err(e) => (
                Self::Cpu(Reference::new(model, options)),
                Some(format!("{e}; using the CPU reference")),
            ),
        }
    }

    /// The GPU engine, or an error when there is no usable adapter.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn gpu(model: Arc<Model>, options: RunOptions) -> Result<Self, Error> {
        Self::gpu_chunked(model, options, crate::gpu::CHUNK_SEGMENTS)
    }

    /// [`Self::gpu`] taking up to `chunk` segments a submission (for benchmarks).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn gpu_chunked(
        model: Arc<Model>,
        options: RunOptions,
        chunk: usize,
    ) -> Result<Self, Error> {
        let gpu = Arc::new(pollster::block_on(crate::gpu::Gpu::new())?);
        let shared = GpuModel::upload(gpu, model)?;
        Ok(Self::Gpu(Box::new(GpuEngine::with_chunk(
            shared, options, chunk,
        ))))
    }

    /// An engine of its own on weights already on a device (shared between engines).
    pub fn on(shared: Arc<GpuModel>, options: RunOptions) -> Self {
        Self::Gpu(Box::new(GpuEngine::new(shared, options)))
    }

    /// The CPU reference, continuing from a memory state read back earlier (after a
    /// lost GPU device, say).
    pub fn cpu_from(
        model: Arc<Model>,
        options: RunOptions,
        memory: Vec<LayerMemory>,
        segments_written: usize,
    ) -> Self {
        let mut engine = Reference::new(model, options);
        engine.restore(memory, segments_written);
        Self::Cpu(engine)
    }

    /// Which device runs the model, for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Cpu(_) => "CPU reference".to_string(),
            Self::Gpu(engine) => format!("GPU: {}", engine.gpu().describe()),
        }
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self, Self::Gpu(_))
    }

    /// Consecutive segments at once (see [`GpuEngine::segments_async`] and
    /// [`Reference::segments`]); M and z only after the last.
    pub async fn segments_async(
        &mut self,
        segments: &[Segment],
        taps: Taps,
    ) -> Result<Vec<SegmentOutput>, Error> {
        match self {
            Self::Cpu(engine) => engine.segments(segments, taps),
            Self::Gpu(engine) => engine.segments_async(segments, taps).await,
        }
    }

    /// Segments one call should take: a GPU chunk, or [`CPU_CHUNK`].
    pub fn chunk(&self) -> usize {
        match self {
            Self::Cpu(_) => CPU_CHUNK,
            Self::Gpu(engine) => engine.chunk(),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn segments(
        &mut self,
        segments: &[Segment],
        taps: Taps,
    ) -> Result<Vec<SegmentOutput>, Error> {
        pollster::block_on(self.segments_async(segments, taps))
    }

    /// Runs every segment queued in `stream`, in chunks of up to `most` (and the
    /// engine's [`Self::chunk`]) that [`crate::stream::joins`] allows, handing each
    /// chunk and its outputs to `each`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_stream(
        &mut self,
        stream: &mut crate::stream::Stream,
        most: usize,
        taps: Taps,
        mut each: impl FnMut(&[Segment], Vec<SegmentOutput>),
    ) -> Result<(), Error> {
        loop {
            let chunk = stream.next_chunk(most.min(self.chunk()));
            if chunk.is_empty() {
                return Ok(());
            }
            let outputs = self.segments(&chunk, taps)?;
            each(&chunk, outputs);
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn segment(&mut self, segment: &Segment, taps: Taps) -> Result<SegmentOutput, Error> {
        match self {
            Self::Cpu(engine) => engine.segment(segment, taps),
            Self::Gpu(engine) => engine.segment(segment, taps),
        }
    }

    /// M and z (and the segments written) as they are now.
    pub fn save(&self) -> Saved {
        match self {
            Self::Cpu(engine) => Saved::Cpu(engine.memory().to_vec(), engine.segments_written()),
            Self::Gpu(engine) => Saved::Gpu(engine.save()),
        }
    }

    /// Back to the memory of an earlier [`Self::save`] of this engine: one read of a
    /// text, continued two ways (a passkey question answered with the digits given,
    /// then by generation).
    pub fn restore(&mut self, saved: &Saved) -> Result<(), Error> {
        match (self, saved) {
            (Self::Cpu(engine), Saved::Cpu(memory, written)) => {
                engine.restore(memory.clone(), *written)
            }
            (Self::Gpu(engine), Saved::Gpu(saved)) => engine.restore(saved),
            _ => return Err(Error::Text("a memory saved by another engine".into())),
        }
        Ok(())
    }

    pub fn reset(&mut self) {
        match self {
            Self::Cpu(engine) => engine.reset(),
            Self::Gpu(engine) => engine.reset(),
        }
    }
}
