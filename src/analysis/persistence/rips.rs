//! Ripser's computation on a dense `f32` distance matrix (see the parent module's docs).
//!
//! Simplices are named by their index in the combinatorial number system, as in Ripser: the
//! edge `{a > b}` is `C(a, 2) + b`, the triangle `{x > y > z}` is `C(x, 3) + C(y, 2) + z`.
//! The filtration orders simplices by diameter, then by *decreasing* index; cohomology
//! reduces columns in the reverse order, and the pivot of a coboundary is its entry of
//! smallest diameter and, among those, largest index.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use super::super::linalg::{Distance, Pairwise};
use super::super::Embeddings;
use super::{Bar, Diagram};

/// `-0.0` becomes `+0.0`, so that bit patterns of the (non-negative) distances order like
/// their values.
fn canonical(v: f32) -> f32 {
    if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// The dense distance matrix of the rows of `x`, symmetric from its upper triangle.
pub(super) fn distance_matrix(x: Embeddings<'_>, metric: Distance) -> Vec<f32> {
    let n = x.rows();
    let pairwise = Pairwise::new(x, metric);
    // A partition fixed by n, fine enough that every core gets work.
    let rows = n.div_ceil(16).clamp(1, pairwise.block_rows());
    let mut dist = vec![0f32; n * n];
    dist.par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(block, out)| {
            let mut buf = vec![0f64; out.len()];
            pairwise.block(block * rows, &mut buf);
            for (o, &v) in out.iter_mut().zip(&buf) {
                *o = v as f32;
            }
        });
    zero_between_identical_rows(x, &mut dist);
    symmetrize_from_upper(&mut dist, n);
    dist
}

/// Sets the distance between bitwise identical rows to exactly 0. The product form of the
/// distances leaves rounding noise there (about 1e-7 after the square root for unit-scale
/// data), which would surface as spurious tiny H0 bars; duplicates are common in embedding
/// stores (repeated images or captions).
fn zero_between_identical_rows(x: Embeddings<'_>, dist: &mut [f32]) {
    let n = x.rows();
    let key = |i: usize| x.row(i).iter().map(|v| canonical(*v).to_bits());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| key(i).cmp(key(j)).then(i.cmp(&j)));
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && key(order[start]).eq(key(order[end])) {
            end += 1;
        }
        for &i in &order[start..end] {
            for &j in &order[start..end] {
                dist[i * n + j] = 0.0;
            }
        }
        start = end;
    }
}

/// The `f32` matrix of a validated `f64` distance matrix, from its upper triangle.
pub(super) fn from_upper_triangle(dist: &[f64], n: usize) -> Vec<f32> {
    let mut out: Vec<f32> = dist.iter().map(|&v| v as f32).collect();
    symmetrize_from_upper(&mut out, n);
    out
}

/// Copies the upper triangle onto the lower one and zeroes the diagonal: ripser.py reads
/// only `d[i][j]` for `i < j`, and products computed by rows need not be exactly symmetric.
fn symmetrize_from_upper(dist: &mut [f32], n: usize) {
    for i in 0..n {
        dist[i * n + i] = 0.0;
        for j in i + 1..n {
            let v = canonical(dist[i * n + j]);
            dist[i * n + j] = v;
            dist[j * n + i] = v;
        }
    }
}

/// Ripser's default threshold: `min_i max_j d(i, j)`, beyond which the complex is a cone.
fn enclosing_radius(dist: &[f32], n: usize) -> f32 {
    dist.par_chunks(n)
        .map(|row| row.iter().fold(0f32, |m, &v| m.max(v)))
        .reduce(|| f32::INFINITY, f32::min)
}

/// Diagrams for dimensions `0..=max_dim` of the Rips filtration of `dist` (`n × n`,
/// symmetric, zero diagonal), cut at `threshold` (the enclosing radius when `None`).
pub(super) fn persistence(
    dist: Vec<f32>,
    n: usize,
    max_dim: usize,
    threshold: Option<f32>,
) -> Vec<Diagram> {
    persistence_with_levels(dist, n, max_dim, threshold, n > MAX_N_FOR_BIT_LEVELS)
}

