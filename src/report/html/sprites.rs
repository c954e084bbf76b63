//! Thumbnails for the interactive maps, packed into sprite sheets.
//!
//! One map point per image means hundreds to thousands of thumbnails, and a page often holds a
//! dozen maps of the same sample. Each thumbnail is therefore stored once per page, in a
//! shared [`ThumbnailSheet`] that every map refers to by index, and the thumbnails are tiled
//! into a few large JPEGs rather than one file each: a JPEG's own headers and tables cost
//! ~600 bytes, as much as a small thumbnail's pixels.
//!
//! Tiles are squares of `tile` pixels, a multiple of 16 so no 16×16 JPEG block (4:2:0 chroma)
//! straddles two thumbnails and one image's colours never bleed into its neighbour's. A sheet
//! holds at most 32 × 32 tiles (2048 px square at 64 px tiles); the builder keeps one sheet's
//! pixels in memory at a time, so memory does not grow with the number of images.

use super::ReportError;

/// Tiles per sheet row and column.
const GRID: u32 = 32;

/// JPEG quality of the sheets (mozjpeg's scale): thumbnails are for recognising an image at a
/// glance.
const QUALITY: f32 = 75.0;

/// Grey behind images that do not fill their tile (never shown: only the image's own
/// rectangle is drawn).
const PADDING: image::Rgb<u8> = image::Rgb([128, 128, 128]);

/// Where one thumbnail is: sheet index, top-left corner and size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub sheet: u32,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Thumbnails packed into JPEG sprite sheets; a thumbnail is named by its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailSheet {
    tile: u32,
    sheets: Vec<Vec<u8>>,
    tiles: Vec<Tile>,
}

impl ThumbnailSheet {
    /// The side of a tile in pixels.
    pub fn tile_size(&self) -> u32 {
        self.tile
    }

    /// Number of thumbnails.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// The JPEG bytes of each sheet.
    pub fn sheets(&self) -> &[Vec<u8>] {
        &self.sheets
    }

    /// Where thumbnail `index` is.
    pub fn tile(&self, index: usize) -> Option<Tile> {
        self.tiles.get(index).copied()
    }
}

/// Builds a [`ThumbnailSheet`] one image at a time.
pub struct ThumbnailSheetBuilder {
    tile: u32,
    sheets: Vec<Vec<u8>>,
    tiles: Vec<Tile>,
    current: Option<image::RgbImage>,
    /// Tiles placed on the current sheet.
    placed: u32,
}

impl ThumbnailSheetBuilder {
    /// Tiles of `tile` pixels, rounded up to a multiple of 16 (at least 16, at most 256).
    pub fn new(tile: u32) -> ThumbnailSheetBuilder {
        ThumbnailSheetBuilder {
            tile: tile.clamp(16, 256).div_ceil(16) * 16,
            sheets: Vec::new(),
            tiles: Vec::new(),
            current: None,
            placed: 0,
        }
    }

    /// Shrinks `img` to fit a tile (never enlarges it; Triangle filter) and places it; returns
    /// its index.
    pub fn add(&mut self, img: &image::RgbImage) -> Result<usize, ReportError> {
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err(ReportError::Thumbnail(format!(
                "cannot make a thumbnail of a {w}×{h} image"
            )));
        }
        let t = self.tile;
        let scale = (f64::from(t) / f64::from(w.max(h))).min(1.0);
        let size = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, t);
        let (tw, th) = (size(w), size(h));
        let resized;
        let source = if (tw, th) == (w, h) {
            img
        } else {
            resized = image::imageops::resize(img, tw, th, image::imageops::FilterType::Triangle);
            &resized
        };
        if self.placed == GRID * GRID {
            self.flush()?;
        }
        let sheet = self
            .current
            .get_or_insert_with(|| image::RgbImage::from_pixel(GRID * t, GRID * t, PADDING));
        let (col, row) = (self.placed % GRID, self.placed / GRID);
        let (x, y) = (col * t, row * t);
        image::imageops::replace(sheet, source, i64::from(x), i64::from(y));
        self.tiles.push(Tile {
            sheet: self.sheets.len() as u32,
            x,
            y,
            w: tw,
            h: th,
        });
        self.placed += 1;
        Ok(self.tiles.len() - 1)
    }

    /// Encodes the current sheet, cropped to the rows of tiles it uses.
    fn flush(&mut self) -> Result<(), ReportError> {
        let Some(sheet) = self.current.take() else {
            return Ok(());
        };
        let t = self.tile;
        let rows = self.placed.div_ceil(GRID).max(1);
        let cols = if rows == 1 { self.placed.max(1) } else { GRID };
        let used = image::imageops::crop_imm(&sheet, 0, 0, cols * t, rows * t).to_image();
        let bytes = encode_jpeg(&used)?;
        self.sheets.push(bytes);
        self.placed = 0;
        Ok(())
    }

    pub fn finish(mut self) -> Result<ThumbnailSheet, ReportError> {
        self.flush()?;
        Ok(ThumbnailSheet {
            tile: self.tile,
            sheets: self.sheets,
            tiles: self.tiles,
        })
    }
}

