//! Vietoris–Rips persistent homology in dimensions 0 and 1, and the bottleneck and
//! Wasserstein distances between persistence diagrams.
//!
//! # Persistence
//!
//! [`rips_persistence`] computes what `ripser.ripser(X, maxdim=1, thresh=...)["dgms"]`
//! (ripser.py 0.6.15, coefficients in Z/2) computes, with the algorithm of Bauer's Ripser
//! (J. Appl. Comput. Topol. 2021, version 1.2):
//!
//! - **Distances** are computed in `f64` as scikit-learn's `pairwise_distances` computes them
//!   (the ones ripser.py asks for), read from the upper triangle and then held in `f32`, the
//!   `value_t` of ripser's C++ core. Every birth and death is one of these `f32` values, so
//!   results agree with ripser to `f32` precision (an ulp where scikit-learn rounds its
//!   `f64` distances differently from clipflow's `gemm`). One deliberate difference:
//!   identical rows are at distance exactly 0, where the product form leaves rounding noise
//!   (~1e-7) that ripser would report as tiny H0 bars.
//! - **Filtration**: simplices ordered by diameter, ties broken by the combinatorial number
//!   system index (larger index first), exactly ripser's order, so even the pairing of equal
//!   values is the same. Without a threshold (or with `+∞`) the complex is cut at the
//!   *enclosing radius* `min_i max_j d(i, j)`, as ripser does: beyond it the complex is a cone
//!   and no class is born or dies. A threshold is rounded to `f32` as ripser.py's binding does,
//!   and classes still alive at it die at `+∞`.
//! - **H0**: the minimum spanning forest (Prim's algorithm on the dense matrix, under the
//!   same total order as ripser's Kruskal pass, so it is the same forest). Every class is
//!   born at 0; deaths are the forest's edge lengths; zero-length deaths (duplicate points)
//!   are dropped; one bar `(0, +∞)` per connected component.
//! - **H1**: persistent cohomology by the implicit coboundary reduction: coboundaries of edges
//!   are enumerated from the distance matrix, never stored; *clearing* (edges of the spanning
//!   forest kill H0 classes and are not reduced); *apparent pairs* (an edge whose oldest
//!   cofacet has it as youngest facet, both of the same diameter, is paired without any
//!   work — found in parallel before the reduction); the *emergent pair* shortcut during the
//!   reduction. Pairs of zero persistence are dropped. The reduction itself is sequential,
//!   as in Ripser; its working column is a 4-ary heap of single `u64` keys (an integer
//!   level of the diameter packed with the simplex index), half the size of Ripser's
//!   `(float, index)` entries and compared in one instruction.
//!
//! Output order is ripser's: H0 by increasing death then the infinite bars; H1 by
//! decreasing birth (the order columns are reduced in), infinite bars among them.
//!
//! **Limits.** The distance matrix is held once, as a dense `n × n` matrix of 4-byte values
//! (100 MB at n = 5000, 400 MB at [`MAX_POINTS`]), plus Ripser's pivot table and reduction
//! matrix, which grow with the number of H1 columns that need work. Time is dominated by the
//! reduction, roughly the number of edges times n in the worst case (a 1000-point torus
//! takes a few seconds); inputs above [`MAX_POINTS`] rows are refused with
//! [`AnalysisError::TooMany`]. Sub-sample larger sets with
//! [`seeded_subsample`](super::seeded_subsample).
//!
//! # Diagram distances
//!
//! [`bottleneck`] and [`wasserstein`] are `persim.bottleneck` and `persim.wasserstein`
//! (persim 0.4.1): points at `+∞` are ignored (persim drops them with a warning), a point may
//! be matched to its projection on the diagonal; the bottleneck ground metric is L∞ (distance
//! to the diagonal `(death − birth) / 2`), the Wasserstein distance is the minimum total L2
//! cost of a matching (order 1, distance to the diagonal `(death − birth) / √2`). Both are
//! exact: the bottleneck by a search over the candidate values with a Hopcroft–Karp
//! matching test, Wasserstein by a shortest-augmenting-path assignment (the algorithm of
//! scipy's `linear_sum_assignment`, which persim calls), both on problems of the size of the
//! point-to-point part rather than persim's `(m + k)²` augmented matrix. Memory O(m·k) for
//! diagrams of m and k points; Wasserstein time O(min(m, k)² · max(m, k)) at worst — under a
//! second for diagrams of a thousand points each. Diagrams with more than
//! [`MAX_DIAGRAM_POINTS`] finite bars are refused with [`AnalysisError::TooMany`].

mod matching;
mod rips;

use super::linalg::{non_empty, Distance};
use super::{check_finite, AnalysisError, Embeddings};

pub use matching::{bottleneck, wasserstein, MAX_DIAGRAM_POINTS};

/// Largest number of points [`rips_persistence`] accepts: the dense `f32` distance matrix
/// then takes 400 MB, and simplex indices stay far below 2⁶³.
pub const MAX_POINTS: usize = 10_000;

