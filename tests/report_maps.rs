//! Interactive maps in report.html: the page model written as bytes (thumbnails once, data
//! escaped, nothing external, deterministic) and driven in headless Chromium through
//! scripts/check_report.py --expect: hovering known points shows their thumbnail (by colour),
//! id, label, caption and zero-shot call; a box over a known rectangle lists exactly the ids
//! inside it; no console error, no network request.
//!
//! Needs what `scripts/setup` installs (playwright, Debian's Chromium). Set
//! `CLIPFLOW_REPORT_OUT=<dir>` to keep the page, its screenshot and the expectations.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clipflow::report::{
    write_report, Block, InteractiveMap, MapPoint, Report, RunSummary, Section,
    ThumbnailSheetBuilder, ZeroShotCall,
};
use clipflow::store::Table;
use serde_json::json;

const HOSTILE: &str = "</script><script>alert(1)</script> & <!--";
const CLASSES: [&str; 6] = ["banded", "dotted", "striped", "zigzag", "woven", "marbled"];
const THUMBS: usize = 40;

fn python() -> String {
    std::env::var("CLIPFLOW_PYTHON").unwrap_or_else(|_| {
        common::root()
            .join(".venv/bin/python")
            .display()
            .to_string()
    })
}

/// SplitMix64 in [0, 1).
struct Mix(u64);

impl Mix {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The colour of thumbnail `t`: far apart for neighbouring indices.
fn colour(t: usize) -> [u8; 3] {
    [
        (40 + (t * 97) % 180) as u8,
        (40 + (t * 53) % 180) as u8,
        (40 + (t * 151) % 180) as u8,
    ]
}

/// 300 points in six class clusters, plus three isolated points (0, 1, 2) far from the rest.
fn points(shift: f64) -> Vec<MapPoint> {
    let mut rng = Mix(11);
    (0..300)
        .map(|i| {
            let class = i % CLASSES.len();
            let (x, y) = match i {
                0 => (-60.0, -60.0),
                1 => (60.0, -60.0),
                2 => (-60.0, 60.0),
                _ => {
                    let a = class as f64 * 1.047;
                    (
                        30.0 * a.cos() + 8.0 * (rng.uniform() - 0.5) + shift,
                        30.0 * a.sin() + 8.0 * (rng.uniform() - 0.5),
                    )
                }
            };
            MapPoint {
                x,
                y,
                id: format!("images/{}/{i:04}.jpg", CLASSES[class]),
                label: Some(CLASSES[class].to_string()),
                caption: Some(if i == 1 {
                    format!("hostile {HOSTILE}")
                } else {
                    format!("a {} texture, number {i}", CLASSES[class])
                }),
                thumbnail: (i != 2).then_some(i % THUMBS),
                clusters: vec![Some((i % 4) as i64), (i % 7 != 0).then_some((i % 3) as i64)],
                variant: Some("clean".into()),
                zero_shot: (i != 2).then(|| ZeroShotCall {
                    predicted: CLASSES[(class + usize::from(i % 5 == 0)) % CLASSES.len()]
                        .to_string(),
                    correct: i % 5 != 0,
                }),
            }
        })
        .collect()
}

fn report(dir: &Path) -> (Report, Vec<MapPoint>) {
    let mut b = ThumbnailSheetBuilder::new(64);
    for t in 0..THUMBS {
        // Landscape and portrait images, larger than a tile.
        let (w, h) = if t % 2 == 0 { (200, 120) } else { (90, 160) };
        b.add(&image::RgbImage::from_pixel(w, h, image::Rgb(colour(t))))
            .unwrap();
    }
    let sheet = Arc::new(b.finish().unwrap());
    let tsne = points(0.0);
    let map = |title: &str, points: Vec<MapPoint>| {
        Block::Map(Box::new(InteractiveMap {
            title: title.into(),
            axis: "t-SNE".into(),
            note: Some("300 images".into()),
            points,
            cluster_methods: vec!["kmeans".into(), "dbscan".into()],
            thumbnails: Some(Arc::clone(&sheet)),
            png: Some(dir.join("plots/projection_m_tsne_clean.png")),
            svg: None,
        }))
    };
    let report = Report {
        title: "maps".into(),
        subtitle: None,
        summary: RunSummary::default(),
        sections: vec![
            Section {
                id: "projections".into(),
                title: "Maps".into(),
                note: None,
                blocks: vec![
                    Block::Table {
                        title: "quality".into(),
                        table: Table::new("projection_quality").float("trust", [0.9]),
                        total_rows: 1,
                        max_rows: 5,
                    },
                    map("model: t-SNE, clean", tsne.clone()),
                    map("model: PCA, clean", points(5.0)),
                    map("empty", Vec::new()),
                ],
            },
            Section {
                id: "after".into(),
                title: "After".into(),
                note: None,
                blocks: vec![Block::Text("below the maps".into())],
            },
        ],
    };
    (report, tsne)
}

#[test]
fn maps_share_their_data_and_embed_nothing_external() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, _) = report(tmp.path());
    let path = tmp.path().join("report.html");
    write_report(&path, &r).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    write_report(&tmp.path().join("again.html"), &report(tmp.path()).0).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("again.html")).unwrap(),
        html.as_bytes(),
        "deterministic"
    );
    // One sprite sheet for 40 thumbnails, embedded once although two maps use it.
    assert_eq!(html.matches("data:image/jpeg;base64,").count(), 1);
    // Two maps with data, the empty one says so.
    assert_eq!(html.matches("class=\"imap-data\"").count(), 2);
    assert!(html.contains("No points."));
    // Captions are in the shared table once, not per map.
    assert_eq!(html.matches("a banded texture, number 6\"").count(), 1);
    // User text cannot close the script element or open a comment.
    assert!(!html.contains(HOSTILE));
    assert_eq!(
        html.matches("<script>").count(),
        1,
        "only the page's own script"
    );
    for url in ["http://", "https://", "//cdn", "@import", "url("] {
        assert!(!html.contains(url), "report mentions {url}");
    }
    assert!(html.contains("Printable copy: <a href=\"plots/projection_m_tsne_clean.png\">PNG</a>"));
}

