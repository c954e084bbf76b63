//! Model folders as people have them: Xenova/transformers.js, optimum's single `model.onnx`,
//! fastembed's split vision/text folders, or explicit paths; with one tower or two.
//!
//! Which towers a model has is decided from its files, never by opening the graphs, so
//! `clipflow validate` stays cheap: a Xenova folder has `vision_model.onnx` and/or
//! `text_model.onnx`; a single `model.onnx` (optimum) is an image tower when a preprocessor
//! config sits beside it and a text tower when a `tokenizer.json` does, as optimum writes them
//! for CLIP (both), DINOv2 (preprocessor only) and BERT (tokenizer only).

use std::path::{Path, PathBuf};

use super::preprocess::{ModelPreprocessConfig, Preprocess};
use super::EncodeError;
use crate::config::{ModelConfig, Pooling, ScoringConfig, Tower, TowerConfig};

/// How the ONNX graphs of a model are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `onnx/vision_model.onnx` and/or `onnx/text_model.onnx` (or at the root).
    Xenova,
    /// One `model.onnx` (optimum): CLIP's takes `input_ids`, `attention_mask` and
    /// `pixel_values`; a one-tower export takes one modality's inputs.
    Combined,
    /// A vision folder and/or a text folder, each with a `model.onnx` (fastembed).
    Split,
    /// Tower paths given in the config.
    Explicit,
}

/// One tower, found but not yet opened.
#[derive(Debug, Clone, PartialEq)]
pub struct TowerFiles {
    /// The ONNX graph (shared by both towers in the combined layout).
    pub graph: PathBuf,
    /// The output to read (`models[].<tower>.output`); `None` picks it by name.
    pub output: Option<String>,
    pub pooling: Pooling,
    /// `.npy` matrix or `.onnx` graph applied after pooling.
    pub projection: Option<PathBuf>,
}

/// The files of one model, found but not yet opened.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub name: String,
    pub dir: PathBuf,
    pub layout: Layout,
    /// The image tower, when the model has one and the study uses it.
    pub image: Option<TowerFiles>,
    /// The text tower, when the model has one and the study uses it.
    pub text: Option<TowerFiles>,
    /// `preprocessor_config.json` (or transformers 5's `processor_config.json`); present
    /// whenever `image` is.
    pub preprocessor_config: Option<PathBuf>,
    /// `tokenizer.json`; present whenever `text` is.
    pub tokenizer: Option<PathBuf>,
    /// `tokenizer_config.json`, when present (pad token, max length).
    pub tokenizer_config: Option<PathBuf>,
    /// `clipflow.json`, written by `scripts/export_clip.py`: the model's scoring.
    pub export_info: Option<PathBuf>,
    /// `models[].context_length`.
    pub context_length: Option<usize>,
    /// `models[].scoring`.
    pub scoring: Option<ScoringConfig>,
    /// `models[].preprocess`.
    pub preprocess: Option<ModelPreprocessConfig>,
}

impl ModelFiles {
    /// Every distinct file clipflow reads for this model (hashed into the manifest).
    pub fn all_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for t in [&self.image, &self.text].into_iter().flatten() {
            files.push(t.graph.clone());
            files.extend(t.projection.clone());
        }
        files.extend(self.preprocessor_config.clone());
        files.extend(self.tokenizer.clone());
        files.extend(self.tokenizer_config.clone());
        files.extend(self.export_info.clone());
        let mut seen = std::collections::BTreeSet::new();
        files.retain(|f| seen.insert(f.clone()));
        files
    }

    /// The towers the study encodes with, image first.
    pub fn towers(&self) -> Vec<Tower> {
        let mut t = Vec::new();
        if self.image.is_some() {
            t.push(Tower::Image);
        }
        if self.text.is_some() {
            t.push(Tower::Text);
        }
        t
    }

    /// The image preprocessing, when the image tower is used: the preprocessor config, with the
    /// rules `clipflow.json` recorded and then the study's `models[].preprocess` applied.
    pub fn preprocess(&self) -> Result<Option<Preprocess>, EncodeError> {
        let Some(path) = self
            .preprocessor_config
            .as_ref()
            .filter(|_| self.image.is_some())
        else {
            return Ok(None);
        };
        let pre = Preprocess::from_file(path)?;
        let recorded = match &self.export_info {
            None => None,
            Some(info) => {
                let bad = |message: String| EncodeError::Model {
                    path: info.clone(),
                    message,
                };
                let text = std::fs::read_to_string(info).map_err(|e| bad(e.to_string()))?;
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
                Some(Preprocess::recorded_rules(&v).map_err(bad)?)
            }
        };
        Ok(Some(
            pre.with_rules(recorded.as_ref(), self.preprocess.as_ref()),
        ))
    }

    /// Whether the study encodes this model's `tower`.
    pub fn has(&self, tower: Tower) -> bool {
        match tower {
            Tower::Image => self.image.is_some(),
            Tower::Text => self.text.is_some(),
        }
    }
}

