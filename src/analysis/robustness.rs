//! Robustness summaries: corruption error (CE) and its mean (mCE), plain and relative, as
//! Hendrycks & Dietterich define them for ImageNet-C (ICLR 2019), and effective robustness,
//! Taori et al.'s distance above the line that models' shifted accuracies follow (NeurIPS 2020).
//!
//! Errors are fractions in [0, 1] (1 − zero-shot top-1, 1 − recall@1, ...), measured per
//! (model, corruption, severity) and on the clean images. With `f` the model and `ref` the
//! reference model (AlexNet in the paper; the study's choice here):
//!
//! - CE_c = Σ_s E^f_{s,c} / Σ_s E^ref_{s,c}
//! - relative CE_c = Σ_s (E^f_{s,c} − E^f_clean) / Σ_s (E^ref_{s,c} − E^ref_clean)
//! - mCE and relative mCE: their means over the corruptions (the paper's mCE is over the 15
//!   benchmark corruptions; the 4 held-out ones are reported apart).
//!
//! The paper prints these as percentages (× 100); here they are ratios, 1 meaning "as the
//! reference". A CE whose reference never errs, or a relative CE whose reference does not get
//! worse under the corruption, is undefined: it is `None` with a note, and so is a mean over
//! it.
//!
//! Effective robustness fits logit(shifted accuracy) = a · logit(clean accuracy) + b by least
//! squares over the study's models (at least three) and reports, per model, its shifted
//! accuracy minus the fit's prediction mapped back to accuracy (Taori et al.'s ρ), the residual
//! in logit space, and the same with the model left out of the fit (the paper fits the line on
//! other models; with few models, fitting on all shrinks each model's own residual).
//! Accuracies of exactly 0 or 1 have no logit: they are clamped to [ε, 1 − ε] (callers pass
//! half an item, 0.5 / n) and counted.

use super::AnalysisError;

/// Reference sums at or below this are taken as zero. Errors are fractions k/n, so a true sum
/// is 0 or at least 1/n; float rounding of a sum of equal errors minus the clean error leaves
/// ~1e-16 instead of 0, which would turn a relative CE into 10^15.
pub const ZERO_SUM: f64 = 1e-9;

/// One measured error of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct SeverityError {
    pub corruption: String,
    pub severity: u32,
    /// In [0, 1].
    pub error: f64,
}

/// A model's errors on the clean images and under each (corruption, severity).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelErrors {
    pub clean: f64,
    pub corrupted: Vec<SeverityError>,
}

/// CE of one corruption.
#[derive(Debug, Clone, PartialEq)]
pub struct CorruptionError {
    pub corruption: String,
    /// Severities summed over, ascending.
    pub severities: Vec<u32>,
    /// Σ_s E^f_{s,c}.
    pub error_sum: f64,
    /// Σ_s E^ref_{s,c}.
    pub reference_error_sum: f64,
    pub ce: Option<f64>,
    /// Σ_s (E^f_{s,c} − E^f_clean).
    pub degradation_sum: f64,
    /// Σ_s (E^ref_{s,c} − E^ref_clean).
    pub reference_degradation_sum: f64,
    pub relative_ce: Option<f64>,
}

/// CE per corruption and their means, for one model against the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct CorruptionErrorSummary {
    /// In the order the corruptions first appear in the model's errors.
    pub per_corruption: Vec<CorruptionError>,
    pub mce: Option<f64>,
    pub relative_mce: Option<f64>,
    /// Why a number is undefined, one line each.
    pub notes: Vec<String>,
}

/// The variant name `<corruption>-<severity>` split (`contrast-3` → (`contrast`, 3)), for
/// stores whose rows carry no `noise` / `noise_level` columns.
pub fn parse_variant(name: &str) -> Option<(&str, u32)> {
    let (corruption, severity) = name.rsplit_once('-')?;
    let s: u32 = severity.parse().ok()?;
    (!corruption.is_empty()).then_some((corruption, s))
}

fn check_error(what: &'static str, v: f64) -> Result<(), AnalysisError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(AnalysisError::InvalidParameter {
            what,
            value: v.to_string(),
            reason: "an error rate must be in [0, 1]",
        })
    }
}

