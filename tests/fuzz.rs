//! Bounded-time mutation fuzzing of what users hand clipflow (issue 12, item 11): the study
//! YAML, image bytes (through the run path's decode-preprocess-augment code, through a real
//! `clipflow run`, and through `clipflow inspect preprocess`), and Hugging Face Parquet files.
//!
//! Each target mutates a few seed inputs (bit flips, interesting integers written over header
//! fields, dictionary tokens, splices, truncations) and checks the invariants of the issue: no
//! panic, no abort, no single allocation over 1 GiB and no more than 3 GiB live (an allocator
//! wrapper refuses them and names the case), no case slower than 20 s, every item embedded or
//! ledgered.
//!
//! The run is deterministic given the seed: case `n` of a target depends only on (seed, target,
//! n), never on timing, so a failure is reproduced from the line it prints:
//!
//!   CLIPFLOW_FUZZ_SEED=<s> CLIPFLOW_FUZZ_CASE=<n> cargo test --test fuzz <target>
//!
//! The failing input is also written to `target/fuzz-failures/`. Budgets: CI uses the defaults
//! (about a minute of CPU for the whole binary); `scripts/fuzz` runs longer with a fresh seed.
//!   CLIPFLOW_FUZZ_SECONDS  seconds per target (default: each target's own, ~10)
//!   CLIPFLOW_FUZZ_SEED     the seed (default 12)
//!   CLIPFLOW_FUZZ_CASE     run only this case (with CLIPFLOW_FUZZ_SAVE=1, save its input)
//!   CLIPFLOW_FUZZ_CASE_SECONDS  a case slower than this fails (default 20, a debug build)
//!
//! WebDataset: `fuzz_webdataset_reader` is [`dataset_target`] with tar seeds.
//!
//! A case that never returns (a parser looping forever: a YAML tag once did) is caught by a
//! watchdog that saves its input, prints its reproduction line and ends the binary.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use clipflow::config::{self, DatasetConfig, DatasetFormat, NoiseConfig};
use clipflow::dataset;
use clipflow::encode::{preprocess, Preprocess};
use common::*;
use parquet::arrow::ArrowWriter;

// ---- allocation guard --------------------------------------------------------------------

/// Largest single allocation any input may cause. The largest legitimate one is a decoded
/// image at the pixel limit: 89.5 M pixels × 4 channels × 2 bytes = 716 MB.
const MAX_ONE_ALLOCATION: usize = 1 << 30;
/// Most bytes live at once across the test binary's threads.
const MAX_LIVE: usize = 3 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Set when an allocation was refused; the case that caused it fails.
static REFUSED: AtomicBool = AtomicBool::new(false);

struct Guard;

impl Guard {
    fn admit(size: usize) -> bool {
        let live = LIVE.load(Ordering::Relaxed);
        if size > MAX_ONE_ALLOCATION || live.saturating_add(size) > MAX_LIVE {
            REFUSED.store(true, Ordering::SeqCst);
            // No allocation in here: write the numbers with a stack buffer.
            let mut buf = [0u8; 96];
            let mut n = 0;
            for part in [
                &b"fuzz: refused an allocation of "[..],
                digits(size as u64, &mut [0u8; 20]),
                &b" bytes ("[..],
                digits(live as u64, &mut [0u8; 20]),
                &b" live)\n"[..],
            ] {
                buf[n..n + part.len()].copy_from_slice(part);
                n += part.len();
            }
            unsafe { libc::write(2, buf.as_ptr().cast(), n) };
            return false;
        }
        true
    }
}

fn digits(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let admitted = if new_size > MAX_ONE_ALLOCATION {
            Self::admit(new_size)
        } else {
            new_size <= layout.size() || Self::admit(new_size - layout.size())
        };
        if !admitted {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GUARD: Guard = Guard;

// ---- randomness and mutation -------------------------------------------------------------

/// SplitMix64: tiny, seedable, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn for_case(seed: u64, target: &str, case: u64) -> Rng {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in target.bytes().chain(case.to_le_bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
        Rng(h)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that break size arithmetic: zero, one, powers of two and their neighbours, the
/// extremes of every width.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
];

/// How a target wants its inputs mutated.
struct Mutation<'a> {
    seeds: &'a [Vec<u8>],
    /// Tokens worth inserting or writing over (format keywords, hostile values).
    dictionary: &'a [&'a [u8]],
    /// Line-level edits too (YAML).
    text: bool,
    /// Aim half the byte edits at the last quarter (Parquet keeps its metadata at the end).
    tail: bool,
    /// Aim half the byte edits at the first 64 bytes (image headers: sizes, depths, counts).
    head: bool,
}

