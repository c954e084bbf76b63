//! Dataset stage: turns a `dataset:` section into items and fetches their image bytes in
//! chunks.
//!
//! Listing reads only the small columns (ids, labels, captions), and image bytes are read
//! later, one chunk at a time, by [`Dataset::fetch`]. Folders, DTD and Parquet are listed up
//! front into a compact column store ([`ItemTable`]: text arenas and dictionary codes, about
//! 40 bytes per item plus its text, where a `Vec` of structs of `String`s costs four times
//! that), so ten million rows list in a few hundred MB. WebDataset shards are not listed up
//! front at all: a shard is listed when a part that needs it runs ([`webdataset`]).
//!
//! Work is cut into parts by [`Dataset::part_ranges`]: `part_size` items of a listed dataset,
//! or one shard. [`Dataset::read_part`] gives a part's items with owned fields.
//!
//! Ids are stable across runs: the relative path for folders (`banded/banded_0002.jpg`), the
//! id column (or the `group_by` value) or `<file stem>:<row>` for Parquet, the sample key for
//! WebDataset. An item may have several captions (a `list<string>` caption column, rows
//! grouped by `group_by`, one per line of a CLIP_benchmark retrieval shard's `txt`).
//!
//! Every file a dataset names is read through [`FileAccess`]: inside the dataset folder, a
//! regular file, at most `dataset.max_file_bytes` (see `files.rs`); a WebDataset member is
//! held to the same cap.

mod files;
mod folder;
mod hf_parquet;
mod listing;
mod sample;
pub mod webdataset;

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::{DatasetConfig, DatasetFormat, SampleConfig};

pub use files::{open_regular, read_regular, FileAccess, FileError, DEFAULT_MAX_FILE_BYTES};
pub use hf_parquet::ParquetSource;
pub use listing::ItemTable;
pub use webdataset::{ListingProblem, Shards};

/// Pillow's default decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`).
pub const DEFAULT_MAX_PIXELS: u64 = 89_478_485;

/// One image with its metadata, with owned fields: made for the chunk being worked on.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable id, unique within the dataset.
    pub id: String,
    pub label: Option<String>,
    /// Its captions, in dataset order (none, one, or several).
    pub captions: Vec<String>,
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
    /// `size` bytes at `offset` of the (uncompressed) tar stream of WebDataset shard `shard`.
    TarMember {
        shard: usize,
        offset: u64,
        size: u64,
    },
}

/// The items of a dataset: listed, or listed shard by shard.
#[derive(Debug)]
pub enum Listing {
    Items(ItemTable),
    Shards(Shards),
}

/// A listed dataset.
#[derive(Debug)]
pub struct Dataset {
    pub format: DatasetFormat,
    pub listing: Listing,
    /// Items before sampling (listed datasets).
    total_items: Option<usize>,
    pub parquet_files: Vec<ParquetSource>,
    /// Where the items came from, for humans (`data/pokemon/*.parquet`).
    pub description: String,
    /// Hash of the item list (ids, labels, captions, sources), or of the shard files and
    /// their sizes: two runs that agree on it read the same items.
    pub fingerprint: String,
    /// Things worth a warning that are not errors (files outside class folders, ...).
    pub notes: Vec<String>,
    /// How [`ImageRef::File`] items are read (folder and DTD datasets); Parquet sources carry
    /// their own.
    files: Option<FileAccess>,
}

