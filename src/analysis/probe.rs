//! How separable the classes are: kNN and linear-probe accuracy on a train/test split.
//!
//! - [`stratified_split`]: a seeded split that keeps each class's proportion.
//! - [`knn_predict`] / [`knn_accuracy`]: k nearest neighbours by cosine similarity
//!   (L2-normalised inputs), majority vote.
//! - [`LogisticRegression`] / [`linear_probe`]: multinomial logistic regression with an L2
//!   penalty, fitted with L-BFGS to convergence, as CLIP's linear-probe evaluation does with
//!   scikit-learn.
//!
//! # Tie rules
//!
//! - Neighbours are ordered by decreasing cosine, ties by increasing training index.
//! - A vote tie goes to the **smallest class id** among the tied classes, which is what
//!   scikit-learn's `KNeighborsClassifier` (uniform weights, `scipy.stats.mode`) does; with
//!   ids from [`Labels::from_strings`](super::Labels::from_strings), that is the first name in
//!   sorted order.
//! - Linear-probe predictions are the arg-max of the logits, the lowest class id on ties.

use rayon::prelude::*;

use super::linalg::{matmul_nt_f64, matmul_tn_acc_f64, non_empty, same_dim};
use super::rng::Rng;
use super::scan::{merge_top, ScoreBlock, Shape};
use super::{check_finite, check_unit_norm, AnalysisError, Embeddings};

/// Indices of the training and test samples, each ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// A seeded stratified split: in every class, `round(test_fraction × class size)` samples go
/// to the test set, at least one and at most all but one for classes of two or more, none
/// for a class with a single sample (it cannot be both learned and tested). The samples are
/// chosen by a Fisher–Yates shuffle of the class (in index order) on ChaCha8 stream `c` of
/// `seed`, `c` being the class's rank among the sorted distinct labels, so a class's split
/// does not depend on the other classes.
pub fn stratified_split(
    labels: &[usize],
    test_fraction: f64,
    seed: u64,
) -> Result<Split, AnalysisError> {
    if labels.is_empty() {
        return Err(AnalysisError::Empty { what: "labels" });
    }
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(AnalysisError::InvalidParameter {
            what: "test_fraction",
            value: test_fraction.to_string(),
            reason: "must be strictly between 0 and 1",
        });
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| (labels[i], i));
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (class_rank, members) in order.chunk_by(|&a, &b| labels[a] == labels[b]).enumerate() {
        let mut members = members.to_vec();
        let n = members.len();
        let n_test = if n < 2 {
            0
        } else {
            ((test_fraction * n as f64).round() as usize).clamp(1, n - 1)
        };
        Rng::new(seed, class_rank as u64).shuffle(&mut members);
        test.extend_from_slice(&members[..n_test]);
        train.extend_from_slice(&members[n_test..]);
    }
    if test.is_empty() {
        return Err(AnalysisError::Undefined(
            "no class has two samples, so nothing can be held out for testing".into(),
        ));
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok(Split { train, test })
}

/// Accuracy of a probe on the test set of a split.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeScore {
    pub n_train: usize,
    pub n_test: usize,
    pub correct: usize,
    /// `correct / n_test`.
    pub accuracy: f64,
    /// Predicted label of each test sample, in `split.test` order.
    pub predictions: Vec<usize>,
}