impl Mutation<'_> {
    /// A mutated copy of one seed, and which seed it came from.
    fn input(&self, rng: &mut Rng) -> (usize, Vec<u8>) {
        let from = rng.below(self.seeds.len());
        let mut data = self.seeds[from].clone();
        let most = if rng.chance(4) { 16 } else { 4 };
        let rounds = 1 + rng.below(most);
        for _ in 0..rounds {
            self.mutate(rng, &mut data);
        }
        (from, data)
    }

    fn position(&self, rng: &mut Rng, len: usize) -> usize {
        if self.tail && len > 8 && rng.chance(2) {
            len - 1 - rng.below(len / 4 + 1).min(len - 1)
        } else if self.head && rng.chance(2) {
            rng.below(len.min(64))
        } else {
            rng.below(len.max(1))
        }
    }

    fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        if data.is_empty() {
            data.extend_from_slice(rng.pick::<&[u8]>(self.dictionary));
            return;
        }
        if self.head && rng.chance(6) {
            // A size field of the header claiming a huge (or zero) image; half the time both
            // width and height, which is what a decompression bomb claims.
            let v = *rng.pick(&[0u64, 1, 0x7fff, 0xffff, 0x10000, 0x7fff_ffff, 0xffff_ffff]);
            let both = rng.chance(2);
            for second in [false, true] {
                if second && !both {
                    break;
                }
                if let Some((at, width, big_endian)) = image_size_field(data, second, rng) {
                    let bytes: Vec<u8> = if big_endian {
                        v.to_be_bytes()[8 - width..].to_vec()
                    } else {
                        v.to_le_bytes()[..width].to_vec()
                    };
                    if at + width <= data.len() {
                        data[at..at + width].copy_from_slice(&bytes);
                    }
                }
            }
            return;
        }
        let ops = if self.text { 13 } else { 10 };
        let at = self.position(rng, data.len());
        match rng.below(ops) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = rng.next() as u8,
            2 | 3 => {
                // An interesting integer over a header field, in either byte order.
                let v = *rng.pick(INTERESTING);
                let width = *rng.pick(&[1usize, 2, 4, 8]);
                let bytes: Vec<u8> = if rng.chance(2) {
                    v.to_le_bytes()[..width].to_vec()
                } else {
                    v.to_be_bytes()[8 - width..].to_vec()
                };
                let end = (at + width).min(data.len());
                data[at..end].copy_from_slice(&bytes[..end - at]);
            }
            4 => {
                let token = rng.pick(self.dictionary);
                data.splice(at..at, token.iter().copied());
            }
            5 => {
                let token = rng.pick(self.dictionary);
                let end = (at + token.len()).min(data.len());
                data.splice(at..end, token.iter().copied());
            }
            6 => {
                let n = 1 + rng.below(64.min(data.len() - at));
                data.drain(at..at + n);
            }
            7 => {
                let n = 1 + rng.below(64.min(data.len() - at));
                let chunk: Vec<u8> = data[at..at + n].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, chunk);
            }
            8 => data.truncate(at),
            9 => {
                // Splice in a piece of another seed.
                let other = rng.pick(self.seeds);
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below(256.min(other.len() - from));
                    let end = (at + n).min(data.len());
                    data.splice(at..end, other[from..from + n].iter().copied());
                }
            }
            op => {
                let mut lines: Vec<Vec<u8>> =
                    data.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
                let i = rng.below(lines.len());
                match op {
                    10 => {
                        let line = lines[i].clone();
                        let j = rng.below(lines.len());
                        lines.insert(j, line);
                    }
                    11 => {
                        lines.remove(i);
                    }
                    _ => {
                        // Indent or dedent: moves a key to another mapping.
                        if rng.chance(2) {
                            lines[i].splice(0..0, *b"  ");
                        } else if lines[i].starts_with(b"  ") {
                            lines[i].drain(..2);
                        }
                    }
                }
                *data = lines.join(&b'\n');
            }
        }
    }
}

/// Where an image format keeps a width or height: (offset, bytes, big-endian). The fields a
/// decompression bomb lies in.
fn image_size_field(data: &[u8], height: bool, rng: &mut Rng) -> Option<(usize, usize, bool)> {
    let second = height as usize;
    if data.starts_with(b"\x89PNG") {
        Some((16 + 4 * second, 4, true))
    } else if data.starts_with(b"BM") {
        Some((18 + 4 * second, 4, false))
    } else if data.starts_with(b"GIF8") {
        // The logical screen, or the first image descriptor's size.
        match data
            .iter()
            .position(|&b| b == 0x2c)
            .filter(|_| rng.chance(2))
        {
            Some(d) => Some((d + 5 + 2 * second, 2, false)),
            None => Some((6 + 2 * second, 2, false)),
        }
    } else if data.starts_with(b"RIFF") && data.get(12..16) == Some(b"VP8X") {
        Some((24 + 3 * second, 3, false))
    } else if data.starts_with(b"RIFF") && data.get(12..16) == Some(b"VP8L") {
        // 14-bit fields packed after the signature byte: write over both.
        Some((21, 4, false))
    } else if data.starts_with(b"\xff\xd8") {
        // Start of frame: FF C0..C2, length, precision, height, width.
        let sof = data
            .windows(2)
            .position(|w| w[0] == 0xff && (0xc0..=0xc2).contains(&w[1]))?;
        Some((sof + 5 + 2 * second, 2, true))
    } else {
        None
    }
}

// ---- the harness -------------------------------------------------------------------------

/// A temporary folder on tmpfs when there is one: cases write files (and clipflow fsyncs its
/// outputs), which on a busy disk costs more than the case itself.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn fuzz_seed() -> u64 {
    env_u64("CLIPFLOW_FUZZ_SEED").unwrap_or(12)
}

