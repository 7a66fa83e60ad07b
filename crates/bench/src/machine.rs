//! The machine under test: chip, cores, memory, OS, MLX, and measured memory bandwidth.

use std::{ffi::CStr, time::Instant};

use mlx_rs::{ops, Array};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What the benchmark ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Chip or CPU model (`Apple M4 Max`, `AMD EPYC ...`).
    pub cpu: String,
    /// Physical cores (0 when the OS does not say).
    pub physical_cores: usize,
    /// Logical cores (the threads MLX and BLAS may use).
    pub logical_cores: usize,
    /// Physical memory, bytes.
    pub memory_bytes: u64,
    /// Operating system and version.
    pub os: String,
    /// MLX backend: `cpu` or `metal`.
    pub backend: String,
    /// MLX version.
    pub mlx_version: String,
    /// Measured memory bandwidth through MLX, GB/s (best of the copy and add kernels).
    pub bandwidth_gbs: f64,
}

impl MachineInfo {
    /// Describes this machine; `bandwidth_gbs` is filled in by [`measure_bandwidth`].
    pub fn detect() -> Self {
        let mut sys = sysinfo::System::new();
        sys.refresh_cpu_all();
        sys.refresh_memory();
        let cpu = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_owned())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
        let os = format!(
            "{} {}",
            sysinfo::System::name().unwrap_or_else(|| std::env::consts::OS.to_owned()),
            sysinfo::System::os_version().unwrap_or_default()
        )
        .trim()
        .to_owned();
        Self {
            cpu,
            physical_cores: sysinfo::System::physical_core_count().unwrap_or(0),
            logical_cores: sys.cpus().len(),
            memory_bytes: sys.total_memory(),
            os,
            backend: minibar_engine::Backend::detect().name().to_owned(),
            mlx_version: mlx_version(),
            bandwidth_gbs: 0.0,
        }
    }
}

/// MLX's version string, from mlx-c.
pub fn mlx_version() -> String {
    // SAFETY: mlx-c allocates the string, we copy it out before freeing it once.
    unsafe {
        let mut s = mlx_sys::mlx_string_new();
        let ok = mlx_sys::mlx_version(&mut s) == 0;
        let text = if ok {
            let p = mlx_sys::mlx_string_data(s);
            if p.is_null() {
                None
            } else {
                Some(CStr::from_ptr(p).to_string_lossy().into_owned())
            }
        } else {
            None
        };
        mlx_sys::mlx_string_free(s);
        text.unwrap_or_else(|| "unknown".into())
    }
}

/// Measures memory bandwidth (GB/s) with STREAM's scale (`a = s·b`, 2 arrays moved) and add
/// (`a = b + c`, 3 arrays) kernels run through MLX on `elements`-long f32 arrays, best of
/// `trials`. Arrays should exceed the last-level cache yet stay under malloc's mmap threshold
/// (32 MiB), or every trial pays for fresh page faults: 6M elements (24 MiB) suits both.
pub fn measure_bandwidth(elements: usize, trials: usize) -> Result<f64> {
    let n = elements as i32;
    let b = ops::ones::<f32>(&[n])?;
    let c = ops::multiply(&ops::ones::<f32>(&[n])?, Array::from_f32(2.0))?;
    mlx_rs::transforms::eval([&b, &c])?;
    let bytes = |arrays: usize| (arrays * elements * 4) as f64;
    let mut best: f64 = 0.0;
    for _ in 0..trials.max(1) {
        let t = Instant::now();
        let a = ops::multiply(&b, Array::from_f32(3.0))?;
        a.eval()?;
        best = best.max(bytes(2) / t.elapsed().as_secs_f64());
        drop(a);
        let t = Instant::now();
        let a = ops::add(&b, &c)?;
        a.eval()?;
        best = best.max(bytes(3) / t.elapsed().as_secs_f64());
    }
    Ok(best / 1e9)
}