/// Predicts a label for every row of `test` by majority vote of its `k` most cosine-similar
/// rows of `train` (tie rules in the module docs). Both sets must be L2-normalised.
pub fn knn_predict(
    train: Embeddings<'_>,
    train_labels: &[usize],
    test: Embeddings<'_>,
    k: usize,
) -> Result<Vec<usize>, AnalysisError> {
    non_empty("training samples", train)?;
    non_empty("test samples", test)?;
    same_dim("training samples", train, "test samples", test)?;
    check_unit_norm("training samples", train)?;
    check_unit_norm("test samples", test)?;
    let (ntr, dim) = (train.rows(), train.dim());
    if train_labels.len() != ntr {
        return Err(AnalysisError::LengthMismatch {
            what: "training labels",
            expected: ntr,
            got: train_labels.len(),
        });
    }
    if k == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "k",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if k > ntr {
        return Err(AnalysisError::TooLarge {
            what: "k",
            k,
            n: ntr,
            of: "training samples",
        });
    }
    // Test rows in blocks against chunks of the training set, all products of one shape (see
    // `scan`): a test row's similarities, and so its prediction, are the same bits however
    // the test rows are split into blocks, threads, or blocks of a cluster array, and memory
    // stays at one block of scores whatever the training set's size.
    let shape = Shape::for_gallery(ntr, dim, 8 << 20);
    let preds = test
        .data()
        .par_chunks(shape.queries * dim)
        .map_init(
            || ScoreBlock::new(shape),
            |block, rows| {
                let m = rows.len() / dim;
                block.set_queries(rows);
                let mut tops: Vec<Vec<(usize, f32)>> = vec![Vec::new(); m];
                for c0 in (0..ntr).step_by(shape.gallery) {
                    let c1 = (c0 + shape.gallery).min(ntr);
                    block.product(&train.data()[c0 * dim..c1 * dim]);
                    for (i, top) in tops.iter_mut().enumerate() {
                        merge_top(top, &block.row(i)[..c1 - c0], c0, k);
                    }
                }
                tops.into_iter()
                    .map(|top| {
                        let mut votes: Vec<usize> =
                            top.iter().map(|&(j, _)| train_labels[j]).collect();
                        votes.sort_unstable();
                        // Runs of equal labels in ascending order: the first longest run wins.
                        let (mut best, mut best_n) = (votes[0], 0);
                        for run in votes.chunk_by(|a, b| a == b) {
                            if run.len() > best_n {
                                best = run[0];
                                best_n = run.len();
                            }
                        }
                        best
                    })
                    .collect::<Vec<usize>>()
            },
        )
        .flatten_iter()
        .collect();
    Ok(preds)
}

/// Rows `idx` of `x`, copied.
fn gather(x: Embeddings<'_>, idx: &[usize]) -> Vec<f32> {
    idx.iter().flat_map(|&i| x.row(i)).copied().collect()
}

fn check_split(n: usize, split: &Split) -> Result<(), AnalysisError> {
    if split.train.is_empty() {
        return Err(AnalysisError::Empty {
            what: "training split",
        });
    }
    if split.test.is_empty() {
        return Err(AnalysisError::Empty { what: "test split" });
    }
    let mut seen = vec![false; n];
    for &i in split.train.iter().chain(&split.test) {
        if i >= n {
            return Err(AnalysisError::IndexOutOfRange {
                what: "split",
                index: i,
                len: n,
            });
        }
        if seen[i] {
            return Err(AnalysisError::InvalidParameter {
                what: "split",
                value: i.to_string(),
                reason: "a sample appears twice (train and test must be disjoint)",
            });
        }
        seen[i] = true;
    }
    Ok(())
}

fn score(labels: &[usize], split: &Split, predictions: Vec<usize>) -> ProbeScore {
    let correct = split
        .test
        .iter()
        .zip(&predictions)
        .filter(|&(&i, &p)| labels[i] == p)
        .count();
    ProbeScore {
        n_train: split.train.len(),
        n_test: split.test.len(),
        correct,
        accuracy: correct as f64 / split.test.len() as f64,
        predictions,
    }
}

/// The kNN predictions of test samples `split.test[queries]` (a block of the test set: the
/// same labels [`knn_accuracy`] predicts for them).
pub fn knn_predictions(
    x: Embeddings<'_>,
    labels: &[usize],
    split: &Split,
    k: usize,
    queries: std::ops::Range<usize>,
) -> Result<Vec<usize>, AnalysisError> {
    if labels.len() != x.rows() {
        return Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: x.rows(),
            got: labels.len(),
        });
    }
    check_split(x.rows(), split)?;
    let Some(block) = split.test.get(queries.clone()) else {
        return Err(AnalysisError::IndexOutOfRange {
            what: "test queries",
            index: queries.end,
            len: split.test.len(),
        });
    };
    let dim = x.dim();
    let train = gather(x, &split.train);
    let test = gather(x, block);
    let train_labels: Vec<usize> = split.train.iter().map(|&i| labels[i]).collect();
    knn_predict(
        Embeddings::named("training samples", &train, dim)?,
        &train_labels,
        Embeddings::named("test samples", &test, dim)?,
        k,
    )
}

/// The score of predictions of every test sample of `split`, in `split.test` order.
pub fn score_predictions(
    labels: &[usize],
    split: &Split,
    predictions: Vec<usize>,
) -> Result<ProbeScore, AnalysisError> {
    if predictions.len() != split.test.len() {
        return Err(AnalysisError::LengthMismatch {
            what: "predictions",
            expected: split.test.len(),
            got: predictions.len(),
        });
    }
    Ok(score(labels, split, predictions))
}

