//! Interactive 2-D maps: the points of a PCA, t-SNE or UMAP map drawn on a canvas, with pan
//! and zoom, a tooltip showing the image behind a point, colouring by label, cluster, variant
//! or zero-shot outcome, and box or lasso selection listing the chosen ids.
//!
//! # What goes into the page
//!
//! The page stays one self-contained file. Map data is JSON in `<script
//! type="application/json">` elements, read by `assets/map.js`:
//!
//! - once per page, the shared table: every distinct item (id, label, caption, thumbnail) and
//!   every distinct string, plus each [`ThumbnailSheet`] as JPEG data: URIs. A dozen maps of
//!   the same sample cost their coordinates, not a dozen copies of the captions and images;
//! - per map, columns of numbers: coordinates quantised to 1/65,535 of the map's extent (at
//!   most five digits each, sub-pixel on any screen), item indices, cluster ids, zero-shot
//!   predictions.
//!
//! JSON is escaped for the HTML parser (`<`, `>` and `&` as `\u003c`…), so a caption cannot
//! close the script element. Nothing is fetched: thumbnails are data: URIs decoded when a map
//! is first hovered.
//!
//! # Why canvas
//!
//! 50,000 SVG circles make a page sluggish to scroll, let alone pan. The script draws the
//! points on a canvas, batched by colour (one path and one fill per colour), and finds the
//! point under the cursor through a uniform grid built once, so a redraw is a few
//! milliseconds at 50k points (measured by `scripts/check_report.py --bench`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{base64, escape, relative_href};
use super::sprites::ThumbnailSheet;

/// Quantisation steps of a coordinate over the map's extent.
const STEPS: f64 = 65_535.0;

/// One interactive map.
#[derive(Debug, Clone)]
pub struct InteractiveMap {
    pub title: String,
    /// What the axes are ("t-SNE", "UMAP", "PCA"): the axes read "`<axis> 1`" and "`<axis> 2`".
    pub axis: String,
    /// A line under the title (trustworthiness, sample size, ...).
    pub note: Option<String>,
    pub points: Vec<MapPoint>,
    /// Names of the clusterings, in the order of [`MapPoint::clusters`].
    pub cluster_methods: Vec<String>,
    /// The thumbnails [`MapPoint::thumbnail`] indexes; share one `Arc` between the maps of a
    /// page so it is embedded once.
    pub thumbnails: Option<Arc<ThumbnailSheet>>,
    /// The printable copies of this map, linked (relative to the report).
    pub png: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

/// One point of a map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapPoint {
    pub x: f64,
    pub y: f64,
    pub id: String,
    pub label: Option<String>,
    pub caption: Option<String>,
    /// Index into the map's [`InteractiveMap::thumbnails`].
    pub thumbnail: Option<usize>,
    /// One entry per [`InteractiveMap::cluster_methods`]; `None` where the point has no
    /// cluster (DBSCAN noise, or not clustered).
    pub clusters: Vec<Option<i64>>,
    pub variant: Option<String>,
    pub zero_shot: Option<ZeroShotCall>,
}

/// The zero-shot classifier's call on a point's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroShotCall {
    pub predicted: String,
    pub correct: bool,
}

/// Strings interned once per page.
#[derive(Default)]
struct Strings {
    index: HashMap<String, usize>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> usize {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), self.list.len() - 1);
        self.list.len() - 1
    }

    fn opt(&mut self, s: Option<&str>) -> Option<usize> {
        s.map(|s| self.id(s))
    }
}

/// (id, label, caption, thumbnail set, thumbnail), as string and set indices.
type ItemKey = (
    usize,
    Option<usize>,
    Option<usize>,
    Option<usize>,
    Option<usize>,
);

/// The maps of one page: collects the shared tables while the maps are rendered.
#[derive(Default)]
pub(super) struct MapPage {
    strings: Strings,
    items: HashMap<ItemKey, usize>,
    item_list: Vec<ItemKey>,
    sheets: Vec<Arc<ThumbnailSheet>>,
    maps: usize,
}

