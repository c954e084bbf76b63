//! k-means: greedy k-means++ seeding, Lloyd iterations, several seeded restarts, best inertia.
//!
//! The algorithm is scikit-learn's `KMeans(algorithm="lloyd")`, step for step, so that given
//! the same initial centres both run the same iterations and stop at the same one:
//!
//! - **Seeding** (Arthur & Vassilvitskii 2007, greedy variant): the first centre is a uniform
//!   random sample; each next one is the best of `2 + ⌊ln k⌋` candidates drawn with
//!   probability proportional to the squared distance to the nearest chosen centre, "best"
//!   meaning the lowest resulting potential (sum of squared distances).
//! - **Lloyd**: assign every sample to its nearest centre (ties: the lowest centre index),
//!   move each centre to the mean of its samples. A centre left with no sample is moved onto
//!   the sample farthest from its own centre (scikit-learn's relocation), unless all samples
//!   sit on their centres.
//! - **Stopping**: when the assignment no longer changes ("strict convergence"), or when the
//!   squared centre shifts summed over centres fall to `tol × mean per-feature variance`, or
//!   after `max_iter` iterations. Unless strictly converged, samples are reassigned to the
//!   final centres, so labels and centres always agree.
//! - **Restarts**: `n_init` seedings from streams `0..n_init` of the seed; the lowest inertia
//!   wins (the first among equal ones).
//!
//! Distances for the assignment use `‖c‖² − 2 x·c` with an `f32` matrix product (as
//! scikit-learn does for float32 data); centre means, shifts and the inertia accumulate in
//! `f64`. The random stream is clipflow's own (ChaCha8), so centres differ from
//! scikit-learn's for the same seed; inertia is comparable.

use rayon::prelude::*;

use super::super::linalg::{matmul_nt_f32, non_empty};
use super::super::rng::Rng;
use super::super::{check_finite, AnalysisError, Embeddings};

/// Options of [`kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansOptions {
    /// Number of clusters.
    pub k: usize,
    /// Independent k-means++ seedings; the best inertia wins. scikit-learn's long-standing
    /// default, 10.
    pub n_init: usize,
    /// Lloyd iterations per seeding at most.
    pub max_iter: usize,
    /// Relative tolerance on the centre shift (scikit-learn's `tol`).
    pub tol: f64,
    pub seed: u64,
}

impl KMeansOptions {
    /// scikit-learn's defaults (`n_init=10, max_iter=300, tol=1e-4`) for `k` clusters.
    pub fn new(k: usize, seed: u64) -> KMeansOptions {
        KMeansOptions {
            k,
            n_init: 10,
            max_iter: 300,
            tol: 1e-4,
            seed,
        }
    }
}

/// A k-means solution.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Cluster of each sample.
    pub labels: Vec<usize>,
    /// `k × dim` centres, row-major.
    pub centroids: Vec<f32>,
    /// Sum of squared distances of samples to their centre.
    pub inertia: f64,
    /// Lloyd iterations of the winning run.
    pub n_iter: usize,
    /// Which restart won.
    pub best_restart: usize,
    /// Inertia of every restart.
    pub restart_inertia: Vec<f64>,
    /// Lloyd iterations of every restart.
    pub restart_iterations: Vec<usize>,
}

/// Rows per parallel work item with a partial sum, fixed so results do not depend on the
/// thread count.
const REDUCE_ROWS: usize = 2048;
/// Rows per matrix product inside a work item.
const GEMM_ROWS: usize = 256;

/// Samples to cluster into `k` groups: non-empty, finite, and at least `k` of them (k-means,
/// and the autoencoder and DEC that start from it).
pub(crate) fn check_input(x: Embeddings<'_>, k: usize) -> Result<(), AnalysisError> {
    non_empty("samples", x)?;
    check_finite("samples", x)?;
    if k == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "k",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if k > x.rows() {
        return Err(AnalysisError::TooLarge {
            what: "k",
            k,
            n: x.rows(),
            of: "samples",
        });
    }
    Ok(())
}

