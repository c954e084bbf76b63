//! Image preprocessing equal to the reference library a model's preprocessing belongs to:
//! transformers' Pillow-based image processors for a Hugging Face preprocessor config, OpenAI
//! CLIP / open_clip (torchvision transforms on Pillow images) for their exports. Convert to RGB;
//! resize (shorter side to `size` with the longer side `int(size·long/short)`, or to an exact
//! `{height, width}` for SigLIP-style processors) with Pillow's resampling, reproduced bit for
//! bit in [`super::resample`]; center crop; scale by `rescale_factor`; normalise by mean/std.
//!
//! The references agree on all of it but two rules ([`Rules`]), which follow the library the
//! model's preprocessing config belongs to (what a user comparing with that library in Python
//! gets): where an odd-margin center crop starts ([`CropRounding`]: torchvision rounds half to
//! even, transformers floors), and what becomes of transparency ([`Transparency`]: Pillow's
//! `convert("RGB")` drops it, transformers 5 composites it over white). `scripts/export_clip.py`
//! probes the library it exports with and records both in `clipflow.json`; without that
//! record a Hugging Face config gets transformers' rules; `models[].preprocess` overrides both.
//!
//! Decoding follows Pillow too: no EXIF rotation, palette and grayscale expanded, 16-bit RGB
//! reduced to its high byte, CMYK JPEGs inverted and converted with Pillow's integer formula.
//! Truncated files are errors, as in Pillow's default.
//!
//! Two modes ([`Mode`]): `exact` gives Pillow's pixels; `fast` lets libjpeg-turbo shrink a JPEG
//! by 1/2, 1/4 or 1/8 in the DCT domain (while the result stays at least the resize target)
//! before the same exact resample. scripts/bench_preprocess measures what that changes.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, RgbImage};

use super::jpeg;
use super::resample::{self, Kernel, Rgbx, Window};
use super::EncodeError;
use crate::augment::PixelImage;
pub use crate::config::PreprocessMode as Mode;
pub use crate::config::{CropRounding, ModelPreprocessConfig, Transparency};

/// OpenAI CLIP's normalisation constants, the default when a config omits them.
#[allow(clippy::excessive_precision)] // the values exactly as OpenAI publishes them
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// How to resize before cropping.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Shorter side to this length, aspect kept (CLIP).
    ShortestEdge(u32),
    /// To exactly this size, aspect not kept (SigLIP-style processors).
    Exact {
        height: u32,
        width: u32,
    },
    None,
}

/// The resampling filter (`resample` in preprocessor_config.json, PIL's numbering).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

/// A parsed `preprocessor_config.json`, with the rules of the library it belongs to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Preprocess {
    pub resize: Resize,
    /// (height, width) of the center crop, if any.
    pub crop: Option<(u32, u32)>,
    pub filter: Filter,
    pub rescale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Where the reference libraries differ: which one this model follows, and why.
    #[serde(flatten)]
    pub rules: Rules,
    /// transformers 5's nested `processor_config.json` with `do_convert_rgb`: the layout that
    /// says which transformers wrote the file, hence which transparency rule it applies.
    #[serde(skip)]
    transformers5_converts_rgb: bool,
}

/// The two preprocessing rules the reference libraries disagree on, each with where it came
/// from (the manifest records both).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rules {
    pub crop_rounding: CropRounding,
    pub crop_rounding_from: String,
    pub transparency: Transparency,
    pub transparency_from: String,
}

/// What an export's `clipflow.json` says about the preprocessing rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordedRules {
    pub crop_rounding: Option<CropRounding>,
    pub transparency: Option<Transparency>,
    /// Which library the rules are those of, for the manifest.
    pub from: String,
}

/// Why one image could not be turned into a tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeFailure {
    pub stage: &'static str,
    pub reason: String,
}