impl MapPage {
    pub(super) fn is_empty(&self) -> bool {
        self.maps == 0
    }

    fn sheet_index(&mut self, sheet: &Arc<ThumbnailSheet>) -> usize {
        match self.sheets.iter().position(|s| Arc::ptr_eq(s, sheet)) {
            Some(i) => i,
            None => {
                self.sheets.push(Arc::clone(sheet));
                self.sheets.len() - 1
            }
        }
    }

    /// The figure of one map (its data inline), or an error naming what is wrong with it.
    pub(super) fn render(
        &mut self,
        report_dir: &Path,
        map: &InteractiveMap,
    ) -> Result<String, String> {
        let title = escape(&map.title);
        let n = map.points.len();
        if let Some((i, p)) = map
            .points
            .iter()
            .enumerate()
            .find(|(_, p)| !p.x.is_finite() || !p.y.is_finite())
        {
            return Err(format!(
                "map {:?}: point {i} ({}) has a non-finite coordinate ({}, {})",
                map.title, p.id, p.x, p.y
            ));
        }
        for p in &map.points {
            if p.clusters.len() != map.cluster_methods.len() {
                return Err(format!(
                    "map {:?}: point {} has {} cluster values for {} clusterings",
                    map.title,
                    p.id,
                    p.clusters.len(),
                    map.cluster_methods.len()
                ));
            }
            if let Some(t) = p.thumbnail {
                let available = map.thumbnails.as_ref().map_or(0, |s| s.len());
                if t >= available {
                    return Err(format!(
                        "map {:?}: point {} has thumbnail {t}, but there are {available}",
                        map.title, p.id
                    ));
                }
            }
        }
        let mut out = String::new();
        let _ = write!(
            out,
            "<figure class=\"imap\" data-map=\"{}\">\n<figcaption>{title}",
            self.maps
        );
        if let Some(note) = &map.note {
            let _ = write!(out, " <span class=\"dim\">{}</span>", escape(note));
        }
        out.push_str("</figcaption>\n");
        if n == 0 {
            out.push_str("<p class=\"empty\">No points.</p>\n</figure>\n");
            return Ok(out);
        }
        self.maps += 1;
        let sheet = map.thumbnails.as_ref().map(|s| self.sheet_index(s));
        // Extent and quantisation.
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in &map.points {
            x0 = x0.min(p.x);
            x1 = x1.max(p.x);
            y0 = y0.min(p.y);
            y1 = y1.max(p.y);
        }
        let q = |v: f64, lo: f64, hi: f64| -> u32 {
            if hi > lo {
                ((v - lo) / (hi - lo) * STEPS).round().clamp(0.0, STEPS) as u32
            } else {
                0
            }
        };
        let mut json = String::with_capacity(n * 24 + 256);
        let _ = write!(
            json,
            "{{\"title\":{},\"axis\":{},\"n\":{n},\"extent\":[{},{},{},{}],\"steps\":{STEPS},",
            json_string(&map.title),
            json_string(&map.axis),
            json_number(x0),
            json_number(y0),
            json_number(x1),
            json_number(y1),
        );
        let ints = |json: &mut String, key: &str, values: &mut dyn Iterator<Item = Option<i64>>| {
            let _ = write!(json, "\"{key}\":[");
            for (i, v) in values.enumerate() {
                if i > 0 {
                    json.push(',');
                }
                match v {
                    Some(v) => {
                        let _ = write!(json, "{v}");
                    }
                    None => json.push_str("null"),
                }
            }
            json.push(']');
        };
        ints(
            &mut json,
            "x",
            &mut map.points.iter().map(|p| Some(i64::from(q(p.x, x0, x1)))),
        );
        json.push(',');
        ints(
            &mut json,
            "y",
            &mut map.points.iter().map(|p| Some(i64::from(q(p.y, y0, y1)))),
        );
        json.push(',');
        let items: Vec<usize> = map
            .points
            .iter()
            .map(|p| {
                let key = (
                    self.strings.id(&p.id),
                    self.strings.opt(p.label.as_deref()),
                    self.strings.opt(p.caption.as_deref()),
                    p.thumbnail.and(sheet),
                    p.thumbnail,
                );
                let next = self.item_list.len();
                let idx = *self.items.entry(key).or_insert(next);
                if idx == next {
                    self.item_list.push(key);
                }
                idx
            })
            .collect();
        ints(
            &mut json,
            "item",
            &mut items.iter().map(|&i| Some(i as i64)),
        );
        if map.points.iter().any(|p| p.variant.is_some()) {
            json.push(',');
            let v: Vec<Option<i64>> = map
                .points
                .iter()
                .map(|p| self.strings.opt(p.variant.as_deref()).map(|i| i as i64))
                .collect();
            // A map is usually of one variant: then the value once, not per point.
            match v[0] {
                Some(first) if v.iter().all(|&x| x == Some(first)) => {
                    let _ = write!(json, "\"variant1\":{first}");
                }
                _ => ints(&mut json, "variant", &mut v.into_iter()),
            }
        }
        if map.points.iter().any(|p| p.zero_shot.is_some()) {
            json.push(',');
            let v: Vec<Option<i64>> = map
                .points
                .iter()
                .map(|p| {
                    p.zero_shot
                        .as_ref()
                        .map(|z| self.strings.id(&z.predicted) as i64)
                })
                .collect();
            ints(&mut json, "zs", &mut v.into_iter());
            json.push(',');
            ints(
                &mut json,
                "zsok",
                &mut map
                    .points
                    .iter()
                    .map(|p| p.zero_shot.as_ref().map(|z| i64::from(z.correct))),
            );
        }
        json.push_str(",\"clusters\":[");
        for (k, name) in map.cluster_methods.iter().enumerate() {
            if k > 0 {
                json.push(',');
            }
            let _ = write!(json, "{{\"name\":{},", json_string(name));
            ints(
                &mut json,
                "v",
                &mut map.points.iter().map(|p| p.clusters[k]),
            );
            json.push('}');
        }
        json.push_str("]}");
        let _ = write!(
            out,
            "<div class=\"imap-body\" role=\"group\" aria-label=\"Interactive map: {title}\">\
             <p class=\"imap-placeholder\">Interactive map of {} points: it draws when scrolled into view.</p></div>\n\
             <script type=\"application/json\" class=\"imap-data\">{}</script>\n",
            n,
            html_safe_json(&json)
        );
        let mut links = Vec::new();
        for (path, what) in [(&map.png, "PNG"), (&map.svg, "SVG")] {
            if let Some(p) = path {
                links.push(format!(
                    "<a href=\"{}\">{what}</a>",
                    escape(&relative_href(report_dir, p))
                ));
            }
        }
        if !links.is_empty() {
            let _ = writeln!(
                out,
                "<p class=\"plot-links\">Printable copy: {}</p>",
                links.join(" · ")
            );
        }
        out.push_str("</figure>\n");
        Ok(out)
    }

