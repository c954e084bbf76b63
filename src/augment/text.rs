//! Text perturbations: seeded, reproducible variants of captions and class prompts, the text
//! counterpart of image noise (Qiu et al. 2022 found character-level edits the most damaging
//! perturbation for image–text models).
//!
//! Character level (`char_*`) edits act on letters and digits: keyboard-neighbour
//! substitution (QWERTY, case kept), insertion of a random letter after the chosen one,
//! deletion, and swapping with the next character of the same word. Word level (`word_*`)
//! edits act on whitespace-separated words: drop, repeat in place, shuffle among themselves
//! (every chosen word moves), and insertion of random gibberish words (3–10 lowercase
//! letters) at random gaps.
//!
//! A rate r edits r·n units of a text with n candidate units, rounded stochastically (⌊r·n⌋
//! or ⌈r·n⌉, with the mean exactly r·n), so short prompts are edited as often as long
//! captions on average; the units are drawn without replacement. Word drop keeps at least one
//! word; a shuffle needs two words. Each (item or prompt id, variant) has its own random
//! stream (study seed, id, variant name), so a variant does not depend on batching, order or
//! the other variants.

use rand_chacha::ChaCha8Rng;

use crate::config::{TextNoiseConfig, TextNoiseKind, TextNoisePreset};
use crate::util::seeded_rng;

use super::corruptions::random::{int_in, uniform};
use super::CLEAN;

/// One text perturbation at one rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextNoise {
    pub kind: TextNoiseKind,
    pub rate: f64,
}

/// A named text variant: `clean` or `<kind>-<rate>` (`char_swap-0.1`, `word_drop-0.25`).
#[derive(Debug, Clone, PartialEq)]
pub struct TextVariant {
    pub name: String,
    pub noise: Option<TextNoise>,
}

impl TextVariant {
    /// The store's `noise` column: the kind, or `none` for clean.
    pub fn kind(&self) -> &'static str {
        self.noise.map(|n| kind_name(n.kind)).unwrap_or("none")
    }

    /// The store's `noise_level` column: the rate, 0 for clean.
    pub fn level(&self) -> f64 {
        self.noise.map(|n| n.rate).unwrap_or(0.0)
    }

    /// This variant of `text` for the item or prompt `id`.
    pub fn apply(&self, text: &str, seed: u64, id: &str) -> String {
        match self.noise {
            None => text.to_string(),
            Some(n) => perturb(text, n, &mut rng_for(seed, id, &self.name)),
        }
    }
}

/// Every kind, characters first.
pub const KINDS: [TextNoiseKind; 8] = [
    TextNoiseKind::CharKeyboard,
    TextNoiseKind::CharInsert,
    TextNoiseKind::CharDelete,
    TextNoiseKind::CharSwap,
    TextNoiseKind::WordDrop,
    TextNoiseKind::WordRepeat,
    TextNoiseKind::WordShuffle,
    TextNoiseKind::WordGibberish,
];

pub fn kind_name(kind: TextNoiseKind) -> &'static str {
    match kind {
        TextNoiseKind::CharKeyboard => "char_keyboard",
        TextNoiseKind::CharInsert => "char_insert",
        TextNoiseKind::CharDelete => "char_delete",
        TextNoiseKind::CharSwap => "char_swap",
        TextNoiseKind::WordDrop => "word_drop",
        TextNoiseKind::WordRepeat => "word_repeat",
        TextNoiseKind::WordShuffle => "word_shuffle",
        TextNoiseKind::WordGibberish => "word_gibberish",
    }
}

/// A `texts.noise` entry that cannot be turned into variants; names the YAML key.
#[derive(Debug, thiserror::Error)]
#[error("texts.noise.{index}.{key}: {message}")]
pub struct TextNoiseError {
    pub index: usize,
    pub key: &'static str,
    pub message: String,
}

