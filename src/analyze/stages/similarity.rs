//! `similarity`: the cosine, dot and softmax of chosen clean images against texts (their
//! captions, else one class embedding per class), as a table and a heatmap, and the histogram
//! of matched against unmatched image–text similarities over the first 2,000 images and texts.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{prompt_classes, slug};
use crate::analysis::Embeddings;
use crate::analyze::stage::{
    Context, Facts, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::store::Table;

/// `analysis.similarity`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimilaritySettings {
    /// Take the first N items of each class (default 2), unless `ids` or `query` is given.
    #[serde(default)]
    pub per_class: Option<usize>,
    /// Exactly these item ids.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// Items whose caption contains this text (case-insensitive).
    #[serde(default)]
    pub query: Option<String>,
    /// At most this many items (default 16).
    #[serde(default)]
    pub max_items: Option<usize>,
}

impl StageConfig for SimilaritySettings {
    const KEY: &'static str = "similarity";
    const SECTION: Section = Section {
        anchor: "similarity",
        title: "Similarity",
        about: "Cosine similarities of chosen images and texts, and of matched against \
                unmatched pairs.",
        prefixes: &["similarity"],
        summaries: &["similarity"],
    };

    fn check(&self, _: &Facts) -> Result<(), SettingError> {
        if self.per_class == Some(0) || self.max_items == Some(0) {
            return Err(SettingError::new(
                if self.per_class == Some(0) {
                    "per_class"
                } else {
                    "max_items"
                },
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(SimilarityStage { settings: self })
    }
}

struct SimilarityStage {
    settings: SimilaritySettings,
}

/// Bins of the matched/unmatched histogram over [-1, 1].
const BINS: usize = 40;
/// Images and texts the histogram covers at most, so it stays cheap.
const HISTOGRAM_ROWS: usize = 2000;

impl Stage for SimilarityStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        if !set.is_clean() {
            return Ok(());
        }
        let sc = &self.settings;
        let m = set.model;
        let images = set.images;
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
            out.note(format!(
                "{}: similarity skipped: no image matches the selection",
                m.name
            ));
            return Ok(());
        }
        // The texts: the chosen items' captions, else one averaged prompt embedding per class.
        let class_texts = match (m.captions, m.prompts) {
            (None, Some(p)) => Some(prompt_classes(p)?),
            _ => None,
        };
        let (text_ids, text_vectors, matched): (Vec<String>, Vec<f32>, Vec<Option<usize>>) =
            if let Some(c) = m.captions {
                // A caption's item is its image (several captions per image: the first).
                let mut pos: HashMap<&str, usize> = HashMap::new();
                for i in 0..c.len() {
                    pos.entry(c.item(i)).or_insert(i);
                }
                let rows: Vec<usize> = chosen
                    .iter()
                    .filter_map(|&i| pos.get(images.ids[i].as_str()).copied())
                    .collect();
                (
                    rows.iter().map(|&r| c.ids[r].clone()).collect(),
                    rows.iter()
                        .flat_map(|&r| c.row(r).iter().copied())
                        .collect(),
                    chosen
                        .iter()
                        .map(|&i| rows.iter().position(|&r| c.item(r) == images.ids[i]))
                        .collect(),
                )
            } else if let Some((classes, v)) = &class_texts {
                let matched = chosen
                    .iter()
                    .map(|&i| {
                        images.labels[i]
                            .as_ref()
                            .and_then(|l| classes.names.iter().position(|n| n == l))
                    })
                    .collect();
                (classes.names.clone(), v.clone(), matched)
            } else {
                out.note(format!("{}: similarity skipped: no texts", m.name));
                return Ok(());
            };
        if text_ids.is_empty() {
            return Ok(());
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
        // CLIP's softmax over the texts at the model's scale, and the model's own scoring
        // (the same numbers for a CLIP model; SigLIP's sigmoid judges each pair alone).
        let soft = crate::analysis::softmax(&cos, text_ids.len(), m.scoring.logit_scale())?;
        let logits = crate::analysis::scoring::logits(&cos, m.scoring)?;
        let probability = crate::analysis::scoring::probabilities(&cos, text_ids.len(), m.scoring)?;
        let nt = text_ids.len();
        let n = chosen.len() * nt;
        out.table(
            Table::new("similarity")
                .text("model", vec![m.name.to_string(); n])
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
                .float("softmax", soft.iter().map(|v| *v as f64))
                .text("scoring", vec![m.scoring.name(); n])
                .float("logit", logits.iter().map(|v| *v as f64))
                .float("probability", probability.iter().map(|v| *v as f64)),
        )?;
        let chosen_ids: Vec<String> = chosen.iter().map(|&i| images.ids[i].clone()).collect();
        let values: Vec<f64> = cos.iter().map(|v| *v as f64).collect();
        let lo = values.iter().copied().fold(f64::MAX, f64::min);
        let hi = values.iter().copied().fold(f64::MIN, f64::max);
        out.plotted(crate::chart::heatmap(
            &cx.plots_dir.join(format!("similarity_{}", slug(m.name))),
            &format!("{}: cosine similarity, images × texts", m.name),
            &chosen_ids,
            &text_ids,
            &values,
            (lo, hi),
        ));

        // Matched vs unmatched similarities over all image–text pairs of the first images and
        // texts: matched = the item's own caption, or a prompt class equal to the image's label.
        let mut counts = [vec![0i64; BINS], vec![0i64; BINS]];
        let n_img = images.len().min(HISTOGRAM_ROWS);
        let (t_keys, t_vecs, by_label): (Vec<String>, Vec<f32>, bool) =
            match (m.captions, &class_texts) {
                (Some(c), _) => {
                    let n = c.len().min(HISTOGRAM_ROWS);
                    (
                        (0..n).map(|i| c.item(i).to_string()).collect(),
                        c.vectors[..n * c.dim].to_vec(),
                        false,
                    )
                }
                (None, Some((classes, v))) => (classes.names.clone(), v.clone(), true),
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
                    let bin = (((v + 1.0) / 2.0 * BINS as f64) as usize).min(BINS - 1);
                    counts[(key == Some(t_key.as_str())) as usize][bin] += 1;
                }
            }
        }
        let hist_rows = 2 * BINS;
        let edge = |r: usize| -1.0 + 2.0 * r as f64 / BINS as f64;
        out.table(
            Table::new("similarity_histogram")
                .text("model", vec![m.name.to_string(); hist_rows])
                .text("variant", vec![images.variant.clone(); hist_rows])
                .text(
                    "pairs",
                    (0..hist_rows).map(|r| if r < BINS { "unmatched" } else { "matched" }),
                )
                .float("bin_low", (0..hist_rows).map(|r| edge(r % BINS)))
                .float("bin_high", (0..hist_rows).map(|r| edge(r % BINS + 1)))
                .int("count", counts.concat()),
        )?;
        if !t_keys.is_empty() {
            let edges: Vec<f64> = (0..=BINS).map(edge).collect();
            out.plotted(crate::chart::histogram(
                &cx.plots_dir
                    .join(format!("similarity_hist_{}", slug(m.name))),
                &format!("{}: similarity of matched and unmatched pairs", m.name),
                "cosine similarity",
                &edges,
                &[
                    ("matched".to_string(), counts[1].clone()),
                    ("unmatched".to_string(), counts[0].clone()),
                ],
            ));
        }
        Ok(())
    }
}
