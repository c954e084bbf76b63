//! Pillow's resampling (`Image.resize` with NEAREST, BOX, BILINEAR, HAMMING, BICUBIC or LANCZOS),
//! bit for bit, and vectorised.
//!
//! What "bit for bit" takes, each point checked against Pillow 13 by
//! `scripts/gen_preprocess_golden.py`:
//! - the same kernel windows and the same 22-bit fixed-point coefficients and rounding
//!   (Resample.c's `precompute_coeffs` and `normalize_coeffs_8bpc`);
//! - the same *pass order*. Each pass rounds to 8 bits, so the order changes the result (up to
//!   16 levels on fine checkerboards). Pillow 13 runs the vertical pass first when the height
//!   shrinks and `h − th > 2·(w − tw)`, else the horizontal one. The rule was fitted on 600
//!   random size pairs and 180 pairs on either side of the boundary, with no exception
//!   ([`vertical_first`]);
//! - NEAREST goes through Pillow's affine scaler, whose source coordinates are accumulated by
//!   repeated addition, not multiplied ([`nearest_index`]).
//!
//! Speed without changing a bit. The sums are Pillow's integer sums, exactly: a coefficient
//! `k` (≤ 2²² in magnitude) is split as `(k >> 11)·2¹¹ + (k & 2047)`, both halves fit in 16 bits,
//! so `madd_epi16` (16 products per AVX2 instruction) computes the two partial sums and
//! `(hi << 11) + lo` rebuilds Pillow's 32-bit sum. Integer addition is exact modulo 2³², and the
//! true sum fits in 32 bits (Pillow's own accumulator), so no step rounds. AVX2 is used when
//! the CPU has it, AVX-512BW for the vertical pass and AVX-512 VNNI's fused multiply-add for
//! the horizontal one when it has those; tests check every path against the scalar one.
//!
//! Both passes have the same shape: one weight broadcast over a vector of pixels that all take
//! it. The vertical pass has that shape already (a weight per input row); the horizontal pass
//! gets it by transposing eight rows at a time, so that a vector holds one column of eight
//! pixels (a dot product per output pixel, with its horizontal reduction, was 1.7× slower).
//! Coefficients are computed once per (input size, output size, filter) and shared
//! ([`coefficients`]); both passes compute only the pixels the center crop keeps.
//!
//! DESIGN.md expected `fast_image_resize` to reproduce Pillow. Measured against Pillow 13, it
//! differs by one level on about a quarter of the pixels and by up to 7 levels at sharp edges
//! (16-bit coefficients), so clipflow does Pillow's arithmetic itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Pillow's fixed-point precision for 8-bit images: 32 − 8 − 2.
const PRECISION_BITS: u32 = 22;
/// Where the SIMD paths split a coefficient into two 16-bit halves.
const SPLIT_BITS: u32 = 11;
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// A resampling filter (PIL's `Resampling` members other than NEAREST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

impl Kernel {
    fn support(self) -> f64 {
        match self {
            Kernel::Box => 0.5,
            Kernel::Bilinear | Kernel::Hamming => 1.0,
            Kernel::Bicubic => 2.0,
            Kernel::Lanczos => 3.0,
        }
    }

    /// Resample.c's filter functions, including their asymmetries (BOX's half-open window,
    /// LANCZOS's `-3 <= x < 3`, HAMMING's single-precision constants).
    fn weight(self, x: f64) -> f64 {
        match self {
            Kernel::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Kernel::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Kernel::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
                }
            }
            Kernel::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Kernel::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = x * std::f64::consts::PI;
        px.sin() / px
    }
}

/// The fixed-point filter of one axis: per output pixel, the first input index, the tap count
/// and `ksize` weights.
pub struct Coefficients {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
    /// The weights in pairs split for the SIMD paths ([`split_pair`]), `ksize.div_ceil(2)`
    /// per output pixel; an odd last weight pairs with zero.
    split: Vec<(i32, i32)>,
}

impl Coefficients {
    fn taps(&self, out: usize) -> (usize, usize, &[i32]) {
        let (first, n) = self.bounds[out];
        (
            first,
            n,
            &self.weights[out * self.ksize..out * self.ksize + n],
        )
    }

    /// [`Self::taps`]' weights of output pixel `out` as [`split_pair`]s.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn split_taps(&self, out: usize) -> &[(i32, i32)] {
        let stride = self.ksize.div_ceil(2);
        let n = self.bounds[out].1;
        &self.split[out * stride..out * stride + n.div_ceil(2)]
    }
}

/// Weights `(a, b)` as the two 32-bit lanes `madd_epi16` multiplies a pair of 16-bit pixels
/// by: (high halves, low halves) of the split at [`SPLIT_BITS`] (see the module docs).
fn split_pair(a: i32, b: i32) -> (i32, i32) {
    let lo_mask = (1 << SPLIT_BITS) - 1;
    let hi = ((a >> SPLIT_BITS) as u16 as u32 | (((b >> SPLIT_BITS) as u16 as u32) << 16)) as i32;
    let lo = ((a & lo_mask) as u32 | (((b & lo_mask) as u32) << 16)) as i32;
    (hi, lo)
}