#[test]
fn maps_work_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("CLIPFLOW_REPORT_OUT").map(PathBuf::from);
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let (r, tsne) = report(&dir);
    let path = dir.join("maps.html");
    write_report(&path, &r).unwrap();

    let hover = |i: usize| {
        let p = &tsne[i];
        let mut h = json!({
            "map": 0,
            "id": p.id,
            "label": p.label,
            "caption": p.caption,
        });
        if let Some(z) = &p.zero_shot {
            h["zero_shot"] = json!(format!(
                "zero-shot: {} {}",
                z.predicted,
                if z.correct { "✓" } else { "✗" }
            ));
        }
        if let Some(t) = p.thumbnail {
            h["thumb_rgb"] = json!(colour(t));
        }
        h
    };
    // A rectangle over part of the first class's cluster (centre (30, 0)), its edges kept
    // clear of every point so pixel rounding cannot move one across: the first candidate
    // that qualifies.
    let margin = 0.4;
    let clear = |r: &[f64; 4]| {
        tsne.iter().all(|p| {
            let within_x = p.x > r[0] - margin && p.x < r[2] + margin;
            let within_y = p.y > r[1] - margin && p.y < r[3] + margin;
            let near_x = (p.x - r[0]).abs() < margin || (p.x - r[2]).abs() < margin;
            let near_y = (p.y - r[1]).abs() < margin || (p.y - r[3]).abs() < margin;
            !(near_x && within_y || near_y && within_x)
        })
    };
    let steps = |a: f64, b: f64| (0..=20).map(move |k| a + (b - a) * k as f64 / 20.0);
    let rect = steps(25.0, 29.0)
        .flat_map(|x0| steps(31.0, 35.0).map(move |x1| (x0, x1)))
        .flat_map(|(x0, x1)| steps(-4.0, -1.0).map(move |y0| (x0, x1, y0)))
        .flat_map(|(x0, x1, y0)| steps(1.0, 4.0).map(move |y1| [x0, y0, x1, y1]))
        .find(|r| {
            clear(r)
                && tsne
                    .iter()
                    .filter(|p| p.x > r[0] && p.x < r[2] && p.y > r[1] && p.y < r[3])
                    .count()
                    >= 5
        })
        .expect("a box with clear edges");
    let inside: Vec<&str> = tsne
        .iter()
        .filter(|p| p.x > rect[0] && p.x < rect[2] && p.y > rect[1] && p.y < rect[3])
        .map(|p| p.id.as_str())
        .collect();
    assert!(inside.len() >= 5, "the box holds {} points", inside.len());
    let expect = json!({
        "hover": [hover(0), hover(1), hover(2)],
        "box": [{"map": 0, "rect": rect, "ids": inside}],
    });
    let expect_path = dir.join("maps-expect.json");
    std::fs::write(&expect_path, serde_json::to_vec_pretty(&expect).unwrap()).unwrap();

    let screenshot = dir.join("maps.png");
    let check = std::process::Command::new(python())
        .arg(common::root().join("scripts/check_report.py"))
        .arg(&path)
        .arg(&screenshot)
        .arg("--expect")
        .arg(&expect_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): run scripts/setup", python()));
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success(),
        "scripts/check_report.py failed (exit {:?}; if playwright or Chromium is missing, run scripts/setup):\n{stdout}\n{stderr}",
        check.status.code()
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["ok"], true, "{stdout}");
    assert_eq!(summary["maps"]["initialised"], 2, "{stdout}");
    assert_eq!(summary["maps"]["hover"].as_array().unwrap().len(), 3);
    assert!(summary["maps"]["hover"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["ok"] == true));
    assert_eq!(summary["maps"]["box"][0]["selected"], inside.len());
    assert_eq!(summary["foreign_requests"].as_array().unwrap().len(), 0);
    assert_eq!(summary["console"].as_array().unwrap().len(), 0);
}
