//! Galleries of the strongest near-duplicate pairs (`tables/duplicate_pairs`) and of the
//! strongest leaks (`tables/duplicate_leaks`): both images of each pair side by side with
//! their cosine, a pair across groups (splits) marked red.
//!
//! Expected columns (as the `duplicates` stage writes them, strongest pair first): `model`,
//! `variant`, `a_id`, `b_id`, `cosine`, and optionally `a_group`, `b_group` (the values of the
//! `across` column) and `cross` (1 when the groups differ). Rows of the clean images only.

use std::collections::HashMap;

use super::{Block, Gallery, GalleryHit, GalleryQuery, Thumbnail};
use crate::store::Table;

/// Pairs shown per model.
pub const GALLERY_PAIRS: usize = 12;

/// One gallery per model of the first `GALLERY_PAIRS` clean pairs of `table`, with the
/// thumbnails `thumbnails` finds for the pairs' ids (none when the dataset is not at hand).
/// A hit is "correct" (green) when the pair stays within one group, red when it crosses
/// groups: a leak. `what` names the pairs in the title ("most similar image pairs").
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
            let queries = rows[m]
                .iter()
                .map(|&i| {
                    let leak = cross.is_some_and(|c| c[i] == Some(1));
                    let groups = match (a_group, b_group) {
                        (Some(ga), Some(gb)) => {
                            format!(" ({} · {})", text(ga, i), text(gb, i))
                        }
                        _ => String::new(),
                    };
                    let hit = |id: String, group: Option<&[Option<String>]>| GalleryHit {
                        label: match group.and_then(|g| g[i].clone()) {
                            Some(g) => format!("{id} [{g}]"),
                            None => id.clone(),
                        },
                        score: cosine[i].unwrap_or(f64::NAN),
                        correct: !leak,
                        thumbnail: thumbs.get(&id).cloned(),
                    };
                    GalleryQuery {
                        query: format!(
                            "cosine {:.4}{}{groups}",
                            cosine[i].unwrap_or(f64::NAN),
                            if leak { ", across groups" } else { "" }
                        ),
                        expected: None,
                        hits: vec![hit(text(a, i), a_group), hit(text(b, i), b_group)],
                    }
                })
                .collect();
            Block::Gallery(Gallery {
                title: format!("{m}: {what} (red: across groups, a leak)"),
                queries,
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
            .text(
                "b_group",
                (0..n).map(|i| if i % 3 == 0 { "test" } else { "train" }),
            )
            .column(
                "cross",
                Column::Int((0..n).map(|i| Some(i64::from(i % 3 == 0))).collect()),
            );
        let g = pair_galleries(&t, &|_| HashMap::new(), "most similar image pairs");
        assert_eq!(g.len(), 2);
        let Block::Gallery(first) = &g[0] else {
            panic!("a gallery")
        };
        assert!(first.title.starts_with("m1"));
        // m1 has 18 clean pairs (rows 9 and 19 are blur): the first 12 are shown.
        assert_eq!(first.queries.len(), GALLERY_PAIRS);
        let q = &first.queries[0];
        assert_eq!(q.query, "cosine 1.0000, across groups (train · test)");
        assert_eq!(q.hits.len(), 2);
        assert_eq!(q.hits[1].label, "b0 [test]");
        assert!(!q.hits[0].correct && first.queries[1].hits[0].correct);
        let Block::Gallery(second) = &g[1] else {
            panic!("a gallery")
        };
        assert_eq!(
            second.queries.len(),
            9,
            "rows 20..30 without the blur row 29"
        );
        assert!(pair_galleries(&Table::new("x"), &|_| HashMap::new(), "pairs").is_empty());
        // Thumbnails are asked once, for the shown pairs' ids only.
        let asked = std::cell::RefCell::new(Vec::new());
        pair_galleries(
            &t,
            &|ids: &[&str]| {
                asked.borrow_mut().extend(ids.iter().map(|s| s.to_string()));
                HashMap::new()
            },
            "pairs",
        );
        assert_eq!(asked.borrow().len(), 2 * (GALLERY_PAIRS + 9));
        assert!(asked.borrow().contains(&"b0".to_string()));
        assert!(!asked.borrow().contains(&"a9".to_string()), "a blur row");
    }
}
