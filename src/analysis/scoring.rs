//! Image–text probabilities the way each model family scores them.
//!
//! - CLIP (`softmax`): `p_ij = softmax_j(logit_scale · cos_ij)`; a row of candidates competes,
//!   probabilities sum to 1 ([`super::softmax`]).
//! - SigLIP (`sigmoid`): `p_ij = σ(logit_scale · cos_ij + logit_bias)`; every pair is judged on
//!   its own (the model was trained with a pairwise sigmoid loss), probabilities do not sum to 1
//!   and a row may have none or several above ½.
//!
//! The ranking of candidates is the same for both (a positive scale is monotonic), so top-k
//! accuracy and recall do not depend on the kind; the probabilities, calibration and any
//! threshold do. The scale and bias are the model's own (recorded by the export, read from the
//! store with `store::read_scoring`).

use super::{softmax, AnalysisError};

/// How a model turns cosines into probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scoring {
    Softmax { logit_scale: f64 },
    Sigmoid { logit_scale: f64, logit_bias: f64 },
}

impl Scoring {
    /// The scale of the logits.
    pub fn logit_scale(&self) -> f64 {
        match *self {
            Scoring::Softmax { logit_scale } | Scoring::Sigmoid { logit_scale, .. } => logit_scale,
        }
    }

    /// `softmax` or `sigmoid`, as tables name it.
    pub fn name(&self) -> &'static str {
        match self {
            Scoring::Softmax { .. } => "softmax",
            Scoring::Sigmoid { .. } => "sigmoid",
        }
    }

    /// The logit of one cosine: `scale · cos (+ bias)`.
    pub fn logit(&self, cos: f64) -> f64 {
        match *self {
            Scoring::Softmax { logit_scale } => logit_scale * cos,
            Scoring::Sigmoid {
                logit_scale,
                logit_bias,
            } => logit_scale * cos + logit_bias,
        }
    }

    fn check(&self) -> Result<(), AnalysisError> {
        let (scale, bias) = match *self {
            Scoring::Softmax { logit_scale } => (logit_scale, 0.0),
            Scoring::Sigmoid {
                logit_scale,
                logit_bias,
            } => (logit_scale, logit_bias),
        };
        if !(scale.is_finite() && scale > 0.0) {
            return Err(AnalysisError::InvalidParameter {
                what: "logit_scale",
                value: scale.to_string(),
                reason: "must be a positive finite number",
            });
        }
        if !bias.is_finite() {
            return Err(AnalysisError::InvalidParameter {
                what: "logit_bias",
                value: bias.to_string(),
                reason: "must be a finite number",
            });
        }
        Ok(())
    }
}

/// `σ(x) = 1 / (1 + e^{-x})`, without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Probabilities of a row-major `rows × cols` matrix of cosines (`scores`): a softmax over
/// each row, or a sigmoid of each entry.
pub fn probabilities(
    scores: &[f32],
    cols: usize,
    scoring: Scoring,
) -> Result<Vec<f32>, AnalysisError> {
    scoring.check()?;
    match scoring {
        Scoring::Softmax { logit_scale } => softmax(scores, cols, logit_scale),
        Scoring::Sigmoid { .. } => {
            if cols == 0 {
                return Err(AnalysisError::Empty {
                    what: "sigmoid columns",
                });
            }
            if !scores.len().is_multiple_of(cols) {
                return Err(AnalysisError::Ragged {
                    what: "sigmoid scores",
                    len: scores.len(),
                    dim: cols,
                });
            }
            let mut out = Vec::with_capacity(scores.len());
            for (row, s) in scores.chunks_exact(cols).enumerate() {
                if !s.iter().all(|a| a.is_finite()) {
                    return Err(AnalysisError::NonFinite {
                        what: "sigmoid scores",
                        row,
                    });
                }
                out.extend(s.iter().map(|&c| sigmoid(scoring.logit(c as f64)) as f32));
            }
            Ok(out)
        }
    }
}

/// The logits (`scale · cos (+ bias)`) of a matrix of cosines, as the model's own
/// `logits_per_image` would give them.
pub fn logits(scores: &[f32], scoring: Scoring) -> Result<Vec<f32>, AnalysisError> {
    scoring.check()?;
    Ok(scores
        .iter()
        .map(|&c| scoring.logit(c as f64) as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_pairwise_and_stable() {
        let s = Scoring::Sigmoid {
            logit_scale: 10.0,
            logit_bias: -5.0,
        };
        let p = probabilities(&[0.5, 0.0, 1.0, 0.9], 2, s).unwrap();
        assert!((p[0] - 0.5).abs() < 1e-7);
        assert!((p[1] as f64 - sigmoid(-5.0)).abs() < 1e-7);
        // Rows need not sum to one.
        assert!((p[2] + p[3] - 1.0).abs() > 0.1);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(-30.0) - 9.357_622_968_839_3e-14).abs() < 1e-25);
        let l = logits(&[0.5], s).unwrap();
        assert_eq!(l, vec![0.0]);
    }

    #[test]
    fn softmax_kind_is_the_clip_softmax() {
        let s = Scoring::Softmax { logit_scale: 100.0 };
        let p = probabilities(&[0.3, 0.29], 2, s).unwrap();
        assert_eq!(p, softmax(&[0.3, 0.29], 2, 100.0).unwrap());
        assert!((p[0] + p[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn bad_parameters_are_errors() {
        let bad = Scoring::Sigmoid {
            logit_scale: 1.0,
            logit_bias: f64::NAN,
        };
        assert!(probabilities(&[0.1], 1, bad).is_err());
        let bad = Scoring::Softmax { logit_scale: 0.0 };
        assert!(probabilities(&[0.1], 1, bad).is_err());
        let ok = Scoring::Sigmoid {
            logit_scale: 1.0,
            logit_bias: 0.0,
        };
        assert!(probabilities(&[0.1, 0.2, 0.3], 2, ok).is_err());
        assert!(probabilities(&[f32::NAN], 1, ok).is_err());
    }
}
