//! Retrieval: rank a gallery for every query by cosine similarity, and summarise the ranks.
//!
//! # Definitions (CLIP_benchmark's, so numbers compare with the literature)
//!
//! - Scores are `query · gallery` over L2-normalised `f32` vectors (checked, see
//!   [`super::check_unit_norm`]).
//! - A query's positives are given by [`Positives`]: the gallery item with the same index
//!   (caption pairing, one caption per image), or every gallery item sharing a key (several
//!   captions per image, or class-level retrieval with a shared label).
//! - The **rank** of a query is the 1-based position of its best-placed positive in the
//!   gallery sorted by decreasing score. A query is a hit at K when *any* positive is in the
//!   top K, i.e. when `rank ≤ K` (CLIP_benchmark: `topk` then "any positive").
//! - recall@K = hits / all queries; a query with no positive in the gallery is a miss
//!   ([`RetrievalMetrics::n_without_positive`] counts them). MRR = mean of 1/rank over all
//!   queries, with 0 for those without a positive (the usual IR convention). Mean and median
//!   rank are over the queries that have a positive (the median as `np.median`: the mean of
//!   the two middle values for an even count).
//! - Text→image and image→text are the same function with the roles swapped.
//!
//! # Ties
//!
//! The gallery order is that of a **stable** sort by decreasing score,
//! `np.argsort(-scores, kind="stable")`: equal scores keep gallery-index order. So a positive
//! tied with negatives is ranked after the tied negatives with lower gallery indices and
//! before those with higher ones — neither optimistic nor pessimistic, but reproducible and
//! the same as the numpy reference in `scripts/gen_analysis_golden.py`. torch.topk (what
//! CLIP_benchmark calls) does not document its order among ties; exact ties only happen with
//! duplicated or quantised embeddings.
//!
//! The rank of the positive `p` is therefore `1 + #{j : s_j > s_p} + #{j < p : s_j = s_p}`,
//! and the best-placed positive is the one with the highest score (lowest index among equal
//! ones). That count needs one pass over a row and no sort.
//!
//! Because index order is arbitrary, the same pass also gives the two bounds that do not
//! depend on it: the **optimistic** rank `1 + #{j : s_j > s_p}` (the positive first among its
//! ties) and the **pessimistic** rank `1 + #{j : s_j > s_p} + #{negatives j : s_j = s_p}` (the
//! positive after every tied negative). When they differ the recall depends on the order of
//! the gallery, and the analysis says so.
//!
//! # Memory, speed and determinism
//!
//! Scores are computed for blocks of 256 queries against chunks of the gallery, so one
//! worker holds one `256 × chunk` block of scores (at most [`RankOptions::memory_budget`]
//! bytes, 8 MiB by default) whatever the gallery size: 10k queries against a million images
//! never materialise a query's whole row. Each block takes two passes over products of that
//! one shape. The first scores every query against its positives (gathered into chunks) to
//! find its best-placed positive and that score; the second streams the gallery and counts,
//! per query, the items above it and those tied with it, and keeps the top-K lists the
//! report shows in a bounded merge. A product over a chunk costs a pack of the chunk and of
//! the queries; both stay small next to its `256 × chunk × dim` multiply-adds, where one
//! product per query block against the whole gallery spent most of its time packing the
//! gallery for a few query rows.
//!
//! Every product has the same shape (a last, short block of queries or chunk of gallery is
//! padded with zero rows), and its shape depends on the gallery size and the budget only,
//! never on the number of threads or queries. That matters because the gemm kernels pick
//! different code paths (and summation orders) for different shapes, so a score's last bits
//! would otherwise depend on the thread count, or on which block of a cluster array ranked
//! the query; with one shape, a query's scores and rank are the same bits however the
//! queries are split, and a positive's score from the gathered pass equals its score in the
//! streamed pass.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::linalg::{non_empty, same_dim};
use super::scan::{merge_top, ScoreBlock, Shape};
use super::{check_unit_norm, AnalysisError, Embeddings};

