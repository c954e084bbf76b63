//! Principal component analysis, equal to scikit-learn's `PCA` (full SVD solver semantics).
//!
//! # Algorithm
//!
//! 1. The mean of each feature, in `f64`, summed over fixed blocks of rows in parallel and
//!    combined in block order.
//! 2. The scatter matrix `Σ (x − μ)(x − μ)ᵀ` (`dim × dim`, `f64`): each block of rows is
//!    centred in `f64` and multiplied into one of a fixed number of partial sums with `gemm`;
//!    the partial sums are added in order. Memory is O(dim²) whatever the number of rows,
//!    so millions of rows work; the data is read twice.
//! 3. The covariance `scatter / (n − 1)` is diagonalised by a Householder tridiagonalisation
//!    followed by the implicit QL algorithm with Wilkinson-style shifts (EISPACK's `tred2` and
//!    `tql2`), in `f64`. Eigenvalues below zero (rounding) are clipped to 0, as scikit-learn's
//!    `covariance_eigh` solver does.
//! 4. Components are the eigenvectors by decreasing eigenvalue, with scikit-learn 1.9.1's
//!    sign rule for PCA (`svd_flip(u_based_decision=False)`): the entry of largest magnitude
//!    of each component (the first one on ties) is positive.
//!
//! Then, with λ the covariance eigenvalues: `explained_variance = λ` (ddof = 1),
//! `singular_values = sqrt(λ (n − 1))`, `explained_variance_ratio = λ / Σ λ` over the whole
//! spectrum, exactly the quantities scikit-learn derives from the SVD of the centred data.
//!
//! # Precision: covariance versus SVD
//!
//! scikit-learn's `svd_solver="full"` takes the SVD of the centred `n × dim` data; this
//! module diagonalises its covariance, which squares the condition number. Eigenvalues carry
//! an absolute error of order `ε · λ₁` (ε = 2⁻⁵²) instead of `ε · σ₁` on the singular values,
//! so a direction whose variance is below about `1e-13 · λ₁` is not resolved, and a
//! component is determined to about `ε · λ₁ / gap` where `gap` separates its eigenvalue from
//! the others. For CLIP embeddings (float32 inputs, variance ratios far above that) both
//! solvers agree to ~1e-12; in exchange memory stays O(dim²) rather than O(n · dim) and the
//! work is one matrix product. Components of (numerically) equal or zero eigenvalues are not
//! unique in either solver: they span the same subspace but need not match scikit-learn's.
//!
//! # Reconstruction error
//!
//! Projecting the fitted data on the first k components and back
//! (`inverse_transform(transform(x))` with `n_components = k`) leaves a mean squared error of
//! `(n − 1)/n · Σ_{j ≥ k} λ_j`, so [`Pca::reconstruction_error`] reads it off the spectrum.
//!
//! # Limits
//!
//! The eigensolver is O(dim³) and single-threaded: about 0.5 s at dim = 512 and 3.5 s at
//! 1024 on this project's 2-core machine (NumPy's `eigh` took 0.8 s and 6.6 s there at the
//! same time). The scatter matrix costs ~n·dim² flops on all cores and holds up to
//! [`PARTIAL_SUMS`]` × dim²` doubles of partial sums. 100 000 × 512 rows take 6–8 s in all on
//! that (busy) machine, where scikit-learn's `covariance_eigh` solver took 6.6 s on the same
//! data in `f64` and its full SVD solver 88 s.

use rayon::prelude::*;

use super::linalg::{dot, matmul_nt_f64, matmul_tn_acc_f64, non_empty};
use super::{check_finite, AnalysisError, Embeddings};

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Per-feature mean of the fitted data.
    pub mean: Vec<f64>,
    /// `n_components × dim`, row-major: component `j` is row `j`, unit norm, by decreasing
    /// explained variance.
    pub components: Vec<f64>,
    /// Variance along each component (ddof = 1).
    pub explained_variance: Vec<f64>,
    /// `explained_variance / total_variance`.
    pub explained_variance_ratio: Vec<f64>,
    /// Singular values of the centred data matrix, `sqrt(explained_variance · (n − 1))`.
    pub singular_values: Vec<f64>,
    /// Rows of the fitted data.
    pub n_samples: usize,
    /// Features per row.
    pub dim: usize,
    /// Sum of the variances of all features (ddof = 1), the sum of the whole spectrum.
    pub total_variance: f64,
    /// Variance along the directions beyond `n_components` (sum of the discarded
    /// eigenvalues), kept so the reconstruction error is a tail sum without cancellation.
    discarded_variance: f64,
}

