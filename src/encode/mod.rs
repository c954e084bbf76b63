//! Encode stage: images and texts to L2-normalised embeddings with models exported to ONNX
//! (CLIP and SigLIP pairs, or one-tower encoders such as DINOv2, a ResNet or BERT), in batches,
//! with decoding and preprocessing overlapping inference.
//!
//! Entry points: [`model::locate`] finds a model's files (used by `clipflow validate`),
//! [`Encoder::load`] opens it, [`encode_images`] and [`encode_texts`] stream batches to a
//! caller-supplied sink (the store), so this stage never knows how results are kept.
//! A tower's graph output goes through [`pooling`] (when it is per token) and an optional
//! [`projection`] before normalisation.

pub mod jpeg;
pub mod model;
mod pipeline;
pub mod pooling;
pub mod preprocess;
pub mod projection;
pub mod resample;
pub mod runtime;
pub mod scoring;
pub mod text;

use std::path::PathBuf;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::config::{Pooling, Tower};
use model::tower_name;
pub use model::{locate, Layout, ModelFiles, TowerFiles};
pub use pipeline::{
    decode_pool, encode_images, encode_texts, EncodedBatch, ImageJob, RowFailure, TextInput,
};
pub use preprocess::Preprocess;
pub use projection::Projection;
pub use runtime::{DeviceRequest, Placement, SessionSettings};
pub use scoring::Scoring;
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

/// An opened model, ready to embed with the towers its files give and the study uses.
pub struct Encoder {
    pub files: ModelFiles,
    /// Present when the image tower is used.
    pub preprocess: Option<Preprocess>,
    /// Present when the text tower is used.
    pub tokenizer: Option<TextTokenizer>,
    /// (height, width) of the pixel tensor.
    pub input_size: (usize, usize),
    /// Dimension of the stored embeddings (after pooling and projection); both towers agree.
    pub dim: usize,
    pub placement: Placement,
    /// How this model's image–text cosines become probabilities.
    pub scoring: Scoring,
    sessions: Vec<Session>,
    /// Token ids and mask of the empty text: the text inputs a combined graph needs when only
    /// images are embedded. Computed once at load, not per batch.
    dummy_text: (Vec<i64>, Vec<i64>),
    image: Option<Role>,
    text: Option<Role>,
}

/// How to call one tower: which session, which inputs, which output, how to pool and project.
struct Role {
    session: usize,
    output: String,
    pooling: Pooling,
    pixels: Option<String>,
    ids: Option<(String, TensorElementType)>,
    mask: Option<(String, TensorElementType)>,
    token_types: Option<(String, TensorElementType)>,
    /// The sequence length the graph fixes, if it does.
    fixed_len: Option<usize>,
    projection: Option<Projection>,
}

/// What the manifest records about a tower.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TowerSummary {
    pub graph: PathBuf,
    pub output: String,
    pub pooling: Pooling,
    pub projection: Option<PathBuf>,
}

