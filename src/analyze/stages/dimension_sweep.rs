//! `dimension_sweep`: retrieval and zero-shot quality of the clean images after PCA to fewer
//! dimensions, fitted on one seeded share of the items and measured on the others, and the
//! smallest dimension within `tolerance` of the original per metric.
//!
//! Retrieval here pairs texts with images exactly as the `retrieval` stage does (its
//! `positives` setting: captions, or labels), so the sweep's "original" row is comparable to
//! the retrieval table's. The fit/eval split is written to `samples`.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::retrieval::{default_ks, paired_texts, positive_keys, PositivesKind};
use super::{prompt_classes, slug};
use crate::analysis::retrieval::{self, Positives, RankOptions};
use crate::analysis::{pca, seeded_subsample, zero_shot, AnalysisError, Embeddings};
use crate::analyze::stage::{
    Context, Facts, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::chart::Series;
use crate::store::{Column, EmbeddingSet, Table};

/// Which embeddings the PCA is fitted on.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FitOn {
    Images,
    Texts,
    /// Images and texts of the fit split together.
    #[default]
    Both,
}

/// `analysis.dimension_sweep`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DimensionSweepSettings {
    /// Target dimensions; values at or above the model's dimension are skipped, and the full
    /// dimension is always measured as the reference.
    #[serde(default = "default_dims")]
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
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Subtract the fitted mean before projecting (scikit-learn's `PCA.transform`). Off by
    /// default: without it the full-rank projection is a rotation, so cosines at D′ = D are
    /// the original ones and the sweep measures what dropping dimensions alone costs; centring
    /// also moves the origin the cosines are taken around (and, fitted on both modalities,
    /// partly closes the gap between them), which changes the metrics at every D′.
    #[serde(default)]
    pub centre: bool,
}

impl Default for DimensionSweepSettings {
    fn default() -> Self {
        DimensionSweepSettings {
            dims: default_dims(),
            fit_fraction: default_fit_fraction(),
            fit_on: FitOn::Both,
            k: default_ks(),
            tolerance: default_tolerance(),
            centre: false,
        }
    }
}

fn default_dims() -> Vec<usize> {
    vec![2, 4, 8, 16, 32, 64, 128, 256, 512]
}
fn default_fit_fraction() -> f64 {
    0.5
}
fn default_tolerance() -> f64 {
    0.01
}

impl StageConfig for DimensionSweepSettings {
    const KEY: &'static str = "dimension_sweep";
    const SECTION: Section = Section {
        anchor: "dimension-sweep",
        title: "Dimension sweep",
        about: "Retrieval and zero-shot quality after PCA to fewer dimensions (fitted on one \
                half of the items, measured on the other), and the smallest dimension within \
                tolerance.",
        prefixes: &["dimension_sweep"],
        summaries: &["dimension_sweep_summary"],
    };

    fn check(&self, _: &Facts) -> Result<(), SettingError> {
        if self.dims.is_empty() {
            return Err(SettingError::new("dims", "list dimensions of at least 1"));
        }
        if let Some(i) = self.dims.iter().position(|&d| d == 0) {
            return Err(SettingError::new(
                &format!("dims.{i}"),
                "must be at least 1",
            ));
        }
        if !(self.fit_fraction > 0.0 && self.fit_fraction < 1.0) {
            return Err(SettingError::new(
                "fit_fraction",
                "must be strictly between 0 and 1",
            ));
        }
        if self.k.is_empty() {
            return Err(SettingError::new("k", "list cut-offs of at least 1"));
        }
        if let Some(i) = self.k.iter().position(|&k| k == 0) {
            return Err(SettingError::new(&format!("k.{i}"), "must be at least 1"));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(SettingError::new("tolerance", "must be 0 or more"));
        }
        Ok(())
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(DimensionSweepStage { settings: self })
    }
}

struct DimensionSweepStage {
    settings: DimensionSweepSettings,
}

/// One measurement of the dimension sweep.
struct SweepPoint {
    dim: usize,
    reduced: bool,
    metric: &'static str,
    k: Option<usize>,
    value: f64,
}

fn gather(vectors: &[f32], dim: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| vectors[r * dim..(r + 1) * dim].iter().copied())
        .collect()
}

