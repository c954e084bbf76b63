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
    #[serde(default, deserialize_with = "on_if_present")]
    pub projection: Option<ProjectionConfig>,
    #[serde(default, deserialize_with = "on_if_present")]
    pub dimension_sweep: Option<DimensionSweepConfig>,
    #[serde(default, deserialize_with = "on_if_present")]
    pub subspaces: Option<SubspaceConfig>,
    #[serde(default, deserialize_with = "on_if_present")]
    pub topology: Option<TopologyConfig>,
    #[serde(default, deserialize_with = "on_if_present")]
    pub attributes: Option<AttributesConfig>,
    /// Where noisy images go in image-to-image comparisons (kNN and linear probes).
    #[serde(default)]
    pub noise_on: NoiseTarget,
    /// CLIP's logit scale for softmax over similarities.
    #[serde(default = "logit_scale")]
    pub logit_scale: f64,
}

impl AnalysisConfig {
    /// Value checks the types cannot express, so a bad setting fails before hours of
    /// encoding rather than after. Returns the key (under `analysis.`) and the reason.
    pub fn check(&self) -> Result<(), (String, String)> {
        let err = |key: &str, msg: &str| Err((format!("analysis.{key}"), msg.to_string()));
        let fraction = |v: f64| v > 0.0 && v < 1.0;
        if !(self.logit_scale.is_finite() && self.logit_scale > 0.0) {
            return err("logit_scale", "must be a positive number");
        }
        if let Some(r) = &self.retrieval {
            if r.k.is_empty() || r.k.contains(&0) {
                return err("retrieval.k", "list cut-offs of at least 1");
            }
        }
        if let Some(c) = &self.cluster {
            if c.k == Some(0) || c.restarts == 0 || c.min_samples == 0 {
                return err("cluster", "k, restarts and min_samples must be at least 1");
            }
            if c.eps.is_some_and(|e| !(e.is_finite() && e > 0.0)) {
                return err("cluster.eps", "must be a positive number");
            }
        }
        if let Some(p) = &self.probe {
            if p.knn_k == 0 {
                return err("probe.knn_k", "must be at least 1");
            }
            if !fraction(p.test_fraction) {
                return err("probe.test_fraction", "must be strictly between 0 and 1");
            }
        }
        if let Some(p) = &self.projection {
            if p.methods.is_empty() {
                return err("projection.methods", "list at least one of pca, tsne, umap");
            }
            if p.methods.contains(&ProjectionMethod::Tsne)
                && (p.perplexities.is_empty()
                    || p.perplexities.iter().any(|v| !(v.is_finite() && *v > 0.0)))
            {
                return err("projection.perplexities", "list positive perplexities");
            }
            if p.tsne_iterations < 250 {
                return err(
                    "projection.tsne_iterations",
                    "must be at least 250 (the early-exaggeration phase)",
                );
            }
            if p.umap_neighbors < 2 {
                return err("projection.umap_neighbors", "must be at least 2");
            }
            if !(p.umap_min_dist.is_finite() && p.umap_min_dist >= 0.0) {
                return err("projection.umap_min_dist", "must be 0 or more");
            }
            if p.max_points < 10 {
                return err("projection.max_points", "must be at least 10");
            }
            if p.trustworthiness_k == 0 {
                return err("projection.trustworthiness_k", "must be at least 1");
            }
        }
        if let Some(d) = &self.dimension_sweep {
            if d.dims.is_empty() || d.dims.contains(&0) {
                return err("dimension_sweep.dims", "list dimensions of at least 1");
            }
            if !fraction(d.fit_fraction) {
                return err(
                    "dimension_sweep.fit_fraction",
                    "must be strictly between 0 and 1",
                );
            }
            if d.k.is_empty() || d.k.contains(&0) {
                return err("dimension_sweep.k", "list cut-offs of at least 1");
            }
            if !(d.tolerance.is_finite() && d.tolerance >= 0.0) {
                return err("dimension_sweep.tolerance", "must be 0 or more");
            }
        }
        if let Some(s) = &self.subspaces {
            if s.rank == 0 {
                return err("subspaces.rank", "must be at least 1");
            }
        }
        if let Some(t) = &self.topology {
            if t.max_dim > 1 {
                return err("topology.max_dim", "must be 0 or 1 (H0, H1)");
            }
            if t.max_points < 3 {
                return err("topology.max_points", "must be at least 3");
            }
        }
        if let Some(a) = &self.attributes {
            if a.components == 0 {
                return err("attributes.components", "must be at least 1");
            }
            if !fraction(a.test_fraction) {
                return err(
                    "attributes.test_fraction",
                    "must be strictly between 0 and 1",
                );
            }
            if a.columns.as_ref().is_some_and(|c| c.is_empty()) {
                return err(
                    "attributes.columns",
                    "list at least one column, or leave it out",
                );
            }
        }
        Ok(())
    }
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

/// 2-D projection methods.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionMethod {
    Pca,
    Tsne,
    Umap,
}

