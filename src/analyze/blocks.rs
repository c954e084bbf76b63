//! Per-query work spread over the workers of one run (issue 11): when the store is complete,
//! every worker of a cluster array takes blocks of queries (a block of retrieval queries ranked
//! against the whole gallery), writes each block's result as a small Parquet file under
//! `state/analysis/`, and the one worker that finishes the run reads the blocks instead of
//! ranking every query itself. A query's rank does not depend on the other queries or on the
//! block it was ranked in, so the tables are the bytes a single worker writes.
//!
//! Who takes which block is the orchestrator's business (its claim files: atomic create,
//! heartbeat, takeover of a dead worker's blocks), handed in as a [`Share`]; this module only
//! names the blocks, computes them and reads them back. A block's result file is its completion
//! marker. The folder of a stage's blocks is named after a hash of the stage's settings and the
//! seed, so blocks of an earlier analysis with other settings are never read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::store::{self, StoreError, Table};

/// The block group of one stage's work on one (model, variant):
/// `<stage>/<hash of the settings and seed>/m-<model>/v-<variant>`, so blocks of an analysis
/// with other settings are never read.
pub fn group(
    stage: &str,
    settings: &impl serde::Serialize,
    seed: u64,
    model: &str,
    variant: &str,
) -> String {
    let text = format!(
        "{}|{}",
        serde_json::to_string(settings).unwrap_or_default(),
        seed
    );
    let hash = &crate::util::sha256_hex(text.as_bytes())[..12];
    format!(
        "{stage}/{hash}/m-{}/v-{}",
        super::stage::slug(model),
        super::stage::slug(variant)
    )
}

/// Hands out units of work among the workers of a run so that no two workers run the same one.
pub trait Share {
    /// Runs `work` on every unit of `units` that `done` does not report finished, claiming
    /// each first; a unit another live worker holds is left to it. With `wait` true, returns
    /// only when every unit is done (waiting for other workers, taking over dead ones'):
    /// what the worker that merges the results needs.
    fn drain(
        &self,
        units: &[String],
        done: &dyn Fn(&str) -> bool,
        wait: bool,
        work: &mut dyn FnMut(&str) -> Result<(), String>,
    ) -> Result<(), String>;
}

/// One process does every unit itself (a run without other workers, and tests).
pub struct Alone;

impl Share for Alone {
    fn drain(
        &self,
        units: &[String],
        done: &dyn Fn(&str) -> bool,
        _wait: bool,
        work: &mut dyn FnMut(&str) -> Result<(), String>,
    ) -> Result<(), String> {
        for u in units {
            if !done(u) {
                work(u)?;
            }
        }
        Ok(())
    }
}

/// Where the blocks of one analysis live (`<run>/state/analysis/`), and who computes them.
pub struct Blocks<'a> {
    dir: PathBuf,
    share: Option<&'a dyn Share>,
    wait: bool,
    /// Blocks this process computed.
    computed: AtomicUsize,
}

impl<'a> Blocks<'a> {
    /// Blocks to compute (`share` given: the sharing phase) or only to read (`None`: the
    /// analysis, which uses whatever blocks are complete).
    pub fn new(run_dir: &Path, share: Option<&'a dyn Share>, wait: bool) -> Blocks<'a> {
        Blocks {
            dir: run_dir.join("state").join("analysis"),
            share,
            wait,
            computed: AtomicUsize::new(0),
        }
    }

    /// How many blocks this process computed so far.
    pub fn computed(&self) -> usize {
        self.computed.load(Ordering::Relaxed)
    }

    /// Whether this is the sharing phase (compute blocks) rather than the analysis (read them).
    pub fn sharing(&self) -> bool {
        self.share.is_some()
    }

    fn file(&self, unit: &str) -> PathBuf {
        self.dir.join(format!("{unit}.parquet"))
    }

    /// Unit names of `n` blocks under `group` (`<stage>/<settings hash>/<model>/...`).
    fn units(group: &str, n: usize) -> Vec<String> {
        (0..n).map(|b| format!("{group}/block-{b:06}")).collect()
    }

    /// Computes the blocks of `group` no worker has finished: `work(b)` returns block `b`'s
    /// table, written atomically as the block's result.
    pub fn compute(
        &self,
        group: &str,
        n: usize,
        work: &mut dyn FnMut(usize) -> Result<Table, String>,
    ) -> Result<(), StoreError> {
        let Some(share) = self.share else {
            return Ok(());
        };
        let units = Blocks::units(group, n);
        let done = |u: &str| self.file(u).exists();
        share
            .drain(&units, &done, self.wait, &mut |u| {
                let b = units.iter().position(|x| x == u).unwrap_or(0);
                let table = work(b)?;
                let path = self.file(u);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                store::write_parquet_table(&path, &table).map_err(|e| e.to_string())?;
                self.computed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .map_err(|m| StoreError::Io {
                path: self.dir.join(group),
                message: m,
            })
    }

    /// The tables of all `n` blocks of `group`, when every one is complete.
    pub fn read(&self, group: &str, n: usize) -> Result<Option<Vec<Table>>, StoreError> {
        let units = Blocks::units(group, n);
        if !units.iter().all(|u| self.file(u).exists()) {
            return Ok(None);
        }
        units
            .iter()
            .map(|u| store::read_table(&self.file(u)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Deletes every block (the finisher, once the analysis has read them).
    pub fn clear(&self) -> Result<(), StoreError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&self.dir, e)),
        }
    }
}
