//! JPEG decoding through libjpeg-turbo's own API (the library the `mozjpeg` crate builds, with
//! its SIMD), for what that crate's wrapper does not reach:
//! - decoding only where the resize reads: `jpeg_skip_scanlines` passes over the rows above and
//!   below (their entropy data is decoded and dropped, so a file broken anywhere still fails
//!   as it does in Pillow; the inverse DCT, upsampling and colour conversion are skipped), and
//!   `jpeg_crop_scanline` limits those to the needed columns;
//! - several rows per `jpeg_read_scanlines` call into the region's buffer, with no zeroing;
//!   for regions up to `STRIP_UP_TO`, through a strip of rows placed so that libjpeg-turbo's
//!   colour conversion writes them into the cache (`Strip`);
//! - clipflow's own Huffman decoder (`huffman`) in place of libjpeg's for sequential files:
//!   the same coefficients, faster.
//!
//! Measured by `scripts/bench_preprocess` (one core): 4000×3000 photos resized and cropped to
//! 224 decode in 39.8 ms instead of 48.0 (exact mode) and 18.9 instead of 19.9 (fast mode)
//! thanks to the region; on 640×480 files of ~100 KB the region saves nothing, since Huffman
//! decoding, which no region can skip, is two thirds of the time (the benchmark's `tjbench` at
//! 1/8 scale against full scale): there `huffman` takes a whole decode from 1.17 to 1.03 ms,
//! and a half-scale one (fast mode) from 1.00 to 0.79 ms. The region's buffer is also smaller
//! than the image's.
//!
//! The pixels are libjpeg-turbo's with its defaults (islow IDCT, fancy upsampling), which is
//! what Pillow uses. A region gives the bytes the full decode has there: the region asked of
//! libjpeg reaches [`MARGIN`] pixels beyond what the resize reads on every side, so the cut
//! edge (where the upsampler repeats the last chroma sample instead of reading its neighbour)
//! never reaches a pixel that is read; the tests compare regions with whole decodes for every
//! subsampling, progressive files, CMYK and all DCT scales.

use std::ffi::{c_int, c_ulong};
use std::mem;

use mozjpeg_sys as ffi;

use super::resample::Window;

mod huffman;

/// Which Huffman decoder reads sequential JPEGs: both give the same coefficients, so the same
/// pixels (the tests compare them on clean and damaged files); the choice exists for those
/// tests and for `examples/bench_preprocess`, which prints what clipflow's saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropyDecoder {
    /// `huffman`'s: one lookup per coefficient, eight bytes per refill.
    Clipflow,
    /// libjpeg-turbo's own `jdhuff.c`.
    Libjpeg,
}

/// Pixels decoded beyond the requested region on each side (an iMCU of a 4:2:0 file at full
/// scale; fancy upsampling reaches one chroma sample, two pixels, past a cut).
pub const MARGIN: usize = 16;

/// The largest region (bytes) decoded through a [`Strip`]: more than three times a 640×480
/// photo's exact-mode region (1.2 MB), a few megabytes of L2 and L3.
const STRIP_UP_TO: usize = 4 << 20;

/// Rows handed to `jpeg_read_scanlines` per call (it returns up to `rec_outbuf_height`, at
/// most 4, per call).
const ROWS_PER_CALL: usize = 16;

/// A decoded JPEG region, as RGBX (CMYK files converted as Pillow converts them).
pub struct JpegRegion {
    /// `region.width × region.height` pixels, 4 bytes each.
    pub data: Vec<u8>,
    /// Where the pixels sit in the decoded image.
    pub region: Window,
    /// The decoded image's size (the header's size at the chosen DCT scale).
    pub scaled: (usize, usize),
    /// The header's size.
    pub full: (usize, usize),
    /// The Huffman decoder that read the file (libjpeg's for the scans clipflow's does not
    /// read: progressive, arithmetic-coded, multi-scan).
    pub entropy: EntropyDecoder,
}

/// Decodes `bytes`. `plan(width, height)` sees the header's size before anything is allocated
/// and returns the DCT scale numerator (over 8) or refuses the image; `region(scaled_width,
/// scaled_height, width, height)` names the pixels of the scaled image wanted (`None`: all).
pub fn decode(
    bytes: &[u8],
    plan: &dyn Fn(usize, usize) -> Result<u8, String>,
    region: &dyn Fn(usize, usize, usize, usize) -> Option<Window>,
) -> Result<JpegRegion, String> {
    decode_with(bytes, plan, region, EntropyDecoder::Clipflow)
}

