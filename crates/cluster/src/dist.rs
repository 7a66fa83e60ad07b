//! A small safe layer over mlx-c's distributed API (mlx-rs 0.33 has none): joining a group
//! through MLX's own backends, and the send, recv and all_sum collectives as lazy arrays.
//!
//! Invariant: every operation runs on the CPU stream. The ring backend moves bytes with
//! sockets from the CPU, and on macOS MLX schedules the copy out of GPU memory itself.

use std::{ffi::CStr, sync::Once};

use mlx_rs::{Array, Dtype, Stream};

use crate::error::{ClusterError, Result};

/// Which of MLX's distributed backends to join through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// TCP sockets in a ring (any network, loopback included); ranks exchange with neighbours.
    Ring,
    /// RDMA over Thunderbolt 5 (recent macOS only).
    Jaccl,
}

impl Backend {
    /// The name MLX knows the backend by.
    pub fn name(self) -> &'static str {
        self.c_name().to_str().unwrap_or("ring")
    }

    fn c_name(self) -> &'static CStr {
        match self {
            Backend::Ring => c"ring",
            Backend::Jaccl => c"jaccl",
        }
    }

    /// Whether the MLX this binary links was built with the backend.
    pub fn is_available(self) -> bool {
        ensure_error_handler();
        // SAFETY: the argument is a NUL-terminated static string.
        unsafe { mlx_sys::mlx_distributed_is_available(self.c_name().as_ptr()) }
    }
}

/// mlx-c's default error handler exits the process; mlx-rs installs its own (which turns
/// errors into `Err`) on its first operation, so run one before calling mlx-c ourselves.
fn ensure_error_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = mlx_rs::ops::abs(Array::from_int(0));
    });
}

/// This process's membership of a distributed group.
pub struct Group {
    raw: mlx_sys::mlx_distributed_group,
    stream: Stream,
    rank: usize,
    size: usize,
}

impl Group {
    /// Joins the group the environment describes (for the ring: `MLX_HOSTFILE`, a JSON list of
    /// each rank's `ip:port` addresses, and `MLX_RANK`). Blocks until the neighbours connect.
    pub fn init(backend: Backend) -> Result<Group> {
        ensure_error_handler();
        // SAFETY: `raw` starts empty; on success mlx-c stores a group in it, which `Group`
        // then owns and frees; on failure it is freed here.
        let raw = unsafe {
            let mut raw = mlx_sys::mlx_distributed_group_new();
            if mlx_sys::mlx_distributed_init(&mut raw, true, backend.c_name().as_ptr()) != 0
                || raw.ctx.is_null()
            {
                mlx_sys::mlx_distributed_group_free(raw);
                return Err(ClusterError::Join {
                    backend: backend.name(),
                });
            }
            raw
        };
        // SAFETY: `raw` is a live group.
        let (rank, size) = unsafe {
            (
                mlx_sys::mlx_distributed_group_rank(raw),
                mlx_sys::mlx_distributed_group_size(raw),
            )
        };
        Ok(Group {
            raw,
            stream: Stream::cpu(),
            rank: rank.max(0) as usize,
            size: size.max(1) as usize,
        })
    }

    /// This process's place in the group, from 0.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// How many processes the group has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// An array whose evaluation sends `x` to rank `dst` (a neighbour, for the ring).
    pub fn send(&self, x: &Array, dst: usize) -> Result<Array> {
        self.op("send", |res, stream| unsafe {
            // SAFETY: all handles are live for the call.
            mlx_sys::mlx_distributed_send(res, x.as_ptr(), dst as i32, self.raw, stream)
        })
    }

    /// An array whose evaluation receives a `shape` array of `dtype` from rank `src`.
    pub fn recv(&self, shape: &[i32], dtype: Dtype, src: usize) -> Result<Array> {
        self.op("recv", |res, stream| unsafe {
            // SAFETY: `shape` outlives the call; the other handles are live.
            mlx_sys::mlx_distributed_recv(
                res,
                shape.as_ptr(),
                shape.len(),
                dtype as mlx_sys::mlx_dtype,
                src as i32,
                self.raw,
                stream,
            )
        })
    }

    /// The element-wise sum of `x` over every rank, on every rank.
    pub fn all_sum(&self, x: &Array) -> Result<Array> {
        self.op("all_sum", |res, stream| unsafe {
            // SAFETY: all handles are live for the call.
            mlx_sys::mlx_distributed_all_sum(res, x.as_ptr(), self.raw, stream)
        })
    }

    fn op(
        &self,
        name: &'static str,
        f: impl FnOnce(*mut mlx_sys::mlx_array, mlx_sys::mlx_stream) -> i32,
    ) -> Result<Array> {
        ensure_error_handler();
        // SAFETY: `res` starts as an empty handle; on success mlx-c stores a new reference in
        // it, which Array then owns; on failure it is freed here.
        unsafe {
            let mut res = mlx_sys::mlx_array_new();
            if f(&mut res, self.stream.as_ptr()) == 0 {
                Ok(Array::from_ptr(res))
            } else {
                mlx_sys::mlx_array_free(res);
                Err(ClusterError::Collective { op: name })
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: `raw` is owned by this value and freed once.
        unsafe {
            mlx_sys::mlx_distributed_group_free(self.raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_linked_mlx_has_the_ring_backend() {
        assert!(Backend::Ring.is_available());
    }

    #[test]
    fn joining_without_a_hostfile_is_an_error_not_a_crash() {
        if std::env::var_os("MLX_HOSTFILE").is_some() {
            return;
        }
        assert!(matches!(
            Group::init(Backend::Ring),
            Err(ClusterError::Join { .. })
        ));
    }
}
