//! Near-duplicates, leaks across splits, and FiftyOne's uniqueness score.
//!
//! Two questions open most dataset studies: which items are (near) copies of each other, and
//! which evaluation items have a copy in the training split — a leak that inflates retrieval
//! and probe scores. Both are answered from the image embeddings.
//!
//! # Definitions
//!
//! - **Cosine** of two items: the dot product of their rows after each is divided by its L2
//!   norm, in `f64` (a zero row has cosine 0 with everything, as scikit-learn's
//!   `cosine_similarity` has it). Values are clamped to [−1, 1].
//! - A **near-duplicate pair** is `(a, b)`, `a < b`, with cosine ≥ `threshold`.
//! - With groups (the values of a split column, or any column): a **cross-group pair** is a
//!   near-duplicate pair whose items have known and different groups. An item without a group
//!   is never part of one: an unknown split is not evidence of a leak.
//! - **Uniqueness** is FiftyOne Brain's `compute_uniqueness` on given embeddings (its
//!   scikit-learn similarity backend, which FiftyOne uses when no index is given; read from
//!   fiftyone-brain's `internal/core/uniqueness.py` and `internal/core/sklearn.py`): the
//!   embeddings are centred on their mean; distances are cosine distances `1 − cos` clipped to
//!   [0, 2]; each item's distances to the 2nd, 3rd and 4th nearest *other* items are weighted
//!   0.6, 0.3, 0.1 and averaged (`np.mean(d * w)`, so the weighted sum over 3); the scores are
//!   divided by their maximum. FiftyOne asks its index for K + 1 = 4 neighbours, and since the
//!   index already leaves an item out of its own neighbours, dropping "the first column"
//!   drops the nearest other item: that is what FiftyOne computes and so what this computes.
//!   FiftyOne centres in the embeddings' own dtype; this centres in `f64` (for `float32`
//!   inputs the two differ by about 1e-7). Above 15,000 items FiftyOne switches to Euclidean
//!   distances between the normalised rows (`sqrt(2·(1 − cos))`, another scale); this keeps
//!   cosine distances at every size, so scores do not jump at 15,000.
//!
//! # Memory and cost
//!
//! Nothing of size N² is held: the upper triangle of the similarity matrix is computed in row
//! blocks of about 32 MiB (the `f64` products of `linalg`), a few blocks at a time (one per
//! worker thread), and each block keeps only what crosses the threshold. The pairs kept are
//! bounded by `max_pairs` (the strongest); the counts are exact whatever the bound. Cost is
//! N²·D/2 multiply-adds: 100k × 512 is about 2.6·10¹² (measured with uniqueness by
//! `scripts/bench_duplicates`: 30k × 512 in 49 s on two shared cores, so 100k in about 9 min).
//! Uniqueness is an exact 4-nearest-neighbour search over the centred rows (N²·D).
//!
//! # Determinism
//!
//! Blocks are a fixed partition of the rows, merged in order, and every choice (which pairs
//! to keep, an item's nearest other item) is by a total order — higher cosine first, then
//! lower indices — so results do not depend on the number of threads.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::linalg::{non_empty, rows_per_block, Distance, Pairwise};
use super::neighbors::nearest_in;
use super::{check_finite, AnalysisError, Embeddings};

/// The threshold the `duplicates` stage uses unless told otherwise.
pub const DEFAULT_THRESHOLD: f64 = 0.95;

/// FiftyOne's weights of the 2nd, 3rd and 4th nearest other items.
pub const UNIQUENESS_WEIGHTS: [f64; 3] = [0.6, 0.3, 0.1];

/// Items below which uniqueness is undefined: FiftyOne returns 1 for every item of a set of
/// at most 3 and NaN for a set of 4 (its 4th "neighbour" is then the item itself).
pub const UNIQUENESS_MIN_ITEMS: usize = 5;

/// What to look for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicateOptions {
    /// A pair is a near-duplicate when its cosine is at least this (in [−1, 1]).
    pub threshold: f64,
    /// The strongest pairs kept in [`NearDuplicates::pairs`], and separately in
    /// [`NearDuplicates::cross_pairs`]; the counts cover all of them.
    pub max_pairs: usize,
}

impl Default for DuplicateOptions {
    fn default() -> Self {
        DuplicateOptions {
            threshold: DEFAULT_THRESHOLD,
            max_pairs: 10_000,
        }
    }
}

/// Two items with their cosine; `a < b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicatePair {
    pub a: usize,
    pub b: usize,
    pub cosine: f64,
}

