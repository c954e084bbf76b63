//! Encode stage: images and texts to L2-normalised embeddings with CLIP models exported to
//! ONNX, in batches, with decoding and preprocessing overlapping inference.
//!
//! Entry points: [`model::locate`] finds a model's files (used by `clipflow validate`),
//! [`Encoder::load`] opens it, [`encode_images`] and [`encode_texts`] stream batches to a
//! caller-supplied sink (the store), so this stage never knows how results are kept.

pub mod model;
mod pipeline;
pub mod preprocess;
pub mod resample;
pub mod runtime;
pub mod text;

use std::path::PathBuf;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

pub use model::{locate, Layout, ModelFiles};
pub use pipeline::{
    decode_pool, encode_images, encode_texts, EncodedBatch, ImageJob, RowFailure, TextInput,
};
pub use preprocess::Preprocess;
pub use runtime::{DeviceRequest, Placement, SessionSettings};
pub use text::TextTokenizer;

/// Errors of the encode stage.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{key}: {message}")]
    ModelFiles { key: String, message: String },
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Preprocessor { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    Device(String),
    #[error("{model}: inference failed: {message}")]
    Inference { model: String, message: String },
}

/// The context length of CLIP's text tower.
pub const CLIP_CONTEXT: usize = 77;

/// An opened model, ready to embed.
pub struct Encoder {
    pub files: ModelFiles,
    pub preprocess: Preprocess,
    pub tokenizer: TextTokenizer,
    /// (height, width) of the pixel tensor.
    pub input_size: (usize, usize),
    pub dim: usize,
    pub placement: Placement,
    sessions: Vec<Session>,
    /// Token ids and mask of the empty text: the text inputs a combined graph needs when only
    /// images are embedded. Computed once at load, not per batch.
    dummy_text: (Vec<i64>, Vec<i64>),
    vision: Role,
    text: Role,
}

/// How to call one tower: which session, which inputs, which output.
struct Role {
    session: usize,
    output: String,
    pixels: Option<String>,
    ids: Option<(String, TensorElementType)>,
    mask: Option<(String, TensorElementType)>,
}

impl Encoder {
    /// Opens a model's sessions, reads its preprocessing and tokenizer, and runs one probe
    /// image and text through it, so a broken model fails before any work starts.
    pub fn load(
        files: &ModelFiles,
        settings: SessionSettings,
        warn: &dyn Fn(&str),
    ) -> Result<Encoder, EncodeError> {
        let preprocess = Preprocess::from_file(&files.preprocessor_config)?;
        let mut sessions = Vec::new();
        let (vision_session, placement) = runtime::open_session(&files.vision, settings, warn)?;
        sessions.push(vision_session);
        let text_index = if files.text == files.vision {
            0
        } else {
            // The fallback warning was given once for the vision tower.
            let (s, _) = runtime::open_session(&files.text, settings, &|_| {})?;
            sessions.push(s);
            1
        };
        let vision = role(&sessions[0], &files.vision, 0, Tower::Vision)?;
        let text = role(&sessions[text_index], &files.text, text_index, Tower::Text)?;

        let model_hw = pixel_shape(&sessions[0], vision.pixels.as_deref());
        let input_size = match (preprocess.output_size(), model_hw) {
            (Some((h, w)), Some((mh, mw))) if (h as usize, w as usize) != (mh, mw) => {
                return Err(EncodeError::Preprocessor {
                    path: files.preprocessor_config.clone(),
                    message: format!(
                        "crops to {h}x{w} but {} takes {mh}x{mw}",
                        files.vision.display()
                    ),
                })
            }
            (Some((h, w)), _) => (h as usize, w as usize),
            (None, Some(hw)) => hw,
            (None, None) => {
                return Err(EncodeError::Preprocessor {
                    path: files.preprocessor_config.clone(),
                    message: "no center crop and no fixed model input size: images of \
                              different shapes cannot be batched"
                        .into(),
                })
            }
        };
        let context = ids_length(&sessions[text_index], text.ids.as_ref()).unwrap_or(CLIP_CONTEXT);
        let tokenizer = TextTokenizer::from_files(
            &files.tokenizer,
            files.tokenizer_config.as_deref(),
            context,
        )?;
        let dummy_text = tokenizer
            .encode("")
            .map_err(|message| EncodeError::Tokenizer {
                path: files.tokenizer.clone(),
                message,
            })?;
        let mut encoder = Encoder {
            files: files.clone(),
            dummy_text,
            preprocess,
            tokenizer,
            input_size,
            dim: 0,
            placement,
            sessions,
            vision,
            text,
        };
        let (h, w) = input_size;
        let image_dim = encoder.raw_images(&vec![0.0; 3 * h * w], 1)?.1;
        let (ids, mask) =
            encoder
                .tokenizer
                .encode("a photo")
                .map_err(|message| EncodeError::Tokenizer {
                    path: files.tokenizer.clone(),
                    message,
                })?;
        let text_dim = encoder.raw_texts(&ids, &mask, 1)?.1;
        if image_dim != text_dim {
            return Err(EncodeError::Model {
                path: files.dir.clone(),
                message: format!(
                    "image embeddings have {image_dim} dimensions but text embeddings {text_dim}"
                ),
            });
        }
        encoder.dim = image_dim;
        Ok(encoder)
    }

