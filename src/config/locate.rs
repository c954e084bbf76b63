//! Where a key path sits in the YAML text, so that an error found after parsing (a negative σ,
//! `k: [0]`, a stage's own check) still points at `study.yaml:LINE:COL`.
//!
//! serde_norway gives positions only to errors raised while it reads the text. So to find a
//! key we read the text once more with a visitor that walks down the path and fails on purpose
//! when it reaches the key: the failure comes back carrying the key's position. It costs one
//! parse per error message, which is nothing next to the error itself, and needs no second
//! YAML parser in the tree.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The message of the deliberate failure; anything else is a real YAML error.
const FOUND: &str = "clipflow: key located";

/// `(line, column)` of the key `path` (dotted, list indices as numbers: `models.0.path`) in
/// `text`, or `None` when the text does not have it (a key from `--set`, or a default).
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return None;
    }
    let de = serde_norway::Deserializer::from_str(text);
    match (Walk { path: &segments }).deserialize(de) {
        // serde_norway puts the path of a nested error before its message.
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Walks down `path` from the value being deserialized.
struct Walk<'a> {
    path: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (first, rest) = (self.path[0], &self.path[1..]);
        while let Some(matched) = map.next_key_seed(Key {
            want: first,
            last: rest.is_empty(),
        })? {
            if matched {
                map.next_value_seed(Walk { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Ok(index) = self.path[0].parse::<usize>() else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let rest = &self.path[1..];
        let mut i = 0;
        loop {
            let found = if i == index {
                if rest.is_empty() {
                    seq.next_element_seed(Here)?
                } else {
                    seq.next_element_seed(Walk { path: rest })?
                }
            } else {
                seq.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if found.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    // A scalar where the path goes on: the key is not in the text.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    // A tagged value (`!tag x`) arrives as an enum; its value must still be read, or the
    // parser stays on it and the enclosing sequence loops forever.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        de::IgnoredAny.visit_enum(data).map(|_| ())
    }
}

/// A map key: fails (with the key's position) when it is the last segment of the path,
/// otherwise says whether the walk goes down this entry.
struct Key<'a> {
    want: &'a str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        if v != self.want {
            Ok(false)
        } else if self.last {
            Err(E::custom(FOUND))
        } else {
            Ok(true)
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// The list element the path ends at: fails with its position.
struct Here;

impl<'de> DeserializeSeed<'de> for Here {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Here)
    }
}

impl<'de> Visitor<'de> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

/// Deserialises the text into nothing, failing on the second occurrence of a key in one
/// mapping with that occurrence's position. serde_norway reports duplicates at `1:1`.
pub fn duplicate_key(text: &str) -> Option<(String, (usize, usize))> {
    let de = serde_norway::Deserializer::from_str(text);
    match Dups.deserialize(de) {
        Err(e) => {
            let msg = e.to_string();
            let key = &msg[msg.find(DUPLICATE)? + DUPLICATE.len()..];
            let key = key.split(" at line ").next().unwrap_or(key).to_string();
            Some((key, e.location().map(|l| (l.line(), l.column()))?))
        }
        Ok(()) => None,
    }
}

const DUPLICATE: &str = "clipflow: duplicate key ";

struct Dups;

impl<'de> DeserializeSeed<'de> for Dups {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Dups)
    }
}

impl<'de> Visitor<'de> for Dups {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while map.next_key_seed(DupKey(&mut seen))?.is_some() {
            map.next_value_seed(Dups)?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Dups)?.is_some() {}
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Dups)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    // A tagged value (`!tag x`): its value is read (and checked) so the parser moves on.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        let (_tag, value) = data.variant::<de::IgnoredAny>()?;
        value.newtype_variant_seed(Dups)
    }
}

/// A key, checked against the keys already seen in its mapping.
struct DupKey<'a>(&'a mut std::collections::HashSet<String>);

impl<'de> DeserializeSeed<'de> for DupKey<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupKey<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.0.insert(v.to_string()) {
            Ok(())
        } else {
            Err(E::custom(format!("{DUPLICATE}{v}")))
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.visit_str(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_str("~")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: t\ndataset:\n  format: folder\n  path: data/x\nmodels:\n  - path: a\n  - path: b\n    batch_size: 4\nanalysis:\n  retrieval:\n    k: [1, 0]\n  zero_shot:\n";

    #[test]
    fn keys_are_found_at_their_line_and_column() {
        assert_eq!(locate(TEXT, "name"), Some((1, 1)));
        assert_eq!(locate(TEXT, "dataset.path"), Some((4, 3)));
        assert_eq!(locate(TEXT, "models.1.batch_size"), Some((8, 5)));
        assert_eq!(locate(TEXT, "analysis.retrieval.k"), Some((11, 5)));
        assert_eq!(locate(TEXT, "analysis.zero_shot"), Some((12, 3)));
        assert_eq!(locate(TEXT, "models.1"), Some((7, 5)));
        assert_eq!(locate(TEXT, "analysis.retrieval.k.1"), Some((11, 12)));
        assert_eq!(locate(TEXT, "analysis.cluster"), None);
        assert_eq!(locate(TEXT, "models.5.path"), None);
        assert_eq!(locate(TEXT, "name.deeper"), None);
        // A key before a syntax error is found; one after it is not.
        assert_eq!(locate("name: [unclosed\n", "name"), Some((1, 1)));
        assert_eq!(locate("a: [unclosed\nname: x\n", "name"), None);
    }

    #[test]
    fn a_duplicate_key_is_found_at_its_second_occurrence() {
        let text = "name: t\ndataset:\n  format: folder\n  format: dtd\n";
        assert_eq!(duplicate_key(text), Some(("format".to_string(), (4, 3))));
        assert_eq!(duplicate_key(TEXT), None);
        assert_eq!(
            duplicate_key("a: 1\nb:\n  - {x: 1, x: 2}\n").map(|d| d.1),
            Some((3, 12))
        );
    }

    #[test]
    fn tagged_values_are_read_through_not_looped_on() {
        // A fuzz case: a tag inside a flow sequence once made both walks spin forever.
        let text = "a: [x, !tag y, z]\nb:\n  c: !t {d: 1, d: 2}\n";
        assert_eq!(duplicate_key(text).map(|d| d.0), Some("d".to_string()));
        assert_eq!(duplicate_key("a: [x, !tag y]\nb: 1\n"), None);
        assert!(locate(text, "b.c").is_some());
        assert!(locate("a: [x, !tag y]\nb: 1\n", "b").is_some());
    }
}
