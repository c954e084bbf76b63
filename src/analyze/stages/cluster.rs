//! `cluster`: clusters each variant's image embeddings (k-means, Ward, DBSCAN) and scores the
//! clusters against the labels with scikit-learn's metrics (ARI, NMI, AMI, FMI, homogeneity,
//! completeness, V-measure) and the cosine silhouette; every image's cluster is kept.
//!
//! The silhouette is O(N²): above `silhouette_points` images it is computed on a seeded sample
//! (as scikit-learn's `sample_size`), and a note says so.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{embeddings, labelled, sample_by_id};
use crate::analysis::cluster::{self, Distance};
use crate::analysis::{AnalysisError, Embeddings};
use crate::analyze::stage::{
    Context, Facts, Metric, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::store::{Column, Table};

/// Clustering methods.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClusterMethod {
    Kmeans,
    Ward,
    Dbscan,
}

/// `analysis.cluster`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
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
    /// Images the silhouette is computed on at most (a seeded sample above it).
    #[serde(default = "default_silhouette_points")]
    pub silhouette_points: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            methods: default_methods(),
            k: None,
            restarts: default_restarts(),
            eps: None,
            min_samples: default_min_samples(),
            silhouette_points: default_silhouette_points(),
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
fn default_silhouette_points() -> usize {
    10_000
}

impl StageConfig for ClusterSettings {
    const KEY: &'static str = "cluster";
    const SECTION: Section = Section {
        anchor: "clustering",
        title: "Clustering",
        about: "Clusters of the image embeddings scored against the labels (ARI, NMI, AMI, FMI, \
                ...).",
        prefixes: &["cluster"],
        summaries: &["cluster"],
    };

    fn check(&self, _: &Facts) -> Result<(), SettingError> {
        if self.methods.is_empty() {
            return Err(SettingError::new(
                "methods",
                "list at least one of kmeans, ward, dbscan",
            ));
        }
        for (key, v) in [
            ("restarts", self.restarts),
            ("min_samples", self.min_samples),
            ("silhouette_points", self.silhouette_points),
        ] {
            if v == 0 {
                return Err(SettingError::new(key, "must be at least 1"));
            }
        }
        if self.k == Some(0) {
            return Err(SettingError::new("k", "must be at least 1"));
        }
        if self.eps.is_some_and(|e| !(e.is_finite() && e > 0.0)) {
            return Err(SettingError::new("eps", "must be a positive number"));
        }
        Ok(())
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(ClusterStage { settings: self })
    }
}

struct ClusterStage {
    settings: ClusterSettings,
}

impl Stage for ClusterStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        let cc = &self.settings;
        let model = set.model.name;
        let images = set.images;
        let Some((truth, labels)) = labelled(images) else {
            if set.is_clean() {
                out.note(format!(
                    "{model}: clustering skipped: not every image has a label"
                ));
            }
            return Ok(());
        };
        let x = embeddings(images)?;
        let k = cc.k.unwrap_or(labels.names.len()).clamp(1, images.len());
        for method in &cc.methods {
            let (name, predicted): (&str, Vec<Option<usize>>) = match method {
                ClusterMethod::Kmeans => {
                    let mut o = cluster::KMeansOptions::new(k, cx.seed);
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
                        if set.is_clean() {
                            out.note(format!(
                                "{model}: Ward skipped: {} images is over its limit of {}",
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
            // Noise points (DBSCAN) form one extra cluster for scoring, as scikit-learn's -1
            // label.
            let noise_id = predicted.iter().flatten().max().map(|m| m + 1).unwrap_or(0);
            let pred: Vec<usize> = predicted.iter().map(|p| p.unwrap_or(noise_id)).collect();
            let s = cluster::cluster_scores(&truth, &pred)?;
            let distinct = pred.iter().collect::<BTreeSet<_>>().len();
            let silhouette = if distinct >= 2 && distinct < images.len() {
                Some(silhouette(
                    model,
                    set,
                    x,
                    &pred,
                    cc.silhouette_points,
                    cx.seed,
                    out,
                )?)
            } else {
                None
            };
            let mut push = |metric: &str, value: f64| {
                out.metric(Metric {
                    model: model.to_string(),
                    variant: images.variant.clone(),
                    text_variant: set.text_variant().to_string(),
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
            out.table(
                Table::new("cluster_assignments")
                    .text("model", vec![model.to_string(); n])
                    .text("variant", vec![images.variant.clone(); n])
                    .text("method", vec![name.to_string(); n])
                    .text("id", images.ids.iter().cloned())
                    .text("label", truth.iter().map(|&t| labels.names[t].clone()))
                    .column(
                        "cluster",
                        Column::Int(predicted.iter().map(|p| p.map(|c| c as i64)).collect()),
                    ),
            )?;
        }
        Ok(())
    }

    fn finish(&mut self, _: &Context<'_>, out: &mut Output) -> Result<(), StageError> {
        out.metric_table("cluster", "method")?;
        Ok(())
    }
}

/// The cosine silhouette, on a seeded sample of at most `max` images.
fn silhouette(
    model: &str,
    set: &Set<'_>,
    x: Embeddings<'_>,
    pred: &[usize],
    max: usize,
    seed: u64,
    out: &mut Output,
) -> Result<f64, AnalysisError> {
    let n = x.rows();
    if n <= max {
        return cluster::silhouette_score(x, pred, Distance::Cosine);
    }
    let rows = sample_by_id(
        set.images.ids.iter().map(String::as_str),
        max,
        seed ^ 0x5111,
    );
    let xs: Vec<f32> = rows
        .iter()
        .flat_map(|&i| x.row(i).iter().copied())
        .collect();
    let ps: Vec<usize> = rows.iter().map(|&i| pred[i]).collect();
    if set.is_clean() {
        out.note(format!(
            "{model}: the silhouette is computed on a seeded sample of {max} of {n} images \
             (analysis.cluster.silhouette_points)"
        ));
    }
    if ps.iter().collect::<BTreeSet<_>>().len() < 2 {
        return Err(AnalysisError::Undefined(
            "the silhouette sample holds a single cluster".into(),
        ));
    }
    cluster::silhouette_score(Embeddings::new(&xs, x.dim())?, &ps, Distance::Cosine)
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
