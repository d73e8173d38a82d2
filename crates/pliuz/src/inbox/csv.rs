//! CSV cells for the history export (RFC 4180 quoting), with protection
//! against formula injection: a spreadsheet would run a cell starting with
//! `=`, `+`, `-`, `@` (or a tab / carriage return before one), so such cells
//! get a leading `'` and are shown as text.

/// One cell, quoted when needed and defused against formula injection.
pub fn cell(value: &str) -> String {
    let defused = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r'])
        || defused.starts_with(' ')
        || defused.ends_with(' ')
    {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// One line: cells joined by commas, ended by CRLF.
pub fn row<I, S>(cells: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = cells
        .into_iter()
        .map(|c| cell(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cells_are_unchanged() {
        assert_eq!(cell("issue_refund"), "issue_refund");
        assert_eq!(cell(""), "");
        assert_eq!(cell("42"), "42");
    }

    #[test]
    fn special_characters_are_quoted() {
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("+SUM(A1)"), "'+SUM(A1)");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@cmd"), "'@cmd");
        assert_eq!(cell("\t=x"), "'\t=x");
        assert_eq!(
            cell("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        // Only the start matters.
        assert_eq!(cell("a=b"), "a=b");
    }

    #[test]
    fn rows_end_with_crlf() {
        assert_eq!(row(["a", "=b", "c,d"]), "a,'=b,\"c,d\"\r\n");
    }
}
