//! A faster Huffman decoder for libjpeg-turbo's sequential JPEG path, giving the very
//! coefficients (and so the very pixels) libjpeg's own `jdhuff.c` gives.
//!
//! Why: on a typical 640×480 photo two thirds of a decode is entropy decoding (`decode_mcu`),
//! which no DCT scaling or crop skips; it bounds fast mode, and exact mode's share of a core
//! beside the model. The IDCT, upsampling and colour conversion stay libjpeg-turbo's (SIMD,
//! Pillow's algorithms): this module only replaces the one step whose output, the quantised
//! coefficients, is fixed by the standard whatever decoder computes it.
//!
//! How it is faster than `jdhuff.c` on the same data:
//! - one table lookup decodes a whole coefficient (code, run and extended value) when the code
//!   and its value bits fit in [`LOOKAHEAD`] bits, as most do; `jdhuff.c` looks up the code,
//!   then reads and extends the value;
//! - an AC lookup decodes two coefficients when both fit (a photo's average coefficient is
//!   under 5 bits): the chain that bounds entropy decoding, from the bit buffer through the
//!   table load to the shift, runs about half as often (clipflow's whole-image decode went
//!   from 0.87 to 0.80 of libjpeg's time on a Zen 3, 0.85 to 0.76 at half scale);
//! - the bit buffer refills eight bytes at a time when none of them is 0xFF (one test for the
//!   eight), where `jdhuff.c` tests and shifts in one byte at a time.
//!   An AC block refills once per [`LOOKUPS_PER_REFILL`] lookups, not before each: the
//!   buffer always holds enough bits for that many.
//!
//! Where the data is not clean it reads as `jdhuff.c`'s slow path reads, step for step: an
//! MCU whose fast decode meets a marker or the end of the buffer is decoded again, from zeroed
//! blocks, by [`Slow`], a transcription of that path (zero bits after a marker,
//! `insufficient_data`, restart markers, the same warnings), and both read a 0xFF 0xFF … 0x00
//! run as one 0xFF data byte. So cut and damaged
//! files give libjpeg's pixels too (the tests compare the decoders on such files), with one
//! exception, which is libjpeg's and not the data's: the standard forbids that 0xFF run inside
//! entropy data, `jdhuff.c`'s own fast path reads it as a marker, and when its fast attempt at
//! an MCU fails its slow path rewrites the MCU over what the attempt left. Which MCUs keep such
//! leftovers depends on libjpeg's buffer schedule and on how the caller feeds it data (Pillow
//! feeds it in chunks), so there is no one libjpeg answer to match there; clipflow gives the
//! slow path's, which the tests compare with libjpeg fed through a small buffer (slow path
//! only).
//!
//! The decoder plugs into libjpeg's `cinfo->entropy` slot after `jpeg_start_decompress`
//! (`scan.c` reads the fields the Rust binding keeps private); progressive, arithmetic-coded
//! and multi-scan files keep libjpeg's decoders.

use std::cell::RefCell;
use std::ffi::{c_int, c_uint, c_void};
use std::rc::Rc;

use mozjpeg_sys as ffi;

/// Bits of lookahead of the code tables: a code and its value bits up to this long decode in
/// one lookup (4 KB per table and 8 KB more per AC table: a colour scan's two DC and two AC
/// tables read 24 KB, which stay in L1).
/// 11 bits decoded no faster with pairs, 12 slower without them (README).
const LOOKAHEAD: u32 = 10;

/// `jdhuff.c`'s `MIN_GET_BITS` for a 64-bit buffer: the slow path fills up to this many.
const MIN_GET_BITS: u32 = 57;

/// Blocks per MCU, at most (`D_MAX_BLOCKS_IN_MCU`).
const MAX_BLOCKS: usize = 10;

/// Zigzag position to natural position; the entries past 63 are 63, for runs that corrupt
/// data pushes past the end (`jpeg_natural_order`'s own guard has 16 of them).
const NATURAL_ORDER: [u8; 128] = {
    let zigzag: [u8; 64] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
        20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ];
    let mut t = [63u8; 128];
    let mut i = 0;
    while i < 64 {
        t[i] = zigzag[i];
        i += 1;
    }
    t
};

/// A natural-order position, for indexes that cannot pass the table (`k` is below 64 plus a
/// run of at most 15): masking keeps the compiler from checking bounds on the hot path.
#[inline(always)]
fn natural(k: usize) -> usize {
    NATURAL_ORDER[k & 127] as usize & 63
}

/// What `scan.c` reports about the scan (its `clipflow_scan_info`).
#[repr(C)]
struct ScanInfo {
    blocks_in_mcu: c_int,
    comps_in_scan: c_int,
    restart_interval: c_uint,
    block_component: [c_int; MAX_BLOCKS],
    dc_table: [*const ffi::JHUFF_TBL; MAX_BLOCKS],
    ac_table: [*const ffi::JHUFF_TBL; MAX_BLOCKS],
    dc_needed: [c_int; MAX_BLOCKS],
    ac_needed: [c_int; MAX_BLOCKS],
    unread_marker: *mut c_int,
}

type Cinfo = ffi::jpeg_decompress_struct;
type Block = [i16; 64];

extern "C-unwind" {
    fn clipflow_jpeg_scan_info(cinfo: *mut Cinfo, out: *mut ScanInfo) -> c_int;
    fn clipflow_jpeg_set_entropy(cinfo: *mut Cinfo, decoder: *mut Header) -> *mut Header;
    fn clipflow_jpeg_read_restart(cinfo: *mut Cinfo, unused_bytes: c_int) -> ffi::boolean;
    fn clipflow_jpeg_warn_hit_marker(cinfo: *mut Cinfo);
    fn clipflow_jpeg_warn_bad_code(cinfo: *mut Cinfo);
}

/// libjpeg's `struct jpeg_entropy_decoder` (`scan.c` asserts the layout).
#[repr(C)]
struct Header {
    start_pass: Option<unsafe extern "C-unwind" fn(*mut Cinfo)>,
    decode_mcu: Option<unsafe extern "C-unwind" fn(*mut Cinfo, *mut *mut Block) -> ffi::boolean>,
    insufficient_data: ffi::boolean,
}

/// A Huffman table, as `jdhuff.c`'s `d_derived_tbl` plus the one-lookup entries.
struct Table {
    /// Indexed by the next [`LOOKAHEAD`] bits; 0 when the code is longer. Otherwise bits 0–4:
    /// bits consumed; 5–8: the code's length; 9: [`WITH_VALUE`]; 10: [`END_OF_BLOCK`]; 12–19:
    /// the symbol; 20–31: the extended value (signed) when [`WITH_VALUE`] is set.
    lookup: [u32; 1 << LOOKAHEAD],
    /// AC decoding's entries, indexed as `lookup`: up to two whole coefficients per lookup
    /// (see [`pair_entry`]); 0 where `lookup` has no whole coefficient.
    pairs: [u64; 1 << LOOKAHEAD],
    /// Largest code of each length, -1 if none (index 17 is a sentinel).
    maxcode: [i32; 18],
    /// `huffval` index of the first code of each length, less that code.
    valoffset: [i32; 18],
    huffval: [u8; 256],
}