fn compute_coefficients(in_size: usize, out_size: usize, kernel: Kernel) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = kernel.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0.0f64; ksize];
    let inv = 1.0 / filterscale;
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // Pillow truncates toward zero here ((int) cast), then clamps.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
        let taps = xmax.saturating_sub(xmin).min(ksize);
        let mut total = 0.0;
        for (x, w) in k.iter_mut().enumerate().take(taps) {
            *w = kernel.weight((x as f64 + xmin as f64 - center + 0.5) * inv);
            total += *w;
        }
        for (x, w) in k.iter().enumerate().take(taps) {
            let w = if total != 0.0 { w / total } else { *w };
            let fixed = w * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if w < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin, taps));
    }
    let split = weights
        .chunks(ksize)
        .flat_map(|k| {
            k.chunks(2)
                .map(|p| split_pair(p[0], p.get(1).copied().unwrap_or(0)))
        })
        .collect();
    Coefficients {
        ksize,
        bounds,
        weights,
        split,
    }
}

type CacheKey = (usize, usize, Kernel);

/// Coefficients for one axis, computed once per (input size, output size, filter) and shared:
/// a dataset of same-sized photos computes them once. The cache is bounded (cleared when it
/// holds 512 entries), so a dataset of all-different sizes costs only the computation.
pub fn coefficients(in_size: usize, out_size: usize, kernel: Kernel) -> Arc<Coefficients> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Arc<Coefficients>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (in_size, out_size, kernel);
    if let Some(c) = cache.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return c;
    }
    let c = Arc::new(compute_coefficients(in_size, out_size, kernel));
    if let Ok(mut m) = cache.lock() {
        if m.len() >= 512 {
            m.clear();
        }
        m.insert(key, c.clone());
    }
    c
}

/// Pillow 13's pass order for a `w×h → tw×th` resize (see the module docs).
pub fn vertical_first(w: usize, h: usize, tw: usize, th: usize) -> bool {
    th < h && (h as i64 - th as i64) > 2 * (w as i64 - tw as i64)
}

/// The instruction set the passes run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
}

impl Isa {
    /// The best this CPU runs, found once. `CLIPFLOW_SIMD=scalar|avx2` caps it (for
    /// benchmarks and for checking one path against another).
    pub fn detected() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let cap = std::env::var("CLIPFLOW_SIMD").unwrap_or_default();
            let best = Isa::available().into_iter().last().unwrap_or(Isa::Scalar);
            match cap.as_str() {
                "scalar" => Isa::Scalar,
                "avx2" if best != Isa::Scalar => Isa::Avx2,
                _ => best,
            }
        })
    }

    /// Whether the CPU has AVX-512 VNNI (and VL), which the `Avx512` horizontal pass uses when
    /// it is there.
    pub fn has_vnni() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            static VNNI: OnceLock<bool> = OnceLock::new();
            *VNNI.get_or_init(|| {
                std::is_x86_feature_detected!("avx512vnni")
                    && std::is_x86_feature_detected!("avx512vl")
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Every path this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                v.push(Isa::Avx2);
                if std::is_x86_feature_detected!("avx512bw") {
                    v.push(Isa::Avx512);
                }
            }
        }
        v
    }
}

/// An 8-bit image with 4 bytes per pixel (R, G, B and one byte the passes ignore), the layout
/// Pillow itself keeps RGB images in and libjpeg-turbo can decode into directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgbx {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgbx {
    /// From packed RGB.
    pub fn from_rgb(width: usize, height: usize, rgb: &[u8]) -> Rgbx {
        let mut data = Vec::with_capacity(width * height * 4);
        for p in rgb.chunks_exact(3).take(width * height) {
            data.extend_from_slice(&[p[0], p[1], p[2], 255]);
        }
        data.resize(width * height * 4, 0);
        Rgbx {
            width,
            height,
            data,
        }
    }

    /// Packed RGB.
    pub fn to_rgb(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width * self.height * 3);
        for p in self.data.chunks_exact(4) {
            out.extend_from_slice(&p[..3]);
        }
        out
    }
}

/// A rectangle of an image: what the center crop keeps of the resized image, or what a resize
/// reads of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub left: usize,
    pub top: usize,
    pub width: usize,
    pub height: usize,
}

/// The pixels of part of an image: `image` holds the `Window` at (`left`, `top`) of a
/// `full_width × full_height` image (a JPEG decoded only where a resize reads; see
/// [`input_window`]).
#[derive(Debug, Clone, Copy)]
pub struct Placed<'a> {
    pub image: &'a Rgbx,
    pub left: usize,
    pub top: usize,
    pub full_width: usize,
    pub full_height: usize,
}