/// Runs cases of `target` for its time budget (at least `min_cases`), each a mutated input
/// handed to `check` with the index of its seed. A case fails when `check` says so, panics, or makes an allocation the
/// guard refuses. Panics at the end with every failing case and how to reproduce it.
fn fuzz(
    target: &str,
    default_seconds: u64,
    min_cases: u64,
    mutation: &Mutation<'_>,
    mut check: impl FnMut(usize, &[u8]) -> Result<(), String>,
) {
    let seed = fuzz_seed();
    let budget = Duration::from_secs(env_u64("CLIPFLOW_FUZZ_SECONDS").unwrap_or(default_seconds));
    let only = env_u64("CLIPFLOW_FUZZ_CASE");
    let case_limit = Duration::from_secs(env_u64("CLIPFLOW_FUZZ_CASE_SECONDS").unwrap_or(20));
    let start = Instant::now();
    let watchdog = Watchdog::start(target, seed, case_limit);
    let mut failures = Vec::new();
    let mut case = only.unwrap_or(0);
    let mut cases = 0u64;
    let mut slowest = (0, Duration::ZERO);
    loop {
        let (from, input) = mutation.input(&mut Rng::for_case(seed, target, case));
        let t = Instant::now();
        watchdog.begin(case, &input);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(from, &input)));
        watchdog.end();
        let took = t.elapsed();
        if took > slowest.1 {
            slowest = (case, took);
        }
        let refused = REFUSED.swap(false, Ordering::SeqCst);
        let problem = match outcome {
            Err(p) => Some(format!(
                "panicked: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
            Ok(_) if refused => Some("an allocation was refused (see stderr)".to_string()),
            Ok(Err(m)) => Some(m),
            // Work out of proportion to a few kilobytes of input (a resize of a claimed
            // 23×65535 image took a minute): a denial of service even when it ends.
            Ok(Ok(())) if took > case_limit => Some(format!(
                "took {:.1} s (limit {} s, CLIPFLOW_FUZZ_CASE_SECONDS)",
                took.as_secs_f64(),
                case_limit.as_secs()
            )),
            Ok(Ok(())) => None,
        };
        let dir = root().join("target/fuzz-failures");
        let saved = dir.join(format!("{target}-{seed}-{case}.bin"));
        if problem.is_some() || (only.is_some() && std::env::var_os("CLIPFLOW_FUZZ_SAVE").is_some())
        {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(&saved, &input);
        }
        if let Some(problem) = problem {
            failures.push(format!(
                "{target} case {case}: {problem}\n  input: {}\n  reproduce: CLIPFLOW_FUZZ_SEED={seed} CLIPFLOW_FUZZ_CASE={case} cargo test --test fuzz {target}",
                saved.display()
            ));
        }
        cases += 1;
        case += 1;
        if only.is_some() || failures.len() >= 5 {
            break;
        }
        if cases >= min_cases && start.elapsed() >= budget {
            break;
        }
    }
    eprintln!(
        "fuzz {target}: {cases} cases in {:.1} s (seed {seed}; slowest: case {} in {:.2} s)",
        start.elapsed().as_secs_f64(),
        slowest.0,
        slowest.1.as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A case that never returns cannot be timed after the fact: this thread watches the
/// running case and, past three times the case limit, saves its input, prints how to
/// reproduce it and ends the test binary, so a hang fails in seconds instead of eating CI's
/// whole time budget.
struct Watchdog {
    running: Arc<std::sync::Mutex<Option<RunningCase>>>,
}

/// The case being run: its number, when it began, its input.
type RunningCase = (u64, Instant, Vec<u8>);

impl Watchdog {
    fn start(target: &str, seed: u64, case_limit: Duration) -> Watchdog {
        let running: Arc<std::sync::Mutex<Option<RunningCase>>> = Arc::default();
        let watched = Arc::clone(&running);
        let target = target.to_string();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let Ok(guard) = watched.lock() else { return };
            if let Some((case, since, input)) = guard.as_ref() {
                if since.elapsed() > case_limit * 3 {
                    let dir = root().join("target/fuzz-failures");
                    let saved = dir.join(format!("{target}-{seed}-{case}.bin"));
                    let _ = std::fs::create_dir_all(&dir);
                    let _ = std::fs::write(&saved, input);
                    eprintln!(
                        "{target} case {case}: still running after {:.0} s (a hang)\n  input: {}\n  reproduce: CLIPFLOW_FUZZ_SEED={seed} CLIPFLOW_FUZZ_CASE={case} cargo test --test fuzz {target}",
                        since.elapsed().as_secs_f64(),
                        saved.display()
                    );
                    std::process::exit(101);
                }
            }
        });
        Watchdog { running }
    }

    fn begin(&self, case: u64, input: &[u8]) {
        if let Ok(mut guard) = self.running.lock() {
            *guard = Some((case, Instant::now(), input.to_vec()));
        }
    }

    fn end(&self) {
        if let Ok(mut guard) = self.running.lock() {
            *guard = None;
        }
    }
}

// ---- target: the study YAML --------------------------------------------------------------

const YAML_TOKENS: &[&[u8]] = &[
    b"name",
    b"seed",
    b"out",
    b"dataset",
    b"format",
    b"path",
    b"image_column",
    b"caption_column",
    b"label_column",
    b"id_column",
    b"split",
    b"extensions",
    b"sample",
    b"classes",
    b"per_class",
    b"limit",
    b"attribute_columns",
    b"max_pixels",
    b"max_file_bytes",
    b"allow_paths_outside",
    b"noise",
    b"kind",
    b"sigma",
    b"units",
    b"amount",
    b"quality",
    b"models",
    b"vision_path",
    b"text_path",
    b"batch_size",
    b"texts",
    b"captions",
    b"prompts",
    b"templates",
    b"file",
    b"humanize",
    b"runtime",
    b"device",
    b"threads",
    b"decode_threads",
    b"part_size",
    b"queue_depth",
    b"analysis",
    b"retrieval",
    b"zero_shot",
    b"cluster",
    b"probe",
    b"similarity",
    b"projection",
    b"dimension_sweep",
    b"subspaces",
    b"topology",
    b"attributes",
    b"report",
    b"k",
    b"methods",
    b"perplexities",
    b"dims",
    b"rank",
    b"max_points",
    b"variants",
    b": ",
    b":",
    b"- ",
    b"\n",
    b"\n  ",
    b"\n    - ",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"'",
    b"\"",
    b"#",
    b"&a ",
    b"*a",
    b"<<: *a",
    b"!!binary ",
    b"!!str ",
    b"!tag ",
    b"~",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e308",
    b"-1e308",
    b".nan",
    b".inf",
    b"-.inf",
    b"18446744073709551616",
    b"9223372036854775807",
    b"0x7fffffff",
    b"../../escaped",
    b"/abs/path",
    b"..",
    b"\\",
    b"\"\\u0000\"",
    b"\t",
    b"\r\n",
    b"---\n",
    b"...\n",
    b"? ",
    b"|\n  ",
    b">\n  ",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{a: &a [*a, *a, *a, *a], b: [*a, *a, *a, *a]}",
];