impl Preprocess {
    /// Reads a Hugging Face `preprocessor_config.json` (both the legacy `size: 224` and the
    /// `{shortest_edge: 224}` forms).
    pub fn from_file(path: &Path) -> Result<Preprocess, EncodeError> {
        let bad = |message: String| EncodeError::Preprocessor {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        Preprocess::from_json(&v).map_err(bad)
    }

    pub fn from_json(v: &serde_json::Value) -> Result<Preprocess, String> {
        // transformers 5 saves a processor's parts in one `processor_config.json`.
        let (v, nested) = match v.get("image_processor") {
            Some(inner) if inner.is_object() => (inner, true),
            _ => (v, false),
        };
        let converted = convnext_crop_pct(v)?;
        let v = converted.as_ref().unwrap_or(v);
        let flag = |k: &str, default: bool| v.get(k).and_then(|x| x.as_bool()).unwrap_or(default);
        let transformers5_converts_rgb = nested && flag("do_convert_rgb", false);
        let dim = |x: &serde_json::Value, what: &str| -> Result<u32, String> {
            x.as_u64()
                .filter(|n| (1..=16384).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| format!("{what}: {x} is not a size in pixels"))
        };
        let resize = if !flag("do_resize", true) {
            Resize::None
        } else {
            match v.get("size") {
                None => Resize::ShortestEdge(224),
                Some(s) if s.is_u64() => Resize::ShortestEdge(dim(s, "size")?),
                Some(s) => {
                    if let Some(e) = s.get("shortest_edge") {
                        Resize::ShortestEdge(dim(e, "size.shortest_edge")?)
                    } else if let (Some(h), Some(w)) = (s.get("height"), s.get("width")) {
                        Resize::Exact {
                            height: dim(h, "size.height")?,
                            width: dim(w, "size.width")?,
                        }
                    } else {
                        return Err(format!("size: {s} has no shortest_edge or height/width"));
                    }
                }
            }
        };
        let crop = if !flag("do_center_crop", !matches!(resize, Resize::Exact { .. })) {
            None
        } else {
            Some(match v.get("crop_size") {
                None => match resize {
                    Resize::ShortestEdge(s) => (s, s),
                    Resize::Exact { height, width } => (height, width),
                    Resize::None => return Err("do_center_crop without crop_size".into()),
                },
                Some(c) if c.is_u64() => {
                    let s = dim(c, "crop_size")?;
                    (s, s)
                }
                Some(c) => (
                    dim(
                        c.get("height").unwrap_or(&serde_json::Value::Null),
                        "crop_size.height",
                    )?,
                    dim(
                        c.get("width").unwrap_or(&serde_json::Value::Null),
                        "crop_size.width",
                    )?,
                ),
            })
        };
        if matches!(resize, Resize::None) && crop.is_none() {
            return Err("neither do_resize nor do_center_crop: the input size is unknown".into());
        }
        let filter = match v.get("resample") {
            None | Some(serde_json::Value::Null) => Filter::Bicubic,
            Some(r) => match r.as_u64() {
                Some(0) => Filter::Nearest,
                Some(1) => Filter::Lanczos,
                Some(2) => Filter::Bilinear,
                Some(3) => Filter::Bicubic,
                Some(4) => Filter::Box,
                Some(5) => Filter::Hamming,
                _ => {
                    return Err(format!(
                        "resample: {r} is not a PIL filter number (0 nearest, 1 lanczos, \
                         2 bilinear, 3 bicubic, 4 box, 5 hamming)"
                    ))
                }
            },
        };
        let rescale = if flag("do_rescale", true) {
            v.get("rescale_factor")
                .and_then(|x| x.as_f64())
                .unwrap_or(1.0 / 255.0) as f32
        } else {
            1.0
        };
        let triple = |k: &str, default: [f32; 3]| -> Result<[f32; 3], String> {
            match v.get(k) {
                None => Ok(default),
                Some(x) if x.is_number() => Ok([x.as_f64().unwrap_or(0.0) as f32; 3]),
                Some(x) => {
                    let a = x.as_array().ok_or(format!("{k}: {x} is not a list"))?;
                    let f: Vec<f32> = a
                        .iter()
                        .filter_map(|n| n.as_f64())
                        .map(|n| n as f32)
                        .collect();
                    <[f32; 3]>::try_from(f).map_err(|_| format!("{k}: {x} needs 3 numbers"))
                }
            }
        };
        let (mean, std) = if flag("do_normalize", true) {
            (
                triple("image_mean", CLIP_MEAN)?,
                triple("image_std", CLIP_STD)?,
            )
        } else {
            ([0.0; 3], [1.0; 3])
        };
        if std.contains(&0.0) {
            return Err("image_std has a zero".into());
        }
        Ok(Preprocess {
            resize,
            crop,
            filter,
            rescale,
            mean,
            std,
            rules: Rules::of_transformers(transformers5_converts_rgb),
            transformers5_converts_rgb,
        })
    }

    /// Applies the rules an export recorded, then the study's overrides (each rule on its own:
    /// the study may set one and leave the other to the export).
    pub fn with_rules(
        mut self,
        recorded: Option<&RecordedRules>,
        study: Option<&ModelPreprocessConfig>,
    ) -> Preprocess {
        if let Some(r) = recorded {
            if let Some(c) = r.crop_rounding {
                self.rules.crop_rounding = c;
                self.rules.crop_rounding_from = r.from.clone();
            }
            if let Some(t) = r.transparency {
                self.rules.transparency = t;
                self.rules.transparency_from = r.from.clone();
            }
        }
        if let Some(s) = study {
            if let Some(c) = s.crop_rounding {
                self.rules.crop_rounding = c;
                self.rules.crop_rounding_from = "study (models[].preprocess)".into();
            }
            if let Some(t) = s.transparency {
                self.rules.transparency = t;
                self.rules.transparency_from = "study (models[].preprocess)".into();
            }
        }
        self
    }

    /// Reads the preprocessing rules of an export's `clipflow.json`: its `preprocess` entry
    /// (what `scripts/export_clip.py` measured on the library it exported with), else, for a
    /// file written before the entry existed, the rules of the library its `source` names.
    pub fn recorded_rules(info: &serde_json::Value) -> Result<RecordedRules, String> {
        if let Some(p) = info.get("preprocess").filter(|p| !p.is_null()) {
            let Some(p) = p.as_object() else {
                return Err(format!("preprocess: {p} is not an object"));
            };
            let parse = |k: &str, allowed: &str| -> Result<Option<serde_json::Value>, String> {
                match p.get(k) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(x) if x.is_string() => Ok(Some(x.clone())),
                    Some(x) => Err(format!("preprocess.{k}: {x} is not one of {allowed}")),
                }
            };
            let crop_rounding = parse("crop_rounding", "half_even, floor")?
                .map(|x| {
                    serde_json::from_value(x.clone()).map_err(|_| {
                        format!("preprocess.crop_rounding: {x} is not half_even or floor")
                    })
                })
                .transpose()?;
            let transparency = parse("transparency", "drop, white")?
                .map(|x| {
                    serde_json::from_value(x.clone())
                        .map_err(|_| format!("preprocess.transparency: {x} is not drop or white"))
                })
                .transpose()?;
            let reference = p
                .get("reference")
                .and_then(|r| r.as_str())
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            return Ok(RecordedRules {
                crop_rounding,
                transparency,
                from: format!("clipflow.json{reference}"),
            });
        }
        let library = info
            .get("source")
            .and_then(|s| s.get("library"))
            .and_then(|l| l.as_str())
            .unwrap_or_default();
        let name = library.split_whitespace().next().unwrap_or_default();
        let from = format!("clipflow.json source: {library}");
        Ok(match name {
            // torchvision's CenterCrop and Pillow's convert("RGB").
            "open_clip" | "torchvision" => RecordedRules {
                crop_rounding: Some(CropRounding::HalfEven),
                transparency: Some(Transparency::Drop),
                from,
            },
            // transformers' own rules follow from the config file (from_json).
            _ => RecordedRules::default(),
        })
    }

