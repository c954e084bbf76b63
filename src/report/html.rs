//! The run report: one self-contained HTML file (`report.html`) a reader can open offline,
//! mail, or attach to a paper review, with every picture inside it.
//!
//! Layout: a sticky table of contents on the left; a header with the run summary as cards
//! (facts, one card per model, stage timings, error count with the first errors) and the
//! configuration in a collapsible block; then one section per analysis holding paragraphs,
//! tables, plots and retrieval galleries.
//!
//! Self-contained means: CSS and JavaScript (click a column header to sort the shown rows;
//! lazy figures; the interactive maps of [`map`]) are inline, plot PNGs and thumbnails are
//! base64 `data:` URIs, and nothing refers to a network address. The only links are relative
//! ones to the SVG copies of the plots and the anchors of the contents. All text is escaped,
//! since captions and labels come from user data.
//!
//! Light to open: plots and galleries sit in `<template>` elements that `assets/lazy.js`
//! instantiates when they come within a screen of the viewport (and all at once before
//! printing, or when `window.clipflowReport.loadAll()` is called), so opening a report
//! decodes only the pictures in view.
//!
//! Deterministic: the bytes depend on the [`Report`] and the files it names only (no time
//! stamps, random ids or hash-map order), so two runs that agree produce identical reports.
//!
//! Limits: the report holds the PNGs in memory while it is written (a few MB for a typical
//! run); tables show at most `max_rows` rows and point to their Parquet file for the rest, so
//! a 100k-row table costs no more than its first rows.

mod format;
mod map;
mod sprites;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::store::{Column, Table};
use format::{
    base64, column_decimals, escape, format_float, format_int, format_seconds, png_size,
    relative_href,
};
pub use map::{InteractiveMap, MapPoint, ZeroShotCall};
pub use sprites::{ThumbnailSheet, ThumbnailSheetBuilder, Tile};

const CSS: &str = include_str!("../../assets/report/report.css");
const JS: &str = include_str!("../../assets/report/report.js");
/// Lazy figures and the interactive maps (only on pages that have maps).
const LAZY_JS: &str = include_str!("assets/lazy.js");
const MAP_CSS: &str = include_str!("assets/map.css");
const MAP_JS: &str = include_str!("assets/map.js");

/// Errors listed in the summary; the rest are counted and left to errors.parquet.
const MAX_ERROR_ROWS: usize = 50;

/// The id of the summary section; section ids must differ from it.
const SUMMARY_ID: &str = "run-summary";

/// Everything the report shows, in reading order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub title: String,
    pub subtitle: Option<String>,
    pub summary: RunSummary,
    pub sections: Vec<Section>,
}

/// What was run, on what, how long it took and what failed.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// The study configuration as written; shown collapsed, monospace.
    pub config_yaml: String,
    /// Run-level facts in display order ("dataset", "images", "seed", ...).
    pub facts: Vec<(String, String)>,
    /// One key/value list per model (name, path, dims, device, sha256).
    pub models: Vec<Vec<(String, String)>>,
    /// Stage name and wall-clock seconds, in stage order.
    pub timings: Vec<(String, f64)>,
    /// The first rows of errors.parquet (item, stage, reason), if any.
    pub errors: Option<Table>,
    /// All errors of the run, which may exceed the rows in `errors`.
    pub error_count: usize,
    /// Whether the run read images (`clipflow run`), or analysed a store another run or tool
    /// wrote (`clipflow analyze`): then no item went through decoding here.
    pub read_images: bool,
}

/// One analysis, listed in the table of contents.
#[derive(Debug, Clone)]
pub struct Section {
    /// Anchor, `[a-z0-9-]+`, unique within the report.
    pub id: String,
    pub title: String,
    /// A short explanation under the title (what the numbers mean, how they were computed).
    pub note: Option<String>,
    pub blocks: Vec<Block>,
}