/// Tables built on this thread lately, kept for the files that follow: most files of a
/// dataset carry their encoder's tables (libjpeg's standard ones unless the encoder optimised
/// them), and building one (a lookup and a pair entry for each of 1,024 lookaheads) took
/// about 4% of decoding a 250×250 textile. At most this many (about 13 KB each).
const RECENT_TABLES: usize = 8;

/// Whether AC, the `JHUFF_TBL` contents, and the table built from them.
type RecentTable = (bool, [u8; 17], [u8; 256], Rc<Table>);

thread_local! {
    /// Oldest first.
    static RECENT: RefCell<Vec<RecentTable>> = const { RefCell::new(Vec::new()) };
}

/// [`Table::new`] of `source`, or the same table built for an earlier file on this thread
/// (a table depends on nothing but the counts, the symbols and whether it is AC).
fn shared_table(source: &ffi::JHUFF_TBL, ac: bool) -> Rc<Table> {
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let same = |(a, bits, vals, _): &&RecentTable| {
            *a == ac && *bits == source.bits && *vals == source.huffval
        };
        if let Some(hit) = recent.iter().find(same) {
            return Rc::clone(&hit.3);
        }
        let table = Rc::new(Table::new(source, ac));
        if recent.len() == RECENT_TABLES {
            recent.remove(0);
        }
        recent.push((ac, source.bits, source.huffval, Rc::clone(&table)));
        table
    })
}

/// The entry holds the coefficient's value: its bits were consumed with the code.
const WITH_VALUE: u32 = 1 << 9;

/// The entry ends an AC block: a zero-size symbol other than 0xF0 (a run of 16 zeros), as in
/// `jdhuff.c`; 0x00 in a standard table. A DC table's size 0 has it too, and the DC decode
/// ignores it.
const END_OF_BLOCK: u32 = 1 << 10;

impl Table {
    /// `jpeg_make_d_derived_tbl`, which libjpeg has already run on the same table when it
    /// started the scan, so the table is known to be valid (counts fit, codes fit, DC symbols
    /// 0..15); the checks here only keep a bad table from indexing out of bounds (a test feeds
    /// one).
    fn new(table: &ffi::JHUFF_TBL, ac: bool) -> Table {
        let mut t = Table {
            lookup: [0; 1 << LOOKAHEAD],
            pairs: [0; 1 << LOOKAHEAD],
            maxcode: [-1; 18],
            valoffset: [0; 18],
            huffval: table.huffval,
        };
        // Figure C.1 and C.2: the codes, in order of length.
        let mut sizes = Vec::with_capacity(256);
        for l in 1..=16usize {
            for _ in 0..table.bits[l] {
                if sizes.len() < 256 {
                    sizes.push(l as u32);
                }
            }
        }
        let mut codes = Vec::with_capacity(sizes.len());
        let mut code = 0u32;
        let mut si = sizes.first().copied().unwrap_or(0);
        let mut p = 0;
        while p < sizes.len() {
            while p < sizes.len() && sizes[p] == si {
                codes.push(code);
                code += 1;
                p += 1;
            }
            code <<= 1;
            si += 1;
        }
        // Figure F.15.
        let mut p = 0usize;
        for l in 1..=16usize {
            let n = table.bits[l] as usize;
            if n > 0 && p + n <= codes.len() {
                t.valoffset[l] = p as i32 - codes[p] as i32;
                p += n;
                t.maxcode[l] = codes[p - 1] as i32;
            }
        }
        t.maxcode[17] = 0xFFFFF;
        for (p, (&l, &code)) in sizes.iter().zip(&codes).enumerate() {
            if l > LOOKAHEAD || code >> l != 0 {
                break;
            }
            let symbol = table.huffval[p] as u32;
            let size = symbol & 15;
            let first = (code << (LOOKAHEAD - l)) as usize;
            for (i, entry) in t.lookup[first..first + (1 << (LOOKAHEAD - l))]
                .iter_mut()
                .enumerate()
            {
                *entry = if size == 0 || l + size <= LOOKAHEAD {
                    let value = if size == 0 {
                        0
                    } else {
                        // The value bits follow the code within the lookahead.
                        let raw = (i as u32 >> (LOOKAHEAD - l - size)) & ((1 << size) - 1);
                        extend(raw, size)
                    };
                    // jdhuff.c ends the block on any zero-size symbol but 0xF0 (a run of
                    // 16): 0x00 in a standard table, others in a damaged or unusual one.
                    let end = if size == 0 && symbol != 0xF0 {
                        END_OF_BLOCK
                    } else {
                        0
                    };
                    (l + size) | l << 5 | WITH_VALUE | end | symbol << 12 | (value as u32) << 20
                } else {
                    l | l << 5 | symbol << 12
                };
            }
        }
        if ac {
            for i in 0..1usize << LOOKAHEAD {
                t.pairs[i] = pair_entry(&t.lookup, i);
            }
        }
        t
    }
}

/// The AC entry for the lookahead bits `i`: the coefficient `lookup[i]` decodes and, when the
/// bits it leaves hold a whole second one (code and value), that one too, so a lookup decodes
/// two coefficients about half the time (photos average under 5 bits a coefficient). Bits 0–5:
/// bits consumed by both (the six bits of a 64-bit shift's count, so the shift takes the entry
/// unmasked: no AND on the chain from the table load to the next lookup); 6–9: by the first
/// alone; 10–14: the first's offset from `k` plus one, which is where its successor lies (the
/// second is decoded only when that place is in the block); 15–19: the second's offset; 20–26:
/// how far `k` moves; 27–30: bits 0–3 again, for the bit count (one field serving both would
/// share its mask between them, and the compiler then puts the mask back on the shift); 32–47
/// and 48–63: the two values. An entry that decodes anything consumes bits, so it is never 0,
/// the value of the others. One coefficient alone is written as a pair that writes it twice, so
/// the decoding loop has no branch on how many there are.
/// A run of 16 zeros (0xF0) counts as a zero written at its last place, the end of a block
/// as a zero written at `k` and a move of 64, as in `ac_coefficients`.
fn pair_entry(lookup: &[u32; 1 << LOOKAHEAD], i: usize) -> u64 {
    let first = lookup[i];
    if first & WITH_VALUE == 0 {
        return 0;
    }
    let step = |e: u32| if e & END_OF_BLOCK != 0 { 64 } else { 1 };
    let run = |e: u32| ((e >> 16) & 15) as u64;
    let value = |e: u32| (((e as i32) >> 20) as i16 as u16) as u64;
    let used = (first & 31) as u64;
    let single = used
        | used << 6
        | (run(first) + 1) << 10
        | run(first) << 15
        | (run(first) + step(first)) << 20
        | used << 27
        | value(first) << 32
        | value(first) << 48;
    if first & END_OF_BLOCK != 0 {
        return single;
    }
    // The bits after the first coefficient, zeros past the lookahead: a second entry that
    // consumes no more than the real bits left is the real one.
    let rest = (i << used) & ((1 << LOOKAHEAD) - 1);
    let second = lookup[rest];
    let left = LOOKAHEAD as u64 - used;
    if second & WITH_VALUE == 0 || (second & 31) as u64 > left {
        return single;
    }
    let at_second = run(first) + 1 + run(second);
    let both = used + (second & 31) as u64;
    both | used << 6
        | (run(first) + 1) << 10
        | at_second << 15
        | (at_second + step(second)) << 20
        | both << 27
        | value(first) << 32
        | value(second) << 48
}

