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
    /// Run name; the run directory is `runs/<name>` unless `--out` is given. A name, not a
    /// path: separators and `..` are refused (`out:` is for paths).
    #[serde(deserialize_with = "run_name")]
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
    /// How images are decoded and resized (`exact`, Pillow's pixels, unless `mode: fast`).
    /// Left out of the serialised config when it is the default, so existing runs keep their
    /// config hash.
    #[serde(default, skip_serializing_if = "PreprocessConfig::is_default")]
    pub preprocess: PreprocessConfig,
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
    /// WebDataset tar shards (`.tar`, `.tar.gz`): a list, a glob or a brace range.
    Webdataset,
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
    /// Read files the dataset names (Parquet `path` cells, split lists, links in a folder)
    /// even when they resolve outside the dataset folder. Off by default: a path in the data
    /// is not a licence to read the rest of the disk.
    #[serde(default)]
    pub allow_paths_outside: bool,
    /// Image files larger than this are recorded as errors instead of read (special files
    /// such as /dev/zero are refused whatever their size). Default 256 MB.
    #[serde(default)]
    pub max_file_bytes: Option<u64>,
    /// Parquet: rows with the same value of this column are one image with several captions
    /// (sets that repeat the image row once per caption); the value becomes the item id.
    /// (Left out of the resolved config when unset, so run directories made before these
    /// keys existed keep their config hash.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// WebDataset: which sample fields hold the image, the caption and the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webdataset: Option<WebdatasetConfig>,
}

impl DatasetConfig {
    /// A `dataset:` section that names only its format and path: every other key as a YAML
    /// file that leaves it out would have it (for code that builds a dataset without a study
    /// file: benchmarks, tests).
    pub fn new(format: DatasetFormat, path: impl Into<String>) -> DatasetConfig {
        DatasetConfig {
            format,
            path: PathList::One(path.into()),
            image_column: None,
            caption_column: None,
            label_column: None,
            id_column: None,
            split: None,
            extensions: None,
            sample: SampleConfig::default(),
            attribute_columns: Vec::new(),
            max_pixels: None,
            allow_paths_outside: false,
            max_file_bytes: None,
            group_by: None,
            webdataset: None,
        }
    }
}

/// `dataset.webdataset:` the fields of a WebDataset sample (a sample's fields are its member
/// extensions: `000123.jpg` is field `jpg` of sample `000123`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebdatasetConfig {
    /// Image fields, in order of preference: the first one a sample has is its image.
    #[serde(default = "default_wds_image")]
    pub image: Vec<String>,
    /// Caption field: an extension whose member is the text (`txt`), or `<ext>:<field>` for a
    /// field of a JSON member (`json:caption`; `a.b` for nested fields); a JSON list of
    /// strings gives several captions. `null`: no captions.
    #[serde(default = "default_wds_caption")]
    pub caption: Option<String>,
    /// Label field: `cls` (an integer, named by `classnames.txt` when present), or
    /// `<ext>:<field>` for a JSON field (text or integer). `null`: no labels.
    #[serde(default = "default_wds_label")]
    pub label: Option<String>,
    /// One caption per line of the caption text (CLIP_benchmark's retrieval sets). Default:
    /// true when `dataset_type.txt` beside the shards says `retrieval`, else false.
    #[serde(default)]
    pub caption_lines: Option<bool>,
}

impl Default for WebdatasetConfig {
    fn default() -> Self {
        WebdatasetConfig {
            image: default_wds_image(),
            caption: default_wds_caption(),
            label: default_wds_label(),
            caption_lines: None,
        }
    }
}

