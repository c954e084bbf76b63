//! Galleries of the strongest near-duplicate pairs (`tables/duplicate_pairs`) and of the
//! strongest leaks (`tables/duplicate_leaks`): both images of each pair side by side with
//! their cosine, a pair across groups (splits) marked red.
//!
//! Expected columns (as the `duplicates` stage writes them, strongest pair first): `model`,
//! `variant`, `a_id`, `b_id`, `cosine`, and optionally `a_group`, `b_group` (the values of the
//! `across` column) and `cross` (1 when the groups differ). Rows of the clean images only.

use std::collections::HashMap;

use super::{Block, ImagePair, PairGallery, PairImage, Thumbnail};
use crate::store::Table;

/// Pairs shown per model.
pub const GALLERY_PAIRS: usize = 12;

/// One gallery per model of the first `GALLERY_PAIRS` clean pairs of `table`, with the
/// thumbnails `thumbnails` finds for the pairs' ids (none when the dataset is not at hand).
/// A pair across groups (`cross` = 1) is a leak. `what` names the pairs in the title ("most
/// similar image pairs").
pub fn pair_galleries(
    table: &Table,
    thumbnails: &dyn Fn(&[&str]) -> HashMap<String, Thumbnail>,
    what: &str,
) -> Vec<Block> {
    let (Some(model), Some(variant), Some(a), Some(b), Some(cosine)) = (
        table.texts("model"),
        table.texts("variant"),
        table.texts("a_id"),
        table.texts("b_id"),
        table.floats("cosine"),
    ) else {
        return Vec::new();
    };
    let cross = table.ints("cross");
    let (a_group, b_group) = (table.texts("a_group"), table.texts("b_group"));
    let mut models: Vec<&str> = Vec::new();
    let mut rows: HashMap<&str, Vec<usize>> = HashMap::new();
    for i in 0..table.rows() {
        let (Some(m), Some("clean")) = (model[i].as_deref(), variant[i].as_deref()) else {
            continue;
        };
        let list = rows.entry(m).or_default();
        if list.is_empty() {
            models.push(m);
        }
        if list.len() < GALLERY_PAIRS {
            list.push(i);
        }
    }
    let ids: Vec<&str> = models
        .iter()
        .flat_map(|m| rows[m].iter())
        .flat_map(|&i| [a[i].as_deref(), b[i].as_deref()])
        .flatten()
        .collect();
    let thumbs = thumbnails(&ids);
    let text = |v: &[Option<String>], i: usize| v[i].clone().unwrap_or_default();
    models
        .into_iter()
        .map(|m| {
            let pairs = rows[m]
                .iter()
                .map(|&i| {
                    let group = |g: Option<&[Option<String>]>| g.and_then(|g| g[i].clone());
                    let side = |id: String, g: Option<String>| PairImage {
                        label: match g {
                            Some(g) => format!("{id} [{g}]"),
                            None => id.clone(),
                        },
                        thumbnail: thumbs.get(&id).cloned(),
                    };
                    let groups = (a_group.is_some() || b_group.is_some()).then(|| {
                        let name = |g: Option<String>| g.unwrap_or_else(|| "no group".into());
                        format!("{} · {}", name(group(a_group)), name(group(b_group)))
                    });
                    ImagePair {
                        cosine: cosine[i].unwrap_or(f64::NAN),
                        leak: cross.is_some_and(|c| c[i] == Some(1)),
                        groups,
                        a: side(text(a, i), group(a_group)),
                        b: side(text(b, i), group(b_group)),
                    }
                })
                .collect();
            Block::Pairs(PairGallery {
                title: format!("{m}: {what}"),
                pairs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Column;

    #[test]
    fn pairs_become_galleries_per_model() {
        let n = 30;
        let t = Table::new("duplicate_pairs")
            .text("model", (0..n).map(|i| if i < 20 { "m1" } else { "m2" }))
            .text(
                "variant",
                (0..n).map(|i| if i % 10 == 9 { "blur" } else { "clean" }),
            )
            .text("a_id", (0..n).map(|i| format!("a{i}")))
            .text("b_id", (0..n).map(|i| format!("b{i}")))
            .float("cosine", (0..n).map(|i| 1.0 - i as f64 / 100.0))
            .text("a_group", (0..n).map(|_| "train"))
            .column(
                "b_group",
                Column::Text(
                    (0..n)
                        .map(|i| match i % 3 {
                            0 => Some("test".to_string()),
                            1 => Some("train".to_string()),
                            _ => None,
                        })
                        .collect(),
                ),
            )
            .column(
                "cross",
                Column::Int((0..n).map(|i| Some(i64::from(i % 3 == 0))).collect()),
            );
        let thumb = Thumbnail {
            mime: "image/png",
            bytes: vec![1, 2, 3],
        };
        let asked = std::cell::RefCell::new(Vec::new());
        let g = pair_galleries(
            &t,
            &|ids: &[&str]| {
                asked.borrow_mut().extend(ids.iter().map(|s| s.to_string()));
                HashMap::from([("b0".to_string(), thumb.clone())])
            },
            "most similar image pairs",
        );
        // Thumbnails are asked once, for the shown pairs' ids only.
        assert_eq!(asked.borrow().len(), 2 * (GALLERY_PAIRS + 9));
        assert!(!asked.borrow().contains(&"a9".to_string()), "a blur row");
        assert_eq!(g.len(), 2);
        let Block::Pairs(first) = &g[0] else {
            panic!("a pair gallery")
        };
        assert_eq!(first.title, "m1: most similar image pairs");
        // m1 has 18 clean pairs (rows 9 and 19 are blur): the first 12 are shown.
        assert_eq!(first.pairs.len(), GALLERY_PAIRS);
        let p = &first.pairs[0];
        assert_eq!((p.cosine, p.leak), (1.0, true));
        assert_eq!(p.groups.as_deref(), Some("train · test"));
        assert_eq!(
            (p.a.label.as_str(), p.b.label.as_str()),
            ("a0 [train]", "b0 [test]")
        );
        assert!(p.a.thumbnail.is_none() && p.b.thumbnail == Some(thumb));
        assert!(!first.pairs[1].leak);
        assert_eq!(first.pairs[2].groups.as_deref(), Some("train · no group"));
        let Block::Pairs(second) = &g[1] else {
            panic!("a pair gallery")
        };
        assert_eq!(second.pairs.len(), 9, "rows 20..30 without the blur row 29");
        assert!(pair_galleries(&Table::new("x"), &|_| HashMap::new(), "pairs").is_empty());
        // Without group columns: no groups, no leaks.
        let plain = Table::new("duplicate_pairs")
            .text("model", ["m"])
            .text("variant", ["clean"])
            .text("a_id", ["x"])
            .text("b_id", ["y"])
            .float("cosine", [0.99]);
        let Block::Pairs(p) = &pair_galleries(&plain, &|_| HashMap::new(), "pairs")[0] else {
            panic!()
        };
        assert!(p.pairs[0].groups.is_none() && !p.pairs[0].leak);
    }
}
