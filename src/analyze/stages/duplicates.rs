//! `duplicates`: near-duplicate image pairs (cosine ≥ `threshold` between clean image
//! embeddings), FiftyOne's uniqueness per image, and with a split (or any column named by
//! `across`) the pairs that cross it — leaks — and the retrieval and probe numbers recomputed
//! without the leaking items, beside the originals.
//!
//! The numbers come from [`crate::analysis::duplicates`] (blockwise, no N² matrix; pinned to
//! numpy and scikit-learn by goldens). The groups are a column of the attributes file:
//! `dataset.attribute_columns: [split]` writes it (`attributes.parquet` beside the store), or
//! `path:` names any Parquet with an `id` column. Without `across`, a column named `split` is
//! used when the file has one.
//!
//! The recomputation measures exactly what the `retrieval` and `probe` stages measure on the
//! clean images (their settings, their query sample, their seeded split), once with every item
//! and once with the leaking items left out — both sides of every cross-group pair, from the
//! queries, the gallery and both halves of the probe split — so the "all items" column equals
//! those stages' clean numbers and the difference is the leak's effect alone.
//!
//! Runs on the clean images only: a duplicate is a property of the dataset, not of the noise.
//! Memory: the clean set the driver holds, plus one row block of similarities per thread.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::probe::ProbeSettings;
use super::retrieval::{paired_texts, positive_keys, RetrievalSettings};
use super::{embeddings, labelled, sample_by_id};
use crate::analysis::duplicates::{self, DuplicateOptions, DuplicatePair, NearDuplicates};
use crate::analysis::probe::{self, LinearProbeOptions, Split};
use crate::analysis::retrieval::{self, Positives, RankOptions};
use crate::analysis::{AnalysisError, Embeddings};
use crate::analyze::stage::{
    Context, Facts, Model, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::store::{Column, EmbeddingSet, Table};

/// `analysis.duplicates`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesSettings {
    /// Two images are near-duplicates when the cosine of their embeddings is at least this.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// The strongest pairs kept in `duplicate_pairs` (and, separately, in `duplicate_leaks`);
    /// the counts in `duplicates` cover every pair.
    #[serde(default = "default_max_pairs")]
    pub max_pairs: usize,
    /// The column of the attributes file whose values are the groups (`split`): a pair
    /// across two values is a leak. Default: `split` when the file has it.
    #[serde(default)]
    pub across: Option<String>,
    /// Parquet with an `id` column and the `across` column; default `attributes.parquet`
    /// beside the store (what `clipflow run` writes from `dataset.attribute_columns`).
    #[serde(default)]
    pub path: Option<String>,
    /// Recompute retrieval and probe numbers without the leaking items.
    #[serde(default = "default_true")]
    pub leak_effect: bool,
}

impl Default for DuplicatesSettings {
    fn default() -> Self {
        DuplicatesSettings {
            threshold: default_threshold(),
            max_pairs: default_max_pairs(),
            across: None,
            path: None,
            leak_effect: true,
        }
    }
}

fn default_threshold() -> f64 {
    duplicates::DEFAULT_THRESHOLD
}
fn default_max_pairs() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}

/// The column used for groups when `across` is not set.
const DEFAULT_ACROSS: &str = "split";

impl StageConfig for DuplicatesSettings {
    const KEY: &'static str = "duplicates";
    const SECTION: Section = Section {
        anchor: "duplicates",
        title: "Near-duplicates and leaks",
        about: "Pairs of images whose embeddings are nearly the same, how unique each image is \
                (FiftyOne's uniqueness), the pairs that cross splits, and what retrieval and \
                probe scores become without the leaking items.",
        prefixes: &["duplicate"],
        summaries: &["duplicates", "duplicate_leak_effect"],
    };

