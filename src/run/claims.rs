//! Claims: workers that share a run directory agree on who does which unit of work (a part, a
//! block of analysis queries, the final merge) through files alone.
//!
//! Why files and not `flock`: run directories live on cluster file systems (NFS, Lustre, CephFS,
//! a Kubernetes volume) where advisory locks are missing, slow or silently local to one node.
//! What those file systems do guarantee is that creating a name that already exists fails on
//! the server. So a claim is a file created atomically; everything else is ordinary reads and
//! writes whose staleness (attribute caches of a few seconds) is far below the time scales here.
//!
//! A unit `U` is claimed by creating `U.claim-0`. The file is written complete under a unique
//! temporary name and then hard-linked to its claim name (`link` fails on an existing name, and
//! the temporary's link count tells a retransmitted success from a real failure, the NFS-safe
//! idiom); where hard links are not supported, `O_CREAT|O_EXCL` is used instead. The file holds
//! the holder (host, pid, start, task), a token, a state (`held`/`free`) and a heartbeat that a
//! background thread rewrites in place every `heartbeat` (`fsync`ed, so other nodes see it).
//!
//! A claim is taken over, by creating the next generation `U.claim-1`, `U.claim-2`, ..., when
//! its holder released it (`free`), when its heartbeat is older than the timeout, or at once
//! when its holder is provably gone: same host (boot id and pid namespace) and no such process,
//! or the same scheduler task (a requeued array task) on another host. Generations only grow and
//! are never deleted while a unit can still be claimed, so "the highest generation present is
//! the current claim" needs no lock, and two takers of one stale claim race for the same next
//! name: exactly one wins. A holder that finds a generation above its own has lost the claim
//! and must drop its work (see [`Claim::is_held`]).
//!
//! Completion is the caller's business: a part is done when its file exists, so parts use
//! [`Claims::try_claim_unless`]; units without an output of their own (the finisher's merge, an
//! analysis block whose result is merged later) use [`Claim::complete`], which leaves a
//! `U.done` marker that [`Claims::try_claim`] respects. The done check runs again after a claim
//! is won, so a unit finished between the check and the claim is never done twice.
//!
//! Clocks: a heartbeat is a wall-clock time written by its holder and read by others, so the
//! nodes' clocks must agree to well within the timeout (NTP does; the default timeout is ten
//! minutes, the heartbeat every 30 s).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Why a claim operation failed: the file system refused, or a unit name is not a relative path.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("claim unit `{0}`: use `/`-separated names of letters, digits, `.`, `_`, `-` (not starting with `.`)")]
    BadUnit(String),
    #[error("claim unit `{0}`: its work returned without completing it")]
    Incomplete(String),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> ClaimError {
    ClaimError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// How long a silent claim is trusted, and how often a holder proves it is alive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClaimSettings {
    /// A claim whose heartbeat is older than this is taken over (`runtime.claim_timeout`).
    pub timeout: Duration,
    /// How often the holder rewrites its heartbeat.
    pub heartbeat: Duration,
}

impl ClaimSettings {
    /// A heartbeat every fifth of the timeout, at most every 30 s: a holder must miss several
    /// beats in a row before anyone takes its work.
    pub fn with_timeout(timeout: Duration) -> ClaimSettings {
        ClaimSettings {
            timeout,
            heartbeat: (timeout / 5).min(Duration::from_secs(30)),
        }
    }

    /// A holder whose heartbeat is older than this has missed beats: it is probably gone, and
    /// a worker with nothing else to do should wait to take its claim over rather than leave.
    pub fn overdue_after(&self) -> Duration {
        (self.heartbeat * 3).min(self.timeout)
    }
}

/// What a claim file says. The heartbeat is in milliseconds so that the record keeps its length
/// when it is rewritten in place (13 digits until the year 2286).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub host: String,
    pub pid: u32,
    /// The scheduler task the holder runs as (`slurm:123_4`), if any.
    pub task: Option<String>,
    /// When the holding process started (Unix seconds).
    pub started: f64,
    /// Unique per process: tells this holder from an earlier process with the same pid.
    pub token: String,
    /// `/proc/sys/kernel/random/boot_id` and the pid namespace: a pid only means something to
    /// processes that share both.
    pub boot_id: String,
    pub pid_ns: String,
    /// Start time of the process in clock ticks since boot (`/proc/PID/stat`, field 22), so a
    /// recycled pid is not mistaken for the holder.
    pub proc_start: u64,
    pub generation: u32,
    /// `held`, or `free` once given back without completing.
    pub state: String,
    pub heartbeat_ms: u64,
}

const HELD: &str = "held";
const FREE: &str = "free";

/// How alive the holder of a claim looks to another worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Heartbeat within the last three beats.
    Fresh,
    /// Missed beats, not yet past the timeout: probably gone.
    Overdue,
}

