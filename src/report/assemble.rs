//! Assembles `report.html` from what a run left on disk: `manifest.json` (config, models,
//! counts, timings), `errors.parquet`, `tables/` and `plots/`, plus gallery thumbnails read
//! from the dataset when the run's plan is at hand.
//!
//! It reads files rather than taking the analysis results in memory so that the report of a
//! sharded run (analysed by whichever shard finished last) and of `clipflow analyze` on a
//! foreign store come out of the same code, and a report can be rebuilt from a run directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{
    write_report, Block, Gallery, GalleryHit, GalleryQuery, Report, RunSummary, Section, Thumbnail,
};
use crate::config::ReportConfig;
use crate::dataset::Dataset;
use crate::store::{self, Table};

/// Rows shown of a detail table (per-item ranks, coordinates, diagrams, ...).
const DETAIL_ROWS: usize = 10;

/// Galleries per model: at most this many queries of the clean variant.
const GALLERY_QUERIES: usize = 8;

/// Rows of `retrieval_galleries` read for the galleries (a few queries' hits per variant).
const GALLERY_ROWS: usize = 100_000;

/// The dataset a run read, for thumbnails of the items the report shows.
#[derive(Clone, Copy)]
pub struct Images<'a> {
    pub dataset: &'a Dataset,
    /// The decoder's pixel limit (`dataset.max_pixels`).
    pub max_pixels: u64,
}

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RunReportError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}

/// Writes `<run_dir>/report.html` from the run directory's files; `images` (when the caller
/// read the dataset) lets galleries show thumbnails. The analysis notes come from the
/// manifest, or from `notes` where there is none (`clipflow analyze`).
pub fn write_run_report(
    run_dir: &Path,
    tables_dir: &Path,
    images: Option<Images<'_>>,
    config: &ReportConfig,
    notes: &[String],
) -> Result<PathBuf, RunReportError> {
    let manifest: Option<serde_json::Value> =
        std::fs::read_to_string(run_dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
    let mut tables = read_tables(tables_dir, config.max_table_rows)?;
    let plots = list_plots(&run_dir.join("plots"));
    let summary = summary(run_dir, manifest.as_ref())?;
    let thumbnails = Thumbnails { images, config };

    let mut sections = Vec::new();
    // What the analysis skipped or warned about, before the results it qualifies.
    let notes: Vec<Block> = match manifest
        .as_ref()
        .and_then(|m| m["analysis"]["notes"].as_array())
    {
        Some(list) => list
            .iter()
            .filter_map(|n| n.as_str())
            .map(|n| Block::Text(n.to_string()))
            .collect(),
        None => notes.iter().map(|n| Block::Text(n.clone())).collect(),
    };
    if !notes.is_empty() {
        sections.push(Section {
            id: "notes".into(),
            title: "Analysis notes".into(),
            note: Some("Analyses skipped or qualified, and why.".into()),
            blocks: notes,
        });
    }
    let mut used_plots: Vec<bool> = vec![false; plots.len()];
    for section in crate::analyze::sections() {
        let leading = |name: &str| section.summaries.contains(&name);
        let mine = |name: &str| section.prefixes.iter().any(|p| name.starts_with(p));
        let mut names: Vec<String> = tables.keys().filter(|n| mine(n)).cloned().collect();
        names.sort_by_key(|n| (!leading(n), n.clone()));
        // Summaries first, then the pictures and galleries, then the detail tables (few rows:
        // the Parquet and Markdown files hold them all).
        let (mut summaries, mut pictures, mut details) = (Vec::new(), Vec::new(), Vec::new());
        for name in names {
            let Some((table, total_rows)) = tables.remove(&name) else {
                continue;
            };
            if name == "retrieval_galleries" {
                pictures.extend(galleries(&table, &thumbnails));
                continue;
            }
            // Pair tables: a gallery of the strongest pairs, and the table as a detail.
            if let Some(what) = pair_gallery_title(&name) {
                pictures.extend(super::pairs::pair_galleries(
                    &table,
                    &|ids| thumbnails.of(ids),
                    what,
                ));
            }
            let leading = leading(&name);
            let block = Block::Table {
                title: name.replace('_', " "),
                table,
                total_rows,
                max_rows: if leading {
                    config.max_table_rows
                } else {
                    config.max_table_rows.min(DETAIL_ROWS)
                },
            };
            if leading {
                summaries.push(block);
            } else {
                details.push(block);
            }
        }
        for (i, (stem, png, svg)) in plots.iter().enumerate() {
            if !used_plots[i] && mine(stem) {
                used_plots[i] = true;
                pictures.push(Block::Plot {
                    title: stem.replace('_', " "),
                    png: png.clone(),
                    svg: svg.clone(),
                });
            }
        }
        let blocks: Vec<Block> = summaries
            .into_iter()
            .chain(pictures)
            .chain(details)
            .collect();
        if !blocks.is_empty() {
            sections.push(Section {
                id: section.anchor.to_string(),
                title: section.title.to_string(),
                note: Some(section.about.to_string()),
                blocks,
            });
        }
    }
    // Whatever no section claims still belongs in the report.
    let mut other: Vec<Block> = tables
        .into_iter()
        .map(|(name, (table, total_rows))| Block::Table {
            title: name.replace('_', " "),
            table,
            total_rows,
            max_rows: config.max_table_rows,
        })
        .collect();
    for (i, (stem, png, svg)) in plots.iter().enumerate() {
        if !used_plots[i] {
            other.push(Block::Plot {
                title: stem.replace('_', " "),
                png: png.clone(),
                svg: svg.clone(),
            });
        }
    }
    if !other.is_empty() {
        sections.push(Section {
            id: "other".into(),
            title: "Other results".into(),
            note: None,
            blocks: other,
        });
    }

    let name = manifest
        .as_ref()
        .and_then(|m| m["name"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "analysis".into())
        });
    let subtitle = manifest
        .as_ref()
        .and_then(|m| m["dataset"]["source"].as_str())
        .map(|s| format!("dataset: {s}"));
    super::maps::add_maps(&mut sections, run_dir, tables_dir, images, config)?;
    let report = Report {
        title: format!("clipflow study: {name}"),
        subtitle,
        summary,
        sections,
    };
    let path = run_dir.join("report.html");
    write_report(&path, &report)?;
    Ok(path)
}