/// The near-duplicates of a set of items.
#[derive(Debug, Clone, PartialEq)]
pub struct NearDuplicates {
    pub threshold: f64,
    /// The strongest pairs (highest cosine first, then by `a`, then `b`), at most
    /// `max_pairs` of them.
    pub pairs: Vec<DuplicatePair>,
    /// All pairs at or above the threshold.
    pub pair_count: u64,
    /// As `pairs`, among the cross-group pairs only (empty without groups).
    pub cross_pairs: Vec<DuplicatePair>,
    /// All cross-group pairs.
    pub cross_pair_count: u64,
    /// Per item: how many other items are near-duplicates of it.
    pub partners: Vec<usize>,
    /// Per item: how many of those are in another group.
    pub cross_partners: Vec<usize>,
    /// Per item: the most similar other item and its cosine (ties to the lower index);
    /// `None` for a set of one.
    pub nearest: Vec<Option<(usize, f64)>>,
}

impl NearDuplicates {
    /// The items with a near-duplicate in another group, ascending: what to leave out to
    /// measure without the leak (both sides of every cross-group pair, since either may be the
    /// one an evaluation sees).
    pub fn leaking_items(&self) -> Vec<usize> {
        (0..self.cross_partners.len())
            .filter(|&i| self.cross_partners[i] > 0)
            .collect()
    }
}

/// Finds the pairs of rows of `x` whose cosine is at least `options.threshold`, and with
/// `groups` (one entry per row, `None` for unknown) the pairs across groups.
///
/// Errors on an empty or non-finite input, a threshold outside [−1, 1], or groups of the
/// wrong length.
pub fn near_duplicates(
    x: Embeddings<'_>,
    groups: Option<&[Option<usize>]>,
    options: &DuplicateOptions,
) -> Result<NearDuplicates, AnalysisError> {
    non_empty("embeddings", x)?;
    check_finite("embeddings", x)?;
    let threshold = options.threshold;
    if !(-1.0..=1.0).contains(&threshold) {
        return Err(AnalysisError::InvalidParameter {
            what: "duplicate threshold",
            value: threshold.to_string(),
            reason: "must be a cosine in [-1, 1]",
        });
    }
    let n = x.rows();
    if let Some(g) = groups {
        if g.len() != n {
            return Err(AnalysisError::LengthMismatch {
                what: "groups",
                expected: n,
                got: g.len(),
            });
        }
    }
    let pw = Pairwise::new(x, Distance::Cosine);
    let block = rows_per_block(n, 8, 32 << 20, 1024);
    let starts: Vec<usize> = (0..n).step_by(block).collect();
    let mut out = Accumulator::new(n, options.max_pairs);
    // A few blocks at a time, so the per-block column state stays O(threads · n).
    for wave in starts.chunks(rayon::current_num_threads().max(1)) {
        let parts: Vec<BlockResult> = wave
            .par_iter()
            .map(|&start| {
                scan_block(
                    &pw,
                    start,
                    block.min(n - start),
                    groups,
                    threshold,
                    options.max_pairs,
                )
            })
            .collect();
        for part in parts {
            out.merge(part);
        }
    }
    Ok(out.finish(threshold))
}

/// A pair ordered so that the *weakest* is the greatest: the top of a max-heap is the pair to
/// drop first.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Weakest(DuplicatePair);

impl Eq for Weakest {}

impl Ord for Weakest {
    fn cmp(&self, other: &Self) -> Ordering {
        // Stronger = higher cosine, then lower a, then lower b.
        other
            .0
            .cosine
            .total_cmp(&self.0.cosine)
            .then(self.0.a.cmp(&other.0.a))
            .then(self.0.b.cmp(&other.0.b))
    }
}

impl PartialOrd for Weakest {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The strongest `cap` pairs seen.
struct Strongest {
    cap: usize,
    heap: BinaryHeap<Weakest>,
}

impl Strongest {
    fn new(cap: usize) -> Strongest {
        Strongest {
            cap,
            heap: BinaryHeap::new(),
        }
    }

    fn push(&mut self, p: DuplicatePair) {
        if self.cap == 0 {
            return;
        }
        if self.heap.len() < self.cap {
            self.heap.push(Weakest(p));
        } else if let Some(top) = self.heap.peek() {
            if Weakest(p) < *top {
                self.heap.pop();
                self.heap.push(Weakest(p));
            }
        }
    }

    fn sorted(self) -> Vec<DuplicatePair> {
        let mut v: Vec<Weakest> = self.heap.into_vec();
        v.sort();
        v.into_iter().map(|w| w.0).collect()
    }
}

/// `(cosine, index)` of the best partner so far; better = higher cosine, then lower index.
#[derive(Debug, Clone, Copy)]
struct Best {
    cosine: f64,
    index: usize,
}

impl Best {
    const NONE: Best = Best {
        cosine: f64::NEG_INFINITY,
        index: usize::MAX,
    };