/// A corruption and its (severity, error) pairs, by severity.
type Curve = (String, Vec<(u32, f64)>);

/// The curve of each corruption, in order of first appearance; a repeated (corruption,
/// severity) is an error.
fn curves(what: &'static str, errors: &[SeverityError]) -> Result<Vec<Curve>, AnalysisError> {
    let mut out: Vec<Curve> = Vec::new();
    for e in errors {
        check_error(what, e.error)?;
        let pos = match out.iter().position(|(c, _)| *c == e.corruption) {
            Some(p) => p,
            None => {
                out.push((e.corruption.clone(), Vec::new()));
                out.len() - 1
            }
        };
        let curve = &mut out[pos].1;
        if curve.iter().any(|(s, _)| *s == e.severity) {
            return Err(AnalysisError::Undefined(format!(
                "{what}: {} severity {} is given twice",
                e.corruption, e.severity
            )));
        }
        curve.push((e.severity, e.error));
    }
    for (_, curve) in out.iter_mut() {
        curve.sort_by_key(|(s, _)| *s);
    }
    Ok(out)
}

/// CE and relative CE of `model` against `reference` for every corruption the model was
/// measured under, and their means. The reference must have been measured at the same
/// severities of each of those corruptions.
pub fn corruption_errors(
    model: &ModelErrors,
    reference: &ModelErrors,
) -> Result<CorruptionErrorSummary, AnalysisError> {
    check_error("clean error", model.clean)?;
    check_error("reference clean error", reference.clean)?;
    if model.corrupted.is_empty() {
        return Err(AnalysisError::Empty {
            what: "corrupted errors",
        });
    }
    let mine = curves("errors", &model.corrupted)?;
    let theirs = curves("reference errors", &reference.corrupted)?;
    let mut per_corruption = Vec::with_capacity(mine.len());
    let mut notes = Vec::new();
    for (corruption, curve) in &mine {
        let Some((_, ref_curve)) = theirs.iter().find(|(c, _)| c == corruption) else {
            return Err(AnalysisError::Undefined(format!(
                "the reference has no errors under {corruption}"
            )));
        };
        let severities: Vec<u32> = curve.iter().map(|(s, _)| *s).collect();
        let ref_severities: Vec<u32> = ref_curve.iter().map(|(s, _)| *s).collect();
        if severities != ref_severities {
            return Err(AnalysisError::Undefined(format!(
                "{corruption}: the model has severities {severities:?}, the reference \
                 {ref_severities:?}; CE sums over the same severities"
            )));
        }
        let error_sum: f64 = curve.iter().map(|(_, e)| e).sum();
        let reference_error_sum: f64 = ref_curve.iter().map(|(_, e)| e).sum();
        let degradation_sum: f64 = curve.iter().map(|(_, e)| e - model.clean).sum();
        let reference_degradation_sum: f64 =
            ref_curve.iter().map(|(_, e)| e - reference.clean).sum();
        let ce = if reference_error_sum > ZERO_SUM {
            Some(error_sum / reference_error_sum)
        } else {
            notes.push(format!(
                "{corruption}: CE undefined: the reference makes no error at any severity"
            ));
            None
        };
        let relative_ce = if reference_degradation_sum > ZERO_SUM {
            Some(degradation_sum / reference_degradation_sum)
        } else {
            notes.push(format!(
                "{corruption}: relative CE undefined: the reference's error does not rise \
                 above its clean error (sum of changes {reference_degradation_sum:.4})"
            ));
            None
        };
        per_corruption.push(CorruptionError {
            corruption: corruption.clone(),
            severities,
            error_sum,
            reference_error_sum,
            ce,
            degradation_sum,
            reference_degradation_sum,
            relative_ce,
        });
    }
    let mean = |values: Vec<Option<f64>>| -> Option<f64> {
        let n = values.len() as f64;
        values
            .into_iter()
            .try_fold(0.0, |acc, v| v.map(|v| acc + v))
            .map(|s| s / n)
    };
    let mce = mean(per_corruption.iter().map(|c| c.ce).collect());
    let relative_mce = mean(per_corruption.iter().map(|c| c.relative_ce).collect());
    if mce.is_none() {
        notes.push("mCE undefined: a corruption's CE is undefined".into());
    }
    if relative_mce.is_none() {
        notes.push("relative mCE undefined: a corruption's relative CE is undefined".into());
    }
    Ok(CorruptionErrorSummary {
        per_corruption,
        mce,
        relative_mce,
        notes,
    })
}

