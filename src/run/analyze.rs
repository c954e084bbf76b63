//! The analysis step of a run: reads embedding sets back from a store (clipflow's or another
//! tool's), runs the configured analyses for every model and image variant, and writes
//! long-format tables under `tables/`.
//!
//! It reads only the store, never the dataset or the models, so `clipflow analyze` works on
//! embeddings that clip-retrieval or a Hugging Face dataset produced.
//!
//! Conventions every table follows: a `model` column, a `variant` column (`clean` or the noise
//! variant of the *images*; texts are never perturbed), and for metric tables `metric`, `k`
//! (null where it does not apply) and `value`. `robustness` repeats every metric with its clean
//! value and the drop.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::analysis::cluster::{self, Distance};
use crate::analysis::probe::{self, LinearProbeOptions, Split};
use crate::analysis::retrieval::{self, Positives, RankOptions};
use crate::analysis::{zero_shot, AnalysisError, Embeddings, Labels};
use crate::config::{AnalysisConfig, ClusterMethod, NoiseTarget, PositivesKind};
use crate::progress::Progress;
use crate::store::{self, Column, EmbeddingSet, StoreError, StoreFormat, Table};

/// Why the analysis could not run.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{model} / {variant} / {stage}: {source}")]
    Metric {
        model: String,
        variant: String,
        stage: &'static str,
        source: AnalysisError,
    },
    #[error("{0}")]
    Input(String),
}

/// What the analysis wrote.
#[derive(Debug, Clone, Default)]
pub struct AnalysisSummary {
    pub tables: Vec<PathBuf>,
    pub plots: Vec<PathBuf>,
    /// Analyses skipped and why (no labels, no prompts, too many samples for Ward, ...).
    pub notes: Vec<String>,
}

/// One metric value, before it lands in its stage's table and in `robustness`.
#[derive(Debug, Clone)]
struct Metric {
    model: String,
    variant: String,
    stage: &'static str,
    /// Sub-kind within the stage: direction for retrieval, method for cluster and probe.
    kind: String,
    metric: String,
    k: Option<i64>,
    value: f64,
}

/// The embedding sets of one model, split by role.
pub(super) struct ModelSets<'a> {
    pub(super) name: String,
    /// Image sets, `clean` first, then the noise variants in store order.
    pub(super) images: Vec<&'a EmbeddingSet>,
    /// Caption rows of the text set (ids that are item ids).
    pub(super) captions: Option<Subset>,
    /// Class prompt rows (`prompt:<class>:<template>`).
    pub(super) prompts: Option<Subset>,
}

/// A selection of rows of one set, copied out.
pub(super) struct Subset {
    pub(super) ids: Vec<String>,
    pub(super) labels: Vec<Option<String>>,
    pub(super) texts: Vec<Option<String>>,
    pub(super) dim: usize,
    pub(super) vectors: Vec<f32>,
}

impl Subset {
    fn of(set: &EmbeddingSet, keep: impl Fn(&str) -> bool) -> Option<Subset> {
        let rows: Vec<usize> = (0..set.len()).filter(|&i| keep(&set.ids[i])).collect();
        if rows.is_empty() {
            return None;
        }
        Some(Subset {
            ids: rows.iter().map(|&i| set.ids[i].clone()).collect(),
            labels: rows.iter().map(|&i| set.labels[i].clone()).collect(),
            texts: rows.iter().map(|&i| set.texts[i].clone()).collect(),
            dim: set.dim,
            vectors: rows
                .iter()
                .flat_map(|&i| set.row(i).iter().copied())
                .collect(),
        })
    }

    pub(super) fn embeddings(&self) -> Result<Embeddings<'_>, AnalysisError> {
        Embeddings::new(&self.vectors, self.dim)
    }
}

fn embeddings(set: &EmbeddingSet) -> Result<Embeddings<'_>, AnalysisError> {
    Embeddings::new(&set.vectors, set.dim)
}

