//! Autoencoder clustering: a stacked denoising autoencoder, then k-means on its codes.
//!
//! This is the parameter initialisation of DEC (Xie, Girshick & Farhadi, *Unsupervised Deep
//! Embedding for Clustering Analysis*, ICML 2016, §3.2), also scored as a clustering method
//! of its own. The network is an MLP `d–500–500–2000–10` by default ([`AutoencoderOptions::
//! layers`]), ReLU everywhere except the code layer and the reconstruction, which are linear
//! ("so the embedding retains full information" and the reconstruction can be negative).
//!
//! # Training, as in the paper and its reference code
//!
//! 1. **Scaling.** The samples are multiplied by one factor so that `‖x‖²/d` is 1 on
//!    average (the paper normalises every data set so; for L2-normalised embeddings the
//!    factor is `√d`). Without it the learning rates below would not transfer across `d`.
//! 2. **Greedy layer-wise pretraining.** Layer `l` is trained as a one-hidden-layer denoising
//!    autoencoder `h_l → ReLU(W h̃_l + b) → h_l` on the (clean) outputs of the layers below,
//!    which stay fixed: the input is corrupted with 20 % dropout (not for the first layer,
//!    whose input is the data — the reference code's choice), the hidden units also get 20 %
//!    dropout (not for the code layer), and the loss is the squared error
//!    `½ ‖x̂ − x‖²` averaged over the minibatch (Caffe's Euclidean loss).
//! 3. **Fine-tuning.** The encoders are stacked, followed by the decoders in reverse order,
//!    and the deep autoencoder is trained end to end on the same loss, without dropout.
//! 4. **Clustering.** The decoder is dropped; k-means ([`super::kmeans`], k-means++ with 20
//!    restarts, as the paper) on the codes gives the labels and DEC's initial centroids.
//!
//! Weights start from `N(0, 0.01²)`, biases at 0; every stage runs minibatch SGD (batch 256,
//! momentum 0.9, biases at twice the learning rate as the reference code's nets, no weight
//! decay) with the learning rate divided by 10 at fixed fractions of the stage — every 40 %
//! of a pretraining stage and every 20 % of fine-tuning, where the paper's schedule (50,000
//! iterations per layer and 100,000 for fine-tuning, divided by 10 every 20,000) puts its
//! steps. The loss is averaged over every element of the minibatch (the reference code's
//! Euclidean loss); on it the default learning rate is 1.0, ten times the reference's 0.1,
//! chosen with `scripts/bench_dec` for the much shorter schedule below.
//!
//! # Where this departs from the paper
//!
//! - **Schedule in epochs.** The paper runs a fixed number of iterations on 50k–800k samples
//!   on a GPU (about 180 passes over MNIST per layer). The stages here are counted in passes
//!   over the data ([`AutoencoderOptions::pretrain_epochs`], [`AutoencoderOptions::
//!   finetune_epochs`]); the defaults (20 and 40) keep 10,000 × 512 embeddings within
//!   minutes on two cores (see the timings). The minibatches are a fresh seeded permutation
//!   each pass (Caffe walked its database in order). On a few hundred samples a pass is a
//!   few minibatches of 256: a smaller `batch_size` (the demo's 32) gives the network enough
//!   steps.
//! - The reference code's momentum burn-in is available ([`Optimizer::Sgd`]'s
//!   `momentum_burnin`) but off by default.
//!
//! # Cost
//!
//! A pass costs about `6 · n · Σ_l 2 d_l d_{l+1}` floating-point operations for fine-tuning
//! and the same in total for the pretraining stages (each layer pair once); the `gemm`
//! kernels run it in `f32`. Memory: the network (`≈ 3.3 M` parameters for `d = 512`, times
//! three for gradients and momentum), a scaled copy of the samples, and during pretraining
//! the outputs of the fixed layers below (`n × 2000` values at most).
//!
//! Measured with `scripts/bench_dec` (release build, two shared cores): see the module docs
//! of [`super::dec`].
//!
//! # Determinism
//!
//! Every random choice (initial weights, dropout masks, minibatch order, k-means seeding)
//! comes from [`AutoencoderOptions::seed`] through its own ChaCha stream; products use fixed
//! row blocks and sums run in sample order ([`super::mlp`]), so the same seed gives the same
//! bits whatever the number of threads.

