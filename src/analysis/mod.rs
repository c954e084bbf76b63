//! Analysis: the numerical core of the questions users bring to an embedding store.
//!
//! Everything here is a pure function over in-memory data: no file I/O, no config. The store
//! reading, the config and the wiring into `clipflow run` live elsewhere and call these.
//!
//! - [`retrieval`]: text→image and image→text ranks, recall@K, mean/median rank, MRR, top-K
//!   galleries, with blocked matrix products so 100k×100k never materialises;
//! - [`zero_shot`]: class embeddings from prompt templates, top-1/top-5, mean per-class recall,
//!   confusion matrix, softmax with CLIP's logit scale;
//! - [`cluster`]: k-means (k-means++, restarts), agglomerative Ward, DBSCAN, and the clustering
//!   metrics of scikit-learn (ARI, NMI, AMI, FMI, homogeneity, completeness, V-measure,
//!   silhouette) to 1e-9;
//! - [`probe`]: kNN and linear-probe (multinomial logistic regression) accuracy on a seeded,
//!   stratified train/test split;
//! - [`pca`], [`subspace`], [`attributes`]: PCA (scikit-learn's, from a covariance
//!   eigendecomposition), principal angles between class subspaces (SciPy's), correlations of
//!   metadata with principal components;
//! - [`neighbors`], [`tsne`], [`umap`], [`trustworthiness`]: exact kNN, Barnes–Hut t-SNE
//!   (scikit-learn's definitions), UMAP (umap-learn's), and scikit-learn's trustworthiness;
//! - [`persistence`]: Vietoris–Rips persistence in dimensions 0 and 1 (Ripser's algorithm) and
//!   persim's bottleneck and Wasserstein distances;
//! - [`robustness`]: ImageNet-C's corruption error (CE, mCE, plain and relative to a reference
//!   model) and effective robustness (a logit-space line over the models, with residuals).
//! - [`duplicates`]: near-duplicate pairs above a cosine threshold (blocked, no N² matrix),
//!   the pairs across splits (leaks), and FiftyOne's uniqueness score.
//!
//! The linear algebra (symmetric eigensolver, Jacobi SVD, Householder QR) is written here in
//! `f64` rather than taken from faer: faer would add about three minutes of CPU to a cold
//! release build on the 2-core machines this is built on, for a few hundred lines of
//! textbook (EISPACK) algorithms that the goldens pin to scikit-learn and SciPy.
//!
//! # Conventions
//!
//! - Embeddings are `f32`, row-major, one row per item, wrapped in an [`Embeddings`] view
//!   (`data.len() == rows * dim`). Where a definition is over cosine similarity (retrieval,
//!   zero-shot images, kNN) the rows must already be L2-normalised, as the store writes them;
//!   [`normalize_rows`] does it for other sources. The check ([`check_unit_norm`]) tolerates
//!   |‖x‖ − 1| ≤ [`UNIT_NORM_TOLERANCE`] so float16 stores (clip-retrieval's npy) pass and raw
//!   model outputs (norm ≈ 10) do not.
//! - Similarities are products of `f32` matrices (the precision CLIP_benchmark's torch code
//!   uses); sums over samples (means, inertia, entropies, metrics) accumulate in `f64`.
//! - Labels are dense or sparse `usize` ids; [`Labels::from_strings`] maps strings to ids in
//!   sorted order, the order `np.unique` gives, so ids line up with scikit-learn's classes.
//! - Ties are broken towards the lower index everywhere, as a stable sort of the negated
//!   scores (`np.argsort(-s, kind="stable")`) does. Each module says what that means for it.
//! - Nothing panics on degenerate input: every entry point returns [`AnalysisError`].
//! - Parallel work uses rayon with a fixed partition of the data and an ordered combination of
//!   partial sums, so results do not depend on the number of threads.

pub mod attributes;
pub mod cluster;
pub mod duplicates;
mod linalg;
pub mod neighbors;
pub mod pca;
pub mod persistence;
pub mod probe;
pub mod retrieval;
mod rng;
pub mod robustness;
mod scan;
pub mod scoring;
pub mod subspace;
pub mod trustworthiness;
pub mod tsne;
pub mod umap;
pub mod zero_shot;

pub use linalg::Distance;