// The fields' widths: a lookup consumes at most LOOKAHEAD bits, and the count's field is four.
const _: () = assert!(LOOKAHEAD < 16);

/// `HUFF_EXTEND`: the `size`-bit value `raw` as the signed coefficient it codes.
#[inline(always)]
fn extend(raw: u32, size: u32) -> i32 {
    let raw = raw as i32;
    if raw < 1 << (size - 1) {
        raw - (1 << size) + 1
    } else {
        raw
    }
}

/// The bit reader's position: a buffer whose top `bits` bits are the next ones, and the
/// source's next byte. The bits below them are either zeros or the bits that follow in the
/// stream up to a point before the next 0xFF (see [`refill`]): every fill ORs a byte into
/// the place it already holds, and a marker is never reached with other bits than zeros
/// below it.
///
/// When the fast path meets a marker or the end of the buffer, it is stuck: `left` is set to
/// 0 (nothing more is read) and `bits` to 64 (zeros from there); the caller then decodes the
/// MCU again on the slow path. A flag of its own would hold one more register in the AC loop.
#[derive(Clone, Copy)]
struct Bits {
    buffer: u64,
    bits: u32,
    next: *const u8,
    left: usize,
}

impl Bits {
    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        (self.buffer >> (64 - n)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buffer <<= n;
        self.bits = self.bits.wrapping_sub(n);
    }
}

/// One block of an MCU, for the fast path: its tables as plain pointers (into the decoder's
/// `tables`, rebuilt with them) and its flags. Reaching them through the table indices, the
/// `Rc`s and bound checks took three dependent loads at the start of every block, on the
/// critical path after the block end's mispredicted branch.
#[derive(Clone, Copy)]
struct BlockPlan {
    dc: *const Table,
    ac: *const Table,
    /// Which `last_dc` the block's DC difference adds to.
    component: usize,
    dc_needed: bool,
    ac_needed: bool,
}

impl BlockPlan {
    const NONE: BlockPlan = BlockPlan {
        dc: std::ptr::null(),
        ac: std::ptr::null(),
        component: 0,
        dc_needed: false,
        ac_needed: false,
    };
}

/// The decoder in libjpeg's entropy slot. `header` comes first, where libjpeg looks.
#[repr(C)]
pub struct Decoder {
    header: Header,
    /// libjpeg's own decoder, put back if a later scan is not one this module reads.
    libjpeg: *mut Header,
    cinfo: *mut Cinfo,
    scan: ScanInfo,
    /// The scan's distinct tables (shared through [`shared_table`]), and which of them each
    /// block of an MCU uses.
    tables: Vec<Rc<Table>>,
    dc_table: [usize; MAX_BLOCKS],
    ac_table: [usize; MAX_BLOCKS],
    /// What the fast path needs of each block of an MCU, gathered once per scan.
    plans: [BlockPlan; MAX_BLOCKS],
    buffer: u64,
    bits: u32,
    last_dc: [i32; 4],
    restarts_to_go: u32,
}

/// Puts a [`Decoder`] in place of libjpeg's for the scan `cinfo` is about to decode (call
/// after `jpeg_start_decompress`, before any row is read or skipped). `None`: the scan is not
/// a sequential Huffman one, and libjpeg keeps it. The decoder must outlive every libjpeg
/// call on `cinfo` (drop it after `jpeg_destroy_decompress`).
///
/// # Safety
/// `cinfo` is a live decompressor in its scanning state whose `client_data` is unused.
pub unsafe fn install(cinfo: *mut Cinfo) -> Option<Box<Decoder>> {
    let mut decoder = Box::new(Decoder {
        header: Header {
            start_pass: Some(start_pass),
            decode_mcu: Some(decode_mcu),
            insufficient_data: 0,
        },
        libjpeg: std::ptr::null_mut(),
        cinfo,
        // SAFETY: plain C data, filled by scan.c below.
        scan: unsafe { std::mem::zeroed() },
        tables: Vec::new(),
        dc_table: [0; MAX_BLOCKS],
        ac_table: [0; MAX_BLOCKS],
        plans: [BlockPlan::NONE; MAX_BLOCKS],
        buffer: 0,
        bits: 0,
        last_dc: [0; 4],
        restarts_to_go: 0,
    });
    // SAFETY: cinfo is live (the caller's contract); scan.c only reads it.
    if !unsafe { decoder.setup() } {
        return None;
    }
    // SAFETY: as above; the box's address is stable while libjpeg holds it.
    unsafe {
        (*cinfo).common.client_data = &mut *decoder as *mut Decoder as *mut c_void;
        decoder.libjpeg = clipflow_jpeg_set_entropy(cinfo, &mut decoder.header);
    }
    Some(decoder)
}

impl Decoder {
    /// `start_pass_huff_decoder`: reads the scan and builds the tables.
    unsafe fn setup(&mut self) -> bool {
        // SAFETY: self.cinfo is live (install's contract).
        if unsafe { clipflow_jpeg_scan_info(self.cinfo, &mut self.scan) } == 0 {
            return false;
        }
        self.tables.clear();
        let mut sources: Vec<*const ffi::JHUFF_TBL> = Vec::new();
        for b in 0..self.scan.blocks_in_mcu as usize {
            for (index, source, ac) in [
                (&mut self.dc_table[b], self.scan.dc_table[b], false),
                (&mut self.ac_table[b], self.scan.ac_table[b], true),
            ] {
                *index = match sources.iter().position(|&t| t == source) {
                    Some(i) => i,
                    None => {
                        sources.push(source);
                        // SAFETY: scan.c returned a non-null table of this scan.
                        self.tables.push(shared_table(unsafe { &*source }, ac));
                        self.tables.len() - 1
                    }
                };
            }
        }
        for b in 0..self.scan.blocks_in_mcu as usize {
            self.plans[b] = BlockPlan {
                dc: &*self.tables[self.dc_table[b]],
                ac: &*self.tables[self.ac_table[b]],
                component: self.scan.block_component[b] as usize & 3,
                dc_needed: self.scan.dc_needed[b] != 0,
                ac_needed: self.scan.ac_needed[b] != 0,
            };
        }
        self.buffer = 0;
        self.bits = 0;
        self.last_dc = [0; 4];
        self.header.insufficient_data = 0;
        self.restarts_to_go = self.scan.restart_interval;
        true
    }
}

/// libjpeg's `start_pass` (a new scan): read it, or hand it back to libjpeg's decoder.
unsafe extern "C-unwind" fn start_pass(cinfo: *mut Cinfo) {
    // SAFETY: client_data was set to this decoder by `install`, which outlives cinfo's use.
    let decoder = unsafe { &mut *((*cinfo).common.client_data as *mut Decoder) };
    // SAFETY: cinfo is live (libjpeg is calling us).
    if !unsafe { decoder.setup() } {
        unsafe {
            clipflow_jpeg_set_entropy(cinfo, decoder.libjpeg);
            if let Some(start) = (*decoder.libjpeg).start_pass {
                start(cinfo);
            }
        }
    }
}

