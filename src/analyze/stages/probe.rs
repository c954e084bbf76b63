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
//! The kNN probe is N²; `knn_queries: N` scores it on a seeded sample of N test images.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{labelled, sample_by_id};
use crate::analysis::probe::{self, LinearProbeOptions, Split};
use crate::analysis::Embeddings;
use crate::analyze::stage::{
    Context, Facts, Metric, NoiseTarget, Output, Section, Set, SettingError, Stage, StageConfig,
    StageError,
};
use crate::store::Table;

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
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            knn_k: default_knn(),
            test_fraction: default_test_fraction(),
            knn_queries: None,
        }
    }
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

impl Stage for ProbeStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        let pc = &self.settings;
        let model = set.model.name;
        let images = set.images;
        let (train_noisy, test_noisy) = match cx.common.noise_on {
            NoiseTarget::Queries => (false, true),
            NoiseTarget::Gallery => (true, false),
            NoiseTarget::Both => (true, true),
        };
        if set.is_clean() {
            self.clean = None;
            let Some((truth, labels)) = labelled(images) else {
                out.note(format!(
                    "{model}: probes skipped: not every image has a label"
                ));
                return Ok(());
            };
            if labels.names.len() < 2 {
                out.note(format!("{model}: probes skipped: a single class"));
                return Ok(());
            }
            let split = probe::stratified_split(&truth, pc.test_fraction, cx.seed)?;
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
                            .map(|&i| images.ids[i].clone()),
                    )
                    .text(
                        "role",
                        std::iter::repeat_n("train", split.train.len())
                            .chain(std::iter::repeat_n("test", split.test.len())),
                    ),
            )?;
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
        }
        let Some(clean) = &self.clean else {
            return Ok(());
        };
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
            return Ok(());
        }
        let e = Embeddings::new(&x, dim)?;
        let knn_split = match pc.knn_queries {
            Some(n) if n < combined.test.len() => {
                let ids: Vec<&str> = combined.test.iter().map(|&t| row_ids[t]).collect();
                if set.is_clean() {
                    out.note(format!(
                        "{model}: the kNN probe is scored on a seeded sample of {n} of {} test \
                         images (analysis.probe.knn_queries)",
                        combined.test.len()
                    ));
                }
                let picked = sample_by_id(ids.into_iter(), n, cx.seed ^ 0x6e6e);
                Split {
                    train: combined.train.clone(),
                    test: picked.into_iter().map(|j| combined.test[j]).collect(),
                }
            }
            _ => combined.clone(),
        };
        let knn =
            probe::knn_accuracy(e, &y, &knn_split, pc.knn_k.min(combined.train.len()).max(1))?;
        let (linear, _) = probe::linear_probe(e, &y, &combined, &LinearProbeOptions::default())?;
        for (kind, k, value) in [
            ("knn", Some(pc.knn_k as i64), knn.accuracy),
            ("linear", None, linear.accuracy),
        ] {
            out.metric(Metric {
                model: model.to_string(),
                variant: images.variant.clone(),
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
