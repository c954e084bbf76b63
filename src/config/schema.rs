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
    pub analysis: Option<AnalysisConfig>,
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

/// `analysis:` section. Each present key turns a stage on; `{}` takes its defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    #[serde(default, deserialize_with = "on_if_present")]
    pub similarity: Option<SimilarityConfig>,
    #[serde(default, deserialize_with = "on_if_present")]
    pub retrieval: Option<RetrievalConfig>,
    #[serde(default, deserialize_with = "on_if_present")]
    pub zero_shot: Option<ZeroShotConfig>,
    #[serde(default, deserialize_with = "on_if_present")]
    pub cluster: Option<ClusterConfig>,
    #[serde(default, deserialize_with = "on_if_present")]
    pub probe: Option<ProbeConfig>,
    /// Where noisy images go in image-to-image comparisons (kNN and linear probes).
    #[serde(default)]
    pub noise_on: NoiseTarget,
    /// CLIP's logit scale for softmax over similarities.
    #[serde(default = "logit_scale")]
    pub logit_scale: f64,
}

fn logit_scale() -> f64 {
    100.0
}

/// A present key turns its stage on even when empty (`zero_shot:` as well as `zero_shot: {}`).
fn on_if_present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// Which side of a comparison gets the noisy variant.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoiseTarget {
    /// Noisy queries against a clean gallery (e.g. noisy test images, clean training images).
    #[default]
    Queries,
    /// Clean queries against a noisy gallery.
    Gallery,
    Both,
}

/// Similarity matrices between chosen texts and images.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimilarityConfig {
    /// Take the first N items of each class (default 2), unless `ids` or `query` is given.
    #[serde(default)]
    pub per_class: Option<usize>,
    /// Exactly these item ids.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// Items whose caption contains this text (case-insensitive).
    #[serde(default)]
    pub query: Option<String>,
    /// At most this many items (default 16).
    #[serde(default)]
    pub max_items: Option<usize>,
}

/// Which gallery items count as positives for a query.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PositivesKind {
    /// Captions when the store has them, else labels.
    #[default]
    Auto,
    /// The image and the caption of the same item (Pokemon-style).
    Caption,
    /// Any item with the same label (class-level).
    Label,
}

/// Text-to-image and image-to-text retrieval.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrievalConfig {
    #[serde(default = "default_ks")]
    pub k: Vec<usize>,
    #[serde(default)]
    pub positives: PositivesKind,
    /// Queries whose top hits are kept for the report's galleries.
    #[serde(default = "default_galleries")]
    pub galleries: usize,
    /// Hits per gallery.
    #[serde(default = "default_gallery_k")]
    pub gallery_k: usize,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            k: default_ks(),
            positives: PositivesKind::Auto,
            galleries: default_galleries(),
            gallery_k: default_gallery_k(),
        }
    }
}

fn default_ks() -> Vec<usize> {
    vec![1, 5, 10]
}
fn default_galleries() -> usize {
    5
}
fn default_gallery_k() -> usize {
    5
}

/// Zero-shot classification with the study's class prompts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotConfig {}

/// Clustering methods.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClusterMethod {
    Kmeans,
    Ward,
    Dbscan,
}

/// Clustering of image embeddings, scored against the labels.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    #[serde(default = "default_methods")]
    pub methods: Vec<ClusterMethod>,
    /// Number of clusters; default the number of labels.
    #[serde(default)]
    pub k: Option<usize>,
    /// k-means restarts (best inertia wins).
    #[serde(default = "default_restarts")]
    pub restarts: usize,
    /// DBSCAN neighbourhood radius in cosine distance; default: the median distance to the
    /// `min_samples`-th neighbour.
    #[serde(default)]
    pub eps: Option<f64>,
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            methods: default_methods(),
            k: None,
            restarts: default_restarts(),
            eps: None,
            min_samples: default_min_samples(),
        }
    }
}

fn default_methods() -> Vec<ClusterMethod> {
    vec![ClusterMethod::Kmeans, ClusterMethod::Ward]
}
fn default_restarts() -> usize {
    10
}
fn default_min_samples() -> usize {
    5
}

/// How separable the classes are: kNN and a linear probe on a seeded split.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    #[serde(default = "default_knn")]
    pub knn_k: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            knn_k: default_knn(),
            test_fraction: default_test_fraction(),
        }
    }
}

fn default_knn() -> usize {
    10
}
fn default_test_fraction() -> f64 {
    0.3
}