    /// (height, width) of the tensor the model receives, when fixed.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.crop.or(match self.resize {
            Resize::Exact { height, width } => Some((height, width)),
            _ => None,
        })
    }

    /// (width, height) an image of `w×h` is resized to before the crop.
    pub fn resized_size(&self, w: usize, h: usize) -> (usize, usize) {
        match self.resize {
            Resize::None => (w, h),
            Resize::Exact { height, width } => (width as usize, height as usize),
            Resize::ShortestEdge(s) => {
                let s = s as usize;
                // int(size * long / short), as torchvision and transformers compute it.
                if w <= h {
                    (s, (s * h / w.max(1)).max(1))
                } else {
                    ((s * w / h.max(1)).max(1), s)
                }
            }
        }
    }

    /// Decodes `bytes` and resizes and crops them to the model's input, as 8-bit RGBX.
    /// `max_pixels` bounds the decoded size (checked on the header, before any allocation).
    pub fn load(&self, bytes: &[u8], max_pixels: u64, mode: Mode) -> Result<Rgbx, DecodeFailure> {
        let img = self.decode(bytes, max_pixels, mode)?;
        self.resize_crop(&img)
    }

    /// Decodes `bytes` for [`Self::resize_crop`]: a JPEG at fast mode's DCT scale, and only
    /// where the resize reads (see [`super::jpeg`]); other formats whole.
    pub fn decode(
        &self,
        bytes: &[u8],
        max_pixels: u64,
        mode: Mode,
    ) -> Result<Decoded, DecodeFailure> {
        let scale = |w, h| self.jpeg_scale(mode, w, h);
        let region = |sw, sh, w, h| {
            let g = self.geometry((sw, sh), (w, h));
            match self.filter {
                Filter::Nearest => None,
                f => Some(resample::input_window(
                    sw,
                    sh,
                    g.tw,
                    g.th,
                    g.window,
                    kernel(f),
                )),
            }
        };
        decode_rgbx(
            bytes,
            max_pixels,
            self.rules.transparency,
            JpegRead {
                scale: &scale,
                region: &region,
            },
        )
    }

    /// The DCT scale numerator (8 = full size) `mode` decodes a `w`×`h` JPEG at.
    pub fn jpeg_scale(&self, mode: Mode, w: usize, h: usize) -> u8 {
        match mode {
            Mode::Exact => 8,
            Mode::Fast => {
                let (tw, th) = self.resized_size(w, h);
                dct_scale(w, h, tw, th)
            }
        }
    }

    /// Where an image decoded at `scaled` (its full size `original`; they differ for a JPEG
    /// decoded at a DCT scale, which is resized to the size its full decode would be) is
    /// resized to, and what of that the crop keeps.
    fn geometry(&self, scaled: (usize, usize), original: (usize, usize)) -> Geometry {
        let (tw, th) = if scaled == original {
            self.resized_size(scaled.0, scaled.1)
        } else if matches!(self.resize, Resize::None) {
            scaled
        } else {
            self.resized_size(original.0, original.1)
        };
        let (ch, cw) = self
            .crop
            .map(|(h, w)| (h as usize, w as usize))
            .unwrap_or((th, tw));
        let rounding = self.rules.crop_rounding;
        let top = crop_offset(th as i64, ch as i64, rounding);
        let left = crop_offset(tw as i64, cw as i64, rounding);
        // The part of the crop that lies on the resized image (both references pad the rest
        // with zeros when the crop is larger).
        let x0 = left.max(0) as usize;
        let y0 = top.max(0) as usize;
        let x1 = ((left + cw as i64).min(tw as i64)).max(x0 as i64) as usize;
        let y1 = ((top + ch as i64).min(th as i64)).max(y0 as i64) as usize;
        Geometry {
            tw,
            th,
            crop: (cw, ch),
            pad: ((x0 as i64 - left) as usize, (y0 as i64 - top) as usize),
            window: Window {
                left: x0,
                top: y0,
                width: x1 - x0,
                height: y1 - y0,
            },
        }
    }

    /// The (width, height) [`Self::resize_crop`] gives `img`: the tensor's size.
    pub fn crop_size(&self, img: &Decoded) -> Result<(usize, usize), DecodeFailure> {
        Ok(self.placement(img)?.crop)
    }

    fn placement(&self, img: &Decoded) -> Result<Geometry, DecodeFailure> {
        if img.image.width == 0 || img.image.height == 0 {
            return Err(DecodeFailure {
                stage: "decode",
                reason: "image has no pixels".into(),
            });
        }
        Ok(self.geometry(img.scaled, (img.width, img.height)))
    }

    /// [`Self::resize_crop`] then [`Self::normalize_rgbx_into`] (`out` holds at least
    /// 3 × [`Self::crop_size`] values), the same values, without storing the crop when the
    /// image fills it: the resize hands its rows over eight at a time ([`resample::RowSink`])
    /// and they are normalised while in L1. A 640×480 JPEG's crop is 200 KB of RGBX, which
    /// was written, then read back from L2: with this and the resize's buffers below, fast
    /// mode's preprocessing went from 0.217 to 0.192 ms (`examples/bench_preprocess`, medians
    /// of 10 alternating runs).
    pub fn resize_crop_normalize_into(
        &self,
        img: &Decoded,
        out: &mut [f32],
    ) -> Result<(), DecodeFailure> {
        self.resize_crop_normalize_with(img, out, resample::Isa::detected())
    }

    fn resize_crop_normalize_with(
        &self,
        img: &Decoded,
        out: &mut [f32],
        isa: resample::Isa,
    ) -> Result<(), DecodeFailure> {
        let g = self.placement(img)?;
        let (cw, ch) = g.crop;
        let padded = g.window.width != cw || g.window.height != ch;
        if padded || self.filter == Filter::Nearest {
            let crop = self.resize_crop_with(img, isa)?;
            self.normalize_rgbx_with(&crop, out, isa);
            return Ok(());
        }
        let mut sink = NormalizingSink {
            normalizer: Normalizer::new(self, isa),
            out: &mut out[..3 * cw * ch],
            width: cw,
            band: Vec::new(),
        };
        resample::resize_placed_into(
            img.placed(),
            g.tw,
            g.th,
            g.window,
            kernel(self.filter),
            isa,
            &mut sink,
        );
        Ok(())
    }

    /// Resizes and crops a decoded image (or the part of it [`Self::decode`] decoded).
    pub fn resize_crop(&self, img: &Decoded) -> Result<Rgbx, DecodeFailure> {
        self.resize_crop_with(img, resample::Isa::detected())
    }

    fn resize_crop_with(&self, img: &Decoded, isa: resample::Isa) -> Result<Rgbx, DecodeFailure> {
        let g = self.placement(img)?;
        let (cw, ch) = g.crop;
        let window = g.window;
        let inner = match self.filter {
            Filter::Nearest => {
                debug_assert!(img.image.width == img.scaled.0 && img.image.height == img.scaled.1);
                resample::nearest_window(&img.image, g.tw, g.th, window)
            }
            f => resample::resize_placed(img.placed(), g.tw, g.th, window, kernel(f), isa),
        };
        if window.width == cw && window.height == ch {
            return Ok(inner);
        }
        let mut out = Rgbx {
            width: cw,
            height: ch,
            data: vec![0u8; cw * ch * 4],
        };
        let (dx, dy) = g.pad;
        for y in 0..window.height {
            let s = y * window.width * 4;
            let d = ((y + dy) * cw + dx) * 4;
            out.data[d..d + window.width * 4].copy_from_slice(&inner.data[s..s + window.width * 4]);
        }
        Ok(out)
    }

    /// Resize + crop to the model's input size, as `[0, 1]` floats (before normalisation), the
    /// space pixel noise is applied in.
    pub fn to_pixels(&self, rgb: &RgbImage) -> Result<PixelImage, DecodeFailure> {
        let img = Rgbx::from_rgb(rgb.width() as usize, rgb.height() as usize, rgb.as_raw());
        let crop = self.resize_crop(&Decoded::whole(img))?;
        Ok(self.pixels_of(&crop))
    }

    /// A cropped image as `[0, 1]` floats (`rescale_factor` applied), HWC.
    pub fn pixels_of(&self, crop: &Rgbx) -> PixelImage {
        let mut data = Vec::with_capacity(crop.width * crop.height * 3);
        for p in crop.data.chunks_exact(4) {
            for &v in &p[..3] {
                data.push(v as f32 * self.rescale);
            }
        }
        PixelImage {
            width: crop.width,
            height: crop.height,
            data,
        }
    }

    /// Normalises `pixels` into `out` as CHW (`out.len() == 3·h·w`).
    pub fn normalize_into(&self, pixels: &PixelImage, out: &mut [f32]) {
        let plane = pixels.width * pixels.height;
        for (i, px) in pixels.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (px[c] - self.mean[c]) / self.std[c];
            }
        }
    }

    /// [`Self::pixels_of`] then [`Self::normalize_into`] in one step: the same float
    /// operations (multiply, subtract, divide, each rounded), so the same bits, eight pixels
    /// per instruction with AVX2, else through a table of the 256 values per channel.
    pub fn normalize_rgbx_into(&self, crop: &Rgbx, out: &mut [f32]) {
        self.normalize_rgbx_with(crop, out, resample::Isa::detected());
    }

    fn normalize_rgbx_with(&self, crop: &Rgbx, out: &mut [f32], isa: resample::Isa) {
        let plane = crop.width * crop.height;
        Normalizer::new(self, isa).pixels(&crop.data[..4 * plane], &mut out[..3 * plane], 0);
    }
}

