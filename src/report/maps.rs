//! The interactive maps of `report.html`, built from a run directory's files.
//!
//! One map per 2-D projection the geometry stage wrote (`tables/projection_coordinates`: one
//! per model × variant × method × perplexity), each point carrying what the analysis knows of
//! it: label (from the coordinates), cluster ids (`tables/cluster_assignments`, one per
//! clustering method), the zero-shot prediction and whether it is right
//! (`tables/zero_shot_predictions`), and, when the run read the dataset ([`Images`]), the
//! caption and a thumbnail of the dataset image. Thumbnails are made once for all maps (a shared sprite
//! sheet) and show the original image, also on the maps of noisy variants.
//!
//! The maps replace the static PNGs of the same projections in the page; those files stay in
//! `plots/` as the printable copy, and each map links them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::{
    Block, Images, InteractiveMap, MapPoint, RunReportError, Section, ThumbnailSheet,
    ThumbnailSheetBuilder, ZeroShotCall,
};
use crate::config::ReportConfig;
use crate::store::{self, Table};

/// The section that holds the projections (`run/report.rs`'s anchor for them).
const SECTION: &str = "projections";

/// Images read from the dataset at a time while the thumbnails are made: bounds memory.
const FETCH_CHUNK: usize = 256;

/// Puts an interactive map of every projection into the projections section of `sections`,
/// in place of the static PNGs of the same maps (the first of which marks the spot), and
/// adds a note to the section when thumbnails were capped or failed. Does nothing when the
/// run has no `projection_coordinates` table.
pub fn add_maps(
    sections: &mut [Section],
    run_dir: &Path,
    tables_dir: &Path,
    images: Option<Images<'_>>,
    config: &ReportConfig,
) -> Result<(), RunReportError> {
    let built = map_blocks(run_dir, tables_dir, images, config)?;
    if built.maps.is_empty() {
        return Ok(());
    }
    let Some(section) = sections.iter_mut().find(|s| s.id == SECTION) else {
        return Ok(());
    };
    let covered: HashSet<&str> = built.covered_plots.iter().map(String::as_str).collect();
    let is_covered = |b: &Block| match b {
        Block::Plot { png, .. } => png
            .file_stem()
            .is_some_and(|s| covered.contains(s.to_string_lossy().as_ref())),
        _ => false,
    };
    let at = section
        .blocks
        .iter()
        .position(is_covered)
        .or_else(|| {
            section
                .blocks
                .iter()
                .position(|b| matches!(b, Block::Plot { .. } | Block::Gallery(_)))
        })
        .unwrap_or(section.blocks.len());
    let before = section.blocks[..at]
        .iter()
        .filter(|b| is_covered(b))
        .count();
    section.blocks.retain(|b| !is_covered(b));
    let at = at - before;
    let notes = built.notes.into_iter().map(Block::Text);
    section.blocks.splice(at..at, notes.chain(built.maps));
    Ok(())
}

/// The maps of a run, the plots they stand for, and what to tell the reader.
pub struct MapBlocks {
    /// `Block::Map`s in the order of `projection_coordinates`.
    pub maps: Vec<Block>,
    /// File stems (`projection_<model>_<method>_<variant>`) of the static plots of these maps.
    pub covered_plots: Vec<String>,
    /// Thumbnails left out or unreadable, said once.
    pub notes: Vec<String>,
}

/// One map's rows in `projection_coordinates`.
#[derive(Debug, Clone, PartialEq)]
struct MapKey {
    model: String,
    variant: String,
    method: String,
    perplexity: Option<f64>,
}

