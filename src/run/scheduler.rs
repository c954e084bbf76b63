//! What a cluster scheduler tells a worker: which share of the parts it prefers (`--shard
//! auto`), which task it is (so a requeued task may take its predecessor's claims at once), and
//! which GPUs it may use.
//!
//! The environment is read through a lookup function, so every rule is tested without touching
//! the process environment.
//!
//! Sharing policy (documented in the README):
//! - no `--shard`: the worker takes any part nobody holds; plain concurrent `clipflow run`s on
//!   one `--out` split the work between them.
//! - `--shard I/N`: static. The worker does only parts `p % N == I` (claims still keep two
//!   workers of one stripe apart). For machines that do not share the run directory, or when a
//!   user wants a fixed split.
//! - `--shard auto`: elastic. The worker starts with its own stripe (so the tasks of an array
//!   that start together do not contend), then helps with any part nobody holds, nearest stripes
//!   first. Tasks that start late, or are requeued, find the work already spread; the array ends
//!   as soon as its running tasks can end it.

use super::execute::Shard;

/// How a worker picks parts, and who it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sharing {
    /// The stripe this worker prefers (elastic) or is limited to (static).
    pub shard: Option<Shard>,
    /// Also takes parts outside its stripe that no worker holds.
    pub elastic: bool,
    /// The scheduler task this process runs as (`slurm:JOB_TASK`), if any.
    pub task: Option<String>,
    /// Where the shard came from, e.g. `SLURM_ARRAY_TASK_ID=2, SLURM_ARRAY_TASK_COUNT=4`.
    pub source: Option<String>,
}

/// The environment variable that gives the shard count to `--shard auto` under Kubernetes.
pub const SHARD_COUNT_VAR: &str = "CLIPFLOW_SHARD_COUNT";
/// Overrides the task identity (the Kubernetes template sets it from the Job's uid and index).
pub const TASK_ID_VAR: &str = "CLIPFLOW_TASK_ID";

/// Turns `--shard` and `--shard-count` into a [`Sharing`]. `env` looks up an environment
/// variable.
pub fn resolve(
    shard: Option<&str>,
    shard_count: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Sharing, String> {
    let task = task_identity(env);
    let count_from_env = || -> Result<Option<usize>, String> {
        match shard_count {
            Some(n) => Ok(Some(n)),
            None => match env(SHARD_COUNT_VAR).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|_| format!("{SHARD_COUNT_VAR}={v}: not a whole number")),
            },
        }
    };
    match shard.map(str::trim) {
        None => {
            if shard_count.is_some() {
                return Err("--shard-count goes with --shard auto".into());
            }
            Ok(Sharing {
                shard: None,
                elastic: true,
                task,
                source: None,
            })
        }
        Some("auto") => {
            let count = count_from_env()?;
            if count == Some(0) {
                return Err("--shard-count must be at least 1".into());
            }
            let (shard, source) = auto_shard(count, env)?;
            Ok(Sharing {
                shard: Some(shard),
                elastic: true,
                task,
                source: Some(source),
            })
        }
        Some(spec) => {
            if shard_count.is_some() {
                return Err("--shard-count goes with --shard auto (--shard I/N names N)".into());
            }
            Ok(Sharing {
                shard: Some(Shard::parse(spec)?),
                elastic: false,
                task,
                source: None,
            })
        }
    }
}

fn number(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Result<Option<usize>, String> {
    match env(var).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map(Some)
            .map_err(|_| format!("--shard auto: {var}={v} is not a whole number")),
    }
}