use super::super::rng::Rng;
use super::super::{AnalysisError, Embeddings};
use super::kmeans::{check_input, kmeans, KMeansOptions};
use super::mlp::{all_finite, dropout_mask, Activation, Dense, Mlp, NetState, Optimizer, Real};

/// Options of [`autoencoder`]; [`Default`] is the paper's configuration with clipflow's
/// epoch budget.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoencoderOptions {
    /// Widths of the encoder's layers after the input; the last is the code dimension.
    /// The paper's `[500, 500, 2000, 10]`.
    pub layers: Vec<usize>,
    /// Passes over the data for each layer's denoising pretraining (0 skips pretraining:
    /// fine-tuning then starts from the random initialisation).
    pub pretrain_epochs: usize,
    /// Passes over the data for the end-to-end fine-tuning of the deep autoencoder.
    pub finetune_epochs: usize,
    /// Samples per minibatch (256).
    pub batch_size: usize,
    /// How the weights follow the gradients.
    pub optimizer: Optimizer,
    /// Divide the learning rate by 10 every 40 % of each pretraining stage and every 20 % of
    /// fine-tuning (the paper's schedule).
    pub step_decay: bool,
    /// Dropout rate of the denoising pretraining (0.2).
    pub dropout: f64,
    /// Standard deviation of the initial weights (0.01).
    pub init_std: f64,
    /// k-means++ restarts for the clustering of the codes (20, as the paper).
    pub kmeans_restarts: usize,
    pub seed: u64,
}

impl Default for AutoencoderOptions {
    fn default() -> Self {
        AutoencoderOptions {
            layers: vec![500, 500, 2000, 10],
            pretrain_epochs: 20,
            finetune_epochs: 40,
            batch_size: 256,
            optimizer: Optimizer::Sgd {
                learning_rate: 1.0,
                momentum: 0.9,
                momentum_burnin: 0,
            },
            step_decay: true,
            dropout: 0.2,
            init_std: 0.01,
            kmeans_restarts: 20,
            seed: 0,
        }
    }
}

/// Networks larger than this many parameters are refused (about 2.4 GB of `f32` weights,
/// gradients and momentum): a typo in `layers` should be an error, not an allocation failure.
pub const AUTOENCODER_MAX_PARAMETERS: usize = 200_000_000;

/// How the training went.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoencoderTrace {
    /// The factor the samples were multiplied by (so that `‖x‖²/d` is 1 on average).
    pub input_scale: f64,
    /// For each layer, the mean training loss `½ ‖x̂ − x‖²` per sample of each pretraining
    /// pass (with dropout, on that layer's input).
    pub pretrain_loss: Vec<Vec<f64>>,
    /// The mean training loss `½ ‖x̂ − x‖²` per (scaled) sample of each fine-tuning pass.
    pub finetune_loss: Vec<f64>,
    /// `Σ ‖x̂ − x‖² / Σ ‖x‖²` of the final autoencoder on all samples (no dropout): the
    /// fraction of the data's energy the codes do not reconstruct.
    pub reconstruction_error: f64,
    /// The k-means inertia on the codes.
    pub kmeans_inertia: f64,
}

/// The result of [`autoencoder`]: labels, codes, and what [`super::dec`] starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoencoderClustering {
    /// Cluster of each sample (k-means on the codes).
    pub labels: Vec<usize>,
    /// `n × code_dim` codes, row-major.
    pub codes: Vec<f32>,
    pub code_dim: usize,
    /// `k × code_dim` k-means centroids in code space.
    pub centroids: Vec<f32>,
    pub trace: AutoencoderTrace,
    /// The trained encoder (input: scaled samples).
    pub(crate) encoder: Mlp<f32>,
}

impl AutoencoderClustering {
    /// Input dimension the encoder was trained on.
    pub fn input_dim(&self) -> usize {
        self.encoder.input_dim()
    }
}