/// kNN accuracy on `split` of the L2-normalised rows of `x`.
pub fn knn_accuracy(
    x: Embeddings<'_>,
    labels: &[usize],
    split: &Split,
    k: usize,
) -> Result<ProbeScore, AnalysisError> {
    if labels.len() != x.rows() {
        return Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: x.rows(),
            got: labels.len(),
        });
    }
    check_split(x.rows(), split)?;
    let dim = x.dim();
    let train = gather(x, &split.train);
    let test = gather(x, &split.test);
    let train_labels: Vec<usize> = split.train.iter().map(|&i| labels[i]).collect();
    let preds = knn_predict(
        Embeddings::named("training samples", &train, dim)?,
        &train_labels,
        Embeddings::named("test samples", &test, dim)?,
        k,
    )?;
    Ok(score(labels, split, preds))
}

/// Options of the linear probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearProbeOptions {
    /// L2 penalty λ on the weights (not the biases) of the objective
    /// `mean cross-entropy + λ/2 ‖W‖²`. scikit-learn's `LogisticRegression(C=c)` on `n`
    /// training samples is `λ = 1 / (c · n)`.
    pub l2: f64,
    /// L-BFGS iterations at most.
    pub max_iter: usize,
    /// Converged when the largest gradient component is at most this.
    pub tol: f64,
}

impl Default for LinearProbeOptions {
    /// `λ = 1e-3` (scikit-learn's `C = 1` at 1,000 samples), 1,000 iterations, tolerance
    /// 1e-6.
    fn default() -> Self {
        LinearProbeOptions {
            l2: 1e-3,
            max_iter: 1000,
            tol: 1e-6,
        }
    }
}

/// A fitted multinomial logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    /// Label of each output, ascending.
    pub classes: Vec<usize>,
    pub dim: usize,
    /// `classes.len() × dim`, row-major.
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
    /// L-BFGS iterations run.
    pub iterations: usize,
    /// Whether the gradient tolerance (or the loss's numerical floor) was reached.
    pub converged: bool,
    /// Final value of the objective.
    pub loss: f64,
}

/// Rows per block of the loss/gradient evaluation (fixed: results do not depend on the
/// thread count).
const LR_BLOCK: usize = 1024;

