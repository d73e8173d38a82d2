//! Approvers in policies that match nobody (pure). A typo such as
//! `group:financ` would leave every call of the policy waiting until it
//! expires, so `serve` and `policy check` warn about it. It is a warning, not
//! an error: groups and people may be added after the policy is written.

use crate::auth::User;
use crate::policy::{Approver, PolicySet};

/// One sentence per approver entry that no active user matches.
pub fn unknown_approvers(policies: &PolicySet, users: &[User]) -> Vec<String> {
    let active: Vec<&User> = users.iter().filter(|u| !u.disabled).collect();
    let mut warnings = Vec::new();
    for policy in policies.iter() {
        // `escalate_to` are checked alike: a typo there leaves an escalation
        // that brings in nobody.
        let escalate_to = policy.escalation.iter().flat_map(|e| &e.to);
        let entries = policy
            .approvers
            .iter()
            .map(|a| ("approver", a))
            .chain(escalate_to.map(|a| ("escalate_to", a)));
        for (key, approver) in entries {
            let matched = match approver {
                Approver::User(email) => active.iter().any(|u| u.email.eq_ignore_ascii_case(email)),
                Approver::Group(group) => {
                    active.iter().any(|u| u.groups.iter().any(|g| g == group))
                }
            };
            if matched {
                continue;
            }
            let what = match approver {
                Approver::User(email) => format!("there is no active user {email}"),
                Approver::Group(group) => format!("no active user is in group '{group}'"),
            };
            warnings.push(format!(
                "policy '{}': {key} {approver} matches nobody ({what}); {}",
                policy.name,
                if key == "approver" {
                    "its calls wait until they expire unless someone is added"
                } else {
                    "escalation brings in nobody unless someone is added"
                }
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn group(g: &str) -> Approver {
        Approver::Group(g.into())
    }

    fn user(email: &str, groups: &[&str], disabled: bool) -> User {
        User {
            id: email.to_owned(),
            email: email.to_owned(),
            role: Role::Approver,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            disabled,
            created_at: 0,
        }
    }

    fn policies(approvers: &[Approver]) -> PolicySet {
        let policy = crate::policy::sample(approvers);
        PolicySet::new(vec![policy], None, String::new())
    }

    #[test]
    fn typo_in_group_and_unknown_user_are_named() {
        let set = policies(&[
            group("financ"),
            Approver::User("bob@example.com".into()),
            group("finance"),
        ]);
        let users = [user("alice@example.com", &["finance"], false)];
        let w = unknown_approvers(&set, &users);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("group:financ") && w[0].contains("'financ'"),
            "{w:?}"
        );
        assert!(w[1].contains("user:bob@example.com"), "{w:?}");
    }

    #[test]
    fn disabled_users_do_not_count() {
        let set = policies(&[group("finance"), Approver::User("ALICE@example.com".into())]);
        assert_eq!(
            unknown_approvers(&set, &[user("alice@example.com", &["finance"], true)]).len(),
            2
        );
        assert!(
            unknown_approvers(&set, &[user("alice@example.com", &["finance"], false)]).is_empty()
        );
    }
}
