//! The weather family (snow, fog) and the held-out spatter (water drops or mud).

use rand_chacha::ChaCha8Rng;

use super::edges;
use super::filters::{self, box3};
use super::random::{normal, uniform_in};
use super::Planes;

/// Snow: layer mean and sd, zoom, threshold, motion radius and σ, how much of the image is
/// kept (the rest whitened towards `1.5·gray + 0.5`).
const SNOW: [(f64, f64, f64, f64, usize, f64, f64); 5] = [
    (0.1, 0.3, 3.0, 0.5, 10, 4.0, 0.8),
    (0.2, 0.3, 2.0, 0.5, 12, 4.0, 0.7),
    (0.55, 0.3, 4.0, 0.9, 12, 8.0, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8.0, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12.0, 0.55),
];
/// Fog: strength, and how fast the fractal's roughness decays per octave.
const FOG: [(f64, f64); 5] = [(1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)];
/// Spatter: liquid mean, sd, blur σ, threshold, strength (or mud blur σ), mud (1) or water (0).
const SPATTER: [(f64, f64, f64, f64, f64, u8); 5] = [
    (0.65, 0.3, 4.0, 0.69, 0.6, 0),
    (0.65, 0.3, 3.0, 0.68, 0.6, 0),
    (0.65, 0.3, 2.0, 0.68, 0.5, 0),
    (0.65, 0.3, 1.0, 0.65, 1.5, 1),
    (0.67, 0.4, 1.0, 0.65, 1.5, 1),
];

/// OpenCV's `RGB2GRAY` weights.
fn gray(x: &Planes, i: usize) -> f64 {
    0.299 * x.c[0][i] + 0.587 * x.c[1][i] + 0.114 * x.c[2][i]
}

pub fn snow(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (mean, sd, zoom, threshold, radius, sigma, keep) = SNOW[s];
    let (w, h) = (x.w, x.h);
    let layer: Vec<f64> = (0..w * h).map(|_| mean + sd * normal(rng)).collect();
    let (mut layer, lw, lh) = filters::clipped_zoom(&layer, w, h, zoom);
    for v in layer.iter_mut() {
        *v = if *v < threshold { 0.0 } else { v.min(1.0) };
    }
    // Blurred at the zoomed size, then cropped to the image (the reference's order).
    let angle = uniform_in(rng, -135.0, -45.0);
    let mut planes = [layer];
    filters::motion_blur(&mut planes, lw, lh, radius, sigma, angle);
    let [layer] = planes;
    let snow: Vec<f64> = (0..w * h)
        .map(|i| {
            let (y, xx) = (i / w, i % w);
            filters::round_half_even(layer[y * lw + xx] * 255.0) / 255.0
        })
        .collect();
    for i in 0..w * h {
        let whitened = gray(&x, i) * 1.5 + 0.5;
        let flake = snow[i] + snow[w * h - 1 - i]; // the layer and its 180° rotation
        for c in 0..3 {
            let v = x.c[c][i];
            x.c[c][i] = (keep * v + (1.0 - keep) * v.max(whitened) + flake).clamp(0.0, 1.0);
        }
    }
    x
}

/// The diamond-square height map of the reference (`mapsize` a power of two), with its
/// definition kept: the random offset at each level is `wibble · U(−wibble, wibble)`, the map
/// wraps around, and the result is scaled to [0, 1].
pub fn plasma_fractal(mapsize: usize, decay: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = mapsize;
    let mut m = vec![0.0f64; n * n];
    let mut step = n;
    let mut wibble = 100.0f64;
    let idx = |y: usize, x: usize| (y % n) * n + (x % n);
    while step >= 2 {
        let half = step / 2;
        let cells = n / step;
        let jitter =
            |avg: f64, rng: &mut ChaCha8Rng| avg / 4.0 + wibble * uniform_in(rng, -wibble, wibble);
        // Squares: each centre from its four corners.
        let mut centres = vec![0.0; cells * cells];
        for i in 0..cells {
            for j in 0..cells {
                let (y, x) = (i * step, j * step);
                let sum = m[idx(y, x)]
                    + m[idx(y + step, x)]
                    + m[idx(y, x + step)]
                    + m[idx(y + step, x + step)];
                centres[i * cells + j] = jitter(sum, rng);
            }
        }
        for i in 0..cells {
            for j in 0..cells {
                m[idx(i * step + half, j * step + half)] = centres[i * cells + j];
            }
        }
        // Diamonds on the corner rows: left/right corners, centres above and below.
        let mut top = vec![0.0; cells * cells];
        for i in 0..cells {
            for j in 0..cells {
                let (y, x) = (i * step, j * step + half);
                let above = m[idx((y + n - half) % n, x)];
                let below = m[idx(y + half, x)];
                let sum = above + below + m[idx(y, x - half)] + m[idx(y, x + half)];
                top[i * cells + j] = jitter(sum, rng);
            }
        }
        // Diamonds on the corner columns: corners above/below, centres left and right.
        let mut left = vec![0.0; cells * cells];
        for i in 0..cells {
            for j in 0..cells {
                let (y, x) = (i * step + half, j * step);
                let before = m[idx(y, (x + n - half) % n)];
                let after = m[idx(y, x + half)];
                let sum = before + after + m[idx(y - half, x)] + m[idx(y + half, x)];
                left[i * cells + j] = jitter(sum, rng);
            }
        }
        for i in 0..cells {
            for j in 0..cells {
                m[idx(i * step, j * step + half)] = top[i * cells + j];
                m[idx(i * step + half, j * step)] = left[i * cells + j];
            }
        }
        step /= 2;
        wibble /= decay;
    }
    let min = m.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = m.iter().map(|v| v - min).fold(0.0, f64::max);
    m.iter()
        .map(|v| if max > 0.0 { (v - min) / max } else { 0.0 })
        .collect()
}