fn default_wds_image() -> Vec<String> {
    ["jpg", "jpeg", "png", "webp"].map(String::from).to_vec()
}
fn default_wds_caption() -> Option<String> {
    Some("txt".into())
}
fn default_wds_label() -> Option<String> {
    Some("cls".into())
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

/// Noise kinds: clipflow's four, and the 19 ImageNet-C corruptions under the reference's
/// names (`imagecorruptions.get_corruption_names("all")`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    Gaussian,
    SaltPepper,
    Blur,
    Jpeg,
    GaussianNoise,
    ShotNoise,
    ImpulseNoise,
    DefocusBlur,
    GlassBlur,
    MotionBlur,
    ZoomBlur,
    Snow,
    Frost,
    Fog,
    Brightness,
    Contrast,
    ElasticTransform,
    Pixelate,
    JpegCompression,
    SpeckleNoise,
    GaussianBlur,
    Spatter,
    Saturate,
}

/// Named sets of noise variants.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum NoisePreset {
    /// Every ImageNet-C corruption (or those listed in `corruptions`) at each `severity`.
    #[serde(rename = "imagenet-c")]
    ImagenetC,
}

/// Units of a Gaussian σ.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoiseUnits {
    /// σ in `[0, 1]` pixel units, added before mean/std normalisation, result clamped to `[0, 1]`.
    #[default]
    Pixel,
    /// σ in units of the normalised tensor the model receives, not clamped.
    Normalized,
}

/// One noise family with one or more levels (each level is a variant), or a preset.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoiseConfig {
    /// The noise; give `kind` or `preset`.
    #[serde(default)]
    pub kind: Option<NoiseKind>,
    /// `imagenet-c`: every ImageNet-C corruption at each `severity` (frost only with
    /// `frost_textures`).
    #[serde(default)]
    pub preset: Option<NoisePreset>,
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
    /// ImageNet-C corruptions and the preset: severities, whole numbers 1..=5.
    #[serde(default)]
    pub severity: Option<Levels>,
    /// The preset's corruptions to keep, by the reference's names; default all of them.
    #[serde(default)]
    pub corruptions: Option<Vec<NoiseKind>>,
    /// Frost (and the preset): a folder with ImageNet-C's frost photographs (`frost1.png` …
    /// `frost5.jpg`), which clipflow does not ship.
    #[serde(default)]
    pub frost_textures: Option<String>,
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
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name in every output row and table; default: the folder name. It names a folder of
    /// the run directory, so separators and `..` are refused.
    #[serde(default, deserialize_with = "model_name")]
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
    /// Which towers to encode with (`[image]`, `[text]` or both); default: every tower the
    /// folder has. A CLIP used as an image encoder only lists `[image]`.
    #[serde(default)]
    pub towers: Option<Vec<Tower>>,
    /// The image tower: its file, which output, how to pool it, an optional projection.
    #[serde(default)]
    pub image: Option<TowerConfig>,
    /// The text tower, as `image`.
    #[serde(default)]
    pub text: Option<TowerConfig>,
    /// Token rows per text for a graph whose sequence axis is not fixed (BERT-like exports);
    /// default: the tokenizer's own maximum (`model_max_length`), else 77.
    #[serde(default)]
    pub context_length: Option<usize>,
    /// How image–text similarities become probabilities for this model; default: what the
    /// export recorded (`clipflow.json` beside the graphs, or the graphs' metadata), else
    /// CLIP's softmax at scale 100.
    #[serde(default)]
    pub scoring: Option<ScoringConfig>,
    /// Where the reference libraries disagree on image preprocessing, which one to follow for
    /// this model; default: what the export recorded (`clipflow.json`), else transformers' rule
    /// for a Hugging Face preprocessor config.
    #[serde(default)]
    pub preprocess: Option<ModelPreprocessConfig>,
}

/// `models[].preprocess`: overrides the preprocessing rules the export recorded. The reference
/// implementations agree on everything else clipflow reproduces (README, Models).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelPreprocessConfig {
    /// Where the center crop starts when the margin is odd.
    #[serde(default)]
    pub crop_rounding: Option<CropRounding>,
    /// What becomes of transparent pixels (alpha channel, palette or colour `tRNS`).
    #[serde(default)]
    pub transparency: Option<Transparency>,
}