/// Runs the analyses `config` asks for on the store at `store_path`, writing tables to
/// `out_dir` (usually `<run>/tables`).
pub fn analyze(
    store_path: &Path,
    format: &StoreFormat,
    config: &AnalysisConfig,
    seed: u64,
    out_dir: &Path,
    progress: &Progress,
) -> Result<AnalysisSummary, AnalyzeError> {
    let sets = store::read_sets(store_path, format)?;
    if sets.is_empty() {
        return Err(AnalyzeError::Input(format!(
            "{}: no embeddings",
            store_path.display()
        )));
    }
    let mut models: Vec<ModelSets<'_>> = Vec::new();
    let mut by_model: BTreeMap<&str, Vec<&EmbeddingSet>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for s in &sets {
        if !by_model.contains_key(s.model.as_str()) {
            order.push(&s.model);
        }
        by_model.entry(&s.model).or_default().push(s);
    }
    for name in order {
        let group = &by_model[name];
        let mut images: Vec<&EmbeddingSet> = group
            .iter()
            .copied()
            .filter(|s| s.modality == "image")
            .collect();
        images.sort_by_key(|s| s.variant != "clean");
        let text = group.iter().copied().find(|s| s.modality == "text");
        models.push(ModelSets {
            name: name.to_string(),
            images,
            captions: text.and_then(|t| Subset::of(t, |id| !id.starts_with("prompt:"))),
            prompts: text.and_then(|t| Subset::of(t, |id| id.starts_with("prompt:"))),
        });
    }

    let mut summary = AnalysisSummary::default();
    let plots_dir = out_dir.parent().unwrap_or(out_dir).join("plots");
    // Attribute metadata: `analysis.attributes.path`, else what `clipflow run` writes next to
    // the store.
    let attribute_table = match &config.attributes {
        None => None,
        Some(ac) => {
            let path = match &ac.path {
                Some(p) => PathBuf::from(p),
                None => store_path
                    .parent()
                    .filter(|_| store_path.is_file())
                    .unwrap_or(store_path)
                    .join("attributes.parquet"),
            };
            if path.exists() {
                Some((store::read_table(&path)?, path))
            } else if ac.path.is_some() {
                return Err(AnalyzeError::Input(format!(
                    "analysis.attributes.path: {} does not exist",
                    path.display()
                )));
            } else {
                None
            }
        }
    };
    let mut metrics: Vec<Metric> = Vec::new();
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    let add =
        |tables: &mut BTreeMap<String, Table>, name: &str, t: Table| match tables.get_mut(name) {
            Some(existing) => existing.extend(t).map_err(AnalyzeError::Input),
            None => {
                tables.insert(name.to_string(), t);
                Ok(())
            }
        };

    for m in &models {
        let Some(clean) = m.images.first().copied() else {
            summary.notes.push(format!(
                "{}: no image embeddings; nothing to analyse",
                m.name
            ));
            continue;
        };
        for image_set in &m.images {
            let variant = image_set.variant.clone();
            let ctx = |stage: &'static str| {
                let (model, variant) = (m.name.clone(), variant.clone());
                move |source| AnalyzeError::Metric {
                    model,
                    variant,
                    stage,
                    source,
                }
            };
            if let Some(rc) = &config.retrieval {
                if let Some((ranks, galleries, rows)) =
                    run_retrieval(m, image_set, rc, &mut summary.notes).map_err(ctx("retrieval"))?
                {
                    metrics.extend(rows);
                    add(&mut tables, "retrieval_ranks", ranks)?;
                    add(&mut tables, "retrieval_galleries", galleries)?;
                }
            }
            if config.zero_shot.is_some() {
                if let Some((per_class, confusion, predictions, rows)) =
                    run_zero_shot(m, image_set, &mut summary.notes).map_err(ctx("zero_shot"))?
                {
                    metrics.extend(rows);
                    add(&mut tables, "zero_shot_per_class", per_class)?;
                    add(&mut tables, "zero_shot_confusion", confusion)?;
                    add(&mut tables, "zero_shot_predictions", predictions)?;
                }
            }
            if let Some(cc) = &config.cluster {
                if let Some((assignments, rows)) =
                    run_cluster(m, image_set, cc, seed, &mut summary.notes)
                        .map_err(ctx("cluster"))?
                {
                    metrics.extend(rows);
                    add(&mut tables, "cluster_assignments", assignments)?;
                }
            }
            if let Some(pc) = &config.probe {
                if let Some(rows) = run_probe(
                    m,
                    clean,
                    image_set,
                    pc,
                    config.noise_on,
                    seed,
                    &mut summary.notes,
                )
                .map_err(ctx("probe"))?
                {
                    metrics.extend(rows);
                }
            }
        }
        if let Some(sc) = &config.similarity {
            if let Some((sim, hist)) =
                run_similarity(m, clean, sc, config.logit_scale).map_err(|source| {
                    AnalyzeError::Metric {
                        model: m.name.clone(),
                        variant: "clean".into(),
                        stage: "similarity",
                        source,
                    }
                })?
            {
                add(&mut tables, "similarity", sim)?;
                add(&mut tables, "similarity_histogram", hist)?;
            }
        }
        let geometry = super::geometry::run(
            m,
            config,
            attribute_table
                .as_ref()
                .map(|(table, path)| super::geometry::AttributeSource { table, path }),
            seed,
            &plots_dir,
            progress,
        );
        for t in geometry.tables {
            let name = t.name.clone();
            add(&mut tables, &name, t)?;
        }
        summary.plots.extend(geometry.plots);
        summary.notes.extend(geometry.notes);
        progress.info(&format!("analysis: {} done", m.name));
    }

    for stage in ["retrieval", "zero_shot", "cluster", "probe"] {
        let rows: Vec<&Metric> = metrics.iter().filter(|r| r.stage == stage).collect();
        if rows.is_empty() {
            continue;
        }
        let kind_name = match stage {
            "retrieval" => "direction",
            "zero_shot" => "prompts",
            _ => "method",
        };
        let t = Table::new(stage)
            .text("model", rows.iter().map(|r| r.model.clone()))
            .text("variant", rows.iter().map(|r| r.variant.clone()))
            .text(kind_name, rows.iter().map(|r| r.kind.clone()))
            .text("metric", rows.iter().map(|r| r.metric.clone()))
            .column("k", Column::Int(rows.iter().map(|r| r.k).collect()))
            .float("value", rows.iter().map(|r| r.value));
        add(&mut tables, stage, t)?;
    }
    if let Some(t) = robustness(&metrics) {
        add(&mut tables, "robustness", t)?;
    }
    for t in tables.values() {
        store::write_table(out_dir, t)?;
        summary
            .tables
            .push(out_dir.join(format!("{}.parquet", t.name)));
    }
    match plot(&tables, &metrics, &plots_dir) {
        Ok(paths) => summary.plots.extend(paths),
        // A picture that cannot be drawn must not cost the user the tables.
        Err(e) => summary.notes.push(format!("plots: {e}")),
    }
    Ok(summary)
}

/// The metrics worth a robustness curve, as (stage, kind prefix, metric, k).
const CURVES: &[(&str, &str, &str, Option<i64>)] = &[
    ("retrieval", "text_to_image", "recall", Some(1)),
    ("retrieval", "text_to_image", "recall", Some(5)),
    ("retrieval", "image_to_text", "recall", Some(1)),
    ("zero_shot", "templates", "top1", Some(1)),
    ("probe", "knn", "accuracy", None),
    ("probe", "linear", "accuracy", None),
    ("cluster", "kmeans", "nmi", None),
];

