//! Throughput benchmark of the encode stage (run by `scripts/bench_encode`).
//!
//! Prints clipflow's images/s over a folder of JPEGs (read, decode, preprocess, infer, in the
//! overlapped pipeline), bare ONNX Runtime images/s on tensors preprocessed beforehand with the
//! same threads and batch size, their ratio, and this process's peak RSS.
//!
//! Usage: bench_encode MODEL_DIR IMAGE_DIR [--batch N] [--threads N] [--bare-batches N]

use std::time::Instant;

use clipflow::augment;
use clipflow::config::{DatasetConfig, DatasetFormat, ModelConfig, PathList, SampleConfig};
use clipflow::dataset;
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: bench_encode MODEL_DIR IMAGE_DIR [--batch N] [--threads N] [--bare-batches N]"
        );
        std::process::exit(2);
    }
    let batch = arg(&args, "--batch", 32);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = arg(&args, "--threads", cores);
    let bare_batches = arg(&args, "--bare-batches", 8);

    let files = encode::locate(
        &ModelConfig {
            name: Some("bench".into()),
            path: args[1].clone(),
            vision_path: None,
            text_path: None,
            batch_size: None,
        },
        0,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let settings = SessionSettings {
        device: DeviceRequest::Cpu,
        intra_threads: threads,
    };
    let mut enc =
        Encoder::load(&files, settings, &|w| eprintln!("{w}")).unwrap_or_else(|e| panic!("{e}"));
    let ds = dataset::open(
        &DatasetConfig {
            format: DatasetFormat::Folder,
            path: PathList::One(args[2].clone()),
            image_column: None,
            caption_column: None,
            label_column: None,
            id_column: None,
            split: None,
            extensions: None,
            sample: SampleConfig::default(),
            max_pixels: None,
        },
        0,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let n = ds.items.len();
    let variants = augment::variants(&[]).unwrap();

    // Bare ONNX Runtime: the same batches of already-preprocessed tensors.
    let (h, w) = enc.input_size;
    let plane = 3 * h * w;
    let sample = &ds.items[..batch.min(n)];
    let mut tensor = Vec::with_capacity(sample.len() * plane);
    for (item, bytes) in sample.iter().zip(ds.fetch(sample)) {
        let rgb = encode::preprocess::decode(&bytes.unwrap(), u64::MAX).unwrap();
        let px = enc.preprocess.to_pixels(&rgb).unwrap();
        let mut t = vec![0.0; plane];
        enc.preprocess.normalize_into(&px, &mut t);
        tensor.extend(t);
        let _ = item;
    }
    // Warm up (arena growth, kernel selection), then time bare inference before and after the
    // pipeline run; their mean guards against the machine's speed drifting in between.
    for _ in 0..2 {
        enc.embed_pixels(&tensor, sample.len()).unwrap();
    }
    let bare_rate = |enc: &mut Encoder| {
        let t = Instant::now();
        for _ in 0..bare_batches {
            enc.embed_pixels(&tensor, sample.len()).unwrap();
        }
        (bare_batches * sample.len()) as f64 / t.elapsed().as_secs_f64()
    };
    let bare_before = bare_rate(&mut enc);

    // clipflow: read + decode + preprocess overlapped with inference.
    let pool = encode::decode_pool(0).unwrap();
    let job = ImageJob {
        dataset: &ds,
        items: &ds.items,
        variants: &variants,
        seed: 0,
        max_pixels: dataset::DEFAULT_MAX_PIXELS,
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
    let ours = rows as f64 / t.elapsed().as_secs_f64();
    assert!(failures.is_empty(), "{failures:?}");
    let bare_after = bare_rate(&mut enc);
    let bare = (bare_before + bare_after) / 2.0;

    println!("images: {n}, batch {batch}, ORT threads {threads}, decode threads {cores}");
    println!("clipflow pipeline: {ours:.2} images/s");
    println!("bare ORT:          {bare:.2} images/s (before {bare_before:.2}, after {bare_after:.2})");
    println!("ratio:             {:.3}", ours / bare);
    println!("peak RSS:          {:.0} MB", peak_rss_mb());
}