/// One piece of a section.
#[derive(Debug, Clone)]
pub enum Block {
    /// A paragraph, escaped.
    Text(String),
    /// The first `max_rows` rows, then a note that the rest is in `tables/<name>.parquet`.
    /// `table` may hold only the first rows of a larger file: `total_rows` is the file's count.
    Table {
        title: String,
        table: Table,
        total_rows: usize,
        max_rows: usize,
    },
    /// The PNG is embedded; the SVG (if any) is linked by its path relative to the report.
    Plot {
        title: String,
        png: PathBuf,
        svg: Option<PathBuf>,
    },
    Gallery(Gallery),
    /// Image pairs side by side (near-duplicates), a pair across splits marked as a leak.
    Pairs(PairGallery),
    /// An interactive 2-D map (canvas, pan/zoom, tooltips with thumbnails, selection).
    Map(Box<InteractiveMap>),
}

/// Retrieval results as pictures: per query, the top hits with their scores.
#[derive(Debug, Clone)]
pub struct Gallery {
    pub title: String,
    pub queries: Vec<GalleryQuery>,
}

#[derive(Debug, Clone)]
pub struct GalleryQuery {
    pub query: String,
    /// The label a correct hit carries, if the query has one.
    pub expected: Option<String>,
    /// In rank order, best first.
    pub hits: Vec<GalleryHit>,
}

#[derive(Debug, Clone)]
pub struct GalleryHit {
    pub label: String,
    pub score: f64,
    pub correct: bool,
    pub thumbnail: Option<Thumbnail>,
}

/// Near-duplicate pairs as pictures, strongest first.
#[derive(Debug, Clone)]
pub struct PairGallery {
    pub title: String,
    pub pairs: Vec<ImagePair>,
}

/// Two images and their cosine.
#[derive(Debug, Clone)]
pub struct ImagePair {
    pub cosine: f64,
    /// The pair crosses groups (splits): a leak, shown red.
    pub leak: bool,
    /// What is known of the pair's groups ("train · test"), shown beside the cosine.
    pub groups: Option<String>,
    pub a: PairImage,
    pub b: PairImage,
}

/// One image of a pair: its id (and group) as a caption, its thumbnail if the dataset is read.
#[derive(Debug, Clone)]
pub struct PairImage {
    pub label: String,
    pub thumbnail: Option<Thumbnail>,
}

/// An encoded image ready to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub mime: &'static str,
    pub bytes: Vec<u8>,
}

impl Thumbnail {
    /// Shrinks `img` so its longer side is at most `max_side` (never enlarges it; Triangle
    /// filter, the cheap one that does not alias) and encodes it as JPEG quality 85: a 160-px
    /// thumbnail is then 4–8 kB, so a gallery of a few hundred stays a few MB.
    pub fn jpeg_from_rgb(img: &image::RgbImage, max_side: u32) -> Result<Thumbnail, ReportError> {
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 || max_side == 0 {
            return Err(ReportError::Thumbnail(format!(
                "cannot make a thumbnail of at most {max_side} px from a {w}×{h} image"
            )));
        }
        let scale = (f64::from(max_side) / f64::from(w.max(h))).min(1.0);
        let size = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, max_side);
        let (tw, th) = (size(w), size(h));
        let resized;
        let source = if (tw, th) == (w, h) {
            img
        } else {
            resized = image::imageops::resize(img, tw, th, image::imageops::FilterType::Triangle);
            &resized
        };
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode(source.as_raw(), tw, th, image::ExtendedColorType::Rgb8)
            .map_err(|e| ReportError::Thumbnail(e.to_string()))?;
        Ok(Thumbnail {
            mime: "image/jpeg",
            bytes,
        })
    }
}

/// The report could not be written; the message names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A plot file that is not a PNG (the report embeds PNG only).
    #[error("{path}: plot {title:?} is not a PNG image")]
    NotPng { path: PathBuf, title: String },
    /// The report model itself is inconsistent (bad section id, ragged table, unknown image type).
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("thumbnail: {0}")]
    Thumbnail(String),
}