/// Normalises RGBX pixels into a CHW tensor: `(v · rescale − mean) / std` per channel.
struct Normalizer {
    rescale: f32,
    mean: [f32; 3],
    std: [f32; 3],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    isa: resample::Isa,
    /// The 256 values per channel, for the pixels the vector path leaves; made when first
    /// needed.
    table: Option<Box<[[f32; 256]; 3]>>,
}

impl Normalizer {
    fn new(pre: &Preprocess, isa: resample::Isa) -> Normalizer {
        Normalizer {
            rescale: pre.rescale,
            mean: pre.mean,
            std: pre.std,
            isa,
            table: None,
        }
    }

    /// `data`'s pixels into places `at..` of each of `out`'s three planes (a third of `out`
    /// each): eight pixels per instruction with AVX2, the same float operations (multiply,
    /// subtract, divide, each rounded) as the table, so the same bits.
    fn pixels(&mut self, data: &[u8], out: &mut [f32], at: usize) {
        let n = data.len() / 4;
        let plane = out.len() / 3;
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let (r, g, b) = (&mut r[at..at + n], &mut g[at..at + n], &mut b[at..at + n]);
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if self.isa != resample::Isa::Scalar {
            // SAFETY: `Isa::Avx2`/`Avx512` are only produced when the CPU has AVX2.
            done =
                unsafe { x86::normalize_avx2(data, [r, g, b], self.rescale, self.mean, self.std) };
        }
        if done == n {
            return;
        }
        let (rescale, mean, std) = (self.rescale, self.mean, self.std);
        let table = self.table.get_or_insert_with(|| {
            let mut table = Box::new([[0.0f32; 256]; 3]);
            for (c, values) in table.iter_mut().enumerate() {
                for (v, x) in values.iter_mut().enumerate() {
                    *x = (v as f32 * rescale - mean[c]) / std[c];
                }
            }
            table
        });
        for (i, p) in data.chunks_exact(4).enumerate().skip(done) {
            r[i] = table[0][p[0] as usize];
            g[i] = table[1][p[1] as usize];
            b[i] = table[2][p[2] as usize];
        }
    }
}

/// The rows of a resize, normalised into the tensor as they come.
struct NormalizingSink<'a> {
    normalizer: Normalizer,
    /// The whole tensor (three planes of `width` × the crop's height).
    out: &'a mut [f32],
    width: usize,
    band: Vec<u8>,
}

impl resample::RowSink for NormalizingSink<'_> {
    fn band(&mut self, _first: usize, count: usize) -> &mut [u8] {
        let len = count * self.width * 4;
        if self.band.len() < len {
            self.band.resize(len, 0);
        }
        &mut self.band[..len]
    }

    fn commit(&mut self, first: usize, count: usize) {
        let len = count * self.width * 4;
        self.normalizer
            .pixels(&self.band[..len], self.out, first * self.width);
    }
}

/// ConvNeXt-style processors (`crop_pct`, used by Hugging Face's ResNet and ConvNeXt exports)
/// as the plain keys they mean: below 384 pixels, the shorter side goes to
/// `int(shortest_edge / crop_pct)` and the center `shortest_edge` square is cropped; from 384
/// up, the image is resized to the square without a crop. `None` when there is no `crop_pct`.
fn convnext_crop_pct(v: &serde_json::Value) -> Result<Option<serde_json::Value>, String> {
    let Some(pct) = v.get("crop_pct").filter(|p| !p.is_null()) else {
        return Ok(None);
    };
    let pct = pct
        .as_f64()
        .filter(|p| *p > 0.0 && *p <= 1.0)
        .ok_or_else(|| format!("crop_pct: {pct} is not a fraction in (0, 1]"))?;
    let edge = v
        .get("size")
        .and_then(|s| s.get("shortest_edge").or(Some(s)))
        .and_then(|e| e.as_u64())
        .filter(|e| (1..=16384).contains(e))
        .ok_or("crop_pct needs size.shortest_edge")?;
    let mut out = v.clone();
    let obj = out.as_object_mut().ok_or("not a JSON object")?;
    obj.remove("crop_pct");
    if edge < 384 {
        let resized = (edge as f64 / pct) as u64;
        obj.insert("size".into(), serde_json::json!({"shortest_edge": resized}));
        obj.insert(
            "crop_size".into(),
            serde_json::json!({"height": edge, "width": edge}),
        );
        obj.insert("do_center_crop".into(), true.into());
    } else {
        obj.insert(
            "size".into(),
            serde_json::json!({"height": edge, "width": edge}),
        );
        obj.insert("do_center_crop".into(), false.into());
    }
    Ok(Some(out))
}

fn kernel(f: Filter) -> Kernel {
    match f {
        Filter::Box => Kernel::Box,
        Filter::Bilinear => Kernel::Bilinear,
        Filter::Hamming => Kernel::Hamming,
        Filter::Lanczos => Kernel::Lanczos,
        Filter::Bicubic | Filter::Nearest => Kernel::Bicubic,
    }
}

/// The DCT scaling numerator (over 8) for fast mode: the smallest of 1, 2, 4 whose output
/// (libjpeg rounds `w·n/8` up) is still at least `tw×th`; 8 (no scaling) otherwise.
pub fn dct_scale(w: usize, h: usize, tw: usize, th: usize) -> u8 {
    for n in [1usize, 2, 4] {
        if (w * n).div_ceil(8) >= tw && (h * n).div_ceil(8) >= th {
            return n as u8;
        }
    }
    8
}