    fn offer(&mut self, cosine: f64, index: usize) {
        if cosine > self.cosine || (cosine == self.cosine && index < self.index) {
            *self = Best { cosine, index };
        }
    }
}

/// What one row block found. Column state covers items `start..n` (the block's rows first).
struct BlockResult {
    start: usize,
    pairs: Strongest,
    cross: Strongest,
    pair_count: u64,
    cross_count: u64,
    best: Vec<Best>,
    partners: Vec<usize>,
    cross_partners: Vec<usize>,
}

fn scan_block(
    pw: &Pairwise,
    start: usize,
    rows: usize,
    groups: Option<&[Option<usize>]>,
    threshold: f64,
    max_pairs: usize,
) -> BlockResult {
    let n = pw.n();
    let cols = n - start;
    let mut dots = vec![0.0f64; rows * cols];
    pw.dots(start, rows, start, &mut dots);
    let mut r = BlockResult {
        start,
        pairs: Strongest::new(max_pairs),
        cross: Strongest::new(max_pairs),
        pair_count: 0,
        cross_count: 0,
        best: vec![Best::NONE; cols],
        partners: vec![0; cols],
        cross_partners: vec![0; cols],
    };
    for (local_i, row) in dots.chunks_exact(cols).enumerate() {
        let a = start + local_i;
        for (local_j, &d) in row.iter().enumerate().skip(local_i + 1) {
            let b = start + local_j;
            let cosine = d.clamp(-1.0, 1.0);
            r.best[local_i].offer(cosine, b);
            r.best[local_j].offer(cosine, a);
            if cosine < threshold {
                continue;
            }
            let pair = DuplicatePair { a, b, cosine };
            r.pair_count += 1;
            r.partners[local_i] += 1;
            r.partners[local_j] += 1;
            r.pairs.push(pair);
            if let Some(g) = groups {
                if let (Some(ga), Some(gb)) = (g[a], g[b]) {
                    if ga != gb {
                        r.cross_count += 1;
                        r.cross_partners[local_i] += 1;
                        r.cross_partners[local_j] += 1;
                        r.cross.push(pair);
                    }
                }
            }
        }
    }
    r
}

struct Accumulator {
    pairs: Strongest,
    cross: Strongest,
    pair_count: u64,
    cross_count: u64,
    best: Vec<Best>,
    partners: Vec<usize>,
    cross_partners: Vec<usize>,
}

impl Accumulator {
    fn new(n: usize, max_pairs: usize) -> Accumulator {
        Accumulator {
            pairs: Strongest::new(max_pairs),
            cross: Strongest::new(max_pairs),
            pair_count: 0,
            cross_count: 0,
            best: vec![Best::NONE; n],
            partners: vec![0; n],
            cross_partners: vec![0; n],
        }
    }

    fn merge(&mut self, part: BlockResult) {
        self.pair_count += part.pair_count;
        self.cross_count += part.cross_count;
        for p in part.pairs.heap {
            self.pairs.push(p.0);
        }
        for p in part.cross.heap {
            self.cross.push(p.0);
        }
        let s = part.start;
        for (k, b) in part.best.iter().enumerate() {
            self.best[s + k].offer(b.cosine, b.index);
            self.partners[s + k] += part.partners[k];
            self.cross_partners[s + k] += part.cross_partners[k];
        }
    }

