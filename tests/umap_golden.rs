//! UMAP against umap-learn 0.5.12 (`scripts/gen_umap_golden.py` writes
//! `tests/fixtures/golden/umap/`).
//!
//! - `find_ab_params`: a and b to 1e-4 (scipy's curve_fit stops at a relative step of 1.5e-8;
//!   the Levenberg–Marquardt here runs to convergence);
//! - `smooth_knn_dist` σ and ρ, and the fuzzy-union graph, from the same neighbours: 1e-9
//!   (both are `f32` with umap-learn's order of operations, so in practice bit-equal), and the
//!   graph from the data through clipflow's own exact neighbours: same edges, weights to 1e-6;
//! - the spectral initialisation: eigenvectors 1..=dim of the normalised Laplacian to 1e-6
//!   (absolute, after aligning signs) against numpy's `eigh`, on graphs with well separated
//!   eigenvalues, through LOBPCG (250 vertices) and the dense path (40);
//! - end to end: trustworthiness (k = 10) of clipflow's layout no more than 0.02 below
//!   umap-learn's mean over three seeds, on blobs, a swiss roll and a noisy circle. The random
//!   streams differ, so coordinates are not compared.

mod common;

use common::golden::{f32s, f64s, usizes};

use clipflow::analysis::umap::{self, FuzzyGraph, UmapInit, UmapOptions};
use clipflow::analysis::{Distance, Embeddings};
use serde_json::Value;

fn golden(name: &str) -> Value {
    common::golden::read("umap", name, "scripts/gen_umap_golden.py")
}

fn cases(v: &Value) -> &Vec<Value> {
    v["cases"].as_array().unwrap()
}

fn num(case: &Value, key: &str) -> usize {
    case[key].as_u64().unwrap() as usize
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap()
}

/// Largest |a − b| over two equally long sequences.
fn max_dev(a: impl IntoIterator<Item = f64>, b: impl IntoIterator<Item = f64>) -> f64 {
    a.into_iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The graph as (row, col, weight) triplets in row-major order.
fn graph_triplets(g: &FuzzyGraph) -> Vec<(usize, usize, f32)> {
    (0..g.n)
        .flat_map(|i| (g.indptr[i]..g.indptr[i + 1]).map(move |e| (i, e)))
        .map(|(i, e)| (i, g.indices[e], g.weights[e]))
        .collect()
}

fn golden_triplets(case: &Value) -> Vec<(usize, usize, f32)> {
    let rows = usizes(&case["graph_rows"]);
    let cols = usizes(&case["graph_cols"]);
    let vals = f32s(&case["graph_vals"]);
    rows.into_iter()
        .zip(cols)
        .zip(vals)
        .map(|((r, c), v)| (r, c, v))
        .collect()
}

fn compare_graphs(what: &str, got: &FuzzyGraph, want: &[(usize, usize, f32)], tol: f64) -> f64 {
    let got = graph_triplets(got);
    assert_eq!(got.len(), want.len(), "{what}: number of entries");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1), (w.0, w.1), "{what}: edge structure");
    }
    let dev = max_dev(
        got.iter().map(|t| t.2 as f64),
        want.iter().map(|t| t.2 as f64),
    );
    assert!(dev <= tol, "{what}: weights deviate by {dev:e}");
    dev
}

#[test]
fn curve_parameters_match_umap_learn() {
    let g = golden("ab.json");
    let mut worst = 0.0f64;
    for case in cases(&g) {
        let spread = case["spread"].as_f64().unwrap();
        let min_dist = case["min_dist"].as_f64().unwrap();
        let (a, b) = umap::find_ab_params(spread, min_dist).unwrap();
        let (wa, wb) = (case["a"].as_f64().unwrap(), case["b"].as_f64().unwrap());
        let dev = (a - wa).abs().max((b - wb).abs());
        assert!(
            dev <= 1e-4,
            "spread {spread} min_dist {min_dist}: ({a}, {b}) vs umap-learn ({wa}, {wb})"
        );
        worst = worst.max(dev);
    }
    println!("find_ab_params: max deviation {worst:e}");
}

#[test]
fn local_metric_and_fuzzy_graph_match_umap_learn() {
    let g = golden("graph.json");
    for case in cases(&g) {
        let n = name(case);
        let k = num(case, "k");
        let idx = usizes(&case["knn_indices"]);
        let dist = f32s(&case["knn_dists"]);
        let (sigmas, rhos) = umap::smooth_knn_dist(&dist, k).unwrap();
        let ds = max_dev(
            sigmas.iter().map(|&v| v as f64),
            f32s(&case["sigmas"]).iter().map(|&v| v as f64),
        );
        let dr = max_dev(
            rhos.iter().map(|&v| v as f64),
            f32s(&case["rhos"]).iter().map(|&v| v as f64),
        );
        assert!(ds <= 1e-9, "{n}: sigmas deviate by {ds:e}");
        assert!(dr <= 1e-9, "{n}: rhos deviate by {dr:e}");
        let graph = umap::fuzzy_simplicial_set(&idx, &dist, k).unwrap();
        assert_eq!(graph.sigmas, sigmas);
        let dw = compare_graphs(n, &graph, &golden_triplets(case), 1e-9);
        println!("{n}: sigma {ds:e}, rho {dr:e}, weights {dw:e}");
    }
}

