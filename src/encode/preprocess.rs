//! Image preprocessing equal to OpenAI CLIP's reference (PIL + torchvision):
//! convert to RGB, resize the shorter side to `size` with the longer side `int(size·long/short)`
//! using Pillow's antialiased bicubic (reproduced exactly in [`super::resample`]), center crop
//! with torchvision's round-half-even offsets,
//! scale to [0,1], normalise by mean/std.
//!
//! Decoding follows Pillow too: no EXIF rotation, alpha dropped (not composited), palette and
//! grayscale expanded. Truncated files are errors, as in Pillow's default.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, RgbImage};

use super::resample::{self, Kernel};
use super::EncodeError;
use crate::augment::PixelImage;

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
    Bilinear,
    Bicubic,
    Lanczos,
}

/// A parsed `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Preprocess {
    pub resize: Resize,
    /// (height, width) of the center crop, if any.
    pub crop: Option<(u32, u32)>,
    pub filter: Filter,
    pub rescale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
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
        let v = match v.get("image_processor") {
            Some(nested) if nested.is_object() => nested,
            _ => v,
        };
        let converted = convnext_crop_pct(v)?;
        let v = converted.as_ref().unwrap_or(v);
        let flag = |k: &str, default: bool| v.get(k).and_then(|x| x.as_bool()).unwrap_or(default);
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
        let filter = match v.get("resample").and_then(|r| r.as_u64()).unwrap_or(3) {
            0 => Filter::Nearest,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            1 => Filter::Lanczos,
            other => {
                return Err(format!(
                    "resample: {other} is not a PIL filter clipflow supports"
                ))
            }
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
        })
    }

    /// (height, width) of the tensor the model receives, when fixed.
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.crop.or(match self.resize {
            Resize::Exact { height, width } => Some((height, width)),
            _ => None,
        })
    }

    /// Resize + crop to the model's input size, as [0,1] floats (before normalisation), the
    /// space pixel noise is applied in.
    pub fn to_pixels(&self, rgb: &RgbImage) -> Result<PixelImage, DecodeFailure> {
        let resized = self.resize_rgb(rgb)?;
        let (rw, rh) = (resized.width() as i64, resized.height() as i64);
        let (ch, cw) = self
            .crop
            .map(|(h, w)| (h as i64, w as i64))
            .unwrap_or((rh, rw));
        let top = crop_offset(rh, ch);
        let left = crop_offset(rw, cw);
        let raw = resized.as_raw();
        let mut data = vec![0.0f32; (ch * cw * 3) as usize];
        for y in 0..ch {
            let sy = y + top;
            if sy < 0 || sy >= rh {
                continue; // torchvision pads with zeros when the crop exceeds the image
            }
            for x in 0..cw {
                let sx = x + left;
                if sx < 0 || sx >= rw {
                    continue;
                }
                let s = ((sy * rw + sx) * 3) as usize;
                let d = ((y * cw + x) * 3) as usize;
                for c in 0..3 {
                    data[d + c] = raw[s + c] as f32 * self.rescale;
                }
            }
        }
        Ok(PixelImage {
            width: cw as usize,
            height: ch as usize,
            data,
        })
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

    fn resize_rgb(&self, rgb: &RgbImage) -> Result<RgbImage, DecodeFailure> {
        let (w, h) = (rgb.width(), rgb.height());
        let (tw, th) = match self.resize {
            Resize::None => return Ok(rgb.clone()),
            Resize::Exact { height, width } => (width, height),
            Resize::ShortestEdge(s) => {
                // int(size * long / short), as torchvision and transformers compute it.
                if w <= h {
                    (s, ((s as u64 * h as u64) / w as u64) as u32)
                } else {
                    (((s as u64 * w as u64) / h as u64) as u32, s)
                }
            }
        };
        if (tw, th) == (w, h) {
            return Ok(rgb.clone());
        }
        let (src, w, h, tw_, th_) = (
            rgb.as_raw(),
            w as usize,
            h as usize,
            tw as usize,
            th as usize,
        );
        let data = match self.filter {
            Filter::Nearest => resample::resize_nearest(src, w, h, tw_, th_),
            Filter::Bilinear => resample::resize_rgb8(src, w, h, tw_, th_, Kernel::Bilinear),
            Filter::Bicubic => resample::resize_rgb8(src, w, h, tw_, th_, Kernel::Bicubic),
            Filter::Lanczos => resample::resize_rgb8(src, w, h, tw_, th_, Kernel::Lanczos),
        };
        RgbImage::from_raw(tw, th, data).ok_or_else(|| DecodeFailure {
            stage: "preprocess",
            reason: format!("resize {w}x{h} to {tw}x{th}: buffer size"),
        })
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

/// torchvision's center-crop offset: `int(round((size - crop) / 2))` with Python's
/// round-half-to-even, and `-((crop - size) // 2)` when the crop is larger (zero padding).
fn crop_offset(size: i64, crop: i64) -> i64 {
    if crop > size {
        return -((crop - size) / 2);
    }
    let d = size - crop;
    let half = d / 2;
    if d % 2 == 0 || half % 2 == 0 {
        half
    } else {
        half + 1
    }
}

/// Decodes image bytes to 8-bit RGB the way Pillow's `Image.open(...).convert("RGB")` does.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeFailure> {
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
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| fail(format!("unreadable {format:?} header: {e}")))?;
    let pixels = w as u64 * h as u64;
    if pixels > max_pixels {
        return Err(fail(format!(
            "{w}x{h} = {pixels} pixels is over dataset.max_pixels ({max_pixels}); \
             possible decompression bomb"
        )));
    }
    if format == ImageFormat::Jpeg && jpeg_is_truncated(bytes) {
        return Err(fail(
            "truncated JPEG (no end-of-image marker after the last scan)".into(),
        ));
    }
    if format == ImageFormat::Jpeg {
        if let Some(rgb) = decode_jpeg_like_pillow(bytes).map_err(fail)? {
            return Ok(rgb);
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w.max(1));
    limits.max_image_height = Some(h.max(1));
    limits.max_alloc = Some(pixels.saturating_mul(16).max(1 << 26));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| fail(format!("cannot decode {format:?}: {e}")))?;
    Ok(img.to_rgb8())
}

