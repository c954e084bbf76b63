//! Reading embeddings back, for analysis: clipflow's own store, any Parquet file with an
//! embedding column (`list`, `large_list` or `fixed_size_list` of float32/float16/float64), and
//! clip-retrieval's output folder (`img_emb/*.npy`, `text_emb/*.npy`, `metadata/*.parquet`).
//!
//! Everything becomes [`EmbeddingSet`]s, one per (model, modality, variant), with rows in file
//! order and vectors L2-normalised (clipflow's already are; other tools' may not be, and every
//! metric here is defined on normalised vectors).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::StoreError;

/// The rows of one (model, modality, variant).
#[derive(Debug, Clone, Default)]
pub struct EmbeddingSet {
    pub model: String,
    pub modality: String,
    pub variant: String,
    pub ids: Vec<String>,
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
            default_modality: "image".into(),
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
    ClipRetrieval { label_column: Option<String> },
}

/// Guesses the format of `path`: a folder with `img_emb/` is clip-retrieval's, a folder with
/// `embeddings/` (or named so) is clipflow's, anything else is generic Parquet.
pub fn detect_format(path: &Path) -> StoreFormat {
    if path.join("img_emb").is_dir() || path.join("text_emb").is_dir() {
        StoreFormat::ClipRetrieval { label_column: None }
    } else if path.join("embeddings").is_dir() || path.ends_with("embeddings") {
        StoreFormat::Clipflow
    } else {
        StoreFormat::Parquet(ParquetColumns::default())
    }
}

/// Reads every embedding set under `path`.
pub fn read_sets(path: &Path, format: &StoreFormat) -> Result<Vec<EmbeddingSet>, StoreError> {
    let mut sets = match format {
        StoreFormat::Clipflow => {
            let dir = if path.join("embeddings").is_dir() {
                path.join("embeddings")
            } else {
                path.to_path_buf()
            };
            let files = parquet_files(&dir)?;
            let cols = ParquetColumns::default();
            read_parquet_sets(&files, &cols)?
        }
        StoreFormat::Parquet(cols) => read_parquet_sets(&parquet_files(path)?, cols)?,
        StoreFormat::ClipRetrieval { label_column } => {
            read_clip_retrieval(path, label_column.as_deref())?
        }
    };
    for s in sets.iter_mut().filter(|s| s.dim > 0) {
        crate::encode::normalize_rows(&mut s.vectors, s.dim);
    }
    Ok(sets)
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
                let p = e?.path();
                let hidden = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']));
                if hidden {
                    continue;
                }
                if p.is_dir() {
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

/// The vectors of an embedding column as f32, with their dimension; a row of another length or
/// a null row is an error naming the file and row.
fn vectors(col: &ArrayRef, path: &Path, first_row: usize) -> Result<(Vec<f32>, usize), StoreError> {
    let rows: Vec<Option<ArrayRef>> = match col.data_type() {
        DataType::FixedSizeList(_, _) => {
            let l = col.as_fixed_size_list();
            (0..l.len())
                .map(|i| (!l.is_null(i)).then(|| l.value(i)))
                .collect()
        }
        DataType::List(_) => {
            let l = col.as_list::<i32>();
            (0..l.len())
                .map(|i| (!l.is_null(i)).then(|| l.value(i)))
                .collect()
        }
        DataType::LargeList(_) => {
            let l = col.as_list::<i64>();
            (0..l.len())
                .map(|i| (!l.is_null(i)).then(|| l.value(i)))
                .collect()
        }
        other => {
            return Err(StoreError::parquet(
                path,
                format!("embedding column has type {other}; expected a list of floats"),
            ))
        }
    };
    let mut out = Vec::new();
    let mut dim = None;
    for (i, r) in rows.into_iter().enumerate() {
        let r = r.ok_or_else(|| {
            StoreError::parquet(path, format!("row {}: null embedding", first_row + i))
        })?;
        let before = out.len();
        match r.data_type() {
            DataType::Float32 => {
                out.extend(r.as_primitive::<Float32Type>().values().iter().copied())
            }
            DataType::Float16 => out.extend(
                r.as_primitive::<Float16Type>()
                    .values()
                    .iter()
                    .map(|h| h.to_f32()),
            ),
            DataType::Float64 => out.extend(
                r.as_primitive::<Float64Type>()
                    .values()
                    .iter()
                    .map(|x| *x as f32),
            ),
            other => {
                return Err(StoreError::parquet(
                    path,
                    format!("embedding values are {other}; expected floats"),
                ))
            }
        }
        let n = out.len() - before;
        match dim {
            None => dim = Some(n),
            Some(d) if d != n => {
                return Err(StoreError::parquet(
                    path,
                    format!(
                        "row {}: embedding has {n} values, earlier rows {d}",
                        first_row + i
                    ),
                ))
            }
            _ => {}
        }
    }
    Ok((out, dim.unwrap_or(0)))
}

fn read_parquet_sets(
    files: &[PathBuf],
    cols: &ParquetColumns,
) -> Result<Vec<EmbeddingSet>, StoreError> {
    let mut sets: BTreeMap<(String, String, String), EmbeddingSet> = BTreeMap::new();
    let mut order: Vec<(String, String, String)> = Vec::new();
    for path in files {
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| StoreError::parquet(path, e))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut row = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| StoreError::parquet(path, e))?;
            let emb = batch.column_by_name(&cols.embedding).ok_or_else(|| {
                StoreError::parquet(path, format!("no embedding column `{}`", cols.embedding))
            })?;
            let (vecs, dim) = vectors(emb, path, row)?;
            let ids = text_column(&batch, cols.id.as_deref(), path)?;
            let models = text_column(&batch, cols.model.as_deref(), path)?;
            let modalities = text_column(&batch, cols.modality.as_deref(), path)?;
            let variants = text_column(&batch, cols.variant.as_deref(), path)?;
            let labels = text_column(&batch, cols.label.as_deref(), path)?;
            let texts = text_column(&batch, cols.text.as_deref(), path)?;
            for i in 0..batch.num_rows() {
                let key = (
                    value(&models, i).unwrap_or_else(|| stem.clone()),
                    value(&modalities, i).unwrap_or_else(|| cols.default_modality.clone()),
                    value(&variants, i).unwrap_or_else(|| "clean".into()),
                );
                let set = sets.entry(key.clone()).or_insert_with(|| {
                    order.push(key.clone());
                    EmbeddingSet {
                        model: key.0.clone(),
                        modality: key.1.clone(),
                        variant: key.2.clone(),
                        dim,
                        ..Default::default()
                    }
                });
                if set.dim != dim {
                    return Err(StoreError::parquet(
                        path,
                        format!(
                            "row {}: dimension {dim}, but {} rows so far have {}",
                            row + i,
                            set.model,
                            set.dim
                        ),
                    ));
                }
                set.ids
                    .push(value(&ids, i).unwrap_or_else(|| format!("row:{}", row + i)));
                set.labels.push(value(&labels, i));
                set.texts.push(value(&texts, i));
                set.vectors.extend_from_slice(&vecs[i * dim..(i + 1) * dim]);
            }
            row += batch.num_rows();
        }
    }
    Ok(order.into_iter().filter_map(|k| sets.remove(&k)).collect())
}

