//! `zero_shot`: classifies every image variant by its similarity to the class prompts (the
//! renormalised mean of each class's templates): top-1, top-5 (with at least five classes) and
//! mean per-class recall, per-class accuracy, the confusion matrix (and its heatmap for the
//! clean images), and every image's prediction.
//!
//! Predictions are the argmax of the cosine, which a positive logit scale (softmax) or a
//! sigmoid with bias (SigLIP) never changes. Two silent ways for the number to mean less than
//! it seems are said in the notes: classes whose prompts embed (nearly) identically, so that
//! telling them apart comes down to tie-breaking, and images whose best score several classes
//! share (top-1 then comes with its optimistic and pessimistic bounds).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{prompt_classes, slug};
use crate::analysis::Embeddings;
use crate::analyze::stage::{
    Context, Metric, Output, Section, Set, Stage, StageConfig, StageError,
};
use crate::store::{Column, Table};

/// Cosine between two class embeddings at or above which they are "near-identical".
const SAME_CLASS_COSINE: f64 = 0.9999;

/// `analysis.zero_shot` (no settings: it needs `texts.prompts`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotSettings {}

impl StageConfig for ZeroShotSettings {
    const KEY: &'static str = "zero_shot";
    const SECTION: Section = Section {
        anchor: "zero-shot",
        title: "Zero-shot classification",
        about: "Accuracy of classifying images by their similarity to the class prompts.",
        prefixes: &["zero_shot"],
        summaries: &["zero_shot"],
    };

    fn start(self) -> Box<dyn Stage> {
        Box::new(ZeroShotStage)
    }
}

struct ZeroShotStage;

