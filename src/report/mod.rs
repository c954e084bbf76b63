//! Report stage: pictures (and, later, the HTML report) made from the analysis tables.
//!
//! Every plot is written twice, as PNG (for the HTML report and quick looks) and SVG (for
//! papers). Text is drawn with an embedded DejaVu Sans, so no system font or fontconfig is
//! needed on a cluster node.

mod html;
mod plots;

pub use plots::{
    heatmap, histogram, lines, persistence_diagram, scatter, PlotError, ScatterGroup, Series,
};
