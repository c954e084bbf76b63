//! Clustering comparison metrics, equal to scikit-learn's to 1e-9.
//!
//! Each function follows the definition scikit-learn 1.9 implements, including its special
//! cases, so clipflow's tables line up with Python notebooks:
//!
//! | function | scikit-learn |
//! |---|---|
//! | [`adjusted_rand_score`] | `adjusted_rand_score` (pair-confusion form, exact integers) |
//! | [`normalized_mutual_info_score`] | `normalized_mutual_info_score(average_method="arithmetic")` |
//! | [`adjusted_mutual_info_score`] | `adjusted_mutual_info_score(average_method="arithmetic")` |
//! | [`fowlkes_mallows_score`] | `fowlkes_mallows_score` |
//! | [`homogeneity_completeness_v_measure`] | `homogeneity_completeness_v_measure` |
//! | [`mutual_info_score`], [`entropy`] | `mutual_info_score`, `entropy` (natural log) |
//!
//! Labels are any `usize` values; only equality matters (they are ranked like `np.unique`
//! does). A label present in one labelling and absent from the other, singleton clusters and a
//! single class are all handled as scikit-learn does; the golden tests cover each. Where
//! scikit-learn returns a value for empty input (1.0), these return
//! [`AnalysisError::Empty`] instead: an empty comparison is a bug upstream.

use super::super::AnalysisError;

/// The contingency table of two labellings (sparse: non-zero cells only).
#[derive(Debug, Clone, PartialEq)]
pub struct Contingency {
    /// Number of samples.
    pub n: usize,
    /// Size of each true class (ids in sorted label order).
    pub class_sizes: Vec<u64>,
    /// Size of each predicted cluster (ids in sorted label order).
    pub cluster_sizes: Vec<u64>,
    /// Non-zero cells `(class id, cluster id, count)`, row-major.
    pub cells: Vec<(usize, usize, u64)>,
}

/// Maps arbitrary labels to dense ids in sorted label order (`np.unique(..., return_inverse)`).
pub(crate) fn dense_ids(labels: &[usize]) -> (Vec<usize>, usize) {
    let mut uniq = labels.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let ids = labels
        .iter()
        .map(|l| uniq.binary_search(l).expect("label among uniques"))
        .collect();
    (ids, uniq.len())
}

