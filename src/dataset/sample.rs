//! Seeded subsampling: N classes, M per class, a limit. The kept items stay in dataset order,
//! so a sample of a sample is stable and the store reads files front to back.

use std::collections::{BTreeMap, HashSet};

use rand::seq::SliceRandom;

use super::Item;
use crate::config::SampleConfig;
use crate::util::seeded_rng;

/// Applies `sample` to `items`. Items without a label count as one class (`None`) for
/// `classes` and `per_class`.
pub fn apply(items: Vec<Item>, sample: &SampleConfig, seed: u64) -> Vec<Item> {
    let mut keep: Vec<bool> = vec![true; items.len()];
    let mut by_class: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        by_class.entry(item.label.as_deref()).or_default().push(i);
    }
    if let Some(n) = sample.classes {
        let mut classes: Vec<Option<&str>> = by_class.keys().copied().collect();
        classes.shuffle(&mut seeded_rng(seed, &["sample", "classes"]));
        let chosen: HashSet<Option<&str>> = classes.into_iter().take(n).collect();
        for (class, idx) in &by_class {
            if !chosen.contains(class) {
                for &i in idx {
                    keep[i] = false;
                }
            }
        }
    }
    if let Some(m) = sample.per_class {
        for (class, idx) in &by_class {
            let mut idx: Vec<usize> = idx.iter().copied().filter(|&i| keep[i]).collect();
            let name = class.unwrap_or("");
            idx.shuffle(&mut seeded_rng(seed, &["sample", "per_class", name]));
            for &i in idx.iter().skip(m) {
                keep[i] = false;
            }
        }
    }
    if let Some(limit) = sample.limit {
        let mut idx: Vec<usize> = (0..items.len()).filter(|&i| keep[i]).collect();
        idx.shuffle(&mut seeded_rng(seed, &["sample", "limit"]));
        for &i in idx.iter().skip(limit) {
            keep[i] = false;
        }
    }
    items
        .into_iter()
        .zip(keep)
        .filter_map(|(item, k)| k.then_some(item))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ImageRef;

    fn items() -> Vec<Item> {
        (0..60)
            .map(|i| Item {
                id: format!("{i:03}"),
                label: Some(format!("c{}", i % 6)),
                caption: None,
                image: ImageRef::File(format!("{i}.png").into()),
                attributes: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn classes_then_per_class_then_limit() {
        let s = SampleConfig {
            classes: Some(3),
            per_class: Some(4),
            limit: Some(10),
        };
        let out = apply(items(), &s, 7);
        assert_eq!(out.len(), 10);
        let classes: HashSet<_> = out.iter().map(|i| i.label.clone()).collect();
        assert!(classes.len() <= 3);
        // Dataset order is preserved.
        assert!(out.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[test]
    fn same_seed_same_sample_other_seed_other_sample() {
        let s = SampleConfig {
            classes: None,
            per_class: Some(2),
            limit: None,
        };
        let a: Vec<_> = apply(items(), &s, 1).into_iter().map(|i| i.id).collect();
        let b: Vec<_> = apply(items(), &s, 1).into_iter().map(|i| i.id).collect();
        let c: Vec<_> = apply(items(), &s, 2).into_iter().map(|i| i.id).collect();
        assert_eq!(a.len(), 12);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn no_sampling_keeps_everything() {
        assert_eq!(apply(items(), &SampleConfig::default(), 0).len(), 60);
    }
}
