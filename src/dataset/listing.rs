//! The item listing of a dataset listed up front (folder, DTD, Parquet), stored column-wise.
//!
//! A `Vec` of items with a `String` per id, label and caption costs five heap allocations and
//! about 150 bytes of headers per item before any text: 1.5 GB of overhead at 10M rows. Here
//! every text column is one arena (the bytes end to end plus an 8-byte end offset per value),
//! labels and attribute values are dictionary codes (4 bytes), Parquet rows listed in order
//! need no image reference at all (the item number gives file and row) and Parquet's default
//! ids (`<file stem>:<row>`) are not stored either but derived from the row; other images are
//! 16-byte slots.
//! An [`Item`] with owned strings exists only for the chunk of items being worked on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ImageRef, Item};

/// Strings packed end to end: one allocation for millions of values.
#[derive(Debug, Default, Clone)]
pub(crate) struct TextArena {
    bytes: String,
    ends: Vec<u64>,
}

impl TextArena {
    pub fn push(&mut self, s: &str) {
        self.bytes.push_str(s);
        self.ends.push(self.bytes.len() as u64);
    }

    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// Low-cardinality optional text (labels, attribute values) as codes into a dictionary.
#[derive(Debug, Default, Clone)]
pub(crate) struct Codes {
    codes: Vec<u32>,
    names: Vec<String>,
    index: HashMap<String, u32>,
}

const NONE: u32 = u32::MAX;

impl Codes {
    fn push(&mut self, value: Option<&str>) {
        let code = match value {
            None => NONE,
            Some(v) => match self.index.get(v) {
                Some(&c) => c,
                None => {
                    let c = self.names.len() as u32;
                    self.names.push(v.to_string());
                    self.index.insert(v.to_string(), c);
                    c
                }
            },
        };
        self.codes.push(code);
    }

    fn get(&self, i: usize) -> Option<&str> {
        match self.codes[i] {
            NONE => None,
            c => Some(self.names[c as usize].as_str()),
        }
    }

    fn code(&self, i: usize) -> Option<u32> {
        match self.codes[i] {
            NONE => None,
            c => Some(c),
        }
    }

    fn finish(&mut self) {
        self.index = HashMap::new();
        self.codes.shrink_to_fit();
    }
}

/// Where an item's image is, in 16 bytes.
#[derive(Debug, Clone, Copy)]
enum ImageSlot {
    /// Index into the path arena.
    File(u32),
    ParquetRow {
        file: u32,
        row: u64,
    },
}

/// Every item's image.
#[derive(Debug)]
enum Images {
    /// Parquet rows in file order, every row once: item `r` is row `r - starts[f]` of the last
    /// file `f` with `starts[f] <= r`. Costs nothing per item.
    ParquetInOrder {
        starts: Vec<u64>,
        len: usize,
    },
    Slots(Vec<ImageSlot>),
}

impl Default for Images {
    fn default() -> Self {
        Images::ParquetInOrder {
            starts: Vec::new(),
            len: 0,
        }
    }
}

impl Images {
    fn len(&self) -> usize {
        match self {
            Images::ParquetInOrder { len, .. } => *len,
            Images::Slots(s) => s.len(),
        }
    }

    fn get(&self, r: usize) -> ImageSlot {
        match self {
            Images::Slots(s) => s[r],
            Images::ParquetInOrder { starts, .. } => {
                let f = starts.partition_point(|&s| s <= r as u64) - 1;
                ImageSlot::ParquetRow {
                    file: f as u32,
                    row: r as u64 - starts[f],
                }
            }
        }
    }

    fn push(&mut self, slot: ImageSlot) {
        if let (Images::ParquetInOrder { starts, len }, ImageSlot::ParquetRow { file, row }) =
            (&mut *self, slot)
        {
            let n = *len as u64;
            let current = starts.len().checked_sub(1);
            let file = file as usize;
            let continues = current == Some(file) && starts[file] + row == n;
            let opens = current.is_none_or(|c| file > c) && row == 0;
            if continues || opens {
                while starts.len() <= file {
                    starts.push(n);
                }
                *len += 1;
                return;
            }
        }
        if let Images::ParquetInOrder { len, .. } = self {
            let slots: Vec<ImageSlot> = (0..*len).map(|r| self.get(r)).collect();
            *self = Images::Slots(slots);
        }
        if let Images::Slots(s) = self {
            s.push(slot);
        }
    }

