//! Workers that share one run directory, as a cluster runs them: plain concurrent runs and
//! static shards racing on one `--out` (each part written once, counted by the workers
//! themselves), workers killed with SIGKILL at every stage (the run still ends byte-identical to
//! an unsharded run), SIGTERM giving claims back, and `--shard auto` reading a scheduler's
//! variables. The real Slurm test is tests/slurm.rs (scripts/test_slurm starts a Slurm for it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

const STUDY: &str = "name: shared
seed: 9
dataset:
  format: parquet
  path: DATA
  image_column: image
  caption_column: caption
  label_column: label
  id_column: id
noise:
  - kind: gaussian
    sigma: [0.2]
models:
  - name: texture-clip
    path: models/texture-clip
texts:
  captions: true
  prompts:
    templates: ['a photo of a {} texture.', 'a {} pattern.']
analysis:
  retrieval:
    k: [1, 5]
    block_queries: 4
  zero_shot:
  probe:
    block_queries: 4
runtime:
  part_size: 8
  batch_size: 8
  threads: 1
  decode_threads: 1
";

/// 60 images: 8 image parts, 8 caption parts; 20 classes x 2 templates: 5 prompt parts.
const PARTS: usize = 21;

struct Fixture {
    study: PathBuf,
    reference: PathBuf,
    tmp: PathBuf,
}

