//! Augment stage: seeded, reproducible noise variants of each image.
//!
//! Noise is applied at the model's input resolution, after resize and crop: a σ then means the
//! same thing for a 4000-pixel photo and a 64-pixel icon, which is what robustness tables
//! compare. (Noise added before the resize would be averaged away by downscaling, more so for
//! larger originals.) Pixel-space kinds work on the `[0, 1]` image; `units: normalized` Gaussian
//! noise works on the mean/std-normalised tensor the model receives.
//!
//! Every variant of every item draws from its own random stream, seeded by (study seed, item
//! id, variant name), so results never depend on batch size, thread count or order.

pub mod corruptions;
mod kernels;
pub mod text;

use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use corruptions::{Corruption, FrostTextures};
pub use text::{TextNoiseError, TextVariant};

use crate::config::{NoiseConfig, NoiseKind, NoisePreset, NoiseUnits};
use crate::util::seeded_rng;

/// The name of the variant without noise; always present, always first.
pub const CLEAN: &str = "clean";

/// An image at the model's input size, RGB, interleaved, values in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

/// One noise at one level.
#[derive(Debug, Clone, PartialEq)]
pub enum Noise {
    Gaussian {
        sigma: f32,
        units: NoiseUnits,
    },
    SaltPepper {
        amount: f32,
    },
    Blur {
        sigma: f32,
    },
    Jpeg {
        quality: u8,
    },
    /// An ImageNet-C corruption at severity 1..=5 (frost carries its textures).
    Corruption {
        corruption: Corruption,
        severity: u8,
        frost: Option<Arc<FrostTextures>>,
    },
}

/// A named variant: `clean`, `gaussian-0.1`, `gaussian_norm-0.5`, `salt_pepper-0.05`,
/// `blur-1.5`, `jpeg-30`, or an ImageNet-C corruption and severity (`contrast-3`,
/// `jpeg_compression-5`).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    pub noise: Option<Noise>,
    /// The level as written in the config (σ, amount, quality or severity; 0 for clean).
    pub level: f64,
}

