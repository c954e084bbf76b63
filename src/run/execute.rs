//! Execution: the plan is cut into parts — (model, modality, chunk of `part_size` items) — and
//! each part is encoded and written as one Parquet file. A shard `I/N` takes every N-th part.
//! A part whose file exists is complete (files appear by atomic rename), so a rerun after a
//! kill, or a second task of a cluster array, skips it: nothing is lost, nothing duplicated.
//! Whichever run finds every part complete merges the error sidecars into `errors.parquet`
//! and writes `manifest.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::plan::Plan;
use crate::augment::Variant;
use crate::dataset::Item;
use crate::encode::{self, EncodeError, Encoder, ImageJob, RowFailure, SessionSettings, TextInput};
use crate::progress::Progress;
use crate::store::{self, EmbeddingRow, ErrorRecord, PartWriter, StoreError};
use crate::util;

/// `--shard I/N`: this process does parts `p` with `p % N == I`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `I/N` with `0 <= I < N`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s}: expected I/N, e.g. 3/16"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s}: I is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s}: N is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {s}: need 0 <= I < N (shards are numbered from 0)"
            ));
        }
        Ok(Shard { index, count })
    }
}

/// Options of one execution.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub shard: Option<Shard>,
    /// Seconds spent loading and planning, for the manifest.
    pub plan_seconds: f64,
}

/// What one execution did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub parts_total: usize,
    pub parts_written: usize,
    pub parts_skipped: usize,
    /// Parts other shards still have to write.
    pub parts_pending: usize,
    pub rows_written: usize,
    pub errors: usize,
    pub complete: bool,
    /// `report.html`, when the run is complete and has an analysis.
    pub report: Option<PathBuf>,
}

/// Why a run failed after planning.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{run_dir}: holds results of a different study (config, models or dataset changed: {what}). Use --out for a new run directory, or delete this one")]
    Mismatch { run_dir: PathBuf, what: String },
    #[error("analysis: {0}")]
    Analyze(#[from] crate::analyze::AnalyzeError),
    #[error("{0}")]
    Other(String),
}

impl RunError {
    /// Exit code: 2 when the user must change something before rerunning, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Mismatch { .. } => 2,
            RunError::Encode(EncodeError::Device(_)) => 2,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Work {
    Images,
    Captions,
    Prompts,
}

impl Work {
    fn modality(self) -> &'static str {
        match self {
            Work::Images => "image",
            _ => "text",
        }
    }
}

/// One part: a model, a kind of work, a range of items (or prompts), a part number.
#[derive(Debug, Clone)]
struct Part {
    model: usize,
    work: Work,
    range: std::ops::Range<usize>,
    number: usize,
}

fn parts(plan: &Plan) -> Vec<Part> {
    let size = plan.study().runtime.part_size;
    let n_items = plan.dataset.items.len();
    let caption_items = if plan.captions { n_items } else { 0 };
    let mut parts = Vec::new();
    for m in 0..plan.models.len() {
        let mut push = |work: Work, total: usize, first_number: usize| -> usize {
            let mut number = first_number;
            for start in (0..total).step_by(size) {
                parts.push(Part {
                    model: m,
                    work,
                    range: start..(start + size).min(total),
                    number,
                });
                number += 1;
            }
            number
        };
        push(Work::Images, n_items, 0);
        let next = push(Work::Captions, caption_items, 0);
        push(Work::Prompts, plan.prompts.len(), next);
    }
    parts
}