fn yaml_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = ["demo", "dtd", "pokemon"]
        .iter()
        .map(|p| std::fs::read(root().join(format!("pipelines/{p}.yaml"))).unwrap())
        .collect();
    seeds.push(
        b"name: t\ndataset:\n  format: folder\n  path: data/x\nmodels:\n  - path: models/m\n"
            .to_vec(),
    );
    seeds.push(
        b"name: t\nseed: 3\ndataset: &d\n  format: parquet\n  path: [a.parquet, b/*.parquet]\n  sample: {classes: 2, per_class: 3}\nmodels:\n  - {path: m, name: x, batch_size: 4}\nnoise:\n  - {kind: gaussian, sigma: [0.1, 0.2], units: normalized}\n  - {kind: jpeg, quality: 30}\nanalysis:\n  retrieval: {k: [1, 5]}\n  projection:\n    perplexities: [5]\n"
            .to_vec(),
    );
    seeds
}

#[test]
fn fuzz_yaml_config() {
    let seeds = yaml_seeds();
    let mutation = Mutation {
        seeds: &seeds,
        dictionary: YAML_TOKENS,
        text: true,
        tail: false,
        head: false,
    };
    let path = Path::new("fuzz.yaml");
    fuzz("fuzz_yaml_config", 10, 200, &mutation, |_, input| {
        let text = String::from_utf8_lossy(input);
        // Some cases also carry `--set` overrides made of the same material.
        let mut sets = Vec::new();
        if input.len() % 3 == 0 {
            let mut rng = Rng::for_case(input.len() as u64, "sets", 0);
            let key = String::from_utf8_lossy(rng.pick::<&[u8]>(YAML_TOKENS)).into_owned();
            let value = String::from_utf8_lossy(rng.pick::<&[u8]>(YAML_TOKENS)).into_owned();
            sets.push(format!("{key}.{}={value}", rng.below(3)));
        }
        match config::parse(path, &text, &sets) {
            Ok(study) => {
                // What plan and execute do with a parsed study before touching the disk:
                // noise variants, the analysis plan (whose errors locate keys in the text).
                let variants = clipflow::augment::variants(&study.noise)
                    .map(|v| v.into_iter().map(|v| v.name).collect())
                    .unwrap_or_default();
                if let Some(section) = &study.analysis {
                    let source = config::Source {
                        path: path.to_path_buf(),
                        text: text.to_string(),
                        overrides: sets
                            .iter()
                            .filter_map(|s| config::Override::parse(s).ok())
                            .collect(),
                    };
                    let facts = clipflow::analyze::Facts {
                        variants,
                        items: Some(input.len() % 50),
                        models: vec!["m".to_string()],
                    };
                    if let Err(e) = clipflow::analyze::AnalysisPlan::new(section, &source, &facts) {
                        let m = e.to_string();
                        if !m.starts_with("fuzz.yaml") {
                            return Err(format!("analysis error does not name the file: {m}"));
                        }
                        return Ok(());
                    }
                }
                // execute records the resolved config in the manifest.
                serde_json::to_value(&study).map_err(|e| format!("serialise: {e}"))?;
            }
            Err(e) => {
                let m = e.to_string();
                if !m.starts_with("fuzz.yaml") && !m.starts_with("--set") {
                    return Err(format!("error does not name the file: {m}"));
                }
            }
        }
        Ok(())
    });
}

// ---- targets: image decoding -------------------------------------------------------------

