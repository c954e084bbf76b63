//! How a model turns image–text cosines into probabilities, and where that came from.
//!
//! CLIP scores a batch with `softmax(logit_scale · cos)`, its learned scale ≈ 100; SigLIP scores
//! each pair alone with `sigmoid(logit_scale · cos + logit_bias)`, both learned (≈ 117 and
//! ≈ −12.9 for the released base model). A study should use the model's own values, so
//! `scripts/export_clip.py` records them; the study's `models[].scoring` overrides them field by
//! field. Sources, in order: the config, `clipflow.json` beside the graphs, the graphs' ONNX
//! metadata (`clipflow.scoring`, `clipflow.logit_scale`, `clipflow.logit_bias`), CLIP's default.

use std::path::Path;

use crate::config::{ScoringConfig, ScoringKind};

/// The resolved scoring of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scoring {
    pub kind: ScoringKind,
    pub logit_scale: f64,
    pub logit_bias: f64,
    /// Where the values came from: `config`, `clipflow.json`, `onnx metadata`, `default`,
    /// joined with `+` when fields came from several.
    pub source: String,
}

/// CLIP's: softmax at scale 100, no bias.
pub const DEFAULT_SCORING: (ScoringKind, f64, f64) = (ScoringKind::Softmax, 100.0, 0.0);

/// Values read from an export (any may be missing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub kind: Option<ScoringKind>,
    pub logit_scale: Option<f64>,
    pub logit_bias: Option<f64>,
}

/// Reads the `scoring` object of `clipflow.json`.
pub fn read_export_info(path: &Path) -> Result<Recorded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let Some(s) = v.get("scoring") else {
        return Ok(Recorded::default());
    };
    let number = |k: &str| -> Result<Option<f64>, String> {
        match s.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(x) => x
                .as_f64()
                .filter(|v| v.is_finite())
                .map(Some)
                .ok_or_else(|| format!("scoring.{k}: {x} is not a finite number")),
        }
    };
    let kind = match s.get("kind") {
        None | Some(serde_json::Value::Null) => None,
        Some(k) => Some(
            parse_kind(k.as_str().unwrap_or_default())
                .ok_or_else(|| format!("scoring.kind: {k} is not \"softmax\" or \"sigmoid\""))?,
        ),
    };
    Ok(Recorded {
        kind,
        logit_scale: number("logit_scale")?,
        logit_bias: number("logit_bias")?,
    })
}

/// Reads the values from ONNX custom metadata (`clipflow.*` keys), given a lookup.
pub fn read_metadata(get: &dyn Fn(&str) -> Option<String>) -> Result<Recorded, String> {
    let number = |k: &str| -> Result<Option<f64>, String> {
        match get(k) {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Some)
                .ok_or_else(|| format!("metadata {k}: `{s}` is not a finite number")),
        }
    };
    let kind = match get("clipflow.scoring") {
        None => None,
        Some(k) => Some(parse_kind(k.trim()).ok_or_else(|| {
            format!("metadata clipflow.scoring: `{k}` is not softmax or sigmoid")
        })?),
    };
    Ok(Recorded {
        kind,
        logit_scale: number("clipflow.logit_scale")?,
        logit_bias: number("clipflow.logit_bias")?,
    })
}

fn parse_kind(s: &str) -> Option<ScoringKind> {
    match s {
        "softmax" => Some(ScoringKind::Softmax),
        "sigmoid" => Some(ScoringKind::Sigmoid),
        _ => None,
    }
}

