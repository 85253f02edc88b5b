//! `model.safetensors`: the tensors of a model, their names and shapes (the one
//! place they are listed), loading with validation, saving, and deterministic
//! random initialisation for test models.
//!
//! Matrices are stored `[in, out]`, row-major: a projection is `y = x · W`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::{Config, Error};

/// One layer's tensors; the field names are the tensor names after `layers.{l}.`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: Vec<f32>,
    pub wk: Vec<f32>,
    pub wv: Vec<f32>,
    pub wo: Vec<f32>,
    /// β, one scalar per head: the gate is sigmoid(β).
    pub beta: Vec<f32>,
    pub mlp_norm: Vec<f32>,
    pub w_gate: Vec<f32>,
    pub w_up: Vec<f32>,
    pub w_down: Vec<f32>,
    /// `[w, d_model]`: the taps c_0 … c_{w−1} of the memory keys' convolution
    /// K̃_t = Σ c_i ⊙ K_{t−i}, present only in models whose config sets `key_shift` = w.
    pub key_shift: Option<Vec<f32>>,
    /// `[w, d_model]`: the taps e_0 … e_{w−1} of the memory queries' convolution
    /// Q̃_t = Σ e_i ⊙ Q_{t−i}, present only where the config sets `query_shift` = w.
    pub query_shift: Option<Vec<f32>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// `[vocab, d_model]`, also the output projection (tied).
    pub embed: Vec<f32>,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Vec<f32>,
}

/// Element type of the stored file; the engine computes in f32 either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredDtype {
    F32,
    F16,
}

const LAYER_TENSORS: [&str; 10] = [
    "attn_norm",
    "wq",
    "wk",
    "wv",
    "wo",
    "beta",
    "mlp_norm",
    "w_gate",
    "w_up",
    "w_down",
];

/// The variant's extra tensors per layer (`Config::key_shift`, `Config::query_shift`).
const KEY_SHIFT: &str = "key_shift";
const QUERY_SHIFT: &str = "query_shift";

/// The shift tensors a model with `config` has.
fn shifts(config: &Config) -> impl Iterator<Item = &'static str> {
    let key = (config.key_shift > 0).then_some(KEY_SHIFT);
    let query = (config.query_shift > 0).then_some(QUERY_SHIFT);
    key.into_iter().chain(query)
}

fn layer_shape(config: &Config, name: &str) -> Vec<usize> {
    let (d, f) = (config.d_model, config.mlp_hidden);
    match name {
        KEY_SHIFT => vec![config.key_shift, d],
        QUERY_SHIFT => vec![config.query_shift, d],
        "attn_norm" | "mlp_norm" => vec![d],
        "wq" | "wk" | "wv" | "wo" => vec![d, d],
        "beta" => vec![config.n_heads],
        "w_gate" | "w_up" => vec![d, f],
        "w_down" => vec![f, d],
        _ => unreachable!("{name} is not in LAYER_TENSORS"),
    }
}

/// Every tensor of a model with this config: (name, shape), in file order.
pub fn tensor_specs(config: &Config) -> Vec<(String, Vec<usize>)> {
    let mut specs = vec![("embed".to_string(), vec![config.vocab_size, config.d_model])];
    for l in 0..config.n_layers {
        for name in LAYER_TENSORS.into_iter().chain(shifts(config)) {
            specs.push((format!("layers.{l}.{name}"), layer_shape(config, name)));
        }
    }
    specs.push(("final_norm".to_string(), vec![config.d_model]));
    specs
}

impl LayerWeights {
    fn get(&self, name: &str) -> &Vec<f32> {
        match name {
            "attn_norm" => &self.attn_norm,
            "wq" => &self.wq,
            "wk" => &self.wk,
            "wv" => &self.wv,
            "wo" => &self.wo,
            "beta" => &self.beta,
            "mlp_norm" => &self.mlp_norm,
            "w_gate" => &self.w_gate,
            "w_up" => &self.w_up,
            "w_down" => &self.w_down,
            KEY_SHIFT => self
                .key_shift
                .as_ref()
                .expect("key_shift is listed only for models that have it"),
            QUERY_SHIFT => self
                .query_shift
                .as_ref()
                .expect("query_shift is listed only for models that have it"),
            _ => unreachable!("{name} is not in LAYER_TENSORS"),
        }
    }