/// libjpeg's `decode_mcu`: one MCU into `mcu` (zeroed by the caller), or decoded and dropped
/// when `mcu` is null (`jpeg_skip_scanlines`).
unsafe extern "C-unwind" fn decode_mcu(cinfo: *mut Cinfo, mcu: *mut *mut Block) -> ffi::boolean {
    // SAFETY: as in `start_pass`; libjpeg passes `blocks_in_mcu` block pointers or null.
    unsafe {
        let d = &mut *((*cinfo).common.client_data as *mut Decoder);
        let restart_interval = d.scan.restart_interval;
        if restart_interval != 0 && d.restarts_to_go == 0 {
            // process_restart
            let unused = (d.bits / 8) as c_int;
            d.bits = 0;
            d.buffer = 0;
            if clipflow_jpeg_read_restart(cinfo, unused) == 0 {
                return 0;
            }
            d.last_dc = [0; 4];
            d.restarts_to_go = restart_interval;
            if *d.scan.unread_marker == 0 {
                d.header.insufficient_data = 0;
            }
        }
        if d.header.insufficient_data == 0 {
            let src = &mut *(*cinfo).src;
            let blocks = d.scan.blocks_in_mcu as usize;
            let start = Bits {
                buffer: d.buffer,
                bits: d.bits,
                next: src.next_input_byte,
                left: src.bytes_in_buffer,
            };
            let mut done = false;
            // A full buffer (the slow path's fill can leave one) goes the slow way: the fast
            // refill's merge would shift by the whole width.
            if *d.scan.unread_marker == 0 && start.bits < 64 {
                let mut bits = start;
                let mut last_dc = d.last_dc;
                if d.decode_fast(&mut bits, &mut last_dc, mcu) {
                    d.buffer = bits.buffer;
                    d.bits = bits.bits;
                    d.last_dc = last_dc;
                    src.next_input_byte = bits.next;
                    src.bytes_in_buffer = bits.left;
                    done = true;
                } else if !mcu.is_null() {
                    // The slow path starts from zeroed blocks, as libjpeg's caller leaves them.
                    for b in 0..blocks {
                        **mcu.add(b) = [0; 64];
                    }
                }
            }
            if !done {
                let mut slow = Slow {
                    bits: start,
                    cinfo,
                    insufficient: &mut d.header.insufficient_data,
                    unread_marker: d.scan.unread_marker,
                };
                let mut last_dc = d.last_dc;
                for b in 0..blocks {
                    let block = if mcu.is_null() {
                        None
                    } else {
                        Some(&mut **mcu.add(b))
                    };
                    let (dc, ac) = (&d.tables[d.dc_table[b]], &d.tables[d.ac_table[b]]);
                    slow.block(
                        dc,
                        ac,
                        block,
                        d.scan.dc_needed[b] != 0,
                        d.scan.ac_needed[b] != 0,
                        &mut last_dc[d.scan.block_component[b] as usize & 3],
                    );
                }
                let bits = slow.bits;
                d.buffer = bits.buffer;
                d.bits = bits.bits;
                d.last_dc = last_dc;
                let src = &mut *(*cinfo).src;
                src.next_input_byte = bits.next;
                src.bytes_in_buffer = bits.left;
            }
        }
        if restart_interval != 0 {
            d.restarts_to_go = d.restarts_to_go.wrapping_sub(1);
        }
        1
    }
}

impl Decoder {
    /// One MCU, reading ahead without the slow path's checks. False if a marker or the end
    /// of the buffer came up (the bits after it read as zeros; the caller decodes the MCU
    /// again with [`Slow`]).
    #[inline(always)]
    unsafe fn decode_fast(
        &self,
        state: &mut Bits,
        last_dc: &mut [i32; 4],
        mcu: *mut *mut Block,
    ) -> bool {
        // A local copy, kept in registers (the cold refill takes and returns it by value).
        let mut local = *state;
        let bits = &mut local;
        let blocks = (self.scan.blocks_in_mcu as usize).min(MAX_BLOCKS);
        for (b, plan) in self.plans[..blocks].iter().enumerate() {
            // SAFETY: `setup` pointed the scan's plans at tables in `self.tables`, which it
            // does not change until it rebuilds the plans.
            let (dc, ac) = unsafe { (&*plan.dc, &*plan.ac) };
            // SAFETY: libjpeg passes blocks_in_mcu block pointers, or null.
            let block = if mcu.is_null() {
                std::ptr::null_mut()
            } else {
                unsafe { *mcu.add(b) }
            };
            // DC.
            refill(bits);
            let e = dc.lookup[bits.peek(LOOKAHEAD) as usize];
            let diff = if e & WITH_VALUE != 0 {
                bits.consume(e & 31);
                (e as i32) >> 20
            } else {
                let size = decode_long(bits, dc, e, self.cinfo) & 15;
                if size != 0 {
                    let raw = bits.peek(size);
                    bits.consume(size);
                    extend(raw, size)
                } else {
                    0
                }
            };
            if plan.dc_needed {
                let last = &mut last_dc[plan.component & 3];
                *last = last.wrapping_add(diff);
                if !block.is_null() {
                    // SAFETY: a live block of the MCU.
                    unsafe { (*block)[0] = *last as i16 };
                }
            }
            // AC.
            if plan.ac_needed && !block.is_null() {
                // SAFETY: as above.
                ac_coefficients::<true>(bits, ac, unsafe { &mut *block }, self.cinfo);
            } else {
                let mut sink = [0i16; 64];
                ac_coefficients::<false>(bits, ac, &mut sink, self.cinfo);
            }
        }
        *state = local;
        // Stuck, or at the end of the buffer, where the slow path reads on from the source.
        state.left != 0
    }
}

/// The AC coefficients of one block (into `block` if `STORE`), on the fast path.
#[inline(always)]
fn ac_coefficients<const STORE: bool>(
    bits: &mut Bits,
    ac: &Table,
    block: &mut Block,
    cinfo: *mut Cinfo,
) {
    let mut k = 1usize;
    refill(bits);
    loop {
        // The lookup's bits are already in the buffer (at least LOOKAHEAD of them: see
        // LOOKUPS_PER_REFILL), so the index is taken before the refill, whose bytes land
        // below them: the refill then runs beside the table load instead of before it.
        debug_assert!(bits.bits >= REFILLED - LOOKUPS_PER_REFILL * LOOKAHEAD);
        let index = bits.peek(LOOKAHEAD) as usize;
        refill(bits);
        k = ac_lookup::<STORE>(bits, ac, block, index, k, cinfo);
        for _ in 1..LOOKUPS_PER_REFILL {
            if k >= 64 {
                return;
            }
            let index = bits.peek(LOOKAHEAD) as usize;
            k = ac_lookup::<STORE>(bits, ac, block, index, k, cinfo);
        }
        if k >= 64 {
            return;
        }
    }
}

/// AC lookups per refill. A refill leaves at least [`REFILLED`] bits and a whole entry
/// consumes at most [`LOOKAHEAD`], so this many lookups in a row still leave the next one its
/// lookahead; a long code refills after itself. The refill and its merge (about twenty
/// instructions) ran before every lookup, about half of a lookup's instructions; a 640x480
/// photo decodes about 100,000 lookups.
const LOOKUPS_PER_REFILL: u32 = 4;
const _: () = assert!(REFILLED - LOOKUPS_PER_REFILL * LOOKAHEAD >= LOOKAHEAD);