    fn check(&self, _: &Facts) -> Result<(), SettingError> {
        if !(self.threshold.is_finite() && (-1.0..=1.0).contains(&self.threshold)) {
            return Err(SettingError::new(
                "threshold",
                format!("must be a cosine in [-1, 1], not {}", self.threshold),
            ));
        }
        if self.max_pairs == 0 {
            return Err(SettingError::new("max_pairs", "must be at least 1"));
        }
        if self.across.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return Err(SettingError::new(
                "across",
                "name a column of the attributes file (e.g. split), or leave it out",
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
        Box::new(DuplicatesStage {
            settings: self,
            table: None,
            saw_clean: false,
        })
    }
}

struct DuplicatesStage {
    settings: DuplicatesSettings,
    /// The attributes table and its path, read at the first clean set (`None` inside: absent).
    table: Option<Option<(Table, PathBuf)>>,
    /// Whether the current model had a clean image set.
    saw_clean: bool,
}

/// The group of every image (an index into `names`), from the attributes file.
struct Groups {
    column: String,
    names: Vec<String>,
    of: Vec<Option<usize>>,
}

impl DuplicatesStage {
    fn attributes(&mut self, cx: &Context<'_>) -> Result<Option<&(Table, PathBuf)>, StageError> {
        Ok(super::attribute_table(
            &mut self.table,
            self.settings.path.as_deref(),
            cx.store,
        )?)
    }

    /// The images' groups, or a note saying why there are none.
    fn groups(
        &mut self,
        cx: &Context<'_>,
        images: &EmbeddingSet,
        model: &str,
        out: &mut Output,
    ) -> Result<Option<Groups>, StageError> {
        let asked = self.settings.across.clone();
        let column = asked.clone().unwrap_or_else(|| DEFAULT_ACROSS.to_string());
        let Some((table, path)) = self.attributes(cx)? else {
            if asked.is_some() {
                out.note(format!(
                    "{model}: duplicates: no cross-split pairs: no attributes file (set \
                     dataset.attribute_columns: [{column}], or analysis.duplicates.path)"
                ));
            } else {
                out.note(format!(
                    "{model}: duplicates: leaks across splits not looked for: no attributes \
                     file with a `{column}` column (set dataset.attribute_columns, or \
                     analysis.duplicates.across)"
                ));
            }
            return Ok(None);
        };
        let Some(ids) = table.texts("id") else {
            out.note(format!(
                "{model}: duplicates: no cross-split pairs: {} has no text `id` column",
                path.display()
            ));
            return Ok(None);
        };
        let Some((_, values)) = table.columns.iter().find(|(n, _)| *n == column) else {
            let what = if asked.is_some() {
                "no cross-split pairs"
            } else {
                "leaks across splits not looked for"
            };
            out.note(format!(
                "{model}: duplicates: {what}: {} has no column `{column}` (columns: {})",
                path.display(),
                table
                    .columns
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| *n != "id")
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return Ok(None);
        };
        let pos: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| id.as_deref().map(|id| (id, i)))
            .collect();
        let texts: Vec<Option<String>> = images
            .ids
            .iter()
            .map(|id| pos.get(id.as_str()).and_then(|&r| values.cell_text(r)))
            .collect();
        let names: Vec<String> = texts
            .iter()
            .flatten()
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let of: Vec<Option<usize>> = texts
            .iter()
            .map(|t| t.as_ref().and_then(|t| names.binary_search(t).ok()))
            .collect();
        let missing = of.iter().filter(|g| g.is_none()).count();
        if missing > 0 {
            out.note(format!(
                "{model}: duplicates: {missing} of {} images have no `{column}` value; they \
                 are never counted as leaks",
                images.len()
            ));
        }
        if names.len() < 2 {
            out.note(format!(
                "{model}: duplicates: every image has the same `{column}` value ({}), so no \
                 pair can cross it",
                names.first().map_or("none", String::as_str)
            ));
        }
        Ok(Some(Groups { column, names, of }))
    }
}

impl Stage for DuplicatesStage {
    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        if !set.is_all_clean() {
            return Ok(());
        }
        self.saw_clean = true;
        let model = set.model.name;
        let images = set.images;
        let groups = self.groups(cx, images, model, out)?;
        let options = DuplicateOptions {
            threshold: self.settings.threshold,
            max_pairs: self.settings.max_pairs,
        };
        let found = duplicates::near_duplicates(
            embeddings(images)?,
            groups.as_ref().map(|g| g.of.as_slice()),
            &options,
        )?;
        let uniqueness = match duplicates::uniqueness(embeddings(images)?) {
            Ok(u) => Some(u),
            Err(e) => {
                out.note(format!("{model}: duplicates: no uniqueness scores: {e}"));
                None
            }
        };
        let t = self.settings.threshold;
        if found.pair_count > found.pairs.len() as u64 {
            out.note(format!(
                "{model}: duplicates: {} pairs at cosine ≥ {t}; duplicate_pairs keeps the \
                 strongest {} (analysis.duplicates.max_pairs)",
                found.pair_count,
                found.pairs.len()
            ));
        }
        if found.cross_pair_count > found.cross_pairs.len() as u64 {
            out.note(format!(
                "{model}: duplicates: {} cross-split pairs; duplicate_leaks keeps the \
                 strongest {} (analysis.duplicates.max_pairs)",
                found.cross_pair_count,
                found.cross_pairs.len()
            ));
        }
        let with_duplicate = found.partners.iter().filter(|&&p| p > 0).count();
        if images.len() >= 10 && with_duplicate * 2 > images.len() {
            out.note(format!(
                "{model}: duplicates: {with_duplicate} of {} images have a near-duplicate at \
                 cosine ≥ {t} (median cosine to the nearest other image {:.3}): the embeddings \
                 sit too close together for this threshold to single out copies, so the pairs \
                 say more about the model than about the data; raise \
                 analysis.duplicates.threshold",
                images.len(),
                nearest_median(&found)
            ));
        }
        write_tables(model, images, &found, groups.as_ref(), &uniqueness, out)?;

        let leaking: HashSet<&str> = found
            .leaking_items()
            .into_iter()
            .map(|i| images.ids[i].as_str())
            .collect();
        if let Some(g) = &groups {
            if g.names.len() >= 2 && leaking.is_empty() {
                out.note(format!(
                    "{model}: duplicates: no pair at cosine ≥ {t} crosses `{}`: no leak, so \
                     retrieval and probe numbers stand as they are",
                    g.column
                ));
            }
        }
        if self.settings.leak_effect && !leaking.is_empty() {
            let mut rows = EffectRows::default();
            let rs: RetrievalSettings = settings_of(cx, "retrieval", model, out);
            match retrieval_effect(set.model, images, &leaking, &rs, cx.seed, &mut rows) {
                Ok(true) => {}
                Ok(false) => out.note(format!(
                    "{model}: duplicates: retrieval without leaks skipped: no texts"
                )),
                Err(e) => out.note(format!(
                    "{model}: duplicates: retrieval without leaks failed: {e}"
                )),
            }
            let ps: ProbeSettings = settings_of(cx, "probe", model, out);
            if let Err(e) = probe_effect(images, &leaking, &ps, cx.seed, &mut rows) {
                out.note(format!(
                    "{model}: duplicates: probes without leaks skipped: {e}"
                ));
            }
            let n = rows.stage.len();
            if n > 0 {
                out.table(
                    Table::new("duplicate_leak_effect")
                        .text("model", vec![model.to_string(); n])
                        .text("variant", vec![images.variant.clone(); n])
                        .text("stage", rows.stage)
                        .text("kind", rows.kind)
                        .text("metric", rows.metric)
                        .column("k", Column::Int(rows.k))
                        .float("all_items", rows.all)
                        .float("without_leaks", rows.without)
                        .int("n_all", rows.n_all)
                        .int("n_without", rows.n_without),
                )?;
            }
        }
        Ok(())
    }

    fn finish_model(
        &mut self,
        _: &Context<'_>,
        model: &Model<'_>,
        out: &mut Output,
    ) -> Result<(), StageError> {
        if !self.saw_clean {
            out.note(format!(
                "{}: duplicates skipped: no clean image embeddings",
                model.name
            ));
        }
        self.saw_clean = false;
        Ok(())
    }
}

/// Another stage's settings, to measure as it does: its own when it runs, else its defaults
/// (said in a note, as is settings that cannot be read back).
fn settings_of<T: serde::de::DeserializeOwned + Default>(
    cx: &Context<'_>,
    stage: &str,
    model: &str,
    out: &mut Output,
) -> T {
    match cx.settings(stage) {
        Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|e| {
            out.note(format!(
                "{model}: duplicates: the {stage} settings could not be read back ({e}); the \
                 leak effect uses the {stage} defaults"
            ));
            T::default()
        }),
        None => {
            out.note(format!(
                "{model}: duplicates: analysis.{stage} is not on; the leak effect measures {stage} \
                 with its default settings"
            ));
            T::default()
        }
    }
}

