//! Speed of Vietoris–Rips persistence (run by `scripts/bench_persistence`, which also runs
//! ripser on the same data and prints both side by side).
//!
//! Usage: bench_persistence DATA_DIR NAME...
//!
//! For each NAME reads `DATA_DIR/NAME.npy` (float32 points, written by the script), computes
//! H0 and H1 (Euclidean, no threshold) a few times, and writes `DATA_DIR/NAME.rust.json`:
//! the best wall time and the diagrams (infinite deaths as null), for the script to compare
//! with ripser's. With two or more names, also times the bottleneck and Wasserstein distances
//! between the first two clouds' diagrams (H0 and H1) and writes them to
//! `DATA_DIR/distances.rust.json`, for the script to compare with persim's on the same diagrams.

use std::path::Path;
use std::time::Instant;

use clipflow::analysis::persistence::{
    bottleneck, rips_persistence, wasserstein, Diagram, PersistenceOptions,
};
use clipflow::analysis::Embeddings;
use serde_json::json;

/// A 2-D `.npy` file (what the Python side of the benchmark wrote) as (values, rows, cols).
fn read_npy(path: &Path) -> (Vec<f32>, usize, usize) {
    let (rows, cols, data) = clipflow::store::read_npy(path).unwrap_or_else(|e| panic!("{e}"));
    (data, rows, cols)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bench_persistence DATA_DIR NAME...");
        std::process::exit(2);
    }
    let dir = Path::new(&args[1]);
    let repeats: usize = std::env::var("BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut all: Vec<Vec<Diagram>> = Vec::new();
    for name in &args[2..] {
        let (x, n, d) = read_npy(&dir.join(format!("{name}.npy")));
        let e = Embeddings::new(&x, d).unwrap();
        let opts = PersistenceOptions::default();
        let mut best = f64::INFINITY;
        let mut dgms = Vec::new();
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            dgms = rips_persistence(e, &opts).expect("persistence");
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "clipflow {name} n={n} D={d}: {best:.3} s (best of {repeats}, {} threads); {} H0 bars, {} H1 bars",
            rayon::current_num_threads(),
            dgms[0].bars.len(),
            dgms[1].bars.len()
        );
        let as_json = |k: usize| {
            dgms[k]
                .bars
                .iter()
                .map(|b| {
                    json!([
                        b.birth,
                        if b.death.is_finite() {
                            Some(b.death)
                        } else {
                            None
                        }
                    ])
                })
                .collect::<Vec<_>>()
        };
        let out = json!({"seconds": best, "h0": as_json(0), "h1": as_json(1)});
        std::fs::write(dir.join(format!("{name}.rust.json")), out.to_string()).unwrap();
        all.push(dgms);
    }
    if all.len() >= 2 {
        let mut out = serde_json::Map::new();
        for (k, (first, second)) in all[0].iter().zip(&all[1]).enumerate() {
            let (a, b) = (&first.bars, &second.bars);
            let t = Instant::now();
            let bn = bottleneck(a, b).unwrap();
            let tb = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let ws = wasserstein(a, b).unwrap();
            let tw = t.elapsed().as_secs_f64();
            println!(
                "clipflow H{k} {} vs {} bars: bottleneck {bn:.9} in {tb:.3} s, wasserstein {ws:.9} in {tw:.3} s",
                a.len(),
                b.len()
            );
            out.insert(
                format!("h{k}"),
                json!({"bottleneck": bn, "bottleneck_seconds": tb, "wasserstein": ws, "wasserstein_seconds": tw}),
            );
        }
        let path = dir.join("distances.rust.json");
        std::fs::write(path, serde_json::Value::Object(out).to_string()).unwrap();
    }
}
