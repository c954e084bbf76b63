//! A streaming tar reader that survives damage.
//!
//! Why not the `tar` crate: its entry iterator stops for good at the first bad header, and a
//! WebDataset shard with one damaged block must still yield every sample after it. This reader
//! reports a header that fails its checksum (or holds a malformed number) as a [`Problem`] and
//! resynchronises on the next 512-byte block that is a valid header, as GNU tar does when it
//! says "skipping to next header". It reads ustar, GNU (`L` long names, base-256 sizes) and
//! POSIX pax (`path`, `size` records) headers, the forms Python's `tarfile` writes; member data
//! is never read unless asked for ([`TarReader::read_data`], with a size cap), and skipped data
//! is seeked over when the source can seek (an uncompressed shard lists in a few reads per
//! sample) and read and dropped when it cannot (gzip).
//!
//! What counts as a member follows Python's `tarfile`, which webdataset reads shards with:
//! regular files (`0`, `\0`, `7`) only; an old-style `\0` entry whose name ends in `/` is a
//! folder; the ustar `prefix` field is joined to the name; the archive ends at the first
//! all-zero block (or at the end of the data).

use std::io::{self, Read, Seek, SeekFrom};

const BLOCK: u64 = 512;
/// Longest pax or GNU long-name record accepted (the names they carry are short).
const MAX_EXTENDED_HEADER: u64 = 1 << 20;

/// A byte stream that can skip ahead: by seeking when it can, by reading otherwise.
pub trait Source: Read {
    /// Skips up to `n` bytes; returns how many were skipped (fewer only at the end).
    fn skip(&mut self, n: u64) -> io::Result<u64>;
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        (**self).skip(n)
    }
}

/// An uncompressed shard: skips are seeks.
pub struct Seekable<R: Read + Seek> {
    inner: R,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Seekable<R> {
    pub fn new(mut inner: R) -> io::Result<Self> {
        let len = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        Ok(Seekable { inner, len, pos: 0 })
    }
}

impl<R: Read + Seek> Read for Seekable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Source for Seekable<R> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        let step = n.min(self.len.saturating_sub(self.pos));
        // Relative, so a buffered reader keeps its buffer when the skip lands inside it.
        self.inner.seek_relative(step as i64)?;
        self.pos += step;
        Ok(step)
    }
}

/// A compressed shard: skips read and drop.
pub struct Streamed<R: Read>(pub R);

impl<R: Read> Read for Streamed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Source for Streamed<R> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        io::copy(&mut (&mut self.0).take(n), &mut io::sink())
    }
}

/// A regular file in the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    /// Offset of the header in the (uncompressed) archive, for messages.
    pub header_offset: u64,
    /// Offset of the data in the (uncompressed) archive.
    pub offset: u64,
    pub size: u64,
}

/// Something wrong in the archive, at an offset of the uncompressed stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub offset: u64,
    /// The member's name when the header was readable.
    pub name: Option<String>,
    pub reason: String,
}

/// What [`TarReader::next`] found.
#[derive(Debug, PartialEq)]
pub enum Entry {
    Member(Member),
    Problem(Problem),
}

/// Reads a tar stream header by header.
pub struct TarReader<S: Source> {
    src: S,
    /// Bytes of the stream consumed so far.
    pos: u64,
    /// Data (and padding) of the current member not read yet: skipped before the next header.
    unread: u64,
    /// The current member's data still unread by `read_data`.
    current: Option<Member>,
    done: bool,
    /// A checksum failure was reported; further bad blocks are skipped silently until a
    /// valid header turns up.
    resyncing: bool,
}

impl<S: Source> TarReader<S> {
    pub fn new(src: S) -> Self {
        TarReader {
            src,
            pos: 0,
            unread: 0,
            current: None,
            done: false,
            resyncing: false,
        }
    }

