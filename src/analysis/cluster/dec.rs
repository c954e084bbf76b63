//! Deep Embedded Clustering (DEC): Xie, Girshick & Farhadi, *Unsupervised Deep Embedding for
//! Clustering Analysis*, ICML 2016.
//!
//! DEC starts from the encoder of [`super::autoencoder`] and the k-means centroids `μ_j` of
//! its codes `z_i = f(x_i)`, then refines encoder and centroids together by self-training:
//!
//! - **soft assignment** (Student's t kernel, `α = 1`):
//!   `q_ij = (1 + ‖z_i − μ_j‖²/α)^(−(α+1)/2) / Σ_j' (1 + ‖z_i − μ_j'‖²/α)^(−(α+1)/2)`;
//! - **target distribution**: `p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j')` with the soft
//!   cluster frequencies `f_j = Σ_i q_ij`, which sharpens confident assignments and keeps
//!   large clusters from absorbing the rest;
//! - **objective**: `L = KL(P‖Q) = Σ_i Σ_j p_ij log(p_ij / q_ij)`, minimised over the encoder's
//!   weights and the centroids by minibatch SGD with momentum, `P` held fixed. The gradients
//!   are the paper's (eq. 4–5): `∂L/∂z_i = (α+1)/α Σ_j (1 + ‖z_i − μ_j‖²/α)^(−1) (p_ij −
//!   q_ij)(z_i − μ_j)` and `∂L/∂μ_j = −(α+1)/α Σ_i (…)(p_ij − q_ij)(z_i − μ_j)`, the former
//!   backpropagated through the encoder;
//! - **target updates**: every [`DecOptions::update_interval`] iterations `P` is recomputed
//!   from the whole data set; training stops at the first update where fewer than
//!   [`DecOptions::tol`] (0.1 %) of the samples changed cluster (`argmax_j q_ij`) since the
//!   previous update, or after [`DecOptions::max_epochs`] passes.
//!
//! The hyperparameters are the paper's: minibatches of 256, learning rate 0.01, momentum 0.9,
//! `tol` 0.1 %. The minibatch loss is the mean of the samples' KL divergences (the minibatch
//! estimate of `L / n`); the target is updated after every pass over the data, the reference
//! code's default; minibatches are a fresh seeded permutation each pass.
//!
//! # Cost and timings
//!
//! An iteration is a forward and backward pass of the encoder on one minibatch (about a third
//! of an autoencoder fine-tuning step); a target update encodes the whole data set once.
//! Measured with `scripts/bench_dec` (release build, 2 threads, default options) on 10,000 ×
//! 512 CLIP-like embeddings in 20 classes, on the 2-core development machine while other
//! sessions built and tested (load average 11–16, so about half a core each; an idle machine
//! is faster):
//!
//! | stage | wall time |
//! |---|---|
//! | k-means on the embeddings (10 restarts), for scale | 9.7 s |
//! | autoencoder: pretraining 4 × 20 passes, fine-tuning 40 passes, k-means ×20 on the codes | 307 s |
//! | DEC until `tol` (360 iterations, 10 target updates) | 29 s |
//!
//! The numpy reference of `scripts/compare_dec.py` took 1,812 s and 27 s for the same two
//! stages on the same vectors. Quality on that set (AMI): k-means 1.000, autoencoder 0.882
//! (reference 0.974), DEC 0.988 (reference 1.000); the README's benchmarks section has the
//! demo's real embeddings, the seed spread, and the autoencoder gap to the reference.
//!
//! The demo study (600 × 128, a `128–256–256–512–10` network, minibatches of 32): about 3 s
//! for the autoencoder and 1.5–5 s for DEC per model.
//!
//! # Determinism
//!
//! Same seed, same bits, whatever the number of threads: the minibatch order comes from the
//! seed, products use fixed row blocks, and every sum over samples (frequencies `f_j`,
//! centroid gradients, losses) runs in sample order.

use rayon::prelude::*;

