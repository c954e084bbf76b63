//! Long-format result tables (`tables/<name>.parquet`, plus a Markdown copy for reading in a
//! terminal or a pull request). Columns are named for what they hold (`model`, `variant`,
//! `metric`, `k`, `value`, ...), so polars/pandas/DuckDB users can pivot them as they like.
//!
//! Per-item tables (ranks, assignments, coordinates) grow with the dataset, so the analysis
//! streams them through a [`TableSink`]: each chunk of rows goes to the Parquet writer as it
//! comes, and only the first rows are kept for the Markdown copy and the report.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use super::StoreError;
use crate::util::{write_atomic, TempFile};

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Text(Vec<Option<String>>),
    Float(Vec<Option<f64>>),
    Int(Vec<Option<i64>>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Text(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Int(v) => v.len(),
        }
    }

    /// Cell `i` as text at full precision (`None` for a null or a row past the end): how
    /// attribute values are compared whatever type their file stored them as.
    pub fn cell_text(&self, i: usize) -> Option<String> {
        match self {
            Column::Text(v) => v.get(i).cloned().flatten(),
            Column::Float(v) => v.get(i).copied().flatten().map(|x| x.to_string()),
            Column::Int(v) => v.get(i).copied().flatten().map(|x| x.to_string()),
        }
    }

    fn cell(&self, i: usize) -> String {
        match self {
            Column::Text(v) => v[i].clone().unwrap_or_default(),
            Column::Float(v) => v[i].map(|x| format!("{x:.4}")).unwrap_or_default(),
            Column::Int(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
        }
    }
}

/// A named table, built column by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<(String, Column)>,
}

impl Table {
    pub fn new(name: &str) -> Table {
        Table {
            name: name.to_string(),
            columns: Vec::new(),
        }
    }

    pub fn text<S: Into<String>>(
        mut self,
        name: &str,
        values: impl IntoIterator<Item = S>,
    ) -> Table {
        self.columns.push((
            name.into(),
            Column::Text(values.into_iter().map(|s| Some(s.into())).collect()),
        ));
        self
    }

    pub fn float(mut self, name: &str, values: impl IntoIterator<Item = f64>) -> Table {
        self.columns.push((
            name.into(),
            Column::Float(values.into_iter().map(Some).collect()),
        ));
        self
    }

    pub fn int(mut self, name: &str, values: impl IntoIterator<Item = i64>) -> Table {
        self.columns.push((
            name.into(),
            Column::Int(values.into_iter().map(Some).collect()),
        ));
        self
    }

    pub fn column(mut self, name: &str, column: Column) -> Table {
        self.columns.push((name.into(), column));
        self
    }