/// [`decode`] with a choice of Huffman decoder.
pub fn decode_with(
    bytes: &[u8],
    plan: &dyn Fn(usize, usize) -> Result<u8, String>,
    region: &dyn Fn(usize, usize, usize, usize) -> Option<Window>,
    entropy: EntropyDecoder,
) -> Result<JpegRegion, String> {
    decode_from(
        bytes,
        &Request {
            plan,
            region,
            entropy,
            source: Source::Memory,
            strip_up_to: STRIP_UP_TO,
        },
    )
}

/// What [`decode_with`] was asked, and how libjpeg is handed the bytes.
struct Request<'a> {
    plan: &'a dyn Fn(usize, usize) -> Result<u8, String>,
    region: &'a dyn Fn(usize, usize, usize, usize) -> Option<Window>,
    entropy: EntropyDecoder,
    source: Source,
    /// [`STRIP_UP_TO`], or another bound for the tests.
    strip_up_to: usize,
}

/// How libjpeg is handed the bytes.
#[derive(Clone, Copy)]
enum Source {
    /// All at once (`jpeg_mem_src`).
    Memory,
    /// A few bytes per `fill_input_buffer` call, which keeps libjpeg's `jdhuff.c` on its slow
    /// path (it takes the fast one only with 512 bytes per block in the buffer).
    #[cfg(test)]
    Chunks(usize),
}

/// libjpeg's fatal error, carried by unwinding from `error_exit` (see [`unwind`]): its own
/// type, so that a panic of clipflow's code on the way is never reported as libjpeg's verdict
/// on the file.
struct LibjpegError(String);

