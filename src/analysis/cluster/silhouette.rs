//! Silhouette coefficient (Rousseeuw 1987), equal to scikit-learn's `silhouette_samples` /
//! `silhouette_score` to 1e-9.
//!
//! For sample `i` in cluster `C`: `a` = mean distance to the other members of `C`, `b` = the
//! smallest mean distance to the members of another cluster, `s = (b − a) / max(a, b)`. As in
//! scikit-learn, `s = 0` when that is 0/0: for a sample alone in its cluster and for a sample
//! whose `a` and `b` are both 0 (duplicates). It is defined for 2 ≤ clusters ≤ n − 1.
//!
//! Distances are computed in `f64` from the `f32` values, with scikit-learn's formulas
//! ([`Distance`]); the golden values come from scikit-learn run on the same values as
//! float64. (scikit-learn itself, given float32 input, computes cosine distances in float32.)
//! Rows are processed in blocks (about 32 MiB of distances each), so memory is O(n), time
//! O(n² · dim).

use rayon::prelude::*;

use super::super::linalg::{non_empty, Distance, Pairwise};
use super::super::{check_finite, AnalysisError, Embeddings};
use super::metrics::dense_ids;

/// Silhouette coefficient of every sample.
pub fn silhouette_samples(
    x: Embeddings<'_>,
    labels: &[usize],
    metric: Distance,
) -> Result<Vec<f64>, AnalysisError> {
    non_empty("samples", x)?;
    check_finite("samples", x)?;
    let n = x.rows();
    if labels.len() != n {
        return Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: n,
            got: labels.len(),
        });
    }
    let (ids, n_labels) = dense_ids(labels);
    if !(2..n).contains(&n_labels) {
        return Err(AnalysisError::Undefined(format!(
            "the silhouette needs between 2 and n_samples - 1 = {} clusters, got {n_labels}",
            n.saturating_sub(1)
        )));
    }
    let mut freqs = vec![0usize; n_labels];
    ids.iter().for_each(|&l| freqs[l] += 1);
    let pw = Pairwise::new(x, metric);
    let rows = pw.block_rows();
    let starts: Vec<usize> = (0..n).step_by(rows).collect();
    let out: Vec<f64> = starts
        .par_iter()
        .flat_map_iter(|&start| {
            let end = (start + rows).min(pw.n());
            let mut d = vec![0.0f64; (end - start) * n];
            pw.block(start, &mut d);
            let mut sums = vec![0.0f64; n_labels];
            let mut s = Vec::with_capacity(end - start);
            for (r, row) in d.chunks_exact(n).enumerate() {
                sums.fill(0.0);
                for (&dist, &l) in row.iter().zip(&ids) {
                    sums[l] += dist;
                }
                let own = ids[start + r];
                let a = sums[own] / (freqs[own] - 1) as f64;
                let b = sums
                    .iter()
                    .zip(&freqs)
                    .enumerate()
                    .filter(|&(l, _)| l != own)
                    .map(|(_, (&sum, &f))| sum / f as f64)
                    .fold(f64::INFINITY, f64::min);
                let v = (b - a) / a.max(b);
                s.push(if v.is_nan() { 0.0 } else { v });
            }
            s
        })
        .collect();
    Ok(out)
}

/// Mean silhouette coefficient over all samples.
pub fn silhouette_score(
    x: Embeddings<'_>,
    labels: &[usize],
    metric: Distance,
) -> Result<f64, AnalysisError> {
    let s = silhouette_samples(x, labels, metric)?;
    Ok(s.iter().sum::<f64>() / s.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tight_pairs() {
        // 1-D points 0, 1 | 10, 11: a = 1, b = 10 or 9 / 11 or 10.
        let x = [0.0f32, 1.0, 10.0, 11.0];
        let e = Embeddings::new(&x, 1).unwrap();
        let s = silhouette_samples(e, &[0, 0, 1, 1], Distance::Euclidean).unwrap();
        let want = [
            (10.5 - 1.0) / 10.5,
            (9.5 - 1.0) / 9.5,
            (9.5 - 1.0) / 9.5,
            (10.5 - 1.0) / 10.5,
        ];
        for (g, w) in s.iter().zip(want) {
            assert!((g - w).abs() < 1e-15);
        }
    }

    #[test]
    fn singleton_is_zero_and_label_counts_checked() {
        let x = [0.0f32, 1.0, 10.0];
        let e = Embeddings::new(&x, 1).unwrap();
        let s = silhouette_samples(e, &[0, 0, 1], Distance::Euclidean).unwrap();
        assert_eq!(s[2], 0.0);
        assert!(silhouette_score(e, &[0, 0, 0], Distance::Euclidean).is_err());
        assert!(silhouette_score(e, &[0, 1, 2], Distance::Euclidean).is_err());
        assert!(silhouette_score(e, &[0, 1], Distance::Euclidean).is_err());
    }
}