/// Errors of the analysis functions: always about the caller's input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// An input that must have at least one element (or row) has none.
    #[error("{what} is empty")]
    Empty { what: &'static str },
    /// `dim` was zero.
    #[error("{what}: the embedding dimension must be positive")]
    ZeroDim { what: &'static str },
    /// The flat buffer does not hold a whole number of rows.
    #[error("{what}: {len} values is not a whole number of rows of dimension {dim}")]
    Ragged {
        what: &'static str,
        len: usize,
        dim: usize,
    },
    /// Two inputs that must agree in dimension do not.
    #[error("dimension mismatch: {a} has dimension {dim_a}, {b} has {dim_b}")]
    DimMismatch {
        a: &'static str,
        dim_a: usize,
        b: &'static str,
        dim_b: usize,
    },
    /// Two inputs that must have the same number of entries do not.
    #[error("{what}: expected {expected} entries, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A row is not L2-normalised (or holds NaN) where the definition is over cosines.
    #[error(
        "{what}: row {row} has L2 norm {norm}, expected 1 \
         (normalise the embeddings first, e.g. with analysis::normalize_rows)"
    )]
    NotNormalised {
        what: &'static str,
        row: usize,
        norm: f64,
    },
    /// A row holds NaN or an infinity.
    #[error("{what}: row {row} holds a non-finite value")]
    NonFinite { what: &'static str, row: usize },
    /// A count parameter (k, number of clusters, ...) is larger than what it selects from.
    #[error("{what} = {k} is larger than the {n} {of} available")]
    TooLarge {
        what: &'static str,
        k: usize,
        n: usize,
        of: &'static str,
    },
    /// An input is larger than a documented O(n²) memory limit.
    #[error("{what}: {n} samples is over the limit of {max} (this method needs O(n²) memory)")]
    TooMany {
        what: &'static str,
        n: usize,
        max: usize,
    },
    /// A parameter is outside its domain.
    #[error("{what} = {value} is invalid: {reason}")]
    InvalidParameter {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// An index refers past the end of what it indexes.
    #[error("{what}: index {index} is out of range (there are {len})")]
    IndexOutOfRange {
        what: &'static str,
        index: usize,
        len: usize,
    },
    /// The quantity is mathematically undefined for this input (e.g. the silhouette of a
    /// single cluster).
    #[error("{0}")]
    Undefined(String),
}

/// A borrowed, row-major `f32` matrix: `rows() × dim()` embeddings.
///
/// Construction checks only the shape; each analysis checks what its definition needs
/// (non-empty, finite, unit norm) and names the input in its error.
#[derive(Debug, Clone, Copy)]
pub struct Embeddings<'a> {
    data: &'a [f32],
    dim: usize,
}

impl<'a> Embeddings<'a> {
    /// Wraps `data` (row-major, `dim` values per row). Zero rows are allowed here; the
    /// analyses reject them with [`AnalysisError::Empty`].
    pub fn new(data: &'a [f32], dim: usize) -> Result<Embeddings<'a>, AnalysisError> {
        Self::named("embeddings", data, dim)
    }

    /// As [`Embeddings::new`], naming the input in errors.
    pub fn named(
        what: &'static str,
        data: &'a [f32],
        dim: usize,
    ) -> Result<Embeddings<'a>, AnalysisError> {
        if dim == 0 {
            return Err(AnalysisError::ZeroDim { what });
        }
        if !data.len().is_multiple_of(dim) {
            return Err(AnalysisError::Ragged {
                what,
                len: data.len(),
                dim,
            });
        }
        Ok(Embeddings { data, dim })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The flat row-major buffer.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `i` (panics when out of range, like slice indexing).
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// `rows()` consecutive rows from `start`.
    pub(crate) fn slice_rows(&self, start: usize, end: usize) -> &'a [f32] {
        &self.data[start * self.dim..end * self.dim]
    }
}

/// How far an L2 norm may be from 1 for a row to count as normalised.
///
/// Loose on purpose: it catches raw, un-normalised model outputs (CLIP's have norms around
/// 10) and NaN, while accepting vectors stored in float16 or quantised after normalisation.
pub const UNIT_NORM_TOLERANCE: f64 = 1e-2;

/// Checks that every row is finite and has an L2 norm within [`UNIT_NORM_TOLERANCE`] of 1.
pub fn check_unit_norm(what: &'static str, x: Embeddings<'_>) -> Result<(), AnalysisError> {
    for (row, v) in x.data.chunks_exact(x.dim).enumerate() {
        let norm = v
            .iter()
            .map(|&a| (a as f64) * (a as f64))
            .sum::<f64>()
            .sqrt();
        if norm.is_nan() || (norm - 1.0).abs() > UNIT_NORM_TOLERANCE {
            return Err(AnalysisError::NotNormalised { what, row, norm });
        }
    }
    Ok(())
}

