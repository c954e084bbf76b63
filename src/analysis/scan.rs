//! Scores of a block of queries against a gallery, streamed chunk by chunk through matrix
//! products of one fixed shape: what retrieval ranks and the kNN probe's votes are built on.
//!
//! # Why chunks
//!
//! One product of a block of queries against the whole gallery needs the block's whole rows
//! in memory, so a memory budget forces few query rows against a large gallery: 16 rows
//! against a million images, a product gemm runs at a fifth of its speed because it packs the
//! whole gallery for every 16 rows. Chunks of the gallery keep `256 × chunk` products, which
//! run near the machine's peak, and a worker's memory at one block of scores (8 MiB by
//! default) whatever the gallery size.
//!
//! # Why one shape
//!
//! gemm picks different code paths, and summation orders, for different shapes. Every
//! product here has the same shape (short query blocks and chunks are padded with zero rows),
//! which depends on the gallery size, the dimension and the budget only. So a score's bits
//! never depend on the thread count, on how queries are split into blocks (or shared by a
//! cluster array's workers), or on where a gallery row sits in a chunk: a chunk of gathered
//! rows (retrieval's positives) gives each the bits it has in the streamed pass.
//! `gathered_rows_score_as_streamed_rows` checks it.

use super::linalg::{matmul_nt_f32, rows_per_block};

/// Query rows of every product.
pub(crate) const QUERY_ROWS: usize = 256;

/// The one shape of every product over a gallery: [`QUERY_ROWS`] queries × `gallery` rows,
/// over `dim` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    pub queries: usize,
    pub gallery: usize,
    pub dim: usize,
}

impl Shape {
    /// The shape for a gallery of `ng` rows of `dim` values, with at most `budget` bytes of
    /// `f32` scores per product: the gallery in the fewest chunks that fit, of equal size (so
    /// a last chunk is not mostly padding), rounded up to whole SIMD tiles; never one row (a
    /// one-column product takes gemm's matrix-vector path, whose summation order differs).
    pub(crate) fn for_gallery(ng: usize, dim: usize, budget: usize) -> Shape {
        let most = rows_per_block(QUERY_ROWS, 4, budget, usize::MAX).max(2);
        let chunks = ng.div_ceil(most).max(1);
        Shape {
            queries: QUERY_ROWS,
            gallery: ng.div_ceil(chunks).next_multiple_of(8).min(most).max(2),
            dim,
        }
    }
}

/// One worker's buffers, reused across blocks: the (padded) queries, a padded or gathered
/// gallery chunk, and the scores of one product.
pub(crate) struct ScoreBlock {
    shape: Shape,
    queries: Vec<f32>,
    chunk: Vec<f32>,
    scores: Vec<f32>,
}

impl ScoreBlock {
    pub(crate) fn new(shape: Shape) -> ScoreBlock {
        ScoreBlock {
            shape,
            queries: vec![0.0; shape.queries * shape.dim],
            chunk: vec![0.0; shape.gallery * shape.dim],
            scores: vec![0.0; shape.queries * shape.gallery],
        }
    }

    pub(crate) fn shape(&self) -> Shape {
        self.shape
    }

    /// Takes up to [`QUERY_ROWS`] query rows (row-major) for the next products.
    pub(crate) fn set_queries(&mut self, rows: &[f32]) {
        self.queries[..rows.len()].copy_from_slice(rows);
        self.queries[rows.len()..].fill(0.0);
    }

    /// Scores the queries against consecutive gallery rows (at most one chunk, row-major).
    pub(crate) fn product(&mut self, rows: &[f32]) {
        let (g, dim) = (self.shape.gallery, self.shape.dim);
        let b = if rows.len() == g * dim {
            rows
        } else {
            self.chunk[..rows.len()].copy_from_slice(rows);
            self.chunk[rows.len()..].fill(0.0);
            &self.chunk
        };
        matmul_nt_f32(&self.queries, b, self.shape.dim, &mut self.scores);
    }

