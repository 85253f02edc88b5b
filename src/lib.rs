//! infiniscope: Infini-attention (arXiv 2404.07143) made visible.
//!
//! Data flows one way: text → tokens ([`tokenizer`]) → segments ([`segment`]) →
//! chunks ([`stream`]) → layers ([`reference`] on the CPU, [`gpu`] on
//! WebGPU/Vulkan/Metal/DX12, chosen by [`engine`]) → taps ([`taps`]) → whatever
//! draws them (the CLI, the web page). The model contract: docs/DESIGN.md.

// On the web wgpu's handles are not Send; the Arcs that share a device and a model
// between views then stay on the one thread the page has.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod config;
pub mod engine;
pub mod eval;
pub mod gate;
pub mod generate;
pub mod gpu;
pub mod model;
pub mod passkey;
pub mod recall;
pub mod reference;
pub mod segment;
pub mod stream;
pub mod taps;
#[cfg(not(target_arch = "wasm32"))]
pub mod text;
pub mod tokenizer;
pub mod units;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use config::{Config, UpdateRule};
pub use model::Model;
pub use taps::{MemoryMode, RunOptions, SegmentOutput, Taps};

/// Every failure the library reports: each carries a message meant for a person.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("invalid weights: {0}")]
    Weights(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("text: {0}")]
    Text(String),
    #[error("GPU: {0}")]
    Gpu(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
