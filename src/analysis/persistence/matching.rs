//! Bottleneck and Wasserstein distances between diagrams, as persim 0.4.1 defines them.
//!
//! persim builds the square matrix of the `m + k` points of both diagrams against each other
//! and against their diagonal projections: rows are the points of `a` then one diagonal slot
//! per point of `b`, columns the points of `b` then one diagonal slot per point of `a`. A
//! point reaches only its own diagonal slot; two diagonal slots match at cost 0. Both
//! distances below solve that matching problem exactly, through smaller equivalent problems
//! on the `m × k` point-to-point part (each function says how).

use super::super::AnalysisError;
use super::Bar;

/// Most finite bars a diagram may have for [`bottleneck`] and [`wasserstein`]: both hold an
/// `m × k` table of `f64` (800 MB at the limit), and every diagram
/// [`rips_persistence`](super::rips_persistence) returns is within it.
pub const MAX_DIAGRAM_POINTS: usize = super::MAX_POINTS;

/// Checks a diagram and returns its finite bars (persim ignores bars dying at `+∞`).
fn finite_bars(what: &'static str, bars: &[Bar]) -> Result<Vec<Bar>, AnalysisError> {
    for (row, bar) in bars.iter().enumerate() {
        if !bar.birth.is_finite() || bar.death.is_nan() {
            return Err(AnalysisError::NonFinite { what, row });
        }
        if bar.death < bar.birth {
            return Err(AnalysisError::InvalidParameter {
                what,
                value: format!("bar {row} = ({}, {})", bar.birth, bar.death),
                reason: "a bar cannot die before it is born",
            });
        }
    }
    let finite: Vec<Bar> = bars
        .iter()
        .copied()
        .filter(|b| b.death.is_finite())
        .collect();
    if finite.len() > MAX_DIAGRAM_POINTS {
        return Err(AnalysisError::TooMany {
            what,
            n: finite.len(),
            max: MAX_DIAGRAM_POINTS,
        });
    }
    Ok(finite)
}