impl<'a> Placed<'a> {
    /// A whole image.
    pub fn whole(image: &'a Rgbx) -> Placed<'a> {
        Placed {
            image,
            left: 0,
            top: 0,
            full_width: image.width,
            full_height: image.height,
        }
    }

    fn covers(&self, w: Window) -> bool {
        w.left >= self.left
            && w.top >= self.top
            && w.left + w.width <= self.left + self.image.width
            && w.top + w.height <= self.top + self.image.height
    }
}

/// The input pixels that resizing a `w×h` image to `tw×th` and keeping `window` reads: the
/// kept columns' and rows' kernel windows (both pass orders read the same rectangle).
pub fn input_window(
    w: usize,
    h: usize,
    tw: usize,
    th: usize,
    window: Window,
    kernel: Kernel,
) -> Window {
    let reach = |size: usize, target: usize, start: usize, len: usize| -> (usize, usize) {
        if size == target || len == 0 {
            return (start, len);
        }
        let c = coefficients(size, target, kernel);
        let first = (start..start + len)
            .map(|x| c.bounds[x].0)
            .min()
            .unwrap_or(0);
        let last = (start..start + len)
            .map(|x| c.bounds[x].0 + c.bounds[x].1)
            .max()
            .unwrap_or(first);
        (first, last - first)
    };
    let (left, width) = reach(w, tw, window.left, window.width);
    let (top, height) = reach(h, th, window.top, window.height);
    Window {
        left,
        top,
        width,
        height,
    }
}

/// Resizes `src` to `tw×th` as Pillow's `Image.resize(..., kernel)` does, and returns only the
/// pixels inside `window` (which must lie inside `tw×th`).
pub fn resize_window(src: &Rgbx, tw: usize, th: usize, window: Window, kernel: Kernel) -> Rgbx {
    resize_placed(Placed::whole(src), tw, th, window, kernel, Isa::detected())
}

/// Where a resize puts its output rows: it asks for a band of rows of the window, fills it
/// and commits it. A band is at most eight rows, so a sink that consumes each band (the
/// encoder's, which normalises it into the model's tensor) works on data still in L1, and the
/// cropped image is never stored whole.
pub trait RowSink {
    /// `count` rows from row `first` of the window: `count · width · 4` bytes to fill.
    fn band(&mut self, first: usize, count: usize) -> &mut [u8];
    /// The band last asked for is filled.
    fn commit(&mut self, first: usize, count: usize);
}

/// A sink that is the output image itself.
struct Collect<'a> {
    data: &'a mut [u8],
    row_len: usize,
}

impl RowSink for Collect<'_> {
    fn band(&mut self, first: usize, count: usize) -> &mut [u8] {
        &mut self.data[first * self.row_len..(first + count) * self.row_len]
    }

    fn commit(&mut self, _first: usize, _count: usize) {}
}

/// Bytes of intermediate image a thread keeps between resizes (a 4000×3000 photo cropped to
/// 224 needs 2.7 MB).
const KEPT_INTERMEDIATE: usize = 8 << 20;

/// Runs `f` on a `len`-byte buffer for a resize's intermediate image, the thread's from the
/// last resize when it is large enough. Its bytes are stale, not zeros: every pass writes
/// every byte of its output before the next pass reads it (or zeroes it, in the one case it
/// cannot). Allocating and zeroing ~200 KB per image was ~2% of the samples in a `perf` profile
/// of fast mode on 640×480 JPEGs.
fn with_intermediate<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    thread_local!(static INTERMEDIATE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) });
    let mut buf = INTERMEDIATE.take();
    if buf.len() < len {
        buf = vec![0u8; len];
    }
    let r = f(&mut buf[..len]);
    if buf.len() <= KEPT_INTERMEDIATE {
        INTERMEDIATE.set(buf);
    }
    r
}

/// [`resize_window`] of an image of which `src` holds at least the [`input_window`], on a
/// chosen instruction set (the tests compare them).
pub fn resize_placed(
    src: Placed<'_>,
    tw: usize,
    th: usize,
    window: Window,
    kernel: Kernel,
    isa: Isa,
) -> Rgbx {
    let mut out = Rgbx {
        width: window.width,
        height: window.height,
        data: vec![0u8; window.width * window.height * 4],
    };
    let mut sink = Collect {
        data: &mut out.data,
        row_len: window.width * 4,
    };
    resize_placed_into(src, tw, th, window, kernel, isa, &mut sink);
    out
}

/// [`resize_placed`], the window's rows handed to `sink` band by band (each row once).
pub fn resize_placed_into(
    src: Placed<'_>,
    tw: usize,
    th: usize,
    window: Window,
    kernel: Kernel,
    isa: Isa,
    sink: &mut dyn RowSink,
) {
    let (w, h) = (src.full_width, src.full_height);
    debug_assert!(window.left + window.width <= tw && window.top + window.height <= th);
    // Checked in tests and debug builds only: it costs two coefficient lookups per image, and a
    // release build reading outside `src` would stop at a slice bound anyway.
    debug_assert!(
        src.covers(input_window(w, h, tw, th, window, kernel)),
        "the decoded part of the image misses pixels the resize reads"
    );
    if window.width == 0 || window.height == 0 {
        return;
    }
    let cols = window.left..window.left + window.width;
    let rows = window.top..window.top + window.height;
    let need_h = tw != w;
    let need_v = th != h;
    let img = src.image;
    let view = View {
        data: &img.data,
        stride: img.width,
        col0: 0,
        width: img.width,
        row0: src.top,
    };
    match (need_h, need_v) {
        (false, false) => {
            let row_len = window.width * 4;
            for y in 0..window.height {
                let s = ((y + window.top - src.top) * img.width + window.left - src.left) * 4;
                sink.band(y, 1).copy_from_slice(&img.data[s..s + row_len]);
                sink.commit(y, 1);
            }
        }
        (true, false) => {
            let hc = coefficients(w, tw, kernel);
            horizontal(&view, rows, &hc, cols, src.left, sink, isa);
        }
        (false, true) => {
            let vc = coefficients(h, th, kernel);
            let cropped = View {
                col0: window.left - src.left,
                width: window.width,
                ..view
            };
            vertical(&cropped, &vc, rows, sink, isa);
        }
        (true, true) if vertical_first(w, h, tw, th) => {
            let hc = coefficients(w, tw, kernel);
            let vc = coefficients(h, th, kernel);
            // Input columns the kept output columns read.
            let c0 = hc.bounds[cols.start].0;
            let c1 = (cols.clone())
                .map(|x| hc.bounds[x].0 + hc.bounds[x].1)
                .max()
                .unwrap_or(c0);
            let mid_w = c1.saturating_sub(c0).max(1);
            with_intermediate(mid_w * window.height * 4, |mid| {
                let band = View {
                    col0: c0 - src.left,
                    width: mid_w.min(src.left + img.width - c0),
                    ..view
                };
                if band.width < mid_w {
                    // Given the coverage asserted above, only when no column is read (c1 =
                    // c0): zeros, not stale bytes.
                    mid.fill(0);
                }
                let mut collect = Collect {
                    data: mid,
                    row_len: mid_w * 4,
                };
                vertical(&band, &vc, rows, &mut collect, isa);
                let mid_view = View {
                    data: mid,
                    stride: mid_w,
                    col0: 0,
                    width: mid_w,
                    row0: 0,
                };
                horizontal(&mid_view, 0..window.height, &hc, cols, c0, sink, isa);
            });
        }
        (true, true) => {
            let hc = coefficients(w, tw, kernel);
            let vc = coefficients(h, th, kernel);
            // Input rows the kept output rows read.
            let r0 = vc.bounds[rows.start].0;
            let r1 = rows
                .clone()
                .map(|y| vc.bounds[y].0 + vc.bounds[y].1)
                .max()
                .unwrap_or(r0);
            let mid_h = r1.saturating_sub(r0);
            with_intermediate(window.width * mid_h * 4, |mid| {
                let mut collect = Collect {
                    data: mid,
                    row_len: window.width * 4,
                };
                horizontal(&view, r0..r1, &hc, cols, src.left, &mut collect, isa);
                let mid_view = View {
                    data: mid,
                    stride: window.width,
                    col0: 0,
                    width: window.width,
                    row0: r0,
                };
                vertical(&mid_view, &vc, rows, sink, isa);
            });
        }
    }
}

