//! Reading the files a dataset names, safely: a path from a Parquet cell, a split list or a
//! folder walk is data, not an instruction, so it may only lead to a regular file inside the
//! dataset folder (after links and `..` are resolved), no larger than a cap.
//!
//! Every refusal is a [`FileError`] that names the path and the setting that lifts it; the
//! caller records it against the item (errors.parquet), never fails the run with it. Each
//! reader of a dataset format (folders, DTD, Hugging Face Parquet, WebDataset) goes through
//! [`FileAccess`] so the rules are the same everywhere.
//!
//! Unix only: the checks use device and inode numbers and `O_NONBLOCK`/`O_NOFOLLOW`.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Default of `dataset.max_file_bytes`: far above any real image, far below the memory of a
/// machine that runs several decode threads.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Why a file named by the dataset was not read. The message is what errors.parquet records.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path} resolves to {resolved}, outside the dataset folder {root} (set dataset.allow_paths_outside: true to read it)")]
    Outside {
        path: PathBuf,
        resolved: PathBuf,
        root: PathBuf,
    },
    #[error("{path}: not a regular file ({kind})")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: {bytes} bytes, larger than dataset.max_file_bytes ({max})")]
    TooLarge { path: PathBuf, bytes: u64, max: u64 },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The files one dataset may read: those under `root`, unless `allow_outside`, each a regular
/// file of at most `max_bytes`.
#[derive(Debug, Clone)]
pub struct FileAccess {
    /// The dataset folder as the user named it, for messages.
    root: PathBuf,
    /// `root` with every link resolved: what a resolved path must start with.
    real_root: PathBuf,
    allow_outside: bool,
    max_bytes: u64,
}

impl FileAccess {
    /// Access confined to the folder `root` (which must exist).
    pub fn new(root: &Path, allow_outside: bool, max_bytes: u64) -> io::Result<FileAccess> {
        let real_root = std::fs::canonicalize(root)?;
        Ok(FileAccess {
            root: root.to_path_buf(),
            real_root,
            allow_outside,
            max_bytes,
        })
    }

    /// The folder reads are confined to, with its links resolved.
    pub fn real_root(&self) -> &Path {
        &self.real_root
    }

    pub fn allow_outside(&self) -> bool {
        self.allow_outside
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where `path` leads once links and `..` are resolved, or why it may not be read there.
    /// With `allow_outside`, the path is returned as it is.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, FileError> {
        if self.allow_outside {
            return Ok(path.to_path_buf());
        }
        let resolved = std::fs::canonicalize(path).map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if resolved.starts_with(&self.real_root) {
            Ok(resolved)
        } else {
            Err(FileError::Outside {
                path: path.to_path_buf(),
                resolved,
                root: self.root.clone(),
            })
        }
    }

    /// Whether `path` (which exists) leads inside the dataset folder, or reads outside it are
    /// allowed. For deciding whether to follow a folder link.
    pub fn permits(&self, path: &Path) -> bool {
        self.resolve(path).is_ok()
    }

    /// Opens `path` for reading: inside the dataset folder, a regular file, at most
    /// `max_bytes`. Returns the file and its size. For readers that stream a file (a tar
    /// shard) rather than take its bytes.
    pub fn open(&self, path: &Path) -> Result<(File, u64), FileError> {
        let resolved = self.resolve(path)?;
        // The resolved path has no link left in it; O_NOFOLLOW keeps its last component from
        // being swapped for one between the check and the open.
        let nofollow = !self.allow_outside;
        open_checked(path, &resolved, self.max_bytes, nofollow)
    }

    /// The bytes of `path`, under the rules of [`FileAccess::open`].
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, FileError> {
        let (file, size) = self.open(path)?;
        read_capped(path, file, size, self.max_bytes)
    }
}

/// Opens a file the user named directly (a Parquet file, a split list): a regular file of at
/// most `max_bytes`, not confined to any folder.
pub fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, u64), FileError> {
    open_checked(path, path, max_bytes, false)
}

/// The bytes of a file the user named directly, under the rules of [`open_regular`].
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let (file, size) = open_regular(path, max_bytes)?;
    read_capped(path, file, size, max_bytes)
}

