//! Barnes–Hut t-SNE to two dimensions (van der Maaten 2014), as scikit-learn 1.9.1's
//! `TSNE(method="barnes_hut")` defines it.
//!
//! # Algorithm
//!
//! 1. **Neighbours**: the `k = min(n − 1, ⌊3·perplexity + 1⌋)` exact nearest neighbours of
//!    every sample ([`nearest_neighbors`], Euclidean or cosine).
//! 2. **Conditional P**: for each sample, a binary search for the precision β of a Gaussian
//!    over its squared neighbour distances whose entropy is `ln(perplexity)`, to 1e-5, at most
//!    100 steps (`sklearn.manifold._utils._binary_search_perplexity`, including its quirks:
//!    distances are squared and rounded to `f32`, the perplexity is single precision, the
//!    probabilities kept are those of the last β evaluated).
//! 3. **Joint P**: `P = (C + Cᵀ) / Σ(C + Cᵀ)`, sparse (CSR, columns ascending), as
//!    `_joint_probabilities_nn`.
//! 4. **Optimisation**: gradient descent with momentum and per-coordinate gains
//!    (`_gradient_descent`): 250 iterations with P multiplied by the early exaggeration (12)
//!    and momentum 0.5, then the rest up to `max_iter` with momentum 0.8; gains grow by 0.2
//!    when the gradient changes sign against the update and shrink by 0.8 otherwise, floored at
//!    0.01; the learning rate "auto" is `max(n / early_exaggeration / 4, 50)`. Every 50
//!    iterations the KL divergence and gradient norm are checked: a phase stops after 250
//!    (first phase) or 300 (second phase) iterations without improvement, or when the
//!    gradient norm is at most 1e-7. The update and gains restart at the phase change.
//! 5. **Gradient** (`_barnes_hut_tsne.gradient`, Student-t with one degree of freedom): the
//!    attractive part exactly over the sparse P; the repulsive part and the normalisation
//!    `Z = Σ (1 + ‖yᵢ − yⱼ‖²)⁻¹` by Barnes–Hut over a quadtree, a cell standing for its points
//!    when `width² < θ² · distance²` to its centre of mass. The tree is scikit-learn's: a
//!    bounding box whose maximum is pushed out by 1e-3 (relative and absolute), children
//!    split at the cell centre, points closer than 1e-6 in every coordinate merged into one
//!    leaf, and a leaf that close to the query point skipped as a self-interaction. The KL
//!    divergence reported is scikit-learn's for this method: `Σ pᵢⱼ ln(pᵢⱼ / qᵢⱼ)` over the
//!    sparse P (exaggerated in the first phase), with `q` and `p` floored at `f32`'s
//!    smallest normal value.
//!
//! # Differences from scikit-learn
//!
//! scikit-learn optimises in `f32`; here positions, forces, gains and sums are `f64`. A single
//! gradient agrees with scikit-learn's to `f32` accuracy (the goldens check 1e-6 of its
//! largest component), but t-SNE is chaotic, so whole runs from the same start agree in
//! quality (KL, trustworthiness), not coordinate by coordinate.
//! Its parallel sums depend on the thread count; here the points are split into fixed blocks
//! of 256 (in the quadtree's depth-first order, which depends only on the positions) whose
//! partial sums are added in order, so the result depends only on the input.
//! The randomness of scikit-learn's default PCA initialisation is the caller's: pass a PCA
//! projection through [`scale_pca_init`], or use [`random_init`].
//! With `max_iter = 250` no iteration runs after the exaggeration phase and scikit-learn
//! reports the largest float as the KL; here it is the KL of the final embedding. A quadtree
//! leaf at depth 96 takes further points as duplicates (only NaN or astronomically spread
//! coordinates get there; scikit-learn would recurse until its stack overflows).
//!
//! # Limits
//!
//! Memory is `O(n · k)` for the neighbours and P plus `O(n)` for the tree; the neighbour
//! search costs `O(n² · dim)` time in blocks (about 4 s at 10k × 512 on two cores). Each
//! iteration costs `O(n log n)`: about 12 ms for 10k points on two cores, so 1,000 iterations
//! take 12 s (`scripts/bench_tsne` compares with scikit-learn and openTSNE).
//!
//! [`nearest_neighbors`]: super::neighbors::nearest_neighbors

use rayon::prelude::*;

use super::linalg::{non_empty, Distance};
use super::neighbors::{nearest_neighbors, Neighbors};
use super::rng::Rng;
use super::{check_finite, AnalysisError, Embeddings};

/// Options of [`tsne`]; [`Default`] gives scikit-learn's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TsneOptions {
    /// Effective number of neighbours of each conditional distribution; 3·perplexity + 1
    /// neighbours are searched. Must be positive and below the number of samples.
    pub perplexity: f64,
    /// Total iterations including the 250 of early exaggeration (at least 250).
    pub max_iter: usize,
    /// Factor on P during the first 250 iterations (at least 1).
    pub early_exaggeration: f64,
    /// Step size; `None` is scikit-learn's "auto", `max(n / early_exaggeration / 4, 50)`.
    pub learning_rate: Option<f64>,
    /// Barnes–Hut opening angle in [0, 1]: larger is faster and coarser, 0 visits every
    /// point.
    pub theta: f64,
    /// Distance of the neighbour search in the original space.
    pub metric: Distance,
}

impl Default for TsneOptions {
    fn default() -> TsneOptions {
        TsneOptions {
            perplexity: 30.0,
            max_iter: 1000,
            early_exaggeration: 12.0,
            learning_rate: None,
            theta: 0.5,
            metric: Distance::Euclidean,
        }
    }
}

/// A t-SNE embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Tsne {
    /// `rows × 2` coordinates, row-major.
    pub embedding: Vec<f64>,
    /// KL divergence at the start of the last iteration, as scikit-learn's `kl_divergence_`.
    pub kl_divergence: f64,
    /// Iterations counted, early-exaggeration ones included: scikit-learn's `n_iter_ + 1`
    /// (its `n_iter_` is the 0-based index of the last iteration).
    pub n_iter: usize,
}