/// Builds the interactive maps from `tables_dir`'s `projection_coordinates`,
/// `projection_quality`, `cluster_assignments` and `zero_shot_predictions` (each optional but
/// the first), with captions and thumbnails from the dataset when `images` is given.
pub fn map_blocks(
    run_dir: &Path,
    tables_dir: &Path,
    images: Option<Images<'_>>,
    config: &ReportConfig,
) -> Result<MapBlocks, RunReportError> {
    let mut out = MapBlocks {
        maps: Vec::new(),
        covered_plots: Vec::new(),
        notes: Vec::new(),
    };
    let read = |name: &str| -> Result<Option<Table>, store::StoreError> {
        let path = tables_dir.join(format!("{name}.parquet"));
        if path.exists() {
            store::read_table(&path).map(Some)
        } else {
            Ok(None)
        }
    };
    let Some(coords) = read("projection_coordinates")? else {
        return Ok(out);
    };
    let (Some(model), Some(variant), Some(method), Some(id), Some(x), Some(y)) = (
        coords.texts("model"),
        coords.texts("variant"),
        coords.texts("method"),
        coords.texts("id"),
        coords.floats("x"),
        coords.floats("y"),
    ) else {
        return Ok(out);
    };
    let perplexity = coords.floats("perplexity");
    let label = coords.texts("label");
    let text = |v: &[Option<String>], i: usize| v[i].clone().unwrap_or_default();

    // Rows per map, maps in order of first appearance.
    let mut order: Vec<MapKey> = Vec::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for i in 0..coords.rows() {
        let key = MapKey {
            model: text(model, i),
            variant: text(variant, i),
            method: text(method, i),
            perplexity: perplexity.and_then(|p| p[i]),
        };
        match order.iter().position(|k| *k == key) {
            Some(k) => rows[k].push(i),
            None => {
                order.push(key);
                rows.push(vec![i]);
            }
        }
    }

    let quality = read("projection_quality")?;
    let clusters = Clusters::from(read("cluster_assignments")?.as_ref());
    let zero_shot = ZeroShot::from(read("zero_shot_predictions")?.as_ref());

    // Captions and thumbnails, once for every map.
    let mut wanted: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for s in id.iter().flatten() {
        if seen.insert(s.as_str()) {
            wanted.push(s.as_str());
        }
    }
    let map_items: Vec<crate::dataset::Item> = images
        .map(|p| p.dataset.items_with_ids(&seen))
        .unwrap_or_default();
    let captions: HashMap<&str, &str> = map_items
        .iter()
        .filter_map(|it| it.captions.first().map(|c| (it.id.as_str(), c.as_str())))
        .collect();
    let (sheet, thumbs) = match images {
        Some(images) if config.map_thumbnails > 0 => {
            let (sheet, thumbs, notes) = thumbnails(images, &wanted, config)?;
            out.notes.extend(notes);
            (Some(Arc::new(sheet)), thumbs)
        }
        _ => (None, HashMap::new()),
    };

    for (key, rows) in order.iter().zip(&rows) {
        let (title_method, stem_method, axis) = match (key.method.as_str(), key.perplexity) {
            ("tsne", Some(p)) => (
                format!("t-SNE (perplexity {p})"),
                format!("tsne_p{p}"),
                "t-SNE",
            ),
            ("tsne", None) => ("t-SNE".to_string(), "tsne".to_string(), "t-SNE"),
            ("umap", _) => ("UMAP".to_string(), "umap".to_string(), "UMAP"),
            ("pca", _) => ("PCA".to_string(), "pca".to_string(), "PCA"),
            (other, _) => (other.to_string(), slug(other), other),
        };
        let trust = quality
            .as_ref()
            .and_then(|q| trustworthiness(q, key))
            .map(|t| format!(", trustworthiness {t:.3}"))
            .unwrap_or_default();
        let methods = clusters.methods(&key.model, &key.variant);
        let points: Vec<MapPoint> = rows
            .iter()
            .map(|&i| {
                let pid = text(id, i);
                MapPoint {
                    x: x[i].unwrap_or(f64::NAN),
                    y: y[i].unwrap_or(f64::NAN),
                    label: label.and_then(|l| l[i].clone()),
                    caption: captions.get(pid.as_str()).map(|c| c.to_string()),
                    thumbnail: thumbs.get(pid.as_str()).copied(),
                    clusters: methods
                        .iter()
                        .map(|m| clusters.of(&key.model, &key.variant, m, &pid))
                        .collect(),
                    variant: Some(key.variant.clone()),
                    zero_shot: zero_shot.of(&key.model, &key.variant, &pid),
                    id: pid,
                }
            })
            .filter(|p| p.x.is_finite() && p.y.is_finite())
            .collect();
        let stem = format!(
            "projection_{}_{stem_method}_{}",
            slug(&key.model),
            slug(&key.variant)
        );
        let png = run_dir.join("plots").join(format!("{stem}.png"));
        let svg = png.with_extension("svg");
        let note = format!(
            "{} images{trust}{}",
            points.len(),
            if sheet.is_some() {
                "; thumbnails show the original image"
            } else {
                ""
            }
        );
        out.maps.push(Block::Map(Box::new(InteractiveMap {
            title: format!("{}: {title_method}, {}", key.model, key.variant),
            axis: axis.to_string(),
            note: Some(note),
            points,
            cluster_methods: methods,
            thumbnails: sheet.clone(),
            png: png.exists().then_some(png),
            svg: svg.exists().then_some(svg),
        })));
        out.covered_plots.push(stem);
    }
    Ok(out)
}