/// Which gallery items are positives for each query.
#[derive(Debug, Clone, Copy)]
pub enum Positives<'a> {
    /// Query `i`'s only positive is gallery item `i` (one caption per image, Pokémon-style).
    /// Needs as many queries as gallery items.
    Paired,
    /// Query `i`'s positives are the gallery items `j` with `gallery[j] == query[i]`.
    ///
    /// Caption pairing with several captions per image: text→image with `query` = the image
    /// index of each caption and `gallery` = `0..n_images`; image→text with the roles
    /// swapped (an image is a hit when any of its captions is in the top K). Class-level
    /// retrieval: both are label ids.
    SharedKey {
        query: &'a [usize],
        gallery: &'a [usize],
    },
}

/// Options of [`rank`].
#[derive(Debug, Clone)]
pub struct RankOptions<'a> {
    /// Queries whose top gallery items are returned (for the report's galleries).
    pub top_k_queries: &'a [usize],
    /// How many gallery items to return for each of `top_k_queries`.
    pub top_k: usize,
    /// Upper bound, in bytes, on one thread's block of scores.
    pub memory_budget: usize,
}

impl Default for RankOptions<'_> {
    fn default() -> Self {
        RankOptions {
            top_k_queries: &[],
            top_k: 10,
            memory_budget: 8 << 20,
        }
    }
}

/// One gallery item in a top-K list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Gallery index.
    pub gallery: usize,
    /// Cosine similarity.
    pub score: f32,
    /// Whether it is a positive of the query.
    pub positive: bool,
}

/// The best gallery items of one query, best first (ties in gallery-index order).
#[derive(Debug, Clone, PartialEq)]
pub struct TopHits {
    /// Query index.
    pub query: usize,
    pub hits: Vec<Hit>,
}

/// Per-query result of [`rank`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// 1-based rank of each query's best-placed positive; `None` when the query has no
    /// positive in the gallery.
    pub ranks: Vec<Option<usize>>,
    /// Gallery index of that positive.
    pub first_positive: Vec<Option<usize>>,
    /// The rank if the positive came first among the items tied with it.
    pub optimistic: Vec<Option<usize>>,
    /// The rank if it came after every negative tied with it.
    pub pessimistic: Vec<Option<usize>>,
    /// Top-K lists, in the order of [`RankOptions::top_k_queries`].
    pub top: Vec<TopHits>,
}

/// recall@K with its exact count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecallAtK {
    pub k: usize,
    /// Queries whose rank is ≤ k.
    pub hits: usize,
    /// `hits / n_queries`.
    pub recall: f64,
}

/// Summary of a [`Ranking`] (definitions in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalMetrics {
    pub n_queries: usize,
    pub n_without_positive: usize,
    pub recall: Vec<RecallAtK>,
    /// Mean rank over queries with a positive (`None` if there are none).
    pub mean_rank: Option<f64>,
    /// Median rank over queries with a positive (`None` if there are none).
    pub median_rank: Option<f64>,
    /// Mean reciprocal rank over all queries (0 for a query without positive).
    pub mrr: f64,
}

/// [`rank`] and [`summarize`] together.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieval {
    pub ranking: Ranking,
    pub metrics: RetrievalMetrics,
}

/// Gallery indices grouped by key: `order` sorted by (key, index), `keys` the matching keys.
struct KeyIndex {
    order: Vec<usize>,
    keys: Vec<usize>,
}

impl KeyIndex {
    fn new(gallery: &[usize]) -> KeyIndex {
        let mut order: Vec<usize> = (0..gallery.len()).collect();
        order.sort_by_key(|&j| (gallery[j], j));
        let keys = order.iter().map(|&j| gallery[j]).collect();
        KeyIndex { order, keys }
    }

    /// Gallery indices with key `k`, ascending.
    fn get(&self, k: usize) -> &[usize] {
        let lo = self.keys.partition_point(|&x| x < k);
        let hi = self.keys.partition_point(|&x| x <= k);
        &self.order[lo..hi]
    }
}

enum PositiveLookup<'a> {
    Paired,
    Keys { query: &'a [usize], index: KeyIndex },
}

/// A query's positives, ascending: its own index when paired, its key's group otherwise.
enum PositiveList<'a> {
    One([usize; 1]),
    Many(&'a [usize]),
}

impl PositiveList<'_> {
    fn as_slice(&self) -> &[usize] {
        match self {
            PositiveList::One(one) => one,
            PositiveList::Many(many) => many,
        }
    }
}