fn sq_norms(v: &[f32], dim: usize) -> Vec<f32> {
    v.chunks_exact(dim)
        .map(|r| r.iter().map(|a| a * a).sum())
        .collect()
}

/// Squared distance between two rows, in `f64`.
fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

/// Greedy k-means++ seeding (see the module docs); returns `k × dim` centres.
/// `stream` selects an independent random stream of `seed` (the restart number).
pub fn kmeans_plus_plus(
    x: Embeddings<'_>,
    k: usize,
    seed: u64,
    stream: u64,
) -> Result<Vec<f32>, AnalysisError> {
    check_input(x, k)?;
    let (n, dim) = (x.rows(), x.dim());
    let data = x.data();
    let xx = sq_norms(data, dim);
    let mut rng = Rng::new(seed, stream);
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centres = Vec::with_capacity(k * dim);
    let first = rng.below(n);
    centres.extend_from_slice(x.row(first));
    // Squared distances to the nearest chosen centre (f32 products, as scikit-learn's
    // float32 path; they only steer the sampling).
    let mut closest = sq_dists_to(data, &xx, x.row(first), dim);
    let mut potential: f64 = closest.iter().map(|&d| d as f64).sum();
    for _ in 1..k {
        let mut cumsum = Vec::with_capacity(n);
        let mut acc = 0.0f64;
        for &d in &closest {
            acc += d as f64;
            cumsum.push(acc);
        }
        let cands: Vec<usize> = (0..trials)
            .map(|_| {
                let v = rng.uniform() * potential;
                cumsum.partition_point(|&c| c < v).min(n - 1)
            })
            .collect();
        let cand_rows: Vec<f32> = cands.iter().flat_map(|&c| x.row(c)).copied().collect();
        let cand_xx = sq_norms(&cand_rows, dim);
        // Per work item: min(closest, d²(candidate)) for every candidate, and its partial sums.
        let parts: Vec<(Vec<f32>, Vec<f64>)> = data
            .par_chunks(REDUCE_ROWS * dim)
            .zip(closest.par_chunks(REDUCE_ROWS))
            .zip(xx.par_chunks(REDUCE_ROWS))
            .map(|((rows, cl), xn)| {
                let m = cl.len();
                let mut dots = vec![0.0f32; m * trials];
                matmul_nt_f32(rows, &cand_rows, dim, &mut dots);
                // Candidate-major: new[t * m + i].
                let mut new = vec![0.0f32; trials * m];
                let mut pot = vec![0.0f64; trials];
                for i in 0..m {
                    for t in 0..trials {
                        let d = (xn[i] + cand_xx[t] - 2.0 * dots[i * trials + t]).max(0.0);
                        let v = d.min(cl[i]);
                        new[t * m + i] = v;
                        pot[t] += v as f64;
                    }
                }
                (new, pot)
            })
            .collect();
        let mut pots = vec![0.0f64; trials];
        for (_, p) in &parts {
            for (a, b) in pots.iter_mut().zip(p) {
                *a += b;
            }
        }
        // The first of the lowest potentials.
        let best = (1..trials).fold(0, |b, t| if pots[t] < pots[b] { t } else { b });
        potential = pots[best];
        let mut off = 0;
        for (new, _) in &parts {
            let m = new.len() / trials;
            closest[off..off + m].copy_from_slice(&new[best * m..(best + 1) * m]);
            off += m;
        }
        centres.extend_from_slice(x.row(cands[best]));
    }
    Ok(centres)
}

