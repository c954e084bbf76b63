//! Reading embeddings back, for analysis: clipflow's own store, any Parquet file with an
//! embedding column (`list`, `large_list` or `fixed_size_list` of float32/float16/float64), and
//! clip-retrieval's output folder (`img_emb/*.npy`, `text_emb/*.npy`, `metadata/*.parquet`).
//!
//! A store is opened as a [`Catalog`]: one pass over the small key columns (model, modality,
//! variant) lists every set and its row count, without touching a vector. Sets are then loaded
//! one at a time ([`Catalog::load`]), each read with a row filter so the vectors of other sets
//! are never decoded, into a buffer sized once from the count. That is what bounds analysis
//! memory by one (model, modality, variant) set rather than by the store: a million images in
//! seven variants is 14 GB of vectors, one variant 2 GB.
//!
//! Vectors come back L2-normalised (clipflow's already are; other tools' may not be, and every
//! metric here is defined on normalised vectors).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ParquetRecordBatchReaderBuilder, RowFilter};
use parquet::arrow::ProjectionMask;

use super::StoreError;

/// The rows of one (model, modality, variant).
#[derive(Debug, Clone, Default)]
pub struct EmbeddingSet {
    pub model: String,
    pub modality: String,
    pub variant: String,
    pub ids: Vec<String>,
    /// The image a text row describes (`item_id` column), when the store says; a caption row
    /// without one describes the item of the same id (one caption per image).
    pub item_ids: Vec<Option<String>>,
    pub labels: Vec<Option<String>>,
    pub texts: Vec<Option<String>>,
    pub dim: usize,
    /// Row-major `ids.len() × dim`, L2-normalised.
    pub vectors: Vec<f32>,
}

impl EmbeddingSet {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
    /// The item row `i` belongs to: its `item_id`, else its own id.
    pub fn item(&self, i: usize) -> &str {
        self.item_ids
            .get(i)
            .and_then(|x| x.as_deref())
            .unwrap_or(&self.ids[i])
    }

    /// The rows `keep` selects, copied out (same model, modality and variant).
    pub fn subset(&self, keep: impl Fn(usize) -> bool) -> EmbeddingSet {
        let rows: Vec<usize> = (0..self.len()).filter(|&i| keep(i)).collect();
        let pick = |v: &Vec<Option<String>>| -> Vec<Option<String>> {
            if v.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&i| v[i].clone()).collect()
            }
        };
        EmbeddingSet {
            model: self.model.clone(),
            modality: self.modality.clone(),
            variant: self.variant.clone(),
            ids: rows.iter().map(|&i| self.ids[i].clone()).collect(),
            item_ids: pick(&self.item_ids),
            labels: pick(&self.labels),
            texts: pick(&self.texts),
            dim: self.dim,
            vectors: rows
                .iter()
                .flat_map(|&i| self.row(i).iter().copied())
                .collect(),
        }
    }
}

/// Column names of a foreign Parquet store. Missing optional columns take defaults: ids are
/// `row:<n>`, the modality is `default_modality`, the model is the file stem, the variant
/// `clean`.
#[derive(Debug, Clone)]
pub struct ParquetColumns {
    pub embedding: String,
    pub id: Option<String>,
    pub model: Option<String>,
    pub modality: Option<String>,
    pub variant: Option<String>,
    pub label: Option<String>,
    pub text: Option<String>,
    /// The image a caption row describes (several captions per image).
    pub item_id: Option<String>,
    pub default_modality: String,
}

impl Default for ParquetColumns {
    fn default() -> Self {
        ParquetColumns {
            embedding: "embedding".into(),
            id: Some("id".into()),
            model: Some("model".into()),
            modality: Some("modality".into()),
            variant: Some("variant".into()),
            label: Some("label".into()),
            text: Some("text".into()),
            item_id: Some("item_id".into()),
            default_modality: "image".into(),
        }
    }
}

