//! Replays every input kept for the fuzz targets (`fuzz/seeds/TARGET` and
//! inputs that once crashed, `fuzz/regressions/TARGET`) through the same
//! checks the targets run, so a fixed crash stays fixed without cargo fuzz.

#[path = "../../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// A target's check: panics on a bug.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 5] = [
    ("cel_condition", checks::cel_condition),
    ("canonical_entry", checks::canonical_entry),
    ("note_checkpoint", checks::note_checkpoint),
    ("receipt", checks::receipt),
    ("api_body", checks::api_body),
];

#[test]
fn kept_fuzz_inputs_replay_cleanly() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (target, check) in TARGETS {
        let mut replayed = 0;
        for kind in ["seeds", "regressions"] {
            let dir = fuzz.join(kind).join(target);
            let Ok(listing) = std::fs::read_dir(&dir) else {
                continue;
            };
            for file in listing {
                let path = file.expect("listing").path();
                let input = std::fs::read(&path).expect("read input");
                let outcome = std::panic::catch_unwind(|| check(&input));
                assert!(outcome.is_ok(), "{target}: {} fails", path.display());
                replayed += 1;
            }
        }
        assert!(
            replayed > 0,
            "{target}: no kept inputs under {}",
            fuzz.display()
        );
    }
}
