//! WebDataset shards: tar files (plain or gzip) of samples, read in place.
//!
//! **A shard is the unit of listing.** Planning only expands `dataset.path` into shard files
//! and reads their sizes; a shard's samples are listed when a part that needs them runs, by
//! streaming its headers (and its small caption, label and JSON members) from the tar, with no
//! extraction. Image bytes are read later, batch by batch, from the offsets the listing
//! recorded: a seek in a plain tar, a forward-only decompressing cursor in a `.tar.gz`.
//!
//! **How parts map to shards.** Shard `k` (in the order `dataset.path` expands to) is image part
//! `k` and caption part `k` of each model, whatever `runtime.part_size` says; prompt parts come
//! after the caption parts. `--shard I/N` takes every N-th part of that list, so a worker
//! lists only the shards its own parts need and never the whole dataset, and the parts of one
//! model's shard `k` can land on different workers (each lists the shard itself). Item ids are
//! the sample keys; the store and the analysis need them unique across shards, which
//! webdataset writers (ShardWriter, img2dataset) guarantee and which is checked within a shard
//! (a repeated key is an error row).
//!
//! **Samples** are grouped by key as the webdataset library does (see `keys`). The image is
//! the first of `dataset.webdataset.image` (default `jpg, jpeg, png, webp`) the sample has; the
//! caption is a member's text (`txt`, one caption per line when `caption_lines`) or a JSON field
//! (`json:caption`; a list of strings is several captions); the label is `cls` (an integer) or
//! a JSON field. A sample whose image, caption or label member is truncated, unreadable or
//! malformed, a sample without an image, and a damaged header become rows of `errors.parquet`
//! (recorded once, by the first model's image part of that shard); the rest of the shard
//! still runs (see `tar` for how a damaged header is skipped).
//!
//! **CLIP_benchmark's layout** (`<root>/<split>/{0..n-1}.tar` with `nshards.txt`, and
//! `classnames.txt`, `zeroshot_classification_templates.txt`, `dataset_type.txt` in `<root>`) is
//! read as it is: the three text files are looked for beside the shards and one folder up;
//! class names turn `cls` integers into names, the templates become the zero-shot prompts when
//! the study sets no `texts.prompts`, and `retrieval` turns on one caption per line of `txt`.

mod keys;
mod shards;
pub(crate) mod tar;

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::read::MultiGzDecoder;

use super::files::{open_regular, read_regular, DEFAULT_MAX_FILE_BYTES};
use super::{DatasetError, ImageRef, Item};
use crate::config::{DatasetConfig, WebdatasetConfig};
use tar::{Entry, Seekable, Source, Streamed, TarReader};

/// Largest caption, label, JSON or layout text file read. (Image members are held to
/// `dataset.max_file_bytes`, like image files.)
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// One shard file.
#[derive(Debug, Clone)]
pub struct ShardFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// A field of a sample: a member's content, or a field of a JSON member.
#[derive(Debug, Clone, PartialEq)]
enum FieldSpec {
    Member(String),
    Json { member: String, path: Vec<String> },
}

impl FieldSpec {
    fn parse(key: &'static str, spec: &str) -> Result<FieldSpec, DatasetError> {
        let bad = |message: String| DatasetError::Config { key, message };
        let spec = spec.trim();
        match spec.split_once(':') {
            None if !spec.is_empty() => Ok(FieldSpec::Member(spec.to_lowercase())),
            Some((member, path)) if !member.is_empty() && !path.is_empty() => {
                let path: Vec<String> = path.split('.').map(str::to_string).collect();
                if path.iter().any(String::is_empty) {
                    return Err(bad(format!("{spec:?}: empty JSON field name")));
                }
                Ok(FieldSpec::Json {
                    member: member.to_lowercase(),
                    path,
                })
            }
            _ => Err(bad(format!(
                "{spec:?}: expected a field (`txt`) or `<field>:<json key>` (`json:caption`)"
            ))),
        }
    }

    fn member(&self) -> &str {
        match self {
            FieldSpec::Member(m) | FieldSpec::Json { member: m, .. } => m,
        }
    }
}

