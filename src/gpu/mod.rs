//! The GPU side: a wgpu device ([`Gpu`]), one WGSL kernel per op ([`kernels`]) and
//! the model running on them ([`engine`]). Works natively (Vulkan, Metal, DX12, GL)
//! and in the browser (WebGPU).

pub mod engine;
pub mod kernels;

use std::sync::{Arc, Mutex};

pub use engine::{GpuEngine, GpuModel, CHUNK_SEGMENTS};
pub use kernels::{Kernels, Recorder};

use crate::Error;

/// A device with its queue, the kernels compiled for it, and a record of the first
/// error it reported (validation error, out of memory, device lost). Once that is
/// set every further use fails with it, instead of panicking or computing garbage.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    pub kernels: Kernels,
    failure: Arc<Mutex<Option<String>>>,
}

impl Gpu {
    /// Picks the best adapter wgpu finds (natively, `WGPU_BACKEND` narrows the search).
    pub async fn new() -> Result<Self, Error> {
        #[cfg(not(target_arch = "wasm32"))]
        let descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        #[cfg(target_arch = "wasm32")]
        let descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        let instance = wgpu::Instance::new(descriptor);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("no GPU adapter found ({e})")))?;
        let available = adapter.limits();
        // The WebGPU defaults, but as large a storage buffer as the adapter allows
        // (embeddings and logits of a large vocabulary).
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: available.max_storage_buffer_binding_size,
            max_buffer_size: available.max_buffer_size,
            ..wgpu::Limits::default()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("infiniscope"),
                required_limits,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("the adapter refused a device: {e}")))?;
        let failure = Arc::new(Mutex::new(None));
        let on_error = Arc::clone(&failure);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            on_error
                .lock()
                .unwrap()
                .get_or_insert_with(|| e.to_string());
        }));
        let on_lost = Arc::clone(&failure);
        device.set_device_lost_callback(move |reason, message| {
            on_lost
                .lock()
                .unwrap()
                .get_or_insert_with(|| format!("the GPU device was lost ({reason:?}): {message}"));
        });
        let adapter = adapter.get_info();
        let kernels = Kernels::new(&device, adapter.device_type == wgpu::DeviceType::Cpu);
        Ok(Self {
            device,
            queue,
            adapter,
            kernels,
            failure,
        })
    }

    /// "name (backend, device type)", e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)".
    pub fn describe(&self) -> String {
        // Browsers hide the adapter's name.
        let name = match self.adapter.name.as_str() {
            "" => "unnamed adapter",
            name => name,
        };
        format!(
            "{name} ({:?}, {:?})",
            self.adapter.backend, self.adapter.device_type
        )
    }

    /// Fails with the first error the device reported, if any.
    pub fn check(&self) -> Result<(), Error> {
        match self.failure.lock().unwrap().as_ref() {
            Some(message) => Err(Error::Gpu(message.clone())),
            None => Ok(()),
        }
    }

    /// A storage buffer of `bytes` (rounded up to a non-empty multiple of 4).
    pub fn buffer(&self, label: &str, bytes: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: padded(bytes),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer holding `data`.
    pub fn buffer_with<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let buffer = self.buffer(label, std::mem::size_of_val(data));
        self.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        buffer
    }

    /// Records copies of the first `bytes` of each buffer after `encoder`'s work,
    /// submits it, and returns what was read, in order.
    pub async fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        reads: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let total: u64 = reads.iter().map(|(_, bytes)| padded(*bytes)).sum();
        if total == 0 {
            self.queue.submit([encoder.finish()]);
            self.check()?;
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut offset = 0;
        for (buffer, bytes) in reads {
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, offset, padded(*bytes));
            offset += padded(*bytes);
        }
        self.queue.submit([encoder.finish()]);
        self.check()?;
        let (sender, receiver) = futures_channel::oneshot::channel();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |result| {
                let _ = sender.send(result);
            });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        let mapped = receiver
            .await
            .map_err(|_| Error::Gpu("the read-back was cancelled".into()))?;
        self.check()?;
        mapped.map_err(|e| Error::Gpu(format!("reading results back failed: {e}")))?;
        let data = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading results back failed: {e}")))?;
            let mut offset = 0;
            reads
                .iter()
                .map(|(_, bytes)| {
                    let part = view[offset..offset + bytes].to_vec();
                    offset += padded(*bytes) as usize;
                    part
                })
                .collect()
        };
        staging.unmap();
        Ok(data)
    }
}

fn padded(bytes: usize) -> u64 {
    (bytes.max(4) as u64).div_ceil(4) * 4
}

/// Reads f32s out of bytes returned by [`Gpu::submit_and_read`].
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Reads u32s out of bytes returned by [`Gpu::submit_and_read`].
pub fn uints(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
