//! Principal angles between class subspaces: how much the directions along which each class
//! varies are shared between classes.
//!
//! # Class bases
//!
//! A class's subspace is spanned by the top principal directions of its centred rows (the
//! leading left singular vectors of the `dim × n_c` centred data). With `n_c` rows the centred
//! data has rank at most `n_c − 1`, so a class gets `min(r, n_c − 1, dim)` directions, fewer
//! still when its rows are (numerically) degenerate: a direction whose variance is below
//! 1e-10 of the class's leading variance counts as absent. [`ClassBasis::rank`] reports what
//! was used. A class with a single row, or whose rows are all equal, spans nothing and is an
//! error.
//!
//! The directions come from a symmetric eigen-decomposition in `f64` (the solver of
//! [`pca`](super::pca)): of the `n_c × n_c` Gram matrix of the centred rows when `n_c ≤ dim`
//! (the direction is then `Xcᵀ v / ‖Xcᵀ v‖`), of the `dim × dim` scatter matrix otherwise, so
//! the cost is O(min(n_c, dim)³ + n_c · dim · min(n_c, dim)) per class and the memory
//! O(min(n_c, dim)²) plus a copy of the class's rows. Classes are processed in parallel. Each direction's entry of largest magnitude is made positive (signs do
//! not change a subspace; this only makes the output reproducible).
//!
//! # Principal angles
//!
//! [`principal_angles`] is SciPy's `scipy.linalg.subspace_angles` (Knyazev & Argentati 2002),
//! step for step:
//!
//! 1. orthonormal bases `QA`, `QB` of the two spans (SciPy's `orth`: left singular vectors
//!    whose singular value exceeds `σ_max · ε · max(dim, rank)`); here by one-sided Jacobi;
//! 2. the cosines `σ`, singular values of `QAᵀ QB`, decreasing;
//! 3. `B = QB − QA (QAᵀ QB)` (the other way round when `QA` has fewer columns), whose
//!    singular values are the sines;
//! 4. `θ_i = arcsin(sine_i)` where `σ_i² ≥ ½`, else `arccos(σ_{m−1−i})`, for
//!    `i = 0..m` (`m = min` of the ranks), which is SciPy's `where(mask, arcsin, arccos(σ[::-1]))`.
//!    The mask is indexed by the *unreversed* cosines, exactly as in SciPy, so both formulas
//!    are used at the same positions; the angles come out in **decreasing** order.
//!
//! Small angles then come from sines, which keeps them accurate where `arccos` of a cosine
//! near 1 would lose half the digits.
//!
//! # Summary
//!
//! [`subspace_angles`] gives, for every pair of classes, all principal angles and their mean
//! and minimum in degrees. When two ranks add up to more than `dim`, the subspaces must share
//! a direction and their minimum angle is 0 by dimension count alone
//! ([`SubspaceAngles::trivially_zero`]): with 512-dimensional CLIP embeddings, keep `r` below
//! 256 for the minimum to say anything.

use rayon::prelude::*;

use super::linalg::{dot, matmul_nt_f64, non_empty};
use super::pca::{
    column_means, flip_largest_positive, jacobi_orthogonalize, scatter_matrix, singular_values,
    symmetric_eigen, RANK_RTOL,
};
use super::{check_finite, AnalysisError, Embeddings};

/// An orthonormal basis of one class's principal subspace.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassBasis {
    /// The class label.
    pub class: usize,
    /// Number of basis vectors: `min(r, n_c − 1, dim)` or fewer (see the module docs).
    pub rank: usize,
    /// `dim × rank`, **column-major**: basis vector `j` is `basis[j·dim .. (j+1)·dim]`, unit
    /// norm, by decreasing class variance.
    pub basis: Vec<f64>,
}

impl ClassBasis {
    /// Basis vector `j` (panics when out of range, like slice indexing).
    pub fn vector(&self, j: usize, dim: usize) -> &[f64] {
        &self.basis[j * dim..(j + 1) * dim]
    }
}

fn check_labels(x: Embeddings<'_>, labels: &[usize], r: usize) -> Result<(), AnalysisError> {
    non_empty("samples", x)?;
    check_finite("samples", x)?;
    if labels.len() != x.rows() {
        return Err(AnalysisError::LengthMismatch {
            what: "labels",
            expected: x.rows(),
            got: labels.len(),
        });
    }
    if r == 0 {
        return Err(AnalysisError::InvalidParameter {
            what: "r",
            value: "0".into(),
            reason: "a class subspace needs at least one direction",
        });
    }
    Ok(())
}

