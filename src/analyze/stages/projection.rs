//! `projection`: the PCA spectrum and low-rank reconstruction error of every image variant (on
//! all its images), and 2-D maps (PCA, t-SNE at each perplexity, UMAP) of a seeded sample
//! drawn from the clean images and reused for every variant, each map scored by
//! trustworthiness so methods compare by number as well as by picture.
//!
//! Memory: the sample's ids, nothing else of the clean set.

use serde::{Deserialize, Serialize};

use super::{embeddings, groups_by_label, rows_by_id, sample_ids, slug, wanted};
use crate::analysis::{pca, trustworthiness, tsne, umap, Distance, Embeddings};
use crate::analyze::stage::{
    Context, Facts, Model, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::chart::Series;
use crate::store::{Column, Table};

/// 2-D projection methods.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionMethod {
    Pca,
    Tsne,
    Umap,
}

/// `analysis.projection`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectionSettings {
    #[serde(default = "default_methods")]
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
    #[serde(default = "default_max_points")]
    pub max_points: usize,
    /// Neighbourhood size of the trustworthiness score of each map.
    #[serde(default = "default_trustworthiness_k")]
    pub trustworthiness_k: usize,
    /// Image variants to map (`clean`, `gaussian-0.1`, ...); default every variant. t-SNE and
    /// UMAP cost seconds to minutes per map, so long noise lists may want a few.
    #[serde(default)]
    pub variants: Option<Vec<String>>,
}

impl Default for ProjectionSettings {
    fn default() -> Self {
        ProjectionSettings {
            methods: default_methods(),
            perplexities: default_perplexities(),
            tsne_iterations: default_tsne_iterations(),
            umap_neighbors: default_umap_neighbors(),
            umap_min_dist: default_umap_min_dist(),
            max_points: default_max_points(),
            trustworthiness_k: default_trustworthiness_k(),
            variants: None,
        }
    }
}

fn default_methods() -> Vec<ProjectionMethod> {
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
fn default_max_points() -> usize {
    5000
}
fn default_trustworthiness_k() -> usize {
    10
}

impl StageConfig for ProjectionSettings {
    const KEY: &'static str = "projection";
    const SECTION: Section = Section {
        anchor: "projections",
        title: "PCA spectrum and 2-D maps",
        about: "How variance spreads over the principal components, and 2-D maps of a seeded \
                sample; trustworthiness (1 is best) says how well each map keeps the nearest \
                neighbours.",
        prefixes: &["pca", "projection"],
        summaries: &["projection_quality"],
    };

    fn check(&self, facts: &Facts) -> Result<(), SettingError> {
        if self.methods.is_empty() {
            return Err(SettingError::new(
                "methods",
                "list at least one of pca, tsne, umap",
            ));
        }
        // The maps are drawn on min(max_points, images) points: a perplexity or a neighbour
        // count the study sets and no sample can satisfy is an error now, not a skipped map
        // after encoding. (The defaults are left to the run, which skips such a map with a
        // note: a study of nine images should not fail for settings it never wrote.)
        let points = facts
            .items
            .map_or(self.max_points, |n| n.min(self.max_points));
        let default_perplexities = self.perplexities == default_perplexities();
        let default_neighbors = self.umap_neighbors == default_umap_neighbors();
        if self.methods.contains(&ProjectionMethod::Tsne) {
            if self.perplexities.is_empty() {
                return Err(SettingError::new(
                    "perplexities",
                    "list positive perplexities",
                ));
            }
            for (i, &p) in self.perplexities.iter().enumerate() {
                if !(p.is_finite() && p > 0.0) {
                    return Err(SettingError::new(
                        &format!("perplexities.{i}"),
                        "must be a positive number",
                    ));
                }
                if p >= points as f64 && !default_perplexities {
                    return Err(SettingError::new(
                        &format!("perplexities.{i}"),
                        format!(
                            "perplexity {p} needs more than {points} points (the maps use \
                             min(max_points, images) = {points}); lower it"
                        ),
                    ));
                }
            }
        }
        if self.tsne_iterations < 250 {
            return Err(SettingError::new(
                "tsne_iterations",
                "must be at least 250 (the early-exaggeration phase)",
            ));
        }
        if self.umap_neighbors < 2 {
            return Err(SettingError::new("umap_neighbors", "must be at least 2"));
        }
        if self.methods.contains(&ProjectionMethod::Umap)
            && self.umap_neighbors >= points
            && !default_neighbors
        {
            return Err(SettingError::new(
                "umap_neighbors",
                format!(
                    "{} neighbours need more than {points} points (the maps use \
                     min(max_points, images) = {points})",
                    self.umap_neighbors
                ),
            ));
        }
        if !(self.umap_min_dist.is_finite() && self.umap_min_dist >= 0.0) {
            return Err(SettingError::new("umap_min_dist", "must be 0 or more"));
        }
        if self.max_points < 10 {
            return Err(SettingError::new("max_points", "must be at least 10"));
        }
        if self.trustworthiness_k == 0 {
            return Err(SettingError::new("trustworthiness_k", "must be at least 1"));
        }
        super::check_variants(self.variants.as_deref(), facts)
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(ProjectionStage {
            settings: self,
            sample: Vec::new(),
            spectra: Vec::new(),
            errors: Vec::new(),
        })
    }
}

struct ProjectionStage {
    settings: ProjectionSettings,
    /// The clean sample's ids, shared by every variant of the current model.
    sample: Vec<String>,
    /// Per variant of the current model: cumulative explained-variance ratio and relative
    /// reconstruction error, for the two spectrum charts drawn after its last variant.
    spectra: Vec<Series>,
    errors: Vec<Series>,
}

/// One 2-D map of a sample: `xy` is rows × 2; `kl` is t-SNE's final KL divergence.
struct Map {
    method: &'static str,
    perplexity: Option<f64>,
    xy: Vec<f64>,
    kl: Option<f64>,
}

impl Stage for ProjectionStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        let model = set.model.name;
        let images = set.images;
        if set.is_clean() {
            self.sample = sample_ids(images, self.settings.max_points, cx.seed);
            let n = self.sample.len();
            out.table(
                Table::new("samples")
                    .text("stage", vec!["projection"; n])
                    .text("model", vec![model.to_string(); n])
                    .text("id", self.sample.iter().cloned())
                    .text("role", vec!["map"; n]),
            )?;
        }
        let spectrum = self.spectrum(set, out);
        let maps = if wanted(self.settings.variants.as_deref(), &images.variant, false) {
            self.maps(cx, set, out)
        } else {
            Ok(())
        };
        spectrum.and(maps)
    }

    fn finish_model(
        &mut self,
        cx: &Context<'_>,
        model: &Model<'_>,
        out: &mut Output,
    ) -> Result<(), StageError> {
        let spectra = std::mem::take(&mut self.spectra);
        let errors = std::mem::take(&mut self.errors);
        self.sample.clear();
        if spectra.is_empty() {
            return Ok(());
        }
        out.plotted(crate::chart::lines(
            &cx.plots_dir
                .join(format!("pca_spectrum_{}", slug(model.name))),
            &format!("{}: cumulative explained variance", model.name),
            "principal components",
            "cumulative explained-variance ratio",
            &spectra,
        ));
        out.plotted(crate::chart::lines(
            &cx.plots_dir
                .join(format!("pca_reconstruction_{}", slug(model.name))),
            &format!("{}: rank-k reconstruction error", model.name),
            "k (components kept)",
            "error / total variance",
            &errors,
        ));
        Ok(())
    }
}

