//! `probe`: how separable the classes are, by kNN and by a linear probe (multinomial logistic
//! regression) on a seeded stratified split of the clean images; for each noise variant,
//! `analysis.noise_on` says which side of the split is noisy (noisy test images against clean
//! training images by default).
//!
//! The split is drawn once per model from the clean labels and written to `samples` (id and
//! role), so the numbers can be recomputed with scikit-learn from the run directory alone.
//!
//! Memory: to compare a noisy variant with the clean one, the stage keeps the clean vectors of
//! the side that stays clean (the training images, by default): up to one clean image set.
//! The kNN probe is N²; `knn_queries: N` scores it on a seeded sample of N test images, and
//! the workers of a cluster array share its test images in blocks of `block_queries`
//! ([`crate::analyze::blocks`]), whose predictions are the bits one worker computes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{labelled, sample_by_id};
use crate::analysis::probe::{self, LinearProbeOptions, Split};
use crate::analysis::Embeddings;
use crate::analyze::blocks::Blocks;
use crate::analyze::stage::{
    Context, Facts, Metric, NoiseTarget, Output, Section, Set, SettingError, Stage, StageConfig,
    StageError,
};
use crate::store::{EmbeddingSet, Table};

/// `analysis.probe`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeSettings {
    #[serde(default = "default_knn")]
    pub knn_k: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Score kNN on a seeded sample of this many test images (default: all of them).
    #[serde(default)]
    pub knn_queries: Option<usize>,
    /// kNN test images per block of a run shared by a cluster array's workers.
    #[serde(default = "default_block_queries")]
    pub block_queries: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            knn_k: default_knn(),
            test_fraction: default_test_fraction(),
            knn_queries: None,
            block_queries: default_block_queries(),
        }
    }
}

fn default_block_queries() -> usize {
    4096
}

fn default_knn() -> usize {
    10
}
pub(crate) fn default_test_fraction() -> f64 {
    0.3
}

impl StageConfig for ProbeSettings {
    const KEY: &'static str = "probe";
    const SECTION: Section = Section {
        anchor: "probes",
        title: "Probes",
        about: "kNN and linear-probe accuracy on a seeded stratified split.",
        prefixes: &["probe"],
        summaries: &["probe"],
    };

    fn check(&self, _: &Facts) -> Result<(), SettingError> {
        if self.knn_k == 0 {
            return Err(SettingError::new("knn_k", "must be at least 1"));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(SettingError::new(
                "test_fraction",
                "must be strictly between 0 and 1",
            ));
        }
        if self.block_queries == 0 {
            return Err(SettingError::new("block_queries", "must be at least 1"));
        }
        if self.knn_queries == Some(0) {
            return Err(SettingError::new(
                "knn_queries",
                "must be at least 1 (leave it out to score every test image)",
            ));
        }
        Ok(())
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(ProbeStage {
            settings: self,
            clean: None,
        })
    }
}

struct ProbeStage {
    settings: ProbeSettings,
    /// What the model's clean variant left for its noisy ones.
    clean: Option<CleanSplit>,
}

/// The clean split of one model, and the clean vectors of the side that stays clean.
struct CleanSplit {
    ids: Vec<String>,
    labels: Vec<usize>,
    split: Split,
    /// Clean vectors of `split.train` (noise on queries) or `split.test` (noise on the
    /// gallery), in split order; empty when both sides are noisy.
    kept: Vec<f32>,
    dim: usize,
}

/// What the probes of one set run on: the set's rows aligned with the model's clean split.
struct ProbeInputs {
    x: Vec<f32>,
    y: Vec<usize>,
    dim: usize,
    /// Indices into `x` of the training and test rows.
    combined: Split,
    /// The split the kNN probe scores: `combined`, or a seeded sample of its test rows.
    knn_split: Split,
    /// `(sampled, of)` when the kNN probe scores a sample of the test rows.
    sampled: Option<(usize, usize)>,
}

/// Why a model's probes are skipped.
enum Skip {
    Unlabelled,
    OneClass,
}

