//! Progress reporting: indicatif bars on a terminal, plain log lines otherwise (CI logs, Slurm
//! output files), so a cluster job's log stays readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress and messages go for one run.
pub struct Progress {
    multi: Option<MultiProgress>,
    quiet: bool,
}

impl Progress {
    /// Bars when stderr is a terminal, log lines otherwise.
    pub fn new(quiet: bool) -> Progress {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { multi, quiet }
    }

    /// A line of information (suppressed by `--quiet`).
    pub fn info(&self, message: &str) {
        if !self.quiet {
            self.println(message);
        }
    }

    /// A warning, always shown.
    pub fn warn(&self, message: &str) {
        self.println(&format!("warning: {message}"));
    }

    fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// A counter for `total` items, labelled e.g. `texture-clip image`.
    pub fn task(&self, label: &str, total: u64) -> Task {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Task {
            bar,
            label: label.to_string(),
            total,
            quiet: self.quiet,
            state: Mutex::new(LogState {
                done: 0,
                started: Instant::now(),
                last_line: Instant::now(),
            }),
        }
    }
}

struct LogState {
    done: u64,
    started: Instant,
    last_line: Instant,
}

/// One progress counter.
pub struct Task {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    quiet: bool,
    state: Mutex<LogState>,
}

impl Task {
    /// Counts `n` more items done.
    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done += n;
        if !self.quiet && s.last_line.elapsed() >= Duration::from_secs(10) {
            s.last_line = Instant::now();
            let rate = s.done as f64 / s.started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "{}: {}/{} ({rate:.1} items/s)",
                self.label, s.done, self.total
            );
        }
    }

    /// Ends the counter with a summary line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = s.started.elapsed().as_secs_f64();
        let done = self.bar.as_ref().map(|b| b.position()).unwrap_or(s.done);
        if !self.quiet && self.bar.is_none() {
            eprintln!(
                "{}: {done}/{} done in {elapsed:.1}s ({:.1} items/s)",
                self.label,
                self.total,
                done as f64 / elapsed.max(1e-9)
            );
        }
    }
}
