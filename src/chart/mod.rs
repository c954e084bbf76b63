//! Charts: the plot kinds the analyses need: heatmaps (similarity, confusion), paired histograms
//! (matched vs unmatched similarities), line charts (a metric against noise level), class
//! scatters (t-SNE, UMAP, PCA) and persistence diagrams (Vietoris–Rips homology).
//!
//! Sizes are fixed in pixels (a scatter is 760×680 plus its legend columns), so the PNGs look
//! the same in every report. SVGs hold one element per point: a 10k-point scatter is ~0.9 MB.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

/// A plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PlotError {
    pub path: PathBuf,
    pub message: String,
}

const FONT: &str = "sans-serif";
static FONT_ONCE: Once = Once::new();

fn register_font() {
    FONT_ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
    });
}

/// Colours that stay distinct for 10 series, then cycle with a dash-free fallback.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A viridis-like ramp for heatmaps: t in [0,1].
fn ramp(t: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f) as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Something drawable on any plotters backend (drawn once for PNG, once for SVG).
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// `<stem>.<ext>`, appended rather than substituted: stems carry variant names such as
/// `gaussian-0.2`, whose `.2` is not an extension.
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Renders `figure` to `<stem>.png` and `<stem>.svg`.
fn render(stem: &Path, size: (u32, u32), figure: &impl Figure) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let png = with_suffix(stem, "png");
    let svg = with_suffix(stem, "svg");
    let fail = |path: &Path, message: String| PlotError {
        path: path.to_path_buf(),
        message,
    };
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e.to_string()))?;
    }
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&png, e.to_string()))?;
        figure.draw(&root).map_err(|m| fail(&png, m))?;
        root.present().map_err(|e| fail(&png, e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buf)
        .ok_or_else(|| fail(&png, "buffer size".into()))?;
    // Best compression with adaptive filters: plots are flat colours, and every PNG is
    // embedded in report.html as base64, so bytes here are bytes of the page.
    let mut bytes = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    );
    img.write_with_encoder(encoder)
        .map_err(|e| fail(&png, e.to_string()))?;
    crate::util::write_atomic(&png, &bytes).map_err(|e| fail(&png, e.to_string()))?;
    let mut svg_text = String::new();
    {
        let root = SVGBackend::with_string(&mut svg_text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&svg, e.to_string()))?;
        figure.draw(&root).map_err(|m| fail(&svg, m))?;
        root.present().map_err(|e| fail(&svg, e.to_string()))?;
    }
    crate::util::write_atomic(&svg, svg_text.as_bytes()).map_err(|e| fail(&svg, e.to_string()))?;
    Ok(vec![png, svg])
}

