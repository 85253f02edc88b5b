//! A model is a folder: `config.json`, `model.safetensors`, `tokenizer.json`.

use std::path::Path;

use crate::tokenizer::Tokenizer;
use crate::weights::{StoredDtype, Weights};
use crate::{Config, Error};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

pub struct Model {
    pub config: Config,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
    /// How the weights were stored; they are held in f32 once loaded.
    pub stored_dtype: StoredDtype,
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

impl Model {
    /// Loads and validates the three files of a model folder.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such model folder"),
            });
        }
        let config = read(dir, CONFIG_FILE)?;
        let weights = read(dir, WEIGHTS_FILE)?;
        let tokenizer = read(dir, TOKENIZER_FILE)?;
        Self::from_bytes(&config, &weights, &tokenizer)
    }

    /// The same from the files' contents (the browser fetches them).
    pub fn from_bytes(config: &[u8], weights: &[u8], tokenizer: &[u8]) -> Result<Self, Error> {
        let config_text = std::str::from_utf8(config)
            .map_err(|_| Error::Config("config.json is not UTF-8 text".into()))?;
        let config = Config::from_json(config_text)?;
        let (weights, stored_dtype) = Weights::from_safetensors(&config, weights)?;
        let tokenizer = Tokenizer::from_bytes(tokenizer)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::Tokenizer(format!(
                "the tokenizer's ids need {} tokens but the model only {} (vocab_size)",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        Ok(Self {
            config,
            weights,
            tokenizer,
            stored_dtype,
        })
    }

    pub fn save(&self, dir: &Path, dtype: StoredDtype) -> Result<(), Error> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let files = [
            (CONFIG_FILE, self.config.to_json().into_bytes()),
            (
                WEIGHTS_FILE,
                self.weights.to_safetensors(&self.config, dtype),
            ),
            (TOKENIZER_FILE, self.tokenizer.to_json()?.into_bytes()),
        ];
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        Ok(())
    }

    /// g = sigmoid(β) for every layer and head, `[layer][head]`.
    pub fn gates(&self) -> Vec<Vec<f32>> {
        self.weights
            .layers
            .iter()
            .map(|layer| {
                layer
                    .beta
                    .iter()
                    .map(|&b| crate::gate::sigmoid(b))
                    .collect()
            })
            .collect()
    }

    /// A small untrained model with deterministic random weights and a byte-level BPE
    /// trained on `text`: what tests and the CLI use until a trained model exists.
    pub fn random(config: Config, seed: u64, text: &str) -> Result<Self, Error> {
        config.validate()?;
        let tokenizer = Tokenizer::train(text.split_inclusive('\n'), config.vocab_size)?;
        let weights = Weights::random(&config, seed);
        Ok(Self {
            config,
            weights,
            tokenizer,
            stored_dtype: StoredDtype::F32,
        })
    }
}

/// The configuration of the bundled random test model.
pub fn tiny_config() -> Config {
    Config {
        vocab_size: 512,
        d_model: 64,
        n_layers: 2,
        n_heads: 2,
        head_dim: 32,
        mlp_hidden: 172,
        segment_len: 32,
        update_rule: crate::UpdateRule::Delta,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        train_context: 512,
        key_shift: 0,
        query_shift: 0,
    }
}