    fn reserve(&mut self, n: usize) {
        if let Images::Slots(s) = self {
            s.reserve(n);
        }
    }

    fn shrink(&mut self) {
        if let Images::Slots(s) = self {
            s.shrink_to_fit();
        }
    }
}

/// One item as a listing source hands it over.
pub(crate) struct NewItem<'a> {
    /// `None`: the id is derived from the image (`<file stem>:<row>` for a Parquet row).
    pub id: Option<&'a str>,
    pub label: Option<&'a str>,
    pub captions: &'a [&'a str],
    pub image: ImageRef,
    pub attributes: &'a [Option<&'a str>],
}

/// The listed items, column by column.
#[derive(Debug, Default)]
pub struct ItemTable {
    /// Stored ids, or empty when every id is derived from its Parquet row.
    ids: TextArena,
    ids_derived: bool,
    /// File stems of the Parquet sources, for derived ids.
    stems: Vec<String>,
    labels: Codes,
    captions: TextArena,
    /// Item `i`'s captions are `captions[caption_ends[i-1]..caption_ends[i]]`.
    caption_ends: Vec<u64>,
    images: Images,
    paths: TextArena,
    attributes: Vec<Codes>,
    /// The kept rows after sampling, in order; `None` keeps every row.
    selection: Option<Vec<u32>>,
}

impl ItemTable {
    /// An empty table whose derived ids (if any) use these Parquet file stems.
    pub(crate) fn new(attribute_count: usize, stems: Vec<String>) -> ItemTable {
        ItemTable {
            attributes: vec![Codes::default(); attribute_count],
            stems,
            ..ItemTable::default()
        }
    }

    /// Makes room for `rows` more items in the fixed-size columns (their final size is known
    /// from Parquet footers, and growing by doubling would leave up to half of them unused).
    pub(crate) fn reserve(&mut self, rows: usize, stored_ids: bool) {
        self.labels.codes.reserve_exact(rows);
        self.caption_ends.reserve_exact(rows);
        self.images.reserve(rows);
        if stored_ids {
            self.ids.ends.reserve_exact(rows);
        }
        for a in &mut self.attributes {
            a.codes.reserve_exact(rows);
        }
    }

    /// Appends an item. Ids are either all stored or all derived.
    pub(crate) fn push(&mut self, item: NewItem<'_>) -> Result<(), String> {
        let row = self.images.len();
        if row >= u32::MAX as usize {
            return Err("more than 4 billion items".into());
        }
        match item.id {
            Some(id) if row == 0 || !self.ids_derived => self.ids.push(id),
            None if row == 0 || self.ids_derived => self.ids_derived = true,
            _ => return Err("internal: ids must be all stored or all derived".into()),
        }
        self.labels.push(item.label);
        for c in item.captions {
            self.captions.push(c);
        }
        self.caption_ends.push(self.captions.len() as u64);
        let slot = match item.image {
            ImageRef::File(p) => {
                if self.images.len() == 0 {
                    self.images = Images::Slots(Vec::new());
                }
                self.paths.push(&path_to_text(&p));
                ImageSlot::File((self.paths.len() - 1) as u32)
            }
            ImageRef::ParquetRow { file, row } => ImageSlot::ParquetRow {
                file: file as u32,
                row,
            },
            ImageRef::TarMember { .. } => {
                return Err("internal: tar members are listed per shard".into())
            }
        };
        self.images.push(slot);
        for (codes, v) in self.attributes.iter_mut().zip(item.attributes) {
            codes.push(*v);
        }
        Ok(())
    }