fn invalid(what: &'static str, value: impl ToString, reason: &'static str) -> AnalysisError {
    AnalysisError::InvalidParameter {
        what,
        value: value.to_string(),
        reason,
    }
}

/// Checks the options against a `dim`-dimensional input.
pub(crate) fn check_options(opts: &AutoencoderOptions, dim: usize) -> Result<(), AnalysisError> {
    if opts.layers.is_empty() {
        return Err(invalid(
            "autoencoder layers",
            "[]",
            "needs at least the code layer",
        ));
    }
    if let Some(w) = opts.layers.iter().find(|&&w| w == 0) {
        return Err(invalid(
            "autoencoder layers",
            w,
            "every width must be at least 1",
        ));
    }
    let mut params = 0usize;
    let mut prev = dim;
    for &w in &opts.layers {
        // Encoder and decoder: 2 d_l d_{l+1} weights and d_l + d_{l+1} biases.
        params = prev
            .checked_mul(w)
            .and_then(|p| p.checked_mul(2))
            .and_then(|p| p.checked_add(prev + w))
            .and_then(|p| p.checked_add(params))
            .unwrap_or(usize::MAX);
        prev = w;
    }
    if params > AUTOENCODER_MAX_PARAMETERS {
        return Err(AnalysisError::InvalidParameter {
            what: "autoencoder layers",
            value: format!(
                "{:?} (on {dim}-dimensional input: {params} parameters)",
                opts.layers
            ),
            reason: "the network would have more than 200 million parameters",
        });
    }
    if opts.batch_size == 0 {
        return Err(invalid("batch_size", 0, "must be at least 1"));
    }
    opts.optimizer.check("optimizer")?;
    if !(0.0..1.0).contains(&opts.dropout) {
        return Err(invalid("dropout", opts.dropout, "must be in [0, 1)"));
    }
    if !(opts.init_std.is_finite() && opts.init_std > 0.0) {
        return Err(invalid(
            "init_std",
            opts.init_std,
            "must be a positive finite number",
        ));
    }
    if opts.kmeans_restarts == 0 {
        return Err(invalid("kmeans_restarts", 0, "must be at least 1"));
    }
    Ok(())
}

/// The factor that makes the mean of `‖x‖²/d` equal to 1.
fn input_scale(x: Embeddings<'_>) -> Result<f64, AnalysisError> {
    let total: f64 = x
        .data()
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>();
    let mean = total / x.data().len() as f64;
    if !(mean > 0.0 && mean.is_finite()) {
        return Err(AnalysisError::Undefined(
            "samples: every value is zero, there is nothing to cluster".into(),
        ));
    }
    Ok(1.0 / mean.sqrt())
}

/// The samples multiplied by `scale`, in `T`.
pub(crate) fn scaled<T: Real>(x: Embeddings<'_>, scale: f64) -> Vec<T> {
    x.data()
        .iter()
        .map(|&v| T::from_f64(v as f64 * scale))
        .collect()
}

/// The learning-rate factor of `epoch` when the rate is divided by 10 every `step` epochs.
fn step_factor(epoch: usize, step: usize) -> f64 {
    0.1f64.powi((epoch / step.max(1)) as i32)
}

/// `⌈fraction · epochs⌉`, at least 1.
fn step_epochs(epochs: usize, fraction: f64) -> usize {
    ((epochs as f64 * fraction).ceil() as usize).max(1)
}

// Random streams of the seed, one per use, so that changing one stage's length does not
// change the randomness of another.
const STREAM_INIT: u64 = 0xae_0000;
const STREAM_PRETRAIN: u64 = 0xae_1000;
const STREAM_FINETUNE: u64 = 0xae_2000;

/// What one training stage runs: the network, per-layer input dropout rates, the schedule.
struct Stage<'a> {
    name: String,
    epochs: usize,
    lr_step: usize,
    dropout: &'a [f64],
}

