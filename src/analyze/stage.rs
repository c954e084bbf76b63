//! What an analysis stage is: its settings (a [`StageConfig`]), its run over the sets (a
//! [`Stage`]), and what it may touch while running (a [`Context`] to read, an [`Output`] to
//! write to).
//!
//! The driver hands a stage one (model, image variant) at a time, clean first, with the
//! model's texts, then (to stages that ask) each text variant with the clean images; it never
//! holds two image variants at once. A stage that compares a variant
//! with the clean one (probes, topology, projections) keeps what it needs of the clean set
//! itself, and says so in its docs: that is the only memory it may add.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::analysis::AnalysisError;
use crate::chart::PlotError;
use crate::progress::Progress;
use crate::store::{Column, EmbeddingSet, StoreError, Table, TableSink};

/// What is known of a study before any vector is read, so that a setting no data can satisfy
/// fails at `clipflow validate` rather than after hours of encoding.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Image variant names, `clean` first; empty when not known.
    pub variants: Vec<String>,
    /// Images in the study, when known.
    pub items: Option<usize>,
    /// Model names, when known.
    pub models: Vec<String>,
}

/// A setting its stage cannot work with: the key under the stage (`perplexities.1`) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingError {
    pub key: String,
    pub message: String,
}

impl SettingError {
    pub fn new(key: &str, message: impl Into<String>) -> SettingError {
        SettingError {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Where a stage's tables and pictures go in `report.html`.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// The HTML anchor (`#retrieval`).
    pub anchor: &'static str,
    pub title: &'static str,
    /// What the section answers, one or two sentences.
    pub about: &'static str,
    /// Name prefixes of the tables and plots the section shows.
    pub prefixes: &'static [&'static str],
    /// Summary tables, shown first and at full length; other tables show a few rows.
    pub summaries: &'static [&'static str],
}

/// The YAML side of a stage: `analysis.<KEY>: {settings}`.
pub trait StageConfig: DeserializeOwned + Serialize + Default + 'static {
    /// The key under `analysis:` that turns the stage on.
    const KEY: &'static str;
    const SECTION: Section;
    /// On even when the study does not name it (robustness, which only reads other stages'
    /// metrics).
    const ON_BY_DEFAULT: bool = false;
    /// Value checks the types cannot express; keys are relative to the stage.
    fn check(&self, _facts: &Facts) -> Result<(), SettingError> {
        Ok(())
    }
    /// The stage, ready to run.
    fn start(self) -> Box<dyn Stage>;
}

/// A stage while it runs. Errors of kind [`StageError::Analysis`] (degenerate data, too few
/// classes) become a note naming the model, variant and stage, and the other stages go on;
/// [`StageError::Store`] (a table that cannot be written) stops the analysis.
pub trait Stage: Send {
    /// One (model, image variant). The clean variant comes first.
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError>;
    /// Whether the stage has per-query work that the workers of a run can share
    /// ([`Stage::share`]).
    fn shares(&self) -> bool {
        false
    }
    /// The sharing phase of a run with several workers: called by every worker for every
    /// (model, image variant) once the store is complete, before one of them runs the
    /// analysis; the stage computes the blocks of its per-query work no worker has done (see
    /// [`super::blocks`]) and reads them back in [`Stage::run`] through [`Context::blocks`].
    fn share(
        &mut self,
        _cx: &Context<'_>,
        _set: &Set<'_>,
        _blocks: &super::blocks::Blocks<'_>,
    ) -> Result<(), StageError> {
        Ok(())
    }
    /// Whether the stage measures text variants ([`Stage::run_text_variant`]); the driver
    /// reads the clean images again for them only when some stage does.
    fn wants_text_variants(&self) -> bool {
        false
    }
    /// One (model, text variant) against the clean images: `set.model`'s captions and prompts
    /// are the text variant's rows (same ids and labels as the clean texts), named by
    /// [`Model::text_variant`]. Called after the model's image variants.
    fn run_text_variant(
        &mut self,
        _cx: &Context<'_>,
        _set: &Set<'_>,
        _out: &mut Output,
    ) -> Result<(), StageError> {
        Ok(())
    }
    /// After the model's last variant.
    fn finish_model(
        &mut self,
        _cx: &Context<'_>,
        _model: &Model<'_>,
        _out: &mut Output,
    ) -> Result<(), StageError> {
        Ok(())
    }
    /// After every model; every stage's metrics are in [`Output::metrics`] by then.
    fn finish(&mut self, _cx: &Context<'_>, _out: &mut Output) -> Result<(), StageError> {
        Ok(())
    }
}

/// Why a stage stopped.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Settings under `analysis:` that are not stages: every stage may read them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Common {
    /// Where noisy images go in image-to-image comparisons (kNN and linear probes).
    #[serde(default)]
    pub noise_on: NoiseTarget,
    /// Replaces the scale of each model's scoring (softmax or sigmoid); default the model's own
    /// (exported with it), else CLIP's 100.
    #[serde(default)]
    pub logit_scale: Option<f64>,
}

/// What every stage reads: the study's seed and shared settings, where pictures go.
pub struct Context<'a> {
    pub seed: u64,
    pub common: &'a Common,
    pub plots_dir: &'a Path,
    /// The store being analysed (a run directory, a folder or a file).
    pub store: &'a Path,
    pub progress: &'a Progress,
    /// Every running stage's settings, defaults filled in, by stage key.
    pub(super) resolved: &'a serde_json::Value,
    /// Per-query results the workers of a run computed before the analysis, if any.
    pub blocks: Option<&'a super::blocks::Blocks<'a>>,
}