#[test]
fn graph_from_data_matches_umap_learn() {
    let g = golden("graph.json");
    for case in cases(&g) {
        let n = name(case);
        let data = f32s(&case["data"]);
        let x = Embeddings::new(&data, num(case, "dim")).unwrap();
        let metric = match case["metric"].as_str().unwrap() {
            "cosine" => Distance::Cosine,
            _ => Distance::Euclidean,
        };
        let graph = umap::fuzzy_graph(x, num(case, "n_neighbors"), metric).unwrap();
        let dw = compare_graphs(n, &graph, &golden_triplets(case), 1e-6);
        println!("{n} (own neighbours): weights {dw:e}");
    }
}

fn graph_from_triplets(case: &Value) -> FuzzyGraph {
    let n = num(case, "rows");
    let t = golden_triplets(case);
    let mut indptr = vec![0usize; n + 1];
    for &(r, _, _) in &t {
        indptr[r + 1] += 1;
    }
    for i in 0..n {
        indptr[i + 1] += indptr[i];
    }
    FuzzyGraph {
        n,
        indptr,
        indices: t.iter().map(|x| x.1).collect(),
        weights: t.iter().map(|x| x.2).collect(),
        sigmas: vec![],
        rhos: vec![],
    }
}

#[test]
fn spectral_init_matches_eigenvectors() {
    let g = golden("spectral.json");
    for case in cases(&g) {
        let n = name(case);
        let dim = num(case, "dim");
        let rows = num(case, "rows");
        let graph = graph_from_triplets(case);
        let want = f64s(&case["eigenvectors"]);
        for seed in [0u64, 7] {
            let got = umap::spectral_layout(&graph, dim, seed)
                .unwrap()
                .unwrap_or_else(|| panic!("{n}: spectral layout failed"));
            let mut worst = 0.0f64;
            for c in 0..dim {
                let col = |v: &[f64]| (0..rows).map(|i| v[i * dim + c]).collect::<Vec<_>>();
                let (g, w) = (col(&got), col(&want));
                let same = max_dev(g.iter().copied(), w.iter().copied());
                let flipped = max_dev(g.iter().map(|v| -v), w.iter().copied());
                worst = worst.max(same.min(flipped));
            }
            assert!(
                worst <= 1e-6,
                "{n} seed {seed}: eigenvectors deviate by {worst:e}"
            );
            println!("{n} seed {seed}: eigenvectors within {worst:e}");
        }
    }
}

/// scikit-learn's `trustworthiness` (exact, Euclidean): ranks in the input space of the
/// embedding's k nearest neighbours, penalised beyond k.
fn trustworthiness(x: &[f32], dim: usize, emb: &[f64], edim: usize, k: usize) -> f64 {
    let n = x.len() / dim;
    let dist = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
            .sum()
    };
    let mut penalty = 0.0f64;
    let mut rank = vec![0usize; n];
    for i in 0..n {
        let xi = &x[i * dim..(i + 1) * dim];
        let mut order: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        let d: Vec<f64> = (0..n)
            .map(|j| dist(xi, &x[j * dim..(j + 1) * dim]))
            .collect();
        order.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
        for (r, &j) in order.iter().enumerate() {
            rank[j] = r + 1;
        }
        let e: Vec<f64> = (0..n)
            .map(|j| {
                (0..edim)
                    .map(|c| (emb[i * edim + c] - emb[j * edim + c]).powi(2))
                    .sum()
            })
            .collect();
        let mut near: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        near.sort_by(|&a, &b| e[a].total_cmp(&e[b]).then(a.cmp(&b)));
        for &j in &near[..k] {
            penalty += rank[j].saturating_sub(k) as f64;
        }
    }
    let (n, k) = (n as f64, k as f64);
    1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))
}

