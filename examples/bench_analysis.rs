//! Speed of the analysis core (run by `scripts/bench_analysis`, which also runs numpy and
//! scikit-learn on the same data and prints both side by side).
//!
//! Usage: bench_analysis DATA_DIR
//!
//! Reads from DATA_DIR (float32 `.npy`, written by the script):
//! - `queries.npy`, `gallery.npy`: paired retrieval, query `i`'s positive is gallery item `i`;
//! - `kmeans_x.npy`, `kmeans_init.npy`: k-means data and a common starting point;
//!
//! and writes `rust_results.json` (figures) and `rust_ranks.u32` (per-query ranks, little-endian
//! u32) there for the script to compare with numpy's.

use std::path::Path;
use std::time::Instant;

use clipflow::analysis::cluster::{self, KMeansOptions};
use clipflow::analysis::retrieval::{self, Positives, RankOptions};
use clipflow::analysis::Embeddings;

/// A 2-D `.npy` file (what the Python side of the benchmark wrote) as (values, rows, cols).
fn read_npy(path: &Path) -> (Vec<f32>, usize, usize) {
    let (rows, cols, data) = clipflow::store::read_npy(path).unwrap_or_else(|e| panic!("{e}"));
    (data, rows, cols)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: bench_analysis DATA_DIR");
        std::process::exit(2);
    }
    let dir = Path::new(&args[1]);
    let threads = rayon::current_num_threads();
    let mut results = serde_json::Map::new();
    results.insert("threads".into(), threads.into());

    // Retrieval: n × n at dim D, paired.
    let (q, nq, d) = read_npy(&dir.join("queries.npy"));
    let (g, ng, _) = read_npy(&dir.join("gallery.npy"));
    let qe = Embeddings::new(&q, d).unwrap();
    let ge = Embeddings::new(&g, d).unwrap();
    let ks = [1, 5, 10];
    let t = Instant::now();
    let r = retrieval::retrieve(qe, ge, &Positives::Paired, &ks, &RankOptions::default())
        .expect("retrieval");
    let secs = t.elapsed().as_secs_f64();
    let m = &r.metrics;
    println!(
        "clipflow retrieval {nq}x{ng} D={d}: {secs:.2} s ({:.0} GFLOP/s); R@1 {:.4} R@5 {:.4} \
         R@10 {:.4} mean rank {:.2} median rank {} MRR {:.4}",
        2.0 * nq as f64 * ng as f64 * d as f64 / secs / 1e9,
        m.recall[0].recall,
        m.recall[1].recall,
        m.recall[2].recall,
        m.mean_rank.unwrap(),
        m.median_rank.unwrap(),
        m.mrr
    );
    results.insert("retrieval_seconds".into(), secs.into());
    for x in &m.recall {
        results.insert(format!("recall@{}", x.k), x.recall.into());
    }
    results.insert("mean_rank".into(), m.mean_rank.unwrap().into());
    results.insert("median_rank".into(), m.median_rank.unwrap().into());
    results.insert("mrr".into(), m.mrr.into());
    let ranks: Vec<u8> = r
        .ranking
        .ranks
        .iter()
        .flat_map(|x| (x.unwrap() as u32).to_le_bytes())
        .collect();
    std::fs::write(dir.join("rust_ranks.u32"), ranks).unwrap();
    drop((q, g));

    // k-means: full runs (k-means++ and restarts), then Lloyd from a common start.
    let (x, n, d) = read_npy(&dir.join("kmeans_x.npy"));
    let (init, k, _) = read_npy(&dir.join("kmeans_init.npy"));
    let xe = Embeddings::new(&x, d).unwrap();
    let n_init: usize = std::env::var("BENCH_KMEANS_N_INIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let max_iter: usize = std::env::var("BENCH_KMEANS_MAX_ITER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let opts = KMeansOptions {
        k,
        n_init,
        max_iter,
        tol: 1e-4,
        seed: 0,
    };
    let t = Instant::now();
    let km = cluster::kmeans(xe, &opts).expect("kmeans");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "clipflow k-means n={n} D={d} k={k} n_init={n_init} max_iter={max_iter}: {secs:.2} s; \
         best inertia {:.6e}; iterations per restart {:?}",
        km.inertia, km.restart_iterations
    );
    results.insert("kmeans_seconds".into(), secs.into());
    results.insert("kmeans_inertia".into(), km.inertia.into());
    results.insert(
        "kmeans_total_iterations".into(),
        km.restart_iterations.iter().sum::<usize>().into(),
    );

    let t = Instant::now();
    let ll = cluster::lloyd(xe, &init, max_iter, 1e-4).expect("lloyd");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "clipflow Lloyd from the common start: {secs:.2} s, {} iterations ({:.1} ms each), \
         inertia {:.6e}",
        ll.n_iter,
        secs / ll.n_iter as f64 * 1e3,
        ll.inertia
    );
    results.insert("lloyd_seconds".into(), secs.into());
    results.insert("lloyd_n_iter".into(), ll.n_iter.into());
    results.insert("lloyd_inertia".into(), ll.inertia.into());
    let labels: Vec<u8> = ll
        .labels
        .iter()
        .flat_map(|&l| (l as u32).to_le_bytes())
        .collect();
    std::fs::write(dir.join("rust_lloyd_labels.u32"), labels).unwrap();
    std::fs::write(
        dir.join("rust_results.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
}
