//! Throughput benchmark of the encode stage (run by `scripts/bench_encode`).
//!
//! Prints clipflow's images/s over a folder of JPEGs (read, decode, preprocess, infer, in the
//! overlapped pipeline), bare ONNX Runtime images/s on tensors preprocessed beforehand with the
//! same threads and batch size, their ratio, the CPU time the decode threads spent per image
//! inside the pipeline (beside the model; the one-thread probe times it alone), and this
//! process's peak RSS. `--pipeline-only`
//! skips the bare side (for the memory measurement on large folders).
//!
//! Usage: bench_encode MODEL_DIR IMAGE_DIR [--batch N] [--threads N] [--rounds N] [--pipeline-only]

use std::time::Instant;

use clipflow::augment;
use clipflow::config::{DatasetConfig, DatasetFormat, ModelConfig};
use clipflow::dataset;
use clipflow::encode::preprocess::Mode;
use clipflow::encode::{self, DeviceRequest, Encoder, ImageJob, SessionSettings};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU seconds the decode pool's threads (`clipflow-decode-*`) have run, from the scheduler's
/// own per-thread accounting (`/proc/self/task/*/schedstat`, nanoseconds); NaN where it is not
/// available. What decoding costs inside the pipeline, beside the model, where the one-thread
/// probe above measures it alone.
fn decode_threads_cpu_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut nanos = 0u64;
    let mut found = false;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("clipflow-decode") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(n) = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            nanos += n;
            found = true;
        }
    }
    if found {
        nanos as f64 * 1e-9
    } else {
        f64::NAN
    }
}

fn main() {
    clipflow::util::reuse_freed_buffers();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: bench_encode MODEL_DIR IMAGE_DIR [--batch N] [--threads N] [--rounds N] [--pipeline-only]"
        );
        std::process::exit(2);
    }
    let batch = arg(&args, "--batch", 32);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = arg(&args, "--threads", cores);
    let rounds = arg(&args, "--rounds", 5).max(1);
    let pipeline_only = args.iter().any(|a| a == "--pipeline-only");

    let files = encode::locate(
        &ModelConfig {
            name: Some("bench".into()),
            path: args[1].clone(),
            ..Default::default()
        },
        0,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let settings = SessionSettings {
        device: DeviceRequest::Cpu,
        intra_threads: threads,
    };
    let mut enc = Encoder::load(&files, settings, false, &|w| eprintln!("{w}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let pre = enc.preprocess.clone().expect("an image model");
    let ds = dataset::open(
        &DatasetConfig::new(DatasetFormat::Folder, args[2].clone()),
        0,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let all = ds
        .read_part(0..usize::MAX)
        .unwrap_or_else(|e| panic!("{e}"));
    let n = all.items.len();
    let variants = augment::variants(&[]).unwrap();

    // Bare ONNX Runtime: the same batches of already-preprocessed tensors.
    let (h, w) = enc.input_size;
    let plane = 3 * h * w;
    let sample = &all.items[..batch.min(n)];
    let mut tensor = vec![0.0; sample.len() * plane];
    for (bytes, t) in ds.fetch(sample).into_iter().zip(tensor.chunks_mut(plane)) {
        let crop = pre.load(&bytes.unwrap(), u64::MAX, Mode::Exact).unwrap();
        pre.normalize_rgbx_into(&crop, t);
    }
    for _ in 0..2 {
        enc.embed_pixels(&tensor, sample.len()).unwrap(); // warm-up: arena growth, kernels
    }
    // CPU cost of one image's decode + preprocess on one thread, the pipeline's way (exact
    // mode, region decode): what the pipeline must hide.
    let probe: Vec<Vec<u8>> = ds.fetch(sample).into_iter().map(|b| b.unwrap()).collect();
    let t = Instant::now();
    let mut decode_secs = 0.0;
    let mut out = vec![0.0; plane];
    for bytes in &probe {
        let t0 = Instant::now();
        let img = pre.decode(bytes, u64::MAX, Mode::Exact).unwrap();
        decode_secs += t0.elapsed().as_secs_f64();
        pre.resize_crop_normalize_into(&img, &mut out).unwrap();
    }
    let per_image_ms = t.elapsed().as_secs_f64() * 1e3 / probe.len() as f64;
    println!(
        "decode + preprocess: {per_image_ms:.2} ms/image on one thread ({:.2} ms decode)",
        decode_secs * 1e3 / probe.len() as f64
    );

    // Interleaved rounds: each round runs the pipeline on a slice of the images, then bare
    // inference on as many images, so a drift in the machine's speed (a shared VM, thermal
    // limits) hits both sides alike.
    let pool = encode::decode_pool(0).unwrap();
    let chunk = n.div_ceil(rounds);
    let (mut pipe_rows, mut pipe_secs, mut bare_imgs, mut bare_secs) =
        (0usize, 0.0f64, 0usize, 0.0f64);
    let decode_cpu_before = decode_threads_cpu_secs();
    for r in 0..rounds {
        let items = &all.items[(r * chunk).min(n)..((r + 1) * chunk).min(n)];
        if items.is_empty() {
            break;
        }
        let job = ImageJob {
            dataset: &ds,
            items,
            variants: &variants,
            seed: 0,
            max_pixels: dataset::DEFAULT_MAX_PIXELS,
            mode: Mode::Exact,
            batch_size: batch,
            queue_depth: 3,
            pool: &pool,
        };
        let mut rows = 0usize;
        let t = Instant::now();
        let failures = encode::encode_images::<encode::EncodeError>(
            &mut enc,
            &job,
            &mut |b| {
                rows += b.rows.len();
                Ok(())
            },
            &|_| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(failures.is_empty(), "{failures:?}");
        let secs = t.elapsed().as_secs_f64();
        pipe_rows += rows;
        pipe_secs += secs;
        let mut line = format!("round {r}: clipflow {:.2} images/s", rows as f64 / secs);
        if !pipeline_only {
            // As many images in the same batches as the pipeline ran: full ones, then the
            // remainder (a smaller batch costs more per image).
            let (full, rest) = (items.len() / sample.len(), items.len() % sample.len());
            let t = Instant::now();
            for _ in 0..full {
                enc.embed_pixels(&tensor, sample.len()).unwrap();
            }
            if rest > 0 {
                enc.embed_pixels(&tensor[..rest * plane], rest).unwrap();
            }
            let secs = t.elapsed().as_secs_f64();
            bare_imgs += items.len();
            bare_secs += secs;
            line.push_str(&format!(
                ", bare ORT {:.2} images/s",
                items.len() as f64 / secs
            ));
        }
        eprintln!("{line}");
    }
    let decode_cpu = decode_threads_cpu_secs() - decode_cpu_before;
    let ours = pipe_rows as f64 / pipe_secs;
    println!("images: {n}, batch {batch}, ORT threads {threads}, decode threads {cores}, {rounds} rounds");
    println!("clipflow pipeline: {ours:.2} images/s");
    println!(
        "  its decode threads: {:.2} ms of CPU per image",
        decode_cpu * 1e3 / pipe_rows.max(1) as f64
    );
    if !pipeline_only {
        let bare = bare_imgs as f64 / bare_secs;
        println!("bare ORT:          {bare:.2} images/s");
        println!("ratio:             {:.3}", ours / bare);
    }
    println!("peak RSS:          {:.0} MB", peak_rss_mb());
}