/// [`persistence`] with the choice of levels made by the caller: ranks work for every size,
/// and the tests check that both kinds give the same diagrams.
pub(super) fn persistence_with_levels(
    dist: Vec<f32>,
    n: usize,
    max_dim: usize,
    threshold: Option<f32>,
    ranks: bool,
) -> Vec<Diagram> {
    let threshold = canonical(threshold.unwrap_or_else(|| enclosing_radius(&dist, n)));
    let levels = Levels::new(dist, n, threshold, ranks);
    let rips = Rips::new(&levels, n);
    let forest = rips.spanning_forest();
    let mut deaths: Vec<u32> = forest.lengths.iter().copied().filter(|&d| d > 0).collect();
    deaths.sort_unstable();
    let mut h0: Vec<Bar> = deaths
        .iter()
        .map(|&d| Bar {
            birth: 0.0,
            death: levels.value(d),
        })
        .collect();
    h0.extend((0..forest.components).map(|_| Bar {
        birth: 0.0,
        death: f64::INFINITY,
    }));
    let mut diagrams = vec![Diagram { dim: 0, bars: h0 }];
    if max_dim >= 1 {
        diagrams.push(Diagram {
            dim: 1,
            bars: rips.h1(&forest.parent),
        });
    }
    diagrams
}

/// Distances replaced by order-preserving integer *levels*, so that a coboundary entry
/// (diameter, simplex index) packs into one `u64` whose integer order is the pivot order.
///
/// When triangle indices fit in 32 bits (n ≤ 2952) the level of a distance is its `f32` bit
/// pattern (monotone for non-negative floats); otherwise it is its rank among the distinct
/// distances within the threshold (fewer than 2²⁶ for n ≤ 10 000, leaving 38 bits for
/// indices below C(10 000, 3) < 2³⁸). Distances beyond the threshold get `u32::MAX`.
/// Ranking sorts the upper triangle as 8-byte keys: a transient 4n² bytes on top of the
/// matrix.
struct Levels {
    /// `n × n` levels.
    codes: Vec<u32>,
    /// The distance of each rank, when levels are ranks.
    ranked: Option<Vec<f32>>,
    /// Level of the threshold: a simplex is in the filtration iff its level is at most this.
    threshold: u32,
    /// Bits of a packed entry holding the simplex index.
    index_bits: u32,
}

/// Largest number of vertices whose triangle indices fit in 32 bits.
const MAX_N_FOR_BIT_LEVELS: usize = 2952;

impl Levels {
    /// Levels of `dist`, whose buffer they reuse (collecting a mapped `into_iter` of a
    /// same-sized type is done in place), so the matrix is held once.
    fn new(dist: Vec<f32>, n: usize, threshold: f32, ranks: bool) -> Levels {
        if !ranks {
            debug_assert!(n <= MAX_N_FOR_BIT_LEVELS);
            let codes = dist
                .into_iter()
                .map(|d| {
                    if d <= threshold {
                        d.to_bits()
                    } else {
                        u32::MAX
                    }
                })
                .collect();
            return Levels {
                codes,
                ranked: None,
                threshold: threshold.to_bits(),
                index_bits: 32,
            };
        }
        // Ranks by one sort of the upper triangle's (bits, position) pairs — a binary search
        // per entry would be a cache miss per step — then a sweep writing both triangles.
        let mut codes: Vec<u32> = dist.into_iter().map(f32::to_bits).collect();
        let top_bits = threshold.to_bits();
        let mut order: Vec<u64> = codes
            .par_chunks(n)
            .enumerate()
            .flat_map_iter(|(i, row)| {
                row.iter()
                    .enumerate()
                    .skip(i + 1)
                    .filter(|&(_, &b)| b <= top_bits)
                    .map(move |(j, &b)| ((b as u64) << 32) | (i * n + j) as u64)
            })
            .collect();
        order.par_sort_unstable();
        codes.fill(u32::MAX);
        // Zero is always a level: the diagonal.
        let mut values: Vec<f32> = vec![0.0];
        for i in 0..n {
            codes[i * n + i] = 0;
        }
        for &key in &order {
            let bits = (key >> 32) as u32;
            if f32::from_bits(bits) != values[values.len() - 1] {
                values.push(f32::from_bits(bits));
            }
            let rank = values.len() as u32 - 1;
            let pos = (key & 0xffff_ffff) as usize;
            let (i, j) = (pos / n, pos % n);
            codes[pos] = rank;
            codes[j * n + i] = rank;
        }
        drop(order);
        let top = values.len() as u32 - 1;
        Levels {
            codes,
            ranked: Some(values),
            threshold: top,
            index_bits: 38,
        }
    }