impl Context<'_> {
    /// Another stage's settings (defaults filled in), when that stage runs: how a stage
    /// follows a choice made once for the study (the dimension sweep pairs texts with images
    /// as the retrieval stage does).
    pub fn settings(&self, stage: &str) -> Option<&serde_json::Value> {
        self.resolved.get(stage)
    }
}

/// One model's view: its name, its texts (loaded once), its image variants.
pub struct Model<'a> {
    pub name: &'a str,
    /// Caption rows (ids that are item ids, or `item_id` naming the image).
    pub captions: Option<&'a EmbeddingSet>,
    /// Class prompt rows (`prompt:<class>:<template>`).
    pub prompts: Option<&'a EmbeddingSet>,
    /// Image variant names, clean first.
    pub variants: &'a [String],
    /// How this model turns cosines into probabilities (CLIP's softmax or SigLIP's sigmoid,
    /// with the model's own scale and bias).
    pub scoring: crate::analysis::scoring::Scoring,
    /// The text variant `captions` and `prompts` are (`clean`, or a perturbation such as
    /// `char_swap-0.1`).
    pub text_variant: &'a str,
}

/// One (model, image variant).
pub struct Set<'a> {
    pub model: &'a Model<'a>,
    pub images: &'a EmbeddingSet,
}

impl Set<'_> {
    pub fn variant(&self) -> &str {
        &self.images.variant
    }
    /// Whether the images are the clean ones (also when the texts are a text variant).
    pub fn is_clean(&self) -> bool {
        self.images.variant == "clean"
    }
    pub fn text_variant(&self) -> &str {
        self.model.text_variant
    }
    /// Clean images with clean texts: where once-per-model notes and pictures belong.
    pub fn is_all_clean(&self) -> bool {
        self.is_clean() && self.model.text_variant == "clean"
    }
    /// `clean`, the image variant, or `texts <text variant>`: how notes name the set.
    pub fn label(&self) -> String {
        if self.model.text_variant == "clean" {
            self.images.variant.clone()
        } else {
            format!(
                "{} images, texts {}",
                self.images.variant, self.model.text_variant
            )
        }
    }
}

/// One metric value, before it lands in its stage's table and in `robustness`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub model: String,
    /// The image variant.
    pub variant: String,
    /// The text variant (`clean` unless a stage measured perturbed texts).
    pub text_variant: String,
    pub stage: &'static str,
    /// Sub-kind within the stage: direction for retrieval, method for cluster and probe.
    pub kind: String,
    pub metric: String,
    pub k: Option<i64>,
    pub value: f64,
}

/// Where stages write: tables (streamed to `tables/`), pictures, notes and metrics.
pub struct Output {
    tables: TableSink,
    plots: Vec<PathBuf>,
    notes: Vec<String>,
    metrics: Vec<Metric>,
}

impl Output {
    pub(super) fn new(tables_dir: &Path) -> Output {
        Output {
            tables: TableSink::new(tables_dir),
            plots: Vec::new(),
            notes: Vec::new(),
            metrics: Vec::new(),
        }
    }

    /// Appends the rows of `table` to `tables/<table.name>.parquet`.
    pub fn table(&mut self, table: Table) -> Result<(), StoreError> {
        self.tables.append(table)
    }

    /// Something a reader must know: a skipped analysis, a number that means less than it
    /// seems. Notes go to stderr, the manifest and the report.
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Records the files of a drawn picture; one that cannot be drawn becomes a note (a
    /// picture must not cost the user the tables).
    pub fn plotted(&mut self, result: Result<Vec<PathBuf>, PlotError>) {
        match result {
            Ok(paths) => self.plots.extend(paths),
            Err(e) => self.note(format!("plots: {e}")),
        }
    }

    pub fn metric(&mut self, m: Metric) {
        self.metrics.push(m);
    }

    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The metric table of `stage` (`model`, `variant`, `text_variant`, `<kind_name>`,
    /// `metric`, `k`, `value`), when the stage recorded any.
    pub fn metric_table(&mut self, stage: &'static str, kind_name: &str) -> Result<(), StoreError> {
        let rows: Vec<&Metric> = self.metrics.iter().filter(|r| r.stage == stage).collect();
        if rows.is_empty() {
            return Ok(());
        }
        let t = Table::new(stage)
            .text("model", rows.iter().map(|r| r.model.clone()))
            .text("variant", rows.iter().map(|r| r.variant.clone()))
            .text("text_variant", rows.iter().map(|r| r.text_variant.clone()))
            .text(kind_name, rows.iter().map(|r| r.kind.clone()))
            .text("metric", rows.iter().map(|r| r.metric.clone()))
            .column("k", Column::Int(rows.iter().map(|r| r.k).collect()))
            .float("value", rows.iter().map(|r| r.value));
        self.tables.append(t)
    }

    /// Closes the tables; returns what was written.
    pub(super) fn finish(self) -> Result<Written, StoreError> {
        Ok(Written {
            tables: self.tables.finish()?,
            plots: self.plots,
            notes: self.notes,
        })
    }
}

/// The files and notes of a finished analysis.
pub(super) struct Written {
    pub tables: Vec<PathBuf>,
    pub plots: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// Safe file-name part (model and variant names come from configs).
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Splits a clipflow variant name (`gaussian-0.1`) into its noise family and level.
pub fn noise_of(variant: &str) -> (String, Option<f64>) {
    if variant == "clean" {
        return ("none".into(), Some(0.0));
    }
    match variant.rsplit_once('-') {
        Some((kind, level)) => (kind.to_string(), level.parse().ok()),
        None => (variant.to_string(), None),
    }
}
