//! Signed notes, checkpoints, canonical entries and receipts.

use pliuz_audit::*;
use serde_json::json;

const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

fn v(s: &str) -> Verifier {
    s.parse().expect("verifier key")
}

// ---------------------------------------------------------------- notes

#[test]
fn c2sp_spec_vector_verifies() {
    let key = v(SPEC_VKEY);
    assert_eq!(key.name(), "example.com/foo");
    assert_eq!(key.key_id(), "530d903a");
    assert_eq!(key.to_string(), SPEC_VKEY);
    let (text, names) = open_note(SPEC_NOTE, &[key]).expect("spec note verifies");
    assert_eq!(text, "This is an example message.\n");
    assert_eq!(names, vec!["example.com/foo".to_owned()]);
}

#[test]
fn go_sumdb_note_vector_signs_byte_for_byte() {
    let sk = SigningKey::from_private_string(GO_SKEY).expect("private key");
    assert_eq!(sk.to_private_string(), GO_SKEY);
    assert_eq!(sk.verifier_key(), GO_VKEY);
    let note = sk.sign_note(GO_TEXT).expect("sign");
    assert_eq!(note, format!("{GO_TEXT}\n{GO_SIG}"));
    open_note(&note, &[v(GO_VKEY)]).expect("verifies");
}

#[test]
fn note_verification_rules() {
    let a = SigningKey::generate("log.example/a").expect("key");
    let b = SigningKey::generate("log.example/b").expect("key");
    let note = a.sign_note("hello\n").expect("sign");

    // Unknown keys are ignored, but something known must have signed.
    assert!(matches!(
        open_note(&note, &[b.verifier()]),
        Err(Error::NoTrustedSignature(_))
    ));
    assert!(matches!(
        open_note(&note, &[]),
        Err(Error::NoTrustedSignature(_))
    ));
    let (_, names) = open_note(&note, &[b.verifier(), a.verifier()]).expect("a signed");
    assert_eq!(names, vec!["log.example/a"]);

    // Co-signed note: both lines; either key alone suffices.
    let cosigned = format!(
        "{note}{}",
        b.sign_note("hello\n")
            .expect("sign")
            .split_once("\n\n")
            .expect("split")
            .1
    );
    let (_, names) = open_note(&cosigned, &[a.verifier(), b.verifier()]).expect("both");
    assert_eq!(names, vec!["log.example/a", "log.example/b"]);
    open_note(&cosigned, &[b.verifier()]).expect("b alone");

    // Altered text with a known key: bad signature, not ignored.
    let altered = note.replacen("hello", "hellO", 1);
    assert!(matches!(
        open_note(&altered, &[a.verifier()]),
        Err(Error::BadSignature(_))
    ));

    // Malformed notes.
    for bad in [
        "hello\n",
        "hello\n\n",
        "hello\n\n\u{2014} log.example/a\n",
        "hello\n\n- log.example/a AAAA\n",
        "hello\n\n\u{2014} log.example/a !!!\n",
        "hel\rlo\n\n\u{2014} log.example/a AAAAAAAA\n",
    ] {
        assert!(open_note(bad, &[a.verifier()]).is_err(), "{bad:?}");
    }
    assert!(a.sign_note("no newline").is_err());
    assert!(a.sign_note("").is_err());
    assert!(a.sign_note("tab\there\n").is_err());
}

#[test]
fn key_strings_round_trip_and_reject_garbage() {
    let k = SigningKey::generate("pliuz.example/audit").expect("key");
    let back = SigningKey::from_private_string(&k.to_private_string()).expect("parse");
    assert_eq!(back.verifier_key(), k.verifier_key());
    assert_eq!(v(&k.verifier_key()), k.verifier());
    assert!(format!("{k:?}").contains("pliuz.example/audit"));
    assert!(!format!("{k:?}").contains(&k.to_private_string()[30..]));

    for bad_name in ["", "has space", "a+b", "tab\t"] {
        assert!(SigningKey::generate(bad_name).is_err(), "{bad_name:?}");
    }
    let vk = k.verifier_key();
    let (name, rest) = vk.split_once('+').expect("plus");
    for bad in [
        String::new(),
        "nokey".to_owned(),
        format!("{name}+00000000+{}", rest.split_once('+').expect("plus").1), // wrong ID
        format!("other+{rest}"),                                              // ID bound to name
        format!("{name}+zz+AAAA"),
        format!("{name}+{}", rest.replace('A', "B")),
        format!("{name}+{}+AgAA", &rest[..8]), // unknown algorithm
    ] {
        assert!(bad.parse::<Verifier>().is_err(), "{bad:?}");
    }
    assert!(SigningKey::from_private_string(&vk).is_err());
    let priv_str = k.to_private_string();
    assert!(
        SigningKey::from_private_string(&priv_str.replacen("pliuz.example/audit", "x", 1)).is_err()
    );
}

// ----------------------------------------------------------- checkpoints

