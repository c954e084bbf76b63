//! The geometry half of the analysis: the shape of each model's embedding cloud.
//!
//! - `projection`: the PCA spectrum and low-rank reconstruction error of every image variant,
//!   and 2-D maps (PCA, t-SNE at each perplexity, UMAP) of a seeded sample, each scored by
//!   trustworthiness so methods compare by number as well as by picture;
//! - `dimension_sweep`: retrieval and zero-shot quality after PCA to fewer dimensions, fitted
//!   on one seeded half of the items and measured on the other;
//! - `subspaces`: principal angles between the classes' top-r PCA subspaces;
//! - `topology`: Vietoris–Rips persistence (H0, H1) of a seeded sample per variant, and the
//!   bottleneck and Wasserstein distances of every noisy diagram to the clean one;
//! - `attributes`: how boolean or categorical metadata lines up with the principal
//!   components, and how well a linear probe predicts it.
//!
//! Like the rest of the analysis it reads only the store (and, for attributes, a Parquet of
//! item metadata), and every sample is drawn by id from the clean images, so each variant is
//! measured on the same items.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::analyze::ModelSets;
use crate::analysis::persistence::{self, PersistenceOptions};
use crate::analysis::probe::{self, LinearProbeOptions};
use crate::analysis::retrieval::{self, Positives, RankOptions};
use crate::analysis::{
    attributes, pca, seeded_subsample, subspace, trustworthiness, tsne, umap, zero_shot,
    AnalysisError, Distance, Embeddings, Labels,
};
use crate::config::{
    AnalysisConfig, AttributesConfig, DimensionSweepConfig, FitOn, MetricName, ProjectionConfig,
    ProjectionMethod, SubspaceConfig, TopologyConfig,
};
use crate::progress::Progress;
use crate::report::{self, ScatterGroup, Series};
use crate::store::{Column, EmbeddingSet, Table};

/// Tables, pictures and notes of one model's geometry stages.
#[derive(Default)]
pub(super) struct GeometryOutput {
    pub tables: Vec<Table>,
    pub plots: Vec<PathBuf>,
    pub notes: Vec<String>,
}

impl GeometryOutput {
    fn plotted(&mut self, result: Result<Vec<PathBuf>, report::PlotError>) {
        match result {
            Ok(paths) => self.plots.extend(paths),
            // A picture that cannot be drawn must not cost the user the tables.
            Err(e) => self.notes.push(format!("plots: {e}")),
        }
    }
}

/// Where the attribute table comes from, resolved by the caller.
pub(super) struct AttributeSource<'a> {
    pub table: &'a Table,
    pub path: &'a Path,
}

/// Runs every geometry stage `config` turns on for one model.
///
/// A stage that fails on this model's data (a degenerate cloud, too few classes for a
/// parameter) becomes a note naming the stage and the reason, and the other stages and the
/// metric tables still land: these stages run after hours of encoding, and one of them failing
/// must not cost the rest.
pub(super) fn run(
    m: &ModelSets<'_>,
    config: &AnalysisConfig,
    attributes: Option<AttributeSource<'_>>,
    seed: u64,
    plots_dir: &Path,
    progress: &Progress,
) -> GeometryOutput {
    let mut out = GeometryOutput::default();
    let Some(&clean) = m.images.first() else {
        return out;
    };
    let finish =
        |out: &mut GeometryOutput, stage: &str, t: Instant, r: Result<(), AnalysisError>| match r {
            Ok(()) => progress.info(&format!(
                "analysis: {} {stage} in {:.1} s",
                m.name,
                t.elapsed().as_secs_f64()
            )),
            Err(e) => out.notes.push(format!("{}: {stage} failed: {e}", m.name)),
        };
    if let Some(pc) = &config.projection {
        let t = Instant::now();
        let r = projection(m, pc, seed, plots_dir, &mut out);
        finish(&mut out, "projection", t, r);
    }
    if let Some(dc) = &config.dimension_sweep {
        let t = Instant::now();
        let r = dimension_sweep(m, clean, dc, seed, plots_dir, &mut out);
        finish(&mut out, "dimension sweep", t, r);
    }
    if let Some(sc) = &config.subspaces {
        let t = Instant::now();
        let r = subspaces(m, clean, sc, plots_dir, &mut out);
        finish(&mut out, "subspace angles", t, r);
    }
    if let Some(tc) = &config.topology {
        let t = Instant::now();
        let r = topology(m, tc, seed, plots_dir, &mut out);
        finish(&mut out, "topology", t, r);
    }
    if let Some(ac) = &config.attributes {
        match attributes {
            Some(source) => {
                let t = Instant::now();
                let r = attribute_probing(m, clean, ac, source, seed, plots_dir, &mut out);
                finish(&mut out, "attribute probing", t, r);
            }
            None => out.notes.push(format!(
                "{}: attribute probing skipped: no attributes file (set dataset.attribute_columns, \
                 or analysis.attributes.path)",
                m.name
            )),
        }
    }
    out
}

