//! clipflow: a declarative batch pipeline for studying CLIP-like image–text embedding spaces.
//!
//! The crate is laid out as the data flows, one folder per stage, each with one public entry
//! point and its own error type:
//!
//! ```text
//! config ──► dataset ──► augment ──► encode ──► store ──► analyze ──► report
//! ```
//!
//! A stage only imports from stages to its left. [`run`] is the orchestrator that strings the
//! stages together for `clipflow run`; it is the only module that knows them all. Three
//! libraries sit beside the flow and import no stage: [`analysis`] (the numerical core: pure
//! functions over vectors, pinned to scikit-learn and SciPy), [`chart`] (the plots every stage
//! draws with) and [`util`]/[`progress`].
//!
//! DESIGN.md drew a separate `plan` box between config and dataset. Checking a study before any
//! work needs every stage's own check (the dataset's columns, the noise levels, the model
//! files), so a `plan` stage left of the others would have to import from its right. Planning
//! therefore lives in [`run::plan`], in the orchestrator, and each stage exposes the check it
//! owns; `clipflow validate` is exactly that planning step.

pub mod analysis;
pub mod analyze;
pub mod augment;
pub mod chart;
pub mod config;
pub mod dataset;
pub mod encode;
pub mod progress;
pub mod report;
pub mod run;
pub mod store;
pub mod synth;
pub mod util;

/// The version written into every manifest and Parquet footer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
