//! A small multilayer perceptron for the deep clustering methods: dense layers with ReLU or
//! identity activations, inverted dropout, backpropagation and SGD with momentum.
//!
//! Written here rather than taken from a deep-learning framework (candle, burn, tch) because
//! the autoencoder and DEC need only these few pieces, and a framework would multiply the
//! build time of a crate whose other analyses need none of it. The matrix products are the
//! `gemm` kernels of [`super::super::linalg`].
//!
//! Generic over the float type: the methods train in `f32` (as the paper's Caffe code did);
//! the gradient checks run the same code in `f64`, where finite differences are meaningful.
//!
//! Determinism: every product is split into work items of a fixed number of rows
//! ([`ROW_BLOCK`], [`WEIGHT_BLOCK`]), each a single-threaded `gemm` call, and every sum over
//! samples (bias gradients, losses) runs in sample order, so a result does not depend on how
//! many threads rayon has.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Sub, SubAssign};

use rayon::prelude::*;

use super::super::linalg::gemm_into;
use super::super::rng::Rng;

/// The float types the network runs in (`f32` for training, `f64` for gradient checks).
pub(crate) trait Real:
    Copy
    + Default
    + Debug
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// Rows of a minibatch per work item of the forward and input-gradient products.
pub(crate) const ROW_BLOCK: usize = 64;
/// Rows of a weight matrix per work item of the weight-gradient product.
const WEIGHT_BLOCK: usize = 64;
/// Rows per work item when a whole data set goes through a network (inference).
const INFERENCE_BLOCK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    Relu,
    Identity,
}

/// A fully connected layer `y = act(W x + b)`, `W` row-major `outputs × inputs`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dense<T> {
    pub inputs: usize,
    pub outputs: usize,
    pub weights: Vec<T>,
    pub bias: Vec<T>,
    pub activation: Activation,
}

/// Standard normal deviate (Box–Muller, one of the pair).
pub(crate) fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.uniform(); // (0, 1]
    let u2 = rng.uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl<T: Real> Dense<T> {
    /// Weights drawn from `N(0, std²)`, biases zero (the paper's initialisation).
    pub fn gaussian(
        inputs: usize,
        outputs: usize,
        activation: Activation,
        std: f64,
        rng: &mut Rng,
    ) -> Dense<T> {
        Dense {
            inputs,
            outputs,
            weights: (0..inputs * outputs)
                .map(|_| T::from_f64(std * normal(rng)))
                .collect(),
            bias: vec![T::ZERO; outputs],
            activation,
        }
    }

    /// `out[b × outputs] = act(x[b × inputs] · Wᵀ + b)`, parallel over fixed row blocks.
    fn forward(&self, x: &[T], out: &mut [T]) {
        let (i, o) = (self.inputs, self.outputs);
        out.par_chunks_mut(ROW_BLOCK * o)
            .zip(x.par_chunks(ROW_BLOCK * i))
            .for_each(|(y, x)| self.forward_block(x, y));
    }

    /// [`Dense::forward`] on one block, single-threaded.
    fn forward_block(&self, x: &[T], y: &mut [T]) {
        let (i, o) = (self.inputs, self.outputs);
        let m = y.len() / o;
        gemm_into(m, o, i, y, x, (i, 1), &self.weights, (1, i), false, T::ONE);
        for row in y.chunks_exact_mut(o) {
            for (v, &b) in row.iter_mut().zip(&self.bias) {
                *v += b;
                // `<`, not `!(>)`: a NaN stays NaN, so divergence is seen, not hidden.
                if self.activation == Activation::Relu && *v < T::ZERO {
                    *v = T::ZERO;
                }
            }
        }
    }

    /// Backpropagation through the layer for a batch: `dy` is the gradient of the loss with
    /// respect to the outputs `y` (overwritten with the gradient before the activation), `x`
    /// the inputs. Writes the weight and bias gradients and, when `dx` is given, the gradient
    /// with respect to the inputs.
    fn backward(
        &self,
        x: &[T],
        y: &[T],
        dy: &mut [T],
        grad: &mut LayerGrad<T>,
        dx: Option<&mut [T]>,
    ) {
        let (i, o) = (self.inputs, self.outputs);
        let b = y.len() / o;
        if self.activation == Activation::Relu {
            for (d, &v) in dy.iter_mut().zip(y) {
                if v <= T::ZERO {
                    *d = T::ZERO;
                }
            }
        }
        let dz: &[T] = dy;
        // dW = dzᵀ · x, over fixed blocks of W's rows; each entry sums the batch in one call.
        grad.weights
            .par_chunks_mut(WEIGHT_BLOCK * i)
            .enumerate()
            .for_each(|(blk, dw)| {
                let r0 = blk * WEIGHT_BLOCK;
                let m = dw.len() / i;
                gemm_into(m, i, b, dw, &dz[r0..], (1, o), x, (i, 1), false, T::ONE);
            });
        // db = Σ over the batch, in sample order.
        grad.bias.iter_mut().for_each(|v| *v = T::ZERO);
        for row in dz.chunks_exact(o) {
            for (g, &d) in grad.bias.iter_mut().zip(row) {
                *g += d;
            }
        }
        if let Some(dx) = dx {
            dx.par_chunks_mut(ROW_BLOCK * i)
                .zip(dz.par_chunks(ROW_BLOCK * o))
                .for_each(|(dx, dz)| {
                    let m = dx.len() / i;
                    gemm_into(
                        m,
                        i,
                        o,
                        dx,
                        dz,
                        (o, 1),
                        &self.weights,
                        (i, 1),
                        false,
                        T::ONE,
                    );
                });
        }
    }
}