fn embeddings(set: &EmbeddingSet) -> Result<Embeddings<'_>, AnalysisError> {
    Embeddings::new(&set.vectors, set.dim)
}

/// Rows of `set` for `ids` (ids missing from the set are left out), as (rows, vectors).
fn rows_by_id(set: &EmbeddingSet, ids: &[&str]) -> (Vec<usize>, Vec<f32>) {
    let pos: HashMap<&str, usize> = set
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let rows: Vec<usize> = ids.iter().filter_map(|id| pos.get(id).copied()).collect();
    let vectors = rows
        .iter()
        .flat_map(|&r| set.row(r).iter().copied())
        .collect();
    (rows, vectors)
}

/// The variants a stage runs on: `wanted` (all when `None`), the clean set first and always
/// kept when `keep_clean` (the reference noisy ones are compared with).
fn chosen<'a>(
    images: &[&'a EmbeddingSet],
    wanted: Option<&[String]>,
    keep_clean: bool,
) -> Vec<&'a EmbeddingSet> {
    images
        .iter()
        .copied()
        .filter(|s| {
            wanted.is_none_or(|w| w.contains(&s.variant)) || (keep_clean && s.variant == "clean")
        })
        .collect()
}

/// A seeded sample of the clean images' ids, shared by every variant.
fn sample_ids(clean: &EmbeddingSet, max_points: usize, seed: u64) -> Vec<&str> {
    seeded_subsample(clean.len(), max_points, seed)
        .into_iter()
        .map(|i| clean.ids[i].as_str())
        .collect()
}

/// Points grouped by label for a scatter plot, groups in label order (`unlabelled` last).
fn groups_by_label(labels: &[Option<String>], coords: &[f64]) -> Vec<ScatterGroup> {
    let mut by: BTreeMap<(bool, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        let key = match l {
            Some(l) => (false, l.clone()),
            None => (true, "unlabelled".to_string()),
        };
        by.entry(key)
            .or_default()
            .push((coords[2 * i], coords[2 * i + 1]));
    }
    by.into_iter()
        .map(|((_, name), points)| ScatterGroup { name, points })
        .collect()
}

