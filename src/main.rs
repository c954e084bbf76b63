//! The `clipflow` command line. Arguments become validated settings here and nowhere else;
//! the work is done by the library's stages.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use clipflow::encode::{self, TextTokenizer, CLIP_CONTEXT};
use clipflow::progress::Progress;
use clipflow::run::{self, RunOptions};
use clipflow::{augment, config, synth};

/// Exit code for a usage or config error (nothing was written).
const USAGE: u8 = 2;
/// Exit code for a run that failed after starting.
const FAILED: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "clipflow",
    version,
    about = "Declarative batch pipeline for studying CLIP-like image-text embedding spaces",
    long_about = "Declarative batch pipeline for studying CLIP-like image-text embedding spaces.\n\n\
        A study is one YAML file: a dataset, noise variants, ONNX models. `clipflow run` encodes \
        every image and text with every model and writes Parquet embeddings, errors.parquet and \
        manifest.json to runs/<name>/.\n\n\
        Exit codes: 0 success, 1 the run failed, 2 usage or config error (nothing written).",
    after_help = "Examples:\n  \
        clipflow run pipelines/demo.yaml\n  \
        clipflow run pipelines/pokemon.yaml --set dataset.path=data/pokemon --set models.0.path=models/clip-vit-b32\n  \
        clipflow run pipelines/dtd.yaml --shard 3/16\n  \
        clipflow validate pipelines/dtd.yaml\n  \
        clipflow inspect tokens --model models/texture-clip \"a photo of a cat\"\n  \
        clipflow synth textures --out data/textures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a study: encode the dataset with every model and write the run directory.
    #[command(after_help = "Examples:\n  \
        clipflow run pipelines/demo.yaml\n  \
        clipflow run pipelines/pokemon.yaml --set dataset.path=data/pokemon --set models.0.path=models/clip-vit-b32\n  \
        clipflow run pipelines/dtd.yaml --shard 3/16 --out /scratch/runs/dtd\n  \
        clipflow run pipelines/dtd.yaml --shard auto --out /shared/runs/dtd   # in a Slurm array task\n  \
        clipflow run pipelines/wds_cifar10.yaml --shard auto   # a tar shard is one part per model\n\n\
        A rerun of the same study resumes: finished parts are skipped. Any number of workers \
        (array tasks, pods, plain runs) may share one run directory: each part is claimed by one \
        worker, and one elected worker writes errors.parquet and manifest.json, runs the analysis \
        (tables/, plots/) and writes report.html, the whole study on one page.")]
    Run {
        /// The study YAML file.
        pipeline: PathBuf,
        /// The run directory (default: `out:` of the study, else runs/<name>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// `I/N`: do only every N-th part, from part I (0-based). `auto`: take I and N from the
        /// scheduler (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, or Kubernetes'
        /// JOB_COMPLETION_INDEX with --shard-count), start with that share, then help with any
        /// part no other worker holds.
        #[arg(long, value_name = "I/N|auto")]
        shard: Option<String>,
        /// With `--shard auto` under a Kubernetes Indexed Job: the number of shards (the Job's
        /// completions); default: the CLIPFLOW_SHARD_COUNT environment variable.
        #[arg(long, value_name = "N")]
        shard_count: Option<usize>,
        /// Override a key of the study, e.g. `--set runtime.device=cpu` or
        /// `--set noise.0.sigma=[0.1,0.2]` (the value is YAML). Repeatable.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        sets: Vec<String>,
        /// Only warnings and errors on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a study without running it: keys, paths, columns, model files, noise levels.
    #[command(
        after_help = "Example:\n  clipflow validate pipelines/dtd.yaml --set dataset.split=test1"
    )]
    Validate {
        pipeline: PathBuf,
        /// Override a key, as for `run`.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        sets: Vec<String>,
    },
    /// Analyse an embedding store: clipflow's run directory, any Parquet with an embedding
    /// column, or clip-retrieval's output folder. Writes tables to DIR/tables, plots to
    /// DIR/plots and the report to DIR/report.html.
    #[command(after_help = "Examples:\n  \
        clipflow analyze runs/demo --config pipelines/demo.yaml\n  \
        clipflow analyze laion-out/ --config analysis.yaml --out runs/laion-analysis\n  \
        clipflow analyze embeddings.parquet --config analysis.yaml --embedding-column clip_vec\n\n\
        The config is a study file or any YAML with an `analysis:` section (and optionally `seed:`).")]
    Analyze {
        /// The store: a folder or a Parquet file (or glob).
        store: PathBuf,
        /// YAML with the `analysis:` section.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Where results go (DIR/tables, DIR/plots, DIR/report.html); default: the store folder.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The store's format; by default guessed from its layout.
        #[arg(long, value_enum, default_value_t = StoreKind::Auto)]
        format: StoreKind,
        /// Generic Parquet: the embedding column.
        #[arg(long, default_value = "embedding")]
        embedding_column: String,
        /// Generic Parquet: the modality of rows without a `modality` column.
        #[arg(long, default_value = "image")]
        modality: String,
        /// The column with each row's class label (default: `label` in Parquet stores; none in
        /// clip-retrieval's metadata, where it is usually another column).
        #[arg(long, value_name = "NAME")]
        label_column: Option<String>,
        /// The column with each row's text or caption (default: `text`; clip-retrieval:
        /// `caption`).
        #[arg(long, value_name = "NAME")]
        text_column: Option<String>,
        /// The column with each row's stable id (default: `id`; clip-retrieval: `key`, else
        /// `image_path`).
        #[arg(long, value_name = "NAME")]
        id_column: Option<String>,
        /// Override a key of the config, as for `run`.
        #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
        sets: Vec<String>,
    },
    /// Look at what a model receives.
    #[command(subcommand)]
    Inspect(Inspect),
    /// Write a generated dataset.
    #[command(subcommand)]
    Synth(synth::SynthCommand),
}

