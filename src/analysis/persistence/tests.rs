use super::*;

fn bar(birth: f64, death: f64) -> Bar {
    Bar { birth, death }
}

fn points(x: &[f32], dim: usize) -> Embeddings<'_> {
    Embeddings::new(x, dim).unwrap()
}

/// A pseudo-random cloud from a fixed linear congruential sequence.
fn cloud(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n * dim)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

#[test]
fn unit_square_has_one_loop() {
    let x = [0.0f32, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
    let d = rips_persistence(points(&x, 2), &PersistenceOptions::default()).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[0].bars,
        vec![
            bar(0.0, 1.0),
            bar(0.0, 1.0),
            bar(0.0, 1.0),
            bar(0.0, f64::INFINITY)
        ]
    );
    assert_eq!(d[1].bars, vec![bar(1.0, 2f32.sqrt() as f64)]);
    // H0 only.
    let opts = PersistenceOptions {
        max_dim: 0,
        ..Default::default()
    };
    let d0 = rips_persistence(points(&x, 2), &opts).unwrap();
    assert_eq!(d0, vec![d[0].clone()]);
}

#[test]
fn single_point_duplicates_and_zero_threshold() {
    let one = rips_persistence(points(&[1.0, 2.0], 2), &PersistenceOptions::default()).unwrap();
    assert_eq!(one[0].bars, vec![bar(0.0, f64::INFINITY)]);
    assert!(one[1].bars.is_empty());
    // Identical rows are at distance exactly 0: no zero-length H0 bar.
    let x = [0.3f32, 0.7, 0.3, 0.7, 0.3, 0.7, 2.0, 0.7];
    let d = rips_persistence(points(&x, 2), &PersistenceOptions::default()).unwrap();
    assert_eq!(d[0].bars.len(), 2);
    assert_eq!(d[0].bars[1], bar(0.0, f64::INFINITY));
    // A zero threshold: every distinct point is its own component forever.
    let opts = PersistenceOptions {
        threshold: Some(0.0),
        ..Default::default()
    };
    let d = rips_persistence(points(&x, 2), &opts).unwrap();
    assert_eq!(d[0].bars, vec![bar(0.0, f64::INFINITY); 2]);
    assert!(d[1].bars.is_empty());
}

#[test]
fn threshold_leaves_the_loop_open() {
    // A regular hexagon of side 1: the loop is born at 1 and filled at √3.
    let x: Vec<f32> = (0..6)
        .flat_map(|k| {
            let t = k as f64 * std::f64::consts::PI / 3.0;
            [t.cos() as f32, t.sin() as f32]
        })
        .collect();
    let full = rips_persistence(points(&x, 2), &PersistenceOptions::default()).unwrap();
    assert_eq!(full[1].bars.len(), 1);
    assert!((full[1].bars[0].birth - 1.0).abs() < 1e-6);
    assert!((full[1].bars[0].death - 3f64.sqrt()).abs() < 1e-6);
    let opts = PersistenceOptions {
        threshold: Some(1.5),
        ..Default::default()
    };
    let cut = rips_persistence(points(&x, 2), &opts).unwrap();
    assert_eq!(cut[1].bars.len(), 1);
    assert_eq!(cut[1].bars[0].death, f64::INFINITY);
    // A threshold of +inf is no threshold.
    let opts = PersistenceOptions {
        threshold: Some(f64::INFINITY),
        ..Default::default()
    };
    assert_eq!(rips_persistence(points(&x, 2), &opts).unwrap(), full);
}

#[test]
fn rank_levels_and_bit_levels_agree() {
    // Random points, and a grid where many distances tie exactly.
    let random = cloud(150, 3, 1);
    let grid: Vec<f32> = (0..100)
        .flat_map(|i| [(i % 10) as f32, (i / 10) as f32])
        .collect();
    for (x, dim) in [(&random, 3), (&grid, 2)] {
        let n = x.len() / dim;
        let dist = rips::distance_matrix(points(x, dim), Distance::Euclidean);
        for threshold in [None, Some(1.5f32)] {
            let bits = rips::persistence_with_levels(dist.clone(), n, 1, threshold, false);
            let ranks = rips::persistence_with_levels(dist.clone(), n, 1, threshold, true);
            assert_eq!(bits, ranks);
            assert!(!bits[1].bars.is_empty());
        }
    }
}

#[test]
fn same_bits_whatever_the_thread_count() {
    let x = cloud(200, 4, 7);
    let run = || rips_persistence(points(&x, 4), &PersistenceOptions::default()).unwrap();
    let many = run();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(run);
    assert_eq!(many, one);
    assert_eq!(many, run());
}

