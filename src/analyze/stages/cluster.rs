//! `cluster`: clusters each variant's image embeddings (k-means, Ward, DBSCAN, an autoencoder's
//! codes, DEC) and scores the clusters against the labels with scikit-learn's metrics (ARI,
//! NMI, AMI, FMI, homogeneity, completeness, V-measure) and the cosine silhouette; every
//! image's cluster is kept.
//!
//! The silhouette is O(N²): above `silhouette_points` images it is computed on a seeded sample
//! (as scikit-learn's `sample_size`), and a note says so.
//!
//! The deep methods (`autoencoder`, `dec`: [`crate::analysis::cluster::autoencoder`] and
//! [`crate::analysis::cluster::dec`]) share one trained autoencoder per set: DEC starts from
//! it, so asking for both costs one training, not two. They are minutes on 10,000 images
//! (timings in the core's docs), so `autoencoder.variants` can keep them to the clean set while
//! the cheap methods still cover every variant. How each training went (passes, final loss,
//! reconstruction error, whether DEC reached `tol`) is the `cluster_training` table, so a
//! poorly trained network is visible beside its scores.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{check_variants, embeddings, labelled, sample_by_id, wanted};
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
    /// k-means on the codes of a stacked denoising autoencoder (`autoencoder:` settings).
    Autoencoder,
    /// Deep Embedded Clustering, refined from that autoencoder (`dec:` settings).
    Dec,
}

impl ClusterMethod {
    /// The name in tables (the YAML spelling).
    fn name(self) -> &'static str {
        match self {
            ClusterMethod::Kmeans => "kmeans",
            ClusterMethod::Ward => "ward",
            ClusterMethod::Dbscan => "dbscan",
            ClusterMethod::Autoencoder => "autoencoder",
            ClusterMethod::Dec => "dec",
        }
    }
}

/// `analysis.cluster.autoencoder`: the network behind the `autoencoder` and `dec` methods
/// (DEC starts from it). Defaults are [`cluster::AutoencoderOptions`]'s: the paper's
/// `d–500–500–2000–10`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderSettings {
    /// Widths of the encoder's layers after the input; the last is the code dimension.
    #[serde(default = "default_layers")]
    pub layers: Vec<usize>,
    /// Passes over the data of each layer's denoising pretraining (0: none).
    #[serde(default = "default_pretrain_epochs")]
    pub pretrain_epochs: usize,
    /// Passes over the data of the end-to-end fine-tuning.
    #[serde(default = "default_finetune_epochs")]
    pub finetune_epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// SGD learning rate (momentum 0.9, divided by 10 in steps; see the core's docs).
    #[serde(default = "default_ae_learning_rate")]
    pub learning_rate: f64,
    /// Image variants the deep methods run on (the clean one always); default all.
    #[serde(default)]
    pub variants: Option<Vec<String>>,
}

impl Default for AutoencoderSettings {
    fn default() -> Self {
        AutoencoderSettings {
            layers: default_layers(),
            pretrain_epochs: default_pretrain_epochs(),
            finetune_epochs: default_finetune_epochs(),
            batch_size: default_batch_size(),
            learning_rate: default_ae_learning_rate(),
            variants: None,
        }
    }
}

/// `analysis.cluster.dec`: DEC's self-training. Defaults are [`cluster::DecOptions`]'s (the
/// paper's).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecSettings {
    /// Stop when fewer than this fraction of the images change cluster between two target
    /// updates (one pass over the data apart).
    #[serde(default = "default_tol")]
    pub tol: f64,
    /// Passes over the data at most; a note says when DEC stopped here rather than on `tol`.
    #[serde(default = "default_max_epochs")]
    pub max_epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// SGD learning rate (momentum 0.9).
    #[serde(default = "default_dec_learning_rate")]
    pub learning_rate: f64,
    /// Iterations (minibatches) between target updates, where `tol` is checked; default one
    /// pass over the data (the reference code's). On a few hundred images a pass is a few
    /// iterations, too few for any image to change cluster, so DEC would stop at once.
    #[serde(default)]
    pub update_interval: Option<usize>,
}

impl Default for DecSettings {
    fn default() -> Self {
        DecSettings {
            tol: default_tol(),
            max_epochs: default_max_epochs(),
            batch_size: default_batch_size(),
            learning_rate: default_dec_learning_rate(),
            update_interval: None,
        }
    }
}

fn default_layers() -> Vec<usize> {
    cluster::AutoencoderOptions::default().layers
}
fn default_pretrain_epochs() -> usize {
    cluster::AutoencoderOptions::default().pretrain_epochs
}
fn default_finetune_epochs() -> usize {
    cluster::AutoencoderOptions::default().finetune_epochs
}
fn default_batch_size() -> usize {
    cluster::AutoencoderOptions::default().batch_size
}
fn default_ae_learning_rate() -> f64 {
    cluster::AutoencoderOptions::default()
        .optimizer
        .learning_rate()
}
fn default_tol() -> f64 {
    cluster::DecOptions::default().tol
}
fn default_max_epochs() -> usize {
    cluster::DecOptions::default().max_epochs
}
fn default_dec_learning_rate() -> f64 {
    cluster::DecOptions::default().optimizer.learning_rate()
}

