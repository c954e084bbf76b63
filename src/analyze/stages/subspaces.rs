//! `subspaces`: principal angles between the classes' top-r PCA subspaces of the clean
//! images (SciPy's `subspace_angles`): small angles mean classes vary along shared directions.

use serde::{Deserialize, Serialize};

use super::slug;
use crate::analysis::{subspace, Embeddings, Labels};
use crate::analyze::stage::{
    Context, Facts, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::store::Table;

/// `analysis.subspaces`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubspaceSettings {
    /// Dimension r of each class's PCA basis.
    #[serde(default = "default_rank")]
    pub rank: usize,
}

impl Default for SubspaceSettings {
    fn default() -> Self {
        SubspaceSettings {
            rank: default_rank(),
        }
    }
}

fn default_rank() -> usize {
    5
}

impl StageConfig for SubspaceSettings {
    const KEY: &'static str = "subspaces";
    const SECTION: Section = Section {
        anchor: "subspaces",
        title: "Class subspaces",
        about: "Principal angles between the classes' top-r PCA subspaces: small angles mean \
                classes vary along shared directions.",
        prefixes: &["subspace"],
        summaries: &["subspace_angles"],
    };

    fn check(&self, _: &Facts) -> Result<(), SettingError> {
        if self.rank == 0 {
            return Err(SettingError::new("rank", "must be at least 1"));
        }
        Ok(())
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(SubspaceStage { settings: self })
    }
}

struct SubspaceStage {
    settings: SubspaceSettings,
}

impl Stage for SubspaceStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        if !set.is_clean() {
            return Ok(());
        }
        let rank = self.settings.rank;
        let model = set.model.name;
        let clean = set.images;
        let rows: Vec<usize> = (0..clean.len())
            .filter(|&i| clean.labels[i].is_some())
            .collect();
        let names: Vec<&str> = rows
            .iter()
            .map(|&i| clean.labels[i].as_deref().unwrap_or_default())
            .collect();
        let labels = Labels::from_strings(&names);
        if labels.names.len() < 2 {
            out.note(format!(
                "{model}: subspace angles skipped: fewer than two labelled classes"
            ));
            return Ok(());
        }
        let x: Vec<f32> = rows
            .iter()
            .flat_map(|&i| clean.row(i).iter().copied())
            .collect();
        let a = subspace::subspace_angles(Embeddings::new(&x, clean.dim)?, &labels.ids, rank)?;
        // Two r-dimensional subspaces of a D-dimensional space share 2r − D dimensions at least:
        // past 2r = D the smallest angles are 0 whatever the data (and at 2r = D the pair spans
        // the whole space), so the angles say nothing about the classes.
        if 2 * rank >= clean.dim || a.trivially_zero {
            out.note(format!(
                "{model}: subspace angles: 2·rank = {} ≥ dimension {}: class subspaces this \
                 large fill the space, so their smallest angles are trivially 0; lower \
                 subspaces.rank",
                2 * rank,
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
                cols.0.push(class_name(i));
                cols.1.push(class_name(j));
                cols.2.push(a.ranks[i] as i64);
                cols.3.push(a.ranks[j] as i64);
                cols.4.push(a.mean_degrees[i * nc + j]);
                cols.5.push(a.min_degrees[i * nc + j]);
                cols.6.push(
                    angles
                        .iter()
                        .map(|r| format!("{:.4}", r.to_degrees()))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
        }
        let n = cols.0.len();
        out.table(
            Table::new("subspace_angles")
                .text("model", vec![model.to_string(); n])
                .text("class_a", cols.0)
                .text("class_b", cols.1)
                .int("rank_a", cols.2)
                .int("rank_b", cols.3)
                .float("mean_angle_degrees", cols.4)
                .float("smallest_angle_degrees", cols.5)
                .text("angles_degrees", cols.6),
        )?;
        let names: Vec<String> = (0..nc).map(class_name).collect();
        out.plotted(crate::chart::heatmap(
            &cx.plots_dir
                .join(format!("subspace_angles_{}", slug(model))),
            &format!(
                "{model}: mean principal angle between class subspaces (rank {rank}), degrees"
            ),
            &names,
            &names,
            &a.mean_degrees,
            (0.0, 90.0),
        ));
        Ok(())
    }
}
