//! A model's scoring (softmax or sigmoid, `logit_scale`, `logit_bias`) as the run recorded it,
//! for the analysis: every embedding part carries it in its key-value metadata, and the
//! manifest's model entry repeats it.
//!
//! Keys: `clipflow.scoring` (`softmax` | `sigmoid`), `clipflow.logit_scale`,
//! `clipflow.logit_bias` (decimal numbers that round-trip), `clipflow.scoring_source` (where
//! the encoder took them from: `config`, `clipflow.json`, `onnx metadata`, `default`).

use std::fs::File;
use std::path::Path;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::StoreError;
use crate::config::ScoringKind;
use crate::encode::Scoring;

const KIND: &str = "clipflow.scoring";
const SCALE: &str = "clipflow.logit_scale";
const BIAS: &str = "clipflow.logit_bias";
const SOURCE: &str = "clipflow.scoring_source";

/// The key-value pairs a part's metadata gets for `scoring`.
pub fn metadata_pairs(scoring: &Scoring) -> Vec<(String, String)> {
    let kind = match scoring.kind {
        ScoringKind::Softmax => "softmax",
        ScoringKind::Sigmoid => "sigmoid",
    };
    vec![
        (KIND.to_string(), kind.to_string()),
        (SCALE.to_string(), scoring.logit_scale.to_string()),
        (BIAS.to_string(), scoring.logit_bias.to_string()),
        (SOURCE.to_string(), scoring.source.clone()),
    ]
}

/// The scoring of `model` in the run directory `run_dir`: from the metadata of its first
/// embedding part (image parts first), else from `manifest.json`. `Ok(None)` when the run
/// recorded none (a store written by another tool or an older clipflow): the caller then
/// falls back to CLIP's softmax at 100 and should say so.
pub fn read_scoring(run_dir: &Path, model: &str) -> Result<Option<Scoring>, StoreError> {
    if model.is_empty()
        || model.starts_with('.')
        || model.contains(['/', '\\'])
        || Path::new(model).components().count() != 1
    {
        return Err(StoreError::io(
            run_dir,
            format!("`{model}` is not a model name"),
        ));
    }
    for modality in ["image", "text"] {
        let dir = run_dir.join("embeddings").join(model).join(modality);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut parts: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
            })
            .collect();
        parts.sort();
        if let Some(first) = parts.first() {
            if let Some(s) = from_part(first)? {
                return Ok(Some(s));
            }
        }
    }
    from_manifest(&run_dir.join("manifest.json"), model)
}

fn from_part(path: &Path) -> Result<Option<Scoring>, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| StoreError::parquet(path, e))?;
    let meta = builder.schema().metadata();
    let Some(kind) = meta.get(KIND) else {
        return Ok(None);
    };
    let bad = |what: &str, v: &str| StoreError::parquet(path, format!("metadata {what}: `{v}`"));
    let kind = parse_kind(kind).ok_or_else(|| bad(KIND, kind))?;
    let number = |k: &str| -> Result<f64, StoreError> {
        let v = meta.get(k).map(String::as_str).unwrap_or("");
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| bad(k, v))
    };
    Ok(Some(Scoring {
        kind,
        logit_scale: number(SCALE)?,
        logit_bias: number(BIAS)?,
        source: meta.get(SOURCE).cloned().unwrap_or_default(),
    }))
}

fn from_manifest(path: &Path, model: &str) -> Result<Option<Scoring>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| StoreError::io(path, e))?;
    let entry = v["models"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == model));
    match entry.map(|m| &m["scoring"]) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(s) => serde_json::from_value::<Scoring>(s.clone())
            .map(Some)
            .map_err(|e| StoreError::io(path, format!("models[{model}].scoring: {e}"))),
    }
}

fn parse_kind(s: &str) -> Option<ScoringKind> {
    match s {
        "softmax" => Some(ScoringKind::Softmax),
        "sigmoid" => Some(ScoringKind::Sigmoid),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddingRow, PartWriter};

    fn write_part(run: &Path, model: &str, modality: &str, scoring: Option<&Scoring>) {
        let path = crate::store::part_path(run, model, modality, 0);
        let mut w = PartWriter::create_scored(&path, model, modality, 2, scoring).unwrap();
        let row = EmbeddingRow::clean("a");
        w.push(&row, &[1.0, 0.0]).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn scoring_round_trips_through_parts_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let siglip = Scoring {
            kind: ScoringKind::Sigmoid,
            logit_scale: 117.330_765_5,
            logit_bias: -12.932_437,
            source: "clipflow.json".into(),
        };
        write_part(run, "siglip", "text", Some(&siglip));
        assert_eq!(read_scoring(run, "siglip").unwrap(), Some(siglip.clone()));

        // pyarrow sees the same keys.
        let path = crate::store::part_path(run, "siglip", "text", 0);
        let b = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        assert_eq!(b.schema().metadata()["clipflow.scoring"], "sigmoid");
        let kv = b.metadata().file_metadata().key_value_metadata().unwrap();
        assert!(kv
            .iter()
            .any(|e| e.key == "clipflow.logit_bias" && e.value.as_deref() == Some("-12.932437")));

        // A part without scoring (older run): the manifest answers, else nobody does.
        write_part(run, "old", "image", None);
        assert_eq!(read_scoring(run, "old").unwrap(), None);
        let clip = Scoring {
            kind: ScoringKind::Softmax,
            logit_scale: 100.0,
            logit_bias: 0.0,
            source: "default".into(),
        };
        let manifest = serde_json::json!({"models": [{"name": "old", "scoring": clip}]});
        std::fs::write(run.join("manifest.json"), manifest.to_string()).unwrap();
        assert_eq!(read_scoring(run, "old").unwrap(), Some(clip));
        assert_eq!(read_scoring(run, "missing").unwrap(), None);
        assert!(read_scoring(run, "../x").is_err());
        assert!(read_scoring(run, "").is_err());
    }
}
