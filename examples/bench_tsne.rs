//! Speed of clipflow's t-SNE and trustworthiness (run by `scripts/bench_tsne`, which also runs
//! scikit-learn and openTSNE on the same data from the same start and prints a table).
//!
//! Usage: bench_tsne DATA_DIR
//!
//! Reads from DATA_DIR (float32 `.npy`, written by `scripts/bench_tsne.py prepare`):
//! - `x.npy`: the samples, `rows × dim`;
//! - `init.npy`: the start, `rows × 2` (scikit-learn's rescaled PCA);
//!
//! and writes there `clipflow_embedding.npy` (float64, `rows × 2`) and `clipflow.json` (wall
//! seconds of the whole `tsne` call and of its neighbour/P stage measured separately, the KL
//! divergence and iterations it reports, and its own trustworthiness(k = 10) with timing).

use std::path::Path;
use std::time::Instant;

use clipflow::analysis::neighbors::nearest_neighbors;
use clipflow::analysis::trustworthiness::trustworthiness;
use clipflow::analysis::tsne::{joint_probabilities, tsne, TsneOptions};
use clipflow::analysis::Embeddings;

/// A 2-D `.npy` file (what the Python side of the benchmark wrote) as (values, rows, cols).
fn read_npy(path: &Path) -> (Vec<f32>, usize, usize) {
    let (rows, cols, data) = clipflow::store::read_npy(path).unwrap_or_else(|e| panic!("{e}"));
    (data, rows, cols)
}

/// Writes a C-order little-endian float64 `.npy` file of `rows × cols`.
fn write_npy_f64(path: &Path, data: &[f64], rows: usize, cols: usize) {
    let mut header =
        format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Version 1.0: magic (6) + version (2) + length (2) + header, padded to 64 bytes with '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: bench_tsne DATA_DIR");
        std::process::exit(2);
    }
    let dir = Path::new(&args[1]);
    let (x, n, dim) = read_npy(&dir.join("x.npy"));
    let (init, n_init, two) = read_npy(&dir.join("init.npy"));
    assert_eq!((n_init, two), (n, 2), "init shape");
    let init: Vec<f64> = init.iter().map(|&v| v as f64).collect();
    let e = Embeddings::new(&x, dim).unwrap();
    let opts = TsneOptions::default();
    let threads = rayon::current_num_threads();

    // The affinity stage alone (the full run below repeats it).
    let t = Instant::now();
    let k = (n - 1).min((3.0 * opts.perplexity + 1.0) as usize);
    let nn = nearest_neighbors(e, k, opts.metric).expect("neighbours");
    let knn_secs = t.elapsed().as_secs_f64();
    let p = joint_probabilities(&nn, opts.perplexity).expect("P");
    let affinity_secs = t.elapsed().as_secs_f64();
    drop((nn, p));

    let t = Instant::now();
    let run = tsne(e, &init, &opts).expect("t-SNE");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "clipflow t-SNE {n}x{dim} ({threads} threads): {secs:.2} s (neighbours {knn_secs:.2} s, \
         + P {:.2} s, optimisation ≈ {:.2} s for {} iterations, {:.1} ms each); KL {:.4}",
        affinity_secs - knn_secs,
        secs - affinity_secs,
        run.n_iter,
        (secs - affinity_secs) / run.n_iter as f64 * 1e3,
        run.kl_divergence
    );

    let t = Instant::now();
    let tw = trustworthiness(e, &run.embedding, 2, 10, opts.metric).expect("trustworthiness");
    let tw_secs = t.elapsed().as_secs_f64();
    println!("clipflow trustworthiness(k=10): {tw:.6} in {tw_secs:.2} s");

    write_npy_f64(&dir.join("clipflow_embedding.npy"), &run.embedding, n, 2);
    let results = serde_json::json!({
        "threads": threads,
        "seconds": secs,
        "neighbour_seconds": knn_secs,
        "affinity_seconds": affinity_secs,
        "kl_divergence": run.kl_divergence,
        "n_iter": run.n_iter,
        "trustworthiness_10": tw,
        "trustworthiness_seconds": tw_secs,
    });
    std::fs::write(
        dir.join("clipflow.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
}
