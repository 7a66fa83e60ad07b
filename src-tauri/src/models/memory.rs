//! This machine's memory as the UI shows it.

use minibar_fit::{MemorySnapshot, Pressure};

use crate::history::now_ms;
use crate::types::{MachineMemory, MemoryPressure};

/// Converts a minibar-fit snapshot, adding what Minibar's loaded model holds.
pub fn machine_memory(snap: &MemorySnapshot, loaded: Option<(String, u64)>) -> MachineMemory {
    let (loaded_model, model_bytes) = match loaded {
        Some((id, bytes)) => (Some(id), bytes),
        None => (None, 0),
    };
    MachineMemory {
        total_bytes: snap.total,
        available_bytes: snap.available,
        used_bytes: snap.used,
        swap_used_bytes: snap.swap_used,
        pressure: match snap.pressure {
            Pressure::Normal => MemoryPressure::Normal,
            Pressure::Warning => MemoryPressure::Warning,
            Pressure::Critical => MemoryPressure::Critical,
        },
        gpu_limit_bytes: snap.gpu_limit,
        minibar_model_bytes: model_bytes,
        loaded_model,
        timestamp_ms: now_ms(),
    }
}
