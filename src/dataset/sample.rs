//! Seeded subsampling: N classes, M per class, a limit. The kept items stay in dataset order,
//! so a sample of a sample is stable and the store reads files front to back.

use std::collections::{BTreeMap, HashSet};

use rand::seq::SliceRandom;

use super::listing::ItemTable;
use crate::config::SampleConfig;
use crate::util::seeded_rng;

/// Applies `sample` to the rows of `items`, keeping the chosen ones. Items without a label
/// count as one class (`None`) for `classes` and `per_class`. The classes are visited in
/// label order and shuffled with the same seeded streams as before the listing was columnar,
/// so a study samples the same items it always did.
pub fn apply(items: &mut ItemTable, sample: &SampleConfig, seed: u64) {
    if sample.classes.is_none() && sample.per_class.is_none() && sample.limit.is_none() {
        return;
    }
    let n = items.rows();
    let mut keep: Vec<bool> = vec![true; n];
    let mut by_class: BTreeMap<Option<&str>, Vec<u32>> = BTreeMap::new();
    for row in 0..n {
        by_class
            .entry(items.row_label(row))
            .or_default()
            .push(row as u32);
    }
    if let Some(n) = sample.classes {
        let mut classes: Vec<Option<&str>> = by_class.keys().copied().collect();
        classes.shuffle(&mut seeded_rng(seed, &["sample", "classes"]));
        let chosen: HashSet<Option<&str>> = classes.into_iter().take(n).collect();
        for (class, idx) in &by_class {
            if !chosen.contains(class) {
                for &i in idx {
                    keep[i as usize] = false;
                }
            }
        }
    }
    if let Some(m) = sample.per_class {
        for (class, idx) in &by_class {
            let mut idx: Vec<usize> = idx
                .iter()
                .map(|&i| i as usize)
                .filter(|&i| keep[i])
                .collect();
            let name = class.unwrap_or("");
            idx.shuffle(&mut seeded_rng(seed, &["sample", "per_class", name]));
            for &i in idx.iter().skip(m) {
                keep[i] = false;
            }
        }
    }
    if let Some(limit) = sample.limit {
        let mut idx: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
        idx.shuffle(&mut seeded_rng(seed, &["sample", "limit"]));
        for &i in idx.iter().skip(limit) {
            keep[i] = false;
        }
    }
    let rows: Vec<u32> = (0..n as u32).filter(|&i| keep[i as usize]).collect();
    items.select(rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::listing::NewItem;
    use crate::dataset::ImageRef;

    fn items() -> ItemTable {
        let mut t = ItemTable::new(0, Vec::new());
        for i in 0..60 {
            t.push(NewItem {
                id: Some(&format!("{i:03}")),
                label: Some(&format!("c{}", i % 6)),
                captions: &[],
                image: ImageRef::File(format!("{i}.png").into()),
                attributes: &[],
            })
            .unwrap();
        }
        t
    }

    fn ids(t: &ItemTable) -> Vec<String> {
        (0..t.len()).map(|i| t.id(i).into_owned()).collect()
    }

    fn sampled(s: &SampleConfig, seed: u64) -> ItemTable {
        let mut t = items();
        apply(&mut t, s, seed);
        t
    }

    #[test]
    fn classes_then_per_class_then_limit() {
        let s = SampleConfig {
            classes: Some(3),
            per_class: Some(4),
            limit: Some(10),
        };
        let out = sampled(&s, 7);
        assert_eq!(out.len(), 10);
        let classes: HashSet<_> = (0..out.len()).map(|i| out.label(i)).collect();
        assert!(classes.len() <= 3);
        // Dataset order is preserved.
        assert!(ids(&out).windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn same_seed_same_sample_other_seed_other_sample() {
        let s = SampleConfig {
            classes: None,
            per_class: Some(2),
            limit: None,
        };
        let a = ids(&sampled(&s, 1));
        let b = ids(&sampled(&s, 1));
        let c = ids(&sampled(&s, 2));
        assert_eq!(a.len(), 12);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn no_sampling_keeps_everything() {
        assert_eq!(sampled(&SampleConfig::default(), 0).len(), 60);
    }
}