/// The study and its unsharded reference run, made once for all tests of this file.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let data = synth_textures(&tmp.join("textures"), 3, 21);
        let study = tmp.join("study.yaml");
        std::fs::write(&study, STUDY.replace("DATA", &data.display().to_string())).unwrap();
        let reference = tmp.join("reference");
        let o = worker(&study, &reference, &[], &[])
            .wait_with_output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(written(&stderr(&o)), PARTS, "{}", stderr(&o));
        Fixture {
            study,
            reference,
            tmp,
        }
    })
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = fixture().tmp.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Starts `clipflow run` on `out` with a clean scheduler environment plus `env`.
fn worker(study: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipflow"));
    cmd.args([
        "run",
        study.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(args)
    .current_dir(root())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("SLURM_")
            || k == "JOB_COMPLETION_INDEX"
            || k.starts_with("CLIPFLOW_SHARD")
            || k == "CLIPFLOW_TASK_ID"
            || k == "CUDA_VISIBLE_DEVICES"
        {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("clipflow starts")
}

/// Parts a worker says it wrote (`parts: N written, ...`).
fn written(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("parts: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no parts line in\n{stderr}"))
}

/// Analysis blocks a worker says it computed (`analysis blocks: ...: N computed here`).
fn blocks_computed(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("analysis blocks: "))
        .filter_map(|l| {
            l.split(": ")
                .nth(3)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

fn finishers(stderr: &str) -> usize {
    stderr.matches("finishing the run as worker").count()
}

/// Every output that must not depend on how the work was split: embeddings, tables, plots,
/// errors. (manifest.json and report.html carry timings.)
fn assert_same_as_reference(out: &Path) {
    let reference = &fixture().reference;
    for sub in ["embeddings", "tables", "plots"] {
        let a = files_under(&reference.join(sub));
        let b = files_under(&out.join(sub));
        assert!(!a.is_empty(), "reference has no {sub}");
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "{sub}: different files");
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{sub}/{name} differs from the unsharded run");
        }
    }
    assert_eq!(
        std::fs::read(reference.join("errors.parquet")).unwrap(),
        std::fs::read(out.join("errors.parquet")).unwrap()
    );
    assert!(out.join("manifest.json").exists());
    assert!(out.join("report.html").exists());
    let temps: Vec<String> = files_under(out)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap()
}

/// Polls until `found()` or the child exits; panics after two minutes.
fn wait_until(child: &mut Child, what: &str, found: &dyn Fn() -> bool) {
    let start = Instant::now();
    loop {
        if found() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("worker exited ({status}) before {what}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no {what} after 2 min"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a file whose name matches `pred` exists under `dir`.
fn exists_under(dir: &Path, pred: &dyn Fn(&str) -> bool) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if pred(&e.file_name().to_string_lossy()) {
                return true;
            }
        }
    }
    false
}

fn finish(child: Child) -> (bool, String) {
    let o = child.wait_with_output().unwrap();
    (o.status.success(), stderr(&o))
}

#[test]
fn racing_workers_write_each_part_once() {
    let f = fixture();
    let out = fresh_dir("race");
    // Two plain runs and two static workers of the same stripe, all at once.
    let children = vec![
        worker(&f.study, &out, &[], &[]),
        worker(&f.study, &out, &[], &[]),
        worker(&f.study, &out, &["--shard", "0/2"], &[]),
        worker(&f.study, &out, &["--shard", "0/2"], &[]),
    ];
    let logs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let (ok, log) = finish(c);
            assert!(ok, "{log}");
            log
        })
        .collect();
    let counts: Vec<usize> = logs.iter().map(|l| written(l)).collect();
    assert_eq!(
        counts.iter().sum::<usize>(),
        PARTS,
        "part writes per worker: {counts:?}"
    );
    assert!(
        counts.iter().filter(|&&n| n > 0).count() >= 2,
        "the workers did not overlap, so nothing was tested: {counts:?}"
    );
    assert_eq!(
        logs.iter().map(|l| finishers(l)).sum::<usize>(),
        1,
        "exactly one finisher"
    );
    // The manifest merges every worker's timings; their parts are disjoint and cover the run.
    let m = manifest(&out);
    let timings = m["stage_timings"].as_array().unwrap();
    let mut parts: Vec<u64> = timings
        .iter()
        .flat_map(|w| {
            w["parts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap())
        })
        .collect();
    parts.sort();
    assert_eq!(parts, (0..PARTS as u64).collect::<Vec<_>>());
    for w in timings {
        assert!(w["seconds"]["load_models"].as_f64().is_some(), "{w}");
        assert_eq!(
            w["parts_written"].as_u64().unwrap() as usize,
            w["parts"].as_array().unwrap().len()
        );
    }
    let with_parts = timings
        .iter()
        .filter(|w| w["parts_written"].as_u64() > Some(0))
        .count();
    assert_eq!(with_parts, counts.iter().filter(|&&n| n > 0).count());
    assert!(m["finished_by"].as_str().is_some());
    // Static shards keep to their stripe: parts of stripe 1 come only from the plain runs.
    for w in timings.iter().filter(|w| w["shard"] == "0/2") {
        for p in w["parts"].as_array().unwrap() {
            assert_eq!(p.as_u64().unwrap() % 2, 0, "{w}");
        }
    }
    assert_same_as_reference(&out);

    // A rerun of the finished run does nothing and rewrites nothing.
    let before = std::fs::metadata(out.join("manifest.json"))
        .unwrap()
        .modified()
        .unwrap();
    let (ok, log) = finish(worker(&f.study, &out, &[], &[]));
    assert!(ok, "{log}");
    assert_eq!(written(&log), 0);
    assert!(log.contains("complete"), "{log}");
    let after = std::fs::metadata(out.join("manifest.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a finished run's manifest is written once");
}

/// Where a worker is killed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// Models loaded, registered, nothing claimed yet (or just claimed).
    Registered,
    /// While writing a part.
    MidPart,
    /// While finishing (analysis, manifest, report).
    Finishing,
}

fn kill_point_reached(out: &Path, pid: u32, point: KillPoint) -> bool {
    match point {
        KillPoint::Registered => {
            exists_under(&out.join("state/workers"), &|n| n.ends_with(".json"))
        }
        KillPoint::MidPart => exists_under(&out.join("embeddings"), &|n| {
            n.starts_with(".part-") && n.ends_with(&format!(".tmp-{pid}"))
        }),
        KillPoint::Finishing => out.join("state/claims/finish.claim-0").exists(),
    }
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn a_worker_killed_at_any_point_still_ends_byte_identical() {
    let f = fixture();
    for point in [
        KillPoint::Registered,
        KillPoint::MidPart,
        KillPoint::Finishing,
    ] {
        let out = fresh_dir(&format!("kill-{point:?}"));
        let mut victim = worker(&f.study, &out, &[], &[]);
        let pid = victim.id();
        wait_until(&mut victim, &format!("{point:?}"), &|| {
            kill_point_reached(&out, pid, point)
        });
        sigkill(&mut victim);
        assert!(
            !out.join("state/claims/finish.done").exists(),
            "{point:?}: killed before the end"
        );
        // The next worker (a rerun, a requeued task) takes the dead worker's claims at once.
        let t = Instant::now();
        let (ok, log) = finish(worker(&f.study, &out, &[], &[]));
        assert!(ok, "{point:?}: {log}");
        assert_eq!(finishers(&log), 1, "{point:?}: {log}");
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "{point:?}: the rerun waited for a claim timeout"
        );
        assert_same_as_reference(&out);
    }
}

#[test]
fn a_live_worker_takes_over_the_parts_of_a_killed_one() {
    let f = fixture();
    let out = fresh_dir("takeover");
    let mut victim = worker(&f.study, &out, &[], &[]);
    let pid = victim.id();
    wait_until(&mut victim, "a part in flight", &|| {
        kill_point_reached(&out, pid, KillPoint::MidPart)
    });
    let helper = worker(&f.study, &out, &[], &[]);
    sigkill(&mut victim);
    // The helper alone completes the run: the dead worker's claim is taken over (same host,
    // no such process), and its temporary file removed.
    let (ok, log) = finish(helper);
    assert!(ok, "{log}");
    assert_eq!(finishers(&log), 1, "{log}");
    assert_same_as_reference(&out);
}

#[test]
fn sigterm_gives_the_claims_back_before_exiting() {
    let f = fixture();
    let out = fresh_dir("sigterm");
    let mut victim = worker(&f.study, &out, &[], &[]);
    let pid = victim.id();
    wait_until(&mut victim, "a part in flight", &|| {
        kill_point_reached(&out, pid, KillPoint::MidPart)
    });
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let o = victim.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(stderr(&o).contains("SIGTERM"), "{}", stderr(&o));
    // Every part claim it left says `free`.
    let claims = out.join("state/claims/parts");
    let mut seen = 0;
    for (name, bytes) in files_under(&claims) {
        if name.contains(".claim-") && !name.starts_with('.') {
            let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(record["state"], "free", "{name}: {record}");
            seen += 1;
        }
    }
    assert!(seen > 0, "no claim files under {}", claims.display());
    let (ok, log) = finish(worker(&f.study, &out, &[], &[]));
    assert!(ok, "{log}");
    assert_same_as_reference(&out);
}

#[test]
fn shard_auto_reads_the_scheduler_or_says_what_is_missing() {
    let f = fixture();
    let out = fresh_dir("auto");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let o = worker(&f.study, &out, args, env)
            .wait_with_output()
            .unwrap();
        (o.status.code(), stderr(&o))
    };
    let (code, log) = run(&["--shard", "auto"], &[]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("no scheduler variables"), "{log}");
    let (code, log) = run(&["--shard", "auto"], &[("JOB_COMPLETION_INDEX", "1")]);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("--shard-count"), "{log}");
    let (code, log) = run(
        &["--shard", "auto", "--set", "runtime.device=cuda"],
        &[
            ("JOB_COMPLETION_INDEX", "1"),
            ("CLIPFLOW_SHARD_COUNT", "2"),
            ("CUDA_VISIBLE_DEVICES", "-1"),
        ],
    );
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("CUDA_VISIBLE_DEVICES"), "{log}");
    assert!(!out.exists(), "usage errors write nothing");

    // Task 1 of a 4-task array alone: its stripe first, then it helps with every other part.
    let (code, log) = run(
        &["--shard", "auto"],
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_JOB_ID", "99"),
            ("CUDA_VISIBLE_DEVICES", "3"),
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("shard 1/4 from SLURM_ARRAY_TASK_ID=1"),
        "{log}"
    );
    assert_eq!(written(&log), PARTS, "{log}");
    let m = manifest(&out);
    let w = &m["stage_timings"][0];
    assert_eq!(w["task"], "slurm:99_1");
    assert_eq!(w["shard"], "1/4");
    assert_eq!(w["cuda_visible_devices"], "3");
    assert_eq!(w["parts_written"], PARTS);
    // Its own stripe first: of the image parts (0..8), 1 and 5 were written first.
    let mut images: Vec<(f64, u64)> = (0..8)
        .map(|i| {
            let path = out.join(format!("state/timings/part-{i:06}.json"));
            let r: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            (r["finished"].as_f64().unwrap(), r["part"].as_u64().unwrap())
        })
        .collect();
    images.sort_by(|a, b| a.0.total_cmp(&b.0));
    let order: Vec<u64> = images.iter().map(|(_, p)| *p).collect();
    assert_eq!(order, [1, 5, 2, 6, 3, 7, 0, 4], "stripe 1, then 2, 3, 0");
    assert_same_as_reference(&out);
}

