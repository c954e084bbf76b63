//! The distributions the corruptions draw from, written out (as `kernels::standard_normal` is)
//! so that a corrupted image stays the same across `rand` upgrades.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Uniform in [0, 1).
pub fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    rng.random::<f64>()
}

/// Uniform in [lo, hi), numpy's `uniform(lo, hi)`.
pub fn uniform_in(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * uniform(rng)
}

/// An integer in [lo, hi), numpy's `randint(lo, hi)`.
pub fn int_in(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    debug_assert!(lo < hi);
    lo + (uniform(rng) * (hi - lo) as f64)
        .floor()
        .min((hi - lo - 1) as f64) as i64
}

/// A standard normal draw (Box–Muller, one value per pair of uniforms).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - uniform(rng); // (0, 1]
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Poisson draw with mean `lambda` by inversion of the distribution function. Shot noise
/// needs λ ≤ 60, so the O(λ) search is cheap, exact, and e^{-λ} stays far from underflow.
pub fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let u = uniform(rng);
    let mut k = 0u32;
    let mut p = (-lambda).exp();
    let mut cdf = p;
    // The bound keeps a rounding shortfall of the summed CDF (< 1e-12) from looping forever.
    let limit = (lambda + 40.0 * lambda.sqrt() + 40.0) as u32;
    while u >= cdf && k < limit {
        k += 1;
        p *= lambda / k as f64;
        cdf += p;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::seeded_rng;

    #[test]
    fn moments_are_right() {
        let mut rng = seeded_rng(0, &["moments"]);
        let n = 40_000;
        for lambda in [0.3, 3.0, 25.0, 60.0] {
            let draws: Vec<f64> = (0..n).map(|_| poisson(&mut rng, lambda) as f64).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64;
            assert!((mean - lambda).abs() < 4.0 * (lambda / n as f64).sqrt() + 1e-9);
            assert!((var / lambda - 1.0).abs() < 0.05, "{lambda}: var {var}");
        }
        let z: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03);
        let mut seen = [0usize; 4];
        for _ in 0..n {
            let k = int_in(&mut rng, -2, 2);
            seen[(k + 2) as usize] += 1;
        }
        assert!(seen
            .iter()
            .all(|&c| (c as f64 / n as f64 - 0.25).abs() < 0.02));
    }
}
