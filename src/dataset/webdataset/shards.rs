//! Which tar files a `dataset.path` names: brace ranges as webdataset expands them
//! (`shards/{00000..00127}.tar`, `{a,b}`, steps, nesting), globs, folders (CLIP_benchmark's
//! split folders with `nshards.txt`, or every `*.tar`, `*.tar.gz`, `*.tgz` inside), and lists of
//! those, in the order given.

use std::path::{Path, PathBuf};

use crate::dataset::DatasetError;

/// Most shards one pattern may expand to: a typo like `{0..99999999999}` is an error, not an
/// allocation of the whole range.
const MAX_SHARDS: usize = 1_000_000;

/// The shard files of `patterns`, in order; each must exist. A file named twice is an error,
/// since its samples would be listed twice.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>, DatasetError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for pattern in patterns {
        for one in braces(pattern)? {
            if one.contains(['*', '?', '[']) {
                let matches = glob::glob(&one).map_err(|e| DatasetError::BadGlob {
                    pattern: one.clone(),
                    message: e.to_string(),
                })?;
                let mut found: Vec<PathBuf> = matches
                    .filter_map(Result::ok)
                    .filter(|p| p.is_file())
                    .collect();
                if found.is_empty() {
                    return Err(DatasetError::NoMatch { pattern: one });
                }
                found.sort();
                out.extend(found);
            } else {
                let p = PathBuf::from(&one);
                if p.is_dir() {
                    out.extend(in_folder(&p)?);
                } else if p.is_file() {
                    out.push(p);
                } else {
                    return Err(DatasetError::NotFound { path: one });
                }
            }
            if out.len() > MAX_SHARDS {
                return Err(DatasetError::Config {
                    key: "path",
                    message: format!("more than {MAX_SHARDS} shards"),
                });
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &out {
        if !seen.insert(p) {
            return Err(DatasetError::Config {
                key: "path",
                message: format!("{} is named twice", p.display()),
            });
        }
    }
    Ok(out)
}

/// The shards of a folder: `0.tar … (n-1).tar` when it has CLIP_benchmark's `nshards.txt`,
/// else every tar file in it, sorted by name.
fn in_folder(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let nshards = dir.join("nshards.txt");
    if nshards.is_file() {
        let text = crate::dataset::webdataset::read_small_text(&nshards)?;
        let n: usize = text.trim().parse().map_err(|_| DatasetError::Io {
            path: nshards.clone(),
            message: format!("expected a number of shards, found {:?}", text.trim()),
        })?;
        if n > MAX_SHARDS {
            return Err(DatasetError::Io {
                path: nshards,
                message: format!("more than {MAX_SHARDS} shards"),
            });
        }
        let shards: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("{i}.tar"))).collect();
        if let Some(missing) = shards.iter().find(|p| !p.is_file()) {
            return Err(DatasetError::NotFound {
                path: format!("{} (nshards.txt says {n})", missing.display()),
            });
        }
        return Ok(shards);
    }
    let rd = std::fs::read_dir(dir).map_err(|e| DatasetError::Io {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut shards: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_tar_name(p))
        .collect();
    if shards.is_empty() {
        return Err(DatasetError::NoMatch {
            pattern: format!("{}/*.tar", dir.display()),
        });
    }
    shards.sort();
    Ok(shards)
}

fn is_tar_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    !name.starts_with('.')
        && (name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz"))
}

/// Bash-style brace expansion as the `braceexpand` package (webdataset's) does it: integer
/// ranges `{1..10}` (zero-padded to the wider bound when either bound starts with `0`), letter
/// ranges `{a..e}`, optional steps `{0..10..2}`, descending ranges, comma lists `{a,b,}` and
/// nesting. A backslash escapes the next character. Braces without a range or a comma stay as
/// they are.
pub fn braces(pattern: &str) -> Result<Vec<String>, DatasetError> {
    let chars: Vec<char> = pattern.chars().collect();
    let unbalanced = || DatasetError::Config {
        key: "path",
        message: format!("unbalanced braces in {pattern:?}"),
    };
    let mut budget = MAX_SHARDS;
    let raw = expand_seq(&chars, &mut budget).ok_or_else(|| DatasetError::Config {
        key: "path",
        message: format!("{pattern:?} expands to more than {MAX_SHARDS} paths"),
    })?;
    let raw = raw.ok_or_else(unbalanced)?;
    Ok(raw.into_iter().map(|s| unescape(&s)).collect())
}