impl Variant {
    /// The family, for the store's `noise` column (`none` for clean; the reference's name for
    /// an ImageNet-C corruption).
    pub fn kind(&self) -> &'static str {
        match &self.noise {
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
            Some(Noise::Corruption { corruption, .. }) => corruption.name(),
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

/// The ImageNet-C corruption a config kind names, if it is one.
pub fn corruption_of(kind: NoiseKind) -> Option<Corruption> {
    use NoiseKind as K;
    Some(match kind {
        K::Gaussian | K::SaltPepper | K::Blur | K::Jpeg => return None,
        K::GaussianNoise => Corruption::GaussianNoise,
        K::ShotNoise => Corruption::ShotNoise,
        K::ImpulseNoise => Corruption::ImpulseNoise,
        K::DefocusBlur => Corruption::DefocusBlur,
        K::GlassBlur => Corruption::GlassBlur,
        K::MotionBlur => Corruption::MotionBlur,
        K::ZoomBlur => Corruption::ZoomBlur,
        K::Snow => Corruption::Snow,
        K::Frost => Corruption::Frost,
        K::Fog => Corruption::Fog,
        K::Brightness => Corruption::Brightness,
        K::Contrast => Corruption::Contrast,
        K::ElasticTransform => Corruption::ElasticTransform,
        K::Pixelate => Corruption::Pixelate,
        K::JpegCompression => Corruption::JpegCompression,
        K::SpeckleNoise => Corruption::SpeckleNoise,
        K::GaussianBlur => Corruption::GaussianBlur,
        K::Spatter => Corruption::Spatter,
        K::Saturate => Corruption::Saturate,
    })
}

/// The variants a `noise:` section asks for, `clean` first, in config order. Frost textures
/// are read from disk here, once.
pub fn variants(config: &[NoiseConfig]) -> Result<Vec<Variant>, AugmentError> {
    Ok(expand(config)?.0)
}

/// [`variants`], and what the section leaves out and why (the `imagenet-c` preset without
/// frost textures), for the plan's notes.
pub fn variants_with_notes(
    config: &[NoiseConfig],
) -> Result<(Vec<Variant>, Vec<String>), AugmentError> {
    expand(config)
}

fn expand(config: &[NoiseConfig]) -> Result<(Vec<Variant>, Vec<String>), AugmentError> {
    let mut out = vec![Variant {
        name: CLEAN.to_string(),
        noise: None,
        level: 0.0,
    }];
    let mut notes = Vec::new();
    for (index, n) in config.iter().enumerate() {
        let err = |key: &'static str, message: String| AugmentError {
            index,
            key,
            message,
        };
        let allowed: &[&str] = match (n.kind, n.preset) {
            (Some(_), Some(_)) => {
                return Err(err("preset", "give kind or preset, not both".into()));
            }
            (None, None) => {
                return Err(err(
                    "kind",
                    "is required (or preset: imagenet-c); kinds: gaussian, salt_pepper, \
                     blur, jpeg and the ImageNet-C corruptions (gaussian_noise, contrast, ...)"
                        .into(),
                ));
            }
            (None, Some(NoisePreset::ImagenetC)) => &["severity", "corruptions", "frost_textures"],
            (Some(NoiseKind::Gaussian), None) => &["sigma", "units"],
            (Some(NoiseKind::SaltPepper), None) => &["amount"],
            (Some(NoiseKind::Blur), None) => &["sigma"],
            (Some(NoiseKind::Jpeg), None) => &["quality"],
            (Some(NoiseKind::Frost), None) => &["severity", "frost_textures"],
            (Some(_), None) => &["severity"],
        };
        let what = match (n.kind, n.preset) {
            (Some(k), _) => format!("kind {}", kind_name(k)),
            _ => "preset imagenet-c".to_string(),
        };
        for (key, present) in [
            ("sigma", n.sigma.is_some()),
            ("units", n.units.is_some()),
            ("amount", n.amount.is_some()),
            ("quality", n.quality.is_some()),
            ("severity", n.severity.is_some()),
            ("corruptions", n.corruptions.is_some()),
            ("frost_textures", n.frost_textures.is_some()),
        ] {
            if present && !allowed.contains(&key) {
                return Err(err(
                    key,
                    format!("does not apply to {what}; it takes {}", allowed.join(", ")),
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
        let severities = || -> Result<Vec<u8>, AugmentError> {
            levels("severity", &n.severity)?
                .into_iter()
                .map(|s| {
                    if s.fract() == 0.0 && (1.0..=5.0).contains(&s) {
                        Ok(s as u8)
                    } else {
                        Err(err(
                            "severity",
                            format!("{s} is not an ImageNet-C severity (1, 2, 3, 4 or 5)"),
                        ))
                    }
                })
                .collect()
        };
        let frost = || -> Result<Option<Arc<FrostTextures>>, AugmentError> {
            n.frost_textures
                .as_ref()
                .map(|dir| {
                    FrostTextures::load(Path::new(dir))
                        .map(Arc::new)
                        .map_err(|m| err("frost_textures", m))
                })
                .transpose()
        };
        let corrupted = |list: &[Corruption],
                         severities: &[u8],
                         frost: &Option<Arc<FrostTextures>>|
         -> Vec<(Noise, f64)> {
            let mut v = Vec::new();
            for &c in list {
                for &s in severities {
                    v.push((
                        Noise::Corruption {
                            corruption: c,
                            severity: s,
                            frost: if c == Corruption::Frost {
                                frost.clone()
                            } else {
                                None
                            },
                        },
                        s as f64,
                    ));
                }
            }
            v
        };
        let noises: Vec<(Noise, f64)> = match (n.kind, n.preset) {
            (None, _) => {
                let severities = severities()?;
                let frost = frost()?;
                let list: Vec<Corruption> = match &n.corruptions {
                    None => {
                        let all: Vec<Corruption> = corruptions::ALL
                            .into_iter()
                            .filter(|c| *c != Corruption::Frost || frost.is_some())
                            .collect();
                        if frost.is_none() {
                            notes.push(format!(
                                "noise.{index}: the imagenet-c preset runs without frost: \
                                 clipflow does not ship ImageNet-C's frost photographs (their \
                                 provenance and licence are unknown); point \
                                 noise.{index}.frost_textures at a folder with frost1.png … \
                                 frost5.jpg to add it"
                            ));
                        }
                        all
                    }
                    Some(list) => {
                        if list.is_empty() {
                            return Err(err(
                                "corruptions",
                                "list at least one corruption, or leave it out".into(),
                            ));
                        }
                        let mut chosen = Vec::new();
                        for &k in list {
                            let c = corruption_of(k).ok_or_else(|| {
                                err(
                                    "corruptions",
                                    format!("{} is not an ImageNet-C corruption", kind_name(k)),
                                )
                            })?;
                            if c == Corruption::Frost && frost.is_none() {
                                return Err(err(
                                    "corruptions",
                                    "frost needs frost_textures (clipflow does not ship \
                                     ImageNet-C's frost photographs)"
                                        .into(),
                                ));
                            }
                            if chosen.contains(&c) {
                                return Err(err(
                                    "corruptions",
                                    format!("{} is listed twice", c.name()),
                                ));
                            }
                            chosen.push(c);
                        }
                        chosen
                    }
                };
                corrupted(&list, &severities, &frost)
            }
            (Some(NoiseKind::Gaussian), _) => {
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
            (Some(NoiseKind::SaltPepper), _) => levels("amount", &n.amount)?
                .into_iter()
                .map(|a| {
                    if !(0.0..=1.0).contains(&a) {
                        return Err(err("amount", format!("{a} is not a fraction in [0,1]")));
                    }
                    Ok((Noise::SaltPepper { amount: a as f32 }, a))
                })
                .collect::<Result<_, _>>()?,
            (Some(NoiseKind::Blur), _) => levels("sigma", &n.sigma)?
                .into_iter()
                .map(|s| {
                    if !(s.is_finite() && s > 0.0 && s <= 64.0) {
                        return Err(err("sigma", format!("{s} is not a blur σ in (0, 64]")));
                    }
                    Ok((Noise::Blur { sigma: s as f32 }, s))
                })
                .collect::<Result<_, _>>()?,
            (Some(NoiseKind::Jpeg), _) => levels("quality", &n.quality)?
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
            (Some(k), _) => {
                let c = corruption_of(k).unwrap_or(Corruption::GaussianNoise);
                let frost = frost()?;
                if c == Corruption::Frost && frost.is_none() {
                    return Err(err(
                        "frost_textures",
                        "is required for frost: clipflow does not ship ImageNet-C's frost \
                         photographs (their provenance and licence are unknown); give a \
                         folder with frost1.png … frost5.jpg, e.g. the imagecorruptions \
                         package's frost/"
                            .into(),
                    ));
                }
                corrupted(&[c], &severities()?, &frost)
            }
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
    Ok((out, notes))
}

/// A kind's name as written in a config.
fn kind_name(kind: NoiseKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One variant from a `KIND:LEVEL` spec, the form `clipflow inspect preprocess --noise` takes:
/// an ImageNet-C corruption and severity (`contrast:3`, `jpeg_compression:5`), or one of
/// clipflow's kinds and its level (`gaussian:0.1`, `gaussian_norm:0.5`, `salt_pepper:0.05`,
/// `blur:1.5`, `jpeg:30`). `frost_textures` is needed for frost only.
pub fn variant_from_spec(spec: &str, frost_textures: Option<&str>) -> Result<Variant, String> {
    let (kind, level) = spec
        .split_once(':')
        .ok_or_else(|| format!("{spec}: expected KIND:LEVEL, e.g. contrast:3 or gaussian:0.1"))?;
    let level: f64 = level
        .trim()
        .parse()
        .map_err(|_| format!("{spec}: {level} is not a number"))?;
    let (kind, normalized) = match kind.trim() {
        "gaussian_norm" => ("gaussian", true),
        k => (k, false),
    };
    let kind: NoiseKind = serde_json::from_value(serde_json::Value::String(kind.to_string()))
        .map_err(|e| format!("{spec}: {e}"))?;
    let one = Some(crate::config::Levels::One(level));
    let mut cfg = NoiseConfig {
        kind: Some(kind),
        ..Default::default()
    };
    match kind {
        NoiseKind::Gaussian => {
            cfg.sigma = one;
            if normalized {
                cfg.units = Some(NoiseUnits::Normalized);
            }
        }
        NoiseKind::Blur => cfg.sigma = one,
        NoiseKind::SaltPepper => cfg.amount = one,
        NoiseKind::Jpeg => cfg.quality = one,
        NoiseKind::Frost => {
            cfg.severity = one;
            cfg.frost_textures = frost_textures.map(str::to_string);
        }
        _ => cfg.severity = one,
    }
    let mut v = variants(&[cfg]).map_err(|e| {
        // "noise.0.severity: 7 is not ..." → "contrast:7: severity: 7 is not ..."
        format!("{spec}: {}: {}", e.key, e.message)
    })?;
    Ok(v.remove(1))
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
            Noise::Corruption {
                corruption,
                severity,
                ref frost,
            } => corruptions::corrupt(img, corruption, severity, rng, frost.as_deref())?,
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
            kind: Some(kind),
            ..Default::default()
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
                .as_ref()
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
