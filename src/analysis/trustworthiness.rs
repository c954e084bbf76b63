//! Trustworthiness of a low-dimensional embedding (Venna & Kaski 2001): how far the
//! embedding's nearest neighbours were from each other in the original space.
//!
//! The definition is scikit-learn's `sklearn.manifold.trustworthiness`:
//!
//! ```text
//! T(k) = 1 − 2 / (n k (2n − 3k − 1)) · Σᵢ Σ_{j ∈ Nᵢᵏ} max(0, r(i, j) − k)
//! ```
//!
//! where `Nᵢᵏ` are the `k` nearest neighbours of `i` in the embedding (Euclidean, `i`
//! excluded) and `r(i, j)` is the rank of `j` among the other samples ordered by distance
//! from `i` in the original space (1 for the nearest). scikit-learn requires `k < n / 2`, so
//! that `T` stays in [0, 1]; so does this function.
//!
//! scikit-learn builds the full `n × n` distance matrix, its argsort and an `n × n` inverse
//! permutation (three `n²` arrays of 8-byte values: 2.4 GB at 10k samples). Only the ranks of
//! `k` entries per row are needed, so here the original-space distances are computed in
//! blocks of rows (a blocked `f64` matrix product, as [`nearest_neighbors`] does) and, per
//! row, one pass counts how many samples are closer than each of the `k` embedding
//! neighbours. Memory is `O(n · block)`, time `O(n² (dim + log k))`: 10k samples in 512-D
//! take seconds.
//!
//! Ties: the original-space order breaks ties towards the lower index (a stable argsort), and
//! so does the embedding's neighbour selection. scikit-learn's argsort is not stable and its
//! neighbour search (a k-d tree in 2-D) has its own tie order, so on inputs with tied
//! distances the two may differ; without ties they agree to rounding (the goldens check
//! 1e-12). Original-space distances are scikit-learn's `pairwise_distances` formulas in
//! `f64`, which is what it computes for `float64` input.
//!
//! [`nearest_neighbors`]: super::neighbors::nearest_neighbors

use rayon::prelude::*;

use super::linalg::{non_empty, Distance, Pairwise};
use super::{check_finite, AnalysisError, Embeddings};

/// Trustworthiness `T(k)` of `low` (`rows × low_dim`, row-major) as an embedding of `high`,
/// with `n_neighbors = k` and `metric` for the original space (the embedding's distances are
/// always Euclidean, as in scikit-learn).
///
/// Errors on empty or non-finite input, a `low` of the wrong length, `low_dim == 0`,
/// `n_neighbors == 0`, or `n_neighbors ≥ rows / 2`.
pub fn trustworthiness(
    high: Embeddings<'_>,
    low: &[f64],
    low_dim: usize,
    n_neighbors: usize,
    metric: Distance,
) -> Result<f64, AnalysisError> {
    non_empty("original samples", high)?;
    check_finite("original samples", high)?;
    let n = high.rows();
    if low_dim == 0 {
        return Err(AnalysisError::ZeroDim { what: "embedding" });
    }
    if low.len() != n * low_dim {
        return Err(AnalysisError::LengthMismatch {
            what: "embedding (rows × low_dim values)",
            expected: n * low_dim,
            got: low.len(),
        });
    }
    if let Some(row) = low
        .chunks_exact(low_dim)
        .position(|r| !r.iter().all(|v| v.is_finite()))
    {
        return Err(AnalysisError::NonFinite {
            what: "embedding",
            row,
        });
    }
    if n_neighbors == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "n_neighbors",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    // scikit-learn's check, `n_neighbors >= n_samples / 2` in floating point.
    if n_neighbors as f64 >= n as f64 / 2.0 {
        return Err(AnalysisError::InvalidParameter {
            what: "n_neighbors",
            value: n_neighbors.to_string(),
            reason: "must be less than half the number of samples",
        });
    }
    let k = n_neighbors;
    let pw = Pairwise::new(high, metric);
    let block = pw.block_rows().max(1);
    let starts: Vec<usize> = (0..n).step_by(block).collect();
    // Integer penalties: their sum is exact, so the partition cannot change the result.
    let penalty: u64 = starts
        .par_iter()
        .map(|&start| {
            let rows = block.min(n - start);
            let mut dist = vec![0.0f64; rows * n];
            pw.block(start, &mut dist);
            let mut scratch = RowScratch::new(k);
            dist.chunks_exact(n)
                .enumerate()
                .map(|(r, row)| {
                    let i = start + r;
                    low_neighbors(low, low_dim, i, k, &mut scratch.low);
                    row_penalty(row, i, k, &mut scratch)
                })
                .sum::<u64>()
        })
        .collect::<Vec<u64>>()
        .into_iter()
        .sum();
    // The normalisation exactly as scikit-learn evaluates it (integer n·k, then floats).
    let nk = (n * k) as f64;
    let scale = 2.0 / (nk * (2.0 * n as f64 - 3.0 * k as f64 - 1.0));
    Ok(1.0 - penalty as f64 * scale)
}

/// Buffers reused across the rows of a block.
struct RowScratch {
    /// The embedding neighbours of the current row: (squared distance, index).
    low: Vec<(f64, usize)>,
    /// Their original-space (distance, index) keys, sorted.
    thresholds: Vec<(f64, usize)>,
    /// `counts[p]`: samples with exactly `p` thresholds at or below their key.
    counts: Vec<u64>,
}

impl RowScratch {
    fn new(k: usize) -> RowScratch {
        RowScratch {
            low: Vec::with_capacity(k + 1),
            thresholds: Vec::with_capacity(k),
            counts: vec![0; k + 1],
        }
    }
}

