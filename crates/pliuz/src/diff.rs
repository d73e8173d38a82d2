//! Field-by-field differences between two JSON values: what an edit
//! changed in a request's arguments (pure).

use serde_json::Value;

/// One difference between the original and the edited arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Changed {
        path: String,
        before: Value,
        after: Value,
    },
    Added {
        path: String,
        after: Value,
    },
    Removed {
        path: String,
        before: Value,
    },
}

fn join_path(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// Field-by-field differences (objects are compared key by key, anything
/// else as a whole).
pub fn diff(before: &Value, after: &Value, path: &str, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                match a.get(k) {
                    Some(av) => diff(bv, av, &join_path(path, k), out),
                    None => out.push(Change::Removed {
                        path: join_path(path, k),
                        before: bv.clone(),
                    }),
                }
            }
            for (k, av) in a {
                if !b.contains_key(k) {
                    out.push(Change::Added {
                        path: join_path(path, k),
                        after: av.clone(),
                    });
                }
            }
        }
        (b, a) if b != a => out.push(Change::Changed {
            path: path.to_owned(),
            before: b.clone(),
            after: a.clone(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_reports_each_field() {
        let before =
            json!({"order": "A-1", "amount": 5000, "meta": {"note": "x", "keep": 1}, "gone": true});
        let after =
            json!({"order": "A-1", "amount": 2500, "meta": {"note": "y", "keep": 1}, "new": [1]});
        let mut out = Vec::new();
        diff(&before, &after, "", &mut out);
        assert_eq!(
            out,
            vec![
                Change::Changed {
                    path: "amount".into(),
                    before: json!(5000),
                    after: json!(2500)
                },
                Change::Changed {
                    path: "meta.note".into(),
                    before: json!("x"),
                    after: json!("y")
                },
                Change::Removed {
                    path: "gone".into(),
                    before: json!(true)
                },
                Change::Added {
                    path: "new".into(),
                    after: json!([1])
                },
            ]
        );
    }
}
