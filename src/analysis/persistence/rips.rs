//! Ripser's computation on a dense `f32` distance matrix (see the parent module's docs).
//!
//! Simplices are named by their index in the combinatorial number system, as in Ripser: the
//! edge `{a > b}` is `C(a, 2) + b`, the triangle `{x > y > z}` is `C(x, 3) + C(y, 2) + z`.
//! The filtration orders simplices by diameter, then by *decreasing* index; cohomology
//! reduces columns in the reverse order, and the pivot of a coboundary is its entry of
//! smallest diameter and, among those, largest index.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
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
    dist: &[f32],
    n: usize,
    max_dim: usize,
    threshold: Option<f32>,
) -> Vec<Diagram> {
    let threshold = threshold.unwrap_or_else(|| enclosing_radius(dist, n));
    let rips = Rips::new(dist, n, threshold);
    let forest = rips.spanning_forest();
    let mut deaths: Vec<f32> = forest
        .lengths
        .iter()
        .copied()
        .filter(|&d| d > 0.0)
        .collect();
    deaths.sort_unstable_by(f32::total_cmp);
    let mut h0: Vec<Bar> = deaths
        .iter()
        .map(|&d| Bar {
            birth: 0.0,
            death: d as f64,
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

/// A minimum spanning forest of the edges within the threshold.
struct Forest {
    /// The vertex each vertex was attached from, `NONE` for the first of a component.
    parent: Vec<u32>,
    /// Lengths of the forest's edges.
    lengths: Vec<f32>,
    components: usize,
}

const NONE: u32 = u32::MAX;

/// An edge `{a > b}` of diameter `diam`.
#[derive(Debug, Clone, Copy)]
struct Edge {
    diam: f32,
    a: u32,
    b: u32,
}

/// A coboundary entry, ordered so that a max-heap pops the pivot first: smallest diameter,
/// then largest index. Diameters are non-negative, so their bits order like their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cofacet {
    diam: Reverse<u32>,
    index: u64,
}

impl Cofacet {
    fn new(diam: f32, index: u64) -> Cofacet {
        Cofacet {
            diam: Reverse(diam.to_bits()),
            index,
        }
    }

    fn diam(&self) -> f32 {
        f32::from_bits(self.diam.0)
    }
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

struct Rips<'a> {
    dist: &'a [f32],
    n: usize,
    threshold: f32,
    /// `C(v, 2)` and `C(v, 3)` for `v` in `0..=n`.
    choose2: Vec<u64>,
    choose3: Vec<u64>,
}

impl<'a> Rips<'a> {
    fn new(dist: &'a [f32], n: usize, threshold: f32) -> Rips<'a> {
        let choose2 = (0..=n as u64)
            .map(|v| v * v.saturating_sub(1) / 2)
            .collect();
        let choose3 = (0..=n as u64)
            .map(|v| v * v.saturating_sub(1) * v.saturating_sub(2) / 6)
            .collect();
        Rips {
            dist,
            n,
            threshold,
            choose2,
            choose3,
        }
    }

    fn row(&self, i: u32) -> &'a [f32] {
        let i = i as usize;
        &self.dist[i * self.n..(i + 1) * self.n]
    }

    fn d(&self, i: u32, j: u32) -> f32 {
        self.dist[i as usize * self.n + j as usize]
    }

    fn edge_index(&self, a: u32, b: u32) -> u64 {
        debug_assert!(a > b);
        self.choose2[a as usize] + b as u64
    }

    /// Index of the triangle `{x > y > z}`.
    fn triangle_index(&self, x: u32, y: u32, z: u32) -> u64 {
        self.choose3[x as usize] + self.choose2[y as usize] + z as u64
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
        let mut best_diam = vec![f32::INFINITY; n];
        let mut best_from = vec![NONE; n];
        while !outside.is_empty() {
            // The best edge leaving the forest, or a new component from the lowest vertex.
            let mut pick: Option<usize> = None;
            for (pos, &v) in outside.iter().enumerate() {
                if best_from[v as usize] == NONE {
                    continue;
                }
                pick = match pick {
                    Some(p) if !self.attach_before(v, outside[p], &best_diam, &best_from) => {
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
                lengths.push(best_diam[v as usize]);
            }
            let row = self.row(v);
            for &u in &outside {
                let d = row[u as usize];
                if d > self.threshold {
                    continue;
                }
                let (bu, bd) = (best_from[u as usize], best_diam[u as usize]);
                let better =
                    bu == NONE || d < bd || (d == bd && self.edge_key(v, u) > self.edge_key(bu, u));
                if better {
                    best_from[u as usize] = v;
                    best_diam[u as usize] = d;
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
    fn attach_before(&self, v: u32, w: u32, best_diam: &[f32], best_from: &[u32]) -> bool {
        let (dv, dw) = (best_diam[v as usize], best_diam[w as usize]);
        dv < dw
            || (dv == dw
                && self.edge_key(v, best_from[v as usize])
                    > self.edge_key(w, best_from[w as usize]))
    }

    /// The cofacets `{a, b, v}` of the edge `{a > b}` of diameter `de` within the
    /// threshold, by decreasing index: `(v, diameter, index)`.
    fn cofacets(&self, a: u32, b: u32, de: f32) -> impl Iterator<Item = (u32, f32, u64)> + '_ {
        let (ra, rb) = (self.row(a), self.row(b));
        let n = self.n as u32;
        let above = (a + 1..n).rev().map(move |v| {
            (
                v,
                self.choose3[v as usize] + self.choose2[a as usize] + b as u64,
            )
        });
        let between = (b + 1..a).rev().map(move |v| {
            (
                v,
                self.choose3[a as usize] + self.choose2[v as usize] + b as u64,
            )
        });
        let below = (0..b).rev().map(move |v| {
            (
                v,
                self.choose3[a as usize] + self.choose2[b as usize] + v as u64,
            )
        });
        above
            .chain(between)
            .chain(below)
            .filter_map(move |(v, index)| {
                let diam = de.max(ra[v as usize]).max(rb[v as usize]);
                (diam <= self.threshold).then_some((v, diam, index))
            })
    }

    /// The oldest cofacet of `{a > b}` if it has the edge's diameter `de` (ripser's zero
    /// pivot cofacet): the highest vertex `v` closer than `de` to both ends.
    fn zero_pivot_cofacet(&self, a: u32, b: u32, de: f32) -> Option<u32> {
        let (ra, rb) = (self.row(a), self.row(b));
        // Blocks from the top, tested without branches, then searched: most edges have no
        // such cofacet near the top, and the blockwise test vectorises.
        const BLOCK: usize = 32;
        let mut end = self.n;
        while end > 0 {
            let start = end.saturating_sub(BLOCK);
            let hit = ra[start..end]
                .iter()
                .zip(&rb[start..end])
                .fold(false, |h, (&x, &y)| h | ((x <= de) & (y <= de)));
            if hit {
                for v in (start..end).rev() {
                    let v32 = v as u32;
                    if v32 != a && v32 != b && ra[v] <= de && rb[v] <= de {
                        return Some(v32);
                    }
                }
            }
            end = start;
        }
        None
    }

    /// The youngest facet of the triangle `{x > y > z}` of diameter `dt` (ripser's zero
    /// pivot facet): the facet of smallest index with the triangle's diameter.
    fn zero_pivot_facet(&self, x: u32, y: u32, z: u32, dt: f32) -> (u32, u32) {
        if self.d(y, z) == dt {
            (y, z)
        } else if self.d(x, z) == dt {
            (x, z)
        } else {
            (x, y)
        }
    }

    /// Whether `{a > b}` forms an apparent pair with its zero pivot cofacet.
    fn has_apparent_cofacet(&self, a: u32, b: u32, de: f32) -> bool {
        match self.zero_pivot_cofacet(a, b, de) {
            Some(v) => {
                let (x, y, z) = sort3(a, b, v);
                self.zero_pivot_facet(x, y, z, de) == (a, b)
            }
            None => false,
        }
    }

    /// The edge a triangle forms an apparent pair with, if any.
    fn apparent_facet(&self, t: Cofacet) -> Option<Edge> {
        let (x, y, z) = self.triangle_vertices(t.index);
        let dt = t.diam();
        let (a, b) = self.zero_pivot_facet(x, y, z, dt);
        let v = self.zero_pivot_cofacet(a, b, dt)?;
        (sort3(a, b, v) == (x, y, z)).then_some(Edge { diam: dt, a, b })
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
                    out.push(Edge { diam: de, a, b });
                }
                out
            })
            .collect();
        let mut columns: Vec<Edge> = per_vertex.into_iter().flatten().collect();
        columns.sort_unstable_by(|p, q| {
            q.diam
                .total_cmp(&p.diam)
                .then(self.edge_index(p.a, p.b).cmp(&self.edge_index(q.a, q.b)))
        });
        columns
    }

    fn push_coboundary(&self, e: Edge, heap: &mut BinaryHeap<Cofacet>) {
        heap.extend(
            self.cofacets(e.a, e.b, e.diam)
                .map(|(_, diam, index)| Cofacet::new(diam, index)),
        );
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
        let mut heap: BinaryHeap<Cofacet> = BinaryHeap::new();
        let mut added: Vec<Edge> = Vec::new();
        let mut entries: Vec<Cofacet> = Vec::new();
        for (ci, &column) in columns.iter().enumerate() {
            heap.clear();
            added.clear();
            entries.clear();
            let birth = column.diam;
            // The coboundary, and the emergent-pair shortcut: a first cofacet of the same
            // diameter that is nobody's pivot is this column's pivot without reduction.
            let mut emergent = None;
            let mut check_emergent = true;
            for (_, diam, index) in self.cofacets(column.a, column.b, birth) {
                let cofacet = Cofacet::new(diam, index);
                if check_emergent && diam == birth {
                    if !pivots.contains_key(&index) && self.apparent_facet(cofacet).is_none() {
                        emergent = Some(cofacet);
                        break;
                    }
                    check_emergent = false;
                }
                entries.push(cofacet);
            }
            if let Some(pivot) = emergent {
                // A pair of zero persistence: nothing to report.
                pivots.insert(pivot.index, ci as u32);
                reduction_bounds.push(reduction.len());
                continue;
            }
            heap.extend(entries.iter().copied());
            let mut pivot = get_pivot(&mut heap);
            loop {
                let Some(p) = pivot else {
                    bars.push(Bar {
                        birth: birth as f64,
                        death: f64::INFINITY,
                    });
                    break;
                };
                if let Some(&other) = pivots.get(&p.index) {
                    let other = other as usize;
                    let with = columns[other];
                    self.push_coboundary(with, &mut heap);
                    added.push(with);
                    for &e in &reduction[reduction_bounds[other]..reduction_bounds[other + 1]] {
                        self.push_coboundary(e, &mut heap);
                        added.push(e);
                    }
                } else if let Some(e) = self.apparent_facet(p) {
                    self.push_coboundary(e, &mut heap);
                    added.push(e);
                } else {
                    let death = p.diam();
                    if death > birth {
                        bars.push(Bar {
                            birth: birth as f64,
                            death: death as f64,
                        });
                    }
                    pivots.insert(p.index, ci as u32);
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
                pivot = get_pivot(&mut heap);
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

/// Pops the pivot of a Z/2 column held as a heap with repeats: entries that occur an even
/// number of times cancel.
fn pop_pivot(heap: &mut BinaryHeap<Cofacet>) -> Option<Cofacet> {
    while let Some(top) = heap.pop() {
        match heap.peek() {
            Some(next) if next.index == top.index => {
                heap.pop();
            }
            _ => return Some(top),
        }
    }
    None
}

/// The pivot of the column, left in it.
fn get_pivot(heap: &mut BinaryHeap<Cofacet>) -> Option<Cofacet> {
    let pivot = pop_pivot(heap);
    if let Some(p) = pivot {
        heap.push(p);
    }
    pivot
}
