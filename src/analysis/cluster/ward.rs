//! Agglomerative clustering with Ward's criterion, exact.
//!
//! Ward merges, at each step, the two clusters whose union increases the total within-cluster
//! sum of squares the least. The dendrogram is built with the nearest-neighbour chain
//! algorithm (Murtagh 1983) over a condensed matrix of squared Ward distances updated by the
//! Lance–Williams formula
//!
//! ```text
//! d²(k, i∪j) = ((n_i + n_k) d²(k, i) + (n_j + n_k) d²(k, j) − n_k d²(i, j)) / (n_i + n_j + n_k)
//! ```
//!
//! starting from squared Euclidean distances (in `f64`, computed directly, not through the
//! dot-product shortcut). Ward's distance is reducible, so the chain finds exactly the merges
//! of the greedy algorithm; they are then sorted by height. Merge heights are
//! `sqrt(d²)`, SciPy's convention (`scipy.cluster.hierarchy.linkage(X, "ward")`), and the
//! [`Dendrogram`] uses SciPy's linkage-matrix layout. [`Dendrogram::cut`] undoes the last
//! merges, which is what scikit-learn's `AgglomerativeClustering(linkage="ward",
//! n_clusters=k)` returns (up to label names).
//!
//! Ties between equal distances are broken towards the lower cluster slot; SciPy and
//! scikit-learn may break them differently, so with exactly tied distances the tree can
//! differ from theirs (its heights cannot).
//!
//! Memory is `n(n−1)/2` `f64`s, so the input is limited to [`WARD_MAX_SAMPLES`] (about 1 GiB);
//! time is O(n² · dim) for the distances plus O(n²) for the chain.

use rayon::prelude::*;

use super::super::linalg::non_empty;
use super::super::{check_finite, AnalysisError, Embeddings};

/// Largest input for [`ward_tree`]: 16,384 samples need 1.07 GiB of pairwise distances.
pub const WARD_MAX_SAMPLES: usize = 16_384;

/// One merge of two clusters (SciPy's linkage row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Merge {
    /// The merged clusters: ids below `n_samples` are samples, id `n_samples + i` is the
    /// cluster formed by merge `i`. `a < b`.
    pub a: usize,
    pub b: usize,
    /// Ward distance between them.
    pub height: f64,
    /// Samples in the merged cluster.
    pub size: usize,
}

/// A full Ward dendrogram: `n_samples − 1` merges by increasing height.
#[derive(Debug, Clone, PartialEq)]
pub struct Dendrogram {
    pub n_samples: usize,
    pub merges: Vec<Merge>,
}

fn condensed(n: usize, i: usize, j: usize) -> usize {
    let (i, j) = if i < j { (i, j) } else { (j, i) };
    n * i - i * (i + 1) / 2 + (j - i - 1)
}

/// Builds the Ward dendrogram of the rows of `x`.
pub fn ward_tree(x: Embeddings<'_>) -> Result<Dendrogram, AnalysisError> {
    non_empty("samples", x)?;
    check_finite("samples", x)?;
    let n = x.rows();
    if n > WARD_MAX_SAMPLES {
        return Err(AnalysisError::TooMany {
            what: "Ward clustering",
            n,
            max: WARD_MAX_SAMPLES,
        });
    }
    if n == 1 {
        return Ok(Dendrogram {
            n_samples: 1,
            merges: vec![],
        });
    }
    let dim = x.dim();
    let xf: Vec<f64> = x.data().iter().map(|&v| v as f64).collect();
    // Condensed squared distances, row i holding (i, j) for j > i.
    let mut d = vec![0.0f64; n * (n - 1) / 2];
    {
        let mut rows: Vec<(usize, &mut [f64])> = Vec::with_capacity(n - 1);
        let mut rest: &mut [f64] = &mut d;
        for i in 0..n - 1 {
            let (row, tail) = rest.split_at_mut(n - 1 - i);
            rows.push((i, row));
            rest = tail;
        }
        rows.into_par_iter().for_each(|(i, row)| {
            let xi = &xf[i * dim..(i + 1) * dim];
            for (o, j) in row.iter_mut().zip(i + 1..n) {
                let xj = &xf[j * dim..(j + 1) * dim];
                *o = xi
                    .iter()
                    .zip(xj)
                    .map(|(a, b)| {
                        let t = a - b;
                        t * t
                    })
                    .sum();
            }
        });
    }

    let mut size = vec![1usize; n];
    let mut active = vec![true; n];
    // Merges as (slot kept, slot removed, squared height); the kept slot holds the union.
    let mut raw: Vec<(usize, usize, f64)> = Vec::with_capacity(n - 1);
    let mut chain: Vec<usize> = Vec::with_capacity(n);
    let mut first_active = 0;
    for _ in 0..n - 1 {
        if chain.is_empty() {
            while !active[first_active] {
                first_active += 1;
            }
            chain.push(first_active);
        }
        let (a, b, dab) = loop {
            let a = *chain.last().expect("chain is not empty");
            let prev = (chain.len() >= 2).then(|| chain[chain.len() - 2]);
            // Nearest active neighbour of a; the previous chain element wins ties, so the
            // chain always ends at a reciprocal pair.
            let mut best = usize::MAX;
            let mut best_d = f64::INFINITY;
            if let Some(p) = prev {
                best = p;
                best_d = d[condensed(n, a, p)];
            }
            for k in 0..n {
                if k == a || !active[k] {
                    continue;
                }
                let v = d[condensed(n, a, k)];
                if v < best_d || (v == best_d && Some(best) != prev && k < best) {
                    best = k;
                    best_d = v;
                }
            }
            if Some(best) == prev {
                chain.pop();
                chain.pop();
                break (a, best, best_d);
            }
            chain.push(best);
        };
        let (keep, gone) = (a.min(b), a.max(b));
        let (ni, nj) = (size[keep] as f64, size[gone] as f64);
        for k in 0..n {
            if !active[k] || k == keep || k == gone {
                continue;
            }
            let nk = size[k] as f64;
            let dik = d[condensed(n, keep, k)];
            let djk = d[condensed(n, gone, k)];
            d[condensed(n, keep, k)] =
                ((ni + nk) * dik + (nj + nk) * djk - nk * dab) / (ni + nj + nk);
        }
        active[gone] = false;
        size[keep] += size[gone];
        raw.push((keep, gone, dab));
    }

    // Sort by height (stable: equal heights keep chain order), then name clusters as SciPy.
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by(|&p, &q| raw[p].2.total_cmp(&raw[q].2));
    let mut parent: Vec<usize> = (0..n).collect();
    // The current cluster id of the set whose root is a given slot.
    let mut id_of_root: Vec<usize> = (0..n).collect();
    let mut set_size = vec![1usize; n];
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut merges = Vec::with_capacity(n - 1);
    for (step, &m) in order.iter().enumerate() {
        let (s, t, h2) = raw[m];
        let (rs, rt) = (find(&mut parent, s), find(&mut parent, t));
        let (ia, ib) = (id_of_root[rs], id_of_root[rt]);
        let merged = set_size[rs] + set_size[rt];
        parent[rt] = rs;
        set_size[rs] = merged;
        id_of_root[rs] = n + step;
        merges.push(Merge {
            a: ia.min(ib),
            b: ia.max(ib),
            height: h2.max(0.0).sqrt(),
            size: merged,
        });
    }
    Ok(Dendrogram {
        n_samples: n,
        merges,
    })
}

