//! UMAP (McInnes, Healy & Melville 2018): a low-dimensional layout that keeps each point's
//! fuzzy neighbourhood.
//!
//! The steps are umap-learn 0.5.12's (`umap/umap_.py`, `umap/layouts.py`,
//! `umap/spectral.py`) with its defaults, step for step:
//!
//! 1. **Neighbours**: exact k nearest neighbours ([`nearest_neighbors`]); as in umap-learn,
//!    each point is its own neighbour 0, so `n_neighbors = 15` means 14 others. When there
//!    are no more rows than `n_neighbors`, umap-learn lowers it to `rows − 1` and so do we.
//! 2. **Local metric** ([`smooth_knn_dist`]): per point, ρ is the distance to the nearest
//!    non-identical neighbour and σ is found by binary search (64 steps at most, tolerance
//!    1e-5) so that `Σ_j exp(−max(0, d_j − ρ)/σ) = log₂ k`; σ is floored at 1e-3 × the mean
//!    neighbour distance. With umap-learn's constants, precisions (`f32` distances, an `f64`
//!    search) and order of operations, so σ and ρ are umap-learn's own to the last bit on the
//!    same neighbour distances.
//! 3. **Fuzzy graph** ([`fuzzy_simplicial_set`]): directed memberships
//!    `exp(−(d − ρ)/σ)` combined by the fuzzy union `a + b − ab` (set_op_mix_ratio 1), in
//!    `f32` as scipy's sparse arithmetic does.
//! 4. **Pruning and sampling rates**: edges lighter than `max / n_epochs` are dropped, and
//!    an edge of weight w is sampled every `max / w` epochs (`make_epochs_per_sample`).
//!    `n_epochs` defaults to 500 up to 10,000 rows and 200 above.
//! 5. **Initialisation**: spectral (eigenvectors 1..=dim of the normalised Laplacian
//!    `I − D^{-1/2} W D^{-1/2}` of the pruned graph, see below) or uniform in [−10, 10];
//!    the spectral layout is scaled to a maximum |coordinate| of 10 with N(0, 1e-4) noise
//!    (`noisy_scale_coords`), then either is rescaled to [0, 10] per axis.
//! 6. **Layout** (`optimize_layout_euclidean`): SGD over the edges with the attraction
//!    `−2ab d^{2(b−1)} / (1 + a d^{2b})`, `negative_sample_rate` repulsions
//!    `2γb / ((0.001 + d²)(1 + a d^{2b}))` per attraction (γ = 1), every gradient component
//!    clipped to ±4, both ends of an edge moved, and the learning rate decayed linearly.
//!    a and b come from [`find_ab_params`], a least-squares fit of `1/(1 + a x^{2b})` to the
//!    offset exponential of (spread, min_dist) on umap-learn's 300-point grid, solved by
//!    Levenberg–Marquardt as scipy's `curve_fit` does.
//!
//! # Spectral initialisation
//!
//! umap-learn calls ARPACK (`eigsh`) below 2M vertices and LOBPCG above. Here it is LOBPCG
//! (Knyazev 2001) for every size with more than [`DENSE_MAX`] vertices, without
//! preconditioner, on the complement of the known null vector `D^{1/2} 1`: `dim + 3`
//! vectors (three guard vectors speed up the wanted ones), the basis `[X, R, P]`
//! orthonormalised by Gram–Schmidt each step (a second pass when the first cancels more than
//! half of a vector; directions that cancel to rounding are dropped, which is what keeps
//! plain LOBPCG stable near convergence; the images `L p` of the search directions are
//! carried through the same combinations, so each step costs `dim + 3` sparse products), and
//! Rayleigh–Ritz by cyclic Jacobi. It stops when every wanted residual `‖Lx − λx‖` is below
//! 1e-9, or after [`LOBPCG_MAX_ITER`] steps; it is accepted when the residuals are below
//! 1e-4 (the tolerance umap-learn gives its solvers). Small graphs use a dense Jacobi
//! eigendecomposition. A disconnected graph (umap-learn lays out each component separately,
//! which is not reproduced) or a solver that did not reach 1e-4 falls back to the random
//! initialisation, as umap-learn falls back when its solver fails; [`Umap::init_used`] says
//! which was used. Eigenvectors are defined up to sign, so spectral layouts may be mirrored
//! relative to umap-learn's. On 10k CLIP-like points the solver takes about 430 steps
//! (1.5–2.6 s on two cores); the golden graphs converge to 1e-9 in eigenvectors.
//!
//! # Where results differ from umap-learn
//!
//! - The random streams are clipflow's ChaCha8 generator, not numpy's and umap-learn's
//!   Tausworthe generator, so random initialisations, the initial noise and the negative
//!   samples differ and coordinates are not the same for the same seed; the quality of the
//!   layout (trustworthiness) is. The SGD is single-threaded, as umap-learn's is with a
//!   `random_state`, so a seed gives the same bits on any number of threads.
//! - Neighbours are exact; umap-learn uses exact distances below 4096 rows and NN-descent
//!   (approximate) above.
//! - umap-learn sums degrees in `f32` for the Laplacian; here in `f64` (differences ~1e-7).
//! - Points with identical coordinates: umap-learn's sort may put a duplicate before the
//!   point itself; here the point is always its own neighbour 0.
//! - Fewer than 3 rows is an error (umap-learn returns zeros for 1 row and fails for 2).
//!
//! # Limits
//!
//! The neighbour search is exact and costs O(n² · dim) time (blocked, so O(n) memory beyond
//! the data); the graph holds about `1.5 · n · n_neighbors` edges, and the SGD does
//! `n_epochs × (1 + negative_sample_rate)` updates per unit of edge weight. 10,000 × 512
//! (cosine) takes 15–20 s on two shared cores: 4–6 s neighbours and graph, 1.5–2.6 s
//! spectral initialisation, 10–12 s SGD; umap-learn took 49 s on the same data, with the
//! same trustworthiness (`scripts/check_umap.py`).
//! The search grows quadratically (minutes at 100k): run projections on a
//! [`super::seeded_subsample`].

use rayon::prelude::*;

use super::linalg::{dot, non_empty, Distance};
use super::neighbors::nearest_neighbors;
use super::rng::Rng;
use super::{AnalysisError, Embeddings};

