//! Embedding part files.
//!
//! Schema (DESIGN.md's contract): `model`, `modality`, `id`, `variant`, `label` (nullable),
//! `text` (nullable), `embedding` as `fixed_size_list<float32>[D]`, L2-normalised; plus `noise`
//! and `noise_level`, so robustness plots need no string parsing, and `item_id` (nullable).
//!
//! Several captions per image: a caption row's `id` is the item id when the item has one
//! caption (as before), and `<item id>#<k>` (k from 0, in dataset order) when it has several
//! ([`caption_id`]); every caption row's `item_id` names its image, so retrieval finds a
//! caption's positive without parsing ids. Image rows carry their own id in `item_id`;
//! prompt rows have none (null). Parquet has no fixed-size
//! list: the arrow schema in the footer (`ARROW:schema`) restores it for pyarrow and polars;
//! DuckDB reads `FLOAT[]`. Key-value metadata records the dimension and normalisation.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, Float64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::StoreError;
use crate::encode::Scoring;
use crate::util::TempFile;

/// Rows buffered before a row group is flushed: bounds memory at about
/// `ROW_GROUP_ROWS × D × 4` bytes per open part.
const ROW_GROUP_ROWS: usize = 4096;

/// One embedding row's metadata.
#[derive(Debug, Clone)]
pub struct EmbeddingRow<'a> {
    pub id: &'a str,
    pub variant: &'a str,
    pub label: Option<&'a str>,
    pub text: Option<&'a str>,
    pub noise: &'a str,
    pub noise_level: f64,
    /// The image this row belongs to (image and caption rows); `None` for prompts.
    pub item_id: Option<&'a str>,
}

#[cfg(test)]
impl<'a> EmbeddingRow<'a> {
    /// A clean row with no label, caption or item: what store tests write.
    pub(crate) fn clean(id: &'a str) -> EmbeddingRow<'a> {
        EmbeddingRow {
            id,
            variant: "clean",
            label: None,
            text: None,
            noise: "none",
            noise_level: 0.0,
            item_id: None,
        }
    }
}

/// The `id` of caption `k` of an item with `count` captions: the item id when it has one
/// caption, `<item id>#<k>` when it has several.
pub fn caption_id(item_id: &str, k: usize, count: usize) -> std::borrow::Cow<'_, str> {
    if count == 1 {
        item_id.into()
    } else {
        format!("{item_id}#{k}").into()
    }
}

/// Streams rows into one part file; [`PartWriter::finish`] makes it visible.
pub struct PartWriter {
    path: PathBuf,
    temp: TempFile,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    model: String,
    modality: String,
    dim: usize,
    pending: Pending,
    rows: usize,
}

#[derive(Default)]
struct Pending {
    id: Vec<String>,
    variant: Vec<String>,
    label: Vec<Option<String>>,
    text: Vec<Option<String>>,
    noise: Vec<String>,
    level: Vec<f64>,
    item_id: Vec<Option<String>>,
    values: Vec<f32>,
}

/// The arrow schema of an embedding part with dimension `dim`. The model's scoring, when
/// given, goes into the key-value metadata (`clipflow.scoring`, `clipflow.logit_scale`,
/// `clipflow.logit_bias`), so every part says how its model turns cosines into probabilities.
pub fn schema(dim: usize, model: &str, scoring: Option<&Scoring>) -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let mut metadata: std::collections::HashMap<String, String> = [
        ("clipflow.embedding_dim".to_string(), dim.to_string()),
        ("clipflow.normalized".to_string(), "l2".to_string()),
        ("clipflow.model".to_string(), model.to_string()),
        ("clipflow.version".to_string(), crate::VERSION.to_string()),
    ]
    .into_iter()
    .collect();
    if let Some(s) = scoring {
        metadata.extend(super::scoring::metadata_pairs(s));
    }
    Arc::new(
        Schema::new(vec![
            Field::new("model", DataType::Utf8, false),
            Field::new("modality", DataType::Utf8, false),
            Field::new("id", DataType::Utf8, false),
            Field::new("variant", DataType::Utf8, false),
            Field::new("label", DataType::Utf8, true),
            Field::new("text", DataType::Utf8, true),
            Field::new("noise", DataType::Utf8, false),
            Field::new("noise_level", DataType::Float64, false),
            Field::new("item_id", DataType::Utf8, true),
            Field::new(
                "embedding",
                DataType::FixedSizeList(item, dim as i32),
                false,
            ),
        ])
        .with_metadata(metadata),
    )
}

impl PartWriter {
    /// Starts writing the part that will live at `path`.
    pub fn create(
        path: &Path,
        model: &str,
        modality: &str,
        dim: usize,
    ) -> Result<PartWriter, StoreError> {
        Self::create_scored(path, model, modality, dim, None)
    }