/// Gradients (or momentum buffers) of one layer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerGrad<T> {
    pub weights: Vec<T>,
    pub bias: Vec<T>,
}

/// A stack of dense layers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mlp<T> {
    pub layers: Vec<Dense<T>>,
}

/// What a training forward pass keeps for the backward pass: each layer's input (after its
/// dropout mask) and output, and the masks.
pub(crate) struct Tape<T> {
    inputs: Vec<Vec<T>>,
    outputs: Vec<Vec<T>>,
    masks: Vec<Option<Vec<T>>>,
}

impl<T> Tape<T> {
    /// The network's output for the batch.
    pub fn output(&self) -> &[T] {
        self.outputs.last().expect("a network has layers")
    }
}

/// An inverted-dropout mask of `len` entries: 0 with probability `rate`, else `1/(1 − rate)`
/// (kept units are scaled at training time, as Caffe's dropout layer does).
pub(crate) fn dropout_mask<T: Real>(len: usize, rate: f64, rng: &mut Rng) -> Vec<T> {
    let keep = T::from_f64(1.0 / (1.0 - rate));
    (0..len)
        .map(|_| if rng.uniform() < rate { T::ZERO } else { keep })
        .collect()
}

impl<T: Real> Mlp<T> {
    pub fn input_dim(&self) -> usize {
        self.layers[0].inputs
    }

    pub fn output_dim(&self) -> usize {
        self.layers.last().expect("a network has layers").outputs
    }

    /// Zeroed gradients (or momentum buffers) shaped like the network.
    pub fn zero_grads(&self) -> Vec<LayerGrad<T>> {
        self.layers
            .iter()
            .map(|l| LayerGrad {
                weights: vec![T::ZERO; l.weights.len()],
                bias: vec![T::ZERO; l.bias.len()],
            })
            .collect()
    }

    /// Forward pass over a batch `x` (`b × input_dim`), keeping what backpropagation needs.
    /// `masks[l]`, when present, multiplies the input of layer `l` (dropout).
    pub fn forward_train(&self, x: &[T], mut masks: Vec<Option<Vec<T>>>) -> Tape<T> {
        let b = x.len() / self.input_dim();
        masks.resize(self.layers.len(), None);
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut outputs: Vec<Vec<T>> = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let mut input = match outputs.last() {
                None => x.to_vec(),
                Some(prev) => prev.clone(),
            };
            if let Some(mask) = &masks[l] {
                for (v, &m) in input.iter_mut().zip(mask) {
                    *v *= m;
                }
            }
            let mut out = vec![T::ZERO; b * layer.outputs];
            layer.forward(&input, &mut out);
            inputs.push(input);
            outputs.push(out);
        }
        Tape {
            inputs,
            outputs,
            masks,
        }
    }

    /// Backpropagates `dy` (the gradient of the loss with respect to the network's output for
    /// the batch of `tape`) into `grads` (overwritten). Returns the gradient with respect to
    /// the network's input when `input_grad`.
    pub fn backward(
        &self,
        tape: &Tape<T>,
        mut dy: Vec<T>,
        grads: &mut [LayerGrad<T>],
        input_grad: bool,
    ) -> Option<Vec<T>> {
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let want_dx = l > 0 || input_grad;
            let mut dx = if want_dx {
                vec![T::ZERO; tape.inputs[l].len()]
            } else {
                Vec::new()
            };
            layer.backward(
                &tape.inputs[l],
                &tape.outputs[l],
                &mut dy,
                &mut grads[l],
                want_dx.then_some(&mut dx[..]),
            );
            if !want_dx {
                return None;
            }
            if let Some(mask) = &tape.masks[l] {
                for (d, &m) in dx.iter_mut().zip(mask) {
                    *d *= m;
                }
            }
            dy = dx;
        }
        Some(dy)
    }

    /// The network applied to every row of `x` (`n × input_dim`, inference: no dropout),
    /// parallel over fixed blocks of rows.
    pub fn apply(&self, x: &[T]) -> Vec<T> {
        let (i, o) = (self.input_dim(), self.output_dim());
        let mut out = vec![T::ZERO; x.len() / i * o];
        out.par_chunks_mut(INFERENCE_BLOCK * o)
            .zip(x.par_chunks(INFERENCE_BLOCK * i))
            .for_each(|(y, x)| {
                let mut cur = x.to_vec();
                for layer in &self.layers {
                    let mut next = vec![T::ZERO; cur.len() / layer.inputs * layer.outputs];
                    layer.forward_block(&cur, &mut next);
                    cur = next;
                }
                y.copy_from_slice(&cur);
            });
        out
    }
}