    /// The distance of a level (within the threshold).
    fn value(&self, level: u32) -> f64 {
        match &self.ranked {
            Some(v) => v[level as usize] as f64,
            None => f32::from_bits(level) as f64,
        }
    }
}

/// A minimum spanning forest of the edges within the threshold.
struct Forest {
    /// The vertex each vertex was attached from, `NONE` for the first of a component.
    parent: Vec<u32>,
    /// Levels of the forest's edges.
    lengths: Vec<u32>,
    components: usize,
}

const NONE: u32 = u32::MAX;

/// An edge `{a > b}` at level `level`.
#[derive(Debug, Clone, Copy)]
struct Edge {
    level: u32,
    a: u32,
    b: u32,
}

/// splitmix64's finaliser: simplex indices are structured, so their low bits need mixing
/// before they pick a bucket.
#[derive(Default)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ b as u64);
        }
    }

    fn write_u64(&mut self, x: u64) {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

type PivotMap = HashMap<u64, u32, BuildHasherDefault<IndexHasher>>;

/// A Z/2 column as a 4-ary min-heap of packed entries, repeats allowed (pairs cancel when
/// they reach the top). Packed entries: level in the high bits, `index_mask − index` in the
/// low bits, so the minimum is the pivot: smallest diameter, then largest index.
struct Column {
    heap: Vec<u64>,
}

impl Column {
    fn new() -> Column {
        Column { heap: Vec::new() }
    }

    fn clear(&mut self) {
        self.heap.clear();
    }

    fn push(&mut self, key: u64) {
        let h = &mut self.heap;
        let mut i = h.len();
        h.push(key);
        while i > 0 {
            let parent = (i - 1) / 4;
            if h[parent] <= key {
                break;
            }
            h[i] = h[parent];
            i = parent;
        }
        h[i] = key;
    }

    fn pop(&mut self) -> Option<u64> {
        let h = &mut self.heap;
        let last = h.pop()?;
        if h.is_empty() {
            return Some(last);
        }
        let top = h[0];
        let len = h.len();
        let mut i = 0;
        loop {
            let first = 4 * i + 1;
            if first >= len {
                break;
            }
            let end = (first + 4).min(len);
            let mut child = first;
            for c in first + 1..end {
                if h[c] < h[child] {
                    child = c;
                }
            }
            if h[child] >= last {
                break;
            }
            h[i] = h[child];
            i = child;
        }
        h[i] = last;
        Some(top)
    }

    fn peek(&self) -> Option<u64> {
        self.heap.first().copied()
    }

    /// Pops the pivot: the smallest entry occurring an odd number of times at the top.
    fn pop_pivot(&mut self) -> Option<u64> {
        while let Some(top) = self.pop() {
            if self.peek() != Some(top) {
                return Some(top);
            }
            self.pop();
        }
        None
    }

    /// The pivot, left in the column.
    fn pivot(&mut self) -> Option<u64> {
        let p = self.pop_pivot();
        if let Some(p) = p {
            self.push(p);
        }
        p
    }
}

struct Rips<'a> {
    codes: &'a [u32],
    n: usize,
    threshold: u32,
    index_bits: u32,
    index_mask: u64,
    /// `C(v, 2)` and `C(v, 3)` for `v` in `0..=n`.
    choose2: Vec<u64>,
    choose3: Vec<u64>,
    levels: &'a Levels,
}

