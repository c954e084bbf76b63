//! `errors.parquet`: every input that could not be processed, with where and why.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use super::StoreError;
use crate::util::{commit_temp, temp_path};

/// One failed input.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRecord {
    pub model: Option<String>,
    pub modality: Option<String>,
    pub id: String,
    pub variant: Option<String>,
    /// `read`, `decode`, `preprocess`, `augment`, `tokenize`.
    pub stage: String,
    /// The file, or `file.parquet#row=N`.
    pub source: String,
    pub reason: String,
}

fn schema() -> Arc<Schema> {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("model", true),
        text("modality", true),
        text("id", false),
        text("variant", true),
        text("stage", false),
        text("source", false),
        text("reason", false),
    ]))
}

/// Writes `records` to `path` atomically (an empty table when there are none, so "no errors"
/// is a file a user can open, not a missing one).
pub fn write_errors(path: &Path, records: &[ErrorRecord]) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    }
    let col = |f: &dyn Fn(&ErrorRecord) -> Option<String>| -> ArrayRef {
        Arc::new(records.iter().map(f).collect::<StringArray>())
    };
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            col(&|r| r.model.clone()),
            col(&|r| r.modality.clone()),
            col(&|r| Some(r.id.clone())),
            col(&|r| r.variant.clone()),
            col(&|r| Some(r.stage.clone())),
            col(&|r| Some(r.source.clone())),
            col(&|r| Some(r.reason.clone())),
        ],
    )
    .map_err(|e| StoreError::parquet(path, e))?;
    let temp = temp_path(path);
    let file = File::create(&temp).map_err(|e| StoreError::io(&temp, e))?;
    let mut writer =
        ArrowWriter::try_new(file, schema(), None).map_err(|e| StoreError::parquet(&temp, e))?;
    writer
        .write(&batch)
        .map_err(|e| StoreError::parquet(&temp, e))?;
    writer.close().map_err(|e| StoreError::parquet(&temp, e))?;
    commit_temp(&temp, path).map_err(|e| StoreError::io(path, e))
}

/// Reads an error table back (used to merge part sidecars into `errors.parquet`).
pub fn read_errors(path: &Path) -> Result<Vec<ErrorRecord>, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| StoreError::parquet(path, e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| StoreError::parquet(path, e))?;
        let get = |name: &str| -> Result<StringArray, StoreError> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                .ok_or_else(|| StoreError::parquet(path, format!("no text column {name}")))
        };
        let (model, modality, id, variant, stage, source, reason) = (
            get("model")?,
            get("modality")?,
            get("id")?,
            get("variant")?,
            get("stage")?,
            get("source")?,
            get("reason")?,
        );
        use arrow_array::Array;
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        for i in 0..batch.num_rows() {
            out.push(ErrorRecord {
                model: opt(&model, i),
                modality: opt(&modality, i),
                id: id.value(i).to_string(),
                variant: opt(&variant, i),
                stage: stage.value(i).to_string(),
                source: source.value(i).to_string(),
                reason: reason.value(i).to_string(),
            });
        }
    }
    Ok(out)
}
