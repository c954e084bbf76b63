//! Zero-shot classification from prompt templates.
//!
//! # Definitions (CLIP's and CLIP_benchmark's)
//!
//! - A class embedding is the mean of its prompts' embeddings, each L2-normalised first, then
//!   normalised again ([`class_embeddings`], in `f64`, stored as `f32`).
//! - logits = `logit_scale · cos(image, class)`, the scale being CLIP's 100 unless configured
//!   ([`logits`], [`probabilities`]).
//! - top-1 and top-5 accuracy (top-5 only with at least 5 classes), mean per-class recall
//!   (the mean over the classes present in the truth of each class's top-1 recall:
//!   scikit-learn's `balanced_accuracy_score`, which CLIP_benchmark reports), the confusion
//!   matrix (rows: true class, columns: predicted) and per-class accuracy.
//!
//! # Ties
//!
//! Classes are ordered by decreasing cosine, ties by increasing class index (a stable sort,
//! `np.argsort(-cos, kind="stable")`; the prediction is `np.argmax`). Ranking uses the cosine
//! itself, not the scaled logit: multiplying by 100 in `f32` can round two different cosines
//! to the same logit, and a positive scale never changes the order otherwise.
//!
//! An image whose best cosine is shared by several classes (identical class embeddings, say
//! two class names the tokenizer cannot tell apart) is counted in [`ZeroShot::tied_top1`], and
//! top-1 is given with its two order-free bounds: optimistic (a hit when the true class is
//! among the tied best) and pessimistic (a hit only when it is the single best).

use rayon::prelude::*;

use super::linalg::{matmul_nt_f32, non_empty, rows_per_block, same_dim};
use super::{check_unit_norm, softmax, AnalysisError, Embeddings};

/// Class embeddings (`n_classes × dim`, row-major): per class, the renormalised mean of its
/// L2-normalised prompt embeddings. `prompt_class[i]` is the class of prompt row `i`.
///
/// Every class needs at least one prompt; a class whose normalised prompts sum to zero has no
/// direction and is an error. Prompts need not be normalised (they are normalised here, as the
/// definition says) but must be finite and non-zero.
pub fn class_embeddings(
    prompts: Embeddings<'_>,
    prompt_class: &[usize],
    n_classes: usize,
) -> Result<Vec<f32>, AnalysisError> {
    non_empty("prompts", prompts)?;
    if n_classes == 0 {
        return Err(AnalysisError::Empty { what: "classes" });
    }
    if prompt_class.len() != prompts.rows() {
        return Err(AnalysisError::LengthMismatch {
            what: "prompt classes",
            expected: prompts.rows(),
            got: prompt_class.len(),
        });
    }
    if let Some(&c) = prompt_class.iter().find(|&&c| c >= n_classes) {
        return Err(AnalysisError::IndexOutOfRange {
            what: "prompt class",
            index: c,
            len: n_classes,
        });
    }
    let dim = prompts.dim();
    let mut sums = vec![0.0f64; n_classes * dim];
    let mut counts = vec![0usize; n_classes];
    for (i, &c) in prompt_class.iter().enumerate() {
        let p = prompts.row(i);
        if !p.iter().all(|v| v.is_finite()) {
            return Err(AnalysisError::NonFinite {
                what: "prompts",
                row: i,
            });
        }
        let norm = p.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(AnalysisError::Undefined(format!(
                "prompt {i} is all zeros and has no direction"
            )));
        }
        for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(p) {
            *s += v as f64 / norm;
        }
        counts[c] += 1;
    }
    let mut out = Vec::with_capacity(n_classes * dim);
    for c in 0..n_classes {
        if counts[c] == 0 {
            return Err(AnalysisError::Undefined(format!("class {c} has no prompt")));
        }
        let mean: Vec<f64> = sums[c * dim..(c + 1) * dim]
            .iter()
            .map(|s| s / counts[c] as f64)
            .collect();
        let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm.is_nan() || norm <= 1e-12 {
            return Err(AnalysisError::Undefined(format!(
                "the prompts of class {c} cancel out: their mean has no direction"
            )));
        }
        out.extend(mean.iter().map(|v| (v / norm) as f32));
    }
    Ok(out)
}

/// Top-1 accuracy and recall of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassAccuracy {
    /// Images of this class.
    pub support: usize,
    /// Of those, predicted correctly (top-1).
    pub correct: usize,
    /// `correct / support`, `None` when the class has no image.
    pub accuracy: Option<f64>,
}

