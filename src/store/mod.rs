//! Store stage: embeddings as Parquet that pyarrow, polars, pandas and DuckDB open as they are,
//! the error table, and the manifest.
//!
//! Layout of a run directory:
//!
//! ```text
//! embeddings/<model>/<modality>/part-00000.parquet   one row per (model, modality, id, variant)
//! errors.parquet                                     every input that could not be processed
//! manifest.json                                      config, hashes, fingerprint, timings, counts
//! exports/embedding-atlas/<model>_<map>.parquet      a 2-D map for Apple's embedding-atlas
//! state/                                             bookkeeping: error sidecars, study identity,
//!                                                    claims, worker logs, per-part timings
//! ```
//!
//! Rows of `embeddings/` (columns in `embeddings.rs`) name their image in `item_id`:
//! an image row its own id, a caption row its image's id, a prompt row nothing (null). A
//! caption's `id` is its image's id when the image has one caption and `<image id>#<k>` (k from
//! 0, in dataset order) when it has several ([`caption_id`]), so a reader finds every caption of
//! an image, and the positive of every caption, by `item_id` alone.
//!
//! Every file is written to a dot-prefixed temporary beside its final name and renamed when
//! complete, so a killed run leaves no half file under a real name, globs never see temporaries,
//! and a part file that exists is a finished part: a rerun skips it.

mod atlas;
mod embeddings;
mod errors;
mod reader;
mod scoring;
mod tables;

use std::path::{Path, PathBuf};

pub use atlas::{atlas_schema, AtlasRow, AtlasWriter, ROW_GROUP_ROWS as ATLAS_ROW_GROUP_ROWS};
pub use embeddings::{caption_id, read_part_rows, EmbeddingRow, PartWriter};
pub use errors::{read_errors, write_errors, ErrorRecord};
pub use reader::{
    detect_format, model_metadata, read_npy, Catalog, ClipRetrievalColumns, EmbeddingSet,
    ParquetColumns, SetInfo, StoreFormat,
};
pub use scoring::{metadata_pairs as scoring_metadata, read_scoring};
pub use tables::{
    read_table, read_table_head, write_parquet_table, write_table, Column, Table, TableSink,
    MARKDOWN_ROWS,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
}

impl StoreError {
    pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
    pub(crate) fn parquet(path: &Path, e: impl std::fmt::Display) -> StoreError {
        StoreError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// The part file of (model, modality, part number) under `run_dir`.
pub fn part_path(run_dir: &Path, model: &str, modality: &str, part: usize) -> PathBuf {
    run_dir
        .join("embeddings")
        .join(model)
        .join(modality)
        .join(format!("part-{part:05}.parquet"))
}

/// The error sidecar of a part; written before the part itself, merged into `errors.parquet`.
pub fn part_errors_path(run_dir: &Path, model: &str, modality: &str, part: usize) -> PathBuf {
    run_dir
        .join("state")
        .join("errors")
        .join(model)
        .join(modality)
        .join(format!("part-{part:05}.parquet"))
}

/// Writes `manifest.json` atomically.
pub fn write_manifest(run_dir: &Path, manifest: &serde_json::Value) -> Result<(), StoreError> {
    let path = run_dir.join("manifest.json");
    let mut text = serde_json::to_string_pretty(manifest).map_err(|e| StoreError::io(&path, e))?;
    text.push('\n');
    crate::util::write_atomic(&path, text.as_bytes()).map_err(|e| StoreError::io(&path, e))
}