fn sq_dists_to(data: &[f32], xx: &[f32], c: &[f32], dim: usize) -> Vec<f32> {
    let cc: f32 = c.iter().map(|a| a * a).sum();
    data.par_chunks(REDUCE_ROWS * dim)
        .zip(xx.par_chunks(REDUCE_ROWS))
        .flat_map_iter(|(rows, xn)| {
            let mut dots = vec![0.0f32; xn.len()];
            matmul_nt_f32(rows, c, dim, &mut dots);
            dots.into_iter()
                .zip(xn)
                .map(move |(d, &x)| (x + cc - 2.0 * d).max(0.0))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One assignment pass: nearest centre per sample and, if `sums`, the per-centre sums.
struct Assignment {
    labels: Vec<usize>,
    sums: Vec<f64>,
    counts: Vec<usize>,
}

/// Rows per work item of an assignment pass with sums: each item keeps a `k × dim` partial
/// sum, so the number of items is bounded (at most 32, and at most 256 MiB of partial sums)
/// while rows are summed right after their distances are computed, still in cache. The
/// partition depends only on the shapes, so results do not depend on the thread count.
fn sum_chunk_rows(n: usize, k: usize, dim: usize) -> usize {
    let parts = ((256usize << 20) / (k * dim * 8).max(1)).clamp(1, 32);
    n.div_ceil(parts).div_ceil(GEMM_ROWS).max(1) * GEMM_ROWS
}

fn assign(x: Embeddings<'_>, centres: &[f32], k: usize, with_sums: bool) -> Assignment {
    let (n, dim) = (x.rows(), x.dim());
    let cc = sq_norms(centres, dim);
    let chunk = if with_sums {
        sum_chunk_rows(n, k, dim)
    } else {
        GEMM_ROWS
    };
    let parts: Vec<(Vec<usize>, Vec<f64>)> = x
        .data()
        .par_chunks(chunk * dim)
        .map(|rows| {
            let mut labels = Vec::with_capacity(rows.len() / dim);
            let mut sums = vec![0.0f64; if with_sums { k * dim } else { 0 }];
            let mut dots = vec![0.0f32; GEMM_ROWS * k];
            for sub in rows.chunks(GEMM_ROWS * dim) {
                let d = &mut dots[..sub.len() / dim * k];
                matmul_nt_f32(sub, centres, dim, d);
                for (row, xr) in d.chunks_exact(k).zip(sub.chunks_exact(dim)) {
                    // Nearest centre by ‖c‖² − 2 x·c; the first on ties.
                    let mut best = 0;
                    let mut best_d = f32::INFINITY;
                    for (c, (&dot, &cn)) in row.iter().zip(&cc).enumerate() {
                        let dist = cn - 2.0 * dot;
                        if dist < best_d {
                            best_d = dist;
                            best = c;
                        }
                    }
                    labels.push(best);
                    if with_sums {
                        for (a, &b) in sums[best * dim..(best + 1) * dim].iter_mut().zip(xr) {
                            *a += b as f64;
                        }
                    }
                }
            }
            (labels, sums)
        })
        .collect();
    let mut labels = Vec::with_capacity(n);
    let mut sums = vec![0.0f64; if with_sums { k * dim } else { 0 }];
    for (l, s) in parts {
        labels.extend(l);
        for (a, b) in sums.iter_mut().zip(&s) {
            *a += b;
        }
    }
    let mut counts = vec![0usize; k];
    labels.iter().for_each(|&l| counts[l] += 1);
    Assignment {
        labels,
        sums,
        counts,
    }
}

fn inertia(x: Embeddings<'_>, centres: &[f32], labels: &[usize]) -> f64 {
    let dim = x.dim();
    let parts: Vec<f64> = x
        .data()
        .par_chunks(REDUCE_ROWS * dim)
        .zip(labels.par_chunks(REDUCE_ROWS))
        .map(|(rows, l)| {
            rows.chunks_exact(dim)
                .zip(l)
                .map(|(r, &c)| sq_dist(r, &centres[c * dim..(c + 1) * dim]))
                .sum::<f64>()
        })
        .collect();
    parts.iter().sum()
}

/// `tol` scaled by the mean per-feature variance (population variance, as `np.var`).
fn absolute_tol(x: Embeddings<'_>, tol: f64) -> f64 {
    if tol == 0.0 {
        return 0.0;
    }
    let (n, dim) = (x.rows(), x.dim());
    let mut mean = vec![0.0f64; dim];
    for r in x.data().chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0f64; dim];
    for r in x.data().chunks_exact(dim) {
        for ((s, &m), &v) in var.iter_mut().zip(&mean).zip(r) {
            let d = v as f64 - m;
            *s += d * d;
        }
    }
    var.iter().map(|s| s / n as f64).sum::<f64>() / dim as f64 * tol
}

/// Lloyd iterations from the given `k × dim` centres (scikit-learn's `KMeans(init=centres,
/// n_init=1)`): the core of [`kmeans`], public for comparisons from a common start.
pub fn lloyd(
    x: Embeddings<'_>,
    init: &[f32],
    max_iter: usize,
    tol: f64,
) -> Result<KMeans, AnalysisError> {
    let dim = x.dim();
    if init.is_empty() || !init.len().is_multiple_of(dim) {
        return Err(AnalysisError::Ragged {
            what: "initial centres",
            len: init.len(),
            dim,
        });
    }
    let k = init.len() / dim;
    check_input(x, k)?;
    if !init.iter().all(|v| v.is_finite()) {
        return Err(AnalysisError::NonFinite {
            what: "initial centres",
            row: init.iter().position(|v| !v.is_finite()).unwrap_or(0) / dim,
        });
    }
    if max_iter == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "max_iter",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if !(tol >= 0.0 && tol.is_finite()) {
        return Err(AnalysisError::InvalidParameter {
            what: "tol",
            value: tol.to_string(),
            reason: "must be a finite number >= 0",
        });
    }
    let tol = absolute_tol(x, tol);
    let mut centres = init.to_vec();
    let mut labels_old: Vec<usize> = Vec::new();
    let mut labels = Vec::new();
    let mut strict = false;
    let mut iterations = 0;
    for it in 0..max_iter {
        iterations = it + 1;
        let Assignment {
            labels: l,
            mut sums,
            mut counts,
        } = assign(x, &centres, k, true);
        labels = l;
        relocate_empty(x, &centres, &labels, &mut sums, &mut counts);
        let mut shift_tot = 0.0f64;
        for c in 0..k {
            let old = &mut centres[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                // Still empty (every sample sits on its centre): the centre stays.
                continue;
            }
            let inv = 1.0 / counts[c] as f64;
            let mut shift = 0.0f64;
            for (o, &s) in old.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                let new = (s * inv) as f32;
                let d = new as f64 - *o as f64;
                shift += d * d;
                *o = new;
            }
            shift_tot += shift;
        }
        if labels == labels_old {
            strict = true;
            break;
        }
        if shift_tot <= tol {
            break;
        }
        std::mem::swap(&mut labels_old, &mut labels);
        labels.clear();
    }
    if !strict {
        labels = assign(x, &centres, k, false).labels;
    }
    let inertia = inertia(x, &centres, &labels);
    Ok(KMeans {
        labels,
        centroids: centres,
        inertia,
        n_iter: iterations,
        best_restart: 0,
        restart_inertia: vec![inertia],
        restart_iterations: vec![iterations],
    })
}

/// Moves each empty cluster onto the sample farthest from its current centre (the farthest
/// for the first empty cluster, the next farthest for the second, ...), moving that sample's
/// contribution between the sums. Labels are left as they are, as in scikit-learn.
fn relocate_empty(
    x: Embeddings<'_>,
    centres: &[f32],
    labels: &[usize],
    sums: &mut [f64],
    counts: &mut [usize],
) {
    let empty: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
    if empty.is_empty() {
        return;
    }
    let dim = x.dim();
    let dist: Vec<f64> = (0..x.rows())
        .map(|i| sq_dist(x.row(i), &centres[labels[i] * dim..(labels[i] + 1) * dim]))
        .collect();
    if dist.iter().all(|&d| d == 0.0) {
        return;
    }
    let mut order: Vec<usize> = (0..x.rows()).collect();
    order.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
    for (&new, &far) in empty.iter().zip(&order) {
        let old = labels[far];
        let row = x.row(far);
        for (j, &v) in row.iter().enumerate() {
            sums[old * dim + j] -= v as f64;
            sums[new * dim + j] = v as f64;
        }
        counts[old] -= 1;
        counts[new] = 1;
    }
}

/// k-means with k-means++ seeding and `n_init` restarts (see the module docs).
pub fn kmeans(x: Embeddings<'_>, opts: &KMeansOptions) -> Result<KMeans, AnalysisError> {
    check_input(x, opts.k)?;
    if opts.n_init == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "n_init",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    let mut best: Option<KMeans> = None;
    let mut all = Vec::with_capacity(opts.n_init);
    let mut iterations = Vec::with_capacity(opts.n_init);
    for restart in 0..opts.n_init {
        let init = kmeans_plus_plus(x, opts.k, opts.seed, restart as u64)?;
        let mut run = lloyd(x, &init, opts.max_iter, opts.tol)?;
        all.push(run.inertia);
        iterations.push(run.n_iter);
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            run.best_restart = restart;
            best = Some(run);
        }
    }
    let mut best = best.expect("n_init >= 1");
    best.restart_inertia = all;
    best.restart_iterations = iterations;
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> Vec<f32> {
        // Three tight groups on a line, 5 points each.
        let mut v = vec![];
        for c in [0.0f32, 10.0, 20.0] {
            for j in 0..5 {
                v.push(c + j as f32 * 0.1);
                v.push(-c);
            }
        }
        v
    }

    #[test]
    fn finds_separated_groups_deterministically() {
        let x = blobs();
        let e = Embeddings::new(&x, 2).unwrap();
        let r = kmeans(e, &KMeansOptions::new(3, 1)).unwrap();
        let again = kmeans(e, &KMeansOptions::new(3, 1)).unwrap();
        assert_eq!(r, again);
        for g in 0..3 {
            let l = r.labels[g * 5];
            assert!(r.labels[g * 5..g * 5 + 5].iter().all(|&v| v == l));
        }
        let mut distinct = r.labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
        // Each group contributes 2 * (0.2^2 + 0.1^2) = 0.1.
        assert!((r.inertia - 0.3).abs() < 1e-5, "{}", r.inertia);
    }

    #[test]
    fn empty_cluster_is_relocated() {
        // Start with two centres on the same group: the other centre is far from all.
        let x = blobs();
        let e = Embeddings::new(&x, 2).unwrap();
        let init = [0.0f32, 0.0, 1000.0, 1000.0, 0.1, 0.0];
        let r = lloyd(e, &init, 100, 1e-4).unwrap();
        let mut distinct = r.labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn degenerate_inputs() {
        let x = [1.0f32, 2.0];
        let e = Embeddings::new(&x, 1).unwrap();
        assert!(kmeans(e, &KMeansOptions::new(3, 0)).is_err());
        assert!(kmeans(e, &KMeansOptions::new(0, 0)).is_err());
        assert!(kmeans(Embeddings::new(&[], 1).unwrap(), &KMeansOptions::new(1, 0)).is_err());
        assert!(lloyd(e, &[1.0, 2.0, 3.0], 10, 1e-4).is_err());
        let nan = [1.0f32, f32::NAN];
        assert!(kmeans(Embeddings::new(&nan, 1).unwrap(), &KMeansOptions::new(1, 0)).is_err());
        // Identical samples: k = n still works (all centres coincide).
        let same = [1.0f32, 1.0, 1.0];
        let r = kmeans(
            Embeddings::new(&same, 1).unwrap(),
            &KMeansOptions::new(3, 0),
        )
        .unwrap();
        assert_eq!(r.inertia, 0.0);
    }
}