/// Where a center crop of `crop` pixels starts on a side of `size` pixels (negative: the crop
/// is larger and starts that far before the image, the gap being zeros).
///
/// - `HalfEven`, torchvision's `center_crop` (OpenAI CLIP, open_clip): `int(round((size -
///   crop) / 2))` with Python's round-half-to-even; a larger crop first pads
///   `(crop - size) // 2` zeros before the image, so the offset is `-((crop - size) // 2)`.
/// - `Floor`, transformers' `image_transforms.center_crop` (every Pillow-based image processor
///   of transformers 4 and 5): `(size - crop) // 2`, Python's floor division, on both sides of
///   zero (a larger crop pads `ceil((crop - size) / 2)` zeros before the image).
fn crop_offset(size: i64, crop: i64, rounding: CropRounding) -> i64 {
    let d = size - crop;
    match rounding {
        CropRounding::Floor => d.div_euclid(2),
        CropRounding::HalfEven if d < 0 => -((-d) / 2),
        CropRounding::HalfEven => {
            let half = d / 2;
            if d % 2 == 0 || half % 2 == 0 {
                half
            } else {
                half + 1
            }
        }
    }
}

impl Rules {
    /// transformers' rules for a Hugging Face preprocessor config: its image processors crop at
    /// the floor in both major versions. transformers 5's `convert_to_rgb` composites
    /// transparency over white, 4's is Pillow's `convert("RGB")`; a flat
    /// `preprocessor_config.json` does not say which wrote it (both write the same keys), and
    /// the tools that make such folders without `clipflow.json` (optimum, which pins
    /// transformers 4; transformers.js) drop it, so only transformers 5's nested
    /// `processor_config.json` with `do_convert_rgb` gets white.
    fn of_transformers(transformers5_converts_rgb: bool) -> Rules {
        Rules {
            crop_rounding: CropRounding::Floor,
            crop_rounding_from: "transformers' rule for a Hugging Face preprocessor config".into(),
            transparency: if transformers5_converts_rgb {
                Transparency::White
            } else {
                Transparency::Drop
            },
            transparency_from: if transformers5_converts_rgb {
                "transformers 5's rule (processor_config.json with do_convert_rgb)".into()
            } else {
                "Pillow's convert(\"RGB\") (transformers 4; a preprocessor_config.json does not \
                 say which transformers wrote it)"
                    .into()
            },
        }
    }
}

/// How [`Preprocess::geometry`] places the resize and the crop.
struct Geometry {
    /// The resized size.
    tw: usize,
    th: usize,
    /// The crop's (width, height).
    crop: (usize, usize),
    /// Zero columns and rows before the window, where the crop is larger than the image.
    pad: (usize, usize),
    /// The crop's part of the resized image.
    window: Window,
}

/// A decoded image, or the part of it a resize reads.
pub struct Decoded {
    /// The pixels of the window at (`left`, `top`) of the decoded image.
    pub image: Rgbx,
    pub left: usize,
    pub top: usize,
    /// The decoded image's size (a JPEG at a DCT scale is smaller than the file's).
    pub scaled: (usize, usize),
    /// The file's size.
    pub width: usize,
    pub height: usize,
}

impl Decoded {
    /// All of an image decoded at its full size.
    pub fn whole(image: Rgbx) -> Decoded {
        let (w, h) = (image.width, image.height);
        Decoded {
            image,
            left: 0,
            top: 0,
            scaled: (w, h),
            width: w,
            height: h,
        }
    }

    fn placed(&self) -> resample::Placed<'_> {
        resample::Placed {
            image: &self.image,
            left: self.left,
            top: self.top,
            full_width: self.scaled.0,
            full_height: self.scaled.1,
        }
    }
}

/// Decodes image bytes to 8-bit RGB the way Pillow's `Image.open(...).convert("RGB")` does
/// (transparency dropped).
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeFailure> {
    let d = decode_rgbx(bytes, max_pixels, Transparency::Drop, JpegRead::WHOLE)?;
    RgbImage::from_raw(
        d.image.width as u32,
        d.image.height as u32,
        d.image.to_rgb(),
    )
    .ok_or_else(|| DecodeFailure {
        stage: "decode",
        reason: "short pixel buffer".into(),
    })
}

/// How much of a JPEG [`decode_rgbx`] decodes, decided from its header: other formats are
/// decoded whole.
#[derive(Clone, Copy)]
pub struct JpegRead<'a> {
    /// The DCT scale numerator (8 = full size) for the header's (width, height).
    pub scale: &'a dyn Fn(usize, usize) -> u8,
    /// The part of the scaled image to decode, from (scaled width, scaled height, width,
    /// height); `None`: all.
    pub region: &'a dyn Fn(usize, usize, usize, usize) -> Option<Window>,
}

impl JpegRead<'static> {
    /// The whole image at full size.
    pub const WHOLE: JpegRead<'static> = JpegRead {
        scale: &|_, _| 8,
        region: &|_, _, _, _| None,
    };
}

/// Decodes image bytes to 8-bit RGBX as Pillow's `convert("RGB")` would give them, or, with
/// `Transparency::White`, as transformers 5's `convert_to_rgb` does: `convert("RGBA")`, then
/// `alpha_composite` over opaque white; a JPEG only as far as `jpeg` asks. Nothing is
/// allocated for the pixels before the header's size has passed `max_pixels`.
pub fn decode_rgbx(
    bytes: &[u8],
    max_pixels: u64,
    transparency: Transparency,
    jpeg: JpegRead,
) -> Result<Decoded, DecodeFailure> {
    let fail = |reason: String| DecodeFailure {
        stage: "decode",
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("empty file (0 bytes)".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| fail(e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(fail("not an image (unrecognised format)".into()));
    };
    if format == ImageFormat::Jpeg {
        if jpeg_is_truncated(bytes) {
            return Err(fail(
                "truncated JPEG (no end-of-image marker after the last scan)".into(),
            ));
        }
        let plan = |w: usize, h: usize| {
            check_pixels(w as u64, h as u64, max_pixels)?;
            Ok((jpeg.scale)(w, h))
        };
        let d = jpeg::decode(bytes, &plan, jpeg.region)
            .map_err(|e| fail(format!("cannot decode Jpeg: {e}")))?;
        return Ok(Decoded {
            image: Rgbx {
                width: d.region.width,
                height: d.region.height,
                data: d.data,
            },
            left: d.region.left,
            top: d.region.top,
            scaled: d.scaled,
            width: d.full.0,
            height: d.full.1,
        });
    }
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| fail(format!("unreadable {format:?} header: {e}")))?;
    check_pixels(w as u64, h as u64, max_pixels).map_err(fail)?;
    let pixels = w as u64 * h as u64;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w.max(1));
    limits.max_image_height = Some(h.max(1));
    limits.max_alloc = Some(pixels.saturating_mul(16).max(1 << 26));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| fail(format!("cannot decode {format:?}: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    // The decoder expands palettes and `tRNS` chunks to an alpha channel, as Pillow's
    // convert("RGBA") does: that alpha is what white compositing reads.
    let white = transparency == Transparency::White && img.color().has_alpha();
    let image = match img {
        // Pillow opens 16-bit RGB(A) PNGs as 8-bit RGB(A) holding the high byte of each value
        // (v >> 8); image's own conversion rounds v / 257, one level apart on ~half the values.
        DynamicImage::ImageRgb16(b) => Rgbx {
            width: w,
            height: h,
            data: b
                .pixels()
                .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8, 255])
                .collect(),
        },
        DynamicImage::ImageRgba16(b) => Rgbx {
            width: w,
            height: h,
            data: b
                .pixels()
                .flat_map(|p| {
                    let a = if white { (p[3] >> 8) as u8 } else { 255 };
                    [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8, a]
                })
                .collect(),
        },
        other if white => Rgbx {
            width: w,
            height: h,
            data: other.to_rgba8().into_raw(),
        },
        other => Rgbx::from_rgb(w, h, other.to_rgb8().as_raw()),
    };
    let image = if white { over_white(image) } else { image };
    Ok(Decoded::whole(image))
}

