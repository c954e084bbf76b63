//! `robustness`: what the noisy variants cost each model. On by default: it only reads what
//! the retrieval, zero-shot, probe and cluster stages recorded.
//!
//! - `robustness`: every metric of every noisy variant beside its clean value and the drop, and
//!   one chart per (model, noise kind) of the main metrics against the noise level;
//! - `robustness_errors`: per (model, task, variant) the error (1 − zero-shot top-1,
//!   1 − recall@1 for each retrieval direction), with the corruption and severity the variant
//!   is, for image variants against the clean texts and text variants against the clean
//!   images;
//! - `robustness_ce` and `robustness_mce`: Hendrycks & Dietterich's corruption error of every
//!   ImageNet-C corruption (plain and relative) and their means, against the model named by
//!   `analysis.robustness.reference`; the 15 benchmark corruptions and the 4 held-out ones are
//!   averaged apart, as in the paper;
//! - `robustness_effective`: Taori et al.'s effective robustness when the study has three or
//!   more models (see [`crate::analysis::robustness`]);
//! - plots of the main task's errors: a corruption × severity heatmap per model, and error
//!   against severity per corruption family.
//!
//! A number that cannot be computed (no reference, one model, a reference that never errs) is
//! left out with a note saying why.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::slug;
use crate::analysis::robustness::{self as core, AccuracyPair, ModelErrors, SeverityError};
use crate::analyze::stage::{
    noise_of, Context, Facts, Metric, Output, Section, Set, SettingError, Stage, StageConfig,
    StageError,
};
use crate::augment::corruptions::ALL as IMAGENET_C;
use crate::augment::Corruption;
use crate::chart::Series;
use crate::store::{Column, Table};

/// `analysis.robustness`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RobustnessSettings {
    /// The model CE and mCE are relative to (AlexNet in ImageNet-C); without one they are not
    /// computed.
    #[serde(default)]
    pub reference: Option<String>,
}

impl StageConfig for RobustnessSettings {
    const KEY: &'static str = "robustness";
    const SECTION: Section = Section {
        anchor: "robustness",
        title: "Robustness under noise",
        about: "Every metric on every noisy variant beside its clean value; the error per \
                corruption and severity, corruption errors (CE, mCE) against the reference \
                model, and effective robustness.",
        prefixes: &["robustness"],
        summaries: &["robustness_mce", "robustness_effective", "robustness"],
    };
    const ON_BY_DEFAULT: bool = true;

