//! The analysis stages, one file each (see [`super::registry`] for how to add one), and the
//! small helpers several of them share.

pub mod attributes;
pub mod cluster;
pub mod dimension_sweep;
pub mod duplicates;
pub mod probe;
pub mod projection;
pub mod retrieval;
pub mod robustness;
pub mod similarity;
pub mod subspaces;
pub mod topology;
pub mod zero_shot;

use std::collections::{BTreeMap, HashMap};

pub(crate) use super::stage::slug;
use crate::analysis::{seeded_subsample, AnalysisError, Embeddings, Labels};
use crate::chart::ScatterGroup;
use crate::store::EmbeddingSet;

/// The vectors of a set as an [`Embeddings`] view.
pub(crate) fn embeddings(set: &EmbeddingSet) -> Result<Embeddings<'_>, AnalysisError> {
    Embeddings::new(&set.vectors, set.dim)
}

/// Label ids of every row, when every row has a label.
pub(crate) fn labelled(set: &EmbeddingSet) -> Option<(Vec<usize>, Labels)> {
    if set.labels.iter().any(Option::is_none) {
        return None;
    }
    let names: Vec<&str> = set.labels.iter().flatten().map(String::as_str).collect();
    let labels = Labels::from_strings(&names);
    Some((labels.ids.clone(), labels))
}

/// The classes of a model's prompts, and the class embeddings (renormalised template means).
pub(crate) fn prompt_classes(prompts: &EmbeddingSet) -> Result<(Labels, Vec<f32>), AnalysisError> {
    let names: Vec<String> = prompts
        .labels
        .iter()
        .map(|l| l.clone().unwrap_or_default())
        .collect();
    let classes = Labels::from_strings(&names);
    let vectors = crate::analysis::zero_shot::class_embeddings(
        embeddings(prompts)?,
        &classes.ids,
        classes.names.len(),
    )?;
    Ok((classes, vectors))
}

/// Rows of `set` for `ids` (ids missing from the set are left out), as (rows, vectors).
pub(crate) fn rows_by_id(set: &EmbeddingSet, ids: &[String]) -> (Vec<usize>, Vec<f32>) {
    let pos: HashMap<&str, usize> = set
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let rows: Vec<usize> = ids
        .iter()
        .filter_map(|id| pos.get(id.as_str()).copied())
        .collect();
    let vectors = rows
        .iter()
        .flat_map(|&r| set.row(r).iter().copied())
        .collect();
    (rows, vectors)
}

/// A seeded sample of a set's ids (at most `max`), in set order: drawn from the clean images
/// and reused for every variant, so each variant is measured on the same items.
pub(crate) fn sample_ids(set: &EmbeddingSet, max: usize, seed: u64) -> Vec<String> {
    seeded_subsample(set.len(), max, seed)
        .into_iter()
        .map(|i| set.ids[i].clone())
        .collect()
}

/// Whether a stage limited to `wanted` variants (all when `None`) runs on `variant`; the clean
/// one always when `keep_clean` (the reference noisy ones are compared with).
pub(crate) fn wanted(wanted: Option<&[String]>, variant: &str, keep_clean: bool) -> bool {
    wanted.is_none_or(|w| w.iter().any(|v| v == variant)) || (keep_clean && variant == "clean")
}