/// Safe file-name part (model and variant names come from configs).
fn slug(s: &str) -> String {
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

fn projection(
    m: &ModelSets<'_>,
    pc: &ProjectionConfig,
    seed: u64,
    plots_dir: &Path,
    out: &mut GeometryOutput,
) -> Result<(), AnalysisError> {
    let clean = m.images[0];
    // Spectrum and reconstruction error of every variant, on all its images.
    let mut spectrum = Table::new("pca_spectrum");
    let mut reconstruction = Table::new("pca_reconstruction");
    let mut cumulative_series = Vec::new();
    let mut error_series = Vec::new();
    for set in &m.images {
        if set.len() < 2 {
            continue;
        }
        let fit = pca::pca(embeddings(set)?, None)?;
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
        spectrum
            .extend(
                Table::new("pca_spectrum")
                    .text("model", vec![m.name.clone(); c])
                    .text("variant", vec![set.variant.clone(); c])
                    .int("component", (1..=c).map(|k| k as i64))
                    .float("explained_variance", fit.explained_variance.iter().copied())
                    .float(
                        "explained_variance_ratio",
                        fit.explained_variance_ratio.iter().copied(),
                    )
                    .float("cumulative_ratio", cum.iter().copied()),
            )
            .map_err(|_| AnalysisError::Empty { what: "spectrum" })?;
        let ks: Vec<usize> = (0..=c).collect();
        let errors = fit.reconstruction_error(&ks)?;
        let total = fit.total_variance;
        reconstruction
            .extend(
                Table::new("pca_reconstruction")
                    .text("model", vec![m.name.clone(); ks.len()])
                    .text("variant", vec![set.variant.clone(); ks.len()])
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
            )
            .map_err(|_| AnalysisError::Empty {
                what: "reconstruction",
            })?;
        cumulative_series.push(Series {
            name: set.variant.clone(),
            points: cum
                .iter()
                .enumerate()
                .map(|(i, &v)| ((i + 1) as f64, v))
                .collect(),
        });
        error_series.push(Series {
            name: set.variant.clone(),
            points: ks
                .iter()
                .zip(&errors)
                .map(|(&k, &e)| (k as f64, if total > 0.0 { e / total } else { 0.0 }))
                .collect(),
        });
    }
    if spectrum.rows() > 0 {
        out.plotted(report::lines(
            &plots_dir.join(format!("pca_spectrum_{}", slug(&m.name))),
            &format!("{}: cumulative explained variance", m.name),
            "principal components",
            "cumulative explained-variance ratio",
            &cumulative_series,
        ));
        out.plotted(report::lines(
            &plots_dir.join(format!("pca_reconstruction_{}", slug(&m.name))),
            &format!("{}: rank-k reconstruction error", m.name),
            "k (components kept)",
            "error / total variance",
            &error_series,
        ));
        out.tables.push(spectrum);
        out.tables.push(reconstruction);
    }

    // 2-D maps of the same sample in every variant.
    let ids = sample_ids(clean, pc.max_points, seed);
    let mut coordinates = Table::new("projection_coordinates");
    let mut quality = Table::new("projection_quality");
    for set in chosen(&m.images, pc.variants.as_deref(), false) {
        let (rows, x) = rows_by_id(set, &ids);
        let n = rows.len();
        if n < 10 {
            out.notes.push(format!(
                "{} / {}: projections skipped: {n} images (at least 10 needed)",
                m.name, set.variant
            ));
            continue;
        }
        let x = Embeddings::new(&x, set.dim)?;
        let labels: Vec<Option<String>> = rows.iter().map(|&r| set.labels[r].clone()).collect();
        let row_ids: Vec<String> = rows.iter().map(|&r| set.ids[r].clone()).collect();
        // Trustworthiness needs k < n/2 (scikit-learn's rule).
        let tk = pc.trustworthiness_k.min((n - 1) / 2).max(1);
        let pca2 = pca::pca(x, Some(2.min(set.dim)))?;
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
                            out.notes.push(format!(
                                "{} / {}: t-SNE at perplexity {perplexity} skipped: it must be \
                                 below the number of points ({n})",
                                m.name, set.variant
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
                        out.notes.push(format!(
                            "{} / {}: UMAP skipped: umap_neighbors {} is not below the number \
                             of points ({n})",
                            m.name, set.variant, pc.umap_neighbors
                        ));
                        continue;
                    }
                    let opts = umap::UmapOptions {
                        n_neighbors: pc.umap_neighbors,
                        min_dist: pc.umap_min_dist,
                        seed,
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
            quality
                .extend(
                    Table::new("projection_quality")
                        .text("model", [m.name.clone()])
                        .text("variant", [set.variant.clone()])
                        .text("method", [method])
                        .column("perplexity", Column::Float(vec![perplexity]))
                        .int("points", [n as i64])
                        .int("k", [tk as i64])
                        .float("trustworthiness", [trust])
                        .column("kl_divergence", Column::Float(vec![kl])),
                )
                .map_err(|_| AnalysisError::Empty { what: "quality" })?;
            coordinates
                .extend(
                    Table::new("projection_coordinates")
                        .text("model", vec![m.name.clone(); n])
                        .text("variant", vec![set.variant.clone(); n])
                        .text("method", vec![method; n])
                        .column("perplexity", Column::Float(vec![perplexity; n]))
                        .text("id", row_ids.iter().cloned())
                        .column("label", Column::Text(labels.clone()))
                        .float("x", xy.iter().step_by(2).copied())
                        .float("y", xy.iter().skip(1).step_by(2).copied()),
                )
                .map_err(|_| AnalysisError::Empty {
                    what: "coordinates",
                })?;
            let (title_method, stem_method) = match (method, perplexity) {
                ("tsne", Some(p)) => (format!("t-SNE (perplexity {p})"), format!("tsne_p{p}")),
                ("umap", _) => ("UMAP".to_string(), "umap".to_string()),
                _ => ("PCA".to_string(), "pca".to_string()),
            };
            out.plotted(report::scatter(
                &plots_dir.join(format!(
                    "projection_{}_{}_{}",
                    slug(&m.name),
                    stem_method,
                    slug(&set.variant)
                )),
                &format!(
                    "{}: {title_method}, {} images, trustworthiness {trust:.3}",
                    m.name, set.variant
                ),
                &format!("{title_method} 1"),
                &format!("{title_method} 2"),
                &groups_by_label(&labels, &xy),
            ));
        }
    }
    if quality.rows() > 0 {
        out.tables.push(quality);
        out.tables.push(coordinates);
    }
    Ok(())
}

/// One 2-D map of a sample: `xy` is rows × 2; `kl` is t-SNE's final KL divergence.
struct Map {
    method: &'static str,
    perplexity: Option<f64>,
    xy: Vec<f64>,
    kl: Option<f64>,
}

/// One measurement of the dimension sweep.
struct SweepPoint {
    dim: usize,
    reduced: bool,
    metric: &'static str,
    k: Option<usize>,
    value: f64,
}

fn dimension_sweep(
    m: &ModelSets<'_>,
    clean: &EmbeddingSet,
    dc: &DimensionSweepConfig,
    seed: u64,
    plots_dir: &Path,
    out: &mut GeometryOutput,
) -> Result<(), AnalysisError> {
    let n = clean.len();
    if n < 4 {
        out.notes.push(format!(
            "{}: dimension sweep skipped: {n} images (at least 4 needed)",
            m.name
        ));
        return Ok(());
    }
    // The fit split: a seeded share of the items; the metrics use the rest.
    let fit_count = ((n as f64 * dc.fit_fraction).round() as usize).clamp(1, n - 1);
    let fit_rows = seeded_subsample(n, fit_count, seed ^ 0xd1_5eed);
    let is_fit: BTreeSet<usize> = fit_rows.iter().copied().collect();
    let eval_rows: Vec<usize> = (0..n).filter(|i| !is_fit.contains(i)).collect();
    let fit_ids: BTreeSet<&str> = fit_rows.iter().map(|&i| clean.ids[i].as_str()).collect();
    let dim = clean.dim;
    let gather = |vectors: &[f32], rows: &[usize]| -> Vec<f32> {
        rows.iter()
            .flat_map(|&r| vectors[r * dim..(r + 1) * dim].iter().copied())
            .collect()
    };
    let mut fit_data = Vec::new();
    let use_images = matches!(dc.fit_on, FitOn::Images | FitOn::Both) || m.captions.is_none();
    if use_images {
        fit_data.extend(gather(&clean.vectors, &fit_rows));
    }
    if matches!(dc.fit_on, FitOn::Texts | FitOn::Both) {
        if let Some(c) = &m.captions {
            let rows: Vec<usize> = (0..c.ids.len())
                .filter(|&i| fit_ids.contains(c.ids[i].as_str()))
                .collect();
            fit_data.extend(gather(&c.vectors, &rows));
        }
    }
    if m.captions.is_none() && dc.fit_on == FitOn::Texts {
        out.notes.push(format!(
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

    let eval_images = gather(&clean.vectors, &eval_rows);
    let eval_image_ids: Vec<&str> = eval_rows.iter().map(|&i| clean.ids[i].as_str()).collect();
    // Captions of the evaluation items whose image is there (a caption whose image failed to
    // decode has no positive to find, for reasons that are not the model's).
    let eval_index: HashMap<&str, usize> = eval_image_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let eval_captions = m.captions.as_ref().map(|c| {
        let rows: Vec<usize> = (0..c.ids.len())
            .filter(|&r| eval_index.contains_key(c.ids[r].as_str()))
            .collect();
        let keys: Vec<usize> = rows
            .iter()
            .map(|&r| eval_index[c.ids[r].as_str()])
            .collect();
        (keys, gather(&c.vectors, &rows))
    });
    // What does not change with the dimension: who is whose positive, the cut-offs, and which
    // evaluation images zero-shot can score against which classes.
    let gallery_keys: Vec<usize> = (0..eval_image_ids.len()).collect();
    let ks: Vec<usize> =
        dc.k.iter()
            .copied()
            .filter(|&k| k <= eval_image_ids.len())
            .collect();
    let zero_shot_setup = m.prompts.as_ref().and_then(|p| {
        let names: Vec<String> = p
            .labels
            .iter()
            .map(|l| l.clone().unwrap_or_default())
            .collect();
        let classes = Labels::from_strings(&names);
        let index: HashMap<&str, usize> = classes
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let (scored, y): (Vec<usize>, Vec<usize>) = (0..eval_rows.len())
            .filter_map(|i| {
                let class = index.get(clean.labels[eval_rows[i]].as_deref()?)?;
                Some((i, *class))
            })
            .unzip();
        (!scored.is_empty()).then_some((classes, scored, y))
    });

    // Measures every metric on embeddings given in `d` dimensions (already normalised).
    let measure = |images: &[f32],
                   captions: Option<&[f32]>,
                   prompts: Option<&[f32]>,
                   d: usize,
                   reduced: bool|
     -> Result<Vec<SweepPoint>, AnalysisError> {
        let mut points = Vec::new();
        if let (Some((query_keys, _)), Some(cap)) = (&eval_captions, captions) {
            if !query_keys.is_empty() {
                let r = retrieval::retrieve(
                    Embeddings::new(cap, d)?,
                    Embeddings::new(images, d)?,
                    &Positives::SharedKey {
                        query: query_keys,
                        gallery: &gallery_keys,
                    },
                    &ks,
                    &RankOptions::default(),
                )?;
                for rk in &r.metrics.recall {
                    points.push(SweepPoint {
                        dim: d,
                        reduced,
                        metric: "text_to_image_recall",
                        k: Some(rk.k),
                        value: rk.recall,
                    });
                }
            }
        }
        if let (Some((classes, scored, y)), Some(prompt_vectors)) = (&zero_shot_setup, prompts) {
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
        &eval_images,
        eval_captions.as_ref().map(|(_, v)| v.as_slice()),
        m.prompts.as_ref().map(|p| p.vectors.as_slice()),
        dim,
        false,
    )?;
    if points.is_empty() {
        out.notes.push(format!(
            "{}: dimension sweep skipped: no captions and no class prompts to measure with",
            m.name
        ));
        return Ok(());
    }
    let eval_e = Embeddings::new(&eval_images, dim)?;
    let project = |x: Embeddings<'_>, d: usize| {
        if dc.centre {
            fit.project_normalized(x, d)
        } else {
            fit.rotate_normalized(x, d)
        }
    };
    for &d in dims.iter().chain(std::iter::once(&fit.n_components())) {
        let images = project(eval_e, d)?;
        let captions = match &eval_captions {
            Some((_, v)) if !v.is_empty() => Some(project(Embeddings::new(v, dim)?, d)?),
            _ => None,
        };
        let prompts = match &m.prompts {
            Some(p) => Some(project(p.embeddings()?, d)?),
            None => None,
        };
        points.extend(measure(
            &images,
            captions.as_deref(),
            prompts.as_deref(),
            d,
            true,
        )?);
    }

    let n_points = points.len();
    out.tables.push(
        Table::new("dimension_sweep")
            .text("model", vec![m.name.clone(); n_points])
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
    );

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
    out.tables.push(
        Table::new("dimension_sweep_summary")
            .text("model", vec![m.name.clone(); rows])
            .text("metric", summary.0)
            .column("k", Column::Int(summary.1))
            .float("original_value", summary.2)
            .float("tolerance", vec![dc.tolerance; rows])
            .column("smallest_dim", Column::Int(summary.3))
            .column("value_at_smallest_dim", Column::Float(summary.4)),
    );
    out.plotted(report::lines(
        &plots_dir.join(format!("dimension_sweep_{}", slug(&m.name))),
        &format!("{}: quality after PCA to fewer dimensions", m.name),
        "log2 of the dimension",
        "value",
        &series,
    ));
    Ok(())
}

fn subspaces(
    m: &ModelSets<'_>,
    clean: &EmbeddingSet,
    sc: &SubspaceConfig,
    plots_dir: &Path,
    out: &mut GeometryOutput,
) -> Result<(), AnalysisError> {
    let rows: Vec<usize> = (0..clean.len())
        .filter(|&i| clean.labels[i].is_some())
        .collect();
    let names: Vec<&str> = rows
        .iter()
        .map(|&i| clean.labels[i].as_deref().unwrap_or_default())
        .collect();
    let labels = Labels::from_strings(&names);
    if labels.names.len() < 2 {
        out.notes.push(format!(
            "{}: subspace angles skipped: fewer than two labelled classes",
            m.name
        ));
        return Ok(());
    }
    let x: Vec<f32> = rows
        .iter()
        .flat_map(|&i| clean.row(i).iter().copied())
        .collect();
    let a = subspace::subspace_angles(Embeddings::new(&x, clean.dim)?, &labels.ids, sc.rank)?;
    // Two r-dimensional subspaces of a D-dimensional space share 2r − D dimensions at least:
    // past 2r = D the smallest angles are 0 whatever the data (and at 2r = D the pair spans
    // the whole space), so the angles say nothing about the classes.
    if 2 * sc.rank >= clean.dim || a.trivially_zero {
        out.notes.push(format!(
            "{}: subspace angles: 2·rank = {} ≥ dimension {}: class subspaces this large fill \
             the space, so their smallest angles are trivially 0; lower subspaces.rank",
            m.name,
            2 * sc.rank,
            clean.dim
        ));
    }
    let nc = a.classes.len();
    let class_name = |c: usize| labels.names[a.classes[c]].clone();
    let mut cols = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut pair = 0;
    for i in 0..nc {
        for j in i + 1..nc {
            let angles = &a.angles[pair];
            pair += 1;
            let degrees: Vec<f64> = angles.iter().map(|r| r.to_degrees()).collect();
            cols.0.push(class_name(i));
            cols.1.push(class_name(j));
            cols.2.push(a.ranks[i] as i64);
            cols.3.push(a.ranks[j] as i64);
            cols.4.push(a.mean_degrees[i * nc + j]);
            cols.5.push(a.min_degrees[i * nc + j]);
            cols.6.push(
                degrees
                    .iter()
                    .map(|d| format!("{d:.4}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    let rows = cols.0.len();
    out.tables.push(
        Table::new("subspace_angles")
            .text("model", vec![m.name.clone(); rows])
            .text("class_a", cols.0)
            .text("class_b", cols.1)
            .int("rank_a", cols.2)
            .int("rank_b", cols.3)
            .float("mean_angle_degrees", cols.4)
            .float("smallest_angle_degrees", cols.5)
            .text("angles_degrees", cols.6),
    );
    let names: Vec<String> = (0..nc).map(class_name).collect();
    out.plotted(report::heatmap(
        &plots_dir.join(format!("subspace_angles_{}", slug(&m.name))),
        &format!(
            "{}: mean principal angle between class subspaces (rank {}), degrees",
            m.name, sc.rank
        ),
        &names,
        &names,
        &a.mean_degrees,
        (0.0, 90.0),
    ));
    Ok(())
}

fn topology(
    m: &ModelSets<'_>,
    tc: &TopologyConfig,
    seed: u64,
    plots_dir: &Path,
    out: &mut GeometryOutput,
) -> Result<(), AnalysisError> {
    let clean = m.images[0];
    let ids = sample_ids(clean, tc.max_points, seed ^ 0x7090_1091);
    let opts = PersistenceOptions {
        max_dim: tc.max_dim,
        threshold: None,
        metric: match tc.metric {
            MetricName::Euclidean => Distance::Euclidean,
            MetricName::Cosine => Distance::Cosine,
        },
    };
    let mut diagrams_table = Table::new("persistence_diagrams");
    let mut by_variant: Vec<(String, Vec<persistence::Diagram>)> = Vec::new();
    for set in chosen(&m.images, tc.variants.as_deref(), true) {
        let (rows, x) = rows_by_id(set, &ids);
        if rows.len() < 3 {
            continue;
        }
        let diagrams = persistence::rips_persistence(Embeddings::new(&x, set.dim)?, &opts)?;
        for d in &diagrams {
            let nb = d.bars.len();
            diagrams_table
                .extend(
                    Table::new("persistence_diagrams")
                        .text("model", vec![m.name.clone(); nb])
                        .text("variant", vec![set.variant.clone(); nb])
                        .int("dim", vec![d.dim as i64; nb])
                        .int("points", vec![rows.len() as i64; nb])
                        .float("birth", d.bars.iter().map(|b| b.birth))
                        .float("death", d.bars.iter().map(|b| b.death)),
                )
                .map_err(|_| AnalysisError::Empty { what: "diagrams" })?;
        }
        let groups: Vec<ScatterGroup> = diagrams
            .iter()
            .map(|d| ScatterGroup {
                name: format!("H{}", d.dim),
                points: d.bars.iter().map(|b| (b.birth, b.death)).collect(),
            })
            .collect();
        out.plotted(report::persistence_diagram(
            &plots_dir.join(format!(
                "persistence_{}_{}",
                slug(&m.name),
                slug(&set.variant)
            )),
            &format!(
                "{}: {} images, Vietoris–Rips persistence ({} points)",
                m.name,
                set.variant,
                rows.len()
            ),
            &groups,
        ));
        by_variant.push((set.variant.clone(), diagrams));
    }
    if diagrams_table.rows() == 0 {
        out.notes
            .push(format!("{}: topology skipped: fewer than 3 images", m.name));
        return Ok(());
    }
    out.tables.push(diagrams_table);
    let Some((clean_name, clean_diagrams)) = by_variant.first() else {
        return Ok(());
    };
    if clean_name != "clean" || by_variant.len() < 2 {
        return Ok(());
    }
    let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (variant, diagrams) in &by_variant[1..] {
        for (a, b) in clean_diagrams.iter().zip(diagrams) {
            // Both distances leave out the bars that never die, as persim does.
            cols.0.push(variant.clone());
            cols.1.push(a.dim as i64);
            cols.2.push(persistence::bottleneck(&a.bars, &b.bars)?);
            cols.3.push(persistence::wasserstein(&a.bars, &b.bars)?);
        }
    }
    let rows = cols.0.len();
    out.tables.push(
        Table::new("persistence_distances")
            .text("model", vec![m.name.clone(); rows])
            .text("variant", cols.0)
            .int("dim", cols.1)
            .float("bottleneck_to_clean", cols.2)
            .float("wasserstein_to_clean", cols.3),
    );
    Ok(())
}

/// How an attribute's values are read: two distinct values are a boolean (the "true" side is
/// `true`/`yes`, the larger number, or the later string), more are categories.
enum AttributeKind {
    Boolean { positive: String },
    Categorical { names: Vec<String> },
}

fn attribute_kind(values: &[Option<String>]) -> Option<AttributeKind> {
    let distinct: BTreeSet<&str> = values.iter().flatten().map(String::as_str).collect();
    if distinct.len() < 2 {
        return None;
    }
    let names: Vec<String> = distinct.iter().map(|s| s.to_string()).collect();
    if names.len() > 2 {
        return Some(AttributeKind::Categorical { names });
    }
    let lower: Vec<String> = names.iter().map(|s| s.to_ascii_lowercase()).collect();
    let positive = if let Some(i) = lower.iter().position(|s| s == "true" || s == "yes") {
        names[i].clone()
    } else {
        match (names[0].parse::<f64>(), names[1].parse::<f64>()) {
            (Ok(a), Ok(b)) if a > b => names[0].clone(),
            _ => names[1].clone(),
        }
    };
    Some(AttributeKind::Boolean { positive })
}

fn attribute_probing(
    m: &ModelSets<'_>,
    clean: &EmbeddingSet,
    ac: &AttributesConfig,
    source: AttributeSource<'_>,
    seed: u64,
    plots_dir: &Path,
    out: &mut GeometryOutput,
) -> Result<(), AnalysisError> {
    let table = source.table;
    let Some(ids) = table.texts("id") else {
        out.notes.push(format!(
            "{}: attribute probing skipped: {} has no text `id` column",
            m.name,
            source.path.display()
        ));
        return Ok(());
    };
    let columns: Vec<String> = match &ac.columns {
        Some(c) => c.clone(),
        None => table
            .columns
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| n != "id")
            .collect(),
    };
    let pos: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| id.as_deref().map(|id| (id, i)))
        .collect();
    let x = embeddings(clean)?;
    let k = ac
        .components
        .min(clean.dim)
        .min(clean.len().saturating_sub(1));
    if k == 0 {
        out.notes.push(format!(
            "{}: attribute probing skipped: too few images",
            m.name
        ));
        return Ok(());
    }
    let fit = pca::pca(x, Some(k))?;
    let scores = fit.transform(x, k)?;
    let mut corr = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut probes = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut heat_rows: Vec<String> = Vec::new();
    let mut heat: Vec<f64> = Vec::new();
    for name in &columns {
        let Some((_, column)) = table.columns.iter().find(|(n, _)| n == name) else {
            out.notes.push(format!(
                "{}: attribute {name}: no such column in {}",
                m.name,
                source.path.display()
            ));
            continue;
        };
        let values: Vec<Option<String>> = (0..clean.len())
            .map(|i| {
                pos.get(clean.ids[i].as_str())
                    .and_then(|&r| column.cell_text(r))
            })
            .collect();
        let Some(kind) = attribute_kind(&values) else {
            out.notes.push(format!(
                "{}: attribute {name} skipped: fewer than two distinct values",
                m.name
            ));
            continue;
        };
        let (kind_name, ids_of): (&str, Vec<Option<usize>>) = match &kind {
            AttributeKind::Boolean { positive } => (
                "boolean",
                values
                    .iter()
                    .map(|v| v.as_ref().map(|v| usize::from(v == positive)))
                    .collect(),
            ),
            AttributeKind::Categorical { names } => (
                "categorical",
                values
                    .iter()
                    .map(|v| v.as_ref().and_then(|v| names.binary_search(v).ok()))
                    .collect(),
            ),
        };
        let n_classes = match &kind {
            AttributeKind::Boolean { .. } => 2,
            AttributeKind::Categorical { names } => names.len(),
        };
        if n_classes * 2 > clean.len() {
            out.notes.push(format!(
                "{}: attribute {name} skipped: {n_classes} distinct values for {} images \
                 looks like an identifier, not a category",
                m.name,
                clean.len()
            ));
            continue;
        }
        let bools: Vec<Option<bool>> = ids_of.iter().map(|v| v.map(|v| v == 1)).collect();
        let values_arg = match &kind {
            AttributeKind::Boolean { .. } => attributes::AttributeValues::Boolean(&bools),
            AttributeKind::Categorical { .. } => attributes::AttributeValues::Categorical(&ids_of),
        };
        let cc = attributes::component_correlations(&scores, k, values_arg)?;
        heat_rows.push(name.clone());
        for c in &cc {
            corr.0.push(name.clone());
            corr.1.push(kind_name.to_string());
            corr.2.push(c.component as i64 + 1);
            corr.3.push(c.value);
            corr.4.push(c.n as i64);
            heat.push(c.value.map(f64::abs).unwrap_or(0.0));
        }
        // Linear probe on the images that have a value.
        let known: Vec<usize> = (0..clean.len()).filter(|&i| ids_of[i].is_some()).collect();
        let y: Vec<usize> = known.iter().filter_map(|&i| ids_of[i]).collect();
        let xs: Vec<f32> = known
            .iter()
            .flat_map(|&i| clean.row(i).iter().copied())
            .collect();
        let split = probe::stratified_split(&y, ac.test_fraction, seed)?;
        if split.train.is_empty() || split.test.is_empty() {
            out.notes.push(format!(
                "{}: attribute {name}: linear probe skipped: too few images with a value for \
                 a train/test split",
                m.name
            ));
            continue;
        }
        let (score, _) = probe::linear_probe(
            Embeddings::new(&xs, clean.dim)?,
            &y,
            &split,
            &LinearProbeOptions::default(),
        )?;
        // The majority class of the training split: the accuracy to beat.
        let mut counts = vec![0usize; n_classes];
        for &i in &split.train {
            counts[y[i]] += 1;
        }
        let majority = (0..n_classes)
            .max_by_key(|&c| (counts[c], usize::MAX - c))
            .unwrap_or(0);
        let baseline = split.test.iter().filter(|&&i| y[i] == majority).count() as f64
            / split.test.len() as f64;
        probes.0.push(name.clone());
        probes.1.push(kind_name.to_string());
        probes.2.push(n_classes as i64);
        probes.3.push(score.n_train as i64);
        probes.4.push(score.n_test as i64);
        probes.5.push(score.accuracy);
        probes.6.push(baseline);
    }
    let rows = corr.0.len();
    if rows > 0 {
        out.tables.push(
            Table::new("attribute_components")
                .text("model", vec![m.name.clone(); rows])
                .text("attribute", corr.0)
                .text("kind", corr.1)
                .int("component", corr.2)
                .column("correlation", Column::Float(corr.3))
                .int("n", corr.4),
        );
        let comps: Vec<String> = (1..=k).map(|c| format!("PC{c}")).collect();
        out.plotted(report::heatmap(
            &plots_dir.join(format!("attribute_components_{}", slug(&m.name))),
            &format!(
                "{}: |correlation| of attributes with principal components",
                m.name
            ),
            &heat_rows,
            &comps,
            &heat,
            (0.0, 1.0),
        ));
    }
    let rows = probes.0.len();
    if rows > 0 {
        out.tables.push(
            Table::new("attribute_probe")
                .text("model", vec![m.name.clone(); rows])
                .text("attribute", probes.0)
                .text("kind", probes.1)
                .int("classes", probes.2)
                .int("n_train", probes.3)
                .int("n_test", probes.4)
                .float("accuracy", probes.5)
                .float("majority_baseline", probes.6),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|x| Some(x.to_string())).collect()
    }

    #[test]
    fn attribute_kinds() {
        let Some(AttributeKind::Boolean { positive }) = attribute_kind(&s(&["-1", "1", "-1"]))
        else {
            panic!("two values are a boolean")
        };
        assert_eq!(positive, "1");
        let Some(AttributeKind::Boolean { positive }) = attribute_kind(&s(&["True", "False"]))
        else {
            panic!()
        };
        assert_eq!(positive, "True");
        let Some(AttributeKind::Categorical { names }) =
            attribute_kind(&s(&["blond", "black", "brown", "black"]))
        else {
            panic!("three values are categories")
        };
        assert_eq!(names, ["black", "blond", "brown"]);
        assert!(attribute_kind(&s(&["x", "x"])).is_none());
        assert!(attribute_kind(&[None, None]).is_none());
    }

    #[test]
    fn a_failing_stage_becomes_a_note_and_the_others_still_run() {
        // Three images, one per class: no class has a subspace (one row has no variance),
        // while the PCA spectrum is well defined.
        let set = EmbeddingSet {
            model: "m".into(),
            modality: "image".into(),
            variant: "clean".into(),
            ids: vec!["a".into(), "b".into(), "c".into()],
            labels: vec![Some("x".into()), Some("y".into()), Some("z".into())],
            texts: vec![None; 3],
            dim: 2,
            vectors: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
        };
        let m = ModelSets {
            name: "m".into(),
            images: vec![&set],
            captions: None,
            prompts: None,
        };
        let config = AnalysisConfig {
            projection: Some(ProjectionConfig::default()),
            subspaces: Some(SubspaceConfig::default()),
            ..AnalysisConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let out = run(&m, &config, None, 0, dir.path(), &Progress::new(true));
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("subspace angles failed")),
            "{:?}",
            out.notes
        );
        assert!(out.notes.iter().any(|n| n.contains("projections skipped")));
        assert!(out.tables.iter().any(|t| t.name == "pca_spectrum"));
    }

    #[test]
    fn groups_keep_label_order_and_unlabelled_last() {
        let labels = vec![Some("b".to_string()), None, Some("a".to_string())];
        let g = groups_by_label(&labels, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "unlabelled"]);
        assert_eq!(g[0].points, vec![(4.0, 5.0)]);
    }
}
