//! DBSCAN (Ester, Kriegel, Sander & Xu 1996), exact and with scikit-learn's labelling.
//!
//! - The neighbourhood of a sample is every sample at distance `≤ eps`, itself included.
//! - A core sample has at least `min_samples` neighbours.
//! - Clusters are the connected components of core samples (linked when neighbours), plus
//!   the non-core neighbours of their cores ("border" samples). Everything else is noise.
//!
//! Clusters are discovered by scanning samples in index order and expanding from each core
//! sample not yet labelled, so cluster `0` is the one containing the lowest-index core sample,
//! and a border sample reachable from several clusters joins the one discovered first. That is
//! exactly what scikit-learn's `DBSCAN` produces (its `-1` is `None` here), so labels compare
//! equal, not just up to renaming.
//!
//! Distances are [`Distance`]s in `f64`, computed in row blocks; the neighbour lists are
//! kept, so memory grows with the number of neighbour pairs (at most n², for an `eps` that
//! links everything).

use rayon::prelude::*;

use super::super::linalg::{non_empty, Distance, Pairwise};
use super::super::{check_finite, AnalysisError, Embeddings};

/// Options of [`dbscan`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbscanOptions {
    /// Neighbourhood radius (inclusive).
    pub eps: f64,
    /// Neighbours (the sample itself included) that make a sample a core sample.
    pub min_samples: usize,
    pub metric: Distance,
}

/// A DBSCAN result.
#[derive(Debug, Clone, PartialEq)]
pub struct Dbscan {
    /// Cluster of each sample; `None` for noise.
    pub labels: Vec<Option<usize>>,
    pub n_clusters: usize,
    /// Whether each sample is a core sample.
    pub core: Vec<bool>,
}

/// Runs DBSCAN on the rows of `x`.
pub fn dbscan(x: Embeddings<'_>, opts: &DbscanOptions) -> Result<Dbscan, AnalysisError> {
    non_empty("samples", x)?;
    check_finite("samples", x)?;
    if !(opts.eps > 0.0 && opts.eps.is_finite()) {
        return Err(AnalysisError::InvalidParameter {
            what: "eps",
            value: opts.eps.to_string(),
            reason: "must be a positive finite number",
        });
    }
    if opts.min_samples == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "min_samples",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    let n = x.rows();
    let pw = Pairwise::new(x, opts.metric);
    let rows = pw.block_rows();
    let starts: Vec<usize> = (0..n).step_by(rows).collect();
    // Neighbour lists in sample order.
    let neighbours: Vec<Vec<u32>> = starts
        .par_iter()
        .flat_map_iter(|&start| {
            let end = (start + rows).min(n);
            let mut d = vec![0.0f64; (end - start) * n];
            pw.block(start, &mut d);
            d.chunks_exact(n)
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .filter(|&(_, &v)| v <= opts.eps)
                        .map(|(j, _)| j as u32)
                        .collect::<Vec<u32>>()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let core: Vec<bool> = neighbours
        .iter()
        .map(|nb| nb.len() >= opts.min_samples)
        .collect();
    let mut labels: Vec<Option<usize>> = vec![None; n];
    let mut n_clusters = 0;
    let mut stack: Vec<usize> = Vec::new();
    for seed in 0..n {
        if labels[seed].is_some() || !core[seed] {
            continue;
        }
        let c = n_clusters;
        n_clusters += 1;
        labels[seed] = Some(c);
        stack.push(seed);
        while let Some(i) = stack.pop() {
            // Only core samples extend the cluster; border samples are labelled and stop.
            if !core[i] {
                continue;
            }
            for &j in &neighbours[i] {
                let j = j as usize;
                if labels[j].is_none() {
                    labels[j] = Some(c);
                    stack.push(j);
                }
            }
        }
    }
    Ok(Dbscan {
        labels,
        n_clusters,
        core,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_groups_a_border_and_noise() {
        // 1-D: a chain 0, 0.1, 0.2, 0.35 (gaps ≤ eps = 0.151), an isolated 5.0 and a second
        // group 10, 10.1, 10.2.
        let x = [0.0f32, 0.1, 0.2, 0.35, 5.0, 10.0, 10.1, 10.2];
        let e = Embeddings::new(&x, 1).unwrap();
        let r = dbscan(
            e,
            &DbscanOptions {
                eps: 0.151,
                min_samples: 2,
                metric: Distance::Euclidean,
            },
        )
        .unwrap();
        assert_eq!(r.n_clusters, 2);
        assert_eq!(
            r.labels,
            vec![
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                None,
                Some(1),
                Some(1),
                Some(1)
            ]
        );
        let r = dbscan(
            e,
            &DbscanOptions {
                eps: 0.151,
                min_samples: 3,
                metric: Distance::Euclidean,
            },
        )
        .unwrap();
        // 0.0 has 2 neighbours (itself, 0.1): border; 0.35 border of 0.2.
        assert_eq!(
            r.core,
            vec![false, true, true, false, false, false, true, false]
        );
        assert_eq!(r.labels[0], Some(0));
        assert_eq!(r.labels[3], Some(0));
    }

    #[test]
    fn invalid_parameters() {
        let e = Embeddings::new(&[0.0f32], 1).unwrap();
        let mut o = DbscanOptions {
            eps: 0.0,
            min_samples: 1,
            metric: Distance::Cosine,
        };
        assert!(dbscan(e, &o).is_err());
        o.eps = 1.0;
        o.min_samples = 0;
        assert!(dbscan(e, &o).is_err());
        o.min_samples = 1;
        assert_eq!(dbscan(e, &o).unwrap().labels, vec![Some(0)]);
    }
}