/// Rows per block when summing and centring: 512 rows of 512 `f64` is 2 MiB.
const BLOCK_ROWS: usize = 512;

/// Columns per panel of the scatter matrix's blocked product.
const PANEL: usize = 128;

/// Number of partial scatter matrices summed in parallel; fixed, so the summation order and
/// therefore every bit of the result do not depend on the thread count.
pub const PARTIAL_SUMS: usize = 8;

/// Variance below this fraction of the largest counts as numerically zero where a rank is
/// decided (class subspaces): well above the ~1e-14 relative rounding of a scatter matrix
/// assembled in `f64`, well below any real variance ratio of float32 embeddings.
pub(crate) const RANK_RTOL: f64 = 1e-10;

/// Fits a PCA with `n_components` components (`None`: `min(n, dim)`, scikit-learn's default).
///
/// Needs at least two rows (the variance has n − 1 degrees of freedom) that are not all
/// equal (the explained-variance ratio divides by the total variance).
pub fn pca(x: Embeddings<'_>, n_components: Option<usize>) -> Result<Pca, AnalysisError> {
    non_empty("samples", x)?;
    check_finite("samples", x)?;
    let (n, dim) = (x.rows(), x.dim());
    if n < 2 {
        return Err(AnalysisError::Undefined(
            "PCA needs at least 2 samples: the variance of a single sample is undefined".into(),
        ));
    }
    let max_components = n.min(dim);
    let n_components = n_components.unwrap_or(max_components);
    if n_components == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "n_components",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if n_components > max_components {
        return Err(AnalysisError::TooLarge {
            what: "n_components",
            k: n_components,
            n: max_components,
            of: "min(samples, dimensions)",
        });
    }

    let mean = column_means(x);
    let mut cov = scatter_matrix(x, &mean);
    let ddof = (n - 1) as f64;
    cov.iter_mut().for_each(|c| *c /= ddof);
    let (mut values, mut vectors) = symmetric_eigen(cov, dim)?;
    values.iter_mut().for_each(|v| *v = v.max(0.0));
    // The centred data has rank ≤ min(n − 1, dim): only min(n, dim) singular values exist,
    // the rest of the covariance spectrum is zero up to rounding.
    values.truncate(max_components);
    vectors.truncate(max_components * dim);
    for row in vectors.chunks_exact_mut(dim) {
        flip_largest_positive(row);
    }
    // Summed from the smallest up, so the small tail terms are not lost.
    let total_variance: f64 = values.iter().rev().sum();
    if total_variance <= 0.0 {
        return Err(AnalysisError::Undefined(
            "PCA: all samples are identical, there is no variance to explain".into(),
        ));
    }
    let discarded_variance: f64 = values[n_components..].iter().rev().sum();
    values.truncate(n_components);
    vectors.truncate(n_components * dim);
    Ok(Pca {
        mean,
        components: vectors,
        explained_variance_ratio: values.iter().map(|v| v / total_variance).collect(),
        singular_values: values.iter().map(|v| (v * ddof).sqrt()).collect(),
        explained_variance: values,
        n_samples: n,
        dim,
        total_variance,
        discarded_variance,
    })
}

impl Pca {
    /// Number of fitted components.
    pub fn n_components(&self) -> usize {
        self.explained_variance.len()
    }

    fn check_k(&self, what: &'static str, k: usize, min: usize) -> Result<(), AnalysisError> {
        if k < min {
            return Err(AnalysisError::InvalidParameter {
                what,
                value: k.to_string(),
                reason: "must be at least 1",
            });
        }
        if k > self.n_components() {
            return Err(AnalysisError::TooLarge {
                what,
                k,
                n: self.n_components(),
                of: "fitted components",
            });
        }
        Ok(())
    }