    /// Scores the queries against the gallery rows `which` (at most one chunk), in that order.
    pub(crate) fn gathered_product(&mut self, gallery: &[f32], which: &[usize]) {
        let dim = self.shape.dim;
        for (slot, &j) in which.iter().enumerate() {
            self.chunk[slot * dim..(slot + 1) * dim]
                .copy_from_slice(&gallery[j * dim..(j + 1) * dim]);
        }
        self.chunk[which.len() * dim..].fill(0.0);
        matmul_nt_f32(&self.queries, &self.chunk, dim, &mut self.scores);
    }

    /// Query `i`'s scores from the last product: one per chunk row, padding included.
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        let g = self.shape.gallery;
        &self.scores[i * g..(i + 1) * g]
    }
}

/// Order of gallery items: decreasing score, ties by increasing index (a stable sort's).
fn better(a: (usize, f32), b: (usize, f32)) -> std::cmp::Ordering {
    b.1.partial_cmp(&a.1)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then(a.0.cmp(&b.0))
}

/// The `k` best indices of `row`: decreasing score, ties by increasing index.
pub(crate) fn top_k_of_row(row: &[f32], k: usize) -> Vec<usize> {
    let cmp = |a: &usize, b: &usize| better((*a, row[*a]), (*b, row[*b]));
    let mut idx: Vec<usize> = (0..row.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

/// Merges a chunk's row (gallery items `first..`) into a running top-`k` list of
/// `(gallery index, score)`, best first. The best `k` of the whole row are the best `k` of
/// the chunks' best `k`, so the list never holds more than `2k` pairs.
pub(crate) fn merge_top(list: &mut Vec<(usize, f32)>, row: &[f32], first: usize, k: usize) {
    list.extend(
        top_k_of_row(row, k)
            .into_iter()
            .map(|j| (first + j, row[j])),
    );
    list.sort_by(|&a, &b| better(a, b));
    list.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathered_rows_score_as_streamed_rows() {
        // An odd chunk height, so rows land on SIMD tile edges in one product and not the other.
        let (d, g) = (96, 37);
        let mut r = crate::analysis::test_noise(11);
        let shape = Shape {
            queries: QUERY_ROWS,
            gallery: g,
            dim: d,
        };
        let q: Vec<f32> = (0..QUERY_ROWS * d).map(|_| r()).collect();
        let gal: Vec<f32> = (0..g * d).map(|_| r()).collect();
        let mut block = ScoreBlock::new(shape);
        block.set_queries(&q);
        block.product(&gal);
        let streamed: Vec<Vec<f32>> = (0..QUERY_ROWS).map(|i| block.row(i).to_vec()).collect();
        let order: Vec<usize> = (0..g - 3).map(|j| (j * 17 + 5) % g).collect();
        block.gathered_product(&gal, &order);
        for (i, want) in streamed.iter().enumerate() {
            for (slot, &j) in order.iter().enumerate() {
                assert_eq!(
                    block.row(i)[slot].to_bits(),
                    want[j].to_bits(),
                    "query {i}, gallery {j}"
                );
            }
        }
    }

    #[test]
    fn shapes_split_the_gallery_evenly_within_the_budget() {
        let s = Shape::for_gallery(1_000_000, 512, 8 << 20);
        assert_eq!(s.queries, QUERY_ROWS);
        assert!(s.gallery * QUERY_ROWS * 4 <= 8 << 20);
        assert!(1_000_000usize.div_ceil(s.gallery) * s.gallery - 1_000_000 < s.gallery / 8);
        assert_eq!(Shape::for_gallery(10_000, 512, 8 << 20).gallery, 5_000);
        assert_eq!(Shape::for_gallery(5, 512, 8 << 20).gallery, 8);
        assert_eq!(Shape::for_gallery(100, 512, 1).gallery, 2);
    }

    #[test]
    fn merged_chunks_give_the_top_of_the_whole_row() {
        let row = [0.5f32, 0.9, 0.5, 0.1, 0.9, 0.7, 0.5, 0.3];
        let whole: Vec<(usize, f32)> = top_k_of_row(&row, 4)
            .into_iter()
            .map(|j| (j, row[j]))
            .collect();
        assert_eq!(whole, [(1, 0.9), (4, 0.9), (5, 0.7), (0, 0.5)]);
        let mut merged = Vec::new();
        for c in (0..row.len()).step_by(3) {
            merge_top(&mut merged, &row[c..(c + 3).min(row.len())], c, 4);
        }
        assert_eq!(merged, whole);
    }
}
