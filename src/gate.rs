//! The per-head gate g = sigmoid(β) and how a head is classified from it.

/// Heads with g below this lean on local attention only ("specialized local").
pub const LOCAL_BELOW: f32 = 0.1;
/// Heads with g above this lean on memory only ("specialized memory").
pub const MEMORY_ABOVE: f32 = 0.9;

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    SpecializedLocal,
    Mixer,
    SpecializedMemory,
}

impl HeadKind {
    pub fn of_gate(g: f32) -> Self {
        if g < LOCAL_BELOW {
            Self::SpecializedLocal
        } else if g > MEMORY_ABOVE {
            Self::SpecializedMemory
        } else {
            Self::Mixer
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::SpecializedLocal => "specialized-local",
            Self::Mixer => "mixer",
            Self::SpecializedMemory => "specialized-memory",
        }
    }
}