    /// Embeds `n` preprocessed images (`pixels` is `[n,3,h,w]`), L2-normalised, row-major `n×D`.
    pub fn embed_pixels(&mut self, pixels: &[f32], n: usize) -> Result<Vec<f32>, EncodeError> {
        let (mut out, dim) = self.raw_images(pixels, n)?;
        normalize_rows(&mut out, dim);
        Ok(out)
    }

    /// Embeds `n` token rows, L2-normalised, row-major `n×D`.
    pub fn embed_tokens(
        &mut self,
        ids: &[i64],
        mask: &[i64],
        n: usize,
    ) -> Result<Vec<f32>, EncodeError> {
        let (mut out, dim) = self.raw_texts(ids, mask, n)?;
        normalize_rows(&mut out, dim);
        Ok(out)
    }

    fn raw_images(&mut self, pixels: &[f32], n: usize) -> Result<(Vec<f32>, usize), EncodeError> {
        let (h, w) = self.input_size;
        let pixel_name = self.vision.pixels.clone().unwrap_or_default();
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        let t = TensorRef::from_array_view(([n, 3, h, w], pixels)).map_err(|e| self.fail(&e))?;
        inputs.push((pixel_name, t.into()));
        // A combined graph wants text inputs too: give it one short dummy text.
        let dummy = &self.dummy_text;
        if let Some((name, ty)) = &self.vision.ids {
            inputs.push((
                name.clone(),
                int_tensor(&dummy.0, *ty, 1).map_err(|e| self.fail(&e))?,
            ));
        }
        if let Some((name, ty)) = &self.vision.mask {
            inputs.push((
                name.clone(),
                int_tensor(&dummy.1, *ty, 1).map_err(|e| self.fail(&e))?,
            ));
        }
        let (session, output) = (self.vision.session, self.vision.output.clone());
        self.run(session, inputs, &output, n)
    }

    fn raw_texts(
        &mut self,
        ids: &[i64],
        mask: &[i64],
        n: usize,
    ) -> Result<(Vec<f32>, usize), EncodeError> {
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        if let Some((name, ty)) = &self.text.ids {
            inputs.push((
                name.clone(),
                int_tensor(ids, *ty, n).map_err(|e| self.fail(&e))?,
            ));
        }
        if let Some((name, ty)) = &self.text.mask {
            inputs.push((
                name.clone(),
                int_tensor(mask, *ty, n).map_err(|e| self.fail(&e))?,
            ));
        }
        let zeros;
        if let Some(name) = &self.text.pixels {
            let (h, w) = self.input_size;
            zeros = vec![0.0f32; 3 * h * w];
            let t = TensorRef::from_array_view(([1, 3, h, w], zeros.as_slice()))
                .map_err(|e| self.fail(&e))?;
            inputs.push((name.clone(), t.into()));
        }
        let (session, output) = (self.text.session, self.text.output.clone());
        self.run(session, inputs, &output, n)
    }

