//! Augment stage: seeded, reproducible noise variants of each image.
//!
//! Noise is applied at the model's input resolution, after resize and crop: a σ then means the
//! same thing for a 4000-pixel photo and a 64-pixel icon, which is what robustness tables
//! compare. (Noise added before the resize would be averaged away by downscaling, more so for
//! larger originals.) Pixel-space kinds work on the [0,1] image; `units: normalized` Gaussian
//! noise works on the mean/std-normalised tensor the model receives.
//!
//! Every variant of every item draws from its own random stream, seeded by (study seed, item
//! id, variant name), so results never depend on batch size, thread count or order.

mod kernels;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::{NoiseConfig, NoiseKind, NoiseUnits};
use crate::util::seeded_rng;

/// The name of the variant without noise; always present, always first.
pub const CLEAN: &str = "clean";

/// An image at the model's input size, RGB, interleaved, values in [0,1].
#[derive(Debug, Clone, PartialEq)]
pub struct PixelImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

/// One noise at one level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    Gaussian { sigma: f32, units: NoiseUnits },
    SaltPepper { amount: f32 },
    Blur { sigma: f32 },
    Jpeg { quality: u8 },
}

/// A named variant: `clean`, `gaussian-0.1`, `gaussian_norm-0.5`, `salt_pepper-0.05`,
/// `blur-1.5`, `jpeg-30`.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    pub noise: Option<Noise>,
    /// The level as written in the config (σ, amount or quality; 0 for clean).
    pub level: f64,
}

impl Variant {
    /// The family, for the store's `noise` column (`none` for clean).
    pub fn kind(&self) -> &'static str {
        match self.noise {
            None => "none",
            Some(Noise::Gaussian {
                units: NoiseUnits::Pixel,
                ..
            }) => "gaussian",
            Some(Noise::Gaussian {
                units: NoiseUnits::Normalized,
                ..
            }) => "gaussian_norm",
            Some(Noise::SaltPepper { .. }) => "salt_pepper",
            Some(Noise::Blur { .. }) => "blur",
            Some(Noise::Jpeg { .. }) => "jpeg",
        }
    }

    /// The level, for the store's `noise_level` column (0 for clean).
    pub fn level(&self) -> f64 {
        self.level
    }
}

/// A noise section that cannot be turned into variants; names the YAML key.
#[derive(Debug, thiserror::Error)]
#[error("noise.{index}.{key}: {message}")]
pub struct AugmentError {
    pub index: usize,
    pub key: &'static str,
    pub message: String,
}