    /// Scores `(x − mean) · componentsᵀ` on the first `k` components: `rows × k`, row-major.
    ///
    /// Centring happens before the product, in `f64` (scikit-learn subtracts `mean ·
    /// componentsᵀ` afterwards; the two differ only by rounding).
    pub fn transform(&self, x: Embeddings<'_>, k: usize) -> Result<Vec<f64>, AnalysisError> {
        self.scores(x, k, &self.mean)
    }

    /// Coordinates of `x − about` along the first `k` components.
    fn scores(
        &self,
        x: Embeddings<'_>,
        k: usize,
        about: &[f64],
    ) -> Result<Vec<f64>, AnalysisError> {
        self.check_k("k", k, 1)?;
        if x.dim() != self.dim {
            return Err(AnalysisError::DimMismatch {
                a: "PCA",
                dim_a: self.dim,
                b: "samples",
                dim_b: x.dim(),
            });
        }
        check_finite("samples", x)?;
        let dim = self.dim;
        let comps = &self.components[..k * dim];
        let mut out = vec![0.0f64; x.rows() * k];
        out.par_chunks_mut(BLOCK_ROWS * k)
            .enumerate()
            .for_each(|(b, o)| {
                let start = b * BLOCK_ROWS;
                let rows = o.len() / k;
                let block = centred_block(x, about, start, start + rows);
                matmul_nt_f64(&block, comps, dim, o);
            });
        Ok(out)
    }

    /// [`Pca::transform`] to `k` dimensions, then each row L2-normalised, as `f32`: the
    /// input of retrieval in a dimension sweep, where cosine similarity needs unit rows.
    ///
    /// The fitted mean is subtracted first (it is the PCA transform), so the cosine is taken
    /// around the data's centre. A row whose k scores are all zero (a sample at the mean)
    /// has no direction and stays all zeros; its cosine with everything is 0.
    pub fn project_normalized(
        &self,
        x: Embeddings<'_>,
        k: usize,
    ) -> Result<Vec<f32>, AnalysisError> {
        Ok(normalize(self.transform(x, k)?, k))
    }

    /// `x` (not centred) along the first `k` components, then each row L2-normalised, as
    /// `f32`. With every component this is a rotation of the span, so cosines are those of
    /// the original embeddings (for `x` in the span): a dimension sweep on it measures what
    /// truncation alone costs, where [`Pca::project_normalized`] also moves the origin.
    pub fn rotate_normalized(
        &self,
        x: Embeddings<'_>,
        k: usize,
    ) -> Result<Vec<f32>, AnalysisError> {
        let origin = vec![0.0; self.dim];
        Ok(normalize(self.scores(x, k, &origin)?, k))
    }

    /// Mean over the fitted samples of `‖x − x̂_k‖²`, `x̂_k` the reconstruction from the
    /// first `k` components, for each `k` in `ks` (`0 ≤ k ≤ n_components`; `k = 0` gives the
    /// mean squared distance to the mean).
    pub fn reconstruction_error(&self, ks: &[usize]) -> Result<Vec<f64>, AnalysisError> {
        let n = self.n_samples as f64;
        let scale = (n - 1.0) / n;
        ks.iter()
            .map(|&k| {
                self.check_k("k", k, 0)?;
                let tail: f64 = self.explained_variance[k..].iter().rev().sum::<f64>()
                    + self.discarded_variance;
                Ok(tail * scale)
            })
            .collect()
    }
}

/// Rows of `k` scores L2-normalised as `f32`; an all-zero row stays zero.
fn normalize(scores: Vec<f64>, k: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(scores.len());
    for row in scores.chunks_exact(k) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            out.extend(row.iter().map(|v| (v / norm) as f32));
        } else {
            out.extend(row.iter().map(|_| 0.0f32));
        }
    }
    out
}

