//! Config stage: a YAML study file plus `--set` overrides become a typed [`StudyConfig`].
//!
//! Errors point at what the user typed: the file, the key path (`dataset.caption_column`), the
//! line and column when the key is in the file, and the closest known key for a typo. Values
//! from `--set` are parsed as YAML, so `--set noise.0.sigma=[0.1,0.2]` works like the file does.

mod locate;
mod overrides;
mod schema;
mod suggest;

use std::fmt;
use std::path::{Path, PathBuf};

pub use locate::locate;
pub use overrides::Override;
pub use schema::*;
pub use suggest::{did_you_mean_among, did_you_mean_hint};

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
    /// The text and overrides, for errors found after parsing.
    pub source: Source,
}

/// The text a config was read from and the `--set`s applied to it: what an error found after
/// parsing (a value out of range, a missing file, a stage's own check) needs to point at the
/// key's line, or at the `--set` that wrote it.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
    pub overrides: Vec<Override>,
}

impl Source {
    /// The `--set` that wrote `key` (or a section holding it), the last one winning.
    pub fn set_by(&self, key: &str) -> Option<&Override> {
        self.overrides.iter().rev().find(|o| {
            key == o.key
                || key.starts_with(&format!("{}.", o.key))
                || o.key.starts_with(&format!("{key}."))
        })
    }

    /// Where `key` is: its line in the file, unless a `--set` wrote it.
    pub fn position(&self, key: &str) -> LineCol {
        if self.set_by(key).is_some() {
            return LineCol(None);
        }
        // A key that is not in the file (a default) is blamed on its nearest written parent.
        let mut k = key;
        loop {
            if let Some(at) = locate(&self.text, k) {
                return LineCol(Some(at));
            }
            match k.rsplit_once('.') {
                Some((parent, _)) => k = parent,
                None => return LineCol(None),
            }
        }
    }

    /// An error about the value of `key`, located.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let hint = self
            .set_by(key)
            .map(|o| format!(" (set by --set {})", o.arg))
            .unwrap_or_default();
        ConfigError::Invalid {
            path: self.path.clone(),
            at: self.position(key),
            key: key.to_string(),
            message: message.into(),
            hint: Hint(hint),
        }
    }
}

/// Reads `path`, applies `overrides` (`key.path=value`, in order) and checks the result against
/// the schema. Nothing on disk besides `path` is looked at: that is [`crate::run::plan`]'s job.
pub fn load(path: &Path, overrides: &[String]) -> Result<LoadedConfig, ConfigError> {
    let text = read_study_text(path)?;
    let study = parse(path, &text, overrides)?;
    let parsed = overrides
        .iter()
        .map(|arg| Override::parse(arg))
        .collect::<Result<_, _>>()?;
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        study,
        overrides: overrides.to_vec(),
        source: Source {
            path: path.to_path_buf(),
            text,
            overrides: parsed,
        },
    })
}

/// Largest study or prompt file read: far above any real one, far below what would hurt.
const MAX_STUDY_BYTES: u64 = 16 << 20;

/// Reads a small text file (a study, a prompt template file), at most 16 MiB: a path such as
/// `/dev/zero` (or a huge file given by mistake) is an error, not unbounded memory. Pipes
/// (`<(envsubst < study.yaml)`) work.
pub fn read_small_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_STUDY_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_STUDY_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB: not a study or prompt file",
            MAX_STUDY_BYTES >> 20
        )));
    }
    Ok(text)
}