impl<'a> Rips<'a> {
    fn new(levels: &'a Levels, n: usize) -> Rips<'a> {
        let choose2 = (0..=n as u64)
            .map(|v| v * v.saturating_sub(1) / 2)
            .collect();
        let choose3 = (0..=n as u64)
            .map(|v| v * v.saturating_sub(1) * v.saturating_sub(2) / 6)
            .collect();
        Rips {
            codes: &levels.codes,
            n,
            threshold: levels.threshold,
            index_bits: levels.index_bits,
            index_mask: (1u64 << levels.index_bits) - 1,
            choose2,
            choose3,
            levels,
        }
    }

    fn row(&self, i: u32) -> &'a [u32] {
        let i = i as usize;
        &self.codes[i * self.n..(i + 1) * self.n]
    }

    fn d(&self, i: u32, j: u32) -> u32 {
        self.codes[i as usize * self.n + j as usize]
    }

    fn key(&self, level: u32, index: u64) -> u64 {
        ((level as u64) << self.index_bits) | (self.index_mask - index)
    }

    fn unpack(&self, key: u64) -> (u32, u64) {
        (
            (key >> self.index_bits) as u32,
            self.index_mask - (key & self.index_mask),
        )
    }

    fn edge_index(&self, a: u32, b: u32) -> u64 {
        debug_assert!(a > b);
        self.choose2[a as usize] + b as u64
    }

    /// The vertices `x > y > z` of triangle `index`.
    fn triangle_vertices(&self, index: u64) -> (u32, u32, u32) {
        let x = self.choose3.partition_point(|&c| c <= index) - 1;
        let rest = index - self.choose3[x];
        let y = self.choose2.partition_point(|&c| c <= rest) - 1;
        let z = rest - self.choose2[y];
        (x as u32, y as u32, z as u32)
    }

    /// Minimum spanning forest by Prim's algorithm, under ripser's order (diameter, then
    /// larger edge index first): with a strict total order the forest is unique, so it is
    /// the one ripser's Kruskal pass builds, and the edges left out are the same.
    fn spanning_forest(&self) -> Forest {
        let n = self.n;
        let mut parent = vec![NONE; n];
        let mut lengths = Vec::with_capacity(n.saturating_sub(1));
        let mut components = 0;
        // Vertices not yet in the forest, with their best edge into it.
        let mut outside: Vec<u32> = (0..n as u32).collect();
        let mut best_level = vec![u32::MAX; n];
        let mut best_from = vec![NONE; n];
        while !outside.is_empty() {
            // The best edge leaving the forest, or a new component from the lowest vertex.
            let mut pick: Option<usize> = None;
            for (pos, &v) in outside.iter().enumerate() {
                if best_from[v as usize] == NONE {
                    continue;
                }
                pick = match pick {
                    Some(p) if !self.attach_before(v, outside[p], &best_level, &best_from) => {
                        Some(p)
                    }
                    _ => Some(pos),
                };
            }
            let pos = match pick {
                Some(pos) => pos,
                None => {
                    components += 1;
                    (0..outside.len()).min_by_key(|&p| outside[p]).unwrap_or(0)
                }
            };
            let v = outside.swap_remove(pos);
            if best_from[v as usize] != NONE {
                parent[v as usize] = best_from[v as usize];
                lengths.push(best_level[v as usize]);
            }
            let row = self.row(v);
            for &u in &outside {
                let d = row[u as usize];
                if d > self.threshold {
                    continue;
                }
                let (bu, bd) = (best_from[u as usize], best_level[u as usize]);
                let better =
                    bu == NONE || d < bd || (d == bd && self.edge_key(v, u) > self.edge_key(bu, u));
                if better {
                    best_from[u as usize] = v;
                    best_level[u as usize] = d;
                }
            }
        }
        Forest {
            parent,
            lengths,
            components,
        }
    }

    fn edge_key(&self, i: u32, j: u32) -> u64 {
        self.edge_index(i.max(j), i.min(j))
    }

    /// Whether `v`'s best edge into the forest comes before `w`'s in the filtration.
    fn attach_before(&self, v: u32, w: u32, best_level: &[u32], best_from: &[u32]) -> bool {
        let (dv, dw) = (best_level[v as usize], best_level[w as usize]);
        dv < dw
            || (dv == dw
                && self.edge_key(v, best_from[v as usize])
                    > self.edge_key(w, best_from[w as usize]))
    }