/// How parameters follow their gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// SGD with momentum in Caffe's form: `v ← μ v + η g`, `w ← w − v`, the momentum
    /// ramped up linearly from 0 over the first `momentum_burnin` steps (the DEC reference
    /// code's Caffe fork), and biases at twice the learning rate (its nets' `blobs_lr: 2`).
    Sgd {
        learning_rate: f64,
        momentum: f64,
        momentum_burnin: usize,
    },
    /// Adam (Kingma & Ba, ICLR 2015) with `β₁ = 0.9`, `β₂ = 0.999`, `ε = 10⁻⁸`.
    Adam { learning_rate: f64 },
}

impl Optimizer {
    pub fn learning_rate(&self) -> f64 {
        match *self {
            Optimizer::Sgd { learning_rate, .. } | Optimizer::Adam { learning_rate } => {
                learning_rate
            }
        }
    }

    /// Checks the hyperparameters; `what` names the option in errors.
    pub(crate) fn check(&self, what: &'static str) -> Result<(), super::super::AnalysisError> {
        let lr = self.learning_rate();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(super::super::AnalysisError::InvalidParameter {
                what,
                value: format!("{self:?}"),
                reason: "the learning rate must be a positive finite number",
            });
        }
        if let Optimizer::Sgd { momentum, .. } = *self {
            if !(0.0..1.0).contains(&momentum) {
                return Err(super::super::AnalysisError::InvalidParameter {
                    what,
                    value: format!("{self:?}"),
                    reason: "the momentum must be in [0, 1)",
                });
            }
        }
        Ok(())
    }
}

/// With SGD, biases learn at twice the rate of weights (Caffe's `blobs_lr: 2`, set on every
/// layer of the DEC reference code's networks).
const SGD_BIAS_LR_MULTIPLIER: f64 = 2.0;
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPSILON: f64 = 1e-8;

/// The optimiser's state for one parameter vector: momentum (or Adam's first moment) and
/// Adam's second moment.
#[derive(Debug, Clone)]
pub(crate) struct OptState<T> {
    first: Vec<T>,
    second: Vec<T>,
    steps: i32,
}

impl<T: Real> OptState<T> {
    pub fn new(len: usize) -> OptState<T> {
        OptState {
            first: vec![T::ZERO; len],
            second: vec![T::ZERO; len],
            steps: 0,
        }
    }

    /// One update of `w` by its gradient `g`, the learning rate multiplied by `lr_factor`
    /// (the step schedule; with SGD also the bias multiplier).
    pub fn step(&mut self, opt: &Optimizer, w: &mut [T], g: &[T], lr_factor: f64) {
        self.steps += 1;
        match *opt {
            Optimizer::Sgd {
                learning_rate,
                momentum,
                momentum_burnin,
            } => {
                // Caffe counts iterations from 0: the first step has no momentum.
                let done = (self.steps - 1) as f64;
                let ramp = if (done as usize) < momentum_burnin {
                    done / momentum_burnin as f64
                } else {
                    1.0
                };
                let (lr, mu) = (
                    T::from_f64(learning_rate * lr_factor),
                    T::from_f64(momentum * ramp),
                );
                for ((w, &g), v) in w.iter_mut().zip(g).zip(self.first.iter_mut()) {
                    *v = mu * *v + lr * g;
                    *w -= *v;
                }
            }
            Optimizer::Adam { learning_rate } => {
                // Bias corrections folded into the step size, as in the paper's algorithm 1.
                let t = self.steps;
                let lr = learning_rate * lr_factor * (1.0 - ADAM_BETA2.powi(t)).sqrt()
                    / (1.0 - ADAM_BETA1.powi(t));
                let (b1, b2) = (T::from_f64(ADAM_BETA1), T::from_f64(ADAM_BETA2));
                let (c1, c2) = (T::from_f64(1.0 - ADAM_BETA1), T::from_f64(1.0 - ADAM_BETA2));
                let eps = T::from_f64(ADAM_EPSILON);
                let lr = T::from_f64(lr);
                for (((w, &g), m), v) in w
                    .iter_mut()
                    .zip(g)
                    .zip(self.first.iter_mut())
                    .zip(self.second.iter_mut())
                {
                    *m = b1 * *m + c1 * g;
                    *v = b2 * *v + c2 * g * g;
                    *w -= lr * *m / (T::from_f64(v.to_f64().sqrt()) + eps);
                }
            }
        }
    }
}

