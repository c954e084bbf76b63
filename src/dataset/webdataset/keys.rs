//! WebDataset's naming rules: which members are skipped, how a member name splits into a
//! sample key and a field, and how consecutive members group into samples. These follow the
//! webdataset library's `tariterators` module, so a shard gives the same samples here as in
//! `wds.WebDataset(url)`:
//!
//! - a member whose first path component starts and ends with `__` (`__meta__`,
//!   `__index__/x`) is metadata and skipped;
//! - the key is everything up to the first `.` of the last path component that has one and
//!   has no `/` after that dot; the field is the rest, lower-cased: `a/b.c/000.seg.png` is key
//!   `a/b.c/000`, field `seg.png`. A name without such a dot (`README`) is skipped. The one
//!   subtlety is a component that starts with a dot: `x/.hidden` is key `x/`, field `hidden`,
//!   because the library's pattern lets the key run over the slash;
//! - members with the same key in a row form one sample; the same key later in the shard
//!   starts another sample (this reader reports it as a duplicate id), and samples never span
//!   shards. A field repeated within a sample is an error in the library; here the second
//!   member is reported and the first kept.

/// True when webdataset skips the member as shard metadata.
pub fn is_metadata(name: &str) -> bool {
    // Two rules in the library: a top-level name that starts and ends with `__` (so `___`
    // too), and the pattern `__[^/]*__($|/)` on the first component (four characters at
    // least). Names with newlines are too odd to mirror further.
    let first = name.split('/').next().unwrap_or("");
    let top_level = !name.contains('/') && name.starts_with("__") && name.ends_with("__");
    top_level || (first.len() >= 4 && first.starts_with("__") && first.ends_with("__"))
}

/// `(key, field)` of a member name, or `None` when the name has no field (skipped).
pub fn split(name: &str) -> Option<(&str, String)> {
    // The library's pattern is `^((?:.*/|)[^.]+)[.]([^/]*)$`: try the key prefix ending at
    // each `/` from the last one back (`.*` is greedy and does not cross a newline), then the
    // empty prefix.
    let slashes: Vec<usize> = name.match_indices('/').map(|(i, _)| i).collect();
    let newline = name.find('\n');
    let candidates = slashes
        .iter()
        .rev()
        .filter(|&&p| newline.is_none_or(|n| n > p))
        .map(|&p| p + 1)
        .chain(std::iter::once(0));
    for start in candidates {
        let rest = &name[start..];
        let Some(dot) = rest.find('.') else { continue };
        if dot == 0 {
            continue;
        }
        let field = &rest[dot + 1..];
        if field.contains('/') {
            continue;
        }
        return Some((&name[..start + dot], field.to_lowercase()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str) -> Option<(String, String)> {
        split(name).map(|(k, f)| (k.to_string(), f))
    }

    #[test]
    fn keys_and_fields_as_webdataset_splits_them() {
        // Cases checked against webdataset's base_plus_ext (re pattern evaluated in Python).
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("000123.jpg", Some(("000123", "jpg"))),
            ("000123.JPG", Some(("000123", "jpg"))),
            ("000123.seg.png", Some(("000123", "seg.png"))),
            ("dir/sub/000123.txt", Some(("dir/sub/000123", "txt"))),
            ("a/b.c/000.seg.png", Some(("a/b.c/000", "seg.png"))),
            ("x/.hidden", Some(("x/", "hidden"))),
            ("a.b/.c", None),
            ("README", None),
            ("dir/README", None),
            (".hidden", None),
            ("a.", Some(("a", ""))),
            ("x/y/.z", Some(("x/y/", "z"))),
        ];
        for (name, want) in cases {
            let want = want.map(|(k, f)| (k.to_string(), f.to_string()));
            assert_eq!(s(name), want, "{name}");
        }
    }

    #[test]
    fn metadata_members_are_skipped() {
        assert!(is_metadata("__meta__"));
        assert!(is_metadata("__index__/000.json"));
        assert!(!is_metadata("__init.py"));
        assert!(is_metadata("___"));
        assert!(!is_metadata("___/x.jpg"));
        assert!(!is_metadata("a/__meta__"));
        assert!(!is_metadata("000.jpg"));
    }
}
