//! `retrieval`: text→image and image→text recall@K, mean/median rank and MRR per variant, the
//! rank of every query's first positive, and galleries of the first queries' top hits.
//!
//! Positives follow CLIP_benchmark: with captions, a caption's positive is its image, and an
//! image is a hit at K when *any* of its captions is in the top K (a dataset with five
//! captions per image has five text queries per image, and each image is encoded once); with
//! labels, any item of the same class. A query whose positive is not in the gallery (its image
//! failed to decode) is left out and counted (`queries_without_positive`).
//!
//! `queries: N` measures a seeded sample of N queries per direction against the whole gallery:
//! at a million images the full N² ranks are hours on a CPU, while 10k queries give recall to
//! about ±0.005. The sample is decided by each query's id alone, so every variant is measured
//! on the same queries.
//!
//! Ties: beside the index-order rank, every query's optimistic and pessimistic ranks are kept
//! (see [`crate::analysis::retrieval`]); when ties decide any query, the optimistic and
//! pessimistic recalls are reported and a note says how many queries.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{embeddings, sample_by_id};
use crate::analysis::retrieval::{self, Positives, RankOptions};
use crate::analysis::Embeddings;
use crate::analyze::blocks::Blocks;
use crate::analyze::stage::{
    Context, Facts, Metric, Output, Section, Set, SettingError, Stage, StageConfig, StageError,
};
use crate::store::{Column, EmbeddingSet, Table};

/// Which gallery items count as positives for a query.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PositivesKind {
    /// Captions when the store has them, else labels.
    #[default]
    Auto,
    /// The image and the captions of the same item (Pokemon-, COCO-style).
    Caption,
    /// Any item with the same label (class-level).
    Label,
}

/// `analysis.retrieval`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrievalSettings {
    /// Recall@K cut-offs.
    #[serde(default = "default_ks")]
    pub k: Vec<usize>,
    #[serde(default)]
    pub positives: PositivesKind,
    /// Queries whose top hits are kept for the report's galleries.
    #[serde(default = "default_galleries")]
    pub galleries: usize,
    /// Hits per gallery.
    #[serde(default = "default_gallery_k")]
    pub gallery_k: usize,
    /// Measure a seeded sample of this many queries per direction (default: every query).
    #[serde(default)]
    pub queries: Option<usize>,
    /// Queries per block when the workers of a cluster array share the ranking (a block is
    /// ranked against the whole gallery by one worker).
    #[serde(default = "default_block_queries")]
    pub block_queries: usize,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        RetrievalSettings {
            k: default_ks(),
            positives: PositivesKind::Auto,
            galleries: default_galleries(),
            gallery_k: default_gallery_k(),
            queries: None,
            block_queries: default_block_queries(),
        }
    }
}

pub(crate) fn default_ks() -> Vec<usize> {
    vec![1, 5, 10]
}
fn default_galleries() -> usize {
    5
}
fn default_gallery_k() -> usize {
    5
}
fn default_block_queries() -> usize {
    4096
}

impl StageConfig for RetrievalSettings {
    const KEY: &'static str = "retrieval";
    const SECTION: Section = Section {
        anchor: "retrieval",
        title: "Retrieval",
        about: "Text-to-image and image-to-text recall@K, ranks and MRR; galleries show the top \
                hits of the first queries (green: a positive, red: not).",
        prefixes: &["retrieval"],
        summaries: &["retrieval"],
    };

    fn check(&self, _: &Facts) -> Result<(), SettingError> {
        if self.k.is_empty() {
            return Err(SettingError::new("k", "list cut-offs of at least 1"));
        }
        if let Some(i) = self.k.iter().position(|&k| k == 0) {
            return Err(SettingError::new(
                &format!("k.{i}"),
                "cut-offs must be at least 1",
            ));
        }
        if self.block_queries == 0 {
            return Err(SettingError::new("block_queries", "must be at least 1"));
        }
        if self.queries == Some(0) {
            return Err(SettingError::new(
                "queries",
                "must be at least 1 (leave it out to use every query)",
            ));
        }
        Ok(())
    }

    fn start(self) -> Box<dyn Stage> {
        Box::new(RetrievalStage { settings: self })
    }
}

struct RetrievalStage {
    settings: RetrievalSettings,
}

