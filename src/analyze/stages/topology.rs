//! `topology`: Vietoris–Rips persistence (H0, H1) of a seeded sample of images per variant
//! (the same images in every variant), and the bottleneck and Wasserstein distances of every
//! noisy diagram to the clean one.
//!
//! Memory: the sample's ids and the clean diagrams, nothing else of the clean set.

use serde::{Deserialize, Serialize};

use super::{rows_by_id, sample_ids, slug, wanted};
use crate::analysis::persistence::{self, PersistenceOptions};
use crate::analysis::{Distance, Embeddings};
use crate::analyze::stage::{
    Context, Facts, Model, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::chart::ScatterGroup;
use crate::store::Table;

/// Distance used by the topology stage.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    #[default]
    Euclidean,
    Cosine,
}

/// `analysis.topology`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopologySettings {
    /// Seeded sample size (the same images in every variant).
    #[serde(default = "default_points")]
    pub max_points: usize,
    #[serde(default)]
    pub metric: MetricName,
    /// Highest homology dimension, 0 or 1.
    #[serde(default = "default_max_dim")]
    pub max_dim: usize,
    /// Image variants to compare with the clean one; default every variant.
    #[serde(default)]
    pub variants: Option<Vec<String>>,
}

impl Default for TopologySettings {
    fn default() -> Self {
        TopologySettings {
            max_points: default_points(),
            metric: MetricName::Euclidean,
            max_dim: default_max_dim(),
            variants: None,
        }
    }
}

fn default_points() -> usize {
    500
}
fn default_max_dim() -> usize {
    1
}

/// Ripser's memory is O(n²) distances: past this many points a run needs gigabytes.
const MAX_POINTS: usize = 10_000;

impl StageConfig for TopologySettings {
    const KEY: &'static str = "topology";
    const SECTION: Section = Section {
        anchor: "topology",
        title: "Topology",
        about: "Vietoris–Rips persistence diagrams (H0: components, H1: loops) of a seeded \
                sample, and how far each noisy diagram moves from the clean one.",
        prefixes: &["persistence"],
        summaries: &["persistence_distances"],
    };

    fn check(&self, facts: &Facts) -> Result<(), SettingError> {
        if self.max_dim > 1 {
            return Err(SettingError::new("max_dim", "must be 0 or 1 (H0, H1)"));
        }
        if self.max_points < 3 {
            return Err(SettingError::new("max_points", "must be at least 3"));
        }
        if self.max_points > MAX_POINTS {
            return Err(SettingError::new(
                "max_points",
                format!("at most {MAX_POINTS} (persistence holds all n² distances)"),
            ));
        }
        super::check_variants(self.variants.as_deref(), facts)
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(TopologyStage {
            settings: self,
            sample: Vec::new(),
            clean: None,
        })
    }
}

struct TopologyStage {
    settings: TopologySettings,
    sample: Vec<String>,
    /// The clean diagrams of the current model, which noisy ones are measured against.
    clean: Option<Vec<persistence::Diagram>>,
}

impl Stage for TopologyStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        let tc = &self.settings;
        let model = set.model.name;
        let images = set.images;
        if set.is_clean() {
            self.clean = None;
            self.sample = sample_ids(images, tc.max_points, cx.seed ^ 0x7090_1091);
            let n = self.sample.len();
            out.table(
                Table::new("samples")
                    .text("stage", vec!["topology"; n])
                    .text("model", vec![model.to_string(); n])
                    .text("id", self.sample.iter().cloned())
                    .text("role", vec!["persistence"; n]),
            )?;
        }
        if !wanted(tc.variants.as_deref(), &images.variant, true) {
            return Ok(());
        }
        let (rows, x) = rows_by_id(images, &self.sample);
        if rows.len() < 3 {
            if set.is_clean() {
                out.note(format!("{model}: topology skipped: fewer than 3 images"));
            }
            return Ok(());
        }
        let opts = PersistenceOptions {
            max_dim: tc.max_dim,
            threshold: None,
            metric: match tc.metric {
                MetricName::Euclidean => Distance::Euclidean,
                MetricName::Cosine => Distance::Cosine,
            },
        };
        let diagrams = persistence::rips_persistence(Embeddings::new(&x, images.dim)?, &opts)?;
        for d in &diagrams {
            let nb = d.bars.len();
            out.table(
                Table::new("persistence_diagrams")
                    .text("model", vec![model.to_string(); nb])
                    .text("variant", vec![images.variant.clone(); nb])
                    .int("dim", vec![d.dim as i64; nb])
                    .int("points", vec![rows.len() as i64; nb])
                    .float("birth", d.bars.iter().map(|b| b.birth))
                    .float("death", d.bars.iter().map(|b| b.death)),
            )?;
        }
        let groups: Vec<ScatterGroup> = diagrams
            .iter()
            .map(|d| ScatterGroup {
                name: format!("H{}", d.dim),
                points: d.bars.iter().map(|b| (b.birth, b.death)).collect(),
            })
            .collect();
        out.plotted(crate::chart::persistence_diagram(
            &cx.plots_dir.join(format!(
                "persistence_{}_{}",
                slug(model),
                slug(&images.variant)
            )),
            &format!(
                "{model}: {} images, Vietoris–Rips persistence ({} points)",
                images.variant,
                rows.len()
            ),
            &groups,
        ));
        if set.is_clean() {
            self.clean = Some(diagrams);
            return Ok(());
        }
        let Some(clean) = &self.clean else {
            return Ok(());
        };
        let mut cols = (Vec::new(), Vec::new(), Vec::new());
        for (a, b) in clean.iter().zip(&diagrams) {
            // Both distances leave out the bars that never die, as persim does.
            cols.0.push(a.dim as i64);
            cols.1.push(persistence::bottleneck(&a.bars, &b.bars)?);
            cols.2.push(persistence::wasserstein(&a.bars, &b.bars)?);
        }
        let n = cols.0.len();
        out.table(
            Table::new("persistence_distances")
                .text("model", vec![model.to_string(); n])
                .text("variant", vec![images.variant.clone(); n])
                .int("dim", cols.0)
                .float("bottleneck_to_clean", cols.1)
                .float("wasserstein_to_clean", cols.2),
        )?;
        Ok(())
    }

    fn finish_model(
        &mut self,
        _: &Context<'_>,
        _: &Model<'_>,
        _: &mut Output,
    ) -> Result<(), StageError> {
        self.clean = None;
        self.sample.clear();
        Ok(())
    }
}