/// `path` names the file in messages; `target` is what is opened.
fn open_checked(
    path: &Path,
    target: &Path,
    max_bytes: u64,
    nofollow: bool,
) -> Result<(File, u64), FileError> {
    let io_err = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Look before opening: opening a FIFO blocks until a writer comes, and opening a device
    // can have effects of its own.
    let before = std::fs::metadata(target).map_err(io_err)?;
    check_regular(path, &before, max_bytes)?;
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(target)
        .map_err(io_err)?;
    // And look again at what was opened, in case the path changed in between.
    let after = file.metadata().map_err(io_err)?;
    check_regular(path, &after, max_bytes)?;
    if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
        return Err(io_err(io::Error::other(
            "the file changed while it was being opened",
        )));
    }
    Ok((file, after.len()))
}

fn check_regular(path: &Path, meta: &std::fs::Metadata, max_bytes: u64) -> Result<(), FileError> {
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_dir() {
            "a directory"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() > max_bytes {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            bytes: meta.len(),
            max: max_bytes,
        });
    }
    Ok(())
}

/// Reads at most `max_bytes + 1` bytes, so a file that grows after its size was checked cannot
/// grow memory with it.
fn read_capped(path: &Path, file: File, size: u64, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let mut bytes = Vec::with_capacity(size.min(max_bytes) as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            bytes: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, FileAccess) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("root/sub")).unwrap();
        std::fs::write(d.path().join("root/sub/in.bin"), b"inside").unwrap();
        std::fs::write(d.path().join("out.bin"), b"outside").unwrap();
        let access = FileAccess::new(&d.path().join("root"), false, 100).unwrap();
        (d, access)
    }

    #[test]
    fn reads_inside_the_root_through_links_and_dots() {
        let (d, access) = setup();
        let root = d.path().join("root");
        symlink("sub/in.bin", root.join("link.bin")).unwrap();
        for p in ["sub/in.bin", "link.bin", "sub/../sub/in.bin"] {
            assert_eq!(access.read(&root.join(p)).unwrap(), b"inside", "{p}");
        }
    }

    #[test]
    fn refuses_paths_that_lead_outside() {
        let (d, access) = setup();
        let root = d.path().join("root");
        symlink("../out.bin", root.join("leads_out.bin")).unwrap();
        symlink(d.path(), root.join("dir_out")).unwrap();
        for p in [
            root.join("../out.bin"),
            root.join("leads_out.bin"),
            root.join("dir_out/out.bin"),
            d.path().join("out.bin"),
        ] {
            let e = access.read(&p).unwrap_err();
            assert!(matches!(e, FileError::Outside { .. }), "{p:?}: {e}");
            assert!(e.to_string().contains("allow_paths_outside"), "{e}");
        }
        let open = FileAccess::new(&root, true, 100).unwrap();
        assert_eq!(open.read(&root.join("leads_out.bin")).unwrap(), b"outside");
    }

    #[test]
    fn refuses_special_files_without_blocking() {
        let (d, _) = setup();
        let fifo = d.path().join("root/fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let access = FileAccess::new(&d.path().join("root"), true, 1 << 30).unwrap();
        for (p, kind) in [
            (PathBuf::from("/dev/zero"), "character device"),
            (fifo, "FIFO"),
            (d.path().join("root/sub"), "directory"),
        ] {
            let e = access.read(&p).unwrap_err().to_string();
            assert!(e.contains("not a regular file") && e.contains(kind), "{e}");
            let e = read_regular(&p, 1 << 30).unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn caps_the_size() {
        let (d, _) = setup();
        let p = d.path().join("root/sub/big.bin");
        std::fs::write(&p, vec![7u8; 101]).unwrap();
        let access = FileAccess::new(&d.path().join("root"), false, 100).unwrap();
        let e = access.read(&p).unwrap_err().to_string();
        assert!(
            e.contains("101 bytes") && e.contains("max_file_bytes (100)"),
            "{e}"
        );
        std::fs::write(&p, vec![7u8; 100]).unwrap();
        assert_eq!(access.read(&p).unwrap().len(), 100);
        // A file that grows between the check and the read is cut at the cap.
        let grown = read_capped(&p, File::open(&p).unwrap(), 10, 50).unwrap_err();
        assert!(matches!(grown, FileError::TooLarge { .. }), "{grown}");
    }

    #[test]
    fn missing_files_name_the_path() {
        let (d, access) = setup();
        let p = d.path().join("root/nope.png");
        let e = access.read(&p).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read") && e.contains("nope.png"),
            "{e}"
        );
    }
}