fn short(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let cut: String = label.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// A rows × cols heatmap with labelled axes and the value written in each cell when it fits.
pub fn heatmap(
    stem: &Path,
    title: &str,
    row_labels: &[String],
    col_labels: &[String],
    values: &[f64],
    range: (f64, f64),
) -> Result<Vec<PathBuf>, PlotError> {
    let (rows, cols) = (row_labels.len(), col_labels.len());
    if rows == 0 || cols == 0 || values.len() != rows * cols {
        return Err(PlotError {
            path: stem.to_path_buf(),
            message: format!("heatmap needs {rows}×{cols} values, got {}", values.len()),
        });
    }
    let cell = (720 / cols.max(rows)).clamp(8, 48) as u32;
    let size = (
        (cell * cols as u32 + 210).max(560),
        cell * rows as u32 + 190,
    );
    struct Heatmap<'a> {
        title: &'a str,
        row_labels: &'a [String],
        col_labels: &'a [String],
        values: &'a [f64],
        range: (f64, f64),
        cell: u32,
    }
    impl Figure for Heatmap<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
            let Heatmap {
                title,
                row_labels,
                col_labels,
                values,
                range,
                cell,
            } = *self;
            let (rows, cols) = (row_labels.len(), col_labels.len());
            // Labels are drawn by hand at cell centres: mesh labels land on cell edges.
            let mut chart = ChartBuilder::on(root)
                .caption(title, (FONT, 18))
                .margin_top(10)
                .margin_right(20)
                .margin_left(170)
                .margin_bottom(120)
                .build_cartesian_2d(0f64..cols as f64, rows as f64..0f64)
                .map_err(|e| e.to_string())?;
            let font_px = (cell as i32 - 2).clamp(7, 12);
            for (r, label) in row_labels.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(0.0, r as f64 + 0.5));
                root.draw(&Text::new(
                    short(label, 26),
                    (x - 6, y),
                    TextStyle::from((FONT, font_px).into_font())
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(|e| e.to_string())?;
            }
            for (c, label) in col_labels.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(c as f64 + 0.5, rows as f64));
                root.draw(&Text::new(
                    short(label, 18),
                    (x, y + 6),
                    TextStyle::from(
                        (FONT, font_px)
                            .into_font()
                            .transform(FontTransform::Rotate90),
                    )
                    .pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(|e| e.to_string())?;
            }
            let span = (range.1 - range.0).max(1e-12);
            chart
                .draw_series((0..rows).flat_map(|r| {
                    (0..cols).map(move |c| {
                        let v = values[r * cols + c];
                        Rectangle::new(
                            [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                            ramp((v - range.0) / span).filled(),
                        )
                    })
                }))
                .map_err(|e| e.to_string())?;
            if cell >= 30 {
                chart
                    .draw_series((0..rows).flat_map(|r| {
                        (0..cols).map(move |c| {
                            let v = values[r * cols + c];
                            let light = (v - range.0) / span < 0.6;
                            Text::new(
                                format!("{v:.2}"),
                                (c as f64 + 0.2, r as f64 + 0.6),
                                (FONT, 10)
                                    .into_font()
                                    .color(if light { &WHITE } else { &BLACK }),
                            )
                        })
                    }))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }
    render(
        stem,
        size,
        &Heatmap {
            title,
            row_labels,
            col_labels,
            values,
            range,
            cell,
        },
    )
}

/// One named series of points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Line chart of several series (e.g. a metric against noise level), legend outside the plot
/// area so it stays readable with many series.
pub fn lines(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<Vec<PathBuf>, PlotError> {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        return Err(PlotError {
            path: stem.to_path_buf(),
            message: "no points".into(),
        });
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let legend_w = 260;
    let size = (900 + legend_w, 520);
    struct Lines<'a> {
        title: &'a str,
        x_label: &'a str,
        y_label: &'a str,
        series: &'a [Series],
        bounds: (f64, f64, f64, f64),
    }
    impl Figure for Lines<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
            let Lines {
                title,
                x_label,
                y_label,
                series,
                bounds: (x0, x1, y0, y1),
            } = *self;
            let (plot, legend) = root.split_horizontally(900);
            let mut chart = ChartBuilder::on(&plot)
                .caption(title, (FONT, 18))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .label_style((FONT, 12))
                .axis_desc_style((FONT, 14))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, s) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series(s.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            for (i, s) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let y = 50 + 20 * i as i32;
                legend
                    .draw(&Rectangle::new([(8, y - 5), (22, y + 5)], color.filled()))
                    .map_err(|e| e.to_string())?;
                legend
                    .draw(&Text::new(short(&s.name, 34), (28, y - 7), (FONT, 12)))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }
    render(
        stem,
        size,
        &Lines {
            title,
            x_label,
            y_label,
            series,
            bounds: (x0, x1, y0, y1),
        },
    )
}

/// Overlaid histograms sharing bins (`edges.len() == counts.len() + 1` for each series),
/// normalised to densities so populations of different sizes compare.
pub fn histogram(
    stem: &Path,
    title: &str,
    x_label: &str,
    edges: &[f64],
    series: &[(String, Vec<i64>)],
) -> Result<Vec<PathBuf>, PlotError> {
    if edges.len() < 2 || series.iter().any(|(_, c)| c.len() + 1 != edges.len()) {
        return Err(PlotError {
            path: stem.to_path_buf(),
            message: "histogram edges and counts disagree".into(),
        });
    }
    let dens: Vec<(String, Vec<f64>)> = series
        .iter()
        .map(|(n, c)| {
            let total: i64 = c.iter().sum();
            (
                n.clone(),
                c.iter()
                    .map(|&v| {
                        if total > 0 {
                            v as f64 / total as f64
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            )
        })
        .collect();
    let ymax = dens
        .iter()
        .flat_map(|(_, d)| d.iter().copied())
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.1;
    struct Hist<'a> {
        title: &'a str,
        x_label: &'a str,
        edges: &'a [f64],
        dens: &'a [(String, Vec<f64>)],
        ymax: f64,
    }
    impl Figure for Hist<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
            let Hist {
                title,
                x_label,
                edges,
                dens,
                ymax,
            } = *self;
            let (x0, x1) = (edges[0], edges[edges.len() - 1]);
            let mut chart = ChartBuilder::on(root)
                .caption(title, (FONT, 18))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, 0.0..ymax)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc("fraction of pairs")
                .label_style((FONT, 12))
                .axis_desc_style((FONT, 14))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, (name, d)) in dens.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(d.iter().enumerate().map(|(b, v)| {
                        Rectangle::new(
                            [(edges[b], 0.0), (edges[b + 1], *v)],
                            color.mix(0.45).filled(),
                        )
                    }))
                    .map_err(|e| e.to_string())?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                    });
            }
            chart
                .configure_series_labels()
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
            Ok(())
        }
    }
    render(
        stem,
        (900, 520),
        &Hist {
            title,
            x_label,
            edges,
            dens: &dens,
            ymax,
        },
    )
}

