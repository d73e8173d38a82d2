//! The layering rule of `crates/pliuz/src`, checked on the sources.
//!
//! Every top-level module has a place in [`LAYERS`] (written top first, the
//! same list as in ARCHITECTURE.md). A module may name (`crate::x`,
//! `use crate::{x, y}`, `super::…::x` reaching the crate root) only modules
//! listed *below* it, so no `use` points up and no two modules depend on each
//! other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top first. A module may depend only on modules further down this list.
const LAYERS: &[&str] = &[
    // The binary's entry point and the admin command line.
    "cli",
    // Assembles the routers, binds, runs the workers, shuts down.
    "server",
    "listener",
    // Background workers that deliver to the outside.
    "webhooks",
    "mailer",
    "outbox",
    // HTTP route modules, over the shared HTTP layer.
    "slack",
    "inbox",
    "api",
    "http",
    // Use cases over the store; the only writer.
    "reminders",
    "expiry",
    "audit",
    "service",
    // In-memory counters the service and the workers record into.
    "metrics",
    "store",
    // Configuration and its helpers.
    "file_modes",
    "config",
    "encryption",
    // The domain: pure, no I/O.
    "audit_event",
    "approver_check",
    "notify",
    "auth",
    "policy",
    "diff",
    "question",
    "approval",
    // Small leaf helpers.
    "run",
    "shutdown",
    "redact",
    "password_gate",
    "memory_return",
    "private_file",
    "originator",
    "text",
    "enum_names",
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `//` comments (doc comments name modules freely).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|line| match line.find("//") {
            // `"https://…"` inside a string is not a comment.
            Some(i) if line[..i].matches('"').count() % 2 == 0 => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of each item of a `{a, b::c, d::{e}}` group.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && !c.is_whitespace() => {
                at_item_start = false;
                let id = ident_at(&s[i..]);
                if !id.is_empty() && id != "self" {
                    heads.push(id.to_owned());
                }
            }
            _ => {}
        }
    }
    heads
}