/// The text variants `texts.noise` asks for, `clean` first, in config order.
pub fn text_variants(config: &[TextNoiseConfig]) -> Result<Vec<TextVariant>, TextNoiseError> {
    let mut out = vec![TextVariant {
        name: CLEAN.to_string(),
        noise: None,
    }];
    for (index, c) in config.iter().enumerate() {
        let err = |key: &'static str, message: String| TextNoiseError {
            index,
            key,
            message,
        };
        let kinds: Vec<TextNoiseKind> = match (c.kind, c.preset) {
            (Some(k), None) => vec![k],
            (None, Some(TextNoisePreset::Characters)) => KINDS[..4].to_vec(),
            (None, Some(TextNoisePreset::Words)) => KINDS[4..].to_vec(),
            (None, Some(TextNoisePreset::All)) => KINDS.to_vec(),
            (Some(_), Some(_)) => {
                return Err(err("preset", "give kind or preset, not both".into()))
            }
            (None, None) => {
                return Err(err(
                    "kind",
                    "is required (or preset: characters | words | all)".into(),
                ))
            }
        };
        let rates = c.rate.to_vec();
        if rates.is_empty() {
            return Err(err("rate", "needs at least one rate".into()));
        }
        if let Some(r) = rates
            .iter()
            .find(|r| !(r.is_finite() && **r > 0.0 && **r <= 1.0))
        {
            return Err(err("rate", format!("{r} is not a rate in (0, 1]")));
        }
        for kind in kinds {
            for &rate in &rates {
                let name = format!("{}-{}", kind_name(kind), rate);
                if out.iter().any(|v| v.name == name) {
                    return Err(err("kind", format!("variant {name} is listed twice")));
                }
                out.push(TextVariant {
                    name,
                    noise: Some(TextNoise { kind, rate }),
                });
            }
        }
    }
    Ok(out)
}

/// The random stream of one (item or prompt, text variant); apart from image noise's.
pub fn rng_for(seed: u64, id: &str, variant: &str) -> ChaCha8Rng {
    seeded_rng(seed, &["text", id, variant])
}

/// ⌊r·n⌋ or ⌈r·n⌉, the latter with probability frac(r·n).
fn how_many(rate: f64, n: usize, rng: &mut ChaCha8Rng) -> usize {
    let exact = rate * n as f64;
    let k = exact.floor() as usize + usize::from(uniform(rng) < exact.fract());
    k.min(n)
}

/// `k` distinct indices of `0..n`, in increasing order (a partial Fisher–Yates).
fn choose(n: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = int_in(rng, i as i64, n as i64) as usize;
        pool.swap(i, j);
    }
    let mut chosen = pool[..k.min(n)].to_vec();
    chosen.sort_unstable();
    chosen
}

/// QWERTY rows and their horizontal offsets in key widths.
const ROWS: [(&str, f64); 4] = [
    ("1234567890", 0.0),
    ("qwertyuiop", 0.5),
    ("asdfghjkl", 0.75),
    ("zxcvbnm", 1.25),
];

/// The keys next to `c` on a QWERTY keyboard: left and right in its row, and the keys of the
/// rows above and below that overlap it.
fn neighbours(c: char) -> Vec<char> {
    let lower = c.to_ascii_lowercase();
    let mut at = None;
    for (r, (keys, offset)) in ROWS.iter().enumerate() {
        if let Some(i) = keys.find(lower) {
            at = Some((r, offset + i as f64));
        }
    }
    let Some((row, x)) = at else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (r, (keys, offset)) in ROWS.iter().enumerate() {
        for (i, k) in keys.chars().enumerate() {
            let dx = (offset + i as f64 - x).abs();
            let next_to = if r == row {
                (dx - 1.0).abs() < 1e-9
            } else {
                r.abs_diff(row) == 1 && dx < 1.0
            };
            if next_to {
                out.push(if c.is_ascii_uppercase() {
                    k.to_ascii_uppercase()
                } else {
                    k
                });
            }
        }
    }
    out
}

fn random_letter(rng: &mut ChaCha8Rng) -> char {
    (b'a' + int_in(rng, 0, 26) as u8) as char
}