    /// The shared table, once per page (after every map).
    pub(super) fn shared(&self) -> String {
        let mut json = String::new();
        json.push_str("{\"strings\":[");
        for (i, s) in self.strings.list.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&json_string(s));
        }
        json.push_str("],\"items\":[");
        for (i, (id, label, caption, set, thumb)) in self.item_list.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            let o = |v: &Option<usize>| v.map_or("-1".to_string(), |v| v.to_string());
            let _ = write!(
                json,
                "[{id},{},{},{},{}]",
                o(label),
                o(caption),
                o(set),
                o(thumb)
            );
        }
        json.push_str("],\"sheets\":[");
        for (i, s) in self.sheets.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            let _ = write!(json, "{{\"tile\":{},\"images\":[", s.tile_size());
            for (k, bytes) in s.sheets().iter().enumerate() {
                if k > 0 {
                    json.push(',');
                }
                let _ = write!(json, "\"data:image/jpeg;base64,{}\"", base64(bytes));
            }
            json.push_str("],\"tiles\":[");
            for k in 0..s.len() {
                if let Some(t) = s.tile(k) {
                    if k > 0 {
                        json.push(',');
                    }
                    let _ = write!(json, "{},{},{},{},{}", t.sheet, t.x, t.y, t.w, t.h);
                }
            }
            json.push_str("]}");
        }
        json.push_str("]}");
        format!(
            "<script type=\"application/json\" id=\"imap-shared\">{}</script>\n",
            html_safe_json(&json)
        )
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A finite number as JSON (the shortest text that reads back the same `f64`).
fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        "0".into()
    }
}

