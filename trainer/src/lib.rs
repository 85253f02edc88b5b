//! Trains infiniscope's Infini-Transformer with burn on the CPU: the model
//! ([`model`]), its data ([`data`]) and the optimizer step ([`train`]).

pub mod data;
pub mod model;
pub mod train;