/// One AC lookup at block position `k` (below 64), `index` being the next [`LOOKAHEAD`] bits:
/// decodes one or two coefficients and returns the next `k`, 64 or more at the block's end.
#[inline(always)]
fn ac_lookup<const STORE: bool>(
    bits: &mut Bits,
    ac: &Table,
    block: &mut Block,
    index: usize,
    k: usize,
    cinfo: *mut Cinfo,
) -> usize {
    let p = ac.pairs[index];
    if p != 0 {
        return pair_step::<STORE>(bits, p, k, block);
    }
    // A long code and its value take up to 31 bits, and the lookups before this one in its
    // group may have left as few as REFILLED - 3·LOOKAHEAD = 26 (the refill only adds bits
    // below `index`'s).
    refill(bits);
    let e = ac.lookup[index];
    let symbol = decode_long(bits, ac, e, cinfo);
    let (run, size) = (symbol >> 4, symbol & 15);
    let mut k = k;
    if size != 0 {
        k += run as usize;
        let raw = bits.peek(size);
        bits.consume(size);
        if STORE {
            block[natural(k)] = extend(raw, size) as i16;
        }
    } else if run == 15 {
        k += 15;
    } else {
        return 64;
    }
    // Back to REFILLED bits for the lookups left in the group.
    refill(bits);
    k + 1
}

/// Decodes a nonzero pair entry at block position `k` (below 64), consuming its bits: returns
/// the next `k`. The common case, without a branch on the symbols: one or two runs of
/// zeros, each then a value (a place written with a zero was not written before: blocks start
/// zeroed).
#[inline(always)]
fn pair_step<const STORE: bool>(bits: &mut Bits, p: u64, k: usize, block: &mut Block) -> usize {
    debug_assert!(k < 64);
    // Where the first's successor lies (at least k + 1).
    let after_first = k + ((p >> 10) & 31) as usize;
    if after_first <= 63 {
        if STORE {
            // SAFETY: both places are k plus a five-bit field, below 64 + 32.
            unsafe {
                put_natural(block, after_first - 1, (p >> 32) as i16);
                put_natural(block, k + ((p >> 15) & 31) as usize, (p >> 48) as i16);
            }
        }
        // The shift takes the entry whole: its count is the low six bits.
        bits.buffer = bits.buffer.wrapping_shl(p as u32);
        bits.bits = bits.bits.wrapping_sub(((p >> 27) & 15) as u32);
        k + ((p >> 20) & 127) as usize
    } else {
        // The first coefficient fills the block: the bits after it are the next block's.
        if STORE {
            // SAFETY: as above.
            unsafe { put_natural(block, after_first - 1, (p >> 32) as i16) };
        }
        bits.consume(((p >> 6) & 15) as u32);
        after_first
    }
}

/// `block[natural(zigzag)] = value` without the masks and bound checks, which were about a
/// fifth of a pair step's instructions.
///
/// # Safety
/// `zigzag` is below 128 (`NATURAL_ORDER`'s length; its entries are all below 64).
#[inline(always)]
unsafe fn put_natural(block: &mut Block, zigzag: usize, value: i16) {
    debug_assert!(zigzag < NATURAL_ORDER.len());
    // SAFETY: the caller's bound, and the table's entries are places of a block.
    unsafe {
        let place = *NATURAL_ORDER.get_unchecked(zigzag) as usize;
        *block.get_unchecked_mut(place) = value;
    }
}

/// A code the one-lookup entry does not finish: its symbol, with the code's bits consumed
/// (not the value's). `e` is the lookup entry (0: longer than [`LOOKAHEAD`]). The buffer
/// holds at least 32 bits (real or, once stuck, zeros).
#[inline(always)]
fn decode_long(bits: &mut Bits, t: &Table, e: u32, cinfo: *mut Cinfo) -> u32 {
    if e != 0 {
        bits.consume((e >> 5) & 15);
        return (e >> 12) & 255;
    }
    let mut l = LOOKAHEAD + 1;
    while l <= 16 && bits.peek(l) as i32 > t.maxcode[l as usize] {
        l += 1;
    }
    if l > 16 {
        // No table holds the code: 17 bits consumed and a zero, as in jdhuff.c.
        bits.consume(17);
        // SAFETY: cinfo is live; a warning returns.
        unsafe { clipflow_jpeg_warn_bad_code(cinfo) };
        return 0;
    }
    let code = bits.peek(l);
    bits.consume(l);
    t.huffval[(code as i32 + t.valoffset[l as usize]) as usize & 255] as u32
}

/// The bits [`refill`] leaves in the buffer, at least (or 64 once stuck, zeros past the
/// marker).
const REFILLED: u32 = 56;

/// Tops the buffer up to at least [`REFILLED`] bits: eight bytes at once when none of them is
/// 0xFF, else byte by byte (`refill_bytes`). At a marker or the end of the buffer, gets stuck
/// (see [`Bits`]) and reads zeros from there. `bits` is below 64 unless stuck.
///
/// The eight-byte path runs on every call, without a branch on the bit count (a branch the
/// data decides, so often mispredicted): it merges all of `v` below the buffer's bits and
/// counts only whole bytes, so the bits below `bits` are no longer zeros but the stream's own
/// next bits (none of them past a 0xFF), which a later refill writes again, the same.
#[inline(always)]
fn refill(bits: &mut Bits) {
    debug_assert!(bits.bits < 64 || bits.left == 0);
    if bits.left >= 8 {
        // SAFETY: eight bytes remain at `next`.
        let v =
            u64::from_be_bytes(unsafe { std::ptr::read_unaligned(bits.next as *const [u8; 8]) });
        // A byte of v is 0xFF iff the same byte of !v is zero.
        let inv = !v;
        if inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080 == 0 {
            // Masked so that a full buffer, which decode_mcu keeps off this path, could only
            // garble bits, never move `next` past the buffer.
            let take = (63u32.wrapping_sub(bits.bits) & 63) >> 3;
            bits.buffer |= v >> bits.bits;
            bits.bits |= 56;
            // SAFETY: take <= 7 < 8 bytes remain.
            bits.next = unsafe { bits.next.add(take as usize) };
            bits.left -= take as usize;
            return;
        }
    }
    if bits.bits < REFILLED {
        // Field by field: a copy of the whole struct copies its padding too, and the compiler
        // then holds the padding in a register of the AC loop.
        let Bits {
            buffer,
            bits: count,
            next,
            left,
        } = refill_bytes(Bits { ..*bits });
        *bits = Bits {
            buffer,
            bits: count,
            next,
            left,
        };
    }
}