/// Iterations of early exaggeration (scikit-learn's `_EXPLORATION_MAX_ITER`).
const EXPLORATION_ITER: usize = 250;
/// Iterations between convergence checks (`_N_ITER_CHECK`).
const CHECK_EVERY: usize = 50;
/// scikit-learn's default `n_iter_without_progress` for the second phase.
const ITER_WITHOUT_PROGRESS: usize = 300;
/// scikit-learn's default `min_grad_norm`.
const MIN_GRAD_NORM: f64 = 1e-7;
const MIN_GAIN: f64 = 0.01;
/// Fewest samples accepted: below this the neighbour graph and perplexity are degenerate.
const MIN_ROWS: usize = 4;
/// Points this close in every coordinate share a quadtree leaf (scikit-learn's `EPSILON`).
const DUPLICATE_EPS: f64 = 1e-6;
/// Floor of p and q inside the KL logarithm (scikit-learn's `FLOAT32_TINY`).
const KL_TINY: f64 = f32::MIN_POSITIVE as f64;
/// Points per parallel work item; fixed so sums do not depend on the thread count.
const BLOCK: usize = 256;

/// The sparse joint probabilities P of t-SNE, symmetric, summing to 1.
///
/// CSR: row `i` holds the columns `indices()[indptr()[i]..indptr()[i + 1]]` in ascending
/// order, with `values()` alongside. Entries that are exactly 0 are not stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JointProbabilities {
    indptr: Vec<usize>,
    indices: Vec<usize>,
    values: Vec<f64>,
}

impl JointProbabilities {
    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Row offsets into [`indices`](Self::indices) and [`values`](Self::values).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Column of each stored entry.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Value of each stored entry.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

/// Joint probabilities from each sample's nearest neighbours (`nn.distances` are plain, not
/// squared, distances), scikit-learn's `_joint_probabilities_nn` on the same graph.
///
/// Errors when `perplexity` is not positive and finite, or when `nn` is inconsistent (wrong
/// lengths, an index out of range, a row listing itself or a neighbour twice, a negative or
/// non-finite distance).
pub fn joint_probabilities(
    nn: &Neighbors,
    perplexity: f64,
) -> Result<JointProbabilities, AnalysisError> {
    check_perplexity(perplexity)?;
    let k = nn.k;
    if k == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "neighbours",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if nn.distances.len() != nn.indices.len() {
        return Err(AnalysisError::LengthMismatch {
            what: "neighbour distances",
            expected: nn.indices.len(),
            got: nn.distances.len(),
        });
    }
    if nn.indices.is_empty() || !nn.indices.len().is_multiple_of(k) {
        return Err(AnalysisError::Ragged {
            what: "neighbour indices",
            len: nn.indices.len(),
            dim: k,
        });
    }
    let n = nn.rows();
    // Rows sorted by column, as `distances.sort_indices()` leaves them.
    let mut cols = Vec::with_capacity(n * k);
    let mut sq = Vec::with_capacity(n * k);
    let mut order: Vec<usize> = Vec::with_capacity(k);
    for i in 0..n {
        let (idx, dist) = (nn.indices_of(i), nn.distances_of(i));
        for (&j, &d) in idx.iter().zip(dist) {
            if j >= n {
                return Err(AnalysisError::IndexOutOfRange {
                    what: "neighbour index",
                    index: j,
                    len: n,
                });
            }
            if j == i {
                return Err(AnalysisError::InvalidParameter {
                    what: "neighbours",
                    value: format!("row {i} lists itself"),
                    reason: "a sample is not its own neighbour",
                });
            }
            if !(d.is_finite() && d >= 0.0) {
                return Err(AnalysisError::InvalidParameter {
                    what: "neighbour distance",
                    value: d.to_string(),
                    reason: "must be finite and non-negative",
                });
            }
        }
        order.clear();
        order.extend(0..k);
        order.sort_unstable_by_key(|&t| idx[t]);
        if order.windows(2).any(|w| idx[w[0]] == idx[w[1]]) {
            return Err(AnalysisError::InvalidParameter {
                what: "neighbours",
                value: format!("row {i} lists a neighbour twice"),
                reason: "each neighbour appears once per row",
            });
        }
        for &t in &order {
            cols.push(idx[t]);
            // scikit-learn squares the distances and searches on them in f32.
            sq.push((dist[t] * dist[t]) as f32);
        }
    }
    let conditional = conditional_probabilities(&sq, k, perplexity);
    Ok(symmetrize(n, k, &cols, &conditional))
}

fn check_perplexity(perplexity: f64) -> Result<(), AnalysisError> {
    if !(perplexity.is_finite() && perplexity > 0.0) {
        return Err(AnalysisError::InvalidParameter {
            what: "perplexity",
            value: perplexity.to_string(),
            reason: "must be positive and finite",
        });
    }
    Ok(())
}

/// Row-wise conditional probabilities `p_{j|i}` over `k` squared distances per row,
/// `_binary_search_perplexity` step for step.
fn conditional_probabilities(sq: &[f32], k: usize, perplexity: f64) -> Vec<f64> {
    // scikit-learn's constants and argument are single precision.
    let tolerance = 1e-5f32 as f64;
    let zero_sum = 1e-8f32 as f64;
    let desired_entropy = (perplexity as f32 as f64).ln();
    let mut out = vec![0.0f64; sq.len()];
    out.par_chunks_mut(k * BLOCK)
        .zip(sq.par_chunks(k * BLOCK))
        .for_each(|(out, sq)| {
            for (p, d) in out.chunks_exact_mut(k).zip(sq.chunks_exact(k)) {
                search_row(p, d, desired_entropy, tolerance, zero_sum);
            }
        });
    out
}

fn search_row(p: &mut [f64], d: &[f32], desired_entropy: f64, tolerance: f64, zero_sum: f64) {
    let (mut beta, mut beta_min, mut beta_max) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..100 {
        let mut sum_p = 0.0;
        for (p, &d) in p.iter_mut().zip(d) {
            *p = (-(d as f64) * beta).exp();
            sum_p += *p;
        }
        if sum_p == 0.0 {
            sum_p = zero_sum;
        }
        let mut sum_dp = 0.0;
        for (p, &d) in p.iter_mut().zip(d) {
            *p /= sum_p;
            sum_dp += d as f64 * *p;
        }
        let entropy = sum_p.ln() + beta * sum_dp;
        let diff = entropy - desired_entropy;
        if diff.abs() <= tolerance {
            break;
        }
        if diff > 0.0 {
            beta_min = beta;
            beta = if beta_max == f64::INFINITY {
                beta * 2.0
            } else {
                (beta + beta_max) / 2.0
            };
        } else {
            beta_max = beta;
            beta = if beta_min == f64::NEG_INFINITY {
                beta / 2.0
            } else {
                (beta + beta_min) / 2.0
            };
        }
    }
}

/// `(C + Cᵀ) / Σ` for `C` with `k` entries per row at `cols` (ascending within a row).
fn symmetrize(n: usize, k: usize, cols: &[usize], c: &[f64]) -> JointProbabilities {
    // Cᵀ in CSR by a counting sort on the column; rows are visited in order, so each row of
    // the transpose comes out with ascending columns.
    let mut t_ptr = vec![0usize; n + 1];
    for &j in cols {
        t_ptr[j + 1] += 1;
    }
    for i in 0..n {
        t_ptr[i + 1] += t_ptr[i];
    }
    let mut fill = t_ptr.clone();
    let mut t_idx = vec![0usize; cols.len()];
    let mut t_val = vec![0.0f64; cols.len()];
    for i in 0..n {
        for t in i * k..(i + 1) * k {
            let j = cols[t];
            t_idx[fill[j]] = i;
            t_val[fill[j]] = c[t];
            fill[j] += 1;
        }
    }
    let mut indptr = Vec::with_capacity(n + 1);
    let mut indices = Vec::with_capacity(2 * cols.len());
    let mut values = Vec::with_capacity(2 * cols.len());
    indptr.push(0);
    for i in 0..n {
        let (a_idx, a_val) = (&cols[i * k..(i + 1) * k], &c[i * k..(i + 1) * k]);
        let (b_idx, b_val) = (
            &t_idx[t_ptr[i]..t_ptr[i + 1]],
            &t_val[t_ptr[i]..t_ptr[i + 1]],
        );
        let (mut a, mut b) = (0, 0);
        while a < a_idx.len() || b < b_idx.len() {
            let (j, v) = if b == b_idx.len() || (a < a_idx.len() && a_idx[a] < b_idx[b]) {
                a += 1;
                (a_idx[a - 1], a_val[a - 1])
            } else if a == a_idx.len() || b_idx[b] < a_idx[a] {
                b += 1;
                (b_idx[b - 1], b_val[b - 1])
            } else {
                a += 1;
                b += 1;
                (a_idx[a - 1], a_val[a - 1] + b_val[b - 1])
            };
            // scipy drops the zeros of a sparse sum.
            if v != 0.0 {
                indices.push(j);
                values.push(v);
            }
        }
        indptr.push(indices.len());
    }
    let total = values.iter().sum::<f64>().max(f64::EPSILON);
    values.iter_mut().for_each(|v| *v /= total);
    JointProbabilities {
        indptr,
        indices,
        values,
    }
}

/// KL divergence and its gradient with respect to the embedding coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct KlGradient {
    /// `Σ pᵢⱼ ln(pᵢⱼ / qᵢⱼ)` over the stored entries of P (see the module docs).
    pub kl_divergence: f64,
    /// `rows × 2`, row-major.
    pub gradient: Vec<f64>,
}