    /// Calls `f(v, level, index)` for the cofacets `{a, b, v}` of the edge `e` within the
    /// threshold, by decreasing index; stops early when `f` returns `false`.
    fn for_each_cofacet(&self, e: Edge, mut f: impl FnMut(u32, u32, u64) -> bool) {
        let (a, b, de) = (e.a, e.b, e.level);
        let (ra, rb) = (self.row(a), self.row(b));
        let (c3a, c2a, c2b) = (
            self.choose3[a as usize],
            self.choose2[a as usize],
            self.choose2[b as usize],
        );
        let level = |v: usize| de.max(ra[v]).max(rb[v]);
        for v in (a as usize + 1..self.n).rev() {
            let l = level(v);
            if l <= self.threshold && !f(v as u32, l, self.choose3[v] + c2a + b as u64) {
                return;
            }
        }
        for v in (b as usize + 1..a as usize).rev() {
            let l = level(v);
            if l <= self.threshold && !f(v as u32, l, c3a + self.choose2[v] + b as u64) {
                return;
            }
        }
        for v in (0..b as usize).rev() {
            let l = level(v);
            if l <= self.threshold && !f(v as u32, l, c3a + c2b + v as u64) {
                return;
            }
        }
    }

    /// The oldest cofacet of `{a > b}` if it has the edge's diameter (ripser's zero pivot
    /// cofacet): the highest vertex `v` no farther than the edge's length from both ends.
    fn zero_pivot_cofacet(&self, a: u32, b: u32, de: u32) -> Option<u32> {
        let (ra, rb) = (self.row(a), self.row(b));
        // Blocks from the top, tested without branches, then searched: the blockwise test
        // vectorises, and most blocks hold no such vertex.
        const BLOCK: usize = 32;
        let mut end = self.n;
        while end > 0 {
            let start = end.saturating_sub(BLOCK);
            let hit = ra[start..end]
                .iter()
                .zip(&rb[start..end])
                .fold(0u32, |h, (&x, &y)| h | ((x.max(y) <= de) as u32));
            if hit != 0 {
                for v in (start..end).rev() {
                    let v32 = v as u32;
                    if v32 != a && v32 != b && ra[v].max(rb[v]) <= de {
                        return Some(v32);
                    }
                }
            }
            end = start;
        }
        None
    }

    /// The youngest facet of the triangle `{x > y > z}` at level `dt` (ripser's zero pivot
    /// facet): the facet of smallest index with the triangle's diameter.
    fn zero_pivot_facet(&self, x: u32, y: u32, z: u32, dt: u32) -> (u32, u32) {
        if self.d(y, z) == dt {
            (y, z)
        } else if self.d(x, z) == dt {
            (x, z)
        } else {
            (x, y)
        }
    }

    /// Whether `{a > b}` forms an apparent pair with its zero pivot cofacet.
    fn has_apparent_cofacet(&self, a: u32, b: u32, de: u32) -> bool {
        match self.zero_pivot_cofacet(a, b, de) {
            Some(v) => {
                let (x, y, z) = sort3(a, b, v);
                self.zero_pivot_facet(x, y, z, de) == (a, b)
            }
            None => false,
        }
    }

    /// The edge the triangle `index` at level `dt` forms an apparent pair with, if any.
    fn apparent_facet(&self, dt: u32, index: u64) -> Option<Edge> {
        let (x, y, z) = self.triangle_vertices(index);
        let (a, b) = self.zero_pivot_facet(x, y, z, dt);
        let v = self.zero_pivot_cofacet(a, b, dt)?;
        (sort3(a, b, v) == (x, y, z)).then_some(Edge { level: dt, a, b })
    }

    /// The edges to reduce for H1: within the threshold, not in the spanning forest
    /// (clearing), not in an apparent pair; by decreasing diameter, then increasing index.
    fn h1_columns(&self, parent: &[u32]) -> Vec<Edge> {
        let per_vertex: Vec<Vec<Edge>> = (1..self.n as u32)
            .into_par_iter()
            .map(|a| {
                let row = self.row(a);
                let mut out = Vec::new();
                for b in 0..a {
                    let de = row[b as usize];
                    if de > self.threshold
                        || parent[a as usize] == b
                        || parent[b as usize] == a
                        || self.has_apparent_cofacet(a, b, de)
                    {
                        continue;
                    }
                    out.push(Edge { level: de, a, b });
                }
                out
            })
            .collect();
        let mut columns: Vec<Edge> = per_vertex.into_iter().flatten().collect();
        columns.sort_unstable_by(|p, q| {
            q.level
                .cmp(&p.level)
                .then(self.edge_index(p.a, p.b).cmp(&self.edge_index(q.a, q.b)))
        });
        columns
    }