/// The items of one part, and what could not be listed in it (WebDataset shards only).
#[derive(Debug, Default)]
pub struct PartItems {
    pub items: Vec<Item>,
    pub problems: Vec<ListingProblem>,
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
    let (mut table, parquet_files, description, notes) = match config.format {
        DatasetFormat::Parquet => {
            let files = hf_parquet::expand(config.path.as_slice())?;
            let (items, sources, notes) = hf_parquet::list(&files, config)?;
            let description = config.path.as_slice().join(", ");
            (items, sources, description, notes)
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
        DatasetFormat::Webdataset => return open_shards(config),
    };
    if table.rows() == 0 {
        return Err(DatasetError::Empty(description));
    }
    if let Some((id, a, b)) = table.first_duplicate_id() {
        return Err(DatasetError::DuplicateId {
            id,
            first: format!("{:?}", table.row_image(a)),
            second: format!("{:?}", table.row_image(b)),
        });
    }
    let total_items = table.rows();
    sample::apply(&mut table, &config.sample, seed);
    let fingerprint = fingerprint(&table, &parquet_files);
    Ok(Dataset {
        format: config.format,
        listing: Listing::Items(table),
        total_items: Some(total_items),
        parquet_files,
        description,
        fingerprint,
        notes,
        files,
    })
}

fn open_shards(config: &DatasetConfig) -> Result<Dataset, DatasetError> {
    let shards = webdataset::open(config)?;
    let mut description = config.path.as_slice().join(", ");
    if let Some(split) = &config.split {
        description = format!("{description} (split {split})");
    }
    let mut notes = Vec::new();
    for f in &shards.layout_files {
        notes.push(format!(
            "webdataset: using {} from the dataset's folder",
            f.display()
        ));
    }
    if shards.templates.is_some() && shards.classnames.is_none() {
        notes.push(
            "webdataset: zero-shot templates without classnames.txt: no prompts from them".into(),
        );
    }
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"webdataset");
    for f in &shards.files {
        h.update((f.path.to_string_lossy().len() as u64).to_le_bytes());
        h.update(f.path.to_string_lossy().as_bytes());
        h.update(f.bytes.to_le_bytes());
    }
    for f in &shards.layout_files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(std::fs::read(f).unwrap_or_default());
    }
    let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Dataset {
        format: config.format,
        listing: Listing::Shards(shards),
        total_items: None,
        parquet_files: Vec::new(),
        description,
        fingerprint,
        notes,
        files: None,
    })
}

impl Dataset {
    /// Items after sampling; `None` for WebDataset, whose shards are listed as they are read.
    pub fn item_count(&self) -> Option<usize> {
        match &self.listing {
            Listing::Items(t) => Some(t.len()),
            Listing::Shards(_) => None,
        }
    }

    /// Items before sampling, when listed.
    pub fn total_items(&self) -> Option<usize> {
        self.total_items
    }

    /// Number of WebDataset shards, if this is one.
    pub fn shard_count(&self) -> Option<usize> {
        match &self.listing {
            Listing::Items(_) => None,
            Listing::Shards(s) => Some(s.files.len()),
        }
    }

    /// The parts of the work in order: ranges of `part_size` items, or one range `k..k+1` per
    /// WebDataset shard `k`.
    pub fn part_ranges(&self, part_size: usize) -> Vec<Range<usize>> {
        let (total, step) = match &self.listing {
            Listing::Items(t) => (t.len(), part_size.max(1)),
            Listing::Shards(s) => (s.files.len(), 1),
        };
        (0..total)
            .step_by(step)
            .map(|start| start..(start + step).min(total))
            .collect()
    }

    /// True when a part is a shard (its item count is known only once it is read).
    pub fn parts_are_shards(&self) -> bool {
        matches!(self.listing, Listing::Shards(_))
    }

    /// The items of the part `range` (from [`Dataset::part_ranges`]).
    pub fn read_part(&self, range: Range<usize>) -> Result<PartItems, DatasetError> {
        match &self.listing {
            Listing::Items(t) => Ok(PartItems {
                items: clamp(range, t.len()).map(|i| t.item(i)).collect(),
                problems: Vec::new(),
            }),
            Listing::Shards(s) => {
                let mut out = PartItems::default();
                for shard in clamp(range, s.files.len()) {
                    let listed = s.list(shard)?;
                    out.items.extend(listed.items);
                    out.problems.extend(listed.problems);
                }
                Ok(out)
            }
        }
    }

