//! `--set key.path=value`: edits the YAML tree before it is checked against the schema.

use serde_norway::{Mapping, Value};

use super::ConfigError;

/// One parsed `--set`.
#[derive(Debug, Clone)]
pub struct Override {
    /// The argument as typed, for error messages.
    pub arg: String,
    /// The dotted key path, e.g. `models.0.path`.
    pub key: String,
    value: Value,
}

impl Override {
    /// Parses `key.path=value`; the value is YAML (`8`, `true`, `[0.1, 0.2]`, `data/x`).
    pub fn parse(arg: &str) -> Result<Override, ConfigError> {
        let bad = |message: &str| ConfigError::Override {
            arg: arg.to_string(),
            message: message.to_string(),
        };
        let (key, raw) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected key.path=value"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(bad("the key path has an empty segment"));
        }
        let value = if raw.trim().is_empty() {
            Value::Null
        } else {
            serde_norway::from_str(raw).map_err(|e| bad(&format!("value is not YAML: {e}")))?
        };
        Ok(Override {
            arg: arg.to_string(),
            key: key.to_string(),
            value,
        })
    }

    /// Writes the value at the key path, creating maps on the way and appending to a list
    /// when the index is one past its end (`models.1.path` on a one-model study adds a model).
    pub fn apply(&self, root: &mut Value) -> Result<(), ConfigError> {
        let segments: Vec<&str> = self.key.split('.').collect();
        let mut node = root;
        for (depth, seg) in segments.iter().enumerate() {
            let last = depth + 1 == segments.len();
            let here = segments[..=depth].join(".");
            if node.is_null() {
                *node = Value::Mapping(Mapping::new());
            }
            node = match node {
                Value::Mapping(map) => {
                    let key = Value::String(seg.to_string());
                    if last {
                        map.insert(key, self.value.clone());
                        return Ok(());
                    }
                    map.entry(key).or_insert(Value::Null)
                }
                Value::Sequence(seq) => {
                    let index: usize = seg.parse().map_err(|_| ConfigError::Override {
                        arg: self.arg.clone(),
                        message: format!("`{here}`: a list needs a numeric index"),
                    })?;
                    if index > seq.len() {
                        return Err(ConfigError::Override {
                            arg: self.arg.clone(),
                            message: format!(
                                "`{here}`: index {index} is past the end of a list of {}",
                                seq.len()
                            ),
                        });
                    }
                    if index == seq.len() {
                        seq.push(Value::Null);
                    }
                    if last {
                        seq[index] = self.value.clone();
                        return Ok(());
                    }
                    &mut seq[index]
                }
                _ => {
                    return Err(ConfigError::Override {
                        arg: self.arg.clone(),
                        message: format!(
                            "`{}` is a single value, it has no key `{seg}`",
                            segments[..depth].join(".")
                        ),
                    })
                }
            };
        }
        Ok(())
    }
}
