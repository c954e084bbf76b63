//! Config stage: a YAML study file plus `--set` overrides become a typed [`StudyConfig`].
//!
//! Errors point at what the user typed: the file, the key path (`dataset.caption_column`), the
//! line and column when the key is in the file, and the closest known key for a typo. Values
//! from `--set` are parsed as YAML, so `--set noise.0.sigma=[0.1,0.2]` works like the file does.

mod overrides;
mod schema;
mod suggest;

use std::fmt;
use std::path::{Path, PathBuf};

pub use overrides::Override;
pub use schema::*;

/// Why a study could not be loaded. Every variant names the file, and the key when known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}{at}: YAML syntax error: {message}")]
    Syntax {
        path: PathBuf,
        at: LineCol,
        message: String,
    },
    #[error("{path}{at}: {key}: {message}{hint}")]
    Invalid {
        path: PathBuf,
        at: LineCol,
        key: String,
        message: String,
        hint: Hint,
    },
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
}

/// `:line:column`, or nothing when the position is unknown (a value from `--set`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LineCol(pub Option<(usize, usize)>);

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, col)) => write!(f, ":{line}:{col}"),
            None => Ok(()),
        }
    }
}

/// "; did you mean `x`?" and where the value came from, or nothing.
#[derive(Debug, Clone, Default)]
pub struct Hint(pub String);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A loaded study and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub study: StudyConfig,
    /// The `--set` arguments applied, in order (recorded in the manifest).
    pub overrides: Vec<String>,
}

/// Reads `path`, applies `overrides` (`key.path=value`, in order) and checks the result against
/// the schema. Nothing on disk besides `path` is looked at: that is [`crate::plan`]'s job.
pub fn load(path: &Path, overrides: &[String]) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let study = parse(path, &text, overrides)?;
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        study,
        overrides: overrides.to_vec(),
    })
}

/// [`load`] on text already in memory; `path` only names it in errors.
pub fn parse(path: &Path, text: &str, overrides: &[String]) -> Result<StudyConfig, ConfigError> {
    let mut tree: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            at: LineCol(e.location().map(|l| (l.line(), l.column()))),
            message: strip_location(&e.to_string()),
        })?;
    if tree.is_null() {
        tree = serde_norway::Value::Mapping(Default::default());
    }
    let parsed: Vec<Override> = overrides
        .iter()
        .map(|arg| Override::parse(arg))
        .collect::<Result<_, _>>()?;
    for o in &parsed {
        o.apply(&mut tree)?;
    }
    match serde_path_to_error::deserialize::<_, StudyConfig>(tree) {
        Ok(study) => Ok(study),
        Err(err) => Err(describe(path, text, &parsed, err)),
    }
}

/// Reads only the `analysis:` section (and `seed:`) of a file, for `clipflow analyze` on a
/// store that another tool wrote: the file may be a whole study or just those two keys.
pub fn load_analysis(
    path: &Path,
    overrides: &[String],
) -> Result<(u64, AnalysisConfig), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut tree: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            at: LineCol(e.location().map(|l| (l.line(), l.column()))),
            message: strip_location(&e.to_string()),
        })?;
    for arg in overrides {
        Override::parse(arg)?.apply(&mut tree)?;
    }
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        at: LineCol(None),
        key: key.to_string(),
        message,
        hint: Hint::default(),
    };
    let seed = match tree.get("seed") {
        None => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid("seed", "expected a non-negative integer".into()))?,
    };
    let section = tree
        .get("analysis")
        .cloned()
        .ok_or_else(|| invalid("analysis", "the file has no analysis: section".into()))?;
    let analysis = serde_path_to_error::deserialize::<_, AnalysisConfig>(section).map_err(|e| {
        let message = strip_location(&e.inner().to_string());
        let hint = suggest::did_you_mean(&message)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        ConfigError::Invalid {
            path: path.to_path_buf(),
            at: LineCol(None),
            key: format!("analysis.{}", dotted(&e.path().to_string())),
            message,
            hint: Hint(hint),
        }
    })?;
    analysis
        .check()
        .map_err(|(key, message)| invalid(&key, message))?;
    Ok((seed, analysis))
}

/// Turns a schema error on the merged tree into one that points at the file or the `--set`.
fn describe(
    path: &Path,
    text: &str,
    overrides: &[Override],
    err: serde_path_to_error::Error<serde_norway::Error>,
) -> ConfigError {
    let key = dotted(&err.path().to_string());
    let message = strip_location(&err.inner().to_string());
    let mut hint = suggest::did_you_mean(&message)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    // Locate the key in the file by deserializing the file alone: same error, same path, now
    // with a line number. When the file alone is fine, the error came from a --set.
    let from_file = serde_path_to_error::deserialize::<_, StudyConfig>(
        serde_norway::Deserializer::from_str(text),
    )
    .err()
    .filter(|e| dotted(&e.path().to_string()) == key)
    .and_then(|e| e.inner().location())
    .map(|l| (l.line(), l.column()));
    if from_file.is_none() {
        if let Some(o) = overrides.iter().rev().find(|o| key.starts_with(&o.key)) {
            hint.push_str(&format!(" (set by --set {})", o.arg));
        }
    }
    ConfigError::Invalid {
        path: path.to_path_buf(),
        at: LineCol(from_file),
        key: if key.is_empty() || key == "." {
            "(top level)".into()
        } else {
            key
        },
        message,
        hint: Hint(hint),
    }
}