/// How to place the points before the SGD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UmapInit {
    /// Eigenvectors of the normalised graph Laplacian (umap-learn's default).
    Spectral,
    /// Uniform in [−10, 10] per coordinate.
    Random,
}

/// Options of [`umap`]; the defaults are umap-learn's.
#[derive(Debug, Clone, PartialEq)]
pub struct UmapOptions {
    /// Neighbourhood size, counting the point itself (umap-learn's convention).
    pub n_neighbors: usize,
    /// Dimension of the layout.
    pub n_components: usize,
    /// How tightly points may pack: the distance below which the target membership is 1.
    pub min_dist: f64,
    /// Scale of the target membership's exponential decay.
    pub spread: f64,
    /// SGD epochs; `None` is 500 up to 10,000 rows and 200 above.
    pub n_epochs: Option<usize>,
    /// Initial SGD step (umap-learn's `learning_rate`).
    pub learning_rate: f64,
    /// Repulsive samples per attractive one.
    pub negative_sample_rate: usize,
    /// Distance in the input space.
    pub metric: Distance,
    pub init: UmapInit,
    pub seed: u64,
}

impl Default for UmapOptions {
    fn default() -> UmapOptions {
        UmapOptions {
            n_neighbors: 15,
            n_components: 2,
            min_dist: 0.1,
            spread: 1.0,
            n_epochs: None,
            learning_rate: 1.0,
            negative_sample_rate: 5,
            metric: Distance::Euclidean,
            init: UmapInit::Spectral,
            seed: 0,
        }
    }
}

/// A UMAP layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Umap {
    /// `rows × n_components`, row-major.
    pub embedding: Vec<f64>,
    /// SGD epochs run.
    pub n_epochs: usize,
    /// Fitted curve parameters of the low-dimensional membership `1/(1 + a d^{2b})`.
    pub a: f64,
    pub b: f64,
    /// The initialisation actually used: `Random` when the spectral one fell back.
    pub init_used: UmapInit,
}

/// The symmetric fuzzy neighbour graph, in compressed rows (columns ascending per row).
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzyGraph {
    /// Number of vertices.
    pub n: usize,
    /// Row `i`'s entries are `indptr[i]..indptr[i + 1]`.
    pub indptr: Vec<usize>,
    pub indices: Vec<usize>,
    /// Memberships in (0, 1], `f32` as umap-learn stores them.
    pub weights: Vec<f32>,
    /// σ of every point (see [`smooth_knn_dist`]).
    pub sigmas: Vec<f32>,
    /// ρ of every point.
    pub rhos: Vec<f32>,
}

impl FuzzyGraph {
    /// Number of stored (directed) entries: each undirected edge appears twice.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }
}

// umap-learn's constants (umap_.py).
const SMOOTH_K_TOLERANCE: f64 = 1e-5;
const MIN_K_DIST_SCALE: f64 = 1e-3;
const SMOOTH_K_ITERATIONS: usize = 64;

/// Graphs up to this many vertices are decomposed densely.
pub const DENSE_MAX: usize = 48;
/// The largest graph decomposed densely when LOBPCG's `3 (dim + 3)` vectors do not fit
/// (many components for few points): O(n²) memory, O(n³) time.
const DENSE_LIMIT: usize = 400;
/// Most LOBPCG steps of the spectral initialisation.
pub const LOBPCG_MAX_ITER: usize = 1500;
/// Residual at which LOBPCG stops early.
const LOBPCG_TOL: f64 = 1e-9;
/// Residual up to which a spectral layout is accepted (umap-learn's solver tolerance).
const LOBPCG_ACCEPT: f64 = 1e-4;
/// Extra LOBPCG vectors beyond the wanted ones.
const LOBPCG_GUARD: usize = 3;

// Random streams of a seed, one per use.
const STREAM_RANDOM_INIT: u64 = 0x0a17_0001;
const STREAM_EIGEN_START: u64 = 0x0a17_0002;
const STREAM_INIT_NOISE: u64 = 0x0a17_0003;
const STREAM_SGD: u64 = 0x0a17_0004;

fn invalid(what: &'static str, value: impl ToString, reason: &'static str) -> AnalysisError {
    AnalysisError::InvalidParameter {
        what,
        value: value.to_string(),
        reason,
    }
}