/// Encodes a sheet with mozjpeg (already linked for decoding): progressive, optimised Huffman
/// tables and trellis quantisation make the demo's 600 texture thumbnails about half
/// smaller than the `image` crate's baseline encoder at the same visual quality.
fn encode_jpeg(img: &image::RgbImage) -> Result<Vec<u8>, ReportError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let encoded = std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(w, h);
        c.set_quality(QUALITY);
        let mut started = c.start_compress(Vec::new())?;
        started.write_scanlines(img.as_raw())?;
        started.finish()
    });
    match encoded {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ReportError::Thumbnail(format!("sprite sheet: {e}"))),
        Err(_) => Err(ReportError::Thumbnail(
            "sprite sheet: the JPEG encoder failed".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_hold_their_images() {
        let mut b = ThumbnailSheetBuilder::new(20);
        assert_eq!(b.tile, 32);
        let colours: Vec<[u8; 3]> = (0..GRID * GRID + 3)
            .map(|i| {
                [
                    (i * 37 % 256) as u8,
                    (i * 91 % 256) as u8,
                    (i * 13 % 256) as u8,
                ]
            })
            .collect();
        for (i, c) in colours.iter().enumerate() {
            // Alternate landscape and portrait, larger and smaller than a tile.
            let (w, h) = if i % 2 == 0 { (100, 50) } else { (10, 24) };
            let img = image::RgbImage::from_pixel(w, h, image::Rgb(*c));
            assert_eq!(b.add(&img).unwrap(), i);
        }
        let s = b.finish().unwrap();
        assert_eq!(s.len(), colours.len());
        assert_eq!(s.sheets().len(), 2);
        assert_eq!(
            s.tile(0).unwrap(),
            Tile {
                sheet: 0,
                x: 0,
                y: 0,
                w: 32,
                h: 16
            }
        );
        assert_eq!(
            s.tile(1).unwrap(),
            Tile {
                sheet: 0,
                x: 32,
                y: 0,
                w: 10,
                h: 24
            }
        );
        let last = s.tile(colours.len() - 1).unwrap();
        assert_eq!((last.sheet, last.x, last.y), (1, 64, 0));
        let sheets: Vec<image::RgbImage> = s
            .sheets()
            .iter()
            .map(|b| image::load_from_memory(b).unwrap().to_rgb8())
            .collect();
        assert_eq!(sheets[0].dimensions(), (GRID * 32, GRID * 32));
        assert_eq!(
            sheets[1].dimensions(),
            (3 * 32, 32),
            "cropped to what it uses"
        );
        for (i, c) in colours.iter().enumerate() {
            let t = s.tile(i).unwrap();
            let px = sheets[t.sheet as usize].get_pixel(t.x + t.w / 2, t.y + t.h / 2);
            for k in 0..3 {
                assert!(
                    (i32::from(px[k]) - i32::from(c[k])).abs() <= 12,
                    "tile {i}: {px:?} vs {c:?}"
                );
            }
        }
        assert!(ThumbnailSheetBuilder::new(64)
            .add(&image::RgbImage::new(0, 3))
            .is_err());
    }
}
