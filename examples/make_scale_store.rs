//! Writes a clipflow store of synthetic CLIP-like embeddings for `scripts/bench_scale`: N items
//! of C classes, a caption per item, three prompts per class, and noisy image variants, in the
//! run-directory layout and with the store's own part writer (so `clipflow analyze` reads it as
//! it reads a real run).
//!
//! Geometry, roughly CLIP's: an item is its class centre plus an item direction of the same
//! norm; its caption is the item plus seven times as much text noise, so image–caption cosines
//! sit near 0.2 as CLIP's do and retrieval is neither trivial nor hopeless (recall@1 about 0.6
//! among 10k items, lower among more); a noisy variant adds σ times fresh noise to the image.
//!
//! Usage: make_scale_store OUT_DIR N [VARIANTS] [DIM] [CLASSES]
//!   VARIANTS = 1 writes the clean images only; 4 adds gaussian-2.0, -4.0 and -8.0.

use std::path::Path;

use clipflow::store::{part_path, EmbeddingRow, PartWriter};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const PART_ITEMS: usize = 2048;

struct Normal(ChaCha8Rng);

impl Normal {
    fn new(stream: u64) -> Normal {
        let mut r = ChaCha8Rng::seed_from_u64(20_261_201);
        r.set_stream(stream);
        Normal(r)
    }
    /// A standard normal (Box–Muller on two 53-bit uniforms).
    fn next(&mut self) -> f32 {
        let u = |r: &mut ChaCha8Rng| ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let (a, b) = (u(&mut self.0), u(&mut self.0));
        ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
    }
    fn fill(&mut self, v: &mut [f32], scale: f32) {
        for x in v {
            *x = self.next() * scale;
        }
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: make_scale_store OUT_DIR N [VARIANTS 1|4] [DIM] [CLASSES]");
        std::process::exit(2);
    }
    let out = Path::new(&args[1]);
    let n: usize = args[2].parse().expect("N");
    let variants: usize = args.get(3).map_or(4, |v| v.parse().expect("VARIANTS"));
    let dim: usize = args.get(4).map_or(512, |v| v.parse().expect("DIM"));
    let classes: usize = args.get(5).map_or(100, |v| v.parse().expect("CLASSES"));
    let sigmas: &[f32] = if variants >= 4 { &[2.0, 4.0, 8.0] } else { &[] };
    let model = "synthetic";
    // Class centres: unit vectors scaled so an item's class explains about half its direction.
    let mut centres = vec![0.0f32; classes * dim];
    let mut rng = Normal::new(0);
    for c in 0..classes {
        rng.fill(&mut centres[c * dim..(c + 1) * dim], 1.0);
        normalise(&mut centres[c * dim..(c + 1) * dim]);
    }
    let item_scale = 1.0 / (dim as f32).sqrt();
    let class_name = |c: usize| format!("class{c:03}");

    let parts = n.div_ceil(PART_ITEMS);
    let (mut img, mut noise) = (vec![0.0f32; dim], vec![0.0f32; dim]);
    for p in 0..parts {
        let range = p * PART_ITEMS..((p + 1) * PART_ITEMS).min(n);
        let mut images =
            PartWriter::create(&part_path(out, model, "image", p), model, "image", dim)
                .expect("image part");
        let mut texts = PartWriter::create(&part_path(out, model, "text", p), model, "text", dim)
            .expect("text part");
        // One stream per part: parts can be regenerated independently, in any order.
        let mut rng = Normal::new(1 + p as u64);
        let mut noisy: Vec<Vec<f32>> = Vec::new();
        let ids: Vec<String> = range.clone().map(|i| format!("item{i:08}")).collect();
        let labels: Vec<String> = range.clone().map(|i| class_name(i % classes)).collect();
        for (k, i) in range.clone().enumerate() {
            let c = i % classes;
            rng.fill(&mut img, item_scale);
            for (x, y) in img.iter_mut().zip(&centres[c * dim..(c + 1) * dim]) {
                *x += y;
            }
            let clean = img.clone();
            let mut unit = clean.clone();
            normalise(&mut unit);
            let row = |variant: &'static str, noise: &'static str, level: f64| EmbeddingRow {
                id: &ids[k],
                variant,
                label: Some(&labels[k]),
                text: None,
                noise,
                noise_level: level,
                item_id: Some(&ids[k]),
            };
            images.push(&row("clean", "none", 0.0), &unit).expect("row");
            for &s in sigmas {
                rng.fill(&mut noise, item_scale * s);
                let mut v: Vec<f32> = clean.iter().zip(&noise).map(|(a, b)| a + b).collect();
                normalise(&mut v);
                noisy.push(v);
            }
            rng.fill(&mut noise, 7.0 * item_scale);
            let mut caption: Vec<f32> = clean.iter().zip(&noise).map(|(a, b)| a + b).collect();
            normalise(&mut caption);
            let text = format!("a synthetic caption of item {i} in {}", labels[k]);
            let row = EmbeddingRow {
                id: &ids[k],
                variant: "clean",
                label: Some(&labels[k]),
                text: Some(&text),
                noise: "none",
                noise_level: 0.0,
                item_id: Some(&ids[k]),
            };
            texts.push(&row, &caption).expect("row");
        }
        // Variant rows after the clean ones, variant by variant, as clipflow writes a part.
        for (si, &s) in sigmas.iter().enumerate() {
            let name = format!("gaussian-{s:.1}");
            for k in 0..range.len() {
                let row = EmbeddingRow {
                    id: &ids[k],
                    variant: &name,
                    label: Some(&labels[k]),
                    text: None,
                    noise: "gaussian",
                    noise_level: s as f64,
                    item_id: Some(&ids[k]),
                };
                images
                    .push(&row, &noisy[k * sigmas.len() + si])
                    .expect("row");
            }
        }
        images.finish().expect("image part");
        texts.finish().expect("text part");
    }
    // Prompts: three templates per class, near the class centre.
    let mut prompts = PartWriter::create(&part_path(out, model, "text", parts), model, "text", dim)
        .expect("prompt part");
    let mut rng = Normal::new(u64::MAX);
    for c in 0..classes {
        for t in 0..3 {
            rng.fill(&mut noise, 0.5 * item_scale);
            let mut v: Vec<f32> = centres[c * dim..(c + 1) * dim]
                .iter()
                .zip(&noise)
                .map(|(a, b)| a + b)
                .collect();
            normalise(&mut v);
            let id = format!("prompt:{}:{t}", class_name(c));
            let label = class_name(c);
            let text = format!("template {t} of {label}");
            let row = EmbeddingRow {
                id: &id,
                variant: "clean",
                label: Some(&label),
                text: Some(&text),
                noise: "none",
                noise_level: 0.0,
                item_id: None,
            };
            prompts.push(&row, &v).expect("row");
        }
    }
    prompts.finish().expect("prompt part");
    println!(
        "{}: {n} items × {} image variants + captions + {} prompts, D={dim}",
        out.display(),
        1 + sigmas.len(),
        classes * 3
    );
}
