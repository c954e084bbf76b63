//! Workers that share one run directory: any number of `clipflow run`s (array tasks, pods,
//! plain processes) on one `--out` do each part once, and exactly one of them finishes.
//!
//! - A worker claims a part before encoding it ([`super::claims`]: atomic create, heartbeat,
//!   takeover of stale claims) and releases it once the part file is in place. The part file
//!   is the part's completion marker, so a part is never claimed after it exists.
//! - A worker's stage timings are files of their own: `state/workers/<worker>.json` (written
//!   once, before it claims anything: host, task, shard, plan and model-load seconds) and
//!   `state/timings/part-NNNNNN.json` (written by the part's worker just before the part
//!   itself). The finisher merges them all into the manifest, so every worker's time is
//!   there, killed workers' finished parts included.
//! - When nothing is left to claim, a worker waits only for claims whose holder has missed
//!   heartbeats (to take them over when they go stale); claims with a fresh heartbeat belong to
//!   live workers, which will finish them, so it leaves.
//! - The worker that finds every part done tries to claim the unit `finish`. Exactly one
//!   worker wins that atomic create; it merges errors and timings, runs the analysis, writes
//!   the manifest and the report, removes stale temporary files, and marks `finish` done. A
//!   finisher that dies is taken over like any claim.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

pub(super) use super::claims::Holder;
use super::claims::{Attempt, Claim, ClaimError, ClaimSettings, Claims, Liveness, Until};
use super::execute::{RunError, Shard};
use crate::store::StoreError;
use crate::util;

/// The unit the finisher is elected by.
const FINISH: &str = "finish";
/// Analysis blocks (per-query work shared by the workers) live under this folder of claims.
const ANALYSIS: &str = "analysis";
/// Part claims live under this folder of `state/claims`.
const PARTS: &str = "parts";

impl From<ClaimError> for RunError {
    fn from(e: ClaimError) -> RunError {
        match e {
            ClaimError::Io { path, message } => RunError::Store(StoreError::Io { path, message }),
            other => RunError::Other(other.to_string()),
        }
    }
}

/// One worker on a shared run directory.
pub(super) struct Worker {
    claims: Claims,
    name: String,
    run_dir: PathBuf,
    _signals: super::signals::HookGuard,
}

/// The outcome of trying to claim a part.
pub(super) enum PartClaim {
    Mine(Claim),
    Done,
    Held(Holder),
}

/// The outcome of the finisher election.
pub(super) enum Election {
    /// This worker finishes the run.
    Finisher(Claim),
    /// The run was finished before.
    Finished,
    /// Another worker is finishing (or, if overdue, has probably died: wait and retry).
    Busy(Holder),
}