/// `models[0].path` → `models.0.path`, the form `--set` takes.
fn dotted(path: &str) -> String {
    path.replace('[', ".").replace(']', "")
}

/// serde_norway appends " at line L column C"; we print the position ourselves.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "name: t\ndataset:\n  format: folder\n  path: data/x\nmodels:\n  - path: models/m\n";

    fn err(text: &str, sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        parse(Path::new("study.yaml"), text, &sets)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_study_gets_defaults() {
        let s = parse(Path::new("s.yaml"), MINIMAL, &[]).unwrap();
        assert_eq!(s.runtime.device, "auto");
        assert!(s.texts.captions);
        assert!(s.noise.is_empty());
        assert_eq!(s.dataset.path.as_slice(), ["data/x"]);
    }

    #[test]
    fn unknown_key_names_path_line_and_suggestion() {
        let text = MINIMAL.replace("  path: data/x\n", "  path: data/x\n  captoin_column: c\n");
        let e = err(&text, &[]);
        assert!(e.starts_with("study.yaml:5:"), "{e}");
        assert!(e.contains("dataset"), "{e}");
        assert!(e.contains("did you mean `caption_column`"), "{e}");
    }

    #[test]
    fn unknown_enum_value_suggests() {
        let e = err(&MINIMAL.replace("format: folder", "format: parqet"), &[]);
        assert!(e.contains("dataset.format"), "{e}");
        assert!(e.contains("did you mean `parquet`"), "{e}");
        assert!(e.contains(":3:"), "{e}");
    }

    #[test]
    fn set_overrides_nested_and_indexed_keys() {
        let s = parse(
            Path::new("s.yaml"),
            MINIMAL,
            &[
                "dataset.path=data/y".into(),
                "models.0.path=models/clip".into(),
                "models.1.path=models/other".into(),
                "runtime.batch_size=8".into(),
                "seed=7".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.dataset.path.as_slice(), ["data/y"]);
        assert_eq!(s.models[0].path, "models/clip");
        assert_eq!(s.models[1].path, "models/other");
        assert_eq!(s.runtime.batch_size, 8);
        assert_eq!(s.seed, 7);
    }

    #[test]
    fn set_with_a_typo_is_blamed_on_the_set() {
        let e = err(MINIMAL, &["runtime.batch_sise=8"]);
        assert!(e.contains("runtime"), "{e}");
        assert!(e.contains("did you mean `batch_size`"), "{e}");
        assert!(e.contains("--set runtime.batch_sise=8"), "{e}");
    }

    #[test]
    fn set_without_equals_is_an_error() {
        let e = err(MINIMAL, &["seed"]);
        assert!(e.contains("--set seed"), "{e}");
    }

    #[test]
    fn yaml_syntax_error_has_position() {
        let e = err("name: [unclosed\n", &[]);
        assert!(e.starts_with("study.yaml:"), "{e}");
        assert!(e.contains("syntax"), "{e}");
    }

    #[test]
    fn an_empty_analysis_key_turns_its_stage_on() {
        let s = parse(
            Path::new("s.yaml"),
            &format!("{MINIMAL}analysis:\n  zero_shot:\n  retrieval:\n    k: [1, 3]\n"),
            &[],
        )
        .unwrap();
        let a = s.analysis.unwrap();
        assert!(a.zero_shot.is_some());
        assert_eq!(a.retrieval.unwrap().k, vec![1, 3]);
        assert!(a.cluster.is_none());
        assert_eq!(a.logit_scale, 100.0);
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err(&format!("{MINIMAL}seed: lots\n"), &[]);
        assert!(e.contains("seed"), "{e}");
        assert!(e.contains(":7:"), "{e}");
    }

    #[test]
    fn claim_timeout_takes_seconds_or_a_unit_and_names_the_key_when_bad() {
        let timeout = |v: &str| {
            parse(
                Path::new("s.yaml"),
                &format!("{MINIMAL}runtime:\n  claim_timeout: {v}\n"),
                &[],
            )
            .map(|s| s.runtime.claim_timeout)
        };
        assert_eq!(
            parse(Path::new("s.yaml"), MINIMAL, &[])
                .unwrap()
                .runtime
                .claim_timeout,
            600.0
        );
        assert_eq!(timeout("90").unwrap(), 90.0);
        assert_eq!(timeout("90s").unwrap(), 90.0);
        assert_eq!(timeout("2.5m").unwrap(), 150.0);
        assert_eq!(timeout("1h").unwrap(), 3600.0);
        for bad in ["0", "0.5s", "soon", "-3m", ".inf"] {
            let e = err(&format!("{MINIMAL}runtime:\n  claim_timeout: {bad}\n"), &[]);
            assert!(e.contains("runtime.claim_timeout"), "{bad}: {e}");
            assert!(e.contains(":8:"), "{bad}: {e}");
        }
    }
}