/// Columns of clip-retrieval's metadata Parquet that clipflow reads.
#[derive(Debug, Clone)]
pub struct ClipRetrievalColumns {
    /// The item id; default `key`, else `image_path`, else `row:<n>`.
    pub id: Option<String>,
    /// The caption; default `caption`.
    pub text: Option<String>,
    /// A class label, when the metadata has one.
    pub label: Option<String>,
}

impl Default for ClipRetrievalColumns {
    fn default() -> Self {
        ClipRetrievalColumns {
            id: None,
            text: Some("caption".into()),
            label: None,
        }
    }
}

/// What kind of store a path holds.
#[derive(Debug, Clone)]
pub enum StoreFormat {
    /// A clipflow run directory (or its `embeddings/` folder).
    Clipflow,
    /// Parquet files (a file, a folder of them, or a glob) with the given columns.
    Parquet(ParquetColumns),
    /// clip-retrieval's inference output folder.
    ClipRetrieval(ClipRetrievalColumns),
}

/// Guesses the format of `path`: a folder with `img_emb/` is clip-retrieval's, a folder with
/// `embeddings/` (or named so) is clipflow's, anything else is generic Parquet.
pub fn detect_format(path: &Path) -> StoreFormat {
    if path.join("img_emb").is_dir() || path.join("text_emb").is_dir() {
        StoreFormat::ClipRetrieval(ClipRetrievalColumns::default())
    } else if path.join("embeddings").is_dir() || path.ends_with("embeddings") {
        StoreFormat::Clipflow
    } else {
        StoreFormat::Parquet(ParquetColumns::default())
    }
}

/// One (model, modality, variant) of a store and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    pub model: String,
    pub modality: String,
    pub variant: String,
    pub rows: usize,
}

/// An opened store: which sets it holds, and where each one's rows are.
#[derive(Debug)]
pub struct Catalog {
    sets: Vec<SetInfo>,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Parquet {
        cols: ParquetColumns,
        /// Per file: its path, stem, and the sets it has rows of (index into `sets`).
        files: Vec<(PathBuf, String, Vec<usize>)>,
    },
    ClipRetrieval {
        dir: PathBuf,
        cols: ClipRetrievalColumns,
    },
}

impl Catalog {
    /// Lists the sets under `path` from their key columns only.
    pub fn open(path: &Path, format: &StoreFormat) -> Result<Catalog, StoreError> {
        match format {
            StoreFormat::Clipflow => {
                let dir = if path.join("embeddings").is_dir() {
                    path.join("embeddings")
                } else {
                    path.to_path_buf()
                };
                Catalog::open_parquet(&parquet_files(&dir)?, ParquetColumns::default())
            }
            StoreFormat::Parquet(cols) => {
                Catalog::open_parquet(&parquet_files(path)?, cols.clone())
            }
            StoreFormat::ClipRetrieval(cols) => Catalog::open_clip_retrieval(path, cols.clone()),
        }
    }

    /// Every set, in the order the store first mentions it.
    pub fn sets(&self) -> &[SetInfo] {
        &self.sets
    }

    /// Model names, in the order the store first mentions them.
    pub fn models(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.sets {
            if !out.contains(&s.model.as_str()) {
                out.push(&s.model);
            }
        }
        out
    }

    /// The set of (model, modality, variant), if the store has one.
    pub fn find(&self, model: &str, modality: &str, variant: &str) -> Option<&SetInfo> {
        self.sets
            .iter()
            .find(|s| s.model == model && s.modality == modality && s.variant == variant)
    }

    /// Reads one set: its rows in store order, vectors L2-normalised.
    pub fn load(&self, info: &SetInfo) -> Result<EmbeddingSet, StoreError> {
        let index =
            self.sets.iter().position(|s| s == info).ok_or_else(|| {
                StoreError::io(Path::new(&info.model), "no such set in the store")
            })?;
        let mut set = match &self.source {
            Source::Parquet { cols, files } => load_parquet(info, index, cols, files)?,
            Source::ClipRetrieval { dir, cols } => load_clip_retrieval(dir, cols, info)?,
        };
        if set.dim > 0 {
            crate::encode::normalize_rows(&mut set.vectors, set.dim);
        }
        Ok(set)
    }