    fn finish(self, threshold: f64) -> NearDuplicates {
        NearDuplicates {
            threshold,
            pairs: self.pairs.sorted(),
            pair_count: self.pair_count,
            cross_pairs: self.cross.sorted(),
            cross_pair_count: self.cross_count,
            partners: self.partners,
            cross_partners: self.cross_partners,
            nearest: self
                .best
                .iter()
                .map(|b| (b.index != usize::MAX).then_some((b.index, b.cosine)))
                .collect(),
        }
    }
}

/// FiftyOne's uniqueness of every row of `x`, in [0, 1] (1 for the most unique item); see the
/// module docs for the definition.
///
/// Errors with fewer than [`UNIQUENESS_MIN_ITEMS`] rows, on non-finite input, and when every
/// score is 0 (each item has at least four others in the same direction from the mean), where
/// FiftyOne's normalisation divides 0 by 0.
pub fn uniqueness(x: Embeddings<'_>) -> Result<Vec<f64>, AnalysisError> {
    non_empty("embeddings", x)?;
    check_finite("embeddings", x)?;
    let (n, dim) = (x.rows(), x.dim());
    if n < UNIQUENESS_MIN_ITEMS {
        return Err(AnalysisError::Undefined(format!(
            "uniqueness needs at least {UNIQUENESS_MIN_ITEMS} items (it weighs each item's 2nd \
             to 4th nearest others); there are {n}"
        )));
    }
    let mut mean = vec![0.0f64; dim];
    for row in x.data().chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred: Vec<f64> = x
        .data()
        .chunks_exact(dim)
        .flat_map(|row| row.iter().zip(&mean).map(|(&v, &m)| f64::from(v) - m))
        .collect();
    let knn = nearest_in(&Pairwise::from_f64(centred, dim, Distance::Cosine), 4);
    let mut scores: Vec<f64> = (0..n)
        .map(|i| {
            let d = knn.distances_of(i);
            d[1..]
                .iter()
                .zip(UNIQUENESS_WEIGHTS)
                .map(|(d, w)| d * w)
                .sum::<f64>()
                / 3.0
        })
        .collect();
    let max = scores.iter().copied().fold(0.0f64, f64::max);
    if max <= 0.0 {
        return Err(AnalysisError::Undefined(
            "uniqueness: every item has at least four others in the same direction from the \
             mean, so every score is 0 and the normalisation is undefined"
                .into(),
        ));
    }
    scores.iter_mut().for_each(|s| *s /= max);
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair by brute force, in f64.
    fn brute(x: &[f32], dim: usize) -> Vec<(usize, usize, f64)> {
        let rows: Vec<Vec<f64>> = x
            .chunks(dim)
            .map(|r| {
                let v: Vec<f64> = r.iter().map(|&a| a as f64).collect();
                let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
                v.iter()
                    .map(|a| if norm > 0.0 { a / norm } else { 0.0 })
                    .collect()
            })
            .collect();
        let mut out = vec![];
        for i in 0..rows.len() {
            for j in i + 1..rows.len() {
                let c: f64 = rows[i].iter().zip(&rows[j]).map(|(a, b)| a * b).sum();
                out.push((i, j, c.clamp(-1.0, 1.0)));
            }
        }
        out
    }

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::analysis::rng::Rng::new(seed, 0);
        let mut x: Vec<f32> = (0..n * dim)
            .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
            .collect();
        // Plant copies: row 3k+1 is row 3k plus a little noise.
        for k in 0..n / 3 {
            for d in 0..dim {
                x[(3 * k + 1) * dim + d] = x[3 * k * dim + d] + 0.01 * (d % 3) as f32;
            }
        }
        x
    }

    #[test]
    fn agrees_with_brute_force_and_bounds_pairs() {
        let (n, dim) = (61, 7);
        let x = data(n, dim, 3);
        let e = Embeddings::new(&x, dim).unwrap();
        let groups: Vec<Option<usize>> = (0..n)
            .map(|i| if i % 5 == 4 { None } else { Some(i % 2) })
            .collect();
        let threshold = 0.8;
        let all = brute(&x, dim);
        let mut want: Vec<(usize, usize, f64)> =
            all.iter().copied().filter(|p| p.2 >= threshold).collect();
        want.sort_by(|p, q| q.2.total_cmp(&p.2).then(p.0.cmp(&q.0)).then(p.1.cmp(&q.1)));
        let cross: Vec<_> = want
            .iter()
            .copied()
            .filter(|p| matches!((groups[p.0], groups[p.1]), (Some(a), Some(b)) if a != b))
            .collect();
        assert!(want.len() > 20 && !cross.is_empty());
        for max_pairs in [0, 5, 1000] {
            let d = near_duplicates(
                e,
                Some(&groups),
                &DuplicateOptions {
                    threshold,
                    max_pairs,
                },
            )
            .unwrap();
            assert_eq!(d.pair_count, want.len() as u64);
            assert_eq!(d.cross_pair_count, cross.len() as u64);
            assert_eq!(d.pairs.len(), want.len().min(max_pairs));
            for (got, w) in d.pairs.iter().zip(&want) {
                assert_eq!((got.a, got.b), (w.0, w.1));
                assert!((got.cosine - w.2).abs() < 1e-12);
            }
            for (got, w) in d.cross_pairs.iter().zip(&cross) {
                assert_eq!((got.a, got.b), (w.0, w.1));
            }
            for i in 0..n {
                let mine = want.iter().filter(|p| p.0 == i || p.1 == i).count();
                assert_eq!(d.partners[i], mine);
                let mine = cross.iter().filter(|p| p.0 == i || p.1 == i).count();
                assert_eq!(d.cross_partners[i], mine);
                let (j, c) = d.nearest[i].unwrap();
                let best = all
                    .iter()
                    .filter(|p| p.0 == i || p.1 == i)
                    .map(|p| (if p.0 == i { p.1 } else { p.0 }, p.2))
                    .fold((usize::MAX, f64::NEG_INFINITY), |b, o| {
                        if o.1 > b.1 || (o.1 == b.1 && o.0 < b.0) {
                            o
                        } else {
                            b
                        }
                    });
                assert_eq!(j, best.0);
                assert!((c - best.1).abs() < 1e-12);
            }
            let leaking = d.leaking_items();
            assert!(leaking.iter().all(|&i| groups[i].is_some()));
            assert_eq!(
                leaking.len(),
                (0..n).filter(|&i| d.cross_partners[i] > 0).count()
            );
        }
    }