    fn check(&self, facts: &Facts) -> Result<(), SettingError> {
        let Some(reference) = &self.reference else {
            return Ok(());
        };
        if reference.trim().is_empty() {
            return Err(SettingError::new(
                "reference",
                "name the model CE and mCE are relative to",
            ));
        }
        if !facts.models.is_empty() && !facts.models.contains(reference) {
            let known: Vec<&str> = facts.models.iter().map(String::as_str).collect();
            let hint = crate::config::did_you_mean_among(reference, &known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(SettingError::new(
                "reference",
                format!(
                    "no model is named {reference:?}{hint} (the study's models: {})",
                    known.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(RobustnessStage {
            reference: self.reference,
        })
    }
}

struct RobustnessStage {
    reference: Option<String>,
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

/// An accuracy whose error the summaries use: (stage, kind prefix, metric, k, the metric
/// counting the items it is over).
const TASKS: &[(&str, &str, &str, i64, &str)] = &[
    ("zero_shot", "templates", "top1", 1, "images"),
    ("retrieval", "text_to_image", "recall", 1, "queries"),
    ("retrieval", "image_to_text", "recall", 1, "queries"),
];

impl Stage for RobustnessStage {
    fn run(&mut self, _: &Context<'_>, _: &Set<'_>, _: &mut Output) -> Result<(), StageError> {
        Ok(())
    }

    fn finish(&mut self, cx: &Context<'_>, out: &mut Output) -> Result<(), StageError> {
        let metrics = out.metrics().to_vec();
        if let Some(t) = robustness_table(&metrics) {
            out.table(t)?;
        }
        curves(cx, &metrics, out);
        let curves = error_curves(&metrics);
        if curves.iter().all(|c| c.noisy.is_empty()) {
            return Ok(());
        }
        out.table(errors_table(&curves))?;
        corruption_errors(&curves, self.reference.as_deref(), out)?;
        effective_robustness(&curves, out)?;
        error_plots(cx, &curves, out);
        Ok(())
    }
}

type MetricKey<'a> = (&'a str, &'a str, &'a str, &'a str, Option<i64>);

fn key(m: &Metric) -> MetricKey<'_> {
    (
        m.model.as_str(),
        m.stage,
        m.kind.as_str(),
        m.metric.as_str(),
        m.k,
    )
}

fn is_clean(m: &Metric) -> bool {
    m.variant == "clean" && m.text_variant == "clean"
}

/// Every metric of every noisy variant (image or text) beside its clean value and the drop
/// (clean − noisy).
fn robustness_table(metrics: &[Metric]) -> Option<Table> {
    let clean: HashMap<MetricKey<'_>, f64> = metrics
        .iter()
        .filter(|m| is_clean(m))
        .map(|m| (key(m), m.value))
        .collect();
    let rows: Vec<(&Metric, f64)> = metrics
        .iter()
        .filter_map(|m| clean.get(&key(m)).map(|c| (m, *c)))
        .collect();
    if rows.iter().all(|(m, _)| is_clean(m)) {
        return None;
    }
    // The noise of a row is its image variant's, or its text variant's when the images are
    // clean.
    let noise: Vec<(String, Option<f64>)> = rows
        .iter()
        .map(|(m, _)| {
            if m.text_variant == "clean" {
                noise_of(&m.variant)
            } else {
                noise_of(&m.text_variant)
            }
        })
        .collect();
    Some(
        Table::new("robustness")
            .text("model", rows.iter().map(|(m, _)| m.model.clone()))
            .text("variant", rows.iter().map(|(m, _)| m.variant.clone()))
            .text(
                "text_variant",
                rows.iter().map(|(m, _)| m.text_variant.clone()),
            )
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

/// One chart per (model, image noise kind): the main metrics against the noise level.
fn curves(cx: &Context<'_>, metrics: &[Metric], out: &mut Output) {
    let metrics: Vec<&Metric> = metrics
        .iter()
        .filter(|m| m.text_variant == "clean")
        .collect();
    let models: BTreeSet<&str> = metrics.iter().map(|m| m.model.as_str()).collect();
    for model in models {
        let families: BTreeSet<String> = metrics
            .iter()
            .filter(|m| m.model == model && m.variant != "clean")
            .map(|m| noise_of(&m.variant).0)
            .collect();
        for family in families {
            let mut series = Vec::new();
            for (stage, kind, metric, k) in CURVES {
                let mut points: Vec<(f64, f64)> = metrics
                    .iter()
                    .filter(|m| {
                        m.model == model
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
                let stem =
                    cx.plots_dir
                        .join(format!("robustness_{}_{}", slug(model), slug(&family)));
                out.plotted(crate::chart::lines(
                    &stem,
                    &format!("{model}: metrics under {family} noise"),
                    &format!("{family} level"),
                    "value",
                    &series,
                ));
            }
        }
    }
}

/// Which side of the pairing is perturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// An image variant against the clean texts.
    Image,
    /// A text variant against the clean images.
    Text,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Image => "image",
            Side::Text => "text",
        }
    }
}

/// One noisy measurement of a task.
#[derive(Debug, Clone)]
struct Point {
    side: Side,
    variant: String,
    corruption: String,
    severity: Option<f64>,
    accuracy: f64,
    n: Option<i64>,
}

impl Point {
    fn error(&self) -> f64 {
        1.0 - self.accuracy
    }

    /// The ImageNet-C corruption and integer severity this is, if it is one.
    fn imagenet_c(&self) -> Option<(Corruption, u32)> {
        if self.side != Side::Image {
            return None;
        }
        let (name, severity) = core::parse_variant(&self.variant)?;
        let c = Corruption::from_name(name)?;
        (1..=5).contains(&severity).then_some((c, severity))
    }

    /// The family the error-against-severity plots group it in.
    fn family(&self) -> String {
        match (self.side, self.imagenet_c()) {
            (Side::Image, Some((c, _))) => c.family().name().to_string(),
            (Side::Image, None) => "other".to_string(),
            (Side::Text, _) if self.corruption.starts_with("char_") => "characters".to_string(),
            (Side::Text, _) if self.corruption.starts_with("word_") => "words".to_string(),
            (Side::Text, _) => "text".to_string(),
        }
    }
}

/// A (model, task): its clean accuracy and every noisy one.
#[derive(Debug, Clone)]
struct Curve {
    model: String,
    /// `zero_shot`, or the retrieval direction with its positives (`text_to_image:caption`).
    task: String,
    clean: f64,
    clean_n: Option<i64>,
    noisy: Vec<Point>,
}

/// The (model, task) curves the metrics hold, in the order they were measured; a task
/// without a clean measurement has no curve (there is nothing to compare its variants with).
fn error_curves(metrics: &[Metric]) -> Vec<Curve> {
    let count = |m: &Metric, name: &str| -> Option<i64> {
        metrics
            .iter()
            .find(|c| {
                c.model == m.model
                    && c.stage == m.stage
                    && c.kind == m.kind
                    && c.variant == m.variant
                    && c.text_variant == m.text_variant
                    && c.metric == name
            })
            .map(|c| c.value as i64)
    };
    let mut curves: Vec<Curve> = Vec::new();
    for &(stage, kind, metric, k, count_name) in TASKS {
        for m in metrics.iter().filter(|m| {
            m.stage == stage && m.kind.starts_with(kind) && m.metric == metric && m.k == Some(k)
        }) {
            let task = if stage == "zero_shot" {
                "zero_shot".to_string()
            } else {
                m.kind.clone()
            };
            let n = count(m, count_name);
            if is_clean(m) {
                curves.push(Curve {
                    model: m.model.clone(),
                    task,
                    clean: m.value,
                    clean_n: n,
                    noisy: Vec::new(),
                });
                continue;
            }
            let (side, name) = match (m.variant.as_str(), m.text_variant.as_str()) {
                (v, "clean") => (Side::Image, v),
                ("clean", t) => (Side::Text, t),
                _ => continue,
            };
            let Some(curve) = curves
                .iter_mut()
                .find(|c| c.model == m.model && c.task == task)
            else {
                continue;
            };
            let (corruption, severity) = noise_of(name);
            curve.noisy.push(Point {
                side,
                variant: name.to_string(),
                corruption,
                severity,
                accuracy: m.value,
                n,
            });
        }
    }
    curves
}

/// `robustness_errors`: one row per (model, task, variant), the clean one first.
fn errors_table(curves: &[Curve]) -> Table {
    struct Row<'a> {
        curve: &'a Curve,
        side: &'static str,
        variant: &'a str,
        corruption: &'a str,
        severity: Option<f64>,
        accuracy: f64,
        n: Option<i64>,
    }
    let mut rows = Vec::new();
    for c in curves.iter().filter(|c| !c.noisy.is_empty()) {
        rows.push(Row {
            curve: c,
            side: "clean",
            variant: "clean",
            corruption: "none",
            severity: Some(0.0),
            accuracy: c.clean,
            n: c.clean_n,
        });
        for p in &c.noisy {
            rows.push(Row {
                curve: c,
                side: p.side.name(),
                variant: &p.variant,
                corruption: &p.corruption,
                severity: p.severity,
                accuracy: p.accuracy,
                n: p.n,
            });
        }
    }
    Table::new("robustness_errors")
        .text("model", rows.iter().map(|r| r.curve.model.clone()))
        .text("task", rows.iter().map(|r| r.curve.task.clone()))
        .text("side", rows.iter().map(|r| r.side.to_string()))
        .text("variant", rows.iter().map(|r| r.variant.to_string()))
        .text("corruption", rows.iter().map(|r| r.corruption.to_string()))
        .column(
            "severity",
            Column::Float(rows.iter().map(|r| r.severity).collect()),
        )
        .float("accuracy", rows.iter().map(|r| r.accuracy))
        .float("error", rows.iter().map(|r| 1.0 - r.accuracy))
        .float("clean_error", rows.iter().map(|r| 1.0 - r.curve.clean))
        .column("n", Column::Int(rows.iter().map(|r| r.n).collect()))
}

/// The errors of a curve under the ImageNet-C corruptions of one group (benchmark or
/// held-out), in the reference's corruption order.
fn imagenet_c_errors(curve: &Curve, benchmark: bool) -> ModelErrors {
    let mut corrupted: Vec<(usize, SeverityError)> = curve
        .noisy
        .iter()
        .filter_map(|p| {
            let (c, s) = p.imagenet_c()?;
            (c.is_benchmark() == benchmark).then(|| {
                (
                    IMAGENET_C.iter().position(|x| *x == c).unwrap_or(0),
                    SeverityError {
                        corruption: c.name().to_string(),
                        severity: s,
                        error: p.error(),
                    },
                )
            })
        })
        .collect();
    corrupted.sort_by_key(|(i, e)| (*i, e.severity));
    ModelErrors {
        clean: 1.0 - curve.clean,
        corrupted: corrupted.into_iter().map(|(_, e)| e).collect(),
    }
}

/// `robustness_ce` and `robustness_mce`, or notes saying why they are not computed.
fn corruption_errors(
    curves: &[Curve],
    reference: Option<&str>,
    out: &mut Output,
) -> Result<(), StageError> {
    let has_c = |c: &Curve| c.noisy.iter().any(|p| p.imagenet_c().is_some());
    let measured: Vec<&Curve> = curves.iter().filter(|c| has_c(c)).collect();
    let others: BTreeSet<&str> = curves
        .iter()
        .flat_map(|c| &c.noisy)
        .filter(|p| p.side == Side::Image && p.imagenet_c().is_none())
        .map(|p| p.variant.as_str())
        .collect();
    if !others.is_empty() {
        let shown: Vec<&str> = others.iter().take(5).copied().collect();
        out.note(format!(
            "robustness: image variants that are not ImageNet-C corruptions at severities 1-5 \
             ({}{}) have their errors in robustness_errors but are left out of CE and mCE",
            shown.join(", "),
            if others.len() > 5 { ", ..." } else { "" }
        ));
    }
    if curves
        .iter()
        .any(|c| c.noisy.iter().any(|p| p.side == Side::Text))
    {
        out.note(
            "robustness: text variants have their errors in robustness_errors (side text) and \
             their own effective robustness; CE and mCE are ImageNet-C's summaries of image \
             corruptions and are not computed for them",
        );
    }
    if measured.is_empty() {
        return Ok(());
    }
    let models: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for c in &measured {
            if !v.contains(&c.model.as_str()) {
                v.push(&c.model);
            }
        }
        v
    };
    let Some(reference) = reference else {
        out.note(format!(
            "robustness: CE and mCE are not computed: they are relative to a reference model; \
             set analysis.robustness.reference to one of the study's models ({})",
            models.join(", ")
        ));
        return Ok(());
    };
    if models.len() < 2 {
        out.note(format!(
            "robustness: CE and mCE are not computed: they compare models with the reference \
             model, and the study has one model with ImageNet-C corruptions ({})",
            models.join(", ")
        ));
        return Ok(());
    }
    let benchmark: BTreeSet<Corruption> = measured
        .iter()
        .flat_map(|c| &c.noisy)
        .filter_map(|p| p.imagenet_c().map(|x| x.0))
        .filter(|c| c.is_benchmark())
        .collect();
    let total = IMAGENET_C.iter().filter(|c| c.is_benchmark()).count();
    if !benchmark.is_empty() && benchmark.len() < total {
        let missing: Vec<&str> = IMAGENET_C
            .iter()
            .filter(|c| c.is_benchmark() && !benchmark.contains(c))
            .map(|c| c.name())
            .collect();
        out.note(format!(
            "robustness: mCE is the mean over the {} benchmark corruptions the study measured, \
             not ImageNet-C's {total} (missing: {}); compare it only with studies of the same \
             corruptions",
            benchmark.len(),
            missing.join(", ")
        ));
    }
    let mut ce_rows: Vec<(String, String, &'static str, core::CorruptionError)> = Vec::new();
    let mut mce_rows: Vec<(
        String,
        String,
        &'static str,
        usize,
        core::CorruptionErrorSummary,
    )> = Vec::new();
    let tasks: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for c in &measured {
            if !v.contains(&c.task.as_str()) {
                v.push(&c.task);
            }
        }
        v
    };
    for task in tasks {
        let Some(ref_curve) = measured
            .iter()
            .find(|c| c.model == reference && c.task == task)
        else {
            out.note(format!(
                "robustness: {task}: CE and mCE are not computed: the reference model \
                 {reference} has no {task} errors under ImageNet-C corruptions"
            ));
            continue;
        };
        for curve in measured.iter().filter(|c| c.task == task) {
            for (benchmark, group) in [(true, "benchmark"), (false, "held_out")] {
                let mine = imagenet_c_errors(curve, benchmark);
                if mine.corrupted.is_empty() {
                    continue;
                }
                let theirs = imagenet_c_errors(ref_curve, benchmark);
                match core::corruption_errors(&mine, &theirs) {
                    Ok(summary) => {
                        // The reference's errors are what make a ratio undefined: one note for
                        // every model.
                        for n in &summary.notes {
                            out.note(format!(
                                "robustness: {task} ({group} corruptions) against {reference}: {n}"
                            ));
                        }
                        for c in &summary.per_corruption {
                            ce_rows.push((curve.model.clone(), task.to_string(), group, c.clone()));
                        }
                        let n = summary.per_corruption.len();
                        mce_rows.push((curve.model.clone(), task.to_string(), group, n, summary));
                    }
                    Err(e) => out.note(format!(
                        "robustness: {} / {task} ({group}): CE not computed against \
                         {reference}: {e}",
                        curve.model
                    )),
                }
            }
        }
    }
    if !ce_rows.is_empty() {
        let r = |f: fn(&core::CorruptionError) -> Option<f64>| {
            Column::Float(ce_rows.iter().map(|(_, _, _, c)| f(c)).collect())
        };
        out.table(
            Table::new("robustness_ce")
                .text("model", ce_rows.iter().map(|r| r.0.clone()))
                .text("task", ce_rows.iter().map(|r| r.1.clone()))
                .text("reference", ce_rows.iter().map(|_| reference.to_string()))
                .text("group", ce_rows.iter().map(|r| r.2.to_string()))
                .text("corruption", ce_rows.iter().map(|r| r.3.corruption.clone()))
                .int(
                    "severities",
                    ce_rows.iter().map(|r| r.3.severities.len() as i64),
                )
                .float("error_sum", ce_rows.iter().map(|r| r.3.error_sum))
                .float(
                    "reference_error_sum",
                    ce_rows.iter().map(|r| r.3.reference_error_sum),
                )
                .column("ce", r(|c| c.ce))
                .float(
                    "degradation_sum",
                    ce_rows.iter().map(|r| r.3.degradation_sum),
                )
                .float(
                    "reference_degradation_sum",
                    ce_rows.iter().map(|r| r.3.reference_degradation_sum),
                )
                .column("relative_ce", r(|c| c.relative_ce)),
        )?;
        out.table(
            Table::new("robustness_mce")
                .text("model", mce_rows.iter().map(|r| r.0.clone()))
                .text("task", mce_rows.iter().map(|r| r.1.clone()))
                .text("reference", mce_rows.iter().map(|_| reference.to_string()))
                .text("group", mce_rows.iter().map(|r| r.2.to_string()))
                .int("corruptions", mce_rows.iter().map(|r| r.3 as i64))
                .column(
                    "mce",
                    Column::Float(mce_rows.iter().map(|r| r.4.mce).collect()),
                )
                .column(
                    "relative_mce",
                    Column::Float(mce_rows.iter().map(|r| r.4.relative_mce).collect()),
                ),
        )?;
    }
    Ok(())
}

/// `robustness_effective`: per (task, side), each model's shifted accuracy (the mean over the
/// variants every model was measured on) against the line through the models.
fn effective_robustness(curves: &[Curve], out: &mut Output) -> Result<(), StageError> {
    struct Row {
        task: String,
        side: &'static str,
        variants: usize,
        epsilon: f64,
        fit: core::EffectiveRobustness,
    }
    let models: BTreeSet<&str> = curves
        .iter()
        .filter(|c| !c.noisy.is_empty())
        .map(|c| c.model.as_str())
        .collect();
    if models.len() < 3 {
        out.note(format!(
            "robustness: effective robustness is not computed: it fits a line through the \
             models' clean and shifted accuracies and needs at least 3 models; the study has {} \
             ({})",
            models.len(),
            models.iter().copied().collect::<Vec<_>>().join(", ")
        ));
        return Ok(());
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut tasks: Vec<&str> = Vec::new();
    for c in curves {
        if !tasks.contains(&c.task.as_str()) {
            tasks.push(&c.task);
        }
    }
    for task in tasks {
        for side in [Side::Image, Side::Text] {
            let here: Vec<&Curve> = curves
                .iter()
                .filter(|c| c.task == task && c.noisy.iter().any(|p| p.side == side))
                .collect();
            if here.is_empty() {
                continue;
            }
            let variants_of = |c: &Curve| -> BTreeSet<String> {
                c.noisy
                    .iter()
                    .filter(|p| p.side == side)
                    .map(|p| p.variant.clone())
                    .collect()
            };
            let mut common = variants_of(here[0]);
            let mut all = common.clone();
            for c in &here[1..] {
                let v = variants_of(c);
                common = common.intersection(&v).cloned().collect();
                all.extend(v);
            }
            let what = format!("{task}, {} variants", side.name());
            if here.len() < 3 {
                out.note(format!(
                    "robustness: effective robustness ({what}) is not computed: {} model(s) \
                     were measured, it needs at least 3",
                    here.len()
                ));
                continue;
            }
            if common.is_empty() {
                out.note(format!(
                    "robustness: effective robustness ({what}) is not computed: no variant was \
                     measured on every model"
                ));
                continue;
            }
            if common.len() < all.len() {
                out.note(format!(
                    "robustness: effective robustness ({what}) averages the {} variants every \
                     model was measured on; {} others are left out",
                    common.len(),
                    all.len() - common.len()
                ));
            }
            let pairs: Vec<AccuracyPair> = here
                .iter()
                .map(|c| {
                    let acc: Vec<f64> = c
                        .noisy
                        .iter()
                        .filter(|p| p.side == side && common.contains(&p.variant))
                        .map(|p| p.accuracy)
                        .collect();
                    AccuracyPair {
                        model: c.model.clone(),
                        clean: c.clean,
                        shifted: acc.iter().sum::<f64>() / acc.len() as f64,
                    }
                })
                .collect();
            // Accuracies of 0 or 1 are clamped to half an item of the smallest evaluation.
            let n = here.iter().filter_map(|c| c.clean_n).min().unwrap_or(1000);
            let epsilon = 0.5 / (n.max(2) as f64);
            match core::effective_robustness(&pairs, epsilon) {
                Ok(fit) => {
                    if fit.clamped > 0 {
                        out.note(format!(
                            "robustness: effective robustness ({what}): {} accuracies of 0 or 1 \
                             were clamped to {epsilon} from the edge before the logit",
                            fit.clamped
                        ));
                    }
                    rows.push(Row {
                        task: task.to_string(),
                        side: side.name(),
                        variants: common.len(),
                        epsilon,
                        fit,
                    });
                }
                Err(e) => out.note(format!(
                    "robustness: effective robustness ({what}) is not computed: {e}"
                )),
            }
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let flat: Vec<(&Row, &core::ModelResidual)> = rows
        .iter()
        .flat_map(|r| r.fit.models.iter().map(move |m| (r, m)))
        .collect();
    out.table(
        Table::new("robustness_effective")
            .text("model", flat.iter().map(|(_, m)| m.model.clone()))
            .text("task", flat.iter().map(|(r, _)| r.task.clone()))
            .text("side", flat.iter().map(|(r, _)| r.side.to_string()))
            .int("variants", flat.iter().map(|(r, _)| r.variants as i64))
            .float("clean_accuracy", flat.iter().map(|(_, m)| m.clean))
            .float("shifted_accuracy", flat.iter().map(|(_, m)| m.shifted))
            .float("predicted", flat.iter().map(|(_, m)| m.predicted))
            .float(
                "effective_robustness",
                flat.iter().map(|(_, m)| m.effective_robustness),
            )
            .float("logit_residual", flat.iter().map(|(_, m)| m.logit_residual))
            .column(
                "effective_robustness_loo",
                Column::Float(
                    flat.iter()
                        .map(|(_, m)| m.effective_robustness_loo)
                        .collect(),
                ),
            )
            .float("slope", flat.iter().map(|(r, _)| r.fit.slope))
            .float("intercept", flat.iter().map(|(r, _)| r.fit.intercept))
            .column(
                "r_squared",
                Column::Float(flat.iter().map(|(r, _)| r.fit.r_squared).collect()),
            )
            .float("epsilon", flat.iter().map(|(r, _)| r.epsilon)),
    )?;
    Ok(())
}

fn level_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The heatmaps and family charts of the main task: zero-shot when measured, else text→image
/// retrieval, else image→text.
fn error_plots(cx: &Context<'_>, curves: &[Curve], out: &mut Output) {
    let Some(task) = ["zero_shot", "text_to_image", "image_to_text"]
        .iter()
        .find_map(|t| {
            curves
                .iter()
                .find(|c| c.task.starts_with(t) && !c.noisy.is_empty())
                .map(|c| c.task.clone())
        })
    else {
        return;
    };
    let main: Vec<&Curve> = curves
        .iter()
        .filter(|c| c.task == task && !c.noisy.is_empty())
        .collect();
    let several = main.len() > 1;
    for side in [Side::Image, Side::Text] {
        let points: Vec<&Point> = main
            .iter()
            .flat_map(|c| &c.noisy)
            .filter(|p| p.side == side)
            .collect();
        if points.is_empty() {
            continue;
        }
        // Corruptions in ImageNet-C's order, then the others as measured.
        let mut corruptions: Vec<String> = Vec::new();
        for p in &points {
            if !corruptions.contains(&p.corruption) {
                corruptions.push(p.corruption.clone());
            }
        }
        corruptions.sort_by_key(|r| {
            IMAGENET_C
                .iter()
                .position(|c| c.name() == r)
                .unwrap_or(IMAGENET_C.len())
        });
        let (what, axis) = match side {
            Side::Image => ("image corruption", "severity"),
            Side::Text => ("text perturbation", "rate"),
        };
        // The heatmap's cells: ImageNet-C corruptions by severity (other image noises have
        // levels of their own, and the charts), or text perturbations by rate.
        let in_heatmap = |p: &Point| side == Side::Text || p.imagenet_c().is_some();
        let rows: Vec<String> = corruptions
            .iter()
            .filter(|c| points.iter().any(|p| &p.corruption == *c && in_heatmap(p)))
            .cloned()
            .collect();
        let mut levels: Vec<f64> = Vec::new();
        for s in points
            .iter()
            .filter(|p| in_heatmap(p))
            .filter_map(|p| p.severity)
        {
            if !levels.contains(&s) {
                levels.push(s);
            }
        }
        levels.sort_by(f64::total_cmp);
        let cols: Vec<String> = levels.iter().map(|v| level_label(*v)).collect();
        for c in main
            .iter()
            .filter(|_| !rows.is_empty() && !levels.is_empty())
        {
            // A cell a model was not measured in stays NaN (drawn black).
            let mut values = vec![f64::NAN; rows.len() * levels.len()];
            for p in c.noisy.iter().filter(|p| p.side == side && in_heatmap(p)) {
                let (Some(r), Some(l)) = (
                    rows.iter().position(|x| *x == p.corruption),
                    p.severity.and_then(|s| levels.iter().position(|x| *x == s)),
                ) else {
                    continue;
                };
                values[r * levels.len() + l] = p.error();
            }
            let stem = cx.plots_dir.join(format!(
                "robustness_heatmap_{}_{}",
                side.name(),
                slug(&c.model)
            ));
            out.plotted(crate::chart::heatmap(
                &stem,
                &format!("{}, {} noise: {task} error", c.model, side.name()),
                &rows,
                &cols,
                &values,
                (0.0, 1.0),
            ));
        }
        // Error against severity, one chart per family, a line per (model, corruption).
        let mut families: Vec<String> = Vec::new();
        for p in &points {
            let f = p.family();
            if !families.contains(&f) {
                families.push(f);
            }
        }
        for family in families {
            let mut series = Vec::new();
            for c in &main {
                for corruption in &corruptions {
                    let mut line: Vec<(f64, f64)> = c
                        .noisy
                        .iter()
                        .filter(|p| {
                            p.side == side && &p.corruption == corruption && p.family() == family
                        })
                        .filter_map(|p| p.severity.map(|s| (s, p.error())))
                        .collect();
                    if line.is_empty() {
                        continue;
                    }
                    line.push((0.0, 1.0 - c.clean));
                    line.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let name = if several {
                        format!("{}: {corruption}", c.model)
                    } else {
                        corruption.clone()
                    };
                    series.push(Series { name, points: line });
                }
            }
            if series.is_empty() {
                continue;
            }
            let stem = cx.plots_dir.join(format!(
                "robustness_family_{}_{}",
                side.name(),
                slug(&family)
            ));
            out.plotted(crate::chart::lines(
                &stem,
                &format!("{task} error against {axis}: {family} ({what}s)"),
                axis,
                "error",
                &series,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(model: &str, variant: &str, text_variant: &str, value: f64) -> Metric {
        Metric {
            model: model.into(),
            variant: variant.into(),
            text_variant: text_variant.into(),
            stage: "zero_shot",
            kind: "templates".into(),
            metric: "top1".into(),
            k: Some(1),
            value,
        }
    }

    #[test]
    fn curves_pair_clean_with_image_and_text_variants() {
        let metrics = vec![
            metric("a", "clean", "clean", 0.9),
            metric("a", "contrast-3", "clean", 0.5),
            metric("a", "gaussian-0.1", "clean", 0.7),
            metric("a", "clean", "char_swap-0.1", 0.8),
            // No clean measurement: no curve.
            metric("b", "contrast-3", "clean", 0.4),
        ];
        let curves = error_curves(&metrics);
        assert_eq!(curves.len(), 1);
        let c = &curves[0];
        assert_eq!(
            (c.model.as_str(), c.task.as_str(), c.clean),
            ("a", "zero_shot", 0.9)
        );
        let sides: Vec<(Side, &str, Option<f64>)> = c
            .noisy
            .iter()
            .map(|p| (p.side, p.corruption.as_str(), p.severity))
            .collect();
        assert_eq!(
            sides,
            [
                (Side::Image, "contrast", Some(3.0)),
                (Side::Image, "gaussian", Some(0.1)),
                (Side::Text, "char_swap", Some(0.1)),
            ]
        );
        assert_eq!(c.noisy[0].imagenet_c(), Some((Corruption::Contrast, 3)));
        assert_eq!(c.noisy[1].imagenet_c(), None);
        assert_eq!(c.noisy[2].imagenet_c(), None);
        assert_eq!(c.noisy[0].family(), "digital");
        assert_eq!(c.noisy[2].family(), "characters");
        let e = imagenet_c_errors(c, true);
        assert_eq!(e.corrupted.len(), 1);
        assert!((e.clean - 0.1).abs() < 1e-12 && (e.corrupted[0].error - 0.5).abs() < 1e-12);
    }

    #[test]
    fn the_reference_must_be_a_model_of_the_study() {
        let facts = Facts {
            models: vec!["texture-clip".into(), "baseline".into()],
            ..Facts::default()
        };
        let s = |r: &str| RobustnessSettings {
            reference: Some(r.into()),
        };
        assert!(s("baseline").check(&facts).is_ok());
        let e = s("texture-clp").check(&facts).unwrap_err();
        assert_eq!(e.key, "reference");
        assert!(
            e.message.contains("did you mean `texture-clip`"),
            "{}",
            e.message
        );
        assert!(s(" ").check(&facts).is_err());
        // Models not known yet (`clipflow analyze` before the store is open): checked later.
        assert!(s("x").check(&Facts::default()).is_ok());
    }
}