/// Builds the contingency table of `labels_true` against `labels_pred`.
pub fn contingency(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<Contingency, AnalysisError> {
    if labels_true.is_empty() {
        return Err(AnalysisError::Empty {
            what: "labels_true",
        });
    }
    if labels_true.len() != labels_pred.len() {
        return Err(AnalysisError::LengthMismatch {
            what: "labels_pred",
            expected: labels_true.len(),
            got: labels_pred.len(),
        });
    }
    let (t, nt) = dense_ids(labels_true);
    let (p, np) = dense_ids(labels_pred);
    let mut class_sizes = vec![0u64; nt];
    let mut cluster_sizes = vec![0u64; np];
    let mut pairs: Vec<(usize, usize)> = t.iter().copied().zip(p.iter().copied()).collect();
    for &(a, b) in &pairs {
        class_sizes[a] += 1;
        cluster_sizes[b] += 1;
    }
    pairs.sort_unstable();
    let mut cells: Vec<(usize, usize, u64)> = Vec::new();
    for (a, b) in pairs {
        match cells.last_mut() {
            Some(last) if last.0 == a && last.1 == b => last.2 += 1,
            _ => cells.push((a, b, 1)),
        }
    }
    Ok(Contingency {
        n: labels_true.len(),
        class_sizes,
        cluster_sizes,
        cells,
    })
}

/// Entropy (natural log) of a labelling given its class sizes.
fn entropy_of_sizes(sizes: &[u64]) -> f64 {
    if sizes.len() == 1 {
        return 0.0;
    }
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    let log_total = total.ln();
    -sizes
        .iter()
        .map(|&s| {
            let s = s as f64;
            (s / total) * (s.ln() - log_total)
        })
        .sum::<f64>()
}

/// Entropy of a labelling, in nats (scikit-learn's `entropy`).
pub fn entropy(labels: &[usize]) -> Result<f64, AnalysisError> {
    if labels.is_empty() {
        return Err(AnalysisError::Empty { what: "labels" });
    }
    let (ids, n) = dense_ids(labels);
    let mut sizes = vec![0u64; n];
    ids.iter().for_each(|&i| sizes[i] += 1);
    Ok(entropy_of_sizes(&sizes))
}

/// Mutual information of a contingency table, in nats (scikit-learn's `mutual_info_score`:
/// per-cell terms smaller than machine epsilon are dropped and the sum is clipped at 0).
fn mutual_info_of(c: &Contingency) -> f64 {
    if c.class_sizes.len() == 1 || c.cluster_sizes.len() == 1 {
        return 0.0;
    }
    let total = c.n as f64;
    let log_total = total.ln();
    let log_sum_pi = (c.class_sizes.iter().sum::<u64>() as f64).ln();
    let log_sum_pj = (c.cluster_sizes.iter().sum::<u64>() as f64).ln();
    let mut mi = 0.0;
    for &(i, j, v) in &c.cells {
        let v_f = v as f64;
        let nm = v_f / total;
        let outer = (c.class_sizes[i] as i64 * c.cluster_sizes[j] as i64) as f64;
        let log_outer = -outer.ln() + log_sum_pi + log_sum_pj;
        let term = nm * (v_f.ln() - log_total) + nm * log_outer;
        if term.abs() >= f64::EPSILON {
            mi += term;
        }
    }
    mi.max(0.0)
}

/// Mutual information between two labellings, in nats.
pub fn mutual_info_score(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<f64, AnalysisError> {
    Ok(mutual_info_of(&contingency(labels_true, labels_pred)?))
}

/// Adjusted Rand index: the Rand index corrected for chance, from the pair confusion matrix
/// in exact integer arithmetic (`i128`), then one division in `f64` as Python does.
pub fn adjusted_rand_score(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<f64, AnalysisError> {
    let c = contingency(labels_true, labels_pred)?;
    let n = c.n as i128;
    let sum_squares: i128 = c
        .cells
        .iter()
        .map(|&(_, _, v)| (v as i128) * (v as i128))
        .sum();
    let sq = |s: &[u64]| s.iter().map(|&v| (v as i128) * (v as i128)).sum::<i128>();
    let tp = sum_squares - n;
    let fp = sq(&c.cluster_sizes) - sum_squares;
    let fn_ = sq(&c.class_sizes) - sum_squares;
    let tn = n * n - fp - fn_ - sum_squares;
    if fn_ == 0 && fp == 0 {
        return Ok(1.0);
    }
    let num = tp * tn - fn_ * fp;
    let den = (tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn);
    Ok(2.0 * (num as f64) / (den as f64))
}

/// Normalised mutual information with the arithmetic mean of the entropies as normaliser.
/// Two single-cluster labellings agree perfectly (1.0); zero MI gives 0.0.
pub fn normalized_mutual_info_score(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<f64, AnalysisError> {
    let c = contingency(labels_true, labels_pred)?;
    if c.class_sizes.len() == 1 && c.cluster_sizes.len() == 1 {
        return Ok(1.0);
    }
    let mi = mutual_info_of(&c);
    if mi == 0.0 {
        return Ok(0.0);
    }
    let h_true = entropy_of_sizes(&c.class_sizes);
    let h_pred = entropy_of_sizes(&c.cluster_sizes);
    Ok(mi / ((h_true + h_pred) / 2.0))
}

/// Expected mutual information of two labellings with the given marginals under the
/// hypergeometric model of random labellings (Vinh, Epps & Bailey 2010), as scikit-learn's
/// `expected_mutual_information` sums it: log-gamma terms, summed in the same order.
fn expected_mutual_info(c: &Contingency) -> f64 {
    let a: &[u64] = &c.class_sizes;
    let b: &[u64] = &c.cluster_sizes;
    if a.len() == 1 || b.len() == 1 {
        return 0.0;
    }
    let n = c.n as i64;
    let nf = n as f64;
    let max = (*a.iter().max().unwrap_or(&0)).max(*b.iter().max().unwrap_or(&0)) as usize;
    let lg = libm::lgamma;
    // nij = 0 is never used (the sum starts at 1); the tables are indexed by nij.
    let term1: Vec<f64> = (0..=max).map(|k| k.max(1) as f64 / nf).collect();
    let log_nnij: Vec<f64> = (0..=max)
        .map(|k| nf.ln() + (k.max(1) as f64).ln())
        .collect();
    let gln_n1 = lg(nf + 1.0);
    let gln_nnij: Vec<f64> = (0..=max)
        .map(|k| lg(k.max(1) as f64 + 1.0) + gln_n1)
        .collect();
    let mut emi = 0.0;
    for &ai in a {
        let ai = ai as i64;
        let log_a = (ai as f64).ln();
        let gln_a = lg(ai as f64 + 1.0);
        let gln_na = lg((n - ai) as f64 + 1.0);
        for &bj in b {
            let bj = bj as i64;
            let log_b = (bj as f64).ln();
            let gln_b = lg(bj as f64 + 1.0);
            let gln_nb = lg((n - bj) as f64 + 1.0);
            let start = (ai - n + bj).max(1);
            let end = ai.min(bj) + 1;
            for nij in start..end {
                let k = nij as usize;
                let term2 = log_nnij[k] - log_a - log_b;
                let gln = gln_a + gln_b + gln_na + gln_nb
                    - gln_nnij[k]
                    - lg((ai - nij) as f64 + 1.0)
                    - lg((bj - nij) as f64 + 1.0)
                    - lg((n - ai - bj + nij) as f64 + 1.0);
                emi += term1[k] * term2 * gln.exp();
            }
        }
    }
    emi
}

/// Adjusted mutual information, arithmetic normalisation: `(MI − E[MI]) / (mean(H) − E[MI])`,
/// with scikit-learn's guards (1.0 when both labellings are a single cluster, 0.0 when one of
/// them is, numerator and denominator kept at least machine epsilon away from zero with their
/// sign).
pub fn adjusted_mutual_info_score(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<f64, AnalysisError> {
    let c = contingency(labels_true, labels_pred)?;
    let (nt, np) = (c.class_sizes.len(), c.cluster_sizes.len());
    if nt == 1 && np == 1 {
        return Ok(1.0);
    }
    if nt == 1 || np == 1 {
        return Ok(0.0);
    }
    let mi = mutual_info_of(&c);
    let emi = expected_mutual_info(&c);
    let h_true = entropy_of_sizes(&c.class_sizes);
    let h_pred = entropy_of_sizes(&c.cluster_sizes);
    let normalizer = (h_true + h_pred) / 2.0;
    let away_from_zero = |v: f64| {
        if v < 0.0 {
            v.min(-f64::EPSILON)
        } else {
            v.max(f64::EPSILON)
        }
    };
    Ok(away_from_zero(mi - emi) / away_from_zero(normalizer - emi))
}

/// Fowlkes–Mallows index: geometric mean of pairwise precision and recall.
pub fn fowlkes_mallows_score(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<f64, AnalysisError> {
    let c = contingency(labels_true, labels_pred)?;
    let n = c.n as i128;
    let tk: i128 = c
        .cells
        .iter()
        .map(|&(_, _, v)| (v as i128) * (v as i128))
        .sum::<i128>()
        - n;
    let pk: i128 = c
        .cluster_sizes
        .iter()
        .map(|&v| (v as i128) * (v as i128))
        .sum::<i128>()
        - n;
    let qk: i128 = c
        .class_sizes
        .iter()
        .map(|&v| (v as i128) * (v as i128))
        .sum::<i128>()
        - n;
    if tk == 0 {
        return Ok(0.0);
    }
    let (tk, pk, qk) = (tk as f64, pk as f64, qk as f64);
    Ok((tk / pk).sqrt() * (tk / qk).sqrt())
}

/// Homogeneity, completeness and V-measure (with weight `beta` on homogeneity; 1 is the
/// usual V-measure, the harmonic mean). A labelling with zero entropy scores 1.0 on the side
/// it cannot fail.
pub fn homogeneity_completeness_v_measure(
    labels_true: &[usize],
    labels_pred: &[usize],
    beta: f64,
) -> Result<(f64, f64, f64), AnalysisError> {
    if !beta.is_finite() || beta <= 0.0 {
        return Err(AnalysisError::InvalidParameter {
            what: "beta",
            value: beta.to_string(),
            reason: "must be a positive finite number",
        });
    }
    let c = contingency(labels_true, labels_pred)?;
    let h_c = entropy_of_sizes(&c.class_sizes);
    let h_k = entropy_of_sizes(&c.cluster_sizes);
    let mi = mutual_info_of(&c);
    let homogeneity = if h_c != 0.0 { mi / h_c } else { 1.0 };
    let completeness = if h_k != 0.0 { mi / h_k } else { 1.0 };
    let v = if homogeneity + completeness == 0.0 {
        0.0
    } else {
        (1.0 + beta) * homogeneity * completeness / (beta * homogeneity + completeness)
    };
    Ok((homogeneity, completeness, v))
}

/// Every comparison metric of a predicted labelling against the truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterScores {
    pub adjusted_rand: f64,
    pub normalized_mutual_info: f64,
    pub adjusted_mutual_info: f64,
    pub fowlkes_mallows: f64,
    pub homogeneity: f64,
    pub completeness: f64,
    pub v_measure: f64,
}

/// All of [`ClusterScores`] at once.
pub fn cluster_scores(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<ClusterScores, AnalysisError> {
    let (homogeneity, completeness, v_measure) =
        homogeneity_completeness_v_measure(labels_true, labels_pred, 1.0)?;
    Ok(ClusterScores {
        adjusted_rand: adjusted_rand_score(labels_true, labels_pred)?,
        normalized_mutual_info: normalized_mutual_info_score(labels_true, labels_pred)?,
        adjusted_mutual_info: adjusted_mutual_info_score(labels_true, labels_pred)?,
        fowlkes_mallows: fowlkes_mallows_score(labels_true, labels_pred)?,
        homogeneity,
        completeness,
        v_measure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values from scikit-learn's docstrings.
    #[test]
    fn documented_examples() {
        assert_eq!(
            adjusted_rand_score(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap(),
            -0.5
        );
        assert_eq!(
            adjusted_rand_score(&[0, 0, 0, 0], &[0, 1, 2, 3]).unwrap(),
            0.0
        );
        assert_eq!(
            adjusted_rand_score(&[0, 0, 1, 1], &[1, 1, 0, 0]).unwrap(),
            1.0
        );
        assert_eq!(
            adjusted_mutual_info_score(&[0, 0, 0, 0], &[0, 1, 2, 3]).unwrap(),
            0.0
        );
        assert_eq!(
            adjusted_mutual_info_score(&[0, 0, 1, 1], &[1, 1, 0, 0]).unwrap(),
            1.0
        );
        assert_eq!(
            fowlkes_mallows_score(&[0, 0, 0, 0], &[0, 1, 2, 3]).unwrap(),
            0.0
        );
        assert_eq!(
            normalized_mutual_info_score(&[0, 0, 0], &[5, 5, 5]).unwrap(),
            1.0
        );
        let (h, c, v) =
            homogeneity_completeness_v_measure(&[0, 0, 1, 1], &[0, 0, 0, 0], 1.0).unwrap();
        assert_eq!((h, c, v), (0.0, 1.0, 0.0));
    }

    #[test]
    fn errors_on_bad_input() {
        assert!(adjusted_rand_score(&[], &[]).is_err());
        assert!(adjusted_rand_score(&[0, 1], &[0]).is_err());
        assert!(homogeneity_completeness_v_measure(&[0], &[0], 0.0).is_err());
    }
}
