//! The HTML report: a realistic run (tables of every column kind, a 2,000-row table, a 15-class
//! scatter, a persistence diagram, a heatmap, a gallery with thumbnails, errors, and hostile
//! captions) is written and checked both as bytes (determinism, escaping, no external URL,
//! every data: URI a valid image) and in headless Chromium through scripts/check_report.py.
//!
//! The browser check needs the Python packages and the Chromium that `scripts/setup` installs;
//! without them the test fails and says so. To look at the report and its screenshot, set
//! `CLIPFLOW_REPORT_OUT=<dir>`: they are then kept in that directory.

use std::path::{Path, PathBuf};

use clipflow::chart::{heatmap, persistence_diagram, scatter, ScatterGroup};
use clipflow::report::{
    write_report, Block, Gallery, GalleryHit, GalleryQuery, ImagePair, PairGallery, PairImage,
    Report, ReportError, RunSummary, Section, Thumbnail,
};
use clipflow::store::{Column, Table};

const HOSTILE: &str = "<script>alert(1)</script>";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> String {
    std::env::var("CLIPFLOW_PYTHON")
        .unwrap_or_else(|_| root().join(".venv/bin/python").display().to_string())
}

/// SplitMix64: reproducible test data without a dependency.
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

const CLASSES: [&str; 16] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
    "apple",
    "aquarium fish",
    "baby",
    "bear",
    "beaver",
    "a very long class name that will not fit in any legend column",
];

/// A picture per class: a gradient background and a disc in the class's colour, so
/// thumbnails differ visibly.
fn picture(class: usize, variant: usize) -> image::RgbImage {
    let hue = class as f64 / CLASSES.len() as f64 * std::f64::consts::TAU;
    let colour = [
        (127.0 + 120.0 * hue.cos()) as u8,
        (127.0 + 120.0 * (hue + 2.1).cos()) as u8,
        (127.0 + 120.0 * (hue + 4.2).cos()) as u8,
    ];
    let (w, h) = (320 + 40 * (variant as u32 % 3), 240);
    let (cx, cy) = (w as f64 * (0.35 + 0.1 * variant as f64), h as f64 * 0.5);
    image::RgbImage::from_fn(w, h, |x, y| {
        let d = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
        if d < 70.0 {
            image::Rgb(colour)
        } else {
            let t = y as f64 / h as f64;
            image::Rgb([
                (220.0 - 80.0 * t) as u8,
                (230.0 - 60.0 * t) as u8,
                (240.0 - 30.0 * t) as u8,
            ])
        }
    })
}