/// The first rows of every `*.parquet` table in `dir` and its row count, by name: the page
/// shows `max_rows` of a table at most, so a million-row table costs its first rows only.
fn read_tables(
    dir: &Path,
    max_rows: usize,
) -> Result<BTreeMap<String, (Table, usize)>, store::StoreError> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    paths.sort();
    for p in paths {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rows = if name == "retrieval_galleries" || pair_gallery_title(&name).is_some() {
            GALLERY_ROWS
        } else {
            max_rows
        };
        let (t, total) = store::read_table_head(&p, rows)?;
        out.insert(name, (t, total));
    }
    Ok(out)
}

/// The title of the pair gallery drawn from table `name`, for the `duplicates` stage's pair
/// tables (read whole up to `GALLERY_ROWS`, so every model's strongest pairs are there).
fn pair_gallery_title(name: &str) -> Option<&'static str> {
    match name {
        "duplicate_pairs" => Some("most similar image pairs"),
        "duplicate_leaks" => Some("strongest pairs across groups"),
        _ => None,
    }
}

/// PNG plots in `dir` as (stem, png, svg if present), sorted by name.
fn list_plots(dir: &Path) -> Vec<(String, PathBuf, Option<PathBuf>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut pngs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    pngs.into_iter()
        .map(|png| {
            let stem = png
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let svg = png.with_extension("svg");
            (stem, png, svg.exists().then_some(svg))
        })
        .collect()
}

