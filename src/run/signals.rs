//! Termination signals: a worker that the scheduler stops (preemption, time limit, `scancel`,
//! a deleted pod) gives its claims back before it exits, so other workers, or its own requeued
//! task, take its parts at once instead of waiting for the claim timeout.
//!
//! SIGTERM, SIGINT and SIGHUP are blocked in every thread and received by one thread with
//! `sigwait`, which runs the registered hooks (outside signal-handler context, so they may do
//! file I/O) and exits with 128 + the signal number, as the default action would.

use std::sync::{Mutex, OnceLock};

type Hook = Box<dyn Fn() + Send + Sync>;

static HOOKS: OnceLock<Mutex<Vec<(u64, Hook)>>> = OnceLock::new();
static INSTALLED: OnceLock<bool> = OnceLock::new();

fn hooks() -> &'static Mutex<Vec<(u64, Hook)>> {
    HOOKS.get_or_init(|| Mutex::new(Vec::new()))
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Routes termination signals to the hook thread. Call it first in `main`, before any other
/// thread exists: threads inherit the blocked set, so no thread takes the signal's default
/// action. Returns false (and changes nothing) if the thread cannot start.
pub fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        let set = signal_set();
        // SAFETY: blocks the signals in this (the main) thread; threads spawned later inherit.
        if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
            return false;
        }
        let spawned = std::thread::Builder::new()
            .name("clipflow-signals".into())
            .spawn(move || loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: waits for one of the blocked signals.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                // The hooks may wait for a lock a stopped thread holds: give them 5 s at most.
                let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = done.clone();
                let _ = std::thread::Builder::new().spawn(move || {
                    if let Ok(hooks) = hooks().lock() {
                        for (_, h) in hooks.iter() {
                            h();
                        }
                    }
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                for _ in 0..500 {
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                let name = match sig {
                    libc::SIGTERM => "SIGTERM",
                    libc::SIGINT => "SIGINT",
                    _ => "SIGHUP",
                };
                eprintln!("clipflow: {name}: claims given back, stopping");
                std::process::exit(128 + sig);
            });
        if spawned.is_err() {
            // SAFETY: undoes the block above.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
            return false;
        }
        true
    })
}

/// Runs `hook` on a termination signal while the returned guard lives.
pub(crate) fn on_termination(hook: Hook) -> HookGuard {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    hooks()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, hook));
    HookGuard { id }
}

/// Unregisters its hook when dropped.
pub(crate) struct HookGuard {
    id: u64,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        hooks()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.id);
    }
}
