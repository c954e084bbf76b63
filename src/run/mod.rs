//! The orchestrator of `clipflow run` and `clipflow validate`: it plans a study (every stage's
//! checks, before any work) and executes the plan part by part, sharded and resumable.
//!
//! Planning lives here rather than in a stage of its own: checking a study needs the dataset's
//! columns, the noise levels and the model files, i.e. every stage, and only the orchestrator
//! may import them all.
//!
//! After the parts, [`analyze`] (metrics) and its `geometry` half (projections, sweeps,
//! subspaces, topology, attributes) write the tables and plots, and `report` assembles
//! `report.html` from the run directory, reading the dataset only for gallery thumbnails.

mod analyze;
mod atlas_export;
mod execute;
mod geometry;
mod plan;
mod report;
mod report_maps;

pub use analyze::{analyze, AnalysisSummary, AnalyzeError};
pub use atlas_export::{export_atlas, AtlasExport, AtlasExportError, DEFAULT_NEIGHBORS};
pub use execute::{execute, RunError, RunOptions, RunSummary, Shard};
pub use plan::{plan, Plan, PlanError, PlannedModel, Prompt};
pub use report::{write_run_report, RunReportError};