/// Optimiser states for every layer of a network.
pub(crate) struct NetState<T> {
    layers: Vec<(OptState<T>, OptState<T>)>,
}

impl<T: Real> NetState<T> {
    pub fn new(net: &Mlp<T>) -> NetState<T> {
        NetState {
            layers: net
                .layers
                .iter()
                .map(|l| (OptState::new(l.weights.len()), OptState::new(l.bias.len())))
                .collect(),
        }
    }

    pub fn step(
        &mut self,
        opt: &Optimizer,
        net: &mut Mlp<T>,
        grads: &[LayerGrad<T>],
        lr_factor: f64,
    ) {
        let bias_factor = match opt {
            Optimizer::Sgd { .. } => SGD_BIAS_LR_MULTIPLIER,
            Optimizer::Adam { .. } => 1.0,
        };
        for ((layer, g), (sw, sb)) in net.layers.iter_mut().zip(grads).zip(&mut self.layers) {
            sw.step(opt, &mut layer.weights, &g.weights, lr_factor);
            sb.step(opt, &mut layer.bias, &g.bias, lr_factor * bias_factor);
        }
    }
}

/// Whether every parameter is finite (training has not diverged).
pub(crate) fn all_finite<T: Real>(net: &Mlp<T>) -> bool {
    net.layers.iter().all(|l| {
        l.weights
            .iter()
            .chain(&l.bias)
            .all(|v| v.to_f64().is_finite())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(rng: &mut Rng) -> Mlp<f64> {
        Mlp {
            layers: vec![
                Dense::gaussian(5, 7, Activation::Relu, 0.5, rng),
                Dense::gaussian(7, 3, Activation::Identity, 0.5, rng),
            ],
        }
    }

    /// The forward pass equals a direct evaluation of `act(W x + b)`.
    #[test]
    fn forward_matches_direct_evaluation() {
        let mut rng = Rng::new(1, 0);
        let mut n = net(&mut rng);
        n.layers[0].bias = (0..7).map(|i| i as f64 * 0.1 - 0.3).collect();
        let x: Vec<f64> = (0..4 * 5).map(|_| normal(&mut rng)).collect();
        let got = n.apply(&x);
        let tape = n.forward_train(&x, vec![]);
        assert_eq!(tape.output(), &got[..]);
        for (r, xr) in x.chunks(5).enumerate() {
            let mut h = [0.0; 7];
            for (j, hj) in h.iter_mut().enumerate() {
                let s: f64 = (0..5).map(|p| n.layers[0].weights[j * 5 + p] * xr[p]).sum();
                *hj = (s + n.layers[0].bias[j]).max(0.0);
            }
            for j in 0..3 {
                let s: f64 = (0..7).map(|p| n.layers[1].weights[j * 7 + p] * h[p]).sum();
                assert!((got[r * 3 + j] - s).abs() < 1e-12);
            }
        }
    }

    /// Backpropagation through masks and ReLUs against central finite differences of
    /// `½ Σ (net(x) − t)²`, for every weight, bias and input.
    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Rng::new(2, 0);
        let n0 = net(&mut rng);
        let b = 6;
        let x: Vec<f64> = (0..b * 5).map(|_| normal(&mut rng)).collect();
        let t: Vec<f64> = (0..b * 3).map(|_| normal(&mut rng)).collect();
        let masks = vec![
            Some(dropout_mask(b * 5, 0.2, &mut rng)),
            Some(dropout_mask(b * 7, 0.2, &mut rng)),
        ];
        let loss = |n: &Mlp<f64>, x: &[f64]| {
            let tape = n.forward_train(x, masks.clone());
            tape.output()
                .iter()
                .zip(&t)
                .map(|(y, t)| 0.5 * (y - t) * (y - t))
                .sum::<f64>()
        };
        let tape = n0.forward_train(&x, masks.clone());
        let dy: Vec<f64> = tape.output().iter().zip(&t).map(|(y, t)| y - t).collect();
        let mut grads = n0.zero_grads();
        let dx = n0.backward(&tape, dy, &mut grads, true).unwrap();
        let checked = gradient_check::parameters(&n0, &grads, |n| loss(n, &x), "mlp");
        assert_eq!(checked, 5 * 7 + 7 + 7 * 3 + 3);
        gradient_check::coordinates(&x, &dx, |x| loss(&n0, x), "input");
    }
}

/// Central finite differences against analytic gradients, for the MLP's, the autoencoder's
/// and DEC's gradient checks (all in `f64`, where the differences are meaningful).
#[cfg(test)]
pub(crate) mod gradient_check {
    use super::{Dense, LayerGrad, Mlp};

    /// The step of the central differences.
    const H: f64 = 1e-6;

    fn assert_close(analytic: f64, plus: f64, minus: f64, what: impl FnOnce() -> String) {
        let numeric = (plus - minus) / (2.0 * H);
        assert!(
            (analytic - numeric).abs() <= 1e-6 * (1.0 + numeric.abs()),
            "{}: analytic {analytic}, finite differences {numeric}",
            what()
        );
    }

    /// Every weight and bias of `net` against its entry in `grads`, the gradient of `loss`
    /// at `net`; returns how many were checked. `what` prefixes the failure message.
    pub fn parameters(
        net: &Mlp<f64>,
        grads: &[LayerGrad<f64>],
        mut loss: impl FnMut(&Mlp<f64>) -> f64,
        what: &str,
    ) -> usize {
        type Field = fn(&mut Dense<f64>) -> &mut Vec<f64>;
        let mut checked = 0;
        for (l, grad) in grads.iter().enumerate().take(net.layers.len()) {
            let fields: [(&str, Field, &[f64]); 2] = [
                ("weight", |d| &mut d.weights, &grad.weights),
                ("bias", |d| &mut d.bias, &grad.bias),
            ];
            for (name, field, analytic) in fields {
                for (p, &analytic) in analytic.iter().enumerate() {
                    let (mut a, mut c) = (net.clone(), net.clone());
                    field(&mut a.layers[l])[p] += H;
                    field(&mut c.layers[l])[p] -= H;
                    assert_close(analytic, loss(&a), loss(&c), || {
                        format!("{what} layer {l} {name} {p}")
                    });
                    checked += 1;
                }
            }
        }
        checked
    }

    /// Every coordinate of `x` against `analytic`, the gradient of `loss` at `x`.
    pub fn coordinates(
        x: &[f64],
        analytic: &[f64],
        mut loss: impl FnMut(&[f64]) -> f64,
        what: &str,
    ) {
        assert_eq!(x.len(), analytic.len());
        for p in 0..x.len() {
            let (mut a, mut c) = (x.to_vec(), x.to_vec());
            a[p] += H;
            c[p] -= H;
            assert_close(analytic[p], loss(&a), loss(&c), || format!("{what} {p}"));
        }
    }
}

/// Reading the golden training steps that `scripts/gen_dec_golden.py` writes.
#[cfg(test)]
pub(crate) mod golden {
    use super::*;
    use serde_json::Value;

    pub fn read(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/golden/dec")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/gen_dec_golden.py)", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    pub fn f64s(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    pub fn net(v: &Value) -> Mlp<f64> {
        Mlp {
            layers: v
                .as_array()
                .unwrap()
                .iter()
                .map(|l| Dense {
                    inputs: l["inputs"].as_u64().unwrap() as usize,
                    outputs: l["outputs"].as_u64().unwrap() as usize,
                    weights: f64s(&l["weights"]),
                    bias: f64s(&l["bias"]),
                    activation: if l["relu"].as_bool().unwrap() {
                        Activation::Relu
                    } else {
                        Activation::Identity
                    },
                })
                .collect(),
        }
    }

    /// Asserts that two parameter vectors agree to `tol` (relative to 1 + |want|).
    pub fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}[{i}]: got {g:.17}, want {w:.17}"
            );
        }
    }

    pub fn same_net(what: &str, got: &Mlp<f64>, want: &Mlp<f64>, tol: f64) {
        for (l, (g, w)) in got.layers.iter().zip(&want.layers).enumerate() {
            close(
                &format!("{what} layer {l} weights"),
                &g.weights,
                &w.weights,
                tol,
            );
            close(&format!("{what} layer {l} bias"), &g.bias, &w.bias, tol);
        }
    }
}