/// Result of [`zero_shot`].
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroShot {
    pub n_images: usize,
    pub n_classes: usize,
    /// Top-1 prediction per image.
    pub predictions: Vec<usize>,
    /// 1-based rank of the true class per image (so top-k hits are `rank ≤ k` for any k).
    pub true_rank: Vec<usize>,
    pub top1_correct: usize,
    pub top1: f64,
    /// Images whose best cosine is shared by two or more classes.
    pub tied_top1: usize,
    /// Top-1 if every tie went the true class's way.
    pub top1_optimistic: f64,
    /// Top-1 if no tie went the true class's way.
    pub top1_pessimistic: f64,
    /// `None` with fewer than 5 classes.
    pub top5_correct: Option<usize>,
    pub top5: Option<f64>,
    /// Mean over classes with support of their top-1 recall.
    pub mean_per_class_recall: f64,
    pub per_class: Vec<ClassAccuracy>,
    /// `n_classes × n_classes`, row-major: `confusion[t * n_classes + p]` counts images of
    /// true class `t` predicted as `p`.
    pub confusion: Vec<usize>,
}

/// Rows of images per block so a block of cosines stays around 64 MiB.
fn image_block(n_classes: usize) -> usize {
    rows_per_block(n_classes, 4, 64 << 20, 4096)
}

fn check_pair(images: Embeddings<'_>, classes: Embeddings<'_>) -> Result<(), AnalysisError> {
    non_empty("images", images)?;
    non_empty("class embeddings", classes)?;
    same_dim("images", images, "class embeddings", classes)?;
    check_unit_norm("images", images)?;
    check_unit_norm("class embeddings", classes)
}

/// Zero-shot classification of L2-normalised `images` against L2-normalised class embeddings
/// (from [`class_embeddings`]); `labels[i]` is image `i`'s true class index.
pub fn zero_shot(
    images: Embeddings<'_>,
    classes: Embeddings<'_>,
    labels: &[usize],
) -> Result<ZeroShot, AnalysisError> {
    check_pair(images, classes)?;
    let (n, nc, dim) = (images.rows(), classes.rows(), images.dim());
    if labels.len() != n {
        return Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: n,
            got: labels.len(),
        });
    }
    if let Some(&c) = labels.iter().find(|&&c| c >= nc) {
        return Err(AnalysisError::IndexOutOfRange {
            what: "label",
            index: c,
            len: nc,
        });
    }
    let block = image_block(nc);
    // (prediction, true rank, tied best, true class among the best) per image, in order.
    let per_image: Vec<(usize, usize, bool, bool)> = images
        .data()
        .par_chunks(block * dim)
        .zip(labels.par_chunks(block))
        .flat_map_iter(|(imgs, labs)| {
            let mut cos = vec![0.0f32; labs.len() * nc];
            matmul_nt_f32(imgs, classes.data(), dim, &mut cos);
            let out: Vec<(usize, usize, bool, bool)> = cos
                .chunks_exact(nc)
                .zip(labs)
                .map(|(row, &t)| {
                    // np.argmax: the first maximum.
                    let mut pred = 0;
                    for (c, &v) in row.iter().enumerate() {
                        if v > row[pred] {
                            pred = c;
                        }
                    }
                    let s = row[t];
                    let rank = 1
                        + row[..t].iter().filter(|&&v| v >= s).count()
                        + row[t + 1..].iter().filter(|&&v| v > s).count();
                    let best = row[pred];
                    let tied = row.iter().filter(|&&v| v == best).count() > 1;
                    (pred, rank, tied, s == best)
                })
                .collect();
            out
        })
        .collect();

    let mut confusion = vec![0usize; nc * nc];
    let mut support = vec![0usize; nc];
    for (&(p, _, _, _), &t) in per_image.iter().zip(labels) {
        confusion[t * nc + p] += 1;
        support[t] += 1;
    }
    let per_class: Vec<ClassAccuracy> = (0..nc)
        .map(|c| {
            let correct = confusion[c * nc + c];
            ClassAccuracy {
                support: support[c],
                correct,
                accuracy: (support[c] > 0).then(|| correct as f64 / support[c] as f64),
            }
        })
        .collect();
    let recalls: Vec<f64> = per_class.iter().filter_map(|c| c.accuracy).collect();
    let mean_per_class_recall = recalls.iter().sum::<f64>() / recalls.len() as f64;
    let top1_correct = per_class.iter().map(|c| c.correct).sum::<usize>();
    let top5_correct = (nc >= 5).then(|| per_image.iter().filter(|&&(_, r, _, _)| r <= 5).count());
    let tied_top1 = per_image.iter().filter(|x| x.2).count();
    let optimistic = per_image.iter().filter(|x| x.3).count();
    let pessimistic = per_image.iter().filter(|x| x.3 && !x.2).count();
    Ok(ZeroShot {
        n_images: n,
        n_classes: nc,
        predictions: per_image.iter().map(|x| x.0).collect(),
        true_rank: per_image.iter().map(|x| x.1).collect(),
        top1_correct,
        top1: top1_correct as f64 / n as f64,
        tied_top1,
        top1_optimistic: optimistic as f64 / n as f64,
        top1_pessimistic: pessimistic as f64 / n as f64,
        top5_correct,
        top5: top5_correct.map(|c| c as f64 / n as f64),
        mean_per_class_recall,
        per_class,
        confusion,
    })
}

