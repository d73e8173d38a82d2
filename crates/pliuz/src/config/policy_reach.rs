//! A policy's reach keys: `email`, `email_to`, `remind_after`,
//! `escalate_after`, `escalate_to` (docs/policies.md). Every mistake is
//! reported with its line, like the other policy keys.

use super::{FilePolicy, Lines};
use crate::policy::{parse_duration, Approver, EmailTo, Escalation, PolicyError};
use std::time::Duration;
use toml::Spanned;

/// What the keys say, in the order `Policy` holds them.
pub(super) type Reach = (Option<EmailTo>, Option<Duration>, Option<Escalation>);

/// A person or group, as in `approvers`; a bare e-mail address in
/// `email_to` means that person.
fn person_or_group(s: &str, bare_email: bool) -> Result<Approver, String> {
    if bare_email && !s.contains(':') && s.contains('@') {
        return Ok(Approver::User(s.trim().to_lowercase()));
    }
    Approver::parse(s)
}

fn people(
    list: &[Spanned<String>],
    key: &str,
    bare_email: bool,
    name: &str,
    lines: &Lines<'_>,
    errors: &mut Vec<PolicyError>,
) -> Vec<Approver> {
    let mut out = Vec::new();
    for e in list {
        match person_or_group(e.get_ref(), bare_email) {
            Ok(a) => out.push(a),
            Err(m) => errors.push(lines.err(e, format!("policy '{name}': {key}: {m}"))),
        }
    }
    out
}

/// A delay that must end before the request expires, or it never fires.
fn delay(
    d: &Spanned<String>,
    key: &str,
    name: &str,
    expires_in: Duration,
    lines: &Lines<'_>,
    errors: &mut Vec<PolicyError>,
) -> Option<Duration> {
    match parse_duration(d.get_ref()) {
        Ok(v) if v < Duration::from_secs(1) => {
            errors.push(lines.err(d, format!("policy '{name}': {key} must be at least 1s")));
            None
        }
        Ok(v) if v >= expires_in => {
            errors.push(lines.err(
                d,
                format!(
                    "policy '{name}': {key} ({}) must be shorter than expires_in ({}): the request expires before it would fire",
                    d.get_ref(),
                    humantime::format_duration(expires_in)
                ),
            ));
            None
        }
        Ok(v) => Some(v),
        Err(m) => {
            errors.push(lines.err(d, format!("policy '{name}': {key} {m}")));
            None
        }
    }
}

/// A mistake in a list key, reported at its first entry (or at the
/// policy's name when the list is empty).
fn err_at_first(
    list: &[Spanned<String>],
    name_key: &Spanned<String>,
    lines: &Lines<'_>,
    message: String,
) -> PolicyError {
    match list.first() {
        Some(first) => lines.err(first, message),
        None => lines.err(name_key, message),
    }
}

