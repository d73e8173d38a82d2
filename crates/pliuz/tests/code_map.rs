//! ARCHITECTURE.md's code map names every module that exists and no module
//! that does not: each source file under `crates/pliuz/src`,
//! `crates/pliuz-audit/src`, `sdk/python/pliuz` and `sdk/typescript/src`
//! (crate roots `lib.rs` / `main.rs` aside) appears as a backticked path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn walk(dir: &Path, ext: &str, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "__pycache__" | "node_modules" | "static") {
                walk(&path, ext, out);
            }
        } else if name.ends_with(ext) && !matches!(name, "lib.rs" | "main.rs") {
            let rel = path
                .strip_prefix(repo())
                .expect("inside the repository")
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel);
        }
    }
}

fn modules_in_tree() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (dir, ext) in [
        ("crates/pliuz/src", ".rs"),
        ("crates/pliuz-audit/src", ".rs"),
        ("sdk/python/pliuz", ".py"),
        ("sdk/typescript/src", ".ts"),
    ] {
        walk(&repo().join(dir), ext, &mut found);
    }
    found
}

fn modules_in_code_map() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = doc.find("## Code map").expect("a '## Code map' section");
    let section = &doc[start + 3..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| {
            (t.starts_with("crates/") || t.starts_with("sdk/"))
                && [".rs", ".py", ".ts"].iter().any(|e| t.ends_with(e))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_code_map_names_exactly_the_modules_that_exist() {
    let tree = modules_in_tree();
    let map = modules_in_code_map();
    assert!(tree.len() > 50, "the tree walk found too little: {tree:?}");
    let missing: Vec<_> = tree.difference(&map).collect();
    let gone: Vec<_> = map.difference(&tree).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "ARCHITECTURE.md's code map is out of date.\n  add: {missing:?}\n  remove: {gone:?}"
    );
}