/// clip-retrieval: `img_emb/img_emb_<i>.npy` and `text_emb/text_emb_<i>.npy` ([N, D], float16
/// or float32) row-aligned with `metadata/metadata_<i>.parquet` (`image_path`, `caption`, ...).
fn read_clip_retrieval(
    dir: &Path,
    label_column: Option<&str>,
) -> Result<Vec<EmbeddingSet>, StoreError> {
    let numbered = |sub: &str, ext: &str| -> Vec<PathBuf> {
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
    };
    let metas = numbered("metadata", "parquet");
    let mut image = EmbeddingSet {
        model: "clip-retrieval".into(),
        modality: "image".into(),
        variant: "clean".into(),
        ..Default::default()
    };
    let mut text = EmbeddingSet {
        modality: "text".into(),
        ..image.clone()
    };
    let mut ids = Vec::new();
    let mut labels = Vec::new();
    let mut captions = Vec::new();
    for path in &metas {
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| StoreError::parquet(path, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| StoreError::parquet(path, e))?;
            let key = text_column(&batch, Some("key"), path)?;
            let image_path = text_column(&batch, Some("image_path"), path)?;
            let caption = text_column(&batch, Some("caption"), path)?;
            let label = text_column(&batch, label_column, path)?;
            for i in 0..batch.num_rows() {
                let n = ids.len();
                ids.push(
                    value(&key, i)
                        .or_else(|| value(&image_path, i))
                        .unwrap_or_else(|| format!("row:{n}")),
                );
                captions.push(value(&caption, i));
                labels.push(value(&label, i));
            }
        }
    }
    for (set, sub) in [(&mut image, "img_emb"), (&mut text, "text_emb")] {
        let mut offset = 0;
        for path in numbered(sub, "npy") {
            let (rows, dim, data) = read_npy(&path)?;
            if set.dim != 0 && set.dim != dim {
                return Err(StoreError::parquet(
                    &path,
                    format!("dimension {dim} after files of {}", set.dim),
                ));
            }
            set.dim = dim;
            set.vectors.extend(data);
            for r in 0..rows {
                let i = offset + r;
                set.ids
                    .push(ids.get(i).cloned().unwrap_or_else(|| format!("row:{i}")));
                set.labels.push(labels.get(i).cloned().flatten());
                set.texts.push(captions.get(i).cloned().flatten());
            }
            offset += rows;
        }
    }
    if image.is_empty() && text.is_empty() {
        return Err(StoreError::io(dir, "no img_emb/*.npy or text_emb/*.npy"));
    }
    Ok([image, text]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect())
}

/// A 2-D little-endian float16/float32/float64 .npy file as (rows, cols, f32 values).
pub fn read_npy(path: &Path) -> Result<(usize, usize, Vec<f32>), StoreError> {
    let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
    let bad = |m: &str| StoreError::parquet(path, format!("not a supported .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => {
            if bytes.len() < 12 {
                return Err(bad("short header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + header_len)
            .ok_or_else(|| bad("short header"))?,
    )
    .map_err(|_| bad("header is not text"))?;
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
    let data = &bytes[start + header_len..];
    if data.len() < rows * cols * width {
        return Err(bad("data shorter than its shape"));
    }
    let values = data[..rows * cols * width]
        .chunks_exact(width)
        .map(|c| match width {
            2 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
            4 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            _ => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
        })
        .collect();
    Ok((rows, cols, values))
}