/// The bottleneck distance between two diagrams (`persim.bottleneck(a, b)`): the smallest
/// `ε` such that the points of both can be matched to each other or to the diagonal with
/// every matched pair within `ε` in L∞ (a point is `(death − birth) / 2` from the diagonal).
///
/// Bars dying at `+∞` are ignored, as persim does. Errors on a non-finite birth, a NaN death
/// or a death before the birth.
///
/// The answer is one of the pairwise L∞ distances or distances to the diagonal; a binary
/// search over these candidates tests each with Hopcroft–Karp on the points that cannot go
/// to the diagonal (by the Mendelsohn–Dulmage theorem, persim's augmented matrix has a
/// perfect matching within `ε` exactly when the points of `a` farther than `ε` from the
/// diagonal can all be matched into `b`, and those of `b` into `a`). Memory O(m·k) for the
/// candidates.
pub fn bottleneck(a: &[Bar], b: &[Bar]) -> Result<f64, AnalysisError> {
    let s = finite_bars("diagram a", a)?;
    let t = finite_bars("diagram b", b)?;
    let half = |p: &Bar| 0.5 * (p.death - p.birth);
    let linf = |p: &Bar, q: &Bar| (p.birth - q.birth).abs().max((p.death - q.death).abs());
    // Matching everything to the diagonal is always possible: an upper bound.
    let upper = s.iter().chain(&t).map(half).fold(0.0f64, f64::max);
    let mut candidates: Vec<f64> = s.iter().chain(&t).map(half).collect();
    candidates.push(0.0);
    for p in &s {
        candidates.extend(t.iter().map(|q| linf(p, q)).filter(|&d| d < upper));
    }
    candidates.sort_unstable_by(f64::total_cmp);
    candidates.dedup();
    let feasible = |eps: f64| {
        matches_all_far_points(&s, &t, eps, half, linf)
            && matches_all_far_points(&t, &s, eps, half, linf)
    };
    // The first feasible candidate; the largest (the upper bound) always is.
    let (mut lo, mut hi) = (0usize, candidates.len() - 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if feasible(candidates[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(candidates[lo])
}

/// Whether every point of `from` farther than `eps` from the diagonal can be matched to a
/// distinct point of `to` within `eps` (Hopcroft–Karp).
fn matches_all_far_points(
    from: &[Bar],
    to: &[Bar],
    eps: f64,
    half: impl Fn(&Bar) -> f64,
    linf: impl Fn(&Bar, &Bar) -> f64,
) -> bool {
    let far: Vec<&Bar> = from.iter().filter(|p| half(p) > eps).collect();
    if far.is_empty() {
        return true;
    }
    if far.len() > to.len() {
        return false;
    }
    let mut offsets = Vec::with_capacity(far.len() + 1);
    let mut adjacency = Vec::new();
    offsets.push(0);
    for p in &far {
        adjacency.extend(
            to.iter()
                .enumerate()
                .filter(|(_, q)| linf(p, q) <= eps)
                .map(|(j, _)| j as u32),
        );
        if adjacency.len() == *offsets.last().unwrap_or(&0) {
            return false;
        }
        offsets.push(adjacency.len());
    }
    hopcroft_karp(&offsets, &adjacency, to.len()) == far.len()
}

const FREE: u32 = u32::MAX;

/// Size of a maximum matching of a bipartite graph given as adjacency lists of the left
/// vertices (`adjacency[offsets[u]..offsets[u + 1]]`), with `right` right vertices.
fn hopcroft_karp(offsets: &[usize], adjacency: &[u32], right: usize) -> usize {
    let left = offsets.len() - 1;
    let mut match_left = vec![FREE; left];
    let mut match_right = vec![FREE; right];
    let mut layer = vec![u32::MAX; left];
    let mut queue = Vec::with_capacity(left);
    let mut next_edge = vec![0usize; left];
    let mut stack: Vec<u32> = Vec::new();
    let mut size = 0;
    loop {
        // Breadth-first layers from the free left vertices along alternating paths.
        queue.clear();
        for u in 0..left {
            if match_left[u] == FREE {
                layer[u] = 0;
                queue.push(u as u32);
            } else {
                layer[u] = u32::MAX;
            }
        }
        let mut found = false;
        let mut head = 0;
        while head < queue.len() {
            let u = queue[head] as usize;
            head += 1;
            for &v in &adjacency[offsets[u]..offsets[u + 1]] {
                let w = match_right[v as usize];
                if w == FREE {
                    found = true;
                } else if layer[w as usize] == u32::MAX {
                    layer[w as usize] = layer[u] + 1;
                    queue.push(w);
                }
            }
        }
        if !found {
            return size;
        }
        // Vertex-disjoint shortest augmenting paths, by an explicit depth-first search.
        next_edge.copy_from_slice(&offsets[..left]);
        for root in 0..left {
            if match_left[root] != FREE {
                continue;
            }
            stack.clear();
            stack.push(root as u32);
            while let Some(&u) = stack.last() {
                let u = u as usize;
                if next_edge[u] == offsets[u + 1] {
                    // Dead end: never visit again in this phase.
                    layer[u] = u32::MAX;
                    stack.pop();
                    continue;
                }
                let v = adjacency[next_edge[u]] as usize;
                next_edge[u] += 1;
                let w = match_right[v];
                if w == FREE {
                    // Augment along the stack: each left vertex takes the edge it advanced on.
                    for &x in stack.iter().rev() {
                        let x = x as usize;
                        let y = adjacency[next_edge[x] - 1] as usize;
                        match_left[x] = y as u32;
                        match_right[y] = x as u32;
                    }
                    size += 1;
                    break;
                } else if layer[w as usize] != u32::MAX && layer[w as usize] == layer[u] + 1 {
                    stack.push(w);
                }
            }
        }
    }
}

/// cos(π/4) and sin(π/4) as numpy gives them: they differ in the last bit (sin is one ulp
/// below 1/√2), and persim rotates the diagrams by this matrix to measure distances to the
/// diagonal.
const COS_QUARTER_PI: f64 = std::f64::consts::FRAC_1_SQRT_2;
const SIN_QUARTER_PI: f64 = 0.707_106_781_186_547_5;

/// The Wasserstein distance between two diagrams (`persim.wasserstein(a, b)`): the minimum,
/// over matchings of the points of both to each other or to the diagonal, of the sum of
/// Euclidean distances of matched pairs (a point is `(death − birth) / √2` from the
/// diagonal). Order 1, L2 ground metric.
///
/// Bars dying at `+∞` are ignored, as persim does. Errors on a non-finite birth, a NaN death
/// or a death before the birth.
///
/// The ground distance is computed as scikit-learn's `pairwise_distances` (which persim
/// calls) computes it, `√(‖p‖² + ‖q‖² − 2 p·q)`, so values agree with persim's to rounding;
/// this form loses digits for nearly coincident points far from the origin.
///
/// persim solves the `(m + k)²` augmented assignment; the same optimum comes from a smaller
/// one. Every point costs its distance to the diagonal unless it is paired, and pairing `p`
/// with `q` changes the total by `c(p, q) − δ(p) − δ(q)`; so the optimum is the sum of the
/// `δ` plus the best (most negative) sum of such changes over partial matchings, which is a
/// rectangular `min(m, k) × max(m, k)` assignment with costs `min(c − δ − δ, 0)` (a pair
/// with a positive change is read as both points going to the diagonal). That assignment
/// is solved exactly by shortest augmenting paths (Crouse's variant of Jonker–Volgenant,
/// scipy's `linear_sum_assignment`); the reported total sums the costs of the chosen
/// matching in persim's row order. O(m·k) memory, O(min(m, k)² · max(m, k)) time at worst.
pub fn wasserstein(a: &[Bar], b: &[Bar]) -> Result<f64, AnalysisError> {
    let s = finite_bars("diagram a", a)?;
    let t = finite_bars("diagram b", b)?;
    let (m, k) = (s.len(), t.len());
    let sq = |p: &Bar| p.birth * p.birth + p.death * p.death;
    let to_diagonal = |p: &Bar| p.birth * -SIN_QUARTER_PI + p.death * COS_QUARTER_PI;
    let s_diag: Vec<f64> = s.iter().map(to_diagonal).collect();
    let t_diag: Vec<f64> = t.iter().map(to_diagonal).collect();
    let s_sq: Vec<f64> = s.iter().map(sq).collect();
    let t_sq: Vec<f64> = t.iter().map(sq).collect();
    // persim's point-to-point cost, a's point i to b's point j.
    let cost = |i: usize, j: usize| {
        let (p, q) = (&s[i], &t[j]);
        let dot = p.birth * q.birth + p.death * q.death;
        (-2.0 * dot + s_sq[i] + t_sq[j]).max(0.0).sqrt()
    };
    // The change of pairing, never positive; the smaller diagram indexes the rows.
    let change = |i: usize, j: usize| (cost(i, j) - s_diag[i] - t_diag[j]).min(0.0);
    let mut partner_of_s: Vec<Option<usize>> = vec![None; m];
    if m <= k {
        let net: Vec<f64> = (0..m * k).map(|x| change(x / k, x % k)).collect();
        for (i, j) in linear_sum_assignment(m, k, &net).into_iter().enumerate() {
            partner_of_s[i] = (net[i * k + j] < 0.0).then_some(j);
        }
    } else {
        let net: Vec<f64> = (0..k * m).map(|x| change(x % m, x / m)).collect();
        for (j, i) in linear_sum_assignment(k, m, &net).into_iter().enumerate() {
            if net[j * m + i] < 0.0 {
                partner_of_s[i] = Some(j);
            }
        }
    }
    let mut t_paired = vec![false; k];
    let mut total = 0.0;
    for (i, partner) in partner_of_s.iter().enumerate() {
        total += match *partner {
            Some(j) => {
                t_paired[j] = true;
                cost(i, j)
            }
            None => s_diag[i],
        };
    }
    for j in (0..k).filter(|&j| !t_paired[j]) {
        total += t_diag[j];
    }
    Ok(total)
}

/// A minimum-cost assignment of each of `rows` rows to a distinct one of `cols ≥ rows`
/// columns (`cost` row-major, finite): the column of each row. Shortest augmenting paths
/// with dual potentials, one row at a time, as in scipy's `linear_sum_assignment`
/// (D. F. Crouse, IEEE TAES 2016).
fn linear_sum_assignment(rows: usize, cols: usize, cost: &[f64]) -> Vec<usize> {
    debug_assert!(rows <= cols && cost.len() == rows * cols);
    let mut u = vec![0.0f64; rows];
    let mut v = vec![0.0f64; cols];
    let mut path = vec![usize::MAX; cols];
    let mut col4row = vec![usize::MAX; rows];
    let mut row4col = vec![usize::MAX; cols];
    let mut shortest = vec![f64::INFINITY; cols];
    let mut visited_rows = vec![false; rows];
    let mut visited_cols = vec![false; cols];
    let mut remaining: Vec<usize> = Vec::with_capacity(cols);
    for cur_row in 0..rows {
        remaining.clear();
        remaining.extend((0..cols).rev());
        visited_rows.fill(false);
        visited_cols.fill(false);
        shortest.fill(f64::INFINITY);
        let mut min_val = 0.0f64;
        let mut i = cur_row;
        let sink = loop {
            visited_rows[i] = true;
            let row = &cost[i * cols..(i + 1) * cols];
            let mut lowest = f64::INFINITY;
            let mut best = 0;
            for (pos, &j) in remaining.iter().enumerate() {
                let r = min_val + row[j] - u[i] - v[j];
                if r < shortest[j] {
                    path[j] = i;
                    shortest[j] = r;
                }
                if shortest[j] < lowest || (shortest[j] == lowest && row4col[j] == usize::MAX) {
                    lowest = shortest[j];
                    best = pos;
                }
            }
            min_val = lowest;
            let j = remaining.swap_remove(best);
            visited_cols[j] = true;
            if row4col[j] == usize::MAX {
                break j;
            }
            i = row4col[j];
        };
        // Dual update.
        u[cur_row] += min_val;
        for r in 0..rows {
            if visited_rows[r] && r != cur_row {
                u[r] += min_val - shortest[col4row[r]];
            }
        }
        for c in 0..cols {
            if visited_cols[c] {
                v[c] -= min_val - shortest[c];
            }
        }
        // Augment along the path back to the current row.
        let mut j = sink;
        loop {
            let r = path[j];
            row4col[j] = r;
            std::mem::swap(&mut col4row[r], &mut j);
            if r == cur_row {
                break;
            }
        }
    }
    col4row
}
