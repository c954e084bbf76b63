//! Exact k-nearest neighbours, the graph t-SNE, UMAP and trustworthiness are built on.
//!
//! Exact rather than approximate (NN-descent, HNSW): projections run on a seeded sub-sample
//! (10k–50k points), where a blocked `f64` distance product costs seconds, and exactness keeps
//! results comparable with scikit-learn's `NearestNeighbors`, which the golden values use.

use rayon::prelude::*;

use super::linalg::{non_empty, Distance, Pairwise};
use super::{check_finite, AnalysisError, Embeddings};

/// The `k` nearest other rows of every row, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    /// Neighbours per row.
    pub k: usize,
    /// `rows × k` row indices; a row is never its own neighbour.
    pub indices: Vec<usize>,
    /// `rows × k` distances matching `indices` (ascending within a row).
    pub distances: Vec<f64>,
}

impl Neighbors {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// Neighbour indices of row `i`.
    pub fn indices_of(&self, i: usize) -> &[usize] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// Neighbour distances of row `i`.
    pub fn distances_of(&self, i: usize) -> &[f64] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
}

/// The `k` nearest neighbours of every row of `x` among the other rows, by `metric`.
///
/// Ties in distance go to the lower index (scikit-learn's brute-force search does the same
/// for exact ties). Errors when `k` is 0 or not below the number of rows, or on non-finite
/// input.
pub fn nearest_neighbors(
    x: Embeddings<'_>,
    k: usize,
    metric: Distance,
) -> Result<Neighbors, AnalysisError> {
    non_empty("embeddings", x)?;
    check_finite("embeddings", x)?;
    let n = x.rows();
    if k == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "neighbours",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if k >= n {
        return Err(AnalysisError::TooLarge {
            what: "neighbours",
            k,
            n: n - 1,
            of: "other samples",
        });
    }
    Ok(nearest_in(&Pairwise::new(x, metric), k))
}

/// The `k` nearest other rows of every row of prepared data (`0 < k < n`, checked by the
/// callers).
pub(crate) fn nearest_in(pw: &Pairwise, k: usize) -> Neighbors {
    let n = pw.n();
    let block = pw.block_rows().max(1);
    let starts: Vec<usize> = (0..n).step_by(block).collect();
    let parts: Vec<(Vec<usize>, Vec<f64>)> = starts
        .par_iter()
        .map(|&start| {
            let rows = block.min(n - start);
            let mut d = vec![0.0f64; rows * n];
            pw.block(start, &mut d);
            let mut idx_out = Vec::with_capacity(rows * k);
            let mut dist_out = Vec::with_capacity(rows * k);
            let mut idx: Vec<usize> = Vec::with_capacity(n);
            for (r, row) in d.chunks_exact(n).enumerate() {
                let me = start + r;
                let cmp = |a: &usize, b: &usize| {
                    row[*a]
                        .partial_cmp(&row[*b])
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(a.cmp(b))
                };
                idx.clear();
                idx.extend((0..n).filter(|&j| j != me));
                if k < idx.len() {
                    idx.select_nth_unstable_by(k - 1, cmp);
                }
                let top = &mut idx[..k];
                top.sort_unstable_by(cmp);
                idx_out.extend_from_slice(top);
                dist_out.extend(top.iter().map(|&j| row[j]));
            }
            (idx_out, dist_out)
        })
        .collect();
    let mut indices = Vec::with_capacity(n * k);
    let mut distances = Vec::with_capacity(n * k);
    for (i, d) in parts {
        indices.extend(i);
        distances.extend(d);
    }
    Neighbors {
        k,
        indices,
        distances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brute_force_agrees() {
        // Points on a line at 0, 1, 3, 7, 8: neighbours by hand.
        let x = [0.0f32, 1.0, 3.0, 7.0, 8.0];
        let e = Embeddings::new(&x, 1).unwrap();
        let nn = nearest_neighbors(e, 2, Distance::Euclidean).unwrap();
        assert_eq!(nn.rows(), 5);
        assert_eq!(nn.indices_of(0), &[1, 2]);
        assert_eq!(nn.distances_of(0), &[1.0, 3.0]);
        // Row 1: 0 and 2 are at distances 1 and 2.
        assert_eq!(nn.indices_of(1), &[0, 2]);
        assert_eq!(nn.indices_of(3), &[4, 2]);
        assert_eq!(nn.distances_of(3), &[1.0, 4.0]);
        // Ties go to the lower index: from 1 (at 1.0), 0 and 2 in [0, 1, 2] are both 1 away.
        let y = [0.0f32, 1.0, 2.0];
        let nn =
            nearest_neighbors(Embeddings::new(&y, 1).unwrap(), 1, Distance::Euclidean).unwrap();
        assert_eq!(nn.indices_of(1), &[0]);
    }

    #[test]
    fn rejects_bad_k() {
        let x = [0.0f32, 1.0];
        let e = Embeddings::new(&x, 1).unwrap();
        assert!(nearest_neighbors(e, 0, Distance::Euclidean).is_err());
        assert!(nearest_neighbors(e, 2, Distance::Euclidean).is_err());
    }
}