impl Stage for DimensionSweepStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        if !set.is_clean() {
            return Ok(());
        }
        let dc = &self.settings;
        let m = set.model;
        let clean = set.images;
        let n = clean.len();
        if n < 4 {
            out.note(format!(
                "{}: dimension sweep skipped: {n} images (at least 4 needed)",
                m.name
            ));
            return Ok(());
        }
        // Retrieval pairs texts with images as the retrieval stage does.
        let positives = cx
            .settings("retrieval")
            .and_then(|r| serde_json::from_value::<PositivesKind>(r["positives"].clone()).ok())
            .unwrap_or_default();
        let paired = paired_texts(m, positives);

        // The fit split: a seeded share of the items; the metrics use the rest.
        let fit_count = ((n as f64 * dc.fit_fraction).round() as usize).clamp(1, n - 1);
        let fit_rows = seeded_subsample(n, fit_count, cx.seed ^ 0xd1_5eed);
        let is_fit: BTreeSet<usize> = fit_rows.iter().copied().collect();
        let eval_rows: Vec<usize> = (0..n).filter(|i| !is_fit.contains(i)).collect();
        out.table(
            Table::new("samples")
                .text("stage", vec!["dimension_sweep"; n])
                .text("model", vec![m.name.to_string(); n])
                .text("id", (0..n).map(|i| clean.ids[i].clone()))
                .text(
                    "role",
                    (0..n).map(|i| if is_fit.contains(&i) { "fit" } else { "eval" }),
                ),
        )?;
        let fit_ids: BTreeSet<&str> = fit_rows.iter().map(|&i| clean.ids[i].as_str()).collect();
        let dim = clean.dim;
        let mut fit_data = Vec::new();
        let captions = m.captions;
        let use_images = matches!(dc.fit_on, FitOn::Images | FitOn::Both) || captions.is_none();
        if use_images {
            fit_data.extend(gather(&clean.vectors, dim, &fit_rows));
        }
        if matches!(dc.fit_on, FitOn::Texts | FitOn::Both) {
            if let Some(c) = captions {
                let rows: Vec<usize> = (0..c.len())
                    .filter(|&i| fit_ids.contains(c.item(i)))
                    .collect();
                fit_data.extend(gather(&c.vectors, dim, &rows));
            }
        }
        if captions.is_none() && dc.fit_on == FitOn::Texts {
            out.note(format!(
                "{}: dimension sweep: no captions to fit on, fitted on images",
                m.name
            ));
        }
        let fit = pca::pca(Embeddings::new(&fit_data, dim)?, None)?;
        let mut dims: Vec<usize> = dc
            .dims
            .iter()
            .copied()
            // n_components ≤ dim, and the full rank is measured below anyway.
            .filter(|&d| d < fit.n_components())
            .collect();
        dims.sort_unstable();
        dims.dedup();

        let eval_images = clean.subset(|i| !is_fit.contains(&i));
        // The texts retrieval measures: captions of the evaluation items (a caption whose image
        // failed to decode has no positive to find, for reasons that are not the model's), or
        // the labelled texts for label positives.
        let eval_texts: Option<(EmbeddingSet, Vec<usize>, Vec<usize>)> =
            paired.and_then(|(texts, mode)| {
                let eval_ids: BTreeSet<&str> = eval_images.ids.iter().map(String::as_str).collect();
                let kept = if mode == "caption" {
                    texts.subset(|i| eval_ids.contains(texts.item(i)))
                } else if texts.ids.iter().all(|id| id.starts_with("prompt:")) {
                    texts.clone()
                } else {
                    texts.subset(|i| eval_ids.contains(texts.item(i)))
                };
                if kept.is_empty() {
                    return None;
                }
                let (tk, ik) = positive_keys(&kept, &eval_images, mode);
                Some((kept, tk, ik))
            });
        let ks: Vec<usize> =
            dc.k.iter()
                .copied()
                .filter(|&k| k <= eval_images.len())
                .collect();
        // Which evaluation images zero-shot can score against which classes.
        let zero_shot_setup = match m.prompts {
            Some(p) => {
                let (classes, _) = prompt_classes(p)?;
                let index: HashMap<&str, usize> = classes
                    .names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.as_str(), i))
                    .collect();
                let (scored, y): (Vec<usize>, Vec<usize>) = (0..eval_rows.len())
                    .filter_map(|i| {
                        let class = index.get(eval_images.labels[i].as_deref()?)?;
                        Some((i, *class))
                    })
                    .unzip();
                (!scored.is_empty()).then_some((classes, scored, y))
            }
            None => None,
        };
        let mode = paired.map(|(_, mode)| mode).unwrap_or("caption");

        // Measures every metric on embeddings given in `d` dimensions (already normalised).
        let measure = |images: &[f32],
                       texts: Option<&[f32]>,
                       prompts: Option<&[f32]>,
                       d: usize,
                       reduced: bool|
         -> Result<Vec<SweepPoint>, AnalysisError> {
            let mut points = Vec::new();
            if let (Some((_, text_keys, image_keys)), Some(t)) = (&eval_texts, texts) {
                let r = retrieval::retrieve(
                    Embeddings::new(t, d)?,
                    Embeddings::new(images, d)?,
                    &Positives::SharedKey {
                        query: text_keys,
                        gallery: image_keys,
                    },
                    &ks,
                    &RankOptions::default(),
                )?;
                for rk in &r.metrics.recall {
                    points.push(SweepPoint {
                        dim: d,
                        reduced,
                        metric: if mode == "caption" {
                            "text_to_image_recall"
                        } else {
                            "text_to_image_label_recall"
                        },
                        k: Some(rk.k),
                        value: rk.recall,
                    });
                }
            }
            if let (Some((classes, scored, y)), Some(prompt_vectors)) = (&zero_shot_setup, prompts)
            {
                let x: Vec<f32> = scored
                    .iter()
                    .flat_map(|&i| images[i * d..(i + 1) * d].iter().copied())
                    .collect();
                let class_vectors = zero_shot::class_embeddings(
                    Embeddings::new(prompt_vectors, d)?,
                    &classes.ids,
                    classes.names.len(),
                )?;
                let z = zero_shot::zero_shot(
                    Embeddings::new(&x, d)?,
                    Embeddings::new(&class_vectors, d)?,
                    y,
                )?;
                points.push(SweepPoint {
                    dim: d,
                    reduced,
                    metric: "zero_shot_top1",
                    k: None,
                    value: z.top1,
                });
            }
            Ok(points)
        };

        // The reference: the original embeddings, untouched.
        let mut points = measure(
            &eval_images.vectors,
            eval_texts.as_ref().map(|(t, _, _)| t.vectors.as_slice()),
            m.prompts.map(|p| p.vectors.as_slice()),
            dim,
            false,
        )?;
        if points.is_empty() {
            out.note(format!(
                "{}: dimension sweep skipped: no texts to pair with the images and no class \
                 prompts to measure with",
                m.name
            ));
            return Ok(());
        }
        let eval_e = Embeddings::new(&eval_images.vectors, dim)?;
        let project = |x: Embeddings<'_>, d: usize| {
            if dc.centre {
                fit.project_normalized(x, d)
            } else {
                fit.rotate_normalized(x, d)
            }
        };
        for &d in dims.iter().chain(std::iter::once(&fit.n_components())) {
            let images = project(eval_e, d)?;
            let texts = match &eval_texts {
                Some((t, _, _)) => Some(project(Embeddings::new(&t.vectors, dim)?, d)?),
                None => None,
            };
            let prompts = match m.prompts {
                Some(p) => Some(project(Embeddings::new(&p.vectors, p.dim)?, d)?),
                None => None,
            };
            points.extend(measure(
                &images,
                texts.as_deref(),
                prompts.as_deref(),
                d,
                true,
            )?);
        }

        let n_points = points.len();
        out.table(
            Table::new("dimension_sweep")
                .text("model", vec![m.name.to_string(); n_points])
                .text(
                    "projection",
                    points
                        .iter()
                        .map(|p| if p.reduced { "pca" } else { "original" }),
                )
                .int("dim", points.iter().map(|p| p.dim as i64))
                .text("metric", points.iter().map(|p| p.metric))
                .column(
                    "k",
                    Column::Int(points.iter().map(|p| p.k.map(|k| k as i64)).collect()),
                )
                .float("value", points.iter().map(|p| p.value)),
        )?;

        // The smallest dimension within tolerance of the original, per metric.
        let mut keys: Vec<(&'static str, Option<usize>)> =
            points.iter().map(|p| (p.metric, p.k)).collect();
        keys.sort();
        keys.dedup();
        let mut summary = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut series = Vec::new();
        for (metric, k) in keys {
            let of = |reduced: bool| {
                points
                    .iter()
                    .filter(move |p| p.metric == metric && p.k == k && p.reduced == reduced)
            };
            let Some(full) = of(false).next().map(|p| p.value) else {
                continue;
            };
            let smallest = of(true)
                .filter(|p| p.value >= full - dc.tolerance)
                .min_by_key(|p| p.dim);
            summary.0.push(metric.to_string());
            summary.1.push(k.map(|k| k as i64));
            summary.2.push(full);
            summary.3.push(smallest.map(|p| p.dim as i64));
            summary.4.push(smallest.map(|p| p.value));
            let name = match k {
                Some(k) => format!("{metric}@{k}"),
                None => metric.to_string(),
            };
            series.push(Series {
                name,
                points: of(true).map(|p| ((p.dim as f64).log2(), p.value)).collect(),
            });
        }
        let rows = summary.0.len();
        out.table(
            Table::new("dimension_sweep_summary")
                .text("model", vec![m.name.to_string(); rows])
                .text("metric", summary.0)
                .column("k", Column::Int(summary.1))
                .float("original_value", summary.2)
                .float("tolerance", vec![dc.tolerance; rows])
                .column("smallest_dim", Column::Int(summary.3))
                .column("value_at_smallest_dim", Column::Float(summary.4)),
        )?;
        out.plotted(crate::chart::lines(
            &cx.plots_dir
                .join(format!("dimension_sweep_{}", slug(m.name))),
            &format!("{}: quality after PCA to fewer dimensions", m.name),
            "log2 of the dimension",
            "value",
            &series,
        ));
        Ok(())
    }
}