fn pair_table(
    name: &str,
    model: &str,
    images: &EmbeddingSet,
    pairs: &[DuplicatePair],
    groups: Option<&Groups>,
) -> Table {
    let n = pairs.len();
    let mut t = Table::new(name)
        .text("model", vec![model.to_string(); n])
        .text("variant", vec![images.variant.clone(); n])
        .int("rank", 1..=n as i64)
        .text("a_id", pairs.iter().map(|p| images.ids[p.a].clone()))
        .text("b_id", pairs.iter().map(|p| images.ids[p.b].clone()))
        .float("cosine", pairs.iter().map(|p| p.cosine));
    if let Some(g) = groups {
        let name_of = |i: usize| g.of[i].map(|k| g.names[k].clone());
        t = t
            .column(
                "a_group",
                Column::Text(pairs.iter().map(|p| name_of(p.a)).collect()),
            )
            .column(
                "b_group",
                Column::Text(pairs.iter().map(|p| name_of(p.b)).collect()),
            )
            .int(
                "cross",
                pairs.iter().map(|p| {
                    i64::from(matches!((g.of[p.a], g.of[p.b]), (Some(a), Some(b)) if a != b))
                }),
            );
    }
    t
}

fn write_tables(
    model: &str,
    images: &EmbeddingSet,
    found: &NearDuplicates,
    groups: Option<&Groups>,
    uniqueness: &Option<Vec<f64>>,
    out: &mut Output,
) -> Result<(), StageError> {
    let n = images.len();
    let with_duplicate = found.partners.iter().filter(|&&p| p > 0).count();
    let mut summary: Vec<(&str, f64)> = vec![
        ("images", n as f64),
        ("threshold", found.threshold),
        ("pairs", found.pair_count as f64),
        ("images_with_duplicate", with_duplicate as f64),
        ("nearest_cosine_median", nearest_median(found)),
    ];
    if let Some(g) = groups {
        let grouped = g.of.iter().filter(|x| x.is_some()).count();
        summary.push(("images_with_group", grouped as f64));
        summary.push(("groups", g.names.len() as f64));
        summary.push(("cross_group_pairs", found.cross_pair_count as f64));
        summary.push(("leaking_images", found.leaking_items().len() as f64));
    }
    if let Some(u) = uniqueness {
        let mut sorted = u.clone();
        sorted.sort_by(f64::total_cmp);
        summary.push(("uniqueness_mean", u.iter().sum::<f64>() / u.len() as f64));
        summary.push(("uniqueness_median", median(&sorted)));
    }
    let rows = summary.len();
    out.table(
        Table::new("duplicates")
            .text("model", vec![model.to_string(); rows])
            .text("variant", vec![images.variant.clone(); rows])
            .column(
                "across",
                Column::Text(vec![groups.map(|g| g.column.clone()); rows]),
            )
            .text("metric", summary.iter().map(|(m, _)| m.to_string()))
            .column("k", Column::Int(vec![None; rows]))
            .float("value", summary.iter().map(|(_, v)| *v)),
    )?;
    out.table(pair_table(
        "duplicate_pairs",
        model,
        images,
        &found.pairs,
        groups,
    ))?;
    if groups.is_some() {
        out.table(pair_table(
            "duplicate_leaks",
            model,
            images,
            &found.cross_pairs,
            groups,
        ))?;
    }
    let mut items = Table::new("duplicate_items")
        .text("model", vec![model.to_string(); n])
        .text("variant", vec![images.variant.clone(); n])
        .text("id", images.ids.iter().cloned());
    if let Some(g) = groups {
        items = items.column(
            "group",
            Column::Text(g.of.iter().map(|x| x.map(|k| g.names[k].clone())).collect()),
        );
    }
    items = items
        .column(
            "uniqueness",
            Column::Float(match uniqueness {
                Some(u) => u.iter().map(|&v| Some(v)).collect(),
                None => vec![None; n],
            }),
        )
        .int("duplicates", found.partners.iter().map(|&p| p as i64));
    if groups.is_some() {
        items = items.int(
            "cross_group_duplicates",
            found.cross_partners.iter().map(|&p| p as i64),
        );
    }
    items = items
        .column(
            "nearest_id",
            Column::Text(
                found
                    .nearest
                    .iter()
                    .map(|x| x.map(|(j, _)| images.ids[j].clone()))
                    .collect(),
            ),
        )
        .column(
            "nearest_cosine",
            Column::Float(found.nearest.iter().map(|x| x.map(|(_, c)| c)).collect()),
        );
    out.table(items)?;
    Ok(())
}