/// The texts retrieval pairs with a model's images, and how: `caption` (each caption's item
/// is its positive) or `label` (same class). `None` when the model has no usable texts.
pub(crate) fn paired_texts<'a>(
    model: &'a crate::analyze::stage::Model<'a>,
    positives: PositivesKind,
) -> Option<(&'a EmbeddingSet, &'static str)> {
    match (positives, model.captions, model.prompts) {
        (PositivesKind::Auto | PositivesKind::Caption, Some(c), _) => Some((c, "caption")),
        (PositivesKind::Label, Some(c), _) if c.labels.iter().any(Option::is_some) => {
            Some((c, "label"))
        }
        (PositivesKind::Label | PositivesKind::Auto, _, Some(p)) => Some((p, "label")),
        _ => None,
    }
}

/// Integer keys for a list of optional strings; `None` gets a key no other row shares.
pub(crate) fn keys<'a>(
    values: impl Iterator<Item = Option<&'a str>>,
    dict: &mut HashMap<String, usize>,
    next_unique: &mut usize,
) -> Vec<usize> {
    values
        .map(|v| match v {
            Some(s) => {
                let n = dict.len();
                *dict.entry(s.to_string()).or_insert(n)
            }
            None => {
                *next_unique += 1;
                usize::MAX - *next_unique
            }
        })
        .collect()
}

/// Positive keys of the texts and the images: the item (caption mode) or the label.
pub(crate) fn positive_keys(
    texts: &EmbeddingSet,
    images: &EmbeddingSet,
    mode: &str,
) -> (Vec<usize>, Vec<usize>) {
    let (mut dict, mut unique) = (HashMap::new(), 0usize);
    if mode == "caption" {
        let t = keys(
            (0..texts.len()).map(|i| Some(texts.item(i))),
            &mut dict,
            &mut unique,
        );
        let i = keys(
            images.ids.iter().map(|s| Some(s.as_str())),
            &mut dict,
            &mut unique,
        );
        (t, i)
    } else {
        let t = keys(
            texts.labels.iter().map(|l| l.as_deref()),
            &mut dict,
            &mut unique,
        );
        let i = keys(
            images.labels.iter().map(|l| l.as_deref()),
            &mut dict,
            &mut unique,
        );
        (t, i)
    }
}

/// One direction of one (model, variant): which queries are measured against which gallery.
struct Direction<'a> {
    name: &'static str,
    mode: &'static str,
    queries: &'a EmbeddingSet,
    gallery: &'a EmbeddingSet,
    /// Positive keys of every query and gallery row.
    query_keys: Vec<usize>,
    gallery_keys: Vec<usize>,
    /// Rows of `queries` measured (answerable, and sampled when `queries: N`).
    measured: Vec<usize>,
    /// Queries left out because their positive is not in the gallery.
    dropped: usize,
    /// Of `measured`, how many had a positive before sampling (for the note).
    answerable: usize,
}

impl Direction<'_> {
    /// The block group of this direction in a shared run (text variants have their own).
    fn group(&self, settings: &RetrievalSettings, seed: u64, set: &Set<'_>) -> String {
        let group = crate::analyze::blocks::group(
            "retrieval",
            settings,
            seed,
            set.model.name,
            set.variant(),
        );
        if set.text_variant() == "clean" {
            format!("{group}/{}", self.name)
        } else {
            format!(
                "{group}/t-{}/{}",
                crate::analyze::stage::slug(set.text_variant()),
                self.name
            )
        }
    }

    fn blocks(&self, size: usize) -> usize {
        self.measured.len().div_ceil(size)
    }
}

