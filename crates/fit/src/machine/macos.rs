//! macOS specifics: the kernel's memory-pressure level and the GPU wired-memory limit.
//! Totals and availability come from sysinfo, which reads `host_statistics64` itself.

use std::ffi::CString;

use super::{default_gpu_working_set, Pressure};

/// Reads an integer sysctl (4 or 8 bytes wide).
fn sysctl_u64(name: &str) -> Option<u64> {
    let cname = CString::new(name).ok()?;
    let mut buf = [0u8; 8];
    let mut size: libc::size_t = buf.len();
    // SAFETY: buf is 8 writable bytes and size tells the kernel so; no new value is written.
    let rc = unsafe {
        libc::sysctlbyname(
            cname.as_ptr(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    match (rc, size) {
        (0, 4) => Some(u64::from(u32::from_ne_bytes([
            buf[0], buf[1], buf[2], buf[3],
        ]))),
        (0, 8) => Some(u64::from_ne_bytes(buf)),
        _ => None,
    }
}

/// `kern.memorystatus_vm_pressure_level`: 1 normal, 2 warning, 4 critical.
pub fn pressure() -> Option<Pressure> {
    match sysctl_u64("kern.memorystatus_vm_pressure_level")? {
        1 => Some(Pressure::Normal),
        2 => Some(Pressure::Warning),
        4 => Some(Pressure::Critical),
        _ => None,
    }
}

/// The GPU wired limit: `iogpu.wired_limit_mb` when the user raised it, else macOS's default.
pub fn gpu_limit(total: u64) -> u64 {
    match sysctl_u64("iogpu.wired_limit_mb") {
        Some(mb) if mb > 0 => (mb << 20).min(total),
        _ => default_gpu_working_set(total),
    }
}