/// Fits `(a, b)` of the low-dimensional membership `1 / (1 + a x^{2b})` to the target
/// curve `1` for `x < min_dist` and `exp(−(x − min_dist)/spread)` beyond, by least squares
/// on umap-learn's grid of 300 points over [0, 3·spread] (umap-learn's `find_ab_params`).
///
/// Solved by Levenberg–Marquardt from (1, 1) with the analytic Jacobian, to convergence;
/// scipy's `curve_fit` runs MINPACK's LM from the same start with a finite-difference
/// Jacobian and stops at a relative step of 1.5e-8, so the two agree to about 1e-6.
pub fn find_ab_params(spread: f64, min_dist: f64) -> Result<(f64, f64), AnalysisError> {
    if !spread.is_finite() || spread <= 0.0 {
        return Err(invalid(
            "spread",
            spread,
            "must be a positive finite number",
        ));
    }
    if !min_dist.is_finite() || min_dist < 0.0 {
        return Err(invalid(
            "min_dist",
            min_dist,
            "must be a non-negative finite number",
        ));
    }
    if min_dist > spread {
        return Err(invalid(
            "min_dist",
            min_dist,
            "must not exceed spread (umap-learn's rule)",
        ));
    }
    const POINTS: usize = 300;
    // np.linspace(0, 3 spread, 300): i · step, the last point exactly the end.
    let stop = 3.0 * spread;
    let step = stop / (POINTS - 1) as f64;
    let xs: Vec<f64> = (0..POINTS)
        .map(|i| {
            if i == POINTS - 1 {
                stop
            } else {
                i as f64 * step
            }
        })
        .collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    // Residuals and the Jacobian of the model at (a, b).
    let eval = |a: f64, b: f64| -> (f64, [f64; 3], [f64; 2]) {
        let (mut cost, mut jtj, mut jtr) = (0.0, [0.0; 3], [0.0; 2]);
        for (&x, &y) in xs.iter().zip(&ys) {
            let (p, lnx) = if x > 0.0 {
                (x.powf(2.0 * b), x.ln())
            } else {
                (0.0, 0.0)
            };
            let den = 1.0 + a * p;
            let f = 1.0 / den;
            let r = f - y;
            let da = -p / (den * den);
            let db = -a * p * 2.0 * lnx / (den * den);
            cost += r * r;
            jtj[0] += da * da;
            jtj[1] += da * db;
            jtj[2] += db * db;
            jtr[0] += da * r;
            jtr[1] += db * r;
        }
        (cost, jtj, jtr)
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let (mut cost, mut jtj, mut jtr) = eval(a, b);
    let mut lambda = 1e-3;
    for _ in 0..500 {
        // (JᵀJ + λ diag(JᵀJ)) δ = −Jᵀr
        let m00 = jtj[0] * (1.0 + lambda);
        let m11 = jtj[2] * (1.0 + lambda);
        let m01 = jtj[1];
        let det = m00 * m11 - m01 * m01;
        if !det.is_finite() || det == 0.0 {
            break;
        }
        let da = -(m11 * jtr[0] - m01 * jtr[1]) / det;
        let db = -(m00 * jtr[1] - m01 * jtr[0]) / det;
        let (na, nb) = (a + da, b + db);
        let (ncost, njtj, njtr) = eval(na, nb);
        if ncost.is_finite() && ncost <= cost {
            let small =
                da.abs() <= 1e-13 * a.abs().max(1e-300) && db.abs() <= 1e-13 * b.abs().max(1e-300);
            (a, b, cost, jtj, jtr) = (na, nb, ncost, njtj, njtr);
            lambda = (lambda * 0.3).max(1e-15);
            if small {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e15 {
                break;
            }
        }
    }
    if !(a.is_finite() && b.is_finite()) {
        return Err(AnalysisError::Undefined(format!(
            "UMAP: the membership curve fit for spread {spread}, min_dist {min_dist} diverged"
        )));
    }
    Ok((a, b))
}

/// σ and ρ of every point from its sorted neighbour distances (umap-learn's
/// `smooth_knn_dist` with `local_connectivity = 1`, `bandwidth = 1`).
///
/// `knn_dists` is `rows × k`, row-major, ascending within a row, with the point itself
/// (distance 0) in column 0, as umap-learn's neighbour arrays are; `k` is umap-learn's
/// `n_neighbors`. Returns `(sigmas, rhos)`. The arithmetic is umap-learn's as compiled (`f32`
/// distances, an `f64` search), in the same order of operations.
pub fn smooth_knn_dist(knn_dists: &[f32], k: usize) -> Result<(Vec<f32>, Vec<f32>), AnalysisError> {
    if k < 2 {
        return Err(invalid(
            "n_neighbors",
            k,
            "must be at least 2 (the point itself and one other)",
        ));
    }
    if knn_dists.is_empty() {
        return Err(AnalysisError::Empty {
            what: "neighbour distances",
        });
    }
    if !knn_dists.len().is_multiple_of(k) {
        return Err(AnalysisError::Ragged {
            what: "neighbour distances",
            len: knn_dists.len(),
            dim: k,
        });
    }
    for (row, d) in knn_dists.chunks_exact(k).enumerate() {
        if !d.iter().all(|v| v.is_finite() && *v >= 0.0) {
            return Err(AnalysisError::NonFinite {
                what: "neighbour distances (finite and non-negative)",
                row,
            });
        }
    }
    let target = (k as f64).log2();
    // np.mean in numba: an f32 running sum divided by the count in f64.
    let f32_mean = |v: &[f32]| -> f64 {
        let mut s = 0.0f32;
        for &x in v {
            s += x;
        }
        s as f64 / v.len() as f64
    };
    let mean_distances = f32_mean(knn_dists);
    let rows = knn_dists.len() / k;
    let mut sigmas = Vec::with_capacity(rows);
    let mut rhos = Vec::with_capacity(rows);
    for d in knn_dists.chunks_exact(k) {
        // local_connectivity = 1: the nearest non-zero distance.
        let rho = d.iter().copied().find(|&v| v > 0.0).unwrap_or(0.0);
        // umap-learn declares the search variables `f32`, but numba drops the declaration
        // inside its parallel loop, so they are `f64` there: as here.
        let (mut lo, mut hi, mut mid) = (0.0f64, f32::MAX as f64, 1.0f64);
        for _ in 0..SMOOTH_K_ITERATIONS {
            let mut psum = 0.0f64;
            for &dj in &d[1..] {
                let gap = dj - rho;
                if gap > 0.0 {
                    psum += (-(gap as f64 / mid)).exp();
                } else {
                    psum += 1.0;
                }
            }
            if (psum - target).abs() < SMOOTH_K_TOLERANCE {
                break;
            }
            if psum > target {
                hi = mid;
                mid = (lo + hi) / 2.0;
            } else {
                lo = mid;
                if hi >= f32::MAX as f64 {
                    mid *= 2.0;
                } else {
                    mid = (lo + hi) / 2.0;
                }
            }
        }
        let mut sigma = mid as f32;
        let floor = MIN_K_DIST_SCALE
            * if rho > 0.0 {
                f32_mean(d)
            } else {
                mean_distances
            };
        if (sigma as f64) < floor {
            sigma = floor as f32;
        }
        sigmas.push(sigma);
        rhos.push(rho);
    }
    Ok((sigmas, rhos))
}

/// The fuzzy union of the points' local fuzzy sets (umap-learn's `fuzzy_simplicial_set`
/// with given neighbours, `set_op_mix_ratio = 1`, `local_connectivity = 1`).
///
/// `knn_indices` and `knn_dists` are `rows × k` with the point itself in column 0 (see
/// [`smooth_knn_dist`]). A directed membership is `exp(−(d − ρ)/σ)` (1 up to ρ, 0 for the
/// point itself); an undirected edge gets `a + b − ab` from its two directions, in `f32`.
pub fn fuzzy_simplicial_set(
    knn_indices: &[usize],
    knn_dists: &[f32],
    k: usize,
) -> Result<FuzzyGraph, AnalysisError> {
    let (sigmas, rhos) = smooth_knn_dist(knn_dists, k)?;
    if knn_indices.len() != knn_dists.len() {
        return Err(AnalysisError::LengthMismatch {
            what: "neighbour indices",
            expected: knn_dists.len(),
            got: knn_indices.len(),
        });
    }
    let n = knn_dists.len() / k;
    if let Some(&index) = knn_indices.iter().find(|&&j| j >= n) {
        return Err(AnalysisError::IndexOutOfRange {
            what: "neighbour indices",
            index,
            len: n,
        });
    }
    // (row, col, membership, is the transposed copy)
    let mut entries: Vec<(usize, usize, f32, bool)> = Vec::with_capacity(2 * n * k);
    for i in 0..n {
        for j in 0..k {
            let col = knn_indices[i * k + j];
            let d = knn_dists[i * k + j];
            let val: f32 = if col == i {
                0.0
            } else if d - rhos[i] <= 0.0 || sigmas[i] == 0.0 {
                1.0
            } else {
                (-((d - rhos[i]) / sigmas[i])).exp()
            };
            if val != 0.0 {
                entries.push((i, col, val, false));
                entries.push((col, i, val, true));
            }
        }
    }
    entries.sort_unstable_by_key(|x| (x.0, x.1, x.3));
    let mut indptr = vec![0usize; n + 1];
    let mut indices = Vec::with_capacity(entries.len());
    let mut weights = Vec::with_capacity(entries.len());
    let mut e = 0;
    while e < entries.len() {
        let (row, col) = (entries[e].0, entries[e].1);
        let (mut a, mut b) = (0.0f32, 0.0f32);
        while e < entries.len() && entries[e].0 == row && entries[e].1 == col {
            // A neighbour listed twice in a row (malformed input) keeps scipy's sum.
            if entries[e].3 {
                b += entries[e].2;
            } else {
                a += entries[e].2;
            }
            e += 1;
        }
        let w = (a + b) - a * b;
        if w != 0.0 {
            indices.push(col);
            weights.push(w);
            indptr[row + 1] += 1;
        }
    }
    for i in 0..n {
        indptr[i + 1] += indptr[i];
    }
    Ok(FuzzyGraph {
        n,
        indptr,
        indices,
        weights,
        sigmas,
        rhos,
    })
}

/// Neighbours of every row in umap-learn's layout: the row itself first (distance 0), then
/// its `n_neighbors − 1` nearest others; distances in `f32`.
fn neighbours_with_self(
    x: Embeddings<'_>,
    n_neighbors: usize,
    metric: Distance,
) -> Result<(Vec<usize>, Vec<f32>), AnalysisError> {
    let nn = nearest_neighbors(x, n_neighbors - 1, metric)?;
    let n = x.rows();
    let mut idx = Vec::with_capacity(n * n_neighbors);
    let mut dist = Vec::with_capacity(n * n_neighbors);
    for i in 0..n {
        idx.push(i);
        dist.push(0.0f32);
        idx.extend_from_slice(nn.indices_of(i));
        dist.extend(nn.distances_of(i).iter().map(|&d| d as f32));
    }
    Ok((idx, dist))
}

/// The fuzzy neighbour graph of `x` that [`umap`] lays out: exact neighbours (the point
/// itself counted, `n_neighbors` lowered to `rows − 1` for small inputs) and
/// [`fuzzy_simplicial_set`].
pub fn fuzzy_graph(
    x: Embeddings<'_>,
    n_neighbors: usize,
    metric: Distance,
) -> Result<FuzzyGraph, AnalysisError> {
    non_empty("embeddings", x)?;
    if n_neighbors < 2 {
        return Err(invalid(
            "n_neighbors",
            n_neighbors,
            "must be at least 2 (the point itself and one other)",
        ));
    }
    let n = x.rows();
    if n < 3 {
        return Err(AnalysisError::Undefined(format!(
            "UMAP needs at least 3 samples, got {n}"
        )));
    }
    let k = if n <= n_neighbors { n - 1 } else { n_neighbors };
    let (idx, dist) = neighbours_with_self(x, k, metric)?;
    fuzzy_simplicial_set(&idx, &dist, k)
}

/// The number of connected components of a symmetric graph (union–find).
fn connected_components(g: &FuzzyGraph) -> usize {
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..g.n).collect();
    let mut components = g.n;
    for i in 0..g.n {
        for &j in &g.indices[g.indptr[i]..g.indptr[i + 1]] {
            let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
            if ri != rj {
                parent[ri.max(rj)] = ri.min(rj);
                components -= 1;
            }
        }
    }
    components
}

/// Eigen-decomposition of a small symmetric matrix (row-major `s × s`) by cyclic Jacobi:
/// eigenvalues ascending (ties in index order) and the matching eigenvectors as the
/// columns of a row-major `s × s` matrix.
fn symmetric_eigen(m: &[f64], s: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v = vec![0.0f64; s * s];
    for i in 0..s {
        v[i * s + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let mut off = 0.0;
        for p in 0..s {
            for q in p + 1..s {
                off += a[p * s + q] * a[p * s + q];
            }
        }
        if off <= 1e-32 * total || off == 0.0 {
            break;
        }
        for p in 0..s {
            for q in p + 1..s {
                let apq = a[p * s + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * s + q] - a[p * s + p]) / (2.0 * apq);
                let t = if theta == 0.0 {
                    1.0
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * c;
                for k in 0..s {
                    let (akp, akq) = (a[k * s + p], a[k * s + q]);
                    a[k * s + p] = c * akp - sn * akq;
                    a[k * s + q] = sn * akp + c * akq;
                }
                for k in 0..s {
                    let (apk, aqk) = (a[p * s + k], a[q * s + k]);
                    a[p * s + k] = c * apk - sn * aqk;
                    a[q * s + k] = sn * apk + c * aqk;
                }
                for k in 0..s {
                    let (vkp, vkq) = (v[k * s + p], v[k * s + q]);
                    v[k * s + p] = c * vkp - sn * vkq;
                    v[k * s + q] = sn * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..s).collect();
    order.sort_by(|&i, &j| a[i * s + i].total_cmp(&a[j * s + j]).then(i.cmp(&j)));
    let vals = order.iter().map(|&i| a[i * s + i]).collect();
    let mut vecs = vec![0.0f64; s * s];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..s {
            vecs[k * s + new] = v[k * s + old];
        }
    }
    (vals, vecs)
}

/// `D^{-1/2} W D^{-1/2}` of a graph, as weights aligned with its entries, and `D^{1/2}1`
/// normalised (the Laplacian's null vector).
fn normalised_adjacency(g: &FuzzyGraph) -> (Vec<f64>, Vec<f64>) {
    let sqrt_deg: Vec<f64> = (0..g.n)
        .map(|i| {
            g.weights[g.indptr[i]..g.indptr[i + 1]]
                .iter()
                .map(|&w| w as f64)
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let mut nw = Vec::with_capacity(g.nnz());
    for i in 0..g.n {
        for e in g.indptr[i]..g.indptr[i + 1] {
            nw.push(g.weights[e] as f64 / (sqrt_deg[i] * sqrt_deg[g.indices[e]]));
        }
    }
    let norm = sqrt_deg.iter().map(|d| d * d).sum::<f64>().sqrt();
    let null = sqrt_deg.iter().map(|d| d / norm).collect();
    (nw, null)
}

/// `L x = x − D^{-1/2} W D^{-1/2} x`, parallel over fixed blocks of rows (each value is
/// summed in one order, so the result does not depend on the thread count).
fn laplacian_apply(g: &FuzzyGraph, nw: &[f64], x: &[f64], out: &mut [f64]) {
    const ROWS: usize = 1024;
    out.par_chunks_mut(ROWS)
        .enumerate()
        .for_each(|(block, out)| {
            for (r, o) in out.iter_mut().enumerate() {
                let i = block * ROWS + r;
                let mut s = 0.0;
                for e in g.indptr[i]..g.indptr[i + 1] {
                    s += nw[e] * x[g.indices[e]];
                }
                *o = x[i] - s;
            }
        });
}

fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Checks the structure of a graph given from outside: row pointers, column range, and
/// positive finite weights.
fn check_graph(g: &FuzzyGraph) -> Result<(), AnalysisError> {
    if g.indptr.len() != g.n + 1 {
        return Err(AnalysisError::LengthMismatch {
            what: "graph row pointers",
            expected: g.n + 1,
            got: g.indptr.len(),
        });
    }
    if g.indptr[0] != 0
        || g.indptr.windows(2).any(|w| w[0] > w[1])
        || g.indptr[g.n] != g.indices.len()
    {
        return Err(AnalysisError::Undefined(
            "graph: row pointers must start at 0, not decrease, and end at the entry count".into(),
        ));
    }
    if g.weights.len() != g.indices.len() {
        return Err(AnalysisError::LengthMismatch {
            what: "graph weights",
            expected: g.indices.len(),
            got: g.weights.len(),
        });
    }
    if let Some(&index) = g.indices.iter().find(|&&j| j >= g.n) {
        return Err(AnalysisError::IndexOutOfRange {
            what: "graph columns",
            index,
            len: g.n,
        });
    }
    if let Some(e) = g.weights.iter().position(|w| !(w.is_finite() && *w > 0.0)) {
        let row = g.indptr.partition_point(|&p| p <= e) - 1;
        return Err(AnalysisError::NonFinite {
            what: "graph weights (finite and positive)",
            row,
        });
    }
    Ok(())
}

/// Eigenvectors 1..=dim (by ascending eigenvalue) of the normalised Laplacian of a
/// connected symmetric graph, as `n × dim` row-major columns of unit norm: umap-learn's
/// `spectral_layout` (see the module docs for the solver). The vectors are defined up to
/// sign.
///
/// `Ok(None)` when umap-learn would not use them either: a disconnected graph, fewer than
/// `dim + 2` vertices, or a solver that did not reach umap-learn's tolerance (also when
/// `dim + 3` LOBPCG vectors do not fit and the graph is too large to decompose densely).
/// Errors on a malformed graph or `dim = 0`.
pub fn spectral_layout(
    g: &FuzzyGraph,
    dim: usize,
    seed: u64,
) -> Result<Option<Vec<f64>>, AnalysisError> {
    check_graph(g)?;
    if dim == 0 {
        return Err(invalid("dim", 0, "must be at least 1"));
    }
    let n = g.n;
    if n < dim + 2 || connected_components(g) != 1 {
        return Ok(None);
    }
    let (nw, null) = normalised_adjacency(g);
    let m = dim + LOBPCG_GUARD;
    let columns = if n <= DENSE_MAX {
        dense_eigenvectors(g, &nw, dim)
    } else if 3 * m + 1 < n {
        match lobpcg(g, &nw, &null, dim, m, seed) {
            Some(c) => c,
            None => return Ok(None),
        }
    } else if n <= DENSE_LIMIT {
        dense_eigenvectors(g, &nw, dim)
    } else {
        return Ok(None);
    };
    let mut out = vec![0.0f64; n * dim];
    for (c, col) in columns.iter().enumerate() {
        for i in 0..n {
            out[i * dim + c] = col[i];
        }
    }
    Ok(Some(out))
}

fn dense_eigenvectors(g: &FuzzyGraph, nw: &[f64], dim: usize) -> Vec<Vec<f64>> {
    let n = g.n;
    let mut l = vec![0.0f64; n * n];
    for i in 0..n {
        l[i * n + i] = 1.0;
        for e in g.indptr[i]..g.indptr[i + 1] {
            l[i * n + g.indices[e]] -= nw[e];
        }
    }
    let (_, vecs) = symmetric_eigen(&l, n);
    (1..=dim)
        .map(|c| (0..n).map(|i| vecs[i * n + c]).collect())
        .collect()
}

/// Orthonormalises `v` against `basis` (orthonormal) and the null vector; `None` when
/// little of it is left (it lay in their span up to rounding). A second Gram–Schmidt pass
/// runs when the first cancelled more than half the norm ("twice is enough"). When `image`
/// (`L v`) is given it is carried along through the same combinations (with `L null = 0`;
/// `images` are then the basis vectors' images), which saves a Laplacian product.
fn orthonormalise(
    mut v: Vec<f64>,
    mut image: Option<Vec<f64>>,
    null: &[f64],
    basis: &[Vec<f64>],
    images: &[Vec<f64>],
) -> Option<(Vec<f64>, Option<Vec<f64>>)> {
    let before = dot(&v, &v).sqrt();
    if before == 0.0 || !before.is_finite() {
        return None;
    }
    let mut norm = before;
    for _ in 0..2 {
        let c = dot(&v, null);
        axpy(-c, null, &mut v);
        for (i, b) in basis.iter().enumerate() {
            let c = dot(&v, b);
            axpy(-c, b, &mut v);
            if let Some(av) = image.as_mut() {
                axpy(-c, &images[i], av);
            }
        }
        let after = dot(&v, &v).sqrt();
        let cancelled = after < 0.5 * norm;
        norm = after;
        if !cancelled {
            break;
        }
    }
    if norm <= 1e-10 * before {
        return None;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    if let Some(av) = image.as_mut() {
        av.iter_mut().for_each(|x| *x /= norm);
    }
    Some((v, image))
}

/// LOBPCG for the `m` smallest eigenpairs of `L` on the complement of `null`; returns the
/// first `dim` eigenvectors if their residuals reach [`LOBPCG_ACCEPT`].
fn lobpcg(
    g: &FuzzyGraph,
    nw: &[f64],
    null: &[f64],
    dim: usize,
    m: usize,
    seed: u64,
) -> Option<Vec<Vec<f64>>> {
    let n = g.n;
    let apply = |x: &[f64]| {
        let mut y = vec![0.0f64; n];
        laplacian_apply(g, nw, x, &mut y);
        y
    };
    let mut rng = Rng::new(seed, STREAM_EIGEN_START);
    let mut x: Vec<Vec<f64>> = Vec::with_capacity(m);
    while x.len() < m {
        let v: Vec<f64> = (0..n).map(|_| 2.0 * rng.uniform() - 1.0).collect();
        if let Some((v, _)) = orthonormalise(v, None, null, &x, &[]) {
            x.push(v);
        }
    }
    let mut ax: Vec<Vec<f64>> = x.iter().map(|v| apply(v)).collect();
    // The search directions and their images L p.
    let mut p: Vec<Vec<f64>> = Vec::new();
    let mut ap: Vec<Vec<f64>> = Vec::new();
    let mut lambda = vec![0.0f64; m];
    let mut first = true;
    for _ in 0..LOBPCG_MAX_ITER {
        // Basis [X, R, P] (X orthonormal already, or Ritz-rotated next).
        let mut basis: Vec<Vec<f64>> = x.clone();
        let mut images: Vec<Vec<f64>> = ax.clone();
        if !first {
            let mut residuals = Vec::with_capacity(m);
            let mut worst = 0.0f64;
            for c in 0..m {
                let mut r = ax[c].clone();
                axpy(-lambda[c], &x[c], &mut r);
                if c < dim {
                    worst = worst.max(dot(&r, &r).sqrt());
                }
                residuals.push(r);
            }
            if worst <= LOBPCG_TOL {
                break;
            }
            for r in residuals {
                if let Some((v, _)) = orthonormalise(r, None, null, &basis, &images) {
                    images.push(apply(&v));
                    basis.push(v);
                }
            }
            for (v, av) in p.drain(..).zip(ap.drain(..)) {
                if let Some((v, Some(av))) = orthonormalise(v, Some(av), null, &basis, &images) {
                    images.push(av);
                    basis.push(v);
                }
            }
        }
        let s = basis.len();
        let mut gram = vec![0.0f64; s * s];
        for i in 0..s {
            for j in i..s {
                // Symmetric in exact arithmetic; one triangle is enough.
                let v = dot(&basis[i], &images[j]);
                gram[i * s + j] = v;
                gram[j * s + i] = v;
            }
        }
        let (vals, vecs) = symmetric_eigen(&gram, s);
        let combine = |vs: &[Vec<f64>], from: usize, c: usize| -> Vec<f64> {
            let mut out = vec![0.0f64; n];
            for (r, v) in vs.iter().enumerate().skip(from) {
                axpy(vecs[r * s + c], v, &mut out);
            }
            out
        };
        let new_x: Vec<Vec<f64>> = (0..m).map(|c| combine(&basis, 0, c)).collect();
        let new_ax: Vec<Vec<f64>> = (0..m).map(|c| combine(&images, 0, c)).collect();
        if s > m {
            p = (0..m).map(|c| combine(&basis, m, c)).collect();
            ap = (0..m).map(|c| combine(&images, m, c)).collect();
        }
        x = new_x;
        ax = new_ax;
        lambda.copy_from_slice(&vals[..m]);
        first = false;
    }
    // Judge the result on fresh products: the images carried through the iterations could
    // in principle have drifted from L x.
    let mut worst = 0.0f64;
    for v in &x[..dim] {
        let mut r = apply(v);
        let lambda = dot(v, &r);
        axpy(-lambda, v, &mut r);
        worst = worst.max(dot(&r, &r).sqrt());
    }
    if worst > LOBPCG_ACCEPT || !worst.is_finite() {
        return None;
    }
    x.truncate(dim);
    Some(x)
}

/// Standard normal deviate (Box–Muller, one of the pair).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.uniform(); // (0, 1]
    let u2 = rng.uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Rescales every axis to [0, 10] in `f32` (the last step of umap-learn's initialisation).
fn rescale_to_box(emb: &mut [f32], dim: usize) {
    for c in 0..dim {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for row in emb.chunks_exact(dim) {
            lo = lo.min(row[c]);
            hi = hi.max(row[c]);
        }
        let range = hi - lo;
        for row in emb.chunks_exact_mut(dim) {
            row[c] = if range > 0.0 {
                10.0 * (row[c] - lo) / range
            } else {
                0.0
            };
        }
    }
}

/// Edge list of the pruned graph: heads, tails, weights (umap-learn drops edges lighter
/// than `max / n_epochs`, with 500 or 200 epochs in the threshold when `n_epochs ≤ 10`).
fn pruned_edges(g: &FuzzyGraph, n_epochs: usize, default_epochs: usize) -> FuzzyGraph {
    let max = g.weights.iter().copied().fold(0.0f32, f32::max);
    let epochs = if n_epochs > 10 {
        n_epochs
    } else {
        default_epochs
    };
    let threshold = max / epochs as f32;
    let mut indptr = vec![0usize; g.n + 1];
    let mut indices = Vec::with_capacity(g.nnz());
    let mut weights = Vec::with_capacity(g.nnz());
    for i in 0..g.n {
        for e in g.indptr[i]..g.indptr[i + 1] {
            if g.weights[e] >= threshold {
                indices.push(g.indices[e]);
                weights.push(g.weights[e]);
            }
        }
        indptr[i + 1] = indices.len();
    }
    FuzzyGraph {
        n: g.n,
        indptr,
        indices,
        weights,
        sigmas: g.sigmas.clone(),
        rhos: g.rhos.clone(),
    }
}

/// The SGD state of umap-learn's `optimize_layout_euclidean` (γ = 1, `move_other`).
struct Layout<'a> {
    head: Vec<usize>,
    tail: Vec<usize>,
    epochs_per_sample: Vec<f64>,
    a: f64,
    b: f64,
    negative_sample_rate: usize,
    emb: &'a mut [f32],
    dim: usize,
    n: usize,
}

/// umap-learn's `clip`: gradients are bounded so one close pair cannot fling a point away.
fn clip(v: f64) -> f64 {
    v.clamp(-4.0, 4.0)
}

impl Layout<'_> {
    fn sq_dist(&self, j: usize, k: usize) -> f32 {
        let (d, e) = (self.dim, &*self.emb);
        let mut s = 0.0f32;
        for c in 0..d {
            let diff = e[j * d + c] - e[k * d + c];
            s += diff * diff;
        }
        s
    }

    fn run(&mut self, n_epochs: usize, initial_alpha: f64, rng: &mut Rng) {
        let (a, b, dim) = (self.a, self.b, self.dim);
        let gamma = 1.0f64;
        let rate = self.negative_sample_rate as f64;
        let epochs_per_negative: Vec<f64> =
            self.epochs_per_sample.iter().map(|&e| e / rate).collect();
        let mut next_negative = epochs_per_negative.clone();
        let mut next_sample = self.epochs_per_sample.clone();
        let mut alpha = initial_alpha;
        for epoch in 0..n_epochs {
            let now = epoch as f64;
            for i in 0..self.head.len() {
                if next_sample[i] > now {
                    continue;
                }
                let (j, k) = (self.head[i], self.tail[i]);
                let d2 = self.sq_dist(j, k);
                let coeff = if d2 > 0.0 {
                    let d2 = d2 as f64;
                    // d^{2(b−1)} as d^{2b} / d²: one power instead of two.
                    let p = d2.powf(b);
                    -2.0 * a * b * (p / d2) / (a * p + 1.0)
                } else {
                    0.0
                };
                for c in 0..dim {
                    let (jc, kc) = (j * dim + c, k * dim + c);
                    let g = clip(coeff * (self.emb[jc] - self.emb[kc]) as f64);
                    self.emb[jc] = (self.emb[jc] as f64 + g * alpha) as f32;
                    self.emb[kc] = (self.emb[kc] as f64 - g * alpha) as f32;
                }
                next_sample[i] += self.epochs_per_sample[i];
                if self.negative_sample_rate == 0 {
                    continue;
                }
                // Python's int(): truncation towards zero.
                let n_neg = ((now - next_negative[i]) / epochs_per_negative[i]) as i64;
                for _ in 0..n_neg.max(0) {
                    let k = rng.below(self.n);
                    let d2 = self.sq_dist(j, k);
                    let coeff = if d2 > 0.0 {
                        let d2 = d2 as f64;
                        2.0 * gamma * b / ((0.001 + d2) * (a * d2.powf(b) + 1.0))
                    } else if j == k {
                        continue;
                    } else {
                        0.0
                    };
                    if coeff > 0.0 {
                        for c in 0..dim {
                            let (jc, kc) = (j * dim + c, k * dim + c);
                            let g = clip(coeff * (self.emb[jc] - self.emb[kc]) as f64);
                            self.emb[jc] = (self.emb[jc] as f64 + g * alpha) as f32;
                        }
                    }
                }
                next_negative[i] += n_neg as f64 * epochs_per_negative[i];
            }
            alpha = initial_alpha * (1.0 - now / n_epochs as f64);
        }
    }
}

fn validate(opts: &UmapOptions) -> Result<(), AnalysisError> {
    if opts.n_neighbors < 2 {
        return Err(invalid(
            "n_neighbors",
            opts.n_neighbors,
            "must be at least 2 (the point itself and one other)",
        ));
    }
    if opts.n_components == 0 {
        return Err(invalid("n_components", 0, "must be at least 1"));
    }
    if !opts.learning_rate.is_finite() || opts.learning_rate <= 0.0 {
        return Err(invalid(
            "learning_rate",
            opts.learning_rate,
            "must be a positive finite number",
        ));
    }
    Ok(())
}

/// UMAP layout of the rows of `x` (see the module docs for the algorithm and where it
/// differs from umap-learn).
///
/// Errors on fewer than 3 rows, non-finite values, or options outside their domains
/// (`n_neighbors < 2`, `n_components = 0`, `min_dist > spread`, ...).
pub fn umap(x: Embeddings<'_>, opts: &UmapOptions) -> Result<Umap, AnalysisError> {
    validate(opts)?;
    let (a, b) = find_ab_params(opts.spread, opts.min_dist)?;
    let graph = fuzzy_graph(x, opts.n_neighbors, opts.metric)?;
    let n = graph.n;
    let dim = opts.n_components;
    let default_epochs = if n <= 10_000 { 500 } else { 200 };
    let n_epochs = opts.n_epochs.unwrap_or(default_epochs);
    let graph = pruned_edges(&graph, n_epochs, default_epochs);

    let spectral = match opts.init {
        UmapInit::Spectral => spectral_layout(&graph, dim, opts.seed)?,
        UmapInit::Random => None,
    };
    let init_used = if spectral.is_some() {
        UmapInit::Spectral
    } else {
        UmapInit::Random
    };
    let mut emb: Vec<f32> = match spectral {
        Some(coords) => {
            // noisy_scale_coords: largest |coordinate| 10, plus N(0, 1e-4) noise.
            let max = coords.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let expansion = 10.0 / max;
            let mut rng = Rng::new(opts.seed, STREAM_INIT_NOISE);
            coords
                .iter()
                .map(|&v| (v * expansion) as f32 + (1e-4 * normal(&mut rng)) as f32)
                .collect()
        }
        None => {
            let mut rng = Rng::new(opts.seed, STREAM_RANDOM_INIT);
            (0..n * dim)
                .map(|_| (-10.0 + 20.0 * rng.uniform()) as f32)
                .collect()
        }
    };
    rescale_to_box(&mut emb, dim);

    // make_epochs_per_sample, with numpy's f32 intermediate.
    let max = graph.weights.iter().copied().fold(0.0f32, f32::max);
    let mut head = Vec::with_capacity(graph.nnz());
    let mut epochs_per_sample = Vec::with_capacity(graph.nnz());
    for i in 0..n {
        for _ in graph.indptr[i]..graph.indptr[i + 1] {
            head.push(i);
        }
    }
    for &w in &graph.weights {
        let samples = n_epochs as f32 * (w / max);
        epochs_per_sample.push(if samples > 0.0 {
            n_epochs as f64 / samples as f64
        } else {
            -1.0
        });
    }
    let mut layout = Layout {
        head,
        tail: graph.indices.clone(),
        epochs_per_sample,
        a,
        b,
        negative_sample_rate: opts.negative_sample_rate,
        emb: &mut emb,
        dim,
        n,
    };
    let mut rng = Rng::new(opts.seed, STREAM_SGD);
    layout.run(n_epochs, opts.learning_rate, &mut rng);
    Ok(Umap {
        embedding: emb.iter().map(|&v| v as f64).collect(),
        n_epochs,
        a,
        b,
        init_used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises() {
        let m = [4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 1.0];
        let (vals, vecs) = symmetric_eigen(&m, 3);
        assert!(vals[0] <= vals[1] && vals[1] <= vals[2]);
        for c in 0..3 {
            for r in 0..3 {
                let mv: f64 = (0..3).map(|k| m[r * 3 + k] * vecs[k * 3 + c]).sum();
                assert!((mv - vals[c] * vecs[r * 3 + c]).abs() < 1e-12);
            }
        }
        let trace: f64 = vals.iter().sum();
        assert!((trace - 8.0).abs() < 1e-12);
    }

    #[test]
    fn default_curve_parameters() {
        // umap-learn 0.5.12: find_ab_params(1.0, 0.1) = (1.5769434602697652, 0.8950608778515733)
        let (a, b) = find_ab_params(1.0, 0.1).unwrap();
        assert!((a - 1.5769434602697652).abs() < 1e-5, "{a}");
        assert!((b - 0.8950608778515733).abs() < 1e-5, "{b}");
        assert!(find_ab_params(1.0, 2.0).is_err());
        assert!(find_ab_params(0.0, 0.0).is_err());
    }

    fn ring(n: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| {
                let t = i as f32 * std::f32::consts::TAU / n as f32;
                [
                    t.cos() * (1.0 + 0.1 * (i % 3) as f32),
                    t.sin(),
                    0.05 * (i % 5) as f32,
                ]
            })
            .collect()
    }

    #[test]
    fn deterministic_and_finite() {
        let data = ring(60);
        let x = Embeddings::new(&data, 3).unwrap();
        let opts = UmapOptions {
            n_epochs: Some(50),
            seed: 3,
            ..UmapOptions::default()
        };
        let a = umap(x, &opts).unwrap();
        let b = umap(x, &opts).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.embedding.len(), 120);
        assert!(a.embedding.iter().all(|v| v.is_finite()));
        assert_eq!(a.init_used, UmapInit::Spectral);
        let r = umap(
            x,
            &UmapOptions {
                init: UmapInit::Random,
                ..opts.clone()
            },
        )
        .unwrap();
        assert_eq!(r.init_used, UmapInit::Random);
        assert_ne!(r.embedding, a.embedding);
    }

    #[test]
    fn rejects_bad_input() {
        let data = ring(10);
        let x = Embeddings::new(&data, 3).unwrap();
        let bad = |o: UmapOptions| umap(x, &o).is_err();
        assert!(bad(UmapOptions {
            n_neighbors: 1,
            ..UmapOptions::default()
        }));
        assert!(bad(UmapOptions {
            n_components: 0,
            ..UmapOptions::default()
        }));
        assert!(bad(UmapOptions {
            learning_rate: f64::NAN,
            ..UmapOptions::default()
        }));
        assert!(bad(UmapOptions {
            min_dist: 2.0,
            ..UmapOptions::default()
        }));
        let two = [0.0f32, 1.0];
        assert!(umap(Embeddings::new(&two, 1).unwrap(), &UmapOptions::default()).is_err());
        let nan = [0.0f32, 1.0, f32::NAN, 2.0];
        assert!(umap(Embeddings::new(&nan, 1).unwrap(), &UmapOptions::default()).is_err());
        // Fewer rows than n_neighbors: lowered as umap-learn does.
        let small = umap(x, &UmapOptions::default()).unwrap();
        assert_eq!(small.embedding.len(), 20);
    }

    #[test]
    fn identical_points_give_a_finite_layout() {
        let data = vec![0.5f32; 40 * 3];
        let x = Embeddings::new(&data, 3).unwrap();
        for init in [UmapInit::Spectral, UmapInit::Random] {
            let u = umap(
                x,
                &UmapOptions {
                    n_epochs: Some(30),
                    init,
                    ..UmapOptions::default()
                },
            )
            .unwrap();
            assert!(u.embedding.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn malformed_graph_is_an_error() {
        let graph = |indptr: Vec<usize>, indices: Vec<usize>, weights: Vec<f32>| FuzzyGraph {
            n: 2,
            indptr,
            indices,
            weights,
            sigmas: vec![],
            rhos: vec![],
        };
        let ok = graph(vec![0, 1, 2], vec![1, 0], vec![1.0, 1.0]);
        assert_eq!(spectral_layout(&ok, 1, 0), Ok(None)); // too small: falls back
        assert!(spectral_layout(&ok, 0, 0).is_err());
        for bad in [
            graph(vec![0, 1], vec![1], vec![1.0]),
            graph(vec![0, 2, 1], vec![1, 0], vec![1.0, 1.0]),
            graph(vec![0, 1, 2], vec![1, 5], vec![1.0, 1.0]),
            graph(vec![0, 1, 2], vec![1, 0], vec![1.0]),
            graph(vec![0, 1, 2], vec![1, 0], vec![f32::NAN, 1.0]),
            graph(vec![0, 1, 2], vec![1, 0], vec![1.0, -1.0]),
        ] {
            assert!(spectral_layout(&bad, 1, 0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn disconnected_graph_falls_back_to_random() {
        // Two far-apart groups of 20: the 15-neighbour graph has two components.
        let mut data = ring(20);
        data.extend(ring(20).iter().map(|v| v + 100.0));
        let x = Embeddings::new(&data, 3).unwrap();
        let u = umap(
            x,
            &UmapOptions {
                n_neighbors: 5,
                n_epochs: Some(20),
                ..UmapOptions::default()
            },
        )
        .unwrap();
        assert_eq!(u.init_used, UmapInit::Random);
    }
}