/// Field by field: the config, else the export file, else the metadata, else the default.
pub fn resolve(config: Option<&ScoringConfig>, file: &Recorded, metadata: &Recorded) -> Scoring {
    let mut sources: Vec<&str> = Vec::new();
    let mut note = |s: &'static str| {
        if !sources.contains(&s) {
            sources.push(s);
        }
    };
    let (dk, ds, db) = DEFAULT_SCORING;
    let kind = match (config.and_then(|c| c.kind), file.kind, metadata.kind) {
        (Some(k), _, _) => {
            note("config");
            k
        }
        (None, Some(k), _) => {
            note("clipflow.json");
            k
        }
        (None, None, Some(k)) => {
            note("onnx metadata");
            k
        }
        _ => {
            note("default");
            dk
        }
    };
    let mut pick = |c: Option<f64>, f: Option<f64>, m: Option<f64>, default: f64| match (c, f, m) {
        (Some(v), _, _) => {
            note("config");
            v
        }
        (None, Some(v), _) => {
            note("clipflow.json");
            v
        }
        (None, None, Some(v)) => {
            note("onnx metadata");
            v
        }
        _ => default,
    };
    let logit_scale = pick(
        config.and_then(|c| c.logit_scale),
        file.logit_scale,
        metadata.logit_scale,
        ds,
    );
    let logit_bias = pick(
        config.and_then(|c| c.logit_bias),
        file.logit_bias,
        metadata.logit_bias,
        db,
    );
    Scoring {
        kind,
        logit_scale,
        logit_bias,
        source: sources.join("+"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_beats_export_beats_metadata_beats_default() {
        let none = Recorded::default();
        let s = resolve(None, &none, &none);
        assert_eq!(
            (s.kind, s.logit_scale, s.logit_bias, s.source.as_str()),
            (ScoringKind::Softmax, 100.0, 0.0, "default")
        );
        let file = Recorded {
            kind: Some(ScoringKind::Sigmoid),
            logit_scale: Some(117.3),
            logit_bias: Some(-12.9),
        };
        let meta = Recorded {
            kind: Some(ScoringKind::Softmax),
            logit_scale: Some(50.0),
            logit_bias: None,
        };
        let s = resolve(None, &file, &meta);
        assert_eq!(
            (s.kind, s.logit_scale, s.logit_bias),
            (ScoringKind::Sigmoid, 117.3, -12.9)
        );
        assert_eq!(s.source, "clipflow.json");
        let s = resolve(None, &none, &meta);
        assert_eq!(
            (s.kind, s.logit_scale, s.logit_bias),
            (ScoringKind::Softmax, 50.0, 0.0)
        );
        assert_eq!(s.source, "onnx metadata");
        let cfg = ScoringConfig {
            kind: None,
            logit_scale: Some(10.0),
            logit_bias: None,
        };
        let s = resolve(Some(&cfg), &file, &meta);
        assert_eq!(
            (s.kind, s.logit_scale, s.logit_bias),
            (ScoringKind::Sigmoid, 10.0, -12.9)
        );
        assert_eq!(s.source, "clipflow.json+config");
    }

    #[test]
    fn malformed_records_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clipflow.json");
        std::fs::write(
            &p,
            r#"{"scoring": {"kind": "sigmoid", "logit_scale": 3.5, "logit_bias": null}}"#,
        )
        .unwrap();
        let r = read_export_info(&p).unwrap();
        assert_eq!(
            (r.kind, r.logit_scale, r.logit_bias),
            (Some(ScoringKind::Sigmoid), Some(3.5), None)
        );
        std::fs::write(&p, r#"{"scoring": {"kind": "tanh"}}"#).unwrap();
        assert!(read_export_info(&p).unwrap_err().contains("scoring.kind"));
        std::fs::write(&p, r#"{"scoring": {"logit_scale": "big"}}"#).unwrap();
        assert!(read_export_info(&p).unwrap_err().contains("logit_scale"));
        std::fs::write(&p, "{").unwrap();
        assert!(read_export_info(&p).is_err());
        let get = |k: &str| (k == "clipflow.logit_scale").then(|| "nan".to_string());
        assert!(read_metadata(&get).is_err());
        let get = |k: &str| (k == "clipflow.scoring").then(|| "sigmoid".to_string());
        assert_eq!(
            read_metadata(&get).unwrap().kind,
            Some(ScoringKind::Sigmoid)
        );
    }
}
