//! Attribute probing: how strongly each principal component follows a piece of metadata
//! (CelebA-style boolean attributes such as "smiling", or categorical ones such as a hair
//! colour id).
//!
//! For each of the first `k` component scores (columns of [`Pca::transform`]'s output,
//! or any other per-sample scores):
//!
//! - **boolean** attribute: the point-biserial correlation, which is Pearson's r between the
//!   score and the attribute coded 0/1 (`scipy.stats.pointbiserialr`, itself
//!   `scipy.stats.pearsonr`): signed, in [−1, 1], positive when the score is higher where the
//!   attribute is true;
//! - **categorical** attribute: the correlation ratio η = sqrt(SS_between / SS_total), the
//!   share of the score's spread explained by the category means: in [0, 1], unsigned, and
//!   equal to |r| for two categories.
//!
//! Both are computed in `f64` with two passes (means, then centred sums), so they do not
//! suffer from the cancellation of one-pass formulas on scores far from zero.
//!
//! Samples whose attribute is missing (`None`) are left out, and [`ComponentCorrelation::n`]
//! counts the samples used. When the value is undefined — fewer than two samples, a constant
//! attribute (a single class present), or a constant score — it is `None` and
//! [`ComponentCorrelation::undefined`] says why; no NaN is ever returned.
//!
//! [`Pca::transform`]: super::pca::Pca::transform

use super::AnalysisError;

/// The values of one attribute for every sample, `None` where unknown.
#[derive(Debug, Clone, Copy)]
pub enum AttributeValues<'a> {
    Boolean(&'a [Option<bool>]),
    /// Category ids (any `usize`, not necessarily dense).
    Categorical(&'a [Option<usize>]),
}

impl AttributeValues<'_> {
    fn len(&self) -> usize {
        match self {
            AttributeValues::Boolean(v) => v.len(),
            AttributeValues::Categorical(v) => v.len(),
        }
    }
}

/// Why a correlation has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndefinedReason {
    /// Fewer than two samples have the attribute.
    TooFewSamples,
    /// All samples that have the attribute share one value.
    ConstantAttribute,
    /// The score is the same for all samples that have the attribute.
    ConstantScore,
}

impl std::fmt::Display for UndefinedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UndefinedReason::TooFewSamples => "fewer than two samples have this attribute",
            UndefinedReason::ConstantAttribute => "the attribute takes a single value",
            UndefinedReason::ConstantScore => "the component score is constant",
        })
    }
}

/// The association between one attribute and one component score.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentCorrelation {
    /// Component index (column of the scores), from 0.
    pub component: usize,
    /// Point-biserial r (boolean) or correlation ratio η (categorical); `None` when
    /// undefined.
    pub value: Option<f64>,
    /// Samples used (those whose attribute is known).
    pub n: usize,
    /// Why `value` is `None`.
    pub undefined: Option<UndefinedReason>,
}

/// Correlation of each of the `k` score columns with `attribute`.
///
/// `scores` is row-major `rows × k`; `attribute` has one entry per row.
pub fn component_correlations(
    scores: &[f64],
    k: usize,
    attribute: AttributeValues<'_>,
) -> Result<Vec<ComponentCorrelation>, AnalysisError> {
    if k == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "k",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if !scores.len().is_multiple_of(k) {
        return Err(AnalysisError::Ragged {
            what: "scores",
            len: scores.len(),
            dim: k,
        });
    }
    let rows = scores.len() / k;
    if rows == 0 {
        return Err(AnalysisError::Empty { what: "scores" });
    }
    if attribute.len() != rows {
        return Err(AnalysisError::LengthMismatch {
            what: "attribute values",
            expected: rows,
            got: attribute.len(),
        });
    }
    if let Some(row) = scores
        .chunks_exact(k)
        .position(|r| !r.iter().all(|v| v.is_finite()))
    {
        return Err(AnalysisError::NonFinite {
            what: "scores",
            row,
        });
    }
    // Group of each known sample: 0/1 for booleans, a dense index for categories.
    let (known, groups, n_groups): (Vec<usize>, Vec<usize>, usize) = match attribute {
        AttributeValues::Boolean(v) => {
            let (known, groups): (Vec<usize>, Vec<usize>) = v
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.map(|b| (i, b as usize)))
                .unzip();
            (known, groups, 2)
        }
        AttributeValues::Categorical(v) => {
            let mut ids: Vec<usize> = v.iter().flatten().copied().collect();
            ids.sort_unstable();
            ids.dedup();
            let (known, groups): (Vec<usize>, Vec<usize>) = v
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    a.map(|c| (i, ids.binary_search(&c).expect("id is among the ids")))
                })
                .unzip();
            (known, groups, ids.len())
        }
    };
    let n = known.len();
    let mut counts = vec![0usize; n_groups];
    for &g in &groups {
        counts[g] += 1;
    }
    let attribute_constant = counts.iter().filter(|&&c| c > 0).count() < 2;
    let boolean = matches!(attribute, AttributeValues::Boolean(_));

    Ok((0..k)
        .map(|component| {
            let result =
                |value: Option<f64>, undefined: Option<UndefinedReason>| ComponentCorrelation {
                    component,
                    value,
                    n,
                    undefined,
                };
            if n < 2 {
                return result(None, Some(UndefinedReason::TooFewSamples));
            }
            if attribute_constant {
                return result(None, Some(UndefinedReason::ConstantAttribute));
            }
            let y: Vec<f64> = known.iter().map(|&i| scores[i * k + component]).collect();
            let mean = y.iter().sum::<f64>() / n as f64;
            let ss_total: f64 = y.iter().map(|v| (v - mean) * (v - mean)).sum();
            if ss_total == 0.0 || y.iter().all(|&v| v == y[0]) {
                return result(None, Some(UndefinedReason::ConstantScore));
            }
            let value = if boolean {
                pearson_binary(&y, &groups, mean, ss_total)
            } else {
                correlation_ratio(&y, &groups, &counts, mean, ss_total)
            };
            result(Some(value), None)
        })
        .collect())
}

