//! clipflow under a real Slurm (single node, started by scripts/test_slurm, which sets
//! SLURM_CONF): the demo study submitted as a 4-task array with the shipped template
//! (scripts/cluster/slurm_array.sbatch) and `sbatch --wait` must end byte-identical to the
//! unsharded run, with report.html and the manifest written by exactly one task and no
//! temporary file left; then one array task is cancelled mid-way (`scancel JOB_2`), resubmitted
//! alone, and the same holds.
//!
//! Ignored by a plain `cargo test` (it needs the daemons); scripts/test runs it through
//! scripts/test_slurm.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

fn slurm(program: &str, args: &[&str]) -> Output {
    let conf = std::env::var("SLURM_CONF")
        .expect("SLURM_CONF is not set: run this test through scripts/test_slurm");
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(root()).env("SLURM_CONF", conf);
    for (k, _) in std::env::vars() {
        if k.starts_with("SLURM_") && k != "SLURM_CONF" {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLIPFLOW", env!("CARGO_BIN_EXE_clipflow"))
        .env("CLIPFLOW_DEVICE", "cpu")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .env_remove("CLIPFLOW_TASK_ID")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

struct Study {
    data: PathBuf,
    tmp: PathBuf,
}

impl Study {
    fn sets(&self) -> Vec<String> {
        vec![
            "--set".into(),
            format!("dataset.path={}", self.data.display()),
            "--set".into(),
            "runtime.part_size=16".into(),
        ]
    }

    /// `sbatch --array=ARRAY` of the shipped template; returns the job id (and, with `wait`,
    /// after the whole array ended).
    fn submit(&self, array: &str, out: &Path, wait: bool) -> (String, Output) {
        let logs = self.tmp.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let mut args: Vec<String> = vec![
            "--parsable".into(),
            format!("--array={array}"),
            format!("--output={}/%A_%a.out", logs.display()),
        ];
        if wait {
            args.push("--wait".into());
        }
        args.extend([
            "scripts/cluster/slurm_array.sbatch".to_string(),
            "pipelines/demo.yaml".to_string(),
            out.display().to_string(),
        ]);
        args.extend(self.sets());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = slurm("sbatch", &refs);
        let job = stdout(&o)
            .lines()
            .next()
            .and_then(|l| l.split(';').next())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("sbatch gave no job id: {}{}", stdout(&o), stderr(&o)));
        (job, o)
    }

    /// The log of array task `job_task`.
    fn log(&self, job: &str, task: usize) -> String {
        std::fs::read_to_string(self.tmp.join("logs").join(format!("{job}_{task}.out")))
            .unwrap_or_default()
    }
}

fn written(log: &str) -> Option<usize> {
    log.lines()
        .find_map(|l| l.strip_prefix("parts: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap()
}

/// Embeddings, tables, plots and errors equal the unsharded run's; manifest and report exist;
/// no temporary file is left.
fn assert_same(reference: &Path, out: &Path, context: &str) {
    for sub in ["embeddings", "tables", "plots"] {
        let a = files_under(&reference.join(sub));
        let b = files_under(&out.join(sub));
        assert!(!a.is_empty(), "reference has no {sub}");
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "{sub}: different files\n{context}");
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(
                x == y,
                "{sub}/{name} differs from the unsharded run\n{context}"
            );
        }
    }
    assert_eq!(
        std::fs::read(reference.join("errors.parquet")).unwrap(),
        std::fs::read(out.join("errors.parquet")).unwrap(),
        "errors.parquet\n{context}"
    );
    assert!(out.join("report.html").exists(), "{context}");
    let temps: Vec<String> = files_under(out)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(
        temps.is_empty(),
        "temporary files left: {temps:?}\n{context}"
    );
}

/// The manifest's workers: their parts are disjoint and cover the run.
fn assert_parts_once(out: &Path, context: &str) -> serde_json::Value {
    let m = manifest(out);
    let total = m["counts"]["parts"].as_u64().unwrap();
    let mut parts: Vec<u64> = m["stage_timings"]
        .as_array()
        .unwrap()
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
    assert_eq!(parts, (0..total).collect::<Vec<_>>(), "{context}");
    m
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "no {what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The part claims (under the run's state/claims/parts) held by `task` right now.
fn held_by(out: &Path, task: &str) -> usize {
    files_under(&out.join("state/claims/parts"))
        .into_iter()
        .filter(|(n, _)| n.contains(".claim-") && !n.contains(".tmp-"))
        .filter_map(|(_, b)| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|r| r["task"] == task && r["state"] == "held")
        .count()
}

fn in_queue(job: &str) -> bool {
    let o = slurm("squeue", &["-h", "-j", job, "-o", "%i %T"]);
    !stdout(&o).trim().is_empty()
}

#[test]
#[ignore = "needs a Slurm: scripts/test_slurm starts one and runs this"]
fn demo_study_as_a_slurm_array_equals_the_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let study = Study {
        data: synth_textures(&tmp.path().join("textures"), 6, 11),
        tmp: tmp.path().to_path_buf(),
    };
    let reference = tmp.path().join("reference");
    let mut args: Vec<String> = vec![
        "run".into(),
        "pipelines/demo.yaml".into(),
        "--out".into(),
        reference.display().to_string(),
    ];
    args.extend(study.sets());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = clipflow(&refs);
    assert!(o.status.success(), "{}", stderr(&o));

    // 1. A 4-task array, as the README submits it.
    let out = tmp.path().join("array");
    let (job, o) = study.submit("0-3", &out, true);
    let logs: Vec<String> = (0..4).map(|t| study.log(&job, t)).collect();
    let context = logs.join("\n-----\n");
    assert!(
        o.status.success(),
        "sbatch --wait: {}\n{context}",
        stderr(&o)
    );
    for (t, log) in logs.iter().enumerate() {
        assert!(
            log.contains(&format!("shard {t}/4 from SLURM_ARRAY_TASK_ID={t}")),
            "task {t}: {log}"
        );
    }
    let m = assert_parts_once(&out, &context);
    let total = m["counts"]["parts"].as_u64().unwrap() as usize;
    let writes: usize = logs.iter().map(|l| written(l).unwrap_or(0)).sum();
    assert_eq!(writes, total, "part writes counted by the tasks\n{context}");
    assert_eq!(
        context.matches("finishing the run as worker").count(),
        1,
        "exactly one task finishes\n{context}"
    );
    // Every task that worked is in the manifest, with the GPU Slurm gave it.
    let workers = m["stage_timings"].as_array().unwrap();
    let mut gpus = Vec::new();
    for w in workers {
        let task = w["task"].as_str().unwrap();
        assert!(task.starts_with(&format!("slurm:{job}_")), "{task}");
        let gpu = w["cuda_visible_devices"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        assert!(["0", "1", "2", "3"].contains(&gpu.as_str()), "{w}");
        gpus.push(gpu);
    }
    gpus.sort();
    gpus.dedup();
    assert!(
        gpus.len() >= 2,
        "the tasks ran side by side on their own GPUs: {gpus:?}"
    );
    assert_same(&reference, &out, &context);

    // 2. Task 2 cancelled while it holds a part, then resubmitted alone.
    let out = tmp.path().join("cancelled");
    let (job, _) = study.submit("0-3", &out, false);
    let task2 = format!("slurm:{job}_2");
    wait_for("part claimed by task 2", Duration::from_secs(600), || {
        held_by(&out, &task2) > 0 || !in_queue(&job)
    });
    assert!(
        held_by(&out, &task2) > 0,
        "the array ended before task 2 held a part\n{}",
        (0..4)
            .map(|t| study.log(&job, t))
            .collect::<Vec<_>>()
            .join("\n-----\n")
    );
    let o = slurm("scancel", &[&format!("{job}_2")]);
    assert!(o.status.success(), "scancel: {}", stderr(&o));
    wait_for("the array to end", Duration::from_secs(900), || {
        !in_queue(&job)
    });
    let cancelled = study.log(&job, 2);
    assert!(
        written(&cancelled).is_none(),
        "task 2 was not stopped mid-way:\n{cancelled}"
    );
    let (again, o) = study.submit("2", &out, true);
    let mut logs: Vec<String> = (0..4).map(|t| study.log(&job, t)).collect();
    logs.push(study.log(&again, 2));
    let context = logs.join("\n-----\n");
    assert!(
        o.status.success(),
        "resubmitted task: {}\n{context}",
        stderr(&o)
    );
    assert!(logs[4].contains("SLURM_ARRAY_TASK_ID=2"), "{context}");
    assert_parts_once(&out, &context);
    assert_eq!(
        context.matches("finishing the run as worker").count(),
        1,
        "exactly one task finishes\n{context}"
    );
    assert_same(&reference, &out, &context);
}