    /// Merges rows with the same (stored) id into one item each, in order of first appearance:
    /// the first row's image, label and attributes, every row's captions in row order. Also
    /// returns how many items had rows with different labels, and one of them. Sorting row
    /// numbers by id (4 bytes per row) finds the groups without a hash map of every id.
    pub(crate) fn grouped(self) -> (ItemTable, Option<(usize, String)>) {
        let n = self.rows();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by(|&a, &b| self.ids.get(a as usize).cmp(self.ids.get(b as usize)));
        // After the stable sort a group is a run of `order`, in row order, led by its first
        // row: span[first row] = that run.
        let mut span: Vec<(u32, u32)> = vec![(u32::MAX, 0); n];
        let mut start = 0;
        while start < n {
            let first = order[start] as usize;
            let mut end = start + 1;
            while end < n && self.ids.get(order[end] as usize) == self.ids.get(first) {
                end += 1;
            }
            span[first] = (start as u32, end as u32);
            start = end;
        }
        let mut out = ItemTable::new(self.attributes.len(), self.stems.clone());
        let mut conflicts = 0usize;
        let mut example = None;
        let mut captions: Vec<&str> = Vec::new();
        let mut attributes: Vec<Option<&str>> = Vec::new();
        for (row, &(first, end)) in span.iter().enumerate() {
            if first == u32::MAX {
                continue; // not the first row of its group
            }
            let rows = &order[first as usize..end as usize];
            captions.clear();
            let label = self.labels.get(row);
            let mut differ = false;
            for &r in rows {
                let r = r as usize;
                let start = if r == 0 {
                    0
                } else {
                    self.caption_ends[r - 1] as usize
                };
                captions
                    .extend((start..self.caption_ends[r] as usize).map(|c| self.captions.get(c)));
                differ |= self.labels.get(r) != label;
            }
            if differ {
                conflicts += 1;
                example.get_or_insert_with(|| self.ids.get(row).to_string());
            }
            attributes.clear();
            attributes.extend(self.attributes.iter().map(|a| a.get(row)));
            let pushed = out.push(NewItem {
                id: Some(self.ids.get(row)),
                label,
                captions: &captions,
                image: self.row_image(row),
                attributes: &attributes,
            });
            debug_assert!(pushed.is_ok());
        }
        (out, example.map(|e| (conflicts, e)))
    }

    /// Frees the build-time indexes and spare capacity.
    pub(crate) fn finish(&mut self) {
        self.ids.shrink();
        self.captions.shrink();
        self.paths.shrink();
        self.caption_ends.shrink_to_fit();
        self.images.shrink();
        self.labels.finish();
        for a in &mut self.attributes {
            a.finish();
        }
    }

    /// Items (after sampling).
    pub fn len(&self) -> usize {
        match &self.selection {
            Some(s) => s.len(),
            None => self.images.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items before sampling.
    pub(crate) fn rows(&self) -> usize {
        self.images.len()
    }

    fn row(&self, i: usize) -> usize {
        match &self.selection {
            Some(s) => s[i] as usize,
            None => i,
        }
    }

    /// Keeps the listed rows (indices before sampling, increasing).
    pub(crate) fn select(&mut self, rows: Vec<u32>) {
        self.selection = Some(rows);
    }

    /// The label of a row before sampling (`None`: no label), for sampling by class.
    pub(crate) fn row_label(&self, row: usize) -> Option<&str> {
        self.labels.get(row)
    }

    /// Item `i`'s id, borrowed when stored, built when derived.
    pub fn id(&self, i: usize) -> std::borrow::Cow<'_, str> {
        self.row_id(self.row(i))
    }

    fn row_id(&self, row: usize) -> std::borrow::Cow<'_, str> {
        if self.ids_derived {
            match self.images.get(row) {
                ImageSlot::ParquetRow { file, row } => {
                    let stem = self.stems.get(file as usize).map_or("", String::as_str);
                    format!("{stem}:{row}").into()
                }
                ImageSlot::File(p) => self.paths.get(p as usize).to_string().into(),
            }
        } else {
            self.ids.get(row).into()
        }
    }

    pub fn label(&self, i: usize) -> Option<&str> {
        self.labels.get(self.row(i))
    }

    /// Item `i`'s captions, in order.
    pub fn captions(&self, i: usize) -> impl Iterator<Item = &str> {
        let row = self.row(i);
        let start = if row == 0 {
            0
        } else {
            self.caption_ends[row - 1] as usize
        };
        (start..self.caption_ends[row] as usize).map(|c| self.captions.get(c))
    }

    pub fn caption_count(&self, i: usize) -> usize {
        let row = self.row(i);
        let start = if row == 0 {
            0
        } else {
            self.caption_ends[row - 1]
        };
        (self.caption_ends[row] - start) as usize
    }

    pub fn image(&self, i: usize) -> ImageRef {
        match self.images.get(self.row(i)) {
            ImageSlot::File(p) => ImageRef::File(text_to_path(self.paths.get(p as usize))),
            ImageSlot::ParquetRow { file, row } => ImageRef::ParquetRow {
                file: file as usize,
                row,
            },
        }
    }