    fn open_parquet(files: &[PathBuf], cols: ParquetColumns) -> Result<Catalog, StoreError> {
        let mut sets: Vec<SetInfo> = Vec::new();
        let mut index: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        let mut listed = Vec::new();
        for path in files {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            guarded(path, || {
                let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| StoreError::parquet(path, e))?;
                if builder.schema().index_of(&cols.embedding).is_err() {
                    return Err(StoreError::parquet(
                        path,
                        format!(
                            "no embedding column `{}` (columns: {})",
                            cols.embedding,
                            column_names(builder.schema())
                        ),
                    ));
                }
                let key_cols = key_columns(builder.schema(), &cols);
                let mask = ProjectionMask::roots(
                    builder.parquet_schema(),
                    key_cols.iter().flatten().copied(),
                );
                let reader = builder
                    .with_projection(mask)
                    .build()
                    .map_err(|e| StoreError::parquet(path, e))?;
                let mut here: Vec<usize> = Vec::new();
                for batch in reader {
                    let batch = batch.map_err(|e| StoreError::parquet(path, e))?;
                    let keys = batch_keys(&batch, &cols, &stem, path)?;
                    for key in keys {
                        let i = *index.entry(key.clone()).or_insert_with(|| {
                            sets.push(SetInfo {
                                model: key.0,
                                modality: key.1,
                                variant: key.2,
                                rows: 0,
                            });
                            sets.len() - 1
                        });
                        sets[i].rows += 1;
                        if !here.contains(&i) {
                            here.push(i);
                        }
                    }
                }
                listed.push((path.clone(), stem.clone(), here));
                Ok(())
            })?;
        }
        Ok(Catalog {
            sets,
            source: Source::Parquet {
                cols,
                files: listed,
            },
        })
    }

    fn open_clip_retrieval(dir: &Path, cols: ClipRetrievalColumns) -> Result<Catalog, StoreError> {
        let mut sets = Vec::new();
        for (modality, sub) in [("image", "img_emb"), ("text", "text_emb")] {
            let mut rows = 0;
            for path in numbered(dir, sub, "npy") {
                rows += npy_header(&path)?.rows;
            }
            if rows > 0 {
                sets.push(SetInfo {
                    model: "clip-retrieval".into(),
                    modality: modality.into(),
                    variant: "clean".into(),
                    rows,
                });
            }
        }
        if sets.is_empty() {
            return Err(StoreError::io(dir, "no img_emb/*.npy or text_emb/*.npy"));
        }
        Ok(Catalog {
            sets,
            source: Source::ClipRetrieval {
                dir: dir.to_path_buf(),
                cols,
            },
        })
    }
}