#[test]
fn temporaries_of_dead_processes_are_removed_at_the_end() {
    let f = fixture();
    let out = fresh_dir("temps");
    std::fs::create_dir_all(out.join("embeddings/texture-clip/image")).unwrap();
    std::fs::create_dir_all(out.join("state")).unwrap();
    // A pid that cannot be alive (above the kernel's pid_max).
    for name in [
        "embeddings/texture-clip/image/.part-00006.parquet.tmp-99999999",
        "state/.study.json.tmp-99999999",
    ] {
        std::fs::write(out.join(name), b"half").unwrap();
    }
    let (ok, log) = finish(worker(&f.study, &out, &[], &[]));
    assert!(ok, "{log}");
    assert!(log.contains("removed 2 temporary files"), "{log}");
    assert_same_as_reference(&out);
}

#[test]
fn the_array_shares_the_analysis_blocks() {
    // Three static shards at once: each encodes its stripe, waits for the others' parts, then
    // ranks retrieval queries in blocks of 4 (60 captions and 60 images, 2 variants: 60
    // blocks) and the kNN probe's 20 test images in blocks of 4 (2 variants: 10 blocks); the
    // finisher reads them. Every block is computed once, by more than one worker,
    // and the tables are the unsharded run's bytes.
    let f = fixture();
    let out = fresh_dir("blocks");
    let children: Vec<Child> = (0..3)
        .map(|i| worker(&f.study, &out, &["--shard", &format!("{i}/3")], &[]))
        .collect();
    let logs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let (ok, log) = finish(c);
            assert!(ok, "{log}");
            log
        })
        .collect();
    let counts: Vec<usize> = logs.iter().map(|l| blocks_computed(l)).collect();
    assert_eq!(
        counts.iter().sum::<usize>(),
        70,
        "blocks per worker: {counts:?}"
    );
    assert!(
        counts.iter().filter(|&&n| n > 0).count() >= 2,
        "one worker ranked every block: {counts:?}\n{}",
        logs.join("\n----\n")
    );
    assert_eq!(logs.iter().map(|l| finishers(l)).sum::<usize>(), 1);
    assert_same_as_reference(&out);
    assert!(
        !out.join("state/analysis").exists(),
        "the finisher removes the blocks once read"
    );
}