/// The shard of a Slurm array task or a Kubernetes Indexed Job pod.
fn auto_shard(
    count: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Shard, String), String> {
    if let Some(id) = number(env, "SLURM_ARRAY_TASK_ID")? {
        // Arrays may start at 1 (`--array=1-16`) or step (`--array=0-30:2`): the index is the
        // task's position. A resubmitted single task (`--array=5`) has a count of 1; with
        // `--shard auto` the index only orders a worker's preference, so any position works.
        let min = number(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = number(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let (n, what) = match count {
            Some(n) => (n, format!("shard count {n}")),
            None => {
                let n = number(env, "SLURM_ARRAY_TASK_COUNT")?.ok_or(
                    "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not \
                     (Slurm sets both for a job array); pass --shard-count N",
                )?;
                (n, format!("SLURM_ARRAY_TASK_COUNT={n}"))
            }
        };
        if n == 0 {
            return Err("--shard auto: SLURM_ARRAY_TASK_COUNT=0".into());
        }
        let index = (id.saturating_sub(min) / step) % n;
        return Ok((
            Shard { index, count: n },
            format!("SLURM_ARRAY_TASK_ID={id}, {what}"),
        ));
    }
    if let Some(index) = number(env, "JOB_COMPLETION_INDEX")? {
        let n = count.ok_or(format!(
            "--shard auto: JOB_COMPLETION_INDEX={index} (a Kubernetes Indexed Job) but no shard \
             count: pass --shard-count N or set {SHARD_COUNT_VAR} to the Job's completions"
        ))?;
        if index >= n {
            return Err(format!(
                "--shard auto: JOB_COMPLETION_INDEX={index} is not below the shard count {n}: \
                 the count must equal the Job's completions"
            ));
        }
        return Ok((
            Shard { index, count: n },
            format!("JOB_COMPLETION_INDEX={index}, shard count {n}"),
        ));
    }
    Err(
        "--shard auto: no scheduler variables. It reads SLURM_ARRAY_TASK_ID and \
         SLURM_ARRAY_TASK_COUNT (a Slurm job array: sbatch --array=0-15) or \
         JOB_COMPLETION_INDEX with --shard-count N or CLIPFLOW_SHARD_COUNT (a Kubernetes Indexed \
         Job). Outside a scheduler, start plain `clipflow run`s with the same --out: they share \
         the parts; or give --shard I/N"
            .into(),
    )
}

/// The scheduler task this process runs as: the same after a requeue, different for every
/// other task. `CLIPFLOW_TASK_ID` wins; then Slurm's job (and array task, step and rank). A
/// Kubernetes pod has no such name of its own (a Job's index repeats across Jobs), so the
/// template sets `CLIPFLOW_TASK_ID` from the Job's uid and the index.
pub fn task_identity(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let get = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(t) = get(TASK_ID_VAR) {
        return Some(t);
    }
    let job = match (get("SLURM_ARRAY_JOB_ID"), get("SLURM_ARRAY_TASK_ID")) {
        (Some(j), Some(t)) => format!("{j}_{t}"),
        _ => get("SLURM_JOB_ID")?,
    };
    let mut id = format!("slurm:{job}");
    if let Some(step) = get("SLURM_STEP_ID") {
        id.push_str(&format!(".{step}"));
    }
    if let Some(rank) = get("SLURM_PROCID").filter(|r| r != "0") {
        id.push_str(&format!(":{rank}"));
    }
    Some(id)
}

/// The GPUs `CUDA_VISIBLE_DEVICES` leaves visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisibleGpus {
    /// Unset: every GPU of the machine.
    All,
    /// The listed devices (indices or UUIDs), in the order CUDA numbers them from 0.
    Listed(Vec<String>),
    /// Set to nothing usable (``, `-1`, `NoDevFiles`): no GPU at all.
    Hidden(String),
}

impl VisibleGpus {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> VisibleGpus {
        let Some(raw) = env("CUDA_VISIBLE_DEVICES") else {
            return VisibleGpus::All;
        };
        // CUDA stops at the first invalid entry; -1 (or anything negative) hides all after it.
        let mut listed = Vec::new();
        for entry in raw.split(',').map(str::trim) {
            if entry.is_empty()
                || entry.starts_with('-')
                || entry.eq_ignore_ascii_case("NoDevFiles")
            {
                break;
            }
            listed.push(entry.to_string());
        }
        if listed.is_empty() {
            VisibleGpus::Hidden(raw)
        } else {
            VisibleGpus::Listed(listed)
        }
    }
}

/// Checks `runtime.device` against `CUDA_VISIBLE_DEVICES`. CUDA (and so ONNX Runtime) numbers
/// the visible GPUs from 0: `cuda:0` is the first one listed, whatever its physical index.
/// Returns a note for the log (which physical GPU this worker uses, or that more are visible
/// than one worker uses), or an error when the requested device cannot exist.
pub fn check_gpus(device: &str, visible: &VisibleGpus) -> Result<Option<String>, String> {
    let device = device.trim().to_ascii_lowercase();
    let requested: Option<usize> = match device.as_str() {
        "cpu" => return Ok(None),
        "auto" => None,
        "cuda" | "gpu" => Some(0),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .or(Some(0)),
    };
    match (visible, requested) {
        (VisibleGpus::All, _) => Ok(None),
        (VisibleGpus::Hidden(raw), None) => Ok(Some(format!(
            "CUDA_VISIBLE_DEVICES={raw:?} hides every GPU: this worker runs on the CPU"
        ))),
        (VisibleGpus::Hidden(raw), Some(n)) => Err(format!(
            "runtime.device: cuda:{n} requested but CUDA_VISIBLE_DEVICES={raw:?} hides every GPU \
             (ask the scheduler for one: --gres=gpu:1, or nvidia.com/gpu: 1)"
        )),
        (VisibleGpus::Listed(list), n) => {
            let n = n.unwrap_or(0);
            let Some(physical) = list.get(n) else {
                return Err(format!(
                    "runtime.device: cuda:{n} requested but CUDA_VISIBLE_DEVICES={} makes {} GPU{} \
                     visible, numbered from cuda:0 (use cuda, i.e. cuda:0, under a scheduler)",
                    list.join(","),
                    list.len(),
                    if list.len() == 1 { "" } else { "s" }
                ));
            };
            let mut note = format!(
                "cuda:{n} is GPU {physical} (CUDA_VISIBLE_DEVICES={})",
                list.join(",")
            );
            if list.len() > 1 {
                note.push_str(&format!(
                    "; {} GPUs are visible and one worker uses one: run one worker per GPU \
                     (one array task each, or CUDA_VISIBLE_DEVICES=i clipflow run ... per GPU on \
                     the same --out)",
                    list.len()
                ));
            }
            Ok(Some(note))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn slurm_array_variables_give_the_shard_and_the_task() {
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_JOB_ID", "77"),
            ("SLURM_JOB_ID", "79"),
        ]);
        let s = resolve(Some("auto"), None, &e).unwrap();
        assert_eq!(s.shard, Some(Shard { index: 2, count: 4 }));
        assert!(s.elastic);
        assert_eq!(s.task.as_deref(), Some("slurm:77_2"));
        // One-based arrays and steps count positions.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "16"),
            ("SLURM_ARRAY_TASK_COUNT", "16"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ]);
        assert_eq!(
            resolve(Some("auto"), None, &e).unwrap().shard,
            Some(Shard {
                index: 15,
                count: 16
            })
        );
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert_eq!(
            resolve(Some("auto"), None, &e).unwrap().shard,
            Some(Shard { index: 3, count: 4 })
        );
        // A resubmitted single index: a valid shard still.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
        ]);
        assert_eq!(
            resolve(Some("auto"), None, &e).unwrap().shard,
            Some(Shard { index: 0, count: 1 })
        );
        // --shard-count overrides the array's count.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ]);
        assert_eq!(
            resolve(Some("auto"), Some(4), &e).unwrap().shard,
            Some(Shard { index: 2, count: 4 })
        );
    }

    #[test]
    fn kubernetes_needs_a_count_from_the_flag_or_the_variable() {
        let e = env(&[("JOB_COMPLETION_INDEX", "3")]);
        let err = resolve(Some("auto"), None, &e).unwrap_err();
        assert!(
            err.contains("--shard-count") && err.contains(SHARD_COUNT_VAR),
            "{err}"
        );
        assert_eq!(
            resolve(Some("auto"), Some(8), &e).unwrap().shard,
            Some(Shard { index: 3, count: 8 })
        );
        let e = env(&[("JOB_COMPLETION_INDEX", "3"), (SHARD_COUNT_VAR, "16")]);
        let s = resolve(Some("auto"), None, &e).unwrap();
        assert_eq!(
            s.shard,
            Some(Shard {
                index: 3,
                count: 16
            })
        );
        assert_eq!(s.task, None, "a pod has no task identity of its own");
        let e = env(&[("JOB_COMPLETION_INDEX", "3"), (SHARD_COUNT_VAR, "3")]);
        assert!(resolve(Some("auto"), None, &e)
            .unwrap_err()
            .contains("not below"));
        let e = env(&[("JOB_COMPLETION_INDEX", "x"), (SHARD_COUNT_VAR, "3")]);
        assert!(resolve(Some("auto"), None, &e)
            .unwrap_err()
            .contains("JOB_COMPLETION_INDEX=x"));
        let e = env(&[("JOB_COMPLETION_INDEX", "1"), (SHARD_COUNT_VAR, "many")]);
        assert!(resolve(Some("auto"), None, &e)
            .unwrap_err()
            .contains("CLIPFLOW_SHARD_COUNT=many"));
        let e = env(&[
            ("JOB_COMPLETION_INDEX", "1"),
            (TASK_ID_VAR, "k8s-uid-1"),
            (SHARD_COUNT_VAR, "2"),
        ]);
        assert_eq!(
            resolve(Some("auto"), None, &e).unwrap().task.as_deref(),
            Some("k8s-uid-1")
        );
    }

    #[test]
    fn auto_without_a_scheduler_is_a_clear_error() {
        let err = resolve(Some("auto"), None, &env(&[])).unwrap_err();
        for word in [
            "SLURM_ARRAY_TASK_ID",
            "JOB_COMPLETION_INDEX",
            "--shard-count",
            "same --out",
        ] {
            assert!(err.contains(word), "{word}: {err}");
        }
    }

    #[test]
    fn static_and_plain_runs() {
        let s = resolve(Some("1/3"), None, &env(&[])).unwrap();
        assert_eq!(s.shard, Some(Shard { index: 1, count: 3 }));
        assert!(!s.elastic);
        let s = resolve(None, None, &env(&[])).unwrap();
        assert_eq!(s.shard, None);
        assert!(s.elastic);
        assert!(resolve(Some("1/3"), Some(3), &env(&[])).is_err());
        assert!(resolve(None, Some(3), &env(&[])).is_err());
        assert!(resolve(Some("3/3"), None, &env(&[])).is_err());
        // A plain batch job is a task too (requeued jobs keep their id); srun ranks differ.
        let e = env(&[
            ("SLURM_JOB_ID", "5"),
            ("SLURM_PROCID", "3"),
            ("SLURM_STEP_ID", "0"),
        ]);
        assert_eq!(task_identity(&e).as_deref(), Some("slurm:5.0:3"));
    }

    #[test]
    fn visible_gpus_are_numbered_from_zero() {
        let v = |s: &str| VisibleGpus::from_env(&env(&[("CUDA_VISIBLE_DEVICES", s)]));
        assert_eq!(VisibleGpus::from_env(&env(&[])), VisibleGpus::All);
        assert_eq!(v("2"), VisibleGpus::Listed(vec!["2".into()]));
        assert_eq!(v("3,1"), VisibleGpus::Listed(vec!["3".into(), "1".into()]));
        assert_eq!(v("1,-1,2"), VisibleGpus::Listed(vec!["1".into()]));
        assert!(matches!(v(""), VisibleGpus::Hidden(_)));
        assert!(matches!(v("-1"), VisibleGpus::Hidden(_)));
        assert!(matches!(v("NoDevFiles"), VisibleGpus::Hidden(_)));

        assert_eq!(check_gpus("cpu", &v("")).unwrap(), None);
        assert!(check_gpus("auto", &v("")).unwrap().unwrap().contains("CPU"));
        assert!(check_gpus("cuda", &v("-1"))
            .unwrap_err()
            .contains("hides every GPU"));
        let note = check_gpus("cuda", &v("2")).unwrap().unwrap();
        assert!(note.contains("GPU 2"), "{note}");
        assert!(!note.contains("one worker per GPU"), "{note}");
        let note = check_gpus("auto", &v("0,1,2,3")).unwrap().unwrap();
        assert!(note.contains("one worker per GPU"), "{note}");
        let err = check_gpus("cuda:1", &v("2")).unwrap_err();
        assert!(err.contains("cuda:0"), "{err}");
        assert_eq!(check_gpus("cuda:1", &VisibleGpus::All).unwrap(), None);
    }
}