pub(super) fn read(
    raw: &FilePolicy,
    name: &str,
    expires_in: Duration,
    lines: &Lines<'_>,
) -> Result<Reach, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let email_on = raw.email.as_ref().is_some_and(|e| *e.get_ref());
    let email = match (&raw.email_to, email_on) {
        (Some(list), true) if list.is_empty() => {
            errors.push(lines.err(
                &raw.name,
                format!("policy '{name}': email_to is empty; list addresses or groups, or leave it out to mail the approvers"),
            ));
            None
        }
        (Some(list), true) => Some(EmailTo::These(people(
            list,
            "email_to",
            true,
            name,
            lines,
            &mut errors,
        ))),
        (None, true) => Some(EmailTo::Approvers),
        (Some(list), false) => {
            errors.push(err_at_first(
                list,
                &raw.name,
                lines,
                format!("policy '{name}': email_to is set but email is not true; add email = true"),
            ));
            None
        }
        (None, false) => None,
    };
    let remind_after = raw
        .remind_after
        .as_ref()
        .and_then(|d| delay(d, "remind_after", name, expires_in, lines, &mut errors));
    let escalation = match (&raw.escalate_after, &raw.escalate_to) {
        (None, None) => None,
        (Some(d), Some(to)) => {
            let after = delay(d, "escalate_after", name, expires_in, lines, &mut errors);
            let to = people(to, "escalate_to", false, name, lines, &mut errors);
            if to.is_empty() && errors.is_empty() {
                errors.push(lines.err(
                    d,
                    format!("policy '{name}': escalate_to is empty; name who decides after escalate_after, e.g. [\"group:leads\"]"),
                ));
            }
            after.map(|after| Escalation { after, to })
        }
        (Some(d), None) => {
            errors.push(lines.err(
                d,
                format!("policy '{name}': escalate_after needs escalate_to = [\"group:NAME\"] (who may decide then)"),
            ));
            None
        }
        (None, Some(to)) => {
            errors.push(err_at_first(
                to,
                &raw.name,
                lines,
                format!(
                    "policy '{name}': escalate_to needs escalate_after = \"1h\" (when to escalate)"
                ),
            ));
            None
        }
    };
    if errors.is_empty() {
        Ok((email, remind_after, escalation))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_config_text;
    use crate::policy::{Approver, EmailTo};

    const EMAIL: &str = "[email]\nhost = \"smtp.example.com\"\nfrom = \"pliuz@example.com\"\n";

    fn errors(policy_keys: &str) -> Vec<String> {
        let text = format!(
            "{EMAIL}[[policy]]\nname = \"p\"\napprovers = [\"group:finance\"]\nexpires_in = \"1h\"\n{policy_keys}\n"
        );
        match parse_config_text(&text) {
            Ok(_) => vec![],
            Err(es) => es.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn good_keys_parse() {
        let text = format!(
            "{EMAIL}[[policy]]\nname = \"p\"\napprovers = [\"group:finance\"]\nexpires_in = \"1h\"\nemail = true\nemail_to = [\"Ops@Example.com\", \"group:oncall\"]\nremind_after = \"15m\"\nescalate_after = \"30m\"\nescalate_to = [\"group:leads\"]\n"
        );
        let parsed = parse_config_text(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let p = parsed.policies.get("p").cloned().unwrap();
        assert_eq!(
            p.email,
            Some(EmailTo::These(vec![
                Approver::User("ops@example.com".into()),
                Approver::Group("oncall".into())
            ]))
        );
        assert_eq!(p.remind_after.map(|d| d.as_secs()), Some(900));
        let e = p.escalation.clone().unwrap();
        assert_eq!(e.after.as_secs(), 1800);
        assert_eq!(e.to, vec![Approver::Group("leads".into())]);
    }

    #[test]
    fn every_mistake_names_its_key_and_line() {
        let e = errors("remind_after = \"2h\"");
        assert!(
            e[0].contains("line 8")
                && e[0].contains("remind_after (2h) must be shorter than expires_in"),
            "{e:?}"
        );
        let cases = [
            (
                "escalate_after = \"1h\"\nescalate_to = [\"group:leads\"]",
                "escalate_after (1h) must be shorter",
            ),
            ("escalate_after = \"10m\"", "needs escalate_to"),
            ("escalate_to = [\"group:leads\"]", "needs escalate_after"),
            (
                "escalate_after = \"10m\"\nescalate_to = [\"leads\"]",
                "escalate_to: approver 'leads'",
            ),
            (
                "remind_after = \"soon\"",
                "remind_after 'soon' is not a duration",
            ),
            ("email_to = [\"a@b.c\"]", "add email = true"),
            ("email = true\nemail_to = []", "email_to is empty"),
        ];
        for (keys, first_error) in cases {
            let e = errors(keys);
            assert!(e[0].contains(first_error), "{keys}: {e:?}");
        }
    }

    #[test]
    fn email_needs_the_email_section() {
        let text = "[[policy]]\nname = \"p\"\napprovers = [\"group:finance\"]\nemail = true\n";
        let e = parse_config_text(text).err().unwrap_or_default();
        assert!(
            e.iter().any(|e| e.message.contains("[email]")),
            "{:?}",
            e.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        );
    }
}
