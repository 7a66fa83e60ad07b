//! Which MLX backend runs the model, and the dtype policy that follows from it.

use std::sync::OnceLock;

use mlx_rs::Dtype;

/// Where MLX computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Backend {
    /// Apple GPU through Metal.
    Metal,
    /// MLX's CPU backend (Linux, or macOS without Metal).
    Cpu,
}

impl Backend {
    /// The backend MLX will use by default on this machine. Asked of MLX once: every forward
    /// pass consults it.
    pub fn detect() -> Self {
        static DETECTED: OnceLock<Backend> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            if metal_available() {
                Backend::Metal
            } else {
                Backend::Cpu
            }
        })
    }

    /// The dtype to compute in for weights stored as `stored`. On the CPU MLX's quantized
    /// kernels are 10-40x slower with f16/bf16 activations and scales (measured), so compute
    /// in f32; on Metal keep the model's own dtype.
    pub fn compute_dtype(self, stored: Dtype) -> Dtype {
        match self {
            Backend::Cpu => Dtype::Float32,
            Backend::Metal => stored,
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Metal => "metal",
            Backend::Cpu => "cpu",
        }
    }
}

/// MLX's default device is the GPU exactly when Metal is usable.
fn metal_available() -> bool {
    mlx_rs::Device::try_default()
        .and_then(|d| d.get_type())
        .is_ok_and(|t| matches!(t, mlx_rs::DeviceType::Gpu))
}
