//! Planning: a loaded config becomes a checked [`Plan`] — dataset listed, variants built, model
//! files found, prompts filled — or an error that names the YAML key. Nothing is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::analyze::{AnalysisPlan, Facts};
use crate::augment::{self, TextVariant, Variant};
use crate::config::{ConfigError, LineCol, LoadedConfig, PromptsConfig, Source, StudyConfig};
use crate::dataset::{self, Dataset, DEFAULT_MAX_PIXELS};
use crate::encode::{self, DeviceRequest, ModelFiles};

/// A study ready to run.
#[derive(Debug)]
pub struct Plan {
    pub config: LoadedConfig,
    pub run_dir: PathBuf,
    pub dataset: Dataset,
    pub variants: Vec<Variant>,
    /// Text variants of every caption and prompt (`texts.noise`), `clean` first.
    pub text_variants: Vec<TextVariant>,
    pub models: Vec<PlannedModel>,
    /// Encode item captions as texts.
    pub captions: bool,
    pub prompts: Vec<Prompt>,
    pub device: DeviceRequest,
    pub max_pixels: u64,
    /// The `analysis:` section read and checked, when the study has one.
    pub analysis: Option<AnalysisPlan>,
    /// What the plan left out and why (e.g. frost without textures); shown by run and validate.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn study(&self) -> &StudyConfig {
        &self.config.study
    }
}

/// One model of the plan.
#[derive(Debug, Clone)]
pub struct PlannedModel {
    pub files: ModelFiles,
    pub batch_size: usize,
}

/// A class prompt for zero-shot analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// `prompt:<class>:<template index>`.
    pub id: String,
    pub label: String,
    pub text: String,
}

/// Why a study cannot run. Always a problem of the config or its inputs (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {source}")]
    Dataset {
        path: PathBuf,
        source: Box<dataset::DatasetError>,
    },
    #[error("{path}: {source}")]
    Noise {
        path: PathBuf,
        source: augment::AugmentError,
    },
    #[error("{path}: {source}")]
    TextNoise {
        path: PathBuf,
        source: augment::TextNoiseError,
    },
    #[error("{path}: {source}")]
    Model {
        path: PathBuf,
        source: encode::EncodeError,
    },
    #[error("{path}: {key}: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// An error already located in the file (the analysis stages' settings).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Any of the above, with the line of the key it names.
    #[error("{path}{at}: {detail}")]
    Located {
        path: PathBuf,
        at: LineCol,
        detail: String,
    },
}

impl PlanError {
    /// The error with the line and column of the key it names, when the key is in the file:
    /// a dataset column that does not exist, a noise level out of range, a model folder
    /// without its files all point at the line to edit.
    fn located(self, source: &Source) -> PlanError {
        let (path, detail) = match &self {
            PlanError::Config(_) | PlanError::Located { .. } => return self,
            PlanError::Key { path, key, message } => (path.clone(), format!("{key}: {message}")),
            PlanError::Dataset { path, source } => (path.clone(), source.to_string()),
            PlanError::Noise { path, source } => (path.clone(), source.to_string()),
            PlanError::TextNoise { path, source } => (path.clone(), source.to_string()),
            PlanError::Model { path, source } => (path.clone(), source.to_string()),
        };
        let key = match &self {
            PlanError::Key { key, .. } => Some(key.clone()),
            _ => key_in(&detail),
        };
        let Some(key) = key else { return self };
        let at = source.position(&key);
        let detail = match source.set_by(&key) {
            Some(o) => format!("{detail} (set by --set {})", o.arg),
            None => detail,
        };
        PlanError::Located { path, at, detail }
    }
}

