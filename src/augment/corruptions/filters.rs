//! The image operations the corruptions are built from, each with the border rule and the
//! arithmetic of the library the reference calls (SciPy's `ndimage`, scikit-image's
//! `gaussian`, OpenCV's `filter2D`), since at 224 px a blur radius of 24 reaches far into the
//! border and the rule decides what the edge pixels become.

/// How a filter reads beyond the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// `a a a | a b c d | d d d` (SciPy `nearest`, OpenCV `BORDER_REPLICATE`; scikit-image's
    /// `gaussian` default).
    Nearest,
    /// `d c b a | a b c d | d c b a` (SciPy `reflect`, OpenCV `BORDER_REFLECT`).
    Reflect,
    /// `d c b | a b c d | c b a` (SciPy `mirror`, OpenCV's default `BORDER_REFLECT_101`).
    Reflect101,
}

/// The in-image index that `i` reads under `border`, for a line of `n` pixels.
pub fn border_index(i: isize, n: usize, border: Border) -> usize {
    let n_i = n as isize;
    if (0..n_i).contains(&i) {
        return i as usize;
    }
    match border {
        Border::Nearest => i.clamp(0, n_i - 1) as usize,
        Border::Reflect => {
            let m = i.rem_euclid(2 * n_i);
            (if m < n_i { m } else { 2 * n_i - 1 - m }) as usize
        }
        Border::Reflect101 => {
            if n == 1 {
                return 0;
            }
            let period = 2 * (n_i - 1);
            let m = i.rem_euclid(period);
            (if m < n_i { m } else { period - m }) as usize
        }
    }
}

/// SciPy's `gaussian_filter1d` weights: radius `int(truncate·σ + 0.5)`, `exp(-x²/2σ²)`
/// normalised to sum 1.
pub fn gaussian_weights(sigma: f64, truncate: f64) -> Vec<f64> {
    let radius = (truncate * sigma + 0.5) as isize;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|v| v / total).collect()
}

/// Correlates every row (`along_x`) or every column with the centred odd-length `weights`.
pub fn correlate1d(
    plane: &[f64],
    w: usize,
    h: usize,
    weights: &[f64],
    along_x: bool,
    border: Border,
) -> Vec<f64> {
    let r = (weights.len() / 2) as isize;
    let mut out = vec![0.0; plane.len()];
    if along_x {
        let idx: Vec<Vec<usize>> = (0..w as isize)
            .map(|x| (-r..=r).map(|k| border_index(x + k, w, border)).collect())
            .collect();
        for y in 0..h {
            let row = &plane[y * w..(y + 1) * w];
            for x in 0..w {
                out[y * w + x] = idx[x].iter().zip(weights).map(|(&i, &k)| k * row[i]).sum();
            }
        }
    } else {
        for y in 0..h as isize {
            let rows: Vec<usize> = (-r..=r).map(|k| border_index(y + k, h, border)).collect();
            let o = &mut out[y as usize * w..(y as usize + 1) * w];
            for (&ry, &k) in rows.iter().zip(weights) {
                let src = &plane[ry * w..(ry + 1) * w];
                for (a, &s) in o.iter_mut().zip(src) {
                    *a += k * s;
                }
            }
        }
    }
    out
}

/// SciPy's `gaussian_filter` on one plane: axis 0 (rows of the image, σ_y) first, then axis 1.
pub fn gaussian(
    plane: &[f64],
    w: usize,
    h: usize,
    sigma_y: f64,
    sigma_x: f64,
    truncate: f64,
    border: Border,
) -> Vec<f64> {
    let mut out = plane.to_vec();
    if sigma_y > 1e-15 {
        out = correlate1d(
            &out,
            w,
            h,
            &gaussian_weights(sigma_y, truncate),
            false,
            border,
        );
    }
    if sigma_x > 1e-15 {
        out = correlate1d(
            &out,
            w,
            h,
            &gaussian_weights(sigma_x, truncate),
            true,
            border,
        );
    }
    out
}

