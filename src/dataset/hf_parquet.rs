//! Hugging Face-style Parquet: an image column (`{bytes, path}` struct, binary, or path string)
//! beside caption, label and id columns, in one file, several files or a glob.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::arrow::ProjectionMask;

use super::files::{FileAccess, DEFAULT_MAX_FILE_BYTES};
use super::listing::{ItemTable, NewItem};
use super::{DatasetError, ImageRef};
use crate::config::DatasetConfig;

/// One Parquet file of the dataset.
#[derive(Debug, Clone)]
pub struct ParquetSource {
    pub path: PathBuf,
    pub bytes: u64,
    /// Index of the image column among the file's top-level columns.
    image_column: usize,
    image_kind: ImageColumnKind,
    /// Rows per row group, for finding the group of a row.
    row_group_rows: Vec<u64>,
    /// How image paths in the file are read: confined to the file's folder.
    files: FileAccess,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ImageColumnKind {
    /// `{bytes, path}` as written by Hugging Face `datasets`.
    Struct,
    /// Encoded image bytes.
    Binary,
    /// A path, relative to the Parquet file's folder unless absolute, and confined to that
    /// folder unless `dataset.allow_paths_outside`.
    Path,
}

/// Expands the configured paths and globs into a sorted, de-duplicated list of files.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>, DatasetError> {
    let mut files = Vec::new();
    for pattern in patterns {
        if pattern.contains(['*', '?', '[']) {
            let matches = glob::glob(pattern).map_err(|e| DatasetError::BadGlob {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            let before = files.len();
            files.extend(matches.filter_map(Result::ok).filter(|p| p.is_file()));
            if files.len() == before {
                return Err(DatasetError::NoMatch {
                    pattern: pattern.clone(),
                });
            }
        } else {
            let p = PathBuf::from(pattern);
            if p.is_dir() {
                let mut inside: Vec<PathBuf> = std::fs::read_dir(&p)
                    .map_err(|e| DatasetError::Io {
                        path: p.clone(),
                        message: e.to_string(),
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|e| e == "parquet") && f.is_file())
                    .collect();
                if inside.is_empty() {
                    return Err(DatasetError::NoMatch {
                        pattern: format!("{pattern}/*.parquet"),
                    });
                }
                inside.sort();
                files.extend(inside);
            } else if p.is_file() {
                files.push(p);
            } else {
                return Err(DatasetError::NotFound {
                    path: pattern.clone(),
                });
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Lists every row of every file as an item, reading only the id, label, caption, group and
/// attribute columns. With `group_by`, rows that share the column's value become one item
/// (the first row's image and label, every row's captions).
pub fn list(
    files: &[PathBuf],
    config: &DatasetConfig,
) -> Result<(ItemTable, Vec<ParquetSource>, Vec<String>), DatasetError> {
    let image_name = config.image_column.as_deref().unwrap_or("image");
    if let (Some(g), Some(id)) = (&config.group_by, &config.id_column) {
        if g != id {
            return Err(DatasetError::Config {
                key: "id_column",
                message: format!(
                    "with group_by the item id is the `{g}` value; leave id_column unset"
                ),
            });
        }
    }
    let id_name = config.group_by.as_deref().or(config.id_column.as_deref());
    let stems: Vec<String> = files.iter().map(|p| stem_of(p)).collect();
    let mut table = ItemTable::new(config.attribute_columns.len(), stems);
    let mut rows = 0usize;
    for path in files {
        rows += open_builder(path)?
            .metadata()
            .file_metadata()
            .num_rows()
            .max(0) as usize;
    }
    table.reserve(rows, id_name.is_some());
    let mut sources = Vec::new();
    for (file_index, path) in files.iter().enumerate() {
        let builder = open_builder(path)?;
        let schema = builder.schema().clone();
        let (image_column, image_kind) = image_column(path, &schema, image_name)?;
        let meta = builder.metadata().clone();
        let row_group_rows: Vec<u64> = meta
            .row_groups()
            .iter()
            .map(|rg| rg.num_rows() as u64)
            .collect();

        let id_key = if config.group_by.is_some() {
            "group_by"
        } else {
            "id_column"
        };
        let wanted = [
            (id_key, id_name),
            ("label_column", config.label_column.as_deref()),
            ("caption_column", config.caption_column.as_deref()),
        ];
        let mut roots = Vec::new();
        for (key, name) in wanted {
            if let Some(name) = name {
                let idx = find_column(path, &schema, key, name)?;
                check_text_type(path, &schema, key, idx)?;
                roots.push(idx);
            }
        }
        for name in &config.attribute_columns {
            let idx = find_column(path, &schema, "attribute_columns", name)?;
            check_text_type(path, &schema, "attribute_columns", idx)?;
            roots.push(idx);
        }
        let class_names = hf_class_names(&schema, config.label_column.as_deref());

        let mut row: u64 = 0;
        let mut push_rows = |table: &mut ItemTable, n: usize, cols: &Columns| {
            let mut captions: Vec<&str> = Vec::new();
            let mut attributes: Vec<Option<&str>> = Vec::new();
            for i in 0..n {
                // A null id falls back to the row's default id; a null group has no image.
                let fallback;
                let id = match &cols.id {
                    Some(c) => match c.get(i) {
                        Some(v) => Some(v),
                        None if config.group_by.is_some() => {
                            return Err(DatasetError::Row {
                                path: path.clone(),
                                row,
                                message: format!(
                                    "dataset.group_by: `{}` is null",
                                    id_name.unwrap_or_default()
                                ),
                            })
                        }
                        None => {
                            fallback = format!("{}:{row}", stem_of(path));
                            Some(fallback.as_str())
                        }
                    },
                    None => None,
                };
                captions.clear();
                if let Some(c) = &cols.caption {
                    c.extend_into(i, &mut captions);
                }
                attributes.clear();
                attributes.extend(cols.attributes.iter().map(|c| c.get(i)));
                table
                    .push(NewItem {
                        id,
                        label: cols.label.as_ref().and_then(|c| c.get(i)),
                        captions: &captions,
                        image: ImageRef::ParquetRow {
                            file: file_index,
                            row,
                        },
                        attributes: &attributes,
                    })
                    .map_err(|message| DatasetError::Row {
                        path: path.clone(),
                        row,
                        message,
                    })?;
                row += 1;
            }
            Ok(())
        };
        if roots.is_empty() {
            let n = meta.file_metadata().num_rows() as usize;
            push_rows(&mut table, n, &Columns::default())?;
        } else {
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            let reader = builder
                .with_projection(mask)
                .with_batch_size(8192)
                .build()
                .map_err(|e| parquet_error(path, e))?;
            let mut reader = reader;
            while let Some(batch) =
                no_panic(|| reader.next()).map_err(|m| parquet_error(path, m))?
            {
                let batch = batch.map_err(|e| parquet_error(path, e))?;
                let cols = Columns::from_batch(&batch, config, id_name, &class_names, path)?;
                push_rows(&mut table, batch.num_rows(), &cols)?;
            }
        }
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let files = FileAccess::new(
            folder,
            config.allow_paths_outside,
            config.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES),
        )
        .map_err(|e| DatasetError::Io {
            path: folder.to_path_buf(),
            message: e.to_string(),
        })?;
        sources.push(ParquetSource {
            path: path.clone(),
            bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            image_column,
            image_kind,
            row_group_rows,
            files,
        });
    }
    let mut notes = Vec::new();
    if let Some(column) = &config.group_by {
        let rows = table.rows();
        let (grouped, conflicts) = table.grouped();
        table = grouped;
        notes.push(format!(
            "dataset.group_by: {rows} rows grouped into {} items by `{column}`",
            table.rows()
        ));
        if let Some((count, example)) = conflicts {
            notes.push(format!(
                "dataset.group_by: {count} item(s) have rows with different labels (e.g. `{example}`); the first row's label is used"
            ));
        }
    }
    table.finish();
    Ok((table, sources, notes))
}

/// Reads the image bytes of `(slot, file, row)` requests, one row group at a time, selecting
/// only the requested rows. Returns `(slot, bytes or reason)` for every request.
pub fn fetch_rows(sources: &[ParquetSource], requests: &[(usize, usize, u64)]) -> Vec<FetchedCell> {
    // file → row group → [(row within group, slot)]
    let mut plan: BTreeMap<usize, BTreeMap<usize, Vec<(u64, usize)>>> = BTreeMap::new();
    let mut out = Vec::with_capacity(requests.len());
    for &(slot, file, row) in requests {
        let Some(src) = sources.get(file) else {
            out.push((slot, Err(format!("internal: no parquet file #{file}"))));
            continue;
        };
        let mut start = 0u64;
        let mut found = false;
        for (g, &n) in src.row_group_rows.iter().enumerate() {
            if row < start + n {
                plan.entry(file)
                    .or_default()
                    .entry(g)
                    .or_default()
                    .push((row - start, slot));
                found = true;
                break;
            }
            start += n;
        }
        if !found {
            out.push((slot, Err(format!("row {row} is past the end of the file"))));
        }
    }
    for (file, groups) in plan {
        let src = &sources[file];
        for (group, mut rows) in groups {
            rows.sort();
            let read = no_panic(|| read_group(src, group, &rows))
                .map_err(|m| format!("{}: {m}", src.path.display()))
                .and_then(|r| r);
            match read {
                Ok(values) => out.extend(values),
                Err(message) => {
                    out.extend(rows.iter().map(|&(_, slot)| (slot, Err(message.clone()))))
                }
            }
        }
    }
    out
}

/// (slot, the image bytes or why there are none).
type FetchedCell = (usize, Result<Vec<u8>, String>);

fn read_group(
    src: &ParquetSource,
    group: usize,
    rows: &[(u64, usize)],
) -> Result<Vec<FetchedCell>, String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", src.path.display());
    let file = File::open(&src.path).map_err(|e| at(&e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| at(&e))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [src.image_column]);
    // Select only the requested rows: a sampled dataset reads a fraction of each group.
    let mut selectors = Vec::new();
    let mut next = 0u64;
    for &(r, _) in rows {
        if r > next {
            selectors.push(RowSelector::skip((r - next) as usize));
        }
        if r >= next {
            selectors.push(RowSelector::select(1));
            next = r + 1;
        }
    }
    let reader = builder
        .with_projection(mask)
        .with_row_groups(vec![group])
        .with_row_selection(RowSelection::from(selectors))
        .with_batch_size(256)
        .build()
        .map_err(|e| at(&e))?;
    let mut cells: Vec<Result<Vec<u8>, String>> = Vec::with_capacity(rows.len());
    for batch in reader {
        let batch = batch.map_err(|e| at(&e))?;
        let column = batch.column(0);
        for i in 0..batch.num_rows() {
            cells.push(cell_bytes(src, column, i));
        }
    }
    let group_start: u64 = src.row_group_rows[..group].iter().sum();
    let mut out = Vec::with_capacity(rows.len());
    let mut cell = cells.into_iter();
    let mut last: Option<(u64, Result<Vec<u8>, String>)> = None;
    for &(r, slot) in rows {
        // Duplicate requests for one row share its cell.
        let value = match &last {
            Some((lr, v)) if *lr == r => v.clone(),
            _ => {
                let v = cell.next().unwrap_or_else(|| {
                    Err(format!(
                        "{}: row {} missing from row group {group}",
                        src.path.display(),
                        group_start + r
                    ))
                });
                last = Some((r, v.clone()));
                v
            }
        };
        out.push((slot, value));
    }
    Ok(out)
}

fn cell_bytes(src: &ParquetSource, column: &ArrayRef, i: usize) -> Result<Vec<u8>, String> {
    match src.image_kind {
        ImageColumnKind::Binary => {
            let bin = as_binary(column)?;
            if bin.is_null(i) {
                return Err("image cell is null".into());
            }
            Ok(bin.value(i).to_vec())
        }
        ImageColumnKind::Path => {
            let s = as_string(column)?;
            if s.is_null(i) {
                return Err("image path is null".into());
            }
            read_relative(src, s.value(i))
        }
        ImageColumnKind::Struct => {
            let st = column
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or("image column is not a struct")?;
            if st.is_null(i) {
                return Err("image cell is null".into());
            }
            if let Some(bytes) = st.column_by_name("bytes") {
                let bin = as_binary(bytes)?;
                if !bin.is_null(i) {
                    return Ok(bin.value(i).to_vec());
                }
            }
            if let Some(path) = st.column_by_name("path") {
                let s = as_string(path)?;
                if !s.is_null(i) {
                    return read_relative(src, s.value(i));
                }
            }
            Err("image cell has neither bytes nor path".into())
        }
    }
}

fn read_relative(src: &ParquetSource, rel: &str) -> Result<Vec<u8>, String> {
    let p = Path::new(rel);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        src.path.parent().unwrap_or(Path::new(".")).join(p)
    };
    src.files.read(&full).map_err(|e| e.to_string())
}

fn as_binary(a: &ArrayRef) -> Result<BinaryArray, String> {
    let cast = arrow_cast::cast(a, &DataType::Binary).map_err(|e| e.to_string())?;
    cast.as_any()
        .downcast_ref::<BinaryArray>()
        .cloned()
        .ok_or_else(|| "not binary".into())
}

fn as_string(a: &ArrayRef) -> Result<StringArray, String> {
    let cast = arrow_cast::cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
    cast.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| "not text".into())
}

/// One text column of a batch (ids, labels, attributes).
struct TextColumn {
    values: StringArray,
}

impl TextColumn {
    fn get(&self, i: usize) -> Option<&str> {
        (!self.values.is_null(i)).then(|| self.values.value(i))
    }
}

/// The caption column of a batch: one text per row, or a list of texts per row (Hugging Face
/// COCO and Flickr30k exports: `sentences`, `captions`).
enum CaptionColumn {
    Text(TextColumn),
    List {
        offsets: Vec<usize>,
        values: StringArray,
        valid: Vec<bool>,
    },
}

impl CaptionColumn {
    /// Appends row `i`'s captions (none for a null; null list entries are skipped).
    fn extend_into<'a>(&'a self, i: usize, out: &mut Vec<&'a str>) {
        match self {
            CaptionColumn::Text(t) => out.extend(t.get(i)),
            CaptionColumn::List {
                offsets,
                values,
                valid,
            } => {
                if valid[i] {
                    out.extend(
                        (offsets[i]..offsets[i + 1])
                            .filter(|&k| !values.is_null(k))
                            .map(|k| values.value(k)),
                    );
                }
            }
        }
    }

    fn from_array(col: &ArrayRef, path: &Path) -> Result<CaptionColumn, DatasetError> {
        if !is_list(col.data_type()) {
            let values = as_string(col).map_err(|m| parquet_error(path, m))?;
            return Ok(CaptionColumn::Text(TextColumn { values }));
        }
        let item = Arc::new(Field::new("item", DataType::Utf8, true));
        let cast =
            arrow_cast::cast(col, &DataType::List(item)).map_err(|e| parquet_error(path, e))?;
        let list = cast
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| parquet_error(path, "caption list did not cast to a list of text"))?;
        let values = list
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| parquet_error(path, "caption list entries are not text"))?;
        let offsets = list.value_offsets().iter().map(|&o| o as usize).collect();
        let valid = (0..list.len()).map(|i| !list.is_null(i)).collect();
        Ok(CaptionColumn::List {
            offsets,
            values,
            valid,
        })
    }
}

fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_list(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
    )
}

#[derive(Default)]
struct Columns {
    id: Option<TextColumn>,
    label: Option<TextColumn>,
    caption: Option<CaptionColumn>,
    attributes: Vec<TextColumn>,
}

impl Columns {
    fn from_batch(
        batch: &RecordBatch,
        config: &DatasetConfig,
        id_name: Option<&str>,
        class_names: &Option<Vec<String>>,
        path: &Path,
    ) -> Result<Columns, DatasetError> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| parquet_error(path, format!("column {name} vanished")))
        };
        let get = |name: Option<&str>| -> Result<Option<TextColumn>, DatasetError> {
            let Some(name) = name else { return Ok(None) };
            let values = as_string(column(name)?).map_err(|m| parquet_error(path, m))?;
            Ok(Some(TextColumn { values }))
        };
        let mut label = get(config.label_column.as_deref())?;
        // Hugging Face ClassLabel: integers plus names in the file's metadata.
        if let (Some(names), Some(name)) = (class_names, config.label_column.as_deref()) {
            if let Some(col) = batch.column_by_name(name) {
                if let Ok(ints) = arrow_cast::cast(col, &DataType::Int64) {
                    if let Some(ints) = ints.as_any().downcast_ref::<Int64Array>() {
                        let mapped: StringArray = ints
                            .iter()
                            .map(|v| {
                                v.map(|k| {
                                    usize::try_from(k)
                                        .ok()
                                        .and_then(|k| names.get(k).cloned())
                                        .unwrap_or_else(|| k.to_string())
                                })
                            })
                            .collect();
                        label = Some(TextColumn { values: mapped });
                    }
                }
            }
        }
        let mut attributes = Vec::with_capacity(config.attribute_columns.len());
        for name in &config.attribute_columns {
            attributes.extend(get(Some(name))?);
        }
        let caption = match config.caption_column.as_deref() {
            None => None,
            Some(name) => Some(CaptionColumn::from_array(column(name)?, path)?),
        };
        Ok(Columns {
            id: get(id_name)?,
            label,
            caption,
            attributes,
        })
    }
}