impl Worker {
    /// Registers this process as a worker of `run_dir`. `timeout` is `runtime.claim_timeout`.
    pub fn join(run_dir: &Path, timeout: f64, task: Option<String>) -> Result<Worker, RunError> {
        let settings = ClaimSettings::with_timeout(Duration::from_secs_f64(timeout));
        let claims = Claims::open(&run_dir.join("state").join("claims"), settings, task)?;
        let abandoner = claims.abandoner();
        let signals = super::signals::on_termination(Box::new(move || abandoner.abandon_all()));
        Ok(Worker {
            name: claims.worker_name(),
            claims,
            run_dir: run_dir.to_path_buf(),
            _signals: signals,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The analysis's per-query blocks, claimed like parts (see [`BlockShare`]); a shard
    /// starts with its own stripe of the blocks, so workers spread instead of queueing.
    pub fn block_share(&self, shard: Option<Shard>) -> BlockShare<'_> {
        BlockShare {
            claims: &self.claims,
            shard,
        }
    }

    pub fn settings(&self) -> ClaimSettings {
        self.claims.settings()
    }

    /// Whether a finisher completed the run.
    pub fn finished(&self) -> Result<bool, RunError> {
        Ok(self.claims.is_done(FINISH)?)
    }

    /// Makes a finished run finishable again (some of its parts were deleted and are redone).
    pub fn reopen(&self) -> Result<(), RunError> {
        Ok(self.claims.reopen(FINISH)?)
    }

    /// Writes this worker's log (`state/workers/<worker>.json`); `log` gets the worker's
    /// identity added.
    pub fn write_log(&self, mut log: Value) -> Result<(), RunError> {
        let me = self.claims.me();
        if let Some(o) = log.as_object_mut() {
            o.insert("worker".into(), json!(self.name));
            o.insert("host".into(), json!(me.host));
            o.insert("pid".into(), json!(me.pid));
            o.insert("task".into(), json!(me.task));
            o.insert("started".into(), json!(me.started));
        }
        let path = self.log_path();
        util::write_atomic(&path, log.to_string().as_bytes())
            .map_err(|e| RunError::Store(StoreError::io(&path, e)))
    }

    fn log_path(&self) -> PathBuf {
        workers_dir(&self.run_dir).join(format!("{}.json", self.name))
    }

    /// Claims part `index` unless `part_file` exists.
    pub fn claim_part(&self, index: usize, part_file: &Path) -> Result<PartClaim, RunError> {
        let unit = format!("{PARTS}/{index:06}");
        Ok(
            match self
                .claims
                .try_claim_unless(&unit, &|| part_file.exists())?
            {
                Attempt::Claimed(c) => PartClaim::Mine(c),
                Attempt::Done => PartClaim::Done,
                Attempt::Held(h) => PartClaim::Held(h),
            },
        )
    }

    /// Records this worker's time on a part, just before the part is made visible. Fails when
    /// the claim was taken over meanwhile (this worker stalled past the timeout): the part then
    /// belongs to the worker that took it.
    pub fn record_part(&self, claim: &Claim, index: usize, record: Value) -> Result<(), RunError> {
        if !claim.is_held() {
            return Err(RunError::Other(format!(
                "part {index}: another worker took this part over (this worker's heartbeat \
                 stopped for longer than runtime.claim_timeout, {:.0} s); leaving it to that \
                 worker",
                self.settings().timeout.as_secs_f64()
            )));
        }
        let mut record = record;
        if let Some(o) = record.as_object_mut() {
            o.insert("worker".into(), json!(self.name));
            o.insert("part".into(), json!(index));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            o.insert("finished".into(), json!(now));
        }
        let path = timings_dir(&self.run_dir).join(format!("part-{index:06}.json"));
        util::write_atomic(&path, record.to_string().as_bytes())
            .map_err(|e| RunError::Store(StoreError::io(&path, e)))
    }

    /// Whether any worker of this run (live or gone) was started as a shard of an array: its
    /// workers share the analysis's blocks, so the finisher must join them (and wait for the
    /// blocks they hold) before it analyses and removes the blocks.
    pub fn any_sharded(&self) -> bool {
        std::fs::read_dir(workers_dir(&self.run_dir))
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .any(|l| l["shard"].as_str().is_some_and(|s| s != "all"))
    }

    /// Whether every part in `missing` has a live worker (other than this one) that may write
    /// it: one whose stripe holds it, or one that takes any part. Waiting for them is then
    /// waiting for progress; a part no live worker may take needs a worker yet to come.
    /// A live worker whose log is not written yet is counted as able to take anything.
    pub fn others_cover(&self, missing: &[usize]) -> bool {
        let me = self.claims.me();
        let logs: Vec<Value> = std::fs::read_dir(workers_dir(&self.run_dir))
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
        let covers: Vec<Option<Shard>> = self
            .claims
            .live_workers()
            .into_iter()
            .filter(|r| r.token != me.token)
            .map(|r| {
                let log = logs.iter().find(|l| {
                    l["host"].as_str() == Some(r.host.as_str())
                        && l["pid"].as_u64() == Some(r.pid as u64)
                });
                match log {
                    Some(l) if l["elastic"].as_bool() != Some(true) => {
                        l["shard"].as_str().and_then(|s| Shard::parse(s).ok())
                    }
                    _ => None,
                }
            })
            .collect();
        !covers.is_empty()
            && missing.iter().all(|&p| {
                covers
                    .iter()
                    .any(|c| c.is_none_or(|s| p % s.count == s.index))
            })
    }

    /// Tries to become the finisher.
    pub fn elect_finisher(&self) -> Result<Election, RunError> {
        Ok(match self.claims.try_claim(FINISH)? {
            Attempt::Claimed(c) => Election::Finisher(c),
            Attempt::Done => Election::Finished,
            Attempt::Held(h) => Election::Busy(h),
        })
    }

    /// The finisher's last chores once every part is in place: part claims are forgotten (no
    /// part will be claimed again) and temporary files of processes that are no longer
    /// workers are removed. Returns the removed temporaries.
    pub fn clean_up(&self) -> Result<Vec<PathBuf>, RunError> {
        self.claims.forget_all_under(PARTS)?;
        self.claims.forget_all_under(ANALYSIS)?;
        let live: BTreeSet<u32> = self
            .claims
            .live_workers()
            .into_iter()
            .map(|r| r.pid)
            .collect();
        Ok(remove_stale_temps(&self.run_dir, &live))
    }
}

/// The analysis's blocks of per-query work, handed out by claim files: every worker takes the
/// blocks nobody holds (`Until::NothingClaimable`), and the finisher, before it runs the
/// analysis, waits for the ones live workers hold and takes over the dead ones'
/// (`Until::AllDone`). A block's result file is its completion marker.
pub(super) struct BlockShare<'a> {
    claims: &'a Claims,
    shard: Option<Shard>,
}

impl crate::analyze::Share for BlockShare<'_> {
    fn drain(
        &self,
        units: &[String],
        done: &dyn Fn(&str) -> bool,
        wait: bool,
        work: &mut dyn FnMut(&str) -> Result<(), String>,
    ) -> Result<(), String> {
        let prefix = format!("{ANALYSIS}/");
        let claimed: Vec<String> = preference(units.len(), self.shard, true)
            .into_iter()
            .map(|i| format!("{prefix}{}", units[i]))
            .collect();
        let strip = |u: &str| u.strip_prefix(&prefix).unwrap_or(u).to_string();
        let until = if wait {
            Until::AllDone
        } else {
            Until::NothingClaimable
        };
        self.claims
            .drain(
                &claimed,
                // A run finished meanwhile needs no more blocks (its finisher removed them).
                &|u| done(&strip(u)) || self.claims.is_done(FINISH).unwrap_or(false),
                until,
                &mut |claim: Claim| -> Result<(), ClaimError> {
                    work(&strip(claim.unit())).map_err(|message| ClaimError::Io {
                        path: PathBuf::from(claim.unit()),
                        message,
                    })
                    // Dropping the claim releases it; the block's file says it is done.
                },
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// How long to wait before looking again at parts held by others, or `None` to leave now:
/// only claims whose holder missed heartbeats are worth waiting for (to take them over).
pub(super) fn wait_for(holders: &[Holder], settings: ClaimSettings) -> Option<Duration> {
    holders
        .iter()
        .filter(|h| h.liveness == Liveness::Overdue)
        .map(|h| h.stale_in + Duration::from_millis(50))
        .min()
        .map(|d| d.min(settings.heartbeat).max(Duration::from_millis(100)))
}

fn workers_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("state").join("workers")
}

fn timings_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("state").join("timings")
}

/// The order in which a worker tries parts `0..n`. Static (`--shard I/N`): its stripe only.
/// Elastic: its stripe first, then the others' parts, nearest stripe first (worker 2 of 4
/// helps stripe 3, then 0, then 1), so helpers spread instead of piling onto one stripe.
pub(super) fn preference(n: usize, shard: Option<Shard>, elastic: bool) -> Vec<usize> {
    let Some(s) = shard else {
        return (0..n).collect();
    };
    let mut order: Vec<usize> = (0..n)
        .filter(|p| elastic || p % s.count == s.index)
        .collect();
    order.sort_by_key(|p| ((p % s.count + s.count - s.index) % s.count, *p));
    order
}

/// Every worker's stage timings, for the manifest: one entry per worker log (sorted by start),
/// each with the parts it wrote and its encode seconds per (model, modality), summed from the
/// part records. The shape is the one `stage_timings` always had (`seconds.plan`,
/// `seconds.load_models`, `seconds.encode`, `encode[]`).
pub(super) fn stage_timings(run_dir: &Path) -> Vec<Value> {
    let read_dir = |dir: PathBuf| -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .collect()
    };
    let mut parts_by_worker: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in read_dir(timings_dir(run_dir)) {
        let worker = record["worker"].as_str().unwrap_or("?").to_string();
        parts_by_worker.entry(worker).or_default().push(record);
    }
    let mut logs = read_dir(workers_dir(run_dir));
    // Part records of a worker without a log (cannot happen unless files were deleted).
    for worker in parts_by_worker.keys() {
        if !logs.iter().any(|l| l["worker"].as_str() == Some(worker)) {
            logs.push(json!({"worker": worker}));
        }
    }
    logs.sort_by(|a, b| {
        let started = |v: &Value| v["started"].as_f64().unwrap_or(f64::MAX);
        started(a)
            .total_cmp(&started(b))
            .then_with(|| a["worker"].as_str().cmp(&b["worker"].as_str()))
    });
    logs.into_iter()
        .map(|mut log| {
            let worker = log["worker"].as_str().unwrap_or("?").to_string();
            let parts = parts_by_worker.remove(&worker).unwrap_or_default();
            let mut groups: BTreeMap<(String, String), (usize, usize, f64)> = BTreeMap::new();
            let mut numbers = Vec::new();
            let mut rows = 0u64;
            let mut encode = 0.0;
            for p in &parts {
                let key = (
                    p["model"].as_str().unwrap_or("?").to_string(),
                    p["modality"].as_str().unwrap_or("?").to_string(),
                );
                let g = groups.entry(key).or_insert((0, 0, 0.0));
                let secs = p["seconds"].as_f64().unwrap_or(0.0);
                g.0 += 1;
                g.1 += p["items"].as_u64().unwrap_or(0) as usize;
                g.2 += secs;
                encode += secs;
                rows += p["rows"].as_u64().unwrap_or(0);
                numbers.push(p["part"].clone());
            }
            if let Some(o) = log.as_object_mut() {
                let seconds = o.entry("seconds").or_insert_with(|| json!({}));
                if let Some(s) = seconds.as_object_mut() {
                    s.insert("encode".into(), json!(encode));
                }
                o.insert("parts_written".into(), json!(parts.len()));
                o.insert("parts".into(), Value::Array(numbers));
                o.insert("rows_written".into(), json!(rows));
                o.insert(
                    "encode".into(),
                    Value::Array(
                        groups
                            .into_iter()
                            .map(|((model, modality), (n, items, seconds))| {
                                json!({"model": model, "modality": modality, "parts": n,
                                       "items": items, "seconds": seconds})
                            })
                            .collect(),
                    ),
                );
            }
            log
        })
        .collect()
}