/// Decodes a JPEG with libjpeg-turbo's algorithms (islow IDCT, fancy upsampling), as Pillow
/// does. `None` for CMYK/YCCK files: Pillow converts those itself, and the `image` crate's
/// conversion already matches it.
fn decode_jpeg_like_pillow(bytes: &[u8]) -> Result<Option<RgbImage>, String> {
    use mozjpeg::ColorSpace;
    let decoded =
        std::panic::catch_unwind(|| -> std::io::Result<Option<(usize, usize, Vec<u8>)>> {
            let d = mozjpeg::Decompress::new_mem(bytes)?;
            if matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK) {
                return Ok(None);
            }
            let mut started = d.rgb()?;
            let (w, h) = (started.width(), started.height());
            let pixels: Vec<[u8; 3]> = started.read_scanlines()?;
            started.finish()?;
            Ok(Some((w, h, pixels.into_iter().flatten().collect())))
        });
    match decoded {
        Ok(Ok(Some((w, h, data)))) => RgbImage::from_raw(w as u32, h as u32, data)
            .map(Some)
            .ok_or_else(|| "cannot decode Jpeg: short pixel buffer".to_string()),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(format!("cannot decode Jpeg: {e}")),
        Err(_) => Err("cannot decode Jpeg: libjpeg rejected the data".to_string()),
    }
}

/// In entropy-coded JPEG data every 0xFF is followed by 0x00 or a restart marker, so an
/// end-of-image marker after the last start-of-scan marks a complete file; a download or copy
/// cut short lacks it. (zune-jpeg would otherwise decode the missing part as grey.)
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(i) => !bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_offsets_follow_torchvision_rounding() {
        assert_eq!(crop_offset(224, 224), 0);
        assert_eq!(crop_offset(225, 224), 0); // round(0.5) = 0
        assert_eq!(crop_offset(227, 224), 2); // round(1.5) = 2
        assert_eq!(crop_offset(229, 224), 2); // round(2.5) = 2
        assert_eq!(crop_offset(231, 224), 4); // round(3.5) = 4
        assert_eq!(crop_offset(300, 224), 38);
        assert_eq!(crop_offset(200, 224), -12);
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
