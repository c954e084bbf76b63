//! The OpenCV operations spatter's water drops are drawn with: Canny edges, a chamfer distance
//! transform, histogram equalisation and 8-bit filtering, with OpenCV's definitions (Sobel
//! 3×3 on a replicated border and the L1 gradient norm for Canny; the 5×5 chamfer mask
//! 1 / 1.4 / 2.1969 for `DIST_L2`; rounding and saturation for 8-bit outputs).

use std::collections::VecDeque;

use super::filters::{border_index, correlate2d, Border};

/// `cv2.Canny(img, low, high)` (aperture 3, L1 gradient): 255 on edges, 0 elsewhere.
pub fn canny(img: &[u8], w: usize, h: usize, low: i32, high: i32) -> Vec<u8> {
    let at = |y: isize, x: isize| -> i32 {
        let yy = border_index(y, h, Border::Nearest);
        let xx = border_index(x, w, Border::Nearest);
        img[yy * w + xx] as i32
    };
    let mut dx = vec![0i32; w * h];
    let mut dy = vec![0i32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            dx[i] = (at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1))
                - (at(y - 1, x - 1) + 2 * at(y, x - 1) + at(y + 1, x - 1));
            dy[i] = (at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1))
                - (at(y - 1, x - 1) + 2 * at(y - 1, x) + at(y - 1, x + 1));
        }
    }
    let mag: Vec<i32> = dx.iter().zip(&dy).map(|(a, b)| a.abs() + b.abs()).collect();
    // Magnitude outside the image is 0, as in OpenCV's padded buffer.
    let m = |y: isize, x: isize| -> i32 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0
        } else {
            mag[y as usize * w + x as usize]
        }
    };
    const SHIFT: i64 = 15;
    let tg22 = (0.414_213_562_373_095_1 * (1i64 << SHIFT) as f64 + 0.5) as i64;
    // 0: not an edge, 1: weak candidate, 2: edge.
    let mut state = vec![0u8; w * h];
    let mut queue = VecDeque::new();
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            let v = mag[i];
            if v <= low {
                continue;
            }
            let (xs, ys) = (dx[i] as i64, dy[i] as i64);
            let ax = xs.abs();
            let ay = ys.abs() << SHIFT;
            let tg22x = ax * tg22;
            let keep = if ay < tg22x {
                v > m(y, x - 1) && v >= m(y, x + 1)
            } else {
                let tg67x = tg22x + (ax << (SHIFT + 1));
                if ay > tg67x {
                    v > m(y - 1, x) && v >= m(y + 1, x)
                } else {
                    let s = if (xs ^ ys) < 0 { -1 } else { 1 };
                    v > m(y - 1, x - s) && v > m(y + 1, x + s)
                }
            };
            if keep {
                if v > high {
                    state[i] = 2;
                    queue.push_back(i);
                } else {
                    state[i] = 1;
                }
            }
        }
    }
    while let Some(i) = queue.pop_front() {
        let (y, x) = ((i / w) as isize, (i % w) as isize);
        for ny in y - 1..=y + 1 {
            for nx in x - 1..=x + 1 {
                if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if state[j] == 1 {
                    state[j] = 2;
                    queue.push_back(j);
                }
            }
        }
    }
    state
        .iter()
        .map(|&s| if s == 2 { 255 } else { 0 })
        .collect()
}