/// Makes the entry of largest magnitude positive (the first on ties): scikit-learn's
/// `svd_flip` on the rows of `Vᵀ`.
pub(crate) fn flip_largest_positive(v: &mut [f64]) {
    let mut best = 0;
    for (i, a) in v.iter().enumerate() {
        if a.abs() > v[best].abs() {
            best = i;
        }
    }
    if !v.is_empty() && v[best] < 0.0 {
        v.iter_mut().for_each(|a| *a = -*a);
    }
}

/// Rows `start..end` of `x` minus `mean`, in `f64`, row-major.
fn centred_block(x: Embeddings<'_>, mean: &[f64], start: usize, end: usize) -> Vec<f64> {
    let mut block = Vec::with_capacity((end - start) * x.dim());
    for row in x.slice_rows(start, end).chunks_exact(x.dim()) {
        block.extend(row.iter().zip(mean).map(|(&a, m)| a as f64 - m));
    }
    block
}

/// Per-feature means in `f64`: block sums in parallel, combined in block order.
pub(crate) fn column_means(x: Embeddings<'_>) -> Vec<f64> {
    let dim = x.dim();
    let partial: Vec<Vec<f64>> = x
        .data()
        .par_chunks(BLOCK_ROWS * dim)
        .map(|block| {
            let mut s = vec![0.0f64; dim];
            for row in block.chunks_exact(dim) {
                for (acc, &a) in s.iter_mut().zip(row) {
                    *acc += a as f64;
                }
            }
            s
        })
        .collect();
    let mut mean = vec![0.0f64; dim];
    for s in &partial {
        for (m, v) in mean.iter_mut().zip(s) {
            *m += v;
        }
    }
    let n = x.rows() as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    mean
}

/// `Σ (x − μ)(x − μ)ᵀ`, `dim × dim` row-major, over all rows of `x`.
///
/// The blocks of rows are split into [`PARTIAL_SUMS`] contiguous groups (a partition that
/// depends only on the number of rows); each group's sum is a chain of `gemm` updates and
/// the group sums are added in order. Only the panels on and above the diagonal are
/// multiplied (columns in panels of [`PANEL`]): the product is symmetric, so this saves up
/// to half the work.
pub(crate) fn scatter_matrix(x: Embeddings<'_>, mean: &[f64]) -> Vec<f64> {
    let (n, dim) = (x.rows(), x.dim());
    let panels: Vec<(usize, usize)> = (0..dim)
        .step_by(PANEL)
        .map(|s| (s, (s + PANEL).min(dim)))
        .collect();
    let pairs: Vec<(usize, usize)> = (0..panels.len())
        .flat_map(|i| (i..panels.len()).map(move |j| (i, j)))
        .collect();
    let width = |p: usize| panels[p].1 - panels[p].0;
    let blocks = n.div_ceil(BLOCK_ROWS);
    let groups = PARTIAL_SUMS.min(blocks).max(1);
    let partial: Vec<Vec<Vec<f64>>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut acc: Vec<Vec<f64>> = pairs
                .iter()
                .map(|&(i, j)| vec![0.0f64; width(i) * width(j)])
                .collect();
            for b in (g * blocks / groups)..((g + 1) * blocks / groups) {
                let start = b * BLOCK_ROWS;
                let end = (start + BLOCK_ROWS).min(n);
                let block = centred_block(x, mean, start, end);
                // Each panel contiguous (rows × width), as the product wants it.
                let cut: Vec<Vec<f64>> = if panels.len() == 1 {
                    vec![block]
                } else {
                    panels
                        .iter()
                        .map(|&(s, e)| {
                            block
                                .chunks_exact(dim)
                                .flat_map(|r| r[s..e].iter().copied())
                                .collect()
                        })
                        .collect()
                };
                for (a, &(i, j)) in acc.iter_mut().zip(&pairs) {
                    matmul_tn_acc_f64(&cut[i], width(i), &cut[j], width(j), a);
                }
            }
            acc
        })
        .collect();
    let mut iter = partial.into_iter();
    let mut sum = iter.next().unwrap_or_default();
    for p in iter {
        for (s, v) in sum.iter_mut().zip(&p) {
            s.iter_mut().zip(v).for_each(|(t, v)| *t += v);
        }
    }
    let mut total = vec![0.0f64; dim * dim];
    for (a, &(i, j)) in sum.iter().zip(&pairs) {
        let (ri, cj) = (panels[i].0, panels[j].0);
        let w = width(j);
        for (r, row) in a.chunks_exact(w).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                total[(ri + r) * dim + cj + c] = v;
                if i != j {
                    total[(cj + c) * dim + ri + r] = v;
                }
            }
        }
    }
    // The diagonal panels were computed whole, and gemm may round their two triangles
    // differently; the eigensolver assumes exact symmetry.
    for &(s, e) in &panels {
        for r in s..e {
            for c in s..r {
                let v = 0.5 * (total[r * dim + c] + total[c * dim + r]);
                total[r * dim + c] = v;
                total[c * dim + r] = v;
            }
        }
    }
    total
}