impl RetrievalStage {
    /// The two directions of a set, with the same queries in every worker (the sample is
    /// decided by each query's id).
    fn directions<'a>(&self, cx: &Context<'_>, set: &'a Set<'a>) -> Option<Vec<Direction<'a>>> {
        let (texts, mode) = paired_texts(set.model, self.settings.positives)?;
        let images = set.images;
        let (text_keys, image_keys) = positive_keys(texts, images, mode);
        let mut out = Vec::new();
        for name in ["text_to_image", "image_to_text"] {
            let (queries, query_keys, gallery, gallery_keys) = if name == "text_to_image" {
                (texts, text_keys.clone(), images, image_keys.clone())
            } else {
                (images, image_keys.clone(), texts, text_keys.clone())
            };
            // A query whose positive is not in the gallery (its image failed to decode, say)
            // is unanswerable for reasons that are not the model's: leave it out, and count it.
            let in_gallery: HashSet<usize> = gallery_keys.iter().copied().collect();
            let answerable: Vec<usize> = (0..queries.len())
                .filter(|&i| in_gallery.contains(&query_keys[i]))
                .collect();
            let dropped = queries.len() - answerable.len();
            let n_answerable = answerable.len();
            let measured = match self.settings.queries {
                Some(n) if n < answerable.len() => sample_by_id(
                    answerable.iter().map(|&i| queries.ids[i].as_str()),
                    n,
                    cx.seed ^ 0x7e7a_1e5a,
                )
                .into_iter()
                .map(|j| answerable[j])
                .collect(),
                _ => answerable,
            };
            out.push(Direction {
                name,
                mode,
                queries,
                gallery,
                query_keys,
                gallery_keys,
                measured,
                dropped,
                answerable: n_answerable,
            });
        }
        Some(out)
    }

    /// Ranks the measured queries `range` of a direction against its whole gallery; `shown`
    /// are positions (in `range`) whose top hits are kept.
    fn rank(
        &self,
        d: &Direction<'_>,
        range: std::ops::Range<usize>,
        shown: &[usize],
    ) -> Result<retrieval::Ranking, StageError> {
        let rows = &d.measured[range];
        let q_vectors: Vec<f32> = rows
            .iter()
            .flat_map(|&i| d.queries.row(i).iter().copied())
            .collect();
        let q = Embeddings::new(&q_vectors, d.queries.dim)?;
        let qk: Vec<usize> = rows.iter().map(|&i| d.query_keys[i]).collect();
        let opts = RankOptions {
            top_k_queries: shown,
            top_k: self.settings.gallery_k.max(1).min(d.gallery.len()),
            ..RankOptions::default()
        };
        let positives = Positives::SharedKey {
            query: &qk,
            gallery: &d.gallery_keys,
        };
        Ok(retrieval::rank(
            q,
            embeddings(d.gallery)?,
            &positives,
            &opts,
        )?)
    }

    /// Queries whose top hits the galleries show: the first `galleries` measured.
    fn shown(&self, d: &Direction<'_>) -> usize {
        d.measured.len().min(self.settings.galleries)
    }

    /// The ranking of a direction: read from the blocks other workers computed when they are
    /// all there, else computed here.
    fn ranking(
        &self,
        cx: &Context<'_>,
        set: &Set<'_>,
        d: &Direction<'_>,
    ) -> Result<retrieval::Ranking, StageError> {
        let shown: Vec<usize> = (0..self.shown(d)).collect();
        if let Some(blocks) = cx.blocks {
            let group = d.group(&self.settings, cx.seed, set);
            if let Some(tables) = blocks.read(&group, d.blocks(self.settings.block_queries))? {
                if let Some(r) = from_blocks(&tables, d.measured.len(), &shown) {
                    return Ok(r);
                }
            }
        }
        self.rank(d, 0..d.measured.len(), &shown)
    }
}