/// The first study key (`dataset.caption_column`, `noise.1.sigma`, `models.0.path`) a message
/// names, followed by a colon: how stage errors name what they are about.
fn key_in(message: &str) -> Option<String> {
    const ROOTS: &[&str] = &[
        "name", "seed", "out", "dataset", "noise", "models", "texts", "runtime", "analysis",
        "report",
    ];
    let bytes = message.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let at_boundary = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b'.'
                || bytes[start - 1] == b'/');
        if at_boundary {
            let end = message[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .map_or(message.len(), |e| start + e);
            let token = &message[start..end];
            let root = token.split('.').next().unwrap_or_default();
            if token.contains('.')
                && ROOTS.contains(&root)
                && message[end..].starts_with(':')
                && !token.ends_with('.')
            {
                return Some(token.to_string());
            }
        }
        start += message[start..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// Checks everything a run needs, reading the dataset listing and the model folders.
/// `out` overrides the run directory. Errors carry the line of the key they name.
pub fn plan(config: LoadedConfig, out: Option<&Path>) -> Result<Plan, PlanError> {
    let source = config.source.clone();
    plan_checked(config, out).map_err(|e| e.located(&source))
}

fn plan_checked(config: LoadedConfig, out: Option<&Path>) -> Result<Plan, PlanError> {
    let path = config.path.clone();
    let study = &config.study;
    let key_err = |key: &str, message: String| PlanError::Key {
        path: path.clone(),
        key: key.to_string(),
        message,
    };
    if study.name.trim().is_empty() {
        return Err(key_err("name", "must not be empty".into()));
    }
    if study.models.is_empty() {
        return Err(key_err("models", "list at least one model".into()));
    }
    let rt = &study.runtime;
    for (key, v) in [
        ("runtime.batch_size", rt.batch_size),
        ("runtime.part_size", rt.part_size),
        ("runtime.queue_depth", rt.queue_depth),
    ] {
        if v == 0 {
            return Err(key_err(key, "must be at least 1".into()));
        }
    }
    if study.report.max_table_rows == 0 || study.report.thumbnail_size < 16 {
        return Err(key_err(
            "report",
            "max_table_rows must be at least 1 and thumbnail_size at least 16".into(),
        ));
    }
    if !(16..=256).contains(&study.report.map_thumbnail_size) {
        return Err(key_err(
            "report.map_thumbnail_size",
            "must be between 16 and 256 pixels".into(),
        ));
    }
    let device =
        DeviceRequest::parse(&rt.device).map_err(|e| key_err("runtime.device", e.to_string()))?;

    let (variants, notes) =
        augment::variants_with_notes(&study.noise).map_err(|source| PlanError::Noise {
            path: path.clone(),
            source,
        })?;
    let text_variants = augment::text::text_variants(&study.texts.noise).map_err(|source| {
        PlanError::TextNoise {
            path: path.clone(),
            source,
        }
    })?;
    let mut models = Vec::new();
    for (i, m) in study.models.iter().enumerate() {
        let files = encode::locate(m, i).map_err(|source| PlanError::Model {
            path: path.clone(),
            source,
        })?;
        if models
            .iter()
            .any(|p: &PlannedModel| p.files.name == files.name)
        {
            return Err(key_err(
                &format!("models.{i}.name"),
                format!(
                    "two models are named `{}`; give one a distinct name",
                    files.name
                ),
            ));
        }
        if m.batch_size == Some(0) {
            return Err(key_err(
                &format!("models.{i}.batch_size"),
                "must be at least 1".into(),
            ));
        }
        // Read the preprocessing now: a malformed preprocessor_config.json (or clipflow.json
        // record) is a config error.
        files.preprocess().map_err(|source| PlanError::Model {
            path: path.clone(),
            source,
        })?;
        models.push(PlannedModel {
            files,
            batch_size: m.batch_size.unwrap_or(rt.batch_size),
        });
    }

    let dataset =
        dataset::open(&study.dataset, study.seed).map_err(|source| PlanError::Dataset {
            path: path.clone(),
            source: Box::new(source),
        })?;
    let captions = study.texts.captions && dataset.has_captions();
    // A dataset that ships its templates (CLIP_benchmark's WebDataset layout) gets its prompts
    // without YAML; its class names are used as written.
    let shipped = dataset.templates().map(|t| PromptsConfig {
        templates: Some(t.to_vec()),
        file: None,
        humanize: false,
    });
    let prompts = match study.texts.prompts.as_ref().or(shipped.as_ref()) {
        None => Vec::new(),
        Some(p) => {
            let labels = dataset.labels();
            if labels.is_empty() {
                return Err(key_err(
                    "texts.prompts",
                    "class prompts need labels, and the dataset has none (set dataset.label_column; a webdataset needs classnames.txt beside its shards)".into(),
                ));
            }
            build_prompts(p, &labels).map_err(|(key, message)| key_err(key, message))?
        }
    };
    let run_dir = out
        .map(Path::to_path_buf)
        .or_else(|| study.out.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("runs").join(&study.name));
    let max_pixels = study.dataset.max_pixels.unwrap_or(DEFAULT_MAX_PIXELS);
    let analysis = match &study.analysis {
        None => None,
        Some(section) => {
            let facts = Facts {
                variants: variants.iter().map(|v| v.name.clone()).collect(),
                items: dataset.item_count(),
                models: models.iter().map(|m| m.files.name.clone()).collect(),
            };
            Some(AnalysisPlan::new(section, &config.source, &facts)?)
        }
    };
    Ok(Plan {
        config,
        run_dir,
        dataset,
        variants,
        models,
        captions,
        prompts,
        device,
        max_pixels,
        analysis,
        notes,
        text_variants,
    })
}

/// Fills every template with every class. A per-class map in the template file gives each
/// class its own templates (classes it does not list use its `default` list, if any).
fn build_prompts(
    p: &PromptsConfig,
    labels: &[String],
) -> Result<Vec<Prompt>, (&'static str, String)> {
    let (shared, per_class): (Vec<String>, BTreeMap<String, Vec<String>>) =
        match (&p.templates, &p.file) {
            (Some(t), None) => (t.clone(), BTreeMap::new()),
            (None, Some(file)) => {
                read_template_file(Path::new(file)).map_err(|m| ("texts.prompts.file", m))?
            }
            (Some(_), Some(_)) => {
                return Err(("texts.prompts", "give templates or file, not both".into()))
            }
            (None, None) => return Err(("texts.prompts", "needs templates or file".into())),
        };
    let mut prompts = Vec::new();
    for label in labels {
        let templates = per_class.get(label).unwrap_or(&shared);
        if templates.is_empty() {
            return Err((
                "texts.prompts",
                format!("no templates for class `{label}` (and no default list)"),
            ));
        }
        let name = if p.humanize {
            label.replace(['_', '-'], " ")
        } else {
            label.clone()
        };
        for (t, template) in templates.iter().enumerate() {
            if !template.contains("{}") && !template.contains("{c}") {
                return Err((
                    "texts.prompts",
                    format!("template `{template}` has no {{}} placeholder for the class name"),
                ));
            }
            prompts.push(Prompt {
                id: format!("prompt:{label}:{t}"),
                label: label.clone(),
                text: template.replace("{c}", &name).replace("{}", &name),
            });
        }
    }
    Ok(prompts)
}

/// Templates for every class, and per-class overrides.
type Templates = (Vec<String>, BTreeMap<String, Vec<String>>);

fn read_template_file(path: &Path) -> Result<Templates, String> {
    let text =
        crate::config::read_small_text(path).map_err(|e| format!("{}: {e}", path.display()))?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum TemplateFile {
        List(Vec<String>),
        PerClass(BTreeMap<String, Vec<String>>),
    }
    match serde_norway::from_str::<TemplateFile>(&text).map_err(|e| {
        format!(
            "{}: expected a list of templates or a map of class to list: {e}",
            path.display()
        )
    })? {
        TemplateFile::List(l) => Ok((l, BTreeMap::new())),
        TemplateFile::PerClass(mut m) => {
            let default = m.remove("default").unwrap_or_default();
            Ok((default, m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_stage_messages() {
        assert_eq!(
            key_in("dataset.path: data/x does not exist").as_deref(),
            Some("dataset.path")
        );
        assert_eq!(
            key_in("data/x.parquet: dataset.caption_column: no column `c`").as_deref(),
            Some("dataset.caption_column")
        );
        assert_eq!(
            key_in("noise.1.sigma: must be positive").as_deref(),
            Some("noise.1.sigma")
        );
        assert_eq!(key_in("models/x.onnx: not a model"), None);
        assert_eq!(key_in("see my.dataset.path: x"), None);
    }

    #[test]
    fn prompts_fill_every_template_for_every_class() {
        let p = PromptsConfig {
            templates: Some(vec!["a photo of a {}.".into(), "a {c} texture".into()]),
            file: None,
            humanize: true,
        };
        let out = build_prompts(&p, &["polka_dotted".into(), "banded".into()]).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].text, "a photo of a polka dotted.");
        assert_eq!(out[0].id, "prompt:polka_dotted:0");
        assert_eq!(out[3].text, "a banded texture");
    }

    #[test]
    fn template_without_placeholder_is_an_error() {
        let p = PromptsConfig {
            templates: Some(vec!["a photo".into()]),
            file: None,
            humanize: true,
        };
        assert!(build_prompts(&p, &["x".into()]).is_err());
    }
}