/// Writes `report` to `path` as one self-contained HTML file, atomically (a reader never sees
/// half a report). Plot PNGs are read from disk now; SVG links are made relative to `path`'s
/// directory.
pub fn write_report(path: &Path, report: &Report) -> Result<(), ReportError> {
    let html = render(path, report)?;
    crate::util::write_atomic(path, html.as_bytes()).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn render(path: &Path, report: &Report) -> Result<String, ReportError> {
    let invalid = |message: String| ReportError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    for (i, s) in report.sections.iter().enumerate() {
        let well_formed = !s.id.is_empty()
            && s.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed {
            return Err(invalid(format!(
                "section {:?}: id {:?} must be made of a-z, 0-9 and '-'",
                s.title, s.id
            )));
        }
        if s.id == SUMMARY_ID || report.sections[..i].iter().any(|o| o.id == s.id) {
            return Err(invalid(format!(
                "section id {:?} is already taken (by another section or the run summary)",
                s.id
            )));
        }
    }
    let report_dir = path.parent().unwrap_or(Path::new("."));
    let mut html = Html::default();
    let title = escape(&report.title);
    html.push(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <meta name=\"generator\" content=\"clipflow {}\">\n<title>{title}</title>\n\
         <style>\n{CSS}{MAP_CSS}</style>\n</head>\n<body>\n<div class=\"layout\">\n",
        env!("CARGO_PKG_VERSION")
    ));
    contents(&mut html, report);
    html.push("<main>\n<header class=\"page-header\">\n");
    html.push(&format!("<h1>{title}</h1>\n"));
    if let Some(sub) = &report.subtitle {
        html.push(&format!("<p class=\"subtitle\">{}</p>\n", escape(sub)));
    }
    html.push("</header>\n");
    summary(&mut html, &report.summary).map_err(invalid)?;
    let mut maps = map::MapPage::default();
    for section in &report.sections {
        html.push(&format!(
            "<section id=\"{}\" class=\"analysis\">\n<h2>{}</h2>\n",
            section.id,
            escape(&section.title)
        ));
        if let Some(note) = &section.note {
            html.push(&format!("<p class=\"section-note\">{}</p>\n", escape(note)));
        }
        if section.blocks.is_empty() {
            html.push("<p class=\"empty\">Nothing to show.</p>\n");
        }
        for block in &section.blocks {
            match block {
                Block::Text(text) => html.push(&format!("<p>{}</p>\n", escape(text))),
                Block::Table {
                    title,
                    table,
                    total_rows,
                    max_rows,
                } => {
                    let more = format!("in <code>tables/{}.parquet</code>", escape(&table.name));
                    data_table(&mut html, title, table, *total_rows, *max_rows, &more)
                        .map_err(|m| invalid(format!("section {}: {m}", section.id)))?
                }
                Block::Plot { title, png, svg } => plot(&mut html, report_dir, title, png, svg)?,
                Block::Gallery(gallery) => gallery_html(&mut html, gallery)
                    .map_err(|m| invalid(format!("section {}: {m}", section.id)))?,
                Block::Pairs(pairs) => pairs_html(&mut html, pairs)
                    .map_err(|m| invalid(format!("section {}: {m}", section.id)))?,
                Block::Map(m) => html.push(
                    &maps
                        .render(report_dir, m)
                        .map_err(|m| invalid(format!("section {}: {m}", section.id)))?,
                ),
            }
        }
        html.push("</section>\n");
    }
    html.push(&format!(
        "<footer class=\"page-footer\">Written by clipflow {}. Every number in this report is in \
         <code>tables/</code>; plots are also in <code>plots/</code> as PNG and SVG.</footer>\n",
        env!("CARGO_PKG_VERSION")
    ));
    html.push("</main>\n</div>\n");
    if !maps.is_empty() {
        html.push(&maps.shared());
    }
    html.push(&format!("<script>\n{JS}{LAZY_JS}"));
    if !maps.is_empty() {
        html.push(MAP_JS);
    }
    html.push("</script>\n</body>\n</html>\n");
    Ok(html.0)
}

