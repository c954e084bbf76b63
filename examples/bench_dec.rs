//! clipflow's side of `scripts/compare_dec.py` (and `scripts/bench_dec`): k-means on the
//! embeddings, the autoencoder + k-means, and DEC, with wall times and clipflow's metrics.
//!
//! Usage: bench_dec DATA_DIR [KEY=VALUE ...]
//!
//! Reads `DATA_DIR/x.npy` (float32 `n × d`) and `DATA_DIR/labels.npy` (int64 class ids; only
//! their number sets k and the metrics use them), writes `DATA_DIR/clipflow.json` (labels of
//! each method, traces, seconds, threads). Options override the defaults:
//! `layers=500,500,2000,10 pretrain_epochs=20 finetune_epochs=40 batch_size=256
//! learning_rate=0.1 dec_learning_rate=0.01 tol=0.001 max_epochs=200 update_interval=N seed=0`.

use std::path::Path;
use std::time::Instant;

use clipflow::analysis::cluster::{
    self, AutoencoderOptions, ClusterScores, DecOptions, KMeansOptions, Optimizer,
};
use clipflow::analysis::Embeddings;
use serde_json::json;

fn read_labels(path: &Path) -> Vec<usize> {
    // int64 little-endian, 1-D, version 1.0 header (what numpy's np.save writes).
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x93NUMPY"),
        "{}: not .npy",
        path.display()
    );
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'<i8'"),
        "{}: expected int64",
        path.display()
    );
    bytes[10 + header_len..]
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize)
        .collect()
}