/// Options of [`rips_persistence`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersistenceOptions {
    /// Highest homology dimension computed: 0 (components) or 1 (loops).
    pub max_dim: usize,
    /// Largest edge length in the filtration (ripser's `thresh`); `None` or `+∞` cuts at
    /// the enclosing radius, which changes nothing in the diagrams.
    pub threshold: Option<f64>,
    /// How points are compared.
    pub metric: Distance,
}

impl Default for PersistenceOptions {
    /// ripser's defaults: H0 and H1, no threshold, Euclidean distances.
    fn default() -> Self {
        PersistenceOptions {
            max_dim: 1,
            threshold: None,
            metric: Distance::Euclidean,
        }
    }
}

/// One bar: born at `birth`, dies at `death` (`f64::INFINITY` for a class that never dies).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub birth: f64,
    pub death: f64,
}

/// The bars of one homology dimension, in ripser's order (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Diagram {
    /// Homology dimension: 0 for components, 1 for loops.
    pub dim: usize,
    pub bars: Vec<Bar>,
}

/// Persistence diagrams of the Vietoris–Rips filtration of the rows of `x`, one per
/// dimension `0..=opts.max_dim` (see the module docs for what is computed and its limits).
pub fn rips_persistence(
    x: Embeddings<'_>,
    opts: &PersistenceOptions,
) -> Result<Vec<Diagram>, AnalysisError> {
    non_empty("points", x)?;
    check_finite("points", x)?;
    check_size(x.rows())?;
    let threshold = check_options(opts)?;
    let dist = rips::distance_matrix(x, opts.metric);
    Ok(rips::persistence(dist, x.rows(), opts.max_dim, threshold))
}

/// As [`rips_persistence`] from a precomputed `n × n` row-major distance matrix (ripser's
/// `distance_matrix=True`; `opts.metric` is not used).
///
/// Like ripser.py, only the entries above the diagonal are read; the matrix must still be
/// symmetric (to a relative 1e-6, so products that round differently pass), with a zero
/// diagonal (ripser's vertex births are not supported) and finite, non-negative entries.
pub fn rips_persistence_from_distances(
    dist: &[f64],
    n: usize,
    opts: &PersistenceOptions,
) -> Result<Vec<Diagram>, AnalysisError> {
    if n == 0 {
        return Err(AnalysisError::Empty { what: "distances" });
    }
    if n.checked_mul(n) != Some(dist.len()) {
        return Err(AnalysisError::LengthMismatch {
            what: "distance matrix (n × n)",
            expected: n.saturating_mul(n),
            got: dist.len(),
        });
    }
    check_size(n)?;
    let threshold = check_options(opts)?;
    for (i, row) in dist.chunks_exact(n).enumerate() {
        if !row.iter().all(|v| v.is_finite()) {
            return Err(AnalysisError::NonFinite {
                what: "distances",
                row: i,
            });
        }
        if row[i] != 0.0 {
            return Err(AnalysisError::InvalidParameter {
                what: "distance matrix diagonal",
                value: format!("d[{i}][{i}] = {}", row[i]),
                reason: "must be zero (vertex births are not supported)",
            });
        }
        for (j, &v) in row.iter().enumerate().skip(i + 1) {
            let w = dist[j * n + i];
            if v < 0.0 {
                return Err(AnalysisError::InvalidParameter {
                    what: "distance",
                    value: format!("d[{i}][{j}] = {v}"),
                    reason: "must be non-negative",
                });
            }
            if (v - w).abs() > 1e-6 * v.abs().max(w.abs()) {
                return Err(AnalysisError::InvalidParameter {
                    what: "distance matrix",
                    value: format!("d[{i}][{j}] = {v}, d[{j}][{i}] = {w}"),
                    reason: "must be symmetric",
                });
            }
        }
    }
    let dist = rips::from_upper_triangle(dist, n);
    Ok(rips::persistence(dist, n, opts.max_dim, threshold))
}

fn check_size(n: usize) -> Result<(), AnalysisError> {
    if n > MAX_POINTS {
        return Err(AnalysisError::TooMany {
            what: "persistence",
            n,
            max: MAX_POINTS,
        });
    }
    Ok(())
}

/// Validates the options; returns the threshold in `f32`, `None` for the enclosing radius.
fn check_options(opts: &PersistenceOptions) -> Result<Option<f32>, AnalysisError> {
    if opts.max_dim > 1 {
        return Err(AnalysisError::InvalidParameter {
            what: "max_dim",
            value: opts.max_dim.to_string(),
            reason: "only dimensions 0 and 1 are computed",
        });
    }
    match opts.threshold {
        None => Ok(None),
        Some(t) if t == f64::INFINITY => Ok(None),
        // ripser treats a threshold that is +inf or f32::MAX in f32 as no threshold.
        Some(t) if t >= 0.0 => {
            let t = t as f32;
            Ok((t < f32::MAX).then_some(t))
        }
        Some(t) => Err(AnalysisError::InvalidParameter {
            what: "threshold",
            value: t.to_string(),
            reason: "must be a non-negative number (or +inf / None for no threshold)",
        }),
    }
}

#[cfg(test)]
mod tests;