/// scikit-image's `gaussian(image, sigma)` on one plane: SciPy's filter, `nearest` border,
/// truncated at 4σ.
pub fn skimage_gaussian(plane: &[f64], w: usize, h: usize, sigma: f64) -> Vec<f64> {
    gaussian(plane, w, h, sigma, sigma, 4.0, Border::Nearest)
}

/// 2-D correlation with a square `k×k` kernel (row-major), OpenCV `filter2D` style.
pub fn correlate2d(
    plane: &[f64],
    w: usize,
    h: usize,
    kernel: &[f64],
    k: usize,
    border: Border,
) -> Vec<f64> {
    let r = (k / 2) as isize;
    let cols: Vec<Vec<usize>> = (0..w as isize)
        .map(|x| (-r..=r).map(|d| border_index(x + d, w, border)).collect())
        .collect();
    let mut out = vec![0.0; plane.len()];
    for y in 0..h as isize {
        for (ky, dy) in (-r..=r).enumerate() {
            let sy = border_index(y + dy, h, border);
            let src = &plane[sy * w..(sy + 1) * w];
            let krow = &kernel[ky * k..(ky + 1) * k];
            let o = &mut out[y as usize * w..(y as usize + 1) * w];
            for (x, acc) in o.iter_mut().enumerate() {
                let mut s = 0.0;
                for (&sx, &kv) in cols[x].iter().zip(krow) {
                    s += kv * src[sx];
                }
                *acc += s;
            }
        }
    }
    out
}

/// OpenCV's `blur(src, (3, 3))`: the 3×3 mean, `BORDER_REFLECT_101`.
pub fn box3(plane: &[f64], w: usize, h: usize) -> Vec<f64> {
    correlate2d(plane, w, h, &[1.0 / 9.0; 9], 3, Border::Reflect101)
}

/// Linear interpolation of a line at `c`, reading beyond the ends as the end values.
#[inline]
fn lerp_at(line: impl Fn(usize) -> f64, n: usize, c: f64) -> f64 {
    let i0 = c.floor();
    let t = c - i0;
    let i0 = i0 as isize;
    let a = line(i0.clamp(0, n as isize - 1) as usize);
    let b = line((i0 + 1).clamp(0, n as isize - 1) as usize);
    (1.0 - t) * a + t * b
}

/// SciPy's `zoom(plane, order=1)` to `ow×oh`: corner-aligned (`grid_mode=False`), input
/// coordinate `o·(n−1)/(m−1)`, linear in each axis.
pub fn zoom_linear(plane: &[f64], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f64> {
    let ratio = |n: usize, m: usize| {
        if m > 1 {
            (n as f64 - 1.0) / (m as f64 - 1.0)
        } else {
            0.0
        }
    };
    let (rx, ry) = (ratio(w, ow), ratio(h, oh));
    // Along x into a h×ow buffer, then along y.
    let mut mid = vec![0.0; h * ow];
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        for x in 0..ow {
            mid[y * ow + x] = lerp_at(|i| row[i], w, x as f64 * rx);
        }
    }
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        let c = y as f64 * ry;
        let i0 = c.floor();
        let t = c - i0;
        let a = (i0 as usize).min(h - 1);
        let b = (a + 1).min(h - 1);
        for x in 0..ow {
            out[y * ow + x] = (1.0 - t) * mid[a * ow + x] + t * mid[b * ow + x];
        }
    }
    out
}

/// The reference's `clipped_zoom`: the central `⌈n/z⌉` pixels of each axis, zoomed by `z`
/// (output side `round(⌈n/z⌉·z)`, at least `n`). Returns the plane and its (width, height);
/// callers crop the top-left `w×h`.
pub fn clipped_zoom(plane: &[f64], w: usize, h: usize, z: f64) -> (Vec<f64>, usize, usize) {
    let ch = (h as f64 / z).ceil() as usize;
    let cw = (w as f64 / z).ceil() as usize;
    let top = (h - ch) / 2;
    let left = (w - cw) / 2;
    let mut crop = Vec::with_capacity(ch * cw);
    for y in top..top + ch {
        crop.extend_from_slice(&plane[y * w + left..y * w + left + cw]);
    }
    // SciPy: int(round(n · z)), Python's round-half-even.
    let oh = round_half_even(ch as f64 * z) as usize;
    let ow = round_half_even(cw as f64 * z) as usize;
    (zoom_linear(&crop, cw, ch, ow, oh), ow, oh)
}