fn summary(
    run_dir: &Path,
    manifest: Option<&serde_json::Value>,
) -> Result<RunSummary, store::StoreError> {
    let errors_path = run_dir.join("errors.parquet");
    let errors = if errors_path.exists() {
        Some(store::read_table(&errors_path)?)
    } else {
        None
    };
    let error_count = errors.as_ref().map_or(0, Table::rows);
    let Some(m) = manifest else {
        return Ok(RunSummary {
            config_yaml: String::new(),
            facts: vec![("results".into(), run_dir.display().to_string())],
            models: Vec::new(),
            timings: Vec::new(),
            errors: errors.filter(|t| t.rows() > 0),
            error_count,
            read_images: false,
        });
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "–".into(),
        other => other.to_string(),
    };
    let mut facts = vec![
        ("study".to_string(), text(&m["name"])),
        ("config file".to_string(), text(&m["config_file"])),
        ("dataset".to_string(), text(&m["dataset"]["source"])),
        ("format".to_string(), text(&m["dataset"]["format"])),
        ("items".to_string(), text(&m["dataset"]["items"])),
        (
            "items before sampling".to_string(),
            text(&m["dataset"]["items_before_sampling"]),
        ),
        ("classes".to_string(), text(&m["dataset"]["classes"])),
        ("seed".to_string(), text(&m["config"]["seed"])),
        ("class prompts".to_string(), text(&m["prompts"])),
    ];
    if let Some(vs) = m["variants"].as_array() {
        let names: Vec<String> = vs.iter().map(|v| text(&v["name"])).collect();
        facts.push(("image variants".into(), names.join(", ")));
    }
    // Which preprocessing made the tensors: `fast` is not Pillow's pixels, so a reader must
    // see it beside the numbers.
    if let Some(mode) = m["preprocess"]["mode"].as_str() {
        let mode = match mode {
            "fast" => {
                "fast (JPEG DCT-domain downscale, then exact resampling; not Pillow's pixels)"
            }
            _ => "exact (bit for bit Pillow)",
        };
        facts.push(("preprocessing".into(), mode.to_string()));
    }
    if let Some(cs) = m["counts"]["embeddings"].as_array() {
        for c in cs {
            facts.push((
                format!("{} {} embeddings", text(&c["model"]), text(&c["modality"])),
                text(&c["rows"]),
            ));
        }
    }
    facts.push(("errors".into(), error_count.to_string()));
    facts.push(("clipflow".into(), text(&m["clipflow_version"])));

    let models = m["models"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|model| {
                    let mut kv = Vec::new();
                    for key in [
                        "name",
                        "path",
                        "layout",
                        "embedding_dim",
                        "input_size",
                        "context_length",
                        "batch_size",
                    ] {
                        let value = match &model[key] {
                            serde_json::Value::Null => continue,
                            serde_json::Value::Array(a) => {
                                a.iter().map(text).collect::<Vec<_>>().join(" × ")
                            }
                            v => text(v),
                        };
                        kv.push((key.replace('_', " "), value));
                    }
                    // The rules the reference libraries disagree on, and whose they are.
                    for (key, from) in [
                        ("crop_rounding", "crop_rounding_from"),
                        ("transparency", "transparency_from"),
                    ] {
                        if let Some(rule) = model["preprocess"][key].as_str() {
                            let from = model["preprocess"][from].as_str().unwrap_or("–");
                            kv.push((key.replace('_', " "), format!("{rule} ({from})")));
                        }
                    }
                    if !model["device"].is_null() {
                        kv.push(("device".into(), text(&model["device"]["device"])));
                        if let Some(r) = model["device"]["fallback_reason"].as_str() {
                            kv.push(("device note".into(), r.to_string()));
                        }
                    }
                    if let Some(files) = model["files"].as_array() {
                        for f in files {
                            let path = text(&f["path"]);
                            let name = Path::new(&path)
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or(path.clone());
                            let sha = f["sha256"].as_str().and_then(|s| s.get(..12));
                            kv.push((name, format!("sha256 {}…", sha.unwrap_or("–"))));
                        }
                    }
                    kv
                })
                .collect()
        })
        .unwrap_or_default();

    let mut timings: Vec<(String, f64)> = Vec::new();
    let mut add = |name: String, secs: Option<f64>| {
        if let Some(s) = secs {
            match timings.iter_mut().find(|(n, _)| *n == name) {
                Some((_, t)) => *t += s,
                None => timings.push((name, s)),
            }
        }
    };
    for shard in m["stage_timings"].as_array().into_iter().flatten() {
        let secs = &shard["seconds"];
        add("plan".into(), secs["plan"].as_f64());
        add("load models".into(), secs["load_models"].as_f64());
        for e in shard["encode"].as_array().into_iter().flatten() {
            add(
                format!("encode {} {}", text(&e["model"]), text(&e["modality"])),
                e["seconds"].as_f64(),
            );
        }
    }
    add("finalize".into(), m["finalize_seconds"].as_f64());
    match m["analysis"]["stage_seconds"].as_object() {
        Some(stages) => {
            for (stage, secs) in stages {
                add(format!("analysis: {stage}"), secs.as_f64());
            }
        }
        None => add("analysis".into(), m["analysis"]["seconds"].as_f64()),
    }

    let config_yaml = serde_norway::to_string(&m["config"]).unwrap_or_default();
    Ok(RunSummary {
        config_yaml,
        facts,
        models,
        timings,
        errors: errors.filter(|t| t.rows() > 0),
        error_count,
        read_images: true,
    })
}