use super::super::rng::Rng;
use super::super::{AnalysisError, Embeddings};
use super::autoencoder::{scaled, AutoencoderClustering};
use super::kmeans::check_input;
use super::mlp::{all_finite, LayerGrad, Mlp, NetState, OptState, Optimizer, Real};

/// Options of [`dec`]; [`Default`] is the paper's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DecOptions {
    /// Degrees of freedom of the Student's t kernel (1).
    pub alpha: f64,
    /// How encoder and centroids follow the gradients (SGD, learning rate 0.01, momentum
    /// 0.9).
    pub optimizer: Optimizer,
    /// Samples per minibatch (256).
    pub batch_size: usize,
    /// Iterations (minibatches) between target updates; `None`: one pass over the data.
    pub update_interval: Option<usize>,
    /// Stop when fewer than this fraction of the samples change cluster between two target
    /// updates (0.001).
    pub tol: f64,
    /// Passes over the data at most (200).
    pub max_epochs: usize,
    pub seed: u64,
}

impl Default for DecOptions {
    fn default() -> Self {
        DecOptions {
            alpha: 1.0,
            optimizer: Optimizer::Sgd {
                learning_rate: 0.01,
                momentum: 0.9,
                momentum_burnin: 0,
            },
            batch_size: 256,
            update_interval: None,
            tol: 0.001,
            max_epochs: 200,
            seed: 0,
        }
    }
}

/// One target update of the training.
#[derive(Debug, Clone, PartialEq)]
pub struct DecUpdate {
    /// Iterations (minibatches) done before it.
    pub iteration: usize,
    /// Fraction of the samples whose cluster changed since the previous update (since the
    /// k-means labels for the first).
    pub changed_fraction: f64,
    /// `KL(P‖Q) / n` over all samples, with the new target.
    pub kl: f64,
}

/// How the training went.
#[derive(Debug, Clone, PartialEq)]
pub struct DecTrace {
    /// Iterations (minibatches) run.
    pub iterations: usize,
    /// Whether training stopped on `tol` (false: `max_epochs` ran out).
    pub converged: bool,
    /// Mean minibatch loss (`KL(P‖Q)` per sample) of each complete pass over the data.
    pub epoch_loss: Vec<f64>,
    /// Every target update, the first at iteration 0.
    pub updates: Vec<DecUpdate>,
}

/// The result of [`dec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dec {
    /// Cluster of each sample: `argmax_j q_ij` (the nearest centroid).
    pub labels: Vec<usize>,
    /// `n × k` soft assignments `q`, row-major.
    pub soft_assignment: Vec<f64>,
    /// `n × code_dim` final codes.
    pub codes: Vec<f32>,
    /// `k × code_dim` final centroids.
    pub centroids: Vec<f32>,
    pub trace: DecTrace,
}

fn invalid(what: &'static str, value: impl ToString, reason: &'static str) -> AnalysisError {
    AnalysisError::InvalidParameter {
        what,
        value: value.to_string(),
        reason,
    }
}

fn check_options(opts: &DecOptions) -> Result<(), AnalysisError> {
    if !(opts.alpha.is_finite() && opts.alpha > 0.0) {
        return Err(invalid(
            "alpha",
            opts.alpha,
            "must be a positive finite number",
        ));
    }
    opts.optimizer.check("optimizer")?;
    if opts.batch_size == 0 {
        return Err(invalid("batch_size", 0, "must be at least 1"));
    }
    if opts.update_interval == Some(0) {
        return Err(invalid("update_interval", 0, "must be at least 1"));
    }
    if !(0.0..=1.0).contains(&opts.tol) {
        return Err(invalid("tol", opts.tol, "must be in [0, 1]"));
    }
    if opts.max_epochs == 0 {
        return Err(invalid("max_epochs", 0, "must be at least 1"));
    }
    Ok(())
}

