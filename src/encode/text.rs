//! Text to token ids, the way OpenAI's reference `clip.tokenize` does it.
//!
//! The vocabulary, merges and splitting come from the model's `tokenizer.json` (Hugging Face
//! tokenizers). OpenAI's reference also cleans text before tokenizing — ftfy's `fix_text`,
//! HTML unescaping twice, whitespace collapsing — which the Hugging Face fast tokenizer skips,
//! so the two disagree on curly quotes, fullwidth letters, ligatures and `&amp;`. clipflow
//! stands with the reference: [`clean`] reproduces those steps (all of ftfy that changes
//! ordinary text; ftfy's mojibake repair, which guesses at wrongly decoded bytes, is left out).
//! Too-long texts are cut to the context length with the end token kept last, as
//! `clip.tokenize(truncate=True)` does.
//!
//! Other tokenizers (BERT's WordPiece, SigLIP's SentencePiece/Unigram, ...) are used as their
//! `tokenizer.json` defines them, as Hugging Face's fast tokenizers do: no OpenAI clean-up,
//! special tokens from the file's post-processor, and truncation that keeps them.

use std::path::Path;

use tokenizers::Tokenizer;
use unicode_normalization::UnicodeNormalization;

use super::EncodeError;

/// Reads and parses a `tokenizer.json` (the slow part of [`TextTokenizer::from_files`]).
pub fn parse(tokenizer: &Path) -> Result<Tokenizer, String> {
    Tokenizer::from_file(tokenizer).map_err(|e| e.to_string())
}

/// Tokenizes texts to fixed-length id rows.
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    pub context_length: usize,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: u32,
    /// OpenAI's CLIP vocabulary (`<|startoftext|>`): clean text as OpenAI's tokenizer does and
    /// add its start and end tokens ourselves.
    clip_style: bool,
    /// The tokenizer lower-cases (CLIP's does): lower-case first with full Unicode rules, as
    /// Python's `str.lower` in OpenAI's reference does, so that Greek final sigma survives (the
    /// tokenizers crate lower-cases one character at a time, which is the reference for every
    /// other tokenizer, so only OpenAI's vocabulary gets this).
    lowercase: bool,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; `tokenizer_config.json` (if any) supplies the pad token.
    pub fn from_files(
        tokenizer: &Path,
        tokenizer_config: Option<&Path>,
        context_length: usize,
    ) -> Result<TextTokenizer, EncodeError> {
        Self::from_parsed(
            parse(tokenizer),
            tokenizer,
            tokenizer_config,
            context_length,
        )
    }

    /// [`Self::from_files`] on a `tokenizer.json` already parsed by [`parse`] (on another
    /// thread: parsing a 49k-token vocabulary is ~50 ms, as long as opening a small model).
    pub fn from_parsed(
        parsed: Result<Tokenizer, String>,
        tokenizer: &Path,
        tokenizer_config: Option<&Path>,
        context_length: usize,
    ) -> Result<TextTokenizer, EncodeError> {
        let bad = |message: String| EncodeError::Tokenizer {
            path: tokenizer.to_path_buf(),
            message,
        };
        let mut tok = parsed.map_err(bad)?;
        // Padding and truncation are ours (the end token must survive truncation).
        let configured_pad = tok.get_padding().map(|p| p.pad_id);
        tok.with_padding(None);
        tok.with_truncation(None).map_err(|e| bad(e.to_string()))?;
        let lowercase = tok
            .get_normalizer()
            .and_then(|n| serde_json::to_string(n).ok())
            .is_some_and(|j| j.contains("\"Lowercase\""));
        let bos = tok.token_to_id("<|startoftext|>");
        let eos = tok.token_to_id("<|endoftext|>");

        let config_pad = tokenizer_config
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| {
                let pad = v.get("pad_token")?;
                let s = pad.as_str().or_else(|| pad.get("content")?.as_str())?;
                tok.token_to_id(s)
            });
        // OpenAI pads with 0; exports whose tokenizer says otherwise get their own pad.
        let pad = configured_pad.or(config_pad).unwrap_or(0);
        Ok(TextTokenizer {
            tokenizer: tok,
            context_length,
            bos,
            eos,
            pad,
            clip_style: bos.is_some(),
            lowercase,
        })
    }

    /// The longest input the tokenizer's files allow: `model_max_length` of
    /// `tokenizer_config.json`, else the truncation length saved in `tokenizer.json`. For
    /// graphs whose sequence axis is not fixed. (Hugging Face writes a huge sentinel for
    /// "no limit"; that counts as none.)
    pub fn max_length_from_files(
        tokenizer: &Path,
        tokenizer_config: Option<&Path>,
    ) -> Option<usize> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        };
        let sane = |n: u64| (n > 0 && n <= 1 << 16).then_some(n as usize);
        tokenizer_config
            .and_then(read)
            .and_then(|v| v.get("model_max_length")?.as_u64())
            .and_then(sane)
            .or_else(|| {
                read(tokenizer)
                    .and_then(|v| v.get("truncation")?.get("max_length")?.as_u64())
                    .and_then(sane)
            })
    }

    /// Token ids of `text`, cleaned, with start and end tokens, cut or padded to the context
    /// length; and the attention mask (1 for real tokens).
    pub fn encode(&self, text: &str) -> Result<(Vec<i64>, Vec<i64>), String> {
        let mut cleaned = if self.clip_style {
            clean(text)
        } else {
            text.to_string()
        };
        if self.lowercase && self.clip_style {
            cleaned = cleaned.to_lowercase();
        }
        let enc = self
            .tokenizer
            .encode(cleaned.as_str(), true)
            .map_err(|e| format!("tokenizer: {e}"))?;
        let mut ids: Vec<u32> = enc.get_ids().to_vec();
        if self.clip_style {
            if let Some(bos) = self.bos {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
            if let Some(eos) = self.eos {
                if ids.last() != Some(&eos) {
                    ids.push(eos);
                }
            }
            if ids.len() > self.context_length {
                ids.truncate(self.context_length);
                if let (Some(eos), Some(last)) = (self.eos, ids.last_mut()) {
                    *last = eos;
                }
            }
        } else if ids.len() > self.context_length {
            // Keep the special tokens the post-processor put at the end ([SEP], </s>) and cut
            // the text before them, as the tokenizers library's own truncation does.
            let special = enc.get_special_tokens_mask();
            let trailing = special.iter().rev().take_while(|&&s| s == 1).count();
            let trailing = trailing.min(self.context_length);
            let tail: Vec<u32> = ids[ids.len() - trailing..].to_vec();
            ids.truncate(self.context_length - trailing);
            ids.extend(tail);
        }
        let real = ids.len();
        let mut out: Vec<i64> = ids.into_iter().map(i64::from).collect();
        out.resize(self.context_length, self.pad as i64);
        let mask = (0..self.context_length)
            .map(|i| i64::from(i < real))
            .collect();
        Ok((out, mask))
    }
}