/// The shards of a dataset and how to read their samples.
#[derive(Debug)]
pub struct Shards {
    pub files: Vec<ShardFile>,
    image_fields: Vec<String>,
    caption: Option<FieldSpec>,
    label: Option<FieldSpec>,
    caption_lines: bool,
    /// Largest image member read: `dataset.max_file_bytes`.
    max_image_bytes: u64,
    /// `classnames.txt`: names of the integer labels, in class order.
    pub classnames: Option<Vec<String>>,
    /// `zeroshot_classification_templates.txt`.
    pub templates: Option<Vec<String>>,
    /// The layout files found, for the fingerprint and the notes.
    pub layout_files: Vec<PathBuf>,
    /// The decompressing reader of the last gzip shard read, kept for the next batch.
    gzip_cursor: Mutex<Option<GzipCursor>>,
}

struct GzipCursor {
    shard: usize,
    reader: Streamed<MultiGzDecoder<BufReader<File>>>,
    pos: u64,
}

impl std::fmt::Debug for GzipCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GzipCursor(shard {}, at {})", self.shard, self.pos)
    }
}

/// A problem found while listing a shard: a sample or member that gives no item.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingProblem {
    /// The sample key, or the member name, or `@<offset>` when the header was unreadable.
    pub id: String,
    /// `<shard>#<member>` or `<shard>#offset=<n>`.
    pub source: String,
    pub reason: String,
}

/// The samples of one shard.
#[derive(Debug, Default)]
pub struct ShardListing {
    pub items: Vec<Item>,
    pub problems: Vec<ListingProblem>,
}

/// Resolves `dataset.path` (and `split`) into shards and reads the layout files.
pub fn open(config: &DatasetConfig) -> Result<Shards, DatasetError> {
    let wds = config.webdataset.clone().unwrap_or_default();
    let patterns: Vec<String> = match &config.split {
        None => config.path.as_slice().to_vec(),
        Some(split) => match config.path.as_slice() {
            [root] => vec![Path::new(root).join(split).to_string_lossy().into_owned()],
            _ => {
                return Err(DatasetError::Config {
                    key: "split",
                    message:
                        "with a split, dataset.path is the one root folder of the split folders"
                            .into(),
                })
            }
        },
    };
    let paths = shards::expand(&patterns)?;
    if paths.is_empty() {
        return Err(DatasetError::Empty(patterns.join(", ")));
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::metadata(&path)
            .map_err(|e| DatasetError::Io {
                path: path.clone(),
                message: e.to_string(),
            })?
            .len();
        files.push(ShardFile { path, bytes });
    }
    let fields = resolve_fields(&wds)?;
    let dirs = layout_dirs(&files[0].path);
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
    let mut layout_files = Vec::new();
    let classnames = match find("classnames.txt") {
        None => None,
        Some(p) => {
            let names = class_names(&p)?;
            layout_files.push(p);
            Some(names)
        }
    };
    let templates = match find("zeroshot_classification_templates.txt") {
        None => None,
        Some(p) => {
            let text = read_small_text(&p)?;
            let t: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            layout_files.push(p);
            (!t.is_empty()).then_some(t)
        }
    };
    let dataset_type = match find("dataset_type.txt") {
        None => None,
        Some(p) => {
            let t = read_small_text(&p)?.trim().to_lowercase();
            layout_files.push(p);
            Some(t)
        }
    };
    let caption_lines = wds
        .caption_lines
        .unwrap_or(dataset_type.as_deref() == Some("retrieval"));
    Ok(Shards {
        files,
        image_fields: fields.0,
        caption: fields.1,
        label: fields.2,
        caption_lines,
        max_image_bytes: config.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES),
        classnames,
        templates,
        layout_files,
        gzip_cursor: Mutex::new(None),
    })
}

type Fields = (Vec<String>, Option<FieldSpec>, Option<FieldSpec>);

fn resolve_fields(wds: &WebdatasetConfig) -> Result<Fields, DatasetError> {
    if wds.image.is_empty() {
        return Err(DatasetError::Config {
            key: "webdataset.image",
            message: "name at least one image field (e.g. [jpg, png])".into(),
        });
    }
    let image: Vec<String> = wds
        .image
        .iter()
        .map(|e| e.trim().trim_start_matches('.').to_lowercase())
        .collect();
    if let Some(e) = image.iter().find(|e| e.is_empty() || e.contains(':')) {
        return Err(DatasetError::Config {
            key: "webdataset.image",
            message: format!("{e:?} is not a field name"),
        });
    }
    let caption = wds
        .caption
        .as_deref()
        .map(|s| FieldSpec::parse("webdataset.caption", s))
        .transpose()?;
    let label = wds
        .label
        .as_deref()
        .map(|s| FieldSpec::parse("webdataset.label", s))
        .transpose()?;
    for spec in caption.iter().chain(&label) {
        if image.iter().any(|i| i == spec.member()) {
            return Err(DatasetError::Config {
                key: "webdataset",
                message: format!(
                    "field {:?} is both an image and a text field",
                    spec.member()
                ),
            });
        }
    }
    Ok((image, caption, label))
}