/// The median over images of the cosine to the nearest other image (NaN for one image).
fn nearest_median(found: &NearDuplicates) -> f64 {
    let mut v: Vec<f64> = found.nearest.iter().flatten().map(|&(_, c)| c).collect();
    v.sort_by(f64::total_cmp);
    median(&v)
}

fn median(sorted: &[f64]) -> f64 {
    let m = sorted.len();
    if m == 0 {
        f64::NAN
    } else if m % 2 == 1 {
        sorted[m / 2]
    } else {
        (sorted[m / 2 - 1] + sorted[m / 2]) / 2.0
    }
}

/// Rows of `duplicate_leak_effect`.
#[derive(Default)]
struct EffectRows {
    stage: Vec<String>,
    kind: Vec<String>,
    metric: Vec<String>,
    k: Vec<Option<i64>>,
    all: Vec<f64>,
    without: Vec<f64>,
    n_all: Vec<i64>,
    n_without: Vec<i64>,
}

impl EffectRows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        stage: &str,
        kind: &str,
        metric: &str,
        k: Option<usize>,
        all: f64,
        without: f64,
        n: (usize, usize),
    ) {
        self.stage.push(stage.to_string());
        self.kind.push(kind.to_string());
        self.metric.push(metric.to_string());
        self.k.push(k.map(|k| k as i64));
        self.all.push(all);
        self.without.push(without);
        self.n_all.push(n.0 as i64);
        self.n_without.push(n.1 as i64);
    }
}

