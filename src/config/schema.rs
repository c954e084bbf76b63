//! The YAML schema of a study. Every struct denies unknown fields: a typo in a key is an error
//! that names the key, its line and the closest known key, never a silently ignored setting.
//!
//! Only shape and types live here; cross-field rules (a caption column only makes sense for a
//! Parquet dataset, a Gaussian noise needs `sigma`, ...) are checked by [`crate::plan`], which
//! also sees the file system.

use serde::{Deserialize, Serialize};

/// One study: what to read, how to perturb it, which models encode it, where results go.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Run name; the run directory is `runs/<name>` unless `--out` is given.
    pub name: String,
    /// Seed of every random choice (sampling, noise). Same config and seed, same bytes.
    #[serde(default)]
    pub seed: u64,
    /// Where results go; overrides `runs/<name>`. Relative to the working directory.
    #[serde(default)]
    pub out: Option<String>,
    pub dataset: DatasetConfig,
    /// Noise variants added to images; the `clean` variant is always encoded too.
    #[serde(default)]
    pub noise: Vec<NoiseConfig>,
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub texts: TextsConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// What to compute from the store once every part is written; nothing when absent.
    #[serde(default)]
    pub analysis: Option<AnalysisSection>,
    /// The HTML report written after the analysis (`report.html` in the run directory).
    #[serde(default)]
    pub report: ReportConfig,
}

/// `report:` section: one self-contained HTML page with every table, plot and gallery.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Write `report.html` (default true; it needs an `analysis:` section).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Rows of each table shown in the page; the Parquet and Markdown files hold them all.
    #[serde(default = "default_report_rows")]
    pub max_table_rows: usize,
    /// Longest side of the gallery thumbnails, in pixels.
    #[serde(default = "default_thumbnail")]
    pub thumbnail_size: u32,
    /// Images with a thumbnail in the interactive maps' tooltips (the first of the mapped
    /// sample); each costs ~2-4 kB of page. 0 for none.
    #[serde(default = "default_map_thumbnails")]
    pub map_thumbnails: usize,
    /// Side of the map thumbnails in pixels (16-256, rounded up to a multiple of 16).
    #[serde(default = "default_map_thumbnail_size")]
    pub map_thumbnail_size: u32,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            enabled: true,
            max_table_rows: default_report_rows(),
            thumbnail_size: default_thumbnail(),
            map_thumbnails: default_map_thumbnails(),
            map_thumbnail_size: default_map_thumbnail_size(),
        }
    }
}

fn default_map_thumbnails() -> usize {
    2000
}
fn default_map_thumbnail_size() -> u32 {
    64
}

fn default_report_rows() -> usize {
    40
}
fn default_thumbnail() -> u32 {
    112
}

/// Dataset formats clipflow reads.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    /// Hugging Face-style Parquet: one file, a list or a glob.
    Parquet,
    /// One folder per class (torchvision's ImageFolder); the label is the parent folder.
    Folder,
    /// The Describable Textures Dataset release: `images/<class>/*.jpg` plus `labels/<split>.txt`.
    Dtd,
}

/// `dataset:` section. Paths are relative to the working directory.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub format: DatasetFormat,
    /// A file, a folder, or a glob (`data/pokemon/*.parquet`); a list of those for Parquet.
    pub path: PathList,
    /// Parquet: the image column (`{bytes, path}` struct, binary, or path string).
    #[serde(default)]
    pub image_column: Option<String>,
    /// Parquet: the caption column, if any.
    #[serde(default)]
    pub caption_column: Option<String>,
    /// Parquet: the label column, if any (string, or integer with Hugging Face class names).
    #[serde(default)]
    pub label_column: Option<String>,
    /// Parquet: a column holding stable ids; default `<file stem>:<row>`.
    #[serde(default)]
    pub id_column: Option<String>,
    /// DTD: which split file of `labels/` to read (`train1`, `val1`, `test1`, ..., or `all`).
    #[serde(default)]
    pub split: Option<String>,
    /// Folder/DTD: file extensions that count as images (case-insensitive).
    #[serde(default)]
    pub extensions: Option<Vec<String>>,
    #[serde(default)]
    pub sample: SampleConfig,
    /// Parquet: metadata columns kept for attribute probing (boolean or categorical, e.g.
    /// CelebA's `Smiling`, `Male`); written to `attributes.parquet` in the run directory.
    #[serde(default)]
    pub attribute_columns: Vec<String>,
    /// Images with more pixels than this are recorded as errors instead of decoded, a guard
    /// against decompression bombs. Default: Pillow's limit, 89,478,485 pixels.
    #[serde(default)]
    pub max_pixels: Option<u64>,
}

/// A single path or a list of paths.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum PathList {
    One(String),
    Many(Vec<String>),
}

