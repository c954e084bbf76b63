//! The text rows of a part: every caption (or prompt) in every text variant, item-major with
//! `clean` first, so a text part holds each item's variants together and readers meet the
//! clean texts of a model first.
//!
//! An item with several captions has one row per caption and variant, with the ids of
//! [`crate::store::caption_id`] and the item's id in `item_id`.
//!
//! A text row keeps its item's (or prompt's) `id` whatever the variant: the variant is in the
//! `variant` column (`clean`, `char_swap-0.1`, ...), its kind and rate in `noise` and
//! `noise_level`, and the perturbed text itself in `text`. Pairing a text variant with the
//! clean images (and clean texts with image variants) is the analysis' business: it matches
//! rows on `id` and `label` exactly as for clean texts.

use std::borrow::Cow;

use super::plan::{Plan, Prompt};
use crate::augment::TextVariant;
use crate::dataset::Item;

/// One text to encode and where it came from.
pub(super) struct TextRow<'a> {
    pub id: Cow<'a, str>,
    /// The caption's item id (None for prompts).
    pub item_id: Option<&'a str>,
    pub label: Option<&'a str>,
    /// The caption's item (None for prompts), for error records.
    pub item: Option<&'a Item>,
    pub variant: &'a TextVariant,
    pub text: String,
}

impl TextRow<'_> {
    /// The variant name for an error record (`None` for clean, as image-independent errors).
    pub fn error_variant(&self) -> Option<String> {
        self.variant.noise.map(|_| self.variant.name.clone())
    }
}

/// Every caption of `items` in every text variant, with the end (exclusive row index) of each
/// (item, variant) unit, the unit progress counts; items without a caption have no rows and
/// units that end where they start.
pub(super) fn caption_rows<'a>(
    plan: &'a Plan,
    items: &'a [Item],
) -> (Vec<TextRow<'a>>, Vec<usize>) {
    let seed = plan.study().seed;
    let mut rows = Vec::new();
    let mut unit_ends = Vec::with_capacity(items.len() * plan.text_variants.len());
    for item in items {
        let count = item.captions.len();
        for variant in &plan.text_variants {
            for (k, caption) in item.captions.iter().enumerate() {
                let id = crate::store::caption_id(&item.id, k, count);
                let text = variant.apply(caption, seed, &id);
                rows.push(TextRow {
                    id,
                    item_id: Some(&item.id),
                    label: item.label.as_deref(),
                    item: Some(item),
                    variant,
                    text,
                });
            }
            unit_ends.push(rows.len());
        }
    }
    (rows, unit_ends)
}

/// Every prompt in every text variant.
pub(super) fn prompt_rows<'a>(plan: &'a Plan, prompts: &'a [Prompt]) -> Vec<TextRow<'a>> {
    let seed = plan.study().seed;
    let mut rows = Vec::new();
    for p in prompts {
        for variant in &plan.text_variants {
            rows.push(TextRow {
                id: Cow::Borrowed(&p.id),
                item_id: None,
                label: Some(&p.label),
                item: None,
                variant,
                text: variant.apply(&p.text, seed, &p.id),
            });
        }
    }
    rows
}