/// Retrieval in both directions as the `retrieval` stage measures it (same pairing, same
/// query sample), with every item and without the leaking ones. `Ok(false)` without texts.
fn retrieval_effect(
    model: &Model<'_>,
    images: &EmbeddingSet,
    leaking: &HashSet<&str>,
    rs: &RetrievalSettings,
    seed: u64,
    rows: &mut EffectRows,
) -> Result<bool, AnalysisError> {
    let Some((texts, mode)) = paired_texts(model, rs.positives) else {
        return Ok(false);
    };
    let (text_keys, image_keys) = positive_keys(texts, images, mode);
    for name in ["text_to_image", "image_to_text"] {
        let (queries, query_keys, gallery, gallery_keys) = if name == "text_to_image" {
            (texts, &text_keys, images, &image_keys)
        } else {
            (images, &image_keys, texts, &text_keys)
        };
        let in_gallery: HashSet<usize> = gallery_keys.iter().copied().collect();
        let answerable: Vec<usize> = (0..queries.len())
            .filter(|&i| in_gallery.contains(&query_keys[i]))
            .collect();
        // The retrieval stage's sample, when it measures one.
        let measured: Vec<usize> = match rs.queries {
            Some(n) if n < answerable.len() => sample_by_id(
                answerable.iter().map(|&i| queries.ids[i].as_str()),
                n,
                seed ^ 0x7e7a_1e5a,
            )
            .into_iter()
            .map(|j| answerable[j])
            .collect(),
            _ => answerable,
        };
        let all_gallery: Vec<usize> = (0..gallery.len()).collect();
        let kept_gallery: Vec<usize> = all_gallery
            .iter()
            .copied()
            .filter(|&j| !leaking.contains(gallery.item(j)))
            .collect();
        let kept_keys: HashSet<usize> = kept_gallery.iter().map(|&j| gallery_keys[j]).collect();
        let kept_queries: Vec<usize> = measured
            .iter()
            .copied()
            .filter(|&i| !leaking.contains(queries.item(i)) && kept_keys.contains(&query_keys[i]))
            .collect();
        if measured.is_empty() || kept_queries.is_empty() || kept_gallery.is_empty() {
            continue;
        }
        let ks: Vec<usize> =
            rs.k.iter()
                .copied()
                .filter(|&k| k >= 1 && k <= kept_gallery.len())
                .collect();
        let run = |q_rows: &[usize], g_rows: &[usize]| {
            let qv: Vec<f32> = q_rows
                .iter()
                .flat_map(|&i| queries.row(i).iter().copied())
                .collect();
            let gv: Vec<f32> = g_rows
                .iter()
                .flat_map(|&j| gallery.row(j).iter().copied())
                .collect();
            let qk: Vec<usize> = q_rows.iter().map(|&i| query_keys[i]).collect();
            let gk: Vec<usize> = g_rows.iter().map(|&j| gallery_keys[j]).collect();
            retrieval::retrieve(
                Embeddings::new(&qv, queries.dim)?,
                Embeddings::new(&gv, gallery.dim)?,
                &Positives::SharedKey {
                    query: &qk,
                    gallery: &gk,
                },
                &ks,
                &RankOptions::default(),
            )
        };
        let all = run(&measured, &all_gallery)?.metrics;
        let without = run(&kept_queries, &kept_gallery)?.metrics;
        let n = (measured.len(), kept_queries.len());
        // Named as the retrieval table names its directions.
        let kind = format!("{name}:{mode}");
        for (a, w) in all.recall.iter().zip(&without.recall) {
            rows.push(
                "retrieval",
                &kind,
                "recall",
                Some(a.k),
                a.recall,
                w.recall,
                n,
            );
        }
        rows.push("retrieval", &kind, "mrr", None, all.mrr, without.mrr, n);
    }
    Ok(true)
}