/// A claim held by another worker.
#[derive(Debug, Clone)]
pub struct Holder {
    pub record: ClaimRecord,
    pub liveness: Liveness,
    /// Age of its heartbeat by this machine's clock.
    pub heartbeat_age: Duration,
    /// When it becomes stale, unless renewed.
    pub stale_in: Duration,
}

/// The outcome of [`Claims::try_claim`].
#[derive(Debug)]
pub enum Attempt {
    /// This process now holds the unit.
    Claimed(Claim),
    /// Another live worker holds it.
    Held(Holder),
    /// The unit is complete.
    Done,
}

/// When [`Claims::drain`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// No unit is left that this worker may claim: the rest are held by live workers.
    NothingClaimable,
    /// Every unit is done.
    AllDone,
}

/// This process's identity in claim files.
#[derive(Debug, Clone)]
struct Identity {
    host: String,
    pid: u32,
    task: Option<String>,
    started: f64,
    token: String,
    boot_id: String,
    pid_ns: String,
    proc_start: u64,
}

struct HeldClaim {
    file: File,
    record: ClaimRecord,
    /// The next generation's path: its existence means the claim was taken over.
    next: PathBuf,
    lost: Arc<AtomicBool>,
}

struct Shared {
    root: PathBuf,
    settings: ClaimSettings,
    me: Identity,
    held: Mutex<BTreeMap<String, HeldClaim>>,
    /// The registration that tells other workers this process is alive (see
    /// [`Claims::live_workers`]).
    registration: Mutex<Option<HeldClaim>>,
    registration_path: PathBuf,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// One process's handle on the claims under a directory (a run's `state/claims`). Opening it
/// registers the process as a live worker and starts the heartbeat thread; dropping it releases
/// every claim still held and deregisters.
pub struct Claims {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A unit held by this process. Dropping it releases the unit (as [`Claim::release`]).
#[derive(Debug)]
pub struct Claim {
    unit: String,
    generation: u32,
    next: PathBuf,
    lost: Arc<AtomicBool>,
    shared: Arc<Shared>,
    open: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("root", &self.root).finish()
    }
}

impl Claims {
    /// Opens the claims under `root` (created if missing) for this process. `task` names the
    /// scheduler task this process runs as, so that a requeued incarnation of the same task on
    /// another node may take over its predecessor's claims at once.
    pub fn open(
        root: &Path,
        settings: ClaimSettings,
        task: Option<String>,
    ) -> Result<Claims, ClaimError> {
        std::fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
        let me = Identity::current(task);
        let worker = worker_name(&me);
        let registration_path = root.join("workers").join(format!("{worker}.claim-0"));
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            settings,
            me,
            held: Mutex::new(BTreeMap::new()),
            registration: Mutex::new(None),
            registration_path: registration_path.clone(),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        // The registration is a claim on a name no other process uses.
        std::fs::create_dir_all(root.join("workers")).map_err(|e| io_err(root, e))?;
        let record = shared.record(0, HELD);
        let file = create_exclusive(&registration_path, &record_bytes(&record))
            .map_err(|e| io_err(&registration_path, e))?
            .ok_or_else(|| {
                io_err(
                    &registration_path,
                    "exists already (same host, pid and start time?)",
                )
            })?;
        *lock(&shared.registration) = Some(HeldClaim {
            file,
            record,
            next: registration_path.with_extension("claim-1"),
            lost: Arc::new(AtomicBool::new(false)),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("clipflow-heartbeat".into())
                .spawn(move || shared.heartbeat_loop())
                .map_err(|e| io_err(root, format!("cannot start the heartbeat thread: {e}")))?
        };
        Ok(Claims {
            shared,
            thread: Some(thread),
        })
    }

    /// The settings claims are judged by.
    pub fn settings(&self) -> ClaimSettings {
        self.shared.settings
    }

    /// A name for this process, unique across hosts and restarts (`host-pid-token`).
    pub fn worker_name(&self) -> String {
        worker_name(&self.shared.me)
    }

    /// This process as it appears in claim files.
    pub fn me(&self) -> ClaimRecord {
        self.shared.record(0, HELD)
    }

    /// Claims `unit` unless its `done` marker exists (see [`Claim::complete`]).
    pub fn try_claim(&self, unit: &str) -> Result<Attempt, ClaimError> {
        let marker = self.marker_path(unit)?;
        self.try_claim_unless(unit, &|| marker.exists())
    }

    /// Claims `unit` unless `done()` says it is complete; `done` is asked again once the claim
    /// is won, and a claim won on a unit that completed meanwhile is given back at once.
    pub fn try_claim_unless(
        &self,
        unit: &str,
        done: &dyn Fn() -> bool,
    ) -> Result<Attempt, ClaimError> {
        let base = self.unit_path(unit)?;
        if let Some(dir) = base.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let mut last_holder = None;
        // Each lost race means another worker made progress; a few rounds settle any contest.
        for _ in 0..16 {
            if done() {
                return Ok(Attempt::Done);
            }
            let next_generation = match top_generation(&base) {
                None => 0,
                Some(top) => {
                    let path = generation_path(&base, top);
                    match self.shared.judge(&path) {
                        Judgement::Held(h) if h.record.token == self.shared.me.token => {
                            // Held by this very process (a second attempt): not claimable.
                            return Ok(Attempt::Held(*h));
                        }
                        Judgement::Held(h) => {
                            last_holder = Some(*h);
                            break;
                        }
                        Judgement::Claimable => top + 1,
                    }
                }
            };
            let path = generation_path(&base, next_generation);
            let record = self.shared.record(next_generation, HELD);
            match create_exclusive(&path, &record_bytes(&record)) {
                Ok(Some(file)) => {
                    let lost = Arc::new(AtomicBool::new(false));
                    let next = generation_path(&base, next_generation + 1);
                    lock(&self.shared.held).insert(
                        unit.to_string(),
                        HeldClaim {
                            file,
                            record,
                            next: next.clone(),
                            lost: lost.clone(),
                        },
                    );
                    let claim = Claim {
                        unit: unit.to_string(),
                        generation: next_generation,
                        next,
                        lost,
                        shared: self.shared.clone(),
                        open: true,
                    };
                    if done() {
                        claim.release()?;
                        return Ok(Attempt::Done);
                    }
                    return Ok(Attempt::Claimed(claim));
                }
                Ok(None) => continue, // another worker created it first: look again
                Err(e) => return Err(io_err(&path, e)),
            }
        }
        match last_holder {
            Some(h) => Ok(Attempt::Held(h)),
            None => {
                // Sixteen lost races in a row: report the current holder.
                let top = top_generation(&base).unwrap_or(0);
                match self.shared.judge(&generation_path(&base, top)) {
                    Judgement::Held(h) => Ok(Attempt::Held(*h)),
                    Judgement::Claimable => Err(io_err(
                        &base,
                        "could not claim after 16 attempts (file system refusing creates?)",
                    )),
                }
            }
        }
    }

    /// Whether `unit` was completed with [`Claim::complete`].
    pub fn is_done(&self, unit: &str) -> Result<bool, ClaimError> {
        Ok(self.marker_path(unit)?.exists())
    }

    /// Removes `unit`'s done marker, so that it can be claimed and completed again (a repaired
    /// run whose outputs were deleted).
    pub fn reopen(&self, unit: &str) -> Result<(), ClaimError> {
        let path = self.marker_path(unit)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Deletes every claim file under `prefix` (a folder of units). Only for units that are all
    /// complete and that nobody will claim again: deleting generations of a claimable unit
    /// would let two workers hold it.
    pub fn forget_all_under(&self, prefix: &str) -> Result<(), ClaimError> {
        let dir = self.unit_path(prefix)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&dir, e)),
        }
    }