/// The shard's folder and the one above it (CLIP_benchmark keeps the text files at the root,
/// the shards in `<root>/<split>/`).
fn layout_dirs(first_shard: &Path) -> Vec<PathBuf> {
    let dir = first_shard
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut out = vec![dir.clone()];
    if let Some(up) = dir.parent() {
        out.push(if up.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            up.to_path_buf()
        });
    } else if dir != Path::new("..") {
        out.push(dir.join(".."));
    }
    out
}

fn class_names(path: &Path) -> Result<Vec<String>, DatasetError> {
    let text = read_small_text(path)?;
    let mut names: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while names.last().is_some_and(String::is_empty) {
        names.pop();
    }
    let mut seen = HashSet::new();
    for (i, n) in names.iter().enumerate() {
        let err = |message: String| DatasetError::Row {
            path: path.to_path_buf(),
            row: i as u64 + 1,
            message,
        };
        if n.is_empty() {
            return Err(err("empty class name".into()));
        }
        if !seen.insert(n) {
            return Err(err(format!("class {n:?} is named twice")));
        }
    }
    Ok(names)
}

/// Reads a small text file (layout files, `nshards.txt`): a regular file, with a size cap.
pub(crate) fn read_small_text(path: &Path) -> Result<String, DatasetError> {
    let io = |message: String| DatasetError::Io {
        path: path.to_path_buf(),
        message,
    };
    let bytes = read_regular(path, MAX_TEXT_BYTES).map_err(|e| io(e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| io("not UTF-8 text".into()))
}

/// Opens a shard the user named: a regular file (never a FIFO or a device), of any size.
fn open_shard(path: &Path) -> Result<File, String> {
    open_regular(path, u64::MAX)
        .map(|(f, _)| f)
        .map_err(|e| e.to_string())
}

/// A sample being assembled from consecutive members.
struct Pending {
    key: String,
    /// Header offset of its first member, for messages.
    offset: u64,
    /// Image fields: (field, data offset, size).
    images: Vec<(String, u64, u64)>,
    /// Text fields read: (field, bytes).
    texts: Vec<(String, Vec<u8>)>,
    /// Every field name seen, for duplicate checks and messages.
    fields: Vec<String>,
    /// Why the sample cannot be used (a member of it was damaged).
    failures: Vec<String>,
}

impl Shards {
    /// Whether samples may have captions (a caption field is configured).
    pub fn has_caption_field(&self) -> bool {
        self.caption.is_some()
    }

    /// Lists shard `index`: its samples as items, in tar order, and its problems.
    pub fn list(&self, index: usize) -> Result<ShardListing, DatasetError> {
        let file = &self.files[index];
        let mut reader = self.open_source(&file.path)?;
        let mut out = ShardListing::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut pending: Option<Pending> = None;
        let text_fields: Vec<&str> = self
            .caption
            .iter()
            .chain(&self.label)
            .map(FieldSpec::member)
            .collect();
        let shard_name = file.path.display().to_string();
        while let Some(entry) = reader.next_entry() {
            let member = match entry {
                Entry::Problem(p) => {
                    let key = p
                        .name
                        .as_deref()
                        .and_then(keys::split)
                        .map(|(k, _)| k.to_string());
                    match (&mut pending, key) {
                        (Some(s), Some(k)) if s.key == k => {
                            s.failures
                                .push(format!("{}: {}", p.name.unwrap_or_default(), p.reason))
                        }
                        _ => out.problems.push(ListingProblem {
                            id: p.name.clone().unwrap_or_else(|| format!("@{}", p.offset)),
                            source: match &p.name {
                                Some(n) => format!("{shard_name}#{n}"),
                                None => format!("{shard_name}#offset={}", p.offset),
                            },
                            reason: p.reason,
                        }),
                    }
                    continue;
                }
                Entry::Member(m) => m,
            };
            if keys::is_metadata(&member.name) {
                continue;
            }
            let Some((key, field)) = keys::split(&member.name) else {
                continue;
            };
            if pending.as_ref().is_none_or(|s| s.key != key) {
                if let Some(done) = pending.take() {
                    self.finish(index, done, &shard_name, &mut seen, &mut out);
                }
                pending = Some(Pending {
                    key: key.to_string(),
                    offset: member.header_offset,
                    images: Vec::new(),
                    texts: Vec::new(),
                    fields: Vec::new(),
                    failures: Vec::new(),
                });
            }
            let Some(sample) = pending.as_mut() else {
                continue;
            };
            if sample.fields.contains(&field) {
                out.problems.push(ListingProblem {
                    id: member.name.clone(),
                    source: format!("{shard_name}#{}", member.name),
                    reason: format!(
                        "sample {} has a second `{field}` member; the first is kept",
                        sample.key
                    ),
                });
                continue;
            }
            sample.fields.push(field.clone());
            if self.image_fields.contains(&field) {
                sample.images.push((field, member.offset, member.size));
            } else if text_fields.contains(&field.as_str()) {
                match reader.read_data(MAX_TEXT_BYTES) {
                    Ok(data) => sample.texts.push((field, data)),
                    Err(p) => sample
                        .failures
                        .push(format!("{}: {}", member.name, p.reason)),
                }
            }
        }
        if let Some(done) = pending.take() {
            self.finish(index, done, &shard_name, &mut seen, &mut out);
        }
        Ok(out)
    }

    /// Turns a complete sample into an item or a problem.
    fn finish(
        &self,
        shard: usize,
        s: Pending,
        shard_name: &str,
        seen: &mut HashSet<String>,
        out: &mut ShardListing,
    ) {
        let mut problem = |reason: String| {
            out.problems.push(ListingProblem {
                id: s.key.clone(),
                source: format!("{shard_name}#offset={}", s.offset),
                reason,
            })
        };
        if !seen.insert(s.key.clone()) {
            problem(format!(
                "key {} appears again later in the shard (its members are not consecutive); this sample is skipped",
                s.key
            ));
            return;
        }
        if !s.failures.is_empty() {
            problem(s.failures.join("; "));
            return;
        }
        let image = self
            .image_fields
            .iter()
            .find_map(|f| s.images.iter().find(|(g, _, _)| g == f));
        let Some(&(_, offset, size)) = image else {
            problem(format!(
                "no image: none of the fields {} (the sample has: {})",
                self.image_fields.join(", "),
                if s.fields.is_empty() {
                    "nothing".to_string()
                } else {
                    s.fields.join(", ")
                }
            ));
            return;
        };
        let text = |spec: &FieldSpec| -> Option<&[u8]> {
            s.texts
                .iter()
                .find(|(f, _)| f == spec.member())
                .map(|(_, d)| d.as_slice())
        };
        let captions = match &self.caption {
            None => Vec::new(),
            Some(spec) => match text(spec).map(|d| self.captions_of(spec, d)) {
                None => Vec::new(),
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    problem(format!("caption ({}): {e}", spec.member()));
                    return;
                }
            },
        };
        let label = match &self.label {
            None => None,
            Some(spec) => match text(spec).map(|d| self.label_of(spec, d)) {
                None => None,
                Some(Ok(l)) => l,
                Some(Err(e)) => {
                    problem(format!("label ({}): {e}", spec.member()));
                    return;
                }
            },
        };
        out.items.push(Item {
            id: s.key,
            label,
            captions,
            image: ImageRef::TarMember {
                shard,
                offset,
                size,
            },
            attributes: Vec::new(),
        });
    }

    fn captions_of(&self, spec: &FieldSpec, data: &[u8]) -> Result<Vec<String>, String> {
        match spec {
            FieldSpec::Member(_) => {
                let text = std::str::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())?;
                Ok(if self.caption_lines {
                    split_lines(text)
                } else {
                    vec![text.to_string()]
                })
            }
            FieldSpec::Json { path, .. } => match json_field(data, path)? {
                None | Some(serde_json::Value::Null) => Ok(Vec::new()),
                Some(serde_json::Value::String(s)) => Ok(vec![s]),
                Some(serde_json::Value::Array(list)) => list
                    .into_iter()
                    .filter(|v| !v.is_null())
                    .map(|v| match v {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(format!("a list entry is {}, not text", kind(&other))),
                    })
                    .collect(),
                Some(other) => Err(format!(
                    "field {} is {}, expected text or a list of texts",
                    path.join("."),
                    kind(&other)
                )),
            },
        }
    }

    fn label_of(&self, spec: &FieldSpec, data: &[u8]) -> Result<Option<String>, String> {
        let value = match spec {
            FieldSpec::Member(_) => {
                let text = std::str::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())?;
                let text = text.trim();
                let n: i64 = text
                    .parse()
                    .map_err(|_| format!("{text:?} is not an integer class"))?;
                serde_json::Value::from(n)
            }
            FieldSpec::Json { path, .. } => match json_field(data, path)? {
                None | Some(serde_json::Value::Null) => return Ok(None),
                Some(v) => v,
            },
        };
        match value {
            serde_json::Value::String(s) => Ok(Some(s)),
            serde_json::Value::Number(n) => {
                let k = n
                    .as_i64()
                    .ok_or_else(|| format!("{n} is not an integer class"))?;
                match &self.classnames {
                    None => Ok(Some(k.to_string())),
                    Some(names) => usize::try_from(k)
                        .ok()
                        .and_then(|k| names.get(k))
                        .map(|n| Some(n.clone()))
                        .ok_or_else(|| {
                            format!(
                                "class {k} is outside classnames.txt's {} classes",
                                names.len()
                            )
                        }),
                }
            }
            other => Err(format!("{} is not a class (text or integer)", kind(&other))),
        }
    }

    fn open_source(&self, path: &Path) -> Result<TarReader<Box<dyn Source + Send>>, DatasetError> {
        let io = |e: std::io::Error| DatasetError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut file = open_shard(path).map_err(|message| DatasetError::Io {
            path: path.to_path_buf(),
            message,
        })?;
        let source: Box<dyn Source + Send> = if is_gzip(&mut file).map_err(io)? {
            Box::new(Streamed(MultiGzDecoder::new(BufReader::new(file))))
        } else {
            Box::new(Seekable::new(BufReader::new(file)).map_err(io)?)
        };
        Ok(TarReader::new(source))
    }

    /// Reads the image members `(slot, shard, offset, size)`; returns `(slot, bytes or why
    /// not)` for each. A plain shard is opened once per call and read with a seek per image;
    /// a gzip shard is decompressed once, forward, across calls (the encoder asks for its
    /// items in order).
    pub fn fetch(
        &self,
        requests: &[(usize, usize, u64, u64)],
    ) -> Vec<(usize, Result<Vec<u8>, String>)> {
        let mut order: Vec<&(usize, usize, u64, u64)> = requests.iter().collect();
        order.sort_by_key(|&&(slot, shard, offset, _)| (shard, offset, slot));
        let mut out = Vec::with_capacity(requests.len());
        // The shard open for this call: (index, its file when plain, or None when gzip).
        let mut open: Option<(usize, Result<Option<File>, String>)> = None;
        for &&(slot, shard, offset, size) in &order {
            let Some(file) = self.files.get(shard) else {
                out.push((slot, Err(format!("internal: no shard #{shard}"))));
                continue;
            };
            let at = |e: &dyn std::fmt::Display| format!("{}: {e}", file.path.display());
            if size > self.max_image_bytes {
                out.push((
                    slot,
                    Err(at(&format!(
                        "image member of {size} bytes, larger than dataset.max_file_bytes ({})",
                        self.max_image_bytes
                    ))),
                ));
                continue;
            }
            if open.as_ref().is_none_or(|(s, _)| *s != shard) {
                let handle = open_shard(&file.path).and_then(|mut f| {
                    let gzip = is_gzip(&mut f).map_err(|e| at(&e))?;
                    Ok((!gzip).then_some(f))
                });
                open = Some((shard, handle));
            }
            let result = match open.as_mut().map(|(_, h)| h) {
                Some(Ok(Some(f))) => f
                    .seek(SeekFrom::Start(offset))
                    .map_err(|e| at(&e))
                    .and_then(|_| read_exact_or_say(f, size).map_err(|e| at(&e))),
                Some(Ok(None)) => self.fetch_gzip(shard, &file.path, offset, size),
                Some(Err(e)) => Err(e.clone()),
                None => Err("internal: shard not opened".into()),
            };
            out.push((slot, result));
        }
        out
    }

    fn fetch_gzip(
        &self,
        shard: usize,
        path: &Path,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, String> {
        let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let mut guard = self.gzip_cursor.lock().unwrap_or_else(|e| e.into_inner());
        let reuse = guard
            .as_ref()
            .is_some_and(|c| c.shard == shard && c.pos <= offset);
        if !reuse {
            let file = open_shard(path)?;
            *guard = Some(GzipCursor {
                shard,
                reader: Streamed(MultiGzDecoder::new(BufReader::new(file))),
                pos: 0,
            });
        }
        let cursor = guard.as_mut().ok_or("internal: no cursor")?;
        let gap = offset - cursor.pos;
        let skipped = cursor.reader.skip(gap).map_err(|e| at(&e))?;
        cursor.pos += skipped;
        if skipped < gap {
            return Err(at(&"the shard ended before the member (was it changed?)"));
        }
        let data = read_exact_or_say(&mut cursor.reader, size);
        match data {
            Ok(d) => {
                cursor.pos += size;
                Ok(d)
            }
            Err(e) => {
                *guard = None;
                Err(at(&e))
            }
        }
    }
}

