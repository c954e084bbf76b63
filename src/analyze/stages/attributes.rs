//! `attributes`: how boolean or categorical metadata (`dataset.attribute_columns`, or any
//! Parquet with an `id` column) lines up with the principal components of the clean images,
//! and how well a linear probe predicts it beside the majority-class baseline.
//!
//! An attribute with two distinct values is boolean (the "true" side is `true`/`yes`, the
//! larger number, or the later string, so CelebA's -1/1 works); with more it is categorical;
//! with more distinct values than half the images it is an identifier and is skipped. Each
//! probe's train/test split goes to `samples` (role `train:<attribute>` / `test:<attribute>`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::probe::default_test_fraction;
use super::{embeddings, slug};
use crate::analysis::probe::{self, LinearProbeOptions};
use crate::analysis::{attributes, pca, Embeddings};
use crate::analyze::stage::{
    Context, Facts, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::store::{Column, Table};

/// `analysis.attributes`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttributesSettings {
    /// Columns to probe; default every column of the attributes file.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Parquet with an `id` column and the attributes; default `attributes.parquet` next to
    /// the store (what `clipflow run` writes from `dataset.attribute_columns`).
    #[serde(default)]
    pub path: Option<String>,
    /// Principal components correlated with each attribute.
    #[serde(default = "default_components")]
    pub components: usize,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
}

impl Default for AttributesSettings {
    fn default() -> Self {
        AttributesSettings {
            columns: None,
            path: None,
            components: default_components(),
            test_fraction: default_test_fraction(),
        }
    }
}

fn default_components() -> usize {
    10
}

impl StageConfig for AttributesSettings {
    const KEY: &'static str = "attributes";
    const SECTION: Section = Section {
        anchor: "attributes",
        title: "Attributes",
        about: "How metadata attributes line up with the principal components, and how well a \
                linear probe predicts them.",
        prefixes: &["attribute"],
        summaries: &["attribute_probe"],
    };

    fn check(&self, _: &Facts) -> Result<(), SettingError> {
        if self.components == 0 {
            return Err(SettingError::new("components", "must be at least 1"));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(SettingError::new(
                "test_fraction",
                "must be strictly between 0 and 1",
            ));
        }
        if self.columns.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(SettingError::new(
                "columns",
                "list at least one column, or leave it out",
            ));
        }
        if let Some(p) = &self.path {
            if !std::path::Path::new(p).is_file() {
                return Err(SettingError::new("path", format!("{p} does not exist")));
            }
        }
        Ok(())
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(AttributesStage {
            settings: self,
            table: None,
        })
    }
}

struct AttributesStage {
    settings: AttributesSettings,
    /// The attribute table and where it came from, read at the first clean set.
    table: Option<Option<(Table, PathBuf)>>,
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

impl AttributesStage {
    /// The attribute table: `path`, else `attributes.parquet` beside the store.
    fn load(&mut self, cx: &Context<'_>) -> Result<Option<&(Table, PathBuf)>, StageError> {
        Ok(super::attribute_table(
            &mut self.table,
            self.settings.path.as_deref(),
            cx.store,
        )?)
    }
}

impl Stage for AttributesStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        if !set.is_clean() {
            return Ok(());
        }
        let ac = self.settings.clone();
        let model = set.model.name;
        let clean = set.images;
        let Some((table, path)) = self.load(cx)? else {
            out.note(format!(
                "{model}: attribute probing skipped: no attributes file (set \
                 dataset.attribute_columns, or analysis.attributes.path)"
            ));
            return Ok(());
        };
        let Some(ids) = table.texts("id") else {
            out.note(format!(
                "{model}: attribute probing skipped: {} has no text `id` column",
                path.display()
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
            out.note(format!(
                "{model}: attribute probing skipped: too few images"
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
        let mut samples = (Vec::new(), Vec::new());
        let mut heat_rows: Vec<String> = Vec::new();
        let mut heat: Vec<f64> = Vec::new();
        for name in &columns {
            let Some((_, column)) = table.columns.iter().find(|(n, _)| n == name) else {
                out.note(format!(
                    "{model}: attribute {name}: no such column in {}",
                    path.display()
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
                out.note(format!(
                    "{model}: attribute {name} skipped: fewer than two distinct values"
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
                out.note(format!(
                    "{model}: attribute {name} skipped: {n_classes} distinct values for {} \
                     images looks like an identifier, not a category",
                    clean.len()
                ));
                continue;
            }
            let bools: Vec<Option<bool>> = ids_of.iter().map(|v| v.map(|v| v == 1)).collect();
            let values_arg = match &kind {
                AttributeKind::Boolean { .. } => attributes::AttributeValues::Boolean(&bools),
                AttributeKind::Categorical { .. } => {
                    attributes::AttributeValues::Categorical(&ids_of)
                }
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
            let split = probe::stratified_split(&y, ac.test_fraction, cx.seed)?;
            if split.train.is_empty() || split.test.is_empty() {
                out.note(format!(
                    "{model}: attribute {name}: linear probe skipped: too few images with a \
                     value for a train/test split"
                ));
                continue;
            }
            for (rows, role) in [(&split.train, "train"), (&split.test, "test")] {
                for &i in rows {
                    samples.0.push(clean.ids[known[i]].clone());
                    samples.1.push(format!("{role}:{name}"));
                }
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
        let n = samples.0.len();
        out.table(
            Table::new("samples")
                .text("stage", vec!["attributes"; n])
                .text("model", vec![model.to_string(); n])
                .text("id", samples.0)
                .text("role", samples.1),
        )?;
        let rows = corr.0.len();
        if rows > 0 {
            out.table(
                Table::new("attribute_components")
                    .text("model", vec![model.to_string(); rows])
                    .text("attribute", corr.0)
                    .text("kind", corr.1)
                    .int("component", corr.2)
                    .column("correlation", Column::Float(corr.3))
                    .int("n", corr.4),
            )?;
            let comps: Vec<String> = (1..=k).map(|c| format!("PC{c}")).collect();
            out.plotted(crate::chart::heatmap(
                &cx.plots_dir
                    .join(format!("attribute_components_{}", slug(model))),
                &format!("{model}: |correlation| of attributes with principal components"),
                &heat_rows,
                &comps,
                &heat,
                (0.0, 1.0),
            ));
        }
        let rows = probes.0.len();
        out.table(
            Table::new("attribute_probe")
                .text("model", vec![model.to_string(); rows])
                .text("attribute", probes.0)
                .text("kind", probes.1)
                .int("classes", probes.2)
                .int("n_train", probes.3)
                .int("n_test", probes.4)
                .float("accuracy", probes.5)
                .float("majority_baseline", probes.6),
        )?;
        Ok(())
    }
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
}