fn scores_json(s: &ClusterScores) -> serde_json::Value {
    json!({"ami": s.adjusted_mutual_info, "ari": s.adjusted_rand,
           "fmi": s.fowlkes_mallows, "nmi": s.normalized_mutual_info})
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: bench_dec DATA_DIR [KEY=VALUE ...]");
        std::process::exit(2);
    }
    let dir = Path::new(&args[1]);
    let (n, dim, x) =
        clipflow::store::read_npy(&dir.join("x.npy")).unwrap_or_else(|e| panic!("{e}"));
    let mut truth = read_labels(&dir.join("labels.npy"));
    let (mut n, mut x) = (n, x);
    if let Some(limit) = args[2..].iter().find_map(|a| a.strip_prefix("limit=")) {
        n = n.min(limit.parse().expect("limit=N"));
        x.truncate(n * dim);
        truth.truncate(n);
    }
    assert_eq!(truth.len(), n, "labels");
    let k = truth
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut ae = AutoencoderOptions::default();
    let mut dec = DecOptions::default();
    for kv in &args[2..] {
        let (key, value) = kv.split_once('=').expect("KEY=VALUE");
        let num = || value.parse::<f64>().expect("a number");
        match key {
            "layers" => ae.layers = value.split(',').map(|v| v.parse().unwrap()).collect(),
            "pretrain_epochs" => ae.pretrain_epochs = num() as usize,
            "finetune_epochs" => ae.finetune_epochs = num() as usize,
            "batch_size" => {
                ae.batch_size = num() as usize;
                dec.batch_size = num() as usize;
            }
            "sgd" => {
                let v: Vec<f64> = value.split(',').map(|v| v.parse().unwrap()).collect();
                ae.optimizer = Optimizer::Sgd {
                    learning_rate: v[0],
                    momentum: v[1],
                    momentum_burnin: v.get(2).map_or(0, |&b| b as usize),
                }
            }
            "adam" => {
                ae.optimizer = Optimizer::Adam {
                    learning_rate: num(),
                }
            }
            "step_decay" => ae.step_decay = num() != 0.0,
            "dropout" => ae.dropout = num(),
            "dec_sgd" => {
                let (lr, m) = value.split_once(',').expect("dec_sgd=LR,MOMENTUM");
                dec.optimizer = Optimizer::Sgd {
                    learning_rate: lr.parse().unwrap(),
                    momentum: m.parse().unwrap(),
                    momentum_burnin: 0,
                }
            }
            "dec_adam" => {
                dec.optimizer = Optimizer::Adam {
                    learning_rate: num(),
                }
            }
            "tol" => dec.tol = num(),
            "max_epochs" => dec.max_epochs = num() as usize,
            "update_interval" => dec.update_interval = Some(num() as usize),
            "seed" => {
                ae.seed = num() as u64;
                dec.seed = num() as u64;
            }
            "limit" => {}
            _ => panic!("unknown option {key}"),
        }
    }
    let e = Embeddings::new(&x, dim).unwrap();
    let threads = rayon::current_num_threads();
    println!("clipflow on {n} x {dim}, k = {k}, {threads} threads; {ae:?}; {dec:?}");

    let t = Instant::now();
    let km = cluster::kmeans(e, &KMeansOptions::new(k, ae.seed)).expect("k-means");
    let km_secs = t.elapsed().as_secs_f64();
    let km_scores = cluster::cluster_scores(&truth, &km.labels).unwrap();

    let t = Instant::now();
    let a = cluster::autoencoder(e, k, &ae).expect("autoencoder");
    let ae_secs = t.elapsed().as_secs_f64();
    let ae_scores = cluster::cluster_scores(&truth, &a.labels).unwrap();

    let t = Instant::now();
    let d = cluster::dec(e, &a, &dec).expect("DEC");
    let dec_secs = t.elapsed().as_secs_f64();
    let dec_scores = cluster::cluster_scores(&truth, &d.labels).unwrap();

    for (name, s, secs) in [
        ("k-means", &km_scores, km_secs),
        ("autoencoder", &ae_scores, ae_secs),
        ("DEC", &dec_scores, dec_secs),
    ] {
        println!(
            "{name:<12} AMI {:.3} ARI {:.3} FMI {:.3} NMI {:.3}  {secs:.1} s",
            s.adjusted_mutual_info, s.adjusted_rand, s.fowlkes_mallows, s.normalized_mutual_info
        );
    }
    let pre: Vec<f64> = a
        .trace
        .pretrain_loss
        .iter()
        .filter_map(|l| l.last().copied())
        .collect();
    println!(
        "autoencoder: last pretraining losses {pre:.3?}, fine-tuning {:.4} -> {:.4}, \
         reconstruction error {:.4}",
        a.trace.finetune_loss.first().unwrap_or(&f64::NAN),
        a.trace.finetune_loss.last().unwrap_or(&f64::NAN),
        a.trace.reconstruction_error
    );
    println!(
        "DEC: {} iterations, converged {}, {} target updates, changed {:.4?}",
        d.trace.iterations,
        d.trace.converged,
        d.trace.updates.len(),
        d.trace
            .updates
            .iter()
            .map(|u| u.changed_fraction)
            .collect::<Vec<_>>()
    );
    let spread = |codes: &[f32], c: usize| -> Vec<f64> {
        (0..c)
            .map(|j| {
                let v: Vec<f64> = codes.chunks(c).map(|r| r[j] as f64).collect();
                let m = v.iter().sum::<f64>() / v.len() as f64;
                (v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64).sqrt()
            })
            .collect()
    };
    println!(
        "code std per dimension: autoencoder {:.3?}",
        spread(&a.codes, a.code_dim)
    );
    println!(
        "code std per dimension: DEC {:.3?}",
        spread(&d.codes, a.code_dim)
    );
    let out = json!({
        "n": n, "dim": dim, "k": k, "threads": threads,
        "kmeans": {"labels": km.labels, "seconds": km_secs, "scores": scores_json(&km_scores)},
        "autoencoder": {"labels": a.labels, "seconds": ae_secs, "scores": scores_json(&ae_scores),
            "pretrain_loss": a.trace.pretrain_loss, "finetune_loss": a.trace.finetune_loss,
            "reconstruction_error": a.trace.reconstruction_error},
        "dec": {"labels": d.labels, "seconds": dec_secs, "scores": scores_json(&dec_scores),
            "iterations": d.trace.iterations, "converged": d.trace.converged,
            "epoch_loss": d.trace.epoch_loss,
            "changed_fraction": d.trace.updates.iter().map(|u| u.changed_fraction).collect::<Vec<_>>()},
    });
    std::fs::write(dir.join("clipflow.json"), out.to_string()).expect("write clipflow.json");
}
