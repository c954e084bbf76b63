//! Writes the embedding-atlas export of a finished run (what `clipflow::run::export_atlas`
//! does after an analysis), for runs made before it was wired in, and for
//! `scripts/check_atlas_export.py --serve`.
//!
//! Usage: export_atlas RUN_DIR [STUDY.yaml]
//!
//! With the study file the dataset is opened and the images are included.

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let run_dir = Path::new(
        args.get(1)
            .expect("usage: export_atlas RUN_DIR [STUDY.yaml]"),
    );
    let plan = args.get(2).map(|study| {
        let loaded =
            clipflow::config::load(Path::new(study), &[]).unwrap_or_else(|e| panic!("{e}"));
        clipflow::run::plan(loaded, Some(run_dir)).unwrap_or_else(|e| panic!("{e}"))
    });
    let export = clipflow::run::export_atlas(
        run_dir,
        &run_dir.join("tables"),
        plan.as_ref().map(|p| &p.dataset),
        clipflow::run::DEFAULT_NEIGHBORS,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for f in &export.files {
        println!("{}", f.display());
    }
    for n in &export.notes {
        eprintln!("note: {n}");
    }
}