/// Eigen-decomposition of a symmetric `n × n` matrix (row-major; consumed).
///
/// Returns the eigenvalues in decreasing order and the eigenvectors as the rows of an
/// `n × n` row-major matrix, in the same order (unit norm, orthogonal, sign unnormalised).
/// Householder tridiagonalisation and implicit QL (EISPACK `tred2`/`tql2`, as in JAMA),
/// written on the transposed eigenvector matrix so every inner loop runs over contiguous
/// memory. Backward stable: eigenvalues to O(ε‖A‖).
#[allow(clippy::needless_range_loop)] // index loops mirror the published algorithm
pub(crate) fn symmetric_eigen(
    a: Vec<f64>,
    n: usize,
) -> Result<(Vec<f64>, Vec<f64>), AnalysisError> {
    debug_assert_eq!(a.len(), n * n);
    if n == 0 {
        return Ok((vec![], vec![]));
    }
    // `w[j*n + k]` is V[k][j] of the published algorithm: row j of `w` becomes eigenvector j.
    let mut w = a;
    let mut d = vec![0.0f64; n];
    let mut e = vec![0.0f64; n];

    // tred2: Householder reduction to tridiagonal form.
    for j in 0..n {
        d[j] = w[j * n + n - 1];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = w[j * n + i - 1];
                w[j * n + i] = 0.0;
                w[i * n + j] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for j in 0..i {
                e[j] = 0.0;
            }
            for j in 0..i {
                f = d[j];
                w[i * n + j] = f;
                let row = &w[j * n + j + 1..j * n + i];
                g = e[j] + w[j * n + j] * f + dot(row, &d[j + 1..i]);
                for (ek, r) in e[j + 1..i].iter_mut().zip(row) {
                    *ek += r * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                let row = &mut w[j * n..j * n + i];
                for k in j..i {
                    row[k] -= f * e[k] + g * d[k];
                }
                d[j] = w[j * n + i - 1];
                w[j * n + i] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        w[i * n + n - 1] = w[i * n + i];
        w[i * n + i] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            let (head, tail) = w.split_at_mut((i + 1) * n);
            let pivot = &tail[..i + 1];
            for k in 0..=i {
                d[k] = pivot[k] / h;
            }
            for j in 0..=i {
                let row = &mut head[j * n..j * n + i + 1];
                let g = dot(pivot, row);
                for (r, dk) in row.iter_mut().zip(&d[..=i]) {
                    *r -= g * dk;
                }
            }
        }
        for k in 0..=i {
            w[(i + 1) * n + k] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = w[j * n + n - 1];
        w[j * n + n - 1] = 0.0;
    }
    w[(n - 1) * n + n - 1] = 1.0;
    e[0] = 0.0;

    // tql2: implicit QL on the tridiagonal matrix.
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0f64;
    let mut tst1 = 0.0f64;
    let eps = f64::EPSILON;
    // QL needs one to two iterations per eigenvalue in practice; far more means the input
    // was not a finite symmetric matrix.
    let max_iterations = 64 * n + 64;
    let mut iterations = 0;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        // m == n cannot happen: e[n-1] is 0.
        let m = m.min(n - 1);
        if m > l {
            loop {
                iterations += 1;
                if iterations > max_iterations {
                    return Err(AnalysisError::Undefined(
                        "the symmetric eigensolver did not converge".into(),
                    ));
                }
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    // Rotate eigenvectors i and i + 1 (two contiguous rows).
                    let (lo, hi) = w.split_at_mut((i + 1) * n);
                    let vi = &mut lo[i * n..];
                    let vi1 = &mut hi[..n];
                    for (a, b) in vi.iter_mut().zip(vi1.iter_mut()) {
                        let t = *b;
                        *b = s * *a + c * t;
                        *a = c * *a - s * t;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    if !d.iter().all(|v| v.is_finite()) {
        return Err(AnalysisError::Undefined(
            "the symmetric eigensolver produced non-finite eigenvalues".into(),
        ));
    }

    // Decreasing eigenvalues; equal ones keep the solver's order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[b].total_cmp(&d[a]));
    let values = order.iter().map(|&i| d[i]).collect();
    let mut vectors = Vec::with_capacity(n * n);
    for &i in &order {
        vectors.extend_from_slice(&w[i * n..(i + 1) * n]);
    }
    Ok((values, vectors))
}

/// One-sided (Hestenes) Jacobi SVD of an `m × c` matrix stored column-major (`cols`, each
/// column contiguous), in place.
///
/// On return the columns are mutually orthogonal, `A V`; their norms are the singular values,
/// returned in column order (unsorted). Cyclic sweeps of plane rotations until every pair of
/// columns is orthogonal to working precision; singular values come out with an absolute
/// error of O(ε‖A‖) (and small ones with high relative accuracy when the columns are well
/// scaled), as LAPACK's.
pub(crate) fn jacobi_orthogonalize(
    cols: &mut [f64],
    m: usize,
    c: usize,
) -> Result<Vec<f64>, AnalysisError> {
    debug_assert_eq!(cols.len(), m * c);
    if m == 0 {
        return Ok(vec![0.0; c]);
    }
    // Orthogonality to within the rounding of an m-term dot product: a strict ε could
    // rotate forever on rounding noise; the residual cosines only perturb the singular
    // values to second order.
    let tol = f64::EPSILON * m as f64;
    let mut norms: Vec<f64> = cols
        .chunks_exact(m)
        .map(|v| v.iter().map(|a| a * a).sum())
        .collect();
    const MAX_SWEEPS: usize = 80;
    let mut converged = c < 2;
    for _ in 0..MAX_SWEEPS {
        if converged {
            break;
        }
        let mut rotated = false;
        for i in 0..c - 1 {
            for j in (i + 1)..c {
                let (lo, hi) = cols.split_at_mut(j * m);
                let a = &mut lo[i * m..(i + 1) * m];
                let b = &mut hi[..m];
                let alpha = norms[i];
                let beta = norms[j];
                if alpha == 0.0 || beta == 0.0 {
                    continue;
                }
                let gamma = dot(a, b);
                if gamma.abs() <= tol * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + zeta.hypot(1.0));
                let cs = 1.0 / t.hypot(1.0);
                let sn = cs * t;
                for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                    let (u, v) = (*x, *y);
                    *x = cs * u - sn * v;
                    *y = sn * u + cs * v;
                }
                // Recomputed rather than updated, so rounding does not drift across sweeps.
                norms[i] = dot(a, a);
                norms[j] = dot(b, b);
            }
        }
        converged = !rotated;
    }
    if !converged {
        return Err(AnalysisError::Undefined(
            "the Jacobi SVD did not converge".into(),
        ));
    }
    Ok(norms.iter().map(|v| v.sqrt()).collect())
}

/// Singular values of an `m × c` column-major matrix, in decreasing order.
pub(crate) fn singular_values(
    mut cols: Vec<f64>,
    m: usize,
    c: usize,
) -> Result<Vec<f64>, AnalysisError> {
    let mut s = jacobi_orthogonalize(&mut cols, m, c)?;
    s.sort_by(|a, b| b.total_cmp(a));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_rank_rotation_keeps_cosines_and_truncation_changes_them() {
        let mut rng = super::super::rng::Rng::new(9, 0);
        let (n, d) = (40, 6);
        let x: Vec<f32> = (0..n * d).map(|_| rng.uniform() as f32 + 0.3).collect();
        let e = Embeddings::new(&x, d).unwrap();
        let fit = pca(e, None).unwrap();
        let cos = |v: &[f32], k: usize, i: usize, j: usize| -> f64 {
            let (a, b) = (&v[i * k..(i + 1) * k], &v[j * k..(j + 1) * k]);
            let dot: f64 = a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum();
            let na: f64 = a.iter().map(|p| (p * p) as f64).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|p| (p * p) as f64).sum::<f64>().sqrt();
            dot / (na * nb)
        };
        let full = fit.rotate_normalized(e, d).unwrap();
        let two = fit.rotate_normalized(e, 2).unwrap();
        let centred = fit.project_normalized(e, d).unwrap();
        let (mut worst, mut moved, mut centring) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..n {
            for j in 0..n {
                let original = cos(&x, d, i, j);
                worst = worst.max((cos(&full, d, i, j) - original).abs());
                moved = moved.max((cos(&two, 2, i, j) - original).abs());
                centring = centring.max((cos(&centred, d, i, j) - original).abs());
            }
        }
        assert!(
            worst < 1e-5,
            "full-rank rotation changed a cosine by {worst}"
        );
        assert!(moved > 1e-2, "two of six dimensions should change cosines");
        assert!(centring > 1e-2, "centring moves the origin of the cosines");
    }

    fn sym(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = super::super::rng::Rng::new(seed, 0);
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = rng.uniform() - 0.5;
                a[i * n + j] = v;
                a[j * n + i] = v;
            }
        }
        a
    }

    #[test]
    fn eigen_reconstructs_and_is_orthonormal() {
        for &n in &[1usize, 2, 3, 7, 40] {
            let a = sym(n, n as u64);
            let (vals, vecs) = symmetric_eigen(a.clone(), n).unwrap();
            assert!(vals.windows(2).all(|w| w[0] >= w[1]));
            for i in 0..n {
                for j in 0..n {
                    let dot: f64 = (0..n).map(|k| vecs[i * n + k] * vecs[j * n + k]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-13, "n={n} {i} {j} {dot}");
                    let rec: f64 = (0..n)
                        .map(|k| vals[k] * vecs[k * n + i] * vecs[k * n + j])
                        .sum();
                    assert!((rec - a[i * n + j]).abs() < 1e-13, "n={n}");
                }
            }
        }
    }

    #[test]
    fn eigen_of_clustered_repeated_and_graded_spectra() {
        let n = 120;
        let mut rng = super::super::rng::Rng::new(9, 2);
        // A random orthogonal Q by Gram–Schmidt, then A = Q diag(λ) Qᵀ.
        let mut q: Vec<f64> = (0..n * n).map(|_| rng.uniform() - 0.5).collect();
        for i in 0..n {
            for j in 0..i {
                let d = dot(&q[i * n..(i + 1) * n], &q[j * n..(j + 1) * n]);
                for k in 0..n {
                    q[i * n + k] -= d * q[j * n + k];
                }
            }
            let norm = dot(&q[i * n..(i + 1) * n], &q[i * n..(i + 1) * n]).sqrt();
            q[i * n..(i + 1) * n].iter_mut().for_each(|v| *v /= norm);
        }
        let spectra: [Box<dyn Fn(usize) -> f64>; 3] = [
            Box::new(|i| 1.0 + 1e-13 * i as f64),       // one tight cluster
            Box::new(|i| [5.0, 5.0, 0.0, -2.0][i % 4]), // repeated, zero, negative
            Box::new(|i| 10f64.powi(-(i as i32) / 8)),  // graded over 15 decades
        ];
        // Tolerances of 1e-12·‖A‖: building A itself rounds at ~n·ε·‖A‖.
        for lambda in &spectra {
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] = (0..n)
                        .map(|k| q[k * n + i] * lambda(k) * q[k * n + j])
                        .sum();
                }
            }
            let norm_a = (0..n).map(|k| lambda(k).abs()).fold(0.0, f64::max);
            let (vals, vecs) = symmetric_eigen(a.clone(), n).unwrap();
            let mut want: Vec<f64> = (0..n).map(lambda).collect();
            want.sort_by(|x, y| y.total_cmp(x));
            for (g, w) in vals.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12 * norm_a, "{g} vs {w}");
            }
            for j in 0..n {
                let v = &vecs[j * n..(j + 1) * n];
                for i in 0..n {
                    let av: f64 = dot(&a[i * n..(i + 1) * n], v);
                    assert!((av - vals[j] * v[i]).abs() < 1e-12 * norm_a);
                }
                for k in 0..j {
                    assert!(dot(v, &vecs[k * n..(k + 1) * n]).abs() < 1e-13);
                }
            }
        }
    }

    #[test]
    fn eigen_of_diagonal_and_zero() {
        let (v, _) = symmetric_eigen(vec![1.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 2.0], 3).unwrap();
        assert_eq!(v, vec![3.0, 2.0, 1.0]);
        let (v, vecs) = symmetric_eigen(vec![0.0; 4], 2).unwrap();
        assert_eq!(v, vec![0.0, 0.0]);
        assert_eq!(vecs.iter().map(|a| a.abs()).sum::<f64>(), 2.0);
    }

    #[test]
    fn jacobi_singular_values() {
        // [[3, 0], [4, 5]] has singular values sqrt(45) and sqrt(5).
        let s = singular_values(vec![3.0, 4.0, 0.0, 5.0], 2, 2).unwrap();
        assert!((s[0] - 45f64.sqrt()).abs() < 1e-14 && (s[1] - 5f64.sqrt()).abs() < 1e-14);
        let s = singular_values(vec![1.0, 1.0, 1.0, 1.0], 2, 2).unwrap();
        assert!((s[0] - 2.0).abs() < 1e-15 && s[1].abs() < 1e-15);
    }

    #[test]
    fn pca_input_errors() {
        let one = [1.0f32, 2.0];
        assert!(pca(Embeddings::new(&one, 2).unwrap(), None).is_err());
        let same = [1.0f32, 2.0, 1.0, 2.0];
        assert!(matches!(
            pca(Embeddings::new(&same, 2).unwrap(), None),
            Err(AnalysisError::Undefined(_))
        ));
        let x = [1.0f32, 2.0, 3.0, 5.0, 0.0, 1.0];
        let e = Embeddings::new(&x, 2).unwrap();
        assert!(matches!(
            pca(e, Some(3)),
            Err(AnalysisError::TooLarge { .. })
        ));
        assert!(pca(e, Some(0)).is_err());
        let p = pca(e, Some(1)).unwrap();
        assert!(p.transform(e, 2).is_err());
        assert!(p.transform(Embeddings::new(&x, 3).unwrap(), 1).is_err());
        assert!(p.reconstruction_error(&[2]).is_err());
        let nan = [1.0f32, f32::NAN, 0.0, 0.0];
        assert!(pca(Embeddings::new(&nan, 2).unwrap(), None).is_err());
    }

    #[test]
    fn independent_of_the_thread_count() {
        // Several row blocks and partial sums, more than one column panel.
        let (n, dim) = (2100, 140);
        let mut rng = super::super::rng::Rng::new(3, 1);
        let x: Vec<f32> = (0..n * dim).map(|_| rng.uniform() as f32 - 0.5).collect();
        let e = Embeddings::new(&x, dim).unwrap();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let p = pca(e, Some(5)).unwrap();
                    let t = p.transform(e, 5).unwrap();
                    (p, t)
                })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn project_normalized_keeps_the_mean_at_zero() {
        // Variance 8/3 along x, 2/3 along y: the first component is (1, 0).
        let x = [-1.0f32, 0.0, 3.0, 0.0, 1.0, 1.0, 1.0, -1.0];
        let e = Embeddings::new(&x, 2).unwrap();
        let p = pca(e, None).unwrap();
        let centre = [1.0f32, 0.0];
        let z = p
            .project_normalized(Embeddings::new(&centre, 2).unwrap(), 2)
            .unwrap();
        assert_eq!(z, vec![0.0, 0.0]);
        let y = p.project_normalized(e, 1).unwrap();
        assert_eq!(y, vec![-1.0, 1.0, 0.0, 0.0]);
    }
}