/// `text` perturbed by `noise`, drawing from `rng`.
pub fn perturb(text: &str, noise: TextNoise, rng: &mut ChaCha8Rng) -> String {
    let rate = noise.rate;
    let chars: Vec<char> = text.chars().collect();
    let is_unit = |c: &char| c.is_alphanumeric();
    match noise.kind {
        TextNoiseKind::CharKeyboard => {
            let candidates: Vec<usize> = (0..chars.len())
                .filter(|&i| chars[i].is_ascii_alphanumeric())
                .collect();
            let k = how_many(rate, candidates.len(), rng);
            let mut out = chars.clone();
            for pick in choose(candidates.len(), k, rng) {
                let i = candidates[pick];
                let options = neighbours(chars[i]);
                out[i] = options[int_in(rng, 0, options.len() as i64) as usize];
            }
            out.into_iter().collect()
        }
        TextNoiseKind::CharInsert | TextNoiseKind::CharDelete => {
            let candidates: Vec<usize> = (0..chars.len()).filter(|&i| is_unit(&chars[i])).collect();
            let k = how_many(rate, candidates.len(), rng);
            let picked: Vec<usize> = choose(candidates.len(), k, rng)
                .into_iter()
                .map(|p| candidates[p])
                .collect();
            let mut out = String::with_capacity(text.len() + k);
            let mut next = picked.iter().peekable();
            for (i, &c) in chars.iter().enumerate() {
                let hit = next.peek() == Some(&&i);
                if hit {
                    next.next();
                }
                match (noise.kind, hit) {
                    (TextNoiseKind::CharDelete, true) => {}
                    (_, true) => {
                        out.push(c);
                        let l = random_letter(rng);
                        out.push(if c.is_uppercase() {
                            l.to_ascii_uppercase()
                        } else {
                            l
                        });
                    }
                    _ => out.push(c),
                }
            }
            out
        }
        TextNoiseKind::CharSwap => {
            // A pair (i, i+1) inside a word; overlapping picks are skipped left to right.
            let candidates: Vec<usize> = (0..chars.len().saturating_sub(1))
                .filter(|&i| is_unit(&chars[i]) && is_unit(&chars[i + 1]))
                .collect();
            let k = how_many(rate, candidates.len(), rng);
            let mut out = chars.clone();
            let mut last: Option<usize> = None;
            for pick in choose(candidates.len(), k, rng) {
                let i = candidates[pick];
                if last.is_some_and(|l| i <= l + 1) {
                    continue;
                }
                out.swap(i, i + 1);
                last = Some(i);
            }
            out.into_iter().collect()
        }
        TextNoiseKind::WordDrop
        | TextNoiseKind::WordRepeat
        | TextNoiseKind::WordShuffle
        | TextNoiseKind::WordGibberish => {
            let words: Vec<&str> = text.split_whitespace().collect();
            let n = words.len();
            let mut k = how_many(rate, n, rng);
            let out: Vec<String> = match noise.kind {
                TextNoiseKind::WordDrop => {
                    let k = k.min(n.saturating_sub(1));
                    let dropped = choose(n, k, rng);
                    (0..n)
                        .filter(|i| dropped.binary_search(i).is_err())
                        .map(|i| words[i].to_string())
                        .collect()
                }
                TextNoiseKind::WordRepeat => {
                    let repeated = choose(n, k, rng);
                    let mut v = Vec::with_capacity(n + k);
                    for (i, w) in words.iter().enumerate() {
                        v.push(w.to_string());
                        if repeated.binary_search(&i).is_ok() {
                            v.push(w.to_string());
                        }
                    }
                    v
                }
                TextNoiseKind::WordShuffle => {
                    if k == 1 && n >= 2 {
                        k = 2;
                    }
                    let picked = choose(n, k, rng);
                    let mut order: Vec<usize> = picked.clone();
                    // Sattolo's algorithm: a random cyclic permutation, so every picked word
                    // moves to another picked position.
                    for i in (1..order.len()).rev() {
                        let j = int_in(rng, 0, i as i64) as usize;
                        order.swap(i, j);
                    }
                    let mut v: Vec<String> = words.iter().map(|w| w.to_string()).collect();
                    for (&to, &from) in picked.iter().zip(&order) {
                        v[to] = words[from].to_string();
                    }
                    v
                }
                _ => {
                    // Gibberish: k random words inserted at random gaps (0..=n).
                    let mut gaps: Vec<usize> = (0..k)
                        .map(|_| int_in(rng, 0, n as i64 + 1) as usize)
                        .collect();
                    gaps.sort_unstable();
                    let mut v = Vec::with_capacity(n + k);
                    let mut g = gaps.iter().peekable();
                    for i in 0..=n {
                        while g.peek() == Some(&&i) {
                            g.next();
                            let len = int_in(rng, 3, 11) as usize;
                            v.push((0..len).map(|_| random_letter(rng)).collect());
                        }
                        if let Some(w) = words.get(i) {
                            v.push(w.to_string());
                        }
                    }
                    v
                }
            };
            out.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: TextNoiseKind, rate: f64, text: &str, seed: u64) -> String {
        perturb(
            text,
            TextNoise { kind, rate },
            &mut rng_for(seed, "item", "v"),
        )
    }

    const CAPTION: &str = "a large blue and yellow zigzagged pattern on a Wall";

    #[test]
    fn keyboard_neighbours_are_adjacent_keys() {
        let mut f = neighbours('f');
        f.sort();
        assert_eq!(f, ['c', 'd', 'g', 'r', 't', 'v']);
        assert_eq!(neighbours('Q'), ['1', '2', 'W', 'A']);
        assert!(neighbours('é').is_empty());
        for c in "abcdefghijklmnopqrstuvwxyz0123456789".chars() {
            assert!(!neighbours(c).is_empty(), "{c}");
        }
    }

    #[test]
    fn rates_edit_the_expected_number_of_units_on_average() {
        let letters = CAPTION.chars().filter(|c| c.is_alphanumeric()).count() as f64;
        let words = CAPTION.split_whitespace().count() as f64;
        let trials = 400;
        let mut deleted = 0.0;
        let mut dropped = 0.0;
        for seed in 0..trials {
            deleted +=
                (CAPTION.len() - run(TextNoiseKind::CharDelete, 0.1, CAPTION, seed).len()) as f64;
            dropped += (words
                - run(TextNoiseKind::WordDrop, 0.3, CAPTION, seed)
                    .split_whitespace()
                    .count() as f64)
                .max(0.0);
        }
        let per_text = deleted / trials as f64;
        assert!((per_text - 0.1 * letters).abs() < 0.2, "{per_text}");
        let per_text = dropped / trials as f64;
        assert!((per_text - 0.3 * words).abs() < 0.2, "{per_text}");
    }

    #[test]
    fn each_kind_does_what_it_says() {
        let k = run(TextNoiseKind::CharKeyboard, 0.3, CAPTION, 1);
        assert_eq!(k.chars().count(), CAPTION.chars().count());
        assert_ne!(k, CAPTION);
        for (a, b) in CAPTION.chars().zip(k.chars()) {
            assert!(a == b || neighbours(a).contains(&b), "{a} -> {b}");
        }
        let ins = run(TextNoiseKind::CharInsert, 0.2, CAPTION, 1);
        assert!(ins.len() > CAPTION.len());
        let sw = run(TextNoiseKind::CharSwap, 0.2, CAPTION, 1);
        let mut a: Vec<char> = sw.chars().collect();
        let mut b: Vec<char> = CAPTION.chars().collect();
        assert_ne!(a, b);
        a.sort();
        b.sort();
        assert_eq!(a, b, "a swap keeps the letters");
        assert_eq!(sw.split(' ').count(), CAPTION.split(' ').count());
        let rep = run(TextNoiseKind::WordRepeat, 0.3, CAPTION, 1);
        assert!(rep.split(' ').count() > CAPTION.split(' ').count());
        let sh = run(TextNoiseKind::WordShuffle, 0.5, CAPTION, 1);
        let mut w1: Vec<&str> = sh.split(' ').collect();
        let mut w2: Vec<&str> = CAPTION.split(' ').collect();
        assert_ne!(w1, w2);
        w1.sort();
        w2.sort();
        assert_eq!(w1, w2);
        let gib = run(TextNoiseKind::WordGibberish, 0.3, "mouth open", 3);
        assert!(gib.contains("mouth") && gib.contains("open"));
        assert!(gib.split(' ').count() >= 2);
        // Drop keeps a word; edge cases do not panic.
        assert_eq!(
            run(TextNoiseKind::WordDrop, 1.0, "one two", 0)
                .split(' ')
                .count(),
            1
        );
        for kind in KINDS {
            for text in ["", " ", "a", "é", "🙂🙂", "x y"] {
                let _ = run(kind, 1.0, text, 0);
            }
        }
    }

    #[test]
    fn variants_are_reproducible_per_id_and_named() {
        let cfg = [
            TextNoiseConfig {
                kind: Some(TextNoiseKind::CharSwap),
                preset: None,
                rate: crate::config::Levels::Many(vec![0.05, 0.1]),
            },
            TextNoiseConfig {
                kind: None,
                preset: Some(TextNoisePreset::Words),
                rate: crate::config::Levels::One(0.2),
            },
        ];
        let v = text_variants(&cfg).unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clean",
                "char_swap-0.05",
                "char_swap-0.1",
                "word_drop-0.2",
                "word_repeat-0.2",
                "word_shuffle-0.2",
                "word_gibberish-0.2"
            ]
        );
        assert_eq!(v[0].apply(CAPTION, 1, "a"), CAPTION);
        assert_eq!(v[2].apply(CAPTION, 1, "a"), v[2].apply(CAPTION, 1, "a"));
        assert_ne!(v[2].apply(CAPTION, 1, "a"), v[2].apply(CAPTION, 1, "b"));
        let mut bad = cfg[0].clone();
        bad.rate = crate::config::Levels::One(1.5);
        let e = text_variants(&[bad]).unwrap_err().to_string();
        assert!(e.starts_with("texts.noise.0.rate"), "{e}");
    }
}
