//! Analyze stage: runs the study's analysis stages over an embedding store and writes their
//! tables (`tables/*.parquet` + `.md`) and pictures (`plots/*.png` + `.svg`).
//!
//! Two modules share the word. [`crate::analysis`] is the numerical core: pure functions over
//! vectors (retrieval ranks, k-means, t-SNE, persistence), pinned to scikit-learn and SciPy by
//! goldens. This one is the stage of the data flow that applies them to a store: it reads the
//! sets, hands them to the registered stages, and collects what they write. It reads only the
//! store, never the dataset or the models, so `clipflow analyze` works on embeddings that
//! clip-retrieval or a Hugging Face dataset produced.
//!
//! # Memory
//!
//! The store is opened as a [`Catalog`] (key columns only) and read one (model, image variant)
//! set at a time; a model's texts are read once and kept while its variants pass. Per-item
//! tables stream to disk. So memory is one image set plus the model's texts, whatever the
//! number of variants; the stages that compare a variant with the clean set (probes,
//! topology, projections) say in their docs what they keep of it.
//!
//! # Stages
//!
//! Each stage is one file under `stages/` owning its settings, its run, its tables, plots and
//! notes, and its report section; `registry` lists them (see there for how to add one).
//! A stage that fails on a model's data (a degenerate cloud, one-image classes) becomes a note
//! naming the model, variant and stage, and the other stages still run: these stages run
//! after hours of encoding, and one of them failing must not cost the rest.
//!
//! # Table conventions
//!
//! A `model` column, a `variant` column (`clean` or the noise variant of the *images*), a
//! `text_variant` column in the tables of stages that measure texts (`clean` or the text
//! perturbation, measured against the clean images), and for metric tables `metric`, `k`
//! (null where it does not apply) and `value`. `robustness` repeats every metric with its
//! clean value and the drop.
//!
//! # Text variants
//!
//! After a model's image variants, each of its text variants (perturbed captions and prompts,
//! same ids and labels as the clean texts) is handed to the stages that measure texts
//! (retrieval, zero-shot) with the clean images, read once more for the purpose: memory stays
//! one image set plus the model's clean texts and one text variant.

pub mod blocks;
mod registry;
pub mod stage;
mod stages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::analysis::scoring::Scoring;
use crate::config::{did_you_mean_among, AnalysisSection, ConfigError, Source};
use crate::progress::Progress;
use crate::store::{Catalog, StoreError, StoreFormat};

pub use blocks::{Alone, Blocks, Share};
pub use registry::{Entry, STAGES};
pub use stage::{Common, Facts, Metric, Section};
use stage::{Context, Model, Output, Set, StageError};

/// Why the analysis could not run.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Input(String),
}

/// What the analysis wrote.
#[derive(Debug, Clone, Default)]
pub struct AnalysisSummary {
    pub tables: Vec<PathBuf>,
    pub plots: Vec<PathBuf>,
    /// Analyses skipped or qualified, and why (no labels, no prompts, ties, ...).
    pub notes: Vec<String>,
    /// Seconds per stage (summed over models and variants), and reading the store.
    pub seconds: Vec<(String, f64)>,
}

/// The study's `analysis:` section, read and checked: which stages run, with which settings.
#[derive(Debug, Clone)]
pub struct AnalysisPlan {
    common: Common,
    /// Registry index and the stage's YAML value, in registry order.
    stages: Vec<(usize, serde_norway::Value)>,
    source: Source,
    resolved: serde_json::Value,
}

/// Keys under `analysis:` that are shared settings rather than stages.
const COMMON_KEYS: &[&str] = &["noise_on", "logit_scale"];