impl PathList {
    pub fn as_slice(&self) -> &[String] {
        match self {
            PathList::One(p) => std::slice::from_ref(p),
            PathList::Many(v) => v,
        }
    }
}

/// Seeded subsampling, applied in this order: classes, per class, limit.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Keep this many classes, chosen at random (seeded).
    #[serde(default)]
    pub classes: Option<usize>,
    /// Keep at most this many items per class, chosen at random (seeded).
    #[serde(default)]
    pub per_class: Option<usize>,
    /// Keep at most this many items in all, chosen at random (seeded).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Noise kinds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    Gaussian,
    SaltPepper,
    Blur,
    Jpeg,
}

/// Units of a Gaussian σ.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoiseUnits {
    /// σ in [0,1] pixel units, added before mean/std normalisation, result clamped to [0,1].
    #[default]
    Pixel,
    /// σ in units of the normalised tensor the model receives, not clamped.
    Normalized,
}

/// One noise family with one or more levels; each level is a variant.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoiseConfig {
    pub kind: NoiseKind,
    /// Gaussian: standard deviations. Blur: kernel σ in pixels at the model's input size.
    #[serde(default)]
    pub sigma: Option<Levels>,
    /// Gaussian: `pixel` (default) or `normalized`.
    #[serde(default)]
    pub units: Option<NoiseUnits>,
    /// Salt-and-pepper: fraction of pixels replaced (half black, half white).
    #[serde(default)]
    pub amount: Option<Levels>,
    /// JPEG: re-compression quality, 1..=100.
    #[serde(default)]
    pub quality: Option<Levels>,
}

/// One number or a list of numbers.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Levels {
    One(f64),
    Many(Vec<f64>),
}

impl Levels {
    pub fn to_vec(&self) -> Vec<f64> {
        match self {
            Levels::One(v) => vec![*v],
            Levels::Many(v) => v.clone(),
        }
    }
}

/// One model to encode with.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name in every output row and table; default: the folder name.
    #[serde(default)]
    pub name: Option<String>,
    /// The model folder (Xenova, optimum or fastembed layout, see the README).
    pub path: String,
    /// Override: the vision ONNX file or folder (fastembed split layouts with unusual names).
    #[serde(default)]
    pub vision_path: Option<String>,
    /// Override: the text ONNX file or folder.
    #[serde(default)]
    pub text_path: Option<String>,
    /// Images per inference call.
    #[serde(default)]
    pub batch_size: Option<usize>,
}

/// Which texts to encode besides nothing.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextsConfig {
    /// Encode each item's caption (when the dataset has captions).
    #[serde(default = "yes")]
    pub captions: bool,
    /// Class prompts for zero-shot analysis: every template filled with every class name.
    #[serde(default)]
    pub prompts: Option<PromptsConfig>,
}

fn yes() -> bool {
    true
}

impl Default for TextsConfig {
    fn default() -> Self {
        TextsConfig {
            captions: true,
            prompts: None,
        }
    }
}

/// Prompt templates. `{}` (or `{c}`) is replaced by the class name.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// Inline templates used for every class.
    #[serde(default)]
    pub templates: Option<Vec<String>>,
    /// A YAML file of templates: a list, or a map of class → list (see `configs/prompts/`).
    #[serde(default)]
    pub file: Option<String>,
    /// Replace `_` and `-` in class names with spaces before filling templates.
    #[serde(default = "yes")]
    pub humanize: bool,
}

/// Execution settings: they change speed, never results.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `auto` (CUDA when usable, else CPU with a warning), `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "auto")]
    pub device: String,
    /// ONNX Runtime intra-op threads; 0 = one per core.
    #[serde(default)]
    pub threads: usize,
    /// Decode/preprocess threads; 0 = one per core.
    #[serde(default)]
    pub decode_threads: usize,
    /// Default images or texts per inference call.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Items per part file: the unit of sharding and of resuming.
    #[serde(default = "default_part_size")]
    pub part_size: usize,
    /// Prepared batches waiting for the model; bounds memory.
    #[serde(default = "default_queue")]
    pub queue_depth: usize,
}

fn auto() -> String {
    "auto".to_string()
}
fn default_batch() -> usize {
    32
}
fn default_part_size() -> usize {
    2048
}
fn default_queue() -> usize {
    3
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            device: auto(),
            threads: 0,
            decode_threads: 0,
            batch_size: default_batch(),
            part_size: default_part_size(),
            queue_depth: default_queue(),
        }
    }
}

/// `analysis:` as written: stage keys and their settings.
///
/// The settings of each analysis stage are typed by the stage itself (`src/analyze/stages/`),
/// so that a new stage is one file plus one registry line. Config sits upstream of every
/// stage and cannot name their types, so it keeps the section as a YAML mapping; the analysis
/// registry reads it, and [`crate::config::Source`] puts the line numbers back on its errors.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct AnalysisSection(pub serde_norway::Mapping);