/// The center crop's offset `(size - crop) / 2` when it is not whole.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CropRounding {
    /// torchvision's `CenterCrop` (OpenAI CLIP, open_clip): rounded half to even; a crop larger
    /// than the image pads `floor((crop - size) / 2)` zeros before it.
    HalfEven,
    /// transformers' image processors (`image_transforms.center_crop`): `floor` of the signed
    /// offset, on both sides of zero.
    Floor,
}

/// How a transparent image becomes RGB.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Transparency {
    /// Pillow's `convert("RGB")`: the colour channels as they are (OpenAI CLIP, open_clip,
    /// transformers 4).
    Drop,
    /// Composited over opaque white with Pillow's `alpha_composite` (transformers 5's
    /// `convert_to_rgb`).
    White,
}

/// A model's towers.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Tower {
    Image,
    Text,
}

/// One tower of a model.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TowerConfig {
    /// The ONNX file (or a folder holding `model.onnx`), instead of finding it in the model
    /// folder. Same as `vision_path` / `text_path`.
    #[serde(default)]
    pub path: Option<String>,
    /// The graph output to embed from; default: `image_embeds`/`text_embeds`-like names, else
    /// `last_hidden_state` when `pooling` needs it, else the only output.
    #[serde(default)]
    pub output: Option<String>,
    /// How a `[N, T, D]` output becomes one vector per input; default `none`.
    #[serde(default)]
    pub pooling: Option<Pooling>,
    /// A linear map to a shared dimension, applied after pooling and before L2 normalisation:
    /// a `.npy` matrix `[D_in, D_out]` (`x · W`), or an `.onnx` graph `[N, D_in] -> [N, D_out]`.
    #[serde(default)]
    pub projection: Option<String>,
}

/// Pooling of a per-token (or per-patch) output.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The output is already one vector per input (`[N, D]`, or `[N, D, 1, 1]`).
    None,
    /// The first token (BERT's `[CLS]`, ViT/DINOv2's class token).
    Cls,
    /// The mean over the tokens the attention mask keeps (every token without a mask input;
    /// the spatial mean of a `[N, C, H, W]` feature map).
    Mean,
    /// The last token the attention mask keeps (the last position without a mask input, as
    /// SigLIP's text tower pools its padded sequence).
    Last,
    /// The graph's `pooler_output` as it is.
    PoolerOutput,
}

/// How similarities become probabilities.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScoringKind {
    /// CLIP: `softmax(logit_scale · cos)` over the candidates.
    Softmax,
    /// SigLIP: `sigmoid(logit_scale · cos + logit_bias)` for each pair on its own.
    Sigmoid,
}

/// `models[].scoring`: overrides what the export recorded.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    #[serde(default)]
    pub kind: Option<ScoringKind>,
    /// The multiplier of cosine similarities (`exp` of the model's learned `logit_scale`).
    #[serde(default)]
    pub logit_scale: Option<f64>,
    /// Added after scaling (SigLIP's learned bias); 0 for CLIP.
    #[serde(default)]
    pub logit_bias: Option<f64>,
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
    /// Text perturbations: each rate of each kind is a text variant of every caption and
    /// prompt; the `clean` text is always encoded too.
    #[serde(default)]
    pub noise: Vec<TextNoiseConfig>,
}

/// Text perturbation kinds (see `augment::text`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TextNoiseKind {
    /// Letters and digits replaced by a neighbouring QWERTY key.
    CharKeyboard,
    /// A random letter inserted after chosen letters.
    CharInsert,
    /// Letters deleted.
    CharDelete,
    /// Letters swapped with the next letter of their word.
    CharSwap,
    /// Words dropped (at least one is kept).
    WordDrop,
    /// Words repeated in place.
    WordRepeat,
    /// Chosen words permuted among themselves.
    WordShuffle,
    /// Random gibberish words inserted.
    WordGibberish,
}