/// Columns `col0..col0+width` of an RGBX buffer whose rows are `stride` pixels long and whose
/// first row is input row `row0`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [u8],
    stride: usize,
    col0: usize,
    width: usize,
    row0: usize,
}

impl View<'_> {
    /// Input row `y`.
    fn row(&self, y: usize) -> &[u8] {
        let s = ((y - self.row0) * self.stride + self.col0) * 4;
        &self.data[s..s + self.width * 4]
    }
}

/// Horizontal pass: input rows `rows` of `src`, whose column 0 is input column `shift`,
/// output columns `cols`, into `sink` (one row per input row, `cols.len()` pixels each,
/// numbered from 0).
fn horizontal(
    src: &View<'_>,
    rows: std::ops::Range<usize>,
    c: &Coefficients,
    cols: std::ops::Range<usize>,
    shift: usize,
    sink: &mut dyn RowSink,
    isa: Isa,
) {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512) {
        if isa == Isa::Avx512 && Isa::has_vnni() {
            // SAFETY: `has_vnni` checked the CPU for AVX-512 VNNI and VL; Avx512 implies AVX2.
            unsafe { x86::horizontal_strips_vnni(src, rows, c, cols, shift, sink) };
        } else {
            // SAFETY: `Isa::Avx2`/`Avx512` are only produced when the CPU has AVX2.
            unsafe { x86::horizontal_strips_avx2(src, rows, c, cols, shift, sink) };
        }
        return;
    }
    for (i, y) in rows.enumerate() {
        let line = src.row(y);
        let dst = sink.band(i, 1);
        for (o, xx) in cols.clone().enumerate() {
            horizontal_pixel(line, c, xx, shift, &mut dst[o * 4..o * 4 + 4]);
        }
        sink.commit(i, 1);
    }
}

/// One output pixel of the horizontal pass, Pillow's loop as written.
#[inline]
fn horizontal_pixel(line: &[u8], c: &Coefficients, xx: usize, shift: usize, dst: &mut [u8]) {
    let (first, _, k) = c.taps(xx);
    let px = &line[(first - shift) * 4..(first - shift + k.len()) * 4];
    let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
    for (p, &kw) in px.chunks_exact(4).zip(k) {
        s0 += p[0] as i32 * kw;
        s1 += p[1] as i32 * kw;
        s2 += p[2] as i32 * kw;
    }
    dst[0] = clip8(s0);
    dst[1] = clip8(s1);
    dst[2] = clip8(s2);
    dst[3] = 255;
}