fn read_study_text(path: &Path) -> Result<String, ConfigError> {
    read_small_text(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// YAML tags (`!name value`) mean nothing in a study. Typed keys would reject them anyway, but
/// the sections kept as raw YAML (`analysis:`) would carry a tagged key into the manifest,
/// which JSON cannot hold: so any tag is an error at the first key path that has one.
fn reject_tags(path: &Path, text: &str, tree: &serde_norway::Value) -> Result<(), ConfigError> {
    fn find(v: &serde_norway::Value, at: &str) -> Option<String> {
        use serde_norway::Value;
        let join = |k: &str| {
            if at.is_empty() {
                k.to_string()
            } else {
                format!("{at}.{k}")
            }
        };
        match v {
            Value::Tagged(_) => Some(at.to_string()),
            Value::Mapping(m) => m.iter().find_map(|(k, v)| {
                let key = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    // A tagged (or otherwise structured) key: blame its mapping.
                    _ => return Some(at.to_string()),
                };
                find(v, &join(&key))
            }),
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| find(v, &join(&i.to_string()))),
            _ => None,
        }
    }
    match find(tree, "") {
        None => Ok(()),
        Some(key) => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            at: LineCol(locate::locate(text, &key)),
            key: if key.is_empty() {
                "(top level)".into()
            } else {
                key
            },
            message: "a YAML tag (`!name`) here or inside: clipflow's studies use none; remove it"
                .into(),
            hint: Hint::default(),
        }),
    }
}

/// serde_norway reports a key given twice at `1:1`: find the second occurrence ourselves.
fn check_duplicates(path: &Path, text: &str, err: &serde_norway::Error) -> Option<ConfigError> {
    if !err.to_string().contains("duplicate") {
        return None;
    }
    let (key, at) = locate::duplicate_key(text)?;
    Some(ConfigError::Syntax {
        path: path.to_path_buf(),
        at: LineCol(Some(at)),
        message: format!("the key `{key}` is given twice in one mapping"),
    })
}

/// [`load`] on text already in memory; `path` only names it in errors.
pub fn parse(path: &Path, text: &str, overrides: &[String]) -> Result<StudyConfig, ConfigError> {
    let mut tree: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        check_duplicates(path, text, &e).unwrap_or_else(|| ConfigError::Syntax {
            path: path.to_path_buf(),
            at: LineCol(e.location().map(|l| (l.line(), l.column()))),
            message: strip_location(&e.to_string()),
        })
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
    reject_tags(path, text, &tree)?;
    match serde_path_to_error::deserialize::<_, StudyConfig>(tree) {
        Ok(study) => Ok(study),
        Err(err) => Err(describe(path, text, &parsed, err)),
    }
}