    /// Item `i` with owned fields.
    pub fn item(&self, i: usize) -> Item {
        let row = self.row(i);
        Item {
            id: self.row_id(row).into_owned(),
            label: self.labels.get(row).map(str::to_string),
            captions: self.captions(i).map(str::to_string).collect(),
            image: self.image(i),
            attributes: self
                .attributes
                .iter()
                .map(|a| a.get(row).map(str::to_string))
                .collect(),
        }
    }

    /// Value of attribute column `c` for item `i`.
    pub fn attribute(&self, i: usize, c: usize) -> Option<&str> {
        self.attributes.get(c).and_then(|a| a.get(self.row(i)))
    }

    /// Sorted distinct labels of the kept items.
    pub fn labels(&self) -> Vec<String> {
        let mut used = vec![false; self.labels.names.len()];
        for i in 0..self.len() {
            if let Some(c) = self.labels.code(self.row(i)) {
                used[c as usize] = true;
            }
        }
        let mut out: Vec<String> = self
            .labels
            .names
            .iter()
            .zip(used)
            .filter(|(_, u)| *u)
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }

    pub fn has_captions(&self) -> bool {
        (0..self.len()).any(|i| self.caption_count(i) > 0)
    }

    /// The first pair of items (kept or not) with the same id, if any: `(id, row a, row b)`.
    /// Sorting row numbers by id costs 4 bytes per row, where a hash set of ids would cost
    /// about 50.
    pub(crate) fn first_duplicate_id(&self) -> Option<(String, usize, usize)> {
        let n = self.rows();
        if self.ids_derived {
            // `<stem>:<row>` is unique unless two files share a stem.
            let mut firsts: HashMap<&str, usize> = HashMap::new();
            for (file, stem) in self.stems.iter().enumerate() {
                if let Some(&first) = firsts.get(stem.as_str()) {
                    let row_of = |f: usize| {
                        (0..n).find(|&r| {
                            matches!(self.images.get(r), ImageSlot::ParquetRow { file: g, row: 0 } if g as usize == f)
                        })
                    };
                    if let (Some(a), Some(b)) = (row_of(first), row_of(file)) {
                        return Some((self.row_id(a).into_owned(), a, b));
                    }
                } else {
                    firsts.insert(stem, file);
                }
            }
            return None;
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            self.ids
                .get(a as usize)
                .cmp(self.ids.get(b as usize))
                .then(a.cmp(&b))
        });
        order.windows(2).find_map(|w| {
            let (a, b) = (w[0] as usize, w[1] as usize);
            (self.ids.get(a) == self.ids.get(b)).then(|| (self.ids.get(a).to_string(), a, b))
        })
    }

    /// The image of row `row` (before sampling), for messages.
    pub(crate) fn row_image(&self, row: usize) -> ImageRef {
        match self.images.get(row) {
            ImageSlot::File(p) => ImageRef::File(text_to_path(self.paths.get(p as usize))),
            ImageSlot::ParquetRow { file, row } => ImageRef::ParquetRow {
                file: file as usize,
                row,
            },
        }
    }

    /// Feeds every kept item to `f` in order, as the fingerprint needs: (id, label, captions,
    /// image).
    pub(crate) fn for_each(
        &self,
        mut f: impl FnMut(&str, Option<&str>, &mut dyn Iterator<Item = &str>, ImageRef),
    ) {
        for i in 0..self.len() {
            let id = self.id(i);
            let mut captions = self.captions(i);
            f(&id, self.label(i), &mut captions, self.image(i));
        }
    }
}