/// Runs (this shard of) the plan. Encoders are loaded before any part is written, so a model
/// that does not load fails the run with nothing half-done.
pub fn execute(
    plan: &Plan,
    options: RunOptions,
    progress: &Progress,
) -> Result<RunSummary, RunError> {
    let started = chrono_now();
    let t0 = Instant::now();
    let run_dir = plan.run_dir.clone();
    std::fs::create_dir_all(&run_dir).map_err(|e| StoreError::io(&run_dir, e))?;

    let rt = &plan.study().runtime;
    let settings = SessionSettings {
        device: plan.device,
        intra_threads: rt.threads,
    };
    let mut encoders = Vec::new();
    let mut model_records = Vec::new();
    for m in &plan.models {
        let enc = Encoder::load(&m.files, settings, &|w| progress.warn(w))?;
        progress.info(&format!(
            "model {}: {:?} layout, {}x{} input, {} dimensions, on {}",
            m.files.name,
            m.files.layout,
            enc.input_size.0,
            enc.input_size.1,
            enc.dim,
            enc.placement.device
        ));
        let mut files = Vec::new();
        for f in m.files.all_files() {
            let sha256 = util::sha256_file(&f).map_err(|e| StoreError::io(&f, e))?;
            files.push(json!({"path": f.display().to_string(), "sha256": sha256}));
        }
        model_records.push(json!({
            "name": m.files.name,
            "path": m.files.dir.display().to_string(),
            "layout": m.files.layout,
            "files": files,
            "embedding_dim": enc.dim,
            "input_size": [enc.input_size.0, enc.input_size.1],
            "context_length": enc.tokenizer.context_length,
            "preprocess": enc.preprocess,
            "device": enc.placement,
            "batch_size": m.batch_size,
        }));
        encoders.push(enc);
    }
    let load_seconds = t0.elapsed().as_secs_f64();

    let mut config_json =
        serde_json::to_value(plan.study()).map_err(|e| RunError::Other(e.to_string()))?;
    // The manifest records every stage's settings with its defaults filled in.
    if let (Some(a), Some(obj)) = (&plan.analysis, config_json.as_object_mut()) {
        obj.insert("analysis".into(), a.resolved().clone());
    }
    let identity = study_identity(plan, &config_json, &model_records);
    check_identity(&run_dir, &identity)?;

    let pool = encode::decode_pool(rt.decode_threads).map_err(RunError::Other)?;

    let all_parts = parts(plan);
    let mine: Vec<&Part> = all_parts
        .iter()
        .enumerate()
        .filter(|(i, _)| options.shard.is_none_or(|s| i % s.count == s.index))
        .map(|(_, p)| p)
        .collect();

    let mut summary = RunSummary {
        run_dir: run_dir.clone(),
        parts_total: all_parts.len(),
        parts_written: 0,
        parts_skipped: 0,
        parts_pending: 0,
        rows_written: 0,
        errors: 0,
        complete: false,
        report: None,
    };
    let mut timings: Vec<serde_json::Value> = Vec::new();
    // Group progress per (model, modality).
    for (m, enc) in encoders.iter_mut().enumerate() {
        for modality in ["image", "text"] {
            let todo: Vec<&&Part> = mine
                .iter()
                .filter(|p| p.model == m && p.work.modality() == modality)
                .collect();
            if todo.is_empty() {
                continue;
            }
            let name = plan.models[m].files.name.clone();
            let pending: Vec<&&Part> = todo
                .iter()
                .copied()
                .filter(|p| !store::part_path(&run_dir, &name, modality, p.number).exists())
                .collect();
            summary.parts_skipped += todo.len() - pending.len();
            if pending.is_empty() {
                continue;
            }
            let total: usize = pending.iter().map(|p| p.range.len()).sum();
            let task = progress.task(&format!("{name} {modality}"), total as u64);
            let t = Instant::now();
            for part in pending {
                let (rows, errors) =
                    run_part(plan, enc, &pool, part, &run_dir, &|n| task.advance(n))?;
                summary.parts_written += 1;
                summary.rows_written += rows;
                summary.errors += errors;
            }
            task.finish();
            timings.push(json!({
                "model": name,
                "modality": modality,
                "items": total,
                "seconds": t.elapsed().as_secs_f64(),
            }));
        }
    }
    let encode_seconds = t0.elapsed().as_secs_f64() - load_seconds;

    // Record this process's work for the manifest (several shards may contribute).
    let shard_label = options
        .shard
        .map(|s| format!("shard-{:04}-of-{:04}", s.index, s.count))
        .unwrap_or_else(|| "all".to_string());
    let shard_log = json!({
        "shard": shard_label,
        "started": started,
        "host": hostname(),
        "parts_written": summary.parts_written,
        "parts_skipped": summary.parts_skipped,
        "rows_written": summary.rows_written,
        "seconds": {"plan": options.plan_seconds, "load_models": load_seconds, "encode": encode_seconds},
        "encode": timings,
    });
    let log_path = run_dir
        .join("state")
        .join("shards")
        .join(format!("{shard_label}.json"));
    util::write_atomic(&log_path, shard_log.to_string().as_bytes())
        .map_err(|e| StoreError::io(&log_path, e))?;

    let missing: Vec<&Part> = all_parts
        .iter()
        .filter(|p| {
            let name = &plan.models[p.model].files.name;
            !store::part_path(&run_dir, name, p.work.modality(), p.number).exists()
        })
        .collect();
    summary.parts_pending = missing.len();
    if missing.is_empty() {
        let t = Instant::now();
        let (errors, counts) = finalize(plan, &all_parts, &run_dir)?;
        write_attributes(plan, &run_dir)?;
        // Merging errors and counts only: the analysis reports its own seconds.
        let finalize_seconds = t.elapsed().as_secs_f64();
        summary.errors = errors;
        summary.complete = true;
        let analysis = match &plan.analysis {
            None => serde_json::Value::Null,
            Some(analysis) => {
                let t = Instant::now();
                let done = crate::analyze::analyze(
                    analysis,
                    &run_dir,
                    &store::StoreFormat::Clipflow,
                    plan.study().seed,
                    &run_dir,
                    progress,
                )?;
                for note in &done.notes {
                    progress.warn(note);
                }
                let stage_seconds: serde_json::Map<String, serde_json::Value> = done
                    .seconds
                    .iter()
                    .map(|(k, s)| (k.clone(), json!(s)))
                    .collect();
                json!({
                    "stages": analysis.stage_keys(),
                    "tables": done.tables.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "plots": done.plots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "notes": done.notes,
                    "seconds": t.elapsed().as_secs_f64(),
                    "stage_seconds": stage_seconds,
                })
            }
        };
        write_manifest(
            plan,
            &run_dir,
            ManifestInputs {
                config: config_json,
                identity,
                models: model_records,
                counts,
                errors,
                parts: all_parts.len(),
                finalize_seconds,
                analysis,
            },
        )?;
        let study = plan.study();
        if plan.analysis.is_some() && study.report.enabled {
            let images = crate::report::Images {
                dataset: &plan.dataset,
                max_pixels: plan.max_pixels,
            };
            match crate::report::write_run_report(
                &run_dir,
                &run_dir.join("tables"),
                Some(images),
                &study.report,
                &[],
            ) {
                Ok(path) => summary.report = Some(path),
                // The tables and plots are written; a page that cannot be must not fail the run.
                Err(e) => progress.warn(&format!("report: {e}")),
            }
        }
    }
    Ok(summary)
}