/// Checks that every name in a stage's `variants:` list is a variant of the study.
pub(crate) fn check_variants(
    list: Option<&[String]>,
    facts: &super::stage::Facts,
) -> Result<(), super::stage::SettingError> {
    let (Some(list), false) = (list, facts.variants.is_empty()) else {
        return Ok(());
    };
    for (i, v) in list.iter().enumerate() {
        if !facts.variants.contains(v) {
            return Err(super::stage::SettingError::new(
                &format!("variants.{i}"),
                format!(
                    "no image variant is named {v:?}; the study has: {}",
                    facts.variants.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Points grouped by label for a scatter plot, groups in label order (`unlabelled` last).
pub(crate) fn groups_by_label(labels: &[Option<String>], coords: &[f64]) -> Vec<ScatterGroup> {
    let mut by: BTreeMap<(bool, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        let key = match l {
            Some(l) => (false, l.clone()),
            None => (true, "unlabelled".to_string()),
        };
        by.entry(key)
            .or_default()
            .push((coords[2 * i], coords[2 * i + 1]));
    }
    by.into_iter()
        .map(|((_, name), points)| ScatterGroup { name, points })
        .collect()
}

/// A 64-bit hash of `seed` and `id` that does not change between runs, platforms or Rust
/// releases (FNV-1a, then a SplitMix64 finaliser to spread FNV's weak low bits).
pub(crate) fn stable_hash(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in id.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Indices (ascending) of the `n` rows whose ids hash lowest under `seed`: a seeded sample
/// decided by each id alone, so every variant, shard and thread count picks the same items.
pub(crate) fn sample_by_id<'a>(
    ids: impl Iterator<Item = &'a str>,
    n: usize,
    seed: u64,
) -> Vec<usize> {
    let mut h: Vec<(u64, usize)> = ids
        .enumerate()
        .map(|(i, id)| (stable_hash(seed, id), i))
        .collect();
    if n < h.len() {
        h.select_nth_unstable(n);
        h.truncate(n);
    }
    let mut rows: Vec<usize> = h.into_iter().map(|(_, i)| i).collect();
    rows.sort_unstable();
    rows
}

/// The attribute table a stage reads (`path`, else `attributes.parquet` beside the store),
/// read once into `cache`: `None` inside when there is no such file.
pub(super) fn attribute_table<'c>(
    cache: &'c mut Option<Option<(crate::store::Table, std::path::PathBuf)>>,
    path: Option<&str>,
    store: &std::path::Path,
) -> Result<Option<&'c (crate::store::Table, std::path::PathBuf)>, crate::store::StoreError> {
    if cache.is_none() {
        let path = match path {
            Some(p) => std::path::PathBuf::from(p),
            None => {
                let base = if store.is_file() {
                    store.parent().unwrap_or(store)
                } else {
                    store
                };
                base.join("attributes.parquet")
            }
        };
        *cache = Some(if path.exists() {
            Some((crate::store::read_table(&path)?, path))
        } else {
            None
        });
    }
    Ok(cache.as_ref().and_then(|t| t.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_label_order_and_unlabelled_last() {
        let labels = vec![Some("b".to_string()), None, Some("a".to_string())];
        let g = groups_by_label(&labels, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "unlabelled"]);
        assert_eq!(g[0].points, vec![(4.0, 5.0)]);
    }

    #[test]
    fn id_samples_do_not_depend_on_row_order() {
        let ids: Vec<String> = (0..1000).map(|i| format!("img/{i}.jpg")).collect();
        let a = sample_by_id(ids.iter().map(String::as_str), 50, 7);
        assert_eq!(a.len(), 50);
        let picked: Vec<&str> = a.iter().map(|&i| ids[i].as_str()).collect();
        let mut reversed = ids.clone();
        reversed.reverse();
        let b = sample_by_id(reversed.iter().map(String::as_str), 50, 7);
        let mut picked_b: Vec<&str> = b.iter().map(|&i| reversed[i].as_str()).collect();
        picked_b.sort();
        let mut picked_a = picked.clone();
        picked_a.sort();
        assert_eq!(picked_a, picked_b);
        // Another seed, another sample; the hash is pinned so the sample is too.
        assert_ne!(a, sample_by_id(ids.iter().map(String::as_str), 50, 8));
        assert_eq!(stable_hash(0, "a"), stable_hash(0, "a"));
        assert_eq!(
            sample_by_id(ids.iter().map(String::as_str), 5000, 7).len(),
            1000
        );
    }
}