/// The page being written. `push` keeps the call sites short; formatting into a String cannot
/// fail.
#[derive(Default)]
struct Html(String);

impl Html {
    fn push(&mut self, s: &str) {
        self.0.push_str(s);
    }
}

fn contents(html: &mut Html, report: &Report) {
    html.push(
        "<nav class=\"toc\" aria-label=\"Contents\">\n<p class=\"toc-title\">Contents</p>\n<ol>\n",
    );
    html.push(&format!(
        "<li><a href=\"#{SUMMARY_ID}\">Run summary</a></li>\n"
    ));
    for s in &report.sections {
        html.push(&format!(
            "<li><a href=\"#{}\">{}</a></li>\n",
            s.id,
            escape(&s.title)
        ));
    }
    html.push("</ol>\n</nav>\n");
}

fn key_values(html: &mut Html, pairs: &[(String, String)]) {
    html.push("<dl class=\"kv\">\n");
    for (k, v) in pairs {
        // Paths and digests are long unbroken strings: monospace, wrapped anywhere.
        let mono = matches!(
            k.to_ascii_lowercase().as_str(),
            "path" | "sha256" | "hash" | "file" | "dir" | "directory" | "out" | "output"
        );
        html.push(&format!(
            "<dt>{}</dt><dd{}>{}</dd>\n",
            escape(k),
            if mono { " class=\"mono\"" } else { "" },
            escape(v)
        ));
    }
    html.push("</dl>\n");
}

fn summary(html: &mut Html, summary: &RunSummary) -> Result<(), String> {
    html.push(&format!(
        "<section id=\"{SUMMARY_ID}\" class=\"summary\">\n<h2>Run summary</h2>\n<div class=\"cards\">\n"
    ));
    if !summary.facts.is_empty() {
        html.push("<div class=\"card\">\n<h3>Run</h3>\n");
        key_values(html, &summary.facts);
        html.push("</div>\n");
    }
    for (i, model) in summary.models.iter().enumerate() {
        let name = model
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.as_str());
        html.push(&format!("<div class=\"card\">\n<h3>Model {}</h3>\n", i + 1));
        if let Some(name) = name {
            html.push(&format!("<p class=\"model-name\">{}</p>\n", escape(name)));
        }
        let rest: Vec<(String, String)> =
            model.iter().filter(|(k, _)| k != "name").cloned().collect();
        key_values(html, &rest);
        html.push("</div>\n");
    }
    if !summary.timings.is_empty() {
        let longest = summary
            .timings
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| s.is_finite())
            .fold(0.0, f64::max);
        let total: f64 = summary
            .timings
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| s.is_finite() && *s > 0.0)
            .sum();
        html.push("<div class=\"card\">\n<h3>Timings</h3>\n<table class=\"timings\">\n<tbody>\n");
        for (stage, seconds) in &summary.timings {
            let share = if longest > 0.0 && seconds.is_finite() {
                (seconds / longest * 100.0).clamp(0.0, 100.0)
            } else {
                0.0
            };
            html.push(&format!(
                "<tr><th scope=\"row\">{}</th><td class=\"bar\"><span style=\"width:{share:.1}%\"></span></td><td class=\"num\">{}</td></tr>\n",
                escape(stage),
                format_seconds(*seconds)
            ));
        }
        html.push(&format!(
            "</tbody>\n<tfoot><tr><th scope=\"row\">total</th><td></td><td class=\"num\">{}</td></tr></tfoot>\n</table>\n</div>\n",
            format_seconds(total)
        ));
    }
    let (state, text) = if summary.error_count == 0 && !summary.read_images {
        (
            "ok",
            "No image was read here: this page analyses embeddings another run or tool wrote."
                .to_string(),
        )
    } else if summary.error_count == 0 {
        ("ok", "Every item went through every stage.".to_string())
    } else {
        (
            "bad",
            format!(
                "item{} failed in some stage; listed in <code>errors.parquet</code>.",
                if summary.error_count == 1 { "" } else { "s" }
            ),
        )
    };
    html.push(&format!(
        "<div class=\"card errors {state}\">\n<h3>Errors</h3>\n<p class=\"big\">{}</p>\n<p>{text}</p>\n</div>\n",
        format_int(summary.error_count.try_into().unwrap_or(i64::MAX))
    ));
    html.push("</div>\n");
    if let Some(errors) = &summary.errors {
        let shown = errors.rows().min(MAX_ERROR_ROWS);
        let hidden = summary.error_count.max(errors.rows()) - shown;
        let more = format!(
            "{} more error{} in <code>errors.parquet</code>",
            format_int(hidden.try_into().unwrap_or(i64::MAX)),
            if hidden == 1 { "" } else { "s" }
        );
        data_table_with_note(
            html,
            "First errors",
            errors,
            summary.error_count.max(errors.rows()),
            shown,
            (hidden > 0).then_some(more.as_str()),
        )
        .map_err(|m| format!("error table: {m}"))?;
    }
    if !summary.config_yaml.is_empty() {
        html.push(&format!(
            "<details class=\"config\">\n<summary>Configuration</summary>\n<pre><code>{}</code></pre>\n</details>\n",
            escape(summary.config_yaml.trim_end())
        ));
    }
    html.push("</section>\n");
    Ok(())
}