/// The reconstruction loss `(1/(b·d)) Σ_i ½ ‖net(x̃_i) − x_i‖²` of a minibatch `xb`
/// (`b × d`), `x̃` the input after the dropout `masks`, and its gradients (into `grads`).
///
/// The mean over every element, not over samples: the reference code's Euclidean loss layer
/// divides by the element count, which is what its learning rate of 0.1 is tuned for.
pub(crate) fn reconstruction_loss_grad<T: Real>(
    net: &Mlp<T>,
    xb: &[T],
    masks: Vec<Option<Vec<T>>>,
    grads: &mut [super::mlp::LayerGrad<T>],
) -> f64 {
    let count = xb.len();
    let tape = net.forward_train(xb, masks);
    let inv = T::from_f64(1.0 / count as f64);
    let mut sq = 0.0f64;
    let dy: Vec<T> = tape
        .output()
        .iter()
        .zip(xb)
        .map(|(&y, &t)| {
            let d = y - t;
            sq += d.to_f64() * d.to_f64();
            d * inv
        })
        .collect();
    net.backward(&tape, dy, grads, false);
    0.5 * sq / count as f64
}

/// Minibatch SGD on the reconstruction loss `½ ‖net(x̃) − x‖²` (mean over the batch) for
/// `stage.epochs` passes over `data` (`n × dim`); returns the mean loss per sample of each
/// pass.
fn train_reconstruction<T: Real>(
    net: &mut Mlp<T>,
    data: &[T],
    stage: &Stage<'_>,
    opts: &AutoencoderOptions,
    rng: &mut Rng,
) -> Result<Vec<f64>, AnalysisError> {
    let dim = net.input_dim();
    let n = data.len() / dim;
    let batch = opts.batch_size.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut grads = net.zero_grads();
    let mut state = NetState::new(net);
    let mut losses = Vec::with_capacity(stage.epochs);
    for epoch in 0..stage.epochs {
        let factor = if opts.step_decay {
            step_factor(epoch, stage.lr_step)
        } else {
            1.0
        };
        rng.shuffle(&mut order);
        let mut total = 0.0f64;
        for idx in order.chunks(batch) {
            let b = idx.len();
            let mut xb = Vec::with_capacity(b * dim);
            for &i in idx {
                xb.extend_from_slice(&data[i * dim..(i + 1) * dim]);
            }
            let masks: Vec<Option<Vec<T>>> = net
                .layers
                .iter()
                .zip(stage.dropout)
                .map(|(layer, &rate)| {
                    (rate > 0.0).then(|| dropout_mask(b * layer.inputs, rate, rng))
                })
                .collect();
            total += b as f64 * reconstruction_loss_grad(net, &xb, masks, &mut grads);
            state.step(&opts.optimizer, net, &grads, factor);
        }
        let loss = total / n as f64;
        if !loss.is_finite() || !all_finite(net) {
            return Err(AnalysisError::Undefined(format!(
                "autoencoder: training diverged in {} (pass {} of {}, loss {loss}); \
                 lower the learning rate",
                stage.name,
                epoch + 1,
                stage.epochs
            )));
        }
        losses.push(loss);
    }
    Ok(losses)
}

/// A trained autoencoder: encoder, decoder (layers in data-flow order) and the trace.
pub(crate) struct Trained<T> {
    pub encoder: Mlp<T>,
    pub decoder: Mlp<T>,
    pub pretrain_loss: Vec<Vec<f64>>,
    pub finetune_loss: Vec<f64>,
}