/// The top-`r` principal subspace of each class, by increasing class label.
pub fn class_bases(
    x: Embeddings<'_>,
    labels: &[usize],
    r: usize,
) -> Result<Vec<ClassBasis>, AnalysisError> {
    check_labels(x, labels, r)?;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| (labels[i], i));
    let members: Vec<&[usize]> = order.chunk_by(|&a, &b| labels[a] == labels[b]).collect();
    members
        .par_iter()
        .map(|rows| class_basis(x, labels[rows[0]], rows, r))
        .collect()
}

fn class_basis(
    x: Embeddings<'_>,
    class: usize,
    rows: &[usize],
    r: usize,
) -> Result<ClassBasis, AnalysisError> {
    let dim = x.dim();
    let n = rows.len();
    let cap = r.min(n - 1).min(dim);
    if cap == 0 {
        return Err(AnalysisError::Undefined(format!(
            "class {class} has a single sample: it spans no subspace"
        )));
    }
    let data: Vec<f32> = rows.iter().flat_map(|&i| x.row(i)).copied().collect();
    let cx = Embeddings::new(&data, dim)?;
    let mean = column_means(cx);
    let (values, mut basis) = if n <= dim {
        // Gram side: eigenvectors v of Xc Xcᵀ give the directions Xcᵀ v.
        let mut centred = Vec::with_capacity(n * dim);
        for row in data.chunks_exact(dim) {
            centred.extend(row.iter().zip(&mean).map(|(&a, m)| a as f64 - m));
        }
        let mut gram = vec![0.0f64; n * n];
        matmul_nt_f64(&centred, &centred, dim, &mut gram);
        symmetrize(&mut gram, n);
        let (values, vectors) = symmetric_eigen(gram, n)?;
        let keep = kept_directions(&values, cap);
        let mut basis = vec![0.0f64; keep * dim];
        for (j, col) in basis.chunks_exact_mut(dim).enumerate() {
            for (coef, row) in vectors[j * n..(j + 1) * n]
                .iter()
                .zip(centred.chunks_exact(dim))
            {
                col.iter_mut().zip(row).for_each(|(c, a)| *c += coef * a);
            }
            let norm = col.iter().map(|a| a * a).sum::<f64>().sqrt();
            col.iter_mut().for_each(|a| *a /= norm);
        }
        (values, basis)
    } else {
        let scatter = scatter_matrix(cx, &mean);
        let (values, mut vectors) = symmetric_eigen(scatter, dim)?;
        let keep = kept_directions(&values, cap);
        vectors.truncate(keep * dim);
        (values, vectors)
    };
    let rank = kept_directions(&values, cap);
    if rank == 0 {
        return Err(AnalysisError::Undefined(format!(
            "class {class}: all its samples are identical, it spans no subspace"
        )));
    }
    for col in basis.chunks_exact_mut(dim) {
        flip_largest_positive(col);
    }
    Ok(ClassBasis { class, rank, basis })
}

/// How many of the leading directions (eigenvalues decreasing) carry variance, at most `cap`.
fn kept_directions(values: &[f64], cap: usize) -> usize {
    let top = values.first().copied().unwrap_or(0.0);
    if top <= 0.0 {
        return 0;
    }
    values
        .iter()
        .take(cap)
        .take_while(|&&v| v > top * RANK_RTOL)
        .count()
}

fn symmetrize(a: &mut [f64], n: usize) {
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
}

fn check_basis(what: &'static str, b: &ClassBasis, dim: usize) -> Result<(), AnalysisError> {
    if b.rank == 0 {
        return Err(AnalysisError::Empty { what });
    }
    if b.basis.len() != dim * b.rank {
        return Err(AnalysisError::LengthMismatch {
            what,
            expected: dim * b.rank,
            got: b.basis.len(),
        });
    }
    if let Some(j) = b
        .basis
        .chunks_exact(dim)
        .position(|c| !c.iter().all(|v| v.is_finite()))
    {
        return Err(AnalysisError::NonFinite { what, row: j });
    }
    Ok(())
}