    /// As [`PartWriter::create`], recording the model's scoring in the part's metadata.
    pub fn create_scored(
        path: &Path,
        model: &str,
        modality: &str,
        dim: usize,
        scoring: Option<&Scoring>,
    ) -> Result<PartWriter, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        let temp = TempFile::beside(path);
        let file = File::create(&temp).map_err(|e| StoreError::io(&temp, e))?;
        let schema = schema(dim, model, scoring);
        // Vectors do not compress or dictionary-encode usefully; the text columns do.
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_column_dictionary_enabled(
                ColumnPath::from(vec!["embedding".into(), "list".into(), "item".into()]),
                false,
            )
            .set_created_by(format!("clipflow {}", crate::VERSION))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| StoreError::parquet(&temp, e))?;
        // The same keys as file-level key-value metadata, where readers that do not decode the
        // Arrow schema look (DuckDB's parquet_kv_metadata, pyarrow's read_metadata, the parquet
        // crate's file metadata).
        let mut keys: Vec<(&String, &String)> = schema.metadata().iter().collect();
        keys.sort();
        for (k, v) in keys {
            writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                k.clone(),
                v.clone(),
            ));
        }
        Ok(PartWriter {
            path: path.to_path_buf(),
            temp,
            writer,
            schema,
            model: model.to_string(),
            modality: modality.to_string(),
            dim,
            pending: Pending::default(),
            rows: 0,
        })
    }

    /// Appends one row; `embedding.len()` must be the part's dimension.
    pub fn push(&mut self, row: &EmbeddingRow<'_>, embedding: &[f32]) -> Result<(), StoreError> {
        if embedding.len() != self.dim {
            return Err(StoreError::parquet(
                &self.path,
                format!(
                    "embedding of {} values in a part of dimension {}",
                    embedding.len(),
                    self.dim
                ),
            ));
        }
        let p = &mut self.pending;
        p.id.push(row.id.to_string());
        p.variant.push(row.variant.to_string());
        p.label.push(row.label.map(str::to_string));
        p.text.push(row.text.map(str::to_string));
        p.noise.push(row.noise.to_string());
        p.level.push(row.noise_level);
        p.item_id.push(row.item_id.map(str::to_string));
        p.values.extend_from_slice(embedding);
        self.rows += 1;
        if p.id.len() >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let p = std::mem::take(&mut self.pending);
        let n = p.id.len();
        if n == 0 {
            return Ok(());
        }
        let repeat = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
        let strings = |v: Vec<String>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let optional = |v: Vec<Option<String>>| -> ArrayRef {
            let mut b = StringBuilder::new();
            for s in v {
                b.append_option(s);
            }
            Arc::new(b.finish())
        };
        let mut level = Float64Builder::with_capacity(n);
        level.append_slice(&p.level);
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let mut list = FixedSizeListBuilder::with_capacity(
            Float32Builder::with_capacity(n * self.dim),
            self.dim as i32,
            n,
        )
        .with_field(item);
        for row in p.values.chunks_exact(self.dim) {
            list.values().append_slice(row);
            list.append(true);
        }
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                repeat(&self.model),
                repeat(&self.modality),
                strings(p.id),
                strings(p.variant),
                optional(p.label),
                optional(p.text),
                strings(p.noise),
                Arc::new(level.finish()),
                optional(p.item_id),
                Arc::new(list.finish()),
            ],
        )
        .map_err(|e| StoreError::parquet(&self.path, e))?;
        self.writer
            .write(&batch)
            .map_err(|e| StoreError::parquet(&self.temp, e))?;
        self.writer
            .flush()
            .map_err(|e| StoreError::parquet(&self.temp, e))?;
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Flushes, closes and renames the part into place; returns its row count.
    pub fn finish(mut self) -> Result<usize, StoreError> {
        self.flush()?;
        self.writer
            .close()
            .map_err(|e| StoreError::parquet(&self.temp, e))?;
        self.temp
            .commit(&self.path)
            .map_err(|e| StoreError::io(&self.path, e))?;
        Ok(self.rows)
    }
}

/// Row count of a finished part, from its footer (no data read).
pub fn read_part_rows(path: &Path) -> Result<usize, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| StoreError::parquet(path, e))?;
    Ok(builder.metadata().file_metadata().num_rows() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{cast::AsArray, types::Float32Type, Array};

    #[test]
    fn an_unfinished_part_leaves_no_temporary() {
        // A writer abandoned half-way (its caller failed on a write error) removes its file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-00000.parquet");
        let mut w = PartWriter::create(&path, "m", "image", 2).unwrap();
        let row = EmbeddingRow::clean("a");
        w.push(&row, &[1.0, 0.0]).unwrap();
        w.flush().unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the temporary"
        );
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn part_round_trips_with_fixed_size_list_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("embeddings/m/image/part-00000.parquet");
        let mut w = PartWriter::create(&path, "m", "image", 3).unwrap();
        for i in 0..5000 {
            let id = format!("id{i}");
            w.push(
                &EmbeddingRow {
                    id: &id,
                    variant: "clean",
                    label: (i % 2 == 0).then_some("even"),
                    text: None,
                    noise: "none",
                    noise_level: 0.0,
                    item_id: Some(&id),
                },
                &[1.0, 0.0, i as f32],
            )
            .unwrap();
        }
        assert!(!path.exists(), "a part is invisible until finished");
        assert_eq!(w.finish().unwrap(), 5000);
        assert_eq!(read_part_rows(&path).unwrap(), 5000);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary left behind");

        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let schema = builder.schema().clone();
        assert_eq!(schema.metadata()["clipflow.embedding_dim"], "3");
        let file_kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert!(file_kv
            .iter()
            .any(|kv| kv.key == "clipflow.embedding_dim" && kv.value.as_deref() == Some("3")));
        assert!(matches!(
            schema.field_with_name("embedding").unwrap().data_type(),
            DataType::FixedSizeList(_, 3)
        ));
        let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let last = batches.last().unwrap();
        let list = last
            .column_by_name("embedding")
            .unwrap()
            .as_fixed_size_list();
        let values = list.value(list.len() - 1);
        assert_eq!(values.as_primitive::<Float32Type>().value(2), 4999.0);
        assert!(last
            .column_by_name("label")
            .unwrap()
            .is_null(list.len() - 1));
        let item_id = last.column_by_name("item_id").unwrap().as_string::<i32>();
        assert_eq!(item_id.value(list.len() - 1), "id4999");
    }

    #[test]
    fn caption_ids_keep_the_item_id_for_one_caption() {
        assert_eq!(caption_id("img7", 0, 1), "img7");
        assert_eq!(caption_id("img7", 0, 5), "img7#0");
        assert_eq!(caption_id("img7", 4, 5), "img7#4");
    }
}