    /// A text column by name.
    pub fn texts(&self, name: &str) -> Option<&[Option<String>]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| match c {
                Column::Text(v) => Some(v.as_slice()),
                _ => None,
            })
    }

    /// A float column by name.
    pub fn floats(&self, name: &str) -> Option<&[Option<f64>]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| match c {
                Column::Float(v) => Some(v.as_slice()),
                _ => None,
            })
    }

    /// An integer column by name.
    pub fn ints(&self, name: &str) -> Option<&[Option<i64>]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| match c {
                Column::Int(v) => Some(v.as_slice()),
                _ => None,
            })
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map(|(_, c)| c.len()).unwrap_or(0)
    }

    /// Appends the rows of `other` (same column names and kinds, in the same order).
    pub fn extend(&mut self, other: Table) -> Result<(), String> {
        if self.columns.is_empty() {
            self.columns = other.columns;
            return Ok(());
        }
        if self.columns.len() != other.columns.len() {
            return Err(format!("table {}: column count differs", self.name));
        }
        for ((na, a), (nb, b)) in self.columns.iter_mut().zip(other.columns) {
            if *na != nb {
                return Err(format!("table {}: column {na} vs {nb}", self.name));
            }
            match (a, b) {
                (Column::Text(a), Column::Text(b)) => a.extend(b),
                (Column::Float(a), Column::Float(b)) => a.extend(b),
                (Column::Int(a), Column::Int(b)) => a.extend(b),
                _ => return Err(format!("table {}: column {na} changes kind", self.name)),
            }
        }
        Ok(())
    }

    /// The first `n` rows.
    pub fn head(&self, n: usize) -> Table {
        let n = n.min(self.rows());
        Table {
            name: self.name.clone(),
            columns: self
                .columns
                .iter()
                .map(|(name, c)| {
                    let c = match c {
                        Column::Text(v) => Column::Text(v[..n].to_vec()),
                        Column::Float(v) => Column::Float(v[..n].to_vec()),
                        Column::Int(v) => Column::Int(v[..n].to_vec()),
                    };
                    (name.clone(), c)
                })
                .collect(),
        }
    }

    /// The table as GitHub-flavoured Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let header: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        s.push_str(&format!("| {} |\n", header.join(" | ")));
        s.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
        for i in 0..self.rows() {
            let cells: Vec<String> = self
                .columns
                .iter()
                .map(|(_, c)| c.cell(i).replace('|', "\\|").replace('\n', " "))
                .collect();
            s.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        s
    }
}

/// Writes `table` as `dir/<name>.parquet` and `dir/<name>.md`, atomically.
pub fn write_table(dir: &Path, table: &Table) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    write_parquet_table(&dir.join(format!("{}.parquet", table.name)), table)?;
    let md = dir.join(format!("{}.md", table.name));
    write_atomic(
        &md,
        format!("# {}\n\n{}", table.name, table.to_markdown()).as_bytes(),
    )
    .map_err(|e| StoreError::io(&md, e))
}

/// The Arrow schema and arrays of `table` (every column nullable).
fn to_batch(path: &Path, table: &Table) -> Result<RecordBatch, StoreError> {
    let n = table.rows();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, col) in &table.columns {
        if col.len() != n {
            return Err(StoreError::parquet(
                path,
                format!(
                    "table {}: column {name} has {} rows, not {n}",
                    table.name,
                    col.len()
                ),
            ));
        }
        let (dt, array): (DataType, ArrayRef) = match col {
            Column::Text(v) => (DataType::Utf8, Arc::new(StringArray::from(v.clone()))),
            Column::Float(v) => (DataType::Float64, Arc::new(Float64Array::from(v.clone()))),
            Column::Int(v) => (DataType::Int64, Arc::new(Int64Array::from(v.clone()))),
        };
        fields.push(Field::new(name, dt, true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, arrays).map_err(|e| StoreError::parquet(path, e))
}

/// Writes `table` as Parquet at `path` only (no Markdown copy: for per-item tables such as the
/// attributes, which may have millions of rows).
pub fn write_parquet_table(path: &Path, table: &Table) -> Result<(), StoreError> {
    let batch = to_batch(path, table)?;
    let temp = TempFile::beside(path);
    let file = File::create(&temp).map_err(|e| StoreError::io(&temp, e))?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), None)
        .map_err(|e| StoreError::parquet(&temp, e))?;
    w.write(&batch).map_err(|e| StoreError::parquet(&temp, e))?;
    w.close().map_err(|e| StoreError::parquet(&temp, e))?;
    temp.commit(path).map_err(|e| StoreError::io(path, e))
}

/// Reads a Parquet table back: text columns (and booleans, as `true`/`false`) become text,
/// integers `Int`, floats `Float`; other types are read as their text rendering.
pub fn read_table(path: &Path) -> Result<Table, StoreError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| StoreError::parquet(path, e))?;
    table_from_batches(path, reader)
}