#[test]
fn checkpoint_round_trip_and_origin_binding() {
    let key = SigningKey::generate("pliuz.example/log").expect("key");
    let cp = Checkpoint {
        origin: "pliuz.example/log".into(),
        size: 42,
        root: leaf_hash(b"x"),
    };
    let body = cp.to_body();
    assert_eq!(Checkpoint::parse(&body), Ok(cp.clone()));
    let note = sign_checkpoint(&cp, &key).expect("sign");
    assert_eq!(open_checkpoint(&note, &[key.verifier()]), Ok(cp.clone()));

    // The origin must be the signing key's name.
    let other = SigningKey::generate("someone.else").expect("key");
    assert!(sign_checkpoint(&cp, &other).is_err());
    let forged = other.sign_note(&body).expect("sign");
    assert!(open_checkpoint(&forged, &[other.verifier()]).is_err());

    for bad in [
        "o\n42\n",
        "o\n042\n".to_owned().as_str(),
        "o\n+42\n",
        "o\n-1\n",
        "o\n18446744073709551616\n",
        "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension\n",
        "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
    ] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
    assert!(Checkpoint::parse("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n").is_ok());
}

// --------------------------------------------------------------- entries

fn entry(index: u64, data: serde_json::Value) -> Entry {
    Entry {
        index,
        time: "2025-01-31T12:00:00.123Z".into(),
        kind: "approval.decided".into(),
        actor: "user:a@b.example".into(),
        approval_id: Some("apr_01".into()),
        data,
    }
}

#[test]
fn canonical_entry_bytes() {
    let e = entry(
        7,
        json!({"z": 1, "a": [true, null, 1.5, "x\"\n\u{1}é"], "B": {"y": 2, "x": 1e21}}),
    );
    let bytes = e.to_canonical_bytes().expect("canonical");
    assert_eq!(
        String::from_utf8(bytes.clone()).expect("utf8"),
        r#"{"actor":"user:a@b.example","approval_id":"apr_01","data":{"B":{"x":1e+21,"y":2},"a":[true,null,1.5,"x\"\n\u0001é"],"z":1},"index":7,"time":"2025-01-31T12:00:00.123Z","type":"approval.decided"}"#
    );
    assert_eq!(Entry::parse_canonical(&bytes), Ok(e.clone()));
    let mut no_id = e.clone();
    no_id.approval_id = None;
    let b = no_id.to_canonical_bytes().expect("canonical");
    assert!(!String::from_utf8_lossy(&b).contains("approval_id"));
    assert_eq!(Entry::parse_canonical(&b), Ok(no_id));
}

#[test]
fn canonical_encoding_matches_independent_jcs_implementation() {
    // Cross-check against serde_json_canonicalizer on tricky values: UTF-16
    // key order, number formatting, escapes.
    let cases = [
        json!({"\u{e000}": 1, "\u{1F600}": 2, "a": 3, "A": 4, "": 5, "\u{80}": 6}),
        json!([
            0,
            -0.0,
            1e-7,
            1e21,
            123456789012345680000.0,
            9007199254740993u64,
            -9007199254740993i64,
            0.1,
            5e-324,
            1.7976931348623157e308
        ]),
        json!(["\u{7f}", "\u{1f}\u{8}\u{c}\t\r\n/\\\"", "\u{2028}", "😀"]),
        json!({"nested": {"b": [{"d": 1, "c": 2}], "a": null}}),
        json!(-4503599627370496.5),
    ];
    for data in cases {
        let e = entry(1, data);
        let ours = e.to_canonical_bytes().expect("canonical");
        let theirs = serde_json_canonicalizer::to_vec(&e).expect("jcs");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
        // Canonical bytes are a fixed point (values such as -0 or 2^53+1 are
        // normalised on the way in, as JCS requires).
        let back = Entry::parse_canonical(&ours).expect("parses");
        assert_eq!(back.to_canonical_bytes().expect("canonical"), ours);
    }
}

