//! Frost: a random crop of a photograph of frost, blended over the image.
//!
//! clipflow does not ship the photographs (see the module docs of `corruptions`): a study
//! points at a folder holding ImageNet-C's `frost1.png`, `frost2.png`, `frost3.png`,
//! `frost4.jpg`, `frost5.jpg` (and `frost6.jpg`, which the reference lists but never draws),
//! for instance the `frost/` folder the `imagecorruptions` package installs.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;

use super::random::int_in;
use super::Planes;

/// Weight of the image and of the frost.
const FROST: [(f64, f64); 5] = [(1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)];

/// The files the reference draws from (`np.random.randint(5)`: the first five).
pub const FILES: [&str; 5] = [
    "frost1.png",
    "frost2.png",
    "frost3.png",
    "frost4.jpg",
    "frost5.jpg",
];

/// One decoded frost photograph, RGB8.
#[derive(Debug, Clone)]
struct Texture {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

/// The five frost photographs, decoded once per study.
#[derive(Debug, Clone)]
pub struct FrostTextures {
    pub dir: PathBuf,
    textures: Vec<Texture>,
}

/// Two sets are the same when they were read from the same folder.
impl PartialEq for FrostTextures {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}

/// Textures larger than this are refused (the reference's are at most 900×600).
const MAX_TEXTURE_PIXELS: u64 = 16 * 1024 * 1024;

impl FrostTextures {
    /// Reads `frost1.png` … `frost5.jpg` from `dir`; an error names the missing or unreadable
    /// file.
    pub fn load(dir: &Path) -> Result<FrostTextures, String> {
        let mut textures = Vec::new();
        for name in FILES {
            let path = dir.join(name);
            let reader = image::ImageReader::open(&path)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let (w, h) = reader
                .into_dimensions()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if w as u64 * h as u64 > MAX_TEXTURE_PIXELS {
                return Err(format!(
                    "{}: {w}x{h} is too large for a texture",
                    path.display()
                ));
            }
            // Alpha is dropped, not composited, as OpenCV's imread does.
            let img = image::ImageReader::open(&path)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| format!("{}: {e}", path.display()))?
                .decode()
                .map_err(|e| format!("{}: {e}", path.display()))?
                .to_rgb8();
            textures.push(Texture {
                w: img.width() as usize,
                h: img.height() as usize,
                rgb: img.into_raw(),
            });
        }
        Ok(FrostTextures {
            dir: dir.to_path_buf(),
            textures,
        })
    }

    pub(super) fn apply(
        &self,
        mut x: Planes,
        s: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Planes, String> {
        let (keep, add) = FROST[s];
        let t = &self.textures[int_in(rng, 0, self.textures.len() as i64) as usize];
        let (w, h) = (x.w, x.h);
        // Scaled so that it covers the image with 10 % to spare, as the reference does.
        let mut factor: f64 = 1.0;
        if t.h < h || t.w < w {
            factor = if t.h < h && t.w >= w {
                h as f64 / t.h as f64
            } else if t.h >= h && t.w < w {
                w as f64 / t.w as f64
            } else {
                (h as f64 / t.h as f64).max(w as f64 / t.w as f64)
            };
        }
        factor *= 1.1;
        let nw = (t.w as f64 * factor).ceil() as usize;
        let nh = (t.h as f64 * factor).ceil() as usize;
        if nw <= w || nh <= h {
            return Err("frost: texture smaller than the image".into());
        }
        let scaled = resize_cubic(&t.rgb, t.w, t.h, nw, nh);
        let top = int_in(rng, 0, (nh - h) as i64) as usize;
        let left = int_in(rng, 0, (nw - w) as i64) as usize;
        for y in 0..h {
            for xx in 0..w {
                let i = y * w + xx;
                let src = ((top + y) * nw + left + xx) * 3;
                for c in 0..3 {
                    let frost = scaled[src + c] as f64 / 255.0;
                    x.c[c][i] = (keep * x.c[c][i] + add * frost).clamp(0.0, 1.0);
                }
            }
        }
        Ok(x)
    }
}

/// OpenCV's `resize(…, INTER_CUBIC)` of RGB8: Keys' cubic with a = −0.75, pixel centres
/// aligned (`(dst + ½)·scale − ½`), edges repeated, rounded to 8 bits.
fn resize_cubic(src: &[u8], w: usize, h: usize, tw: usize, th: usize) -> Vec<u8> {
    const A: f64 = -0.75;
    let weights = |t: f64| -> [f64; 4] {
        let k = |x: f64| {
            let x = x.abs();
            if x <= 1.0 {
                ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
            } else {
                0.0
            }
        };
        [k(t + 1.0), k(t), k(1.0 - t), k(2.0 - t)]
    };
    let taps = |n_in: usize, n_out: usize| -> Vec<(isize, [f64; 4])> {
        let scale = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|o| {
                let f = (o as f64 + 0.5) * scale - 0.5;
                let i = f.floor();
                (i as isize, weights(f - i))
            })
            .collect()
    };
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let (xt, yt) = (taps(w, tw), taps(h, th));
    let mut mid = vec![0.0f64; h * tw * 3];
    for y in 0..h {
        for (xo, (i, k)) in xt.iter().enumerate() {
            for c in 0..3 {
                let mut acc = 0.0;
                for (d, kv) in k.iter().enumerate() {
                    acc += kv * src[(y * w + clamp(i - 1 + d as isize, w)) * 3 + c] as f64;
                }
                mid[(y * tw + xo) * 3 + c] = acc;
            }
        }
    }
    let mut out = vec![0u8; th * tw * 3];
    for (yo, (i, k)) in yt.iter().enumerate() {
        for x in 0..tw * 3 {
            let mut acc = 0.0;
            for (d, kv) in k.iter().enumerate() {
                acc += kv * mid[clamp(i - 1 + d as isize, h) * tw * 3 + x];
            }
            out[yo * tw * 3 + x] = acc.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_resize_keeps_flat_images_flat() {
        let src = vec![123u8; 10 * 8 * 3];
        let out = resize_cubic(&src, 10, 8, 11, 9);
        assert!(out.iter().all(|&v| v == 123));
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = FrostTextures::load(dir.path()).unwrap_err();
        assert!(e.contains("frost1.png"), "{e}");
    }

    #[test]
    fn frost_blends_a_crop_of_the_texture() {
        let dir = tempfile::tempdir().unwrap();
        for (k, name) in FILES.iter().enumerate() {
            let img = image::RgbImage::from_fn(60 + k as u32, 50, |x, y| {
                image::Rgb([200, (x * 3) as u8, (y * 4) as u8])
            });
            img.save(dir.path().join(name)).unwrap();
        }
        let t = FrostTextures::load(dir.path()).unwrap();
        let x = Planes {
            w: 40,
            h: 40,
            c: [vec![0.5; 1600], vec![0.5; 1600], vec![0.5; 1600]],
        };
        let out = t
            .apply(x, 4, &mut crate::util::seeded_rng(0, &["f"]))
            .unwrap();
        // Red: 0.6·0.5 + 0.75·200/255 (JPEG textures are within a few levels of 200).
        let want = 0.6 * 0.5 + 0.75 * 200.0 / 255.0;
        assert!(out.c[0].iter().all(|v| (v - want).abs() < 0.05));
    }
}
