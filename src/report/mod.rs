//! Report stage: pictures and the HTML report made from the analysis tables.
//!
//! Every plot is written twice, as PNG (embedded in the HTML report, and for quick looks) and
//! SVG (for papers). Text is drawn with an embedded DejaVu Sans, so no system font or
//! fontconfig is needed on a cluster node. The report (`report.html`) is one self-contained
//! file: see [`write_report`].

mod html;
mod plots;

pub use html::{
    write_report, Block, Gallery, GalleryHit, GalleryQuery, InteractiveMap, MapPoint, Report,
    ReportError, RunSummary, Section, Thumbnail, ThumbnailSheet, ThumbnailSheetBuilder, Tile,
    ZeroShotCall,
};
pub use plots::{
    heatmap, histogram, lines, persistence_diagram, scatter, PlotError, ScatterGroup, Series,
};