/// One named set of points: a class in a scatter plot, a homology dimension in a persistence
/// diagram.
#[derive(Debug, Clone)]
pub struct ScatterGroup {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Twenty qualitative colours (matplotlib's tab20), the ten saturated ones first so that
/// neighbouring classes in a short list never share a hue.
const QUALITATIVE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(199, 199, 199),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

/// Shapes that cycle once the colours run out, so group 21 is told from group 1 by shape.
#[derive(Debug, Clone, Copy)]
enum Marker {
    Disc,
    Triangle,
    Square,
    Diamond,
    Cross,
    Ring,
}

const MARKERS: [Marker; 6] = [
    Marker::Disc,
    Marker::Triangle,
    Marker::Square,
    Marker::Diamond,
    Marker::Cross,
    Marker::Ring,
];

fn group_style(i: usize) -> (RGBColor, Marker) {
    (
        QUALITATIVE[i % QUALITATIVE.len()],
        MARKERS[(i / QUALITATIVE.len()) % MARKERS.len()],
    )
}

/// Draws one marker of `radius` pixels centred on `at` (a data coordinate for a chart, a pixel
/// for a plain area).
fn draw_marker<DB, CT>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    marker: Marker,
    radius: i32,
    color: RGBAColor,
) -> Result<(), String>
where
    DB: DrawingBackend,
    CT: plotters::coord::CoordTranslate,
{
    let e = EmptyElement::at(at);
    let r = radius.max(1);
    let result = match marker {
        Marker::Disc => area.draw(&(e + Circle::new((0, 0), r, color.filled()))),
        Marker::Triangle => area.draw(&(e + TriangleMarker::new((0, 0), r + 1, color.filled()))),
        Marker::Square => area.draw(&(e + Rectangle::new([(-r, -r), (r, r)], color.filled()))),
        Marker::Diamond => area.draw(
            &(e + Polygon::new(
                vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
                color.filled(),
            )),
        ),
        Marker::Cross => area.draw(&(e + Cross::new((0, 0), r, color.stroke_width(2)))),
        Marker::Ring => area.draw(&(e + Circle::new((0, 0), r, color.stroke_width(1)))),
    };
    result.map_err(|e| e.to_string())
}

/// Marker radius (pixels) and opacity for `n` points: big and solid for a few hundred, small
/// and translucent for tens of thousands so dense clusters show their density instead of a blot.
fn point_look(n: usize) -> (i32, f64) {
    match n {
        0..=300 => (4, 0.9),
        301..=2_000 => (3, 0.75),
        2_001..=8_000 => (2, 0.6),
        8_001..=30_000 => (2, 0.5),
        _ => (1, 0.3),
    }
}

/// `lo..hi` widened by 4% on each side (or by ±0.5 when all values coincide) so markers at the
/// extremes are not cut by the frame.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = hi - lo;
    if span <= 1e-12 * lo.abs().max(1.0) {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo - 0.04 * span, hi + 0.04 * span)
    }
}

