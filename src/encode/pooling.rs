//! One vector per input from a graph output: CLIP-style exports already give `[N, D]`;
//! encoder exports (BERT, DINOv2, a ResNet's feature map) give one vector per token, patch or
//! pixel, and the study says how to pool them.
//!
//! Definitions (those of transformers and sentence-transformers):
//! - `cls`: the first token (`last_hidden_state[:, 0]`);
//! - `mean`: `Σ h·m / Σ m` over the attention mask `m` the graph was given (sentence-transformers'
//!   mean pooling), over every position when the graph takes no mask, and over H×W for a
//!   `[N, C, H, W]` feature map;
//! - `last`: the last position the mask keeps, the last position without a mask (SigLIP's text
//!   tower pools `last_hidden_state[:, -1]` of a sequence padded to its fixed length and
//!   attended whole).

use crate::config::Pooling;

/// Pools `data` (shape `shape`, `n` rows) to row-major `n × D`. `mask` is the `n × T` attention
/// mask the graph was given, `None` when it takes none (every position counts).
pub fn pool(
    shape: &[i64],
    data: &[f32],
    n: usize,
    mask: Option<&[i64]>,
    pooling: Pooling,
) -> Result<(Vec<f32>, usize), String> {
    let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    if dims.first() != Some(&n) || dims.iter().product::<usize>() != data.len() {
        return Err(format!(
            "has shape {shape:?} for {n} inputs and {} values",
            data.len()
        ));
    }
    let wants_tokens = matches!(pooling, Pooling::Cls | Pooling::Mean | Pooling::Last);
    match dims.as_slice() {
        [_, d] if *d > 0 => {
            if wants_tokens {
                return Err(format!(
                    "is already one vector per input ({shape:?}); set pooling: none"
                ));
            }
            Ok((data.to_vec(), *d))
        }
        // A CNN's globally pooled features, `[N, C, 1, 1]`.
        [_, c, 1, 1] if *c > 0 && !matches!(pooling, Pooling::Cls | Pooling::Last) => {
            Ok((data.to_vec(), *c))
        }
        [_, t, d] if *t > 0 && *d > 0 => {
            let (t, d) = (*t, *d);
            if !wants_tokens {
                return Err(format!(
                    "has one vector per token ({shape:?}); set pooling to cls, mean or last"
                ));
            }
            if let Some(m) = mask {
                if m.len() != n * t {
                    return Err(format!(
                        "has {t} positions but the attention mask {} per input",
                        m.len() / n.max(1)
                    ));
                }
            }
            let mut out = Vec::with_capacity(n * d);
            for r in 0..n {
                let rows = &data[r * t * d..(r + 1) * t * d];
                let keep = |i: usize| mask.is_none_or(|m| m[r * t + i] != 0);
                match pooling {
                    Pooling::Cls => out.extend_from_slice(&rows[..d]),
                    Pooling::Last => {
                        let i = (0..t).rev().find(|&i| keep(i)).unwrap_or(t - 1);
                        out.extend_from_slice(&rows[i * d..(i + 1) * d]);
                    }
                    _ => {
                        let mut sum = vec![0.0f64; d];
                        let mut count = 0.0f64;
                        for i in (0..t).filter(|&i| keep(i)) {
                            count += 1.0;
                            for (s, v) in sum.iter_mut().zip(&rows[i * d..(i + 1) * d]) {
                                *s += *v as f64;
                            }
                        }
                        // sentence-transformers clamps the count at 1e-9: no token, zero vector.
                        let count = count.max(1e-9);
                        out.extend(sum.iter().map(|s| (s / count) as f32));
                    }
                }
            }
            Ok((out, d))
        }
        [_, c, h, w] if *c > 0 && h * w > 0 => {
            if pooling != Pooling::Mean {
                return Err(format!(
                    "is a feature map ({shape:?}); set pooling: mean (spatial mean)"
                ));
            }
            let (c, hw) = (*c, h * w);
            let out = data
                .chunks_exact(hw)
                .map(|plane| (plane.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32)
                .collect();
            Ok((out, c))
        }
        _ => Err(format!(
            "has shape {shape:?}; expected [N, D], [N, T, D] or [N, C, H, W]"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two inputs, three positions, two values each.
    const H: [f32; 12] = [1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.];

    #[test]
    fn token_pooling_follows_the_mask() {
        let mask = [1, 1, 0, 1, 0, 0];
        let (cls, d) = pool(&[2, 3, 2], &H, 2, Some(&mask), Pooling::Cls).unwrap();
        assert_eq!((cls, d), (vec![1., 2., 7., 8.], 2));
        let (mean, _) = pool(&[2, 3, 2], &H, 2, Some(&mask), Pooling::Mean).unwrap();
        assert_eq!(mean, vec![2., 3., 7., 8.]);
        let (last, _) = pool(&[2, 3, 2], &H, 2, Some(&mask), Pooling::Last).unwrap();
        assert_eq!(last, vec![3., 4., 7., 8.]);
        // Without a mask every position counts: SigLIP's last position.
        let (last, _) = pool(&[2, 3, 2], &H, 2, None, Pooling::Last).unwrap();
        assert_eq!(last, vec![5., 6., 11., 12.]);
        let (mean, _) = pool(&[2, 3, 2], &H, 2, None, Pooling::Mean).unwrap();
        assert_eq!(mean, vec![3., 4., 9., 10.]);
    }

    #[test]
    fn shapes_and_poolings_must_agree() {
        assert!(pool(&[2, 3, 2], &H, 2, None, Pooling::None)
            .unwrap_err()
            .contains("set pooling"));
        assert!(pool(&[2, 6], &H, 2, None, Pooling::Mean)
            .unwrap_err()
            .contains("pooling: none"));
        assert_eq!(
            pool(&[2, 6], &H, 2, None, Pooling::PoolerOutput).unwrap().1,
            6
        );
        assert_eq!(
            pool(&[2, 6, 1, 1], &H, 2, None, Pooling::None).unwrap().1,
            6
        );
        let (m, c) = pool(&[2, 2, 1, 3], &H, 2, None, Pooling::Mean).unwrap();
        assert_eq!((m, c), (vec![2., 5., 8., 11.], 2));
        assert!(pool(&[2, 2, 1, 3], &H, 2, None, Pooling::Cls).is_err());
        assert!(pool(&[3, 2, 2], &H, 2, None, Pooling::Cls).is_err());
        assert!(pool(&[2, 3, 2], &H, 2, Some(&[1, 1]), Pooling::Mean).is_err());
        assert!(pool(&[2, 1, 2, 3], &H, 2, None, Pooling::Mean).is_ok());
        assert!(pool(&[12], &H, 12, None, Pooling::None).is_err());
    }
}
