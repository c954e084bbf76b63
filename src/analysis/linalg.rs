//! Matrix products and pairwise distances shared by the analyses.
//!
//! Products go through the `gemm` crate (SIMD kernels with runtime CPU dispatch, AVX-512
//! where available). It is always called single-threaded: callers parallelise over row blocks
//! with rayon, which keeps the work partition — and therefore every floating-point result —
//! independent of the thread count.

use rayon::prelude::*;

use super::{AnalysisError, Embeddings};

/// `dst[m×n] = lhs · rhs` with `dst` row-major (row stride `n`), `lhs(i, p) = lhs[i·lrs +
/// p·lcs]` and `rhs(p, j) = rhs[p·rrs + j·rcs]`. Overwrites `dst`, or adds to it when
/// `accumulate`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: Copy + Default + 'static>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    lhs: &[T],
    (lrs, lcs): (usize, usize),
    rhs: &[T],
    (rrs, rcs): (usize, usize),
    accumulate: bool,
    one: T,
) {
    assert_eq!(dst.len(), m * n, "gemm destination size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(T::default());
        }
        return;
    }
    // The kernels read through raw pointers: check the furthest element of each operand.
    assert!((m - 1) * lrs + (k - 1) * lcs < lhs.len(), "gemm lhs bounds");
    assert!((k - 1) * rrs + (n - 1) * rcs < rhs.len(), "gemm rhs bounds");
    // SAFETY: the bounds of all three operands are checked above, `dst` is exclusively
    // borrowed and does not alias the shared `lhs`/`rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lcs as isize,
            lrs as isize,
            rhs.as_ptr(),
            rcs as isize,
            rrs as isize,
            one,
            one,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `out[m×n] = a[m×k] · b[n×k]ᵀ`, all row-major, single-threaded.
pub(crate) fn matmul_nt_f32(a: &[f32], b: &[f32], k: usize, out: &mut [f32]) {
    let (m, n) = (a.len() / k.max(1), b.len() / k.max(1));
    gemm_into(m, n, k, out, a, (k, 1), b, (1, k), false, 1.0f32);
}

/// `out[m×n] = a[m×k] · b[n×k]ᵀ` in `f64`, single-threaded.
pub(crate) fn matmul_nt_f64(a: &[f64], b: &[f64], k: usize, out: &mut [f64]) {
    let (m, n) = (a.len() / k.max(1), b.len() / k.max(1));
    gemm_into(m, n, k, out, a, (k, 1), b, (1, k), false, 1.0f64);
}

/// `out[m×n] += a[k×m]ᵀ · b[k×n]` in `f64`, single-threaded (a gradient `Gᵀ X`).
pub(crate) fn matmul_tn_acc_f64(a: &[f64], m: usize, b: &[f64], n: usize, out: &mut [f64]) {
    let k = a.len() / m.max(1);
    gemm_into(m, n, k, out, a, (1, m), b, (n, 1), true, 1.0f64);
}

/// Rows per block so that a block of `cols` values of `elem` bytes stays near `budget` bytes.
pub(crate) fn rows_per_block(cols: usize, elem: usize, budget: usize, max_rows: usize) -> usize {
    (budget / (cols.max(1) * elem)).clamp(1, max_rows.max(1))
}

/// `out = a · bᵀ` (row-major `f32`), parallel over blocks of `a`'s rows.
pub(crate) fn par_matmul_nt_f32(a: &[f32], b: &[f32], k: usize, out: &mut [f32]) {
    let n = b.len() / k;
    if n == 0 {
        return;
    }
    let rows = rows_per_block(n, 4, 8 << 20, 256).max(16);
    out.par_chunks_mut(rows * n)
        .zip(a.par_chunks(rows * k))
        .for_each(|(o, a)| matmul_nt_f32(a, b, k, o));
}

/// Dot product with eight independent partial sums (combined in a fixed order), so the
/// compiler can keep them in SIMD lanes; a single running sum serialises on the add latency.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Distance between embeddings, as scikit-learn's `pairwise_distances` computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distance {
    /// `‖x − y‖₂`, through `‖x‖² + ‖y‖² − 2 x·y` clamped at 0 (scikit-learn's
    /// `euclidean_distances`); a point's distance to itself is exactly 0.
    Euclidean,
    /// `1 − x·y / (‖x‖ ‖y‖)` clipped to [0, 2] (scikit-learn's `cosine_distances`); an
    /// all-zero row has distance 1 to everything, as scikit-learn's `normalize` leaves it 0.
    Cosine,
}

/// Data prepared for blocked pairwise distances in `f64`.
pub(crate) struct Pairwise {
    x: Vec<f64>,
    sq_norms: Vec<f64>,
    n: usize,
    dim: usize,
    metric: Distance,
}

impl Pairwise {
    pub(crate) fn new(x: Embeddings<'_>, metric: Distance) -> Pairwise {
        let v: Vec<f64> = x.data().iter().map(|&a| a as f64).collect();
        Pairwise::from_f64(v, x.dim(), metric)
    }