/// Soft assignment of one code to the centroids (`k × c`), into `q` (length `k`); returns the
/// kernel values `w_j = (1 + ‖z − μ_j‖²/α)^(−1)` in `w` as well.
fn soft_row<T: Real>(z: &[T], centroids: &[T], alpha: f64, q: &mut [f64], w: &mut [f64]) {
    let c = z.len();
    let power = (alpha + 1.0) / 2.0;
    let mut total = 0.0;
    for (j, mu) in centroids.chunks_exact(c).enumerate() {
        let d2: f64 = z
            .iter()
            .zip(mu)
            .map(|(&a, &b)| {
                let d = a.to_f64() - b.to_f64();
                d * d
            })
            .sum();
        w[j] = 1.0 / (1.0 + d2 / alpha);
        q[j] = if alpha == 1.0 { w[j] } else { w[j].powf(power) };
        total += q[j];
    }
    q.iter_mut().for_each(|v| *v /= total);
}

/// Index of the largest value, the first among equal ones.
fn argmax(v: &[f64]) -> usize {
    (1..v.len()).fold(0, |b, j| if v[j] > v[b] { j } else { b })
}

fn soft_assign_all<T: Real>(z: &[T], centroids: &[T], c: usize, alpha: f64) -> Vec<f64> {
    let k = centroids.len() / c;
    let mut q = vec![0.0f64; z.len() / c * k];
    q.par_chunks_mut(k).zip(z.par_chunks(c)).for_each_init(
        || vec![0.0f64; k],
        |w, (q, z)| soft_row(z, centroids, alpha, q, w),
    );
    q
}

/// DEC's soft assignment `q_ij` of codes `z` (`n × c`) to centroids (`k × c`, row-major), as
/// an `n × k` row-major matrix (see the module docs).
pub fn soft_assignment(
    z: Embeddings<'_>,
    centroids: &[f32],
    alpha: f64,
) -> Result<Vec<f64>, AnalysisError> {
    let c = z.dim();
    if centroids.is_empty() || !centroids.len().is_multiple_of(c) {
        return Err(AnalysisError::Ragged {
            what: "centroids",
            len: centroids.len(),
            dim: c,
        });
    }
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(invalid("alpha", alpha, "must be a positive finite number"));
    }
    super::super::check_finite("codes", z)?;
    super::super::check_finite("centroids", Embeddings::named("centroids", centroids, c)?)?;
    Ok(soft_assign_all(z.data(), centroids, c, alpha))
}

/// DEC's target distribution `p_ij = (q_ij²/f_j) / Σ_j' (q_ij'²/f_j')`, `f_j = Σ_i q_ij`, of an
/// `n × k` soft assignment.
pub fn target_distribution(q: &[f64], k: usize) -> Result<Vec<f64>, AnalysisError> {
    if k == 0 || !q.len().is_multiple_of(k) {
        return Err(AnalysisError::Ragged {
            what: "soft assignment",
            len: q.len(),
            dim: k,
        });
    }
    if let Some(i) = q.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(AnalysisError::NonFinite {
            what: "soft assignment (values must be finite and non-negative)",
            row: i / k,
        });
    }
    Ok(target(q, k))
}

fn target(q: &[f64], k: usize) -> Vec<f64> {
    let mut f = vec![0.0f64; k];
    for row in q.chunks_exact(k) {
        for (a, &v) in f.iter_mut().zip(row) {
            *a += v;
        }
    }
    let mut p = vec![0.0f64; q.len()];
    p.par_chunks_mut(k).zip(q.par_chunks(k)).for_each(|(p, q)| {
        let mut total = 0.0;
        for j in 0..k {
            // A cluster with no mass at all gets no target mass either.
            p[j] = if f[j] > 0.0 { q[j] * q[j] / f[j] } else { 0.0 };
            total += p[j];
        }
        if total > 0.0 {
            p.iter_mut().for_each(|v| *v /= total);
        }
    });
    p
}

