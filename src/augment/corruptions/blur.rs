//! The blur family: defocus (an anti-aliased disk), glass (blur, local pixel shuffling, blur),
//! motion (a one-sided Gaussian along a random direction), zoom (the average of centred
//! zooms) and plain Gaussian blur.

use rand_chacha::ChaCha8Rng;

use super::filters::{self, Border};
use super::random::{int_in, uniform_in};
use super::Planes;

/// Disk radius and the σ of the Gaussian that anti-aliases it.
const DEFOCUS: [(f64, f64); 5] = [(3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5)];
/// Blur σ, largest pixel displacement, shuffling rounds.
const GLASS: [(f64, i64, usize); 5] = [
    (0.7, 1, 2),
    (0.9, 2, 1),
    (1.0, 2, 3),
    (1.1, 3, 2),
    (1.5, 4, 2),
];
/// Kernel radius and σ of the one-sided Gaussian.
const MOTION: [(usize, f64); 5] = [(10, 3.0), (15, 5.0), (15, 8.0), (15, 12.0), (20, 15.0)];
/// Zoom factors: numpy's `arange(1, stop, step)` as (count, step); numpy computes the i-th
/// value as `1 + i·((1 + step) − 1)`, and the floating-point stop lets one more factor in at
/// severity 1 (1.00 … 1.11).
const ZOOM: [(usize, f64); 5] = [(12, 0.01), (16, 0.01), (11, 0.02), (13, 0.02), (11, 0.03)];
const GAUSSIAN: [f64; 5] = [1.0, 2.0, 3.0, 4.0, 6.0];

/// The anti-aliased disk kernel: a disk of `radius` on a grid of at least 17×17, normalised,
/// then blurred by OpenCV's `GaussianBlur` (3×3, or 5×5 for radii above 8, `REFLECT_101`).
fn disk(radius: f64, alias_blur: f64) -> (Vec<f64>, usize) {
    let (half, ksize) = if radius <= 8.0 {
        (8isize, 3usize)
    } else {
        (radius as isize, 5usize)
    };
    let n = (2 * half + 1) as usize;
    let mut d: Vec<f64> = Vec::with_capacity(n * n);
    for y in -half..=half {
        for x in -half..=half {
            d.push(if ((x * x + y * y) as f64) <= radius * radius {
                1.0
            } else {
                0.0
            });
        }
    }
    let total: f64 = d.iter().sum();
    d.iter_mut().for_each(|v| *v /= total);
    // OpenCV's getGaussianKernel for σ > 0: exp(-(i - (k-1)/2)² / 2σ²), normalised.
    let g: Vec<f64> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize as f64 - 1.0) * 0.5;
            (-0.5 / (alias_blur * alias_blur) * x * x).exp()
        })
        .collect();
    let gs: f64 = g.iter().sum();
    let g: Vec<f64> = g.into_iter().map(|v| v / gs).collect();
    let d = filters::correlate1d(&d, n, n, &g, true, Border::Reflect101);
    let d = filters::correlate1d(&d, n, n, &g, false, Border::Reflect101);
    (d, n)
}

pub fn defocus(mut x: Planes, s: usize) -> Planes {
    let (radius, alias) = DEFOCUS[s];
    let (kernel, k) = disk(radius, alias);
    for p in x.c.iter_mut() {
        *p = filters::correlate2d(p, x.w, x.h, &kernel, k, Border::Reflect101);
    }
    x.clip01();
    x
}

pub fn glass(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (sigma, delta, rounds) = GLASS[s];
    let (w, h) = (x.w, x.h);
    // Blurred, then truncated to 8 bits as the reference's np.uint8 does.
    let mut px: Vec<[u8; 3]> = vec![[0; 3]; w * h];
    for (c, plane) in x.c.iter().enumerate() {
        let b = filters::skimage_gaussian(plane, w, h, sigma);
        for (p, v) in px.iter_mut().zip(b) {
            p[c] = (v * 255.0).clamp(0.0, 255.0) as u8;
        }
    }
    // The reference's tuple "swap" of numpy views copies the neighbour into the pixel and
    // leaves the neighbour as it was; that copy is what ImageNet-C measured.
    let (hi, wi) = (h as i64, w as i64);
    for _ in 0..rounds {
        let mut yy = hi - delta;
        while yy > delta {
            let mut xx = wi - delta;
            while xx > delta {
                let dx = int_in(rng, -delta, delta);
                let dy = int_in(rng, -delta, delta);
                let src = ((yy + dy) * wi + xx + dx) as usize;
                px[(yy * wi + xx) as usize] = px[src];
                xx -= 1;
            }
            yy -= 1;
        }
    }
    for c in 0..3 {
        let plane: Vec<f64> = px.iter().map(|p| p[c] as f64 / 255.0).collect();
        x.c[c] = filters::skimage_gaussian(&plane, w, h, sigma);
    }
    x.clip01();
    x
}

pub fn motion(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (radius, sigma) = MOTION[s];
    let angle = uniform_in(rng, -45.0, 45.0);
    filters::motion_blur(&mut x.c, x.w, x.h, radius, sigma, angle);
    x.clip01();
    x
}

pub fn zoom(mut x: Planes, s: usize) -> Planes {
    let (count, step) = ZOOM[s];
    let delta = (1.0 + step) - 1.0;
    let (w, h) = (x.w, x.h);
    for p in x.c.iter_mut() {
        let mut acc = p.clone();
        for i in 0..count {
            let z = 1.0 + i as f64 * delta;
            let (zoomed, zw, _) = filters::clipped_zoom(p, w, h, z);
            for y in 0..h {
                for (a, v) in acc[y * w..(y + 1) * w]
                    .iter_mut()
                    .zip(&zoomed[y * zw..y * zw + w])
                {
                    *a += v;
                }
            }
        }
        for v in acc.iter_mut() {
            *v /= (count + 1) as f64;
        }
        *p = acc;
    }
    x.clip01();
    x
}

pub fn gaussian(mut x: Planes, s: usize) -> Planes {
    for p in x.c.iter_mut() {
        *p = filters::skimage_gaussian(p, x.w, x.h, GAUSSIAN[s]);
    }
    x.clip01();
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_kernels_are_normalised_and_round() {
        for (r, a) in DEFOCUS {
            let (k, n) = disk(r, a);
            assert_eq!(n, if r <= 8.0 { 17 } else { 21 });
            // The anti-aliasing blur reflects at the grid's edge, which the largest disks
            // touch, so the sum is one only up to that leak (as in the reference).
            assert!((k.iter().sum::<f64>() - 1.0).abs() < 0.02);
            let c = n / 2;
            assert!((k[c * n] - k[c]).abs() < 1e-15); // symmetric
            assert!(k[c * n + c] > k[0]);
        }
    }
}