/// The `k` nearest other rows of row `i` of `low` by squared Euclidean distance (ties to
/// the lower index), in `out`, unordered beyond being the right set.
fn low_neighbors(low: &[f64], dim: usize, i: usize, k: usize, out: &mut Vec<(f64, usize)>) {
    out.clear();
    let me = &low[i * dim..(i + 1) * dim];
    // A sorted list of the best k so far; a candidate enters only when it beats the worst.
    // Candidates arrive in index order, so `<` keeps the lower index among equal distances.
    for (j, other) in low.chunks_exact(dim).enumerate() {
        if j == i {
            continue;
        }
        let d: f64 = me
            .iter()
            .zip(other)
            .map(|(a, b)| {
                let t = a - b;
                t * t
            })
            .sum();
        if out.len() == k {
            if d >= out[k - 1].0 {
                continue;
            }
            out.pop();
        }
        let pos = out.partition_point(|&(e, _)| e <= d);
        out.insert(pos, (d, j));
    }
}

/// `Σ max(0, r(i, j) − k)` over the embedding neighbours `j` of row `i`, where `row` holds
/// the original-space distances from `i` to every sample.
fn row_penalty(row: &[f64], i: usize, k: usize, s: &mut RowScratch) -> u64 {
    s.thresholds.clear();
    s.thresholds.extend(s.low.iter().map(|&(_, j)| (row[j], j)));
    s.thresholds
        .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    s.counts.iter_mut().for_each(|c| *c = 0);
    let last = s.thresholds[k - 1];
    let before = |a: (f64, usize), b: (f64, usize)| a.0 < b.0 || (a.0 == b.0 && a.1 < b.1);
    for (l, &d) in row.iter().enumerate() {
        if l == i {
            continue;
        }
        let key = (d, l);
        // Most samples lie beyond every threshold: one comparison settles them.
        let p = if before(last, key) {
            k
        } else {
            s.thresholds.partition_point(|&t| !before(key, t))
        };
        s.counts[p] += 1;
    }
    // The rank of threshold m is 1 + the number of samples whose key is below it, i.e. of
    // samples with at most m thresholds at or below their key.
    let mut below = 0u64;
    let mut penalty = 0u64;
    for m in 0..k {
        below += s.counts[m];
        let rank = below + 1;
        penalty += rank.saturating_sub(k as u64);
    }
    penalty
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scikit-learn's definition, transcribed with a full argsort per row.
    fn naive(high: &[f32], dim: usize, low: &[f64], k: usize) -> f64 {
        let n = high.len() / dim;
        let d = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
                .sum::<f64>()
        };
        let mut t = 0u64;
        for i in 0..n {
            let hi = &high[i * dim..(i + 1) * dim];
            let mut order: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            order.sort_by(|&a, &b| {
                d(hi, &high[a * dim..(a + 1) * dim])
                    .total_cmp(&d(hi, &high[b * dim..(b + 1) * dim]))
                    .then(a.cmp(&b))
            });
            let mut lo: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            let ld = |j: usize| {
                (low[2 * i] - low[2 * j]).powi(2) + (low[2 * i + 1] - low[2 * j + 1]).powi(2)
            };
            lo.sort_by(|&a, &b| ld(a).total_cmp(&ld(b)).then(a.cmp(&b)));
            for &j in &lo[..k] {
                let r = order.iter().position(|&o| o == j).unwrap() as u64 + 1;
                t += r.saturating_sub(k as u64);
            }
        }
        1.0 - t as f64 * (2.0 / ((n * k) as f64 * (2.0 * n as f64 - 3.0 * k as f64 - 1.0)))
    }

    fn data(n: usize, dim: usize, seed: u32) -> Vec<f32> {
        // A small deterministic generator (no ties in practice).
        let mut s = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n * dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    #[test]
    fn matches_the_definition() {
        let (n, dim) = (60, 5);
        let high = data(n, dim, 3);
        let low: Vec<f64> = data(n, 2, 4).iter().map(|&v| v as f64).collect();
        let e = Embeddings::new(&high, dim).unwrap();
        for k in [1, 5, 29] {
            let got = trustworthiness(e, &low, 2, k, Distance::Euclidean).unwrap();
            let want = naive(&high, dim, &low, k);
            assert!((got - want).abs() < 1e-15, "k={k}: {got} vs {want}");
        }
        // The embedding made of the first two coordinates of a 2-D input is perfect.
        let flat: Vec<f32> = data(n, 2, 5);
        let same: Vec<f64> = flat.iter().map(|&v| v as f64).collect();
        let t = trustworthiness(
            Embeddings::new(&flat, 2).unwrap(),
            &same,
            2,
            5,
            Distance::Euclidean,
        )
        .unwrap();
        assert_eq!(t, 1.0);
    }

    #[test]
    fn rejects_bad_input() {
        let high = data(10, 3, 1);
        let e = Embeddings::new(&high, 3).unwrap();
        let low = vec![0.5; 20];
        let t = |low: &[f64], dim, k| trustworthiness(e, low, dim, k, Distance::Euclidean);
        assert!(t(&low, 2, 0).is_err());
        assert!(t(&low, 2, 5).is_err()); // 5 >= 10 / 2
        assert!(t(&low, 2, 4).is_ok());
        assert!(t(&low[..19], 2, 2).is_err());
        assert!(t(&low, 0, 2).is_err());
        let mut bad = low.clone();
        bad[7] = f64::NAN;
        assert!(matches!(
            t(&bad, 2, 2),
            Err(AnalysisError::NonFinite { row: 3, .. })
        ));
        let empty = Embeddings::new(&[], 3).unwrap();
        assert!(trustworthiness(empty, &[], 2, 1, Distance::Euclidean).is_err());
    }
}