impl Dendrogram {
    /// Flat clusters: the partition left after the first `n_samples − n_clusters` merges.
    /// Labels are numbered by first appearance (sample 0 is in cluster 0).
    pub fn cut(&self, n_clusters: usize) -> Result<Vec<usize>, AnalysisError> {
        let n = self.n_samples;
        if n_clusters == 0 {
            return Err(AnalysisError::InvalidParameter {
                what: "n_clusters",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if n_clusters > n {
            return Err(AnalysisError::TooLarge {
                what: "n_clusters",
                k: n_clusters,
                n,
                of: "samples",
            });
        }
        // Union-find over ids 0..2n-1: each merge's new id points at its two children.
        let mut parent: Vec<usize> = (0..2 * n).collect();
        for (step, m) in self.merges.iter().take(n - n_clusters).enumerate() {
            parent[m.a] = n + step;
            parent[m.b] = n + step;
        }
        let root = |mut i: usize| {
            while parent[i] != i {
                i = parent[i];
            }
            i
        };
        Ok(first_appearance(&(0..n).map(root).collect::<Vec<_>>()))
    }
}

/// Renumbers labels by order of first appearance.
pub(crate) fn first_appearance(labels: &[usize]) -> Vec<usize> {
    let mut map = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

/// Ward clustering of the rows of `x` into `n_clusters` clusters (labels by first appearance).
pub fn ward(x: Embeddings<'_>, n_clusters: usize) -> Result<Vec<usize>, AnalysisError> {
    non_empty("samples", x)?;
    if n_clusters > x.rows() {
        return Err(AnalysisError::TooLarge {
            what: "n_clusters",
            k: n_clusters,
            n: x.rows(),
            of: "samples",
        });
    }
    ward_tree(x)?.cut(n_clusters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tree_matches_hand_computation() {
        // 1-D points 0, 1, 5: merge (0,1) at height 1, then {0,1} with 5:
        // d² = ((1+1)·25 + (1+1)·16 − 1·1) / 3 = 81/3 = 27.
        let x = [0.0f32, 1.0, 5.0];
        let t = ward_tree(Embeddings::new(&x, 1).unwrap()).unwrap();
        assert_eq!(t.merges.len(), 2);
        assert_eq!((t.merges[0].a, t.merges[0].b, t.merges[0].size), (0, 1, 2));
        assert_eq!(t.merges[0].height, 1.0);
        assert_eq!((t.merges[1].a, t.merges[1].b, t.merges[1].size), (2, 3, 3));
        assert!((t.merges[1].height - 27f64.sqrt()).abs() < 1e-12);
        assert_eq!(t.cut(2).unwrap(), vec![0, 0, 1]);
        assert_eq!(t.cut(3).unwrap(), vec![0, 1, 2]);
        assert_eq!(t.cut(1).unwrap(), vec![0, 0, 0]);
        assert!(t.cut(4).is_err());
        assert!(t.cut(0).is_err());
    }

    #[test]
    fn single_sample_and_limits() {
        let t = ward_tree(Embeddings::new(&[1.0f32, 2.0], 2).unwrap()).unwrap();
        assert!(t.merges.is_empty());
        assert_eq!(t.cut(1).unwrap(), vec![0]);
        assert!(ward(Embeddings::new(&[], 2).unwrap(), 1).is_err());
    }
}