/// Python's `round` (and numpy's `np.round`): ties to even.
pub fn round_half_even(v: f64) -> f64 {
    v.round_ties_even()
}

/// The reference's motion blur of equal-sized planes: a one-sided Gaussian kernel of width
/// `2·radius + 1` laid along `angle` degrees, each tap a copy of the image shifted by the
/// rounded offset with the edge repeated; taps stop where the shift reaches past the image
/// (then the weights no longer sum to one, as in the reference).
pub fn motion_blur(
    planes: &mut [Vec<f64>],
    w: usize,
    h: usize,
    radius: usize,
    sigma: f64,
    angle: f64,
) {
    let width = 2 * radius + 1;
    let k: Vec<f64> = (0..width)
        .map(|x| {
            (-((x * x) as f64) / (2.0 * sigma * sigma)).exp()
                / ((2.0 * std::f64::consts::PI).sqrt() * sigma)
        })
        .collect();
    let total: f64 = k.iter().sum();
    let rad = angle * (std::f64::consts::PI / 180.0);
    let point = (width as f64 * rad.sin(), width as f64 * rad.cos());
    let hypot = point.0.hypot(point.1);
    let mut taps = Vec::new();
    for (i, kv) in k.iter().enumerate() {
        let dy = -((i as f64 * point.0) / hypot - 0.5).ceil() as isize;
        let dx = -((i as f64 * point.1) / hypot - 0.5).ceil() as isize;
        if dy.unsigned_abs() >= h || dx.unsigned_abs() >= w {
            break;
        }
        taps.push((kv / total, dx, dy));
    }
    for plane in planes.iter_mut() {
        let mut out = vec![0.0; w * h];
        for &(kv, dx, dy) in &taps {
            for y in 0..h {
                let sy = (y as isize - dy).clamp(0, h as isize - 1) as usize;
                let src = &plane[sy * w..(sy + 1) * w];
                let o = &mut out[y * w..(y + 1) * w];
                for (x, acc) in o.iter_mut().enumerate() {
                    let sx = (x as isize - dx).clamp(0, w as isize - 1) as usize;
                    *acc += kv * src[sx];
                }
            }
        }
        *plane = out;
    }
}

/// SciPy's coordinate rule for `mode='reflect'` in `map_coordinates`, for a line of `n`.
fn reflect_coordinate(mut c: f64, n: usize) -> f64 {
    let len = n as f64;
    let sz2 = 2.0 * len;
    if c < 0.0 {
        if c < -sz2 {
            c += sz2 * (-c / sz2).trunc();
        }
        c = if c < -len { c + sz2 } else { -c - 1.0 };
    }
    if c > len - 1.0 {
        c -= sz2 * (c / sz2).trunc();
        if c >= len {
            c = sz2 - c - 1.0;
        }
    }
    c
}