impl ProjectionStage {
    /// Spectrum and reconstruction error of the variant, on all its images.
    fn spectrum(&mut self, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        let images = set.images;
        if images.len() < 2 {
            return Ok(());
        }
        let model = set.model.name;
        let fit = pca::pca(embeddings(images)?, None)?;
        let c = fit.n_components();
        let mut cumulative = 0.0;
        let cum: Vec<f64> = fit
            .explained_variance_ratio
            .iter()
            .map(|r| {
                cumulative += r;
                cumulative
            })
            .collect();
        out.table(
            Table::new("pca_spectrum")
                .text("model", vec![model.to_string(); c])
                .text("variant", vec![images.variant.clone(); c])
                .int("component", (1..=c).map(|k| k as i64))
                .float("explained_variance", fit.explained_variance.iter().copied())
                .float(
                    "explained_variance_ratio",
                    fit.explained_variance_ratio.iter().copied(),
                )
                .float("cumulative_ratio", cum.iter().copied()),
        )?;
        let ks: Vec<usize> = (0..=c).collect();
        let errors = fit.reconstruction_error(&ks)?;
        let total = fit.total_variance;
        out.table(
            Table::new("pca_reconstruction")
                .text("model", vec![model.to_string(); ks.len()])
                .text("variant", vec![images.variant.clone(); ks.len()])
                .int("k", ks.iter().map(|&k| k as i64))
                .float("mean_squared_error", errors.iter().copied())
                .column(
                    "relative_error",
                    Column::Float(
                        errors
                            .iter()
                            .map(|e| (total > 0.0).then(|| e / total))
                            .collect(),
                    ),
                ),
        )?;
        self.spectra.push(Series {
            name: images.variant.clone(),
            points: cum
                .iter()
                .enumerate()
                .map(|(i, &v)| ((i + 1) as f64, v))
                .collect(),
        });
        self.errors.push(Series {
            name: images.variant.clone(),
            points: ks
                .iter()
                .zip(&errors)
                .map(|(&k, &e)| (k as f64, if total > 0.0 { e / total } else { 0.0 }))
                .collect(),
        });
        Ok(())
    }