/// The class names of a Hugging Face `ClassLabel` column, from the `huggingface` schema metadata.
fn hf_class_names(schema: &Schema, label: Option<&str>) -> Option<Vec<String>> {
    let label = label?;
    let field = schema.field_with_name(label).ok()?;
    if !field.data_type().is_integer() {
        return None;
    }
    let meta: serde_json::Value =
        serde_json::from_str(schema.metadata().get("huggingface")?).ok()?;
    let names = meta
        .pointer(&format!("/info/features/{label}/names"))?
        .as_array()?;
    names
        .iter()
        .map(|n| n.as_str().map(str::to_string))
        .collect()
}

fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    no_panic(|| ParquetRecordBatchReaderBuilder::try_new(file))
        .map_err(|m| parquet_error(path, m))?
        .map_err(|e| parquet_error(path, e))
}

/// Runs parquet-crate code that can panic on malformed input (parquet 57.3 unwraps inside
/// its Thrift decoders; arrow-ipc inside its schema conversion): a corrupt file is that file's
/// error, not a crash.
fn no_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    crate::util::catch_panic(f)
        .map_err(|m| format!("the Parquet reader failed on malformed data ({m})"))
}

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> DatasetError {
    DatasetError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn find_column(
    path: &Path,
    schema: &Schema,
    key: &'static str,
    name: &str,
) -> Result<usize, DatasetError> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let hint = names
            .iter()
            .map(|n| (strsim::jaro_winkler(name, n), *n))
            .filter(|(s, _)| *s >= 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, n)| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        DatasetError::MissingColumn {
            path: path.to_path_buf(),
            key,
            column: name.to_string(),
            hint,
            available: names.join(", "),
        }
    })
}