impl Stage for ZeroShotStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        let model = set.model.name;
        let images = set.images;
        let Some(prompts) = set.model.prompts else {
            if set.is_clean() {
                out.note(format!(
                    "{model}: zero-shot skipped: the store has no class prompts (texts.prompts)"
                ));
            }
            return Ok(());
        };
        let (classes, class_vectors) = prompt_classes(prompts)?;
        let class_index: HashMap<&str, usize> = classes
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let nc = classes.names.len();
        if set.is_all_clean() {
            same_classes(model, &classes.names, &class_vectors, images.dim, out);
            if nc < 5 {
                out.note(format!(
                    "{model}: zero-shot top-5 is not reported: {nc} classes (it needs at least 5)"
                ));
            }
        }
        // Images whose label has no prompts cannot be scored; they are left out and counted.
        let rows: Vec<usize> = (0..images.len())
            .filter(|&i| {
                images.labels[i]
                    .as_deref()
                    .is_some_and(|l| class_index.contains_key(l))
            })
            .collect();
        if rows.is_empty() {
            if set.is_clean() {
                out.note(format!(
                    "{model}: zero-shot skipped: no image has a label that the prompts name"
                ));
            }
            return Ok(());
        }
        if rows.len() < images.len() && set.is_clean() {
            out.note(format!(
                "{model}: zero-shot: {} of {} images have no label among the prompt classes \
                 and are not scored",
                images.len() - rows.len(),
                images.len()
            ));
        }
        // Copy the scored rows only when some images are left out: at a million images the
        // copy would double the set's memory.
        let copied: Vec<f32>;
        let x: &[f32] = if rows.len() == images.len() {
            &images.vectors
        } else {
            copied = rows
                .iter()
                .flat_map(|&i| images.row(i).iter().copied())
                .collect();
            &copied
        };
        let y: Vec<usize> = rows
            .iter()
            .map(|&i| class_index[images.labels[i].as_deref().unwrap_or_default()])
            .collect();
        let z = crate::analysis::zero_shot::zero_shot(
            Embeddings::new(x, images.dim)?,
            Embeddings::new(&class_vectors, images.dim)?,
            &y,
        )?;
        let mut push = |metric: &str, k: Option<i64>, value: f64| {
            out.metric(Metric {
                model: model.to_string(),
                variant: images.variant.clone(),
                text_variant: set.text_variant().to_string(),
                stage: "zero_shot",
                kind: "templates".into(),
                metric: metric.to_string(),
                k,
                value,
            })
        };
        push("top1", Some(1), z.top1);
        push("mean_per_class_recall", None, z.mean_per_class_recall);
        if let Some(t5) = z.top5 {
            push("top5", Some(5), t5);
        }
        push("images", None, z.n_images as f64);
        push("tied_top1", None, z.tied_top1 as f64);
        if z.tied_top1 > 0 {
            push("top1_optimistic", Some(1), z.top1_optimistic);
            push("top1_pessimistic", Some(1), z.top1_pessimistic);
            out.note(format!(
                "{model} / {}: zero-shot: {} of {} images have their best score shared by two or \
                 more classes; top-1 is between {:.4} and {:.4} depending on how ties are broken \
                 (clipflow gives a tie to the first class in sorted order)",
                set.label(),
                z.tied_top1,
                z.n_images,
                z.top1_pessimistic,
                z.top1_optimistic
            ));
        }
        out.table(
            Table::new("zero_shot_per_class")
                .text("model", vec![model.to_string(); nc])
                .text("variant", vec![images.variant.clone(); nc])
                .text("text_variant", vec![set.text_variant().to_string(); nc])
                .text("class", classes.names.iter().cloned())
                .int("support", z.per_class.iter().map(|c| c.support as i64))
                .int("correct", z.per_class.iter().map(|c| c.correct as i64))
                .column(
                    "accuracy",
                    Column::Float(z.per_class.iter().map(|c| c.accuracy).collect()),
                ),
        )?;
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
        out.table(
            Table::new("zero_shot_confusion")
                .text("model", vec![model.to_string(); n])
                .text("variant", vec![images.variant.clone(); n])
                .text("text_variant", vec![set.text_variant().to_string(); n])
                .text("true_class", cells.0)
                .text("predicted_class", cells.1)
                .int("count", cells.2),
        )?;
        out.table(
            Table::new("zero_shot_predictions")
                .text("model", vec![model.to_string(); rows.len()])
                .text("variant", vec![images.variant.clone(); rows.len()])
                .text(
                    "text_variant",
                    vec![set.text_variant().to_string(); rows.len()],
                )
                .text("id", rows.iter().map(|&i| images.ids[i].clone()))
                .text("label", y.iter().map(|&c| classes.names[c].clone()))
                .text(
                    "predicted",
                    z.predictions.iter().map(|&c| classes.names[c].clone()),
                )
                .int("true_rank", z.true_rank.iter().map(|&r| r as i64)),
        )?;
        if set.is_all_clean() {
            // Row-normalised confusion of the clean images.
            let mut values: Vec<f64> = z.confusion.iter().map(|&c| c as f64).collect();
            for r in 0..nc {
                let total: f64 = values[r * nc..(r + 1) * nc].iter().sum();
                if total > 0.0 {
                    values[r * nc..(r + 1) * nc]
                        .iter_mut()
                        .for_each(|v| *v /= total);
                }
            }
            out.plotted(crate::chart::heatmap(
                &cx.plots_dir
                    .join(format!("zero_shot_confusion_{}", slug(model))),
                &format!("{model}: zero-shot confusion (rows: true class)"),
                &classes.names,
                &classes.names,
                &values,
                (0.0, 1.0),
            ));
        }
        Ok(())
    }

    fn wants_text_variants(&self) -> bool {
        true
    }

    /// A text variant against the clean images: the class embeddings are the means of the
    /// perturbed prompts.
    fn run_text_variant(
        &mut self,
        cx: &Context<'_>,
        set: &Set<'_>,
        out: &mut Output,
    ) -> Result<(), StageError> {
        self.run(cx, set, out)
    }

    fn finish(&mut self, _: &Context<'_>, out: &mut Output) -> Result<(), StageError> {
        out.metric_table("zero_shot", "prompts")?;
        Ok(())
    }
}

/// Notes pairs of classes whose embeddings are (nearly) the same direction: zero-shot cannot
/// tell them apart except by tie-breaking, which a reader must know before reading top-1.
fn same_classes(model: &str, names: &[String], vectors: &[f32], dim: usize, out: &mut Output) {
    let nc = names.len();
    let mut pairs = Vec::new();
    for a in 0..nc {
        for b in a + 1..nc {
            let cos: f64 = vectors[a * dim..(a + 1) * dim]
                .iter()
                .zip(&vectors[b * dim..(b + 1) * dim])
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum();
            if cos >= SAME_CLASS_COSINE {
                pairs.push((a, b, cos));
            }
        }
    }
    if pairs.is_empty() {
        return;
    }
    let shown: Vec<String> = pairs
        .iter()
        .take(5)
        .map(|(a, b, c)| format!("{} ~ {} (cosine {c:.6})", names[*a], names[*b]))
        .collect();
    out.note(format!(
        "{model}: zero-shot: {} pair(s) of classes have near-identical prompt embeddings \
         (cosine ≥ {SAME_CLASS_COSINE}), so the model cannot tell them apart and their images \
         go to whichever comes first: {}{}. Words the tokenizer does not know embed alike; \
         check the class names and templates",
        pairs.len(),
        shown.join(", "),
        if pairs.len() > 5 { ", ..." } else { "" }
    ));
}