/// Encodes one part and writes it (errors sidecar first, then the part). Returns (rows, errors).
fn run_part(
    plan: &Plan,
    encoder: &mut Encoder,
    pool: &rayon::ThreadPool,
    part: &Part,
    run_dir: &Path,
    advance: &dyn Fn(u64),
) -> Result<(usize, usize), RunError> {
    let model = plan.models[part.model].files.name.clone();
    let modality = part.work.modality();
    let path = store::part_path(run_dir, &model, modality, part.number);
    let mut writer = PartWriter::create(&path, &model, modality, encoder.dim)?;
    let batch_size = plan.models[part.model].batch_size;
    let items: &[Item] = match part.work {
        Work::Prompts => &[],
        _ => &plan.dataset.items[part.range.clone()],
    };
    let mut errors: Vec<ErrorRecord> = Vec::new();
    match part.work {
        Work::Images => {
            let variants: &[Variant] = &plan.variants;
            let job = ImageJob {
                dataset: &plan.dataset,
                items,
                variants,
                seed: plan.study().seed,
                max_pixels: plan.max_pixels,
                batch_size,
                queue_depth: plan.study().runtime.queue_depth,
                pool,
            };
            let mut sink = |batch: encode::EncodedBatch| -> Result<(), RunError> {
                for (k, &(i, v)) in batch.rows.iter().enumerate() {
                    let item = &items[i];
                    let variant = &variants[v];
                    writer.push(
                        &EmbeddingRow {
                            id: &item.id,
                            variant: &variant.name,
                            label: item.label.as_deref(),
                            text: item.caption.as_deref(),
                            noise: variant.kind(),
                            noise_level: variant.level(),
                        },
                        &batch.embeddings[k * batch.dim..(k + 1) * batch.dim],
                    )?;
                }
                Ok(())
            };
            let failures = encode::encode_images(encoder, &job, &mut sink, advance)?;
            for f in failures {
                errors.push(record(plan, &model, modality, items, &f));
            }
        }
        Work::Captions => {
            // Items without a caption simply have no text row; that is not an error.
            let with_caption: Vec<&Item> = items.iter().filter(|i| i.caption.is_some()).collect();
            let texts: Vec<TextInput> = with_caption
                .iter()
                .map(|i| TextInput {
                    text: i.caption.clone().unwrap_or_default(),
                })
                .collect();
            let mut sink = |batch: encode::EncodedBatch| -> Result<(), RunError> {
                for (k, &(i, _)) in batch.rows.iter().enumerate() {
                    let item = with_caption[i];
                    writer.push(
                        &EmbeddingRow {
                            id: &item.id,
                            variant: crate::augment::CLEAN,
                            label: item.label.as_deref(),
                            text: item.caption.as_deref(),
                            noise: "none",
                            noise_level: 0.0,
                        },
                        &batch.embeddings[k * batch.dim..(k + 1) * batch.dim],
                    )?;
                }
                Ok(())
            };
            let skipped = items.len() - with_caption.len();
            let failures = encode::encode_texts(encoder, &texts, batch_size, &mut sink, advance)?;
            advance(skipped as u64);
            for f in failures {
                let item = with_caption[f.index];
                errors.push(ErrorRecord {
                    model: Some(model.clone()),
                    modality: Some(modality.into()),
                    id: item.id.clone(),
                    variant: None,
                    stage: f.stage.into(),
                    source: plan.dataset.source_of(item),
                    reason: f.reason,
                });
            }
        }
        Work::Prompts => {
            let prompts = &plan.prompts[part.range.clone()];
            let texts: Vec<TextInput> = prompts
                .iter()
                .map(|p| TextInput {
                    text: p.text.clone(),
                })
                .collect();
            let mut sink = |batch: encode::EncodedBatch| -> Result<(), RunError> {
                for (k, &(i, _)) in batch.rows.iter().enumerate() {
                    let p = &prompts[i];
                    writer.push(
                        &EmbeddingRow {
                            id: &p.id,
                            variant: crate::augment::CLEAN,
                            label: Some(&p.label),
                            text: Some(&p.text),
                            noise: "none",
                            noise_level: 0.0,
                        },
                        &batch.embeddings[k * batch.dim..(k + 1) * batch.dim],
                    )?;
                }
                Ok(())
            };
            let failures = encode::encode_texts(encoder, &texts, batch_size, &mut sink, advance)?;
            for f in failures {
                errors.push(ErrorRecord {
                    model: Some(model.clone()),
                    modality: Some(modality.into()),
                    id: prompts[f.index].id.clone(),
                    variant: None,
                    stage: f.stage.into(),
                    source: "texts.prompts".into(),
                    reason: f.reason,
                });
            }
        }
    }
    let n_errors = errors.len();
    store::write_errors(
        &store::part_errors_path(run_dir, &model, modality, part.number),
        &errors,
    )?;
    let rows = writer.finish()?;
    Ok((rows, n_errors))
}