/// The batches of a Parquet reader as one [`Table`] named after the file.
fn table_from_batches(
    path: &Path,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
) -> Result<Table, StoreError> {
    use arrow_array::Array;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut table: Option<Table> = None;
    for batch in reader {
        let batch = batch.map_err(|e| StoreError::parquet(path, e))?;
        let mut part = Table::new(&name);
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let dt = field.data_type();
            let column = if dt.is_integer() {
                let c = arrow_cast::cast(col, &DataType::Int64)
                    .map_err(|e| StoreError::parquet(path, e))?;
                let c = c.as_any().downcast_ref::<Int64Array>().cloned();
                Column::Int(c.map(|c| c.iter().collect()).unwrap_or_default())
            } else if dt.is_floating() {
                let c = arrow_cast::cast(col, &DataType::Float64)
                    .map_err(|e| StoreError::parquet(path, e))?;
                let c = c.as_any().downcast_ref::<Float64Array>().cloned();
                Column::Float(c.map(|c| c.iter().collect()).unwrap_or_default())
            } else {
                let c = arrow_cast::cast(col, &DataType::Utf8).map_err(|e| {
                    StoreError::parquet(path, format!("column {}: {e}", field.name()))
                })?;
                let c = c.as_any().downcast_ref::<StringArray>().cloned();
                Column::Text(
                    c.map(|c| c.iter().map(|v| v.map(str::to_string)).collect())
                        .unwrap_or_default(),
                )
            };
            if column.len() != col.len() {
                return Err(StoreError::parquet(
                    path,
                    format!("column {}: unreadable values", field.name()),
                ));
            }
            part = part.column(field.name(), column);
        }
        match &mut table {
            None => table = Some(part),
            Some(t) => t.extend(part).map_err(|m| StoreError::parquet(path, m))?,
        }
    }
    Ok(table.unwrap_or_else(|| Table::new(&name)))
}

/// The first `max_rows` rows of a Parquet table and its total row count (from the footer):
/// what the report shows of a per-item table without reading a million rows.
pub fn read_table_head(path: &Path, max_rows: usize) -> Result<(Table, usize), StoreError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| StoreError::parquet(path, e))?;
    let total = builder.metadata().file_metadata().num_rows().max(0) as usize;
    let reader = builder
        .with_limit(max_rows)
        .with_batch_size(max_rows.clamp(1, 8192))
        .build()
        .map_err(|e| StoreError::parquet(path, e))?;
    let table = table_from_batches(path, reader)?;
    Ok((table, total))
}

/// Rows of the Markdown copy of a streamed table; the Parquet file holds them all.
pub const MARKDOWN_ROWS: usize = 1000;

/// Rows buffered into one Parquet row group of a streamed table.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Tables written as their rows come: `append` chunks of a table by name; `finish` closes every
/// file (temporary, then renamed) and writes its Markdown copy from the first rows. Memory is
/// one row group per open table, whatever the total.
pub struct TableSink {
    dir: PathBuf,
    open: BTreeMap<String, OpenTable>,
}

struct OpenTable {
    temp: TempFile,
    path: PathBuf,
    writer: ArrowWriter<File>,
    /// Column names and kinds of the first chunk: every later chunk must match.
    shape: Vec<(String, std::mem::Discriminant<Column>)>,
    head: Table,
    rows: usize,
}

impl TableSink {
    /// A sink writing `dir/<name>.parquet` and `dir/<name>.md`.
    pub fn new(dir: &Path) -> TableSink {
        TableSink {
            dir: dir.to_path_buf(),
            open: BTreeMap::new(),
        }
    }

