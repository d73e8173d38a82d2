//! Shortening text for display (pure): one rule for the inbox and Slack.

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn counts_characters_not_bytes_and_marks_the_cut() {
        assert_eq!(truncate("short", 5), "short");
        assert_eq!(truncate("longer", 5), "long…");
        assert_eq!(truncate("ééééé€", 4), "ééé…");
        assert_eq!(truncate("ééééé€", 4).chars().count(), 4);
    }
}