    /// The workers whose registration is alive (this one included): fresh or overdue
    /// heartbeat, not released, not provably gone.
    pub fn live_workers(&self) -> Vec<ClaimRecord> {
        let dir = self.shared.root.join("workers");
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if !name.is_some_and(|n| n.ends_with(".claim-0") && !n.starts_with('.')) {
                continue;
            }
            if let Judgement::Held(h) = self.shared.judge(&p) {
                out.push(h.record.clone());
            }
        }
        out
    }

    /// Marks every claim this process holds as free, so other workers take them at once.
    /// Meant for a termination signal: it waits at most a second for the claim table.
    pub fn abandon_all(&self) {
        self.shared.abandon_all();
    }

    /// Works through `units` in order: claims each one that `done` does not report complete and
    /// hands the claim to `work`, which should finish the unit and then call
    /// [`Claim::complete`] (marker units) or [`Claim::release`] (units with their own output,
    /// checked by `done`); a claim `work` drops is released. Units held by other workers are
    /// revisited:
    /// - [`Until::NothingClaimable`] (a helper): returns once the units left are all held by
    ///   workers with a fresh heartbeat; it waits only for overdue holders, to take over their
    ///   units when they go stale.
    /// - [`Until::AllDone`] (whoever merges the results): returns once every unit is done,
    ///   waiting for live holders and taking over the rest.
    ///
    /// Returns the units this call completed. A unit whose `work` fails ends the call with
    /// that error (the unit is released for others).
    pub fn drain<E: From<ClaimError>>(
        &self,
        units: &[String],
        done: &dyn Fn(&str) -> bool,
        until: Until,
        work: &mut dyn FnMut(Claim) -> Result<(), E>,
    ) -> Result<Vec<String>, E> {
        let mut mine = Vec::new();
        loop {
            let mut held: Vec<Holder> = Vec::new();
            for unit in units {
                match self.try_claim_unless(unit, &|| done(unit))? {
                    Attempt::Done => {}
                    Attempt::Held(h) => held.push(h),
                    Attempt::Claimed(c) => {
                        work(c)?;
                        if !done(unit) {
                            // Claimed again on the next pass, forever: a bug of the caller.
                            return Err(ClaimError::Incomplete(unit.clone()).into());
                        }
                        mine.push(unit.clone());
                    }
                }
            }
            let settings = self.shared.settings;
            let pause = match until {
                Until::NothingClaimable => held
                    .iter()
                    .filter(|h| h.liveness == Liveness::Overdue)
                    .map(|h| h.stale_in)
                    .min(),
                Until::AllDone => held
                    .iter()
                    .map(|h| match h.liveness {
                        // A live holder is polled often: it may finish any moment.
                        Liveness::Fresh => (settings.heartbeat / 4).min(Duration::from_secs(1)),
                        Liveness::Overdue => h.stale_in,
                    })
                    .min(),
            };
            match pause {
                None => return Ok(mine),
                Some(p) => std::thread::sleep(
                    (p + Duration::from_millis(50))
                        .min(settings.heartbeat)
                        .max(Duration::from_millis(50)),
                ),
            }
        }
    }

    /// A handle that can abandon this process's claims from another thread (a signal thread).
    pub fn abandoner(&self) -> Abandoner {
        Abandoner {
            shared: Arc::downgrade(&self.shared),
        }
    }

    fn unit_path(&self, unit: &str) -> Result<PathBuf, ClaimError> {
        check_unit(unit)?;
        Ok(self.shared.root.join(unit))
    }

    fn marker_path(&self, unit: &str) -> Result<PathBuf, ClaimError> {
        let base = self.unit_path(unit)?;
        Ok(with_suffix(&base, ".done"))
    }
}