/// The top-level modules a file (at `depth` modules below the crate root)
/// names.
fn named_modules(src: &str, depth: usize) -> BTreeSet<String> {
    let src = strip_comments(src);
    let mut names = BTreeSet::new();
    for (i, _) in src.match_indices("crate::") {
        let before = src[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &src[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            names.extend(group_heads(group));
        } else {
            names.insert(ident_at(rest).to_owned());
        }
    }
    // `super::super::x` from a nested file may reach the crate root.
    for (i, _) in src.match_indices("super::") {
        if src[..i].ends_with("super::") {
            continue;
        }
        let mut rest = &src[i..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups == depth {
            if let Some(group) = rest.strip_prefix('{') {
                names.extend(group_heads(group));
            } else {
                names.insert(ident_at(rest).to_owned());
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// `module → (module it names → files that name it)` over `files`
/// (`path relative to src`, `source`).
fn dependencies(files: &[(String, String)]) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut deps: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (rel, src) in files {
        let parts: Vec<&str> = rel.split('/').collect();
        let top = parts[0].trim_end_matches(".rs").to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let last = parts[parts.len() - 1];
        // `a.rs` and `a/mod.rs` are module `a` (depth 1); `a/b.rs` depth 2.
        let depth = parts.len() - usize::from(last == "mod.rs");
        for name in named_modules(src, depth) {
            if name != top {
                deps.entry(top.clone())
                    .or_default()
                    .entry(name)
                    .or_default()
                    .push(rel.clone());
            }
        }
    }
    deps
}

/// Every breach of the layering rule, as sentences.
fn violations(files: &[(String, String)], layers: &[&str]) -> Vec<String> {
    let rank = |m: &str| layers.iter().position(|l| *l == m);
    let deps = dependencies(files);
    let mut found = Vec::new();
    for (module, uses) in &deps {
        for (used, where_) in uses {
            if deps.get(used).is_some_and(|u| u.contains_key(module)) && module < used {
                found.push(format!("{module} and {used} depend on each other"));
            }
            match (rank(module), rank(used)) {
                (Some(a), Some(b)) if a > b => found.push(format!(
                    "{module} (lower) uses {used} (higher in the layer list) in {where_:?}"
                )),
                (None, _) => found.push(format!("{module} is not in the layer list")),
                (_, None) if layers.iter().all(|l| l != used) && deps.contains_key(used) => {
                    found.push(format!("{used} is not in the layer list"))
                }
                _ => {}
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Modules allowed to name `store`: it is private to the service layer.
const STORE_REACHERS: &[&str] = &["service"];

/// Every module other than [`STORE_REACHERS`] that names `store`.
fn store_breaches(files: &[(String, String)]) -> Vec<String> {
    dependencies(files)
        .into_iter()
        .filter(|(module, uses)| {
            module != "store"
                && !STORE_REACHERS.contains(&module.as_str())
                && uses.contains_key("store")
        })
        .map(|(module, uses)| format!("{module} names the store in {:?}", uses["store"]))
        .collect()
}

fn crate_files() -> Vec<(String, String)> {
    let root = src_dir();
    let mut paths = Vec::new();
    rust_files(&root, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).expect("read source"))
        })
        .collect()
}

/// The top-level modules that exist under src/.
fn top_modules() -> BTreeSet<String> {
    std::fs::read_dir(src_dir())
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            if p.is_dir() {
                Some(name)
            } else {
                name.strip_suffix(".rs").map(str::to_owned)
            }
        })
        .filter(|n| n != "lib" && n != "main")
        .collect()
}

#[test]
fn modules_only_use_modules_below_them() {
    let found = violations(&crate_files(), LAYERS);
    assert!(
        found.is_empty(),
        "the layering rule is broken:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn only_the_service_layer_reaches_the_store() {
    let found = store_breaches(&crate_files());
    assert!(
        found.is_empty(),
        "the store is private to `service` (re-export what others need from there):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_store_check_sees_every_way_of_naming_it() {
    let files = vec![
        file("api/mod.rs", "let p = state.cp.list_approvals(&f);"),
        file("inbox/queue.rs", "use crate::store::ApprovalFilter;"),
        file(
            "outbox.rs",
            "use crate::{approval::Approval, store::slack};",
        ),
        file(
            "audit/witness.rs",
            "let n = super::super::store::now_millis();",
        ),
        file("service/mod.rs", "use crate::store::Store;"),
        file("store/mod.rs", "use crate::store::Store;"),
    ];
    let found = store_breaches(&files);
    assert_eq!(found.len(), 3, "{found:?}");
    for module in ["inbox", "outbox", "audit"] {
        assert!(
            found.iter().any(|f| f.starts_with(&format!("{module} "))),
            "{module}: {found:?}"
        );
    }
}

#[test]
fn every_module_has_a_place_in_the_layer_list() {
    let listed: BTreeSet<String> = LAYERS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(listed.len(), LAYERS.len(), "a module is listed twice");
    assert_eq!(top_modules(), listed, "src/ and LAYERS disagree");
}

#[test]
fn architecture_md_lists_the_same_layers() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md"),
    )
    .expect("read ARCHITECTURE.md");
    let start = doc
        .find("```layers")
        .expect("ARCHITECTURE.md has a ```layers block");
    let block = &doc[start + "```layers".len()..];
    let block = &block[..block.find("```").expect("the block ends")];
    let listed: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        listed, LAYERS,
        "ARCHITECTURE.md's layer list differs from this test's"
    );
}

fn file(rel: &str, src: &str) -> (String, String) {
    (rel.to_owned(), src.to_owned())
}

#[test]
fn the_check_sees_cycles_and_upward_uses() {
    // The shapes of the cycles the layering removed: grouped imports, inline
    // paths and `super::super::` from a nested file.
    let files = vec![
        file(
            "api/extract.rs",
            "let p = crate::inbox::session_principal(parts);",
        ),
        file("inbox/mod.rs", "use crate::{api::AppState, auth};"),
        file(
            "store/schema.rs",
            "sqlite: super::super::slack::store::SQL,",
        ),
        file(
            "slack/mod.rs",
            "use crate::store::{Store}; // crate::server in a comment",
        ),
        file("auth.rs", "fn f() {}"),
    ];
    let found = violations(&files, &["inbox", "api", "slack", "store", "auth"]);
    assert!(
        found.contains(&"api and inbox depend on each other".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"slack and store depend on each other".to_owned()),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("store (lower) uses slack")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("api (lower) uses inbox")),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|f| f.contains("server")),
        "comments are not uses: {found:?}"
    );
    // Going down is allowed.
    let clean = vec![
        file("inbox/mod.rs", "use crate::{api::AppState, auth};"),
        file("api/mod.rs", "use crate::auth::Principal;"),
    ];
    assert_eq!(
        violations(&clean, &["inbox", "api", "auth"]),
        Vec::<String>::new()
    );
}