/// Safe file-name part, as the geometry stage names its plots.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn trustworthiness(q: &Table, key: &MapKey) -> Option<f64> {
    let (model, variant, method, trust) = (
        q.texts("model")?,
        q.texts("variant")?,
        q.texts("method")?,
        q.floats("trustworthiness")?,
    );
    let perplexity = q.floats("perplexity");
    (0..q.rows())
        .find(|&i| {
            model[i].as_deref() == Some(&key.model)
                && variant[i].as_deref() == Some(&key.variant)
                && method[i].as_deref() == Some(&key.method)
                && perplexity.and_then(|p| p[i]) == key.perplexity
        })
        .and_then(|i| trust[i])
}

/// Cluster ids by (model, variant, method, id), methods in table order.
#[derive(Default)]
struct Clusters {
    methods: BTreeMap<(String, String), Vec<String>>,
    ids: HashMap<(String, String, String, String), i64>,
}

impl Clusters {
    fn from(t: Option<&Table>) -> Clusters {
        let mut c = Clusters::default();
        let Some(t) = t else { return c };
        let (Some(model), Some(variant), Some(method), Some(id), Some(cluster)) = (
            t.texts("model"),
            t.texts("variant"),
            t.texts("method"),
            t.texts("id"),
            t.ints("cluster"),
        ) else {
            return c;
        };
        for i in 0..t.rows() {
            let (Some(mo), Some(va), Some(me), Some(id)) = (
                model[i].clone(),
                variant[i].clone(),
                method[i].clone(),
                id[i].clone(),
            ) else {
                continue;
            };
            let list = c.methods.entry((mo.clone(), va.clone())).or_default();
            if !list.contains(&me) {
                list.push(me.clone());
            }
            if let Some(k) = cluster[i] {
                c.ids.insert((mo, va, me, id), k);
            }
        }
        c
    }