/// Expands a pattern: literals and `{...}` groups in sequence, as a product. `None` when over
/// the budget; `Some(None)` when braces are unbalanced.
fn expand_seq(p: &[char], budget: &mut usize) -> Option<Option<Vec<String>>> {
    let mut results = vec![String::new()];
    let mut i = 0;
    let mut literal = String::new();
    while i < p.len() {
        match p[i] {
            '\\' => {
                literal.push('\\');
                if let Some(&c) = p.get(i + 1) {
                    literal.push(c);
                }
                i += 2;
            }
            '{' => {
                let Some(close) = matching_close(p, i) else {
                    return Some(None);
                };
                let inner = &p[i + 1..close];
                let options = match expand_group(inner, budget)? {
                    Some(o) => o,
                    None => return Some(None),
                };
                for r in &mut results {
                    r.push_str(&literal);
                }
                literal.clear();
                let mut next = Vec::new();
                for r in &results {
                    for o in &options {
                        if next.len() >= *budget {
                            return None;
                        }
                        next.push(format!("{r}{o}"));
                    }
                }
                results = next;
                i = close + 1;
            }
            '}' => return Some(None),
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    for r in &mut results {
        r.push_str(&literal);
    }
    Some(Some(results))
}

fn matching_close(p: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < p.len() {
        match p[i] {
            '\\' => i += 1,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The options of one `{...}` group.
fn expand_group(inner: &[char], budget: &mut usize) -> Option<Option<Vec<String>>> {
    let text: String = inner.iter().collect();
    if let Some(r) = range(&text, budget) {
        return r.map(Some);
    }
    // A comma list at depth 0.
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            '\\' => i += 1,
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if parts.is_empty() {
        // Not a sequence: the braces are literal, their content still expands.
        let inner = expand_seq(inner, budget)?;
        return Some(inner.map(|v| v.into_iter().map(|s| format!("{{{s}}}")).collect()));
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for part in parts {
        match expand_seq(part, budget)? {
            Some(v) => {
                if out.len() + v.len() > *budget {
                    return None;
                }
                out.extend(v);
            }
            None => return Some(None),
        }
    }
    Some(Some(out))
}

/// `a..b` or `a..b..step` over integers or single letters; `None` when `text` is not a range.
fn range(text: &str, budget: &mut usize) -> Option<Option<Vec<String>>> {
    let fields: Vec<&str> = text.split("..").collect();
    if !(fields.len() == 2 || fields.len() == 3) {
        return None;
    }
    let step: u64 = match fields.get(2) {
        None => 1,
        Some(s) => {
            let s = s.strip_prefix('-').unwrap_or(s);
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<u64>().ok()?.max(1)
        }
    };
    let (a, b) = (fields[0], fields[1]);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(a) && digits(b) {
        let width = if a.starts_with('0') || b.starts_with('0') {
            a.len().max(b.len())
        } else {
            0
        };
        let (x, y): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
        let count = (x.abs_diff(y) / step + 1) as usize;
        if count > *budget {
            return Some(None);
        }
        let values = (0..count as u64).map(|k| if x <= y { x + k * step } else { x - k * step });
        return Some(Some(values.map(|v| format!("{v:0width$}")).collect()));
    }
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let letter = |s: &str| (s.len() == 1).then(|| ALPHABET.find(s)).flatten();
    let (x, y) = (letter(a)?, letter(b)?);
    let step = step as usize;
    let picked: Vec<String> = if x <= y {
        (x..=y)
            .step_by(step)
            .map(|i| ALPHABET[i..i + 1].to_string())
            .collect()
    } else {
        (y..=x)
            .rev()
            .step_by(step)
            .map(|i| ALPHABET[i..i + 1].to_string())
            .collect()
    };
    Some(Some(picked))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(p: &str) -> Vec<String> {
        braces(p).unwrap()
    }

    #[test]
    fn brace_expansion_as_braceexpand_does_it() {
        // The examples of braceexpand's documentation, and the shard patterns people write.
        assert_eq!(b("item{1..3}"), ["item1", "item2", "item3"]);
        assert_eq!(b("{a..c}"), ["a", "b", "c"]);
        assert_eq!(
            b("index.html{,.backup}"),
            ["index.html", "index.html.backup"]
        );
        assert_eq!(
            b("python{2.{5..7},3.{2,3}}"),
            [
                "python2.5",
                "python2.6",
                "python2.7",
                "python3.2",
                "python3.3"
            ]
        );
        assert_eq!(b("{07..10}"), ["07", "08", "09", "10"]);
        assert_eq!(b("{a..g..2}"), ["a", "c", "e", "g"]);
        assert_eq!(b("{4..1}"), ["4", "3", "2", "1"]);
        assert_eq!(b("{1..10..3}"), ["1", "4", "7", "10"]);
        assert_eq!(b(r"{1\{2,3}"), ["1{2", "3"]);
        assert_eq!(b("{x}"), ["{x}"]);
        assert_eq!(
            b("s/{00000..00002}.tar"),
            ["s/00000.tar", "s/00001.tar", "s/00002.tar"]
        );
        assert_eq!(
            b("{0..2}-{a,b}"),
            ["0-a", "0-b", "1-a", "1-b", "2-a", "2-b"]
        );
        assert!(braces("{1{2,3}").is_err());
        assert!(braces("{0..99999999999}").is_err());
    }
}