    /// Builds a layer by asking `take` for each tensor by its short name (and for
    /// the shifts `config` has).
    fn build(
        config: &Config,
        mut take: impl FnMut(&str) -> Result<Vec<f32>, Error>,
    ) -> Result<Self, Error> {
        Ok(Self {
            attn_norm: take("attn_norm")?,
            wq: take("wq")?,
            wk: take("wk")?,
            wv: take("wv")?,
            wo: take("wo")?,
            beta: take("beta")?,
            mlp_norm: take("mlp_norm")?,
            w_gate: take("w_gate")?,
            w_up: take("w_up")?,
            w_down: take("w_down")?,
            key_shift: (config.key_shift > 0)
                .then(|| take(KEY_SHIFT))
                .transpose()?,
            query_shift: (config.query_shift > 0)
                .then(|| take(QUERY_SHIFT))
                .transpose()?,
        })
    }
}

/// Which tensor a safetensors header gets wrong, when the safetensors crate refused
/// it without naming one: a name given twice, a shape or dtype that does not fit the
/// tensor's bytes, offsets with a gap, or a file cut short or with bytes appended.
fn explain_header(bytes: &[u8]) -> Option<String> {
    /// A JSON object's keys in order, repeats kept (a map would drop them).
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    #[derive(serde::Deserialize)]
    struct Info {
        dtype: Dtype,
        shape: Vec<usize>,
        data_offsets: (usize, usize),
    }
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header = bytes.get(8..n.checked_add(8)?)?;
    let Keys(keys) = serde_json::from_slice(header).ok()?;
    let mut seen = std::collections::HashSet::new();
    if let Some(name) = keys.iter().find(|k| !seen.insert(k.as_str())) {
        return Some(format!("tensor {name:?} appears twice in the header"));
    }
    let mut map: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_slice(header).ok()?;
    map.remove("__metadata__");
    let mut tensors = Vec::new();
    for (name, info) in map {
        let Info {
            dtype,
            shape,
            data_offsets: (start, end),
        } = serde_json::from_value(info).ok()?;
        let bits = shape
            .iter()
            .try_fold(dtype.bitsize(), |bits, &d| bits.checked_mul(d));
        let needs = match bits {
            Some(bits) if bits % 8 == 0 => bits / 8,
            _ => {
                return Some(format!(
                    "tensor {name:?}: shape {shape:?} of {dtype:?} is too large or not whole bytes"
                ))
            }
        };
        if end.checked_sub(start) != Some(needs) {
            return Some(format!(
                "tensor {name:?}: shape {shape:?} of {dtype:?} needs {needs} bytes, its data_offsets [{start}, {end}] give {}",
                end as i128 - start as i128
            ));
        }
        tensors.push((start, end, name));
    }
    tensors.sort();
    let mut at = 0;
    for (start, end, name) in tensors {
        if start != at {
            return Some(format!(
                "tensor {name:?}: data_offsets [{start}, {end}] should start at {at} (a gap or an overlap)"
            ));
        }
        at = end;
    }
    let held = bytes.len() - 8 - n;
    (at != held).then(|| {
        format!("the header describes {at} bytes of tensor data, the file holds {held} (cut short or with bytes appended)")
    })
}

impl Weights {
    /// The tensor called `name` (as listed by [`tensor_specs`]).
    pub fn tensor(&self, name: &str) -> &[f32] {
        match name {
            "embed" => &self.embed,
            "final_norm" => &self.final_norm,
            _ => {
                let rest = name.strip_prefix("layers.").expect("a layer tensor name");
                let (l, short) = rest.split_once('.').expect("layers.{l}.{name}");
                self.layers[l.parse::<usize>().expect("a layer index")].get(short)
            }
        }
    }

