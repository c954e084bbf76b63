//! Decode and preprocessing cost per image on one core, exact and fast modes, and what fast mode
//! changes (run by `scripts/bench_preprocess`).
//!
//! Rounds are interleaved (each round times every mode on the same images, in turn), and the
//! figures printed are medians over rounds, so a shared machine's drift hits all modes alike.
//! Prints, per mode: decode ms/image, resize+crop+normalise ms/image, their sum, and the decode
//! of the whole image instead of only the region the resize reads; then whole-image decodes
//! with libjpeg's Huffman decoder against clipflow's (full and half scale) and how many files
//! decode to the same pixels with both; then the resampler alone on each instruction set this
//! CPU has; then, with `--embed`, fast mode's distance from exact: mean |Δ| of the tensors, of
//! the pixels (uint8 levels), and the cosine between the two embeddings of each image under
//! the model.
//!
//! Usage: bench_preprocess MODEL_DIR IMAGE_DIR [--rounds N] [--limit N] [--distance] [--embed]

use std::path::PathBuf;

use clipflow::config::ModelConfig;
use clipflow::encode::jpeg::{self, EntropyDecoder};
use clipflow::encode::preprocess::{decode_rgbx, JpegRead, Mode, Preprocess};
use clipflow::encode::resample::{self, Isa, Kernel, Window};
use clipflow::encode::{self, DeviceRequest, Encoder, SessionSettings};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn jpegs(dir: &str, limit: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("jpg") || x.eq_ignore_ascii_case("jpeg"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out.truncate(limit);
    out
}

/// This thread's CPU time in seconds: the machine is shared, and CPU time per image is what a
/// core spends whatever else runs (wall time is printed beside it).
fn cpu_now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Seconds of CPU time to decode every image whole (at the mode's DCT scale), one thread: what
/// [`Preprocess::decode`] costs without its region.
fn time_whole_decode(pre: &Preprocess, files: &[Vec<u8>], mode: Mode) -> f64 {
    let t0 = cpu_now();
    for bytes in files {
        let scale = |w, h| pre.jpeg_scale(mode, w, h);
        let img = decode_rgbx(
            bytes,
            u64::MAX,
            pre.rules.transparency,
            JpegRead {
                scale: &scale,
                ..JpegRead::WHOLE
            },
        );
        std::hint::black_box(img.unwrap());
    }
    cpu_now() - t0
}

/// (decode seconds, preprocess seconds) of CPU time for every image, one thread.
fn time_mode(pre: &Preprocess, files: &[Vec<u8>], mode: Mode, tensor: &mut [f32]) -> (f64, f64) {
    let (mut dec, mut prep) = (0.0, 0.0);
    for bytes in files {
        let t0 = cpu_now();
        let img = pre.decode(bytes, u64::MAX, mode).unwrap();
        let t1 = cpu_now();
        pre.resize_crop_normalize_into(&img, tensor).unwrap();
        let t2 = cpu_now();
        dec += t1 - t0;
        prep += t2 - t1;
    }
    (dec, prep)
}

fn main() {
    clipflow::util::reuse_freed_buffers();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: bench_preprocess MODEL_DIR IMAGE_DIR [--rounds N] [--limit N] [--distance] [--embed]"
        );
        std::process::exit(2);
    }
    let rounds = arg(&args, "--rounds", 7).max(1);
    let limit = arg(&args, "--limit", 200);
    let embed = args.iter().any(|a| a == "--embed");
    let distance = args.iter().any(|a| a == "--distance");
    let files = encode::locate(
        &ModelConfig {
            name: Some("bench".into()),
            path: args[1].clone(),
            ..Default::default()
        },
        0,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let pre = files
        .preprocess()
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("an image model");
    let paths = jpegs(&args[2], limit);
    assert!(!paths.is_empty(), "no JPEGs under {}", args[2]);
    let bytes: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let first = decode_rgbx(&bytes[0], u64::MAX, pre.rules.transparency, JpegRead::WHOLE).unwrap();
    let (oh, ow) = pre
        .output_size()
        .map(|(h, w)| (h as usize, w as usize))
        .unwrap();
    let mut tensor = vec![0.0f32; 3 * oh * ow];
    println!(
        "images: {} JPEGs (first {}x{}) -> {}x{} tensor, {} rounds, resampler {:?}",
        bytes.len(),
        first.width,
        first.height,
        ow,
        oh,
        rounds,
        Isa::detected(),
    );

    // Warm-up: page in the files, fill the coefficient cache.
    time_mode(&pre, &bytes, Mode::Exact, &mut tensor);
    let n = bytes.len() as f64;
    // Per mode: decode, preprocess, total, whole-image decode.
    let mut per = vec![Vec::new(); 8];
    let mut whole_cpu = 0.0;
    let wall = std::time::Instant::now();
    for _ in 0..rounds {
        for (m, mode) in [Mode::Exact, Mode::Fast].into_iter().enumerate() {
            let (d, p) = time_mode(&pre, &bytes, mode, &mut tensor);
            per[m * 4].push(d * 1e3 / n);
            per[m * 4 + 1].push(p * 1e3 / n);
            per[m * 4 + 2].push((d + p) * 1e3 / n);
            let w = time_whole_decode(&pre, &bytes, mode);
            per[m * 4 + 3].push(w * 1e3 / n);
            whole_cpu += w;
        }
    }
    let cpu_total: f64 = per[2].iter().chain(&per[6]).sum::<f64>() * n / 1e3 + whole_cpu;
    println!(
        "CPU time / wall time of the timed loop: {:.2} (1.00 = this thread had a core to itself)",
        cpu_total / wall.elapsed().as_secs_f64()
    );
    for (m, name) in ["exact", "fast"].iter().enumerate() {
        println!(
            "{name:<5} mode: decode {:.3} ms/image/core, preprocess {:.3}, total {:.3} (median of {rounds}); \
             decoding the whole image instead of the region read: {:.3}",
            median(&mut per[m * 4]),
            median(&mut per[m * 4 + 1]),
            median(&mut per[m * 4 + 2]),
            median(&mut per[m * 4 + 3]),
        );
    }

    // The Huffman decoder alone: clipflow's against libjpeg's (jdhuff.c), whole images at full
    // and half scale, interleaved rounds; and whether every file decodes to the same bytes.
    let scales = [8u8, 4];
    let mut huffman = vec![Vec::new(); 4];
    let mut identical = 0;
    for round in 0..rounds {
        for (i, (scale, entropy)) in scales
            .iter()
            .flat_map(|&s| [(s, EntropyDecoder::Libjpeg), (s, EntropyDecoder::Clipflow)])
            .enumerate()
        {
            let t0 = cpu_now();
            for b in &bytes {
                let r = jpeg::decode_with(b, &|_, _| Ok(scale), &|_, _, _, _| None, entropy);
                std::hint::black_box(r.unwrap());
            }
            huffman[i].push((cpu_now() - t0) * 1e3 / n);
        }
        if round == 0 {
            for b in &bytes {
                let decode = |scale, entropy| {
                    jpeg::decode_with(b, &|_, _| Ok(scale), &|_, _, _, _| None, entropy)
                        .map(|r| (r.data, r.entropy))
                };
                let ours = decode(8, EntropyDecoder::Clipflow).unwrap();
                let half = decode(4, EntropyDecoder::Clipflow).unwrap();
                identical += (ours.0 == decode(8, EntropyDecoder::Libjpeg).unwrap().0
                    && half.0 == decode(4, EntropyDecoder::Libjpeg).unwrap().0)
                    as usize;
            }
        }
    }
    println!(
        "whole-image decode, libjpeg's Huffman decoder -> clipflow's: full scale {:.3} -> {:.3} ms, \
         1/2 scale {:.3} -> {:.3} ms (median of {rounds}); same pixels on {identical} of {} files",
        median(&mut huffman[0]),
        median(&mut huffman[1]),
        median(&mut huffman[2]),
        median(&mut huffman[3]),
        bytes.len(),
    );

    // The resampler alone on each instruction set, on the first image's decode (exact mode).
    let (tw, th) = pre.resized_size(first.width, first.height);
    let window = Window {
        left: (tw - ow.min(tw)) / 2,
        top: (th - oh.min(th)) / 2,
        width: ow.min(tw),
        height: oh.min(th),
    };
    let reps = 50;
    let isas = Isa::available();
    let mut times = vec![Vec::new(); isas.len()];
    for _ in 0..rounds {
        for (i, &isa) in isas.iter().enumerate() {
            let t = cpu_now();
            for _ in 0..reps {
                std::hint::black_box(resample::resize_placed(
                    resample::Placed::whole(&first.image),
                    tw,
                    th,
                    window,
                    Kernel::Bicubic,
                    isa,
                ));
            }
            times[i].push((cpu_now() - t) * 1e3 / reps as f64);
        }
    }
    let line: Vec<String> = isas
        .iter()
        .zip(times.iter_mut())
        .map(|(isa, t)| format!("{isa:?} {:.3} ms", median(t)))
        .collect();
    println!(
        "resample {}x{} -> {tw}x{th} (crop {}x{}), bicubic: {}",
        first.width,
        first.height,
        window.width,
        window.height,
        line.join(", ")
    );

    if !embed && !distance {
        return;
    }
    // Fast mode's distance from exact: tensors, pixels and (with --embed) embeddings.
    let settings = SessionSettings {
        device: DeviceRequest::Cpu,
        intra_threads: 0,
    };
    let mut enc = embed.then(|| {
        Encoder::load(&files, settings, false, &|w| eprintln!("{w}"))
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let plane = 3 * oh * ow;
    let (mut abs_tensor, mut abs_levels, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut cosines = Vec::new();
    for chunk in bytes.chunks(32) {
        let mut exact = Vec::with_capacity(chunk.len() * plane);
        let mut fast = Vec::with_capacity(chunk.len() * plane);
        for b in chunk {
            let e = pre.load(b, u64::MAX, Mode::Exact).unwrap();
            let f = pre.load(b, u64::MAX, Mode::Fast).unwrap();
            for (x, y) in e.data.chunks_exact(4).zip(f.data.chunks_exact(4)) {
                for c in 0..3 {
                    abs_levels += (x[c] as f64 - y[c] as f64).abs();
                }
            }
            let (mut te, mut tf) = (vec![0.0; plane], vec![0.0; plane]);
            pre.normalize_rgbx_into(&e, &mut te);
            pre.normalize_rgbx_into(&f, &mut tf);
            abs_tensor += te
                .iter()
                .zip(&tf)
                .map(|(a, b)| (a - b).abs() as f64)
                .sum::<f64>();
            count += plane;
            exact.extend(te);
            fast.extend(tf);
        }
        if let Some(enc) = enc.as_mut() {
            let a = enc.embed_pixels(&exact, chunk.len()).unwrap();
            let b = enc.embed_pixels(&fast, chunk.len()).unwrap();
            for (x, y) in a.chunks_exact(enc.dim).zip(b.chunks_exact(enc.dim)) {
                cosines.push(x.iter().zip(y).map(|(p, q)| (p * q) as f64).sum::<f64>());
            }
        }
    }
    let mut line = format!(
        "fast vs exact over {} images: mean |Δ| tensor {:.4}, pixels {:.3} levels",
        bytes.len(),
        abs_tensor / count as f64,
        abs_levels / count as f64,
    );
    if !cosines.is_empty() {
        let mean_cos = cosines.iter().sum::<f64>() / cosines.len() as f64;
        let min_cos = cosines.iter().cloned().fold(f64::INFINITY, f64::min);
        line.push_str(&format!(
            "; embedding cosine mean {mean_cos:.5}, min {min_cos:.5} ({})",
            args[1]
        ));
    }
    println!("{line}");
}