/// Thumbnails of dataset items by id, when the run's dataset is at hand.
struct Thumbnails<'a> {
    images: Option<Images<'a>>,
    config: &'a ReportConfig,
}

impl Thumbnails<'_> {
    /// Thumbnails of `ids` (None for an id the dataset lacks or an image that fails).
    fn of(&self, ids: &[&str]) -> HashMap<String, Thumbnail> {
        let mut out = HashMap::new();
        let Some(images) = self.images else {
            return out;
        };
        let wanted: std::collections::HashSet<&str> = ids.iter().copied().collect();
        let items = images.dataset.items_with_ids(&wanted);
        let max_pixels = images.max_pixels;
        for (item, bytes) in items.iter().zip(images.dataset.fetch(&items)) {
            let Ok(bytes) = bytes else { continue };
            let Ok(rgb) = crate::encode::preprocess::decode(&bytes, max_pixels) else {
                continue;
            };
            if let Ok(t) = Thumbnail::jpeg_from_rgb(&rgb, self.config.thumbnail_size) {
                out.insert(item.id.clone(), t);
            }
        }
        out
    }
}

/// Text-to-image galleries of the clean images, one per model.
fn galleries(table: &Table, thumbnails: &Thumbnails<'_>) -> Vec<Block> {
    let (
        Some(model),
        Some(variant),
        Some(direction),
        Some(query_id),
        Some(query_text),
        Some(hit_id),
        Some(score),
        Some(positive),
    ) = (
        table.texts("model"),
        table.texts("variant"),
        table.texts("direction"),
        table.texts("query_id"),
        table.texts("query_text"),
        table.texts("hit_id"),
        table.floats("score"),
        table.ints("positive"),
    )
    else {
        return Vec::new();
    };
    let hit_text = table.texts("hit_text");
    // Clean queries only: perturbed texts (a text variant) against the same images are not
    // what the galleries show.
    let text_variant = table.texts("text_variant");
    let rows: Vec<usize> = (0..table.rows())
        .filter(|&i| {
            variant[i].as_deref() == Some("clean")
                && direction[i].as_deref() == Some("text_to_image")
                && text_variant.is_none_or(|t| t[i].as_deref().is_none_or(|v| v == "clean"))
        })
        .collect();
    let mut models: Vec<&str> = rows.iter().filter_map(|&i| model[i].as_deref()).collect();
    models.dedup();
    let ids: Vec<&str> = rows.iter().filter_map(|&i| hit_id[i].as_deref()).collect();
    let thumbs = thumbnails.of(&ids);
    let mut out = Vec::new();
    for name in models {
        let mut queries: Vec<GalleryQuery> = Vec::new();
        let mut current: Option<&str> = None;
        for &i in rows.iter().filter(|&&i| model[i].as_deref() == Some(name)) {
            let q = query_id[i].as_deref().unwrap_or_default();
            if current != Some(q) {
                if queries.len() == GALLERY_QUERIES {
                    break;
                }
                current = Some(q);
                queries.push(GalleryQuery {
                    query: query_text[i].clone().unwrap_or_else(|| q.to_string()),
                    expected: Some(q.to_string()),
                    hits: Vec::new(),
                });
            }
            let id = hit_id[i].clone().unwrap_or_default();
            let label = hit_text
                .and_then(|t| t[i].clone())
                .map(|t| format!("{id}: {t}"))
                .unwrap_or_else(|| id.clone());
            if let Some(last) = queries.last_mut() {
                last.hits.push(GalleryHit {
                    label,
                    score: score[i].unwrap_or(f64::NAN),
                    correct: positive[i] == Some(1),
                    thumbnail: thumbs.get(&id).cloned(),
                });
            }
        }
        if !queries.is_empty() {
            out.push(Block::Gallery(Gallery {
                title: format!("{name}: text → image, clean images"),
                queries,
            }));
        }
    }
    out
}