    /// Reads the image bytes of `items` (a chunk of a part, in order). A failure for one item
    /// (missing file, null cell, damaged member) is that item's error, not the chunk's.
    pub fn fetch(&self, items: &[Item]) -> Vec<Result<Vec<u8>, String>> {
        let mut out: Vec<Option<Result<Vec<u8>, String>>> = vec![None; items.len()];
        let mut parquet_rows: Vec<(usize, usize, u64)> = Vec::new();
        let mut tar_members: Vec<(usize, usize, u64, u64)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match &item.image {
                ImageRef::File(path) => {
                    out[i] = Some(match &self.files {
                        Some(access) => access.read(path).map_err(|e| e.to_string()),
                        None => Err("internal: no file access for a file item".to_string()),
                    })
                }
                ImageRef::ParquetRow { file, row } => parquet_rows.push((i, *file, *row)),
                ImageRef::TarMember {
                    shard,
                    offset,
                    size,
                } => tar_members.push((i, *shard, *offset, *size)),
            }
        }
        if !parquet_rows.is_empty() {
            for (i, bytes) in hf_parquet::fetch_rows(&self.parquet_files, &parquet_rows) {
                out[i] = Some(bytes);
            }
        }
        if !tar_members.is_empty() {
            match &self.listing {
                Listing::Shards(s) => {
                    for (i, bytes) in s.fetch(&tar_members) {
                        out[i] = Some(bytes);
                    }
                }
                Listing::Items(_) => {
                    for (i, ..) in tar_members {
                        out[i] = Some(Err("internal: a tar member in a listed dataset".into()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err("internal: image not fetched".to_string())))
            .collect()
    }

    /// Where an item's image comes from, for error records (`a.parquet#row=17`,
    /// `00003.tar#offset=5632`, a path).
    pub fn source_of(&self, item: &Item) -> String {
        match &item.image {
            ImageRef::File(p) => p.display().to_string(),
            ImageRef::ParquetRow { file, row } => match self.parquet_files.get(*file) {
                Some(src) => format!("{}#row={row}", src.path.display()),
                None => format!("parquet#{file}#row={row}"),
            },
            ImageRef::TarMember { shard, offset, .. } => match &self.listing {
                Listing::Shards(s) if *shard < s.files.len() => {
                    format!("{}#offset={offset}", s.files[*shard].path.display())
                }
                _ => format!("shard#{shard}#offset={offset}"),
            },
        }
    }

    /// The class names: the sorted distinct labels of the (sampled) items, or a WebDataset's
    /// `classnames.txt` in class order (empty when it has none: its labels are not known
    /// before its shards are read).
    pub fn labels(&self) -> Vec<String> {
        match &self.listing {
            Listing::Items(t) => t.labels(),
            Listing::Shards(s) => s.classnames.clone().unwrap_or_default(),
        }
    }

    /// Whether any item may have a caption: known for listed datasets; for WebDataset, whether
    /// a caption field is configured.
    pub fn has_captions(&self) -> bool {
        match &self.listing {
            Listing::Items(t) => t.has_captions(),
            Listing::Shards(s) => s.has_caption_field(),
        }
    }

    /// Zero-shot templates the dataset ships (CLIP_benchmark's
    /// `zeroshot_classification_templates.txt`, with its `classnames.txt`), used when the study
    /// sets no prompts.
    pub fn templates(&self) -> Option<&[String]> {
        match &self.listing {
            Listing::Items(_) => None,
            Listing::Shards(s) => s.classnames.as_ref().and(s.templates.as_deref()),
        }
    }

    /// The items whose ids are in `ids` (for report thumbnails), in dataset order. A
    /// WebDataset is scanned shard by shard until every id is found.
    pub fn items_with_ids(&self, ids: &HashSet<&str>) -> Vec<Item> {
        let mut out = Vec::new();
        match &self.listing {
            Listing::Items(t) => {
                for i in 0..t.len() {
                    if ids.contains(t.id(i).as_ref()) {
                        out.push(t.item(i));
                    }
                }
            }
            Listing::Shards(s) => {
                for shard in 0..s.files.len() {
                    if out.len() >= ids.len() {
                        break;
                    }
                    if let Ok(listed) = s.list(shard) {
                        out.extend(
                            listed
                                .items
                                .into_iter()
                                .filter(|i| ids.contains(i.id.as_str())),
                        );
                    }
                }
            }
        }
        out
    }

    /// The listed items (folder, DTD, Parquet), for per-item side tables.
    pub fn item_table(&self) -> Option<&ItemTable> {
        match &self.listing {
            Listing::Items(t) => Some(t),
            Listing::Shards(_) => None,
        }
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
    if !matches!(
        config.format,
        DatasetFormat::Dtd | DatasetFormat::Webdataset
    ) && config.split.is_some()
    {
        return Err(DatasetError::Config {
            key: "split",
            message: "only applies to format: dtd or webdataset".into(),
        });
    }
    if matches!(
        config.format,
        DatasetFormat::Parquet | DatasetFormat::Webdataset
    ) && config.extensions.is_some()
    {
        return Err(DatasetError::Config {
            key: "extensions",
            message: "only applies to format: folder or dtd (for webdataset, see dataset.webdataset.image)".into(),
        });
    }
    if config.format != DatasetFormat::Parquet && config.group_by.is_some() {
        return Err(DatasetError::Config {
            key: "group_by",
            message: "only applies to format: parquet".into(),
        });
    }
    if config.format != DatasetFormat::Webdataset && config.webdataset.is_some() {
        return Err(DatasetError::Config {
            key: "webdataset",
            message: "only applies to format: webdataset".into(),
        });
    }
    if config.format == DatasetFormat::Webdataset && config.sample != SampleConfig::default() {
        return Err(DatasetError::Config {
            key: "sample",
            message: "does not apply to format: webdataset (a shard is listed only when it is read, so there is no global list to sample from); choose shards in dataset.path instead".into(),
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

/// `range` within `0..n`: clamped, not filtered, since `0..usize::MAX` means "all" and must not
/// count to usize::MAX.
fn clamp(range: Range<usize>, n: usize) -> Range<usize> {
    range.start.min(n)..range.end.min(n)
}

/// Hashes the kept items in order. An item with at most one caption hashes as it did when an
/// item had one optional caption, so run directories made before several captions keep their
/// identity.
fn fingerprint(items: &ItemTable, files: &[ParquetSource]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in files {
        h.update(f.path.to_string_lossy().as_bytes());
        h.update(f.bytes.to_le_bytes());
    }
    let text = |h: &mut Sha256, s: &str| {
        h.update([1]);
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    items.for_each(|id, label, captions, image| {
        text(&mut h, id);
        match label {
            Some(s) => text(&mut h, s),
            None => h.update([0]),
        }
        let captions: Vec<&str> = captions.collect();
        match captions.as_slice() {
            [] => h.update([0]),
            [one] => text(&mut h, one),
            many => {
                h.update([2]);
                h.update((many.len() as u64).to_le_bytes());
                for c in many {
                    text(&mut h, c);
                }
            }
        }
        match image {
            ImageRef::File(p) => h.update(p.to_string_lossy().as_bytes()),
            ImageRef::ParquetRow { file, row } => {
                h.update((file as u64).to_le_bytes());
                h.update(row.to_le_bytes());
            }
            ImageRef::TarMember { .. } => {}
        }
    });
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_ranges_past_the_end_are_clamped() {
        let dir = tempfile::tempdir().unwrap();
        let class = dir.path().join("cats");
        std::fs::create_dir(&class).unwrap();
        for i in 0..3 {
            std::fs::write(class.join(format!("{i}.png")), b"not read here").unwrap();
        }
        let yaml = format!("format: folder\npath: {}\n", dir.path().display());
        let config: DatasetConfig = serde_norway::from_str(&yaml).unwrap();
        let d = open(&config, 0).unwrap();
        // `0..usize::MAX` is "everything", at once (it used to count to usize::MAX).
        assert_eq!(d.read_part(0..usize::MAX).unwrap().items.len(), 3);
        assert_eq!(d.read_part(1..usize::MAX).unwrap().items.len(), 2);
        assert_eq!(d.read_part(5..9).unwrap().items.len(), 0);
    }
}