#[test]
fn non_canonical_entries_are_rejected() {
    let good = String::from_utf8(entry(3, json!({"n": 1})).to_canonical_bytes().expect("c"))
        .expect("utf8");
    Entry::parse_canonical(good.as_bytes()).expect("good");
    let variants = [
        good.replacen("{\"actor\"", "{ \"actor\"", 1), // whitespace
        good.replacen("\"n\":1", "\"n\":1.0", 1),      // number form
        good.replacen("user:a", "\\u0075ser:a", 1),    // needless escape
        good.replacen("\"index\":3,", "", 1)
            .replacen('}', ",\"index\":3}", 1), // order
        format!("{good}\n"),                           // trailing newline
        good.replacen("\"approval_id\":\"apr_01\"", "\"approval_id\":null", 1),
        good.replacen("\"type\"", "\"extra\":1,\"type\"", 1), // unknown field
        good.replacen("2025-01-31T12:00:00.123Z", "2025-01-31T12:00:00Z", 1),
        good.replacen("2025-01-31T12:00:00.123Z", "2025-13-31T12:00:00.123Z", 1),
        good.replacen("\"n\":1", "\"n\":1,\"n\":1", 1), // duplicate key
        good.replacen("\"index\":3", "\"index\":03", 1),
        "null".to_owned(),
        String::new(),
    ];
    for bad in variants {
        assert!(Entry::parse_canonical(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(Entry::parse_canonical(&[0xff, 0xfe]).is_err());
    assert!(entry(1 << 53, json!(null)).to_canonical_bytes().is_err());
}

// -------------------------------------------------------------- receipts

struct Log {
    key: SigningKey,
    tree: MemoryTree,
    lines: Vec<Vec<u8>>,
}

fn log_with_approvals(n: u64) -> Log {
    let key = SigningKey::generate("pliuz.test/log").expect("key");
    let mut tree = MemoryTree::new();
    let mut lines = Vec::new();
    for i in 0..n {
        let mut e = entry(i, json!({"i": i}));
        e.approval_id = Some(format!("apr_{}", i % 3));
        let b = e.to_canonical_bytes().expect("canonical");
        tree.push_entry(&b);
        lines.push(b);
    }
    Log { key, tree, lines }
}

fn receipt_for(log: &Log, approval: &str) -> Receipt {
    let size = log.tree.size();
    let cp = Checkpoint {
        origin: log.key.name().into(),
        size,
        root: log.tree.root(),
    };
    let note = sign_checkpoint(&cp, &log.key).expect("sign");
    let entries = log
        .lines
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            Entry::parse_canonical(b)
                .expect("entry")
                .approval_id
                .as_deref()
                == Some(approval)
        })
        .map(|(i, b)| {
            (
                i as u64,
                b.clone(),
                log.tree.inclusion_proof(i as u64, size).expect("proof"),
            )
        })
        .collect();
    Receipt::build(approval, &note, size, entries).expect("build")
}

#[test]
fn receipt_round_trip() {
    let log = log_with_approvals(20);
    let r = receipt_for(&log, "apr_1");
    let json = serde_json::to_string_pretty(&r).expect("json");
    assert!(json.contains("\"format\": \"pliuz-receipt/v1\""));
    let back: Receipt = serde_json::from_str(&json).expect("parse");
    let report = verify_receipt(&back, &[log.key.verifier()]).expect("verifies");
    assert_eq!(report.entries.len(), 7);
    assert_eq!(report.checkpoint.size, 20);
    assert_eq!(report.signed_by, vec![log.key.verifier_key()]);
    assert!(report
        .entries
        .iter()
        .all(|e| e.approval_id.as_deref() == Some("apr_1")));
}

#[test]
fn receipt_tampering_is_detected() {
    let log = log_with_approvals(20);
    let good = receipt_for(&log, "apr_2");
    let keys = [log.key.verifier()];
    verify_receipt(&good, &keys).expect("good");

    let mut r = good.clone();
    r.entries[0].entry = r.entries[0].entry.replacen("\"i\":2", "\"i\":9", 1);
    assert!(verify_receipt(&r, &keys).is_err(), "edited entry");

    let mut r = good.clone();
    r.entries[1].index += 1;
    assert!(verify_receipt(&r, &keys).is_err(), "index moved");

    let mut r = good.clone();
    r.entries[0].inclusion_proof.pop();
    assert!(verify_receipt(&r, &keys).is_err(), "short proof");

    let mut r = good.clone();
    r.checkpoint = r.checkpoint.replacen("\n20\n", "\n21\n", 1);
    r.tree_size = 21;
    assert!(verify_receipt(&r, &keys).is_err(), "checkpoint edited");

    let mut r = good.clone();
    r.approval_id = "apr_1".into();
    assert!(verify_receipt(&r, &keys).is_err(), "other approval");

    let mut r = good.clone();
    r.tree_size = 19;
    assert!(verify_receipt(&r, &keys).is_err(), "size mismatch");

    let mut r = good.clone();
    r.format = "pliuz-receipt/v2".into();
    assert!(verify_receipt(&r, &keys).is_err(), "format");

    let stranger = SigningKey::generate("pliuz.test/log").expect("key");
    assert!(
        verify_receipt(&good, &[stranger.verifier()]).is_err(),
        "unknown key"
    );

    // Build refuses structurally wrong input.
    let note = good.checkpoint.clone();
    let wrong_proof = vec![(2u64, log.lines[2].clone(), vec![])];
    assert!(Receipt::build("apr_2", &note, 20, wrong_proof).is_err());
    assert!(Receipt::build("apr_2", &note, 19, vec![]).is_err());
    assert!(Receipt::build("apr_2", &note, 20, vec![]).is_err());
}

#[test]
fn receipt_entries_must_be_in_log_order() {
    let log = log_with_approvals(20);
    let keys = [log.key.verifier()];
    let mut r = receipt_for(&log, "apr_0");
    r.entries.swap(0, 1);
    assert!(verify_receipt(&r, &keys).is_err(), "reordered");
    let mut r = receipt_for(&log, "apr_0");
    let dup = r.entries[0].clone();
    r.entries.insert(1, dup);
    assert!(verify_receipt(&r, &keys).is_err(), "duplicated");
}
