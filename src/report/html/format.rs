//! Text the report writes by hand: HTML escaping, base64 for data: URIs, number and duration
//! formatting, and relative links.

use std::path::{Component, Path, PathBuf};

/// Escapes text for element content and for double- or single-quoted attribute values alike.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as data: URIs expect. Twenty lines here instead
/// of a dependency: the report is its only user.
pub(super) fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `digits` (ASCII digits only) with a comma every three from the right.
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An integer with thousands separators: 1,234,567.
pub(super) fn format_int(v: i64) -> String {
    let digits = group_thousands(&v.unsigned_abs().to_string());
    if v < 0 {
        format!("-{digits}")
    } else {
        digits
    }
}

/// Decimals to show for a float column: integral columns get none; otherwise at most 4,
/// fewer as the magnitude grows, so every value keeps about 4–5 significant digits and the
/// column stays aligned on the decimal point.
pub(super) fn column_decimals(values: &[Option<f64>]) -> usize {
    let mut max = 0.0f64;
    let mut integral = true;
    for v in values.iter().flatten().filter(|v| v.is_finite()) {
        max = max.max(v.abs());
        integral &= v.fract() == 0.0;
    }
    if integral && max < 1e15 {
        return 0;
    }
    match max {
        m if m < 10.0 => 4,
        m if m < 100.0 => 3,
        m if m < 1_000.0 => 2,
        m if m < 10_000.0 => 1,
        _ => 0,
    }
}

/// A float with at least `decimals` places (the column's) and thousands separators. A
/// fractional value the column format would show with fewer than two significant digits gets
/// up to 4 places ("0.50" in a column of thousands); below 0.001, or at 10^15 and above, it
/// switches to scientific notation, so nothing reads as 0.0000 when it is not.
pub(super) fn format_float(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞".into() } else { "-∞".into() };
    }
    let mut decimals = decimals;
    if v != 0.0 && v.fract() != 0.0 {
        let two_digits = 1 - v.abs().log10().floor() as i64;
        if two_digits > 4 {
            return format!("{v:.3e}");
        }
        decimals = decimals.max(two_digits.max(0) as usize);
    }
    if v.abs() >= 1e15 {
        return format!("{v:.3e}");
    }
    let fixed = format!("{:.*}", decimals, v.abs());
    let (int, frac) = fixed.split_once('.').unwrap_or((&fixed, ""));
    let negative = v < 0.0 && fixed.bytes().any(|b| (b'1'..=b'9').contains(&b));
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&group_thousands(int));
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A duration as people read it: "0.42 s", "12.3 s", "3 min 05 s", "2 h 07 min".
pub(super) fn format_seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "–".into();
    }
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let whole = s.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        let minutes = (s / 60.0).round() as u64;
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    }
}

/// Lexically normalised absolute form of `p` (relative paths are taken from the current
/// directory, as for every other path the run reads); `..` is resolved without touching the
/// file system so links stay the same whether or not the files exist yet.
fn absolute(p: &Path) -> PathBuf {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// A relative URL from the directory holding the report to `target`, percent-encoded, so the
/// link keeps working when the run directory is moved or copied as a whole.
pub(super) fn relative_href(report_dir: &Path, target: &Path) -> String {
    let base = absolute(report_dir);
    let target = absolute(target);
    let base_parts: Vec<Component> = base.components().collect();
    let target_parts: Vec<Component> = target.components().collect();
    let common = base_parts
        .iter()
        .zip(&target_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut segments: Vec<String> = Vec::new();
    if common == 0 {
        // Different roots (another drive): only the name can be linked.
        segments.push(
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    } else {
        segments.extend(std::iter::repeat_n(
            "..".to_string(),
            base_parts.len() - common,
        ));
        segments.extend(
            target_parts[common..]
                .iter()
                .map(|c| c.as_os_str().to_string_lossy().into_owned()),
        );
    }
    segments
        .iter()
        .map(|s| percent_encode(s))
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so no name can turn into a
/// scheme, query, fragment or markup.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Width and height from a PNG's IHDR chunk, or None if `bytes` is not a PNG.
pub(super) fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_int(0), "0");
        assert_eq!(format_int(999), "999");
        assert_eq!(format_int(1000), "1,000");
        assert_eq!(format_int(-1234567), "-1,234,567");
        assert_eq!(format_int(i64::MIN), "-9,223,372,036,854,775,808");
        assert_eq!(format_float(0.123456, 4), "0.1235");
        assert_eq!(format_float(12345.678, 1), "12,345.7");
        assert_eq!(format_float(-0.00001, 4), "-1.000e-5");
        assert_eq!(format_float(-0.00004, 2), "-4.000e-5");
        assert_eq!(format_float(-0.0, 4), "0.0000");
        assert_eq!(format_float(0.5, 0), "0.50");
        assert_eq!(format_float(0.0012, 0), "0.0012");
        assert_eq!(format_float(5.0, 0), "5");
        assert_eq!(format_float(2e15, 0), "2.000e15");
        assert_eq!(format_float(f64::NAN, 4), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY, 4), "-∞");
        assert_eq!(column_decimals(&[Some(1.0), Some(3.0), None]), 0);
        assert_eq!(column_decimals(&[Some(0.5), Some(f64::NAN)]), 4);
        assert_eq!(column_decimals(&[Some(250.5)]), 2);
        assert_eq!(column_decimals(&[]), 0);
        assert_eq!(format_seconds(0.4212), "0.42 s");
        assert_eq!(format_seconds(185.2), "3 min 05 s");
        assert_eq!(format_seconds(7620.0), "2 h 07 min");
    }

    #[test]
    fn escaping_and_links() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        let run = Path::new("/runs/a");
        assert_eq!(
            relative_href(run, Path::new("/runs/a/plots/t sne#1.svg")),
            "plots/t%20sne%231.svg"
        );
        assert_eq!(relative_href(run, Path::new("/runs/b/x.svg")), "../b/x.svg");
        assert_eq!(
            relative_href(run, Path::new("/runs/a/./plots/../x.svg")),
            "x.svg"
        );
    }

    #[test]
    fn png_size_reads_ihdr() {
        let img = image::RgbImage::new(7, 3);
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
        assert_eq!(png_size(&bytes), Some((7, 3)));
        assert_eq!(png_size(b"GIF89a"), None);
    }
}