const IMAGE_TOKENS: &[&[u8]] = &[
    b"\x89PNG\r\n\x1a\n",
    b"IHDR",
    b"IDAT",
    b"IEND",
    b"PLTE",
    b"tRNS",
    b"acTL",
    b"fcTL",
    b"\xff\xd8\xff",
    b"\xff\xc0",
    b"\xff\xc2",
    b"\xff\xc4",
    b"\xff\xda",
    b"\xff\xd9",
    b"\xff\xdd",
    b"\xff\xee",
    b"Adobe",
    b"GIF89a",
    b"GIF87a",
    b"NETSCAPE2.0",
    b"\x21\xf9\x04",
    b"\x2c",
    b"BM",
    b"RIFF",
    b"WEBP",
    b"VP8 ",
    b"VP8L",
    b"VP8X",
    b"ALPH",
    b"ANIM",
    b"ANMF",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x00\x01\x00\x00",
];

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Small images in every format and colour type the decoder takes: small keeps cases fast.
fn image_seeds() -> Vec<Vec<u8>> {
    use image::{DynamicImage, ImageFormat, Luma, Rgb, Rgba};
    let rgb = DynamicImage::ImageRgb8(image::RgbImage::from_fn(23, 17, |x, y| {
        Rgb([(x * 11) as u8, (y * 15) as u8, ((x + y) * 7) as u8])
    }));
    let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(9, 14, |x, y| {
        Rgba([(x * 25) as u8, (y * 17) as u8, 90, (x * y) as u8])
    }));
    let gray = DynamicImage::ImageLuma8(image::GrayImage::from_fn(16, 5, |x, _| {
        Luma([x as u8 * 16])
    }));
    let gray16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(7, 7, |x, y| {
        Luma([(x * 9000 + y) as u16])
    }));
    let mut seeds = vec![
        encode(&rgb, ImageFormat::Png),
        encode(&rgba, ImageFormat::Png),
        encode(&gray, ImageFormat::Png),
        encode(&gray16, ImageFormat::Png),
        encode(&rgb, ImageFormat::Jpeg),
        encode(&gray, ImageFormat::Jpeg),
        encode(&rgb, ImageFormat::Gif),
        encode(&rgba, ImageFormat::Gif),
        encode(&rgb, ImageFormat::Bmp),
        encode(&rgba, ImageFormat::Bmp),
        encode(&rgb, ImageFormat::WebP),
        encode(&rgba, ImageFormat::WebP),
    ];
    for f in [
        "tiny.jpg",
        "bilevel.png",
        "gif16.gif",
        "palette.png",
        "palette_trns.png",
        "exif_rotated.jpg",
        "cmyk.jpg",
    ] {
        seeds.push(std::fs::read(fixture(&format!("images/{f}"))).unwrap());
    }
    seeds
}

fn image_mutation(seeds: &[Vec<u8>]) -> Mutation<'_> {
    Mutation {
        seeds,
        dictionary: IMAGE_TOKENS,
        text: false,
        tail: false,
        head: true,
    }
}

/// Every noise kind, so the augment code sees what the decoder lets through.
fn all_variants() -> Vec<clipflow::augment::Variant> {
    let noise: Vec<NoiseConfig> = serde_norway::from_str(
        "- {kind: gaussian, sigma: 0.1}\n- {kind: gaussian, sigma: 0.5, units: normalized}\n- {kind: salt_pepper, amount: 0.1}\n- {kind: blur, sigma: 2}\n- {kind: jpeg, quality: 20}\n",
    )
    .unwrap();
    clipflow::augment::variants(&noise).unwrap()
}

/// `dataset.max_pixels` for the in-process image targets.
const FUZZ_MAX_PIXELS: u64 = 4_000_000;

#[test]
fn fuzz_image_run_path() {
    let seeds = image_seeds();
    let pre = Preprocess::from_file(&fixture("models/xenova/preprocessor_config.json")).unwrap();
    let variants = all_variants();
    let plane = {
        let (h, w) = pre.output_size().unwrap();
        3 * h as usize * w as usize
    };
    fuzz(
        "fuzz_image_run_path",
        12,
        50,
        &image_mutation(&seeds),
        |_, input| {
            // As encode::pipeline::prepare_item does. The pixel limit is a user setting; a
            // small one keeps a debug build from spending seconds resizing an allowed 80-Mpixel
            // claim, while the check under test (limit before allocation) is the same.
            let mode = if input.len() % 2 == 0 {
                preprocess::Mode::Exact
            } else {
                preprocess::Mode::Fast
            };
            let Ok(crop) = pre.load(input, FUZZ_MAX_PIXELS, mode) else {
                return Ok(());
            };
            let base = pre.pixels_of(&crop);
            // Every variant on one case in four: noise in a debug build is slow, and decoding
            // is what the bytes reach.
            let every = input.len() % 4 == 0;
            for v in variants.iter().filter(|v| every || v.noise.is_none()) {
                let mut tensor = vec![0.0f32; plane];
                match &v.noise {
                    None => pre.normalize_into(&base, &mut tensor),
                    Some(noise) => {
                        let mut rng = clipflow::augment::rng_for(1, "fuzz", v);
                        if noise.on_normalized() {
                            pre.normalize_into(&base, &mut tensor);
                            noise.apply_normalized(&mut tensor, &mut rng);
                        } else {
                            let mut pixels = base.clone();
                            if noise.apply_pixels(&mut pixels, &mut rng).is_err() {
                                continue;
                            }
                            pre.normalize_into(&pixels, &mut tensor);
                        }
                    }
                }
                if tensor.iter().any(|x| !x.is_finite()) {
                    return Err(format!("variant {}: non-finite tensor value", v.name));
                }
            }
            Ok(())
        },
    );
}