/// Objective and gradient of the regularised multinomial logistic loss at `theta`
/// (`C × D` weights then `C` biases).
fn loss_grad(
    x: &[f32],
    y: &[usize],
    dim: usize,
    nc: usize,
    l2: f64,
    theta: &[f64],
    grad: &mut [f64],
) -> f64 {
    let n = y.len();
    let (w, b) = theta.split_at(nc * dim);
    let parts: Vec<(f64, Vec<f64>)> = x
        .par_chunks(LR_BLOCK * dim)
        .zip(y.par_chunks(LR_BLOCK))
        .map(|(rows, ys)| {
            let m = ys.len();
            let xb: Vec<f64> = rows.iter().map(|&v| v as f64).collect();
            let mut z = vec![0.0f64; m * nc];
            matmul_nt_f64(&xb, w, dim, &mut z);
            let mut loss = 0.0;
            for (zr, &yi) in z.chunks_exact_mut(nc).zip(ys) {
                for (v, bb) in zr.iter_mut().zip(b) {
                    *v += bb;
                }
                let max = zr.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
                let sum: f64 = zr.iter().map(|&v| (v - max).exp()).sum();
                let lse = max + sum.ln();
                loss += lse - zr[yi];
                // z becomes (softmax − onehot) / n: the gradient of the mean loss.
                for v in zr.iter_mut() {
                    *v = (*v - lse).exp();
                }
                zr[yi] -= 1.0;
                zr.iter_mut().for_each(|v| *v /= n as f64);
            }
            let mut g = vec![0.0f64; nc * dim + nc];
            matmul_tn_acc_f64(&z, nc, &xb, dim, &mut g[..nc * dim]);
            for zr in z.chunks_exact(nc) {
                for (gb, v) in g[nc * dim..].iter_mut().zip(zr) {
                    *gb += v;
                }
            }
            (loss, g)
        })
        .collect();
    grad.fill(0.0);
    let mut loss = 0.0;
    for (l, g) in parts {
        loss += l;
        for (a, b) in grad.iter_mut().zip(&g) {
            *a += b;
        }
    }
    loss /= n as f64;
    let mut penalty = 0.0;
    for (gw, &ww) in grad[..nc * dim].iter_mut().zip(w) {
        *gw += l2 * ww;
        penalty += ww * ww;
    }
    loss + 0.5 * l2 * penalty
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl LogisticRegression {
    /// Fits the model to the rows of `x` (any scale; CLIP embeddings are used as stored) with
    /// L-BFGS (10 correction pairs, backtracking line search with the Armijo condition,
    /// starting from zero weights). Deterministic: the same input gives the same model.
    ///
    /// With a single class in `labels` the model predicts that class (there is nothing to
    /// fit; scikit-learn refuses).
    pub fn fit(
        x: Embeddings<'_>,
        labels: &[usize],
        opts: &LinearProbeOptions,
    ) -> Result<LogisticRegression, AnalysisError> {
        non_empty("training samples", x)?;
        check_finite("training samples", x)?;
        if labels.len() != x.rows() {
            return Err(AnalysisError::LengthMismatch {
                what: "training labels",
                expected: x.rows(),
                got: labels.len(),
            });
        }
        if !(opts.l2 >= 0.0 && opts.l2.is_finite()) {
            return Err(AnalysisError::InvalidParameter {
                what: "l2",
                value: opts.l2.to_string(),
                reason: "must be a finite number >= 0",
            });
        }
        if !(opts.tol > 0.0 && opts.tol.is_finite()) {
            return Err(AnalysisError::InvalidParameter {
                what: "tol",
                value: opts.tol.to_string(),
                reason: "must be a positive finite number",
            });
        }
        let dim = x.dim();
        let mut classes = labels.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let nc = classes.len();
        if nc == 1 {
            return Ok(LogisticRegression {
                classes,
                dim,
                weights: vec![0.0; dim],
                bias: vec![0.0],
                iterations: 0,
                converged: true,
                loss: 0.0,
            });
        }
        let y: Vec<usize> = labels
            .iter()
            .map(|l| classes.binary_search(l).expect("label among classes"))
            .collect();
        let np = nc * dim + nc;
        let f = |theta: &[f64], g: &mut [f64]| loss_grad(x.data(), &y, dim, nc, opts.l2, theta, g);

        const HISTORY: usize = 10;
        let mut theta = vec![0.0f64; np];
        let mut g = vec![0.0f64; np];
        let mut fx = f(&theta, &mut g);
        let mut s_hist: Vec<Vec<f64>> = Vec::new();
        let mut y_hist: Vec<Vec<f64>> = Vec::new();
        let mut converged = false;
        let mut iterations = 0;
        let mut new_theta = vec![0.0f64; np];
        let mut new_g = vec![0.0f64; np];
        while iterations < opts.max_iter {
            if g.iter().fold(0.0f64, |m, v| m.max(v.abs())) <= opts.tol {
                converged = true;
                break;
            }
            iterations += 1;
            // Two-loop recursion: d = −H g.
            let mut q = g.clone();
            let mut alphas = vec![0.0; s_hist.len()];
            for i in (0..s_hist.len()).rev() {
                let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
                alphas[i] = rho * dot(&s_hist[i], &q);
                for (qv, yv) in q.iter_mut().zip(&y_hist[i]) {
                    *qv -= alphas[i] * yv;
                }
            }
            let gamma = match (s_hist.last(), y_hist.last()) {
                (Some(s), Some(yv)) => dot(s, yv) / dot(yv, yv),
                _ => 1.0 / dot(&g, &g).sqrt().max(1e-300),
            };
            q.iter_mut().for_each(|v| *v *= gamma);
            for i in 0..s_hist.len() {
                let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
                let beta = rho * dot(&y_hist[i], &q);
                for (qv, sv) in q.iter_mut().zip(&s_hist[i]) {
                    *qv += (alphas[i] - beta) * sv;
                }
            }
            let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
            let mut slope = dot(&g, &d);
            if slope >= 0.0 {
                // Not a descent direction (numerical trouble): restart from steepest descent.
                s_hist.clear();
                y_hist.clear();
                let scale = 1.0 / dot(&g, &g).sqrt().max(1e-300);
                d = g.iter().map(|v| -v * scale).collect();
                slope = dot(&g, &d);
            }
            // Backtracking line search (Armijo, c1 = 1e-4).
            let mut step = 1.0;
            let mut accepted = false;
            for _ in 0..60 {
                for ((nt, t), dv) in new_theta.iter_mut().zip(&theta).zip(&d) {
                    *nt = t + step * dv;
                }
                let fnew = f(&new_theta, &mut new_g);
                if fnew.is_finite() && fnew <= fx + 1e-4 * step * slope {
                    accepted = true;
                    let s: Vec<f64> = new_theta.iter().zip(&theta).map(|(a, b)| a - b).collect();
                    let yv: Vec<f64> = new_g.iter().zip(&g).map(|(a, b)| a - b).collect();
                    let sy = dot(&s, &yv);
                    if sy > 1e-10 * dot(&yv, &yv).max(f64::MIN_POSITIVE) {
                        if s_hist.len() == HISTORY {
                            s_hist.remove(0);
                            y_hist.remove(0);
                        }
                        s_hist.push(s);
                        y_hist.push(yv);
                    }
                    let decrease = fx - fnew;
                    std::mem::swap(&mut theta, &mut new_theta);
                    std::mem::swap(&mut g, &mut new_g);
                    fx = fnew;
                    // The loss no longer moves at double precision: as converged as it gets.
                    if decrease <= 1e-15 * fx.abs().max(1.0) {
                        converged = true;
                    }
                    break;
                }
                step *= 0.5;
            }
            if !accepted || converged {
                converged = converged || !accepted;
                break;
            }
        }
        let (w, b) = theta.split_at(nc * dim);
        Ok(LogisticRegression {
            classes,
            dim,
            weights: w.to_vec(),
            bias: b.to_vec(),
            iterations,
            converged,
            loss: fx,
        })
    }

    /// Predicted label of every row of `x`: the class with the largest logit (the lowest on
    /// ties).
    pub fn predict(&self, x: Embeddings<'_>) -> Result<Vec<usize>, AnalysisError> {
        if x.dim() != self.dim {
            return Err(AnalysisError::DimMismatch {
                a: "samples",
                dim_a: x.dim(),
                b: "model",
                dim_b: self.dim,
            });
        }
        check_finite("samples", x)?;
        let nc = self.classes.len();
        let dim = self.dim;
        Ok(x.data()
            .par_chunks(LR_BLOCK * dim)
            .flat_map_iter(|rows| {
                let xb: Vec<f64> = rows.iter().map(|&v| v as f64).collect();
                let mut z = vec![0.0f64; rows.len() / dim * nc];
                matmul_nt_f64(&xb, &self.weights, dim, &mut z);
                z.chunks_exact(nc)
                    .map(|zr| {
                        // The first of the largest logits.
                        let logit = |c: usize| zr[c] + self.bias[c];
                        let best = (1..nc).fold(0, |b, c| if logit(c) > logit(b) { c } else { b });
                        self.classes[best]
                    })
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}

/// Linear-probe accuracy: fit [`LogisticRegression`] on the training rows of `x`, score it
/// on the test rows. Returns the model too (iterations, convergence).
pub fn linear_probe(
    x: Embeddings<'_>,
    labels: &[usize],
    split: &Split,
    opts: &LinearProbeOptions,
) -> Result<(ProbeScore, LogisticRegression), AnalysisError> {
    if labels.len() != x.rows() {
        return Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: x.rows(),
            got: labels.len(),
        });
    }
    check_split(x.rows(), split)?;
    let dim = x.dim();
    let train = gather(x, &split.train);
    let test = gather(x, &split.test);
    let train_labels: Vec<usize> = split.train.iter().map(|&i| labels[i]).collect();
    let model = LogisticRegression::fit(
        Embeddings::named("training samples", &train, dim)?,
        &train_labels,
        opts,
    )?;
    let preds = model.predict(Embeddings::named("test samples", &test, dim)?)?;
    Ok((score(labels, split, preds), model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_seeded_and_disjoint() {
        let labels: Vec<usize> = (0..100)
            .map(|i| if i < 80 { 0 } else { 1 + i % 2 })
            .collect();
        let s = stratified_split(&labels, 0.25, 3).unwrap();
        assert_eq!(s, stratified_split(&labels, 0.25, 3).unwrap());
        assert_ne!(s, stratified_split(&labels, 0.25, 4).unwrap());
        assert_eq!(s.train.len() + s.test.len(), 100);
        let count = |set: &[usize], c: usize| set.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(count(&s.test, 0), 20);
        assert_eq!(count(&s.test, 1), 3); // round(2.5) = 3 (half away from zero)
        assert_eq!(count(&s.test, 2), 3);
        // A singleton class stays in training.
        let s = stratified_split(&[0, 0, 1], 0.5, 0).unwrap();
        assert!(s.train.contains(&2));
        assert!(stratified_split(&[0, 1], 0.5, 0).is_err());
        assert!(stratified_split(&[0, 0], 1.0, 0).is_err());
    }

    #[test]
    fn knn_votes_and_ties() {
        // Training points on the unit circle; test at angle 0.
        let ang = [0.1f32, -0.1, 0.2, 3.0];
        let train: Vec<f32> = ang.iter().flat_map(|a| [a.cos(), a.sin()]).collect();
        let test = [1.0f32, 0.0];
        let t = Embeddings::new(&train, 2).unwrap();
        let q = Embeddings::new(&test, 2).unwrap();
        // k = 2: neighbours 0 (label 5) and 1 (label 3) tie 1-1: the smaller label wins.
        assert_eq!(knn_predict(t, &[5, 3, 5, 3], q, 2).unwrap(), vec![3]);
        // k = 3: 5, 3, 5 → 5.
        assert_eq!(knn_predict(t, &[5, 3, 5, 3], q, 3).unwrap(), vec![5]);
        assert!(knn_predict(t, &[5, 3, 5, 3], q, 5).is_err());
        assert!(knn_predict(t, &[5, 3, 5, 3], q, 0).is_err());
        assert!(knn_predict(t, &[5, 3, 5], q, 1).is_err());
    }

    #[test]
    fn knn_predictions_of_any_block_of_queries_are_the_whole_runs() {
        // Many near-ties (coordinates on a coarse grid, then normalised) so that a last bit
        // of a similarity decides neighbours: blocks of any size must predict what one pass
        // predicts.
        let dim = 24;
        let n = 700;
        let mut x = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let row: Vec<f32> = (0..dim)
                .map(|j| ((i * 31 + j * 17) % 7) as f32 - 3.0 + (i % 5) as f32 * 0.1)
                .collect();
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
            x.extend(row.iter().map(|v| v / norm));
            y.push(i % 4);
        }
        let e = Embeddings::new(&x, dim).unwrap();
        let split = stratified_split(&y, 0.4, 1).unwrap();
        let whole = knn_accuracy(e, &y, &split, 5).unwrap();
        let n_test = split.test.len();
        for size in [1, 3, 64, 100, n_test] {
            let mut joined = Vec::new();
            for start in (0..n_test).step_by(size) {
                let end = (start + size).min(n_test);
                joined.extend(knn_predictions(e, &y, &split, 5, start..end).unwrap());
            }
            assert_eq!(joined, whole.predictions, "blocks of {size}");
            assert_eq!(score_predictions(&y, &split, joined).unwrap(), whole);
        }
        assert!(knn_predictions(e, &y, &split, 5, 0..n_test + 1).is_err());
        assert!(score_predictions(&y, &split, vec![0]).is_err());
    }

    #[test]
    fn logistic_regression_separates_blobs() {
        // Three directions in 3-D with a little spread.
        let mut x = vec![];
        let mut y = vec![];
        for i in 0..60 {
            let c = i % 3;
            let mut v = [0.1f32 * ((i * 7 % 5) as f32 - 2.0) / 2.0; 3];
            v[c] += 1.0;
            x.extend_from_slice(&v);
            y.push(c * 10);
        }
        let e = Embeddings::new(&x, 3).unwrap();
        let m = LogisticRegression::fit(e, &y, &LinearProbeOptions::default()).unwrap();
        assert!(m.converged, "{m:?}");
        assert_eq!(m.classes, vec![0, 10, 20]);
        assert_eq!(m.predict(e).unwrap(), y);
        let again = LogisticRegression::fit(e, &y, &LinearProbeOptions::default()).unwrap();
        assert_eq!(m, again);
        let one = LogisticRegression::fit(e, &vec![7; 60], &LinearProbeOptions::default()).unwrap();
        assert!(one.predict(e).unwrap().iter().all(|&p| p == 7));
    }
}
