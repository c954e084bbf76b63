//! The digital family: brightness and saturation (in scikit-image's HSV), contrast, elastic
//! transform, pixelation (Pillow's BOX down, NEAREST up) and JPEG compression (libjpeg's
//! encoder and decoder, as Pillow uses them).

use rand_chacha::ChaCha8Rng;

use super::filters::{self, Border};
use super::random::uniform_in;
use super::Planes;

const BRIGHTNESS: [f64; 5] = [0.1, 0.2, 0.3, 0.4, 0.5];
const CONTRAST: [f64; 5] = [0.4, 0.3, 0.2, 0.1, 0.05];
/// Saturation scale and offset.
const SATURATE: [(f64, f64); 5] = [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)];
/// Displacement gain (the package's `250 × {0.05, …, 0.12}`).
const ELASTIC: [f64; 5] = [12.5, 16.25, 21.25, 25.0, 30.0];
const PIXELATE: [f64; 5] = [0.6, 0.5, 0.4, 0.3, 0.25];
const JPEG: [u8; 5] = [25, 18, 15, 10, 7];

/// scikit-image's `rgb2hsv` of one pixel (hue in [0,1); later channels win ties, as there).
fn rgb2hsv(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    let s = if v == 0.0 { 0.0 } else { delta / v };
    if delta == 0.0 {
        return (0.0, s, v);
    }
    let mut h = 0.0;
    if r == v {
        h = (g - b) / delta;
    }
    if g == v {
        h = 2.0 + (b - r) / delta;
    }
    if b == v {
        h = 4.0 + (r - g) / delta;
    }
    ((h / 6.0).rem_euclid(1.0), s, v)
}