fn plots(dir: &Path) -> Vec<(String, PathBuf, Option<PathBuf>)> {
    let mut rng = Mix(7);
    let groups: Vec<ScatterGroup> = CLASSES
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let angle = c as f64 * 2.4;
            let radius = 6.0 + c as f64;
            let name = if c == 3 {
                format!("{name} {HOSTILE}")
            } else {
                name.to_string()
            };
            ScatterGroup {
                name,
                points: (0..40)
                    .map(|_| {
                        (
                            radius * angle.cos() + rng.normal(),
                            radius * angle.sin() + rng.normal(),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let scatter_stem = dir.join("plots/tsne_image_clean");
    scatter(
        &scatter_stem,
        "t-SNE of image embeddings (clean)",
        "t-SNE 1",
        "t-SNE 2",
        &groups,
    )
    .unwrap();
    let h0: Vec<(f64, f64)> = (0..60)
        .map(|i| {
            let death = if i == 0 {
                f64::INFINITY
            } else {
                0.1 + rng.uniform()
            };
            (0.0, death)
        })
        .collect();
    let h1: Vec<(f64, f64)> = (0..25)
        .map(|_| {
            let birth = 0.4 + rng.uniform();
            (birth, birth + 0.05 + 0.3 * rng.uniform())
        })
        .collect();
    let diagram_stem = dir.join("plots/persistence_image_clean");
    persistence_diagram(
        &diagram_stem,
        "Persistence diagram (Vietoris–Rips, image embeddings)",
        &[
            ScatterGroup {
                name: "H0".into(),
                points: h0,
            },
            ScatterGroup {
                name: "H1".into(),
                points: h1,
            },
        ],
    )
    .unwrap();
    let labels: Vec<String> = CLASSES[..10].iter().map(|s| s.to_string()).collect();
    let values: Vec<f64> = (0..100)
        .map(|i| {
            if i / 10 == i % 10 {
                0.8 + 0.1 * rng.uniform()
            } else {
                0.1 + 0.3 * rng.uniform()
            }
        })
        .collect();
    let heatmap_stem = dir.join("plots/similarity_heatmap");
    heatmap(
        &heatmap_stem,
        "Mean class similarity",
        &labels,
        &labels,
        &values,
        (0.0, 1.0),
    )
    .unwrap();
    [
        (
            "t-SNE of the image embeddings, coloured by class",
            scatter_stem,
        ),
        ("Persistence diagram of the image embeddings", diagram_stem),
        ("Mean cosine similarity between classes", heatmap_stem),
    ]
    .into_iter()
    .map(|(title, stem)| {
        (
            title.to_string(),
            stem.with_extension("png"),
            Some(stem.with_extension("svg")),
        )
    })
    .collect()
}

fn gallery() -> Gallery {
    let mut rng = Mix(11);
    let queries = [
        ("a photo of a cat", 3),
        ("a photo of a ship at sea", 8),
        ("a red truck parked in the street", 9),
        (HOSTILE, 6),
    ];
    Gallery {
        title: "Text → image retrieval: top 5 per query".into(),
        queries: queries
            .iter()
            .enumerate()
            .map(|(q, (text, class))| GalleryQuery {
                query: text.to_string(),
                expected: Some(CLASSES[*class].to_string()),
                hits: (0..5)
                    .map(|rank| {
                        let hit_class = if (rank + q) % 3 == 0 {
                            *class
                        } else {
                            (class + rank + 1) % 10
                        };
                        let thumbnail = (rank != 4 || q != 1).then(|| {
                            Thumbnail::jpeg_from_rgb(&picture(hit_class, rank), 160).unwrap()
                        });
                        GalleryHit {
                            label: if q == 3 && rank == 1 {
                                HOSTILE.to_string()
                            } else {
                                CLASSES[hit_class].to_string()
                            },
                            score: 0.32 - 0.02 * rank as f64 - 0.01 * rng.uniform(),
                            correct: hit_class == *class,
                            thumbnail,
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Near-duplicate pairs: a leak, a pair within a split, one image without a thumbnail, and a
/// hostile id.
fn pairs() -> PairGallery {
    let side = |label: &str, class: usize, with_picture: bool| PairImage {
        label: label.to_string(),
        thumbnail: with_picture.then(|| Thumbnail::jpeg_from_rgb(&picture(class, 0), 160).unwrap()),
    };
    PairGallery {
        title: format!("Most similar image pairs {HOSTILE}"),
        pairs: vec![
            ImagePair {
                cosine: 1.0,
                leak: true,
                groups: Some("train · test".into()),
                a: side("cat_001 [train]", 3, true),
                b: side("cat_001-copy [test]", 3, true),
            },
            ImagePair {
                cosine: 0.9712,
                leak: false,
                groups: Some(format!("train · {HOSTILE}")),
                a: side(HOSTILE, 8, true),
                b: side("ship_044", 8, false),
            },
        ],
    }
}

fn tables() -> (Table, Table, Table) {
    let mut rng = Mix(5);
    let metrics = Table::new("retrieval")
        .text(
            "model",
            ["ViT-B-32", "ViT-B-32", "ViT-L-14", "ViT-L-14", "ViT-L-14"],
        )
        .column(
            "variant",
            Column::Text(vec![
                Some("clean".into()),
                Some("blur_1.5".into()),
                Some("clean".into()),
                None,
                Some(HOSTILE.into()),
            ]),
        )
        .int("k", [1, 5, 1, 5, 10])
        .column(
            "value",
            Column::Float(vec![
                Some(0.123456),
                Some(0.5),
                Some(f64::NAN),
                None,
                Some(0.99999),
            ]),
        )
        .column(
            "pairs",
            Column::Int(vec![Some(1_234_567), Some(600), None, Some(-42), Some(0)]),
        )
        .float("seconds", [12345.678, 0.5, 3.25, 100.0, 0.000012]);
    let n = 2000;
    let long = Table::new("neighbors")
        .int("query", 0..n)
        .text("label", (0..n).map(|i| CLASSES[i as usize % 10]))
        .int("rank", (0..n).map(|i| i % 10 + 1))
        .float("distance", (0..n).map(|_| rng.uniform() * 2.0));
    let mut wide = Table::new("per_class_recall").text("class", CLASSES[..10].iter().copied());
    for c in 0..14 {
        wide = wide.float(
            &format!("recall@{} (noise level {c})", c + 1),
            (0..10).map(|_| rng.uniform()),
        );
    }
    (metrics, long, wide)
}

fn realistic_report(dir: &Path) -> Report {
    let plots = plots(dir);
    let (metrics, long, wide) = tables();
    let errors = Table::new("errors")
        .text("item", ["img/0001.jpg", "img/0417.png", "img/0999.webp"])
        .text("stage", ["decode", "decode", "encode"])
        .text(
            "reason",
            [
                "truncated JPEG data",
                "unsupported PNG colour type",
                HOSTILE,
            ],
        );
    let plot_blocks: Vec<Block> = plots
        .into_iter()
        .map(|(title, png, svg)| Block::Plot { title, png, svg })
        .collect();
    Report {
        title: "clipflow run: cifar-demo".into(),
        subtitle: Some(format!("CIFAR-10 test subset, 2 models, 3 noise variants {HOSTILE}")),
        summary: RunSummary {
            read_images: true,
            config_yaml: format!(
                "name: cifar-demo\ndataset:\n  format: parquet\n  path: data/cifar.parquet\n  caption_column: text # {HOSTILE}\nmodels:\n  - path: models/vit-b-32\n  - path: models/vit-l-14\n"
            ),
            facts: vec![
                ("dataset".into(), "data/cifar.parquet".into()),
                ("images".into(), "600".into()),
                ("variants".into(), "clean, blur 1.5, jpeg 30".into()),
                ("seed".into(), "0".into()),
                ("note".into(), HOSTILE.into()),
            ],
            models: vec![
                vec![
                    ("name".into(), "ViT-B-32".into()),
                    ("path".into(), "models/vit-b-32".into()),
                    ("dims".into(), "512".into()),
                    ("device".into(), "cpu".into()),
                    (
                        "sha256".into(),
                        "9f2c1e4b8a7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e".into(),
                    ),
                ],
                vec![
                    ("name".into(), "ViT-L-14".into()),
                    ("path".into(), "models/vit-l-14".into()),
                    ("dims".into(), "768".into()),
                    ("device".into(), "cuda:0".into()),
                    (
                        "sha256".into(),
                        "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9".into(),
                    ),
                ],
            ],
            timings: vec![
                ("load".into(), 1.25),
                ("augment".into(), 14.7),
                ("encode".into(), 185.2),
                ("analysis".into(), 42.0),
                ("report".into(), 0.8),
            ],
            errors: Some(errors),
            error_count: 137,
        },
        sections: vec![
            Section {
                id: "retrieval".into(),
                title: "Retrieval".into(),
                note: Some(format!(
                    "Recall@k of text→image retrieval; one caption per image. {HOSTILE}"
                )),
                blocks: vec![
                    Block::Text(format!(
                        "ViT-L-14 retrieves better at every k; blur costs both models about 8 points. {HOSTILE}"
                    )),
                    Block::Table {
                        title: format!("Recall by model and variant {HOSTILE}"),
                        table: metrics,
                        total_rows: 0,
                        max_rows: 50,
                    },
                    Block::Gallery(gallery()),
                    Block::Pairs(pairs()),
                ],
            },
            Section {
                id: "neighbors".into(),
                title: "Nearest neighbours".into(),
                note: None,
                blocks: vec![
                    Block::Table {
                        title: "Ten nearest neighbours of each image".into(),
                        table: long,
                        total_rows: 0,
                        max_rows: 25,
                    },
                    Block::Table {
                        title: "Recall per class and noise level".into(),
                        table: wide,
                        total_rows: 0,
                        max_rows: 50,
                    },
                ],
            },
            Section {
                id: "geometry-2".into(),
                title: format!("Geometry and topology {HOSTILE}"),
                note: Some("t-SNE (perplexity 30) and Vietoris–Rips persistence of the clean image embeddings.".into()),
                blocks: plot_blocks,
            },
            Section {
                id: "empty".into(),
                title: "Subspaces".into(),
                note: None,
                blocks: vec![],
            },
        ],
    }
}

/// Standard base64 (with padding) back to bytes; None if malformed.
fn unbase64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

/// Every `attr="..."` value in the page.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let start = i + needle.len();
            let end = start + html[start..].find('"').unwrap();
            &html[start..end]
        })
        .collect()
}

fn write(dir: &Path) -> (PathBuf, String) {
    let report = realistic_report(dir);
    let path = dir.join("report.html");
    write_report(&path, &report).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    (path, html)
}

#[test]
fn report_is_deterministic_and_self_contained() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, html) = write(tmp.path());
    // Same report, written again (plots redrawn too): identical bytes.
    write_report(
        &tmp.path().join("report_2.html"),
        &realistic_report(tmp.path()),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(tmp.path().join("report_2.html")).unwrap(),
        "two writes of the same report differ"
    );

    // No external reference: images inline, links relative or anchors.
    for url in ["http://", "https://", "//cdn", "@import", "url("] {
        assert!(!html.contains(url), "report mentions {url}");
    }
    let sources = attribute_values(&html, "src");
    assert_eq!(
        sources.len(),
        3 + 4 * 5 - 1 + 3,
        "3 plots + 19 gallery thumbnails + 3 of pairs"
    );
    for src in &sources {
        let (mime, data) = src
            .strip_prefix("data:")
            .and_then(|s| s.split_once(";base64,"))
            .unwrap_or_else(|| panic!("src is not a base64 data: URI: {}", &src[..40]));
        let bytes = unbase64(data).expect("data: URI is valid base64");
        let format = image::guess_format(&bytes).expect("data: URI holds an image");
        let expected = match mime {
            "image/png" => image::ImageFormat::Png,
            "image/jpeg" => image::ImageFormat::Jpeg,
            other => panic!("unexpected image type {other}"),
        };
        assert_eq!(format, expected);
        let img = image::load_from_memory_with_format(&bytes, format).expect("image decodes");
        assert!(img.width() > 0 && img.height() > 0);
        if mime == "image/jpeg" {
            assert!(img.width().max(img.height()) == 160, "thumbnail size");
        }
    }
    for href in attribute_values(&html, "href") {
        let anchor = href.starts_with('#');
        let relative = !href.contains(':') && !href.starts_with('/');
        assert!(
            anchor || relative,
            "href {href:?} is neither an anchor nor relative"
        );
    }
    assert!(html.contains("href=\"plots/tsne_image_clean.svg\""));
    assert!(html.contains("href=\"plots/persistence_image_clean.svg\""));
}

#[test]
fn report_escapes_text_and_formats_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, html) = write(tmp.path());

    // Escaping: the hostile caption shows as text everywhere, and our script is the only one.
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the report's own script"
    );
    assert!(!html.contains(HOSTILE));
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    // title, subtitle, fact, config, section note, text, table title, table cell, TOC entry,
    // section title, gallery query, gallery label (twice: alt and text, plus title), error reason
    assert!(
        html.matches(escaped).count() >= 12,
        "escaped caption appears {} times",
        html.matches(escaped).count()
    );

    // Tables: the long one is cut with a pointer to its Parquet file.
    assert!(
        html.contains("1,975 more rows in <code>tables/neighbors.parquet</code>"),
        "truncation note"
    );
    let neighbours = &html[html.find("Ten nearest neighbours").unwrap()..];
    let neighbours = &neighbours[..neighbours.find("</table>").unwrap()];
    assert_eq!(
        neighbours.matches("<tr>").count(),
        1 + 25,
        "header + 25 rows"
    );
    assert!(!html.contains("more rows in <code>tables/retrieval.parquet"));
    assert!(html.contains("134 more errors in <code>errors.parquet</code>"));
    // Numbers: thousands separators, at most 4 decimals, NaN and missing cells marked.
    for cell in [
        ">1,234,567</td>",
        ">0.1235</td>",
        ">0.5000</td>",
        ">NaN</td>",
        ">—</td>",
        ">12,346</td>",
        ">0.50</td>",
        ">100</td>",
        ">1.200e-5</td>",
        ">-42</td>",
    ] {
        assert!(html.contains(cell), "missing cell {cell}");
    }
    assert!(
        html.contains("data-v=\"0.123456\""),
        "exact value kept for sorting"
    );

    // Every section is in the contents, and its anchor exists.
    let toc = &html[html.find("<nav").unwrap()..html.find("</nav>").unwrap()];
    for id in [
        "run-summary",
        "retrieval",
        "neighbors",
        "geometry-2",
        "empty",
    ] {
        assert!(
            toc.contains(&format!("href=\"#{id}\"")),
            "{id} not in contents"
        );
        assert_eq!(
            html.matches(&format!("id=\"{id}\"")).count(),
            1,
            "anchor {id}"
        );
    }
    // Gallery: correct and incorrect hits are marked, ranks numbered.
    assert!(html.contains("class=\"hit ok\"") && html.contains("class=\"hit bad\""));
    assert!(html.contains(">#5</span>"));
    assert!(html.contains("no image"));
}

#[test]
fn report_refuses_bad_input_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("report.html");
    let section = |id: &str, blocks: Vec<Block>| Section {
        id: id.into(),
        title: "x".into(),
        note: None,
        blocks,
    };
    let with = |sections: Vec<Section>| Report {
        title: "t".into(),
        subtitle: None,
        summary: RunSummary::default(),
        sections,
    };
    for bad in ["", "Has Caps", "a_b", "run-summary", "ünï"] {
        let err = write_report(&path, &with(vec![section(bad, vec![])])).unwrap_err();
        assert!(matches!(err, ReportError::Invalid { .. }), "{bad:?}: {err}");
    }
    let err = write_report(
        &path,
        &with(vec![section("a", vec![]), section("a", vec![])]),
    );
    assert!(matches!(err, Err(ReportError::Invalid { .. })));

    let missing = tmp.path().join("plots/missing.png");
    let err = write_report(
        &path,
        &with(vec![section(
            "a",
            vec![Block::Plot {
                title: "gone".into(),
                png: missing.clone(),
                svg: None,
            }],
        )]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing.png"), "{err}");
    let not_png = tmp.path().join("plot.png");
    std::fs::write(&not_png, b"<svg/>").unwrap();
    let err = write_report(
        &path,
        &with(vec![section(
            "a",
            vec![Block::Plot {
                title: "svg in disguise".into(),
                png: not_png,
                svg: None,
            }],
        )]),
    )
    .unwrap_err();
    assert!(matches!(err, ReportError::NotPng { .. }), "{err}");

    let ragged = Table::new("ragged").int("a", [1, 2]).int("b", [1]);
    let err = write_report(
        &path,
        &with(vec![section(
            "a",
            vec![Block::Table {
                title: "ragged".into(),
                table: ragged,
                total_rows: 0,
                max_rows: 10,
            }],
        )]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("column b"), "{err}");

    let odd = Thumbnail {
        mime: "text/html",
        bytes: b"<script>".to_vec(),
    };
    let err = write_report(
        &path,
        &with(vec![section(
            "a",
            vec![Block::Gallery(Gallery {
                title: "g".into(),
                queries: vec![GalleryQuery {
                    query: "q".into(),
                    expected: None,
                    hits: vec![GalleryHit {
                        label: "l".into(),
                        score: 0.1,
                        correct: false,
                        thumbnail: Some(odd),
                    }],
                }],
            })],
        )]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("text/html"), "{err}");
    assert!(!path.exists(), "nothing written on error");
    let mut bad_pairs = pairs();
    bad_pairs.pairs[0].b.thumbnail = Some(Thumbnail {
        mime: "text/html",
        bytes: b"<script>".to_vec(),
    });
    let err = write_report(
        &path,
        &with(vec![section("a", vec![Block::Pairs(bad_pairs)])]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("text/html"), "{err}");
    assert!(!path.exists(), "nothing written on error");

    // Thumbnails: never enlarged, never empty.
    let small = Thumbnail::jpeg_from_rgb(&image::RgbImage::new(40, 20), 160).unwrap();
    let img = image::load_from_memory(&small.bytes).unwrap();
    assert_eq!((img.width(), img.height()), (40, 20));
    let tall = Thumbnail::jpeg_from_rgb(&picture(1, 0), 100).unwrap();
    let img = image::load_from_memory(&tall.bytes).unwrap();
    assert_eq!((img.width(), img.height()), (100, 75));
    assert!(Thumbnail::jpeg_from_rgb(&image::RgbImage::new(0, 5), 160).is_err());
    assert!(Thumbnail::jpeg_from_rgb(&picture(1, 0), 0).is_err());
}

#[test]
fn plots_refuse_what_they_cannot_draw() {
    let keep = std::env::var_os("CLIPFLOW_REPORT_OUT").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let tmp_dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    let stem = tmp_dir.join("p");
    let group = |points: Vec<(f64, f64)>| ScatterGroup {
        name: "g".into(),
        points,
    };
    assert!(scatter(&stem, "t", "x", "y", &[]).is_err());
    assert!(scatter(&stem, "t", "x", "y", &[group(vec![(f64::NAN, 1.0)])]).is_err());
    // Non-finite points are dropped, the rest drawn; one point alone still gets axes.
    let files = scatter(
        &stem,
        "t",
        "x",
        "y",
        &[group(vec![(f64::NAN, 1.0), (2.0, 2.0)])],
    )
    .unwrap();
    assert!(files.iter().all(|f| f.exists()));
    assert!(persistence_diagram(&stem, "t", &[]).is_err());
    assert!(persistence_diagram(&stem, "t", &[group(vec![(1.0, 0.5)])]).is_err());
    assert!(persistence_diagram(&stem, "t", &[group(vec![(f64::INFINITY, 1.0)])]).is_err());
    assert!(persistence_diagram(&stem, "t", &[group(vec![(0.0, f64::NAN)])]).is_err());
    // Only infinite deaths (a single component): still a diagram.
    let lone = tmp_dir.join("lone");
    assert!(persistence_diagram(&lone, "t", &[group(vec![(0.0, f64::INFINITY)])]).is_ok());
    let single = tmp_dir.join("single");
    assert!(scatter(
        &single,
        "t",
        "x",
        "y",
        &[group(vec![(f64::NAN, 1.0), (2.0, 2.0)])]
    )
    .is_ok());
    // 50 classes: the legend takes two columns, so the image is wider than with 15.
    let many: Vec<ScatterGroup> = (0..50)
        .map(|c| ScatterGroup {
            name: format!("class {c}"),
            points: vec![(c as f64, (c * c) as f64)],
        })
        .collect();
    scatter(&stem, "t", "x", "y", &many).unwrap();
    let wide = image::open(stem.with_extension("png")).unwrap();
    scatter(&stem, "t", "x", "y", &many[..15]).unwrap();
    let narrow = image::open(stem.with_extension("png")).unwrap();
    assert!(wide.width() > narrow.width());
}

#[test]
fn report_renders_cleanly_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("CLIPFLOW_REPORT_OUT").map(PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let (path, _) = write(&dir);
    let screenshot = dir.join("report.png");
    let check = std::process::Command::new(python())
        .arg(root().join("scripts/check_report.py"))
        .arg(&path)
        .arg(&screenshot)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run scripts/setup to install Python, playwright and Chromium",
                python()
            )
        });
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success(),
        "scripts/check_report.py failed (exit {:?}; if playwright or Chromium is missing, run scripts/setup):\n{stdout}\n{stderr}",
        check.status.code()
    );
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
    let shot = image::open(&screenshot).unwrap().to_rgb8();
    assert!(shot.height() > 2000, "the whole page is captured");
    let first = shot.get_pixel(0, 0);
    assert!(
        shot.pixels().any(|p| p != first),
        "screenshot is one colour"
    );
}