fn column_names(schema: &arrow_schema::Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Indices of the model, modality and variant columns, where the file has them.
fn key_columns(schema: &arrow_schema::Schema, cols: &ParquetColumns) -> [Option<usize>; 3] {
    let at = |name: &Option<String>| name.as_ref().and_then(|n| schema.index_of(n).ok());
    [at(&cols.model), at(&cols.modality), at(&cols.variant)]
}

/// A text column of `batch` by name (any type cast to text), or `None` when absent.
fn text_column(
    batch: &RecordBatch,
    name: Option<&str>,
    path: &Path,
) -> Result<Option<StringArray>, StoreError> {
    let Some(name) = name else { return Ok(None) };
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let cast = arrow_cast::cast(col, &DataType::Utf8)
        .map_err(|e| StoreError::parquet(path, format!("column {name}: {e}")))?;
    Ok(cast.as_any().downcast_ref::<StringArray>().cloned())
}

fn value(a: &Option<StringArray>, i: usize) -> Option<String> {
    a.as_ref()
        .and_then(|a| (!a.is_null(i)).then(|| a.value(i).to_string()))
}

/// The (model, modality, variant) of every row of `batch`.
fn batch_keys(
    batch: &RecordBatch,
    cols: &ParquetColumns,
    stem: &str,
    path: &Path,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let models = text_column(batch, cols.model.as_deref(), path)?;
    let modalities = text_column(batch, cols.modality.as_deref(), path)?;
    let variants = text_column(batch, cols.variant.as_deref(), path)?;
    Ok((0..batch.num_rows())
        .map(|i| {
            (
                value(&models, i).unwrap_or_else(|| stem.to_string()),
                value(&modalities, i).unwrap_or_else(|| cols.default_modality.clone()),
                value(&variants, i).unwrap_or_else(|| "clean".into()),
            )
        })
        .collect())
}

fn load_parquet(
    info: &SetInfo,
    index: usize,
    cols: &ParquetColumns,
    files: &[(PathBuf, String, Vec<usize>)],
) -> Result<EmbeddingSet, StoreError> {
    let mut set = EmbeddingSet {
        model: info.model.clone(),
        modality: info.modality.clone(),
        variant: info.variant.clone(),
        ..Default::default()
    };
    set.ids.reserve_exact(info.rows);
    set.labels.reserve_exact(info.rows);
    set.texts.reserve_exact(info.rows);
    set.item_ids.reserve_exact(info.rows);
    let mut row = 0usize;
    for (path, stem, here) in files {
        if !here.contains(&index) {
            continue;
        }
        guarded(path, || {
            let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
            let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| StoreError::parquet(path, e))?;
            // Only the rows of this set are decoded: a filter on the key columns runs first, and
            // the vectors of the other variants are skipped, not read and dropped.
            if here.len() > 1 {
                let key_cols: Vec<usize> = key_columns(builder.schema(), cols)
                    .into_iter()
                    .flatten()
                    .collect();
                let mask = ProjectionMask::roots(builder.parquet_schema(), key_cols);
                let (want, cols2, stem2, path2) =
                    (info.clone(), cols.clone(), stem.clone(), path.clone());
                let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
                    let keys = batch_keys(&batch, &cols2, &stem2, &path2)
                        .map_err(|e| arrow_schema::ArrowError::ExternalError(Box::new(e)))?;
                    Ok(BooleanArray::from_iter(keys.iter().map(|k| {
                        Some(k.0 == want.model && k.1 == want.modality && k.2 == want.variant)
                    })))
                });
                builder = builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
            }
            let schema = builder.schema().clone();
            let wanted: Vec<usize> = [
                Some(&cols.embedding),
                cols.id.as_ref(),
                cols.label.as_ref(),
                cols.text.as_ref(),
                cols.item_id.as_ref(),
            ]
            .into_iter()
            .flatten()
            .filter_map(|n| schema.index_of(n).ok())
            .collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
            let reader = builder
                .with_projection(mask)
                .build()
                .map_err(|e| StoreError::parquet(path, e))?;
            for batch in reader {
                let batch = batch.map_err(|e| StoreError::parquet(path, e))?;
                let emb = batch.column_by_name(&cols.embedding).ok_or_else(|| {
                    StoreError::parquet(path, format!("no embedding column `{}`", cols.embedding))
                })?;
                if set.vectors.capacity() == 0 && batch.num_rows() > 0 {
                    let dim = first_dim(emb).min(MAX_DIM);
                    // The whole set at once (no doubling on the way), or a clear error when
                    // the machine cannot hold it.
                    set.vectors
                        .try_reserve_exact(info.rows.saturating_mul(dim))
                        .map_err(|e| {
                            StoreError::parquet(
                                path,
                                format!(
                                    "cannot hold {} vectors of {dim} values in memory ({e})",
                                    info.rows
                                ),
                            )
                        })?;
                }
                let dim = append_vectors(emb, path, row, &mut set.vectors, set.dim)?;
                set.dim = dim;
                let ids = text_column(&batch, cols.id.as_deref(), path)?;
                let labels = text_column(&batch, cols.label.as_deref(), path)?;
                let texts = text_column(&batch, cols.text.as_deref(), path)?;
                let items = text_column(&batch, cols.item_id.as_deref(), path)?;
                for i in 0..batch.num_rows() {
                    set.ids
                        .push(value(&ids, i).unwrap_or_else(|| format!("row:{}", row + i)));
                    set.labels.push(value(&labels, i));
                    set.texts.push(value(&texts, i));
                    set.item_ids.push(value(&items, i));
                }
                row += batch.num_rows();
            }
            Ok(())
        })?;
    }
    Ok(set)
}