/// Store formats `analyze` reads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StoreKind {
    Auto,
    Clipflow,
    Parquet,
    ClipRetrieval,
}

#[derive(Debug, Subcommand)]
enum Inspect {
    /// Print the token ids the text model receives, as JSON (one list per text).
    #[command(
        after_help = "Example:\n  clipflow inspect tokens --model models/texture-clip \"a photo of a cat\" \"\""
    )]
    Tokens {
        /// The model folder (its tokenizer.json is used).
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// Texts to tokenize.
        texts: Vec<String>,
        /// Context length (default: the tokenizer's `model_max_length`, else 77, CLIP's).
        #[arg(long)]
        context: Option<usize>,
    },
    /// Write the exact float32 tensor [1,3,H,W] the vision model receives, as .npy,
    /// optionally under one noise variant.
    #[command(after_help = "Examples:\n  \
        clipflow inspect preprocess --model models/texture-clip photo.jpg --out photo.npy\n  \
        clipflow inspect preprocess --model models/texture-clip photo.jpg --noise contrast:3 --out c3.npy\n  \
        clipflow inspect preprocess --model models/texture-clip photo.jpg --noise gaussian_noise:1 --seed 7 --id a/photo.jpg --out g1.npy\n\n\
        KIND:LEVEL is an ImageNet-C corruption and severity 1-5 under the reference's names \
        (gaussian_noise, shot_noise, impulse_noise, speckle_noise, defocus_blur, glass_blur, \
        motion_blur, zoom_blur, gaussian_blur, snow, frost, fog, spatter, brightness, contrast, \
        saturate, elastic_transform, pixelate, jpeg_compression), or one of gaussian:SIGMA, \
        gaussian_norm:SIGMA, salt_pepper:AMOUNT, blur:SIGMA, jpeg:QUALITY. Random noise draws \
        from the stream of (--seed, --id, variant): a study's seed and an item's id give that \
        item's variant exactly.")]
    Preprocess {
        /// The model folder: its preprocessor_config.json, with the crop and transparency rules
        /// its clipflow.json records (else transformers' rules for a Hugging Face config).
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// The image file.
        image: PathBuf,
        /// Where to write the .npy file.
        #[arg(long, value_name = "FILE.npy")]
        out: PathBuf,
        /// Largest image (width × height) decoded; bigger headers are refused before any
        /// allocation, as `dataset.max_pixels` does in a run.
        #[arg(long, value_name = "N", default_value_t = clipflow::dataset::DEFAULT_MAX_PIXELS)]
        max_pixels: u64,
        /// `exact` (Pillow's pixels) or `fast` (JPEG DCT-domain downscale first), as
        /// `preprocess.mode` in a study.
        #[arg(long, value_name = "MODE", default_value = "exact", value_parser = ["exact", "fast"])]
        mode: String,
        /// Apply this noise variant at the model's input size, as a study does.
        #[arg(long, value_name = "KIND:LEVEL")]
        noise: Option<String>,
        /// The study seed of the noise's random stream.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The item id of the noise's random stream (default: IMAGE as given).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Frost only: a folder with ImageNet-C's frost photographs (not shipped).
        #[arg(long, value_name = "DIR")]
        frost_textures: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    clipflow::util::reuse_freed_buffers();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            pipeline,
            out,
            shard,
            shard_count,
            sets,
            quiet,
        } => cmd_run(
            &pipeline,
            out.as_deref(),
            shard.as_deref(),
            shard_count,
            &sets,
            quiet,
        ),
        Command::Validate { pipeline, sets } => cmd_validate(&pipeline, &sets),
        Command::Analyze {
            store,
            config,
            out,
            format,
            embedding_column,
            modality,
            label_column,
            text_column,
            id_column,
            sets,
        } => cmd_analyze(
            &store,
            &config,
            out.as_deref(),
            format,
            StoreColumns {
                embedding: embedding_column,
                modality,
                label: label_column,
                text: text_column,
                id: id_column,
            },
            &sets,
        ),
        Command::Inspect(Inspect::Tokens {
            model,
            texts,
            context,
        }) => cmd_tokens(&model, &texts, context),
        Command::Inspect(Inspect::Preprocess {
            model,
            image,
            out,
            max_pixels,
            mode,
            noise,
            seed,
            id,
            frost_textures,
        }) => {
            let mode = if mode == "fast" {
                encode::preprocess::Mode::Fast
            } else {
                encode::preprocess::Mode::Exact
            };
            let noise = NoiseRequest {
                spec: noise,
                seed,
                id: id.unwrap_or_else(|| image.display().to_string()),
                frost_textures,
            };
            cmd_preprocess(&model, &image, &out, max_pixels, mode, &noise)
        }
        Command::Synth(cmd) => match synth::run(&cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.is_usage() => fail(USAGE, &e),
            Err(e) => fail(FAILED, &e),
        },
    }
}