/// `Σ_i Σ_j p_ij log(p_ij / q_ij)` (terms with `p_ij = 0` are 0), summed in sample order.
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(&p, &q)| if p > 0.0 { p * (p / q).ln() } else { 0.0 })
        .sum()
}

/// The minibatch loss `(1/b) Σ_i KL(p_i‖q_i)` of codes `z` (`b × c`) against centroids
/// (`k × c`) and targets `p` (`b × k`), with its gradients with respect to the codes and the
/// centroids.
pub(crate) fn kl_loss_grad<T: Real>(
    z: &[T],
    centroids: &[T],
    p: &[f64],
    c: usize,
    alpha: f64,
) -> (f64, Vec<T>, Vec<T>) {
    let k = centroids.len() / c;
    let b = z.len() / c;
    let scale = (alpha + 1.0) / alpha / b as f64;
    let mut q = vec![0.0f64; k];
    let mut w = vec![0.0f64; k];
    let mut loss = 0.0f64;
    let mut dz = vec![T::ZERO; z.len()];
    let mut dmu = vec![0.0f64; centroids.len()];
    let mut diff = vec![0.0f64; c];
    for i in 0..b {
        let zi = &z[i * c..(i + 1) * c];
        let pi = &p[i * k..(i + 1) * k];
        soft_row(zi, centroids, alpha, &mut q, &mut w);
        loss += kl_divergence(pi, &q);
        let mut gz = vec![0.0f64; c];
        for j in 0..k {
            let g = scale * w[j] * (pi[j] - q[j]);
            let mu = &centroids[j * c..(j + 1) * c];
            for t in 0..c {
                diff[t] = zi[t].to_f64() - mu[t].to_f64();
            }
            for t in 0..c {
                gz[t] += g * diff[t];
                dmu[j * c + t] -= g * diff[t];
            }
        }
        for (d, g) in dz[i * c..(i + 1) * c].iter_mut().zip(gz) {
            *d = T::from_f64(g);
        }
    }
    let dmu = dmu.into_iter().map(T::from_f64).collect();
    (loss / b as f64, dz, dmu)
}

/// The DEC loss of a minibatch `xb` (scaled samples) through `encoder`, and its gradients
/// with respect to every encoder parameter (into `grads`) and the centroids (returned).
pub(crate) fn dec_loss_grad<T: Real>(
    encoder: &Mlp<T>,
    centroids: &[T],
    xb: &[T],
    pb: &[f64],
    alpha: f64,
    grads: &mut [LayerGrad<T>],
) -> (f64, Vec<T>) {
    let c = encoder.output_dim();
    let tape = encoder.forward_train(xb, Vec::new());
    let (loss, dz, dmu) = kl_loss_grad(tape.output(), centroids, pb, c, alpha);
    encoder.backward(&tape, dz, grads, false);
    (loss, dmu)
}

// Random stream of the seed for the minibatch order.
const STREAM_ORDER: u64 = 0xdec_0000;

/// DEC from the autoencoder `init` (trained on these samples `x` by
/// [`super::autoencoder`]) and its k-means centroids (see the module docs).
pub fn dec(
    x: Embeddings<'_>,
    init: &AutoencoderClustering,
    opts: &DecOptions,
) -> Result<Dec, AnalysisError> {
    let k = init.centroids.len() / init.code_dim;
    check_input(x, k)?;
    check_options(opts)?;
    if x.dim() != init.input_dim() {
        return Err(AnalysisError::DimMismatch {
            a: "samples",
            dim_a: x.dim(),
            b: "autoencoder input",
            dim_b: init.input_dim(),
        });
    }
    if init.labels.len() != x.rows() {
        return Err(AnalysisError::LengthMismatch {
            what: "autoencoder labels (DEC needs the samples the autoencoder clustered)",
            expected: x.rows(),
            got: init.labels.len(),
        });
    }
    let xs: Vec<f32> = scaled(x, init.trace.input_scale);
    let mut encoder = init.encoder.clone();
    let mut centroids = init.centroids.clone();
    let trace = train(&xs, &mut encoder, &mut centroids, &init.labels, opts)?;
    let codes = encoder.apply(&xs);
    let soft_assignment = soft_assign_all(&codes, &centroids, init.code_dim, opts.alpha);
    let labels = soft_assignment.chunks_exact(k).map(argmax).collect();
    Ok(Dec {
        labels,
        soft_assignment,
        codes,
        centroids,
        trace,
    })
}