impl AnalysisPlan {
    /// Reads `section`, checking every stage's settings against `facts`; errors name the key
    /// and its line in `source` (or the `--set` that wrote it).
    pub fn new(
        section: &AnalysisSection,
        source: &Source,
        facts: &Facts,
    ) -> Result<AnalysisPlan, ConfigError> {
        let mut common_map = serde_norway::Mapping::new();
        let mut stages: Vec<(usize, serde_norway::Value)> = Vec::new();
        for (k, v) in &section.0 {
            let Some(key) = k.as_str() else {
                return Err(source.invalid("analysis", "keys must be stage names"));
            };
            if COMMON_KEYS.contains(&key) {
                common_map.insert(k.clone(), v.clone());
            } else if let Some(i) = STAGES.iter().position(|e| e.key == key) {
                stages.push((i, v.clone()));
            } else {
                let known: Vec<&str> = STAGES
                    .iter()
                    .map(|e| e.key)
                    .chain(COMMON_KEYS.iter().copied())
                    .collect();
                let hint = did_you_mean_among(key, &known)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(source.invalid(
                    &format!("analysis.{key}"),
                    format!(
                        "unknown analysis stage or setting{hint} (stages: {}; settings: {})",
                        STAGES.iter().map(|e| e.key).collect::<Vec<_>>().join(", "),
                        COMMON_KEYS.join(", ")
                    ),
                ));
            }
        }
        let common: Common = serde_path_to_error::deserialize(serde_norway::Value::Mapping(
            common_map,
        ))
        .map_err(|e| source.invalid(&format!("analysis.{}", e.path()), e.inner().to_string()))?;
        if let Some(s) = common.logit_scale {
            if !(s.is_finite() && s > 0.0) {
                return Err(source.invalid("analysis.logit_scale", "must be a positive number"));
            }
        }
        for (i, e) in STAGES.iter().enumerate() {
            if e.on_by_default && !stages.iter().any(|(j, _)| *j == i) {
                stages.push((i, serde_norway::Value::Null));
            }
        }
        stages.sort_by_key(|(i, _)| *i);
        let mut plan = AnalysisPlan {
            common,
            stages,
            source: source.clone(),
            resolved: serde_json::Value::Null,
        };
        let mut resolved = serde_json::Map::new();
        resolved.insert(
            "noise_on".into(),
            serde_json::to_value(plan.common.noise_on).unwrap_or_default(),
        );
        resolved.insert(
            "logit_scale".into(),
            serde_json::to_value(plan.common.logit_scale).unwrap_or_default(),
        );
        for (entry, parsed) in plan.start(facts)? {
            resolved.insert(entry.key.into(), parsed.resolved);
        }
        plan.resolved = serde_json::Value::Object(resolved);
        Ok(plan)
    }

    /// The settings of every stage that runs, defaults filled in (for the manifest).
    pub fn resolved(&self) -> &serde_json::Value {
        &self.resolved
    }

    /// Keys of the stages that run, in order.
    pub fn stage_keys(&self) -> Vec<&'static str> {
        self.stages.iter().map(|(i, _)| STAGES[*i].key).collect()
    }

    fn start(&self, facts: &Facts) -> Result<Vec<(&'static Entry, registry::Parsed)>, ConfigError> {
        let mut out = Vec::new();
        for (i, value) in &self.stages {
            let entry = &STAGES[*i];
            match (entry.parse)(value, facts) {
                Ok(p) => out.push((entry, p)),
                Err(registry::ParseError::Shape { key, message }) => {
                    let message = message
                        .find(" at line ")
                        .map_or(message.clone(), |i| message[..i].to_string());
                    let hint = crate::config::did_you_mean_hint(&message);
                    return Err(self
                        .source
                        .invalid(&join_key(entry.key, &key), format!("{message}{hint}")));
                }
                Err(registry::ParseError::Setting(e)) => {
                    return Err(self.source.invalid(&join_key(entry.key, &e.key), e.message))
                }
            }
        }
        Ok(out)
    }
}

fn join_key(stage: &str, key: &str) -> String {
    if key.is_empty() || key == "." {
        format!("analysis.{stage}")
    } else {
        format!("analysis.{stage}.{key}")
    }
}