#[cfg(unix)]
fn path_to_text(p: &Path) -> String {
    // Paths that are not UTF-8 are stored with their raw bytes escaped, so they round-trip.
    match p.to_str() {
        Some(s) if !s.contains('\u{0}') => s.to_string(),
        _ => {
            use std::os::unix::ffi::OsStrExt;
            let mut s = String::from("\u{0}");
            for b in p.as_os_str().as_bytes() {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

#[cfg(unix)]
fn text_to_path(s: &str) -> PathBuf {
    match s.strip_prefix('\u{0}') {
        None => PathBuf::from(s),
        Some(hex) => {
            use std::os::unix::ffi::OsStringExt;
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|k| u8::from_str_radix(&hex[2 * k..2 * k + 2], 16).ok())
                .collect();
            PathBuf::from(std::ffi::OsString::from_vec(bytes))
        }
    }
}

#[cfg(not(unix))]
fn path_to_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(not(unix))]
fn text_to_path(s: &str) -> PathBuf {
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ItemTable {
        let mut t = ItemTable::new(1, Vec::new());
        for i in 0..5 {
            let id = format!("item{i}");
            let caps: Vec<String> = (0..i % 3).map(|k| format!("c{i}.{k}")).collect();
            let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
            t.push(NewItem {
                id: Some(&id),
                label: (i != 2).then_some(if i % 2 == 0 { "even" } else { "odd" }),
                captions: &caps,
                image: ImageRef::File(format!("/d/{i}.png").into()),
                attributes: &[Some("x")],
            })
            .unwrap();
        }
        t.finish();
        t
    }

    #[test]
    fn items_round_trip_through_the_columns() {
        let t = table();
        assert_eq!(t.len(), 5);
        let item = t.item(4);
        assert_eq!(item.id, "item4");
        assert_eq!(item.label.as_deref(), Some("even"));
        assert_eq!(item.captions, ["c4.0"]);
        assert_eq!(item.image, ImageRef::File("/d/4.png".into()));
        assert_eq!(item.attributes, [Some("x".to_string())]);
        assert_eq!(t.item(2).label, None);
        assert_eq!(t.item(2).captions, ["c2.0", "c2.1"]);
        assert!(t.item(0).captions.is_empty());
        assert_eq!(t.labels(), ["even", "odd"]);
        assert!(t.first_duplicate_id().is_none());
    }

    #[test]
    fn selection_maps_items_to_rows() {
        let mut t = table();
        t.select(vec![1, 3]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.item(1).id, "item3");
        assert_eq!(t.labels(), ["odd"]);
        assert_eq!(t.rows(), 5);
    }

    #[test]
    fn duplicate_ids_are_found_by_sorting() {
        let mut t = ItemTable::new(0, Vec::new());
        for id in ["b", "a", "c", "a"] {
            t.push(NewItem {
                id: Some(id),
                label: None,
                captions: &[],
                image: ImageRef::File(id.into()),
                attributes: &[],
            })
            .unwrap();
        }
        assert_eq!(t.first_duplicate_id(), Some(("a".to_string(), 1, 3)));
    }

    #[test]
    fn derived_ids_name_the_parquet_row() {
        let mut t = ItemTable::new(0, vec!["train".into(), "test".into()]);
        for (file, row) in [(0, 0), (0, 1), (1, 0)] {
            t.push(NewItem {
                id: None,
                label: None,
                captions: &[],
                image: ImageRef::ParquetRow { file, row },
                attributes: &[],
            })
            .unwrap();
        }
        assert_eq!(t.id(1), "train:1");
        assert_eq!(t.id(2), "test:0");
        assert!(t.first_duplicate_id().is_none());
        let mut same = ItemTable::new(0, vec!["a".into(), "a".into()]);
        for file in [0, 1] {
            same.push(NewItem {
                id: None,
                label: None,
                captions: &[],
                image: ImageRef::ParquetRow { file, row: 0 },
                attributes: &[],
            })
            .unwrap();
        }
        assert_eq!(same.first_duplicate_id(), Some(("a:0".to_string(), 0, 1)));
    }

    #[test]
    fn parquet_rows_in_order_cost_no_slots_until_the_order_breaks() {
        let mut images = Images::default();
        // file 0: rows 0-2; file 1: empty; file 2: rows 0-1
        for (file, row) in [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1)] {
            images.push(ImageSlot::ParquetRow { file, row });
        }
        assert!(matches!(images, Images::ParquetInOrder { .. }));
        let all = |im: &Images| -> Vec<(u32, u64)> {
            (0..im.len())
                .map(|r| match im.get(r) {
                    ImageSlot::ParquetRow { file, row } => (file, row),
                    ImageSlot::File(_) => panic!(),
                })
                .collect()
        };
        assert_eq!(all(&images), [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1)]);
        // A row out of order (as after grouping) turns the column into slots, losslessly.
        images.push(ImageSlot::ParquetRow { file: 0, row: 7 });
        assert!(matches!(images, Images::Slots(_)));
        assert_eq!(
            all(&images),
            [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (0, 7)]
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_round_trip() {
        use std::os::unix::ffi::OsStringExt;
        let p = PathBuf::from(std::ffi::OsString::from_vec(b"/d/\xff.png".to_vec()));
        assert_eq!(text_to_path(&path_to_text(&p)), p);
    }
}
