//! "Did you mean ...?": the closest known word to a misspelt one, for error messages.

/// The candidate closest to `word` by edit distance (a swap of two neighbours counts as
/// one edit), if it is close enough to be a likely typo: at most one edit for words of
/// up to four letters, a third of the word's length beyond that.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// `" (did you mean `x`?)"` when a candidate is close to `word`, else nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default()
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`") with the
/// closest expected field suggested.
pub fn unknown_field(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else { return message.to_string() };
    let Some((field, expected)) = rest.split_once("`, expected ") else { return message.to_string() };
    let candidates = expected.split(", ").map(|c| c.trim_start_matches("one of ").trim_matches('`'));
    format!("{message}{}", did_you_mean(field, candidates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word_and_strangers_find_none() {
        assert_eq!(closest("plugin_dri", ["libvirt_uri", "plugin_dir", "plugins"]), Some("plugin_dir"));
        assert_eq!(closest("bacth_size", ["topic", "batch_size"]), Some("batch_size"));
        assert_eq!(closest("notifer", ["file", "notifier", "udp"]), Some("notifier"));
        assert_eq!(closest("gnocchi", ["file", "notifier", "udp", "http"]), None);
        assert_eq!(closest("ab", ["xy"]), None);
    }

    #[test]
    fn serde_messages_get_a_suggestion() {
        assert_eq!(
            unknown_field("unknown field `intervall`, expected one of `name`, `interval`, `meters`"),
            "unknown field `intervall`, expected one of `name`, `interval`, `meters` (did you mean `interval`?)"
        );
        assert_eq!(unknown_field("unknown field `zz`, expected `name`"), "unknown field `zz`, expected `name`");
        assert_eq!(unknown_field("invalid type: string"), "invalid type: string");
    }
}