/// kNN and linear-probe accuracy as the `probe` stage measures them on the clean images (same
/// seeded split, same kNN sample), with every item and without the leaking ones.
fn probe_effect(
    images: &EmbeddingSet,
    leaking: &HashSet<&str>,
    ps: &ProbeSettings,
    seed: u64,
    rows: &mut EffectRows,
) -> Result<(), String> {
    let Some((truth, labels)) = labelled(images) else {
        return Err("not every image has a label".into());
    };
    if labels.names.len() < 2 {
        return Err("a single class".into());
    }
    let e = embeddings(images).map_err(|e| e.to_string())?;
    let split =
        probe::stratified_split(&truth, ps.test_fraction, seed).map_err(|e| e.to_string())?;
    let knn_test: Vec<usize> = match ps.knn_queries {
        Some(n) if n < split.test.len() => sample_by_id(
            split.test.iter().map(|&i| images.ids[i].as_str()),
            n,
            seed ^ 0x6e6e,
        )
        .into_iter()
        .map(|j| split.test[j])
        .collect(),
        _ => split.test.clone(),
    };
    let keep = |v: &[usize]| -> Vec<usize> {
        v.iter()
            .copied()
            .filter(|&i| !leaking.contains(images.ids[i].as_str()))
            .collect()
    };
    let clean = Split {
        train: keep(&split.train),
        test: keep(&split.test),
    };
    let clean_knn_test = keep(&knn_test);
    if clean.train.is_empty() || clean.test.is_empty() || clean_knn_test.is_empty() {
        return Err("without the leaking images a side of the probe split is empty".into());
    }
    // As the probe stage predicts (one block of every test image), so `all_items` is its number.
    let knn = |train: &[usize], test: &[usize]| {
        let split = Split {
            train: train.to_vec(),
            test: test.to_vec(),
        };
        let k = ps.knn_k.min(train.len()).max(1);
        probe::knn_predictions(e, &truth, &split, k, 0..test.len())
            .and_then(|p| probe::score_predictions(&truth, &split, p))
            .map_err(|e| e.to_string())
    };
    let a = knn(&split.train, &knn_test)?;
    let w = knn(&clean.train, &clean_knn_test)?;
    rows.push(
        "probe",
        "knn",
        "accuracy",
        Some(ps.knn_k),
        a.accuracy,
        w.accuracy,
        (a.n_test, w.n_test),
    );
    let linear = |s: &Split| {
        probe::linear_probe(e, &truth, s, &LinearProbeOptions::default())
            .map(|(score, _)| score)
            .map_err(|e| e.to_string())
    };
    let a = linear(&split)?;
    let w = linear(&clean)?;
    rows.push(
        "probe",
        "linear",
        "accuracy",
        None,
        a.accuracy,
        w.accuracy,
        (a.n_test, w.n_test),
    );
    Ok(())
}