#[test]
fn layout_quality_matches_umap_learn() {
    let g = golden("quality.json");
    let k = num(&g, "k");
    for case in cases(&g) {
        let n = name(case);
        let dim = num(case, "dim");
        let data = f32s(&case["data"]);
        // The helper first, on umap-learn's own embedding.
        let reference: Vec<f64> = f32s(&case["reference_embedding"])
            .iter()
            .map(|&v| v as f64)
            .collect();
        let t_ref = trustworthiness(&data, dim, &reference, 2, k);
        let want_ref = case["reference_embedding_trustworthiness"]
            .as_f64()
            .unwrap();
        assert!(
            (t_ref - want_ref).abs() <= 1e-12,
            "{n}: trustworthiness helper {t_ref} vs scikit-learn {want_ref}"
        );
        let x = Embeddings::new(&data, dim).unwrap();
        let u = umap::umap(x, &UmapOptions::default()).unwrap();
        // A disconnected graph falls back to the random init (umap-learn lays out the
        // components separately).
        let connected = num(case, "components") == 1;
        let expected = if connected {
            UmapInit::Spectral
        } else {
            UmapInit::Random
        };
        assert_eq!(u.init_used, expected, "{n}: initialisation");
        assert_eq!(u.n_epochs, 500);
        let t = trustworthiness(&data, dim, &u.embedding, 2, k);
        let want = case["trustworthiness"].as_f64().unwrap();
        println!("{n}: trustworthiness {t:.4} vs umap-learn {want:.4}");
        assert!(
            t >= want - 0.02,
            "{n}: trustworthiness {t} is more than 0.02 below umap-learn's {want}"
        );
    }
}

#[test]
fn same_bits_on_any_number_of_threads() {
    // More rows than one block of the neighbour search and of the Laplacian product.
    let data = clip_like(1100, 8);
    let x = Embeddings::new(&data, 8).unwrap();
    let opts = UmapOptions {
        n_epochs: Some(20),
        seed: 11,
        ..UmapOptions::default()
    };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| umap::umap(x, &opts).unwrap())
    };
    let one = run(1);
    assert_eq!(one.init_used, UmapInit::Spectral);
    assert_eq!(one, run(3));
}

/// Synthetic CLIP-like data: `rows` unit vectors in `dim` dimensions along the segments
/// between 20 random directions taken in a cycle, so the neighbour graph is connected
/// (splitmix64 + Box–Muller, so the test needs no RNG crate).
fn clip_like(rows: usize, dim: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut draw = move || {
        let (u1, u2) = (1.0 - uniform(), uniform());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (z, u2)
    };
    let centres: Vec<f64> = (0..20 * dim).map(|_| draw().0).collect();
    let mut out = Vec::with_capacity(rows * dim);
    for i in 0..rows {
        let (a, b) = (i % 20, (i + 1) % 20);
        let t = draw().1;
        let v: Vec<f64> = (0..dim)
            .map(|d| {
                let m = (1.0 - t) * centres[a * dim + d] + t * centres[b * dim + d];
                m + 0.3 * draw().0
            })
            .collect();
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        out.extend(v.iter().map(|a| (a / norm) as f32));
    }
    out
}

/// Wall time of the stages on 10,000 × 512 (run with `--release -- --ignored --nocapture`);
/// prints figures, asserts nothing about time. `scripts/check_umap.py` runs it on its own
/// data (`UMAP_BENCH_IN`: raw little-endian `f32` rows of `UMAP_BENCH_DIM` values) and reads
/// the layout back (`UMAP_BENCH_OUT`, same format) to compare with umap-learn.
#[test]
#[ignore]
fn time_10k_by_512() {
    let (data, dim) = match std::env::var("UMAP_BENCH_IN") {
        Ok(path) => {
            let bytes = std::fs::read(path).unwrap();
            let dim: usize = std::env::var("UMAP_BENCH_DIM").unwrap().parse().unwrap();
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (v, dim)
        }
        Err(_) => (clip_like(10_000, 512), 512),
    };
    let rows = data.len() / dim;
    let x = Embeddings::new(&data, dim).unwrap();
    let t = std::time::Instant::now();
    let graph = umap::fuzzy_graph(x, 15, Distance::Cosine).unwrap();
    let t_graph = t.elapsed();
    let t = std::time::Instant::now();
    let spectral = umap::spectral_layout(&graph, 2, 0).unwrap();
    let t_spectral = t.elapsed();
    let t = std::time::Instant::now();
    let opts = UmapOptions {
        metric: Distance::Cosine,
        ..UmapOptions::default()
    };
    let u = umap::umap(x, &opts).unwrap();
    let t_total = t.elapsed();
    println!(
        "{rows} x {dim} cosine: graph {:.2} s ({} entries), spectral {:.2} s ({}), \
         umap total {:.2} s ({} epochs, init {:?}, {} threads)",
        t_graph.as_secs_f64(),
        graph.nnz(),
        t_spectral.as_secs_f64(),
        if spectral.is_some() {
            "converged"
        } else {
            "fell back"
        },
        t_total.as_secs_f64(),
        u.n_epochs,
        u.init_used,
        rayon::current_num_threads()
    );
    if let Ok(path) = std::env::var("UMAP_BENCH_OUT") {
        let bytes: Vec<u8> = u
            .embedding
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        std::fs::write(path, bytes).unwrap();
    }
}