/// Layer-wise denoising pretraining, then end-to-end fine-tuning, on scaled samples `xs`
/// (`n × dim`).
pub(crate) fn train<T: Real>(
    xs: &[T],
    dim: usize,
    opts: &AutoencoderOptions,
) -> Result<Trained<T>, AnalysisError> {
    let widths: Vec<usize> = std::iter::once(dim)
        .chain(opts.layers.iter().copied())
        .collect();
    let depth = opts.layers.len();
    let mut init = Rng::new(opts.seed, STREAM_INIT);
    let mut encoder = Vec::with_capacity(depth);
    let mut decoder = Vec::with_capacity(depth);
    for l in 0..depth {
        let enc_act = if l + 1 == depth {
            Activation::Identity
        } else {
            Activation::Relu
        };
        let dec_act = if l == 0 {
            Activation::Identity
        } else {
            Activation::Relu
        };
        encoder.push(Dense::<T>::gaussian(
            widths[l],
            widths[l + 1],
            enc_act,
            opts.init_std,
            &mut init,
        ));
        decoder.push(Dense::<T>::gaussian(
            widths[l + 1],
            widths[l],
            dec_act,
            opts.init_std,
            &mut init,
        ));
    }

    let mut pretrain_loss = Vec::new();
    if opts.pretrain_epochs > 0 {
        // The input of the layer being trained: the clean outputs of the (fixed) layers below.
        let mut input: Option<Vec<T>> = None;
        for l in 0..depth {
            if l > 0 {
                let below = Mlp {
                    layers: vec![encoder[l - 1].clone()],
                };
                input = Some(below.apply(input.as_deref().unwrap_or(xs)));
            }
            let mut dae = Mlp {
                layers: vec![encoder[l].clone(), decoder[l].clone()],
            };
            let input_rate = if l == 0 { 0.0 } else { opts.dropout };
            let hidden_rate = if l + 1 == depth { 0.0 } else { opts.dropout };
            let stage = Stage {
                name: format!("pretraining layer {}", l + 1),
                epochs: opts.pretrain_epochs,
                lr_step: step_epochs(opts.pretrain_epochs, 0.4),
                dropout: &[input_rate, hidden_rate],
            };
            let mut rng = Rng::new(opts.seed, STREAM_PRETRAIN + l as u64);
            let data = input.as_deref().unwrap_or(xs);
            pretrain_loss.push(train_reconstruction(
                &mut dae, data, &stage, opts, &mut rng,
            )?);
            let mut layers = dae.layers.into_iter();
            encoder[l] = layers.next().expect("two layers");
            decoder[l] = layers.next().expect("two layers");
        }
    }

    let mut deep = Mlp {
        layers: encoder
            .into_iter()
            .chain(decoder.into_iter().rev())
            .collect(),
    };
    let mut finetune_loss = Vec::new();
    if opts.finetune_epochs > 0 {
        let no_dropout = vec![0.0; 2 * depth];
        let stage = Stage {
            name: "fine-tuning".into(),
            epochs: opts.finetune_epochs,
            lr_step: step_epochs(opts.finetune_epochs, 0.2),
            dropout: &no_dropout,
        };
        let mut rng = Rng::new(opts.seed, STREAM_FINETUNE);
        finetune_loss = train_reconstruction(&mut deep, xs, &stage, opts, &mut rng)?;
    }
    let decoder = Mlp {
        layers: deep.layers.split_off(depth),
    };
    Ok(Trained {
        encoder: deep,
        decoder,
        pretrain_loss,
        finetune_loss,
    })
}

/// `Σ ‖x̂ − x‖² / Σ ‖x‖²` over all samples.
fn reconstruction_error<T: Real>(xs: &[T], codes: &[T], decoder: &Mlp<T>) -> f64 {
    let rec = decoder.apply(codes);
    let (mut err, mut energy) = (0.0f64, 0.0f64);
    for (&r, &x) in rec.iter().zip(xs) {
        let (r, x) = (r.to_f64(), x.to_f64());
        err += (r - x) * (r - x);
        energy += x * x;
    }
    err / energy
}

/// Trains the autoencoder on `x` and clusters its codes into `k` clusters with k-means (see
/// the module docs).
pub fn autoencoder(
    x: Embeddings<'_>,
    k: usize,
    opts: &AutoencoderOptions,
) -> Result<AutoencoderClustering, AnalysisError> {
    check_input(x, k)?;
    check_options(opts, x.dim())?;
    let scale = input_scale(x)?;
    let xs: Vec<f32> = scaled(x, scale);
    let trained = train(&xs, x.dim(), opts)?;
    let codes = trained.encoder.apply(&xs);
    let code_dim = trained.encoder.output_dim();
    let reconstruction_error = reconstruction_error(&xs, &codes, &trained.decoder);
    let mut km = KMeansOptions::new(k, opts.seed);
    km.n_init = opts.kmeans_restarts;
    let clustering = kmeans(Embeddings::named("codes", &codes, code_dim)?, &km)?;
    Ok(AutoencoderClustering {
        labels: clustering.labels,
        code_dim,
        centroids: clustering.centroids,
        trace: AutoencoderTrace {
            input_scale: scale,
            pretrain_loss: trained.pretrain_loss,
            finetune_loss: trained.finetune_loss,
            reconstruction_error,
            kmeans_inertia: clustering.inertia,
        },
        codes,
        encoder: trained.encoder,
    })
}

