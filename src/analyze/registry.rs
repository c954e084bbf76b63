//! The analysis stages, in the order they run and the report shows them.
//!
//! Adding a stage is one file plus one line here:
//!
//! 1. `stages/duplicates.rs`: a settings struct (serde, `deny_unknown_fields`, defaults) that
//!    implements [`StageConfig`] (its YAML key, its report section, its checks, `start`), and
//!    a type implementing [`Stage`](super::stage::Stage) whose `run` is called once per
//!    (model, image variant) and writes tables, plots, notes and metrics to the
//!    [`Output`](super::stage::Output);
//! 2. `entry::<stages::duplicates::DuplicatesSettings>(),` in [`STAGES`] below.
//!
//! The study's `analysis.duplicates:` key then turns it on, `clipflow validate` checks its
//! settings (with the YAML line of a bad value), its tables land in `tables/`, its plots in
//! `plots/`, and `report.html` gets its section.

use super::stage::{Facts, SettingError, Stage, StageConfig};
use super::stages;

/// One registered stage.
pub struct Entry {
    pub key: &'static str,
    pub section: super::stage::Section,
    pub on_by_default: bool,
    pub(super) parse: fn(&serde_norway::Value, &Facts) -> Result<Parsed, ParseError>,
}

/// A stage's settings read and checked: the stage ready to run, and its settings with every
/// default filled in (for the manifest).
pub(super) struct Parsed {
    pub stage: Box<dyn Stage>,
    pub resolved: serde_json::Value,
}

/// Why a stage's settings were refused; keys are relative to the stage.
pub(super) enum ParseError {
    /// The YAML does not fit the settings type (unknown key, wrong type).
    Shape { key: String, message: String },
    /// A value fails the stage's check.
    Setting(SettingError),
}

const fn entry<C: StageConfig>() -> Entry {
    Entry {
        key: C::KEY,
        section: C::SECTION,
        on_by_default: C::ON_BY_DEFAULT,
        parse: parse::<C>,
    }
}

fn parse<C: StageConfig>(value: &serde_norway::Value, facts: &Facts) -> Result<Parsed, ParseError> {
    // A present key turns its stage on even when empty (`zero_shot:` as well as `zero_shot: {}`).
    let settings: C = if value.is_null() {
        C::default()
    } else {
        serde_path_to_error::deserialize(value.clone()).map_err(|e| ParseError::Shape {
            key: e.path().to_string().replace('[', ".").replace(']', ""),
            message: e.inner().to_string(),
        })?
    };
    settings.check(facts).map_err(ParseError::Setting)?;
    let resolved = serde_json::to_value(&settings).unwrap_or(serde_json::Value::Null);
    Ok(Parsed {
        stage: settings.start(),
        resolved,
    })
}

/// Every stage, in running and reading order. Stages that read other stages' metrics
/// (robustness) come after them.
pub static STAGES: &[Entry] = &[
    entry::<stages::retrieval::RetrievalSettings>(),
    entry::<stages::zero_shot::ZeroShotSettings>(),
    entry::<stages::cluster::ClusterSettings>(),
    entry::<stages::probe::ProbeSettings>(),
    entry::<stages::robustness::RobustnessSettings>(),
    entry::<stages::similarity::SimilaritySettings>(),
    entry::<stages::projection::ProjectionSettings>(),
    entry::<stages::dimension_sweep::DimensionSweepSettings>(),
    entry::<stages::subspaces::SubspaceSettings>(),
    entry::<stages::topology::TopologySettings>(),
    entry::<stages::attributes::AttributesSettings>(),
    entry::<stages::duplicates::DuplicatesSettings>(),
];