/// Finds a model's files. `index` is the model's position in `models:`, for error messages.
pub fn locate(config: &ModelConfig, index: usize) -> Result<ModelFiles, EncodeError> {
    let key = |k: &str| format!("models.{index}.{k}");
    let err = |k: &str, message: String| EncodeError::ModelFiles {
        key: key(k),
        message,
    };
    let dir = PathBuf::from(&config.path);
    if !dir.is_dir() {
        return Err(err("path", format!("{} is not a folder", dir.display())));
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
        return Err(err(
            "name",
            format!("`{name}` must be letters, digits, '-', '_' or '.' (it names output folders)"),
        ));
    }
    if config.context_length == Some(0) {
        return Err(err("context_length", "must be at least 1".into()));
    }
    check_scoring(config.scoring.as_ref()).map_err(|(k, m)| err(&format!("scoring.{k}"), m))?;

    let image_cfg = config.image.clone().unwrap_or_default();
    let text_cfg = config.text.clone().unwrap_or_default();
    let image_path = explicit_path(&config.vision_path, &image_cfg.path, "vision_path", "image")
        .map_err(|(k, m)| err(&k, m))?;
    let text_path = explicit_path(&config.text_path, &text_cfg.path, "text_path", "text")
        .map_err(|(k, m)| err(&k, m))?;

    // Candidate graphs per tower, before `towers:` selects.
    let (layout, image_graph, text_graph) = if image_path.is_some() || text_path.is_some() {
        let pick = |p: Option<(String, String)>| -> Result<Option<PathBuf>, EncodeError> {
            let Some((k, p)) = p else { return Ok(None) };
            let p = PathBuf::from(p);
            let file = if p.is_dir() { p.join("model.onnx") } else { p };
            if !file.is_file() {
                return Err(err(&k, format!("{} does not exist", file.display())));
            }
            Ok(Some(file))
        };
        (Layout::Explicit, pick(image_path)?, pick(text_path)?)
    } else if let Some((v, t)) = xenova(&dir) {
        (Layout::Xenova, v, t)
    } else if dir.join("model.onnx").is_file() {
        let m = dir.join("model.onnx");
        let has_pre = preprocessor_near(&dir, &[&m]).is_some();
        let has_tok = near(&dir, "tokenizer.json", &[&m]).is_some();
        if !has_pre && !has_tok {
            return Err(err(
                "path",
                format!(
                    "{}: model.onnx has neither a preprocessor_config.json (image tower) nor a \
                     tokenizer.json (text tower) beside it",
                    dir.display()
                ),
            ));
        }
        (
            Layout::Combined,
            has_pre.then(|| m.clone()),
            has_tok.then(|| m.clone()),
        )
    } else if let Some((v, t)) = split(&dir) {
        (Layout::Split, v, t)
    } else {
        return Err(err(
            "path",
            format!(
                "{}: no ONNX model found; looked for onnx/vision_model.onnx and/or \
                 onnx/text_model.onnx (or at the root), model.onnx, or vision/ and/or text/ \
                 folders with a model.onnx each",
                dir.display()
            ),
        ));
    };

    // `towers:` chooses among what was found; by default every tower found is used.
    let wanted: Vec<Tower> = match &config.towers {
        None => [
            image_graph.as_ref().map(|_| Tower::Image),
            text_graph.as_ref().map(|_| Tower::Text),
        ]
        .into_iter()
        .flatten()
        .collect(),
        Some(list) => {
            if list.is_empty() {
                return Err(err("towers", "list image, text or both".into()));
            }
            let mut sorted = list.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != list.len() {
                return Err(err("towers", "lists a tower twice".into()));
            }
            for t in &sorted {
                let found = match t {
                    Tower::Image => image_graph.is_some(),
                    Tower::Text => text_graph.is_some(),
                };
                if !found {
                    return Err(err(
                        "towers",
                        format!(
                            "{}: no {} tower found (layout {layout:?})",
                            dir.display(),
                            tower_name(*t)
                        ),
                    ));
                }
            }
            sorted
        }
    };
    for (t, given, cfg_key) in [
        (Tower::Image, config.image.is_some(), "image"),
        (Tower::Text, config.text.is_some(), "text"),
    ] {
        if given && !wanted.contains(&t) {
            return Err(err(
                cfg_key,
                format!(
                    "configures the {} tower, which this model does not use (it has: {})",
                    tower_name(t),
                    wanted
                        .iter()
                        .map(|t| tower_name(*t))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }

    let tower = |t: Tower, graph: Option<PathBuf>, cfg: &TowerConfig, k: &str| {
        if !wanted.contains(&t) {
            return Ok(None);
        }
        let Some(graph) = graph else { return Ok(None) };
        let projection = match &cfg.projection {
            None => None,
            Some(p) => {
                let p = PathBuf::from(p);
                let ext = p
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase());
                if !matches!(ext.as_deref(), Some("npy") | Some("onnx")) {
                    return Err(err(
                        &format!("{k}.projection"),
                        format!("{}: expected a .npy matrix or an .onnx graph", p.display()),
                    ));
                }
                if !p.is_file() {
                    return Err(err(
                        &format!("{k}.projection"),
                        format!("{} does not exist", p.display()),
                    ));
                }
                Some(p)
            }
        };
        if cfg.output.as_deref() == Some("") {
            return Err(err(&format!("{k}.output"), "must not be empty".into()));
        }
        Ok(Some(TowerFiles {
            graph,
            output: cfg.output.clone(),
            pooling: cfg.pooling.unwrap_or(Pooling::None),
            projection,
        }))
    };
    let image = tower(Tower::Image, image_graph, &image_cfg, "image")?;
    let text = tower(Tower::Text, text_graph, &text_cfg, "text")?;

    let anchors: Vec<&Path> = [&image, &text]
        .into_iter()
        .flatten()
        .map(|t| t.graph.as_path())
        .collect();
    let preprocessor_config = match &image {
        None => None,
        Some(t) => Some(preprocessor_near(&dir, &[&t.graph]).ok_or_else(|| {
            err(
                "path",
                format!(
                    "{}: no preprocessor_config.json (or processor_config.json) beside the \
                     image model",
                    dir.display()
                ),
            )
        })?),
    };
    let tokenizer = match &text {
        None => None,
        Some(t) => Some(near(&dir, "tokenizer.json", &[&t.graph]).ok_or_else(|| {
            err(
                "path",
                format!("{}: no tokenizer.json beside the text model", dir.display()),
            )
        })?),
    };
    if config.preprocess.is_some() && image.is_none() {
        return Err(err(
            "preprocess",
            "sets image preprocessing, but the study uses no image tower of this model".into(),
        ));
    }
    let tokenizer_config = tokenizer
        .as_ref()
        .and_then(|t| t.parent())
        .map(|p| p.join("tokenizer_config.json"))
        .filter(|p| p.is_file());
    let export_info = near(&dir, "clipflow.json", &anchors);
    Ok(ModelFiles {
        name,
        dir,
        layout,
        image,
        text,
        preprocessor_config,
        tokenizer,
        tokenizer_config,
        export_info,
        context_length: config.context_length,
        scoring: config.scoring.clone(),
        preprocess: config.preprocess.clone(),
    })
}

pub(crate) fn tower_name(t: Tower) -> &'static str {
    match t {
        Tower::Image => "image",
        Tower::Text => "text",
    }
}

/// The tower path from `vision_path`/`text_path` or `image.path`/`text.path` (not both), with
/// the key that gave it.
fn explicit_path(
    legacy: &Option<String>,
    nested: &Option<String>,
    legacy_key: &str,
    tower_key: &str,
) -> Result<Option<(String, String)>, (String, String)> {
    match (legacy, nested) {
        (Some(_), Some(_)) => Err((
            legacy_key.to_string(),
            format!("give {legacy_key} or {tower_key}.path, not both"),
        )),
        (Some(p), None) => Ok(Some((legacy_key.to_string(), p.clone()))),
        (None, Some(p)) => Ok(Some((format!("{tower_key}.path"), p.clone()))),
        (None, None) => Ok(None),
    }
}

fn check_scoring(s: Option<&ScoringConfig>) -> Result<(), (String, String)> {
    let Some(s) = s else { return Ok(()) };
    if let Some(v) = s.logit_scale {
        if !(v.is_finite() && v > 0.0) {
            return Err(("logit_scale".into(), "must be a positive number".into()));
        }
    }
    if let Some(v) = s.logit_bias {
        if !v.is_finite() {
            return Err(("logit_bias".into(), "must be a finite number".into()));
        }
    }
    Ok(())
}

/// `file` in the model folder, beside one of the `anchors`, or one folder up.
fn near(dir: &Path, file: &str, anchors: &[&Path]) -> Option<PathBuf> {
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
}

/// transformers < 5 saves `preprocessor_config.json`; transformers 5's processors save
/// `processor_config.json` with the image processor nested in it.
fn preprocessor_near(dir: &Path, anchors: &[&Path]) -> Option<PathBuf> {
    near(dir, "preprocessor_config.json", anchors)
        .or_else(|| near(dir, "processor_config.json", anchors))
}

fn xenova(dir: &Path) -> Option<(Option<PathBuf>, Option<PathBuf>)> {
    [dir.join("onnx"), dir.to_path_buf()]
        .into_iter()
        .find_map(|d| {
            let v = Some(d.join("vision_model.onnx")).filter(|p| p.is_file());
            let t = Some(d.join("text_model.onnx")).filter(|p| p.is_file());
            (v.is_some() || t.is_some()).then_some((v, t))
        })
}

fn split(dir: &Path) -> Option<(Option<PathBuf>, Option<PathBuf>)> {
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
    let v = named(&["vision", "visual", "image", "img"]).map(|p| p.join("model.onnx"));
    let t = named(&["text", "textual"]).map(|p| p.join("model.onnx"));
    (v.is_some() || t.is_some()).then_some((v, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        d
    }

    fn cfg(dir: &Path) -> ModelConfig {
        ModelConfig {
            path: dir.display().to_string(),
            name: Some("m".into()),
            ..Default::default()
        }
    }

    #[test]
    fn one_tower_folders_are_found_by_their_files() {
        let d = folder(&["model.onnx", "preprocessor_config.json"]);
        let f = locate(&cfg(d.path()), 0).unwrap();
        assert_eq!(
            (f.layout, f.towers()),
            (Layout::Combined, vec![Tower::Image])
        );
        let d = folder(&["model.onnx", "tokenizer.json", "tokenizer_config.json"]);
        let f = locate(&cfg(d.path()), 0).unwrap();
        assert_eq!(f.towers(), vec![Tower::Text]);
        assert!(f.tokenizer_config.is_some() && f.preprocessor_config.is_none());
        let d = folder(&["onnx/vision_model.onnx", "processor_config.json"]);
        let f = locate(&cfg(d.path()), 0).unwrap();
        assert_eq!((f.layout, f.towers()), (Layout::Xenova, vec![Tower::Image]));
        assert!(f
            .preprocessor_config
            .unwrap()
            .ends_with("processor_config.json"));
        let d = folder(&["model.onnx"]);
        let e = locate(&cfg(d.path()), 3).unwrap_err().to_string();
        assert!(e.contains("models.3.path") && e.contains("neither"), "{e}");
    }

    #[test]
    fn towers_key_selects_and_checks() {
        let d = folder(&[
            "onnx/vision_model.onnx",
            "onnx/text_model.onnx",
            "preprocessor_config.json",
            "tokenizer.json",
        ]);
        let mut c = cfg(d.path());
        c.towers = Some(vec![Tower::Image]);
        let f = locate(&c, 0).unwrap();
        assert_eq!(f.towers(), vec![Tower::Image]);
        assert!(f.tokenizer.is_none());
        c.text = Some(TowerConfig {
            pooling: Some(Pooling::Mean),
            ..Default::default()
        });
        let e = locate(&c, 0).unwrap_err().to_string();
        assert!(
            e.contains("models.0.text") && e.contains("does not use"),
            "{e}"
        );

        let d = folder(&["onnx/vision_model.onnx", "preprocessor_config.json"]);
        let mut c = cfg(d.path());
        c.towers = Some(vec![Tower::Text]);
        let e = locate(&c, 0).unwrap_err().to_string();
        assert!(
            e.contains("models.0.towers") && e.contains("no text tower"),
            "{e}"
        );
    }

    #[test]
    fn explicit_towers_and_projection_are_checked() {
        let d = folder(&[
            "resnet/model.onnx",
            "resnet/preprocessor_config.json",
            "bert/model.onnx",
            "bert/tokenizer.json",
            "proj.npy",
            "proj.txt",
        ]);
        let root = d.path();
        let mut c = cfg(root);
        c.image = Some(TowerConfig {
            path: Some(root.join("resnet").display().to_string()),
            ..Default::default()
        });
        c.text = Some(TowerConfig {
            path: Some(root.join("bert/model.onnx").display().to_string()),
            pooling: Some(Pooling::Mean),
            projection: Some(root.join("proj.npy").display().to_string()),
            ..Default::default()
        });
        let f = locate(&c, 0).unwrap();
        assert_eq!(f.layout, Layout::Explicit);
        assert_eq!(f.towers(), vec![Tower::Image, Tower::Text]);
        assert!(f.tokenizer.unwrap().starts_with(root.join("bert")));
        assert!(f
            .preprocessor_config
            .unwrap()
            .starts_with(root.join("resnet")));
        assert_eq!(f.text.as_ref().unwrap().pooling, Pooling::Mean);

        c.text.as_mut().unwrap().projection = Some(root.join("proj.txt").display().to_string());
        let e = locate(&c, 0).unwrap_err().to_string();
        assert!(e.contains("models.0.text.projection"), "{e}");
        c.text.as_mut().unwrap().projection = Some(root.join("nope.npy").display().to_string());
        assert!(locate(&c, 0)
            .unwrap_err()
            .to_string()
            .contains("does not exist"));

        let mut c = cfg(root);
        c.vision_path = Some("a".into());
        c.image = Some(TowerConfig {
            path: Some("b".into()),
            ..Default::default()
        });
        assert!(locate(&c, 0).unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn bad_scoring_values_name_their_key() {
        let d = folder(&["model.onnx", "tokenizer.json"]);
        let mut c = cfg(d.path());
        c.scoring = Some(ScoringConfig {
            kind: None,
            logit_scale: Some(-1.0),
            logit_bias: None,
        });
        let e = locate(&c, 2).unwrap_err().to_string();
        assert!(e.contains("models.2.scoring.logit_scale"), "{e}");
    }
}
