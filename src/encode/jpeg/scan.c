/*
 * The few of libjpeg's internals that clipflow's entropy decoder (huffman.rs) needs, read
 * through libjpeg's own headers so that no struct layout is copied into Rust: the Rust binding
 * keeps these fields private, and they are internal to libjpeg (jpegint.h).
 *
 * Built by build.rs against the headers of the libjpeg-turbo that mozjpeg-sys compiles.
 */

#define JPEG_INTERNALS
#include "jinclude.h"
#include "jpeglib.h"
#include "jerror.h"
#include "jpegcomp.h"

#include <stddef.h>

/* huffman.rs declares the same three fields at the head of its decoder. */
_Static_assert(offsetof(struct jpeg_entropy_decoder, start_pass) == 0, "layout");
_Static_assert(offsetof(struct jpeg_entropy_decoder, decode_mcu) == sizeof(void *), "layout");
_Static_assert(offsetof(struct jpeg_entropy_decoder, insufficient_data) == 2 * sizeof(void *),
               "layout");

/* Mirrored by `ScanInfo` in huffman.rs. */
typedef struct {
  int blocks_in_mcu;
  int comps_in_scan;
  unsigned int restart_interval;
  int block_component[D_MAX_BLOCKS_IN_MCU]; /* index within the scan */
  const JHUFF_TBL *dc_table[D_MAX_BLOCKS_IN_MCU];
  const JHUFF_TBL *ac_table[D_MAX_BLOCKS_IN_MCU];
  int dc_needed[D_MAX_BLOCKS_IN_MCU];
  int ac_needed[D_MAX_BLOCKS_IN_MCU];
  int *unread_marker;
} clipflow_scan_info;

/*
 * Describes the scan libjpeg is about to decode, as jdhuff.c's start_pass_huff_decoder sees
 * it. Returns 0 when the scan is not one that jdhuff.c's sequential decoder reads, with all
 * the image's components (progressive, arithmetic coding, several scans, not 8-bit): those
 * stay with libjpeg's own decoders.
 */
int clipflow_jpeg_scan_info(j_decompress_ptr cinfo, clipflow_scan_info *out)
{
  int blkn;

  if (cinfo->progressive_mode || cinfo->arith_code || cinfo->data_precision != 8 ||
      jpeg_has_multiple_scans(cinfo) || cinfo->comps_in_scan < 1 ||
      cinfo->comps_in_scan > MAX_COMPS_IN_SCAN || cinfo->blocks_in_MCU < 1 ||
      cinfo->blocks_in_MCU > D_MAX_BLOCKS_IN_MCU || cinfo->entropy == NULL ||
      cinfo->marker == NULL)
    return 0;
  out->blocks_in_mcu = cinfo->blocks_in_MCU;
  out->comps_in_scan = cinfo->comps_in_scan;
  out->restart_interval = cinfo->restart_interval;
  for (blkn = 0; blkn < cinfo->blocks_in_MCU; blkn++) {
    int ci = cinfo->MCU_membership[blkn];
    jpeg_component_info *compptr;
    if (ci < 0 || ci >= cinfo->comps_in_scan)
      return 0;
    compptr = cinfo->cur_comp_info[ci];
    if (compptr->dc_tbl_no < 0 || compptr->dc_tbl_no >= NUM_HUFF_TBLS ||
        compptr->ac_tbl_no < 0 || compptr->ac_tbl_no >= NUM_HUFF_TBLS)
      return 0;
    out->block_component[blkn] = ci;
    out->dc_table[blkn] = cinfo->dc_huff_tbl_ptrs[compptr->dc_tbl_no];
    out->ac_table[blkn] = cinfo->ac_huff_tbl_ptrs[compptr->ac_tbl_no];
    if (out->dc_table[blkn] == NULL || out->ac_table[blkn] == NULL)
      return 0;
    /* As jdhuff.c: the ACs are not needed for a 1/8-size image. */
    out->dc_needed[blkn] = compptr->component_needed ? 1 : 0;
    out->ac_needed[blkn] = compptr->component_needed && compptr->_DCT_scaled_size > 1;
  }
  out->unread_marker = &cinfo->unread_marker;
  return 1;
}

/* Puts `decoder` where libjpeg's entropy decoder was (whose memory libjpeg's pool keeps). */
void clipflow_jpeg_set_entropy(j_decompress_ptr cinfo, struct jpeg_entropy_decoder *decoder)
{
  cinfo->entropy = decoder;
}

/*
 * jdhuff.c's process_restart, less the decoder's own state: the unused whole bytes of the bit
 * buffer count as discarded, then libjpeg's marker reader reads (or resynchronises to) the
 * restart marker. Returns FALSE only on suspension, which an in-memory source never asks.
 */
boolean clipflow_jpeg_read_restart(j_decompress_ptr cinfo, int unused_bytes)
{
  cinfo->marker->discarded_bytes += (unsigned int)unused_bytes;
  return (*cinfo->marker->read_restart_marker) (cinfo);
}

/* jdhuff.c's warning on running into a marker inside the entropy data. */
void clipflow_jpeg_warn_hit_marker(j_decompress_ptr cinfo)
{
  WARNMS(cinfo, JWRN_HIT_MARKER);
}

/* jdhuff.c's warning on a code that no table holds. */
void clipflow_jpeg_warn_bad_code(j_decompress_ptr cinfo)
{
  WARNMS(cinfo, JWRN_HUFF_BAD_CODE);
}