fn decode_from(bytes: &[u8], request: &Request) -> Result<JpegRegion, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_unguarded(bytes, request)
    })) {
        Ok(result) => result,
        Err(payload) => match payload.downcast::<LibjpegError>() {
            Ok(error) => Err(error.0),
            // A bug here, not bad data: the caller's panic handling reports it as such.
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}

/// One decompressor; destroyed on every way out, unwinding included.
struct Decompressor {
    cinfo: Box<ffi::jpeg_decompress_struct>,
    _err: Box<ffi::jpeg_error_mgr>,
    /// In libjpeg's entropy slot when set: dropped after `jpeg_destroy_decompress` (`Drop`
    /// runs before the fields are dropped).
    entropy: Option<Box<huffman::Decoder>>,
    #[cfg(test)]
    _chunks: Option<Box<tests::ChunkSource>>,
}

impl Decompressor {
    fn new(bytes: &[u8], source: Source) -> Decompressor {
        // SAFETY: both structs are plain C data that libjpeg initialises (jpeg_std_error, then
        // jpeg_create_decompress); they are boxed, so the pointer from cinfo to err stays valid
        // while both live, and the source manager reads `bytes`, which outlives this value
        // (it is dropped at the end of `decode_unguarded`).
        unsafe {
            let mut err: Box<ffi::jpeg_error_mgr> = Box::new(mem::zeroed());
            ffi::jpeg_std_error(&mut err);
            err.error_exit = Some(unwind);
            err.emit_message = Some(ignore_warning);
            let mut cinfo: Box<ffi::jpeg_decompress_struct> = Box::new(mem::zeroed());
            cinfo.common.err = &mut *err;
            ffi::jpeg_create_decompress(&mut *cinfo);
            #[cfg(test)]
            let mut chunks = None;
            match source {
                Source::Memory => {
                    ffi::jpeg_mem_src(&mut cinfo, bytes.as_ptr(), bytes.len() as c_ulong)
                }
                #[cfg(test)]
                Source::Chunks(n) => {
                    let c = chunks.insert(tests::ChunkSource::new(bytes, n));
                    cinfo.src = &mut c.manager;
                }
            }
            Decompressor {
                cinfo,
                _err: err,
                entropy: None,
                #[cfg(test)]
                _chunks: chunks,
            }
        }
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: cinfo was created by jpeg_create_decompress and is destroyed once.
        unsafe { ffi::jpeg_destroy_decompress(&mut self.cinfo) }
    }
}

/// libjpeg's fatal-error hook: the message, carried out by unwinding (libjpeg's C frames are
/// built with unwind tables, `C-unwind`, as the `mozjpeg` crate does).
extern "C-unwind" fn unwind(cinfo: &mut ffi::jpeg_common_struct) {
    let mut buffer = [0u8; 80];
    // SAFETY: `err` is the error manager set in `Decompressor::new`; format_message writes at
    // most 80 bytes (JMSG_LENGTH_MAX) into the buffer it is given. The binding declares the
    // buffer as shared, so it is passed through a pointer cast, as the C API intends.
    let message = unsafe {
        match cinfo.err.as_ref().and_then(|e| e.format_message) {
            Some(format) => {
                let format: unsafe extern "C-unwind" fn(
                    &mut ffi::jpeg_common_struct,
                    *mut [u8; 80],
                ) = mem::transmute(format);
                format(cinfo, &mut buffer);
                let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
                String::from_utf8_lossy(&buffer[..end]).into_owned()
            }
            None => "libjpeg fatal error".to_string(),
        }
    };
    std::panic::resume_unwind(Box::new(LibjpegError(message)));
}

/// Corrupt-data warnings do not stop libjpeg, nor Pillow; they are not printed either.
extern "C-unwind" fn ignore_warning(_cinfo: &mut ffi::jpeg_common_struct, _level: c_int) {}

fn decode_unguarded(bytes: &[u8], request: &Request) -> Result<JpegRegion, String> {
    let Request {
        plan,
        region,
        entropy,
        source,
        strip_up_to,
    } = *request;
    let mut d = Decompressor::new(bytes, source);
    let cinfo = &mut *d.cinfo;
    // SAFETY (this block and the ones below): cinfo is a live decompressor over `bytes`, used
    // in libjpeg's documented call order; fatal errors unwind out of these calls to `decode`.
    unsafe { ffi::jpeg_read_header(cinfo, 1) };
    let full = (cinfo.image_width as usize, cinfo.image_height as usize);
    let scale = plan(full.0, full.1)?;
    if scale != 8 {
        cinfo.scale_num = scale.into();
        cinfo.scale_denom = 8;
    }
    let cmyk = matches!(
        cinfo.jpeg_color_space,
        ffi::J_COLOR_SPACE::JCS_CMYK | ffi::J_COLOR_SPACE::JCS_YCCK
    );
    cinfo.out_color_space = if cmyk {
        ffi::J_COLOR_SPACE::JCS_CMYK
    } else {
        ffi::J_COLOR_SPACE::JCS_EXT_RGBX
    };
    // SAFETY: as above.
    unsafe { ffi::jpeg_start_decompress(cinfo) };
    if cinfo.output_components != 4 {
        return Err(format!(
            "libjpeg gives {} components per pixel, not 4",
            cinfo.output_components
        ));
    }
    if entropy == EntropyDecoder::Clipflow {
        // SAFETY: cinfo has started decompressing and decoded nothing yet; the decoder is
        // kept in `d`, which destroys cinfo before dropping it; client_data is unused here.
        d.entropy = unsafe { huffman::install(cinfo) };
    }
    let scaled = (cinfo.output_width as usize, cinfo.output_height as usize);
    let whole = Window {
        left: 0,
        top: 0,
        width: scaled.0,
        height: scaled.1,
    };
    let mut area = region(scaled.0, scaled.1, full.0, full.1)
        .filter(|r| r.width > 0 && r.height > 0)
        .map(|r| widen(r, scaled))
        .unwrap_or(whole);
    if area.width < scaled.0 {
        let (mut x, mut width) = (area.left as ffi::JDIMENSION, area.width as ffi::JDIMENSION);
        // SAFETY: as above; libjpeg moves x down to an iMCU boundary and widens `width` to
        // keep the right edge, then decodes exactly `width` columns per row.
        unsafe { ffi::jpeg_crop_scanline(cinfo, &mut x, &mut width) };
        area.left = x as usize;
        area.width = width as usize;
    }
    if cinfo.output_width as usize != area.width {
        return Err("libjpeg did not crop as asked".into());
    }
    let row_bytes = area.width * 4;
    let mut data: Vec<u8> = Vec::new();
    data.try_reserve_exact(row_bytes * area.height)
        .map_err(|_| format!("cannot allocate {} bytes", row_bytes * area.height))?;
    if area.top > 0 {
        // SAFETY: as above.
        let skipped = unsafe { ffi::jpeg_skip_scanlines(cinfo, area.top as ffi::JDIMENSION) };
        if skipped as usize != area.top {
            return Err("the image data ended early".into());
        }
    }
    let base = data.spare_capacity_mut().as_mut_ptr() as *mut u8;
    // Small regions through a strip (see [`Strip`]); large ones straight into the buffer.
    let strip = (row_bytes * area.height <= strip_up_to).then(|| Strip::new(row_bytes));
    let mut y = 0;
    while y < area.height {
        let n = (area.height - y).min(ROWS_PER_CALL);
        // SAFETY (the direct rows): rows y..y + n lie inside the reserved capacity
        // (area.height rows of row_bytes).
        let mut rows: [*mut u8; ROWS_PER_CALL] = std::array::from_fn(|i| match &strip {
            Some(strip) => strip.row(i.min(n - 1)),
            None => unsafe { base.add((y + i.min(n - 1)) * row_bytes) },
        });
        // SAFETY: as above; libjpeg writes output_width × 4 = row_bytes bytes to each of the
        // (at most n) rows it returns.
        let got =
            unsafe { ffi::jpeg_read_scanlines(cinfo, rows.as_mut_ptr(), n as ffi::JDIMENSION) }
                as usize;
        if got == 0 {
            return Err("the image data ended early".into());
        }
        if let Some(strip) = &strip {
            for i in 0..got.min(n) {
                // SAFETY: libjpeg wrote row i of the strip; row y + i lies inside the
                // reserved capacity (area.height rows of row_bytes).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        strip.row(i),
                        base.add((y + i) * row_bytes),
                        row_bytes,
                    )
                };
            }
        }
        y += got;
    }
    // SAFETY: every one of the area.height rows was written above.
    unsafe { data.set_len(row_bytes * area.height) };
    let below = scaled.1 - area.top - area.height;
    if below > 0 {
        // SAFETY: as above. The rows below are entropy-decoded and dropped.
        unsafe { ffi::jpeg_skip_scanlines(cinfo, below as ffi::JDIMENSION) };
    }
    // SAFETY: as above; every output row has been read or skipped.
    unsafe { ffi::jpeg_finish_decompress(cinfo) };
    if cmyk {
        cmyk_to_rgbx(&mut data);
    }
    Ok(JpegRegion {
        data,
        region: area,
        scaled,
        full,
        entropy: if d.entropy.is_some() {
            EntropyDecoder::Clipflow
        } else {
            EntropyDecoder::Libjpeg
        },
    })
}

