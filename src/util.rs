//! Small helpers every stage needs: atomic writes, hashing, seeded randomness, and the
//! allocator's settings for a batch of images.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Tunes glibc's malloc for a batch of images, once at start-up (the CLI and the benchmarks
/// call it; elsewhere it does nothing).
///
/// Why: every image allocates the same few buffers of 0.2 to 1.2 MB (the decoded pixels, the
/// resampler's) and frees them. By default glibc serves such sizes with `mmap`, or trims them
/// off the heap's top when they are freed, so the next image takes a page fault on every 4 KB
/// of them again. A fast-mode `clipflow run` of the 1,000 640x480 photos
/// `scripts/bench_preprocess` makes, with the embedded model, took 33,400 faults and 1.45 s of
/// CPU before, 10,100 and 1.41 s after (`perf stat -e page-faults,task-clock`, medians of four
/// interleaved runs). With it, allocations below 32 MB come from the heap, and up to 64 MB
/// freed at its top stays there for the next image. Each thread's arena so keeps what its peak
/// needed (for a decode worker, one unit of work's buffers), and resident memory stays near the
/// sum of those peaks between images instead of falling back.
///
/// 64-bit glibc only: 32 MB is its largest mmap threshold there (16 MB on 32-bit, where setting
/// the trim threshold alone would fix the mmap threshold at its 128 KB default). If glibc
/// refuses the first setting, the second is not made.
pub fn reuse_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    // SAFETY: mallopt only sets malloc's parameters (thread-safe; called at start-up).
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1 {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        }
    }
}

/// The temporary sibling of `path` used while it is being written. It starts with a dot, so
/// pyarrow, polars and DuckDB globs over a folder never pick up a half-written file.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Moves a finished temporary file into place: fsync, then rename (atomic on POSIX), so a
/// reader or a resumed run sees either the old file, no file, or the complete new one.
pub fn commit_temp(temp: &Path, path: &Path) -> io::Result<()> {
    File::open(temp)?.sync_all()?;
    std::fs::rename(temp, path)?;
    if let Some(dir) = path.parent() {
        // Persist the rename itself; not every file system supports syncing a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A temporary file beside its final path, removed when dropped unless committed: a writer
/// that fails half-way (a full disk, a broken pipe, a panic) leaves nothing behind, while a
/// process killed outright leaves one the next run removes (its name carries the dead pid).
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    /// The temporary for `path` ([`temp_path`]); nothing is created yet.
    pub fn beside(path: &Path) -> TempFile {
        TempFile {
            path: temp_path(path),
            committed: false,
        }
    }

    /// Moves the finished temporary into place ([`commit_temp`]).
    pub fn commit(mut self, path: &Path) -> io::Result<()> {
        commit_temp(&self.path, path)?;
        self.committed = true;
        Ok(())
    }
}

impl std::ops::Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to `path` atomically, creating parent folders. On failure (a full disk) the
/// temporary file is removed: nothing is left but what was there before.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = temp_path(path);
    let written = File::create(&temp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| commit_temp(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random stream that depends only on the study seed and the given names (e.g. an item id
/// and a variant), never on batch size, thread count or processing order.
pub fn seeded_rng(seed: u64, parts: &[&str]) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    for p in parts {
        hasher.update((p.len() as u64).to_le_bytes());
        hasher.update(p.as_bytes());
    }
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

/// Runs `f`, turning a panic inside it into `Err(message)` without the panic being printed:
/// for third-party parsers (Parquet, image decoders) that can panic on malformed input, where
/// the input is what is wrong and the caller records that, naming the file. Panics elsewhere
/// still print as usual.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    use std::cell::Cell;
    thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn seeded_rng_depends_on_every_part_and_nothing_else() {
        let a: u64 = seeded_rng(1, &["x", "y"]).random();
        let b: u64 = seeded_rng(1, &["x", "y"]).random();
        let c: u64 = seeded_rng(1, &["xy", ""]).random();
        let d: u64 = seeded_rng(2, &["x", "y"]).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn a_failed_atomic_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.html");
        // Past RLIMIT_FSIZE a write fails with EFBIG, as on a full disk. The limit applies to
        // the whole test process, so it is set in a child: this test re-runs itself there.
        if std::env::var_os("CLIPFLOW_TEST_FSIZE_CHILD").is_some() {
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: 1000,
                    rlim_max: 1000,
                };
                assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
            }
            let out =
                std::path::PathBuf::from(std::env::var_os("CLIPFLOW_TEST_FSIZE_CHILD").unwrap());
            let e = write_atomic(&out, &[b'x'; 5000]).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
            return;
        }
        // Its output goes to pipes: the limit would apply to a log file it inherited too.
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "util::tests::a_failed_atomic_write_leaves_nothing",
            ])
            .env("CLIPFLOW_TEST_FSIZE_CHILD", &p)
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "{}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn catch_panic_returns_the_message() {
        assert_eq!(catch_panic(|| 3), Ok(3));
        let e = catch_panic(|| -> u8 { panic!("bad {}", 1) }).unwrap_err();
        assert_eq!(e, "bad 1");
        let e = catch_panic(|| -> u8 { std::panic::panic_any("static") }).unwrap_err();
        assert_eq!(e, "static");
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.json");
        write_atomic(&p, b"{}").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