fn column_len(c: &Column) -> usize {
    match c {
        Column::Text(v) => v.len(),
        Column::Float(v) => v.len(),
        Column::Int(v) => v.len(),
    }
}

/// A data table showing the first `max_rows` rows; `more_where` ends the "N more rows ..." note.
fn data_table(
    html: &mut Html,
    title: &str,
    table: &Table,
    total_rows: usize,
    max_rows: usize,
    more_where: &str,
) -> Result<(), String> {
    let total_rows = total_rows.max(table.rows());
    let hidden = total_rows.saturating_sub(max_rows.min(table.rows()));
    let note = format!(
        "{} more row{} {more_where}",
        format_int(hidden.try_into().unwrap_or(i64::MAX)),
        if hidden == 1 { "" } else { "s" }
    );
    data_table_with_note(
        html,
        title,
        table,
        total_rows,
        max_rows,
        (hidden > 0).then_some(note.as_str()),
    )
}

/// A data table showing the first `max_rows` rows, then `more` (HTML) as a note if given.
fn data_table_with_note(
    html: &mut Html,
    title: &str,
    table: &Table,
    total_rows: usize,
    max_rows: usize,
    more: Option<&str>,
) -> Result<(), String> {
    let rows = table.rows();
    for (name, column) in &table.columns {
        if column_len(column) != rows {
            return Err(format!(
                "table {}: column {name} has {} rows, not {rows}",
                table.name,
                column_len(column)
            ));
        }
    }
    let shown = rows.min(max_rows);
    html.push(&format!(
        "<figure class=\"table-block\">\n<figcaption>{} <span class=\"dim\">{} row{}</span></figcaption>\n",
        escape(title),
        format_int(total_rows.max(rows).try_into().unwrap_or(i64::MAX)),
        if total_rows.max(rows) == 1 { "" } else { "s" }
    ));
    if table.columns.is_empty() {
        html.push("<p class=\"empty\">No columns.</p>\n</figure>\n");
        return Ok(());
    }
    html.push("<div class=\"table-scroll\">\n<table class=\"data\">\n<thead><tr>");
    for (name, column) in &table.columns {
        let kind = if matches!(column, Column::Text(_)) {
            "text"
        } else {
            "num"
        };
        html.push(&format!(
            "<th class=\"{kind}\" title=\"Sort by {0}\">{0}</th>",
            escape(name)
        ));
    }
    html.push("</tr></thead>\n<tbody>\n");
    // Decimals are chosen per column over the shown rows, so the column aligns on the point.
    let decimals: Vec<usize> = table
        .columns
        .iter()
        .map(|(_, c)| match c {
            Column::Float(v) => column_decimals(&v[..shown]),
            _ => 0,
        })
        .collect();
    let mut row = String::new();
    for i in 0..shown {
        row.clear();
        row.push_str("<tr>");
        for ((_, column), &decimals) in table.columns.iter().zip(&decimals) {
            // `data-v` carries the exact value for sorting; formatting would lose it.
            let _ = match column {
                Column::Text(v) => match &v[i] {
                    Some(s) => write!(row, "<td>{}</td>", escape(s)),
                    None => write!(row, "<td class=\"missing\">—</td>"),
                },
                Column::Float(v) => match v[i] {
                    Some(x) if x.is_nan() => {
                        write!(row, "<td class=\"num nan\" data-v=\"NaN\">NaN</td>")
                    }
                    Some(x) => write!(
                        row,
                        "<td class=\"num\" data-v=\"{x}\">{}</td>",
                        format_float(x, decimals)
                    ),
                    None => write!(row, "<td class=\"num missing\">—</td>"),
                },
                Column::Int(v) => match v[i] {
                    Some(x) => write!(
                        row,
                        "<td class=\"num\" data-v=\"{x}\">{}</td>",
                        format_int(x)
                    ),
                    None => write!(row, "<td class=\"num missing\">—</td>"),
                },
            };
        }
        row.push_str("</tr>\n");
        html.push(&row);
    }
    html.push("</tbody>\n</table>\n</div>\n");
    if let Some(more) = more {
        html.push(&format!("<p class=\"more\">{more}</p>\n"));
    }
    html.push("</figure>\n");
    Ok(())
}