/// Named sets of text perturbations.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TextNoisePreset {
    /// The four `char_*` kinds.
    Characters,
    /// The four `word_*` kinds.
    Words,
    /// All eight.
    All,
}

/// One text perturbation (or a preset) at one or more rates; each rate is a text variant.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextNoiseConfig {
    #[serde(default)]
    pub kind: Option<TextNoiseKind>,
    #[serde(default)]
    pub preset: Option<TextNoisePreset>,
    /// Share of the text's letters (`char_*`) or words (`word_*`) edited, in (0, 1].
    pub rate: Levels,
}

fn yes() -> bool {
    true
}

/// Why `name` cannot name one folder: a separator or `.`/`..` would put the folder elsewhere.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
        Err(format!(
            "{name:?} is not a name: it names one folder, so no / or \\ in it, and not . or .."
        ))
    } else {
        Ok(())
    }
}

/// Checks a name while its YAML scalar is being read, so the error carries the scalar's line.
struct NameVisitor {
    /// Appended to the message: where to put a path instead.
    instead: &'static str,
}

impl serde::de::Visitor<'_> for NameVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        check_name(v)
            .map(|()| v.to_string())
            .map_err(|m| E::custom(format!("{m}{}", self.instead)))
    }
}

/// `name:` of the study: the run directory is `runs/<name>`, so it must stay one folder there.
fn run_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(NameVisitor {
        instead: " (set out: for another run directory)",
    })
}

/// `models[].name`: the folder of the model's embeddings in the run directory.
fn model_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Optional;
    impl<'de> serde::de::Visitor<'de> for Optional {
        type Value = Option<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a name")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(NameVisitor { instead: "" }).map(Some)
        }
    }
    d.deserialize_option(Optional)
}

impl Default for TextsConfig {
    fn default() -> Self {
        TextsConfig {
            captions: true,
            prompts: None,
            noise: Vec::new(),
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
    /// Workers sharing a run directory take over a part whose claim has had no heartbeat for
    /// this long (seconds, or `90s`, `10m`, `1h`). Longer than any pause of a live worker.
    #[serde(
        default = "default_claim_timeout",
        deserialize_with = "duration_seconds"
    )]
    pub claim_timeout: f64,
}

fn default_claim_timeout() -> f64 {
    600.0
}

/// A duration in seconds: a number, or a number with a unit `s`, `m` or `h`; at least 1 s.
fn duration_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    let bad = |what: &str| {
        serde::de::Error::custom(format!(
            "{what}: expected seconds (600) or a duration with a unit (90s, 10m, 1h), at least 1 s"
        ))
    };
    let seconds = match Raw::deserialize(d)? {
        Raw::Number(n) => n,
        Raw::Text(t) => {
            let t = t.trim();
            let (number, scale) = match t.char_indices().last() {
                Some((i, 's')) => (&t[..i], 1.0),
                Some((i, 'm')) => (&t[..i], 60.0),
                Some((i, 'h')) => (&t[..i], 3600.0),
                _ => (t, 1.0),
            };
            number.trim().parse::<f64>().map_err(|_| bad(t))? * scale
        }
    };
    if !(seconds.is_finite() && seconds >= 1.0) {
        return Err(bad(&seconds.to_string()));
    }
    Ok(seconds)
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
            claim_timeout: default_claim_timeout(),
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

/// `preprocess:` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// `exact` (default): the pixels Pillow gives. `fast`: JPEGs are decoded at 1/2, 1/4 or 1/8
    /// scale in the DCT domain while that stays at least the resize target, then resized
    /// exactly; faster, not Pillow's pixels (README, "Benchmarks and fidelity").
    #[serde(default)]
    pub mode: PreprocessMode,
}

impl PreprocessConfig {
    pub fn is_default(&self) -> bool {
        *self == PreprocessConfig::default()
    }
}

/// See [`PreprocessConfig::mode`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PreprocessMode {
    #[default]
    Exact,
    Fast,
}