/// Runs the reading of one file, turning a panic of the Parquet or Arrow crates (which some
/// malformed files trigger) into an error naming the file, as any other unreadable file.
fn guarded(path: &Path, read: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
    crate::util::catch_panic(read).unwrap_or_else(|msg| {
        Err(StoreError::parquet(
            path,
            format!("the Parquet reader failed on this file ({msg})"),
        ))
    })
}

/// The most values an embedding may have: far above any image or text encoder's (a few
/// thousand), and a bound on what a malformed or hostile store can make the reader allocate
/// per row.
const MAX_DIM: usize = 1 << 16;

/// Values per row of the first row of an embedding column (0 when unknown).
fn first_dim(col: &ArrayRef) -> usize {
    match col.data_type() {
        DataType::FixedSizeList(_, n) => *n as usize,
        DataType::List(_) => {
            let l = col.as_list::<i32>();
            l.value_offsets()
                .windows(2)
                .next()
                .map_or(0, |w| (w[1] - w[0]) as usize)
        }
        DataType::LargeList(_) => {
            let l = col.as_list::<i64>();
            l.value_offsets()
                .windows(2)
                .next()
                .map_or(0, |w| (w[1] - w[0]) as usize)
        }
        _ => 0,
    }
}

/// Appends the vectors of an embedding column to `out` as f32 and returns their dimension; a
/// row of another length than `dim` (when `dim > 0`) or a null row is an error naming the file
/// and row.
fn append_vectors(
    col: &ArrayRef,
    path: &Path,
    first_row: usize,
    out: &mut Vec<f32>,
    dim: usize,
) -> Result<usize, StoreError> {
    let (offsets, values): (Vec<usize>, ArrayRef) = match col.data_type() {
        DataType::FixedSizeList(_, n) => {
            let l = col.as_fixed_size_list();
            let n = *n as usize;
            (
                (0..=l.len()).map(|i| i * n).collect(),
                l.values().slice(l.offset() * n, l.len() * n),
            )
        }
        DataType::List(_) => {
            let l = col.as_list::<i32>();
            (
                l.value_offsets().iter().map(|&o| o as usize).collect(),
                l.values().clone(),
            )
        }
        DataType::LargeList(_) => {
            let l = col.as_list::<i64>();
            (
                l.value_offsets().iter().map(|&o| o as usize).collect(),
                l.values().clone(),
            )
        }
        other => {
            return Err(StoreError::parquet(
                path,
                format!("embedding column has type {other}; expected a list of floats"),
            ))
        }
    };
    let floats = match values.data_type() {
        DataType::Float32 | DataType::Float16 | DataType::Float64 => {
            arrow_cast::cast(&values, &DataType::Float32)
                .map_err(|e| StoreError::parquet(path, e))?
        }
        other => {
            return Err(StoreError::parquet(
                path,
                format!("embedding values are {other}; expected floats"),
            ))
        }
    };
    let floats = floats.as_primitive::<Float32Type>().values();
    let mut dim = dim;
    for i in 0..col.len() {
        if col.is_null(i) {
            return Err(StoreError::parquet(
                path,
                format!("row {}: null embedding", first_row + i),
            ));
        }
        let (a, b) = (offsets[i], offsets[i + 1]);
        let n = b - a;
        if dim == 0 {
            if n > MAX_DIM {
                return Err(StoreError::parquet(
                    path,
                    format!(
                        "row {}: embedding has {n} values, more than clipflow's limit of {MAX_DIM}",
                        first_row + i
                    ),
                ));
            }
            dim = n;
        } else if n != dim {
            return Err(StoreError::parquet(
                path,
                format!(
                    "row {}: embedding has {n} values, earlier rows {dim}",
                    first_row + i
                ),
            ));
        }
        out.extend_from_slice(&floats[a..b]);
    }
    Ok(dim)
}