/// SciPy's `orth`: an orthonormal basis (column-major, `dim × q`) of the span of `basis`'s
/// `rank` columns, dropping directions whose singular value is below `σ_max · ε · max(dim,
/// rank)`.
fn orth(basis: &[f64], dim: usize, rank: usize) -> Result<(Vec<f64>, usize), AnalysisError> {
    let mut cols = basis.to_vec();
    let s = jacobi_orthogonalize(&mut cols, dim, rank)?;
    let mut order: Vec<usize> = (0..rank).collect();
    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    let top = order.first().map_or(0.0, |&i| s[i]);
    let tol = top * f64::EPSILON * dim.max(rank) as f64;
    let mut q = Vec::with_capacity(basis.len());
    let mut kept = 0;
    for &i in &order {
        if s[i] > tol {
            q.extend(cols[i * dim..(i + 1) * dim].iter().map(|v| v / s[i]));
            kept += 1;
        }
    }
    Ok((q, kept))
}

/// Principal angles (radians, decreasing, `min` of the two ranks of them) between the spans
/// of two bases of `dim`-dimensional vectors: `scipy.linalg.subspace_angles(A, B)` with `A`,
/// `B` the `dim × rank` matrices. The bases need not be orthonormal.
pub fn principal_angles(
    a: &ClassBasis,
    b: &ClassBasis,
    dim: usize,
) -> Result<Vec<f64>, AnalysisError> {
    if dim == 0 {
        return Err(AnalysisError::ZeroDim {
            what: "principal angles",
        });
    }
    check_basis("basis a", a, dim)?;
    check_basis("basis b", b, dim)?;
    let (qa, p) = orth(&a.basis, dim, a.rank)?;
    let (qb, q) = orth(&b.basis, dim, b.rank)?;
    angles_orthonormal(&qa, p, &qb, q, dim)
}

/// Steps 2–4 of the module docs for orthonormal `qa` (`dim × p`) and `qb` (`dim × q`),
/// column-major.
fn angles_orthonormal(
    qa: &[f64],
    p: usize,
    qb: &[f64],
    q: usize,
    dim: usize,
) -> Result<Vec<f64>, AnalysisError> {
    let m = p.min(q);
    if m == 0 {
        return Ok(vec![]);
    }
    // Column-major dim × p is row-major p × dim, so QAᵀ QB is a row-major "a · bᵀ".
    let mut cross = vec![0.0f64; p * q]; // p × q row-major
    matmul_nt_f64(qa, qb, dim, &mut cross);
    // The cosines, from whichever orientation has fewer columns.
    let cosines = if q <= p {
        // Columns of QAᵀQB (length p) are its rows transposed.
        let mut cols = vec![0.0f64; p * q];
        for i in 0..p {
            for j in 0..q {
                cols[j * p + i] = cross[i * q + j];
            }
        }
        singular_values(cols, p, q)?
    } else {
        // Columns of (QAᵀQB)ᵀ are the rows of QAᵀQB.
        singular_values(cross.clone(), q, p)?
    };
    let mask: Vec<bool> = cosines.iter().map(|s| s * s >= 0.5).collect();
    // The sines are needed only where the arcsin branch is taken (SciPy skips them too).
    let sines = if mask.iter().any(|&b| b) {
        residual_singular_values(qa, p, qb, q, &cross, dim)?
    } else {
        vec![0.0; m]
    };
    Ok((0..m)
        .map(|i| {
            if mask[i] {
                sines[i].clamp(-1.0, 1.0).asin()
            } else {
                cosines[m - 1 - i].clamp(-1.0, 1.0).acos()
            }
        })
        .collect())
}

/// Singular values (decreasing) of `B = QB − QA (QAᵀQB)` when `p ≥ q`, else of
/// `QA − QB (QAᵀQB)ᵀ`: the sines of the principal angles. `cross` is `QAᵀQB`, `p × q`
/// row-major.
fn residual_singular_values(
    qa: &[f64],
    p: usize,
    qb: &[f64],
    q: usize,
    cross: &[f64],
    dim: usize,
) -> Result<Vec<f64>, AnalysisError> {
    let m = p.min(q);
    let mut residual = Vec::with_capacity(dim * m);
    if p >= q {
        for j in 0..q {
            let mut col = qb[j * dim..(j + 1) * dim].to_vec();
            for i in 0..p {
                let c = cross[i * q + j];
                col.iter_mut()
                    .zip(&qa[i * dim..(i + 1) * dim])
                    .for_each(|(v, a)| *v -= a * c);
            }
            residual.extend(col);
        }
    } else {
        for i in 0..p {
            let mut col = qa[i * dim..(i + 1) * dim].to_vec();
            for j in 0..q {
                let c = cross[i * q + j];
                col.iter_mut()
                    .zip(&qb[j * dim..(j + 1) * dim])
                    .for_each(|(v, b)| *v -= b * c);
            }
            residual.extend(col);
        }
    }
    // B = Q R leaves the singular values in the small m × m factor R: the Jacobi sweeps then
    // run on m-vectors instead of dim-vectors, with the same O(ε‖B‖) accuracy.
    let r = householder_r(&mut residual, dim, m);
    singular_values(r, m, m)
}