    /// As [`Pairwise::new`] from rows already in `f64` (centred data, for instance, which
    /// would lose precision if rounded back to `f32` first). `dim` must be positive and divide
    /// `v.len()`.
    pub(crate) fn from_f64(mut v: Vec<f64>, dim: usize, metric: Distance) -> Pairwise {
        let n = v.len() / dim;
        if metric == Distance::Cosine {
            for row in v.chunks_exact_mut(dim) {
                let norm = row.iter().map(|a| a * a).sum::<f64>().sqrt();
                if norm > 0.0 {
                    row.iter_mut().for_each(|a| *a /= norm);
                }
            }
        }
        let sq_norms = v
            .chunks_exact(dim)
            .map(|r| r.iter().map(|a| a * a).sum())
            .collect();
        Pairwise {
            x: v,
            sq_norms,
            n,
            dim,
            metric,
        }
    }

    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Distances from rows `start..start + out.len() / n` to every row, row-major.
    pub(crate) fn block(&self, start: usize, out: &mut [f64]) {
        let rows = out.len() / self.n;
        let a = &self.x[start * self.dim..(start + rows) * self.dim];
        matmul_nt_f64(a, &self.x, self.dim, out);
        for (r, o) in out.chunks_exact_mut(self.n).enumerate() {
            let i = start + r;
            match self.metric {
                Distance::Euclidean => {
                    let xx = self.sq_norms[i];
                    for (d, &yy) in o.iter_mut().zip(&self.sq_norms) {
                        *d = (-2.0 * *d + xx + yy).max(0.0).sqrt();
                    }
                    o[i] = 0.0;
                }
                Distance::Cosine => {
                    for d in o.iter_mut() {
                        *d = (1.0 - *d).clamp(0.0, 2.0);
                    }
                }
            }
        }
    }

    /// Dot products of the prepared rows `start..start + rows` with rows `col_start..`
    /// (`out` is `rows × (n − col_start)`, row-major): the cosines when the metric is
    /// [`Distance::Cosine`], whose rows are normalised. For passes that need only the upper
    /// triangle of the similarity matrix.
    pub(crate) fn dots(&self, start: usize, rows: usize, col_start: usize, out: &mut [f64]) {
        let a = &self.x[start * self.dim..(start + rows) * self.dim];
        matmul_nt_f64(a, &self.x[col_start * self.dim..], self.dim, out);
    }

    /// Rows per distance block for a budget of about 32 MiB per block.
    pub(crate) fn block_rows(&self) -> usize {
        rows_per_block(self.n, 8, 32 << 20, 1024)
    }
}

/// Checks that two embedding sets have the same dimension.
pub(crate) fn same_dim(
    a: &'static str,
    x: Embeddings<'_>,
    b: &'static str,
    y: Embeddings<'_>,
) -> Result<(), AnalysisError> {
    if x.dim() != y.dim() {
        return Err(AnalysisError::DimMismatch {
            a,
            dim_a: x.dim(),
            b,
            dim_b: y.dim(),
        });
    }
    Ok(())
}

/// Errors when an input has no rows.
pub(crate) fn non_empty(what: &'static str, x: Embeddings<'_>) -> Result<(), AnalysisError> {
    if x.rows() == 0 {
        return Err(AnalysisError::Empty { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_nt(a: &[f64], b: &[f64], k: usize) -> Vec<f64> {
        let mut out = vec![];
        for ra in a.chunks(k) {
            for rb in b.chunks(k) {
                out.push(ra.iter().zip(rb).map(|(x, y)| x * y).sum());
            }
        }
        out
    }

    #[test]
    fn products_match_naive() {
        let (m, n, k) = (37, 29, 13);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 % 11) as f64) - 5.0).collect();
        let b: Vec<f64> = (0..n * k).map(|i| ((i * 5 % 13) as f64) - 6.0).collect();
        let want = naive_nt(&a, &b, k);
        let mut got = vec![0.0; m * n];
        matmul_nt_f64(&a, &b, k, &mut got);
        assert_eq!(got, want);
        let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        let mut got32 = vec![0.0f32; m * n];
        par_matmul_nt_f32(&a32, &b32, k, &mut got32);
        assert!(got32.iter().zip(&want).all(|(&g, &w)| g as f64 == w));
        // aᵀ · c accumulated twice
        let c: Vec<f64> = (0..m * n).map(|i| (i % 3) as f64).collect();
        let mut tn = vec![0.0; k * n];
        matmul_tn_acc_f64(&a, k, &c, n, &mut tn);
        matmul_tn_acc_f64(&a, k, &c, n, &mut tn);
        for p in 0..k {
            for j in 0..n {
                let v: f64 = (0..m).map(|i| a[i * k + p] * c[i * n + j]).sum();
                assert_eq!(tn[p * n + j], 2.0 * v);
            }
        }
    }

    #[test]
    fn pairwise_distances() {
        let x = [0.0f32, 0.0, 3.0, 4.0, 0.0, 2.0];
        let e = Embeddings::new(&x, 2).unwrap();
        let p = Pairwise::new(e, Distance::Euclidean);
        let mut d = vec![0.0; 9];
        p.block(0, &mut d);
        assert_eq!(
            d,
            vec![
                0.0,
                5.0,
                2.0,
                5.0,
                0.0,
                13f64.sqrt(),
                2.0,
                13f64.sqrt(),
                0.0
            ]
        );
        let p = Pairwise::new(e, Distance::Cosine);
        p.block(1, &mut d[..3]);
        assert_eq!(&d[..2], &[1.0, 0.0]);
        assert!((d[2] - 0.2).abs() < 1e-15);
    }
}