    /// Reads and validates a safetensors file against `config`: every tensor must be
    /// present with the right shape, f32/f16/bf16, and finite; no extra tensors.
    pub fn from_safetensors(config: &Config, bytes: &[u8]) -> Result<(Self, StoredDtype), Error> {
        config.validate()?;
        let file = SafeTensors::deserialize(bytes).map_err(|e| {
            let why = explain_header(bytes).map_or(String::new(), |why| format!(" ({why})"));
            Error::Weights(format!("not a readable safetensors file: {e}{why}"))
        })?;
        // Nothing is allocated for the config's tensors before the file is known to be
        // large enough to hold them (2 bytes a parameter at least): a broken config
        // that asks for 10^15 layers is an error, not an out-of-memory abort.
        let params = config.n_params();
        if params > bytes.len() / 2 {
            return Err(Error::Weights(format!(
                "the config describes {params} parameters, more than a file of {} bytes holds",
                bytes.len()
            )));
        }
        let specs = tensor_specs(config);
        for name in file.names() {
            if !specs.iter().any(|(s, _)| s == name) {
                return Err(Error::Weights(format!(
                    "unexpected tensor {name:?} (the config describes {} tensors)",
                    specs.len()
                )));
            }
        }
        let mut dtype = StoredDtype::F32;
        let mut read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, Error> {
            let view = file
                .tensor(name)
                .map_err(|_| Error::Weights(format!("missing tensor {name:?}")))?;
            if view.shape() != shape {
                return Err(Error::Weights(format!(
                    "tensor {name:?}: expected shape {shape:?}, found {:?}",
                    view.shape()
                )));
            }
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => {
                    dtype = StoredDtype::F16;
                    data.chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect()
                }
                Dtype::BF16 => {
                    dtype = StoredDtype::F16;
                    data.chunks_exact(2)
                        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect()
                }
                other => {
                    return Err(Error::Weights(format!(
                        "tensor {name:?}: dtype {other:?} is not supported (f32, f16 or bf16)"
                    )))
                }
            };
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(Error::Weights(format!(
                    "tensor {name:?}: element {i} is {} (not finite)",
                    values[i]
                )));
            }
            Ok(values)
        };
        let shape_of = |name: &str| {
            specs
                .iter()
                .find(|(s, _)| s == name)
                .map(|(_, sh)| sh.clone())
        };
        let embed = read("embed", &shape_of("embed").unwrap())?;
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            layers.push(LayerWeights::build(config, |short| {
                let name = format!("layers.{l}.{short}");
                read(&name, &shape_of(&name).unwrap())
            })?);
        }
        let final_norm = read("final_norm", &shape_of("final_norm").unwrap())?;
        Ok((
            Self {
                embed,
                layers,
                final_norm,
            },
            dtype,
        ))
    }

    /// Serialises to safetensors, with values rounded to `dtype`.
    pub fn to_safetensors(&self, config: &Config, dtype: StoredDtype) -> Vec<u8> {
        let specs = tensor_specs(config);
        let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = specs
            .into_iter()
            .map(|(name, shape)| {
                let values = self.tensor(&name);
                let bytes = match dtype {
                    StoredDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    StoredDtype::F16 => values
                        .iter()
                        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                        .collect(),
                };
                (name, shape, bytes)
            })
            .collect();
        let st_dtype = match dtype {
            StoredDtype::F32 => Dtype::F32,
            StoredDtype::F16 => Dtype::F16,
        };
        let views = encoded.iter().map(|(name, shape, bytes)| {
            let view = TensorView::new(st_dtype, shape.clone(), bytes).expect("shape matches data");
            (name.clone(), view)
        });
        safetensors::serialize(views, None).expect("serialising in-memory tensors")
    }

    /// Deterministic random weights for a model with `config`: the same seed gives
    /// the same bits on every platform. β is spread over [−2, 2] so the gates of an
    /// untrained test model differ from head to head.
    pub fn random(config: &Config, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = |len: usize, scale: f32| -> Vec<f32> {
            (0..len).map(|_| rng.random_range(-scale..scale)).collect()
        };
        let (d, f, v) = (config.d_model, config.mlp_hidden, config.vocab_size);
        // Uniform(−a, a) has standard deviation a/√3: a = √(3/fan_in) gives 1/√fan_in.
        let fan = |n: usize| (3.0 / n as f32).sqrt();
        let embed = uniform(v * d, 0.1);
        let layers = (0..config.n_layers)
            .map(|_| LayerWeights {
                attn_norm: vec![1.0; d],
                wq: uniform(d * d, fan(d)),
                wk: uniform(d * d, fan(d)),
                wv: uniform(d * d, fan(d)),
                wo: uniform(d * d, fan(d)),
                beta: uniform(config.n_heads, 2.0),
                mlp_norm: vec![1.0; d],
                w_gate: uniform(d * f, fan(d)),
                w_up: uniform(d * f, fan(d)),
                w_down: uniform(f * d, fan(f)),
                // c_0 near 1, the others near 0.5: a test model's keys visibly mix tokens.
                key_shift: (config.key_shift > 0)
                    .then(|| tap_offsets(uniform(config.key_shift * d, 0.25), d)),
                query_shift: (config.query_shift > 0)
                    .then(|| tap_offsets(uniform(config.query_shift * d, 0.25), d)),
            })
            .collect();
        Self {
            embed,
            layers,
            final_norm: vec![1.0; d],
        }
    }
}

/// A random test shift's taps moved to about 1 for the token itself and 0.5 for those
/// before it.
fn tap_offsets(mut shift: Vec<f32>, d_model: usize) -> Vec<f32> {
    for (i, x) in shift.iter_mut().enumerate() {
        *x += if i < d_model { 1.0 } else { 0.5 };
    }
    shift
}