/// Checks that every value is finite.
pub fn check_finite(what: &'static str, x: Embeddings<'_>) -> Result<(), AnalysisError> {
    for (row, v) in x.data.chunks_exact(x.dim).enumerate() {
        if !v.iter().all(|a| a.is_finite()) {
            return Err(AnalysisError::NonFinite { what, row });
        }
    }
    Ok(())
}

/// Returns a copy of `x` with every row divided by its L2 norm (computed in `f64`).
///
/// A zero row cannot be normalised and is an error, as is a non-finite value.
pub fn normalize_rows(x: Embeddings<'_>) -> Result<Vec<f32>, AnalysisError> {
    check_finite("embeddings", x)?;
    let mut out = Vec::with_capacity(x.data.len());
    for (row, v) in x.data.chunks_exact(x.dim).enumerate() {
        let norm = v
            .iter()
            .map(|&a| (a as f64) * (a as f64))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return Err(AnalysisError::Undefined(format!(
                "embeddings: row {row} is all zeros and has no direction to normalise"
            )));
        }
        out.extend(v.iter().map(|&a| (a as f64 / norm) as f32));
    }
    Ok(out)
}

/// Similarity matrix `a · bᵀ` (`a.rows() × b.rows()`, row-major `f32`): the dot product, and
/// the cosine when both inputs are L2-normalised. For the similarity tables and heatmaps of
/// chosen items; the retrieval and zero-shot code compute the same products in blocks.
pub fn similarity(a: Embeddings<'_>, b: Embeddings<'_>) -> Result<Vec<f32>, AnalysisError> {
    if a.dim != b.dim {
        return Err(AnalysisError::DimMismatch {
            a: "a",
            dim_a: a.dim,
            b: "b",
            dim_b: b.dim,
        });
    }
    let mut out = vec![0.0f32; a.rows() * b.rows()];
    linalg::par_matmul_nt_f32(a.data, b.data, a.dim, &mut out);
    Ok(out)
}

/// Softmax over each row of `scores` (row-major, `cols` per row) after multiplying by
/// `logit_scale`: `softmax(scale · s)`. CLIP's logit scale is 100 ([`CLIP_LOGIT_SCALE`]).
///
/// Computed in `f64` with the row maximum subtracted first, so large scales do not overflow.
pub fn softmax(scores: &[f32], cols: usize, logit_scale: f64) -> Result<Vec<f32>, AnalysisError> {
    if cols == 0 {
        return Err(AnalysisError::Empty {
            what: "softmax columns",
        });
    }
    if !scores.len().is_multiple_of(cols) {
        return Err(AnalysisError::Ragged {
            what: "softmax scores",
            len: scores.len(),
            dim: cols,
        });
    }
    if !logit_scale.is_finite() || logit_scale <= 0.0 {
        return Err(AnalysisError::InvalidParameter {
            what: "logit_scale",
            value: logit_scale.to_string(),
            reason: "must be a positive finite number",
        });
    }
    let mut out = Vec::with_capacity(scores.len());
    for (row, s) in scores.chunks_exact(cols).enumerate() {
        if !s.iter().all(|a| a.is_finite()) {
            return Err(AnalysisError::NonFinite {
                what: "softmax scores",
                row,
            });
        }
        let max = s.iter().fold(f64::NEG_INFINITY, |m, &a| m.max(a as f64));
        let e: Vec<f64> = s
            .iter()
            .map(|&a| (logit_scale * (a as f64 - max)).exp())
            .collect();
        let z: f64 = e.iter().sum();
        out.extend(e.iter().map(|&v| (v / z) as f32));
    }
    Ok(out)
}

/// A seeded sub-sample of `m` of the indices `0..n`, in ascending order (all of them when
/// `m >= n`).
///
/// O(n²) methods (t-SNE, UMAP, persistence, trustworthiness) run on such a sample; ascending
/// order keeps tables joinable with the item list, and the same seed picks the same rows in
/// every variant, so clean and noisy diagrams describe the same images.
pub fn seeded_subsample(n: usize, m: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if m >= n {
        return idx;
    }
    let mut rng = rng::Rng::new(seed, 0x5ab5_a3b1e);
    // Partial Fisher–Yates: the first m positions are a uniform sample.
    for i in 0..m {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(m);
    idx.sort_unstable();
    idx
}

/// CLIP's learned logit scale (exp(4.6052) = 100), the default temperature for softmaxes.
pub const CLIP_LOGIT_SCALE: f64 = 100.0;

/// String labels mapped to dense ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// The id of each input, an index into `names`.
    pub ids: Vec<usize>,
    /// The distinct labels in sorted (byte, i.e. code point) order: `np.unique`'s order, so
    /// id `i` is scikit-learn's `classes_[i]`.
    pub names: Vec<String>,
}