#[cfg(test)]
mod tests {
    use super::super::mlp::{dropout_mask, gradient_check, normal};
    use super::*;

    /// The deep autoencoder's reconstruction loss (mean over the batch, dropout masks on two
    /// layers) against central finite differences, for every weight and bias.
    #[test]
    #[allow(clippy::needless_range_loop)]
    fn reconstruction_gradient_matches_finite_differences() {
        let mut rng = Rng::new(5, 0);
        let widths = [6usize, 5, 4, 2];
        let mut layers = Vec::new();
        for l in 0..3 {
            let act = if l == 2 {
                Activation::Identity
            } else {
                Activation::Relu
            };
            layers.push(Dense::<f64>::gaussian(
                widths[l],
                widths[l + 1],
                act,
                0.6,
                &mut rng,
            ));
        }
        for l in (0..3).rev() {
            let act = if l == 0 {
                Activation::Identity
            } else {
                Activation::Relu
            };
            layers.push(Dense::<f64>::gaussian(
                widths[l + 1],
                widths[l],
                act,
                0.6,
                &mut rng,
            ));
        }
        for layer in &mut layers {
            layer
                .bias
                .iter_mut()
                .for_each(|b| *b = 0.2 * normal(&mut rng));
        }
        let net = Mlp { layers };
        let b = 9;
        let xb: Vec<f64> = (0..b * 6).map(|_| normal(&mut rng)).collect();
        let mut masks: Vec<Option<Vec<f64>>> = vec![None; 6];
        masks[1] = Some(dropout_mask(b * 5, 0.2, &mut rng));
        masks[4] = Some(dropout_mask(b * 4, 0.3, &mut rng));
        let mut grads = net.zero_grads();
        let loss0 = reconstruction_loss_grad(&net, &xb, masks.clone(), &mut grads);
        assert!(loss0 > 0.0);
        let mut scratch = net.zero_grads();
        let loss = |n: &Mlp<f64>| reconstruction_loss_grad(n, &xb, masks.clone(), &mut scratch);
        let checked = gradient_check::parameters(&net, &grads, loss, "reconstruction");
        assert_eq!(
            checked,
            2 * (6 * 5 + 5 * 4 + 4 * 2) + 2 * (5 + 4 + 2) - 2 + 6
        );
    }

    fn blobs(n_per: usize, centres: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = Rng::new(seed, 1);
        let means: Vec<f64> = (0..centres * dim).map(|_| normal(&mut rng)).collect();
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..centres * n_per {
            let c = i % centres;
            for t in 0..dim {
                x.push((means[c * dim + t] + 0.3 * normal(&mut rng)) as f32);
            }
            y.push(c);
        }
        (x, y)
    }

    fn small_options() -> AutoencoderOptions {
        AutoencoderOptions {
            layers: vec![32, 32, 64, 4],
            pretrain_epochs: 20,
            finetune_epochs: 40,
            batch_size: 16,
            kmeans_restarts: 5,
            seed: 3,
            ..AutoencoderOptions::default()
        }
    }

    #[test]
    fn training_reduces_the_reconstruction_loss() {
        let (x, y) = blobs(40, 4, 12, 1);
        let e = Embeddings::new(&x, 12).unwrap();
        let r = autoencoder(e, 4, &small_options()).unwrap();
        assert_eq!(r.labels.len(), y.len());
        assert_eq!(r.codes.len(), y.len() * 4);
        assert_eq!(r.trace.pretrain_loss.len(), 4);
        for losses in &r.trace.pretrain_loss {
            assert_eq!(losses.len(), 20);
            assert!(losses[19] < losses[0], "{losses:?}");
        }
        let f = &r.trace.finetune_loss;
        assert!(f[39] < f[0], "{f:?}");
        assert!(
            r.trace.reconstruction_error < 0.5,
            "{}",
            r.trace.reconstruction_error
        );
        let scores = super::super::cluster_scores(&y, &r.labels).unwrap();
        assert!(scores.adjusted_rand > 0.9, "{scores:?}");
    }

