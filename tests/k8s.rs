//! The Kubernetes Indexed Job template (scripts/cluster/k8s_indexed_job.yaml). No Kubernetes
//! cluster is available to the tests, so this renders what the Job controller would run in each
//! pod — the container's command under `sh`, with the environment the manifest declares plus
//! the `JOB_COMPLETION_INDEX` the controller injects and the downward-API values — against a
//! stand-in `clipflow` that records its arguments and environment, and checks the contract:
//! every index gets its own shard of `completions`, its own task identity, one GPU, and a run
//! directory on the shared ReadWriteMany volume; the study and its overrides load.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde::Deserialize;
use serde_norway::Value;

fn manifest() -> Vec<Value> {
    let text =
        std::fs::read_to_string(root().join("scripts/cluster/k8s_indexed_job.yaml")).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[key],
        };
        assert!(!cur.is_null(), "manifest lacks {path} (at {key})");
    }
    cur
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// What the stand-in `clipflow` saw in one pod.
struct Pod {
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

/// Runs the container's command as the pod with `index` would, with a stand-in `clipflow`.
fn render(job: &Value, index: usize, uid: &str, dir: &Path) -> Pod {
    let container = get(job, "spec.template.spec.containers.0");
    let command: Vec<String> = get(container, "command")
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let args: Vec<String> = get(container, "args")
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = dir.join(format!("pod-{index}"));
    std::fs::write(
        bin.join("clipflow"),
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > {0}.args\nenv > {0}.env\n",
            record.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", bin.join("clipflow").to_str().unwrap()])
        .status()
        .unwrap();
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]).args(&args).env_clear();
    cmd.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    // The controller appends the index; the downward API fills fieldRef values.
    cmd.env("JOB_COMPLETION_INDEX", index.to_string());
    for e in get(container, "env").as_sequence().unwrap() {
        let name = text(get(e, "name"));
        let value = if let Some(v) = e.get("value") {
            text(v)
        } else {
            let field = text(get(e, "valueFrom.fieldRef.fieldPath"));
            assert_eq!(
                field, "metadata.labels['batch.kubernetes.io/controller-uid']",
                "{name}: only the Job's uid label is expected from the downward API"
            );
            uid.to_string()
        };
        cmd.env(name, value);
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "pod {index}: the command failed");
    let args = std::fs::read_to_string(record.with_extension("args"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let env = std::fs::read_to_string(record.with_extension("env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Pod { args, env }
}

fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn indexed_job_gives_every_pod_its_shard_task_gpu_and_the_shared_volume() {
    let docs = manifest();
    let job = docs
        .iter()
        .find(|d| text(get(d, "kind")) == "Job")
        .expect("a Job");
    let spec = get(job, "spec");
    assert_eq!(text(get(spec, "completionMode")), "Indexed");
    let completions: usize = text(get(spec, "completions")).parse().unwrap();
    assert_eq!(text(get(spec, "parallelism")), completions.to_string());
    assert!(get(spec, "backoffLimitPerIndex").as_u64().unwrap() >= 1);
    assert_eq!(text(get(spec, "podReplacementPolicy")), "Failed");
    let pod = get(spec, "template.spec");
    assert_eq!(text(get(pod, "restartPolicy")), "Never");
    let container = get(pod, "containers.0");
    assert_eq!(
        get(container, "resources.limits")["nvidia.com/gpu"].as_u64(),
        Some(1),
        "one GPU per pod"
    );
    // The shared volume: a ReadWriteMany claim defined in the same file, mounted in the pod.
    let mounts = get(container, "volumeMounts").as_sequence().unwrap();
    let volumes = get(pod, "volumes").as_sequence().unwrap();
    let shared_mounts: Vec<String> = mounts
        .iter()
        .filter_map(|m| {
            let volume = volumes
                .iter()
                .find(|v| v["name"] == m["name"])
                .expect("every mount has a volume");
            let claim = text(get(volume, "persistentVolumeClaim.claimName"));
            let pvc = docs.iter().find(|d| {
                text(get(d, "kind")) == "PersistentVolumeClaim"
                    && text(get(d, "metadata.name")) == claim
            })?;
            let modes: Vec<String> = get(pvc, "spec.accessModes")
                .as_sequence()
                .unwrap()
                .iter()
                .map(text)
                .collect();
            modes
                .contains(&"ReadWriteMany".to_string())
                .then(|| text(get(m, "mountPath")))
        })
        .collect();
    assert!(!shared_mounts.is_empty(), "no ReadWriteMany volume mounted");

    let tmp = tempfile::tempdir().unwrap();
    let uid = "0b5e6c1e-6f0a-4b8e-9d7c-2f4a1e9c8b7d";
    let mut tasks = Vec::new();
    for index in 0..completions {
        let p = render(job, index, uid, tmp.path());
        assert_eq!(p.args[0], "run", "{:?}", p.args);
        let study = &p.args[1];
        assert_eq!(flag(&p.args, "--shard"), ["auto"]);
        let out = flag(&p.args, "--out");
        assert_eq!(out.len(), 1);
        assert!(
            shared_mounts
                .iter()
                .any(|m| Path::new(out[0]).starts_with(m)),
            "--out {} is not on the shared volume {shared_mounts:?}",
            out[0]
        );
        let sets: Vec<String> = flag(&p.args, "--set")
            .into_iter()
            .map(str::to_string)
            .collect();
        assert!(
            sets.contains(&"runtime.device=cuda".to_string()),
            "{sets:?}"
        );
        // The study exists in the repository (the image's working directory) and the overrides
        // are keys it has.
        assert_eq!(text(get(container, "workingDir")), "/app");
        clipflow::config::load(&root().join(study), &sets)
            .unwrap_or_else(|e| panic!("pod {index}: {e}"));
        // The scheduler contract, through the code `clipflow run` uses.
        let env = |k: &str| p.env.get(k).cloned();
        let sharing = clipflow::run::scheduler::resolve(Some("auto"), None, &env)
            .unwrap_or_else(|e| panic!("pod {index}: {e}"));
        assert_eq!(
            sharing.shard,
            Some(clipflow::run::Shard {
                index,
                count: completions
            }),
            "pod {index}"
        );
        assert!(sharing.elastic);
        let task = sharing.task.expect("a task identity");
        assert!(
            task.contains(uid) && task.ends_with(&format!("-{index}")),
            "{task}"
        );
        tasks.push(task);
    }
    tasks.sort();
    tasks.dedup();
    assert_eq!(tasks.len(), completions, "task identities are distinct");
}