/// A model's accuracy in and out of distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyPair {
    pub model: String,
    pub clean: f64,
    pub shifted: f64,
}

/// One model's place relative to the fitted line.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResidual {
    pub model: String,
    pub clean: f64,
    pub shifted: f64,
    /// The fit's shifted accuracy at this model's clean accuracy.
    pub predicted: f64,
    /// shifted − predicted (Taori et al.'s ρ).
    pub effective_robustness: f64,
    /// logit(shifted) − fitted logit.
    pub logit_residual: f64,
    /// ρ against the line fitted on the other models only; `None` when their clean accuracies
    /// are all equal (no line).
    pub effective_robustness_loo: Option<f64>,
}

/// The line in logit space and every model's residual.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveRobustness {
    pub slope: f64,
    pub intercept: f64,
    /// 1 − SS_res/SS_tot in logit space; `None` when every shifted accuracy is the same.
    pub r_squared: Option<f64>,
    pub models: Vec<ModelResidual>,
    /// Accuracies clamped to [ε, 1 − ε] before the logit.
    pub clamped: usize,
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Least squares y = a·x + b; `None` when the x are all equal.
fn fit_line(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxx: f64 = x.iter().map(|v| (v - mx) * (v - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    if sxx <= f64::EPSILON * n * (1.0 + mx * mx) {
        return None;
    }
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// Effective robustness of each model (see the module docs). `epsilon` in (0, 0.5) is where
/// accuracies of 0 and 1 are clamped to.
pub fn effective_robustness(
    models: &[AccuracyPair],
    epsilon: f64,
) -> Result<EffectiveRobustness, AnalysisError> {
    if models.len() < 3 {
        return Err(AnalysisError::Undefined(format!(
            "effective robustness needs at least 3 models, the study has {}",
            models.len()
        )));
    }
    if !(epsilon > 0.0 && epsilon < 0.5) {
        return Err(AnalysisError::InvalidParameter {
            what: "epsilon",
            value: epsilon.to_string(),
            reason: "must be in (0, 0.5)",
        });
    }
    let mut clamped = 0;
    let mut to_logit = |p: f64| -> Result<f64, AnalysisError> {
        check_error("accuracy", p)?;
        let q = p.clamp(epsilon, 1.0 - epsilon);
        if q != p {
            clamped += 1;
        }
        Ok(logit(q))
    };
    let mut x = Vec::with_capacity(models.len());
    let mut y = Vec::with_capacity(models.len());
    for m in models {
        x.push(to_logit(m.clean)?);
        y.push(to_logit(m.shifted)?);
    }
    let (slope, intercept) = fit_line(&x, &y).ok_or_else(|| {
        AnalysisError::Undefined(
            "effective robustness: every model has the same clean accuracy, so no line fits".into(),
        )
    })?;
    let my = y.iter().sum::<f64>() / y.len() as f64;
    let ss_tot: f64 = y.iter().map(|v| (v - my) * (v - my)).sum();
    let ss_res: f64 = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (b - (slope * a + intercept)).powi(2))
        .sum();
    let r_squared = (ss_tot > 0.0).then(|| 1.0 - ss_res / ss_tot);
    let residuals = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let fitted = slope * x[i] + intercept;
            let predicted = sigmoid(fitted);
            let others: Vec<usize> = (0..models.len()).filter(|&j| j != i).collect();
            let ox: Vec<f64> = others.iter().map(|&j| x[j]).collect();
            let oy: Vec<f64> = others.iter().map(|&j| y[j]).collect();
            let loo = fit_line(&ox, &oy).map(|(a, b)| m.shifted - sigmoid(a * x[i] + b));
            ModelResidual {
                model: m.model.clone(),
                clean: m.clean,
                shifted: m.shifted,
                predicted,
                effective_robustness: m.shifted - predicted,
                logit_residual: y[i] - fitted,
                effective_robustness_loo: loo,
            }
        })
        .collect();
    Ok(EffectiveRobustness {
        slope,
        intercept,
        r_squared,
        models: residuals,
        clamped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(clean: f64, v: &[(&str, u32, f64)]) -> ModelErrors {
        ModelErrors {
            clean,
            corrupted: v
                .iter()
                .map(|&(c, s, e)| SeverityError {
                    corruption: c.into(),
                    severity: s,
                    error: e,
                })
                .collect(),
        }
    }

    #[test]
    fn hand_computed_ce() {
        let model = errs(0.1, &[("fog", 1, 0.2), ("fog", 2, 0.4), ("snow", 1, 0.3)]);
        let reference = errs(0.2, &[("fog", 2, 0.6), ("fog", 1, 0.4), ("snow", 1, 0.5)]);
        let s = corruption_errors(&model, &reference).unwrap();
        assert_eq!(s.per_corruption[0].corruption, "fog");
        assert!((s.per_corruption[0].ce.unwrap() - 0.6).abs() < 1e-12);
        // (0.1 + 0.3) / (0.2 + 0.4)
        assert!((s.per_corruption[0].relative_ce.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.mce.unwrap() - (0.6 + 0.6) / 2.0).abs() < 1e-12);
        assert!(s.notes.is_empty());
    }

    #[test]
    fn undefined_ratios_are_none_with_a_note() {
        let model = errs(0.1, &[("fog", 1, 0.2)]);
        let reference = errs(0.0, &[("fog", 1, 0.0)]);
        let s = corruption_errors(&model, &reference).unwrap();
        assert_eq!(s.per_corruption[0].ce, None);
        assert_eq!(s.mce, None);
        assert_eq!(s.relative_mce, None);
        assert_eq!(s.notes.len(), 4);
        let bad = errs(0.1, &[("fog", 2, 0.2)]);
        assert!(corruption_errors(&bad, &errs(0.1, &[("fog", 1, 0.2)])).is_err());
        assert!(corruption_errors(&errs(0.1, &[("fog", 1, 1.5)]), &reference).is_err());
        assert!(
            corruption_errors(&errs(0.1, &[("fog", 1, 0.2), ("fog", 1, 0.3)]), &reference).is_err()
        );
    }

    #[test]
    fn effective_robustness_of_points_on_a_line_is_zero() {
        let line = |c: f64| sigmoid(0.8 * logit(c) - 0.5);
        let mut pts: Vec<AccuracyPair> = [0.3, 0.5, 0.7, 0.9]
            .iter()
            .enumerate()
            .map(|(i, &c)| AccuracyPair {
                model: format!("m{i}"),
                clean: c,
                shifted: line(c),
            })
            .collect();
        let er = effective_robustness(&pts, 1e-3).unwrap();
        assert!((er.slope - 0.8).abs() < 1e-12 && (er.intercept + 0.5).abs() < 1e-12);
        assert!(er
            .models
            .iter()
            .all(|m| m.effective_robustness.abs() < 1e-12));
        assert!((er.r_squared.unwrap() - 1.0).abs() < 1e-12);
        pts[3].shifted += 0.05;
        let er = effective_robustness(&pts, 1e-3).unwrap();
        assert!(er.models[3].effective_robustness > 0.0);
        assert!(er.models[3].effective_robustness_loo.unwrap() > er.models[3].effective_robustness);
        assert!(effective_robustness(&pts[..2], 1e-3).is_err());
        let same: Vec<AccuracyPair> = (0..3)
            .map(|i| AccuracyPair {
                model: i.to_string(),
                clean: 0.5,
                shifted: 0.1 * i as f64,
            })
            .collect();
        assert!(effective_robustness(&same, 1e-3).is_err());
    }

    #[test]
    fn variant_names_parse() {
        assert_eq!(parse_variant("contrast-3"), Some(("contrast", 3)));
        assert_eq!(
            parse_variant("jpeg_compression-5"),
            Some(("jpeg_compression", 5))
        );
        assert_eq!(parse_variant("gaussian-0.1"), None);
        assert_eq!(parse_variant("clean"), None);
    }
}