    fn push_coboundary(&self, e: Edge, column: &mut Column) {
        self.for_each_cofacet(e, |_, level, index| {
            column.push(self.key(level, index));
            true
        });
    }

    /// The H1 bars by the cohomology reduction over Z/2 (ripser's `compute_pairs`).
    fn h1(&self, parent: &[u32]) -> Vec<Bar> {
        let columns = self.h1_columns(parent);
        let mut pivots = PivotMap::default();
        pivots.reserve(columns.len());
        // The reduction matrix, column by column: the edges added to each reduced column.
        let mut reduction_bounds: Vec<usize> = Vec::with_capacity(columns.len() + 1);
        reduction_bounds.push(0);
        let mut reduction: Vec<Edge> = Vec::new();
        let mut bars = Vec::new();
        let mut working = Column::new();
        let mut added: Vec<Edge> = Vec::new();
        let mut entries: Vec<u64> = Vec::new();
        for (ci, &column) in columns.iter().enumerate() {
            working.clear();
            added.clear();
            entries.clear();
            let birth = column.level;
            // The coboundary, and the emergent-pair shortcut: a first cofacet of the same
            // diameter that is nobody's pivot is this column's pivot without reduction.
            let mut emergent = None;
            let mut check_emergent = true;
            self.for_each_cofacet(column, |_, level, index| {
                if check_emergent && level == birth {
                    if !pivots.contains_key(&index) && self.apparent_facet(level, index).is_none() {
                        emergent = Some(index);
                        return false;
                    }
                    check_emergent = false;
                }
                entries.push(self.key(level, index));
                true
            });
            if let Some(index) = emergent {
                // A pair of zero persistence: nothing to report.
                pivots.insert(index, ci as u32);
                reduction_bounds.push(reduction.len());
                continue;
            }
            for &k in &entries {
                working.push(k);
            }
            let mut pivot = working.pivot();
            loop {
                let Some(key) = pivot else {
                    bars.push(Bar {
                        birth: self.levels.value(birth),
                        death: f64::INFINITY,
                    });
                    break;
                };
                let (level, index) = self.unpack(key);
                if let Some(&other) = pivots.get(&index) {
                    let other = other as usize;
                    let with = columns[other];
                    self.push_coboundary(with, &mut working);
                    added.push(with);
                    for &e in &reduction[reduction_bounds[other]..reduction_bounds[other + 1]] {
                        self.push_coboundary(e, &mut working);
                        added.push(e);
                    }
                } else if let Some(e) = self.apparent_facet(level, index) {
                    self.push_coboundary(e, &mut working);
                    added.push(e);
                } else {
                    if level > birth {
                        bars.push(Bar {
                            birth: self.levels.value(birth),
                            death: self.levels.value(level),
                        });
                    }
                    pivots.insert(index, ci as u32);
                    // Keep the added edges that occur an odd number of times.
                    added.sort_unstable_by_key(|e| (e.a, e.b));
                    let mut i = 0;
                    while i < added.len() {
                        let mut j = i;
                        while j < added.len()
                            && (added[j].a, added[j].b) == (added[i].a, added[i].b)
                        {
                            j += 1;
                        }
                        if (j - i) % 2 == 1 {
                            reduction.push(added[i]);
                        }
                        i = j;
                    }
                    break;
                }
                pivot = working.pivot();
            }
            reduction_bounds.push(reduction.len());
        }
        bars
    }
}

fn sort3(a: u32, b: u32, c: u32) -> (u32, u32, u32) {
    let mut v = [a, b, c];
    v.sort_unstable_by(|p, q| q.cmp(p));
    (v[0], v[1], v[2])
}