fn read_exact_or_say(r: &mut impl Read, size: u64) -> Result<Vec<u8>, String> {
    let mut data = Vec::with_capacity(size as usize);
    r.take(size)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    if (data.len() as u64) < size {
        return Err(format!(
            "truncated: {} of {size} bytes (was the shard changed after listing?)",
            data.len()
        ));
    }
    Ok(data)
}

/// True when the file starts with the gzip magic; leaves the file at its start.
fn is_gzip(file: &mut File) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match file.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

fn json_field(data: &[u8], path: &[String]) -> Result<Option<serde_json::Value>, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| format!("not valid JSON: {e}"))?;
    for key in path {
        value = match value {
            serde_json::Value::Object(mut map) => match map.remove(key) {
                Some(v) => v,
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
    }
    Ok(Some(value))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "text",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Python's `str.splitlines()`: every line boundary Python knows, no final empty line.
fn split_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut line));
            }
            '\n' | '\u{b}' | '\u{c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => out.push(std::mem::take(&mut line)),
            c => line.push(c),
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::tar::tests::archive;
    use super::*;
    use crate::config::DatasetFormat;

    fn config(path: &Path, wds: Option<WebdatasetConfig>) -> DatasetConfig {
        DatasetConfig {
            webdataset: wds,
            ..DatasetConfig::new(
                DatasetFormat::Webdataset,
                path.to_string_lossy().into_owned(),
            )
        }
    }

    #[test]
    fn python_splitlines() {
        assert_eq!(split_lines("a\nb\r\nc\rd\n"), ["a", "b", "c", "d"]);
        assert_eq!(split_lines("a\n\nb"), ["a", "", "b"]);
        assert_eq!(split_lines("one"), ["one"]);
        assert!(split_lines("").is_empty());
        assert_eq!(split_lines("x\u{2028}y"), ["x", "y"]);
    }

    #[test]
    fn samples_group_by_key_with_captions_labels_and_problems() {
        let d = tempfile::tempdir().unwrap();
        let tar = archive(&[
            ("__meta__", b"skip me"),
            ("s1.jpg", b"JPEG1"),
            ("s1.txt", b"first caption"),
            ("s1.cls", b" 1\n"),
            ("s2.png", b"PNG2"),
            ("s2.cls", b"0"),
            ("s3.txt", b"no image here"),
            ("s4.jpg", b"JPEG4"),
            ("s4.cls", b"seven"),
            ("s5.JPG", b"JPEG5"),
            ("s5.jpg", b"again"),
            ("s1.webp", b"later"),
            ("README", b"not a sample"),
        ]);
        std::fs::write(d.path().join("0.tar"), &tar).unwrap();
        std::fs::write(d.path().join("classnames.txt"), "cat\ndog\n").unwrap();
        let shards = open(&config(d.path(), None)).unwrap();
        assert_eq!(shards.files.len(), 1);
        let l = shards.list(0).unwrap();
        let ids: Vec<_> = l.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2", "s5"]);
        assert_eq!(l.items[0].captions, ["first caption"]);
        assert_eq!(l.items[0].label.as_deref(), Some("dog"));
        assert_eq!(l.items[1].label.as_deref(), Some("cat"));
        assert!(l.items[1].captions.is_empty());
        let reasons: Vec<String> = l
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.id, p.reason))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        assert!(reasons[0].starts_with("s3: no image"), "{reasons:#?}");
        assert!(
            reasons[1].contains("seven") && reasons[1].starts_with("s4"),
            "{reasons:#?}"
        );
        assert!(reasons[2].contains("second `jpg`"), "{reasons:#?}");
        assert!(reasons[3].contains("appears again"), "{reasons:#?}");
        // The image bytes come back from the recorded offsets.
        let reqs: Vec<_> = l
            .items
            .iter()
            .enumerate()
            .map(|(slot, i)| match i.image {
                ImageRef::TarMember {
                    shard,
                    offset,
                    size,
                } => (slot, shard, offset, size),
                _ => panic!(),
            })
            .collect();
        let mut got = shards.fetch(&reqs);
        got.sort_by_key(|(s, _)| *s);
        let bytes: Vec<Vec<u8>> = got.into_iter().map(|(_, b)| b.unwrap()).collect();
        assert_eq!(
            bytes,
            [b"JPEG1".to_vec(), b"PNG2".to_vec(), b"JPEG5".to_vec()]
        );
    }

    #[test]
    fn gzip_shards_json_fields_and_caption_lines() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let tar = archive(&[
            ("a.jpg", b"A"),
            (
                "a.json",
                br#"{"meta": {"caps": ["x", null, "y"]}, "label": "red"}"#,
            ),
            ("a.txt", b"l1\nl2\n"),
            ("b.jpg", b"B"),
            ("b.json", br#"{"meta": {"caps": "solo"}, "label": 3}"#),
            ("c.jpg", b"C"),
            ("c.json", b"{not json"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        std::fs::write(d.path().join("s-000.tar.gz"), gz.finish().unwrap()).unwrap();
        let wds = WebdatasetConfig {
            caption: Some("json:meta.caps".into()),
            label: Some("json:label".into()),
            ..WebdatasetConfig::default()
        };
        let shards = open(&config(&d.path().join("s-{000..000}.tar.gz"), Some(wds))).unwrap();
        let l = shards.list(0).unwrap();
        assert_eq!(l.items.len(), 2);
        assert_eq!(l.items[0].captions, ["x", "y"]);
        assert_eq!(l.items[0].label.as_deref(), Some("red"));
        assert_eq!(l.items[1].captions, ["solo"]);
        assert_eq!(l.items[1].label.as_deref(), Some("3"));
        assert_eq!(l.problems.len(), 1);
        assert!(
            l.problems[0].reason.contains("not valid JSON"),
            "{:?}",
            l.problems
        );
        // Forward reads through the gzip cursor, then a jump back reopens it.
        let req = |slot, i: &Item| match i.image {
            ImageRef::TarMember {
                shard,
                offset,
                size,
            } => (slot, shard, offset, size),
            _ => panic!(),
        };
        assert_eq!(
            shards.fetch(&[req(0, &l.items[0])])[0]
                .1
                .as_deref()
                .unwrap(),
            b"A"
        );
        assert_eq!(
            shards.fetch(&[req(0, &l.items[1])])[0]
                .1
                .as_deref()
                .unwrap(),
            b"B"
        );
        assert_eq!(
            shards.fetch(&[req(0, &l.items[0])])[0]
                .1
                .as_deref()
                .unwrap(),
            b"A"
        );

        // dataset_type.txt says retrieval: one caption per line of txt.
        std::fs::write(d.path().join("dataset_type.txt"), "retrieval\n").unwrap();
        let shards = open(&config(d.path(), None)).unwrap();
        let l = shards.list(0).unwrap();
        assert_eq!(l.items[0].captions, ["l1", "l2"]);
    }

    #[test]
    fn field_specs_are_checked() {
        assert_eq!(
            FieldSpec::parse("webdataset.caption", "json:a.b").unwrap(),
            FieldSpec::Json {
                member: "json".into(),
                path: vec!["a".into(), "b".into()]
            }
        );
        assert!(FieldSpec::parse("webdataset.caption", "json:").is_err());
        assert!(FieldSpec::parse("webdataset.caption", ":x").is_err());
        assert!(FieldSpec::parse("webdataset.caption", "json:a..b").is_err());
        let wds = WebdatasetConfig {
            caption: Some("jpg".into()),
            ..WebdatasetConfig::default()
        };
        assert!(resolve_fields(&wds).is_err());
    }
}