/// Runs the plan's stages on the store at `store`, writing `tables/` and `plots/` under
/// `out_dir`. Tables and plots an earlier analysis left there are removed first, so what the
/// folders hold is this analysis and nothing else.
pub fn analyze(
    plan: &AnalysisPlan,
    store: &Path,
    format: &StoreFormat,
    seed: u64,
    out_dir: &Path,
    progress: &Progress,
) -> Result<AnalysisSummary, AnalyzeError> {
    let t_open = Instant::now();
    let catalog = Catalog::open(store, format)?;
    if catalog.sets().is_empty() {
        return Err(AnalyzeError::Input(format!(
            "{}: no embeddings",
            store.display()
        )));
    }
    let facts = facts_of(&catalog);
    let mut stages = plan.start(&facts)?;
    let tables_dir = out_dir.join("tables");
    let plots_dir = out_dir.join("plots");
    clear(&tables_dir, &["parquet", "md"])?;
    clear(&plots_dir, &["png", "svg"])?;
    let mut out = Output::new(&tables_dir);
    let blocks = Blocks::new(out_dir, None, false);
    let cx = Context {
        seed,
        common: &plan.common,
        plots_dir: &plots_dir,
        store,
        progress,
        resolved: &plan.resolved,
        blocks: Some(&blocks),
    };
    let mut seconds: BTreeMap<usize, f64> = BTreeMap::new();
    let mut read_seconds = t_open.elapsed().as_secs_f64();

    for model in catalog.models() {
        let t = Instant::now();
        let (captions, prompts) = model_texts(&catalog, model)?;
        read_seconds += t.elapsed().as_secs_f64();
        let variants = image_variants(&catalog, model);
        if variants.is_empty() {
            out.note(format!("{model}: no image embeddings; nothing to analyse"));
            continue;
        }
        let names: Vec<String> = variants.iter().map(|s| s.variant.clone()).collect();
        let metadata = crate::store::model_metadata(&catalog, model);
        let (scoring, recorded) = model_scoring(&metadata, plan.common.logit_scale);
        if !recorded && (captions.is_some() || prompts.is_some()) {
            out.note(format!(
                "{model}: the store records no scoring (clipflow.scoring): probabilities use \
                 CLIP's softmax at scale {} (analysis.logit_scale sets another)",
                scoring.logit_scale()
            ));
        }
        let m = Model {
            name: model,
            captions: captions.as_ref(),
            prompts: prompts.as_ref(),
            variants: &names,
            scoring,
            text_variant: "clean",
        };
        for info in variants {
            let t = Instant::now();
            let images = catalog.load(info)?;
            read_seconds += t.elapsed().as_secs_f64();
            let set = Set {
                model: &m,
                images: &images,
            };
            for (i, (entry, parsed)) in stages.iter_mut().enumerate() {
                let t = Instant::now();
                let r = parsed.stage.run(&cx, &set, &mut out);
                *seconds.entry(i).or_default() += t.elapsed().as_secs_f64();
                settle(
                    r,
                    &mut out,
                    &format!("{model} / {}: {}", info.variant, entry.key),
                )?;
            }
        }
        let text_sets = text_variants(&catalog, model);
        if !text_sets.is_empty() && stages.iter().any(|(_, p)| p.stage.wants_text_variants()) {
            // Each text variant against the clean images: the clean set is read again (once
            // per model) rather than kept through the image variants.
            match catalog.find(model, "image", "clean") {
                None => out.note(format!(
                    "{model}: text variants are not measured: the store has no clean images"
                )),
                Some(info) => {
                    let t = Instant::now();
                    let images = catalog.load(info)?;
                    read_seconds += t.elapsed().as_secs_f64();
                    for text_info in text_sets {
                        let t = Instant::now();
                        let texts = catalog.load(text_info)?;
                        read_seconds += t.elapsed().as_secs_f64();
                        let (captions, prompts) = split_texts(&texts);
                        let mt = Model {
                            captions: captions.as_ref(),
                            prompts: prompts.as_ref(),
                            text_variant: &text_info.variant,
                            ..m
                        };
                        let set = Set {
                            model: &mt,
                            images: &images,
                        };
                        for (i, (entry, parsed)) in stages.iter_mut().enumerate() {
                            if !parsed.stage.wants_text_variants() {
                                continue;
                            }
                            let t = Instant::now();
                            let r = parsed.stage.run_text_variant(&cx, &set, &mut out);
                            *seconds.entry(i).or_default() += t.elapsed().as_secs_f64();
                            settle(
                                r,
                                &mut out,
                                &format!("{model} / texts {}: {}", text_info.variant, entry.key),
                            )?;
                        }
                    }
                }
            }
        }
        for (i, (entry, parsed)) in stages.iter_mut().enumerate() {
            let t = Instant::now();
            let r = parsed.stage.finish_model(&cx, &m, &mut out);
            *seconds.entry(i).or_default() += t.elapsed().as_secs_f64();
            settle(r, &mut out, &format!("{model}: {}", entry.key))?;
        }
        progress.info(&format!("analysis: {model} done"));
    }
    for (i, (entry, parsed)) in stages.iter_mut().enumerate() {
        let t = Instant::now();
        let r = parsed.stage.finish(&cx, &mut out);
        *seconds.entry(i).or_default() += t.elapsed().as_secs_f64();
        settle(r, &mut out, entry.key)?;
    }
    let mut summary = AnalysisSummary {
        seconds: vec![("read store".to_string(), read_seconds)],
        ..Default::default()
    };
    for (i, (entry, _)) in stages.iter().enumerate() {
        summary.seconds.push((
            entry.key.to_string(),
            seconds.get(&i).copied().unwrap_or(0.0),
        ));
    }
    progress.info(&format!(
        "analysis seconds: {}",
        summary
            .seconds
            .iter()
            .map(|(k, s)| format!("{k} {s:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let written = out.finish()?;
    summary.tables = written.tables;
    summary.plots = written.plots;
    summary.notes = written.notes;
    Ok(summary)
}

/// The sharing phase of a run with several workers (issue 11): every worker calls this once the
/// store is complete, before the finisher is elected, and computes the blocks of per-query work
/// (retrieval ranks) that no other worker has (`blocks` made with a [`Share`]; with `wait`, the
/// finisher's, it returns only when every block is done). The analysis then reads the blocks
/// instead of ranking every query itself. A study without such work reads nothing here.
pub fn share(
    plan: &AnalysisPlan,
    store: &Path,
    format: &StoreFormat,
    seed: u64,
    blocks: &Blocks<'_>,
    progress: &Progress,
) -> Result<(), AnalyzeError> {
    let catalog = Catalog::open(store, format)?;
    let facts = facts_of(&catalog);
    let mut stages: Vec<_> = plan
        .start(&facts)?
        .into_iter()
        .filter(|(_, p)| p.stage.shares())
        .collect();
    if stages.is_empty() {
        return Ok(());
    }
    let plots_dir = PathBuf::new();
    let cx = Context {
        seed,
        common: &plan.common,
        plots_dir: &plots_dir,
        store,
        progress,
        resolved: &plan.resolved,
        blocks: None,
    };
    for model in catalog.models() {
        let (captions, prompts) = model_texts(&catalog, model)?;
        let variants = image_variants(&catalog, model);
        let names: Vec<String> = variants.iter().map(|s| s.variant.clone()).collect();
        let m = Model {
            name: model,
            captions: captions.as_ref(),
            prompts: prompts.as_ref(),
            variants: &names,
            // Ranks do not depend on the scoring.
            scoring: Scoring::Softmax { logit_scale: 100.0 },
            text_variant: "clean",
        };
        for info in variants {
            let images = catalog.load(info)?;
            let set = Set {
                model: &m,
                images: &images,
            };
            for (entry, parsed) in stages.iter_mut() {
                let t = Instant::now();
                let before = blocks.computed();
                match parsed.stage.share(&cx, &set, blocks) {
                    Ok(()) => progress.info(&format!(
                        "analysis blocks: {model} / {}: {}: {} computed here in {:.1} s",
                        info.variant,
                        entry.key,
                        blocks.computed() - before,
                        t.elapsed().as_secs_f64()
                    )),
                    // Work this worker cannot do is left to the finisher, which says why.
                    Err(StageError::Analysis(_)) => {}
                    Err(StageError::Store(e)) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// How a model turns cosines into probabilities: what its embedding parts record
/// (`clipflow.scoring`, `clipflow.logit_scale`, `clipflow.logit_bias`), the scale replaced by
/// `analysis.logit_scale` when the study sets one. Without a record (a store another tool
/// wrote), CLIP's softmax at 100; the flag says whether a record was found.
fn model_scoring(
    metadata: &BTreeMap<String, String>,
    scale_override: Option<f64>,
) -> (Scoring, bool) {
    let number = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let recorded_scale = number("clipflow.logit_scale").filter(|s| *s > 0.0);
    let logit_scale = scale_override.or(recorded_scale).unwrap_or(100.0);
    match (
        metadata.get("clipflow.scoring").map(String::as_str),
        number("clipflow.logit_bias"),
    ) {
        (Some("sigmoid"), Some(logit_bias)) => (
            Scoring::Sigmoid {
                logit_scale,
                logit_bias,
            },
            true,
        ),
        (kind, _) => (
            Scoring::Softmax { logit_scale },
            kind.is_some() || recorded_scale.is_some(),
        ),
    }
}

/// A model's caption and prompt rows (prompts are the `prompt:` ids).
fn model_texts(
    catalog: &Catalog,
    model: &str,
) -> Result<
    (
        Option<crate::store::EmbeddingSet>,
        Option<crate::store::EmbeddingSet>,
    ),
    StoreError,
> {
    let Some(info) = catalog.find(model, "text", "clean") else {
        return Ok((None, None));
    };
    let t = catalog.load(info)?;
    Ok(split_texts(&t))
}

/// A text set's caption rows and prompt rows (the `prompt:` ids), each when there are any.
fn split_texts(
    t: &crate::store::EmbeddingSet,
) -> (
    Option<crate::store::EmbeddingSet>,
    Option<crate::store::EmbeddingSet>,
) {
    let captions = t.subset(|i| !t.ids[i].starts_with("prompt:"));
    let prompts = t.subset(|i| t.ids[i].starts_with("prompt:"));
    (
        (!captions.is_empty()).then_some(captions),
        (!prompts.is_empty()).then_some(prompts),
    )
}

/// A model's text sets other than the clean one (perturbed captions and prompts), in store
/// order.
fn text_variants<'a>(catalog: &'a Catalog, model: &str) -> Vec<&'a crate::store::SetInfo> {
    catalog
        .sets()
        .iter()
        .filter(|s| s.model == model && s.modality == "text" && s.variant != "clean")
        .collect()
}

/// A model's image sets, clean first.
fn image_variants<'a>(catalog: &'a Catalog, model: &str) -> Vec<&'a crate::store::SetInfo> {
    let mut v: Vec<&crate::store::SetInfo> = catalog
        .sets()
        .iter()
        .filter(|s| s.model == model && s.modality == "image")
        .collect();
    v.sort_by_key(|s| s.variant != "clean");
    v
}

/// A stage's result: a failure on the data becomes a note, a failed write stops the analysis.
fn settle(r: Result<(), StageError>, out: &mut Output, what: &str) -> Result<(), AnalyzeError> {
    match r {
        Ok(()) => Ok(()),
        Err(StageError::Analysis(e)) => {
            out.note(format!("{what} failed: {e}"));
            Ok(())
        }
        Err(StageError::Store(e)) => Err(e.into()),
    }
}

/// What the store says about the study: the image variants and the clean image count of its
/// first model.
fn facts_of(catalog: &Catalog) -> Facts {
    let Some(model) = catalog.models().first().map(|m| m.to_string()) else {
        return Facts::default();
    };
    let mut variants: Vec<String> = catalog
        .sets()
        .iter()
        .filter(|s| s.model == model && s.modality == "image")
        .map(|s| s.variant.clone())
        .collect();
    variants.sort_by_key(|v| v != "clean");
    Facts {
        items: catalog.find(&model, "image", "clean").map(|s| s.rows),
        variants,
        models: catalog.models().iter().map(|m| m.to_string()).collect(),
    }
}

/// Removes the files with these extensions from `dir` (a missing folder is fine).
fn clear(dir: &Path, extensions: &[&str]) -> Result<(), StoreError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension()
            .is_some_and(|x| extensions.iter().any(|e| x == *e))
        {
            std::fs::remove_file(&p).map_err(|e| StoreError::io(&p, e))?;
        }
    }
    Ok(())
}

/// The report sections of the stages, in reading order.
pub fn sections() -> Vec<Section> {
    STAGES.iter().map(|e| e.section).collect()
}