/// A block's ranks as a table: position, rank and its bounds, and the top hits of the shown
/// queries (`gallery/score bits/positive`, space-separated: exact).
fn block_table(first: usize, r: &retrieval::Ranking) -> Table {
    let n = r.ranks.len();
    let ints = |v: &[Option<usize>]| Column::Int(v.iter().map(|x| x.map(|v| v as i64)).collect());
    let mut hits: Vec<Option<String>> = vec![None; n];
    for top in &r.top {
        hits[top.query] = Some(
            top.hits
                .iter()
                .map(|h| {
                    format!(
                        "{}/{:08x}/{}",
                        h.gallery,
                        h.score.to_bits(),
                        h.positive as u8
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    Table::new("block")
        .int("query", (first..first + n).map(|q| q as i64))
        .column("rank", ints(&r.ranks))
        .column("rank_optimistic", ints(&r.optimistic))
        .column("rank_pessimistic", ints(&r.pessimistic))
        .column("hits", Column::Text(hits))
}

/// The ranking of `n` queries from their block tables; `None` when they do not fit together
/// (a block of another analysis: then the ranks are computed again).
fn from_blocks(tables: &[Table], n: usize, shown: &[usize]) -> Option<retrieval::Ranking> {
    let mut r = retrieval::Ranking {
        ranks: Vec::with_capacity(n),
        first_positive: Vec::with_capacity(n),
        optimistic: Vec::with_capacity(n),
        pessimistic: Vec::with_capacity(n),
        top: Vec::new(),
    };
    for t in tables {
        let (q, rank, opt, pes, hits) = (
            t.ints("query")?,
            t.ints("rank")?,
            t.ints("rank_optimistic")?,
            t.ints("rank_pessimistic")?,
            t.texts("hits")?,
        );
        for i in 0..t.rows() {
            if q[i]? as usize != r.ranks.len() {
                return None;
            }
            let u = |v: Option<i64>| v.map(|v| v as usize);
            r.ranks.push(u(rank[i]));
            r.first_positive.push(None);
            r.optimistic.push(u(opt[i]));
            r.pessimistic.push(u(pes[i]));
            if let Some(h) = &hits[i] {
                let query = r.ranks.len() - 1;
                let mut list = Vec::new();
                for item in h.split(' ').filter(|s| !s.is_empty()) {
                    let mut f = item.split('/');
                    let gallery = f.next()?.parse().ok()?;
                    let score = f32::from_bits(u32::from_str_radix(f.next()?, 16).ok()?);
                    let positive = f.next()? == "1";
                    list.push(retrieval::Hit {
                        gallery,
                        score,
                        positive,
                    });
                }
                r.top.push(retrieval::TopHits { query, hits: list });
            }
        }
    }
    let tops: Vec<usize> = r.top.iter().map(|t| t.query).collect();
    (r.ranks.len() == n && tops == shown).then_some(r)
}

impl Stage for RetrievalStage {
    fn shares(&self) -> bool {
        true
    }

    fn share(
        &mut self,
        cx: &Context<'_>,
        set: &Set<'_>,
        blocks: &Blocks<'_>,
    ) -> Result<(), StageError> {
        let Some(directions) = self.directions(cx, set) else {
            return Ok(());
        };
        for d in &directions {
            let shown = self.shown(d);
            let group = d.group(&self.settings, cx.seed, set);
            let size = self.settings.block_queries;
            blocks.compute(&group, d.blocks(size), &mut |b| {
                let start = b * size;
                let end = (start + size).min(d.measured.len());
                let here: Vec<usize> = (start..end.min(shown)).map(|q| q - start).collect();
                let r = self.rank(d, start..end, &here).map_err(|e| e.to_string())?;
                Ok(block_table(start, &r))
            })?;
        }
        Ok(())
    }

    fn run(&mut self, cx: &Context<'_>, set: &Set<'_>, out: &mut Output) -> Result<(), StageError> {
        let model = set.model.name;
        let images = set.images;
        let Some(directions) = self.directions(cx, set) else {
            if set.is_clean() {
                out.note(format!(
                    "{model}: retrieval skipped: no texts to pair with images"
                ));
            }
            return Ok(());
        };
        let ks: Vec<usize> = self
            .settings
            .k
            .iter()
            .copied()
            .filter(|&k| k >= 1)
            .collect();
        for d in &directions {
            if d.measured.is_empty() {
                continue;
            }
            let (direction, queries, gallery) = (d.name, d.queries, d.gallery);
            if d.measured.len() < d.answerable && set.is_clean() {
                out.note(format!(
                    "{model}: retrieval {direction}: a seeded sample of {} of {} queries is \
                     measured (analysis.retrieval.queries)",
                    d.measured.len(),
                    d.answerable
                ));
            }
            let ks_here: Vec<usize> = ks.iter().copied().filter(|&k| k <= gallery.len()).collect();
            let ranking = self.ranking(cx, set, d)?;
            let metrics = retrieval::summarize(&ranking.ranks, gallery.len(), &ks_here)?;
            let r = retrieval::Retrieval { ranking, metrics };
            let measured = &d.measured;
            let kind = format!("{direction}:{}", d.mode);
            let mut push = |metric: &str, k: Option<i64>, value: f64| {
                out.metric(Metric {
                    model: model.to_string(),
                    variant: images.variant.clone(),
                    text_variant: set.text_variant().to_string(),
                    stage: "retrieval",
                    kind: kind.clone(),
                    metric: metric.to_string(),
                    k,
                    value,
                })
            };
            for rk in &r.metrics.recall {
                push("recall", Some(rk.k as i64), rk.recall);
            }
            if let Some(v) = r.metrics.mean_rank {
                push("mean_rank", None, v);
            }
            if let Some(v) = r.metrics.median_rank {
                push("median_rank", None, v);
            }
            push("mrr", None, r.metrics.mrr);
            push("queries", None, measured.len() as f64);
            push("queries_without_positive", None, d.dropped as f64);
            // Ties: how many queries' ranks depend on the gallery's index order, and the
            // recall if every tie went for the query, or against it.
            let tied = r
                .ranking
                .optimistic
                .iter()
                .zip(&r.ranking.pessimistic)
                .filter(|(a, b)| a != b)
                .count();
            push("tied_queries", None, tied as f64);
            if tied > 0 {
                let opt = retrieval::summarize(&r.ranking.optimistic, gallery.len(), &ks_here)?;
                let pes = retrieval::summarize(&r.ranking.pessimistic, gallery.len(), &ks_here)?;
                for (a, b) in opt.recall.iter().zip(&pes.recall) {
                    push("recall_optimistic", Some(a.k as i64), a.recall);
                    push("recall_pessimistic", Some(b.k as i64), b.recall);
                }
                let first =
                    |m: &retrieval::RetrievalMetrics| m.recall.first().map(|r| (r.k, r.recall));
                if let (Some((k, lo)), Some((_, hi))) = (first(&pes), first(&opt)) {
                    out.note(format!(
                        "{model} / {}: retrieval {direction}: ties in the scores decide the rank \
                         of {tied} of {} queries; recall@{k} is between {lo:.4} and {hi:.4} \
                         depending on the order of tied items (recall_optimistic / \
                         recall_pessimistic in the retrieval table)",
                        set.label(),
                        measured.len()
                    ));
                }
            }
            let n = r.ranking.ranks.len();
            let ints =
                |v: &[Option<usize>]| Column::Int(v.iter().map(|x| x.map(|v| v as i64)).collect());
            out.table(
                Table::new("retrieval_ranks")
                    .text("model", vec![model.to_string(); n])
                    .text("variant", vec![images.variant.clone(); n])
                    .text("text_variant", vec![set.text_variant().to_string(); n])
                    .text("direction", vec![direction.to_string(); n])
                    .text("query_id", measured.iter().map(|&i| queries.ids[i].clone()))
                    .column("rank", ints(&r.ranking.ranks))
                    .column("rank_optimistic", ints(&r.ranking.optimistic))
                    .column("rank_pessimistic", ints(&r.ranking.pessimistic)),
            )?;
            // One row per (shown query, hit), in rank order.
            let hits: Vec<(usize, usize, &retrieval::Hit)> = r
                .ranking
                .top
                .iter()
                .flat_map(|top| {
                    top.hits
                        .iter()
                        .enumerate()
                        .map(move |(pos, h)| (measured[top.query], pos, h))
                })
                .collect();
            let rows = hits.len();
            out.table(
                Table::new("retrieval_galleries")
                    .text("model", vec![model.to_string(); rows])
                    .text("variant", vec![images.variant.clone(); rows])
                    .text("text_variant", vec![set.text_variant().to_string(); rows])
                    .text("direction", vec![direction.to_string(); rows])
                    .text(
                        "query_id",
                        hits.iter().map(|(q, _, _)| queries.ids[*q].clone()),
                    )
                    .column(
                        "query_text",
                        Column::Text(
                            hits.iter()
                                .map(|(q, _, _)| queries.texts[*q].clone())
                                .collect(),
                        ),
                    )
                    .text(
                        "query_item",
                        hits.iter().map(|(q, _, _)| queries.item(*q).to_string()),
                    )
                    .int("rank", hits.iter().map(|(_, pos, _)| *pos as i64 + 1))
                    .text(
                        "hit_id",
                        hits.iter().map(|(_, _, h)| gallery.ids[h.gallery].clone()),
                    )
                    .float("score", hits.iter().map(|(_, _, h)| h.score as f64))
                    .int("positive", hits.iter().map(|(_, _, h)| h.positive as i64))
                    .column(
                        "hit_text",
                        Column::Text(
                            hits.iter()
                                .map(|(_, _, h)| gallery.texts[h.gallery].clone())
                                .collect(),
                        ),
                    ),
            )?;
        }
        Ok(())
    }

    fn wants_text_variants(&self) -> bool {
        true
    }

    /// A text variant against the clean images: the same measures, the perturbed texts as
    /// queries (text→image) and as the gallery (image→text).
    fn run_text_variant(
        &mut self,
        cx: &Context<'_>,
        set: &Set<'_>,
        out: &mut Output,
    ) -> Result<(), StageError> {
        self.run(cx, set, out)
    }

    fn finish(&mut self, _: &Context<'_>, out: &mut Output) -> Result<(), StageError> {
        out.metric_table("retrieval", "direction")?;
        Ok(())
    }
}