#[test]
fn points_and_distance_matrix_agree() {
    let x = cloud(60, 5, 3);
    let e = points(&x, 5);
    let want = rips_persistence(e, &PersistenceOptions::default()).unwrap();
    let dist: Vec<f64> = rips::distance_matrix(e, Distance::Euclidean)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let got = rips_persistence_from_distances(&dist, 60, &PersistenceOptions::default()).unwrap();
    assert_eq!(got, want);
}

#[test]
fn input_errors() {
    let opts = PersistenceOptions::default();
    assert!(matches!(
        rips_persistence(points(&[], 2), &opts),
        Err(AnalysisError::Empty { .. })
    ));
    assert!(matches!(
        rips_persistence(points(&[0.0, f32::NAN], 1), &opts),
        Err(AnalysisError::NonFinite { row: 1, .. })
    ));
    let big = vec![0.0f32; MAX_POINTS + 1];
    assert!(matches!(
        rips_persistence(points(&big, 1), &opts),
        Err(AnalysisError::TooMany { .. })
    ));
    for bad in [
        PersistenceOptions { max_dim: 2, ..opts },
        PersistenceOptions {
            threshold: Some(-1.0),
            ..opts
        },
        PersistenceOptions {
            threshold: Some(f64::NAN),
            ..opts
        },
    ] {
        assert!(matches!(
            rips_persistence(points(&[0.0, 1.0], 1), &bad),
            Err(AnalysisError::InvalidParameter { .. })
        ));
    }
    let from = |d: &[f64], n| rips_persistence_from_distances(d, n, &opts);
    assert!(matches!(from(&[], 0), Err(AnalysisError::Empty { .. })));
    assert!(matches!(
        from(&[0.0, 1.0, 1.0], 2),
        Err(AnalysisError::LengthMismatch { .. })
    ));
    assert!(matches!(
        from(&[0.0, f64::INFINITY, f64::INFINITY, 0.0], 2),
        Err(AnalysisError::NonFinite { row: 0, .. })
    ));
    for bad in [
        [1.0, 1.0, 1.0, 0.0],   // diagonal
        [0.0, -1.0, -1.0, 0.0], // negative
        [0.0, 1.0, 2.0, 0.0],   // asymmetric
    ] {
        assert!(matches!(
            from(&bad, 2),
            Err(AnalysisError::InvalidParameter { .. })
        ));
    }
    assert!(from(&[0.0, 1.0, 1.0 + 1e-9, 0.0], 2).is_ok());
}

#[test]
fn diagram_distance_basics() {
    let inf = f64::INFINITY;
    assert_eq!(bottleneck(&[], &[]).unwrap(), 0.0);
    assert_eq!(wasserstein(&[], &[]).unwrap(), 0.0);
    // One point against nothing: its distance to the diagonal.
    let p = [bar(1.0, 3.0)];
    assert_eq!(bottleneck(&p, &[]).unwrap(), 1.0);
    assert!((wasserstein(&p, &[]).unwrap() - 2f64.sqrt()).abs() < 1e-15);
    // Infinite bars are ignored.
    assert_eq!(
        bottleneck(&[bar(0.0, inf), bar(1.0, 3.0)], &[bar(0.0, inf)]).unwrap(),
        1.0
    );
    // Nearby points match each other rather than the diagonal.
    let q = [bar(1.0, 3.5)];
    assert_eq!(bottleneck(&p, &q).unwrap(), 0.5);
    assert_eq!(wasserstein(&p, &q).unwrap(), 0.5);
    assert_eq!(bottleneck(&p, &p).unwrap(), 0.0);
    assert_eq!(wasserstein(&p, &p).unwrap(), 0.0);
    // Bad bars.
    assert!(matches!(
        bottleneck(&[bar(f64::NAN, 1.0)], &[]),
        Err(AnalysisError::NonFinite { row: 0, .. })
    ));
    assert!(matches!(
        wasserstein(&[], &[bar(0.0, 1.0), bar(0.0, f64::NAN)]),
        Err(AnalysisError::NonFinite { row: 1, .. })
    ));
    assert!(matches!(
        wasserstein(&[bar(2.0, 1.0)], &[]),
        Err(AnalysisError::InvalidParameter { .. })
    ));
    assert!(matches!(
        bottleneck(&[bar(inf, inf)], &[]),
        Err(AnalysisError::NonFinite { .. })
    ));
    let many = vec![bar(0.0, 1.0); MAX_DIAGRAM_POINTS + 1];
    assert!(matches!(
        wasserstein(&many, &[]),
        Err(AnalysisError::TooMany { .. })
    ));
    // Infinite bars do not count towards the limit.
    let mut open = vec![bar(0.0, inf); MAX_DIAGRAM_POINTS + 1];
    open.push(bar(0.0, 1.0));
    assert_eq!(bottleneck(&open, &[]).unwrap(), 0.5);
}