/// Rows for `jpeg_read_scanlines` that start 8 bytes past a 32-byte boundary.
///
/// libjpeg-turbo's colour conversion stores a row that starts on a vector boundary (32 bytes
/// for its AVX2 code, 16 for SSE2) with non-temporal stores (`vmovntdq`, jdcolext-avx2.asm
/// and jdcolext-sse2.asm), which write around the cache: the resize then reads the region
/// back from memory. Whether a buffer from malloc starts there is chance (glibc's are 16-byte
/// aligned), so a build, a run or a phase of a run was fast or slow by it. In a build made to
/// force each case (not kept), half-scale decode of the 640×480 photos took 0.87 ms into
/// 32-byte-aligned rows against 0.78 ms into rows 16 bytes off, and decode with preprocessing
/// 1.06 against 0.95 (medians of 15 alternating runs). Rows decoded here, in cache, then copied
/// into the region cost a copy instead, whatever malloc returned: writing straight into the
/// region when malloc happened to place it well would save the copy (about 1%, not measured)
/// and bring the chance back.
///
/// Only for regions up to [`STRIP_UP_TO`]: a 4000×3000 photo's region (~36 MB) does not stay
/// in any cache whichever stores write it, and copying it looked like ~5% of its decode in one
/// series of `examples/bench_preprocess` on `images-camera` (a second series was within the
/// noise).
struct Strip {
    /// Owns the rows (its capacity; its length stays 0).
    _buffer: Vec<u8>,
    /// Row 0, taken once from the buffer, so that no later borrow of it invalidates the
    /// pointers libjpeg writes through.
    first_row: *mut u8,
    stride: usize,
}

impl Strip {
    fn new(row_bytes: usize) -> Strip {
        let stride = row_bytes.next_multiple_of(32);
        let mut buffer = Vec::<u8>::with_capacity(stride * ROWS_PER_CALL + 32);
        let base = buffer.as_mut_ptr();
        let first = (40 - base as usize % 32) % 32;
        Strip {
            _buffer: buffer,
            // SAFETY: first < 32 bytes into the capacity.
            first_row: unsafe { base.add(first) },
            stride,
        }
    }

    /// Row `i` (below [`ROWS_PER_CALL`]): `stride` bytes of the buffer's capacity.
    fn row(&self, i: usize) -> *mut u8 {
        debug_assert!(i < ROWS_PER_CALL);
        // SAFETY: row 0 starts below 32 and row i ends at most i·stride + stride past it,
        // inside the capacity of ROWS_PER_CALL·stride + 32.
        unsafe { self.first_row.add(i * self.stride) }
    }
}

/// `r` grown by [`MARGIN`] on each side, within the image.
fn widen(r: Window, (w, h): (usize, usize)) -> Window {
    let left = r.left.saturating_sub(MARGIN).min(w);
    let top = r.top.saturating_sub(MARGIN).min(h);
    let right = (r.left + r.width + MARGIN).min(w);
    let bottom = (r.top + r.height + MARGIN).min(h);
    Window {
        left,
        top,
        width: right.saturating_sub(left).max(1),
        height: bottom.saturating_sub(top).max(1),
    }
}