fn plot(
    tables: &BTreeMap<String, Table>,
    metrics: &[Metric],
    dir: &Path,
) -> Result<Vec<PathBuf>, crate::report::PlotError> {
    use crate::report::{heatmap, histogram, lines, Series};
    let mut written = Vec::new();
    let models: Vec<String> = {
        let mut v: Vec<String> = metrics.iter().map(|m| m.model.clone()).collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    };
    // Robustness: one chart per (model, noise family), metric against level.
    for model in &models {
        let families: std::collections::BTreeSet<String> = metrics
            .iter()
            .filter(|m| &m.model == model && m.variant != "clean")
            .map(|m| noise_of(&m.variant).0)
            .collect();
        for family in families {
            let mut series = Vec::new();
            for (stage, kind, metric, k) in CURVES {
                let mut points: Vec<(f64, f64)> = metrics
                    .iter()
                    .filter(|m| {
                        &m.model == model
                            && m.stage == *stage
                            && m.kind.starts_with(kind)
                            && m.metric == *metric
                            && (k.is_none() || m.k == *k)
                            && (m.variant == "clean" || noise_of(&m.variant).0 == family)
                    })
                    .filter_map(|m| noise_of(&m.variant).1.map(|level| (level, m.value)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                if points.len() >= 2 {
                    let name = match k {
                        Some(k) if *stage == "retrieval" => format!("{kind} R@{k}"),
                        _ => format!("{stage} {kind} {metric}"),
                    };
                    series.push(Series { name, points });
                }
            }
            if !series.is_empty() {
                let stem = dir.join(format!("robustness_{model}_{family}"));
                written.extend(lines(
                    &stem,
                    &format!("{model}: metrics under {family} noise"),
                    &format!("{family} level"),
                    "value",
                    &series,
                )?);
            }
        }
    }
    // Similarity heatmaps and matched/unmatched histograms.
    if let Some(t) = tables.get("similarity") {
        // A missing column skips this picture, not the ones after it.
        'table: {
            let (Some(model), Some(image), Some(text), Some(cos)) = (
                t.texts("model"),
                t.texts("image_id"),
                t.texts("text_id"),
                t.floats("cosine"),
            ) else {
                break 'table;
            };
            for m in &models {
                let rows: Vec<usize> = (0..t.rows())
                    .filter(|&i| model[i].as_deref() == Some(m.as_str()))
                    .collect();
                let mut images: Vec<String> = Vec::new();
                let mut texts: Vec<String> = Vec::new();
                for &i in &rows {
                    let (a, b) = (
                        image[i].clone().unwrap_or_default(),
                        text[i].clone().unwrap_or_default(),
                    );
                    if !images.contains(&a) {
                        images.push(a);
                    }
                    if !texts.contains(&b) {
                        texts.push(b);
                    }
                }
                if rows.len() == images.len() * texts.len() && !rows.is_empty() {
                    let values: Vec<f64> = rows.iter().map(|&i| cos[i].unwrap_or(0.0)).collect();
                    let lo = values.iter().copied().fold(f64::MAX, f64::min);
                    let hi = values.iter().copied().fold(f64::MIN, f64::max);
                    let stem = dir.join(format!("similarity_{m}"));
                    written.extend(heatmap(
                        &stem,
                        &format!("{m}: cosine similarity, images × texts"),
                        &images,
                        &texts,
                        &values,
                        (lo, hi),
                    )?);
                }
            }
        }
    }
    if let Some(t) = tables.get("similarity_histogram") {
        // A missing column skips this picture, not the ones after it.
        'table: {
            let (Some(model), Some(pairs), Some(low), Some(high), Some(count)) = (
                t.texts("model"),
                t.texts("pairs"),
                t.floats("bin_low"),
                t.floats("bin_high"),
                t.ints("count"),
            ) else {
                break 'table;
            };
            for m in &models {
                let mut edges: Vec<f64> = Vec::new();
                let mut series: Vec<(String, Vec<i64>)> = Vec::new();
                for kind in ["matched", "unmatched"] {
                    let rows: Vec<usize> = (0..t.rows())
                        .filter(|&i| {
                            model[i].as_deref() == Some(m.as_str())
                                && pairs[i].as_deref() == Some(kind)
                        })
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    if edges.is_empty() {
                        edges = rows.iter().map(|&i| low[i].unwrap_or(0.0)).collect();
                        edges.push(rows.last().and_then(|&i| high[i]).unwrap_or(1.0));
                    }
                    series.push((
                        kind.to_string(),
                        rows.iter().map(|&i| count[i].unwrap_or(0)).collect(),
                    ));
                }
                if series.len() == 2 && edges.len() == series[0].1.len() + 1 {
                    let stem = dir.join(format!("similarity_hist_{m}"));
                    written.extend(histogram(
                        &stem,
                        &format!("{m}: similarity of matched and unmatched pairs"),
                        "cosine similarity",
                        &edges,
                        &series,
                    )?);
                }
            }
        }
    }
    // Zero-shot confusion (clean images), row-normalised.
    if let Some(t) = tables.get("zero_shot_confusion") {
        // A missing column skips this picture, not the ones after it.
        'table: {
            let (Some(model), Some(variant), Some(truth), Some(pred), Some(count)) = (
                t.texts("model"),
                t.texts("variant"),
                t.texts("true_class"),
                t.texts("predicted_class"),
                t.ints("count"),
            ) else {
                break 'table;
            };
            for m in &models {
                let rows: Vec<usize> = (0..t.rows())
                    .filter(|&i| {
                        model[i].as_deref() == Some(m.as_str())
                            && variant[i].as_deref() == Some("clean")
                    })
                    .collect();
                let mut classes: Vec<String> = rows
                    .iter()
                    .flat_map(|&i| {
                        [
                            truth[i].clone().unwrap_or_default(),
                            pred[i].clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                classes.sort();
                classes.dedup();
                if classes.is_empty() {
                    continue;
                }
                let n = classes.len();
                let mut values = vec![0.0; n * n];
                for &i in &rows {
                    let a = classes
                        .iter()
                        .position(|c| Some(c) == truth[i].as_ref())
                        .unwrap_or(0);
                    let b = classes
                        .iter()
                        .position(|c| Some(c) == pred[i].as_ref())
                        .unwrap_or(0);
                    values[a * n + b] += count[i].unwrap_or(0) as f64;
                }
                for r in 0..n {
                    let total: f64 = values[r * n..(r + 1) * n].iter().sum();
                    if total > 0.0 {
                        values[r * n..(r + 1) * n]
                            .iter_mut()
                            .for_each(|v| *v /= total);
                    }
                }
                let stem = dir.join(format!("zero_shot_confusion_{m}"));
                written.extend(heatmap(
                    &stem,
                    &format!("{m}: zero-shot confusion (rows: true class)"),
                    &classes,
                    &classes,
                    &values,
                    (0.0, 1.0),
                )?);
            }
        }
    }
    Ok(written)
}

/// Splits a clipflow variant name (`gaussian-0.1`) into its noise family and level.
fn noise_of(variant: &str) -> (String, Option<f64>) {
    if variant == "clean" {
        return ("none".into(), Some(0.0));
    }
    match variant.rsplit_once('-') {
        Some((kind, level)) => (kind.to_string(), level.parse().ok()),
        None => (variant.to_string(), None),
    }
}

/// Every metric of every noisy variant beside its clean value and the drop (clean − noisy).
fn robustness(metrics: &[Metric]) -> Option<Table> {
    let clean: HashMap<(&str, &str, &str, &str, Option<i64>), f64> = metrics
        .iter()
        .filter(|m| m.variant == "clean")
        .map(|m| {
            (
                (
                    m.model.as_str(),
                    m.stage,
                    m.kind.as_str(),
                    m.metric.as_str(),
                    m.k,
                ),
                m.value,
            )
        })
        .collect();
    let rows: Vec<(&Metric, f64)> = metrics
        .iter()
        .filter_map(|m| {
            clean
                .get(&(
                    m.model.as_str(),
                    m.stage,
                    m.kind.as_str(),
                    m.metric.as_str(),
                    m.k,
                ))
                .map(|c| (m, *c))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let noise: Vec<(String, Option<f64>)> =
        rows.iter().map(|(m, _)| noise_of(&m.variant)).collect();
    Some(
        Table::new("robustness")
            .text("model", rows.iter().map(|(m, _)| m.model.clone()))
            .text("variant", rows.iter().map(|(m, _)| m.variant.clone()))
            .text("noise", noise.iter().map(|n| n.0.clone()))
            .column(
                "noise_level",
                Column::Float(noise.iter().map(|n| n.1).collect()),
            )
            .text("stage", rows.iter().map(|(m, _)| m.stage.to_string()))
            .text("kind", rows.iter().map(|(m, _)| m.kind.clone()))
            .text("metric", rows.iter().map(|(m, _)| m.metric.clone()))
            .column("k", Column::Int(rows.iter().map(|(m, _)| m.k).collect()))
            .float("clean", rows.iter().map(|(_, c)| *c))
            .float("value", rows.iter().map(|(m, _)| m.value))
            .float("drop", rows.iter().map(|(m, c)| c - m.value)),
    )
}

/// Integer keys for a list of optional strings; `None` gets a key no other row shares.
fn keys(
    values: &[Option<String>],
    dict: &mut HashMap<String, usize>,
    next_unique: &mut usize,
) -> Vec<usize> {
    values
        .iter()
        .map(|v| match v {
            Some(s) => {
                let n = dict.len();
                *dict.entry(s.clone()).or_insert(n)
            }
            None => {
                *next_unique += 1;
                usize::MAX - *next_unique
            }
        })
        .collect()
}

type RetrievalTables = (Table, Table, Vec<Metric>);

fn run_retrieval(
    m: &ModelSets<'_>,
    images: &EmbeddingSet,
    rc: &crate::config::RetrievalConfig,
    notes: &mut Vec<String>,
) -> Result<Option<RetrievalTables>, AnalysisError> {
    let (texts, mode) = match (rc.positives, &m.captions, &m.prompts) {
        (PositivesKind::Auto | PositivesKind::Caption, Some(c), _) => (c, "caption"),
        (PositivesKind::Label, Some(c), _) if c.labels.iter().any(Option::is_some) => (c, "label"),
        (PositivesKind::Label | PositivesKind::Auto, _, Some(p)) => (p, "label"),
        _ => {
            if images.variant == "clean" {
                notes.push(format!(
                    "{}: retrieval skipped: no texts to pair with images",
                    m.name
                ));
            }
            return Ok(None);
        }
    };
    let (mut dict, mut unique) = (HashMap::new(), 0usize);
    let (text_keys, image_keys) = if mode == "caption" {
        let t: Vec<Option<String>> = texts.ids.iter().cloned().map(Some).collect();
        let i: Vec<Option<String>> = images.ids.iter().cloned().map(Some).collect();
        (
            keys(&t, &mut dict, &mut unique),
            keys(&i, &mut dict, &mut unique),
        )
    } else {
        (
            keys(&texts.labels, &mut dict, &mut unique),
            keys(&images.labels, &mut dict, &mut unique),
        )
    };
    let ks: Vec<usize> = rc.k.iter().copied().filter(|&k| k >= 1).collect();
    let mut metrics = Vec::new();
    let mut ranks = Table::default();
    let mut galleries = Table::default();
    for (direction, queries, q_keys, q_ids, q_texts, gallery, g_keys, g_ids, g_texts) in [
        (
            "text_to_image",
            texts.embeddings()?,
            &text_keys,
            &texts.ids,
            &texts.texts,
            embeddings(images)?,
            &image_keys,
            &images.ids,
            &images.texts,
        ),
        (
            "image_to_text",
            embeddings(images)?,
            &image_keys,
            &images.ids,
            &images.texts,
            texts.embeddings()?,
            &text_keys,
            &texts.ids,
            &texts.texts,
        ),
    ] {
        // A query whose positive is not in the gallery (its image failed to decode, say) is
        // unanswerable for reasons that are not the model's: leave it out, and count it.
        let in_gallery: std::collections::HashSet<usize> = g_keys.iter().copied().collect();
        let answerable: Vec<usize> = (0..queries.rows())
            .filter(|&i| in_gallery.contains(&q_keys[i]))
            .collect();
        let dropped = queries.rows() - answerable.len();
        if answerable.is_empty() {
            continue;
        }
        let q_vectors: Vec<f32> = answerable
            .iter()
            .flat_map(|&i| queries.row(i).iter().copied())
            .collect();
        let queries = Embeddings::new(&q_vectors, queries.dim())?;
        let q_keys: Vec<usize> = answerable.iter().map(|&i| q_keys[i]).collect();
        let q_ids: Vec<String> = answerable.iter().map(|&i| q_ids[i].clone()).collect();
        let q_texts: Vec<Option<String>> = answerable.iter().map(|&i| q_texts[i].clone()).collect();
        let (q_keys, q_ids, q_texts) = (&q_keys, &q_ids, &q_texts);
        let shown: Vec<usize> = (0..queries.rows().min(rc.galleries)).collect();
        let opts = RankOptions {
            top_k_queries: &shown,
            top_k: rc.gallery_k.max(1).min(gallery.rows()),
            ..RankOptions::default()
        };
        let positives = Positives::SharedKey {
            query: q_keys,
            gallery: g_keys,
        };
        let ks_here: Vec<usize> = ks
            .iter()
            .copied()
            .filter(|&k| k <= gallery.rows())
            .collect();
        let r = retrieval::retrieve(queries, gallery, &positives, &ks_here, &opts)?;
        let push = |metrics: &mut Vec<Metric>, metric: &str, k: Option<i64>, value: f64| {
            metrics.push(Metric {
                model: m.name.clone(),
                variant: images.variant.clone(),
                stage: "retrieval",
                kind: format!("{direction}:{mode}"),
                metric: metric.to_string(),
                k,
                value,
            })
        };
        for rk in &r.metrics.recall {
            push(&mut metrics, "recall", Some(rk.k as i64), rk.recall);
        }
        if let Some(v) = r.metrics.mean_rank {
            push(&mut metrics, "mean_rank", None, v);
        }
        if let Some(v) = r.metrics.median_rank {
            push(&mut metrics, "median_rank", None, v);
        }
        push(&mut metrics, "mrr", None, r.metrics.mrr);
        push(&mut metrics, "queries", None, answerable.len() as f64);
        push(
            &mut metrics,
            "queries_without_positive",
            None,
            dropped as f64,
        );
        let n = r.ranking.ranks.len();
        ranks
            .extend(
                Table::new("retrieval_ranks")
                    .text("model", vec![m.name.clone(); n])
                    .text("variant", vec![images.variant.clone(); n])
                    .text("direction", vec![direction.to_string(); n])
                    .text("query_id", q_ids.iter().cloned())
                    .column(
                        "rank",
                        Column::Int(
                            r.ranking
                                .ranks
                                .iter()
                                .map(|x| x.map(|v| v as i64))
                                .collect(),
                        ),
                    ),
            )
            .map_err(|_| AnalysisError::Empty { what: "ranks" })?;
        // One row per (shown query, hit), in rank order.
        let hits: Vec<(usize, usize, &retrieval::Hit)> = r
            .ranking
            .top
            .iter()
            .flat_map(|top| {
                top.hits
                    .iter()
                    .enumerate()
                    .map(move |(pos, h)| (top.query, pos, h))
            })
            .collect();
        let rows = hits.len();
        let g = Table::new("retrieval_galleries")
            .text("model", vec![m.name.clone(); rows])
            .text("variant", vec![images.variant.clone(); rows])
            .text("direction", vec![direction.to_string(); rows])
            .text("query_id", hits.iter().map(|(q, _, _)| q_ids[*q].clone()))
            .column(
                "query_text",
                Column::Text(hits.iter().map(|(q, _, _)| q_texts[*q].clone()).collect()),
            )
            .int("rank", hits.iter().map(|(_, pos, _)| *pos as i64 + 1))
            .text(
                "hit_id",
                hits.iter().map(|(_, _, h)| g_ids[h.gallery].clone()),
            )
            .float("score", hits.iter().map(|(_, _, h)| h.score as f64))
            .int("positive", hits.iter().map(|(_, _, h)| h.positive as i64))
            .column(
                "hit_text",
                Column::Text(
                    hits.iter()
                        .map(|(_, _, h)| g_texts[h.gallery].clone())
                        .collect(),
                ),
            );
        galleries
            .extend(g)
            .map_err(|_| AnalysisError::Empty { what: "galleries" })?;
    }
    ranks.name = "retrieval_ranks".into();
    galleries.name = "retrieval_galleries".into();
    Ok(Some((ranks, galleries, metrics)))
}

type ZeroShotTables = (Table, Table, Table, Vec<Metric>);

/// Zero-shot classification. Predictions are the argmax of cos (equal to the argmax of
/// 100·cos); the logit scale only matters for softmax probabilities, which this does not report.
fn run_zero_shot(
    m: &ModelSets<'_>,
    images: &EmbeddingSet,
    notes: &mut Vec<String>,
) -> Result<Option<ZeroShotTables>, AnalysisError> {
    let Some(prompts) = &m.prompts else {
        if images.variant == "clean" {
            notes.push(format!(
                "{}: zero-shot skipped: the store has no class prompts (texts.prompts)",
                m.name
            ));
        }
        return Ok(None);
    };
    let prompt_labels: Vec<String> = prompts
        .labels
        .iter()
        .map(|l| l.clone().unwrap_or_default())
        .collect();
    let classes = Labels::from_strings(&prompt_labels);
    let class_index: HashMap<&str, usize> = classes
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    // Images whose label has no prompts cannot be scored; they are left out and counted.
    let rows: Vec<usize> = (0..images.len())
        .filter(|&i| {
            images.labels[i]
                .as_deref()
                .is_some_and(|l| class_index.contains_key(l))
        })
        .collect();
    if rows.is_empty() {
        if images.variant == "clean" {
            notes.push(format!(
                "{}: zero-shot skipped: no image has a label that the prompts name",
                m.name
            ));
        }
        return Ok(None);
    }
    if rows.len() < images.len() && images.variant == "clean" {
        notes.push(format!(
            "{}: zero-shot: {} of {} images have no label among the prompt classes and are not scored",
            m.name,
            images.len() - rows.len(),
            images.len()
        ));
    }
    let x: Vec<f32> = rows
        .iter()
        .flat_map(|&i| images.row(i).iter().copied())
        .collect();
    let y: Vec<usize> = rows
        .iter()
        .map(|&i| class_index[images.labels[i].as_deref().unwrap_or_default()])
        .collect();
    let class_vectors =
        zero_shot::class_embeddings(prompts.embeddings()?, &classes.ids, classes.names.len())?;
    let z = zero_shot::zero_shot(
        Embeddings::new(&x, images.dim)?,
        Embeddings::new(&class_vectors, images.dim)?,
        &y,
    )?;
    let mk = |metric: &str, k: Option<i64>, value: f64| Metric {
        model: m.name.clone(),
        variant: images.variant.clone(),
        stage: "zero_shot",
        kind: "templates".into(),
        metric: metric.to_string(),
        k,
        value,
    };
    let mut metrics = vec![
        mk("top1", Some(1), z.top1),
        mk("mean_per_class_recall", None, z.mean_per_class_recall),
    ];
    if let Some(t5) = z.top5 {
        metrics.push(mk("top5", Some(5), t5));
    }
    let nc = classes.names.len();
    let per_class = Table::new("zero_shot_per_class")
        .text("model", vec![m.name.clone(); nc])
        .text("variant", vec![images.variant.clone(); nc])
        .text("class", classes.names.iter().cloned())
        .int("support", z.per_class.iter().map(|c| c.support as i64))
        .int("correct", z.per_class.iter().map(|c| c.correct as i64))
        .column(
            "accuracy",
            Column::Float(z.per_class.iter().map(|c| c.accuracy).collect()),
        );
    let mut cells = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..nc {
        for p in 0..nc {
            let c = z.confusion[t * nc + p];
            if c > 0 {
                cells.0.push(classes.names[t].clone());
                cells.1.push(classes.names[p].clone());
                cells.2.push(c as i64);
            }
        }
    }
    let n = cells.0.len();
    let confusion = Table::new("zero_shot_confusion")
        .text("model", vec![m.name.clone(); n])
        .text("variant", vec![images.variant.clone(); n])
        .text("true_class", cells.0)
        .text("predicted_class", cells.1)
        .int("count", cells.2);
    let predictions = Table::new("zero_shot_predictions")
        .text("model", vec![m.name.clone(); rows.len()])
        .text("variant", vec![images.variant.clone(); rows.len()])
        .text("id", rows.iter().map(|&i| images.ids[i].clone()))
        .text("label", y.iter().map(|&c| classes.names[c].clone()))
        .text(
            "predicted",
            z.predictions.iter().map(|&c| classes.names[c].clone()),
        )
        .int("true_rank", z.true_rank.iter().map(|&r| r as i64));
    Ok(Some((per_class, confusion, predictions, metrics)))
}

fn labelled(set: &EmbeddingSet) -> Option<(Vec<usize>, Labels)> {
    if set.labels.iter().any(Option::is_none) {
        return None;
    }
    let names: Vec<&str> = set
        .labels
        .iter()
        .map(|l| l.as_deref().unwrap_or_default())
        .collect();
    let labels = Labels::from_strings(&names);
    Some((labels.ids.clone(), labels))
}

fn run_cluster(
    m: &ModelSets<'_>,
    images: &EmbeddingSet,
    cc: &crate::config::ClusterConfig,
    seed: u64,
    notes: &mut Vec<String>,
) -> Result<Option<(Table, Vec<Metric>)>, AnalysisError> {
    let Some((truth, labels)) = labelled(images) else {
        if images.variant == "clean" {
            notes.push(format!(
                "{}: clustering skipped: not every image has a label",
                m.name
            ));
        }
        return Ok(None);
    };
    let x = embeddings(images)?;
    let k = cc.k.unwrap_or(labels.names.len()).clamp(1, images.len());
    let mut metrics = Vec::new();
    let mut assignments = Table::default();
    for method in &cc.methods {
        let (name, predicted): (&str, Vec<Option<usize>>) = match method {
            ClusterMethod::Kmeans => {
                let mut o = cluster::KMeansOptions::new(k, seed);
                o.n_init = cc.restarts.max(1);
                (
                    "kmeans",
                    cluster::kmeans(x, &o)?
                        .labels
                        .into_iter()
                        .map(Some)
                        .collect(),
                )
            }
            ClusterMethod::Ward => {
                if images.len() > cluster::WARD_MAX_SAMPLES {
                    if images.variant == "clean" {
                        notes.push(format!(
                            "{}: Ward skipped: {} images is over its limit of {}",
                            m.name,
                            images.len(),
                            cluster::WARD_MAX_SAMPLES
                        ));
                    }
                    continue;
                }
                ("ward", cluster::ward(x, k)?.into_iter().map(Some).collect())
            }
            ClusterMethod::Dbscan => {
                let eps = match cc.eps {
                    Some(e) => e,
                    None => median_kth_distance(x, cc.min_samples)?,
                };
                let o = cluster::DbscanOptions {
                    eps,
                    min_samples: cc.min_samples,
                    metric: Distance::Cosine,
                };
                ("dbscan", cluster::dbscan(x, &o)?.labels)
            }
        };
        // Noise points (DBSCAN) form one extra cluster for scoring, as scikit-learn's -1 label.
        let noise_id = predicted.iter().flatten().max().map(|m| m + 1).unwrap_or(0);
        let pred: Vec<usize> = predicted.iter().map(|p| p.unwrap_or(noise_id)).collect();
        let s = cluster::cluster_scores(&truth, &pred)?;
        let distinct = pred.iter().collect::<std::collections::BTreeSet<_>>().len();
        let silhouette = if distinct >= 2 && distinct < images.len() {
            Some(cluster::silhouette_score(x, &pred, Distance::Cosine)?)
        } else {
            None
        };
        let mut push = |metric: &str, value: f64| {
            metrics.push(Metric {
                model: m.name.clone(),
                variant: images.variant.clone(),
                stage: "cluster",
                kind: name.to_string(),
                metric: metric.to_string(),
                k: Some(k as i64),
                value,
            })
        };
        push("ari", s.adjusted_rand);
        push("nmi", s.normalized_mutual_info);
        push("ami", s.adjusted_mutual_info);
        push("fmi", s.fowlkes_mallows);
        push("homogeneity", s.homogeneity);
        push("completeness", s.completeness);
        push("v_measure", s.v_measure);
        if let Some(v) = silhouette {
            push("silhouette_cosine", v);
        }
        push("clusters_found", distinct as f64);
        let n = images.len();
        assignments
            .extend(
                Table::new("cluster_assignments")
                    .text("model", vec![m.name.clone(); n])
                    .text("variant", vec![images.variant.clone(); n])
                    .text("method", vec![name.to_string(); n])
                    .text("id", images.ids.iter().cloned())
                    .text("label", truth.iter().map(|&t| labels.names[t].clone()))
                    .column(
                        "cluster",
                        Column::Int(predicted.iter().map(|p| p.map(|c| c as i64)).collect()),
                    ),
            )
            .map_err(|_| AnalysisError::Empty {
                what: "assignments",
            })?;
    }
    assignments.name = "cluster_assignments".into();
    Ok(Some((assignments, metrics)))
}

/// DBSCAN's default radius: the median cosine distance from a point to its `k`-th nearest
/// neighbour (a standard knee heuristic), over at most 2,000 points.
fn median_kth_distance(x: Embeddings<'_>, k: usize) -> Result<f64, AnalysisError> {
    let n = x.rows().min(2000);
    let k = k.clamp(1, n.saturating_sub(1).max(1));
    let mut kth = Vec::with_capacity(n);
    for i in 0..n {
        let mut d: Vec<f64> = (0..n)
            .filter(|&j| j != i)
            .map(|j| {
                let dot: f64 = x
                    .row(i)
                    .iter()
                    .zip(x.row(j))
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum();
                (1.0 - dot).clamp(0.0, 2.0)
            })
            .collect();
        if d.is_empty() {
            return Ok(0.5);
        }
        let idx = (k - 1).min(d.len() - 1);
        d.select_nth_unstable_by(idx, f64::total_cmp);
        kth.push(d[idx]);
    }
    kth.sort_by(f64::total_cmp);
    Ok(kth[kth.len() / 2].max(1e-6))
}

fn run_probe(
    m: &ModelSets<'_>,
    clean: &EmbeddingSet,
    images: &EmbeddingSet,
    pc: &crate::config::ProbeConfig,
    noise_on: NoiseTarget,
    seed: u64,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<Metric>>, AnalysisError> {
    let Some((truth, labels)) = labelled(clean) else {
        if images.variant == "clean" {
            notes.push(format!(
                "{}: probes skipped: not every image has a label",
                m.name
            ));
        }
        return Ok(None);
    };
    if labels.names.len() < 2 {
        if images.variant == "clean" {
            notes.push(format!("{}: probes skipped: a single class", m.name));
        }
        return Ok(None);
    }
    // Align the variant's rows with the clean rows by id (a variant may lack failed items).
    let pos: HashMap<&str, usize> = images
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let split = probe::stratified_split(&truth, pc.test_fraction, seed)?;
    let (train_noisy, test_noisy) = match noise_on {
        NoiseTarget::Queries => (false, true),
        NoiseTarget::Gallery => (true, false),
        NoiseTarget::Both => (true, true),
    };
    let mut x: Vec<f32> = Vec::new();
    let mut y: Vec<usize> = Vec::new();
    let mut combined = Split {
        train: Vec::new(),
        test: Vec::new(),
    };
    for (rows, noisy, is_test) in [
        (&split.train, train_noisy, false),
        (&split.test, test_noisy, true),
    ] {
        for &i in rows {
            let row = if noisy {
                match pos.get(clean.ids[i].as_str()) {
                    Some(&j) => images.row(j),
                    None => continue,
                }
            } else {
                clean.row(i)
            };
            let index = y.len();
            x.extend_from_slice(row);
            y.push(truth[i]);
            if is_test {
                combined.test.push(index);
            } else {
                combined.train.push(index);
            }
        }
    }
    if combined.train.is_empty() || combined.test.is_empty() {
        return Ok(None);
    }
    let e = Embeddings::new(&x, clean.dim)?;
    let knn = probe::knn_accuracy(e, &y, &combined, pc.knn_k.min(combined.train.len()).max(1))?;
    let (linear, _) = probe::linear_probe(e, &y, &combined, &LinearProbeOptions::default())?;
    let mk = |kind: &str, k: Option<i64>, value: f64| Metric {
        model: m.name.clone(),
        variant: images.variant.clone(),
        stage: "probe",
        kind: kind.to_string(),
        metric: "accuracy".into(),
        k,
        value,
    };
    Ok(Some(vec![
        mk("knn", Some(pc.knn_k as i64), knn.accuracy),
        mk("linear", None, linear.accuracy),
    ]))
}

fn run_similarity(
    m: &ModelSets<'_>,
    images: &EmbeddingSet,
    sc: &crate::config::SimilarityConfig,
    logit_scale: f64,
) -> Result<Option<(Table, Table)>, AnalysisError> {
    let max = sc.max_items.unwrap_or(16).max(1);
    let chosen: Vec<usize> = if let Some(ids) = &sc.ids {
        ids.iter()
            .filter_map(|id| images.ids.iter().position(|x| x == id))
            .take(max)
            .collect()
    } else if let Some(q) = &sc.query {
        let q = q.to_lowercase();
        (0..images.len())
            .filter(|&i| {
                images.texts[i]
                    .as_deref()
                    .is_some_and(|t| t.to_lowercase().contains(&q))
            })
            .take(max)
            .collect()
    } else {
        let per = sc.per_class.unwrap_or(2).max(1);
        let mut seen: HashMap<Option<&str>, usize> = HashMap::new();
        (0..images.len())
            .filter(|&i| {
                let c = seen.entry(images.labels[i].as_deref()).or_default();
                *c += 1;
                *c <= per
            })
            .take(max)
            .collect()
    };
    if chosen.is_empty() {
        return Ok(None);
    }
    // The texts: the chosen items' captions, else one averaged prompt embedding per class.
    let (text_ids, text_vectors, matched): (Vec<String>, Vec<f32>, Vec<Option<usize>>) =
        if let Some(c) = &m.captions {
            let pos: HashMap<&str, usize> = c
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let rows: Vec<usize> = chosen
                .iter()
                .filter_map(|&i| pos.get(images.ids[i].as_str()).copied())
                .collect();
            (
                rows.iter().map(|&r| c.ids[r].clone()).collect(),
                rows.iter()
                    .flat_map(|&r| c.vectors[r * c.dim..(r + 1) * c.dim].iter().copied())
                    .collect(),
                chosen
                    .iter()
                    .map(|&i| rows.iter().position(|&r| c.ids[r] == images.ids[i]))
                    .collect(),
            )
        } else if let Some(p) = &m.prompts {
            let labels: Vec<String> = p
                .labels
                .iter()
                .map(|l| l.clone().unwrap_or_default())
                .collect();
            let classes = Labels::from_strings(&labels);
            let v =
                zero_shot::class_embeddings(p.embeddings()?, &classes.ids, classes.names.len())?;
            let matched = chosen
                .iter()
                .map(|&i| {
                    images.labels[i]
                        .as_ref()
                        .and_then(|l| classes.names.iter().position(|n| n == l))
                })
                .collect();
            (classes.names.clone(), v, matched)
        } else {
            return Ok(None);
        };
    if text_ids.is_empty() {
        return Ok(None);
    }
    let img: Vec<f32> = chosen
        .iter()
        .flat_map(|&i| images.row(i).iter().copied())
        .collect();
    let dim = images.dim;
    let cos = crate::analysis::similarity(
        Embeddings::new(&img, dim)?,
        Embeddings::new(&text_vectors, dim)?,
    )?;
    let soft = crate::analysis::softmax(&cos, text_ids.len(), logit_scale)?;
    let nt = text_ids.len();
    let n = chosen.len() * nt;
    let sim = Table::new("similarity")
        .text("model", vec![m.name.clone(); n])
        .text("variant", vec![images.variant.clone(); n])
        .text(
            "image_id",
            chosen
                .iter()
                .flat_map(|&i| std::iter::repeat_n(images.ids[i].clone(), nt)),
        )
        .text(
            "text_id",
            (0..chosen.len()).flat_map(|_| text_ids.iter().cloned()),
        )
        .int(
            "matched",
            (0..chosen.len()).flat_map(|a| {
                let matched = &matched;
                (0..nt).map(move |b| (matched[a] == Some(b)) as i64)
            }),
        )
        .float("dot", cos.iter().map(|v| *v as f64))
        .float("cosine", cos.iter().map(|v| *v as f64))
        .float("softmax", soft.iter().map(|v| *v as f64));
    // Histogram of matched vs unmatched similarities over all image–text pairs (the first
    // 2,000 images and texts at most, so it stays cheap): matched = the item's own caption, or
    // a prompt class equal to the image's label.
    let bins = 40usize;
    let mut counts = [vec![0i64; bins], vec![0i64; bins]];
    let n_img = images.len().min(2000);
    let (t_keys, t_vecs, by_label): (Vec<String>, Vec<f32>, bool) = match (&m.captions, &m.prompts)
    {
        (Some(c), _) => {
            let n = c.ids.len().min(2000);
            (c.ids[..n].to_vec(), c.vectors[..n * c.dim].to_vec(), false)
        }
        (None, Some(p)) => {
            let labels: Vec<String> = p
                .labels
                .iter()
                .map(|l| l.clone().unwrap_or_default())
                .collect();
            let classes = Labels::from_strings(&labels);
            let v =
                zero_shot::class_embeddings(p.embeddings()?, &classes.ids, classes.names.len())?;
            (classes.names.clone(), v, true)
        }
        (None, None) => (Vec::new(), Vec::new(), false),
    };
    if !t_keys.is_empty() {
        let all = crate::analysis::similarity(
            Embeddings::new(&images.vectors[..n_img * dim], dim)?,
            Embeddings::new(&t_vecs, dim)?,
        )?;
        let nt = t_keys.len();
        for a in 0..n_img {
            let key = if by_label {
                images.labels[a].as_deref()
            } else {
                Some(images.ids[a].as_str())
            };
            for (b, t_key) in t_keys.iter().enumerate() {
                let v = all[a * nt + b] as f64;
                let bin = (((v + 1.0) / 2.0 * bins as f64) as usize).min(bins - 1);
                counts[(key == Some(t_key.as_str())) as usize][bin] += 1;
            }
        }
    }
    let hist_rows = 2 * bins;
    let hist = Table::new("similarity_histogram")
        .text("model", vec![m.name.clone(); hist_rows])
        .text("variant", vec![images.variant.clone(); hist_rows])
        .text(
            "pairs",
            (0..hist_rows).map(|r| if r < bins { "unmatched" } else { "matched" }),
        )
        .float(
            "bin_low",
            (0..hist_rows).map(|r| -1.0 + 2.0 * (r % bins) as f64 / bins as f64),
        )
        .float(
            "bin_high",
            (0..hist_rows).map(|r| -1.0 + 2.0 * ((r % bins) + 1) as f64 / bins as f64),
        )
        .int("count", counts.concat());
    Ok(Some((sim, hist)))
}