/// The Barnes–Hut KL divergence and gradient of `embedding` (`rows × 2`) under `p`, at
/// opening angle `theta`: scikit-learn's `_kl_divergence_bh` (gradient already multiplied by
/// 4), computed in `f64`.
///
/// Errors when `embedding` does not have `2 · p.rows()` finite values or `theta` is outside
/// [0, 1].
pub fn kl_divergence_gradient(
    p: &JointProbabilities,
    embedding: &[f64],
    theta: f64,
) -> Result<KlGradient, AnalysisError> {
    check_embedding("embedding", embedding, p.rows())?;
    check_theta(theta)?;
    let mut tree = QuadTree::default();
    let mut gradient = vec![0.0; embedding.len()];
    let mut state = Gradient::new(p.rows());
    let kl_divergence = state.evaluate(p, 1.0, embedding, theta, true, &mut tree, &mut gradient);
    Ok(KlGradient {
        kl_divergence,
        gradient,
    })
}

fn check_embedding(what: &'static str, y: &[f64], rows: usize) -> Result<(), AnalysisError> {
    if y.len() != 2 * rows {
        return Err(AnalysisError::LengthMismatch {
            what,
            expected: 2 * rows,
            got: y.len(),
        });
    }
    if let Some(row) = y
        .chunks_exact(2)
        .position(|r| !r.iter().all(|v| v.is_finite()))
    {
        return Err(AnalysisError::NonFinite { what, row });
    }
    Ok(())
}

fn check_theta(theta: f64) -> Result<(), AnalysisError> {
    if !(0.0..=1.0).contains(&theta) {
        return Err(AnalysisError::InvalidParameter {
            what: "theta",
            value: theta.to_string(),
            reason: "must be in [0, 1]",
        });
    }
    Ok(())
}

/// A quadtree node in depth-first order: `next` is the index just past its subtree, so the
/// traversal is a forward scan that either descends (`+ 1`) or skips (`next`).
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    /// Centre of mass.
    x: f64,
    y: f64,
    /// Points in the subtree (duplicates included).
    size: f64,
    /// The cell stands for its points when the squared distance to its centre of mass
    /// exceeds this: `width² / θ²` (scikit-learn's `width² / d² < θ²`), −1 for a leaf.
    open2: f64,
    next: u32,
    leaf: bool,
}