/// The DEC training loop on scaled samples `xs`, from the k-means labels `initial_labels`.
fn train<T: Real>(
    xs: &[T],
    encoder: &mut Mlp<T>,
    centroids: &mut [T],
    initial_labels: &[usize],
    opts: &DecOptions,
) -> Result<DecTrace, AnalysisError> {
    let dim = encoder.input_dim();
    let c = encoder.output_dim();
    let k = centroids.len() / c;
    let n = xs.len() / dim;
    let batch = opts.batch_size.min(n);
    let per_epoch = n.div_ceil(batch);
    let interval = opts.update_interval.unwrap_or(per_epoch);
    let max_iter = opts.max_epochs.saturating_mul(per_epoch);
    let mut rng = Rng::new(opts.seed, STREAM_ORDER);
    let mut order: Vec<usize> = (0..n).collect();
    let mut grads = encoder.zero_grads();
    let mut state = NetState::new(encoder);
    let mut mu_state = OptState::new(centroids.len());
    let mut labels = initial_labels.to_vec();
    let mut p = Vec::new();
    let mut trace = DecTrace {
        iterations: 0,
        converged: false,
        epoch_loss: Vec::new(),
        updates: Vec::new(),
    };
    let mut epoch_total = 0.0f64;
    let mut it = 0;
    loop {
        if it % interval == 0 || it == max_iter {
            let z = encoder.apply(xs);
            let q = soft_assign_all(&z, centroids, c, opts.alpha);
            let new_labels: Vec<usize> = q.chunks_exact(k).map(argmax).collect();
            let changed = new_labels
                .iter()
                .zip(&labels)
                .filter(|(a, b)| a != b)
                .count();
            labels = new_labels;
            p = target(&q, k);
            trace.updates.push(DecUpdate {
                iteration: it,
                changed_fraction: changed as f64 / n as f64,
                kl: kl_divergence(&p, &q) / n as f64,
            });
            if it > 0 && (changed as f64) < opts.tol * n as f64 {
                trace.converged = true;
                break;
            }
            if it == max_iter {
                break;
            }
        }
        let pos = it % per_epoch;
        if pos == 0 {
            rng.shuffle(&mut order);
        }
        let idx = &order[pos * batch..((pos + 1) * batch).min(n)];
        let mut xb = Vec::with_capacity(idx.len() * dim);
        let mut pb = Vec::with_capacity(idx.len() * k);
        for &i in idx {
            xb.extend_from_slice(&xs[i * dim..(i + 1) * dim]);
            pb.extend_from_slice(&p[i * k..(i + 1) * k]);
        }
        let (loss, dmu) = dec_loss_grad(encoder, centroids, &xb, &pb, opts.alpha, &mut grads);
        state.step(&opts.optimizer, encoder, &grads, 1.0);
        mu_state.step(&opts.optimizer, centroids, &dmu, 1.0);
        epoch_total += loss * idx.len() as f64;
        it += 1;
        if it % per_epoch == 0 {
            let mean = epoch_total / n as f64;
            if !mean.is_finite()
                || !all_finite(encoder)
                || !centroids.iter().all(|v| v.to_f64().is_finite())
            {
                return Err(AnalysisError::Undefined(format!(
                    "DEC: training diverged in pass {} (loss {mean}); lower the learning rate",
                    it / per_epoch
                )));
            }
            trace.epoch_loss.push(mean);
            epoch_total = 0.0;
        }
    }
    trace.iterations = it;
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::super::mlp::{gradient_check, normal, Activation, Dense};
    use super::super::AutoencoderOptions;
    use super::*;

    /// A random target distribution: rows of positive values summing to 1.
    fn random_rows(rng: &mut Rng, rows: usize, k: usize) -> Vec<f64> {
        let mut p: Vec<f64> = (0..rows * k).map(|_| 0.05 + rng.uniform()).collect();
        for row in p.chunks_mut(k) {
            let s: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
        p
    }

    /// The DEC loss through a ReLU encoder against central finite differences, for every
    /// encoder weight and bias and every centroid coordinate, at α = 1 and α = 2.5.
    #[test]
    fn dec_gradient_matches_finite_differences() {
        for alpha in [1.0, 2.5] {
            let mut rng = Rng::new(7, 0);
            let mut encoder = Mlp {
                layers: vec![
                    Dense::<f64>::gaussian(6, 8, Activation::Relu, 0.6, &mut rng),
                    Dense::<f64>::gaussian(8, 5, Activation::Relu, 0.6, &mut rng),
                    Dense::<f64>::gaussian(5, 3, Activation::Identity, 0.6, &mut rng),
                ],
            };
            for layer in &mut encoder.layers {
                layer
                    .bias
                    .iter_mut()
                    .for_each(|b| *b = 0.2 * normal(&mut rng));
            }
            let (b, k) = (10, 4);
            let xb: Vec<f64> = (0..b * 6).map(|_| normal(&mut rng)).collect();
            let mu: Vec<f64> = (0..k * 3).map(|_| normal(&mut rng)).collect();
            let p = random_rows(&mut rng, b, k);
            let mut grads = encoder.zero_grads();
            let (loss0, dmu) = dec_loss_grad(&encoder, &mu, &xb, &p, alpha, &mut grads);
            assert!(loss0 > 0.0);
            let mut scratch = encoder.zero_grads();
            let mut loss =
                |e: &Mlp<f64>, m: &[f64]| dec_loss_grad(e, m, &xb, &p, alpha, &mut scratch).0;
            let what = format!("α {alpha}");
            gradient_check::parameters(&encoder, &grads, |e| loss(e, &mu), &what);
            gradient_check::coordinates(&mu, &dmu, |m| loss(&encoder, m), &what);
        }
    }

    #[test]
    fn soft_assignment_and_target_are_distributions() {
        let z = [0.0f32, 0.0, 1.0, 0.0, 5.0, 5.0];
        let mu = [0.0f32, 0.0, 4.0, 4.0];
        let q = soft_assignment(Embeddings::new(&z, 2).unwrap(), &mu, 1.0).unwrap();
        // z₀ sits on μ₀: w = (1, 1/33); z₂ is 2 from μ₁: w = (1/51, 1/3).
        assert!((q[0] - 1.0 / (1.0 + 1.0 / 33.0)).abs() < 1e-15);
        assert!((q[5] - (1.0 / 3.0) / (1.0 / 51.0 + 1.0 / 3.0)).abs() < 1e-15);
        for row in q.chunks(2) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        }
        let p = target_distribution(&q, 2).unwrap();
        for (prow, qrow) in p.chunks(2).zip(q.chunks(2)) {
            assert!((prow.iter().sum::<f64>() - 1.0).abs() < 1e-15);
            // The target sharpens: the larger assignment grows.
            let j = argmax(qrow);
            assert!(prow[j] >= qrow[j]);
        }
        assert_eq!(kl_divergence(&q, &q), 0.0);
        assert!(kl_divergence(&p, &q) > 0.0);
        assert!(soft_assignment(Embeddings::new(&z, 2).unwrap(), &mu[..3], 1.0).is_err());
        assert!(soft_assignment(Embeddings::new(&z, 2).unwrap(), &mu, 0.0).is_err());
        assert!(target_distribution(&[0.5, f64::NAN], 2).is_err());
        assert!(target_distribution(&[0.5, 0.5, 1.0], 2).is_err());
    }

    /// Two SGD steps of encoder and centroids on the DEC loss equal the numpy reference's
    /// (`scripts/gen_dec_golden.py`, `dec_sgd`).
    #[test]
    fn dec_steps_equal_the_numpy_reference() {
        use super::super::mlp::golden;
        let g = golden::read("steps.json");
        let case = &g["dec_sgd"];
        let mut encoder = golden::net(&case["layers"]);
        let mut mu = golden::f64s(&case["centroids"]);
        let x = golden::f64s(&case["x"]);
        let p = golden::f64s(&case["p"]);
        let opt = Optimizer::Sgd {
            learning_rate: case["learning_rate"].as_f64().unwrap(),
            momentum: case["momentum"].as_f64().unwrap(),
            momentum_burnin: 0,
        };
        let mut state = NetState::new(&encoder);
        let mut mu_state = OptState::new(mu.len());
        let mut grads = encoder.zero_grads();
        let mut losses = Vec::new();
        for _ in 0..2 {
            let (loss, dmu) = dec_loss_grad(&encoder, &mu, &x, &p, 1.0, &mut grads);
            losses.push(loss);
            state.step(&opt, &mut encoder, &grads, 1.0);
            mu_state.step(&opt, &mut mu, &dmu, 1.0);
        }
        golden::close("losses", &losses, &golden::f64s(&case["losses"]), 1e-13);
        let after = &case["after"];
        golden::same_net("encoder", &encoder, &golden::net(&after["layers"]), 1e-13);
        golden::close("centroids", &mu, &golden::f64s(&after["centroids"]), 1e-13);
    }

    /// `n_per` points around each of `centres` random centres in `dim` dimensions, with
    /// Gaussian noise of standard deviation `noise` per coordinate; labels in order.
    fn planted(
        n_per: usize,
        centres: usize,
        dim: usize,
        noise: f64,
        seed: u64,
    ) -> (Vec<f32>, Vec<usize>) {
        let mut rng = Rng::new(seed, 1);
        let means: Vec<f64> = (0..centres * dim).map(|_| normal(&mut rng)).collect();
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..centres * n_per {
            let c = i % centres;
            for t in 0..dim {
                x.push((means[c * dim + t] + noise * normal(&mut rng)) as f32);
            }
            y.push(c);
        }
        (x, y)
    }

    fn small(seed: u64) -> (AutoencoderOptions, DecOptions) {
        (
            AutoencoderOptions {
                layers: vec![32, 32, 64, 4],
                pretrain_epochs: 20,
                finetune_epochs: 40,
                batch_size: 32,
                kmeans_restarts: 5,
                seed,
                ..AutoencoderOptions::default()
            },
            DecOptions {
                batch_size: 32,
                seed,
                ..DecOptions::default()
            },
        )
    }

    /// A planted mixture: five overlapping Gaussian clusters in 12 dimensions. DEC, started
    /// from the autoencoder's k-means, recovers them.
    #[test]
    fn dec_recovers_a_planted_mixture() {
        let (x, y) = planted(60, 5, 12, 0.35, 4);
        let e = Embeddings::new(&x, 12).unwrap();
        let (ao, dopts) = small(1);
        let a = super::super::autoencoder(e, 5, &ao).unwrap();
        let d = dec(e, &a, &dopts).unwrap();
        let sa = super::super::cluster_scores(&y, &a.labels).unwrap();
        let sd = super::super::cluster_scores(&y, &d.labels).unwrap();
        assert!(sd.adjusted_rand > 0.95, "DEC {sd:?}, autoencoder {sa:?}");
        assert!(
            sd.adjusted_rand >= sa.adjusted_rand - 1e-12,
            "DEC {sd:?}, autoencoder {sa:?}"
        );
        // The trace: an update at 0, converged on tol, passes and iterations consistent.
        let t = &d.trace;
        assert!(t.converged, "{t:?}");
        assert_eq!(t.updates[0].iteration, 0);
        let last = t.updates.last().unwrap();
        assert!(last.changed_fraction < dopts.tol);
        assert_eq!(last.iteration, t.iterations);
        let per_epoch = x.len() / 12 / 32 + 1;
        assert_eq!(t.epoch_loss.len(), t.iterations / per_epoch);
        assert!(t.epoch_loss.iter().all(|l| l.is_finite() && *l >= 0.0));
        // Labels are the argmax of the soft assignment, which sums to 1 per sample.
        for (row, &l) in d.soft_assignment.chunks(5).zip(&d.labels) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert_eq!(argmax(row), l);
        }
    }

    /// Same seed, same bits, with one thread or four: blocks of rows, weights and batches
    /// are all split into several work items at these sizes.
    #[test]
    fn same_bits_whatever_the_thread_count() {
        let (x, _) = planted(100, 4, 20, 0.5, 9);
        let e = Embeddings::new(&x, 20).unwrap();
        let (mut ao, mut dopts) = small(5);
        ao.layers = vec![80, 70, 3];
        ao.pretrain_epochs = 2;
        ao.finetune_epochs = 3;
        ao.batch_size = 150;
        dopts.batch_size = 150;
        dopts.max_epochs = 3;
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let a = super::super::autoencoder(e, 4, &ao).unwrap();
                let d = dec(e, &a, &dopts).unwrap();
                (a, d)
            })
        };
        let (a1, d1) = run(1);
        let (a4, d4) = run(4);
        assert!(a1 == a4, "autoencoder differs between 1 and 4 threads");
        assert!(d1 == d4, "DEC differs between 1 and 4 threads");
        // A different seed gives a different network.
        ao.seed = 6;
        let other = super::super::autoencoder(e, 4, &ao).unwrap();
        assert_ne!(other.codes, a1.codes);
    }

    #[test]
    fn bad_input_and_options_are_errors() {
        let (x, _) = planted(10, 2, 4, 0.3, 1);
        let e = Embeddings::new(&x, 4).unwrap();
        let (mut ao, dopts) = small(1);
        ao.pretrain_epochs = 1;
        ao.finetune_epochs = 1;
        let a = super::super::autoencoder(e, 2, &ao).unwrap();
        let wrong_dim = vec![0.5f32; 60];
        assert!(matches!(
            dec(Embeddings::new(&wrong_dim, 3).unwrap(), &a, &dopts),
            Err(AnalysisError::DimMismatch { .. })
        ));
        assert!(matches!(
            dec(Embeddings::new(&x[..36], 4).unwrap(), &a, &dopts),
            Err(AnalysisError::LengthMismatch { .. })
        ));
        for bad in [
            DecOptions {
                alpha: 0.0,
                ..dopts.clone()
            },
            DecOptions {
                batch_size: 0,
                ..dopts.clone()
            },
            DecOptions {
                update_interval: Some(0),
                ..dopts.clone()
            },
            DecOptions {
                tol: 1.5,
                ..dopts.clone()
            },
            DecOptions {
                max_epochs: 0,
                ..dopts.clone()
            },
            DecOptions {
                optimizer: Optimizer::Sgd {
                    learning_rate: -1.0,
                    momentum: 0.9,
                    momentum_burnin: 0,
                },
                ..dopts.clone()
            },
        ] {
            assert!(
                matches!(
                    dec(e, &a, &bad),
                    Err(AnalysisError::InvalidParameter { .. })
                ),
                "{bad:?}"
            );
        }
        // max_epochs reached before tol: not converged, and the trace says so.
        let short = DecOptions {
            max_epochs: 1,
            tol: 0.0,
            ..dopts.clone()
        };
        let d = dec(e, &a, &short).unwrap();
        assert!(!d.trace.converged);
        assert_eq!(d.trace.iterations, 1);
        assert_eq!(d.trace.updates.last().unwrap().iteration, 1);
    }
}