/// Parquet files under a folder (recursively, skipping dot-files), a single file, or a glob.
fn parquet_files(path: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let s = path.to_string_lossy();
    let mut files = Vec::new();
    if s.contains(['*', '?', '[']) {
        let g = glob::glob(&s).map_err(|e| StoreError::io(path, e))?;
        files.extend(g.filter_map(Result::ok));
    } else if path.is_file() {
        files.push(path.to_path_buf());
    } else if path.is_dir() {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
            for e in std::fs::read_dir(d)? {
                let e = e?;
                let p = e.path();
                let hidden = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']));
                if hidden {
                    continue;
                }
                // No symlinked folders: a store is what clipflow (or a tool) wrote under it.
                if e.file_type()?.is_dir() {
                    walk(&p, out)?;
                } else if p.extension().is_some_and(|e| e == "parquet") {
                    out.push(p);
                }
            }
            Ok(())
        }
        walk(path, &mut files).map_err(|e| StoreError::io(path, e))?;
    } else {
        return Err(StoreError::io(path, "no such file or folder"));
    }
    files.sort();
    if files.is_empty() {
        return Err(StoreError::io(path, "no Parquet files"));
    }
    Ok(files)
}

/// `dir/sub/*.ext` sorted by the number in their names (`img_emb_10` after `img_emb_9`).
fn numbered(dir: &Path, sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir.join(sub))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .map(|p| {
                    let n = p
                        .file_stem()
                        .map(|s| {
                            s.to_string_lossy()
                                .chars()
                                .filter(|c| c.is_ascii_digit())
                                .collect::<String>()
                        })
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0);
                    (n, p)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// clip-retrieval: `img_emb/img_emb_<i>.npy` and `text_emb/text_emb_<i>.npy` ([N, D], float16
/// or float32) row-aligned with `metadata/metadata_<i>.parquet` (`image_path`, `caption`, ...).
fn load_clip_retrieval(
    dir: &Path,
    cols: &ClipRetrievalColumns,
    info: &SetInfo,
) -> Result<EmbeddingSet, StoreError> {
    let mut set = EmbeddingSet {
        model: info.model.clone(),
        modality: info.modality.clone(),
        variant: info.variant.clone(),
        ..Default::default()
    };
    let sub = if info.modality == "image" {
        "img_emb"
    } else {
        "text_emb"
    };
    for path in numbered(dir, sub, "npy") {
        let (rows, dim) = read_npy_into(&path, &mut set.vectors, info.rows)?;
        if set.dim != 0 && set.dim != dim {
            return Err(StoreError::parquet(
                &path,
                format!("dimension {dim} after files of {}", set.dim),
            ));
        }
        set.dim = dim;
        let _ = rows;
    }
    let n = set.vectors.len() / set.dim.max(1);
    let (mut ids, mut labels, mut captions) = (Vec::new(), Vec::new(), Vec::new());
    for path in numbered(dir, "metadata", "parquet") {
        if ids.len() >= n {
            break;
        }
        let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| StoreError::parquet(&path, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| StoreError::parquet(&path, e))?;
            if let Some(id) = &cols.id {
                if batch.column_by_name(id).is_none() {
                    return Err(StoreError::parquet(
                        &path,
                        format!(
                            "--id-column: no column `{id}` (columns: {})",
                            column_names(&batch.schema())
                        ),
                    ));
                }
            }
            if let Some(label) = &cols.label {
                if batch.column_by_name(label).is_none() {
                    return Err(StoreError::parquet(
                        &path,
                        format!(
                            "--label-column: no column `{label}` (columns: {})",
                            column_names(&batch.schema())
                        ),
                    ));
                }
            }
            let key = text_column(&batch, Some(cols.id.as_deref().unwrap_or("key")), &path)?;
            let image_path = text_column(&batch, Some("image_path"), &path)?;
            let caption = text_column(&batch, cols.text.as_deref(), &path)?;
            let label = text_column(&batch, cols.label.as_deref(), &path)?;
            for i in 0..batch.num_rows() {
                let k = ids.len();
                ids.push(
                    value(&key, i)
                        .or_else(|| value(&image_path, i))
                        .unwrap_or_else(|| format!("row:{k}")),
                );
                captions.push(value(&caption, i));
                labels.push(value(&label, i));
            }
        }
    }
    for i in 0..n {
        set.ids
            .push(ids.get(i).cloned().unwrap_or_else(|| format!("row:{i}")));
        set.labels.push(labels.get(i).cloned().flatten());
        set.texts.push(captions.get(i).cloned().flatten());
        set.item_ids.push(None);
    }
    Ok(set)
}