pub fn fog(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (strength, decay) = FOG[s];
    let (w, h) = (x.w, x.h);
    let mapsize = w.max(h).max(3).next_power_of_two();
    let map = plasma_fractal(mapsize, decay, rng);
    let max_val =
        x.c.iter()
            .flat_map(|p| p.iter())
            .cloned()
            .fold(0.0, f64::max);
    let gain = max_val / (max_val + strength);
    for p in x.c.iter_mut() {
        for y in 0..h {
            for xx in 0..w {
                let v = &mut p[y * w + xx];
                *v = ((*v + strength * map[y * mapsize + xx]) * gain).clamp(0.0, 1.0);
            }
        }
    }
    x
}

pub fn spatter(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (mean, sd, sigma, threshold, strength, mud) = SPATTER[s];
    let (w, h) = (x.w, x.h);
    let noise: Vec<f64> = (0..w * h).map(|_| mean + sd * normal(rng)).collect();
    let mut liquid = filters::skimage_gaussian(&noise, w, h, sigma);
    for v in liquid.iter_mut() {
        if *v < threshold {
            *v = 0.0;
        }
    }
    if mud == 0 {
        // Water: drops drawn from the edges of the liquid layer, tinted pale turquoise.
        let l8: Vec<u8> = liquid
            .iter()
            .map(|v| (v * 255.0).clamp(0.0, 255.0) as u8)
            .collect();
        let edges = edges::canny(&l8, w, h, 50, 150);
        let inverted: Vec<u8> = edges.iter().map(|e| 255 - e).collect();
        let dist: Vec<f64> = edges::distance_transform(&inverted, w, h)
            .into_iter()
            .map(|d| d.min(20.0))
            .collect();
        let dist: Vec<u8> = box3(&dist, w, h)
            .into_iter()
            .map(|v| v.clamp(0.0, 255.0) as u8)
            .collect();
        let dist = edges::equalize_hist(&dist);
        let ker = [-2.0, -1.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0, 2.0];
        let dist = edges::filter_u8(&dist, w, h, &ker, 3);
        let dist = edges::filter_u8(&dist, w, h, &[1.0 / 9.0; 9], 3);
        let mut m: Vec<f64> = l8
            .iter()
            .zip(&dist)
            .map(|(&l, &d)| l as f64 * d as f64)
            .collect();
        let peak = m.iter().cloned().fold(0.0, f64::max);
        // The reference divides by the peak; with no drop at all it would divide by zero
        // (NaN): here the image is left as it is.
        if peak > 0.0 {
            m.iter_mut().for_each(|v| *v = *v / peak * strength);
        } else {
            m.iter_mut().for_each(|v| *v = 0.0);
        }
        let colour = [175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0];
        for (c, p) in x.c.iter_mut().enumerate() {
            for (v, mv) in p.iter_mut().zip(&m) {
                *v = (*v + mv * colour[c]).clamp(0.0, 1.0);
            }
        }
    } else {
        // Mud: where the liquid passes the threshold, blurred, kept where it is dense.
        let mask: Vec<f64> = liquid
            .iter()
            .map(|&v| if v > threshold { 1.0 } else { 0.0 })
            .collect();
        let mut m = filters::skimage_gaussian(&mask, w, h, strength);
        m.iter_mut().for_each(|v| {
            if *v < 0.8 {
                *v = 0.0
            }
        });
        let colour = [63.0 / 255.0, 42.0 / 255.0, 20.0 / 255.0];
        for (c, p) in x.c.iter_mut().enumerate() {
            for (v, mv) in p.iter_mut().zip(&m) {
                *v = (*v * (1.0 - mv) + colour[c] * mv).clamp(0.0, 1.0);
            }
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::seeded_rng;

    #[test]
    fn plasma_spans_zero_to_one_and_is_smooth() {
        let map = plasma_fractal(64, 2.0, &mut seeded_rng(0, &["p"]));
        assert_eq!(map.len(), 64 * 64);
        let (lo, hi) = map
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((lo, hi), (0.0, 1.0));
        // Neighbours differ far less than the full range.
        let mean_step = (0..63 * 64)
            .map(|i| (map[i] - map[i + 64]).abs())
            .sum::<f64>()
            / (63.0 * 64.0);
        assert!(mean_step < 0.1, "{mean_step}");
    }
}
