//! Who a request is for, typed and normalised, so that "nobody approves
//! their own request" holds however the agent spells the person.
//!
//! An originator is a person, stored as `user:EMAIL`; another kind of
//! party with an address, stored as `KIND:EMAIL` (`customer:EMAIL`); or an
//! opaque identifier without an `@` (a customer number, a job name). A
//! person may be given as `user:EMAIL`, `EMAIL`, `mailto:EMAIL` or
//! `Name <EMAIL>` (and `KIND:` before any of these); the text is NFKC-normalised, invisible
//! characters (zero-width spaces, joiners, BOMs, bidi controls, soft
//! hyphens) are removed, surrounding space is trimmed and the e-mail is
//! lower-cased. An e-mail whose local part or any domain label mixes
//! scripts (a Cyrillic `а` among Latin letters) is refused. Comparison with
//! a decider uses the Unicode confusable skeleton (UTS #39) of both
//! addresses, so whole-script look-alikes count as the same person (this
//! can only stop someone approving, never let them). An address counts as
//! the decider's whatever its kind: `customer:EMAIL` is their own request
//! too when EMAIL is theirs.

use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

/// The prefix of an originator that is a person.
pub const USER_PREFIX: &str = "user:";
const MAX_CHARS: usize = 320;

/// Characters that render as nothing (Unicode Default_Ignorable_Code_Point).
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5
        | 0x180B..=0x180F | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F
        | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

/// NFKC, invisible characters removed, trimmed; control characters refused.
fn clean(raw: &str) -> Result<String, String> {
    let text: String = raw.nfkc().filter(|c| !is_invisible(*c)).collect();
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err("must not contain control characters".into());
    }
    Ok(text.trim().to_owned())
}

/// The kind (`user`, or another `KIND:` prefix such as `customer`) and the
/// e-mail inside one of the accepted spellings, if the text names one.
fn email_part(text: &str) -> Option<(String, &str)> {
    let (kind, rest) = match text.split_once(':') {
        Some((k, r))
            if !k.is_empty()
                && k.len() <= 32
                && k.starts_with(|c: char| c.is_ascii_alphabetic())
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !k.eq_ignore_ascii_case("mailto") =>
        {
            (k.to_ascii_lowercase(), r.trim())
        }
        _ => ("user".to_owned(), text),
    };
    let inner = if let Some(open) = rest.rfind('<') {
        let close = rest[open..].find('>')? + open;
        rest[close + 1..]
            .trim()
            .is_empty()
            .then(|| &rest[open + 1..close])?
    } else {
        rest
    };
    let inner = inner.trim();
    let inner = match inner.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => inner[7..].trim(),
        _ => inner,
    };
    inner.contains('@').then_some((kind, inner))
}

/// A lower-cased, validated e-mail address; `strict` also refuses mixed scripts.
fn email(candidate: &str, strict: bool) -> Result<String, String> {
    let e: String = candidate.to_lowercase().nfkc().collect();
    let Some((local, domain)) = e.rsplit_once('@') else {
        return Err("is not an e-mail address".into());
    };
    let bad = local.is_empty()
        || domain.is_empty()
        || local.contains('@')
        || domain.split('.').any(str::is_empty)
        || e.chars().any(|c| {
            c.is_whitespace() || matches!(c, '<' | '>' | '"' | ',' | ';' | '\\' | '(' | ')')
        });
    if bad {
        return Err(format!(
            "'{e}' is not an e-mail address; name a person as user:EMAIL (or EMAIL, mailto:EMAIL, Name <EMAIL>), anything else must not contain '@'"
        ));
    }
    if strict {
        let parts = std::iter::once(local).chain(domain.split('.'));
        for part in parts {
            if !part.is_single_script() {
                return Err(format!(
                    "'{e}' mixes scripts in '{part}' (look-alike letters from another alphabet); write the address in one script"
                ));
            }
        }
    }
    Ok(e)
}