    #[test]
    fn bad_input_and_options_are_errors() {
        let (x, _) = blobs(5, 2, 3, 1);
        let e = Embeddings::new(&x, 3).unwrap();
        let o = AutoencoderOptions::default();
        assert!(autoencoder(e, 0, &o).is_err());
        assert!(autoencoder(e, 11, &o).is_err());
        let zeros = vec![0.0f32; 30];
        assert!(autoencoder(Embeddings::new(&zeros, 3).unwrap(), 2, &o).is_err());
        let mut nan = x.clone();
        nan[4] = f32::NAN;
        assert!(autoencoder(Embeddings::new(&nan, 3).unwrap(), 2, &o).is_err());
        for bad in [
            AutoencoderOptions {
                layers: vec![],
                ..o.clone()
            },
            AutoencoderOptions {
                layers: vec![5, 0, 2],
                ..o.clone()
            },
            AutoencoderOptions {
                layers: vec![1 << 20, 1 << 20],
                ..o.clone()
            },
            AutoencoderOptions {
                layers: vec![usize::MAX, 2],
                ..o.clone()
            },
            AutoencoderOptions {
                batch_size: 0,
                ..o.clone()
            },
            AutoencoderOptions {
                optimizer: Optimizer::Adam {
                    learning_rate: f64::NAN,
                },
                ..o.clone()
            },
            AutoencoderOptions {
                optimizer: Optimizer::Sgd {
                    learning_rate: 0.1,
                    momentum: 1.0,
                    momentum_burnin: 0,
                },
                ..o.clone()
            },
            AutoencoderOptions {
                dropout: 1.0,
                ..o.clone()
            },
            AutoencoderOptions {
                kmeans_restarts: 0,
                ..o.clone()
            },
        ] {
            assert!(
                matches!(
                    autoencoder(e, 2, &bad),
                    Err(AnalysisError::InvalidParameter { .. })
                ),
                "{bad:?}"
            );
        }
        // A learning rate far too large diverges, and says so.
        let wild = AutoencoderOptions {
            optimizer: Optimizer::Sgd {
                learning_rate: 1e6,
                momentum: 0.9,
                momentum_burnin: 0,
            },
            init_std: 1.0,
            ..small_options()
        };
        match autoencoder(e, 2, &wild) {
            Err(AnalysisError::Undefined(m)) => assert!(m.contains("diverged"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// Three optimiser steps of a deep autoencoder on the reconstruction loss equal the numpy
    /// reference's (`scripts/gen_dec_golden.py`, `ae_adam` and `ae_sgd`).
    #[test]
    fn autoencoder_steps_equal_the_numpy_reference() {
        use super::super::mlp::golden;
        let g = golden::read("steps.json");
        for name in ["ae_adam", "ae_sgd"] {
            let case = &g[name];
            let lr = case["learning_rate"].as_f64().unwrap();
            let opt = match case["optimizer"].as_str().unwrap() {
                "adam" => Optimizer::Adam { learning_rate: lr },
                _ => Optimizer::Sgd {
                    learning_rate: lr,
                    momentum: case["momentum"].as_f64().unwrap(),
                    momentum_burnin: case["momentum_burnin"].as_u64().unwrap() as usize,
                },
            };
            let mut net = golden::net(&case["layers"]);
            let x = golden::f64s(&case["x"]);
            let mut state = NetState::new(&net);
            let mut grads = net.zero_grads();
            let mut losses = Vec::new();
            for _ in 0..3 {
                losses.push(reconstruction_loss_grad(&net, &x, vec![], &mut grads));
                state.step(&opt, &mut net, &grads, 1.0);
            }
            golden::close(name, &losses, &golden::f64s(&case["losses"]), 1e-13);
            golden::same_net(name, &net, &golden::net(&case["after"]["layers"]), 1e-12);
        }
    }
}