/// A cell while the tree is being built.
#[derive(Debug, Clone, Copy)]
struct Cell {
    min: [f64; 2],
    max: [f64; 2],
    center: [f64; 2],
    bary: [f64; 2],
    size: usize,
    width2: f64,
    depth: u32,
    leaf: bool,
    children: [u32; 4],
    /// First of the points held by a leaf (a list through `QuadTree::next_point`).
    points: u32,
}

const NO_CHILD: u32 = u32::MAX;
const NO_POINT: u32 = u32::MAX;
/// A leaf this deep takes further points as duplicates, so NaN or astronomically spread
/// coordinates cannot split cells forever. Ordinary embeddings never get near it: halving a
/// box of width 1e6 down to the 1e-6 duplicate distance takes 40 levels.
const MAX_DEPTH: u32 = 96;

/// scikit-learn's quadtree, rebuilt on every iteration into reused buffers.
#[derive(Debug, Default)]
struct QuadTree {
    cells: Vec<Cell>,
    nodes: Vec<Node>,
    /// The points in depth-first order of their leaves: consecutive points are neighbours in
    /// the plane, walk nearly the same nodes, and find them in cache.
    order: Vec<u32>,
    /// Next point in the same leaf.
    next_point: Vec<u32>,
}

impl Cell {
    fn new(min: [f64; 2], max: [f64; 2], depth: u32) -> Cell {
        let center = [(min[0] + max[0]) / 2.0, (min[1] + max[1]) / 2.0];
        let w = [max[0] - min[0], max[1] - min[1]];
        Cell {
            min,
            max,
            center,
            bary: [0.0; 2],
            size: 0,
            width2: (w[0] * w[0]).max(w[1] * w[1]),
            depth,
            leaf: true,
            children: [NO_CHILD; 4],
            points: NO_POINT,
        }
    }

    fn quadrant(&self, p: [f64; 2]) -> usize {
        2 * usize::from(p[0] >= self.center[0]) + usize::from(p[1] >= self.center[1])
    }
}

impl QuadTree {
    /// Builds the tree of the points `y` (`rows × 2`) for opening angle `theta`.
    fn build(&mut self, y: &[f64], theta: f64) {
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in y.chunks_exact(2) {
            lo = [lo[0].min(p[0]), lo[1].min(p[1])];
            hi = [hi[0].max(p[0]), hi[1].max(p[1])];
        }
        for h in &mut hi {
            // Every point strictly inside the box, for positive, negative and small maxima.
            let sign = if *h > 0.0 {
                1.0
            } else if *h < 0.0 {
                -1.0
            } else {
                0.0
            };
            *h = (*h * (1.0 + 1e-3 * sign)).max(*h + 1e-3);
        }
        self.cells.clear();
        self.cells.push(Cell::new(lo, hi, 0));
        self.next_point.clear();
        self.next_point.resize(y.len() / 2, NO_POINT);
        for (i, p) in y.chunks_exact(2).enumerate() {
            self.insert([p[0], p[1]], i as u32);
        }
        self.flatten(theta * theta);
    }

    /// Inserts point `i` at `p` (scikit-learn's `insert_point`).
    fn insert(&mut self, p: [f64; 2], i: u32) {
        let mut c = 0usize;
        loop {
            let cell = &mut self.cells[c];
            if cell.size == 0 {
                cell.size = 1;
                cell.bary = p;
                cell.points = i;
                return;
            }
            if !cell.leaf {
                let n = cell.size as f64;
                for (b, &v) in cell.bary.iter_mut().zip(&p) {
                    *b = (n * *b + v) / (n + 1.0);
                }
                cell.size += 1;
                let q = cell.quadrant(p);
                match cell.children[q] {
                    NO_CHILD => {
                        self.new_child(c, p, 1, i);
                        return;
                    }
                    child => c = child as usize,
                }
                continue;
            }
            let duplicate = (p[0] - cell.bary[0]).abs() <= DUPLICATE_EPS
                && (p[1] - cell.bary[1]).abs() <= DUPLICATE_EPS;
            if duplicate || cell.depth >= MAX_DEPTH {
                cell.size += 1;
                self.next_point[i as usize] = cell.points;
                cell.points = i;
                return;
            }
            // Split: the leaf's point(s) move into a child, then `p` goes in again from here.
            let (bary, size, points) = (cell.bary, cell.size, cell.points);
            cell.points = NO_POINT;
            self.new_child(c, bary, size, points);
        }
    }

    /// Adds a leaf under `parent` for the `size` points at `p`, listed from `points`.
    fn new_child(&mut self, parent: usize, p: [f64; 2], size: usize, points: u32) {
        let cell = self.cells[parent];
        let q = cell.quadrant(p);
        let (mut min, mut max) = (cell.min, cell.max);
        for (a, (&v, &mid)) in p.iter().zip(&cell.center).enumerate() {
            if v >= mid {
                min[a] = mid;
            } else {
                max[a] = mid;
            }
        }
        let mut child = Cell::new(min, max, cell.depth + 1);
        child.bary = p;
        child.size = size;
        child.points = points;
        let id = self.cells.len() as u32;
        self.cells.push(child);
        let parent = &mut self.cells[parent];
        parent.leaf = false;
        parent.children[q] = id;
    }

    /// Lays the cells out depth first, children in quadrant order (scikit-learn's
    /// traversal order).
    fn flatten(&mut self, theta2: f64) {
        self.nodes.clear();
        self.order.clear();
        self.visit(0, theta2);
    }