/// clipflow's Huffman decoder against libjpeg's (`jdhuff.c`) on mutated JPEGs, restart
/// intervals and optimised tables among the seeds: the same pixels at every DCT scale, or the
/// same error. Inputs holding 0xFF 0xFF are passed over: a 0xFF 0xFF … 0x00 run inside entropy
/// data is the one documented difference (libjpeg's answer there depends on its buffering;
/// see src/encode/jpeg/huffman.rs).
#[test]
fn fuzz_jpeg_entropy_decoder_against_libjpeg() {
    use clipflow::encode::jpeg::{decode_with, EntropyDecoder};
    let mut seeds = Vec::new();
    for f in [
        "restart_blocks.jpg",
        "restart_rows.jpg",
        "tiny.jpg",
        "gray.jpg",
        "cmyk.jpg",
        "exif_rotated.jpg",
    ] {
        seeds.push(std::fs::read(fixture(&format!("images/{f}"))).unwrap());
    }
    fuzz(
        "fuzz_jpeg_entropy_decoder_against_libjpeg",
        10,
        50,
        &image_mutation(&seeds),
        |_, input| {
            if input.windows(2).any(|w| w == [0xFF, 0xFF]) {
                return Ok(());
            }
            // A small pixel limit: a mutated header may claim any size.
            let plan = |scale: u8| {
                move |w: usize, h: usize| {
                    if w * h > 1 << 20 {
                        Err("too big".to_string())
                    } else {
                        Ok(scale)
                    }
                }
            };
            for scale in [8u8, 4, 1] {
                let plan = plan(scale);
                let decode = |entropy| decode_with(input, &plan, &|_, _, _, _| None, entropy);
                match (
                    decode(EntropyDecoder::Clipflow),
                    decode(EntropyDecoder::Libjpeg),
                ) {
                    (Ok(a), Ok(b)) if a.data == b.data => {}
                    (Ok(_), Ok(_)) => return Err(format!("scale {scale}/8: pixels differ")),
                    (Err(a), Err(b)) if a == b => {}
                    (a, b) => {
                        return Err(format!(
                            "scale {scale}/8: clipflow {:?}, libjpeg {:?}",
                            a.map(|_| ()),
                            b.map(|_| ())
                        ))
                    }
                }
            }
            Ok(())
        },
    );
}

/// Runs the `clipflow` binary under an address-space limit and a deadline. `None` when it
/// ran past the deadline.
fn clipflow_limited(
    args: &[&str],
    memory: u64,
    deadline: Duration,
) -> Option<std::process::Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipflow"));
    cmd.args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: memory as libc::rlim_t,
                rlim_max: memory as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("clipflow starts");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An exit the user can act on: 0, or 1/2 with an `error:` line. Anything else (a signal, an
/// abort, a panic's 101) is a crash.
fn orderly(o: &Option<std::process::Output>) -> Result<(), String> {
    let Some(o) = o else {
        return Err("still running at the deadline".into());
    };
    let stderr = String::from_utf8_lossy(&o.stderr);
    match o.status.code() {
        Some(0) => Ok(()),
        Some(1 | 2) if stderr.contains("error: ") => Ok(()),
        code => Err(format!(
            "exit {code:?} ({}): {}",
            std::os::unix::process::ExitStatusExt::signal(&o.status)
                .map(|s| format!("signal {s}"))
                .unwrap_or_default(),
            stderr.chars().take(400).collect::<String>()
        )),
    }
}

#[test]
fn fuzz_inspect_preprocess() {
    let seeds = image_seeds();
    let tmp = scratch();
    let image = tmp.path().join("input.img");
    let out = tmp.path().join("out.npy");
    let model = fixture("models/xenova");
    fuzz(
        "fuzz_inspect_preprocess",
        12,
        30,
        &image_mutation(&seeds),
        |_, input| {
            std::fs::write(&image, input).unwrap();
            let _ = std::fs::remove_file(&out);
            let o = clipflow_limited(
                &[
                    "inspect",
                    "preprocess",
                    "--model",
                    model.to_str().unwrap(),
                    image.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ],
                2 << 30,
                // Past the per-case limit anyway; this only stops a hang.
                Duration::from_secs(40),
            );
            orderly(&o)?;
            if o.unwrap().status.success()
                && std::fs::metadata(&out).map(|m| m.len()).ok() != Some(128 + 3 * 224 * 224 * 4)
            {
                return Err("exit 0 without a [1,3,224,224] .npy".into());
            }
            Ok(())
        },
    );
}

/// A real `clipflow run` over a folder of mutated images: every image is embedded or in
/// errors.parquet, whatever the bytes.
#[test]
fn fuzz_image_run_end_to_end() {
    let seeds = image_seeds();
    let mutation = image_mutation(&seeds);
    let seed = fuzz_seed();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let n = env_u64("CLIPFLOW_FUZZ_RUN_IMAGES").unwrap_or(40);
    let exts = ["png", "jpg", "gif", "bmp", "webp"];
    for case in 0..n {
        let (_, input) =
            mutation.input(&mut Rng::for_case(seed, "fuzz_image_run_end_to_end", case));
        let class = format!("c{}", case % 3);
        std::fs::create_dir_all(data.join(&class)).unwrap();
        std::fs::write(
            data.join(&class)
                .join(format!("{case:04}.{}", exts[case as usize % exts.len()])),
            input,
        )
        .unwrap();
    }
    let s = study(
        tmp.path(),
        &format!(
            "name: fuzz\ndataset:\n  format: folder\n  path: {}\nnoise:\n  - {{kind: gaussian, sigma: 0.1}}\n  - {{kind: jpeg, quality: 20}}\nmodels:\n  - path: {}\n    name: m\nruntime:\n  part_size: 16\n",
            data.display(),
            fixture("models/optimum").display()
        ),
    );
    let out = tmp.path().join("run");
    let o = clipflow_limited(
        &[
            "run",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
        6 << 30,
        Duration::from_secs(300),
    );
    orderly(&o).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let o = o.unwrap();
    assert!(
        o.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Each image: 3 embedded variants, or one errors.parquet row per missing variant.
    let errors = parquet_rows(&out.join("errors.parquet"));
    let rows: usize = std::fs::read_dir(out.join("embeddings/m/image"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "parquet") && !p.to_string_lossy().contains(".tmp-")
        })
        .map(|p| parquet_rows(&p))
        .sum();
    let failed_items = errors_without_variant(&out.join("errors.parquet"));
    assert_eq!(
        rows + 3 * failed_items + (errors - failed_items),
        3 * n as usize,
        "seed {seed}: {rows} rows, {errors} errors ({failed_items} whole items) for {n} images"
    );
}

fn parquet_rows(path: &Path) -> usize {
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        File::open(path).unwrap(),
    )
    .unwrap()
    .metadata()
    .file_metadata()
    .num_rows() as usize
}

/// Error rows that fail a whole item (no variant), as opposed to one variant of it.
fn errors_without_variant(path: &Path) -> usize {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        File::open(path).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut n = 0;
    for batch in reader {
        let batch = batch.unwrap();
        let v = batch.column_by_name("variant").unwrap();
        n += arrow_array::Array::null_count(v.as_ref());
    }
    n
}

// ---- target: Hugging Face Parquet --------------------------------------------------------

const PARQUET_TOKENS: &[&[u8]] = &[
    b"PAR1",
    b"\x15\x00",
    b"\x15\x02",
    b"\x19\x1c",
    b"\x16\x00",
    b"\x18",
    b"\x1c",
    b"\x00",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"huggingface",
    b"ClassLabel",
    b"names",
    b"../../../../etc/passwd",
    b"/dev/zero",
    b"imgs/fifo.png",
    b"imgs/loop",
    b"imgs/zero.png",
    b"/etc/hostname",
    b"imgs/../../outside.png",
    b"imgs/a.png",
    b"\x00\x00",
];

/// One Parquet seed: the file's bytes and the dataset keys that read it.
struct ParquetSeed {
    bytes: Vec<u8>,
    keys: &'static str,
}

fn write_parquet(batch: &RecordBatch, row_group: usize, dictionary: bool) -> Vec<u8> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_size(row_group)
        .set_dictionary_enabled(dictionary)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    out
}