/// SciPy's `map_coordinates(plane, [ys, xs], order=1, mode='reflect')`: bilinear sampling at
/// (y, x) per output pixel.
pub fn sample_linear_reflect(plane: &[f64], w: usize, h: usize, y: f64, x: f64) -> f64 {
    let y = reflect_coordinate(y, h);
    let x = reflect_coordinate(x, w);
    let (y0, x0) = (y.floor(), x.floor());
    let (ty, tx) = (y - y0, x - x0);
    let iy = |i: f64| (i as isize).clamp(0, h as isize - 1) as usize;
    let ix = |i: f64| (i as isize).clamp(0, w as isize - 1) as usize;
    let (ya, yb, xa, xb) = (iy(y0), iy(y0 + 1.0), ix(x0), ix(x0 + 1.0));
    let at = |r: usize, c: usize| plane[r * w + c];
    (1.0 - ty) * ((1.0 - tx) * at(ya, xa) + tx * at(ya, xb))
        + ty * ((1.0 - tx) * at(yb, xa) + tx * at(yb, xb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_follow_their_libraries() {
        let idx = |b| -> Vec<usize> { (-3..7).map(|i| border_index(i, 4, b)).collect() };
        assert_eq!(idx(Border::Nearest), [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]);
        assert_eq!(idx(Border::Reflect), [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(idx(Border::Reflect101), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn scipy_values() {
        // scipy.ndimage.gaussian_filter([0,0,0,1,0,0], 1.0, mode='reflect', truncate=3)
        let out = gaussian(
            &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            6,
            1,
            0.0,
            1.0,
            3.0,
            Border::Reflect,
        );
        let want = [
            0.00443305, 0.05400558, 0.24203623, 0.39905028, 0.24203623, 0.05843863,
        ];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-8, "{out:?}");
        }
        // scipy.ndimage.zoom(np.arange(4.), 1.5, order=1)
        let z = zoom_linear(&[0.0, 1.0, 2.0, 3.0], 4, 1, 6, 1);
        for (a, b) in z.iter().zip([0.0, 0.6, 1.2, 1.8, 2.4, 3.0]) {
            assert!((a - b).abs() < 1e-12, "{z:?}");
        }
        // map_coordinates(np.arange(5.)*10, [[-0.3,-0.7,-1.2,-2.5,3.7,4.3,4.8,5.6]],
        //                 order=1, mode='reflect')
        let line: Vec<f64> = (0..5).map(|i| i as f64 * 10.0).collect();
        let got: Vec<f64> = [-0.3, -0.7, -1.2, -2.5, 3.7, 4.3, 4.8, 5.6]
            .iter()
            .map(|&c| sample_linear_reflect(&line, 5, 1, 0.0, c))
            .collect();
        for (a, b) in got
            .iter()
            .zip([0.0, 0.0, 2.0, 15.0, 37.0, 40.0, 40.0, 34.0])
        {
            assert!((a - b).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn half_even_rounding() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(224.22), 224.0);
        assert_eq!(round_half_even(-0.5), 0.0);
    }

    /// `imagecorruptions`' `_motion_blur` at fixed angles on a crop of the golden input
    /// (scripts/gen_corruption_golden.py): the kernel, the rounded shifts, the repeated edge and
    /// the stop at the border, value for value.
    #[test]
    fn motion_blur_equals_the_reference_core() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/golden/corruptions");
        let golden: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("corruptions.json")).unwrap())
                .unwrap();
        let img = image::open(dir.join("input.png")).unwrap().to_rgb8();
        for case in golden["motion_blur_core"].as_array().unwrap() {
            let crop: Vec<usize> = case["crop"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let (top, left, w, h) = (crop[0], crop[1], crop[2], crop[3]);
            let mut planes: Vec<Vec<f64>> = (0..3)
                .map(|c| {
                    (0..h * w)
                        .map(|i| {
                            img.get_pixel((left + i % w) as u32, (top + i / w) as u32)[c] as f64
                        })
                        .collect()
                })
                .collect();
            motion_blur(
                &mut planes,
                w,
                h,
                case["radius"].as_u64().unwrap() as usize,
                case["sigma"].as_f64().unwrap(),
                case["angle"].as_f64().unwrap(),
            );
            let want = case["values"].as_array().unwrap();
            assert_eq!(want.len(), w * h * 3);
            for (i, v) in want.iter().enumerate() {
                let got = planes[i % 3][i / 3];
                assert!(
                    (got - v.as_f64().unwrap()).abs() < 1e-6,
                    "angle {}: value {i}: {got} vs {v}",
                    case["angle"]
                );
            }
        }
    }
}