    /// Appends cell `c` and its subtree (recursion depth is at most [`MAX_DEPTH`]).
    fn visit(&mut self, c: u32, theta2: f64) {
        let cell = self.cells[c as usize];
        let me = self.nodes.len();
        self.nodes.push(Node {
            x: cell.bary[0],
            y: cell.bary[1],
            size: cell.size as f64,
            // θ = 0 gives +∞ (or NaN for a zero width): never summarised.
            open2: if cell.leaf {
                -1.0
            } else {
                cell.width2 / theta2
            },
            next: 0,
            leaf: cell.leaf,
        });
        if cell.leaf {
            let mut i = cell.points;
            while i != NO_POINT {
                self.order.push(i);
                i = self.next_point[i as usize];
            }
        } else {
            for &child in &cell.children {
                if child != NO_CHILD {
                    self.visit(child, theta2);
                }
            }
        }
        self.nodes[me].next = self.nodes.len() as u32;
    }

    /// Repulsion on the point `(px, py)`: returns `(Σ size·q, Σ size·q²·dx, Σ size·q²·dy)`
    /// with `q = 1 / (1 + d²)`.
    #[inline]
    fn repulsion(&self, px: f64, py: f64) -> (f64, f64, f64) {
        let nodes = &self.nodes[..];
        let (mut z, mut fx, mut fy) = (0.0, 0.0, 0.0);
        let mut c = 0usize;
        while c < nodes.len() {
            let nd = &nodes[c];
            let dx = px - nd.x;
            let dy = py - nd.y;
            let d2 = dx * dx + dy * dy;
            // Written so that NaN descends, as scikit-learn's `width² / d² < θ²` does.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !(d2 > nd.open2) {
                c += 1;
                continue;
            }
            if nd.leaf && dx.abs() <= DUPLICATE_EPS && dy.abs() <= DUPLICATE_EPS {
                c = nd.next as usize;
                continue;
            }
            let q = 1.0 / (1.0 + d2);
            let sq = nd.size * q;
            z += sq;
            let m = sq * q;
            fx += m * dx;
            fy += m * dy;
            c = nd.next as usize;
        }
        (z, fx, fy)
    }
}

/// Buffers of one gradient evaluation, reused across iterations.
struct Gradient {
    /// Repulsive forces (not yet divided by Z), in the tree's order of the points.
    repulsive: Vec<f64>,
    /// Per-block partial sums of Z.
    z_parts: Vec<f64>,
}

impl Gradient {
    fn new(rows: usize) -> Gradient {
        Gradient {
            repulsive: vec![0.0; 2 * rows],
            z_parts: vec![0.0; rows.div_ceil(BLOCK)],
        }
    }

    /// Writes `4 · (attraction − repulsion / Z)` into `grad` (P scaled by `exaggeration`);
    /// returns the KL divergence when `with_kl`, NaN otherwise.
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &mut self,
        p: &JointProbabilities,
        exaggeration: f64,
        y: &[f64],
        theta: f64,
        with_kl: bool,
        tree: &mut QuadTree,
        grad: &mut [f64],
    ) -> f64 {
        // The tree is built on one thread while the others compute the attraction (which
        // does not need it) into `grad`.
        rayon::join(
            || tree.build(y, theta),
            || {
                grad.par_chunks_mut(2 * BLOCK)
                    .enumerate()
                    .for_each(|(b, g)| {
                        for (r, g) in g.chunks_exact_mut(2).enumerate() {
                            let (ax, ay) = attraction(p, exaggeration, y, b * BLOCK + r);
                            g[0] = ax;
                            g[1] = ay;
                        }
                    })
            },
        );
        let tree = &*tree;
        // Points in the tree's order (a function of `y` alone), so the partial sums of Z and
        // their order do not depend on the thread count; forces are stored in that order too.
        self.repulsive
            .par_chunks_mut(2 * BLOCK)
            .zip(self.z_parts.par_iter_mut())
            .zip(tree.order.par_chunks(BLOCK))
            .for_each(|((rep, z_part), points)| {
                let mut z = 0.0;
                for (f, &i) in rep.chunks_exact_mut(2).zip(points) {
                    let i = i as usize;
                    let (zi, fx, fy) = tree.repulsion(y[2 * i], y[2 * i + 1]);
                    z += zi;
                    f[0] = fx;
                    f[1] = fy;
                }
                *z_part = z;
            });
        let z = self.z_parts.iter().sum::<f64>().max(f64::EPSILON);
        for (r, &i) in tree.order.iter().enumerate() {
            let (i, r) = (i as usize, r);
            grad[2 * i] = 4.0 * (grad[2 * i] - self.repulsive[2 * r] / z);
            grad[2 * i + 1] = 4.0 * (grad[2 * i + 1] - self.repulsive[2 * r + 1] / z);
        }
        if !with_kl {
            return f64::NAN;
        }
        let kl_parts: Vec<f64> = (0..p.rows().div_ceil(BLOCK))
            .into_par_iter()
            .map(|b| {
                let mut kl = 0.0;
                for i in b * BLOCK..((b + 1) * BLOCK).min(p.rows()) {
                    for e in p.indptr[i]..p.indptr[i + 1] {
                        let j = p.indices[e];
                        let pij = exaggeration * p.values[e];
                        let dx = y[2 * i] - y[2 * j];
                        let dy = y[2 * i + 1] - y[2 * j + 1];
                        let q = 1.0 / (1.0 + dx * dx + dy * dy);
                        kl += pij * (pij.max(KL_TINY) / (q / z).max(KL_TINY)).ln();
                    }
                }
                kl
            })
            .collect();
        kl_parts.iter().sum()
    }
}

/// `Σⱼ pᵢⱼ qᵢⱼ (yᵢ − yⱼ)` over the stored entries of row `i` (P scaled by `exaggeration`),
/// with the unnormalised `q = 1 / (1 + ‖yᵢ − yⱼ‖²)`.
#[inline]
fn attraction(p: &JointProbabilities, exaggeration: f64, y: &[f64], i: usize) -> (f64, f64) {
    let (yx, yy) = (y[2 * i], y[2 * i + 1]);
    let (mut ax, mut ay) = (0.0, 0.0);
    for e in p.indptr[i]..p.indptr[i + 1] {
        let j = p.indices[e];
        let dx = yx - y[2 * j];
        let dy = yy - y[2 * j + 1];
        let m = exaggeration * p.values[e] / (1.0 + dx * dx + dy * dy);
        ax += m * dx;
        ay += m * dy;
    }
    (ax, ay)
}

