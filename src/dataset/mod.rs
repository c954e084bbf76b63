//! Dataset stage: turns a `dataset:` section into an ordered list of [`Item`]s and fetches their
//! image bytes in chunks.
//!
//! Listing reads only the small columns (ids, labels, captions), so a million-row Parquet lists
//! in seconds and a few hundred MB; image bytes are read later, one row group at a time, by
//! [`Dataset::fetch`]. That split is what keeps memory bounded however large the dataset.
//!
//! Ids are stable across runs: the relative path for folders (`banded/banded_0002.jpg`), the
//! id column or `<file stem>:<row>` for Parquet.
//!
//! Every file a dataset names is read through [`FileAccess`]: inside the dataset folder, a
//! regular file, at most `dataset.max_file_bytes` (see `files.rs`).

mod files;
mod folder;
mod hf_parquet;
mod sample;

use std::path::{Path, PathBuf};

use crate::config::{DatasetConfig, DatasetFormat, SampleConfig};

pub use files::{open_regular, read_regular, FileAccess, FileError, DEFAULT_MAX_FILE_BYTES};
pub use hf_parquet::ParquetSource;

/// Pillow's default decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`).
pub const DEFAULT_MAX_PIXELS: u64 = 89_478_485;

/// One image with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable id, unique within the dataset.
    pub id: String,
    pub label: Option<String>,
    pub caption: Option<String>,
    pub image: ImageRef,
    /// Values of `dataset.attribute_columns`, in that order, as text (`true`, `1`, `blond`):
    /// the analysis decides from the distinct values whether one is boolean or categorical.
    pub attributes: Vec<Option<String>>,
}

/// Where an item's image bytes live.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageRef {
    File(PathBuf),
    /// Row `row` of Parquet source `file` (an index into [`Dataset::parquet_files`]).
    ParquetRow {
        file: usize,
        row: u64,
    },
}

/// A listed dataset.
#[derive(Debug)]
pub struct Dataset {
    pub format: DatasetFormat,
    /// Items in a stable order (file order, then row or path order), after sampling.
    pub items: Vec<Item>,
    /// Items before sampling.
    pub total_items: usize,
    pub parquet_files: Vec<ParquetSource>,
    /// Where the items came from, for humans (`data/pokemon/*.parquet`).
    pub description: String,
    /// Hash of the item list (ids, labels, captions, sources): two runs that agree on it read
    /// the same items.
    pub fingerprint: String,
    /// Things worth a warning that are not errors (files outside class folders, ...).
    pub notes: Vec<String>,
    /// How [`ImageRef::File`] items are read (folder and DTD datasets); Parquet sources carry
    /// their own.
    files: Option<FileAccess>,
}

/// Why a dataset could not be opened. Each names the file, folder or column at fault.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset.path: {path} does not exist")]
    NotFound { path: String },
    #[error("dataset.path: no files match {pattern}")]
    NoMatch { pattern: String },
    #[error("dataset.path: bad glob pattern {pattern}: {message}")]
    BadGlob { pattern: String, message: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: dataset.{key}: no column `{column}`{hint} (columns: {available})")]
    MissingColumn {
        path: PathBuf,
        key: &'static str,
        column: String,
        hint: String,
        available: String,
    },
    #[error("{path}: dataset.{key}: column `{column}` has type {found}; expected {expected}")]
    ColumnType {
        path: PathBuf,
        key: &'static str,
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error("{path}: row {row}: {message}")]
    Row {
        path: PathBuf,
        row: u64,
        message: String,
    },
    #[error("dataset.{key}: {message}")]
    Config { key: &'static str, message: String },
    #[error("{0}: no images found")]
    Empty(String),
    #[error("dataset: duplicate id `{id}` ({first} and {second}); set dataset.id_column to a unique column")]
    DuplicateId {
        id: String,
        first: String,
        second: String,
    },
}

/// Lists the dataset a config describes, applying seeded sampling. Paths are taken as they are
/// (the caller resolves them against the working directory).
pub fn open(config: &DatasetConfig, seed: u64) -> Result<Dataset, DatasetError> {
    check_keys(config)?;
    let max_bytes = config.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES);
    let access = |root: &Path| {
        FileAccess::new(root, config.allow_paths_outside, max_bytes).map_err(|e| DatasetError::Io {
            path: root.to_path_buf(),
            message: e.to_string(),
        })
    };
    let mut files = None;
    let (items, parquet_files, description, notes) = match config.format {
        DatasetFormat::Parquet => {
            let files = hf_parquet::expand(config.path.as_slice())?;
            let (items, sources) = hf_parquet::list(&files, config)?;
            let description = config.path.as_slice().join(", ");
            (items, sources, description, Vec::new())
        }
        DatasetFormat::Folder => {
            let root = single_path(config)?;
            let access = access(&root)?;
            let (items, notes) = folder::list_image_folder(&root, &extensions(config), &access)?;
            files = Some(access);
            (items, Vec::new(), root.display().to_string(), notes)
        }
        DatasetFormat::Dtd => {
            let root = single_path(config)?;
            let split = config.split.as_deref().unwrap_or("all");
            let access = access(&root)?;
            let (items, notes) = folder::list_dtd(&root, split, &extensions(config), &access)?;
            files = Some(access);
            (
                items,
                Vec::new(),
                format!("{} (split {split})", root.display()),
                notes,
            )
        }
    };
    if items.is_empty() {
        return Err(DatasetError::Empty(description));
    }
    check_unique_ids(&items)?;
    let total_items = items.len();
    let items = sample::apply(items, &config.sample, seed);
    let fingerprint = fingerprint(&items, &parquet_files);
    Ok(Dataset {
        format: config.format,
        items,
        total_items,
        parquet_files,
        description,
        fingerprint,
        notes,
        files,
    })
}

