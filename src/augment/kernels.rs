//! The arithmetic of each noise kind.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::PixelImage;

/// A standard normal draw by Box–Muller. Written out rather than taken from rand_distr so that
/// the stream, and so every noisy embedding, stays the same across crate upgrades.
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Separable Gaussian blur, kernel radius ⌈3σ⌉, edges mirrored (no darkening at borders).
pub fn gaussian_blur(img: &mut PixelImage, sigma: f32) {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|x| (-(x * x) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.into_iter().map(|w| w / total).collect();
    let (w, h) = (img.width as isize, img.height as isize);
    let mirror = |i: isize, n: isize| -> usize {
        if n == 1 {
            return 0;
        }
        let period = 2 * (n - 1);
        let m = i.rem_euclid(period);
        (if m < n { m } else { period - m }) as usize
    };
    let mut tmp = vec![0.0f32; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0.0;
                for (k, wt) in weights.iter().enumerate() {
                    let sx = mirror(x + k as isize - radius, w);
                    acc += wt * img.data[(y as usize * w as usize + sx) * 3 + c];
                }
                tmp[(y as usize * w as usize + x as usize) * 3 + c] = acc;
            }
        }
    }
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut acc = 0.0;
                for (k, wt) in weights.iter().enumerate() {
                    let sy = mirror(y + k as isize - radius, h);
                    acc += wt * tmp[(sy * w as usize + x as usize) * 3 + c];
                }
                img.data[(y as usize * w as usize + x as usize) * 3 + c] = acc;
            }
        }
    }
}

/// Quantises to 8 bits, encodes as JPEG at `quality`, decodes back.
pub fn jpeg_roundtrip(img: &mut PixelImage, quality: u8) -> Result<(), String> {
    let bytes: Vec<u8> = img
        .data
        .iter()
        .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    let mut encoded = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, quality)
        .encode(
            &bytes,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| format!("jpeg encode: {e}"))?;
    let decoded = image::load_from_memory_with_format(&encoded, image::ImageFormat::Jpeg)
        .map_err(|e| format!("jpeg decode: {e}"))?
        .to_rgb8();
    for (dst, src) in img.data.iter_mut().zip(decoded.as_raw()) {
        *dst = *src as f32 / 255.0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_flat_images_flat_and_smooths_an_edge() {
        let mut flat = PixelImage {
            width: 9,
            height: 7,
            data: vec![0.25; 9 * 7 * 3],
        };
        gaussian_blur(&mut flat, 1.5);
        assert!(flat.data.iter().all(|v| (v - 0.25).abs() < 1e-6));
        let mut edge = PixelImage {
            width: 10,
            height: 1,
            data: (0..30).map(|i| if i / 3 < 5 { 0.0 } else { 1.0 }).collect(),
        };
        gaussian_blur(&mut edge, 1.0);
        assert!(edge.data[4 * 3] > 0.1 && edge.data[5 * 3] < 0.9);
    }

    #[test]
    fn jpeg_low_quality_changes_more_than_high_quality() {
        let make = || PixelImage {
            width: 32,
            height: 32,
            data: (0..32 * 32 * 3)
                .map(|i| ((i * 37) % 255) as f32 / 255.0)
                .collect(),
        };
        let base = make();
        let err = |q| {
            let mut img = make();
            jpeg_roundtrip(&mut img, q).unwrap();
            img.data
                .iter()
                .zip(&base.data)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
        };
        assert!(err(10) > err(95));
    }
}
