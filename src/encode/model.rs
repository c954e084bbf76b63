//! Model folders as people have them: Xenova/transformers.js, optimum's single `model.onnx`,
//! fastembed's split vision/text folders, or explicit paths.

use std::path::{Path, PathBuf};

use super::EncodeError;
use crate::config::ModelConfig;

/// How the ONNX graphs of a model are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `onnx/vision_model.onnx` + `onnx/text_model.onnx` (or both at the root).
    Xenova,
    /// One `model.onnx` taking `input_ids`, `attention_mask` and `pixel_values`.
    Combined,
    /// A vision folder and a text folder, each with a `model.onnx` (fastembed).
    Split,
    /// `vision_path` / `text_path` given in the config.
    Explicit,
}

/// The files of one model, found but not yet opened.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub name: String,
    pub dir: PathBuf,
    pub layout: Layout,
    pub vision: PathBuf,
    /// Equal to `vision` for the combined layout.
    pub text: PathBuf,
    pub preprocessor_config: PathBuf,
    pub tokenizer: PathBuf,
    /// `tokenizer_config.json`, when present (pad token, max length).
    pub tokenizer_config: Option<PathBuf>,
}

impl ModelFiles {
    /// Every distinct file clipflow reads for this model (hashed into the manifest).
    pub fn all_files(&self) -> Vec<PathBuf> {
        let mut files = vec![
            self.vision.clone(),
            self.text.clone(),
            self.preprocessor_config.clone(),
            self.tokenizer.clone(),
        ];
        files.extend(self.tokenizer_config.clone());
        files.dedup();
        files
    }
}

/// Finds a model's files. `index` is the model's position in `models:`, for error messages.
pub fn locate(config: &ModelConfig, index: usize) -> Result<ModelFiles, EncodeError> {
    let key = |k: &str| format!("models.{index}.{k}");
    let dir = PathBuf::from(&config.path);
    if !dir.is_dir() {
        return Err(EncodeError::ModelFiles {
            key: key("path"),
            message: format!("{} is not a folder", dir.display()),
        });
    }
    let name = match &config.name {
        Some(n) => n.clone(),
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into()),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(EncodeError::ModelFiles {
            key: key("name"),
            message: format!(
                "`{name}` must be letters, digits, '-', '_' or '.' (it names output folders)"
            ),
        });
    }

    let (layout, vision, text) = if config.vision_path.is_some() || config.text_path.is_some() {
        let pick = |p: &Option<String>, k: &str| -> Result<PathBuf, EncodeError> {
            let p = p.as_ref().ok_or_else(|| EncodeError::ModelFiles {
                key: key(k),
                message: "vision_path and text_path go together".into(),
            })?;
            let p = PathBuf::from(p);
            let file = if p.is_dir() { p.join("model.onnx") } else { p };
            if !file.is_file() {
                return Err(EncodeError::ModelFiles {
                    key: key(k),
                    message: format!("{} does not exist", file.display()),
                });
            }
            Ok(file)
        };
        (
            Layout::Explicit,
            pick(&config.vision_path, "vision_path")?,
            pick(&config.text_path, "text_path")?,
        )
    } else if let Some((v, t)) = xenova(&dir) {
        (Layout::Xenova, v, t)
    } else if dir.join("model.onnx").is_file() {
        let m = dir.join("model.onnx");
        (Layout::Combined, m.clone(), m)
    } else if let Some((v, t)) = split(&dir) {
        (Layout::Split, v, t)
    } else {
        return Err(EncodeError::ModelFiles {
            key: key("path"),
            message: format!(
                "{}: no ONNX model found; looked for onnx/vision_model.onnx + onnx/text_model.onnx, \
                 vision_model.onnx + text_model.onnx, model.onnx, or vision/ and text/ folders \
                 with a model.onnx each",
                dir.display()
            ),
        });
    };

    let near = |file: &str, anchors: &[&Path]| -> Option<PathBuf> {
        let mut candidates = vec![dir.join(file)];
        for a in anchors {
            if let Some(parent) = a.parent() {
                candidates.push(parent.join(file));
                if let Some(grand) = parent.parent() {
                    candidates.push(grand.join(file));
                }
            }
        }
        candidates.into_iter().find(|c| c.is_file())
    };
    let preprocessor_config =
        near("preprocessor_config.json", &[&vision]).ok_or_else(|| EncodeError::ModelFiles {
            key: key("path"),
            message: format!(
                "{}: no preprocessor_config.json beside the vision model",
                dir.display()
            ),
        })?;
    let tokenizer = near("tokenizer.json", &[&text]).ok_or_else(|| EncodeError::ModelFiles {
        key: key("path"),
        message: format!("{}: no tokenizer.json beside the text model", dir.display()),
    })?;
    let tokenizer_config = tokenizer
        .parent()
        .map(|p| p.join("tokenizer_config.json"))
        .filter(|p| p.is_file());
    Ok(ModelFiles {
        name,
        dir,
        layout,
        vision,
        text,
        preprocessor_config,
        tokenizer,
        tokenizer_config,
    })
}

fn xenova(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    [dir.join("onnx"), dir.to_path_buf()]
        .into_iter()
        .find_map(|d| {
            let v = d.join("vision_model.onnx");
            let t = d.join("text_model.onnx");
            (v.is_file() && t.is_file()).then_some((v, t))
        })
}

fn split(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    subdirs.sort();
    let named = |words: &[&str]| {
        subdirs.iter().find(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            words.iter().any(|w| n.contains(w))
        })
    };
    let v = named(&["vision", "visual", "image", "img"])?;
    let t = named(&["text", "textual"])?;
    Some((v.join("model.onnx"), t.join("model.onnx")))
}