/// `cv2.distanceTransform(img, DIST_L2, 5)`: for every non-zero pixel, the chamfer distance
/// (steps 1, 1.4 diagonal, 2.1969 knight) to the nearest zero pixel; infinite when there is
/// none.
pub fn distance_transform(img: &[u8], w: usize, h: usize) -> Vec<f64> {
    const A: f64 = 1.0;
    const B: f64 = 1.4;
    const C: f64 = 2.1969;
    let mut d: Vec<f64> = img
        .iter()
        .map(|&v| if v == 0 { 0.0 } else { f64::INFINITY })
        .collect();
    let forward: [(isize, isize, f64); 8] = [
        (-2, -1, C),
        (-2, 1, C),
        (-1, -2, C),
        (-1, -1, B),
        (-1, 0, A),
        (-1, 1, B),
        (-1, 2, C),
        (0, -1, A),
    ];
    let mut pass = |ys: Vec<isize>, xs: Vec<isize>, sign: isize| {
        for &y in &ys {
            for &x in &xs {
                let i = y as usize * w + x as usize;
                let mut best = d[i];
                if best == 0.0 {
                    continue;
                }
                for &(oy, ox, cost) in &forward {
                    let (ny, nx) = (y + sign * oy, x + sign * ox);
                    if ny >= 0 && nx >= 0 && ny < h as isize && nx < w as isize {
                        best = best.min(d[ny as usize * w + nx as usize] + cost);
                    }
                }
                d[i] = best;
            }
        }
    };
    pass((0..h as isize).collect(), (0..w as isize).collect(), 1);
    pass(
        (0..h as isize).rev().collect(),
        (0..w as isize).rev().collect(),
        -1,
    );
    d
}

/// `cv2.equalizeHist`: the cumulative histogram from the first occupied level, scaled to 255.
pub fn equalize_hist(img: &[u8]) -> Vec<u8> {
    let mut hist = [0usize; 256];
    for &v in img {
        hist[v as usize] += 1;
    }
    let total = img.len();
    let Some(first) = hist.iter().position(|&c| c > 0) else {
        return img.to_vec();
    };
    if hist[first] == total {
        return vec![first as u8; total];
    }
    let scale = 255.0 / (total - hist[first]) as f64;
    let mut lut = [0u8; 256];
    let mut sum = 0usize;
    for (level, &count) in hist.iter().enumerate().skip(first + 1) {
        sum += count;
        lut[level] = (sum as f64 * scale).round_ties_even().clamp(0.0, 255.0) as u8;
    }
    img.iter().map(|&v| lut[v as usize]).collect()
}

/// An 8-bit filter2D / blur: the float result rounded and saturated to 0..=255.
pub fn filter_u8(img: &[u8], w: usize, h: usize, kernel: &[f64], k: usize) -> Vec<u8> {
    let plane: Vec<f64> = img.iter().map(|&v| v as f64).collect();
    correlate2d(&plane, w, h, kernel, k, Border::Reflect101)
        .into_iter()
        .map(|v| v.round_ties_even().clamp(0.0, 255.0) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canny_finds_a_square_outline_only() {
        let (w, h) = (20, 20);
        let img: Vec<u8> = (0..w * h)
            .map(|i| {
                let (y, x) = (i / w, i % w);
                if (6..14).contains(&y) && (6..14).contains(&x) {
                    200
                } else {
                    10
                }
            })
            .collect();
        let e = canny(&img, w, h, 50, 150);
        assert!(e.contains(&255));
        assert_eq!(e[10 * w + 10], 0); // inside
        assert_eq!(e[2 * w + 2], 0); // outside
        assert!(canny(&[90u8; 100], 10, 10, 50, 150).iter().all(|&v| v == 0));
    }

    #[test]
    fn chamfer_distances() {
        let mut img = vec![255u8; 7 * 7];
        img[3 * 7 + 3] = 0;
        let d = distance_transform(&img, 7, 7);
        assert_eq!(d[3 * 7 + 4], 1.0);
        assert_eq!(d[4 * 7 + 4], 1.4);
        assert_eq!(d[5 * 7 + 4], 2.1969);
        assert_eq!(d[3 * 7 + 6], 3.0);
        assert!(distance_transform(&[1, 2, 3], 3, 1)
            .iter()
            .all(|v| v.is_infinite()));
    }

    #[test]
    fn equalisation_spreads_levels() {
        let out = equalize_hist(&[10, 10, 20, 30]);
        assert_eq!(out, [0, 0, 128, 255]);
        assert_eq!(equalize_hist(&[7, 7]), [7, 7]);
    }
}