impl Dataset {
    /// Reads the image bytes of `items` (a chunk of [`Dataset::items`], in order). A failure
    /// for one item (missing file, null cell) is that item's error, not the chunk's.
    pub fn fetch(&self, items: &[Item]) -> Vec<Result<Vec<u8>, String>> {
        let mut out: Vec<Option<Result<Vec<u8>, String>>> = vec![None; items.len()];
        let mut parquet_rows: Vec<(usize, usize, u64)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match &item.image {
                ImageRef::File(path) => {
                    out[i] = Some(match &self.files {
                        Some(access) => access.read(path).map_err(|e| e.to_string()),
                        None => Err("internal: no file access for a file item".to_string()),
                    })
                }
                ImageRef::ParquetRow { file, row } => parquet_rows.push((i, *file, *row)),
            }
        }
        if !parquet_rows.is_empty() {
            for (i, bytes) in hf_parquet::fetch_rows(&self.parquet_files, &parquet_rows) {
                out[i] = Some(bytes);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err("internal: image not fetched".to_string())))
            .collect()
    }

    /// Where an item's image comes from, for error records (`a.parquet#row=17`, a path).
    pub fn source_of(&self, item: &Item) -> String {
        match &item.image {
            ImageRef::File(p) => p.display().to_string(),
            ImageRef::ParquetRow { file, row } => match self.parquet_files.get(*file) {
                Some(src) => format!("{}#row={row}", src.path.display()),
                None => format!("parquet#{file}#row={row}"),
            },
        }
    }

    /// Sorted distinct labels of the (sampled) items.
    pub fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = self.items.iter().filter_map(|i| i.label.clone()).collect();
        labels.sort();
        labels.dedup();
        labels
    }
}

fn check_keys(config: &DatasetConfig) -> Result<(), DatasetError> {
    let parquet_only = [
        ("image_column", config.image_column.is_some()),
        ("caption_column", config.caption_column.is_some()),
        ("label_column", config.label_column.is_some()),
        ("id_column", config.id_column.is_some()),
        ("attribute_columns", !config.attribute_columns.is_empty()),
    ];
    if config.format != DatasetFormat::Parquet {
        if let Some((key, _)) = parquet_only.iter().find(|(_, set)| *set) {
            return Err(DatasetError::Config {
                key,
                message: "only applies to format: parquet".into(),
            });
        }
    }
    if config.format != DatasetFormat::Dtd && config.split.is_some() {
        return Err(DatasetError::Config {
            key: "split",
            message: "only applies to format: dtd".into(),
        });
    }
    if config.format == DatasetFormat::Parquet && config.extensions.is_some() {
        return Err(DatasetError::Config {
            key: "extensions",
            message: "only applies to format: folder or dtd".into(),
        });
    }
    let SampleConfig {
        classes,
        per_class,
        limit,
    } = &config.sample;
    for (key, v) in [
        ("sample.classes", classes),
        ("sample.per_class", per_class),
        ("sample.limit", limit),
    ] {
        if *v == Some(0) {
            return Err(DatasetError::Config {
                key,
                message: "must be at least 1".into(),
            });
        }
    }
    for (key, v) in [
        ("max_pixels", config.max_pixels),
        ("max_file_bytes", config.max_file_bytes),
    ] {
        if v == Some(0) {
            return Err(DatasetError::Config {
                key,
                message: "must be at least 1".into(),
            });
        }
    }
    if let Some(split) = &config.split {
        // The split names a file under labels/; a path there would read outside the dataset.
        if split.is_empty() || split.contains(['/', '\\', '\0']) || split.starts_with('.') {
            return Err(DatasetError::Config {
                key: "split",
                message: format!(
                    "`{split}` is not a split name (a file name in labels/ without .txt)"
                ),
            });
        }
    }
    Ok(())
}

fn single_path(config: &DatasetConfig) -> Result<PathBuf, DatasetError> {
    match config.path.as_slice() {
        [one] => {
            let p = PathBuf::from(one);
            if !p.is_dir() {
                return Err(DatasetError::NotFound { path: one.clone() });
            }
            Ok(p)
        }
        _ => Err(DatasetError::Config {
            key: "path",
            message: "folder and dtd datasets take one folder".into(),
        }),
    }
}

fn extensions(config: &DatasetConfig) -> Vec<String> {
    config
        .extensions
        .clone()
        .unwrap_or_else(|| {
            ["jpg", "jpeg", "png", "bmp", "gif", "webp"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
        .into_iter()
        .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
        .collect()
}

fn check_unique_ids(items: &[Item]) -> Result<(), DatasetError> {
    let mut seen = std::collections::HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(first) = seen.insert(item.id.as_str(), i) {
            return Err(DatasetError::DuplicateId {
                id: item.id.clone(),
                first: format!("{:?}", items[first].image),
                second: format!("{:?}", item.image),
            });
        }
    }
    Ok(())
}

fn fingerprint(items: &[Item], files: &[ParquetSource]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in files {
        h.update(f.path.to_string_lossy().as_bytes());
        h.update(f.bytes.to_le_bytes());
    }
    for item in items {
        for field in [
            Some(item.id.as_str()),
            item.label.as_deref(),
            item.caption.as_deref(),
        ] {
            match field {
                Some(s) => {
                    h.update([1]);
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                None => h.update([0]),
            }
        }
        match &item.image {
            ImageRef::File(p) => h.update(p.to_string_lossy().as_bytes()),
            ImageRef::ParquetRow { file, row } => {
                h.update((*file as u64).to_le_bytes());
                h.update(row.to_le_bytes());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