/// Pearson's r between `y` and the 0/1 codes in `groups` (both centred, two-pass), clipped to
/// [−1, 1] as SciPy does.
fn pearson_binary(y: &[f64], groups: &[usize], y_mean: f64, ss_y: f64) -> f64 {
    let n = y.len() as f64;
    let x_mean = groups.iter().sum::<usize>() as f64 / n;
    let mut sxy = 0.0;
    let mut sxx = 0.0;
    for (&v, &g) in y.iter().zip(groups) {
        let dx = g as f64 - x_mean;
        sxy += dx * (v - y_mean);
        sxx += dx * dx;
    }
    (sxy / (sxx.sqrt() * ss_y.sqrt())).clamp(-1.0, 1.0)
}

/// η = sqrt(Σ_g n_g (ȳ_g − ȳ)² / Σ (y − ȳ)²), with the group means from centred sums.
fn correlation_ratio(y: &[f64], groups: &[usize], counts: &[usize], mean: f64, ss: f64) -> f64 {
    let mut sums = vec![0.0f64; counts.len()];
    for (&v, &g) in y.iter().zip(groups) {
        sums[g] += v - mean;
    }
    let between: f64 = sums
        .iter()
        .zip(counts)
        .filter(|(_, &c)| c > 0)
        .map(|(s, &c)| s * s / c as f64)
        .sum();
    (between / ss).clamp(0.0, 1.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_is_signed_pearson() {
        let scores = [1.0, 2.0, 3.0, 4.0];
        let a = [Some(false), Some(false), Some(true), Some(true)];
        let c = component_correlations(&scores, 1, AttributeValues::Boolean(&a)).unwrap();
        // r between (0,0,1,1) and (1,2,3,4) = 4/sqrt(20)
        assert!((c[0].value.unwrap() - 4.0 / 20f64.sqrt()).abs() < 1e-15);
        assert_eq!(c[0].n, 4);
    }

    #[test]
    fn undefined_cases_and_missing_values() {
        let scores = [1.0, 5.0, 2.0, 5.0, 3.0, 5.0];
        let a = [Some(true), None, Some(false)];
        let c = component_correlations(&scores, 2, AttributeValues::Boolean(&a)).unwrap();
        assert_eq!(c[0].n, 2);
        assert!((c[0].value.unwrap() + 1.0).abs() < 1e-15);
        assert_eq!(c[1].value, None);
        assert_eq!(c[1].undefined, Some(UndefinedReason::ConstantScore));
        let same = [Some(3usize), Some(3), None];
        let c = component_correlations(&scores, 2, AttributeValues::Categorical(&same)).unwrap();
        assert_eq!(c[0].undefined, Some(UndefinedReason::ConstantAttribute));
        let none = [None, None, Some(true)];
        let c = component_correlations(&scores, 2, AttributeValues::Boolean(&none)).unwrap();
        assert_eq!(c[0].undefined, Some(UndefinedReason::TooFewSamples));
        assert!(component_correlations(&scores, 0, AttributeValues::Boolean(&a)).is_err());
        assert!(component_correlations(&scores, 4, AttributeValues::Boolean(&a)).is_err());
        assert!(component_correlations(&scores, 3, AttributeValues::Boolean(&a)).is_err());
        let nan = [f64::NAN, 1.0];
        assert!(component_correlations(&nan, 1, AttributeValues::Boolean(&a[..2])).is_err());
    }

    #[test]
    fn eta_of_two_groups_is_abs_r() {
        let scores = [0.5, -1.0, 2.0, 0.25, 3.0];
        let cat = [Some(10usize), Some(4), Some(10), Some(4), Some(4)];
        let b: Vec<Option<bool>> = cat.iter().map(|c| c.map(|c| c == 10)).collect();
        let eta = component_correlations(&scores, 1, AttributeValues::Categorical(&cat)).unwrap();
        let r = component_correlations(&scores, 1, AttributeValues::Boolean(&b)).unwrap();
        assert!((eta[0].value.unwrap() - r[0].value.unwrap().abs()).abs() < 1e-15);
    }
}
