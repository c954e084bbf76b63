//! Retrieval: rank a gallery for every query by cosine similarity, and summarise the ranks.
//!
//! # Definitions (CLIP_benchmark's, so numbers compare with the literature)
//!
//! - Scores are `query · gallery` over L2-normalised `f32` vectors (checked, see
//!   [`check_unit_norm`](super::check_unit_norm)).
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
//! # Memory and determinism
//!
//! Scores are computed for blocks of queries against the whole gallery, one block per worker
//! thread at a time, each block at most [`RankOptions::memory_budget`] bytes (64 MiB by
//! default): 100k × 100k never materialises.
//!
//! The block height depends on the gallery size and the budget only, never on the number of
//! threads or queries, and a last, short block is padded with zero rows: every matrix product
//! then has the same shape. That matters because the gemm kernels pick different code paths
//! (and summation orders) for different row counts, so a score's last bits would otherwise
//! depend on the thread count, or on which block of a cluster array ranked the query; with one
//! shape, a query's scores and rank are the same bits however the queries are split.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::linalg::{matmul_nt_f32, non_empty, rows_per_block, same_dim};
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
            memory_budget: 64 << 20,
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

/// Where a query's best-placed positive lands in its score row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowRank {
    rank: usize,
    positive: usize,
    optimistic: usize,
    pessimistic: usize,
}

impl PositiveLookup<'_> {
    /// Rank and index of query `q`'s best-placed positive in its score row.
    fn rank(&self, row: &[f32], q: usize) -> Option<RowRank> {
        match self {
            PositiveLookup::Paired => rank_in_row(row, &[q]),
            PositiveLookup::Keys { query, index } => rank_in_row(row, index.get(query[q])),
        }
    }

    fn is_positive(&self, q: usize, j: usize) -> bool {
        match self {
            PositiveLookup::Paired => q == j,
            PositiveLookup::Keys { query, index } => index.get(query[q]).binary_search(&j).is_ok(),
        }
    }
}

/// The 1-based rank and gallery index of the best-placed positive in `row`, under the stable
/// decreasing-score order, with its optimistic and pessimistic bounds. `positives` must be
/// ascending.
fn rank_in_row(row: &[f32], positives: &[usize]) -> Option<RowRank> {
    let mut best: Option<(usize, f32)> = None;
    for &p in positives {
        let s = row[p];
        // Ascending indices: a later positive only wins with a strictly higher score.
        if best.is_none_or(|(_, bs)| s > bs) {
            best = Some((p, s));
        }
    }
    let (p, s) = best?;
    let (mut greater, mut equal_before, mut equal_after) = (0usize, 0usize, 0usize);
    for (j, &v) in row.iter().enumerate() {
        if v > s {
            greater += 1;
        } else if v == s {
            if j < p {
                equal_before += 1;
            } else if j > p {
                equal_after += 1;
            }
        }
    }
    // Items tied with p before it are negatives (p is the first positive at its score); after
    // it, the other positives at that score are not negatives.
    let positive_ties_after = positives.iter().filter(|&&j| j > p && row[j] == s).count();
    Some(RowRank {
        rank: 1 + greater + equal_before,
        positive: p,
        optimistic: 1 + greater,
        pessimistic: 1 + greater + equal_before + equal_after - positive_ties_after,
    })
}

/// The `k` best gallery indices of `row`: decreasing score, ties by increasing index.
fn top_k_of_row(row: &[f32], k: usize) -> Vec<usize> {
    let cmp = |a: &usize, b: &usize| {
        row[*b]
            .partial_cmp(&row[*a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    };
    let mut idx: Vec<usize> = (0..row.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
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
    // Never one row: a single-row product takes gemm's matrix-vector path (see module docs).
    let block = rows_per_block(ng, 4, opts.memory_budget, 4096).max(2);
    let n_blocks = nq.div_ceil(block);
    let next = AtomicUsize::new(0);
    let ranks = Mutex::new(vec![None; nq]);
    let firsts = Mutex::new(vec![None; nq]);
    let bounds: Mutex<Vec<Option<(usize, usize)>>> = Mutex::new(vec![None; nq]);
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
                let mut scores = vec![0.0f32; block * ng];
                let mut padded: Vec<f32> = Vec::new();
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= n_blocks {
                        break;
                    }
                    let start = b * block;
                    let end = (start + block).min(nq);
                    let rows = queries.slice_rows(start, end);
                    let a = if end - start == block {
                        rows
                    } else {
                        padded.clear();
                        padded.extend_from_slice(rows);
                        padded.resize(block * dim, 0.0);
                        &padded
                    };
                    matmul_nt_f32(a, gallery.data(), dim, &mut scores);
                    let out = &scores[..(end - start) * ng];
                    let r: Vec<Option<RowRank>> = out
                        .chunks_exact(ng)
                        .enumerate()
                        .map(|(i, row)| lookup.rank(row, start + i))
                        .collect();
                    let lo = wanted.partition_point(|&(q, _)| q < start);
                    let hi = wanted.partition_point(|&(q, _)| q < end);
                    let mut t = Vec::new();
                    for &(q, pos) in &wanted[lo..hi] {
                        let row = &out[(q - start) * ng..(q - start + 1) * ng];
                        let hits = top_k_of_row(row, opts.top_k)
                            .into_iter()
                            .map(|j| Hit {
                                gallery: j,
                                score: row[j],
                                positive: lookup.is_positive(q, j),
                            })
                            .collect();
                        t.push((pos, TopHits { query: q, hits }));
                    }
                    {
                        let mut ranks = ranks.lock().unwrap_or_else(|e| e.into_inner());
                        let mut firsts = firsts.lock().unwrap_or_else(|e| e.into_inner());
                        let mut bounds = bounds.lock().unwrap_or_else(|e| e.into_inner());
                        for (i, f) in r.into_iter().enumerate() {
                            ranks[start + i] = f.map(|r| r.rank);
                            firsts[start + i] = f.map(|r| r.positive);
                            bounds[start + i] = f.map(|r| (r.optimistic, r.pessimistic));
                        }
                    }
                    let mut tops = tops.lock().unwrap_or_else(|e| e.into_inner());
                    for (pos, th) in t {
                        tops[pos] = Some(th);
                    }
                }
            });
        }
    });
    let bounds = bounds.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(Ranking {
        ranks: ranks.into_inner().unwrap_or_else(|e| e.into_inner()),
        first_positive: firsts.into_inner().unwrap_or_else(|e| e.into_inner()),
        optimistic: bounds.iter().map(|b| b.map(|b| b.0)).collect(),
        pessimistic: bounds.iter().map(|b| b.map(|b| b.1)).collect(),
        top: tops
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .flatten()
            .collect(),
    })
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
}
