//! The orchestrator of `clipflow run` and `clipflow validate`: it plans a study (every stage's
//! checks, before any work) and executes the plan part by part, sharded and resumable.
//!
//! Planning lives here rather than in a stage of its own: checking a study needs the dataset's
//! columns, the noise levels, the model files and the analysis stages' settings, i.e. every
//! stage, and only the orchestrator may import them all.
//!
//! After the parts, [`crate::analyze`] writes the tables and plots and [`crate::report`]
//! assembles `report.html` from the run directory, reading the dataset only for gallery
//! thumbnails.

mod atlas_export;
pub mod claims;
mod execute;
mod plan;
pub mod scheduler;
mod share;
pub mod signals;
mod texts;

pub use atlas_export::{export_atlas, AtlasExport, AtlasExportError, DEFAULT_NEIGHBORS};
pub use execute::{execute, RunError, RunOptions, RunSummary, Shard};
pub use plan::{plan, Plan, PlanError, PlannedModel, Prompt};
