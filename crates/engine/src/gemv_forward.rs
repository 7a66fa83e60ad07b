//! Matrix products with few rows through `cblas_sgemv` on Linux.
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
//! Products with one column, or with few rows ([`per_row`]: the decode steps of a few
//! concurrent sequences), go to OpenBLAS's `cblas_sgemv`, everything else to OpenBLAS's own
//! `cblas_sgemm`, both found with `dlsym(RTLD_NEXT, ..)`.

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

/// Whether a row-major product of `m` rows by `n` outputs over `k` runs as one `sgemv` per
/// row. A layer's weights stay in cache between the rows, so each row after the first costs
/// far less than OpenBLAS's packing of the whole matrix: a 3072x576 product with 2 rows takes
/// 0.09 ms this way and 0.34 ms through `sgemm`, with 8 rows 0.33 against 0.55 ms. A matrix
/// larger than the cache is read again for every row, which still wins up to 4 rows (the
/// 49152x576 output layer: 9.8 against 12.6 ms) but not at 8 (20.0 against 13.4 ms). Measured
/// with 2 threads on the development machine (32 MiB L3); a decode step of the default model
/// at 2 rows went from 55 to 34-44 ms, at 4 rows from 77 to 50-56 ms.
fn per_row(m: c_int, n: c_int, k: c_int) -> bool {
    const CACHED_ELEMENTS: i64 = 4 << 20;
    m <= 4 || (m <= 8 && n as i64 * k as i64 <= CACHED_ELEMENTS)
}

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

/// The `cblas_sgemm` libmlx calls: products with few rows, and single-column ones, go to
/// `cblas_sgemv`.
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
    if order == ROW_MAJOR && m > 0 && k > 0 && per_row(m, n, k) {
        // Row i of C (1 x n) = op(B)^T (row i of op(A)): A's rows are contiguous unless A is
        // stored transposed, when row i is column i of the stored matrix.
        let (step_a, inc_a) = if trans_a == TRANS { (1, lda) } else { (lda, 1) };
        let (t, rows, cols) = if trans_b == TRANS {
            (NO_TRANS, n, k)
        } else {
            (TRANS, k, n)
        };
        for i in 0..m as isize {
            (blas.sgemv)(
                ROW_MAJOR,
                t,
                rows,
                cols,
                alpha,
                b,
                ldb,
                a.offset(i * step_a as isize),
                inc_a,
                beta,
                c.offset(i * ldc as isize),
                1,
            );
        }
        return;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// C = alpha op(A) op(B) + beta C, row-major, the slow obvious way.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        beta: f32,
        c: &mut [f32],
        ldc: usize,
    ) {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let x = if ta { a[p * lda + i] } else { a[i * lda + p] };
                    let y = if tb { b[j * ldb + p] } else { b[p * ldb + j] };
                    s += x as f64 * y as f64;
                }
                let o = &mut c[i * ldc + j];
                *o = alpha * s as f32 + beta * *o;
            }
        }
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn every_layout_matches_the_definition() {
        // One row, a few rows, one column, and a general product, with every transposition and padded
        // leading dimensions, so each branch is exercised with strides that matter.
        for (m, n, k) in [
            (1, 37, 53),
            (3, 37, 53),
            (41, 1, 29),
            (1, 1, 17),
            (5, 7, 11),
            (13, 7, 11),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let (lda, ldb, ldc) = (ac + 3, bc + 2, n + 1);
                    let a = values(ar * lda, 1);
                    let b = values(br * ldb, 2);
                    let c0 = values(m * ldc, 3);
                    let (alpha, beta) = (0.75, 0.5);
                    let mut want = c0.clone();
                    reference(
                        ta, tb, m, n, k, alpha, &a, lda, &b, ldb, beta, &mut want, ldc,
                    );
                    let mut got = c0.clone();
                    // SAFETY: the buffers hold the matrices the dimensions describe.
                    unsafe {
                        cblas_sgemm(
                            ROW_MAJOR,
                            if ta { TRANS } else { NO_TRANS },
                            if tb { TRANS } else { NO_TRANS },
                            m as c_int,
                            n as c_int,
                            k as c_int,
                            alpha,
                            a.as_ptr(),
                            lda as c_int,
                            b.as_ptr(),
                            ldb as c_int,
                            beta,
                            got.as_mut_ptr(),
                            ldc as c_int,
                        );
                    }
                    for i in 0..m {
                        for j in 0..n {
                            let (g, w) = (got[i * ldc + j], want[i * ldc + j]);
                            assert!(
                                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                                "m={m} n={n} k={k} ta={ta} tb={tb} [{i},{j}]: {g} != {w}"
                            );
                        }
                    }
                    // Padding between rows of C is never written.
                    for i in 0..m {
                        for j in n..ldc {
                            assert_eq!(got[i * ldc + j], c0[i * ldc + j]);
                        }
                    }
                }
            }
        }
    }
}