fn record(plan: &Plan, model: &str, modality: &str, items: &[Item], f: &RowFailure) -> ErrorRecord {
    let item = &items[f.index];
    ErrorRecord {
        model: Some(model.to_string()),
        modality: Some(modality.to_string()),
        id: item.id.clone(),
        variant: f.variant.map(|v| plan.variants[v].name.clone()),
        stage: f.stage.to_string(),
        source: plan.dataset.source_of(item),
        reason: f.reason.clone(),
    }
}

/// Merges error sidecars into `errors.parquet`; returns (error count, rows per model/modality).
fn finalize(
    plan: &Plan,
    parts: &[Part],
    run_dir: &Path,
) -> Result<(usize, Vec<serde_json::Value>), RunError> {
    let mut all = Vec::new();
    let mut counts: std::collections::BTreeMap<(String, &str), usize> = Default::default();
    for p in parts {
        let name = &plan.models[p.model].files.name;
        let modality = p.work.modality();
        let sidecar = store::part_errors_path(run_dir, name, modality, p.number);
        if sidecar.exists() {
            all.extend(store::read_errors(&sidecar)?);
        }
        let rows = store::read_part_rows(&store::part_path(run_dir, name, modality, p.number))?;
        *counts.entry((name.clone(), modality)).or_default() += rows;
    }
    store::write_errors(&run_dir.join("errors.parquet"), &all)?;
    let counts = counts
        .into_iter()
        .map(
            |((model, modality), rows)| json!({"model": model, "modality": modality, "rows": rows}),
        )
        .collect();
    Ok((all.len(), counts))
}