/// Vertical pass: output rows `rows` from `src` into `sink` (`rows.len()` rows of
/// `src.width` pixels, numbered from 0).
fn vertical(
    src: &View<'_>,
    c: &Coefficients,
    rows: std::ops::Range<usize>,
    sink: &mut dyn RowSink,
    isa: Isa,
) {
    let row_len = src.width * 4;
    let mut acc = vec![0i32; row_len];
    // The input rows of one output row, kept between rows (allocating it per row was ~1% of
    // the samples in a `perf` profile of fast mode on 640×480 JPEGs).
    let mut lines: Vec<&[u8]> = Vec::with_capacity(c.ksize);
    for (i, yy) in rows.enumerate() {
        let (first, _, k) = c.taps(yy);
        lines.clear();
        lines.extend((0..k.len()).map(|t| src.row(first + t)));
        let dst = &mut sink.band(i, 1)[..row_len];
        let done = match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2`/`Avx512` are only produced when the CPU has those features.
            Isa::Avx2 => unsafe { x86::vertical_row_avx2(&lines, c.split_taps(yy), dst) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx512 => unsafe { x86::vertical_row_avx512(&lines, c.split_taps(yy), dst) },
            _ => 0,
        };
        // The columns the vector loop left (all of them on the scalar path).
        let acc = &mut acc[done..];
        acc.fill(HALF);
        for (line, &kw) in lines.iter().zip(k) {
            for (a, &p) in acc.iter_mut().zip(&line[done..]) {
                *a += p as i32 * kw;
            }
        }
        for (o, &a) in dst[done..].iter_mut().zip(acc.iter()) {
            *o = clip8(a);
        }
        sink.commit(i, 1);
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Pillow's NEAREST source index for each output index: `ImagingScaleAffine` starts at half a
/// step and adds the step once per pixel (floating point accumulation, then truncation), so an
/// index can differ by one from `floor((x + 0.5)·in/out)`. Indices outside the image are `None`
/// (Pillow leaves those pixels black).
pub fn nearest_index(in_size: usize, out_size: usize) -> Vec<Option<usize>> {
    // box[2] is a C float in Pillow: exact for any size below 2^24.
    let step = (in_size as f32) as f64 / out_size as f64;
    let mut pos = step * 0.5;
    let mut v = Vec::with_capacity(out_size);
    for _ in 0..out_size {
        let i = if pos < 0.0 { -1 } else { pos as i64 };
        v.push((i >= 0 && (i as usize) < in_size).then_some(i as usize));
        pos += step;
    }
    v
}

/// Pillow's NEAREST resize, `window` of the `tw×th` result.
pub fn nearest_window(src: &Rgbx, tw: usize, th: usize, window: Window) -> Rgbx {
    let xs = nearest_index(src.width, tw);
    let ys = nearest_index(src.height, th);
    let mut data = vec![0u8; window.width * window.height * 4];
    for (o, y) in (window.top..window.top + window.height).enumerate() {
        let Some(sy) = ys[y] else { continue };
        for (p, x) in (window.left..window.left + window.width).enumerate() {
            if let Some(sx) = xs[x] {
                let s = (sy * src.width + sx) * 4;
                let d = (o * window.width + p) * 4;
                data[d..d + 4].copy_from_slice(&src.data[s..s + 4]);
            }
        }
    }
    Rgbx {
        width: window.width,
        height: window.height,
        data,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX2 and AVX-512 passes. Each computes exactly the scalar sums (see the module docs
    //! of `resample`); the vertical passes leave a row's last partial vector to the scalar code.
    use super::{split_pair, Coefficients, RowSink, View, HALF, PRECISION_BITS, SPLIT_BITS};
    use std::arch::x86_64::*;

    /// An 8×8 block of 32-bit pixels transposed: `r[i]` holds pixels `(i, 0..8)` on entry,
    /// and the result's `[j]` holds pixels `(0..8, j)`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256(u0, u4, 0x20),
            _mm256_permute2x128_si256(u1, u5, 0x20),
            _mm256_permute2x128_si256(u2, u6, 0x20),
            _mm256_permute2x128_si256(u3, u7, 0x20),
            _mm256_permute2x128_si256(u0, u4, 0x31),
            _mm256_permute2x128_si256(u1, u5, 0x31),
            _mm256_permute2x128_si256(u2, u6, 0x31),
            _mm256_permute2x128_si256(u3, u7, 0x31),
        ]
    }

    /// Two vectors of 32 bytes as the four vectors of 16-bit `(a, b)` pairs `madd_epi16`
    /// multiplies by a pair of weights (interleaved within 128-bit lanes; [`finish`] undoes it).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn interleave(a: __m256i, b: __m256i) -> [__m256i; 4] {
        let zero = _mm256_setzero_si256();
        let (alo, ahi) = (_mm256_unpacklo_epi8(a, zero), _mm256_unpackhi_epi8(a, zero));
        let (blo, bhi) = (_mm256_unpacklo_epi8(b, zero), _mm256_unpackhi_epi8(b, zero));
        [
            _mm256_unpacklo_epi16(alo, blo),
            _mm256_unpackhi_epi16(alo, blo),
            _mm256_unpacklo_epi16(ahi, bhi),
            _mm256_unpackhi_epi16(ahi, bhi),
        ]
    }

    /// The four pairs of (high, low) partial sums of [`interleave`]'s vectors to 32 clipped
    /// bytes, in the input's order: `((h << 11) + l + HALF) >> 22`, saturated to 0..=255.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish(h: [__m256i; 4], l: [__m256i; 4]) -> __m256i {
        let half = _mm256_set1_epi32(HALF);
        let t: [__m256i; 4] = std::array::from_fn(|q| {
            let s = _mm256_add_epi32(_mm256_slli_epi32(h[q], SPLIT_BITS as i32), l[q]);
            _mm256_srai_epi32(_mm256_add_epi32(s, half), PRECISION_BITS as i32)
        });
        _mm256_packus_epi16(
            _mm256_packs_epi32(t[0], t[1]),
            _mm256_packs_epi32(t[2], t[3]),
        )
    }

    /// `acc + madd_epi16(p, k)`: two instructions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn madd_add(acc: __m256i, p: __m256i, k: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, k))
    }

    /// The same sum in one instruction (AVX-512 VNNI's `vpdpwssd`), ~20% faster.
    #[inline]
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    unsafe fn madd_add_vnni(acc: __m256i, p: __m256i, k: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, p, k)
    }

    /// Defines the strip pass for one instruction set (`$madd_add` accumulates products).
    macro_rules! horizontal_strips {
        ($name:ident, $features:literal, $madd_add:ident) => {
            /// The horizontal pass eight rows at a time. The strip's input columns are
            /// transposed so that one column of eight pixels is one vector; an output column
            /// is then a weighted sum of whole vectors with broadcast weights, as in the
            /// vertical pass, and no per-pixel horizontal reduction is left. The result is
            /// transposed back into `out`. Same sums as the scalar pass (see the module docs);
            /// rows past the end of a last, short strip repeat its last row and are not
            /// written.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(
                src: &View<'_>,
                rows: std::ops::Range<usize>,
                c: &Coefficients,
                cols: std::ops::Range<usize>,
                shift: usize,
                sink: &mut dyn RowSink,
            ) {
                let out_w = cols.len();
                if out_w == 0 || rows.is_empty() {
                    return;
                }
                // The input columns (of `src`) the kept output columns read.
                let band0 = cols.clone().map(|x| c.bounds[x].0).min().unwrap_or(0) - shift;
                let band1 = cols
                    .clone()
                    .map(|x| c.bounds[x].0 + c.bounds[x].1)
                    .max()
                    .unwrap_or(0)
                    - shift;
                let band_w = band1 - band0;
                assert!(band1 <= src.width);
                // Per output column, its taps in pairs: the byte offsets of the two strip columns
                // read and their (hi, lo) weights. An odd last tap pairs with a zero weight on the
                // same column.
                let mut pairs: Vec<(usize, usize, i32, i32)> = Vec::with_capacity(out_w * c.ksize);
                let mut starts = Vec::with_capacity(out_w + 1);
                starts.push(0);
                for xx in cols {
                    let (first, _, k) = c.taps(xx);
                    let f = first - shift - band0;
                    for (j, p) in k.chunks(2).enumerate() {
                        let a = f + 2 * j;
                        let (kb, b) = match p.get(1) {
                            Some(&kb) => (kb, a + 1),
                            None => (0, a),
                        };
                        let (hi, lo) = split_pair(p[0], kb);
                        pairs.push((a * 32, b * 32, hi, lo));
                    }
                    starts.push(pairs.len());
                }
                let mut strip = vec![0u8; band_w * 32];
                let mut done = vec![0u8; out_w * 32];
                let zero = _mm256_setzero_si256();
                let opaque = _mm256_set1_epi32(0xFF00_0000u32 as i32);
                let (r0, r1) = (rows.start, rows.end);
                let mut y = r0;
                while y < r1 {
                    let n = (r1 - y).min(8);
                    let lines: [&[u8]; 8] = std::array::from_fn(|r| {
                        let line = src.row(y + r.min(n - 1));
                        &line[band0 * 4..band1 * 4]
                    });
                    let mut x = 0;
                    while x + 8 <= band_w {
                        // SAFETY: x + 8 <= band_w, the length of every line in pixels.
                        let block = std::array::from_fn(|r| {
                            _mm256_loadu_si256(lines[r].as_ptr().add(x * 4) as *const __m256i)
                        });
                        for (i, v) in transpose8(block).into_iter().enumerate() {
                            _mm256_storeu_si256(
                                strip.as_mut_ptr().add((x + i) * 32) as *mut __m256i,
                                v,
                            );
                        }
                        x += 8;
                    }
                    for x in x..band_w {
                        for (r, line) in lines.iter().enumerate() {
                            strip[x * 32 + r * 4..x * 32 + r * 4 + 4]
                                .copy_from_slice(&line[x * 4..x * 4 + 4]);
                        }
                    }
                    for o in 0..out_w {
                        let mut h = [zero; 4];
                        let mut l = [zero; 4];
                        for &(a, b, kh, kl) in &pairs[starts[o]..starts[o + 1]] {
                            let (kh, kl) = (_mm256_set1_epi32(kh), _mm256_set1_epi32(kl));
                            // SAFETY: a and b are offsets of columns below band_w.
                            let a = _mm256_loadu_si256(strip.as_ptr().add(a) as *const __m256i);
                            let b = _mm256_loadu_si256(strip.as_ptr().add(b) as *const __m256i);
                            let p = interleave(a, b);
                            for q in 0..4 {
                                h[q] = $madd_add(h[q], p[q], kh);
                                l[q] = $madd_add(l[q], p[q], kl);
                            }
                        }
                        let v = finish(h, l);
                        let v = _mm256_or_si256(v, opaque);
                        // SAFETY: o < out_w, and `done` holds out_w vectors.
                        _mm256_storeu_si256(done.as_mut_ptr().add(o * 32) as *mut __m256i, v);
                    }
                    let out = sink.band(y - r0, n);
                    assert!(out.len() >= n * out_w * 4);
                    let mut o = 0;
                    while o + 8 <= out_w {
                        // SAFETY: o + 8 <= out_w.
                        let block = std::array::from_fn(|i| {
                            _mm256_loadu_si256(done.as_ptr().add((o + i) * 32) as *const __m256i)
                        });
                        for (r, v) in transpose8(block).into_iter().enumerate().take(n) {
                            let at = (r * out_w + o) * 4;
                            // SAFETY: r < n and o + 8 <= out_w: inside the band (asserted).
                            _mm256_storeu_si256(out.as_mut_ptr().add(at) as *mut __m256i, v);
                        }
                        o += 8;
                    }
                    for o in o..out_w {
                        for r in 0..n {
                            let at = (r * out_w + o) * 4;
                            out[at..at + 4]
                                .copy_from_slice(&done[o * 32 + r * 4..o * 32 + r * 4 + 4]);
                        }
                    }
                    sink.commit(y - r0, n);
                    y += 8;
                }
            }
        };
    }

    horizontal_strips!(horizontal_strips_avx2, "avx2", madd_add);
    horizontal_strips!(
        horizontal_strips_vnni,
        "avx2,avx512vnni,avx512vl",
        madd_add_vnni
    );

    /// One output row of the vertical pass over whole 32-byte blocks; returns how many bytes
    /// it wrote (the caller finishes the rest).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn vertical_row_avx2(
        rows: &[&[u8]],
        pairs: &[(i32, i32)],
        dst: &mut [u8],
    ) -> usize {
        let len = dst.len() / 32 * 32;
        let zero = _mm256_setzero_si256();
        assert!(rows.len().div_ceil(2) == pairs.len() && rows.iter().all(|r| r.len() >= len));
        let mut off = 0;
        while off < len {
            let mut h = [zero; 4];
            let mut l = [zero; 4];
            for (j, &(kh, kl)) in pairs.iter().enumerate() {
                let (kh, kl) = (_mm256_set1_epi32(kh), _mm256_set1_epi32(kl));
                // SAFETY: off + 32 <= len <= row length.
                let a = _mm256_loadu_si256(rows[2 * j].as_ptr().add(off) as *const __m256i);
                let b = match rows.get(2 * j + 1) {
                    Some(r) => _mm256_loadu_si256(r.as_ptr().add(off) as *const __m256i),
                    None => zero,
                };
                let p = interleave(a, b);
                for q in 0..4 {
                    h[q] = madd_add(h[q], p[q], kh);
                    l[q] = madd_add(l[q], p[q], kl);
                }
            }
            let v = finish(h, l);
            _mm256_storeu_si256(dst.as_mut_ptr().add(off) as *mut __m256i, v);
            off += 32;
        }
        len
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn vertical_row_avx512(
        rows: &[&[u8]],
        pairs: &[(i32, i32)],
        dst: &mut [u8],
    ) -> usize {
        let len = dst.len() / 64 * 64;
        let zero = _mm512_setzero_si512();
        let half = _mm512_set1_epi32(HALF);
        assert!(rows.len().div_ceil(2) == pairs.len() && rows.iter().all(|r| r.len() >= len));
        let mut off = 0;
        while off < len {
            let mut h = [zero; 4];
            let mut l = [zero; 4];
            for (j, &(kh, kl)) in pairs.iter().enumerate() {
                let (kh, kl) = (_mm512_set1_epi32(kh), _mm512_set1_epi32(kl));
                // SAFETY: off + 64 <= len <= row length.
                let a = _mm512_loadu_si512(rows[2 * j].as_ptr().add(off) as *const __m512i);
                let b = match rows.get(2 * j + 1) {
                    Some(r) => _mm512_loadu_si512(r.as_ptr().add(off) as *const __m512i),
                    None => zero,
                };
                let (alo, ahi) = (_mm512_unpacklo_epi8(a, zero), _mm512_unpackhi_epi8(a, zero));
                let (blo, bhi) = (_mm512_unpacklo_epi8(b, zero), _mm512_unpackhi_epi8(b, zero));
                let p = [
                    _mm512_unpacklo_epi16(alo, blo),
                    _mm512_unpackhi_epi16(alo, blo),
                    _mm512_unpacklo_epi16(ahi, bhi),
                    _mm512_unpackhi_epi16(ahi, bhi),
                ];
                for q in 0..4 {
                    h[q] = _mm512_add_epi32(h[q], _mm512_madd_epi16(p[q], kh));
                    l[q] = _mm512_add_epi32(l[q], _mm512_madd_epi16(p[q], kl));
                }
            }
            let mut t = [zero; 4];
            for q in 0..4 {
                let s = _mm512_add_epi32(_mm512_slli_epi32(h[q], SPLIT_BITS), l[q]);
                t[q] = _mm512_srai_epi32(_mm512_add_epi32(s, half), PRECISION_BITS);
            }
            let v = _mm512_packus_epi16(
                _mm512_packs_epi32(t[0], t[1]),
                _mm512_packs_epi32(t[2], t[3]),
            );
            _mm512_storeu_si512(dst.as_mut_ptr().add(off) as *mut __m512i, v);
            off += 64;
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_image(w: usize, h: usize, seed: u64) -> Rgbx {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let data = (0..w * h * 4)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Mostly extremes, so clipping at 0 and 255 is exercised.
                match (s >> 33) % 5 {
                    0 => 0,
                    1 => 255,
                    _ => ((s >> 40) as u8).wrapping_add(i as u8),
                }
            })
            .collect();
        Rgbx {
            width: w,
            height: h,
            data,
        }
    }

    fn full(tw: usize, th: usize) -> Window {
        Window {
            left: 0,
            top: 0,
            width: tw,
            height: th,
        }
    }

    #[test]
    fn flat_images_stay_flat_up_and_down() {
        let src = Rgbx::from_rgb(10, 7, &[77u8; 10 * 7 * 3]);
        for (tw, th) in [(3, 2), (25, 19), (10, 3), (4, 7)] {
            for kernel in [Kernel::Bicubic, Kernel::Lanczos, Kernel::Box] {
                let out = resize_window(&src, tw, th, full(tw, th), kernel);
                assert!(
                    out.to_rgb().iter().all(|&v| v == 77),
                    "{tw}x{th} {kernel:?}"
                );
            }
        }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for kernel in [Kernel::Bicubic, Kernel::Bilinear, Kernel::Lanczos] {
            let c = compute_coefficients(640, 224, kernel);
            for xx in 0..224 {
                let (_, n, k) = c.taps(xx);
                let s: i64 = k.iter().map(|&w| w as i64).sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= n as i64, "{s}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn split_coefficients_rebuild_the_weights() {
        for kernel in [Kernel::Lanczos, Kernel::Bicubic, Kernel::Box] {
            let c = compute_coefficients(1000, 37, kernel);
            for xx in 0..37 {
                let (_, _, k) = c.taps(xx);
                for p in k.chunks(2) {
                    let b = p.get(1).copied().unwrap_or(0);
                    let (hi, lo) = split_pair(p[0], b);
                    let halves = |v: i32| [v as i16 as i32, v >> 16];
                    let (h, l) = (halves(hi), halves(lo));
                    assert_eq!((h[0] << SPLIT_BITS) + l[0], p[0]);
                    assert_eq!((h[1] << SPLIT_BITS) + l[1], b);
                }
            }
        }
    }

    /// Every SIMD path gives the scalar path's bytes, both pass orders, crops, edges, all
    /// filters, up- and downscales.
    #[test]
    fn simd_paths_equal_scalar() {
        let isas = Isa::available();
        let cases = [
            (150, 350, 32, 75),
            (350, 150, 75, 32),
            (320, 240, 149, 112),
            (240, 320, 112, 149),
            (37, 23, 224, 139),
            (5, 300, 64, 17),
            (301, 699, 97, 41),
            (250, 250, 64, 64),
            (100, 100, 300, 40),
            (9, 9, 8, 3),
            (2000, 3, 17, 1),
            (640, 480, 298, 224),
            (17, 33, 9, 15),
            (8, 16, 24, 8),
        ];
        for (i, &(w, h, tw, th)) in cases.iter().enumerate() {
            let src = noise_image(w, h, i as u64);
            for kernel in [
                Kernel::Bicubic,
                Kernel::Bilinear,
                Kernel::Lanczos,
                Kernel::Box,
                Kernel::Hamming,
            ] {
                let windows = [
                    full(tw, th),
                    Window {
                        left: tw / 5,
                        top: th / 3,
                        width: tw - tw / 5 - tw / 7,
                        height: th - th / 3,
                    },
                ];
                for window in windows {
                    let want =
                        resize_placed(Placed::whole(&src), tw, th, window, kernel, Isa::Scalar);
                    let whole = resize_placed(
                        Placed::whole(&src),
                        tw,
                        th,
                        full(tw, th),
                        kernel,
                        Isa::Scalar,
                    );
                    // The window is the same pixels as a crop of the whole result.
                    for y in 0..window.height {
                        let a = &want.data[y * window.width * 4..(y + 1) * window.width * 4];
                        let s = ((y + window.top) * tw + window.left) * 4;
                        assert_eq!(a, &whole.data[s..s + window.width * 4]);
                    }
                    // Only the input window (and a margin of 0 or 2), placed: the same bytes.
                    let iw = input_window(w, h, tw, th, window, kernel);
                    let margin = 2 * (i % 2);
                    let (x0, y0) = (
                        iw.left.saturating_sub(margin),
                        iw.top.saturating_sub(margin),
                    );
                    let x1 = (iw.left + iw.width + margin).min(w);
                    let y1 = (iw.top + iw.height + margin).min(h);
                    let mut part = Rgbx {
                        width: x1 - x0,
                        height: y1 - y0,
                        data: Vec::new(),
                    };
                    for y in y0..y1 {
                        part.data
                            .extend_from_slice(&src.data[(y * w + x0) * 4..(y * w + x1) * 4]);
                    }
                    let placed = Placed {
                        image: &part,
                        left: x0,
                        top: y0,
                        full_width: w,
                        full_height: h,
                    };
                    for &isa in &isas {
                        let got = resize_placed(Placed::whole(&src), tw, th, window, kernel, isa);
                        assert_eq!(
                            got.to_rgb(),
                            want.to_rgb(),
                            "{w}x{h}->{tw}x{th} {kernel:?} {window:?} {isa:?}"
                        );
                        let got = resize_placed(placed, tw, th, window, kernel, isa);
                        assert_eq!(
                            got.to_rgb(),
                            want.to_rgb(),
                            "placed {w}x{h}->{tw}x{th} {kernel:?} {window:?} {isa:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pass_order_follows_pillow() {
        // Measured with Pillow 13 (see gen_preprocess_golden.py's fine-pattern goldens).
        assert!(vertical_first(300, 700, 64, 149));
        assert!(!vertical_first(700, 300, 149, 64));
        assert!(vertical_first(300, 700, 150, 350));
        assert!(!vertical_first(400, 400, 100, 50));
        assert!(vertical_first(1000, 3000, 500, 1999));
        assert!(!vertical_first(1000, 3000, 500, 2001));
        assert!(vertical_first(100, 100, 300, 40));
        assert!(!vertical_first(100, 100, 40, 300));
    }

    #[test]
    fn nearest_accumulates_like_pillow() {
        // 3 → 7: steps of 3/7 from 3/14.
        assert_eq!(
            nearest_index(3, 7),
            [0, 0, 1, 1, 1, 2, 2].map(Some).to_vec()
        );
        assert_eq!(nearest_index(10, 5), [1, 3, 5, 7, 9].map(Some).to_vec());
    }
}
