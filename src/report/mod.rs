//! Report stage: `report.html`, one self-contained page with every table, plot and gallery of
//! a run, assembled from the run directory's files ([`write_run_report`]) into a page model
//! ([`Report`]) and rendered ([`write_report`]).
//!
//! The section of each analysis stage (its title, what it answers, which tables and plots it
//! shows) comes from the stage itself, through the analysis registry, so a new stage shows up
//! here without an edit. The pictures are drawn by the stages with [`crate::chart`].

mod assemble;
mod html;
mod maps;
mod pairs;

pub use assemble::{write_run_report, Images, RunReportError};
pub use html::{
    write_report, Block, Gallery, GalleryHit, GalleryQuery, ImagePair, InteractiveMap, MapPoint,
    PairGallery, PairImage, Report, ReportError, RunSummary, Section, Thumbnail, ThumbnailSheet,
    ThumbnailSheetBuilder, Tile, ZeroShotCall,
};