fn plot(
    html: &mut Html,
    report_dir: &Path,
    title: &str,
    png: &Path,
    svg: &Option<PathBuf>,
) -> Result<(), ReportError> {
    let bytes = std::fs::read(png).map_err(|source| ReportError::Io {
        path: png.to_path_buf(),
        source,
    })?;
    let (w, h) = png_size(&bytes).ok_or_else(|| ReportError::NotPng {
        path: png.to_path_buf(),
        title: title.to_string(),
    })?;
    let title = escape(title);
    // The picture is decoded when it nears the viewport (assets/lazy.js): the placeholder
    // keeps its size so the page does not jump.
    html.push(&format!(
        "<figure class=\"plot\">\n<figcaption>{title}</figcaption>\n\
         <div class=\"lazy\" style=\"max-width:{w}px;aspect-ratio:{w}/{h}\"><template>\
         <img src=\"data:image/png;base64,{}\" width=\"{w}\" height=\"{h}\" alt=\"{title}\" decoding=\"async\">\
         </template></div>\n",
        base64(&bytes)
    ));
    if let Some(svg) = svg {
        html.push(&format!(
            "<p class=\"plot-links\"><a href=\"{}\">SVG</a></p>\n",
            escape(&relative_href(report_dir, svg))
        ));
    }
    html.push("</figure>\n");
    Ok(())
}

/// Image types every browser shows inline.
const EMBEDDABLE: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];

/// An `<img>` of an embeddable thumbnail, or a "no image" placeholder.
fn thumbnail_html(t: Option<&Thumbnail>, alt: &str, what: &str) -> Result<String, String> {
    match t {
        Some(t) => {
            if !EMBEDDABLE.contains(&t.mime) {
                return Err(format!(
                    "{what}: thumbnail type {:?} cannot be embedded",
                    t.mime
                ));
            }
            Ok(format!(
                "<img src=\"data:{};base64,{}\" alt=\"{alt}\">",
                t.mime,
                base64(&t.bytes)
            ))
        }
        None => Ok("<span class=\"no-image\">no image</span>".to_string()),
    }
}

