//! Writes a report with one interactive map of N points (default 50,000) and a sprite sheet of
//! T thumbnails (default 2,000), for `scripts/bench_report_map`, which times its redraws and
//! page load in headless Chromium.
//!
//! Usage: bench_report_map OUT.html [N] [T]
//!
//! Points: 20 Gaussian clusters on a ring (a t-SNE-like picture), ids `item/<n>`, captions of
//! ~40 characters, two clusterings and a zero-shot call each, deterministic.

use std::sync::Arc;

use clipflow::report::{
    write_report, Block, InteractiveMap, MapPoint, Report, RunSummary, Section,
    ThumbnailSheetBuilder, ZeroShotCall,
};

/// SplitMix64.
struct Mix(u64);

impl Mix {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .expect("usage: bench_report_map OUT.html [N] [T]");
    let n: usize = args.get(2).map_or(50_000, |s| s.parse().expect("N"));
    let t: usize = args.get(3).map_or(2_000, |s| s.parse().expect("T"));
    let mut rng = Mix(42);
    let mut b = ThumbnailSheetBuilder::new(64);
    for i in 0..t {
        // A gradient with a disc, so the sheet compresses like pictures rather than flat fills.
        let c = [
            (i * 37 % 256) as u8,
            (i * 91 % 256) as u8,
            (i * 13 % 256) as u8,
        ];
        let img = image::RgbImage::from_fn(96, 72, |x, y| {
            let d = ((x as i32 - 48).pow(2) + (y as i32 - 36).pow(2)) as u32;
            if d < 600 {
                image::Rgb(c)
            } else {
                image::Rgb([(x * 2) as u8, (y * 3) as u8, 128])
            }
        });
        b.add(&img).expect("thumbnail");
    }
    let sheet = Arc::new(b.finish().expect("sheet"));
    let classes = 20;
    let points: Vec<MapPoint> = (0..n)
        .map(|i| {
            let c = i % classes;
            let a = c as f64 / classes as f64 * std::f64::consts::TAU;
            MapPoint {
                x: 40.0 * a.cos() + 3.0 * rng.normal(),
                y: 40.0 * a.sin() + 3.0 * rng.normal(),
                id: format!("item/{i:06}"),
                label: Some(format!("class {c:02}")),
                caption: Some(format!("a photo of class {c:02}, picture number {i}")),
                thumbnail: (i < t).then_some(i),
                clusters: vec![Some((i % 17) as i64), Some((i % 5) as i64)],
                variant: Some("clean".into()),
                zero_shot: Some(ZeroShotCall {
                    predicted: format!("class {:02}", (c + usize::from(i % 7 == 0)) % classes),
                    correct: i % 7 != 0,
                }),
            }
        })
        .collect();
    let report = Report {
        title: format!("map benchmark: {n} points"),
        subtitle: None,
        summary: RunSummary::default(),
        sections: vec![Section {
            id: "map".into(),
            title: "Map".into(),
            note: None,
            blocks: vec![Block::Map(Box::new(InteractiveMap {
                title: format!("{n} points"),
                axis: "t-SNE".into(),
                note: None,
                points,
                cluster_methods: vec!["kmeans".into(), "ward".into()],
                thumbnails: Some(sheet),
                png: None,
                svg: None,
            }))],
        }],
    };
    write_report(std::path::Path::new(out), &report).expect("report");
    println!(
        "wrote {out}: {n} points, {t} thumbnails, {} bytes",
        std::fs::metadata(out).map(|m| m.len()).unwrap_or(0)
    );
}
