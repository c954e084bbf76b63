//! "Did you mean" for unknown keys and enum values.

/// Picks the closest candidate from a serde message such as
/// ``unknown field `captoin`, expected one of `caption_column`, `label_column` `` — serde lists
/// the unknown name first and the known ones after it, all in backticks.
pub fn did_you_mean(message: &str) -> Option<String> {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let (unknown, known) = quoted.split_first()?;
    did_you_mean_among(unknown, known)
}

/// "; did you mean `x`?" for a serde message naming an unknown key or value, else nothing.
pub fn did_you_mean_hint(message: &str) -> String {
    did_you_mean(message)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// The candidate closest to `unknown`, when one is close enough to be a typo of it.
pub fn did_you_mean_among(unknown: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn close_typo_is_suggested_and_far_one_is_not() {
        let m = "unknown field `captoin_column`, expected one of `caption_column`, `label_column`";
        assert_eq!(did_you_mean(m).as_deref(), Some("caption_column"));
        let m = "unknown field `zzz`, expected one of `caption_column`, `label_column`";
        assert_eq!(did_you_mean(m), None);
    }
}