    /// The 2-D maps of the sample in this variant.
    fn maps(
        &mut self,
        cx: &Context<'_>,
        set: &Set<'_>,
        out: &mut Output,
    ) -> Result<(), StageError> {
        let pc = &self.settings;
        let model = set.model.name;
        let images = set.images;
        let (rows, x) = rows_by_id(images, &self.sample);
        let n = rows.len();
        if n < 10 {
            out.note(format!(
                "{model} / {}: projections skipped: {n} images (at least 10 needed)",
                images.variant
            ));
            return Ok(());
        }
        let x = Embeddings::new(&x, images.dim)?;
        let labels: Vec<Option<String>> = rows.iter().map(|&r| images.labels[r].clone()).collect();
        let row_ids: Vec<String> = rows.iter().map(|&r| images.ids[r].clone()).collect();
        // Trustworthiness needs k < n/2 (scikit-learn's rule).
        let tk = pc.trustworthiness_k.min((n - 1) / 2).max(1);
        let pca2 = pca::pca(x, Some(2.min(images.dim)))?;
        let mut pca_xy = pca2.transform(x, pca2.n_components())?;
        if pca2.n_components() < 2 {
            pca_xy = pca_xy.iter().flat_map(|&v| [v, 0.0]).collect();
        }
        let mut maps: Vec<Map> = Vec::new();
        for method in &pc.methods {
            match method {
                ProjectionMethod::Pca => maps.push(Map {
                    method: "pca",
                    perplexity: None,
                    xy: pca_xy.clone(),
                    kl: None,
                }),
                ProjectionMethod::Tsne => {
                    let init = tsne::scale_pca_init(&pca_xy);
                    for &perplexity in &pc.perplexities {
                        if perplexity >= n as f64 {
                            out.note(format!(
                                "{model} / {}: t-SNE at perplexity {perplexity} skipped: it must \
                                 be below the number of points ({n})",
                                images.variant
                            ));
                            continue;
                        }
                        let opts = tsne::TsneOptions {
                            perplexity,
                            max_iter: pc.tsne_iterations,
                            ..tsne::TsneOptions::default()
                        };
                        let r = tsne::tsne(x, &init, &opts)?;
                        maps.push(Map {
                            method: "tsne",
                            perplexity: Some(perplexity),
                            xy: r.embedding,
                            kl: Some(r.kl_divergence),
                        });
                    }
                }
                ProjectionMethod::Umap => {
                    if pc.umap_neighbors >= n {
                        out.note(format!(
                            "{model} / {}: UMAP skipped: umap_neighbors {} is not below the \
                             number of points ({n})",
                            images.variant, pc.umap_neighbors
                        ));
                        continue;
                    }
                    let opts = umap::UmapOptions {
                        n_neighbors: pc.umap_neighbors,
                        min_dist: pc.umap_min_dist,
                        seed: cx.seed,
                        ..umap::UmapOptions::default()
                    };
                    let r = umap::umap(x, &opts)?;
                    maps.push(Map {
                        method: "umap",
                        perplexity: None,
                        xy: r.embedding,
                        kl: None,
                    });
                }
            }
        }
        for Map {
            method,
            perplexity,
            xy,
            kl,
        } in maps
        {
            let trust = trustworthiness::trustworthiness(x, &xy, 2, tk, Distance::Euclidean)?;
            out.table(
                Table::new("projection_quality")
                    .text("model", [model.to_string()])
                    .text("variant", [images.variant.clone()])
                    .text("method", [method])
                    .column("perplexity", Column::Float(vec![perplexity]))
                    .int("points", [n as i64])
                    .int("k", [tk as i64])
                    .float("trustworthiness", [trust])
                    .column("kl_divergence", Column::Float(vec![kl])),
            )?;
            out.table(
                Table::new("projection_coordinates")
                    .text("model", vec![model.to_string(); n])
                    .text("variant", vec![images.variant.clone(); n])
                    .text("method", vec![method; n])
                    .column("perplexity", Column::Float(vec![perplexity; n]))
                    .text("id", row_ids.iter().cloned())
                    .column("label", Column::Text(labels.clone()))
                    .float("x", xy.iter().step_by(2).copied())
                    .float("y", xy.iter().skip(1).step_by(2).copied()),
            )?;
            let (title_method, stem_method) = match (method, perplexity) {
                ("tsne", Some(p)) => (format!("t-SNE (perplexity {p})"), format!("tsne_p{p}")),
                ("umap", _) => ("UMAP".to_string(), "umap".to_string()),
                _ => ("PCA".to_string(), "pca".to_string()),
            };
            out.plotted(crate::chart::scatter(
                &cx.plots_dir.join(format!(
                    "projection_{}_{}_{}",
                    slug(model),
                    stem_method,
                    slug(&images.variant)
                )),
                &format!(
                    "{model}: {title_method}, {} images, trustworthiness {trust:.3}",
                    images.variant
                ),
                &format!("{title_method} 1"),
                &format!("{title_method} 2"),
                &groups_by_label(&labels, &xy),
            ));
        }
        Ok(())
    }
}