/// Pillow's `alpha_composite(white, image).convert("RGB")` on RGBA pixels (the fourth byte
/// becomes the padding byte, 255). Pillow's integer formula (`ImagingAlphaComposite`, 7 extra
/// bits) with an opaque white destination has exact coefficients `128·a` and `128·(255 − a)`,
/// and then equals `(v·a + 255·(255 − a)) / 255` rounded to nearest; `tests/golden.rs` checks
/// every (value, alpha) pair against Pillow.
fn over_white(mut image: Rgbx) -> Rgbx {
    for p in image.data.chunks_exact_mut(4) {
        let a = p[3] as u32;
        if a != 255 {
            for v in &mut p[..3] {
                *v = composite_over_white(*v, a);
            }
        }
        p[3] = 255;
    }
    image
}

/// One channel of [`over_white`]: `(t + 0x80·128)`, divided by 255 with Pillow's
/// `SHIFTFORDIV255`, then by 128.
fn composite_over_white(v: u8, a: u32) -> u8 {
    if a == 0 {
        return 255;
    }
    let t = 128 * (v as u32 * a + 255 * (255 - a)) + (0x80 << 7);
    ((((t >> 8) + t) >> 8) >> 7) as u8
}

fn check_pixels(w: u64, h: u64, max_pixels: u64) -> Result<(), String> {
    let pixels = w * h;
    if pixels > max_pixels {
        return Err(format!(
            "{w}x{h} = {pixels} pixels is over dataset.max_pixels ({max_pixels}); \
             possible decompression bomb"
        ));
    }
    if pixels == 0 {
        return Err(format!("{w}x{h}: the image has no pixels"));
    }
    Ok(())
}