/// `logit_scale · cos(image, class)` for every pair (`n_images × n_classes`, row-major).
pub fn logits(
    images: Embeddings<'_>,
    classes: Embeddings<'_>,
    logit_scale: f64,
) -> Result<Vec<f32>, AnalysisError> {
    check_pair(images, classes)?;
    if !logit_scale.is_finite() || logit_scale <= 0.0 {
        return Err(AnalysisError::InvalidParameter {
            what: "logit_scale",
            value: logit_scale.to_string(),
            reason: "must be a positive finite number",
        });
    }
    let mut out = vec![0.0f32; images.rows() * classes.rows()];
    super::linalg::par_matmul_nt_f32(images.data(), classes.data(), images.dim(), &mut out);
    out.iter_mut()
        .for_each(|v| *v = (*v as f64 * logit_scale) as f32);
    Ok(out)
}

/// Class probabilities: the softmax over classes of `logit_scale · cos` for every image.
pub fn probabilities(
    images: Embeddings<'_>,
    classes: Embeddings<'_>,
    logit_scale: f64,
) -> Result<Vec<f32>, AnalysisError> {
    check_pair(images, classes)?;
    let mut cos = vec![0.0f32; images.rows() * classes.rows()];
    super::linalg::par_matmul_nt_f32(images.data(), classes.data(), images.dim(), &mut cos);
    softmax(&cos, classes.rows(), logit_scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: &[f32], dim: usize) -> Embeddings<'_> {
        Embeddings::new(v, dim).unwrap()
    }

    #[test]
    fn class_embedding_is_renormalised_mean() {
        // Two prompts for class 0 at 90 degrees, one (unnormalised) for class 1.
        let prompts = [1.0f32, 0.0, 0.0, 2.0, 0.0, 3.0];
        let c = class_embeddings(e(&prompts, 2), &[0, 0, 1], 2).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((c[0] - h).abs() < 1e-7 && (c[1] - h).abs() < 1e-7);
        assert_eq!(&c[2..], &[0.0, 1.0]);
        assert!(class_embeddings(e(&prompts, 2), &[0, 0, 0], 2).is_err());
        assert!(class_embeddings(e(&prompts, 2), &[0, 0, 2], 2).is_err());
        let cancel = [1.0f32, 0.0, -1.0, 0.0];
        assert!(class_embeddings(e(&cancel, 2), &[0, 0], 1).is_err());
    }

    #[test]
    fn ties_go_to_the_lower_class() {
        // Image 0 ties classes 0 and 1 (true class 1): predicted 0, rank 2.
        let classes = [1.0f32, 0.0, 0.0, 1.0];
        let images = [0.6f32, 0.6, 0.0, 1.0];
        let images: Vec<f32> = images
            .chunks(2)
            .flat_map(|r| {
                let n = (r[0] * r[0] + r[1] * r[1]).sqrt();
                [r[0] / n, r[1] / n]
            })
            .collect();
        let z = zero_shot(e(&images, 2), e(&classes, 2), &[1, 1]).unwrap();
        assert_eq!(z.predictions, vec![0, 1]);
        assert_eq!(z.true_rank, vec![2, 1]);
        assert_eq!(z.top1_correct, 1);
        assert_eq!(z.top5, None);
        assert_eq!(z.confusion, vec![0, 0, 1, 1]);
        assert_eq!(z.per_class[0].accuracy, None);
        assert_eq!(z.mean_per_class_recall, 0.5);
        // Image 0's tie decides its hit: 2/2 if it went to class 1, 1/2 if not.
        assert_eq!(z.tied_top1, 1);
        assert_eq!(z.top1_optimistic, 1.0);
        assert_eq!(z.top1_pessimistic, 0.5);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let classes = [1.0f32, 0.0];
        let images = [1.0f32, 0.0];
        assert!(zero_shot(e(&images, 2), e(&classes, 2), &[1]).is_err());
        assert!(zero_shot(e(&images, 2), e(&classes, 2), &[]).is_err());
        assert!(zero_shot(e(&[], 2), e(&classes, 2), &[]).is_err());
        assert!(zero_shot(e(&[2.0, 0.0], 2), e(&classes, 2), &[0]).is_err());
        assert!(logits(e(&images, 2), e(&classes, 2), -1.0).is_err());
        let l = logits(e(&images, 2), e(&classes, 2), 100.0).unwrap();
        assert_eq!(l, vec![100.0]);
        let p = probabilities(e(&images, 2), e(&classes, 2), 100.0).unwrap();
        assert_eq!(p, vec![1.0]);
    }
}
