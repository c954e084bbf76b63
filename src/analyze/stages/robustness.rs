//! `robustness`: every metric the other stages measured on a noisy variant, beside its value on
//! the clean images and the drop, and one chart per (model, noise family) of the main metrics
//! against the noise level. On by default: it only reads what the other stages recorded.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::slug;
use crate::analyze::stage::{
    noise_of, Context, Metric, Output, Section, Set, Stage, StageConfig, StageError,
};
use crate::chart::Series;
use crate::store::{Column, Table};

/// `analysis.robustness` (no settings yet).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RobustnessSettings {}

impl StageConfig for RobustnessSettings {
    const KEY: &'static str = "robustness";
    const SECTION: Section = Section {
        anchor: "robustness",
        title: "Robustness under noise",
        about: "Every metric on every noisy variant beside its clean value, and the drop.",
        prefixes: &["robustness"],
        summaries: &["robustness"],
    };
    const ON_BY_DEFAULT: bool = true;

    fn start(self) -> Box<dyn Stage> {
        Box::new(RobustnessStage)
    }
}

struct RobustnessStage;

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

/// Every metric of every noisy variant beside its clean value and the drop (clean − noisy).
fn robustness_table(metrics: &[Metric]) -> Option<Table> {
    let clean: HashMap<MetricKey<'_>, f64> = metrics
        .iter()
        .filter(|m| m.variant == "clean")
        .map(|m| (key(m), m.value))
        .collect();
    let rows: Vec<(&Metric, f64)> = metrics
        .iter()
        .filter_map(|m| clean.get(&key(m)).map(|c| (m, *c)))
        .collect();
    if rows.is_empty() || rows.iter().all(|(m, _)| m.variant == "clean") {
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

/// One chart per (model, noise family): the main metrics against the noise level.
fn curves(cx: &Context<'_>, metrics: &[Metric], out: &mut Output) {
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