impl Encoder {
    /// Opens a model's sessions, reads its preprocessing and tokenizer, and runs one probe
    /// image and text through the towers it uses, so a broken model fails before any work
    /// starts.
    ///
    /// `encodes_text` says whether the study sends any caption or prompt through this model.
    /// When it does not, a text tower in a graph of its own is left closed and its tokenizer
    /// unparsed: opening them was most of an image-only run's start-up with a small model (60
    /// of 95 ms on 2,000 textiles, README "Benchmarks and fidelity"), and with a ViT-B/32
    /// export it is a 250 MB graph read for nothing. The manifest's `towers_not_opened` says
    /// so. A text tower in the image tower's own graph is opened all the same: that graph
    /// takes text inputs with every image, and they stay the tokenizer's empty text. Without
    /// the text graph, scoring found only in ONNX metadata is read from the image graph
    /// (`scripts/export_clip.py` writes it into both); no table of such a study scores texts.
    /// The model's files are hashed into the run's identity all the same.
    pub fn load(
        files: &ModelFiles,
        settings: SessionSettings,
        encodes_text: bool,
        warn: &dyn Fn(&str),
    ) -> Result<Encoder, EncodeError> {
        if files.image.is_none() && files.text.is_none() {
            return Err(EncodeError::Model {
                path: files.dir.clone(),
                message: "the model has no tower to encode with".into(),
            });
        }
        let text_files = files.text.as_ref().filter(|t| {
            encodes_text
                || match &files.image {
                    Some(image) => image.graph == t.graph,
                    None => true,
                }
        });
        // The tokenizer parses on its own thread while the sessions open (each ~50 ms for a
        // small model, the larger part of a short run's start-up). A failed session returns
        // first and the detached parse is dropped.
        let parsing = text_files
            .and(files.tokenizer.clone())
            .map(|path| std::thread::spawn(move || text::parse(&path)));
        let mut sessions: Vec<Session> = Vec::new();
        let mut graphs: Vec<PathBuf> = Vec::new();
        let mut placement = None;
        let mut open = |path: &PathBuf| -> Result<usize, EncodeError> {
            if let Some(i) = graphs.iter().position(|g| g == path) {
                return Ok(i);
            }
            // The CPU fallback warning is given once, for the first graph.
            let (s, p) = if placement.is_none() {
                runtime::open_session(path, settings, warn)?
            } else {
                runtime::open_session(path, settings, &|_| {})?
            };
            placement.get_or_insert(p);
            sessions.push(s);
            graphs.push(path.clone());
            Ok(sessions.len() - 1)
        };
        let image_session = files.image.as_ref().map(|t| open(&t.graph)).transpose()?;
        let text_session = text_files.map(|t| open(&t.graph)).transpose()?;
        let placement = placement.unwrap_or(Placement {
            device: "cpu".into(),
            fallback_reason: None,
        });

        let mut image = match (&files.image, image_session) {
            (Some(t), Some(i)) => Some(role(&sessions[i], t, i, Tower::Image)?),
            _ => None,
        };
        let mut text = match (text_files, text_session) {
            (Some(t), Some(i)) => Some(role(&sessions[i], t, i, Tower::Text)?),
            _ => None,
        };

        let preprocess = match image {
            Some(_) => files.preprocess()?,
            None => None,
        };
        // A combined graph wants pixels even for texts: its fixed size, else the preprocessing's.
        let pixel_role = image
            .as_ref()
            .or(text.as_ref().filter(|t| t.pixels.is_some()));
        let model_hw =
            pixel_role.and_then(|r| pixel_shape(&sessions[r.session], r.pixels.as_deref()));
        let input_size = match (&preprocess, &files.preprocessor_config) {
            (Some(pre), Some(pre_path)) => match (pre.output_size(), model_hw) {
                (Some((h, w)), Some((mh, mw))) if (h as usize, w as usize) != (mh, mw) => {
                    return Err(EncodeError::Preprocessor {
                        path: pre_path.clone(),
                        message: format!(
                            "crops to {h}x{w} but {} takes {mh}x{mw}",
                            files
                                .image
                                .as_ref()
                                .map(|t| t.graph.display().to_string())
                                .unwrap_or_default()
                        ),
                    })
                }
                (Some((h, w)), _) => (h as usize, w as usize),
                (None, Some(hw)) => hw,
                (None, None) => {
                    return Err(EncodeError::Preprocessor {
                        path: pre_path.clone(),
                        message: "no center crop and no fixed model input size: images of \
                                  different shapes cannot be batched"
                            .into(),
                    })
                }
            },
            _ => model_hw.unwrap_or((224, 224)),
        };

        let tokenizer = match (&text, &files.tokenizer) {
            (Some(role), Some(tok_path)) => {
                let from_files = || {
                    TextTokenizer::max_length_from_files(
                        tok_path,
                        files.tokenizer_config.as_deref(),
                    )
                };
                let context = match (role.fixed_len, files.context_length) {
                    (Some(fixed), Some(c)) if c != fixed => {
                        return Err(EncodeError::ModelFiles {
                            key: "context_length".into(),
                            message: format!(
                                "{c}, but {} takes exactly {fixed} tokens",
                                files
                                    .text
                                    .as_ref()
                                    .map(|t| t.graph.display().to_string())
                                    .unwrap_or_default()
                            ),
                        })
                    }
                    (Some(fixed), _) => fixed,
                    (None, Some(c)) => c,
                    (None, None) => from_files().unwrap_or(CLIP_CONTEXT),
                };
                let parsed = match parsing {
                    Some(handle) => handle
                        .join()
                        .unwrap_or_else(|_| Err("the tokenizer parser panicked".into())),
                    None => text::parse(tok_path),
                };
                Some(TextTokenizer::from_parsed(
                    parsed,
                    tok_path,
                    files.tokenizer_config.as_deref(),
                    context,
                )?)
            }
            _ => None,
        };
        // Texts through a combined graph when only images are wanted: the empty text, or one
        // start token when there is no tokenizer.
        let dummy_text = match (&tokenizer, image.as_ref().and_then(|r| r.ids.as_ref())) {
            (Some(tok), _) => tok.encode("").map_err(|message| EncodeError::Tokenizer {
                path: files.tokenizer.clone().unwrap_or_default(),
                message,
            })?,
            (None, Some(_)) => {
                let n = ids_length(
                    &sessions[image.as_ref().map(|r| r.session).unwrap_or(0)],
                    image.as_ref().and_then(|r| r.ids.as_ref()),
                )
                .unwrap_or(CLIP_CONTEXT);
                let mut ids = vec![0i64; n];
                ids[0] = 49406;
                if n > 1 {
                    ids[1] = 49407;
                }
                let mask = (0..n).map(|i| i64::from(i < 2)).collect();
                (ids, mask)
            }
            (None, None) => (Vec::new(), Vec::new()),
        };

        for (r, t) in [(&mut image, files.image.as_ref()), (&mut text, text_files)] {
            if let (Some(r), Some(t)) = (r.as_mut(), t) {
                if let Some(p) = &t.projection {
                    r.projection = Some(Projection::load(p, settings)?);
                }
            }
        }

        let scoring = {
            let file = match &files.export_info {
                Some(p) => scoring::read_export_info(p).map_err(|message| EncodeError::Model {
                    path: p.clone(),
                    message,
                })?,
                None => scoring::Recorded::default(),
            };
            let session = text_session.or(image_session).unwrap_or(0);
            let meta = sessions[session].metadata().ok();
            let get = |k: &str| meta.as_ref().and_then(|m| m.custom(k));
            let recorded = scoring::read_metadata(&get).map_err(|message| EncodeError::Model {
                path: graphs[session].clone(),
                message,
            })?;
            drop(meta);
            scoring::resolve(files.scoring.as_ref(), &file, &recorded)
        };

        let mut encoder = Encoder {
            files: files.clone(),
            dummy_text,
            preprocess,
            tokenizer,
            input_size,
            dim: 0,
            placement,
            scoring,
            sessions,
            image,
            text,
        };
        let (h, w) = input_size;
        let image_dim = match encoder.image {
            Some(_) => Some(encoder.raw_images(&vec![0.0; 3 * h * w], 1)?.1),
            None => None,
        };
        let text_dim = match &encoder.tokenizer {
            Some(tok) => {
                let (ids, mask) =
                    tok.encode("a photo")
                        .map_err(|message| EncodeError::Tokenizer {
                            path: files.tokenizer.clone().unwrap_or_default(),
                            message,
                        })?;
                Some(encoder.raw_texts(&ids, &mask, 1)?.1)
            }
            None => None,
        };
        encoder.dim = match (image_dim, text_dim) {
            (Some(i), Some(t)) if i != t => {
                return Err(EncodeError::Model {
                    path: files.dir.clone(),
                    message: format!(
                        "image embeddings have {i} dimensions but text embeddings {t}; a \
                         `projection` on one tower can map it to the other's dimension"
                    ),
                })
            }
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) => 0,
        };
        Ok(encoder)
    }

    /// The towers this encoder embeds with: those of its files the study uses.
    pub fn towers(&self) -> Vec<Tower> {
        [
            self.image.as_ref().map(|_| Tower::Image),
            self.text.as_ref().map(|_| Tower::Text),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The towers of the model's files that [`Encoder::load`] left closed, and why.
    pub fn towers_not_opened(&self) -> Vec<(Tower, &'static str)> {
        match (&self.files.text, &self.text) {
            (Some(_), None) => vec![(Tower::Text, "the study encodes no caption or prompt")],
            _ => Vec::new(),
        }
    }

    /// What the manifest records about each tower used.
    pub fn tower_summaries(&self) -> Vec<(Tower, TowerSummary)> {
        let mut out = Vec::new();
        for (tower, role, files) in [
            (Tower::Image, &self.image, &self.files.image),
            (Tower::Text, &self.text, &self.files.text),
        ] {
            if let (Some(r), Some(f)) = (role, files) {
                out.push((
                    tower,
                    TowerSummary {
                        graph: f.graph.clone(),
                        output: r.output.clone(),
                        pooling: r.pooling,
                        projection: r.projection.as_ref().map(|p| p.path().to_path_buf()),
                    },
                ));
            }
        }
        out
    }

    /// The manifest's description of this model (besides its file hashes).
    pub fn describe(&self) -> serde_json::Value {
        let towers: serde_json::Map<String, serde_json::Value> = self
            .tower_summaries()
            .into_iter()
            .map(|(t, s)| {
                (
                    tower_name(t).to_string(),
                    serde_json::to_value(s).unwrap_or_default(),
                )
            })
            .collect();
        serde_json::json!({
            "name": self.files.name,
            "path": self.files.dir.display().to_string(),
            "layout": self.files.layout,
            "towers": towers,
            "embedding_dim": self.dim,
            "input_size": self.image.as_ref().map(|_| [self.input_size.0, self.input_size.1]),
            "context_length": self.tokenizer.as_ref().map(|t| t.context_length),
            "pad_id": self.tokenizer.as_ref().map(|t| t.pad),
            "preprocess": self.preprocess,
            "scoring": self.scoring,
            "device": self.placement,
            "towers_not_opened": self
                .towers_not_opened()
                .into_iter()
                .map(|(t, why)| (tower_name(t).to_string(), serde_json::json!(why)))
                .collect::<serde_json::Map<_, _>>(),
        })
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

    /// Pooled and projected, not normalised.
    fn raw_images(&mut self, pixels: &[f32], n: usize) -> Result<(Vec<f32>, usize), EncodeError> {
        let (h, w) = self.input_size;
        let Some(role) = &self.image else {
            return Err(self.fail(&"this model has no image tower"));
        };
        let pixel_name = role.pixels.clone().unwrap_or_default();
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        let t = TensorRef::from_array_view(([n, 3, h, w], pixels)).map_err(|e| self.fail(&e))?;
        inputs.push((pixel_name, t.into()));
        // A combined graph wants text inputs too: give it one short dummy text.
        let dummy = &self.dummy_text;
        let zeros = vec![0i64; dummy.0.len()];
        for (input, values) in [
            (&role.ids, &dummy.0),
            (&role.mask, &dummy.1),
            (&role.token_types, &zeros),
        ] {
            if let Some((name, ty)) = input {
                inputs.push((
                    name.clone(),
                    int_tensor(values, *ty, 1).map_err(|e| self.fail(&e))?,
                ));
            }
        }
        let session = role.session;
        let (shape, data) = self.run(session, inputs, Tower::Image)?;
        self.finish(Tower::Image, &shape, &data, n, None)
    }

    /// Pooled and projected, not normalised.
    fn raw_texts(
        &mut self,
        ids: &[i64],
        mask: &[i64],
        n: usize,
    ) -> Result<(Vec<f32>, usize), EncodeError> {
        let Some(role) = &self.text else {
            return Err(self.fail(&"this model has no text tower"));
        };
        let cols = ids.len() / n.max(1);
        // A graph with a free sequence axis and an attention mask gets the batch cut to its
        // longest text: the mask hides the padding, so the result is the same, and a BERT is
        // not run over 512 positions for a ten-token caption.
        let (ids, mask, cols) = match (&role.mask, role.fixed_len) {
            (Some(_), None) => {
                let longest = mask
                    .chunks_exact(cols.max(1))
                    .map(|m| m.iter().rposition(|&v| v != 0).map_or(1, |i| i + 1))
                    .max()
                    .unwrap_or(cols)
                    .min(cols);
                if longest < cols {
                    let cut = |v: &[i64]| -> Vec<i64> {
                        v.chunks_exact(cols)
                            .flat_map(|r| r[..longest].to_vec())
                            .collect()
                    };
                    (cut(ids), cut(mask), longest)
                } else {
                    (ids.to_vec(), mask.to_vec(), cols)
                }
            }
            _ => (ids.to_vec(), mask.to_vec(), cols),
        };
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        let zeros = vec![0i64; ids.len()];
        for (input, values) in [
            (&role.ids, &ids),
            (&role.mask, &mask),
            (&role.token_types, &zeros),
        ] {
            if let Some((name, ty)) = input {
                inputs.push((
                    name.clone(),
                    int_tensor(values, *ty, n).map_err(|e| self.fail(&e))?,
                ));
            }
        }
        let pixel_zeros;
        if let Some(name) = &role.pixels {
            let (h, w) = self.input_size;
            pixel_zeros = vec![0.0f32; 3 * h * w];
            let t = TensorRef::from_array_view(([1, 3, h, w], pixel_zeros.as_slice()))
                .map_err(|e| self.fail(&e))?;
            inputs.push((name.clone(), t.into()));
        }
        let pooling_mask = role.mask.is_some().then_some(mask.as_slice());
        debug_assert!(pooling_mask.is_none_or(|m| m.len() == n * cols));
        let session = role.session;
        let (shape, data) = self.run(session, inputs, Tower::Text)?;
        self.finish(Tower::Text, &shape, &data, n, pooling_mask)
    }

    fn run(
        &mut self,
        session: usize,
        inputs: Vec<(String, ort::session::SessionInputValue<'_>)>,
        tower: Tower,
    ) -> Result<(Vec<i64>, Vec<f32>), EncodeError> {
        let model = self.files.name.clone();
        let fail = |message: String| EncodeError::Inference {
            model: model.clone(),
            message,
        };
        let output = match tower {
            Tower::Image => self.image.as_ref(),
            Tower::Text => self.text.as_ref(),
        }
        .map(|r| r.output.clone())
        .unwrap_or_default();
        let inputs: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = inputs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let outputs = self.sessions[session]
            .run(inputs)
            .map_err(|e| fail(e.to_string()))?;
        let value = outputs
            .get(&output)
            .ok_or_else(|| fail(format!("no output `{output}`")))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| fail(format!("output `{output}`: {e}")))?;
        Ok((shape.iter().copied().collect(), data.to_vec()))
    }

    /// Pools and projects one tower's output.
    fn finish(
        &mut self,
        tower: Tower,
        shape: &[i64],
        data: &[f32],
        n: usize,
        mask: Option<&[i64]>,
    ) -> Result<(Vec<f32>, usize), EncodeError> {
        let model = self.files.name.clone();
        let role = match tower {
            Tower::Image => self.image.as_mut(),
            Tower::Text => self.text.as_mut(),
        };
        let Some(role) = role else {
            return Err(EncodeError::Inference {
                model,
                message: "no such tower".into(),
            });
        };
        let key = match tower {
            Tower::Image => "image",
            Tower::Text => "text",
        };
        let (pooled, dim) = pooling::pool(shape, data, n, mask, role.pooling).map_err(|m| {
            EncodeError::Inference {
                model: model.clone(),
                message: format!(
                    "{key} output `{}` {m} (models[].{key}.pooling)",
                    role.output
                ),
            }
        })?;
        match &mut role.projection {
            None => Ok((pooled, dim)),
            Some(p) => {
                let path = p.path().display().to_string();
                p.apply(&pooled, n, dim)
                    .map_err(|m| EncodeError::Inference {
                        model,
                        message: format!("{key} projection {path}: {m}"),
                    })
            }
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

fn role(
    session: &Session,
    tower_files: &TowerFiles,
    index: usize,
    tower: Tower,
) -> Result<Role, EncodeError> {
    let path = &tower_files.graph;
    let bad = |message: String| EncodeError::Model {
        path: path.to_path_buf(),
        message,
    };
    let mut pixels = None;
    let mut ids = None;
    let mut mask = None;
    let mut token_types = None;
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
            // BERT-style exports: one segment, all zeros.
            "token_type_ids" => token_types = Some((input.name().to_string(), ty)),
            other => {
                return Err(bad(format!(
                    "unexpected input `{other}`; clipflow feeds pixel_values, input_ids, \
                     attention_mask and token_type_ids"
                )))
            }
        }
    }
    let key = match tower {
        Tower::Image => "image",
        Tower::Text => "text",
    };
    let (needed, preferred): (&str, &[&str]) = match tower {
        Tower::Image => (
            "pixel_values",
            &["image_embeds", "image_features", "embeddings"],
        ),
        Tower::Text => (
            "input_ids",
            &[
                "text_embeds",
                "text_features",
                "sentence_embedding",
                "embeddings",
            ],
        ),
    };
    let has_needed = match tower {
        Tower::Image => pixels.is_some(),
        Tower::Text => ids.is_some(),
    };
    if !has_needed {
        return Err(bad(format!(
            "no `{needed}` input, so it is not a {key} encoder"
        )));
    }
    let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    let listed = names.join(", ");
    let pooling = tower_files.pooling;
    let output = if let Some(o) = &tower_files.output {
        if !names.contains(&o.as_str()) {
            return Err(bad(format!(
                "no output `{o}` (models[].{key}.output); outputs: {listed}"
            )));
        }
        o.clone()
    } else {
        let pick = |wanted: &str| -> Result<String, EncodeError> {
            names
                .iter()
                .find(|n| **n == wanted)
                .map(|s| s.to_string())
                .ok_or_else(|| {
                    bad(format!(
                        "pooling `{}` reads `{wanted}`, which this graph does not output \
                         (outputs: {listed}); name one with models[].{key}.output",
                        serde_json::to_value(pooling)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ))
                })
        };
        match pooling {
            Pooling::PoolerOutput => pick("pooler_output")?,
            Pooling::Cls | Pooling::Mean | Pooling::Last => {
                if names.len() == 1 {
                    names[0].to_string()
                } else {
                    pick("last_hidden_state")?
                }
            }
            Pooling::None => preferred
                .iter()
                .find(|p| names.contains(p))
                .map(|s| s.to_string())
                .or_else(|| (names.len() == 1).then(|| names[0].to_string()))
                .ok_or_else(|| {
                    bad(format!(
                        "cannot tell which output is the embedding (outputs: {listed}); \
                         expected one of {}, or set models[].{key}.pooling (pooler_output, \
                         cls, mean, last) or models[].{key}.output",
                        preferred.join(", ")
                    ))
                })?,
        }
    };
    let fixed_len = ids_length(session, ids.as_ref());
    Ok(Role {
        session: index,
        output,
        pooling,
        pixels,
        ids,
        mask,
        token_types,
        fixed_len,
        projection: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    /// A study without texts leaves a text graph of its own closed and says so; a combined
    /// graph (optimum's one model.onnx) keeps its text inputs. Either way the image
    /// embeddings, the dimension and the scoring are the ones a full load gives.
    #[test]
    fn a_study_without_texts_opens_no_separate_text_tower() {
        let settings = SessionSettings {
            device: DeviceRequest::Cpu,
            intra_threads: 1,
        };
        for (fixture, separate) in [("xenova", true), ("optimum", false)] {
            let config = ModelConfig {
                path: format!(
                    "{}/tests/fixtures/models/{fixture}",
                    env!("CARGO_MANIFEST_DIR")
                ),
                ..Default::default()
            };
            let files = locate(&config, 0).unwrap();
            let mut full = Encoder::load(&files, settings, true, &|_| {}).unwrap();
            let mut images_only = Encoder::load(&files, settings, false, &|_| {}).unwrap();
            assert_eq!(full.towers(), vec![Tower::Image, Tower::Text], "{fixture}");
            assert!(full.towers_not_opened().is_empty(), "{fixture}");
            let record = images_only.describe();
            if separate {
                assert_eq!(images_only.towers(), vec![Tower::Image], "{fixture}");
                assert!(images_only.tokenizer.is_none(), "{fixture}");
                assert_eq!(
                    record["towers_not_opened"]["text"],
                    "the study encodes no caption or prompt"
                );
                assert!(record["towers"].get("text").is_none(), "{record}");
            } else {
                assert_eq!(images_only.towers(), full.towers(), "{fixture}");
                assert_eq!(record["towers_not_opened"], serde_json::json!({}));
            }
            assert_eq!(
                (images_only.dim, &images_only.scoring),
                (full.dim, &full.scoring)
            );
            let (h, w) = full.input_size;
            let pixels: Vec<f32> = (0..2 * 3 * h * w)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            assert_eq!(
                images_only.embed_pixels(&pixels, 2).unwrap(),
                full.embed_pixels(&pixels, 2).unwrap(),
                "{fixture}"
            );
        }
    }
}