    fn run(
        &mut self,
        session: usize,
        inputs: Vec<(String, ort::session::SessionInputValue<'_>)>,
        output: &str,
        n: usize,
    ) -> Result<(Vec<f32>, usize), EncodeError> {
        let model = self.files.name.clone();
        let fail = |message: String| EncodeError::Inference {
            model: model.clone(),
            message,
        };
        let inputs: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = inputs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let outputs = self.sessions[session]
            .run(inputs)
            .map_err(|e| fail(e.to_string()))?;
        let value = outputs
            .get(output)
            .ok_or_else(|| fail(format!("no output `{output}`")))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| fail(format!("output `{output}`: {e}")))?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        match dims.as_slice() {
            [rows, dim] if *rows as usize == n && *dim > 0 => Ok((data.to_vec(), *dim as usize)),
            _ => Err(fail(format!(
                "output `{output}` has shape {dims:?}; expected [{n}, D]"
            ))),
        }
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> EncodeError {
        EncodeError::Inference {
            model: self.files.name.clone(),
            message: e.to_string(),
        }
    }
}

/// Divides each row by its L2 norm (rows of zeros stay zeros).
pub fn normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let norm = row
            .iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for v in row.iter_mut() {
                *v = (*v as f64 / norm) as f32;
            }
        }
    }
}

fn int_tensor<'a>(
    values: &[i64],
    ty: TensorElementType,
    n: usize,
) -> ort::Result<ort::session::SessionInputValue<'a>> {
    let cols = values.len() / n.max(1);
    Ok(match ty {
        TensorElementType::Int32 => {
            let v: Vec<i32> = values.iter().map(|&x| x as i32).collect();
            ort::value::Tensor::from_array(([n, cols], v))?.into()
        }
        _ => ort::value::Tensor::from_array(([n, cols], values.to_vec()))?.into(),
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Tower {
    Vision,
    Text,
}

fn role(
    session: &Session,
    path: &std::path::Path,
    index: usize,
    tower: Tower,
) -> Result<Role, EncodeError> {
    let bad = |message: String| EncodeError::Model {
        path: path.to_path_buf(),
        message,
    };
    let mut pixels = None;
    let mut ids = None;
    let mut mask = None;
    for input in session.inputs() {
        let ty = match input.dtype() {
            ValueType::Tensor { ty, .. } => *ty,
            other => {
                return Err(bad(format!(
                    "input `{}` is {other:?}, not a tensor",
                    input.name()
                )))
            }
        };
        match input.name() {
            "pixel_values" => {
                if ty != TensorElementType::Float32 {
                    return Err(bad(format!(
                        "pixel_values is {ty:?}; clipflow feeds float32 (use an fp32 export)"
                    )));
                }
                pixels = Some(input.name().to_string());
            }
            "input_ids" => ids = Some((input.name().to_string(), ty)),
            "attention_mask" => mask = Some((input.name().to_string(), ty)),
            other => {
                return Err(bad(format!(
                    "unexpected input `{other}`; clipflow feeds pixel_values, input_ids and \
                     attention_mask"
                )))
            }
        }
    }
    let (needed, preferred): (&str, &[&str]) = match tower {
        Tower::Vision => (
            "pixel_values",
            &["image_embeds", "image_features", "embeddings"],
        ),
        Tower::Text => ("input_ids", &["text_embeds", "text_features", "embeddings"]),
    };
    let has_needed = match tower {
        Tower::Vision => pixels.is_some(),
        Tower::Text => ids.is_some(),
    };
    if !has_needed {
        return Err(bad(format!("no `{needed}` input")));
    }
    let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    let output = preferred
        .iter()
        .find(|p| names.contains(p))
        .map(|s| s.to_string())
        .or_else(|| (names.len() == 1).then(|| names[0].to_string()))
        .ok_or_else(|| {
            bad(format!(
                "cannot tell which output is the embedding (outputs: {}); expected one of {}",
                names.join(", "),
                preferred.join(", ")
            ))
        })?;
    Ok(Role {
        session: index,
        output,
        pixels,
        ids,
        mask,
    })
}

fn pixel_shape(session: &Session, name: Option<&str>) -> Option<(usize, usize)> {
    let input = session.inputs().iter().find(|i| Some(i.name()) == name)?;
    let shape = input.dtype().tensor_shape()?;
    let dims: Vec<i64> = shape.iter().copied().collect();
    match dims.as_slice() {
        [_, _, h, w] if *h > 0 && *w > 0 => Some((*h as usize, *w as usize)),
        _ => None,
    }
}

fn ids_length(session: &Session, ids: Option<&(String, TensorElementType)>) -> Option<usize> {
    let (name, _) = ids?;
    let input = session.inputs().iter().find(|i| i.name() == name)?;
    let dims: Vec<i64> = input.dtype().tensor_shape()?.iter().copied().collect();
    match dims.as_slice() {
        [_, n] if *n > 0 => Some(*n as usize),
        _ => None,
    }
}