impl ProbeStage {
    /// Draws the model's clean split from its clean set (kept in `self.clean` for its noisy
    /// variants); `Err(skip)` when the probes cannot run.
    fn start_model(
        &mut self,
        cx: &Context<'_>,
        images: &EmbeddingSet,
    ) -> Result<Result<(), Skip>, StageError> {
        self.clean = None;
        let Some((truth, labels)) = labelled(images) else {
            return Ok(Err(Skip::Unlabelled));
        };
        if labels.names.len() < 2 {
            return Ok(Err(Skip::OneClass));
        }
        let split = probe::stratified_split(&truth, self.settings.test_fraction, cx.seed)?;
        let (train_noisy, test_noisy) = noisy_sides(cx);
        let keep = if !train_noisy {
            &split.train
        } else if !test_noisy {
            &split.test
        } else {
            &Vec::new()
        };
        let kept = keep
            .iter()
            .flat_map(|&i| images.row(i).iter().copied())
            .collect();
        self.clean = Some(CleanSplit {
            ids: images.ids.clone(),
            labels: truth,
            split,
            kept,
            dim: images.dim,
        });
        Ok(Ok(()))
    }

    /// The rows the probes of `set` run on (`None`: nothing to probe).
    fn inputs(&self, cx: &Context<'_>, set: &Set<'_>) -> Option<ProbeInputs> {
        let clean = self.clean.as_ref()?;
        let images = set.images;
        let (train_noisy, test_noisy) = noisy_sides(cx);
        // Align the variant's rows with the clean rows by id (a variant may lack failed items).
        let pos: HashMap<&str, usize> = images
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut x: Vec<f32> = Vec::new();
        let mut y: Vec<usize> = Vec::new();
        let mut row_ids: Vec<&str> = Vec::new();
        let mut combined = Split {
            train: Vec::new(),
            test: Vec::new(),
        };
        let dim = clean.dim;
        for (rows, noisy, is_test) in [
            (&clean.split.train, train_noisy, false),
            (&clean.split.test, test_noisy, true),
        ] {
            for (k, &i) in rows.iter().enumerate() {
                let row = if noisy || set.is_clean() {
                    match pos.get(clean.ids[i].as_str()) {
                        Some(&j) => images.row(j),
                        None => continue,
                    }
                } else {
                    &clean.kept[k * dim..(k + 1) * dim]
                };
                let index = y.len();
                x.extend_from_slice(row);
                y.push(clean.labels[i]);
                row_ids.push(clean.ids[i].as_str());
                if is_test {
                    combined.test.push(index);
                } else {
                    combined.train.push(index);
                }
            }
        }
        if combined.train.is_empty() || combined.test.is_empty() {
            return None;
        }
        let (knn_split, sampled) = match self.settings.knn_queries {
            Some(n) if n < combined.test.len() => {
                let ids: Vec<&str> = combined.test.iter().map(|&t| row_ids[t]).collect();
                let picked = sample_by_id(ids.into_iter(), n, cx.seed ^ 0x6e6e);
                let split = Split {
                    train: combined.train.clone(),
                    test: picked.into_iter().map(|j| combined.test[j]).collect(),
                };
                (split, Some((n, combined.test.len())))
            }
            _ => (combined.clone(), None),
        };
        Some(ProbeInputs {
            x,
            y,
            dim,
            combined,
            knn_split,
            sampled,
        })
    }

    fn k(&self, inputs: &ProbeInputs) -> usize {
        self.settings.knn_k.min(inputs.combined.train.len()).max(1)
    }

    fn group(&self, cx: &Context<'_>, set: &Set<'_>) -> String {
        crate::analyze::blocks::group(
            "probe",
            &self.settings,
            cx.seed,
            set.model.name,
            set.variant(),
        )
    }

    /// The kNN predictions of the test rows: read from the blocks other workers computed when
    /// they are all there, else computed here.
    fn knn_predictions(
        &self,
        cx: &Context<'_>,
        set: &Set<'_>,
        inputs: &ProbeInputs,
    ) -> Result<Vec<usize>, StageError> {
        let n = inputs.knn_split.test.len();
        if let Some(blocks) = cx.blocks {
            let size = self.settings.block_queries;
            if let Some(tables) = blocks.read(&self.group(cx, set), n.div_ceil(size))? {
                if let Some(p) = predictions_from_blocks(&tables, n) {
                    return Ok(p);
                }
            }
        }
        let e = Embeddings::new(&inputs.x, inputs.dim)?;
        Ok(probe::knn_predictions(
            e,
            &inputs.y,
            &inputs.knn_split,
            self.k(inputs),
            0..n,
        )?)
    }
}

/// Which sides of the split carry a noisy variant's rows: (training, test).
fn noisy_sides(cx: &Context<'_>) -> (bool, bool) {
    match cx.common.noise_on {
        NoiseTarget::Queries => (false, true),
        NoiseTarget::Gallery => (true, false),
        NoiseTarget::Both => (true, true),
    }
}

