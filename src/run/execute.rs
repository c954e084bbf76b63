//! Execution: the plan is cut into parts — (model, modality, chunk of `part_size` items) — and
//! each part is encoded and written as one Parquet file. A part whose file exists is complete
//! (files appear by atomic rename), so a rerun after a kill skips it. Workers sharing the run
//! directory (array tasks, pods, plain concurrent runs) claim each part before encoding it, so
//! none is done twice, and one elected worker finishes: it merges the error sidecars into
//! `errors.parquet`, runs the analysis and writes `manifest.json` and `report.html` (see
//! `share.rs`). A shard `I/N` limits a worker to every N-th part; `--shard auto` prefers them.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::plan::Plan;
use super::share;
use crate::augment::Variant;
use crate::dataset::Item;
use crate::encode::{
    self, model, EncodeError, Encoder, ImageJob, RowFailure, SessionSettings, TextInput,
};
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
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub shard: Option<Shard>,
    /// Also take parts outside the shard that no worker holds (`--shard auto`, or no shard).
    pub elastic: bool,
    /// The scheduler task this worker runs as (see `scheduler::task_identity`).
    pub task: Option<String>,
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
    /// This worker finished the run (merged, analysed, wrote the manifest).
    pub finisher: bool,
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
    #[error(transparent)]
    Dataset(#[from] crate::dataset::DatasetError),
    #[error("{path} was not written: {message}. The embeddings, tables and plots are complete; rerun the same command to write it")]
    Report { path: PathBuf, message: String },
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

/// Image and caption parts follow [`crate::dataset::Dataset::part_ranges`] (`part_size` items,
/// or one WebDataset shard each); prompt parts are `part_size` prompts.
fn parts(plan: &Plan) -> Vec<Part> {
    let size = plan.study().runtime.part_size;
    let item_ranges = plan.dataset.part_ranges(size);
    let caption_ranges = if plan.captions {
        item_ranges.clone()
    } else {
        Vec::new()
    };
    let n = plan.prompts.len();
    let prompt_ranges: Vec<_> = (0..n).step_by(size).map(|s| s..(s + size).min(n)).collect();
    let mut parts = Vec::new();
    for (m, model) in plan.models.iter().enumerate() {
        // Only the towers the model has (and the study uses) are encoded.
        let none: &[std::ops::Range<usize>] = &[];
        let (images, captions, prompts) = (
            if model.files.image.is_some() {
                &item_ranges[..]
            } else {
                none
            },
            if model.files.text.is_some() {
                &caption_ranges[..]
            } else {
                none
            },
            if model.files.text.is_some() {
                &prompt_ranges[..]
            } else {
                none
            },
        );
        let mut push = |work: Work, ranges: &[std::ops::Range<usize>], first_number: usize| {
            for (k, range) in ranges.iter().enumerate() {
                parts.push(Part {
                    model: m,
                    work,
                    range: range.clone(),
                    number: first_number + k,
                });
            }
            first_number + ranges.len()
        };
        push(Work::Images, images, 0);
        let next = push(Work::Captions, captions, 0);
        push(Work::Prompts, prompts, next);
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
    // What `parts` gives text parts for.
    let encodes_text = plan.captions || !plan.prompts.is_empty();
    for m in &plan.models {
        let enc = Encoder::load(&m.files, settings, encodes_text, &|w| progress.warn(w))?;
        let closed: String = enc
            .towers_not_opened()
            .iter()
            .map(|(t, why)| format!(" ({} tower not opened: {why})", model::tower_name(*t)))
            .collect();
        progress.info(&format!(
            "model {}: {:?} layout, {}x{} input, {} dimensions, on {}{closed}",
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
        // Towers, pooling, projection, scoring, sizes: the encoder describes itself.
        let mut record = enc.describe();
        record["files"] = json!(files);
        record["batch_size"] = json!(m.batch_size);
        model_records.push(record);
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
    let part_file = |p: &Part| {
        let name = &plan.models[p.model].files.name;
        store::part_path(&run_dir, name, p.work.modality(), p.number)
    };
    let mut summary = RunSummary {
        run_dir: run_dir.clone(),
        parts_total: all_parts.len(),
        parts_written: 0,
        parts_skipped: 0,
        parts_pending: 0,
        rows_written: 0,
        errors: 0,
        complete: false,
        finisher: false,
        report: None,
    };
    let worker = share::Worker::join(&run_dir, rt.claim_timeout, options.task.clone())?;
    if worker.finished()? {
        if all_parts.iter().all(|p| part_file(p).exists()) {
            summary.parts_skipped = all_parts.len();
            summary.complete = true;
            summary.report = Some(run_dir.join("report.html")).filter(|p| p.exists());
            return Ok(summary);
        }
        // Parts were deleted after the run finished: redo them, then finish again.
        worker.reopen()?;
    }
    let shard_label = options
        .shard
        .map(|s| format!("{}/{}", s.index, s.count))
        .unwrap_or_else(|| "all".to_string());
    worker.write_log(json!({
        "shard": shard_label,
        "elastic": options.elastic,
        "cuda_visible_devices": std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        "devices": encoders.iter().map(|e| &e.placement).collect::<Vec<_>>(),
        "seconds": {"plan": options.plan_seconds, "load_models": load_seconds},
    }))?;

    // Claim parts in this worker's order until none is left that it may take; parts held by
    // workers that missed heartbeats are waited for and taken over.
    let order = share::preference(all_parts.len(), options.shard, options.elastic);
    loop {
        let mut held: Vec<share::Holder> = Vec::new();
        for (m, enc) in encoders.iter_mut().enumerate() {
            for modality in ["image", "text"] {
                let group: Vec<usize> = order
                    .iter()
                    .copied()
                    .filter(|&i| {
                        all_parts[i].model == m && all_parts[i].work.modality() == modality
                    })
                    .collect();
                // Text parts encode each caption or prompt once per text variant.
                let per_item = if modality == "text" {
                    plan.text_variants.len()
                } else {
                    1
                };
                let group_open = |group: &[usize]| -> usize {
                    group
                        .iter()
                        .filter(|&&i| !part_file(&all_parts[i]).exists())
                        .map(|&i| all_parts[i].range.len() * per_item)
                        .sum()
                };
                let mut task = None;
                for &i in &group {
                    let part = &all_parts[i];
                    let claim = match worker.claim_part(i, &part_file(part))? {
                        share::PartClaim::Mine(c) => c,
                        share::PartClaim::Held(h) => {
                            held.push(h);
                            continue;
                        }
                        share::PartClaim::Done => continue,
                    };
                    // A WebDataset part's item count is known only once its shard is read:
                    // count shards.
                    let by_shard = plan.dataset.parts_are_shards();
                    let task = task.get_or_insert_with(|| {
                        // Items not yet written by anyone; other workers may take some of them.
                        let open: usize = group_open(&group);
                        let name = &plan.models[m].files.name;
                        let unit = if by_shard { " (shards)" } else { "" };
                        progress.task(&format!("{name} {modality}{unit}"), open as u64)
                    });
                    let t = Instant::now();
                    let record = |rows: usize, errors: usize| {
                        worker.record_part(
                            &claim,
                            i,
                            json!({
                                "model": plan.models[m].files.name,
                                "modality": modality,
                                "number": part.number,
                                "items": part.range.len(),
                                "rows": rows,
                                "errors": errors,
                                "seconds": t.elapsed().as_secs_f64(),
                            }),
                        )
                    };
                    let (rows, errors) = run_part(
                        plan,
                        enc,
                        &pool,
                        part,
                        &run_dir,
                        &|n| {
                            if !by_shard {
                                task.advance(n)
                            }
                        },
                        &record,
                    )?;
                    if by_shard {
                        task.advance(part.range.len() as u64);
                    }
                    claim.release()?;
                    summary.parts_written += 1;
                    summary.rows_written += rows;
                    summary.errors += errors;
                }
                if let Some(task) = task {
                    task.finish();
                }
            }
        }
        match share::wait_for(&held, worker.settings()) {
            Some(pause) => std::thread::sleep(pause),
            None => break,
        }
    }

    // A worker of an array whose analysis can be shared stays for it: while the missing parts
    // are all in the hands of live workers (their stripes, or elastic ones), it waits for them.
    // A part no live worker may take needs a worker yet to come, so it leaves.
    let sharing = options.shard.is_some() && plan.analysis.is_some();
    if sharing {
        // Only the parts still missing are looked at again: a part, once written, stays.
        let mut missing: Vec<usize> = (0..all_parts.len()).collect();
        loop {
            missing.retain(|&i| !part_file(&all_parts[i]).exists());
            if missing.is_empty() || !worker.others_cover(&missing) {
                break;
            }
            // Short once only the last parts are in flight: the first worker to see the store
            // complete starts on the analysis blocks at once, and the others should join it
            // before it has taken them all. Longer while many are missing, so that a large
            // array does not flood a shared file system with lookups.
            let pause = if missing.len() <= 16 { 50 } else { 500 };
            std::thread::sleep(Duration::from_millis(pause));
        }
    }
    let missing = all_parts.iter().filter(|p| !part_file(p).exists()).count();
    summary.parts_pending = missing;
    summary.parts_skipped = order.len().saturating_sub(summary.parts_written + missing);
    if missing > 0 {
        return Ok(summary);
    }
    // Every part exists. In a sharded run (an array), every worker first takes blocks of the
    // analysis's per-query work (retrieval ranks), so the finisher does not rank every query
    // alone; the tables are the same bytes either way.
    let block_share = worker.block_share(options.shard);
    let share_blocks = |wait: bool| -> Result<(), RunError> {
        // The finisher joins whenever any worker of the run shares blocks, so that it waits for
        // the ones they hold before reading and removing them.
        let join = sharing || (wait && worker.any_sharded());
        match (&plan.analysis, join) {
            (Some(analysis), true) => Ok(crate::analyze::share(
                analysis,
                &run_dir,
                &store::StoreFormat::Clipflow,
                plan.study().seed,
                &crate::analyze::Blocks::new(&run_dir, Some(&block_share), wait),
                progress,
            )?),
            _ => Ok(()),
        }
    };
    if !worker.finished()? {
        share_blocks(false)?;
    }
    // One worker, elected by an atomic create, finishes.
    let finish = loop {
        match worker.elect_finisher()? {
            share::Election::Finisher(claim) => break Some(claim),
            share::Election::Finished => {
                summary.complete = true;
                break None;
            }
            share::Election::Busy(h) => match share::wait_for(&[h], worker.settings()) {
                Some(pause) => std::thread::sleep(pause),
                None => break None,
            },
        }
    };
    if let Some(finish) = finish {
        progress.info(&format!("finishing the run as worker {}", worker.name()));
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
                // Blocks other workers still hold are waited for; dead ones' are taken over.
                share_blocks(true)?;
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
                finished_by: worker.name().to_string(),
            },
        )?;
        let study = plan.study();
        if plan.analysis.is_some() && study.report.enabled {
            let images = crate::report::Images {
                dataset: &plan.dataset,
                max_pixels: plan.max_pixels,
            };
            // The report was asked for: a page that cannot be written (a full disk) fails the
            // run. Everything before it is in place, so a rerun only redoes the analysis.
            let path = crate::report::write_run_report(
                &run_dir,
                &run_dir.join("tables"),
                Some(images),
                &study.report,
                &[],
            )
            .map_err(|e| RunError::Report {
                path: run_dir.join("report.html"),
                message: e.to_string(),
            })?;
            summary.report = Some(path);
        }
        crate::analyze::Blocks::new(&run_dir, None, false).clear()?;
        let removed = worker.clean_up()?;
        if !removed.is_empty() {
            progress.info(&format!(
                "removed {} temporary files left by stopped workers",
                removed.len()
            ));
        }
        finish.complete()?;
        summary.finisher = true;
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
    before_commit: &dyn Fn(usize, usize) -> Result<(), RunError>,
) -> Result<(usize, usize), RunError> {
    let model = plan.models[part.model].files.name.clone();
    let modality = part.work.modality();
    let path = store::part_path(run_dir, &model, modality, part.number);
    let mut writer =
        PartWriter::create_scored(&path, &model, modality, encoder.dim, Some(&encoder.scoring))?;
    let batch_size = plan.models[part.model].batch_size;
    let listed = match part.work {
        Work::Prompts => Default::default(),
        _ => plan.dataset.read_part(part.range.clone())?,
    };
    let items: &[Item] = &listed.items;
    let mut errors: Vec<ErrorRecord> = Vec::new();
    // What a shard's listing could not use is the dataset's error, recorded once: by the
    // first model's image part of that shard.
    if part.model == 0 && part.work == Work::Images {
        errors.extend(listed.problems.iter().map(|p| ErrorRecord {
            model: None,
            modality: None,
            id: p.id.clone(),
            variant: None,
            stage: "read".into(),
            source: p.source.clone(),
            reason: p.reason.clone(),
        }));
    }
    match part.work {
        Work::Images => {
            let variants: &[Variant] = &plan.variants;
            let job = ImageJob {
                dataset: &plan.dataset,
                items,
                variants,
                seed: plan.study().seed,
                max_pixels: plan.max_pixels,
                mode: plan.study().preprocess.mode,
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
                            text: item.captions.first().map(String::as_str),
                            noise: variant.kind(),
                            noise_level: variant.level(),
                            item_id: Some(&item.id),
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
        Work::Captions | Work::Prompts => {
            // Every caption (or prompt) in every text variant (`super::texts`). Items without a
            // caption simply have no text row; that is not an error.
            let (rows, unit_ends) = match part.work {
                Work::Captions => super::texts::caption_rows(plan, items),
                _ => {
                    let rows = super::texts::prompt_rows(plan, &plan.prompts[part.range.clone()]);
                    let ends = (1..=rows.len()).collect();
                    (rows, ends)
                }
            };
            let texts: Vec<TextInput> = rows
                .iter()
                .map(|r| TextInput {
                    text: r.text.clone(),
                })
                .collect();
            let mut sink = |batch: encode::EncodedBatch| -> Result<(), RunError> {
                for (k, &(i, _)) in batch.rows.iter().enumerate() {
                    let r = &rows[i];
                    writer.push(
                        &EmbeddingRow {
                            id: &r.id,
                            variant: &r.variant.name,
                            label: r.label,
                            text: Some(&r.text),
                            noise: r.variant.kind(),
                            noise_level: r.variant.level(),
                            item_id: r.item_id,
                        },
                        &batch.embeddings[k * batch.dim..(k + 1) * batch.dim],
                    )?;
                }
                Ok(())
            };
            // Progress counts (item, variant) units: one is done when its last caption is.
            let (rows_done, units_done) = (Cell::new(0usize), Cell::new(0usize));
            let per_row = |n: u64| {
                rows_done.set(rows_done.get() + n as usize);
                let complete = unit_ends.partition_point(|&e| e <= rows_done.get());
                advance((complete - units_done.get()) as u64);
                units_done.set(complete);
            };
            let failures = encode::encode_texts(encoder, &texts, batch_size, &mut sink, &per_row)?;
            advance((unit_ends.len() - units_done.get()) as u64);
            for f in failures {
                let r = &rows[f.index];
                errors.push(ErrorRecord {
                    model: Some(model.clone()),
                    modality: Some(modality.into()),
                    id: r.id.to_string(),
                    variant: r.error_variant(),
                    stage: f.stage.into(),
                    source: r
                        .item
                        .map(|item| plan.dataset.source_of(item))
                        .unwrap_or_else(|| "texts.prompts".into()),
                    reason: f.reason,
                });
            }
        }
    }
    let n_errors = errors.len();
    before_commit(writer.rows(), n_errors)?;
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
    let Some(items) = plan.dataset.item_table() else {
        return Ok(()); // attribute columns are a Parquet key
    };
    let mut table =
        store::Table::new("attributes").text("id", (0..items.len()).map(|i| items.id(i)));
    for (c, name) in columns.iter().enumerate() {
        table = table.column(
            name,
            store::Column::Text(
                (0..items.len())
                    .map(|i| items.attribute(i, c).map(str::to_string))
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
    finished_by: String,
}

fn write_manifest(plan: &Plan, run_dir: &Path, m: ManifestInputs) -> Result<(), RunError> {
    let shards = share::stage_timings(run_dir);
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
            "items": d.item_count(),
            "items_before_sampling": d.total_items(),
            "shards": d.shard_count(),
            "classes": d.labels().len(),
            "notes": d.notes,
        },
        // How images became tensors: `exact` (Pillow's pixels) or `fast` (JPEG DCT-domain
        // downscale first), and the resampler's instruction set (the same bits on any).
        "preprocess": {
            "mode": plan.study().preprocess.mode,
            "resampler": crate::encode::resample::Isa::detected(),
        },
        "variants": plan.variants.iter().map(|v| json!({"name": v.name, "noise": v.kind(), "level": v.level()})).collect::<Vec<_>>(),
        "text_variants": plan.text_variants.iter().map(|v| json!({"name": v.name, "noise": v.kind(), "level": v.level()})).collect::<Vec<_>>(),
        "notes": plan.notes,
        "prompts": plan.prompts.len(),
        "counts": {"embeddings": m.counts, "errors": m.errors, "parts": m.parts},
        "stage_timings": shards,
        "finalize_seconds": m.finalize_seconds,
        "finished_by": m.finished_by,
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
    let models_hash = models_hash(models);
    json!({
        "config_hash": util::sha256_hex(content.to_string().as_bytes()),
        "models_hash": models_hash,
        "dataset_fingerprint": plan.dataset.fingerprint,
        "part_size": plan.study().runtime.part_size,
    })
}

/// The models' part of a run's identity: each model's files, and its crop and transparency
/// rules where they are not the ones every clipflow before them applied (half to even,
/// dropped), so a run an older clipflow began resumes exactly when its pixels would be the
/// same, and never mixes the two.
fn models_hash(models: &[serde_json::Value]) -> String {
    let entries: Vec<serde_json::Value> = models
        .iter()
        .map(|m| {
            let pre = &m["preprocess"];
            let rules = [&pre["crop_rounding"], &pre["transparency"]];
            if pre.is_null() || rules == [&json!("half_even"), &json!("drop")] {
                m["files"].clone()
            } else {
                json!({"files": m["files"], "preprocess": rules})
            }
        })
        .collect();
    util::sha256_hex(
        serde_json::to_string(&entries)
            .unwrap_or_default()
            .as_bytes(),
    )
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
    fn models_hash_changes_with_the_rules_only_where_they_changed_the_pixels() {
        use serde_json::json;
        let files = json!([{"path": "m/model.onnx", "sha256": "ab"}]);
        let model = |crop: &str, alpha: &str| {
            json!({"files": files,
                   "preprocess": {"crop_rounding": crop, "transparency": alpha}})
        };
        let before = super::models_hash(&[json!({"files": files})]);
        assert_eq!(super::models_hash(&[model("half_even", "drop")]), before);
        let floor = super::models_hash(&[model("floor", "drop")]);
        let white = super::models_hash(&[model("half_even", "white")]);
        assert!(floor != before && white != before && floor != white);
    }

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