/// The stored form of an originator: `user:EMAIL` for a person, the cleaned
/// identifier otherwise, `None` when it is empty. `Err` says what to fix.
pub fn normalise(raw: &str) -> Result<Option<String>, String> {
    let text = clean(raw)?;
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_CHARS {
        return Err(format!("must be at most {MAX_CHARS} characters"));
    }
    match email_part(&text) {
        Some((kind, e)) => Ok(Some(format!("{kind}:{}", email(e, true)?))),
        None if text.contains('@') || text.to_ascii_lowercase().starts_with(USER_PREFIX) => {
            Err(format!(
                "'{text}' is not a person: write user:EMAIL (or EMAIL, mailto:EMAIL, Name <EMAIL>)"
            ))
        }
        None => Ok(Some(text)),
    }
}

/// What two spellings of one person have in common: the confusable
/// skeleton of the normalised address.
fn person_key(email: &str) -> String {
    unicode_security::skeleton(email)
        .collect::<String>()
        .to_lowercase()
}

/// Whether `originator` (as stored, or as an agent once sent it before
/// originators were normalised) names the person with e-mail `email`.
/// Lenient on purpose: a spelling it cannot read as an e-mail is compared
/// by skeleton as a whole, so unreadable is never a way around four-eyes.
pub fn names_person(originator: &str, email: &str) -> bool {
    let Ok(text) = clean(originator) else {
        return true; // control characters: fail closed
    };
    let Ok(me) = self::email(email, false) else {
        return false;
    };
    // Whatever the kind (`user:`, `customer:`): the same address is the
    // same person, so it counts as their own request.
    let theirs = match email_part(&text).map(|(_, e)| self::email(e, false)) {
        Some(Ok(e)) => e,
        Some(Err(_)) => return person_key(&text).contains(&person_key(&me)),
        None => return false,
    };
    person_key(&theirs) == person_key(&me)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_person_normalises_to_user_email() {
        for raw in [
            "alice@example.com",
            "user:alice@example.com",
            "USER:Alice@Example.COM",
            "  alice@example.com \t",
            "alice@example.com\u{200B}",
            "\u{FEFF}ali\u{200D}ce@example.com",
            "mailto:alice@example.com",
            "Alice Liddell <alice@example.com>",
            "\"Liddell, Alice\" <mailto:ALICE@example.com>",
            "ａｌｉｃｅ＠ｅｘａｍｐｌｅ.ｃｏｍ",
        ] {
            assert_eq!(
                normalise(raw).unwrap().as_deref(),
                Some("user:alice@example.com"),
                "{raw:?}"
            );
            assert!(names_person(raw, "alice@example.com"), "{raw:?}");
        }
    }

    #[test]
    fn look_alikes_are_refused_or_match() {
        // Cyrillic а among Latin letters.
        assert!(normalise("\u{0430}lice@example.com")
            .unwrap_err()
            .contains("mixes scripts"));
        assert!(normalise("alice@ex\u{0430}mple.com").is_err());
        // Stored before normalisation existed: still the same person.
        assert!(names_person(
            "\u{0430}lice@example.com",
            "alice@example.com"
        ));
        // A whole-script Cyrillic look-alike is accepted but is the same person.
        let cyr = "\u{0430}\u{0435}\u{043E}@example.com";
        assert_eq!(normalise(cyr).unwrap().unwrap(), format!("user:{cyr}"));
        assert!(names_person(cyr, "aeo@example.com"));
    }

    #[test]
    fn other_kinds_keep_their_kind_but_still_count_for_four_eyes() {
        assert_eq!(
            normalise("Customer:Carla <CARLA@example.net>")
                .unwrap()
                .as_deref(),
            Some("customer:carla@example.net")
        );
        assert!(names_person(
            "customer:carla@example.net",
            "carla@example.net"
        ));
        assert!(!names_person(
            "customer:carla@example.net",
            "ann@example.net"
        ));
        assert!(normalise("customer:carla@").is_err());
    }

    #[test]
    fn other_identifiers_are_not_people() {
        assert_eq!(
            normalise("customer 42 ").unwrap().as_deref(),
            Some("customer 42")
        );
        assert_eq!(normalise(" \u{200B} ").unwrap(), None);
        assert!(!names_person("customer 42", "alice@example.com"));
        assert!(!names_person("user:bob@example.com", "alice@example.com"));
        assert!(
            normalise("alice at example.com <bob>").is_err()
                || normalise("alice at example.com <bob>").is_ok()
        );
        assert!(normalise("user:nobody").is_err());
        assert!(normalise("a@b@c").is_err());
        assert!(normalise("x\u{0007}y").is_err());
    }
}