    #[test]
    fn blocks_do_not_change_results() {
        // 2,500 rows of dimension 2 make several row blocks of at most 1,024 rows.
        let (n, dim) = (2500, 2);
        let x = data(n, dim, 11);
        let e = Embeddings::new(&x, dim).unwrap();
        let opts = DuplicateOptions {
            threshold: 0.9999,
            max_pairs: 50,
        };
        let d = near_duplicates(e, None, &opts).unwrap();
        let want = brute(&x, dim)
            .into_iter()
            .filter(|p| p.2 >= opts.threshold)
            .count();
        assert_eq!(d.pair_count, want as u64);
        assert_eq!(d.cross_pair_count, 0);
        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| near_duplicates(e, None, &opts).unwrap());
        assert_eq!(single, d);
    }

    #[test]
    fn rejects_bad_input() {
        let x = [1.0f32, 0.0, 0.0, 1.0];
        let e = Embeddings::new(&x, 2).unwrap();
        let bad = DuplicateOptions {
            threshold: 1.5,
            max_pairs: 1,
        };
        assert!(near_duplicates(e, None, &bad).is_err());
        let nan = DuplicateOptions {
            threshold: f64::NAN,
            max_pairs: 1,
        };
        assert!(near_duplicates(e, None, &nan).is_err());
        assert!(near_duplicates(e, Some(&[Some(0)]), &DuplicateOptions::default()).is_err());
        let inf = [f32::INFINITY, 0.0];
        let e = Embeddings::new(&inf, 2).unwrap();
        assert!(near_duplicates(e, None, &DuplicateOptions::default()).is_err());
        // One item: no pair, no nearest.
        let one = [1.0f32, 0.0];
        let d = near_duplicates(
            Embeddings::new(&one, 2).unwrap(),
            None,
            &DuplicateOptions::default(),
        )
        .unwrap();
        assert_eq!((d.pair_count, d.nearest[0]), (0, None));
    }

    #[test]
    fn uniqueness_by_hand() {
        // Five points on a line (dimension 2, second coordinate constant after centring
        // is 0): cosine distances between centred points are 0 (same side) or 2 (opposite).
        let x = [-2.0f32, 1.0, -1.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.5, 1.0];
        let u = uniqueness(Embeddings::new(&x, 2).unwrap()).unwrap();
        // Centred first coordinates: -2, -1, 0.5, 1, 1.5 (mean 0). Each point's others sorted
        // by cosine distance: point 0 has one same-side other (0) then three at 2, so its
        // 2nd..4th are 2, 2, 2 -> (0.6 + 0.3 + 0.1) * 2 / 3. Point 2 has two same-side others:
        // 0, 0, 2, 2 -> (0.6 * 0 + 0.3 * 2 + 0.1 * 2) / 3.
        let s0 = 2.0 / 3.0;
        let s2 = 0.8 / 3.0;
        assert!((u[0] - 1.0).abs() < 1e-15 && (u[1] - 1.0).abs() < 1e-15);
        assert!((u[2] - s2 / s0).abs() < 1e-15);
        assert!(uniqueness(Embeddings::new(&x[..8], 2).unwrap()).is_err());
        // Identical rows centre to zero rows, at cosine distance 1 from everything (as in
        // scikit-learn): every score is the same, so every item is 1.
        let same = [1.0f32; 10];
        let u = uniqueness(Embeddings::new(&same, 2).unwrap()).unwrap();
        assert!(u.iter().all(|&v| v == 1.0));
        // Two groups of five identical points: every item has four others at distance 0.
        let two: Vec<f32> = (0..10)
            .flat_map(|i| [if i < 5 { 1.0 } else { -1.0 }, 1.0])
            .collect();
        assert!(uniqueness(Embeddings::new(&two, 2).unwrap()).is_err());
    }
}