/// In entropy-coded JPEG data every 0xFF is followed by 0x00 or a restart marker, so an
/// end-of-image marker after the last start-of-scan marks a complete file; a download or copy
/// cut short lacks it. (libjpeg would otherwise decode the missing part as grey.)
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    // Nearly every file ends with its end-of-image marker, which then follows every scan.
    if bytes.ends_with(&[0xFF, 0xD9]) {
        return false;
    }
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(i) => !bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => true,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The first multiple of eight pixels of `data` (RGBX) normalised into the three planes:
    /// `(v · scale − mean) / std` per channel, in f32, as the scalar path computes it. Returns
    /// how many pixels it wrote.
    ///
    /// # Safety
    /// The CPU has AVX2; `data` holds four bytes for each place of the planes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn normalize_avx2(
        data: &[u8],
        planes: [&mut [f32]; 3],
        scale: f32,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> usize {
        let n = planes[0].len() / 8 * 8;
        assert!(data.len() >= 4 * n && planes.iter().all(|p| p.len() >= n));
        let byte = _mm256_set1_epi32(0xFF);
        let scale = _mm256_set1_ps(scale);
        let mean = mean.map(|m| _mm256_set1_ps(m));
        let std = std.map(|s| _mm256_set1_ps(s));
        let [r, g, b] = planes;
        for i in (0..n).step_by(8) {
            // SAFETY: 32 bytes from pixel i lie in `data` (i + 8 <= n pixels).
            let v = unsafe { _mm256_loadu_si256(data.as_ptr().add(4 * i) as *const __m256i) };
            let channels = [
                _mm256_and_si256(v, byte),
                _mm256_and_si256(_mm256_srli_epi32::<8>(v), byte),
                _mm256_and_si256(_mm256_srli_epi32::<16>(v), byte),
            ];
            for (c, plane) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
                let x = _mm256_mul_ps(_mm256_cvtepi32_ps(channels[c]), scale);
                let x = _mm256_div_ps(_mm256_sub_ps(x, mean[c]), std[c]);
                // SAFETY: i + 8 <= n places of the plane.
                unsafe { _mm256_storeu_ps(plane.as_mut_ptr().add(i), x) };
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offsets_follow_each_reference() {
        use CropRounding::{Floor, HalfEven};
        // (size, crop, torchvision's offset, transformers'), each worked out from their code:
        // torchvision int(round((size - crop) / 2.0)) after padding (crop - size) // 2 zeros
        // before a larger crop; transformers (size - crop) // 2.
        let cases = [
            (224, 224, 0, 0),
            (225, 224, 0, 0),   // 0.5: round 0, floor 0
            (226, 224, 1, 1),   // even margin: both 1
            (227, 224, 2, 1),   // 1.5: round 2, floor 1
            (229, 224, 2, 2),   // 2.5: round 2, floor 2
            (231, 224, 4, 3),   // 3.5: round 4, floor 3
            (300, 224, 38, 38), // even
            (47, 32, 8, 7),     // 7.5: a CLIP at 32 px on a 3:2 landscape
            (200, 224, -12, -12),
            (201, 224, -11, -12), // 23 more: torchvision pads 11 before, transformers 12
            (223, 224, 0, -1),    // 1 more: torchvision pads 0 before, transformers 1
            (1, 4, -1, -2),
        ];
        for (size, crop, half_even, floor) in cases {
            assert_eq!(
                crop_offset(size, crop, HalfEven),
                half_even,
                "{size} {crop}"
            );
            assert_eq!(crop_offset(size, crop, Floor), floor, "{size} {crop}");
        }
    }

    #[test]
    fn crop_rounding_moves_the_crop_of_an_odd_margin() {
        // A 7x4 image whose pixels hold their column, cropped to 4x4 without resizing: margin 3.
        let img = RgbImage::from_fn(7, 4, |x, _| image::Rgb([x as u8 * 10, 0, 0]));
        let mut p = Preprocess::from_json(&serde_json::json!({
            "do_resize": false, "crop_size": 4, "do_rescale": false}))
        .unwrap();
        assert_eq!(p.rules.crop_rounding, CropRounding::Floor);
        assert_eq!(p.to_pixels(&img).unwrap().data[0], 10.0); // floor(1.5) = 1
        p.rules.crop_rounding = CropRounding::HalfEven;
        assert_eq!(p.to_pixels(&img).unwrap().data[0], 20.0); // round(1.5) = 2
                                                              // A crop larger than the image: 2x1 in a 4x4 crop, zeros around it.
        let small = RgbImage::from_fn(1, 2, |_, y| image::Rgb([100 + y as u8, 0, 0]));
        let first_row_with_pixels = |p: &Preprocess| {
            let px = p.to_pixels(&small).unwrap();
            (0..4).find(|y| px.data[(y * 4 + 1) * 3] != 0.0 || px.data[(y * 4 + 2) * 3] != 0.0)
        };
        // Width 1 in 4: torchvision pads 1 before (column 1), transformers 2 (column 2); the
        // rows (2 in 4, an even margin) start at 1 for both.
        let col = |p: &Preprocess| {
            let px = p.to_pixels(&small).unwrap();
            (0..4).find(|x| px.data[(4 + x) * 3] != 0.0)
        };
        assert_eq!((col(&p), first_row_with_pixels(&p)), (Some(1), Some(1)));
        p.rules.crop_rounding = CropRounding::Floor;
        assert_eq!((col(&p), first_row_with_pixels(&p)), (Some(2), Some(1)));
    }

    #[test]
    fn rules_follow_the_config_then_clipflow_json_then_the_study() {
        // A flat preprocessor_config.json: transformers' floor, transparency dropped.
        let flat = serde_json::json!({"image_processor_type": "CLIPImageProcessor",
            "do_convert_rgb": true, "size": {"shortest_edge": 224}, "crop_size": 224});
        let p = Preprocess::from_json(&flat).unwrap();
        assert_eq!(
            (p.rules.crop_rounding, p.rules.transparency),
            (CropRounding::Floor, Transparency::Drop)
        );
        // transformers 5's nested processor_config.json converting to RGB: white.
        let nested = serde_json::json!({"image_processor": flat.clone()});
        let p = Preprocess::from_json(&nested).unwrap();
        assert_eq!(p.rules.transparency, Transparency::White);
        assert!(p.rules.transparency_from.contains("transformers 5"));
        // clipflow.json's record wins over the config's default...
        let info = serde_json::json!({"preprocess": {"crop_rounding": "half_even",
            "transparency": "drop", "reference": "open_clip 3.3.0"}});
        let recorded = Preprocess::recorded_rules(&info).unwrap();
        let p = Preprocess::from_json(&nested)
            .unwrap()
            .with_rules(Some(&recorded), None);
        assert_eq!(
            (p.rules.crop_rounding, p.rules.transparency),
            (CropRounding::HalfEven, Transparency::Drop)
        );
        assert_eq!(p.rules.crop_rounding_from, "clipflow.json: open_clip 3.3.0");
        // ...and the study's wins over both, rule by rule.
        let study = ModelPreprocessConfig {
            crop_rounding: None,
            transparency: Some(Transparency::White),
        };
        let p = p.with_rules(None, Some(&study));
        assert_eq!(
            (p.rules.crop_rounding, p.rules.transparency),
            (CropRounding::HalfEven, Transparency::White)
        );
        assert!(p.rules.transparency_from.contains("models[].preprocess"));
        // A clipflow.json from before the record: the rules of the library it names.
        let legacy = serde_json::json!({"source": {"library": "open_clip 3.3.0"}});
        let r = Preprocess::recorded_rules(&legacy).unwrap();
        assert_eq!(r.crop_rounding, Some(CropRounding::HalfEven));
        let legacy = serde_json::json!({"source": {"library": "transformers 4.57.6"}});
        assert_eq!(
            Preprocess::recorded_rules(&legacy).unwrap(),
            RecordedRules::default()
        );
        // Bad records name their key.
        let bad = serde_json::json!({"preprocess": {"crop_rounding": "ceil"}});
        let e = Preprocess::recorded_rules(&bad).unwrap_err();
        assert!(
            e.contains("preprocess.crop_rounding") && e.contains("ceil"),
            "{e}"
        );
        let bad = serde_json::json!({"preprocess": {"transparency": 3}});
        assert!(Preprocess::recorded_rules(&bad)
            .unwrap_err()
            .contains("preprocess.transparency"));
    }

    #[test]
    fn white_compositing_is_pillows_formula_at_the_ends() {
        for v in [0u8, 1, 127, 254, 255] {
            assert_eq!(composite_over_white(v, 0), 255);
            assert_eq!(composite_over_white(v, 255), v);
        }
    }

    #[test]
    fn both_config_forms_parse() {
        let legacy: serde_json::Value =
            serde_json::from_str(r#"{"size": 224, "crop_size": 224, "resample": 3}"#).unwrap();
        let p = Preprocess::from_json(&legacy).unwrap();
        assert_eq!(p.resize, Resize::ShortestEdge(224));
        assert_eq!(p.crop, Some((224, 224)));
        let new: serde_json::Value = serde_json::from_str(
            r#"{"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 200},
                "image_mean": [0.5,0.5,0.5], "image_std": [0.5,0.5,0.5]}"#,
        )
        .unwrap();
        let p = Preprocess::from_json(&new).unwrap();
        assert_eq!(p.resize, Resize::ShortestEdge(256));
        assert_eq!(p.crop, Some((224, 200)));
        assert_eq!(p.mean, [0.5; 3]);
        let bad: serde_json::Value = serde_json::from_str(r#"{"size": {"foo": 1}}"#).unwrap();
        assert!(Preprocess::from_json(&bad).is_err());
    }

    #[test]
    fn crop_pct_and_nested_processor_configs_parse() {
        let convnext = serde_json::json!({"image_processor": {
            "image_processor_type": "ConvNextImageProcessor", "crop_pct": 0.875,
            "size": {"shortest_edge": 224}, "resample": 3}});
        let p = Preprocess::from_json(&convnext).unwrap();
        assert_eq!(
            (p.resize, p.crop),
            (Resize::ShortestEdge(256), Some((224, 224)))
        );
        let big = serde_json::json!({"crop_pct": 0.875, "size": {"shortest_edge": 384}});
        let p = Preprocess::from_json(&big).unwrap();
        assert_eq!(
            (p.resize, p.crop),
            (
                Resize::Exact {
                    height: 384,
                    width: 384
                },
                None
            )
        );
        assert!(Preprocess::from_json(&serde_json::json!({"crop_pct": 2.0, "size": 224})).is_err());
    }

    #[test]
    fn resize_keeps_aspect_with_truncated_long_side() {
        let p = Preprocess::from_json(&serde_json::json!({"size": 10, "do_center_crop": false}))
            .unwrap();
        let img = RgbImage::new(33, 20);
        let out = p.to_pixels(&img).unwrap();
        // int(10 * 33 / 20) = 16
        assert_eq!((out.width, out.height), (16, 10));
    }

    #[test]
    fn normalising_the_resize_band_by_band_gives_the_crop_normalised() {
        // Every pass order (none, both each way, horizontal only, vertical only), a crop
        // larger than the image (padded), NEAREST, and a region of a larger image, on every
        // instruction set; the reference is the crop, stored, then normalised.
        let noise = |w: usize, h: usize| Rgbx {
            width: w,
            height: h,
            data: (0..w * h * 4)
                .map(|i| ((i * 2_654_435_761usize) >> 13) as u8)
                .collect(),
        };
        let cases = [
            (serde_json::json!({"size": 24, "crop_size": 24}), 61, 24),
            (serde_json::json!({"size": 24, "crop_size": 24}), 24, 61),
            (serde_json::json!({"size": 24, "crop_size": 24}), 24, 24),
            (
                serde_json::json!({"size": 24, "crop_size": 24, "resample": 2}),
                83,
                70,
            ),
            (
                serde_json::json!({"size": 24, "crop_size": 24, "resample": 1}),
                70,
                200,
            ),
            (
                serde_json::json!({"size": {"height": 19, "width": 37}}),
                50,
                41,
            ),
            (
                serde_json::json!({"size": {"height": 41, "width": 30}}),
                50,
                41,
            ),
            (
                serde_json::json!({"size": {"height": 20, "width": 50}}),
                50,
                41,
            ),
            (serde_json::json!({"size": 24, "crop_size": 40}), 50, 30),
            (
                serde_json::json!({"size": 24, "crop_size": 24, "resample": 0}),
                61,
                47,
            ),
        ];
        for (cfg, w, h) in cases {
            let p = Preprocess::from_json(&cfg).unwrap();
            let img = noise(w, h);
            let whole = Decoded::whole(img.clone());
            let g = p.geometry((w, h), (w, h));
            let read = resample::input_window(w, h, g.tw, g.th, g.window, kernel(p.filter));
            let region = Decoded {
                image: Rgbx {
                    width: read.width,
                    height: read.height,
                    data: (read.top..read.top + read.height)
                        .flat_map(|y| {
                            img.data[(y * w + read.left) * 4..(y * w + read.left + read.width) * 4]
                                .to_vec()
                        })
                        .collect(),
                },
                left: read.left,
                top: read.top,
                ..Decoded::whole(img.clone())
            };
            let (cw, ch) = p.crop_size(&whole).unwrap();
            for isa in resample::Isa::available() {
                let mut want = vec![0.0f32; 3 * cw * ch];
                let crop = p.resize_crop_with(&whole, isa).unwrap();
                assert_eq!((crop.width, crop.height), (cw, ch));
                p.normalize_rgbx_with(&crop, &mut want, isa);
                let sources = [&whole, &region];
                for (d, source) in sources.iter().enumerate() {
                    if p.filter == Filter::Nearest && d == 1 {
                        continue; // NEAREST is always decoded whole
                    }
                    let mut got = vec![f32::NAN; want.len()];
                    p.resize_crop_normalize_with(source, &mut got, isa).unwrap();
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{cfg} {w}x{h} {isa:?} source {d}");
                }
            }
        }
    }

    #[test]
    fn every_normalize_path_gives_the_scalar_bits() {
        // Every value in every channel, 13x21 pixels (not a multiple of eight), SigLIP's and
        // CLIP's constants; the reference is `pixels_of` then `normalize_into`.
        let crop = Rgbx {
            width: 13,
            height: 21,
            data: (0..13 * 21 * 4)
                .map(|i| ((i * 7 + i / 4) % 256) as u8)
                .collect(),
        };
        for cfg in [
            serde_json::json!({"size": 13}),
            serde_json::json!({"size": 13, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}),
        ] {
            let p = Preprocess::from_json(&cfg).unwrap();
            let mut want = vec![0.0f32; 3 * 13 * 21];
            p.normalize_into(&p.pixels_of(&crop), &mut want);
            for isa in resample::Isa::available() {
                let mut got = vec![f32::NAN; want.len()];
                p.normalize_rgbx_with(&crop, &mut got, isa);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa:?} {cfg}");
            }
        }
    }

    #[test]
    fn fast_mode_scales_jpegs_only_while_they_stay_at_least_the_target() {
        // Numerators over 8: 640x480 at 4/8 is 320x240, still at least 298x224.
        assert_eq!(dct_scale(640, 480, 298, 224), 4);
        // 2000x1500 at 1/8 is 250x188, too small; at 2/8, 500x375.
        assert_eq!(dct_scale(2000, 1500, 298, 224), 2);
        assert_eq!(dct_scale(300, 300, 224, 224), 8);
        assert_eq!(dct_scale(250, 250, 64, 64), 4);
        let p = Preprocess::from_json(&serde_json::json!({"size": 64, "crop_size": 64})).unwrap();
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/landscape.jpg"),
        )
        .unwrap();
        let exact = p.load(&bytes, u64::MAX, Mode::Exact).unwrap();
        let fast = p.load(&bytes, u64::MAX, Mode::Fast).unwrap();
        assert_eq!((fast.width, fast.height), (64, 64));
        let mean = exact
            .data
            .iter()
            .zip(&fast.data)
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .sum::<f64>()
            / exact.data.len() as f64;
        assert!(mean > 0.0 && mean < 3.0, "{mean}");
        // Not a JPEG: fast mode is exact.
        let png = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/square.png"),
        )
        .unwrap();
        assert_eq!(
            p.load(&png, u64::MAX, Mode::Fast).unwrap(),
            p.load(&png, u64::MAX, Mode::Exact).unwrap()
        );
    }

    #[test]
    fn decode_failures_say_why() {
        assert!(decode(b"", 100).unwrap_err().reason.contains("0 bytes"));
        assert!(decode(b"hello world, not an image", 100)
            .unwrap_err()
            .reason
            .contains("not an image"));
        let mut png = Vec::new();
        RgbImage::new(20, 20)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        assert!(decode(&png, 10_000).is_ok());
        assert!(decode(&png, 399).unwrap_err().reason.contains("max_pixels"));
        let mut jpg = Vec::new();
        RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 3, 7]))
            .write_to(&mut Cursor::new(&mut jpg), ImageFormat::Jpeg)
            .unwrap();
        assert!(decode(&jpg, 10_000).is_ok());
        let cut = &jpg[..jpg.len() * 2 / 3];
        assert!(decode(cut, 10_000)
            .unwrap_err()
            .reason
            .contains("truncated"));
        assert!(decode(&png[..png.len() / 2], 10_000).is_err());
    }
}