fn check_text_type(
    path: &Path,
    schema: &Schema,
    key: &'static str,
    idx: usize,
) -> Result<(), DatasetError> {
    let field = schema.field(idx);
    let dt = field.data_type();
    let text = |d: &DataType| {
        matches!(
            d,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)
        )
    };
    if key == "caption_column" {
        let list_of_text = match dt {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                text(f.data_type())
            }
            _ => false,
        };
        if text(dt) || list_of_text {
            return Ok(());
        }
        return Err(DatasetError::ColumnType {
            path: path.to_path_buf(),
            key,
            column: field.name().clone(),
            found: dt.to_string(),
            expected: "text or a list of text",
        });
    }
    let ok = matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)
    ) || dt.is_integer()
        || (key == "attribute_columns" && *dt == DataType::Boolean);
    if ok {
        Ok(())
    } else {
        Err(DatasetError::ColumnType {
            path: path.to_path_buf(),
            key,
            column: field.name().clone(),
            found: dt.to_string(),
            expected: "text or integer",
        })
    }
}

fn image_column(
    path: &Path,
    schema: &Schema,
    name: &str,
) -> Result<(usize, ImageColumnKind), DatasetError> {
    let idx = find_column(path, schema, "image_column", name)?;
    let dt = schema.field(idx).data_type();
    let is_binary = |d: &DataType| {
        matches!(
            d,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        )
    };
    let is_text =
        |d: &DataType| matches!(d, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let kind = match dt {
        d if is_binary(d) => ImageColumnKind::Binary,
        d if is_text(d) => ImageColumnKind::Path,
        DataType::Struct(fields)
            if fields
                .iter()
                .any(|f| f.name() == "bytes" && is_binary(f.data_type()))
                || fields
                    .iter()
                    .any(|f| f.name() == "path" && is_text(f.data_type())) =>
        {
            ImageColumnKind::Struct
        }
        other => {
            return Err(DatasetError::ColumnType {
                path: path.to_path_buf(),
                key: "image_column",
                column: name.to_string(),
                found: other.to_string(),
                expected: "struct {bytes, path}, binary, or a path string",
            })
        }
    };
    Ok((idx, kind))
}
