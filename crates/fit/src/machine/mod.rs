//! This machine's memory: totals, availability, swap, pressure and the GPU working-set limit.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;

use serde::Serialize;
use sysinfo::{MemoryRefreshKind, RefreshKind, System};

/// How hard the OS is working to find memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pressure {
    /// Plenty of memory.
    Normal,
    /// The OS is compressing or reclaiming.
    Warning,
    /// Swapping or about to kill processes.
    Critical,
}

/// One reading of the machine's memory. Bytes throughout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemorySnapshot {
    /// Physical memory.
    pub total: u64,
    /// Memory the OS can hand out without swapping.
    pub available: u64,
    /// Memory in use.
    pub used: u64,
    /// Swap size.
    pub swap_total: u64,
    /// Swap in use.
    pub swap_used: u64,
    /// Memory pressure.
    pub pressure: Pressure,
    /// How much the GPU may wire (macOS only; `None` where the CPU uses plain memory).
    pub gpu_limit: Option<u64>,
}

/// The GPU working-set limit macOS applies by default (Metal's `recommendedMaxWorkingSetSize`):
/// about two thirds of unified memory up to 36 GB, three quarters above. The engine passes the
/// real value from MLX's device info when it has one.
pub fn default_gpu_working_set(total: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    if total <= 36 * GIB {
        total / 3 * 2
    } else {
        total / 4 * 3
    }
}

/// Reads memory cheaply and repeatedly (sysinfo refreshing memory only).
pub struct MemorySampler {
    sys: System,
}

impl Default for MemorySampler {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySampler {
    /// A sampler that has read nothing yet.
    pub fn new() -> MemorySampler {
        MemorySampler {
            sys: System::new_with_specifics(
                RefreshKind::nothing().with_memory(MemoryRefreshKind::everything()),
            ),
        }
    }

    /// Reads the memory now.
    pub fn sample(&mut self) -> MemorySnapshot {
        self.sys
            .refresh_memory_specifics(MemoryRefreshKind::everything());
        let total = self.sys.total_memory();
        let available = self.sys.available_memory().min(total);
        MemorySnapshot {
            total,
            available,
            used: self.sys.used_memory(),
            swap_total: self.sys.total_swap(),
            swap_used: self.sys.used_swap(),
            pressure: platform_pressure().unwrap_or_else(|| pressure_from_ratio(available, total)),
            gpu_limit: platform_gpu_limit(total),
        }
    }
}

/// Reads this machine's memory once.
pub fn snapshot() -> MemorySnapshot {
    MemorySampler::new().sample()
}

/// A pressure level from the share of memory still available, for systems that report none.
pub fn pressure_from_ratio(available: u64, total: u64) -> Pressure {
    if total == 0 {
        return Pressure::Normal;
    }
    let share = available as f64 / total as f64;
    if share < 0.05 {
        Pressure::Critical
    } else if share < 0.15 {
        Pressure::Warning
    } else {
        Pressure::Normal
    }
}

#[cfg(target_os = "macos")]
fn platform_pressure() -> Option<Pressure> {
    macos::pressure()
}

#[cfg(target_os = "linux")]
fn platform_pressure() -> Option<Pressure> {
    linux::pressure()
}

#[cfg(not(any(target_os = "macos", target_os = "linux")))]
fn platform_pressure() -> Option<Pressure> {
    None
}

#[cfg(target_os = "macos")]
fn platform_gpu_limit(total: u64) -> Option<u64> {
    Some(macos::gpu_limit(total))
}

#[cfg(not(target_os = "macos"))]
fn platform_gpu_limit(_total: u64) -> Option<u64> {
    None
}