/// Layer widths above this are refused at validation (a typo, not a network).
const MAX_LAYER_WIDTH: usize = 100_000;

impl AutoencoderSettings {
    fn check(&self, facts: &Facts) -> Result<(), SettingError> {
        if self.layers.is_empty() {
            return Err(SettingError::new(
                "autoencoder.layers",
                "list the widths of the encoder's layers, the code dimension last \
                 (the paper's [500, 500, 2000, 10])",
            ));
        }
        for (i, &w) in self.layers.iter().enumerate() {
            if w == 0 || w > MAX_LAYER_WIDTH {
                return Err(SettingError::new(
                    &format!("autoencoder.layers.{i}"),
                    format!("a layer width must be between 1 and {MAX_LAYER_WIDTH}"),
                ));
            }
        }
        if self.pretrain_epochs == 0 && self.finetune_epochs == 0 {
            return Err(SettingError::new(
                "autoencoder.finetune_epochs",
                "with pretrain_epochs 0 as well the autoencoder would not be trained",
            ));
        }
        if self.batch_size == 0 {
            return Err(SettingError::new(
                "autoencoder.batch_size",
                "must be at least 1",
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(SettingError::new(
                "autoencoder.learning_rate",
                "must be a positive number",
            ));
        }
        check_variants(self.variants.as_deref(), facts).map_err(|e| SettingError {
            key: format!("autoencoder.{}", e.key),
            message: e.message,
        })
    }

    fn options(&self, seed: u64) -> cluster::AutoencoderOptions {
        let mut o = cluster::AutoencoderOptions {
            layers: self.layers.clone(),
            pretrain_epochs: self.pretrain_epochs,
            finetune_epochs: self.finetune_epochs,
            batch_size: self.batch_size,
            seed,
            ..Default::default()
        };
        set_learning_rate(&mut o.optimizer, self.learning_rate);
        o
    }
}

impl DecSettings {
    fn check(&self) -> Result<(), SettingError> {
        if !(0.0..=1.0).contains(&self.tol) {
            return Err(SettingError::new(
                "dec.tol",
                "must be a fraction in [0, 1] (the paper's 0.001)",
            ));
        }
        for (key, v) in [
            ("dec.max_epochs", self.max_epochs),
            ("dec.batch_size", self.batch_size),
            ("dec.update_interval", self.update_interval.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(SettingError::new(key, "must be at least 1"));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(SettingError::new(
                "dec.learning_rate",
                "must be a positive number",
            ));
        }
        Ok(())
    }

    fn options(&self, seed: u64) -> cluster::DecOptions {
        let mut o = cluster::DecOptions {
            tol: self.tol,
            max_epochs: self.max_epochs,
            batch_size: self.batch_size,
            update_interval: self.update_interval,
            seed,
            ..Default::default()
        };
        set_learning_rate(&mut o.optimizer, self.learning_rate);
        o
    }
}

fn set_learning_rate(o: &mut cluster::Optimizer, rate: f64) {
    match o {
        cluster::Optimizer::Sgd { learning_rate, .. }
        | cluster::Optimizer::Adam { learning_rate } => *learning_rate = rate,
    }
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
    /// The network of the `autoencoder` and `dec` methods.
    #[serde(default)]
    pub autoencoder: AutoencoderSettings,
    /// DEC's self-training.
    #[serde(default)]
    pub dec: DecSettings,
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
            autoencoder: AutoencoderSettings::default(),
            dec: DecSettings::default(),
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
        about: "Clusters of the image embeddings (k-means, Ward, DBSCAN, an autoencoder's codes, \
                DEC) scored against the labels (ARI, NMI, AMI, FMI, ...); cluster_training says \
                how the deep methods trained.",
        prefixes: &["cluster"],
        summaries: &["cluster"],
    };

    fn check(&self, facts: &Facts) -> Result<(), SettingError> {
        if self.methods.is_empty() {
            return Err(SettingError::new(
                "methods",
                "list at least one of kmeans, ward, dbscan, autoencoder, dec",
            ));
        }
        self.autoencoder.check(facts)?;
        self.dec.check()?;
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
        // One autoencoder per set, shared by the `autoencoder` and `dec` methods (a failure
        // is kept too, so DEC does not train a second time to fail the same way).
        let mut trained: Option<Result<cluster::AutoencoderClustering, String>> = None;
        for method in &cc.methods {
            let name = method.name();
            let predicted: Vec<Option<usize>> = match method {
                ClusterMethod::Kmeans => {
                    let mut o = cluster::KMeansOptions::new(k, cx.seed);
                    o.n_init = cc.restarts.max(1);
                    cluster::kmeans(x, &o)?
                        .labels
                        .into_iter()
                        .map(Some)
                        .collect()
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
                    cluster::ward(x, k)?.into_iter().map(Some).collect()
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
                    cluster::dbscan(x, &o)?.labels
                }
                ClusterMethod::Autoencoder | ClusterMethod::Dec => {
                    if !wanted(cc.autoencoder.variants.as_deref(), set.variant(), true) {
                        continue;
                    }
                    match self.deep(cx, set, x, k, *method, &mut trained, out)? {
                        Ok(labels) => labels.into_iter().map(Some).collect(),
                        Err(e) => {
                            // One method failing (a diverged training) must not cost the
                            // others their rows.
                            out.note(format!(
                                "{model} / {}: cluster method {name} failed: {e}",
                                set.variant()
                            ));
                            continue;
                        }
                    }
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

impl ClusterStage {
    /// Labels of a deep method (`autoencoder` or `dec`) on one set, training the shared
    /// autoencoder on first use; a row of `cluster_training` says how the training went. The
    /// inner error is the method's failure (a note), the outer one a table that could not be
    /// written.
    #[allow(clippy::too_many_arguments)]
    fn deep(
        &self,
        cx: &Context<'_>,
        set: &Set<'_>,
        x: Embeddings<'_>,
        k: usize,
        method: ClusterMethod,
        trained: &mut Option<Result<cluster::AutoencoderClustering, String>>,
        out: &mut Output,
    ) -> Result<Result<Vec<usize>, String>, StageError> {
        let cc = &self.settings;
        let (model, variant) = (set.model.name, set.variant());
        let what = format!("cluster: {model} / {variant}");
        let n = x.rows();
        let row = Table::new("cluster_training")
            .text("model", [model.to_string()])
            .text("variant", [variant.to_string()])
            .text("method", [method.name().to_string()]);
        if trained.is_none() {
            let t = Instant::now();
            let opts = cc.autoencoder.options(cx.seed);
            *trained = Some(cluster::autoencoder(x, k, &opts).map_err(|e| e.to_string()));
            cx.progress.info(&format!(
                "{what}: autoencoder trained in {:.1} s",
                t.elapsed().as_secs_f64()
            ));
        }
        let ae = match trained.as_ref().expect("trained above") {
            Ok(ae) => ae,
            Err(e) => return Ok(Err(format!("autoencoder: {e}"))),
        };
        if method == ClusterMethod::Autoencoder {
            let passes = ae.trace.pretrain_loss.iter().map(Vec::len).sum::<usize>()
                + ae.trace.finetune_loss.len();
            out.table(
                row.int("passes", [passes as i64])
                    .column(
                        "final_loss",
                        Column::Float(vec![ae.trace.finetune_loss.last().copied()]),
                    )
                    .float("reconstruction_error", [ae.trace.reconstruction_error])
                    .column("converged", Column::Text(vec![None]))
                    .column("changed_fraction", Column::Float(vec![None])),
            )?;
            return Ok(Ok(ae.labels.clone()));
        }
        let t = Instant::now();
        let opts = cc.dec.options(cx.seed);
        let d = match cluster::dec(x, ae, &opts) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e.to_string())),
        };
        cx.progress.info(&format!(
            "{what}: DEC trained in {:.1} s ({} iterations)",
            t.elapsed().as_secs_f64(),
            d.trace.iterations
        ));
        let per_pass = n.div_ceil(opts.batch_size.min(n));
        let last = d.trace.updates.last();
        let changed = last.map_or(0.0, |u| u.changed_fraction);
        if !d.trace.converged {
            out.note(format!(
                "{model} / {variant}: DEC stopped after {} passes (analysis.cluster.dec.\
                 max_epochs) with {:.2} % of the images still changing cluster between target \
                 updates, above tol {} %; its clusters are those of the last pass",
                opts.max_epochs,
                100.0 * changed,
                100.0 * opts.tol
            ));
        }
        let interval = opts.update_interval.unwrap_or(per_pass);
        if d.trace.converged && d.trace.iterations <= interval {
            out.note(format!(
                "{model} / {variant}: DEC stopped at its first target update ({} iterations): \
                 no more than tol of the images changed cluster, so its clusters are the \
                 autoencoder's; a smaller analysis.cluster.dec.batch_size or a larger \
                 dec.update_interval gives it more steps between updates",
                d.trace.iterations
            ));
        }
        out.table(
            row.int("passes", [d.trace.iterations.div_ceil(per_pass) as i64])
                .column("final_loss", Column::Float(vec![last.map(|u| u.kl)]))
                .column("reconstruction_error", Column::Float(vec![None]))
                .text("converged", [if d.trace.converged { "yes" } else { "no" }])
                .float("changed_fraction", [changed]),
        )?;
        Ok(Ok(d.labels))
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