    /// Appends the rows of `table` to the table of its name; a chunk without rows is ignored.
    pub fn append(&mut self, table: Table) -> Result<(), StoreError> {
        if table.rows() == 0 {
            return Ok(());
        }
        let shape: Vec<(String, std::mem::Discriminant<Column>)> = table
            .columns
            .iter()
            .map(|(n, c)| (n.clone(), std::mem::discriminant(c)))
            .collect();
        if !self.open.contains_key(&table.name) {
            std::fs::create_dir_all(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
            let path = self.dir.join(format!("{}.parquet", table.name));
            let temp = TempFile::beside(&path);
            let batch = to_batch(&path, &table)?;
            let file = File::create(&temp).map_err(|e| StoreError::io(&temp, e))?;
            let props = parquet::file::properties::WriterProperties::builder()
                .set_max_row_group_size(ROW_GROUP_ROWS)
                .build();
            let writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
                .map_err(|e| StoreError::parquet(&temp, e))?;
            self.open.insert(
                table.name.clone(),
                OpenTable {
                    temp,
                    path,
                    writer,
                    shape: shape.clone(),
                    head: Table::new(&table.name),
                    rows: 0,
                },
            );
        }
        let Some(t) = self.open.get_mut(&table.name) else {
            return Ok(());
        };
        if t.shape != shape {
            return Err(StoreError::parquet(
                &t.path,
                format!(
                    "table {}: a chunk with columns {:?} after chunks with {:?}",
                    table.name,
                    shape.iter().map(|s| &s.0).collect::<Vec<_>>(),
                    t.shape.iter().map(|s| &s.0).collect::<Vec<_>>()
                ),
            ));
        }
        let batch = to_batch(&t.path, &table)?;
        t.writer
            .write(&batch)
            .map_err(|e| StoreError::parquet(&t.temp, e))?;
        if t.head.rows() < MARKDOWN_ROWS {
            let keep = table.head(MARKDOWN_ROWS - t.head.rows());
            t.head
                .extend(keep)
                .map_err(|m| StoreError::parquet(&t.path, m))?;
        }
        t.rows += table.rows();
        Ok(())
    }

    /// Names of the tables appended to so far.
    pub fn names(&self) -> Vec<String> {
        self.open.keys().cloned().collect()
    }

    /// Closes every table; returns the Parquet paths written, by name.
    pub fn finish(self) -> Result<Vec<PathBuf>, StoreError> {
        let mut written = Vec::new();
        for (name, t) in self.open {
            t.writer
                .close()
                .map_err(|e| StoreError::parquet(&t.temp, e))?;
            t.temp
                .commit(&t.path)
                .map_err(|e| StoreError::io(&t.path, e))?;
            let md = self.dir.join(format!("{name}.md"));
            let mut text = format!("# {name}\n\n{}", t.head.to_markdown());
            if t.rows > t.head.rows() {
                text.push_str(&format!(
                    "\n… {} more rows in {name}.parquet ({} in all).\n",
                    t.rows - t.head.rows(),
                    t.rows
                ));
            }
            write_atomic(&md, text.as_bytes()).map_err(|e| StoreError::io(&md, e))?;
            written.push(t.path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_extend_and_render() {
        let mut t = Table::new("recall")
            .text("model", ["a"])
            .int("k", [1])
            .float("value", [0.5]);
        t.extend(
            Table::new("recall")
                .text("model", ["b|c"])
                .int("k", [5])
                .float("value", [0.25]),
        )
        .unwrap();
        assert_eq!(t.rows(), 2);
        let md = t.to_markdown();
        assert!(md.contains("| b\\|c | 5 | 0.2500 |"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        write_table(dir.path(), &t).unwrap();
        assert!(
            dir.path().join("recall.parquet").exists() && dir.path().join("recall.md").exists()
        );
        let back = read_table(&dir.path().join("recall.parquet")).unwrap();
        assert_eq!(back.texts("model").unwrap()[1].as_deref(), Some("b|c"));
        assert_eq!(back.ints("k").unwrap(), &[Some(1), Some(5)]);
        assert_eq!(back.floats("value").unwrap(), &[Some(0.5), Some(0.25)]);
        let bad = Table::new("x").text("a", ["1", "2"]).int("b", [1]);
        assert!(write_table(dir.path(), &bad).is_err());
    }
}