impl Labels {
    /// Maps each string to the index of its value among the sorted distinct values.
    pub fn from_strings<S: AsRef<str>>(values: &[S]) -> Labels {
        let mut names: Vec<String> = values.iter().map(|v| v.as_ref().to_string()).collect();
        names.sort_unstable();
        names.dedup();
        let ids = values
            .iter()
            .map(|v| {
                names
                    .binary_search_by(|n| n.as_str().cmp(v.as_ref()))
                    .expect("every value is among the names")
            })
            .collect();
        Labels { ids, names }
    }
}

/// A xorshift stream of values in [-0.5, 0.5), for tests that need unstructured data.
#[cfg(test)]
pub(crate) fn test_noise(seed: u64) -> impl FnMut() -> f32 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_shape_checks() {
        assert!(matches!(
            Embeddings::new(&[1.0, 2.0, 3.0], 2),
            Err(AnalysisError::Ragged { .. })
        ));
        assert!(matches!(
            Embeddings::new(&[1.0], 0),
            Err(AnalysisError::ZeroDim { .. })
        ));
        let e = Embeddings::new(&[1.0, 2.0, 3.0, 4.0], 2).unwrap();
        assert_eq!(e.rows(), 2);
        assert_eq!(e.row(1), &[3.0, 4.0]);
    }

    #[test]
    fn unit_norm_check_catches_raw_outputs_and_nan() {
        let ok = [0.6f32, 0.8, 1.0, 0.0];
        assert!(check_unit_norm("x", Embeddings::new(&ok, 2).unwrap()).is_ok());
        let raw = [6.0f32, 8.0];
        assert!(matches!(
            check_unit_norm("x", Embeddings::new(&raw, 2).unwrap()),
            Err(AnalysisError::NotNormalised { row: 0, .. })
        ));
        let nan = [1.0f32, 0.0, f32::NAN, 0.0];
        assert!(matches!(
            check_unit_norm("x", Embeddings::new(&nan, 2).unwrap()),
            Err(AnalysisError::NotNormalised { row: 1, .. })
        ));
    }

    #[test]
    fn normalize_rows_and_zero_rows() {
        let v = normalize_rows(Embeddings::new(&[3.0, 4.0], 2).unwrap()).unwrap();
        assert_eq!(v, vec![0.6, 0.8]);
        assert!(normalize_rows(Embeddings::new(&[0.0, 0.0], 2).unwrap()).is_err());
    }

    #[test]
    fn softmax_is_stable_and_scaled() {
        let p = softmax(&[1.0, 0.0, 0.5, 0.5], 2, 100.0).unwrap();
        assert!((p[0] - 1.0).abs() < 1e-6 && p[1] < 1e-6);
        assert_eq!(p[2], 0.5);
        let q = softmax(&[0.0, (2.0f32).ln()], 2, 1.0).unwrap();
        assert!((q[1] - 2.0 / 3.0).abs() < 1e-7);
        assert!(softmax(&[1.0], 1, 0.0).is_err());
        assert!(softmax(&[1.0, 2.0, 3.0], 2, 1.0).is_err());
    }

    #[test]
    fn labels_sorted_like_np_unique() {
        let l = Labels::from_strings(&["dog", "cat", "dog", "Émile", "ant"]);
        assert_eq!(l.names, vec!["ant", "cat", "dog", "Émile"]);
        assert_eq!(l.ids, vec![2, 1, 2, 3, 0]);
    }

    #[test]
    fn similarity_is_a_times_b_transposed() {
        let a = [1.0f32, 0.0, 0.0, 1.0, 0.6, 0.8];
        let b = [0.6f32, 0.8, 1.0, 0.0];
        let s = similarity(
            Embeddings::new(&a, 2).unwrap(),
            Embeddings::new(&b, 2).unwrap(),
        )
        .unwrap();
        assert_eq!(s, vec![0.6, 1.0, 0.8, 0.0, 1.0, 0.6]);
    }

    #[test]
    fn subsample_is_seeded_sorted_and_distinct() {
        let a = seeded_subsample(100, 10, 7);
        assert_eq!(a, seeded_subsample(100, 10, 7));
        assert_ne!(a, seeded_subsample(100, 10, 8));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a[9] < 100);
        assert_eq!(seeded_subsample(5, 10, 1), vec![0, 1, 2, 3, 4]);
    }
}