/// scikit-image's `hsv2rgb` of one pixel.
fn hsv2rgb(h: f64, s: f64, v: f64) -> (f64, f64, f64) {
    let hi = (h * 6.0).floor();
    let f = h * 6.0 - hi;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    match (hi as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

fn map_hsv(mut x: Planes, f: impl Fn(f64, f64, f64) -> (f64, f64, f64)) -> Planes {
    for i in 0..x.w * x.h {
        let (h, s, v) = rgb2hsv(x.c[0][i], x.c[1][i], x.c[2][i]);
        let (h, s, v) = f(h, s, v);
        let (r, g, b) = hsv2rgb(h, s, v);
        x.c[0][i] = r;
        x.c[1][i] = g;
        x.c[2][i] = b;
    }
    x.clip01();
    x
}

pub fn brightness(x: Planes, s: usize) -> Planes {
    let c = BRIGHTNESS[s];
    map_hsv(x, |h, s, v| (h, s, (v + c).clamp(0.0, 1.0)))
}

pub fn saturate(x: Planes, s: usize) -> Planes {
    let (scale, offset) = SATURATE[s];
    map_hsv(x, |h, s, v| (h, (s * scale + offset).clamp(0.0, 1.0), v))
}

/// Shrinks each channel's deviation from its mean over the image.
pub fn contrast(mut x: Planes, s: usize) -> Planes {
    let c = CONTRAST[s];
    for p in x.c.iter_mut() {
        let mean = p.iter().sum::<f64>() / p.len() as f64;
        for v in p.iter_mut() {
            *v = ((*v - mean) * c + mean).clamp(0.0, 1.0);
        }
    }
    x
}

/// Every pixel moves by a smooth random field: uniform noise of amplitude 0.5 % of the height,
/// Gaussian-smoothed with σ = 1 % of each side (reflected border, truncated at 3σ), times the
/// severity's gain; the image is resampled bilinearly with reflected borders.
pub fn elastic(mut x: Planes, s: usize, rng: &mut ChaCha8Rng) -> Planes {
    let (w, h) = (x.w, x.h);
    let alpha = ELASTIC[s];
    let max_d = h as f64 * 0.005;
    let (sigma_y, sigma_x) = (h as f64 * 0.01, w as f64 * 0.01);
    let mut field = || -> Vec<f64> {
        let noise: Vec<f64> = (0..w * h).map(|_| uniform_in(rng, -max_d, max_d)).collect();
        filters::gaussian(&noise, w, h, sigma_y, sigma_x, 3.0, Border::Reflect)
            .into_iter()
            // The reference keeps the displacement in float32.
            .map(|v| (v * alpha) as f32 as f64)
            .collect()
    };
    let dx = field();
    let dy = field();
    for p in x.c.iter_mut() {
        let src = p.clone();
        for y in 0..h {
            for xx in 0..w {
                let i = y * w + xx;
                p[i] =
                    filters::sample_linear_reflect(&src, w, h, y as f64 + dy[i], xx as f64 + dx[i]);
            }
        }
    }
    x.clip01();
    x
}

/// Pillow's fixed-point precision for 8-bit resampling.
const PRECISION_BITS: u32 = 22;

/// Pillow's BOX-filter coefficients for one axis: a pixel counts fully when its centre lies in
/// (−½, ½] of the output pixel's footprint, and not at all otherwise.
fn box_coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 0.5 * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let taps = xmax.saturating_sub(xmin);
            let w: Vec<f64> = (0..taps)
                .map(|x| {
                    let t = (x as f64 + xmin as f64 - center + 0.5) * ss;
                    if t > -0.5 && t <= 0.5 {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&v| {
                    let v = if total != 0.0 { v / total } else { v };
                    (0.5 + v * (1u32 << PRECISION_BITS) as f64) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `resize(size, Image.BOX)` of interleaved RGB8: horizontal pass into an 8-bit
/// image, then the vertical pass.
fn resize_box(src: &[u8], w: usize, h: usize, tw: usize, th: usize) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let horiz = box_coefficients(w, tw);
    let mut mid = vec![0u8; h * tw * 3];
    for y in 0..h {
        for (xx, (xmin, k)) in horiz.iter().enumerate() {
            for c in 0..3 {
                let mut acc = half;
                for (t, &kw) in k.iter().enumerate() {
                    acc += src[(y * w + xmin + t) * 3 + c] as i64 * kw as i64;
                }
                mid[(y * tw + xx) * 3 + c] = clip8(acc);
            }
        }
    }
    let vert = box_coefficients(h, th);
    let mut out = vec![0u8; th * tw * 3];
    for (yy, (ymin, k)) in vert.iter().enumerate() {
        for x in 0..tw * 3 {
            let mut acc = half;
            for (t, &kw) in k.iter().enumerate() {
                acc += mid[(ymin + t) * tw * 3 + x] as i64 * kw as i64;
            }
            out[yy * tw * 3 + x] = clip8(acc);
        }
    }
    out
}

/// Pillow's `resize(size, Image.NEAREST)` (ImagingScaleAffine): the source position starts at
/// half a step and advances by the scale in floating point, truncated.
fn resize_nearest(src: &[u8], w: usize, h: usize, tw: usize, th: usize) -> Vec<u8> {
    let positions = |n_in: usize, n_out: usize| -> Vec<usize> {
        let step = n_in as f64 / n_out as f64;
        let mut at = step * 0.5;
        (0..n_out)
            .map(|_| {
                let i = (at as usize).min(n_in - 1);
                at += step;
                i
            })
            .collect()
    };
    let (xs, ys) = (positions(w, tw), positions(h, th));
    let mut out = Vec::with_capacity(tw * th * 3);
    for &sy in &ys {
        for &sx in &xs {
            out.extend_from_slice(&src[(sy * w + sx) * 3..(sy * w + sx) * 3 + 3]);
        }
    }
    out
}

pub fn pixelate(x: Planes, s: usize) -> Planes {
    let c = PIXELATE[s];
    let (w, h) = (x.w, x.h);
    let (sw, sh) = (
        ((w as f64 * c) as usize).max(1),
        ((h as f64 * c) as usize).max(1),
    );
    let small = resize_box(&x.to_rgb8(), w, h, sw, sh);
    Planes::from_rgb8(&resize_nearest(&small, sw, sh, w, h), w, h)
}

/// The quality to hand `mozjpeg::qtable::QTable::scaled` so that its tables equal libjpeg's
/// baseline tables (tested for every quality in the unit tests). libjpeg scales by an integer
/// percentage `sf` (`5000/q` or `200 − 2q`) and rounds half up; `scaled` multiplies by a float
/// and rounds, so ties would go either way: aiming at `sf + 0.001` sends them up and moves no
/// other value across a rounding boundary (those are at least 0.01 away).
fn scaled_quality(quality: u8) -> f32 {
    let q = quality.clamp(1, 100) as u32;
    let sf = if q < 50 { 5000 / q } else { 200 - 2 * q };
    let target = (sf as f64 + 0.001) / 100.0;
    (if target > 1.0 {
        50.0 / target
    } else {
        100.0 - 50.0 * target
    }) as f32
}

/// Encodes as Pillow's `save(…, 'JPEG', quality=q)` does (libjpeg-turbo's baseline encoder,
/// 4:2:0, islow DCT, baseline tables) and decodes as `Image.open` does.
fn jpeg_roundtrip(rgb: &[u8], w: usize, h: usize, quality: u8) -> Result<Vec<u8>, String> {
    use mozjpeg::qtable::{AnnexK_Chroma, AnnexK_Luma};
    let q = scaled_quality(quality);
    std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        // libjpeg-turbo's defaults (no trellis, no progressive scans, no deringing).
        c.set_fastest_defaults();
        c.set_size(w, h);
        c.set_luma_qtable(&AnnexK_Luma.scaled(q, q));
        c.set_chroma_qtable(&AnnexK_Chroma.scaled(q, q));
        let mut started = c.start_compress(Vec::new())?;
        started.write_scanlines(rgb)?;
        let bytes = started.finish()?;
        let d = mozjpeg::Decompress::new_mem(&bytes)?;
        let mut image = d.rgb()?;
        let pixels: Vec<[u8; 3]> = image.read_scanlines()?;
        image.finish()?;
        Ok(pixels.into_iter().flatten().collect())
    })
    .map_err(|_| "jpeg_compression: libjpeg failed".to_string())?
    .map_err(|e| format!("jpeg_compression: {e}"))
}

pub fn jpeg(x: Planes, s: usize) -> Result<Planes, String> {
    let (w, h) = (x.w, x.h);
    let out = jpeg_roundtrip(&x.to_rgb8(), w, h, JPEG[s])?;
    if out.len() != w * h * 3 {
        return Err("jpeg_compression: the decoded image has another size".into());
    }
    Ok(Planes::from_rgb8(&out, w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libjpeg's quantisation table for `quality` as `jpeg_set_quality(…, force_baseline=TRUE)`
    /// makes it (what Pillow asks for): the Annex K table scaled by `5000/q` (q < 50) or `200 − 2q`
    /// percent, rounded half up, clamped to 1..=255.
    fn libjpeg_table(base: &[u32; 64], quality: u8) -> [u32; 64] {
        let q = quality.clamp(1, 100) as u32;
        let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
        let mut out = [0u32; 64];
        for (o, &b) in out.iter_mut().zip(base) {
            *o = ((b * scale + 50) / 100).clamp(1, 255);
        }
        out
    }

    fn coeffs(t: &mozjpeg::qtable::QTable) -> Vec<u32> {
        // QTable's values are private; its Debug form lists them.
        let s = format!("{t:?}");
        s[s.find('[').unwrap() + 1..s.rfind(']').unwrap()]
            .split(", ")
            .map(|v| v.parse().unwrap())
            .collect()
    }

    #[test]
    fn mozjpeg_tables_equal_libjpeg_baseline_tables() {
        use mozjpeg::qtable::{AnnexK_Chroma, AnnexK_Luma};
        let base_l: [u32; 64] = coeffs(&AnnexK_Luma).try_into().unwrap();
        let base_c: [u32; 64] = coeffs(&AnnexK_Chroma).try_into().unwrap();
        for q in 1..=100u8 {
            let sq = scaled_quality(q);
            assert_eq!(
                coeffs(&AnnexK_Luma.scaled(sq, sq)),
                libjpeg_table(&base_l, q),
                "luma q{q}"
            );
            assert_eq!(
                coeffs(&AnnexK_Chroma.scaled(sq, sq)),
                libjpeg_table(&base_c, q),
                "chroma q{q}"
            );
        }
    }

    #[test]
    fn hsv_round_trips() {
        for &(r, g, b) in &[
            (0.2, 0.4, 0.6),
            (1.0, 0.0, 0.0),
            (0.5, 0.5, 0.5),
            (0.9, 0.9, 0.1),
            (0.0, 0.0, 0.0),
            (0.3, 0.1, 0.3),
        ] {
            let (h, s, v) = rgb2hsv(r, g, b);
            let (r2, g2, b2) = hsv2rgb(h, s, v);
            assert!((r - r2).abs() + (g - g2).abs() + (b - b2).abs() < 1e-12);
        }
    }

    #[test]
    fn box_resize_averages_whole_blocks() {
        // 4 → 2: each output is the mean of two inputs.
        let src: Vec<u8> = [10u8, 20, 30, 50].iter().flat_map(|&v| [v, v, v]).collect();
        let out = resize_box(&src, 4, 1, 2, 1);
        assert_eq!(out, [15, 15, 15, 40, 40, 40]);
        let up = resize_nearest(&[1, 1, 1, 2, 2, 2], 2, 1, 4, 1);
        assert_eq!(up.chunks(3).map(|p| p[0]).collect::<Vec<_>>(), [1, 1, 2, 2]);
    }
}
