//! Single-row matrix products through `cblas_sgemv` on Linux.
//!
//! MLX's CPU matmul calls `cblas_sgemm` for every product, including the one-row products of
//! each decode step. Debian's OpenBLAS 0.3.21 packs the whole weight matrix for such a call
//! and then runs a general kernel on it, so it reads the weights about twice: the same
//! 49152x576 f32 product takes 9.5 ms through `sgemm` and 5.0 ms through `sgemv` here
//! (2 threads; /tmp micro-benchmark in the #7 closing note). OpenBLAS 0.3.27+ forwards these
//! calls itself (`GEMM_GEMV_FORWARD`); this does the same for the OpenBLAS we link.
//!
//! The executable defines `cblas_sgemm`; the dynamic linker binds libmlx's undefined
//! `cblas_sgemm` to it, because an executable's definitions come first in the lookup order.
//! Products with one row or one column go to OpenBLAS's `cblas_sgemv`, everything else to
//! OpenBLAS's own `cblas_sgemm`, both found with `dlsym(RTLD_NEXT, ..)`.

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

type Sgemv = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

struct Blas {
    sgemm: Sgemm,
    sgemv: Sgemv,
}

fn next_symbol(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no preconditions.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

fn blas() -> &'static Blas {
    static BLAS: OnceLock<Blas> = OnceLock::new();
    BLAS.get_or_init(|| {
        let sgemm = next_symbol(c"cblas_sgemm");
        let sgemv = next_symbol(c"cblas_sgemv");
        if sgemm.is_null() || sgemv.is_null() {
            // No BLAS behind us means the binary was linked without OpenBLAS and libmlx's
            // own: nothing sensible can run, and unwinding across this C ABI is undefined.
            eprintln!("minibar: no cblas_sgemm/cblas_sgemv after the executable; is OpenBLAS linked? (make setup)");
            std::process::abort();
        }
        // SAFETY: both symbols are OpenBLAS's CBLAS entry points, whose C signatures the
        // types above spell out.
        unsafe {
            Blas {
                sgemm: std::mem::transmute::<*mut c_void, Sgemm>(sgemm),
                sgemv: std::mem::transmute::<*mut c_void, Sgemv>(sgemv),
            }
        }
    })
}

/// The `cblas_sgemm` libmlx calls: single-row and single-column products go to `cblas_sgemv`.
///
/// # Safety
/// The CBLAS contract: the pointers and leading dimensions describe valid matrices.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cblas_sgemm(
    order: c_int,
    trans_a: c_int,
    trans_b: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: f32,
    c: *mut f32,
    ldc: c_int,
) {
    let blas = blas();
    if order == ROW_MAJOR && m == 1 && k > 0 {
        // C (1 x n) = op(B)^T a: a's elements are contiguous unless A is stored transposed.
        let inc_a = if trans_a == TRANS { lda } else { 1 };
        let (t, rows, cols) = if trans_b == TRANS {
            (NO_TRANS, n, k)
        } else {
            (TRANS, k, n)
        };
        return (blas.sgemv)(
            ROW_MAJOR, t, rows, cols, alpha, b, ldb, a, inc_a, beta, c, 1,
        );
    }
    if order == ROW_MAJOR && n == 1 && k > 0 {
        // C (m x 1) = op(A) b, C's elements one row stride apart.
        let inc_b = if trans_b == TRANS { 1 } else { ldb };
        let (t, rows, cols) = if trans_a == TRANS {
            (TRANS, k, m)
        } else {
            (NO_TRANS, m, k)
        };
        return (blas.sgemv)(
            ROW_MAJOR, t, rows, cols, alpha, a, lda, b, inc_b, beta, c, ldc,
        );
    }
    (blas.sgemm)(
        order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
    )
}

/// Keeps this module's `cblas_sgemm` in every binary that uses the engine.
pub fn ensure_linked() {
    std::hint::black_box(cblas_sgemm as *const ());
}