/// The shape and element width of a 2-D .npy file, from its header.
struct NpyHeader {
    rows: usize,
    cols: usize,
    width: usize,
    data_start: usize,
}

fn npy_header(path: &Path) -> Result<NpyHeader, StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut head = vec![0u8; 12];
    let n = read_full(&mut file, &mut head).map_err(|e| StoreError::io(path, e))?;
    head.truncate(n);
    let bad = |m: &str| StoreError::parquet(path, format!("not a supported .npy file: {m}"));
    if head.len() < 10 || &head[..6] != b"\x93NUMPY" {
        return Err(bad("no NUMPY magic"));
    }
    let (header_len, start) = match head[6] {
        1 => (u16::from_le_bytes([head[8], head[9]]) as usize, 10),
        _ => {
            if head.len() < 12 {
                return Err(bad("short header"));
            }
            (
                u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize,
                12,
            )
        }
    };
    // numpy writes headers of a few hundred bytes; anything far larger is not a .npy file.
    if header_len > 1 << 20 {
        return Err(bad("header longer than 1 MiB"));
    }
    let mut header = vec![0u8; start + header_len];
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let got = read_full(&mut file, &mut header).map_err(|e| StoreError::io(path, e))?;
    if got < header.len() {
        return Err(bad("short header"));
    }
    let header = std::str::from_utf8(&header[start..]).map_err(|_| bad("header is not text"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran order"));
    }
    let width = if header.contains("'<f2'") {
        2
    } else if header.contains("'<f4'") {
        4
    } else if header.contains("'<f8'") {
        8
    } else {
        return Err(bad("dtype is not little-endian float16/32/64"));
    };
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape_text
        .trim_start_matches([' ', '('])
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let (rows, cols) = match dims.as_slice() {
        [r, c] => (*r, *c),
        _ => return Err(bad("not 2-D")),
    };
    let len = std::fs::metadata(path)
        .map_err(|e| StoreError::io(path, e))?
        .len();
    let need = rows
        .checked_mul(cols)
        .and_then(|v| v.checked_mul(width))
        .ok_or_else(|| bad("shape too large"))?;
    if len < (start + header_len + need) as u64 {
        return Err(bad("data shorter than its shape"));
    }
    Ok(NpyHeader {
        rows,
        cols,
        width,
        data_start: start + header_len,
    })
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Appends the values of a 2-D .npy file to `out` as f32, reading it in chunks (a 1M × 512
/// float16 file never sits in memory twice). Returns (rows, cols).
fn read_npy_into(
    path: &Path,
    out: &mut Vec<f32>,
    reserve_rows: usize,
) -> Result<(usize, usize), StoreError> {
    let h = npy_header(path)?;
    if out.capacity() == 0 {
        out.reserve_exact(reserve_rows.max(h.rows) * h.cols);
    }
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    std::io::copy(
        &mut (&mut file).take(h.data_start as u64),
        &mut std::io::sink(),
    )
    .map_err(|e| StoreError::io(path, e))?;
    let mut remaining = h.rows * h.cols * h.width;
    let mut buf = vec![0u8; (1 << 20) / h.width * h.width];
    while remaining > 0 {
        let take = remaining.min(buf.len());
        let got = read_full(&mut file, &mut buf[..take]).map_err(|e| StoreError::io(path, e))?;
        if got < take {
            return Err(StoreError::parquet(path, "data shorter than its shape"));
        }
        out.extend(buf[..take].chunks_exact(h.width).map(|c| match h.width {
            2 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
            4 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            _ => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
        }));
        remaining -= take;
    }
    Ok((h.rows, h.cols))
}

/// A 2-D little-endian float16/float32/float64 .npy file as (rows, cols, f32 values).
pub fn read_npy(path: &Path) -> Result<(usize, usize, Vec<f32>), StoreError> {
    let mut out = Vec::new();
    let (rows, cols) = read_npy_into(path, &mut out, 0)?;
    Ok((rows, cols, out))
}

/// Key-value metadata of the first Parquet file holding `model`'s rows, for what an export
/// carries besides its vectors (dimension, normalisation, the model's scoring).
pub fn model_metadata(catalog: &Catalog, model: &str) -> BTreeMap<String, String> {
    let Source::Parquet { files, .. } = &catalog.source else {
        return BTreeMap::new();
    };
    let Some(index) = catalog.sets.iter().position(|s| s.model == model) else {
        return BTreeMap::new();
    };
    let Some((path, _, _)) = files.iter().find(|(_, _, here)| here.contains(&index)) else {
        return BTreeMap::new();
    };
    let Ok(file) = File::open(path) else {
        return BTreeMap::new();
    };
    let Ok(builder) = ParquetRecordBatchReaderBuilder::try_new(file) else {
        return BTreeMap::new();
    };
    builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|e| Some((e.key.clone(), e.value.clone()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(shape: &str, values: &[f32]) -> Vec<u8> {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let pad = 64 - (10 + header.len() + 1) % 64;
        let h = format!("{header}{}\n", " ".repeat(pad));
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        for v in values {
            bytes.extend(v.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn a_huge_embedding_is_refused_and_a_reader_panic_names_its_file() {
        use crate::store::embeddings::{EmbeddingRow, PartWriter};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("embeddings/m/image/part-00000.parquet");
        // A vector of 70,000 zeros compresses to almost nothing: the file is small, the
        // allocation it asks for is not.
        let dim = MAX_DIM + 4464;
        let mut w = PartWriter::create(&path, "m", "image", dim).unwrap();
        let row = EmbeddingRow::clean("a");
        let mut v = vec![0.0f32; dim];
        v[0] = 1.0;
        w.push(&row, &v).unwrap();
        w.finish().unwrap();
        let catalog = Catalog::open(dir.path(), &StoreFormat::Clipflow).unwrap();
        let err = catalog.load(&catalog.sets()[0]).unwrap_err().to_string();
        assert!(
            err.contains("limit of 65536") && err.contains("part-00000"),
            "{err}"
        );

        let err = guarded(&path, || panic!("index out of bounds"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("part-00000.parquet") && err.contains("index out of bounds"),
            "{err}"
        );
    }

    #[test]
    fn npy_round_trips_in_chunks_and_rejects_lies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bytes = npy("(3, 2)", &values);
        std::fs::write(&path, &bytes).unwrap();
        let (r, c, v) = read_npy(&path).unwrap();
        assert_eq!((r, c), (3, 2));
        assert_eq!(v, values);
        // A shape larger than the data is refused before anything is allocated for it.
        std::fs::write(&path, npy("(3000000000, 2)", &values)).unwrap();
        assert!(read_npy(&path).is_err());
        std::fs::write(&path, npy("(4611686018427387904, 8)", &values)).unwrap();
        assert!(read_npy(&path).is_err());
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        assert!(read_npy(&path).is_err());
    }
}
