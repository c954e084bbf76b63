//! Export for Apple's embedding-atlas: one Parquet file per 2-D map that
//! `embedding-atlas FILE --x x --y y --neighbors neighbors --text caption --image image` opens
//! as it is.
//!
//! The format is embedding-atlas's own (read from its source, `packages/backend/embedding_atlas`
//! and `packages/viewer`):
//!
//! - `x`, `y`: the projection coordinates (`--x`, `--y`);
//! - `neighbors`: a struct `{ids: list<int64>, distances: list<float>}` per row, nearest first
//!   (`--neighbors`), as embedding-atlas computes it itself (umap-learn's `nearest_neighbors`:
//!   the row itself first at distance 0, then its nearest others). The ids are **zero-based
//!   row numbers of this file**, not item ids: the command line names rows by a
//!   `__row_index__` column it adds (`range(n)`), looks a row's neighbours up by that number,
//!   matches them with a JavaScript `Map` keyed by it (string ids would find nothing to draw),
//!   and feeds them to umap-learn's `smooth_knn_dist` for its PageRank, which skips the first
//!   column as the row itself. The item ids are in the `id` column;
//! - `image`: a struct `{bytes: binary, path: string}` (the Hugging Face `Image` layout
//!   embedding-atlas displays), present when the study read images;
//! - `id`, `label`, `caption`: the item's, for the tooltip and search (`--text caption`).
//!
//! Rows are streamed in row groups of [`ROW_GROUP_ROWS`], so memory is bounded by one group's
//! images whatever the map's size; the file appears under its name only when complete.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Float32Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::StoreError;
use crate::util::TempFile;

/// Rows per row group: bounds memory at one group's image bytes.
pub const ROW_GROUP_ROWS: usize = 256;

/// One point of an exported map.
#[derive(Debug, Clone)]
pub struct AtlasRow<'a> {
    pub id: &'a str,
    pub x: f64,
    pub y: f64,
    pub label: Option<&'a str>,
    pub caption: Option<&'a str>,
    /// Row numbers in this file, nearest first: the row itself, then its nearest others.
    pub neighbor_rows: &'a [usize],
    /// Their distances (same length).
    pub neighbor_distances: &'a [f32],
    /// The image file's bytes and name, when the study read images.
    pub image: Option<(&'a [u8], &'a str)>,
}

/// Streams rows into one embedding-atlas file; [`AtlasWriter::finish`] makes it visible.
pub struct AtlasWriter {
    path: PathBuf,
    temp: TempFile,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    images: bool,
    rows: usize,
    pending: Batch,
}

fn neighbor_fields() -> Fields {
    Fields::from(vec![
        Field::new(
            "ids",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        ),
        Field::new(
            "distances",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
    ])
}

fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ])
}

/// The file's schema; `images` adds the `image` column.
pub fn atlas_schema(images: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("x", DataType::Float64, false),
        Field::new("y", DataType::Float64, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("caption", DataType::Utf8, true),
        Field::new("neighbors", DataType::Struct(neighbor_fields()), false),
    ];
    if images {
        fields.push(Field::new("image", DataType::Struct(image_fields()), true));
    }
    Arc::new(Schema::new(fields))
}

struct Batch {
    id: StringBuilder,
    x: Float64Builder,
    y: Float64Builder,
    label: StringBuilder,
    caption: StringBuilder,
    ids: ListBuilder<Int64Builder>,
    distances: ListBuilder<Float32Builder>,
    bytes: BinaryBuilder,
    image_path: StringBuilder,
    image_valid: Vec<bool>,
    len: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            id: StringBuilder::new(),
            x: Float64Builder::new(),
            y: Float64Builder::new(),
            label: StringBuilder::new(),
            caption: StringBuilder::new(),
            ids: ListBuilder::new(Int64Builder::new()),
            distances: ListBuilder::new(Float32Builder::new()),
            bytes: BinaryBuilder::new(),
            image_path: StringBuilder::new(),
            image_valid: Vec::new(),
            len: 0,
        }
    }
}