fn pairs_html(html: &mut Html, gallery: &PairGallery) -> Result<(), String> {
    html.push(&format!(
        "<div class=\"gallery-block\">\n<h3>{}</h3>\n<div class=\"lazy lazy-gallery\"><template>\n<div class=\"pairs\">\n",
        escape(&gallery.title)
    ));
    let what = format!("pairs {:?}", gallery.title);
    for p in &gallery.pairs {
        let (class, verdict) = if p.leak {
            ("bad", "<span class=\"verdict bad\">leak</span>")
        } else {
            ("ok", "")
        };
        html.push(&format!(
            "<article class=\"pair {class}\">\n<div class=\"pair-images\">"
        ));
        for side in [&p.a, &p.b] {
            let label = escape(&side.label);
            html.push(&format!(
                "<figure class=\"hit {class}\"><div class=\"thumb\">{}</div>\
                 <figcaption class=\"hit-label\" title=\"{label}\">{label}</figcaption></figure>",
                thumbnail_html(side.thumbnail.as_ref(), &label, &what)?
            ));
        }
        html.push(&format!(
            "</div>\n<p class=\"pair-meta\"><span class=\"score\">cosine {}</span>{}{verdict}</p>\n</article>\n",
            format_float(p.cosine, 4),
            p.groups
                .as_ref()
                .map(|g| format!("<span class=\"pair-groups\">{}</span>", escape(g)))
                .unwrap_or_default()
        ));
    }
    html.push("</div>\n</template></div>\n</div>\n");
    Ok(())
}

fn gallery_html(html: &mut Html, gallery: &Gallery) -> Result<(), String> {
    html.push(&format!(
        "<div class=\"gallery-block\">\n<h3>{}</h3>\n<div class=\"lazy lazy-gallery\"><template>\n<div class=\"gallery\">\n",
        escape(&gallery.title)
    ));
    for q in &gallery.queries {
        let first = match q.hits.first() {
            Some(h) if h.correct => "<span class=\"verdict ok\">top-1 correct</span>",
            Some(_) => "<span class=\"verdict bad\">top-1 wrong</span>",
            None => "",
        };
        html.push(&format!(
            "<article class=\"query\">\n<header><p class=\"query-text\">{}</p>",
            escape(&q.query)
        ));
        if let Some(expected) = &q.expected {
            html.push(&format!(
                "<p class=\"expected\">expected <b>{}</b></p>",
                escape(expected)
            ));
        }
        html.push(first);
        html.push("</header>\n<ol class=\"hits\">\n");
        for (rank, hit) in q.hits.iter().enumerate() {
            let (class, mark) = if hit.correct {
                ("ok", "✓")
            } else {
                ("bad", "✗")
            };
            let label = escape(&hit.label);
            let picture = match &hit.thumbnail {
                Some(t) => {
                    if !EMBEDDABLE.contains(&t.mime) {
                        return Err(format!(
                            "gallery {:?}: thumbnail type {:?} cannot be embedded",
                            gallery.title, t.mime
                        ));
                    }
                    format!(
                        "<img src=\"data:{};base64,{}\" alt=\"{label}\">",
                        t.mime,
                        base64(&t.bytes)
                    )
                }
                None => "<span class=\"no-image\">no image</span>".to_string(),
            };
            html.push(&format!(
                "<li class=\"hit {class}\"><div class=\"thumb\">{picture}</div>\
                 <div class=\"hit-meta\"><span class=\"rank\">#{}</span><span class=\"mark\" aria-label=\"{}\">{mark}</span><span class=\"score\">{}</span></div>\
                 <div class=\"hit-label\" title=\"{label}\">{label}</div></li>\n",
                rank + 1,
                if hit.correct { "correct" } else { "incorrect" },
                format_float(hit.score, 3)
            ));
        }
        html.push("</ol>\n</article>\n");
    }
    html.push("</div>\n</template></div>\n</div>\n");
    Ok(())
}
