//! `exports/embedding-atlas/`: the run's 2-D maps as files Apple's embedding-atlas opens.
//!
//! One file per map of the clean images (per model, method and perplexity): the map's
//! coordinates from `tables/projection_coordinates`, each point's nearest neighbours in the
//! model's image-embedding space (cosine distance; the point itself first, as embedding-atlas
//! lists its own), the
//! item's label and caption, and the image itself when the dataset is at hand. Open one
//! with
//!
//! ```text
//! embedding-atlas runs/demo/exports/embedding-atlas/texture-clip_umap.parquet \
//!     --x x --y y --neighbors neighbors --text caption --image image
//! ```
//!
//! The embeddings are read back from the run's `embeddings/` (one model's clean image set at a
//! time, through the store's catalog), so the export can be (re)made from a finished run
//! directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::analysis::{neighbors::nearest_neighbors, AnalysisError, Distance, Embeddings};
use crate::dataset::{Dataset, ImageRef};
use crate::store::{self, AtlasRow, AtlasWriter, Catalog, StoreError, StoreFormat};

/// Neighbours per point unless told otherwise, counting the point itself as embedding-atlas
/// does (umap-learn's default `n_neighbors`).
pub const DEFAULT_NEIGHBORS: usize = 15;

/// Why the export failed; each names the file or map concerned.
#[derive(Debug, thiserror::Error)]
pub enum AtlasExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("embedding-atlas export of {map}: {source}")]
    Analysis {
        map: String,
        #[source]
        source: AnalysisError,
    },
    #[error("embedding-atlas export of {map}: {message}")]
    Missing { map: String, message: String },
}

/// What the export wrote, and what it could not include.
#[derive(Debug, Clone, Default)]
pub struct AtlasExport {
    pub files: Vec<PathBuf>,
    /// Images that could not be read (the rows are there, without an image).
    pub notes: Vec<String>,
}