#[inline(never)]
fn refill_bytes(mut bits: Bits) -> Bits {
    // Once stuck, `left` is 0: the marker (or a long 0xFF run before the end of the data) is
    // not scanned again on every refill.
    let stuck = |mut bits: Bits| {
        // Zeros below the real bits from here on.
        bits.bits = 64;
        bits.left = 0;
        bits
    };
    while bits.bits < REFILLED {
        if bits.left == 0 {
            return stuck(bits);
        }
        // SAFETY: `left` bytes remain at `next`.
        let c = unsafe { *bits.next };
        if c == 0xFF {
            // 0xFF 0x00 is a 0xFF data byte, and so (as in jdhuff.c's slow path) is 0xFF
            // 0xFF ... 0x00; 0xFF then anything else is a marker.
            let mut n = 1;
            // SAFETY: n < left bytes remain at `next`.
            while n < bits.left && unsafe { *bits.next.add(n) } == 0xFF {
                n += 1;
            }
            if n == bits.left || unsafe { *bits.next.add(n) } != 0 {
                return stuck(bits);
            }
            bits.next = unsafe { bits.next.add(n + 1) };
            bits.left -= n + 1;
        } else {
            bits.next = unsafe { bits.next.add(1) };
            bits.left -= 1;
        }
        bits.buffer |= (c as u64) << (56 - bits.bits);
        bits.bits += 8;
    }
    bits
}

/// `jdhuff.c`'s slow path: `jpeg_fill_bit_buffer`, `HUFF_DECODE` and `decode_mcu_slow`,
/// transcribed for the bit buffer above.
struct Slow<'a> {
    bits: Bits,
    cinfo: *mut Cinfo,
    insufficient: &'a mut ffi::boolean,
    unread_marker: *mut c_int,
}