fn fail(code: u8, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(code)
}

fn load_plan(pipeline: &Path, sets: &[String], out: Option<&Path>) -> Result<run::Plan, ExitCode> {
    let loaded = config::load(pipeline, sets).map_err(|e| fail(USAGE, &e))?;
    run::plan(loaded, out).map_err(|e| fail(USAGE, &e))
}

fn cmd_run(
    pipeline: &Path,
    out: Option<&Path>,
    shard: Option<&str>,
    shard_count: Option<usize>,
    sets: &[String],
    quiet: bool,
) -> ExitCode {
    // Before any thread starts: a scheduler's SIGTERM then gives this worker's claims back.
    run::signals::install();
    let t = Instant::now();
    let env = |k: &str| std::env::var(k).ok();
    let sharing = match run::scheduler::resolve(shard, shard_count, &env) {
        Ok(s) => s,
        Err(e) => return fail(USAGE, &e),
    };
    let plan = match load_plan(pipeline, sets, out) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let progress = Progress::new(quiet);
    let gpus = run::scheduler::VisibleGpus::from_env(&env);
    match run::scheduler::check_gpus(&plan.study().runtime.device, &gpus) {
        Ok(Some(note)) => progress.info(&note),
        Ok(None) => {}
        Err(e) => return fail(USAGE, &e),
    }
    if let (Some(s), Some(source)) = (sharing.shard, &sharing.source) {
        progress.info(&format!(
            "shard {}/{} from {source}; then any part no worker holds",
            s.index, s.count
        ));
    }
    for note in plan.dataset.notes.iter().chain(&plan.notes) {
        progress.warn(note);
    }
    progress.info(&format!(
        "{}: {}, {} variants, {} models, {} prompts -> {}",
        plan.study().name,
        item_summary(&plan.dataset),
        plan.variants.len(),
        plan.models.len(),
        plan.prompts.len(),
        plan.run_dir.display()
    ));
    let options = RunOptions {
        shard: sharing.shard,
        elastic: sharing.elastic,
        task: sharing.task,
        plan_seconds: t.elapsed().as_secs_f64(),
    };
    match run::execute(&plan, options, &progress) {
        Ok(s) => {
            progress.info(&format!(
                "parts: {} written, {} already done, {} pending in other workers; {} rows written",
                s.parts_written, s.parts_skipped, s.parts_pending, s.rows_written
            ));
            if s.complete && !s.finisher {
                progress.info(&format!(
                    "complete (finished by another worker or an earlier run): {}",
                    s.run_dir.join("manifest.json").display()
                ));
            } else if !s.complete && s.parts_pending == 0 {
                progress.info("another worker is finishing the run");
            }
            if s.finisher {
                if s.errors > 0 {
                    progress.warn(&format!(
                        "{} inputs could not be processed; see {}",
                        s.errors,
                        s.run_dir.join("errors.parquet").display()
                    ));
                }
                progress.info(&format!(
                    "done: {}",
                    s.run_dir.join("manifest.json").display()
                ));
                if let Some(r) = &s.report {
                    progress.info(&format!("report: {}", r.display()));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.exit_code() as u8, &e),
    }
}

/// `N items (M before sampling)`, or `S shards` for a WebDataset (listed as they are read).
fn item_summary(d: &clipflow::dataset::Dataset) -> String {
    match (d.item_count(), d.total_items(), d.shard_count()) {
        (Some(n), Some(total), _) => format!("{n} items ({total} before sampling)"),
        (_, _, Some(shards)) => format!("{shards} shards (samples are listed as each is read)"),
        _ => "items".into(),
    }
}

fn cmd_validate(pipeline: &Path, sets: &[String]) -> ExitCode {
    let plan = match load_plan(pipeline, sets, None) {
        Ok(p) => p,
        Err(code) => return code,
    };
    println!("{}: ok", pipeline.display());
    println!(
        "  dataset: {} ({:?}), {}, {} classes",
        plan.dataset.description,
        plan.dataset.format,
        item_summary(&plan.dataset),
        plan.dataset.labels().len()
    );
    let names: Vec<&str> = plan.variants.iter().map(|v| v.name.as_str()).collect();
    println!("  variants: {}", names.join(", "));
    if plan.text_variants.len() > 1 {
        let names: Vec<&str> = plan.text_variants.iter().map(|v| v.name.as_str()).collect();
        println!("  text variants: {}", names.join(", "));
    }
    for m in &plan.models {
        let towers: Vec<String> = m
            .files
            .towers()
            .iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect();
        println!(
            "  model {}: {:?} layout at {}, towers: {}",
            m.files.name,
            m.files.layout,
            m.files.dir.display(),
            towers.join(" + ")
        );
    }
    println!(
        "  texts: captions {}, {} prompts",
        if plan.captions { "yes" } else { "no" },
        plan.prompts.len()
    );
    println!("  output: {}", plan.run_dir.display());
    for note in plan.dataset.notes.iter().chain(&plan.notes) {
        println!("  note: {note}");
    }
    ExitCode::SUCCESS
}

/// Column names `clipflow analyze` was given for a store another tool wrote.
struct StoreColumns {
    embedding: String,
    modality: String,
    label: Option<String>,
    text: Option<String>,
    id: Option<String>,
}

fn cmd_analyze(
    store: &Path,
    config_path: &Path,
    out: Option<&Path>,
    kind: StoreKind,
    columns: StoreColumns,
    sets: &[String],
) -> ExitCode {
    use clipflow::store::{detect_format, ClipRetrievalColumns, ParquetColumns, StoreFormat};
    let (seed, section, source) = match config::load_analysis(config_path, sets) {
        Ok(c) => c,
        Err(e) => return fail(USAGE, &e),
    };
    // The store's variants and size are not known yet: those checks run again on the store.
    let plan = match clipflow::analyze::AnalysisPlan::new(&section, &source, &Default::default()) {
        Ok(p) => p,
        Err(e) => return fail(USAGE, &e),
    };
    if !store.exists() && !store.to_string_lossy().contains('*') {
        return fail(USAGE, &format!("{}: no such store", store.display()));
    }
    let defaults = ParquetColumns::default();
    let parquet = ParquetColumns {
        embedding: columns.embedding.clone(),
        default_modality: columns.modality.clone(),
        label: columns.label.clone().or(defaults.label.clone()),
        text: columns.text.clone().or(defaults.text.clone()),
        id: columns.id.clone().or(defaults.id.clone()),
        ..defaults
    };
    let clip_retrieval = ClipRetrievalColumns {
        id: columns.id.clone(),
        text: columns
            .text
            .clone()
            .or(ClipRetrievalColumns::default().text),
        label: columns.label.clone(),
    };
    let format = match kind {
        StoreKind::Auto => match detect_format(store) {
            StoreFormat::Parquet(_) => StoreFormat::Parquet(parquet),
            StoreFormat::ClipRetrieval(_) => StoreFormat::ClipRetrieval(clip_retrieval),
            other => other,
        },
        StoreKind::Clipflow => StoreFormat::Clipflow,
        StoreKind::Parquet => StoreFormat::Parquet(parquet),
        StoreKind::ClipRetrieval => StoreFormat::ClipRetrieval(clip_retrieval),
    };
    if matches!(format, StoreFormat::Clipflow)
        && (columns.label.is_some() || columns.text.is_some() || columns.id.is_some())
    {
        return fail(
            USAGE,
            &"--label-column, --text-column and --id-column are for stores another tool wrote; \
              a clipflow store names its columns itself",
        );
    }
    let out_dir = out.map(Path::to_path_buf).unwrap_or_else(|| {
        if store.is_dir() {
            store.to_path_buf()
        } else {
            store.parent().unwrap_or(Path::new(".")).to_path_buf()
        }
    });
    let progress = Progress::new(false);
    match clipflow::analyze::analyze(&plan, store, &format, seed, &out_dir, &progress) {
        Ok(summary) => {
            for note in &summary.notes {
                progress.warn(note);
            }
            for t in &summary.tables {
                println!("{}", t.display());
            }
            match clipflow::report::write_run_report(
                &out_dir,
                &out_dir.join("tables"),
                None,
                &Default::default(),
                &summary.notes,
            ) {
                Ok(path) => {
                    println!("{}", path.display());
                    ExitCode::SUCCESS
                }
                // The report was asked for (it always is): not writing it is a failure.
                Err(e) => fail(FAILED, &format!("report: {e}")),
            }
        }
        // A setting the store cannot satisfy (a reference model or variant it does not have)
        // is the config's fault, like any other bad setting.
        Err(e @ clipflow::analyze::AnalyzeError::Config(_)) => fail(USAGE, &e),
        Err(e) => fail(FAILED, &e),
    }
}

fn model_files(model: &Path) -> Result<encode::ModelFiles, ExitCode> {
    let cfg = config::ModelConfig {
        name: Some("inspect".into()),
        path: model.display().to_string(),
        ..Default::default()
    };
    encode::locate(&cfg, 0).map_err(|e| fail(USAGE, &e))
}

fn cmd_tokens(model: &Path, texts: &[String], context: Option<usize>) -> ExitCode {
    let files = match model_files(model) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let Some(tokenizer) = &files.tokenizer else {
        return fail(
            USAGE,
            &format!("{}: the model has no text tower", model.display()),
        );
    };
    let context = context
        .or_else(|| {
            TextTokenizer::max_length_from_files(tokenizer, files.tokenizer_config.as_deref())
        })
        .unwrap_or(CLIP_CONTEXT);
    let tok = match TextTokenizer::from_files(tokenizer, files.tokenizer_config.as_deref(), context)
    {
        Ok(t) => t,
        Err(e) => return fail(USAGE, &e),
    };
    let mut rows = Vec::new();
    for t in texts {
        match tok.encode(t) {
            Ok((ids, _)) => rows.push(ids),
            Err(e) => return fail(FAILED, &e),
        }
    }
    println!("{}", serde_json::to_string(&rows).unwrap_or_default());
    ExitCode::SUCCESS
}

/// `inspect preprocess --noise`: the variant and its random stream.
struct NoiseRequest {
    spec: Option<String>,
    seed: u64,
    id: String,
    frost_textures: Option<PathBuf>,
}

fn cmd_preprocess(
    model: &Path,
    image: &Path,
    out: &Path,
    max_pixels: u64,
    mode: encode::preprocess::Mode,
    noise: &NoiseRequest,
) -> ExitCode {
    let files = match model_files(model) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let pre = match files.preprocess() {
        Ok(Some(p)) => p,
        Ok(None) => {
            return fail(
                USAGE,
                &format!("{}: the model has no image tower", model.display()),
            )
        }
        Err(e) => return fail(USAGE, &e),
    };
    let frost = noise
        .frost_textures
        .as_ref()
        .map(|p| p.display().to_string());
    let variant = match noise
        .spec
        .as_deref()
        .map(|spec| augment::variant_from_spec(spec, frost.as_deref()))
        .transpose()
    {
        Ok(v) => v,
        Err(e) => return fail(USAGE, &format!("--noise {e}")),
    };
    let bytes = match std::fs::read(image) {
        Ok(b) => b,
        Err(e) => return fail(USAGE, &format!("{}: {e}", image.display())),
    };
    let tensor = pre
        .load(&bytes, max_pixels, mode)
        .map_err(|f| format!("{}: {}", f.stage, f.reason))
        .and_then(|crop| {
            let mut t = vec![0.0f32; crop.width * crop.height * 3];
            match variant
                .as_ref()
                .and_then(|v| v.noise.as_ref().map(|n| (v, n)))
            {
                None => pre.normalize_rgbx_into(&crop, &mut t),
                Some((v, n)) => {
                    // The same steps, in the same order, as a study's images.
                    let mut pixels = pre.pixels_of(&crop);
                    let mut rng = augment::rng_for(noise.seed, &noise.id, v);
                    n.apply_pixels(&mut pixels, &mut rng)
                        .map_err(|e| format!("augment: {e}"))?;
                    pre.normalize_into(&pixels, &mut t);
                    n.apply_normalized(&mut t, &mut rng);
                }
            }
            Ok((crop.height, crop.width, t))
        });
    match tensor {
        Ok((h, w, t)) => match write_npy(out, &[1, 3, h, w], &t) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(FAILED, &format!("{}: {e}", out.display())),
        },
        Err(reason) => fail(FAILED, &format!("{}: {reason}", image.display())),
    }
}

/// NumPy .npy v1.0, little-endian float32, C order.
fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    // Pad so that the data starts at a multiple of 64 bytes, ending the header with '\n'.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    clipflow::util::write_atomic(path, &bytes)
}