/// Axis tick text without float noise ("0.30000000000000004") or a trailing ".0".
fn tick(v: &f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

const LEGEND_ROW: i32 = 18;
const LEGEND_COLUMN: i32 = 190;
const LEGEND_NAME_CHARS: usize = 25;

/// Legend of `names` in columns of at most `rows` entries, starting at (`x0`, `y0`) on `area`.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    names: &[&str],
    rows: usize,
    (x0, y0): (i32, i32),
) -> Result<(), String> {
    for (i, name) in names.iter().enumerate() {
        let (color, marker) = group_style(i);
        let x = x0 + LEGEND_COLUMN * (i / rows) as i32;
        let y = y0 + LEGEND_ROW * (i % rows) as i32;
        draw_marker(area, (x + 6, y), marker, 4, color.to_rgba())?;
        area.draw(&Text::new(
            short(name, LEGEND_NAME_CHARS),
            (x + 16, y),
            TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The finite points of all groups as (group, point), in a fixed pseudo-random order. Drawn
/// group after group, the last class would cover the others wherever classes overlap, which is
/// exactly where the plot should show the mix.
fn paint_order(groups: &[ScatterGroup]) -> Vec<(usize, (f64, f64))> {
    let mut points: Vec<(u64, usize, (f64, f64))> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| group.points.iter().map(move |p| (g, *p)))
        .filter(|(_, p)| p.0.is_finite() && p.1.is_finite())
        .enumerate()
        .map(|(i, (g, p))| {
            // SplitMix64 of the position: a fixed shuffle, the same on every run.
            let mut z = (i as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31), g, p)
        })
        .collect();
    points.sort_unstable_by_key(|&(key, g, _)| (key, g));
    points.into_iter().map(|(_, g, p)| (g, p)).collect()
}

/// A 2-D scatter of labelled groups (t-SNE, UMAP or PCA of embeddings coloured by class).
///
/// One colour per group from a 20-colour qualitative palette, then marker shapes cycle, so 40+
/// classes stay apart; marker size and opacity shrink with the number of points so 10k points
/// still show structure. The legend sits outside the axes on the right, in as many columns as
/// the classes need. Points with a non-finite coordinate are left out (they have no place on
/// the axes); if none is left the plot is refused.
pub fn scatter(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[ScatterGroup],
) -> Result<Vec<PathBuf>, PlotError> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut n = 0usize;
    for p in groups.iter().flat_map(|g| g.points.iter().filter(finite)) {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
        y0 = y0.min(p.1);
        y1 = y1.max(p.1);
        n += 1;
    }
    if n == 0 {
        return Err(PlotError {
            path: stem.to_path_buf(),
            message: "scatter plot: no point with finite coordinates".into(),
        });
    }
    let (x0, x1) = padded(x0, x1);
    let (y0, y1) = padded(y0, y1);
    const PLOT: (u32, u32) = (760, 680);
    const LEGEND_TOP: i32 = 52;
    let rows = ((PLOT.1 as i32 - LEGEND_TOP - 20) / LEGEND_ROW).max(1) as usize;
    let columns = groups.len().div_ceil(rows).max(1);
    let legend_w = LEGEND_COLUMN as u32 * columns as u32 + 20;
    struct Scatter<'a> {
        title: &'a str,
        x_label: &'a str,
        y_label: &'a str,
        groups: &'a [ScatterGroup],
        bounds: (f64, f64, f64, f64),
        look: (i32, f64),
        rows: usize,
    }
    impl Figure for Scatter<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
            let Scatter {
                title,
                x_label,
                y_label,
                groups,
                bounds: (x0, x1, y0, y1),
                look: (radius, alpha),
                rows,
            } = *self;
            let (plot, legend) = root.split_horizontally(PLOT.0);
            let mut chart = ChartBuilder::on(&plot)
                .caption(title, (FONT, 18))
                .margin(14)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .label_style((FONT, 12))
                .axis_desc_style((FONT, 14))
                .bold_line_style(BLACK.mix(0.08))
                .light_line_style(TRANSPARENT)
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .draw()
                .map_err(|e| e.to_string())?;
            let area = chart.plotting_area();
            for (group, p) in paint_order(groups) {
                let (color, marker) = group_style(group);
                draw_marker(area, p, marker, radius, color.mix(alpha))?;
            }
            let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            draw_legend(&legend, &names, rows, (8, LEGEND_TOP))
        }
    }
    render(
        stem,
        (PLOT.0 + legend_w, PLOT.1),
        &Scatter {
            title,
            x_label,
            y_label,
            groups,
            bounds: (x0, x1, y0, y1),
            look: point_look(n),
            rows,
        },
    )
}