/// Barnes–Hut t-SNE of `x` to two dimensions from the starting coordinates `init`
/// (`rows × 2`, row-major; see [`scale_pca_init`] and [`random_init`]).
///
/// Errors on empty or non-finite `x`, fewer than 4 rows, an `init` of the wrong length,
/// non-finite or with all points at one position, and options outside scikit-learn's domains
/// (perplexity in (0, rows), `max_iter ≥ 250`, `early_exaggeration ≥ 1`, a positive finite
/// learning rate, `theta` in [0, 1]). Also errors if the optimisation diverges to non-finite
/// values (only possible with extreme learning rates).
pub fn tsne(x: Embeddings<'_>, init: &[f64], opts: &TsneOptions) -> Result<Tsne, AnalysisError> {
    non_empty("samples", x)?;
    check_finite("samples", x)?;
    let n = x.rows();
    if n < MIN_ROWS {
        return Err(AnalysisError::Undefined(format!(
            "t-SNE needs at least {MIN_ROWS} samples, got {n}"
        )));
    }
    check_perplexity(opts.perplexity)?;
    if opts.perplexity >= n as f64 {
        return Err(AnalysisError::InvalidParameter {
            what: "perplexity",
            value: opts.perplexity.to_string(),
            reason: "must be less than the number of samples",
        });
    }
    if opts.max_iter < EXPLORATION_ITER {
        return Err(AnalysisError::InvalidParameter {
            what: "max_iter",
            value: opts.max_iter.to_string(),
            reason: "must be at least 250 (the early-exaggeration iterations)",
        });
    }
    if !(opts.early_exaggeration.is_finite() && opts.early_exaggeration >= 1.0) {
        return Err(AnalysisError::InvalidParameter {
            what: "early_exaggeration",
            value: opts.early_exaggeration.to_string(),
            reason: "must be finite and at least 1",
        });
    }
    let learning_rate = match opts.learning_rate {
        Some(lr) if lr.is_finite() && lr > 0.0 => lr,
        Some(lr) => {
            return Err(AnalysisError::InvalidParameter {
                what: "learning_rate",
                value: lr.to_string(),
                reason: "must be positive and finite",
            })
        }
        None => (n as f64 / opts.early_exaggeration / 4.0).max(50.0),
    };
    check_theta(opts.theta)?;
    check_embedding("init", init, n)?;
    if init
        .chunks_exact(2)
        .all(|p| p[0] == init[0] && p[1] == init[1])
    {
        return Err(AnalysisError::Undefined(
            "init: every point starts at the same position, so t-SNE has no direction to move"
                .into(),
        ));
    }

    let k = (n - 1).min((3.0 * opts.perplexity + 1.0) as usize);
    let nn = nearest_neighbors(x, k, opts.metric)?;
    let p = joint_probabilities(&nn, opts.perplexity)?;
    drop(nn);

    let mut y = init.to_vec();
    let mut opt = Optimizer {
        p: &p,
        theta: opts.theta,
        learning_rate,
        tree: QuadTree::default(),
        state: Gradient::new(n),
        grad: vec![0.0; 2 * n],
        update: vec![0.0; 2 * n],
        gains: vec![1.0; 2 * n],
    };
    let first = opt.run(
        &mut y,
        Phase {
            start: 0,
            end: EXPLORATION_ITER,
            momentum: 0.5,
            exaggeration: opts.early_exaggeration,
            patience: EXPLORATION_ITER,
        },
    );
    let second = opt.run(
        &mut y,
        Phase {
            start: first.last + 1,
            end: opts.max_iter,
            momentum: 0.8,
            exaggeration: 1.0,
            patience: ITER_WITHOUT_PROGRESS,
        },
    );
    let (kl_divergence, last) = match second.kl {
        Some(kl) => (kl, second.last),
        // No second-phase iteration ran (max_iter = 250): scikit-learn reports the float
        // maximum; the KL of the final embedding is more useful.
        None => {
            let kl =
                opt.state
                    .evaluate(&p, 1.0, &y, opts.theta, true, &mut opt.tree, &mut opt.grad);
            (kl, first.last)
        }
    };
    if !kl_divergence.is_finite() || !y.iter().all(|v| v.is_finite()) {
        return Err(AnalysisError::Undefined(
            "t-SNE diverged to non-finite coordinates (try a smaller learning rate)".into(),
        ));
    }
    Ok(Tsne {
        embedding: y,
        kl_divergence,
        n_iter: last + 1,
    })
}

struct Phase {
    start: usize,
    end: usize,
    momentum: f64,
    exaggeration: f64,
    /// Iterations without a better KL after which the phase stops.
    patience: usize,
}

struct PhaseEnd {
    /// KL at the last evaluation (None when no iteration ran).
    kl: Option<f64>,
    /// Index of the last iteration (the start when none ran).
    last: usize,
}

struct Optimizer<'a> {
    p: &'a JointProbabilities,
    theta: f64,
    learning_rate: f64,
    tree: QuadTree,
    state: Gradient,
    grad: Vec<f64>,
    update: Vec<f64>,
    gains: Vec<f64>,
}