/// Reads only the `analysis:` section (and `seed:`) of a file, for `clipflow analyze` on a
/// store that another tool wrote: the file may be a whole study or just those two keys. The
/// section is checked by the analysis stages themselves (`crate::analyze`), which is why the
/// [`Source`] comes back with it.
pub fn load_analysis(
    path: &Path,
    overrides: &[String],
) -> Result<(u64, AnalysisSection, Source), ConfigError> {
    let text = read_study_text(path)?;
    let mut tree: serde_norway::Value = serde_norway::from_str(&text).map_err(|e| {
        check_duplicates(path, &text, &e).unwrap_or_else(|| ConfigError::Syntax {
            path: path.to_path_buf(),
            at: LineCol(e.location().map(|l| (l.line(), l.column()))),
            message: strip_location(&e.to_string()),
        })
    })?;
    let parsed: Vec<Override> = overrides
        .iter()
        .map(|arg| Override::parse(arg))
        .collect::<Result<_, _>>()?;
    for o in &parsed {
        o.apply(&mut tree)?;
    }
    reject_tags(path, &text, &tree)?;
    let source = Source {
        path: path.to_path_buf(),
        text,
        overrides: parsed,
    };
    let seed = match tree.get("seed") {
        None => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| source.invalid("seed", "expected a non-negative integer"))?,
    };
    let section = match tree.get("analysis") {
        Some(serde_norway::Value::Mapping(m)) => AnalysisSection(m.clone()),
        Some(serde_norway::Value::Null) => AnalysisSection::default(),
        Some(_) => {
            return Err(source.invalid(
                "analysis",
                "expected a mapping of stage names to their settings",
            ))
        }
        None => return Err(source.invalid("analysis", "the file has no analysis: section")),
    };
    Ok((seed, section, source))
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

    #[test]
    fn yaml_tags_are_refused_at_their_key() {
        // A fuzz case: a tagged key under `analysis:` reached the manifest, which JSON refused.
        let text = format!("{MINIMAL}analysis:\n  projection:\n    !tag variants: [clean]\n");
        let e = err(&text, &[]);
        assert!(
            e.starts_with("study.yaml:8:") && e.contains("analysis.projection"),
            "{e}"
        );
        assert!(e.contains("YAML tag"), "{e}");
        let text = format!("{MINIMAL}analysis:\n  retrieval:\n    k: !big [1]\n");
        let e = err(&text, &[]);
        assert!(
            e.contains("analysis.retrieval.k") && e.contains(":9:"),
            "{e}"
        );
        assert!(err(MINIMAL, &["name=!x y"]).contains("YAML tag"));
    }

    #[test]
    fn an_endless_study_file_is_refused_with_bounded_memory() {
        // Issue 12, item 3 for the study itself: /dev/zero once grew memory until the OOM killer.
        let e = load(Path::new("/dev/zero"), &[]).err().unwrap().to_string();
        assert!(
            e.contains("/dev/zero") && e.contains("larger than 16 MiB"),
            "{e}"
        );
        let e = load_analysis(Path::new("/dev/zero"), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("larger than 16 MiB"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("s.yaml");
        std::fs::write(&ok, MINIMAL).unwrap();
        assert!(load(&ok, &[]).is_ok());
    }

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
    fn names_that_are_paths_are_refused_at_their_line() {
        for bad in ["../../escaped", "/abs/path", "a/b", "'a\\b'", "..", "."] {
            let e = err(&MINIMAL.replace("name: t", &format!("name: {bad}")), &[]);
            assert!(
                e.starts_with("study.yaml:1:7: name:") && e.contains("not a name"),
                "{e}"
            );
        }
        let text = MINIMAL.replace(
            "  - path: models/m\n",
            "  - path: models/m\n    name: ../x\n",
        );
        let e = err(&text, &[]);
        assert!(e.starts_with("study.yaml:7:11: models.0.name:"), "{e}");
        let e = err(MINIMAL, &["name=../x"]);
        assert!(
            e.contains("not a name") && e.contains("--set name=../x"),
            "{e}"
        );
        for good in ["t", "run.1", "a..b", ".hidden", "数据"] {
            let s = parse(
                Path::new("s.yaml"),
                &MINIMAL.replace("name: t", &format!("name: {good}")),
                &[],
            )
            .unwrap();
            assert_eq!(s.name, good);
        }
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

    #[test]
    fn a_duplicate_key_names_its_own_line() {
        let text = MINIMAL.replace("  path: data/x\n", "  path: data/x\n  format: dtd\n");
        let e = err(&text, &[]);
        assert!(e.starts_with("study.yaml:5:3:"), "{e}");
        assert!(e.contains("`format`"), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_the_key_or_the_set() {
        let loaded = {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("s.yaml");
            std::fs::write(&p, format!("{MINIMAL}runtime:\n  part_size: 0\n")).unwrap();
            load(&p, &["models.0.batch_size=0".into()]).unwrap()
        };
        let e = loaded
            .source
            .invalid("runtime.part_size", "must be at least 1")
            .to_string();
        assert!(
            e.contains("s.yaml:8:3: runtime.part_size: must be at least 1"),
            "{e}"
        );
        let e = loaded
            .source
            .invalid("models.0.batch_size", "must be at least 1")
            .to_string();
        assert!(e.contains("(set by --set models.0.batch_size=0)"), "{e}");
        // A default that is not in the file is blamed on the nearest written parent.
        let e = loaded
            .source
            .invalid("runtime.batch_size", "bad")
            .to_string();
        assert!(e.contains("s.yaml:7:1:"), "{e}");
    }
}