/// The `c × c` upper-triangular factor `R` (column-major) of a Householder QR of the `m × c`
/// column-major matrix `a` (`m ≥ c`), which is overwritten.
fn householder_r(a: &mut [f64], m: usize, c: usize) -> Vec<f64> {
    for j in 0..c {
        let (done, rest) = a.split_at_mut((j + 1) * m);
        let x = &mut done[j * m + j..];
        let norm = dot(x, x).sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        // v = x − α e₁ (no cancellation: α has the opposite sign of x₀); H = I − 2vvᵀ/vᵀv.
        x[0] -= alpha;
        let vtv = dot(x, x);
        for col in rest.chunks_exact_mut(m) {
            let y = &mut col[j..];
            let s = 2.0 * dot(x, y) / vtv;
            y.iter_mut().zip(x.iter()).for_each(|(w, v)| *w -= s * v);
        }
        x[0] = alpha;
        x[1..].iter_mut().for_each(|v| *v = 0.0);
    }
    let mut r = vec![0.0f64; c * c];
    for j in 0..c {
        r[j * c..j * c + j + 1].copy_from_slice(&a[j * m..j * m + j + 1]);
    }
    r
}

/// Principal angles between every pair of class subspaces.
#[derive(Debug, Clone, PartialEq)]
pub struct SubspaceAngles {
    /// The class labels, increasing; index `i` below is `classes[i]`.
    pub classes: Vec<usize>,
    /// Rank of each class's basis (see [`ClassBasis::rank`]).
    pub ranks: Vec<usize>,
    /// Angles in radians, decreasing, for each pair `(i, j)` with `i < j`, in row-major order
    /// of the upper triangle: (0,1), (0,2), …, (0,C−1), (1,2), …; pair `(i, j)` is at
    /// `i·C − i(i+1)/2 + (j − i − 1)`.
    pub angles: Vec<Vec<f64>>,
    /// Mean principal angle in degrees, `C × C` row-major, symmetric, diagonal 0.
    pub mean_degrees: Vec<f64>,
    /// Smallest principal angle in degrees, `C × C` row-major, symmetric, diagonal 0.
    pub min_degrees: Vec<f64>,
    /// Some pair of ranks adds up to more than `dim`: those subspaces intersect, and their
    /// minimum angle is 0 whatever the data.
    pub trivially_zero: bool,
}

impl SubspaceAngles {
    /// The angles of the pair of class indices `(i, j)`, in either order; `None` when
    /// `i == j` or either is out of range.
    pub fn pair(&self, i: usize, j: usize) -> Option<&[f64]> {
        let (i, j) = if i < j { (i, j) } else { (j, i) };
        let c = self.classes.len();
        if i == j || j >= c {
            return None;
        }
        self.angles
            .get(i * c - i * (i + 1) / 2 + (j - i - 1))
            .map(Vec::as_slice)
    }
}