/// The pid a temporary file name carries: `.NAME.tmp-PID` (written by [`util::temp_path`]) or
/// `.NAME.tmp-PID-N` (claim files being created).
fn temp_pid(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let tail = &name[name.rfind(".tmp-")? + 5..];
    let pid = tail.split('-').next()?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes temporary files under `run_dir` whose pid is not a live worker's. Called by the
/// finisher once every part exists: no other process is then writing into the run directory
/// except live workers (whose pids are kept, on any host: a pid shared by chance keeps a stale
/// file, never deletes a live one).
pub(super) fn remove_stale_temps(run_dir: &Path, live: &BTreeSet<u32>) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut stack = vec![run_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = temp_pid(&name) {
                if !live.contains(&pid) && std::fs::remove_file(&path).is_ok() {
                    removed.push(path);
                }
            }
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_orders_own_stripe_first_then_nearest() {
        let s = Some(Shard { index: 2, count: 4 });
        assert_eq!(preference(10, s, false), vec![2, 6]);
        assert_eq!(preference(10, s, true), vec![2, 6, 3, 7, 0, 4, 8, 1, 5, 9]);
        assert_eq!(preference(3, None, true), vec![0, 1, 2]);
    }

    #[test]
    fn temp_names_give_their_pid() {
        assert_eq!(temp_pid(".part-00006.parquet.tmp-4242"), Some(4242));
        assert_eq!(temp_pid(".finish.claim-0.tmp-17-3"), Some(17));
        assert_eq!(temp_pid("part-00006.parquet"), None);
        assert_eq!(temp_pid(".notes.tmp-"), None);
        assert_eq!(temp_pid(".x.tmp-12ab"), None);
    }

    #[test]
    fn stale_temps_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("embeddings/m/image");
        std::fs::create_dir_all(&parts).unwrap();
        for name in [
            ".part-00001.parquet.tmp-111",
            ".part-00002.parquet.tmp-222",
            "part-00003.parquet",
        ] {
            std::fs::write(parts.join(name), b"x").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state/.study.json.tmp-111"), b"x").unwrap();
        let live: BTreeSet<u32> = [222].into_iter().collect();
        let removed = remove_stale_temps(dir.path(), &live);
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(parts.join(".part-00002.parquet.tmp-222").exists());
        assert!(parts.join("part-00003.parquet").exists());
    }

    #[test]
    fn timings_merge_every_worker() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let w = workers_dir(run);
        let t = timings_dir(run);
        std::fs::create_dir_all(&w).unwrap();
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(
            w.join("b.json"),
            json!({"worker": "b", "started": 2.0, "seconds": {"plan": 1.0, "load_models": 2.0}})
                .to_string(),
        )
        .unwrap();
        std::fs::write(
            w.join("a.json"),
            json!({"worker": "a", "started": 1.0, "seconds": {"plan": 1.5, "load_models": 2.5}})
                .to_string(),
        )
        .unwrap();
        for (i, worker, modality, secs) in [
            (0, "a", "image", 3.0),
            (1, "b", "image", 4.0),
            (2, "a", "image", 5.0),
            (3, "a", "text", 1.0),
        ] {
            std::fs::write(
                t.join(format!("part-{i:06}.json")),
                json!({"worker": worker, "part": i, "model": "m", "modality": modality,
                       "items": 10, "rows": 30, "seconds": secs})
                .to_string(),
            )
            .unwrap();
        }
        let merged = stage_timings(run);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0]["worker"], "a");
        assert_eq!(merged[0]["parts_written"], 3);
        assert_eq!(merged[0]["parts"], json!([0, 2, 3]));
        assert_eq!(merged[0]["seconds"]["encode"], 9.0);
        assert_eq!(merged[0]["seconds"]["plan"], 1.5);
        assert_eq!(merged[0]["encode"][0]["seconds"], 8.0);
        assert_eq!(merged[0]["encode"][0]["items"], 20);
        assert_eq!(merged[1]["worker"], "b");
        assert_eq!(merged[1]["rows_written"], 30);
    }
}