/// Writes one embedding-atlas file per clean-image map of the run under
/// `<run_dir>/exports/embedding-atlas/`, with the images when `dataset` (the one the run read)
/// is given. `neighbors` counts the point itself, listed first (so `neighbors − 1` others,
/// at most the map's points − 1). Does nothing when the run has no `projection_coordinates`
/// table.
pub fn export_atlas(
    run_dir: &Path,
    tables_dir: &Path,
    dataset: Option<&Dataset>,
    neighbors: usize,
) -> Result<AtlasExport, AtlasExportError> {
    let mut out = AtlasExport::default();
    let path = tables_dir.join("projection_coordinates.parquet");
    if !path.exists() {
        return Ok(out);
    }
    let coords = store::read_table(&path)?;
    let col = |name: &str| {
        coords.texts(name).ok_or_else(|| AtlasExportError::Missing {
            map: path.display().to_string(),
            message: format!("no text column {name}"),
        })
    };
    let (model, variant, method, id) = (col("model")?, col("variant")?, col("method")?, col("id")?);
    let fcol = |name: &str| {
        coords
            .floats(name)
            .ok_or_else(|| AtlasExportError::Missing {
                map: path.display().to_string(),
                message: format!("no float column {name}"),
            })
    };
    let (x, y) = (fcol("x")?, fcol("y")?);
    let perplexity = coords.floats("perplexity");
    let label = coords.texts("label");
    // The clean images' maps, or the first variant's when there is no clean one.
    let chosen = if variant.iter().any(|v| v.as_deref() == Some("clean")) {
        "clean".to_string()
    } else {
        variant.iter().flatten().next().cloned().unwrap_or_default()
    };
    // (model, method, perplexity) and the map's rows.
    type MapRows = ((String, String, Option<f64>), Vec<usize>);
    let mut maps: Vec<MapRows> = Vec::new();
    for i in 0..coords.rows() {
        if variant[i].as_deref() != Some(chosen.as_str()) {
            continue;
        }
        let key = (
            model[i].clone().unwrap_or_default(),
            method[i].clone().unwrap_or_default(),
            perplexity.and_then(|p| p[i]),
        );
        match maps.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(i),
            None => maps.push((key, vec![i])),
        }
    }
    let catalog = Catalog::open(run_dir, &StoreFormat::Clipflow)?;
    let dir = run_dir.join("exports").join("embedding-atlas");
    let mut loaded: Option<(String, store::EmbeddingSet)> = None;
    for ((model_name, method_name, perp), rows) in &maps {
        let stem = match (method_name.as_str(), perp) {
            ("tsne", Some(p)) => format!("tsne_p{p}"),
            (m, _) => slug(m),
        };
        let map_name = format!("{model_name} {stem} ({chosen})");
        if loaded.as_ref().map(|(m, _)| m) != Some(model_name) {
            let info = catalog.find(model_name, "image", &chosen).ok_or_else(|| {
                AtlasExportError::Missing {
                    map: map_name.clone(),
                    message: format!(
                        "{}: no {chosen} image embeddings of this model",
                        run_dir.join("embeddings").display()
                    ),
                }
            })?;
            loaded = Some((model_name.clone(), catalog.load(info)?));
        }
        let Some((_, set)) = &loaded else { continue };
        let by_id: HashMap<&str, usize> = set
            .ids
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        // The map's points with an embedding, in table order.
        let mut points: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
        let mut missing = 0usize;
        for &r in rows {
            match id[r].as_deref().and_then(|s| by_id.get(s)) {
                Some(&e)
                    if x[r].is_some_and(f64::is_finite) && y[r].is_some_and(f64::is_finite) =>
                {
                    points.push((r, e))
                }
                _ => missing += 1,
            }
        }
        if missing > 0 {
            out.notes.push(format!(
                "{map_name}: {missing} points without an embedding or coordinates are left out"
            ));
        }
        if points.len() < 2 {
            out.notes.push(format!(
                "{map_name}: not exported ({} points; neighbours need at least 2)",
                points.len()
            ));
            continue;
        }
        let vectors: Vec<f32> = points
            .iter()
            .flat_map(|&(_, e)| set.row(e).iter().copied())
            .collect();
        let k = neighbors.saturating_sub(1).clamp(1, points.len() - 1);
        let knn = Embeddings::new(&vectors, set.dim)
            .and_then(|e| nearest_neighbors(e, k, Distance::Cosine))
            .map_err(|source| AtlasExportError::Analysis {
                map: map_name.clone(),
                source,
            })?;
        let file = dir.join(format!("{}_{stem}.parquet", slug(model_name)));
        let mut writer = AtlasWriter::create(&file, dataset.is_some())?;
        let mut failed = 0usize;
        let mut first_failure = None;
        for (chunk_start, chunk) in points
            .chunks(store::ATLAS_ROW_GROUP_ROWS)
            .enumerate()
            .map(|(c, ch)| (c * store::ATLAS_ROW_GROUP_ROWS, ch))
        {
            // The chunk's images, read together (one row group of a Parquet dataset at a time).
            let chunk_ids: std::collections::HashSet<&str> = chunk
                .iter()
                .filter_map(|&(r, _)| id[r].as_deref())
                .collect();
            let wanted: Vec<crate::dataset::Item> = dataset
                .map(|d| d.items_with_ids(&chunk_ids))
                .unwrap_or_default();
            let items: HashMap<&str, &crate::dataset::Item> =
                wanted.iter().map(|i| (i.id.as_str(), i)).collect();
            let mut bytes: HashMap<String, Result<Vec<u8>, String>> = HashMap::new();
            if let Some(d) = dataset {
                for (item, b) in wanted.iter().zip(d.fetch(&wanted)) {
                    bytes.insert(item.id.clone(), b);
                }
            }
            for (offset, &(r, e)) in chunk.iter().enumerate() {
                let row = chunk_start + offset;
                let pid = id[r].as_deref().unwrap_or_default();
                let item = items.get(pid);
                let name = item.map(|i| match &i.image {
                    ImageRef::File(p) => p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| pid.to_string()),
                    ImageRef::ParquetRow { .. } | ImageRef::TarMember { .. } => pid.to_string(),
                });
                let image = match (bytes.get(pid), &name) {
                    (Some(Ok(b)), Some(n)) => Some((b.as_slice(), n.as_str())),
                    (Some(Err(reason)), _) => {
                        failed += 1;
                        first_failure.get_or_insert_with(|| format!("{pid}: {reason}"));
                        None
                    }
                    _ => None,
                };
                // The row itself first, at distance 0, then its nearest others.
                let rows_listed: Vec<usize> = std::iter::once(row)
                    .chain(knn.indices_of(row).iter().copied())
                    .collect();
                let distances: Vec<f32> = std::iter::once(0.0)
                    .chain(knn.distances_of(row).iter().map(|&d| d as f32))
                    .collect();
                writer.push(&AtlasRow {
                    id: pid,
                    x: x[r].unwrap_or(f64::NAN),
                    y: y[r].unwrap_or(f64::NAN),
                    label: label.and_then(|l| l[r].as_deref()),
                    caption: item
                        .and_then(|i| i.captions.first().map(String::as_str))
                        .or(set.texts[e].as_deref()),
                    neighbor_rows: &rows_listed,
                    neighbor_distances: &distances,
                    image,
                })?;
            }
        }
        writer.finish()?;
        if failed > 0 {
            out.notes.push(format!(
                "{map_name}: {failed} images could not be read and have no image (first: {})",
                first_failure.unwrap_or_default()
            ));
        }
        out.files.push(file);
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