/// OpenAI's `basic_clean` + `whitespace_clean`: ftfy's text fixes, HTML unescaping (twice),
/// runs of whitespace to one space, trimmed. Lower-casing and NFC are the tokenizer's.
pub fn clean(text: &str) -> String {
    let fixed = ftfy_fixes(text);
    let once = html_escape::decode_html_entities(&fixed).into_owned();
    let twice = html_escape::decode_html_entities(&once).into_owned();
    twice.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The parts of ftfy's `fix_text` defaults that change well-formed text: terminal escapes and
/// control characters removed, Latin ligatures expanded, fullwidth/halfwidth forms folded,
/// curly quotes straightened, line breaks unified, NFC.
fn ftfy_fixes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // ANSI terminal escapes: ESC [ ... final byte.
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&d) {
                    break;
                }
            }
            continue;
        }
        match c {
            '\u{2018}'..='\u{201b}' | '\u{02bc}' => out.push('\''),
            '\u{201c}'..='\u{201f}' => out.push('"'),
            'Ĳ' => out.push_str("IJ"),
            'ĳ' => out.push_str("ij"),
            'ŉ' => out.push_str("ʼn"),
            'Ǳ' => out.push_str("DZ"),
            'ǲ' => out.push_str("Dz"),
            'ǳ' => out.push_str("dz"),
            'Ǆ' => out.push_str("DŽ"),
            'ǅ' => out.push_str("Dž"),
            'ǆ' => out.push_str("dž"),
            'Ǉ' => out.push_str("LJ"),
            'ǈ' => out.push_str("Lj"),
            'ǉ' => out.push_str("lj"),
            'Ǌ' => out.push_str("NJ"),
            'ǋ' => out.push_str("Nj"),
            'ǌ' => out.push_str("nj"),
            'ﬀ' => out.push_str("ff"),
            'ﬁ' => out.push_str("fi"),
            'ﬂ' => out.push_str("fl"),
            'ﬃ' => out.push_str("ffi"),
            'ﬄ' => out.push_str("ffl"),
            'ﬅ' => out.push_str("ſt"),
            'ﬆ' => out.push_str("st"),
            '\u{3000}' => out.push(' '),
            '\u{ff01}'..='\u{ffef}' => out.extend(c.to_string().nfkc()),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            '\u{0}'..='\u{8}'
            | '\u{b}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'
            | '\u{206a}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffc}' => {}
            _ => out.push(c),
        }
    }
    out.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_matches_openai_basic_and_whitespace_clean() {
        assert_eq!(clean("  a\t\tphoto \n of  a cat "), "a photo of a cat");
        assert_eq!(clean("“quoted” ‘single’"), "\"quoted\" 'single'");
        assert_eq!(clean("ＡＢＣ１２３"), "ABC123");
        assert_eq!(clean("ﬁne"), "fine");
        assert_eq!(clean("fish &amp;amp; chips &lt;b&gt;"), "fish & chips <b>");
        assert_eq!(clean(""), "");
        assert_eq!(clean("cafe\u{301}"), "café");
    }
}