/// Pillow's conversion of a CMYK JPEG: libjpeg's CMYK inverted (Adobe's convention,
/// "CMYK;I"), then `cmyk2rgb`.
fn cmyk_to_rgbx(data: &mut [u8]) {
    for p in data.chunks_exact_mut(4) {
        let (c, m, y, k) = (255 - p[0], 255 - p[1], 255 - p[2], 255 - p[3]);
        let nk = 255 - k as i32;
        let conv = |v: u8| {
            let tmp = v as i32 * nk + 128;
            (nk - (((tmp >> 8) + tmp) >> 8)).clamp(0, 255) as u8
        };
        p[0] = conv(c);
        p[1] = conv(m);
        p[2] = conv(y);
        p[3] = 255;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG of smooth gradients, edges and noise (so every block has AC terms).
    fn jpeg(w: usize, h: usize, sampling: (u8, u8), progressive: bool, cmyk: bool) -> Vec<u8> {
        let space = if cmyk {
            mozjpeg::ColorSpace::JCS_CMYK
        } else {
            mozjpeg::ColorSpace::JCS_RGB
        };
        let mut c = mozjpeg::Compress::new(space);
        c.set_size(w, h);
        c.set_quality(90.0);
        if progressive {
            c.set_progressive_mode();
        } else {
            c.set_optimize_scans(false);
        }
        if !cmyk {
            c.set_chroma_sampling_pixel_sizes(sampling, sampling);
        }
        let ch = if cmyk { 4 } else { 3 };
        let mut s = 12345u64;
        let pixels: Vec<u8> = (0..w * h * ch)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (x, y, c) = ((i / ch) % w, (i / ch) / w, i % ch);
                let base = (x * 255 / w.max(1)) as i32 * (c as i32 + 1) / 3
                    + if (x / 7 + y / 5) % 2 == 0 { 40 } else { 0 };
                (base + ((s >> 59) as i32) - 16).clamp(0, 255) as u8
            })
            .collect();
        let mut started = c.start_compress(Vec::new()).unwrap();
        started.write_scanlines(&pixels).unwrap();
        started.finish().unwrap()
    }

    fn whole(bytes: &[u8], scale: u8) -> JpegRegion {
        decode(bytes, &|_, _| Ok(scale), &|_, _, _, _| None).unwrap()
    }

    #[test]
    fn regions_equal_the_whole_decode() {
        let cases = [
            // (w, h, sampling, progressive, cmyk)
            (640, 480, (2, 2), false, false),
            (480, 640, (2, 2), true, false),
            (333, 251, (2, 1), false, false),
            (250, 250, (1, 1), false, false),
            (301, 97, (2, 2), false, true),
            (77, 300, (1, 2), true, false),
        ];
        for (k, &(w, h, sampling, progressive, cmyk)) in cases.iter().enumerate() {
            let bytes = jpeg(w, h, sampling, progressive, cmyk);
            for scale in [8u8, 4, 2, 1] {
                let all = whole(&bytes, scale);
                let (sw, sh) = all.scaled;
                assert_eq!(all.region.width * all.region.height * 4, all.data.len());
                let regions = [
                    (sw / 5, sh / 7, sw - sw / 5 - sw / 6, sh - sh / 7 - sh / 9),
                    (0, 0, sw.div_ceil(3), sh),
                    (sw / 2, sh / 2 + k, 1, 1),
                    (1, 2, sw - 1, sh - 2),
                ];
                for (x, y, rw, rh) in regions {
                    let (rw, rh) = (rw.max(1).min(sw - x.min(sw - 1)), rh.max(1));
                    let (x, y) = (x.min(sw - 1), y.min(sh - 1));
                    let rh = rh.min(sh - y);
                    let want = Window {
                        left: x,
                        top: y,
                        width: rw,
                        height: rh,
                    };
                    let part = decode(&bytes, &|_, _| Ok(scale), &|_, _, _, _| Some(want)).unwrap();
                    // Straight into the region's buffer instead of through a strip.
                    let direct = decode_from(
                        &bytes,
                        &Request {
                            plan: &|_, _| Ok(scale),
                            region: &|_, _, _, _| Some(want),
                            entropy: EntropyDecoder::Clipflow,
                            source: Source::Memory,
                            strip_up_to: 0,
                        },
                    )
                    .unwrap();
                    assert!(direct.region == part.region && direct.data == part.data);
                    let got = part.region;
                    assert!(
                        got.left <= x
                            && got.top <= y
                            && got.left + got.width >= x + rw
                            && got.top + got.height >= y + rh,
                        "{want:?} not inside {got:?}"
                    );
                    for yy in y..y + rh {
                        let a = &all.data[(yy * sw + x) * 4..(yy * sw + x + rw) * 4];
                        let o = ((yy - got.top) * got.width + x - got.left) * 4;
                        assert_eq!(
                            a,
                            &part.data[o..o + rw * 4],
                            "{w}x{h} {sampling:?} progressive {progressive} cmyk {cmyk} \
                             scale {scale}/8, {want:?} row {yy}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn broken_files_are_errors_with_libjpegs_message() {
        let bytes = jpeg(64, 48, (2, 2), false, false);
        // Cut in the entropy data: libjpeg fills the rest with grey and warns (the caller
        // checks for the end marker); cut in the header: an error.
        assert!(
            decode(&bytes[..bytes.len() - 100], &|_, _| Ok(8), &|_, _, _, _| {
                None
            })
            .is_ok()
        );
        let e = decode(&bytes[..200], &|_, _| Ok(8), &|_, _, _, _| None)
            .err()
            .unwrap();
        // libjpeg's own message reaches the caller (the cut falls in a DHT segment).
        assert_eq!(e, "Bogus Huffman table definition");
        let e = decode(
            b"\xff\xd8\xff\xe0 not a jpeg",
            &|_, _| Ok(8),
            &|_, _, _, _| None,
        )
        .err()
        .unwrap();
        // libjpeg's own message reaches the caller.
        assert_eq!(e, "JPEG datastream contains no image");
        let e = decode(&bytes, &|_, _| Err("too big".into()), &|_, _, _, _| None)
            .err()
            .unwrap();
        assert_eq!(e, "too big");
    }

    #[test]
    fn a_panic_in_clipflows_code_is_not_reported_as_libjpegs_error() {
        let bytes = jpeg(64, 48, (2, 2), false, false);
        let caught = crate::util::catch_panic(|| {
            decode(
                &bytes,
                &|_, _| panic!("a bug, {} times over", 1),
                &|_, _, _, _| None,
            )
        });
        assert_eq!(caught.err().as_deref(), Some("a bug, 1 times over"));
    }

    /// A source manager that hands libjpeg `chunk` bytes at a time.
    #[repr(C)]
    pub(super) struct ChunkSource {
        pub(super) manager: ffi::jpeg_source_mgr,
        data: *const u8,
        len: usize,
        pos: usize,
        chunk: usize,
    }

    impl ChunkSource {
        pub(super) fn new(bytes: &[u8], chunk: usize) -> Box<ChunkSource> {
            Box::new(ChunkSource {
                manager: ffi::jpeg_source_mgr {
                    next_input_byte: std::ptr::null(),
                    bytes_in_buffer: 0,
                    init_source: Some(chunk_init),
                    fill_input_buffer: Some(chunk_fill),
                    skip_input_data: Some(chunk_skip),
                    resync_to_restart: Some(ffi::jpeg_resync_to_restart),
                    term_source: Some(chunk_init),
                },
                data: bytes.as_ptr(),
                len: bytes.len(),
                pos: 0,
                chunk,
            })
        }
    }

    unsafe extern "C-unwind" fn chunk_init(_cinfo: &mut ffi::jpeg_decompress_struct) {}

    /// As `jpeg_mem_src`'s: the next chunk, or a fake end marker past the end.
    unsafe extern "C-unwind" fn chunk_fill(
        cinfo: &mut ffi::jpeg_decompress_struct,
    ) -> ffi::boolean {
        static EOI: [u8; 2] = [0xFF, 0xD9];
        // SAFETY: cinfo.src is the manager at the head of a live ChunkSource.
        let s = unsafe { &mut *(cinfo.src as *mut ChunkSource) };
        if s.pos >= s.len {
            s.manager.next_input_byte = EOI.as_ptr();
            s.manager.bytes_in_buffer = 2;
        } else {
            let n = s.chunk.min(s.len - s.pos);
            // SAFETY: pos + n <= len bytes of the borrowed input.
            s.manager.next_input_byte = unsafe { s.data.add(s.pos) };
            s.manager.bytes_in_buffer = n;
            s.pos += n;
        }
        1
    }

    unsafe extern "C-unwind" fn chunk_skip(
        cinfo: &mut ffi::jpeg_decompress_struct,
        num_bytes: std::ffi::c_long,
    ) {
        let mut n = num_bytes.max(0) as usize;
        // SAFETY: as in chunk_fill.
        let s = unsafe { &mut *(cinfo.src as *mut ChunkSource) };
        while n > s.manager.bytes_in_buffer {
            n -= s.manager.bytes_in_buffer;
            // SAFETY: as above.
            unsafe { chunk_fill(cinfo) };
        }
        let s = unsafe { &mut *(cinfo.src as *mut ChunkSource) };
        s.manager.next_input_byte = unsafe { s.manager.next_input_byte.add(n) };
        s.manager.bytes_in_buffer -= n;
    }

    /// A JPEG written by libjpeg directly, for what the `mozjpeg` wrapper does not set:
    /// restart intervals, grayscale, Huffman tables optimised or standard.
    fn jpeg_raw(
        w: usize,
        h: usize,
        components: usize,
        quality: i32,
        restart_blocks: u32,
        optimize: bool,
    ) -> Vec<u8> {
        let pixels = jpeg_pixels(w, h, components);
        // SAFETY: the compressor is created, used in libjpeg's documented order and destroyed
        // here; the output buffer is libjpeg's (malloc), copied then freed.
        unsafe {
            let mut err: ffi::jpeg_error_mgr = mem::zeroed();
            ffi::jpeg_std_error(&mut err);
            err.error_exit = Some(unwind);
            let mut c: ffi::jpeg_compress_struct = mem::zeroed();
            c.common.err = &mut err;
            ffi::jpeg_create_compress(&mut c);
            let mut out: *mut u8 = std::ptr::null_mut();
            let mut size: c_ulong = 0;
            ffi::jpeg_mem_dest(&mut c, &mut out, &mut size);
            c.image_width = w as ffi::JDIMENSION;
            c.image_height = h as ffi::JDIMENSION;
            c.input_components = components as c_int;
            c.in_color_space = if components == 1 {
                ffi::J_COLOR_SPACE::JCS_GRAYSCALE
            } else {
                ffi::J_COLOR_SPACE::JCS_RGB
            };
            ffi::jpeg_set_defaults(&mut c);
            ffi::jpeg_set_quality(&mut c, quality, 1);
            // mozjpeg defaults to progressive and optimised tables; a baseline file here.
            c.num_scans = 0;
            c.scan_info = std::ptr::null();
            c.optimize_coding = optimize as ffi::boolean;
            c.restart_interval = restart_blocks;
            ffi::jpeg_start_compress(&mut c, 1);
            let stride = w * components;
            while (c.next_scanline as usize) < h {
                let row = pixels[c.next_scanline as usize * stride..].as_ptr();
                ffi::jpeg_write_scanlines(&mut c, &row, 1);
            }
            ffi::jpeg_finish_compress(&mut c);
            let bytes = std::slice::from_raw_parts(out, size as usize).to_vec();
            ffi::jpeg_destroy_compress(&mut c);
            libc::free(out as *mut std::ffi::c_void);
            bytes
        }
    }

    fn jpeg_pixels(w: usize, h: usize, ch: usize) -> Vec<u8> {
        let mut s = 98765u64;
        (0..w * h * ch)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (x, y, c) = ((i / ch) % w, (i / ch) / w, i % ch);
                let base = ((x * 3 + y * 5 + c * 40) % 256) as i32 / 2
                    + if (x / 3 + y / 2) % 2 == 0 { 60 } else { 0 };
                (base + ((s >> 58) as i32) - 32).clamp(0, 255) as u8
            })
            .collect()
    }

    /// clipflow's Huffman decoder on `bytes` at every DCT scale, whole and in a region, fed
    /// all at once and in chunks, against libjpeg's slow path (libjpeg fed in chunks) and, if
    /// `libjpeg_fast`, libjpeg fed all at once: the same pixels, or the same error.
    fn same_as_libjpeg(bytes: &[u8], what: &str, libjpeg_fast: bool) {
        for scale in [8u8, 4, 2, 1] {
            let regions: [&dyn Fn(usize, usize, usize, usize) -> Option<Window>; 2] =
                [&|_, _, _, _| None, &|w, h, _, _| {
                    Some(Window {
                        left: w / 3,
                        top: h / 4,
                        width: (w / 3).max(1),
                        height: (h / 2).max(1),
                    })
                }];
            for region in regions {
                let run = |entropy, source| {
                    let request = Request {
                        plan: &|_, _| Ok(scale),
                        region,
                        entropy,
                        source,
                        strip_up_to: STRIP_UP_TO,
                    };
                    decode_from(bytes, &request)
                };
                let ours = run(EntropyDecoder::Clipflow, Source::Memory);
                let mut pairs = vec![
                    (
                        "libjpeg slow path",
                        run(EntropyDecoder::Libjpeg, Source::Chunks(100)),
                    ),
                    (
                        "clipflow fed in chunks",
                        run(EntropyDecoder::Clipflow, Source::Chunks(37)),
                    ),
                ];
                if libjpeg_fast {
                    pairs.push(("libjpeg", run(EntropyDecoder::Libjpeg, Source::Memory)));
                }
                for (name, theirs) in pairs {
                    match (&ours, theirs) {
                        (Ok(a), Ok(b)) => {
                            assert_eq!(a.entropy, EntropyDecoder::Clipflow, "{what}");
                            assert_eq!(a.region, b.region, "{what} scale {scale}, {name}");
                            if a.data != b.data {
                                let first = a
                                    .data
                                    .iter()
                                    .zip(&b.data)
                                    .position(|(x, y)| x != y)
                                    .unwrap()
                                    / 4;
                                panic!(
                                    "{what} scale {scale}: pixels differ from {name} at {} {} w {}",
                                    first % a.region.width,
                                    first / a.region.width,
                                    a.region.width
                                );
                            }
                        }
                        (Err(a), Err(b)) => assert_eq!(a, &b, "{what} scale {scale}, {name}"),
                        (a, b) => panic!(
                            "{what} scale {scale}: clipflow {:?}, {name} {:?}",
                            a.as_ref().map(|_| ()),
                            b.map(|_| ())
                        ),
                    }
                }
            }
        }
    }

    fn clean_files() -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for (w, h, sampling) in [
            (640, 480, (2, 2)),
            (333, 251, (2, 1)),
            (250, 250, (1, 1)),
            (77, 300, (1, 2)),
            (9, 7, (2, 2)),
        ] {
            files.push((
                format!("{w}x{h} {sampling:?}"),
                jpeg(w, h, sampling, false, false),
            ));
        }
        files.push(("cmyk".into(), jpeg(301, 97, (1, 1), false, true)));
        for (w, h, ch, q, restart, optimize) in [
            (200, 150, 3, 95, 0, false),
            (200, 150, 3, 100, 0, true),
            (200, 150, 3, 20, 0, true),
            (200, 150, 3, 2, 0, false),
            (123, 77, 1, 90, 0, false),
            (200, 150, 3, 90, 1, false),
            (200, 150, 3, 75, 7, true),
            (123, 77, 1, 85, 3, false),
            (640, 480, 3, 90, 40, false),
        ] {
            files.push((
                format!("{w}x{h}x{ch} q{q} restart {restart} optimize {optimize}"),
                jpeg_raw(w, h, ch, q, restart, optimize),
            ));
        }
        files
    }

    #[test]
    fn both_huffman_decoders_give_the_same_pixels() {
        for (what, bytes) in clean_files() {
            same_as_libjpeg(&bytes, &what, true);
        }
        // Progressive files stay with libjpeg's decoder.
        let progressive = jpeg(64, 48, (2, 2), true, false);
        let r = decode(&progressive, &|_, _| Ok(8), &|_, _, _, _| None).unwrap();
        assert_eq!(r.entropy, EntropyDecoder::Libjpeg);
    }

    #[test]
    fn both_huffman_decoders_agree_on_damaged_files() {
        let mut s = 424242u64;
        let mut next = |n: usize| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as usize % n
        };
        for (what, bytes) in clean_files() {
            // Where the entropy data starts: after the SOS marker's header.
            let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
            let data = sos + 2 + ((bytes[sos + 2] as usize) << 8 | bytes[sos + 3] as usize);
            for cut in [
                data + 1,
                data + 7,
                (data + bytes.len()) / 2,
                bytes.len() - 3,
            ] {
                same_as_libjpeg(&bytes[..cut], &format!("{what} cut at {cut}"), true);
            }
            for trial in 0..15 {
                let mut damaged = bytes.clone();
                for _ in 0..1 + trial % 3 {
                    let at = data + next(bytes.len() - 3 - data);
                    match trial % 5 {
                        0 => damaged[at] ^= 1 << next(8),
                        1 => damaged[at] = 0xFF,
                        2 => {
                            damaged[at] = 0xFF;
                            damaged[at + 1] = [0x00, 0xD0 + next(8) as u8, 0xFF, 0xC4][next(4)];
                        }
                        3 => damaged[at] = next(256) as u8,
                        // Fill bytes before a stuffed zero: one 0xFF data byte to
                        // jdhuff.c's slow path, a marker to its fast path.
                        _ => damaged[at..at + 3].copy_from_slice(&[0xFF, 0xFF, 0x00]),
                    }
                }
                let fill_run = trial % 5 == 4;
                same_as_libjpeg(
                    &damaged,
                    &format!("{what} damaged, trial {trial}"),
                    !fill_run,
                );
            }
        }
    }
}