/// The variants a `noise:` section asks for, `clean` first, in config order.
pub fn variants(config: &[NoiseConfig]) -> Result<Vec<Variant>, AugmentError> {
    let mut out = vec![Variant {
        name: CLEAN.to_string(),
        noise: None,
        level: 0.0,
    }];
    for (index, n) in config.iter().enumerate() {
        let err = |key: &'static str, message: String| AugmentError {
            index,
            key,
            message,
        };
        let allowed: &[&str] = match n.kind {
            NoiseKind::Gaussian => &["sigma", "units"],
            NoiseKind::SaltPepper => &["amount"],
            NoiseKind::Blur => &["sigma"],
            NoiseKind::Jpeg => &["quality"],
        };
        for (key, present) in [
            ("sigma", n.sigma.is_some()),
            ("units", n.units.is_some()),
            ("amount", n.amount.is_some()),
            ("quality", n.quality.is_some()),
        ] {
            if present && !allowed.contains(&key) {
                return Err(err(
                    key,
                    format!(
                        "does not apply to kind {:?}; it takes {}",
                        n.kind,
                        allowed.join(", ")
                    ),
                ));
            }
        }
        let levels = |key: &'static str, v: &Option<crate::config::Levels>| {
            let levels = v
                .as_ref()
                .map(|l| l.to_vec())
                .ok_or_else(|| err(key, "is required for this kind".into()))?;
            if levels.is_empty() {
                return Err(err(key, "needs at least one level".into()));
            }
            Ok(levels)
        };
        let noises: Vec<(Noise, f64)> = match n.kind {
            NoiseKind::Gaussian => {
                let units = n.units.unwrap_or_default();
                levels("sigma", &n.sigma)?
                    .into_iter()
                    .map(|s| {
                        if !(s.is_finite() && s >= 0.0) {
                            return Err(err("sigma", format!("{s} is not a σ ≥ 0")));
                        }
                        Ok((
                            Noise::Gaussian {
                                sigma: s as f32,
                                units,
                            },
                            s,
                        ))
                    })
                    .collect::<Result<_, _>>()?
            }
            NoiseKind::SaltPepper => levels("amount", &n.amount)?
                .into_iter()
                .map(|a| {
                    if !(0.0..=1.0).contains(&a) {
                        return Err(err("amount", format!("{a} is not a fraction in [0,1]")));
                    }
                    Ok((Noise::SaltPepper { amount: a as f32 }, a))
                })
                .collect::<Result<_, _>>()?,
            NoiseKind::Blur => levels("sigma", &n.sigma)?
                .into_iter()
                .map(|s| {
                    if !(s.is_finite() && s > 0.0 && s <= 64.0) {
                        return Err(err("sigma", format!("{s} is not a blur σ in (0, 64]")));
                    }
                    Ok((Noise::Blur { sigma: s as f32 }, s))
                })
                .collect::<Result<_, _>>()?,
            NoiseKind::Jpeg => levels("quality", &n.quality)?
                .into_iter()
                .map(|q| {
                    if !(q.fract() == 0.0 && (1.0..=100.0).contains(&q)) {
                        return Err(err(
                            "quality",
                            format!("{q} is not a whole number in 1..=100"),
                        ));
                    }
                    Ok((Noise::Jpeg { quality: q as u8 }, q))
                })
                .collect::<Result<_, _>>()?,
        };
        for (noise, level) in noises {
            let mut v = Variant {
                name: String::new(),
                noise: Some(noise),
                level,
            };
            v.name = format!("{}-{}", v.kind(), level);
            if out.iter().any(|o| o.name == v.name) {
                return Err(err("kind", format!("variant {} is listed twice", v.name)));
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// The random stream of one (item, variant).
pub fn rng_for(seed: u64, item_id: &str, variant: &Variant) -> ChaCha8Rng {
    seeded_rng(seed, &["noise", item_id, &variant.name])
}

impl Noise {
    /// True when the noise works on the normalised tensor rather than on pixels.
    pub fn on_normalized(&self) -> bool {
        matches!(
            self,
            Noise::Gaussian {
                units: NoiseUnits::Normalized,
                ..
            }
        )
    }

    /// Applies a pixel-space noise to `img` in place. A normalised-space noise does nothing
    /// here (see [`Noise::apply_normalized`]).
    pub fn apply_pixels(&self, img: &mut PixelImage, rng: &mut ChaCha8Rng) -> Result<(), String> {
        match *self {
            Noise::Gaussian {
                sigma,
                units: NoiseUnits::Pixel,
            } => {
                for v in img.data.iter_mut() {
                    *v = (*v + sigma * kernels::standard_normal(rng)).clamp(0.0, 1.0);
                }
            }
            Noise::Gaussian { .. } => {}
            Noise::SaltPepper { amount } => {
                for px in img.data.chunks_exact_mut(3) {
                    let u: f32 = rng.random();
                    if u < amount {
                        let value = if u < amount / 2.0 { 0.0 } else { 1.0 };
                        px.fill(value);
                    }
                }
            }
            Noise::Blur { sigma } => kernels::gaussian_blur(img, sigma),
            Noise::Jpeg { quality } => kernels::jpeg_roundtrip(img, quality)?,
        }
        Ok(())
    }

    /// Applies a normalised-space noise to a CHW tensor in place.
    pub fn apply_normalized(&self, tensor: &mut [f32], rng: &mut ChaCha8Rng) {
        if let Noise::Gaussian {
            sigma,
            units: NoiseUnits::Normalized,
        } = *self
        {
            for v in tensor.iter_mut() {
                *v += sigma * kernels::standard_normal(rng);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Levels;

    fn cfg(kind: NoiseKind) -> NoiseConfig {
        NoiseConfig {
            kind,
            sigma: None,
            units: None,
            amount: None,
            quality: None,
        }
    }

    fn image() -> PixelImage {
        let (w, h) = (16, 12);
        let data = (0..w * h * 3).map(|i| (i % 97) as f32 / 96.0).collect();
        PixelImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn variant_names_and_clean_first() {
        let mut g = cfg(NoiseKind::Gaussian);
        g.sigma = Some(Levels::Many(vec![0.05, 0.1]));
        let mut j = cfg(NoiseKind::Jpeg);
        j.quality = Some(Levels::One(30.0));
        let mut n = cfg(NoiseKind::Gaussian);
        n.sigma = Some(Levels::One(0.5));
        n.units = Some(NoiseUnits::Normalized);
        let names: Vec<String> = variants(&[g, j, n])
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(
            names,
            [
                "clean",
                "gaussian-0.05",
                "gaussian-0.1",
                "jpeg-30",
                "gaussian_norm-0.5"
            ]
        );
    }

    #[test]
    fn bad_levels_name_their_key() {
        let mut j = cfg(NoiseKind::Jpeg);
        j.quality = Some(Levels::One(101.0));
        assert!(variants(&[j])
            .unwrap_err()
            .to_string()
            .starts_with("noise.0.quality"));
        let mut b = cfg(NoiseKind::Blur);
        b.amount = Some(Levels::One(0.1));
        assert!(variants(&[b])
            .unwrap_err()
            .to_string()
            .starts_with("noise.0.amount"));
        assert!(variants(&[cfg(NoiseKind::Gaussian)])
            .unwrap_err()
            .to_string()
            .contains("sigma: is required"));
    }

    #[test]
    fn noise_is_reproducible_per_item_and_variant() {
        let v = Variant {
            level: 0.1,
            name: "gaussian-0.1".into(),
            noise: Some(Noise::Gaussian {
                sigma: 0.1,
                units: NoiseUnits::Pixel,
            }),
        };
        let run = |id: &str| {
            let mut img = image();
            v.noise
                .unwrap()
                .apply_pixels(&mut img, &mut rng_for(3, id, &v))
                .unwrap();
            img
        };
        assert_eq!(run("a"), run("a"));
        assert_ne!(run("a"), run("b"));
        let img = run("a");
        assert!(img.data.iter().all(|x| (0.0..=1.0).contains(x)));
        // The perturbation has about the asked σ (before clamping, most values are interior).
        let base = image();
        let diffs: Vec<f32> = img
            .data
            .iter()
            .zip(&base.data)
            .map(|(a, b)| a - b)
            .collect();
        let sd = (diffs.iter().map(|d| d * d).sum::<f32>() / diffs.len() as f32).sqrt();
        assert!((0.06..0.11).contains(&sd), "{sd}");
    }

    #[test]
    fn salt_pepper_hits_about_the_asked_fraction() {
        let mut img = PixelImage {
            width: 100,
            height: 100,
            data: vec![0.5; 30000],
        };
        Noise::SaltPepper { amount: 0.2 }
            .apply_pixels(&mut img, &mut seeded_rng(0, &["t"]))
            .unwrap();
        let hit = img.data.chunks(3).filter(|p| p[0] != 0.5).count() as f32 / 10000.0;
        assert!((0.17..0.23).contains(&hit), "{hit}");
    }
}
