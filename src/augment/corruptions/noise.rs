//! The noise family: Gaussian, shot (Poisson), impulse (salt and pepper per channel value) and
//! speckle (multiplicative Gaussian) noise, each clipped to [0,1].

use rand_chacha::ChaCha8Rng;

use super::random::{normal, poisson, uniform};
use super::Planes;

const GAUSSIAN: [f64; 5] = [0.08, 0.12, 0.18, 0.26, 0.38];
/// Photons per unit intensity: fewer photons, more noise.
const SHOT: [f64; 5] = [60.0, 25.0, 12.0, 5.0, 3.0];
const IMPULSE: [f64; 5] = [0.03, 0.06, 0.09, 0.17, 0.27];
const SPECKLE: [f64; 5] = [0.15, 0.2, 0.35, 0.45, 0.6];

/// Visits every value in the reference's (row, column, channel) order.
fn each_value(x: &mut Planes, mut f: impl FnMut(f64) -> f64) {
    let n = x.w * x.h;
    for i in 0..n {
        for c in 0..3 {
            x.c[c][i] = f(x.c[c][i]);
        }
    }
}

pub fn gaussian(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let sd = GAUSSIAN[s];
    each_value(&mut x, |v| (v + sd * normal(rng)).clamp(0.0, 1.0));
    x
}

pub fn shot(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let c = SHOT[s];
    each_value(&mut x, |v| (poisson(rng, v * c) as f64 / c).clamp(0.0, 1.0));
    x
}

pub fn impulse(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let amount = IMPULSE[s];
    each_value(&mut x, |v| {
        let flipped = uniform(rng) < amount;
        let salt = uniform(rng) < 0.5;
        match (flipped, salt) {
            (true, true) => 1.0,
            (true, false) => 0.0,
            _ => v,
        }
    });
    x
}

pub fn speckle(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let sd = SPECKLE[s];
    each_value(&mut x, |v| (v + v * sd * normal(rng)).clamp(0.0, 1.0));
    x
}