impl Optimizer<'_> {
    /// scikit-learn's `_gradient_descent` for one phase.
    fn run(&mut self, y: &mut [f64], phase: Phase) -> PhaseEnd {
        self.update.iter_mut().for_each(|u| *u = 0.0);
        self.gains.iter_mut().for_each(|g| *g = 1.0);
        let mut kl = None;
        let mut best = f64::MAX;
        let mut best_iter = phase.start;
        let mut last = phase.start;
        for i in phase.start..phase.end {
            last = i;
            let check = (i + 1) % CHECK_EVERY == 0;
            let with_kl = check || i + 1 == phase.end;
            let error = self.state.evaluate(
                self.p,
                phase.exaggeration,
                y,
                self.theta,
                with_kl,
                &mut self.tree,
                &mut self.grad,
            );
            if with_kl {
                kl = Some(error);
            }
            let lr = self.learning_rate;
            let m = phase.momentum;
            y.par_chunks_mut(2 * BLOCK)
                .zip(self.grad.par_chunks_mut(2 * BLOCK))
                .zip(self.update.par_chunks_mut(2 * BLOCK))
                .zip(self.gains.par_chunks_mut(2 * BLOCK))
                .for_each(|(((y, g), u), gain)| {
                    for (((y, g), u), gain) in y.iter_mut().zip(g).zip(u).zip(gain) {
                        if *u * *g < 0.0 {
                            *gain += 0.2;
                        } else {
                            *gain *= 0.8;
                        }
                        *gain = gain.max(MIN_GAIN);
                        *g *= *gain;
                        *u = m * *u - lr * *g;
                        *y += *u;
                    }
                });
            if check {
                let grad_norm = self.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
                if error < best {
                    best = error;
                    best_iter = i;
                } else if i - best_iter > phase.patience {
                    break;
                }
                if grad_norm <= MIN_GRAD_NORM {
                    break;
                }
            }
        }
        PhaseEnd { kl, last }
    }
}

/// scikit-learn's rescaling of a PCA initialisation: every coordinate divided by the
/// standard deviation of the first column (population, ddof 0) and multiplied by 1e-4, so
/// t-SNE starts at the scale of its random initialisation without losing the PCA shape.
///
/// `pca_2d` is `rows × 2`, row-major. A first column without spread cannot be rescaled and
/// is returned unchanged (as is an empty input).
pub fn scale_pca_init(pca_2d: &[f64]) -> Vec<f64> {
    let rows = pca_2d.len() / 2;
    if rows == 0 {
        return pca_2d.to_vec();
    }
    let mean = pca_2d.iter().step_by(2).sum::<f64>() / rows as f64;
    let var = pca_2d
        .iter()
        .step_by(2)
        .map(|v| (v - mean) * (v - mean))
        .sum::<f64>()
        / rows as f64;
    let std = var.sqrt();
    if !(std.is_finite() && std > 0.0) {
        return pca_2d.to_vec();
    }
    pca_2d.iter().map(|v| v / std * 1e-4).collect()
}