    fn methods(&self, model: &str, variant: &str) -> Vec<String> {
        self.methods
            .get(&(model.to_string(), variant.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn of(&self, model: &str, variant: &str, method: &str, id: &str) -> Option<i64> {
        self.ids
            .get(&(
                model.to_string(),
                variant.to_string(),
                method.to_string(),
                id.to_string(),
            ))
            .copied()
    }
}

/// Zero-shot calls by (model, variant, id).
#[derive(Default)]
struct ZeroShot(HashMap<(String, String, String), ZeroShotCall>);

impl ZeroShot {
    fn from(t: Option<&Table>) -> ZeroShot {
        let mut z = ZeroShot::default();
        let Some(t) = t else { return z };
        let (Some(model), Some(variant), Some(id), Some(label), Some(predicted)) = (
            t.texts("model"),
            t.texts("variant"),
            t.texts("id"),
            t.texts("label"),
            t.texts("predicted"),
        ) else {
            return z;
        };
        // Calls made with perturbed prompts (a text variant) are not the map's.
        let text_variant = t.texts("text_variant");
        for i in 0..t.rows() {
            if text_variant
                .as_ref()
                .is_some_and(|tv| tv[i].as_deref().is_some_and(|v| v != "clean"))
            {
                continue;
            }
            let (Some(mo), Some(va), Some(id), Some(p)) = (
                model[i].clone(),
                variant[i].clone(),
                id[i].clone(),
                predicted[i].clone(),
            ) else {
                continue;
            };
            let correct = label[i].as_deref() == Some(p.as_str());
            z.0.insert(
                (mo, va, id),
                ZeroShotCall {
                    predicted: p,
                    correct,
                },
            );
        }
        z
    }

    fn of(&self, model: &str, variant: &str, id: &str) -> Option<ZeroShotCall> {
        self.0
            .get(&(model.to_string(), variant.to_string(), id.to_string()))
            .cloned()
    }
}

/// A sprite sheet, the index of each id's tile in it, and notes on what is missing.
type MapThumbnails = (ThumbnailSheet, HashMap<String, usize>, Vec<String>);

/// Thumbnails of the first `config.map_thumbnails` of `ids` (dataset images, read a chunk at a
/// time).
fn thumbnails(
    images: Images<'_>,
    ids: &[&str],
    config: &ReportConfig,
) -> Result<MapThumbnails, RunReportError> {
    let mut notes = Vec::new();
    let take = ids.len().min(config.map_thumbnails);
    if take < ids.len() {
        notes.push(format!(
            "The maps show thumbnails for {take} of their {} images (report.map_thumbnails); \
             the other points show their id, label and caption only.",
            ids.len()
        ));
    }
    let position: HashMap<&str, usize> = ids[..take]
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    // Dataset items in the order of `ids`.
    let mut items: Vec<Option<&crate::dataset::Item>> = vec![None; take];
    let wanted: HashSet<&str> = ids[..take].iter().copied().collect();
    let found = images.dataset.items_with_ids(&wanted);
    for item in &found {
        if let Some(&k) = position.get(item.id.as_str()) {
            items[k] = Some(item);
        }
    }
    let mut builder = ThumbnailSheetBuilder::new(config.map_thumbnail_size);
    let mut index = HashMap::new();
    let mut failed: Vec<String> = Vec::new();
    let present: Vec<&crate::dataset::Item> = items.iter().flatten().copied().collect();
    for chunk in present.chunks(FETCH_CHUNK) {
        let owned: Vec<crate::dataset::Item> = chunk.iter().map(|&i| i.clone()).collect();
        for (item, bytes) in owned.iter().zip(images.dataset.fetch(&owned)) {
            let decoded = bytes.and_then(|b| {
                crate::encode::preprocess::decode(&b, images.max_pixels)
                    .map_err(|e| e.reason.to_string())
            });
            match decoded {
                Ok(rgb) => {
                    let k = builder.add(&rgb)?;
                    index.insert(item.id.clone(), k);
                }
                Err(_) => failed.push(item.id.clone()),
            }
        }
    }
    let missing = take - present.len();
    if !failed.is_empty() || missing > 0 {
        let mut what = Vec::new();
        if !failed.is_empty() {
            what.push(format!(
                "{} could not be read or decoded (e.g. {})",
                failed.len(),
                failed[0]
            ));
        }
        if missing > 0 {
            what.push(format!("{missing} are not in the dataset listing"));
        }
        notes.push(format!(
            "Map thumbnails: of {take} images, {}; those points have no thumbnail.",
            what.join(" and ")
        ));
    }
    Ok((builder.finish()?, index, notes))
}