fn parquet_seeds(images: &[Vec<u8>]) -> Vec<ParquetSeed> {
    let n = 5;
    let img = |i: usize| images[i % images.len()].clone();
    let hf =
        r#"{"info": {"features": {"label": {"names": ["cat", "dog"], "_type": "ClassLabel"}}}}"#;
    let paths = [
        "imgs/a.png",
        "imgs/../imgs/b.jpg",
        "imgs/fifo.png",
        "imgs/zero.png",
        "../outside.png",
    ];
    // {bytes, path} as Hugging Face writes it, some rows with bytes, some with a path only.
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let strukt: ArrayRef = Arc::new(StructArray::new(
        fields,
        vec![
            Arc::new(BinaryArray::from_iter(
                (0..n).map(|i| (i % 2 == 0).then(|| img(i))),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                (0..n).map(|i| Some(paths[i])).collect::<Vec<_>>(),
            )) as ArrayRef,
        ],
        None,
    ));
    let captions: ArrayRef = Arc::new(StringArray::from(
        (0..n)
            .map(|i| (i != 3).then(|| format!("caption {i}")))
            .collect::<Vec<_>>(),
    ));
    let labels: ArrayRef = Arc::new(Int64Array::from(
        (0..n as i64).map(|i| i % 3).collect::<Vec<_>>(),
    ));
    let ids: ArrayRef = Arc::new(StringArray::from(
        (0..n).map(|i| Some(format!("id{i}"))).collect::<Vec<_>>(),
    ));
    let schema = Schema::new(vec![
        Field::new("image", strukt.data_type().clone(), true),
        Field::new("text", DataType::Utf8, true),
        Field::new("label", DataType::Int64, true),
        Field::new("id", DataType::Utf8, true),
    ])
    .with_metadata(
        [("huggingface".to_string(), hf.to_string())]
            .into_iter()
            .collect(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![strukt, captions.clone(), labels.clone(), ids.clone()],
    )
    .unwrap();
    let mut seeds = vec![
        ParquetSeed {
            bytes: write_parquet(&batch, 2, true),
            keys: "  caption_column: text\n  label_column: label\n  id_column: id\n",
        },
        ParquetSeed {
            bytes: write_parquet(&batch, 5, false),
            keys: "  label_column: label\n",
        },
    ];
    // Encoded bytes in a binary column, string labels as attributes too.
    let binary: ArrayRef = Arc::new(BinaryArray::from_iter((0..n).map(|i| Some(img(i + 1)))));
    let names: ArrayRef = Arc::new(StringArray::from(
        (0..n).map(|i| Some(["x", "y"][i % 2])).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_from_iter(vec![
        ("img", binary),
        ("name", names.clone()),
        ("caption", captions),
    ])
    .unwrap();
    seeds.push(ParquetSeed {
        bytes: write_parquet(&batch, 3, true),
        keys: "  image_column: img\n  label_column: name\n  caption_column: caption\n  attribute_columns: [name]\n",
    });
    // Paths as plain strings.
    let path_col: ArrayRef = Arc::new(StringArray::from(
        (0..n).map(|i| Some(paths[(i + 1) % n])).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_from_iter(vec![("image", path_col), ("id", ids)]).unwrap();
    seeds.push(ParquetSeed {
        bytes: write_parquet(&batch, 2, true),
        keys: "  id_column: id\n",
    });
    // No column but the image's: the listing then takes the row count from the footer.
    seeds.push(ParquetSeed {
        bytes: seeds[0].bytes.clone(),
        keys: "",
    });
    seeds
}

/// A dataset folder with the hazards a path cell can name: a FIFO, a link to /dev/zero, a
/// link loop, a file outside.
fn hostile_dataset_folder(dir: &Path, images: &[Vec<u8>]) -> PathBuf {
    let ds = dir.join("ds");
    std::fs::create_dir_all(ds.join("imgs")).unwrap();
    std::fs::write(ds.join("imgs/a.png"), &images[0]).unwrap();
    std::fs::write(ds.join("imgs/b.jpg"), &images[4]).unwrap();
    std::fs::write(dir.join("outside.png"), &images[0]).unwrap();
    let fifo = std::ffi::CString::new(ds.join("imgs/fifo.png").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", ds.join("imgs/zero.png")).unwrap();
    std::os::unix::fs::symlink(".", ds.join("imgs/loop")).unwrap();
    ds
}

/// The dataset reader over mutated files of one format: listing and fetching every item must
/// end in items or errors, never a panic, a hang or an unbounded allocation. `name` is the
/// file name the mutated bytes get in the dataset folder.
fn dataset_target(
    target: &str,
    seconds: u64,
    format: DatasetFormat,
    name: &str,
    seeds: &[(Vec<u8>, &str)],
    dictionary: &[&[u8]],
) {
    let tmp = scratch();
    let images = image_seeds();
    let ds = hostile_dataset_folder(tmp.path(), &images);
    let file = ds.join(name);
    let bytes: Vec<Vec<u8>> = seeds.iter().map(|(b, _)| b.clone()).collect();
    let mutation = Mutation {
        seeds: &bytes,
        dictionary,
        text: false,
        tail: true,
        head: false,
    };
    let (opened, images) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    fuzz(target, seconds, 100, &mutation, |from, input| {
        std::fs::write(&file, input).unwrap();
        // The keys of the seed the input came from.
        let keys = seeds[from].1;
        let yaml = format!(
            "format: {}\npath: {}\n{}",
            format_name(format),
            file.display(),
            keys.replace("\n  ", "\n").trim_start()
        );
        let config: DatasetConfig =
            serde_norway::from_str(&yaml).map_err(|e| format!("test bug: {e}: {yaml}"))?;
        let Ok(d) = dataset::open(&config, 7) else {
            return Ok(());
        };
        opened.set(opened.get() + 1);
        let mut seen = 0;
        for range in d.part_ranges(64) {
            let Ok(part) = d.read_part(range) else {
                continue;
            };
            let chunk = &part.items[..];
            let fetched = d.fetch(chunk);
            if fetched.len() != chunk.len() {
                return Err(format!(
                    "{} results for {} items",
                    fetched.len(),
                    chunk.len()
                ));
            }
            for bytes in fetched.into_iter().flatten() {
                let _ = preprocess::decode(&bytes, FUZZ_MAX_PIXELS);
                images.set(images.get() + 1);
            }
            seen += chunk.len();
            if seen >= 4096 {
                break;
            }
        }
        Ok(())
    });
    eprintln!(
        "fuzz {target}: {} cases listed a dataset, {} images fetched",
        opened.get(),
        images.get()
    );
}

fn format_name(f: DatasetFormat) -> String {
    serde_json::to_value(f)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn fuzz_hf_parquet_reader() {
    let images = image_seeds();
    let seeds: Vec<(Vec<u8>, &str)> = parquet_seeds(&images)
        .into_iter()
        .map(|s| (s.bytes, s.keys))
        .collect();
    dataset_target(
        "fuzz_hf_parquet_reader",
        12,
        DatasetFormat::Parquet,
        "train.parquet",
        &seeds,
        PARQUET_TOKENS,
    );
}

/// The WebDataset reader (src/dataset/webdataset/) over mutated shards: plain and gzip tars of
/// images, captions, classes and JSON, one with a `../` member name, a pax header and a size
/// field far past the end of the file.
#[test]
fn fuzz_webdataset_reader() {
    let images = image_seeds();
    let plain = tar(&[
        ("000001.jpg", &images[0]),
        ("000001.txt", b"a caption"),
        ("000001.cls", b"3"),
        ("000002.png", &images[1 % images.len()]),
        (
            "000002.json",
            br#"{"caption": ["one", "two"], "label": "red"}"#,
        ),
        ("../escape.jpg", &images[0]),
        ("__meta__", b"x"),
    ]);
    let mut pax = tar(&[("PaxHeader", b"29 path=deep/dir/000003.webp\n")]);
    pax[156] = b'x';
    fix_checksum(&mut pax[..512]);
    pax.truncate(1024);
    pax.extend(tar(&[
        ("x.webp", &images[2 % images.len()]),
        ("000004.txt", b"tail"),
    ]));
    let mut huge = tar(&[("000005.jpg", &images[0]), ("000005.txt", b"cut")]);
    huge[124..135].copy_from_slice(b"77777777777");
    fix_checksum(&mut huge[..512]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let gzip = gz.finish().unwrap();
    let json = "  webdataset: {caption: 'json:caption', label: 'json:label'}\n";
    let seeds: Vec<(Vec<u8>, &str)> = vec![
        (plain.clone(), ""),
        (plain, json),
        (pax, ""),
        (huge, ""),
        (gzip, ""),
    ];
    dataset_target(
        "fuzz_webdataset_reader",
        12,
        DatasetFormat::Webdataset,
        "shard-000000.tar",
        &seeds,
        TAR_TOKENS,
    );
}

const TAR_TOKENS: &[&[u8]] = &[
    b"ustar\0",
    b"ustar  \0",
    b"00000000000",
    b"77777777777",
    b"\x80\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"0000644",
    b"././@LongLink",
    b"path=",
    b"size=",
    b".jpg",
    b".txt",
    b".cls",
    b".json",
    b"__",
    b"\x1f\x8b\x08",
];

/// Recomputes a ustar header's checksum after a test changed a field.
fn fix_checksum(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// A ustar archive of regular files (names over 100 bytes are cut).
fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        let mut h = [0u8; 512];
        h[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