/// scikit-learn's random initialisation, `1e-4 · N(0, 1)` for `rows × 2` coordinates, drawn
/// with clipflow's seeded generator (Box–Muller), so a seed gives the same start everywhere
/// (not the same as numpy's for that seed).
pub fn random_init(rows: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed, 0x75e_1217);
    let mut out = Vec::with_capacity(2 * rows);
    for _ in 0..rows {
        // 1 − u is in (0, 1], so the logarithm is finite.
        let r = (-2.0 * (1.0 - rng.uniform()).ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * rng.uniform();
        out.push(1e-4 * r * angle.cos());
        out.push(1e-4 * r * angle.sin());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Gaussian-ish blobs from a xorshift generator.
    fn blobs(n: usize, dim: usize) -> Vec<f32> {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut unit = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .flat_map(|i| {
                let offset = if i % 2 == 0 { 0.0 } else { 5.0 };
                (0..dim)
                    .map(|_| (offset + unit() + unit() + unit() - 1.5) as f32)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The exact t-SNE quantities over the sparse P with an all-pairs Z.
    fn exact(p: &JointProbabilities, y: &[f64]) -> (f64, Vec<f64>) {
        let n = p.rows();
        let mut z = 0.0;
        let mut rep = vec![0.0; 2 * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let (dx, dy) = (y[2 * i] - y[2 * j], y[2 * i + 1] - y[2 * j + 1]);
                    let q = 1.0 / (1.0 + dx * dx + dy * dy);
                    z += q;
                    rep[2 * i] += q * q * dx;
                    rep[2 * i + 1] += q * q * dy;
                }
            }
        }
        let mut g = vec![0.0; 2 * n];
        let mut kl = 0.0;
        for i in 0..n {
            let (mut ax, mut ay) = (0.0, 0.0);
            for e in p.indptr[i]..p.indptr[i + 1] {
                let j = p.indices[e];
                let (dx, dy) = (y[2 * i] - y[2 * j], y[2 * i + 1] - y[2 * j + 1]);
                let q = 1.0 / (1.0 + dx * dx + dy * dy);
                ax += p.values[e] * q * dx;
                ay += p.values[e] * q * dy;
                kl += p.values[e] * (p.values[e] / (q / z)).ln();
            }
            g[2 * i] = 4.0 * (ax - rep[2 * i] / z);
            g[2 * i + 1] = 4.0 * (ay - rep[2 * i + 1] / z);
        }
        (kl, g)
    }

    #[test]
    fn theta_zero_is_exact() {
        let (n, dim) = (80, 6);
        let x = blobs(n, dim);
        let e = Embeddings::new(&x, dim).unwrap();
        let nn = nearest_neighbors(e, 20, Distance::Euclidean).unwrap();
        let p = joint_probabilities(&nn, 6.0).unwrap();
        let total: f64 = p.values().iter().sum();
        assert!((total - 1.0).abs() < 1e-12);
        // Symmetric.
        for i in 0..n {
            for e in p.indptr[i]..p.indptr[i + 1] {
                let j = p.indices[e];
                let back = p.indices[p.indptr[j]..p.indptr[j + 1]]
                    .binary_search(&i)
                    .unwrap();
                assert_eq!(p.values[p.indptr[j] + back], p.values[e]);
            }
        }
        let y: Vec<f64> = blobs(n, 2).iter().map(|&v| v as f64).collect();
        let got = kl_divergence_gradient(&p, &y, 0.0).unwrap();
        let (kl, g) = exact(&p, &y);
        assert!((got.kl_divergence - kl).abs() < 1e-12 * kl.abs());
        let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in got.gradient.iter().zip(&g) {
            assert!((a - b).abs() < 1e-12 * scale, "{a} vs {b}");
        }
        // Barnes–Hut at 0.5 stays close to the exact gradient.
        let bh = kl_divergence_gradient(&p, &y, 0.5).unwrap();
        let err = bh
            .gradient
            .iter()
            .zip(&g)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(err < 0.05 * norm, "{err} vs {norm}");
    }

    #[test]
    fn perplexity_is_reached() {
        let d: Vec<f32> = (0..40).map(|j| (j as f32 * 0.37).powi(2)).collect();
        let mut p = vec![0.0; 40];
        search_row(&mut p, &d, 10f64.ln(), 1e-5f32 as f64, 1e-8f32 as f64);
        let h: f64 = -p
            .iter()
            .filter(|&&v| v > 0.0)
            .map(|v| v * v.ln())
            .sum::<f64>();
        assert!((h - 10f64.ln()).abs() < 1e-4, "{h}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn separates_blobs_deterministically() {
        let (n, dim) = (120, 8);
        let x = blobs(n, dim);
        let e = Embeddings::new(&x, dim).unwrap();
        let init = random_init(n, 3);
        let opts = TsneOptions {
            perplexity: 10.0,
            max_iter: 400,
            ..TsneOptions::default()
        };
        let a = tsne(e, &init, &opts).unwrap();
        assert_eq!(a.n_iter, 400);
        assert!(a.kl_divergence.is_finite() && a.kl_divergence > 0.0);
        // Every point is nearer its own blob's centre than the other's.
        let centre = |parity: usize| {
            let (mut cx, mut cy) = (0.0, 0.0);
            for i in (parity..n).step_by(2) {
                cx += a.embedding[2 * i];
                cy += a.embedding[2 * i + 1];
            }
            (cx / (n / 2) as f64, cy / (n / 2) as f64)
        };
        let c = [centre(0), centre(1)];
        for i in 0..n {
            let d = |c: (f64, f64)| (a.embedding[2 * i] - c.0).hypot(a.embedding[2 * i + 1] - c.1);
            assert!(d(c[i % 2]) < d(c[1 - i % 2]), "point {i}");
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| tsne(e, &init, &opts).unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn duplicates_and_degenerate_trees() {
        // All points at one place but one: the tree merges them and stays finite.
        let mut y = vec![0.5; 20];
        y[0] = 1.0;
        let mut tree = QuadTree::default();
        tree.build(&y, 0.5);
        assert_eq!(tree.nodes[0].size, 10.0);
        let (z, fx, _) = tree.repulsion(0.5, 0.5);
        assert!((z - 1.0 / 1.25).abs() < 1e-15 && fx < 0.0);
        // Non-finite positions cannot loop forever.
        tree.build(&[f64::NAN, 0.0, 1.0, 1.0, 2.0, 2.0], 0.5);
        assert!(tree.nodes.len() < 1000);
    }

    #[test]
    fn init_helpers() {
        let a = random_init(1000, 1);
        assert_eq!(a, random_init(1000, 1));
        assert_ne!(a, random_init(1000, 2));
        let mean = a.iter().sum::<f64>() / 2000.0;
        let std = (a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2000.0).sqrt();
        assert!((std - 1e-4).abs() < 1e-5 && mean.abs() < 1e-5);
        let s = scale_pca_init(&[1.0, 10.0, -1.0, 0.0, 3.0, 4.0, -3.0, 2.0]);
        // Column 0 is ±1, ±3: std √5.
        assert!((s[0] - 1e-4 / 5f64.sqrt()).abs() < 1e-18);
        assert!((s[1] - 1e-3 / 5f64.sqrt()).abs() < 1e-17);
        assert_eq!(
            scale_pca_init(&[2.0, 1.0, 2.0, 3.0]),
            vec![2.0, 1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn rejects_bad_input() {
        let x = blobs(30, 3);
        let e = Embeddings::new(&x, 3).unwrap();
        let init = random_init(30, 0);
        let run = |init: &[f64], o: TsneOptions| tsne(e, init, &o);
        let d = TsneOptions::default;
        assert!(run(&init, d()).is_err()); // perplexity 30 >= 30 rows
        let ok = || TsneOptions {
            perplexity: 5.0,
            max_iter: 250,
            ..d()
        };
        assert!(run(&init, ok()).is_ok());
        assert!(run(&init[..58], ok()).is_err());
        assert!(run(&vec![1.0; 60], ok()).is_err());
        for bad in [
            TsneOptions {
                max_iter: 249,
                ..ok()
            },
            TsneOptions { theta: 1.5, ..ok() },
            TsneOptions {
                perplexity: 0.0,
                ..ok()
            },
            TsneOptions {
                perplexity: f64::NAN,
                ..ok()
            },
            TsneOptions {
                early_exaggeration: 0.5,
                ..ok()
            },
            TsneOptions {
                learning_rate: Some(-1.0),
                ..ok()
            },
        ] {
            assert!(run(&init, bad).is_err());
        }
        let few = Embeddings::new(&x[..9], 3).unwrap();
        assert!(tsne(
            few,
            &init[..6],
            &TsneOptions {
                perplexity: 1.0,
                ..ok()
            }
        )
        .is_err());
        let mut nn = nearest_neighbors(e, 4, Distance::Euclidean).unwrap();
        nn.indices[5] = 99;
        assert!(joint_probabilities(&nn, 2.0).is_err());
        nn.indices[5] = 1;
        assert!(joint_probabilities(&nn, 2.0).is_err()); // row 1 lists itself
        let nn = nearest_neighbors(e, 4, Distance::Euclidean).unwrap();
        let p = joint_probabilities(&nn, 2.0).unwrap();
        assert!(kl_divergence_gradient(&p, &init[..10], 0.5).is_err());
        assert!(kl_divergence_gradient(&p, &init, -0.1).is_err());
    }
}