impl Slow<'_> {
    /// `jpeg_fill_bit_buffer` with `nbits` bits wanted.
    fn fill(&mut self, nbits: u32) {
        // SAFETY: cinfo and its source are live; the source's buffer holds `left` bytes.
        unsafe {
            if *self.unread_marker == 0 {
                while self.bits.bits < MIN_GET_BITS {
                    let mut c = self.byte();
                    if c == 0xFF {
                        loop {
                            c = self.byte();
                            if c != 0xFF {
                                break;
                            }
                        }
                        if c == 0 {
                            c = 0xFF;
                        } else {
                            *self.unread_marker = c as c_int;
                            break;
                        }
                    }
                    self.bits.buffer |= (c as u64) << (56 - self.bits.bits);
                    self.bits.bits += 8;
                }
            }
            if nbits > self.bits.bits {
                if *self.insufficient == 0 {
                    clipflow_jpeg_warn_hit_marker(self.cinfo);
                    *self.insufficient = 1;
                }
                // Zero bits (below its valid bits the buffer holds the bytes read before the
                // marker, then zeros).
                self.bits.bits = MIN_GET_BITS;
            }
        }
    }

    /// The source's next byte, refilling the source (for an in-memory one: a fake end
    /// marker, with libjpeg's warning) when it is empty.
    unsafe fn byte(&mut self) -> u8 {
        unsafe {
            if self.bits.left == 0 {
                let src = &mut *(*self.cinfo).src;
                if let Some(fill) = src.fill_input_buffer {
                    fill(&mut *self.cinfo);
                }
                self.bits.next = src.next_input_byte;
                self.bits.left = src.bytes_in_buffer;
                if self.bits.left == 0 {
                    // A source that gives nothing: as the end marker.
                    return 0xD9;
                }
            }
            let c = *self.bits.next;
            self.bits.next = self.bits.next.add(1);
            self.bits.left -= 1;
            c
        }
    }

    fn get(&mut self, n: u32) -> u32 {
        if self.bits.bits < n {
            self.fill(n);
        }
        let v = self.bits.peek(n);
        self.bits.consume(n);
        v
    }

    /// `HUFF_DECODE`.
    fn decode(&mut self, t: &Table) -> u32 {
        if self.bits.bits < LOOKAHEAD {
            self.fill(0);
        }
        let (mut code, mut l) = if self.bits.bits >= LOOKAHEAD {
            let e = t.lookup[self.bits.peek(LOOKAHEAD) as usize];
            if e != 0 {
                self.bits.consume((e >> 5) & 15);
                return (e >> 12) & 255;
            }
            (self.get(LOOKAHEAD + 1), LOOKAHEAD + 1)
        } else {
            (self.get(1), 1)
        };
        while code as i32 > t.maxcode[l as usize] {
            code = (code << 1) | self.get(1);
            l += 1;
        }
        if l > 16 {
            // SAFETY: cinfo is live; a warning returns.
            unsafe { clipflow_jpeg_warn_bad_code(self.cinfo) };
            return 0;
        }
        t.huffval[(code as i32 + t.valoffset[l as usize]) as usize & 255] as u32
    }

    fn block(
        &mut self,
        dc: &Table,
        ac: &Table,
        block: Option<&mut Block>,
        dc_needed: bool,
        ac_needed: bool,
        last_dc: &mut i32,
    ) {
        let s = self.decode(dc);
        let diff = if s != 0 { extend(self.get(s), s) } else { 0 };
        let mut block = block;
        if dc_needed {
            *last_dc = last_dc.wrapping_add(diff);
            if let Some(block) = block.as_deref_mut() {
                block[0] = *last_dc as i16;
            }
        }
        let mut store = if ac_needed { block } else { None };
        let mut k = 1usize;
        while k < 64 {
            let symbol = self.decode(ac);
            let (run, size) = (symbol >> 4, symbol & 15);
            if size != 0 {
                k += run as usize;
                let v = extend(self.get(size), size);
                if let Some(block) = store.as_deref_mut() {
                    block[natural(k)] = v as i16;
                }
            } else if run == 15 {
                k += 15;
            } else {
                break;
            }
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard luminance AC table (ITU T.81, K.5), as libjpeg's `std_huff_tables`.
    fn luminance_ac() -> ffi::JHUFF_TBL {
        let counts = [0u8, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
        let values: [u8; 162] = [
            0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51,
            0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1,
            0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18,
            0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
            0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57,
            0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75,
            0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92,
            0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
            0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
            0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8,
            0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2,
            0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
        ];
        // SAFETY: plain C data.
        let mut t: ffi::JHUFF_TBL = unsafe { std::mem::zeroed() };
        t.bits[1..].copy_from_slice(&counts);
        t.huffval[..values.len()].copy_from_slice(&values);
        t
    }

    /// Files share a built table only when its counts, symbols and kind are the same, and the
    /// thread keeps at most [`RECENT_TABLES`] of them.
    #[test]
    fn tables_are_shared_only_between_equal_contents() {
        let first = shared_table(&luminance_ac(), true);
        assert!(Rc::ptr_eq(&first, &shared_table(&luminance_ac(), true)));
        assert!(!Rc::ptr_eq(&first, &shared_table(&luminance_ac(), false)));
        let mut symbols = luminance_ac();
        symbols.huffval.swap(0, 1);
        let other = shared_table(&symbols, true);
        assert!(!Rc::ptr_eq(&first, &other));
        assert_eq!(other.huffval[0], 0x02);
        let mut counts = luminance_ac();
        counts.bits[16] -= 1;
        assert!(!Rc::ptr_eq(&first, &shared_table(&counts, true)));
        for i in 0..3 * RECENT_TABLES {
            let mut t = luminance_ac();
            t.huffval[200] = i as u8;
            shared_table(&t, true);
        }
        RECENT.with(|r| assert_eq!(r.borrow().len(), RECENT_TABLES));
        // Evicted, so built anew; the earlier one lives on where it is held.
        assert!(!Rc::ptr_eq(&first, &shared_table(&luminance_ac(), true)));
    }

    /// Every lookup entry against a bit-by-bit decode of the same bits (Figure F.16), by hand:
    /// "00" is 0x01 (run 0, size 1), "1010" is the end of block, "11111111001" is 0xF0.
    #[test]
    fn lookup_entries_agree_with_bit_by_bit_decoding() {
        let t = Table::new(&luminance_ac(), true);
        let entry = |bits: &str| {
            let v = u32::from_str_radix(bits, 2).unwrap() << (LOOKAHEAD - bits.len() as u32);
            t.lookup[v as usize]
        };
        // "00" then value bit "1": +1, three bits in all.
        let e = entry("001");
        assert_eq!(
            (
                e & 31,
                e & WITH_VALUE != 0,
                (e >> 12) & 255,
                (e as i32) >> 20
            ),
            (3, true, 0x01, 1)
        );
        // "00" then "0": -1.
        assert_eq!((entry("000") as i32) >> 20, -1);
        let e = entry("1010");
        assert_eq!(
            (e & 31, e & END_OF_BLOCK, (e >> 12) & 255),
            (4, END_OF_BLOCK, 0)
        );
        // 0xF0 has an 11-bit code: longer than the lookahead.
        assert_eq!(entry("1111111100"), 0);
        assert_eq!(t.maxcode[11], 0b11111111001);
        for look in 0..1u32 << LOOKAHEAD {
            let e = t.lookup[look as usize];
            match code_at(&t, look, 0) {
                None => assert_eq!(e, 0, "{look:010b}"),
                Some((l, symbol)) => {
                    assert_eq!(
                        ((e >> 5) & 15, (e >> 12) & 255),
                        (l, symbol as u32),
                        "{look:010b}"
                    );
                    let size = symbol as u32 & 15;
                    if e & WITH_VALUE != 0 && size > 0 {
                        let raw = (look >> (LOOKAHEAD - l - size)) & ((1 << size) - 1);
                        assert_eq!((e as i32) >> 20, extend(raw, size));
                        assert_eq!(e & 31, l + size);
                    }
                }
            }
        }
    }

    /// The code that starts `at` bits into the lookahead bits `look`, decoded bit by bit with
    /// maxcode/valoffset (Figure F.16): its length and symbol, if it ends within them.
    fn code_at(t: &Table, look: u32, at: u32) -> Option<(u32, u8)> {
        let (mut code, mut l) = (0u32, 0u32);
        while at + l < LOOKAHEAD {
            code = code << 1 | (look >> (LOOKAHEAD - 1 - at - l)) & 1;
            l += 1;
            if code as i32 <= t.maxcode[l as usize] {
                return Some((
                    l,
                    t.huffval[(code as i32 + t.valoffset[l as usize]) as usize],
                ));
            }
        }
        None
    }

    /// Every pair entry, at every block position, against jdhuff.c's loop decoding the same
    /// bits one symbol at a time (bit by bit, Figure F.16): the same block, the same bits
    /// used, the same next position, and a second coefficient whenever the bits hold one
    /// within the block. Run on the standard table and on one whose codes are all short.
    #[test]
    fn pair_entries_decode_what_one_symbol_at_a_time_decodes() {
        // SAFETY: plain C data.
        let mut short: ffi::JHUFF_TBL = unsafe { std::mem::zeroed() };
        // 2-bit codes 00 -> 0x01, 01 -> 0xF0, 10 -> 0x00 (end), 3-bit 110 -> 0x21,
        // 111 -> 0x12: pairs of every kind, runs that leave the block.
        short.bits[2] = 3;
        short.bits[3] = 2;
        short.huffval[..5].copy_from_slice(&[0x01, 0xF0, 0x00, 0x21, 0x12]);
        for source in [luminance_ac(), short] {
            let t = Table::new(&source, true);
            let mut pairs = 0;
            for look in 0..1u32 << LOOKAHEAD {
                let bit = |at: u32| (look >> (LOOKAHEAD - 1 - at)) & 1;
                // One symbol from bit `at`, with its value, if both lie within the lookahead.
                let symbol_at = |at: u32| -> Option<(u32, u32, i32)> {
                    let (l, sym) = code_at(&t, look, at)?;
                    let size = sym as u32 & 15;
                    if at + l + size > LOOKAHEAD {
                        return None;
                    }
                    let raw = (at + l..at + l + size).fold(0, |v, b| v << 1 | bit(b));
                    let value = if size == 0 { 0 } else { extend(raw, size) };
                    Some((l + size, sym as u32, value))
                };
                let p = t.pairs[look as usize];
                if symbol_at(0).is_none() {
                    assert_eq!(p, 0, "{look:010b}");
                    continue;
                }
                for k0 in 1..64usize {
                    // jdhuff.c's decode_mcu loop, at most two symbols.
                    let (mut want, mut k, mut used, mut ended) = ([0i16; 64], k0, 0u32, false);
                    for _ in 0..2 {
                        let Some((n, sym, value)) = symbol_at(used) else {
                            break;
                        };
                        used += n;
                        let (run, size) = ((sym >> 4) as usize, sym & 15);
                        if size != 0 {
                            k += run;
                            want[natural(k)] = value as i16;
                        } else if run == 15 {
                            k += 15;
                        } else {
                            ended = true;
                            break;
                        }
                        k += 1;
                        if k >= 64 {
                            ended = true;
                            break;
                        }
                    }
                    let mut got = [0i16; 64];
                    let mut read = Bits {
                        buffer: u64::MAX,
                        bits: 64,
                        next: std::ptr::null(),
                        left: 0,
                    };
                    let got_k = pair_step::<true>(&mut read, p, k0, &mut got);
                    let got_used = 64 - read.bits;
                    let case = format!("{look:010b} at {k0}");
                    assert_eq!(read.buffer, u64::MAX << got_used, "{case}");
                    assert_eq!((got, got_used), (want, used), "{case}");
                    assert_eq!(got_k >= 64, ended, "{case}");
                    if !ended {
                        assert_eq!(got_k, k, "{case}");
                    }
                    pairs += usize::from(got_used > (p >> 6 & 15) as u32);
                }
            }
            assert!(pairs > 0);
        }
    }

    /// A zero-size AC symbol other than 0xF0 ends the block in jdhuff.c ("if r != 15 break"),
    /// whatever its run: an unusual table may hold one (the differential fuzzer's find).
    #[test]
    fn every_zero_size_symbol_but_a_run_of_16_ends_the_block() {
        // SAFETY: plain C data.
        let mut t: ffi::JHUFF_TBL = unsafe { std::mem::zeroed() };
        // Four 2-bit codes: 00 -> 0x30, 01 -> 0xF0, 10 -> 0x00, 11 -> 0x01.
        t.bits[2] = 4;
        t.huffval[..4].copy_from_slice(&[0x30, 0xF0, 0x00, 0x01]);
        let t = Table::new(&t, true);
        let entry = |code: usize| t.lookup[code << (LOOKAHEAD - 2)];
        assert_ne!(entry(0b00) & END_OF_BLOCK, 0);
        assert_eq!(entry(0b01) & END_OF_BLOCK, 0);
        assert_ne!(entry(0b10) & END_OF_BLOCK, 0);
        assert_eq!(entry(0b11) & END_OF_BLOCK, 0);
    }

    #[test]
    fn extend_is_huff_extend() {
        // HUFF_EXTEND(x, s) = x < 2^(s-1) ? x - 2^s + 1 : x, for s in 1..=15.
        assert_eq!(extend(0, 1), -1);
        assert_eq!(extend(1, 1), 1);
        assert_eq!(extend(0b011, 3), -4);
        assert_eq!(extend(0b100, 3), 4);
        assert_eq!(extend(0, 15), -32767);
        assert_eq!(extend(0x7FFF, 15), 0x7FFF);
    }

    /// After every refill the buffer's top `bits` bits are the stream's next ones, whatever
    /// was consumed before (the bits below them may hold the stream's following bits).
    #[test]
    fn refills_keep_the_stream_bits_on_top() {
        let mut seed = 7u64;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((seed >> 56) as u8).min(0xFE)
            })
            .collect();
        // The stream's `n` bits from bit `pos`, at the top of a u64.
        let stream = |pos: usize, n: u32| -> u64 {
            (0..n as usize).fold(0u64, |v, i| {
                let bit = (bytes[(pos + i) / 8] >> (7 - (pos + i) % 8)) & 1;
                v | (bit as u64) << (63 - i)
            })
        };
        let top = |b: &Bits| {
            if b.bits == 0 {
                0
            } else {
                b.buffer & !(u64::MAX >> b.bits)
            }
        };
        let mut bits = Bits {
            buffer: 0,
            bits: 0,
            next: bytes.as_ptr(),
            left: bytes.len(),
        };
        let mut pos = 0usize;
        for step in 0..3000u32 {
            refill(&mut bits);
            assert!(
                bits.bits >= REFILLED && bits.bits <= 63,
                "step {step}: {} bits",
                bits.bits
            );
            assert_eq!(top(&bits), stream(pos, bits.bits), "step {step}");
            let n = 1 + (step * 7 + step / 3) % 31;
            bits.consume(n);
            pos += n as usize;
            if pos + 64 > 8 * bytes.len() {
                break;
            }
        }
    }

    /// At a marker, at a run of 0xFF bytes that is not stuffing, and at the end of the buffer,
    /// the reader gets stuck: the bytes before on top of the buffer, zeros below them, 64 bits,
    /// `left` 0, and no byte read after that (a later refill changes nothing but the count).
    #[test]
    fn the_reader_gets_stuck_at_markers_and_at_the_end() {
        let cases: [(&[u8], &[u8]); 5] = [
            (&[0x12, 0x34, 0xFF, 0xD9], &[0x12, 0x34]),
            (
                &[0x12, 0xFF, 0x00, 0x56, 0xFF, 0xFF, 0xD0],
                &[0x12, 0xFF, 0x56],
            ),
            (&[0x12, 0x34, 0x56], &[0x12, 0x34, 0x56]),
            (&[0xAB, 0xFF, 0xFF, 0xFF], &[0xAB]),
            // Long enough for the eight-byte path, which sees the 0xFF and leaves it.
            (
                &[1, 2, 3, 4, 5, 6, 0xFF, 0xD9, 0, 0, 0, 0],
                &[1, 2, 3, 4, 5, 6],
            ),
        ];
        for (data, real) in cases {
            let mut bits = Bits {
                buffer: 0,
                bits: 0,
                next: data.as_ptr(),
                left: data.len(),
            };
            refill(&mut bits);
            let want = real
                .iter()
                .enumerate()
                .fold(0u64, |v, (i, &b)| v | (b as u64) << (56 - 8 * i));
            assert_eq!(
                (bits.buffer, bits.bits, bits.left),
                (want, 64, 0),
                "{data:02X?}"
            );
            bits.consume(20);
            refill(&mut bits);
            assert_eq!(
                (bits.buffer, bits.bits, bits.left),
                (want << 20, 64, 0),
                "{data:02X?}"
            );
        }
    }

    /// The AC loop's bit budget at its limits: a table whose short code takes exactly
    /// LOOKAHEAD bits with its value (1-bit code, size 9) and whose long code takes 31 (16-bit
    /// code, size 15), in random orders so that long codes fall at every place of a refill
    /// group; values all ones, so the stream is full of stuffed 0xFF bytes and the eight-byte
    /// refill rarely runs (nothing below the buffer's bits but zeros: a lookup that reads past
    /// them decodes wrongly).
    #[test]
    fn ac_lookups_never_read_past_the_buffered_bits() {
        // SAFETY: plain C data.
        let mut source: ffi::JHUFF_TBL = unsafe { std::mem::zeroed() };
        // "0" -> 0x09, "10" -> 0x00 (end of block), "1100000000000000" -> 0x0F.
        source.bits[1] = 1;
        source.bits[2] = 1;
        source.bits[16] = 1;
        source.huffval[..3].copy_from_slice(&[0x09, 0x00, 0x0F]);
        let t = Table::new(&source, true);
        let mut seed = 99u64;
        let mut random = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let (mut out, mut acc, mut nacc) = (Vec::new(), 0u64, 0u32);
        let mut put = |out: &mut Vec<u8>, v: u64, n: u32| {
            acc = acc << n | v;
            nacc += n;
            while nacc >= 8 {
                nacc -= 8;
                let byte = (acc >> nacc) as u8;
                out.push(byte);
                if byte == 0xFF {
                    out.push(0);
                }
            }
        };
        let mut want = Vec::new();
        for _ in 0..3000 {
            let mut block = [0i16; 64];
            let mut k = 1;
            let end = if random(4) == 0 {
                1 + random(63) as usize
            } else {
                64
            };
            while k < end {
                let (v, size) = if random(3) == 0 {
                    (0x7FFFu64, 15)
                } else {
                    (0x1FF, 9)
                };
                let v = if random(8) == 0 { random(1 << size) } else { v };
                if size == 15 {
                    put(&mut out, 0b1100000000000000, 16);
                } else {
                    put(&mut out, 0, 1);
                }
                put(&mut out, v, size);
                block[natural(k)] = extend(v as u32, size) as i16;
                k += 1;
            }
            if end < 64 {
                put(&mut out, 0b10, 2);
            }
            want.push(block);
        }
        put(&mut out, 0, 7);
        out.extend([0u8; 64]);
        assert!(out.iter().filter(|&&b| b == 0xFF).count() * 20 > out.len());
        let mut bits = Bits {
            buffer: 0,
            bits: 0,
            next: out.as_ptr(),
            left: out.len(),
        };
        for (i, want) in want.iter().enumerate() {
            let mut got = [0i16; 64];
            ac_coefficients::<true>(&mut bits, &t, &mut got, std::ptr::null_mut());
            assert!(bits.left != 0 && bits.bits < 64, "block {i}");
            assert_eq!(&got, want, "block {i}");
        }
    }

    /// libjpeg rejects such tables before clipflow's decoder sees them; built anyway, they
    /// must not index out of bounds.
    #[test]
    fn invalid_tables_build_without_panicking() {
        // SAFETY: plain C data.
        let mut t: ffi::JHUFF_TBL = unsafe { std::mem::zeroed() };
        // Over-subscribed: 255 codes of length 1, 255 of length 2...
        t.bits[1..].fill(255);
        let _ = Table::new(&t, true);
        t.bits.fill(0);
        t.bits[3] = 200;
        let _ = Table::new(&t, true);
        let _ = Table::new(&unsafe { std::mem::zeroed() }, true);
    }
}