    /// The next member or problem; `None` at the end of the archive. An I/O error of the
    /// source (not a short read) ends the archive with a problem.
    pub fn next_entry(&mut self) -> Option<Entry> {
        if self.done {
            return None;
        }
        let mut long_name: Option<String> = None;
        let mut pax_path: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            if let Err(p) = self.skip_unread() {
                self.done = true;
                return Some(Entry::Problem(p));
            }
            let header_offset = self.pos;
            let mut block = [0u8; BLOCK as usize];
            let got = match read_full(&mut self.src, &mut block) {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    return Some(Entry::Problem(Problem {
                        offset: header_offset,
                        name: None,
                        reason: format!("read error: {e}"),
                    }));
                }
            };
            self.pos += got as u64;
            let zeros = block[..got].iter().all(|&b| b == 0);
            if zeros && self.resyncing && got == BLOCK as usize {
                // Inside a damaged member's data a zero block is not the end marker.
                continue;
            }
            if got == 0 || zeros {
                // End of data, or the end-of-archive marker (a short zero block included).
                self.done = true;
                return None;
            }
            if got < BLOCK as usize {
                self.done = true;
                return Some(Entry::Problem(Problem {
                    offset: header_offset,
                    name: None,
                    reason: format!("truncated header: the archive ends {got} bytes into it"),
                }));
            }
            let header = match Header::parse(&block) {
                Ok(h) => h,
                Err(reason) => {
                    if self.resyncing {
                        continue;
                    }
                    self.resyncing = true;
                    return Some(Entry::Problem(Problem {
                        offset: header_offset,
                        name: None,
                        reason: format!("{reason}; skipping to the next valid header"),
                    }));
                }
            };
            self.resyncing = false;
            let data_offset = self.pos;
            let size = pax_size.take().unwrap_or(header.size);
            match header.kind {
                b'x' | b'L' => {
                    let data = match self.read_small(size, header.kind) {
                        Ok(d) => d,
                        Err(p) => return Some(Entry::Problem(p)),
                    };
                    if header.kind == b'L' {
                        long_name = Some(nul_terminated(&data));
                    } else {
                        for (key, value) in pax_records(&data) {
                            match key.as_str() {
                                "path" => pax_path = Some(value),
                                "size" => pax_size = value.trim().parse().ok(),
                                _ => {}
                            }
                        }
                    }
                    continue;
                }
                // Global pax headers, GNU long link names, folders, links and devices carry
                // nothing a sample needs. Python skips the data of an unknown kind only.
                b'g' | b'K' => {
                    self.unread = padded(size);
                    continue;
                }
                b'1'..=b'6' => continue,
                _ => {}
            }
            let name = pax_path.take().or(long_name.take()).unwrap_or(header.name);
            let regular = matches!(header.kind, b'0' | b'7') || header.kind == 0;
            if !regular || name.ends_with('/') {
                self.unread = padded(size);
                if header.kind == b'S' {
                    return Some(Entry::Problem(Problem {
                        offset: header_offset,
                        name: Some(name),
                        reason: "GNU sparse members are not supported".into(),
                    }));
                }
                continue;
            }
            let member = Member {
                name,
                header_offset,
                offset: data_offset,
                size,
            };
            self.unread = padded(size);
            self.current = Some(member.clone());
            return Some(Entry::Member(member));
        }
    }

    /// The data of the member [`next_entry`](Self::next_entry) just returned, when it is at
    /// most `cap` bytes. A short read (a truncated archive) is a problem.
    pub fn read_data(&mut self, cap: u64) -> Result<Vec<u8>, Problem> {
        let Some(m) = self.current.take() else {
            return Err(Problem {
                offset: self.pos,
                name: None,
                reason: "internal: no current member".into(),
            });
        };
        let problem = |reason: String| Problem {
            offset: m.header_offset,
            name: Some(m.name.clone()),
            reason,
        };
        if m.size > cap {
            return Err(problem(format!(
                "member of {} bytes is over the limit of {cap} bytes",
                m.size
            )));
        }
        let mut data = Vec::with_capacity(m.size as usize);
        let got = (&mut self.src)
            .take(m.size)
            .read_to_end(&mut data)
            .map_err(|e| problem(format!("read error: {e}")))?;
        self.pos += got as u64;
        self.unread -= got as u64;
        if (got as u64) < m.size {
            self.done = true;
            return Err(problem(format!(
                "truncated: the archive ends {got} bytes into a member of {} bytes",
                m.size
            )));
        }
        Ok(data)
    }

    /// Skips the rest of the current member; a short skip means the member was truncated.
    fn skip_unread(&mut self) -> Result<(), Problem> {
        let current = self.current.take();
        if self.unread == 0 {
            return Ok(());
        }
        let want = self.unread;
        let skipped = self.src.skip(want).map_err(|e| Problem {
            offset: self.pos,
            name: current.as_ref().map(|m| m.name.clone()),
            reason: format!("read error: {e}"),
        })?;
        self.pos += skipped;
        self.unread = 0;
        if skipped < want {
            self.done = true;
            // Only the data itself matters: a missing end padding is harmless.
            if let Some(m) = current {
                let data_read = self.pos - m.offset;
                if data_read < m.size {
                    return Err(Problem {
                        offset: m.header_offset,
                        name: Some(m.name),
                        reason: format!(
                            "truncated: the archive ends {data_read} bytes into a member of {} bytes",
                            m.size
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads the data of an extended header (pax `x`, GNU `L`).
    fn read_small(&mut self, size: u64, kind: u8) -> Result<Vec<u8>, Problem> {
        let offset = self.pos;
        if size > MAX_EXTENDED_HEADER {
            self.done = true;
            return Err(Problem {
                offset,
                name: None,
                reason: format!(
                    "extended header ({}) of {size} bytes is over the limit of {MAX_EXTENDED_HEADER}",
                    kind as char
                ),
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        let got = (&mut self.src)
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| Problem {
                offset,
                name: None,
                reason: format!("read error: {e}"),
            })?;
        self.pos += got as u64;
        if (got as u64) < size {
            self.done = true;
            return Err(Problem {
                offset,
                name: None,
                reason: "truncated extended header".into(),
            });
        }
        self.unread = padded(size) - size;
        Ok(data)
    }
}

/// The fields of a header block that matter here.
struct Header {
    name: String,
    size: u64,
    kind: u8,
}

impl Header {
    fn parse(block: &[u8; 512]) -> Result<Header, String> {
        let stored = parse_number(&block[148..156])
            .map_err(|e| format!("bad header: checksum field {e}"))?;
        // The checksum is the byte sum with the checksum field read as spaces; some old tars
        // summed signed bytes, which Python accepts too.
        let mut unsigned: i64 = 0;
        let mut signed: i64 = 0;
        for (i, &b) in block.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += b as i64;
            signed += b as i8 as i64;
        }
        if stored as i64 != unsigned && stored as i64 != signed {
            return Err("bad header: checksum mismatch".into());
        }
        let size =
            parse_number(&block[124..136]).map_err(|e| format!("bad header: size field {e}"))?;
        let kind = block[156];
        let mut name = nul_terminated(&block[0..100]);
        // POSIX ustar splits long names into prefix/name; GNU headers use that space
        // differently.
        if &block[257..263] == b"ustar\0" {
            let prefix = nul_terminated(&block[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        Ok(Header { name, size, kind })
    }
}

/// A tar number: octal text (spaces and NULs around it), or GNU base-256 when the first byte
/// has its high bit set.
fn parse_number(field: &[u8]) -> Result<u64, String> {
    if field[0] & 0x80 != 0 {
        if field[0] == 0xff {
            return Err("is negative".into());
        }
        let mut n: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(b as u64))
                .ok_or("overflows")?;
        }
        return Ok(n);
    }
    let text: Vec<u8> = field.iter().copied().take_while(|&b| b != 0).collect();
    let text = std::str::from_utf8(&text).map_err(|_| "is not text".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| format!("is not an octal number ({text:?})"))
}

/// Text up to the first NUL. Names that are not UTF-8 keep their valid parts (U+FFFD marks
/// the rest), as a key must be text.
fn nul_terminated(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `"<length> <key>=<value>\n"` records; malformed ones end the list.
fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space + 1 || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
            ));
        }
        rest = &rest[len..];
    }
    out
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK).saturating_mul(BLOCK)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// A ustar header for a regular file (or `kind`), with a valid checksum.
    pub fn header(name: &str, size: u64, kind: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    /// A tar archive of `(name, data)` regular files.
    pub fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            out.extend_from_slice(&header(name, data.len() as u64, b'0'));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn entries(bytes: Vec<u8>) -> Vec<Entry> {
        let mut r = TarReader::new(Seekable::new(Cursor::new(bytes)).unwrap());
        std::iter::from_fn(|| r.next_entry()).collect()
    }

    fn names(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Member(m) => m.name.clone(),
                Entry::Problem(p) => format!("!{}", p.reason),
            })
            .collect()
    }

    #[test]
    fn members_data_and_offsets() {
        let bytes = archive(&[("a.txt", b"hello"), ("b.jpg", &[7u8; 700])]);
        let mut r = TarReader::new(Seekable::new(Cursor::new(bytes)).unwrap());
        let Some(Entry::Member(a)) = r.next_entry() else {
            panic!()
        };
        assert_eq!((a.name.as_str(), a.offset, a.size), ("a.txt", 512, 5));
        assert_eq!(r.read_data(100).unwrap(), b"hello");
        let Some(Entry::Member(b)) = r.next_entry() else {
            panic!()
        };
        assert_eq!((b.offset, b.size), (1536, 700));
        assert!(r
            .read_data(10)
            .unwrap_err()
            .reason
            .contains("over the limit"));
        assert_eq!(r.next_entry(), None);
    }

    #[test]
    fn streamed_and_seekable_sources_agree() {
        let bytes = archive(&[("x/1.png", &[1u8; 1000]), ("x/1.txt", b"cap")]);
        let a = entries(bytes.clone());
        let mut r = TarReader::new(Streamed(Cursor::new(bytes)));
        let b: Vec<Entry> = std::iter::from_fn(|| r.next_entry()).collect();
        assert_eq!(a, b);
        assert_eq!(names(&a), ["x/1.png", "x/1.txt"]);
    }

    #[test]
    fn a_bad_header_is_reported_and_the_rest_still_reads() {
        let mut bytes = archive(&[("a.txt", b"one"), ("b.txt", b"two"), ("c.txt", b"three")]);
        bytes[1024 + 3] ^= 0x55; // b.txt's header
        let e = entries(bytes);
        assert_eq!(names(&e)[0], "a.txt");
        assert!(
            names(&e)[1].contains("checksum mismatch"),
            "{:?}",
            names(&e)
        );
        // b.txt's data block is not a header either; the reader finds c.txt after it.
        assert_eq!(names(&e)[2], "c.txt");
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn truncated_member_is_a_problem() {
        let bytes = archive(&[("a.txt", b"one"), ("b.jpg", &[9u8; 3000])]);
        let cut = bytes[..512 * 3 + 1000].to_vec();
        let e = entries(cut.clone());
        assert_eq!(names(&e)[0], "a.txt");
        assert_eq!(names(&e)[1], "b.jpg");
        assert!(names(&e)[2].contains("truncated"), "{:?}", names(&e));
        // Reading the data reports it too.
        let mut r = TarReader::new(Seekable::new(Cursor::new(cut)).unwrap());
        r.next_entry();
        r.next_entry();
        assert!(r
            .read_data(1 << 20)
            .unwrap_err()
            .reason
            .contains("truncated"));
        // A header cut in half.
        let e = entries(bytes[..512 * 2 + 100].to_vec());
        assert!(names(&e)[1].contains("truncated header"), "{:?}", names(&e));
    }

    #[test]
    fn pax_and_gnu_long_names_prefix_and_non_regular_entries() {
        let mut out = Vec::new();
        let long = format!("{}/sample.jpg", "d".repeat(120));
        let record = format!("path={long}\n");
        let len = record.len() + 4; // "NNN " prefix: three digits and a space
        let pax = format!("{len} {record}");
        assert_eq!(pax.len(), len);
        out.extend_from_slice(&header("PaxHeader", pax.len() as u64, b'x'));
        out.extend_from_slice(pax.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend_from_slice(&header("short", 2, b'0'));
        out.extend_from_slice(b"ok");
        out.resize(out.len().div_ceil(512) * 512, 0);
        let gnu = format!("{}/gnu.txt\0", "e".repeat(110));
        out.extend_from_slice(&header("././@LongLink", gnu.len() as u64, b'L'));
        out.extend_from_slice(gnu.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend_from_slice(&header("trunc", 1, b'0'));
        out.extend_from_slice(b"g");
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend_from_slice(&header("dir/", 0, b'5'));
        out.extend_from_slice(&header("link", 0, b'2'));
        let mut prefixed = header("name.txt", 1, b'0');
        prefixed[345..351].copy_from_slice(b"prefix");
        prefixed[148..156].copy_from_slice(b"        ");
        let sum: u32 = prefixed.iter().map(|&b| b as u32).sum();
        prefixed[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&prefixed);
        out.extend_from_slice(b"p");
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend_from_slice(&[0u8; 1024]);
        let e = entries(out);
        assert_eq!(
            names(&e),
            [
                long,
                format!("{}/gnu.txt", "e".repeat(110)),
                "prefix/name.txt".to_string()
            ]
        );
    }

    #[test]
    fn numbers_in_octal_and_base_256() {
        assert_eq!(parse_number(b"00000001750\0").unwrap(), 1000);
        assert_eq!(parse_number(b"  1750 \0\0\0\0\0").unwrap(), 1000);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 0x10;
        big[10] = 0x01;
        assert_eq!(parse_number(&big).unwrap(), 0x110);
        assert!(parse_number(b"12x4\0\0\0\0\0\0\0\0").is_err());
    }

    #[test]
    fn garbage_is_one_problem_not_a_flood() {
        let mut bytes = vec![0x41u8; 512 * 8];
        bytes.extend(archive(&[("late.txt", b"x")]));
        let e = entries(bytes);
        assert_eq!(e.len(), 2, "{:?}", names(&e));
        assert_eq!(names(&e)[1], "late.txt");
    }
}