impl AtlasWriter {
    /// Starts `path` (written to a temporary beside it until [`AtlasWriter::finish`]).
    pub fn create(path: &Path, images: bool) -> Result<AtlasWriter, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        let schema = atlas_schema(images);
        let temp = TempFile::beside(path);
        let file = File::create(&temp).map_err(|e| StoreError::io(&temp, e))?;
        // Images are already compressed: zstd only helps the other columns.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(Default::default()))
            .set_max_row_group_size(ROW_GROUP_ROWS)
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| StoreError::parquet(&temp, e))?;
        Ok(AtlasWriter {
            path: path.to_path_buf(),
            temp,
            writer,
            schema,
            images,
            rows: 0,
            pending: Batch::new(),
        })
    }

    /// Appends one row. Errors on non-finite coordinates or distances, neighbour lists of
    /// different lengths, or an image given to a file without an image column.
    pub fn push(&mut self, row: &AtlasRow<'_>) -> Result<(), StoreError> {
        let bad = |m: String| StoreError::parquet(&self.path, format!("row {}: {m}", self.rows));
        if !row.x.is_finite() || !row.y.is_finite() {
            return Err(bad(format!(
                "{}: non-finite coordinates ({}, {})",
                row.id, row.x, row.y
            )));
        }
        if row.neighbor_rows.len() != row.neighbor_distances.len() {
            return Err(bad(format!(
                "{}: {} neighbour ids but {} distances",
                row.id,
                row.neighbor_rows.len(),
                row.neighbor_distances.len()
            )));
        }
        if row.neighbor_distances.iter().any(|d| !d.is_finite()) {
            return Err(bad(format!(
                "{}: a neighbour distance is not finite",
                row.id
            )));
        }
        if row.image.is_some() && !self.images {
            return Err(bad(format!(
                "{}: an image for a file without an image column",
                row.id
            )));
        }
        let b = &mut self.pending;
        b.id.append_value(row.id);
        b.x.append_value(row.x);
        b.y.append_value(row.y);
        b.label.append_option(row.label);
        b.caption.append_option(row.caption);
        for &r in row.neighbor_rows {
            b.ids.values().append_value(r as i64);
        }
        b.ids.append(true);
        b.distances.values().append_slice(row.neighbor_distances);
        b.distances.append(true);
        match row.image {
            Some((bytes, path)) => {
                b.bytes.append_value(bytes);
                b.image_path.append_value(path);
                b.image_valid.push(true);
            }
            None => {
                b.bytes.append_null();
                b.image_path.append_null();
                b.image_valid.push(false);
            }
        }
        b.len += 1;
        self.rows += 1;
        if b.len == ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.len == 0 {
            return Ok(());
        }
        let mut b = std::mem::replace(&mut self.pending, Batch::new());
        let neighbors = StructArray::new(
            neighbor_fields(),
            vec![
                Arc::new(b.ids.finish()) as ArrayRef,
                Arc::new(b.distances.finish()),
            ],
            None,
        );
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(b.id.finish()),
            Arc::new(b.x.finish()),
            Arc::new(b.y.finish()),
            Arc::new(b.label.finish()),
            Arc::new(b.caption.finish()),
            Arc::new(neighbors),
        ];
        if self.images {
            let valid = arrow_buffer::NullBuffer::from(std::mem::take(&mut b.image_valid));
            columns.push(Arc::new(StructArray::new(
                image_fields(),
                vec![
                    Arc::new(b.bytes.finish()) as ArrayRef,
                    Arc::new(b.image_path.finish()),
                ],
                Some(valid),
            )));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| StoreError::parquet(&self.temp, e))?;
        self.writer
            .write(&batch)
            .map_err(|e| StoreError::parquet(&self.temp, e))?;
        self.writer
            .flush()
            .map_err(|e| StoreError::parquet(&self.temp, e))
    }

    /// Writes the footer and renames the file into place; returns the rows written.
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