/// A persistence diagram: one group per homology dimension (H0, H1, ...), birth on x, death on
/// y, the diagonal drawn (points near it are short-lived noise), and classes that never die
/// (death `f64::INFINITY`) placed on a dashed line at the top labelled "∞", as persim draws
/// them. Births must be finite and deaths finite or +∞ and not before the birth; anything else
/// is refused rather than drawn misleadingly.
pub fn persistence_diagram(
    stem: &Path,
    title: &str,
    diagrams: &[ScatterGroup],
) -> Result<Vec<PathBuf>, PlotError> {
    let refuse = |message: String| PlotError {
        path: stem.to_path_buf(),
        message,
    };
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    let mut any_infinite = false;
    let mut n = 0usize;
    for g in diagrams {
        for &(birth, death) in &g.points {
            let death_ok = death == f64::INFINITY || death.is_finite();
            if !birth.is_finite() || !death_ok || death < birth {
                return Err(refuse(format!(
                    "persistence diagram {}: invalid pair (birth {birth}, death {death})",
                    g.name
                )));
            }
            lo = lo.min(birth);
            hi = hi.max(birth);
            if death.is_finite() {
                hi = hi.max(death);
            } else {
                any_infinite = true;
            }
            n += 1;
        }
    }
    if n == 0 {
        return Err(refuse("persistence diagram: no pairs".into()));
    }
    // Distances and filtration values start at 0; keep the origin in view so the diagonal
    // starts at the corner, as in persim.
    let lo = lo.min(0.0);
    let hi = if hi - lo < 1e-9 { lo + 1.0 } else { hi };
    let span = hi - lo;
    let infinity_y = hi + 0.1 * span;
    let top = if any_infinite {
        infinity_y + 0.05 * span
    } else {
        hi + 0.05 * span
    };
    let bottom = lo - 0.05 * span;
    struct Diagram<'a> {
        title: &'a str,
        diagrams: &'a [ScatterGroup],
        bounds: (f64, f64),
        finite_top: f64,
        infinity_y: Option<f64>,
        look: (i32, f64),
    }
    impl Figure for Diagram<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
            let Diagram {
                title,
                diagrams,
                bounds: (bottom, top),
                finite_top,
                infinity_y,
                look: (radius, alpha),
            } = *self;
            let mut chart = ChartBuilder::on(root)
                .caption(title, (FONT, 18))
                .margin(14)
                .margin_right(24)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(bottom..top, bottom..top)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("birth")
                .y_desc("death")
                .label_style((FONT, 12))
                .axis_desc_style((FONT, 14))
                .bold_line_style(BLACK.mix(0.08))
                .light_line_style(TRANSPARENT)
                .x_label_formatter(&tick)
                // Ticks above the highest finite value would read as real deaths next to "∞".
                .y_label_formatter(&|v: &f64| match infinity_y {
                    Some(_) if *v > finite_top => String::new(),
                    _ => tick(v),
                })
                .draw()
                .map_err(|e| e.to_string())?;
            // The region below the diagonal cannot hold a pair (death >= birth): shade it.
            chart
                .draw_series(std::iter::once(Polygon::new(
                    vec![(bottom, bottom), (top, top), (top, bottom)],
                    BLACK.mix(0.04).filled(),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    [(bottom, bottom), (top, top)],
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
            if let Some(y) = infinity_y {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(bottom, y), (top, y)],
                        6,
                        4,
                        BLACK.mix(0.6).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
                let (x, py) = chart.backend_coord(&(bottom, y));
                root.draw(&Text::new(
                    "∞",
                    (x - 8, py),
                    TextStyle::from((FONT, 16).into_font())
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(|e| e.to_string())?;
            }
            let area = chart.plotting_area();
            for (i, g) in diagrams.iter().enumerate() {
                let (color, marker) = group_style(i);
                for &(birth, death) in &g.points {
                    let y = if death.is_finite() {
                        death
                    } else {
                        infinity_y.unwrap_or(top)
                    };
                    draw_marker(area, (birth, y), marker, radius, color.mix(alpha))?;
                }
            }
            // Legend in the lower right: that triangle is empty by construction.
            let (lx, ly) = chart.backend_coord(&(top, bottom));
            let names: Vec<String> = diagrams
                .iter()
                .map(|g| format!("{} ({})", g.name, g.points.len()))
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let width = 8 + 16 + 8 * names.iter().map(|s| s.chars().count()).max().unwrap_or(0);
            let height = LEGEND_ROW * names.len() as i32 + 8;
            let (bx, by) = (lx - width as i32 - 12, ly - height - 12);
            root.draw(&Rectangle::new(
                [(bx, by), (lx - 12, ly - 12)],
                WHITE.mix(0.9).filled(),
            ))
            .map_err(|e| e.to_string())?;
            root.draw(&Rectangle::new(
                [(bx, by), (lx - 12, ly - 12)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
            draw_legend(
                root,
                &names,
                names.len().max(1),
                (bx + 4, by + 4 + LEGEND_ROW / 2),
            )
        }
    }
    render(
        stem,
        (700, 660),
        &Diagram {
            title,
            diagrams,
            bounds: (bottom, top),
            finite_top: hi + 0.02 * span,
            infinity_y: any_infinite.then_some(infinity_y),
            look: point_look(n),
        },
    )
}