/// The predictions of `n` test rows from their block tables; `None` when they do not fit
/// together (then they are computed again).
fn predictions_from_blocks(tables: &[Table], n: usize) -> Option<Vec<usize>> {
    let mut out = Vec::with_capacity(n);
    for t in tables {
        let (q, p) = (t.ints("query")?, t.ints("prediction")?);
        for i in 0..t.rows() {
            if q[i]? as usize != out.len() {
                return None;
            }
            out.push(usize::try_from(p[i]?).ok()?);
        }
    }
    (out.len() == n).then_some(out)
}

impl Stage for ProbeStage {
    fn shares(&self) -> bool {
        true
    }

    /// The kNN probe's test rows, in blocks of `block_queries` (the linear probe is one fit,
    /// which the finisher does).
    fn share(
        &mut self,
        cx: &Context<'_>,
        set: &Set<'_>,
        blocks: &Blocks<'_>,
    ) -> Result<(), StageError> {
        if set.is_clean() && self.start_model(cx, set.images)?.is_err() {
            return Ok(());
        }
        let Some(inputs) = self.inputs(cx, set) else {
            return Ok(());
        };
        let e = Embeddings::new(&inputs.x, inputs.dim)?;
        let (k, size, n) = (
            self.k(&inputs),
            self.settings.block_queries,
            inputs.knn_split.test.len(),
        );
        blocks.compute(&self.group(cx, set), n.div_ceil(size), &mut |b| {
            let start = b * size;
            let end = (start + size).min(n);
            let p = probe::knn_predictions(e, &inputs.y, &inputs.knn_split, k, start..end)
                .map_err(|e| e.to_string())?;
            Ok(Table::new("block")
                .int("query", (start..end).map(|q| q as i64))
                .int("prediction", p.into_iter().map(|v| v as i64)))
        })?;
        Ok(())
    }

    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        let model = set.model.name;
        if set.is_clean() {
            match self.start_model(cx, set.images)? {
                Err(Skip::Unlabelled) => {
                    out.note(format!(
                        "{model}: probes skipped: not every image has a label"
                    ));
                    return Ok(());
                }
                Err(Skip::OneClass) => {
                    out.note(format!("{model}: probes skipped: a single class"));
                    return Ok(());
                }
                Ok(()) => {}
            }
            if let Some(clean) = &self.clean {
                let split = &clean.split;
                let n = split.train.len() + split.test.len();
                out.table(
                    Table::new("samples")
                        .text("stage", vec!["probe"; n])
                        .text("model", vec![model.to_string(); n])
                        .text(
                            "id",
                            split
                                .train
                                .iter()
                                .chain(&split.test)
                                .map(|&i| clean.ids[i].clone()),
                        )
                        .text(
                            "role",
                            std::iter::repeat_n("train", split.train.len())
                                .chain(std::iter::repeat_n("test", split.test.len())),
                        ),
                )?;
            }
        }
        let Some(inputs) = self.inputs(cx, set) else {
            return Ok(());
        };
        if let (Some((n, of)), true) = (inputs.sampled, set.is_clean()) {
            out.note(format!(
                "{model}: the kNN probe is scored on a seeded sample of {n} of {of} test \
                 images (analysis.probe.knn_queries)"
            ));
        }
        let predictions = self.knn_predictions(cx, set, &inputs)?;
        let knn = probe::score_predictions(&inputs.y, &inputs.knn_split, predictions)?;
        let e = Embeddings::new(&inputs.x, inputs.dim)?;
        let (linear, _) = probe::linear_probe(
            e,
            &inputs.y,
            &inputs.combined,
            &LinearProbeOptions::default(),
        )?;
        for (kind, k, value) in [
            ("knn", Some(self.settings.knn_k as i64), knn.accuracy),
            ("linear", None, linear.accuracy),
        ] {
            out.metric(Metric {
                model: model.to_string(),
                variant: set.images.variant.clone(),
                text_variant: set.text_variant().to_string(),
                stage: "probe",
                kind: kind.to_string(),
                metric: "accuracy".into(),
                k,
                value,
            });
        }
        Ok(())
    }

    fn finish_model(
        &mut self,
        _: &Context<'_>,
        _: &crate::analyze::stage::Model<'_>,
        _: &mut Output,
    ) -> Result<(), StageError> {
        self.clean = None;
        Ok(())
    }

    fn finish(&mut self, _: &Context<'_>, out: &mut Output) -> Result<(), StageError> {
        out.metric_table("probe", "method")?;
        Ok(())
    }
}