impl Drop for Claims {
    fn drop(&mut self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.abandon_all();
        if lock(&self.shared.registration).take().is_some() {
            let _ = std::fs::remove_file(&self.shared.registration_path);
        }
    }
}

/// Abandons a process's claims from another thread; does nothing once the claims are closed.
#[derive(Clone)]
pub struct Abandoner {
    shared: std::sync::Weak<Shared>,
}

impl Abandoner {
    pub fn abandon_all(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.abandon_all();
            if let Ok(mut r) = shared.registration.try_lock() {
                if r.take().is_some() {
                    let _ = std::fs::remove_file(&shared.registration_path);
                }
            }
        }
    }
}

impl Claim {
    pub fn unit(&self) -> &str {
        &self.unit
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Whether this process still holds the unit: false once another worker took it over
    /// (this process's heartbeat stopped for longer than the timeout). Check it before making
    /// the unit's result visible; a lost unit's result belongs to the new holder.
    pub fn is_held(&self) -> bool {
        if self.lost.load(Ordering::SeqCst) {
            return false;
        }
        if self.next.exists() {
            self.lost.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Gives the unit back without completing it: any worker may claim it at once.
    pub fn release(mut self) -> Result<(), ClaimError> {
        self.open = false;
        self.shared.release(&self.unit)
    }

    /// Marks the unit complete (its `done` marker) and releases it. For units whose completion
    /// is not visible otherwise; a part's file is its own marker.
    pub fn complete(mut self) -> Result<(), ClaimError> {
        self.open = false;
        let base = self.shared.root.join(&self.unit);
        let marker = with_suffix(&base, ".done");
        let record = self.shared.record(self.generation, FREE);
        crate::util::write_atomic(&marker, &record_bytes(&record))
            .map_err(|e| io_err(&marker, e))?;
        self.shared.release(&self.unit)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.open {
            let _ = self.shared.release(&self.unit);
        }
    }
}

enum Judgement {
    Held(Box<Holder>),
    Claimable,
}

impl Shared {
    fn record(&self, generation: u32, state: &str) -> ClaimRecord {
        let me = &self.me;
        ClaimRecord {
            host: me.host.clone(),
            pid: me.pid,
            task: me.task.clone(),
            started: me.started,
            token: me.token.clone(),
            boot_id: me.boot_id.clone(),
            pid_ns: me.pid_ns.clone(),
            proc_start: me.proc_start,
            generation,
            state: state.to_string(),
            heartbeat_ms: now_ms(),
        }
    }

    /// Reads a claim file and decides whether it can be taken.
    fn judge(&self, path: &Path) -> Judgement {
        let text = std::fs::read(path).ok();
        let record = text
            .as_deref()
            .and_then(|t| serde_json::from_slice::<ClaimRecord>(t).ok());
        let now = now_ms();
        let Some(record) = record else {
            // Unreadable (vanished, or torn mid-rewrite): judge by the file's age.
            let age = std::fs::metadata(path)
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            return match age {
                Some(age) if age < self.settings.timeout => Judgement::Held(Box::new(Holder {
                    record: ClaimRecord {
                        host: "?".into(),
                        pid: 0,
                        task: None,
                        started: 0.0,
                        token: String::new(),
                        boot_id: String::new(),
                        pid_ns: String::new(),
                        proc_start: 0,
                        generation: 0,
                        state: HELD.into(),
                        heartbeat_ms: now.saturating_sub(age.as_millis() as u64),
                    },
                    liveness: Liveness::Fresh,
                    heartbeat_age: age,
                    stale_in: self.settings.timeout - age,
                })),
                Some(_) => Judgement::Claimable,
                // Gone between listing and reading: look again (as claimable, the create decides).
                None => Judgement::Claimable,
            };
        };
        if record.state != HELD {
            return Judgement::Claimable;
        }
        if record.token != self.me.token && self.me.holder_is_gone(&record) {
            return Judgement::Claimable;
        }
        let age = Duration::from_millis(now.saturating_sub(record.heartbeat_ms));
        if age >= self.settings.timeout {
            return Judgement::Claimable;
        }
        let liveness = if age < self.settings.overdue_after() {
            Liveness::Fresh
        } else {
            Liveness::Overdue
        };
        Judgement::Held(Box::new(Holder {
            record,
            liveness,
            heartbeat_age: age,
            stale_in: self.settings.timeout - age,
        }))
    }

    fn release(&self, unit: &str) -> Result<(), ClaimError> {
        let held = lock(&self.held).remove(unit);
        if let Some(mut h) = held {
            if !h.lost.load(Ordering::SeqCst) {
                h.record.state = FREE.into();
                h.record.heartbeat_ms = now_ms();
                rewrite(&h.file, &h.record).map_err(|e| io_err(&self.root.join(unit), e))?;
            }
        }
        Ok(())
    }

    fn abandon_all(&self) {
        // A signal may arrive while the table is locked by a thread that will never run again
        // (the process is about to exit): try for a second, then give up.
        for _ in 0..100 {
            if let Ok(mut held) = self.held.try_lock() {
                for (_, mut h) in std::mem::take(&mut *held) {
                    h.record.state = FREE.into();
                    h.record.heartbeat_ms = now_ms();
                    let _ = rewrite(&h.file, &h.record);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn heartbeat_loop(&self) {
        let mut stop = lock(&self.stop);
        let mut next = std::time::Instant::now() + self.settings.heartbeat;
        loop {
            // Checked before every wait: a stop set while beating (or before this thread first
            // ran) must not wait out a whole heartbeat.
            if *stop {
                return;
            }
            let now = std::time::Instant::now();
            if now >= next {
                drop(stop);
                self.beat();
                next = std::time::Instant::now() + self.settings.heartbeat;
                stop = lock(&self.stop);
                continue;
            }
            stop = self
                .wake
                .wait_timeout(stop, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Renews every held claim and the registration; notices claims taken over.
    fn beat(&self) {
        let now = now_ms();
        let renew = |h: &mut HeldClaim| {
            if h.lost.load(Ordering::SeqCst) {
                return;
            }
            if h.next.exists() {
                h.lost.store(true, Ordering::SeqCst);
                return;
            }
            h.record.heartbeat_ms = now;
            // A failed write is retried next beat; enough failures and others take over.
            let _ = rewrite(&h.file, &h.record);
        };
        for h in lock(&self.held).values_mut() {
            renew(h);
        }
        if let Some(h) = lock(&self.registration).as_mut() {
            renew(h);
        }
    }
}

impl Identity {
    fn current(task: Option<String>) -> Identity {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let host = hostname();
        let pid = std::process::id();
        let started = process_start_unix().unwrap_or_else(|| now_ms() as f64 / 1000.0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!(
            "{host}\0{pid}\0{nanos}\0{}\0{:?}",
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::thread::current().id()
        );
        let token = crate::util::sha256_hex(seed.as_bytes())[..16].to_string();
        Identity {
            host,
            pid,
            task,
            started,
            token,
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            proc_start: proc_start_ticks(pid).unwrap_or(0),
        }
    }

    /// Whether the holder of `record` provably no longer runs: a process of this machine (same
    /// host name, boot and pid namespace) that does not exist any more, or an earlier
    /// incarnation of this very scheduler task on another host (a requeued array task: the
    /// scheduler ends a task before it starts it again).
    fn holder_is_gone(&self, record: &ClaimRecord) -> bool {
        let same_machine = !self.boot_id.is_empty()
            && record.host == self.host
            && record.boot_id == self.boot_id
            && record.pid_ns == self.pid_ns;
        if same_machine {
            return match proc_start_ticks(record.pid) {
                None => true,
                Some(ticks) => record.proc_start != 0 && ticks != record.proc_start,
            };
        }
        matches!((&self.task, &record.task), (Some(a), Some(b)) if a == b)
            && record.host != self.host
    }
}

fn worker_name(me: &Identity) -> String {
    let host: String = me
        .host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-{}-{}", me.pid, &me.token[..8])
}

/// A process of this machine is alive when `/proc/PID/stat` exists, is not a zombie, and
/// started when the record says. `None`: no such process.
fn proc_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); start time is field 22.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// When this process started, from its start ticks and the boot time.
fn process_start_unix() -> Option<f64> {
    let ticks = proc_start_ticks(std::process::id())? as f64;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + ticks / hz as f64)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The host name, as the kernel reports it.
pub fn hostname() -> String {
    let h = read_trimmed("/proc/sys/kernel/hostname");
    if h.is_empty() {
        std::env::var("HOSTNAME").unwrap_or_default()
    } else {
        h
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn record_bytes(record: &ClaimRecord) -> Vec<u8> {
    let mut v = serde_json::to_vec(record).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Rewrites a claim file in place (its name may not change: it is the claim) and pushes it to
/// the server, so other nodes see the heartbeat.
fn rewrite(file: &File, record: &ClaimRecord) -> io::Result<()> {
    let bytes = record_bytes(record);
    file.write_all_at(&bytes, 0)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_data()
}

/// Creates `path` holding `bytes` if no file has that name; `Ok(None)` if one has. Returns the
/// open file (the claim itself, for heartbeats).
fn create_exclusive(path: &Path, bytes: &[u8]) -> io::Result<Option<File>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = path.with_file_name(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    let outcome = match std::fs::hard_link(&temp, path) {
        Ok(()) => Ok(Some(file)),
        Err(e) => {
            // A retransmitted LINK whose first try succeeded reports EEXIST: the temporary's
            // link count says what really happened.
            let linked = std::fs::metadata(&temp)
                .map(|m| m.nlink() == 2)
                .unwrap_or(false);
            if linked {
                Ok(Some(file))
            } else if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(None)
            } else if matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EOPNOTSUPP) | Some(libc::EXDEV)
            ) || e.kind() == io::ErrorKind::Unsupported
            {
                // No hard links here (some FUSE and SMB mounts): exclusive create instead.
                drop(file);
                match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(path)
                {
                    Ok(mut f) => f
                        .write_all(bytes)
                        .and_then(|()| f.sync_all())
                        .map(|()| Some(f)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
                    Err(e) => Err(e),
                }
            } else {
                Err(e)
            }
        }
    };
    let _ = std::fs::remove_file(&temp);
    outcome
}

fn generation_path(base: &Path, generation: u32) -> PathBuf {
    with_suffix(base, &format!(".claim-{generation}"))
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The highest generation present; generations are created in order and never deleted while
/// the unit is claimable, so the first missing one ends the list.
fn top_generation(base: &Path) -> Option<u32> {
    let mut top = None;
    let mut g = 0u32;
    while generation_path(base, g).exists() {
        top = Some(g);
        g += 1;
    }
    top
}

fn check_unit(unit: &str) -> Result<(), ClaimError> {
    let ok = !unit.is_empty()
        && unit.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(ClaimError::BadUnit(unit.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ms: u64) -> ClaimSettings {
        ClaimSettings::with_timeout(Duration::from_millis(ms))
    }

    /// Writes a claim file as another worker would have left it.
    fn plant(root: &Path, unit: &str, generation: u32, record: &ClaimRecord) {
        let path = generation_path(&root.join(unit), generation);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, record_bytes(record)).unwrap();
    }

    fn foreign(host: &str, age_ms: u64, task: Option<&str>) -> ClaimRecord {
        ClaimRecord {
            host: host.into(),
            pid: 4242,
            task: task.map(str::to_string),
            started: 1.0,
            token: "someoneelse00000".into(),
            boot_id: "other-boot".into(),
            pid_ns: "pid:[1]".into(),
            proc_start: 7,
            generation: 0,
            state: HELD.into(),
            heartbeat_ms: now_ms() - age_ms,
        }
    }

    #[test]
    fn a_unit_is_claimed_once_and_free_again_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let a = Claims::open(dir.path(), settings(60_000), None).unwrap();
        let c = match a.try_claim("parts/000001").unwrap() {
            Attempt::Claimed(c) => c,
            other => panic!("{other:?}"),
        };
        assert!(c.is_held());
        // A second claim by the same process is refused, not granted twice.
        assert!(matches!(
            a.try_claim("parts/000001").unwrap(),
            Attempt::Held(_)
        ));
        c.release().unwrap();
        match a.try_claim("parts/000001").unwrap() {
            Attempt::Claimed(c) => {
                assert_eq!(
                    c.generation(),
                    1,
                    "a released claim is taken by a new generation"
                );
                c.complete().unwrap();
            }
            other => panic!("{other:?}"),
        }
        assert!(a.is_done("parts/000001").unwrap());
        assert!(matches!(
            a.try_claim("parts/000001").unwrap(),
            Attempt::Done
        ));
        a.reopen("parts/000001").unwrap();
        assert!(matches!(
            a.try_claim("parts/000001").unwrap(),
            Attempt::Claimed(_)
        ));
    }

    #[test]
    fn bad_unit_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Claims::open(dir.path(), settings(60_000), None).unwrap();
        for bad in ["", "../x", "a//b", ".hidden", "a/../../b", "sp ace", "a/"] {
            assert!(
                matches!(a.try_claim(bad), Err(ClaimError::BadUnit(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_fresh_foreign_claim_is_respected_and_a_stale_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = Claims::open(dir.path(), settings(10_000), None).unwrap();
        plant(dir.path(), "u/fresh", 0, &foreign("elsewhere", 100, None));
        match a.try_claim("u/fresh").unwrap() {
            Attempt::Held(h) => {
                assert_eq!(h.liveness, Liveness::Fresh);
                assert_eq!(h.record.host, "elsewhere");
            }
            other => panic!("{other:?}"),
        }
        // Missed beats (heartbeat every 2 s, overdue after 6 s), not yet stale.
        plant(
            dir.path(),
            "u/overdue",
            0,
            &foreign("elsewhere", 7_000, None),
        );
        match a.try_claim("u/overdue").unwrap() {
            Attempt::Held(h) => {
                assert_eq!(h.liveness, Liveness::Overdue);
                assert!(h.stale_in <= Duration::from_millis(3_000));
            }
            other => panic!("{other:?}"),
        }
        plant(
            dir.path(),
            "u/stale",
            0,
            &foreign("elsewhere", 11_000, None),
        );
        match a.try_claim("u/stale").unwrap() {
            Attempt::Claimed(c) => assert_eq!(c.generation(), 1),
            other => panic!("{other:?}"),
        }
        // A released foreign claim is free at once.
        let mut free = foreign("elsewhere", 0, None);
        free.state = FREE.into();
        plant(dir.path(), "u/free", 0, &free);
        assert!(matches!(
            a.try_claim("u/free").unwrap(),
            Attempt::Claimed(_)
        ));
    }

    #[test]
    fn a_dead_local_holder_or_an_earlier_incarnation_of_the_task_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = Claims::open(dir.path(), settings(600_000), Some("slurm:7_3".into())).unwrap();
        let me = a.me();
        // Same machine, a pid that does not exist.
        let mut dead = me.clone();
        dead.token = "deadbeefdeadbeef".into();
        dead.pid = u32::MAX - 1;
        plant(dir.path(), "u/dead", 0, &dead);
        assert!(matches!(
            a.try_claim("u/dead").unwrap(),
            Attempt::Claimed(_)
        ));
        // Same machine, a live pid whose start time differs: a recycled pid.
        let mut recycled = me.clone();
        recycled.token = "deadbeefdeadbeef".into();
        recycled.pid = 1;
        recycled.proc_start = proc_start_ticks(1).unwrap_or(1) + 12345;
        plant(dir.path(), "u/recycled", 0, &recycled);
        assert!(matches!(
            a.try_claim("u/recycled").unwrap(),
            Attempt::Claimed(_)
        ));
        // Same machine, a live process (pid 1 with its real start): respected.
        let mut alive = me.clone();
        alive.token = "deadbeefdeadbeef".into();
        alive.pid = 1;
        alive.proc_start = proc_start_ticks(1).unwrap();
        plant(dir.path(), "u/alive", 0, &alive);
        assert!(matches!(a.try_claim("u/alive").unwrap(), Attempt::Held(_)));
        // The same scheduler task on another host: the requeued task's predecessor.
        plant(
            dir.path(),
            "u/requeued",
            0,
            &foreign("node7", 0, Some("slurm:7_3")),
        );
        assert!(matches!(
            a.try_claim("u/requeued").unwrap(),
            Attempt::Claimed(_)
        ));
        // Another task on another host with a fresh heartbeat: respected.
        plant(
            dir.path(),
            "u/sibling",
            0,
            &foreign("node7", 0, Some("slurm:7_2")),
        );
        assert!(matches!(
            a.try_claim("u/sibling").unwrap(),
            Attempt::Held(_)
        ));
    }

    #[test]
    fn the_heartbeat_keeps_a_claim_alive_and_a_taken_over_holder_knows() {
        let dir = tempfile::tempdir().unwrap();
        // Timeout 5 s, heartbeat every second.
        let a = Claims::open(dir.path(), settings(5_000), None).unwrap();
        let b = Claims::open(dir.path(), settings(5_000), Some("other".into())).unwrap();
        let c = match a.try_claim("u/x").unwrap() {
            Attempt::Claimed(c) => c,
            other => panic!("{other:?}"),
        };
        let path = generation_path(&dir.path().join("u/x"), 0);
        let read =
            || -> ClaimRecord { serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap() };
        let first = read().heartbeat_ms;
        // Past the timeout (the claim would be stale without heartbeats), and renewed.
        let start = std::time::Instant::now();
        while now_ms() < first + 6_000 || read().heartbeat_ms < first + 3_000 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no heartbeat: {:?}",
                read()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(matches!(b.try_claim("u/x").unwrap(), Attempt::Held(_)));
        // Another worker takes over generation 1 (as after a long pause of a): a notices.
        plant(dir.path(), "u/x", 1, &foreign("elsewhere", 0, None));
        assert!(!c.is_held());
        drop(c);
        // The lost claim's file is left as it was (not marked free over the new holder's).
        assert!(matches!(b.try_claim("u/x").unwrap(), Attempt::Held(_)));
    }

    #[test]
    fn concurrent_claimers_get_each_unit_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let units = 40;
        // Nobody releases before everybody has tried every unit: a released unit may be
        // claimed again, which is not what this test counts.
        let all_tried = std::sync::Barrier::new(4);
        let winners: Vec<Vec<usize>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let root = root.clone();
                    let all_tried = &all_tried;
                    s.spawn(move || {
                        let claims = Claims::open(&root, settings(60_000), None).unwrap();
                        let mut mine = Vec::new();
                        let mut kept = Vec::new();
                        for u in 0..units {
                            if let Attempt::Claimed(c) =
                                claims.try_claim(&format!("t/{u:04}")).unwrap()
                            {
                                mine.push(u);
                                kept.push(c); // held until the end: no unit is freed
                            }
                        }
                        all_tried.wait();
                        drop(kept);
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<usize> = winners.concat();
        all.sort();
        assert_eq!(all, (0..units).collect::<Vec<_>>());
    }

    #[test]
    fn live_workers_lists_registrations_and_forgets_closed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = Claims::open(dir.path(), settings(60_000), None).unwrap();
        {
            let b = Claims::open(dir.path(), settings(60_000), None).unwrap();
            assert_eq!(a.live_workers().len(), 2);
            assert_ne!(a.worker_name(), b.worker_name());
        }
        assert_eq!(a.live_workers().len(), 1);
        // A registration of a dead local process does not count.
        let mut dead = a.me();
        dead.token = "deadbeefdeadbeef".into();
        dead.pid = u32::MAX - 1;
        std::fs::write(
            dir.path().join("workers/ghost.claim-0"),
            record_bytes(&dead),
        )
        .unwrap();
        assert_eq!(a.live_workers().len(), 1);
    }

    #[test]
    fn drain_does_each_unit_once_and_the_merger_waits_for_all() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let units: Vec<String> = (0..12).map(|i| format!("blocks/b{i:03}")).collect();
        let out = dir.path().join("results");
        std::fs::create_dir_all(&out).unwrap();
        let done_by: Vec<(Vec<String>, usize)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|w| {
                    let (root, units, out) = (root.clone(), units.clone(), out.clone());
                    s.spawn(move || {
                        let claims = Claims::open(&root, settings(60_000), None).unwrap();
                        let until = if w == 0 {
                            Until::AllDone
                        } else {
                            Until::NothingClaimable
                        };
                        let mut worked = 0;
                        let done = |u: &str| claims.is_done(u).unwrap_or(false);
                        let mine = claims
                            .drain(&units, &done, until, &mut |c: Claim| {
                                worked += 1;
                                // A result per unit; a second write of one would show.
                                let f = out.join(c.unit().replace('/', "_"));
                                assert!(!f.exists(), "{} done twice", c.unit());
                                std::thread::sleep(Duration::from_millis(5));
                                std::fs::write(&f, b"x").unwrap();
                                c.complete()
                            })
                            .unwrap();
                        if w == 0 {
                            // The merger returns only when every unit is done.
                            assert!(units.iter().all(|u| claims.is_done(u).unwrap()));
                        }
                        (mine, worked)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<String> = done_by.iter().flat_map(|(m, _)| m.clone()).collect();
        all.sort();
        assert_eq!(all, units);
        assert_eq!(done_by.iter().map(|(_, n)| n).sum::<usize>(), units.len());
    }

    #[test]
    fn abandoned_claims_are_free_for_others() {
        let dir = tempfile::tempdir().unwrap();
        let a = Claims::open(dir.path(), settings(60_000), None).unwrap();
        let c = match a.try_claim("u/y").unwrap() {
            Attempt::Claimed(c) => c,
            other => panic!("{other:?}"),
        };
        a.abandoner().abandon_all();
        std::mem::forget(c);
        let path = generation_path(&dir.path().join("u/y"), 0);
        let record: ClaimRecord = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(record.state, FREE);
    }
}