/// Class bases of rank up to `r` ([`class_bases`]) and the principal angles between every
/// pair of them ([`principal_angles`]). Every class needs at least two distinct rows.
pub fn subspace_angles(
    x: Embeddings<'_>,
    labels: &[usize],
    r: usize,
) -> Result<SubspaceAngles, AnalysisError> {
    let bases = class_bases(x, labels, r)?;
    let dim = x.dim();
    let orthonormal = bases
        .iter()
        .map(|b| orth(&b.basis, dim, b.rank))
        .collect::<Result<Vec<_>, _>>()?;
    let c = bases.len();
    let pairs: Vec<(usize, usize)> = (0..c)
        .flat_map(|i| ((i + 1)..c).map(move |j| (i, j)))
        .collect();
    let angles = pairs
        .par_iter()
        .map(|&(i, j)| {
            let (qa, p) = &orthonormal[i];
            let (qb, q) = &orthonormal[j];
            angles_orthonormal(qa, *p, qb, *q, dim)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut mean_degrees = vec![0.0f64; c * c];
    let mut min_degrees = vec![0.0f64; c * c];
    for (&(i, j), a) in pairs.iter().zip(&angles) {
        // Non-empty: every basis has rank ≥ 1 and orthonormal columns that `orth` keeps.
        let mean = a.iter().sum::<f64>() / a.len().max(1) as f64;
        let min = a.iter().copied().fold(f64::INFINITY, f64::min);
        for (s, v) in [(&mut mean_degrees, mean), (&mut min_degrees, min)] {
            s[i * c + j] = v.to_degrees();
            s[j * c + i] = v.to_degrees();
        }
    }
    let ranks: Vec<usize> = bases.iter().map(|b| b.rank).collect();
    let trivially_zero = pairs.iter().any(|&(i, j)| ranks[i] + ranks[j] > dim);
    Ok(SubspaceAngles {
        classes: bases.iter().map(|b| b.class).collect(),
        ranks,
        angles,
        mean_degrees,
        min_degrees,
        trivially_zero,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basis(cols: &[&[f64]]) -> ClassBasis {
        ClassBasis {
            class: 0,
            rank: cols.len(),
            basis: cols.iter().flat_map(|c| c.iter().copied()).collect(),
        }
    }

    #[test]
    fn angles_of_known_planes() {
        let t = 0.3f64;
        let a = basis(&[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]]);
        let b = basis(&[&[1.0, 0.0, 0.0], &[0.0, t.cos(), t.sin()]]);
        let got = principal_angles(&a, &b, 3).unwrap();
        assert!(
            (got[0] - t).abs() < 1e-15 && got[1].abs() < 1e-15,
            "{got:?}"
        );
        let c = basis(&[&[0.0, 0.0, 2.0]]);
        let got = principal_angles(&a, &c, 3).unwrap();
        assert_eq!(got.len(), 1);
        assert!((got[0] - std::f64::consts::FRAC_PI_2).abs() < 1e-15);
    }

    #[test]
    fn input_errors() {
        let a = basis(&[&[1.0, 0.0]]);
        assert!(principal_angles(&a, &a, 3).is_err());
        assert!(principal_angles(&a, &basis(&[]), 2).is_err());
        let x = [0.0f32, 1.0, 1.0, 0.0, 2.0, 2.0];
        let e = Embeddings::new(&x, 2).unwrap();
        assert!(class_bases(e, &[0, 0], 1).is_err());
        assert!(class_bases(e, &[0, 0, 0], 0).is_err());
        // class 1 has a single sample
        assert!(matches!(
            class_bases(e, &[0, 0, 1], 1),
            Err(AnalysisError::Undefined(_))
        ));
        let dup = [1.0f32, 1.0, 1.0, 1.0];
        assert!(class_bases(Embeddings::new(&dup, 2).unwrap(), &[3, 3], 1).is_err());
    }

    #[test]
    fn independent_of_the_thread_count() {
        let mut rng = super::super::rng::Rng::new(11, 0);
        let (n, dim) = (700, 12);
        let x: Vec<f32> = (0..n * dim).map(|_| rng.uniform() as f32).collect();
        // Classes on both sides of `dim` rows (Gram and scatter routes).
        let labels: Vec<usize> = (0..n)
            .map(|i| if i < 600 { i % 3 } else { 3 + i % 10 })
            .collect();
        let e = Embeddings::new(&x, dim).unwrap();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| subspace_angles(e, &labels, 4).unwrap())
        };
        let one = run(1);
        assert_eq!(one.ranks, vec![4; 13]);
        assert_eq!(one, run(3));
    }

    #[test]
    fn summary_layout() {
        // Three classes in 3-D, each varying along one axis.
        let mut x = vec![];
        let mut labels = vec![];
        for (class, axis) in [(5usize, 0usize), (7, 1), (9, 2)] {
            for t in [-1.0f32, 0.5, 2.0] {
                let mut v = [0.1f32 * class as f32; 3];
                v[axis] += t;
                x.extend_from_slice(&v);
                labels.push(class);
            }
        }
        let s = subspace_angles(Embeddings::new(&x, 3).unwrap(), &labels, 2).unwrap();
        assert_eq!(s.classes, vec![5, 7, 9]);
        assert_eq!(s.ranks, vec![1, 1, 1]);
        assert_eq!(s.angles.len(), 3);
        assert!(!s.trivially_zero);
        assert!(s.pair(1, 1).is_none() && s.pair(0, 3).is_none());
        for i in 0..3 {
            assert_eq!(s.mean_degrees[i * 3 + i], 0.0);
            for j in 0..3 {
                if i != j {
                    assert!((s.pair(i, j).unwrap()[0] - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
                    assert!((s.min_degrees[i * 3 + j] - 90.0).abs() < 1e-9);
                }
            }
        }
    }
}