/// Where a query's best-placed positive lands in its score row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowRank {
    rank: usize,
    positive: usize,
    optimistic: usize,
    pessimistic: usize,
}

impl PositiveLookup<'_> {
    /// Query `q`'s positives.
    fn positives(&self, q: usize) -> PositiveList<'_> {
        match self {
            PositiveLookup::Paired => PositiveList::One([q]),
            PositiveLookup::Keys { query, index } => PositiveList::Many(index.get(query[q])),
        }
    }

    fn is_positive(&self, q: usize, j: usize) -> bool {
        match self {
            PositiveLookup::Paired => q == j,
            PositiveLookup::Keys { query, index } => index.get(query[q]).binary_search(&j).is_ok(),
        }
    }
}

/// Ranks the gallery for every query (see the module docs for the definitions and tie rule).
pub fn rank(
    queries: Embeddings<'_>,
    gallery: Embeddings<'_>,
    positives: &Positives<'_>,
    opts: &RankOptions<'_>,
) -> Result<Ranking, AnalysisError> {
    non_empty("queries", queries)?;
    non_empty("gallery", gallery)?;
    same_dim("queries", queries, "gallery", gallery)?;
    check_unit_norm("queries", queries)?;
    check_unit_norm("gallery", gallery)?;
    let (nq, ng, dim) = (queries.rows(), gallery.rows(), queries.dim());
    let lookup = match *positives {
        Positives::Paired => {
            if nq != ng {
                return Err(AnalysisError::LengthMismatch {
                    what: "paired retrieval needs one gallery item per query",
                    expected: nq,
                    got: ng,
                });
            }
            PositiveLookup::Paired
        }
        Positives::SharedKey { query, gallery } => {
            if query.len() != nq {
                return Err(AnalysisError::LengthMismatch {
                    what: "query keys",
                    expected: nq,
                    got: query.len(),
                });
            }
            if gallery.len() != ng {
                return Err(AnalysisError::LengthMismatch {
                    what: "gallery keys",
                    expected: ng,
                    got: gallery.len(),
                });
            }
            PositiveLookup::Keys {
                query,
                index: KeyIndex::new(gallery),
            }
        }
    };
    if !opts.top_k_queries.is_empty() {
        if opts.top_k == 0 {
            return Err(AnalysisError::InvalidParameter {
                what: "top_k",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if opts.top_k > ng {
            return Err(AnalysisError::TooLarge {
                what: "top_k",
                k: opts.top_k,
                n: ng,
                of: "gallery items",
            });
        }
        if let Some(&q) = opts.top_k_queries.iter().find(|&&q| q >= nq) {
            return Err(AnalysisError::IndexOutOfRange {
                what: "top_k_queries",
                index: q,
                len: nq,
            });
        }
    }
    if opts.memory_budget == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "memory_budget",
            value: "0".into(),
            reason: "must be positive",
        });
    }

    let threads = rayon::current_num_threads().max(1);
    let shape = Shape::for_gallery(ng, dim, opts.memory_budget);
    let n_blocks = nq.div_ceil(shape.queries);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RowRank>>> = Mutex::new(vec![None; nq]);
    let tops: Mutex<Vec<Option<TopHits>>> = Mutex::new(vec![None; opts.top_k_queries.len()]);
    // Positions in `top_k_queries` of each query wanting a top-K list, sorted by query.
    let mut wanted: Vec<(usize, usize)> = opts
        .top_k_queries
        .iter()
        .enumerate()
        .map(|(pos, &q)| (q, pos))
        .collect();
    wanted.sort_unstable();

    rayon::scope(|s| {
        for _ in 0..threads.min(n_blocks) {
            s.spawn(|_| {
                let mut work = ScoreBlock::new(shape);
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= n_blocks {
                        break;
                    }
                    let start = b * shape.queries;
                    let end = (start + shape.queries).min(nq);
                    let lo = wanted.partition_point(|&(q, _)| q < start);
                    let hi = wanted.partition_point(|&(q, _)| q < end);
                    let (ranks, top) = rank_block(
                        &mut work,
                        queries.slice_rows(start, end),
                        start,
                        gallery.data(),
                        &lookup,
                        &wanted[lo..hi],
                        opts.top_k,
                    );
                    {
                        let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
                        results[start..end].copy_from_slice(&ranks);
                    }
                    let mut tops = tops.lock().unwrap_or_else(|e| e.into_inner());
                    for (pos, th) in top {
                        tops[pos] = Some(th);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(Ranking {
        ranks: results.iter().map(|r| r.map(|r| r.rank)).collect(),
        first_positive: results.iter().map(|r| r.map(|r| r.positive)).collect(),
        optimistic: results.iter().map(|r| r.map(|r| r.optimistic)).collect(),
        pessimistic: results.iter().map(|r| r.map(|r| r.pessimistic)).collect(),
        top: tops
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .flatten()
            .collect(),
    })
}

/// A query's best-placed positive and its score, while its row is being counted.
#[derive(Debug, Clone, Copy)]
struct Counting {
    positive: usize,
    score: f32,
    greater: usize,
    equal_before: usize,
    equal_after: usize,
    positive_ties_after: usize,
}

/// Ranks one block of queries (`rows`, the first being query `first`) against the whole
/// gallery, chunk by chunk, and keeps the top `top_k` hits of the `wanted` queries
/// (`(query, position)` pairs inside the block).
///
/// Two passes over products of the block's one shape: the first scores each query against
/// its positives, gathered into chunks, to find its best-placed positive `p` and score `s`;
/// the second streams the gallery and counts, per query, the items above `s` and those equal
/// to it before and after `p`. A gallery row's scores have the same bits wherever it sits in
/// a chunk (see [`scan`](super::scan)), so `s` compares exactly with the streamed scores.
fn rank_block(
    work: &mut ScoreBlock,
    rows: &[f32],
    first: usize,
    gallery: &[f32],
    lookup: &PositiveLookup<'_>,
    wanted: &[(usize, usize)],
    top_k: usize,
) -> (Vec<Option<RowRank>>, Vec<(usize, TopHits)>) {
    let Shape {
        gallery: g, dim, ..
    } = work.shape();
    let ng = gallery.len() / dim;
    let real = rows.len() / dim;
    work.set_queries(rows);

    // Pass 1: each query's best-placed positive. A gallery of one chunk is scored once,
    // here; a larger one through gathered chunks of the union of the block's positives (a
    // gallery item has one key, so the union is at most the gallery).
    let lists: Vec<PositiveList<'_>> = (0..real).map(|i| lookup.positives(first + i)).collect();
    let mut best: Vec<Option<Counting>> = vec![None; real];
    let single = ng <= g;
    if single {
        work.product(gallery);
        for (i, list) in lists.iter().enumerate() {
            for &p in list.as_slice() {
                take_positive(&mut best[i], p, work.row(i)[p]);
            }
        }
    } else {
        let mut union: Vec<usize> = if matches!(lookup, PositiveLookup::Paired) {
            (first..first + real).collect()
        } else {
            let mut keys: Vec<&[usize]> = lists.iter().map(PositiveList::as_slice).collect();
            keys.sort_unstable_by_key(|l| l.first().copied());
            keys.dedup();
            keys.concat()
        };
        union.sort_unstable();
        // Where each query's walk through its (ascending) list stands.
        let mut cursor = vec![0usize; real];
        for part in union.chunks(g) {
            work.gathered_product(gallery, part);
            let last = part[part.len() - 1];
            for (i, list) in lists.iter().enumerate() {
                let list = list.as_slice();
                while let Some(&p) = list.get(cursor[i]).filter(|&&p| p <= last) {
                    cursor[i] += 1;
                    let slot = part.binary_search(&p).unwrap_or(0);
                    take_positive(&mut best[i], p, work.row(i)[slot]);
                }
            }
        }
    }
    let mut counts = best;

    // Pass 2: stream the gallery, counting and keeping the wanted top lists.
    let mut tops: Vec<Vec<(usize, f32)>> = vec![Vec::new(); wanted.len()];
    for c0 in (0..ng).step_by(g) {
        let c1 = (c0 + g).min(ng);
        if !single {
            work.product(&gallery[c0 * dim..c1 * dim]);
        }
        let len = c1 - c0;
        for (i, count) in counts.iter_mut().enumerate() {
            let Some(count) = count else { continue };
            count_chunk(&work.row(i)[..len], c0, count);
        }
        for (w, &(q, _)) in wanted.iter().enumerate() {
            merge_top(&mut tops[w], &work.row(q - first)[..len], c0, top_k);
        }
    }

    let ranks = counts
        .into_iter()
        .map(|c| {
            c.map(|c| RowRank {
                rank: 1 + c.greater + c.equal_before,
                positive: c.positive,
                optimistic: 1 + c.greater,
                pessimistic: 1 + c.greater + c.equal_before + c.equal_after - c.positive_ties_after,
            })
        })
        .collect();
    let top = wanted
        .iter()
        .zip(tops)
        .map(|(&(q, pos), list)| {
            let hits = list
                .into_iter()
                .map(|(j, score)| Hit {
                    gallery: j,
                    score,
                    positive: lookup.is_positive(q, j),
                })
                .collect();
            (pos, TopHits { query: q, hits })
        })
        .collect();
    (ranks, top)
}

/// Offers positive `p` with score `s` as a query's best-placed positive. Positives come in
/// ascending index order, so a later one only wins with a strictly higher score, and one tied
/// with the best after it is not a negative.
fn take_positive(best: &mut Option<Counting>, p: usize, s: f32) {
    match best {
        Some(b) if s < b.score => {}
        Some(b) if s == b.score => b.positive_ties_after += 1,
        b => {
            *b = Some(Counting {
                positive: p,
                score: s,
                greater: 0,
                equal_before: 0,
                equal_after: 0,
                positive_ties_after: 0,
            })
        }
    }
}

/// Adds one chunk's scores (gallery items `c0..`) to a query's counts: items scoring above
/// the positive, and those tied with it before and after it (the positive itself excluded).
fn count_chunk(row: &[f32], c0: usize, count: &mut Counting) {
    let s = count.score;
    let split = count.positive.saturating_sub(c0).min(row.len());
    let (before, rest) = row.split_at(split);
    // The positive's own entry, when it is in this chunk, is skipped.
    let after = if count.positive >= c0 && split < row.len() {
        &rest[1..]
    } else {
        rest
    };
    let tally = |part: &[f32]| {
        part.iter().fold((0usize, 0usize), |(gt, eq), &v| {
            (gt + usize::from(v > s), eq + usize::from(v == s))
        })
    };
    let (gt, eq) = tally(before);
    count.greater += gt;
    count.equal_before += eq;
    let (gt, eq) = tally(after);
    count.greater += gt;
    count.equal_after += eq;
}

/// recall@K for each K in `ks`, mean and median rank, and MRR, from per-query ranks.
///
/// `gallery_size` bounds K: asking for recall@K with K larger than the gallery is an error,
/// as `torch.topk` in CLIP_benchmark would be.
pub fn summarize(
    ranks: &[Option<usize>],
    gallery_size: usize,
    ks: &[usize],
) -> Result<RetrievalMetrics, AnalysisError> {
    if ranks.is_empty() {
        return Err(AnalysisError::Empty { what: "ranks" });
    }
    for &k in ks {
        if k == 0 {
            return Err(AnalysisError::InvalidParameter {
                what: "recall K",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if k > gallery_size {
            return Err(AnalysisError::TooLarge {
                what: "recall K",
                k,
                n: gallery_size,
                of: "gallery items",
            });
        }
    }
    let n = ranks.len();
    let mut have: Vec<usize> = ranks.iter().flatten().copied().collect();
    if let Some(&r) = have.iter().find(|&&r| r == 0 || r > gallery_size) {
        return Err(AnalysisError::InvalidParameter {
            what: "rank",
            value: r.to_string(),
            reason: "ranks are 1-based and at most the gallery size",
        });
    }
    let recall = ks
        .iter()
        .map(|&k| {
            let hits = have.iter().filter(|&&r| r <= k).count();
            RecallAtK {
                k,
                hits,
                recall: hits as f64 / n as f64,
            }
        })
        .collect();
    let mrr = have.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / n as f64;
    let (mean_rank, median_rank) = if have.is_empty() {
        (None, None)
    } else {
        let mean = have.iter().map(|&r| r as f64).sum::<f64>() / have.len() as f64;
        have.sort_unstable();
        let m = have.len();
        let median = if m % 2 == 1 {
            have[m / 2] as f64
        } else {
            (have[m / 2 - 1] as f64 + have[m / 2] as f64) / 2.0
        };
        (Some(mean), Some(median))
    };
    Ok(RetrievalMetrics {
        n_queries: n,
        n_without_positive: n - have.len(),
        recall,
        mean_rank,
        median_rank,
        mrr,
    })
}

/// Ranks and summarises in one call.
pub fn retrieve(
    queries: Embeddings<'_>,
    gallery: Embeddings<'_>,
    positives: &Positives<'_>,
    ks: &[usize],
    opts: &RankOptions<'_>,
) -> Result<Retrieval, AnalysisError> {
    // Check K before the expensive part.
    non_empty("gallery", gallery)?;
    if let Some(&k) = ks.iter().find(|&&k| k > gallery.rows()) {
        return Err(AnalysisError::TooLarge {
            what: "recall K",
            k,
            n: gallery.rows(),
            of: "gallery items",
        });
    }
    let ranking = rank(queries, gallery, positives, opts)?;
    let metrics = summarize(&ranking.ranks, gallery.rows(), ks)?;
    Ok(Retrieval { ranking, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: &[f32], dim: usize) -> Embeddings<'_> {
        Embeddings::new(v, dim).unwrap()
    }

    const E: [[f32; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

    fn rows(r: &[usize]) -> Vec<f32> {
        r.iter().flat_map(|&i| E[i]).collect()
    }

    #[test]
    fn ties_follow_the_stable_order() {
        // Gallery: e0 e1 e0 e2 e0. Query 2 = e0: its positive (gallery 2) ties with gallery 0
        // (before it) and 4 (after it): rank 2, neither 1 (optimistic) nor 3 (pessimistic).
        let g = rows(&[0, 1, 0, 2, 0]);
        let q = rows(&[0, 0, 0, 1, 2]);
        let opts = RankOptions {
            top_k_queries: &[2],
            top_k: 4,
            ..RankOptions::default()
        };
        let r = rank(e(&q, 3), e(&g, 3), &Positives::Paired, &opts).unwrap();
        assert_eq!(r.ranks, vec![Some(1), Some(4), Some(2), Some(4), Some(5)]);
        // The bounds that do not depend on the gallery order (worked by hand).
        assert_eq!(
            r.optimistic,
            vec![Some(1), Some(4), Some(1), Some(2), Some(2)]
        );
        assert_eq!(
            r.pessimistic,
            vec![Some(3), Some(5), Some(3), Some(5), Some(5)]
        );
        let top: Vec<(usize, bool)> = r.top[0]
            .hits
            .iter()
            .map(|h| (h.gallery, h.positive))
            .collect();
        assert_eq!(top, vec![(0, false), (2, true), (4, false), (1, false)]);
        assert_eq!(r.top[0].hits[0].score, 1.0);
        // One query per block gives the same.
        let tiny = RankOptions {
            memory_budget: 1,
            ..opts.clone()
        };
        assert_eq!(
            rank(e(&q, 3), e(&g, 3), &Positives::Paired, &tiny).unwrap(),
            r
        );
    }

    #[test]
    fn any_positive_counts_and_missing_positives_are_misses() {
        // Query keys: 7 (positives: gallery 1 and 3), 9 (none).
        let g = rows(&[0, 1, 2, 0]);
        let q = rows(&[0, 0]);
        let keys = Positives::SharedKey {
            query: &[7, 9],
            gallery: &[1, 7, 2, 7],
        };
        let r = retrieve(e(&q, 3), e(&g, 3), &keys, &[1, 2], &RankOptions::default()).unwrap();
        // Gallery 3 ties with gallery 0 (score 1) and comes second; gallery 1 scores 0.
        assert_eq!(r.ranking.ranks, vec![Some(2), None]);
        assert_eq!(r.ranking.first_positive, vec![Some(3), None]);
        let m = &r.metrics;
        assert_eq!((m.recall[0].hits, m.recall[1].hits), (0, 1));
        assert_eq!(m.recall[1].recall, 0.5);
        assert_eq!(m.n_without_positive, 1);
        assert_eq!(m.mrr, 0.25);
        assert_eq!((m.mean_rank, m.median_rank), (Some(2.0), Some(2.0)));
    }

    #[test]
    fn summary_statistics() {
        let m = summarize(&[Some(1), Some(4), Some(2), Some(10)], 10, &[1, 5]).unwrap();
        assert_eq!(m.recall[0].hits, 1);
        assert_eq!(m.recall[1].hits, 3);
        assert_eq!(m.mean_rank, Some(4.25));
        assert_eq!(m.median_rank, Some(3.0));
        assert!((m.mrr - (1.0 + 0.25 + 0.5 + 0.1) / 4.0).abs() < 1e-15);
        let none = summarize(&[None, None], 3, &[1]).unwrap();
        assert_eq!((none.mean_rank, none.mrr), (None, 0.0));
        assert!(summarize(&[], 3, &[1]).is_err());
        assert!(summarize(&[Some(1)], 3, &[0]).is_err());
        assert!(summarize(&[Some(1)], 3, &[4]).is_err());
        assert!(summarize(&[Some(4)], 3, &[1]).is_err());
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let g = rows(&[0, 1]);
        let q = rows(&[0]);
        let d = RankOptions::default();
        let paired = Positives::Paired;
        assert!(matches!(
            rank(e(&q, 3), e(&g, 3), &paired, &d),
            Err(AnalysisError::LengthMismatch { .. })
        ));
        assert!(matches!(
            rank(e(&[], 3), e(&g, 3), &paired, &d),
            Err(AnalysisError::Empty { .. })
        ));
        assert!(matches!(
            rank(e(&q, 3), e(&[1.0, 0.0], 2), &paired, &d),
            Err(AnalysisError::DimMismatch { .. })
        ));
        let raw = [3.0f32, 0.0, 0.0];
        assert!(matches!(
            rank(e(&raw, 3), e(&q, 3), &paired, &d),
            Err(AnalysisError::NotNormalised { .. })
        ));
        let keys = Positives::SharedKey {
            query: &[0],
            gallery: &[0],
        };
        assert!(rank(e(&q, 3), e(&g, 3), &keys, &d).is_err());
        let keys = Positives::SharedKey {
            query: &[0],
            gallery: &[0, 1],
        };
        assert!(retrieve(e(&q, 3), e(&g, 3), &keys, &[3], &d).is_err());
        let too_many = RankOptions {
            top_k_queries: &[0],
            top_k: 3,
            ..RankOptions::default()
        };
        assert!(matches!(
            rank(e(&q, 3), e(&g, 3), &keys, &too_many),
            Err(AnalysisError::TooLarge { .. })
        ));
        let bad_query = RankOptions {
            top_k_queries: &[1],
            top_k: 1,
            ..RankOptions::default()
        };
        assert!(matches!(
            rank(e(&q, 3), e(&g, 3), &keys, &bad_query),
            Err(AnalysisError::IndexOutOfRange { .. })
        ));
    }

    #[test]
    fn scores_do_not_depend_on_how_queries_are_split_or_threaded() {
        // Unquantised data, so products round: a query ranked alone, in a block of three, or
        // with every query, on one thread or three, gets the same bits.
        let mut x = 7u64;
        let mut r = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let unit = |v: Vec<f32>, d: usize| -> Vec<f32> {
            v.chunks(d)
                .flat_map(|c| {
                    let n = c.iter().map(|a| a * a).sum::<f32>().sqrt();
                    c.iter().map(move |a| a / n).collect::<Vec<_>>()
                })
                .collect()
        };
        let d = 64;
        let q = unit((0..50 * d).map(|_| r()).collect(), d);
        let g = unit((0..70 * d).map(|_| r()).collect(), d);
        let all: Vec<usize> = (0..50).collect();
        let opts = RankOptions {
            top_k_queries: &all,
            top_k: 5,
            ..RankOptions::default()
        };
        let full = rank(e(&q, d), e(&g, d), &Positives::Paired, &opts);
        assert!(full.is_err(), "paired needs equal counts");
        let keys_q: Vec<usize> = (0..50).collect();
        let keys_g: Vec<usize> = (0..70).collect();
        let pos = Positives::SharedKey {
            query: &keys_q,
            gallery: &keys_g,
        };
        let full = rank(e(&q, d), e(&g, d), &pos, &opts).unwrap();
        for size in [1usize, 3, 7] {
            for start in (0..50).step_by(size) {
                let end = (start + size).min(50);
                let sub_keys: Vec<usize> = (start..end).collect();
                let shown: Vec<usize> = (0..end - start).collect();
                let o = RankOptions {
                    top_k_queries: &shown,
                    ..opts.clone()
                };
                let sub = rank(
                    e(&q[start * d..end * d], d),
                    e(&g, d),
                    &Positives::SharedKey {
                        query: &sub_keys,
                        gallery: &keys_g,
                    },
                    &o,
                )
                .unwrap();
                assert_eq!(sub.ranks, full.ranks[start..end].to_vec());
                for (i, t) in sub.top.iter().enumerate() {
                    let want = &full.top[start + i].hits;
                    let bits = |h: &[Hit]| {
                        h.iter()
                            .map(|h| (h.gallery, h.score.to_bits()))
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(
                        bits(&t.hits),
                        bits(want),
                        "query {} in blocks of {size}",
                        start + i
                    );
                }
            }
        }
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let other = pool.install(|| rank(e(&q, d), e(&g, d), &pos, &opts).unwrap());
            assert_eq!(other, full, "{threads} threads");
        }
    }

    fn unit_rows(v: Vec<f32>, d: usize) -> Vec<f32> {
        v.chunks(d)
            .flat_map(|c| {
                let n = c.iter().map(|a| a * a).sum::<f32>().sqrt();
                c.iter().map(move |a| a / n).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Ranks and bounds by the definitions, from a full sort of each row (the numpy
    /// reference's `argsort(-scores, kind="stable")`), with scores from `rank`'s own top
    /// lists so that the comparison is about the counting, not the products.
    #[test]
    fn chunked_counts_equal_a_full_stable_sort() {
        // Quantised vectors make many exact ties; keys give several positives per query.
        let (d, nq, ng) = (8, 300, 90);
        let mut r = crate::analysis::test_noise(5);
        let quant = |v: f32| (v * 4.0).round() / 4.0 + 0.01;
        let q = unit_rows((0..nq * d).map(|_| quant(r())).collect(), d);
        let g = unit_rows((0..ng * d).map(|_| quant(r())).collect(), d);
        let qk: Vec<usize> = (0..nq).map(|i| (i * 7) % 31).collect();
        let gk: Vec<usize> = (0..ng).map(|j| (j * 5) % 37).collect();
        let everything: Vec<usize> = (0..nq).collect();
        for budget in [1usize, 4 << 10, 8 << 20] {
            let opts = RankOptions {
                top_k_queries: &everything,
                top_k: ng,
                memory_budget: budget,
            };
            let pos = Positives::SharedKey {
                query: &qk,
                gallery: &gk,
            };
            let got = rank(e(&q, d), e(&g, d), &pos, &opts).unwrap();
            for (i, &key) in qk.iter().enumerate() {
                let mut row = vec![0.0f32; ng];
                for h in &got.top[i].hits {
                    row[h.gallery] = h.score;
                }
                let mut order: Vec<usize> = (0..ng).collect();
                order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap());
                let positives: Vec<usize> = (0..ng).filter(|&j| gk[j] == key).collect();
                let at = order.iter().position(|j| positives.contains(j));
                let want = at.map(|p| p + 1);
                assert_eq!(got.ranks[i], want, "query {i}, budget {budget}");
                assert_eq!(got.first_positive[i], at.map(|p| order[p]));
                if let Some(p) = at {
                    let s = row[order[p]];
                    let greater = row.iter().filter(|&&v| v > s).count();
                    let tied_negatives = (0..ng).filter(|&j| row[j] == s && gk[j] != key).count();
                    assert_eq!(got.optimistic[i], Some(1 + greater));
                    assert_eq!(got.pessimistic[i], Some(1 + greater + tied_negatives));
                }
                let sorted: Vec<usize> = got.top[i].hits.iter().map(|h| h.gallery).collect();
                assert_eq!(sorted, order, "top list of query {i}");
            }
        }
    }
}
