//! docs/audit.md's table of entry types lists exactly the kinds the server
//! can write (the variants of `audit_event::AuditEvent`), no more and no fewer.

use pliuz::audit_event::AuditEvent;
use std::collections::BTreeSet;
use std::path::Path;

fn documented_types() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit.md"))
            .expect("read docs/audit.md");
    let start = doc
        .find("| `type` | actor | when | `data` |")
        .expect("docs/audit.md has the table of entry types");
    doc[start..]
        .lines()
        .skip(2) // header and separator
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            let first_cell = row.split('|').nth(1).unwrap_or("");
            first_cell
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_documented_entry_types_are_exactly_the_ones_written() {
    let documented = documented_types();
    let written: BTreeSet<String> = AuditEvent::KINDS.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(
        written.len(),
        AuditEvent::KINDS.len(),
        "a type is listed twice"
    );
    let undocumented: Vec<_> = written.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&written).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/audit.md and audit_event::AuditEvent disagree.\n  not in the docs: {undocumented:?}\n  not written by the server: {unknown:?}"
    );
}