/// JSON that the HTML parser passes through untouched inside a `<script>` element: `<`, `>`
/// and `&` become JSON escapes (the same string to `JSON.parse`), so no `</script>` or `<!--`
/// can appear.
fn html_safe_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: &str, x: f64, y: f64) -> MapPoint {
        MapPoint {
            x,
            y,
            id: id.into(),
            label: Some("cat".into()),
            caption: Some("</script><!-- a & b".into()),
            thumbnail: None,
            clusters: vec![Some(1), None],
            variant: Some("clean".into()),
            zero_shot: Some(ZeroShotCall {
                predicted: "dog".into(),
                correct: false,
            }),
        }
    }

    fn map(points: Vec<MapPoint>) -> InteractiveMap {
        InteractiveMap {
            title: "t".into(),
            axis: "t-SNE".into(),
            note: None,
            points,
            cluster_methods: vec!["kmeans".into(), "dbscan".into()],
            thumbnails: None,
            png: None,
            svg: None,
        }
    }

    #[test]
    fn data_is_shared_quantised_and_escaped() {
        let mut page = MapPage::default();
        let m = map(vec![
            point("a", 0.0, 10.0),
            point("b", 2.0, 20.0),
            point("c", 1.0, 15.0),
        ]);
        let one = page.render(Path::new("."), &m).unwrap();
        let two = page.render(Path::new("."), &m).unwrap();
        assert!(!one.contains("</script><!--"));
        assert!(one.contains("\"x\":[0,65535,32768]"), "{one}");
        assert!(one.contains("\"y\":[0,65535,32768]"));
        assert!(one.contains("\"item\":[0,1,2]"));
        assert!(
            two.contains("\"item\":[0,1,2]"),
            "items are shared between maps"
        );
        assert!(one.contains("\"v\":[1,1,1]}") && one.contains("\"v\":[null,null,null]"));
        assert!(one.contains("\"zsok\":[0,0,0]"));
        let shared = page.shared();
        assert_eq!(
            shared.matches("\\u003c/script\\u003e").count(),
            1,
            "one caption"
        );
        let json = shared
            .trim_start_matches("<script type=\"application/json\" id=\"imap-shared\">")
            .trim_end_matches("</script>\n");
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 3);
        let caption = v["items"][0][2].as_u64().unwrap() as usize;
        assert_eq!(v["strings"][caption], "</script><!-- a & b");
    }

    #[test]
    fn bad_maps_are_refused() {
        let mut page = MapPage::default();
        let nan = map(vec![point("a", f64::NAN, 0.0)]);
        assert!(page
            .render(Path::new("."), &nan)
            .unwrap_err()
            .contains("non-finite"));
        let mut ragged = map(vec![point("a", 0.0, 0.0)]);
        ragged.points[0].clusters.pop();
        assert!(page.render(Path::new("."), &ragged).is_err());
        let mut thumb = map(vec![point("a", 0.0, 0.0)]);
        thumb.points[0].thumbnail = Some(0);
        assert!(page
            .render(Path::new("."), &thumb)
            .unwrap_err()
            .contains("thumbnail 0"));
        assert!(page.is_empty());
    }
}