/// PCA spectrum and 2-D maps (PCA, t-SNE, UMAP) of the image embeddings of every variant.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectionConfig {
    #[serde(default = "default_projection_methods")]
    pub methods: Vec<ProjectionMethod>,
    /// t-SNE runs once per perplexity.
    #[serde(default = "default_perplexities")]
    pub perplexities: Vec<f64>,
    /// t-SNE iterations (scikit-learn's `max_iter`).
    #[serde(default = "default_tsne_iterations")]
    pub tsne_iterations: usize,
    #[serde(default = "default_umap_neighbors")]
    pub umap_neighbors: usize,
    #[serde(default = "default_umap_min_dist")]
    pub umap_min_dist: f64,
    /// Maps are drawn from a seeded sample of at most this many images (the same images in
    /// every variant); the PCA spectrum uses every image.
    #[serde(default = "default_projection_points")]
    pub max_points: usize,
    /// Neighbourhood size of the trustworthiness score of each map.
    #[serde(default = "default_trustworthiness_k")]
    pub trustworthiness_k: usize,
    /// Image variants to map (`clean`, `gaussian-0.1`, ...); default every variant. t-SNE and
    /// UMAP cost seconds to minutes per map, so long noise lists may want a few.
    #[serde(default)]
    pub variants: Option<Vec<String>>,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            methods: default_projection_methods(),
            perplexities: default_perplexities(),
            tsne_iterations: default_tsne_iterations(),
            umap_neighbors: default_umap_neighbors(),
            umap_min_dist: default_umap_min_dist(),
            max_points: default_projection_points(),
            trustworthiness_k: default_trustworthiness_k(),
            variants: None,
        }
    }
}

fn default_projection_methods() -> Vec<ProjectionMethod> {
    vec![
        ProjectionMethod::Pca,
        ProjectionMethod::Tsne,
        ProjectionMethod::Umap,
    ]
}
fn default_perplexities() -> Vec<f64> {
    vec![10.0, 30.0]
}
fn default_tsne_iterations() -> usize {
    1000
}
fn default_umap_neighbors() -> usize {
    15
}
fn default_umap_min_dist() -> f64 {
    0.1
}
fn default_projection_points() -> usize {
    5000
}
fn default_trustworthiness_k() -> usize {
    10
}

/// Which embeddings a PCA is fitted on.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FitOn {
    Images,
    Texts,
    /// Images and texts of the fit split together.
    #[default]
    Both,
}

/// Retrieval and zero-shot quality after PCA to fewer dimensions.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DimensionSweepConfig {
    /// Target dimensions; values at or above the model's dimension are skipped, and the full
    /// dimension is always measured as the reference.
    #[serde(default = "default_sweep_dims")]
    pub dims: Vec<usize>,
    /// Share of the items (seeded) the PCA is fitted on; the metrics use the others.
    #[serde(default = "default_fit_fraction")]
    pub fit_fraction: f64,
    #[serde(default)]
    pub fit_on: FitOn,
    /// Recall@K cut-offs measured at every dimension.
    #[serde(default = "default_ks")]
    pub k: Vec<usize>,
    /// The smallest dimension whose metric is at most this far (absolute) below the full
    /// dimension's is reported per metric.
    #[serde(default = "default_sweep_tolerance")]
    pub tolerance: f64,
    /// Subtract the fitted mean before projecting (scikit-learn's `PCA.transform`). Off by
    /// default: without it the full-rank projection is a rotation, so cosines at D′ = D are
    /// the original ones and the sweep measures what dropping dimensions alone costs; centring
    /// also moves the origin the cosines are taken around (and, fitted on both modalities,
    /// partly closes the gap between them), which changes the metrics at every D′.
    #[serde(default)]
    pub centre: bool,
}

impl Default for DimensionSweepConfig {
    fn default() -> Self {
        DimensionSweepConfig {
            dims: default_sweep_dims(),
            fit_fraction: default_fit_fraction(),
            fit_on: FitOn::Both,
            k: default_ks(),
            tolerance: default_sweep_tolerance(),
            centre: false,
        }
    }
}

fn default_sweep_dims() -> Vec<usize> {
    vec![2, 4, 8, 16, 32, 64, 128, 256, 512]
}
fn default_fit_fraction() -> f64 {
    0.5
}
fn default_sweep_tolerance() -> f64 {
    0.01
}

/// Principal angles between the classes' subspaces (clean images).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubspaceConfig {
    /// Dimension r of each class's PCA basis.
    #[serde(default = "default_subspace_rank")]
    pub rank: usize,
}

impl Default for SubspaceConfig {
    fn default() -> Self {
        SubspaceConfig {
            rank: default_subspace_rank(),
        }
    }
}

fn default_subspace_rank() -> usize {
    5
}

/// Distance used by the topology stage.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    #[default]
    Euclidean,
    Cosine,
}

/// Vietoris–Rips persistence (H0, H1) of each variant's image embeddings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopologyConfig {
    /// Seeded sample size (the same images in every variant).
    #[serde(default = "default_topology_points")]
    pub max_points: usize,
    #[serde(default)]
    pub metric: MetricName,
    /// Highest homology dimension, 0 or 1.
    #[serde(default = "default_max_dim")]
    pub max_dim: usize,
    /// Image variants to compare with the clean one; default every variant.
    #[serde(default)]
    pub variants: Option<Vec<String>>,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            max_points: default_topology_points(),
            metric: MetricName::Euclidean,
            max_dim: default_max_dim(),
            variants: None,
        }
    }
}

fn default_topology_points() -> usize {
    500
}
fn default_max_dim() -> usize {
    1
}

/// Attribute probing: how boolean or categorical metadata lines up with the principal
/// components, and how well a linear probe predicts it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttributesConfig {
    /// Columns to probe; default every column of the attributes file.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Parquet with an `id` column and the attributes; default `attributes.parquet` next to
    /// the store (what `clipflow run` writes from `dataset.attribute_columns`).
    #[serde(default)]
    pub path: Option<String>,
    /// Principal components correlated with each attribute.
    #[serde(default = "default_attribute_components")]
    pub components: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
}

impl Default for AttributesConfig {
    fn default() -> Self {
        AttributesConfig {
            columns: None,
            path: None,
            components: default_attribute_components(),
            test_fraction: default_test_fraction(),
        }
    }
}

fn default_attribute_components() -> usize {
    10
}