/// `attributes.parquet`: the item ids and `dataset.attribute_columns` as text, for attribute
/// probing (the store holds only ids, labels and texts).
fn write_attributes(plan: &Plan, run_dir: &Path) -> Result<(), RunError> {
    let columns = &plan.study().dataset.attribute_columns;
    if columns.is_empty() {
        return Ok(());
    }
    let items = &plan.dataset.items;
    let mut table = store::Table::new("attributes").text("id", items.iter().map(|i| i.id.clone()));
    for (c, name) in columns.iter().enumerate() {
        table = table.column(
            name,
            store::Column::Text(
                items
                    .iter()
                    .map(|i| i.attributes.get(c).cloned().flatten())
                    .collect(),
            ),
        );
    }
    store::write_parquet_table(&run_dir.join("attributes.parquet"), &table)?;
    Ok(())
}

struct ManifestInputs {
    config: serde_json::Value,
    identity: serde_json::Value,
    models: Vec<serde_json::Value>,
    counts: Vec<serde_json::Value>,
    errors: usize,
    parts: usize,
    finalize_seconds: f64,
    analysis: serde_json::Value,
}

fn write_manifest(plan: &Plan, run_dir: &Path, m: ManifestInputs) -> Result<(), RunError> {
    let mut shards = Vec::new();
    let shard_dir = run_dir.join("state").join("shards");
    if let Ok(rd) = std::fs::read_dir(&shard_dir) {
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
        {
            if let Some(v) = std::fs::read_to_string(f)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            {
                shards.push(v);
            }
        }
    }
    let d = &plan.dataset;
    let manifest = json!({
        "clipflow_version": crate::VERSION,
        "name": plan.study().name,
        "config_file": plan.config.path.display().to_string(),
        "overrides": plan.config.overrides,
        "config": m.config,
        "config_hash": m.identity["config_hash"],
        "models": m.models,
        "dataset": {
            "format": d.format,
            "source": d.description,
            "fingerprint": d.fingerprint,
            "items": d.items.len(),
            "items_before_sampling": d.total_items,
            "classes": d.labels().len(),
            "notes": d.notes,
        },
        "variants": plan.variants.iter().map(|v| json!({"name": v.name, "noise": v.kind(), "level": v.level()})).collect::<Vec<_>>(),
        "prompts": plan.prompts.len(),
        "counts": {"embeddings": m.counts, "errors": m.errors, "parts": m.parts},
        "stage_timings": shards,
        "finalize_seconds": m.finalize_seconds,
        "analysis": m.analysis,
        "finished": chrono_now(),
    });
    store::write_manifest(run_dir, &manifest)?;
    Ok(())
}

/// What makes two runs' parts interchangeable: the config (less runtime settings, which change
/// speed, not results), the model files and the dataset's items.
fn study_identity(
    plan: &Plan,
    config: &serde_json::Value,
    models: &[serde_json::Value],
) -> serde_json::Value {
    let mut content = config.clone();
    if let Some(obj) = content.as_object_mut() {
        // What does not change the embeddings: a rerun with another analysis or report
        // reuses every part and only redoes the analysis.
        obj.remove("runtime");
        obj.remove("out");
        obj.remove("name");
        obj.remove("analysis");
        obj.remove("report");
    }
    let model_hashes: Vec<&serde_json::Value> = models.iter().map(|m| &m["files"]).collect();
    json!({
        "config_hash": util::sha256_hex(content.to_string().as_bytes()),
        "models_hash": util::sha256_hex(serde_json::to_string(&model_hashes).unwrap_or_default().as_bytes()),
        "dataset_fingerprint": plan.dataset.fingerprint,
        "part_size": plan.study().runtime.part_size,
    })
}

fn check_identity(run_dir: &Path, identity: &serde_json::Value) -> Result<(), RunError> {
    let path = run_dir.join("state").join("study.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let old: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| RunError::Other(format!("{}: {e}", path.display())))?;
            let changed: Vec<&str> = [
                "config_hash",
                "models_hash",
                "dataset_fingerprint",
                "part_size",
            ]
            .into_iter()
            .filter(|k| old.get(*k) != identity.get(*k))
            .collect();
            if changed.is_empty() {
                Ok(())
            } else {
                Err(RunError::Mismatch {
                    run_dir: run_dir.to_path_buf(),
                    what: changed.join(", "),
                })
            }
        }
        Err(_) => util::write_atomic(&path, identity.to_string().as_bytes())
            .map_err(|e| RunError::Store(StoreError::io(&path, e))),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Seconds since the Unix epoch (timestamps in logs; not part of any hashed output).
fn chrono_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shard_parsing() {
        assert_eq!(
            Shard::parse("3/16").unwrap(),
            Shard {
                index: 3,
                count: 16
            }
        );
        assert!(Shard::parse("16/16").is_err());
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("a/2").is_err());
    }
}
