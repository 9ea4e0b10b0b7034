//! The three-way merge of a twin's `metadata` (issue 11): the last content both sides agreed on
//! (the base), the local file's, and the backend's. Per top-level key: a side that did not
//! change it takes the other side's value; both changed it the same way → that; both changed it
//! differently → the backend wins and the local value is kept as a conflict, never dropped.
//! (The original replaced the whole local `metadata` with the backend's, losing local edits ⚠.)

use serde_json::{Map, Value};

/// A key both sides changed differently: what the local side had (the backend's value won).
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub key: String,
    pub local: Value,
    pub backend: Value,
}

/// The merged metadata, whether it differs from the local and from the backend side, and the
/// conflicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub metadata: Value,
    pub local_changed: bool,
    pub push_needed: bool,
    pub conflicts: Vec<Conflict>,
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

pub fn merge(base: &Value, local: &Value, backend: &Value) -> Merged {
    let (b, l, r) = (object(base), object(local), object(backend));
    let mut keys: Vec<&String> = b.keys().chain(l.keys()).chain(r.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Map::new();
    let mut conflicts = Vec::new();
    for k in keys {
        let (bv, lv, rv) = (b.get(k), l.get(k), r.get(k));
        let chosen = if lv == bv {
            rv
        } else if rv == bv || lv == rv {
            lv
        } else {
            conflicts.push(Conflict {
                key: k.clone(),
                local: lv.cloned().unwrap_or(Value::Null),
                backend: rv.cloned().unwrap_or(Value::Null),
            });
            rv
        };
        if let Some(v) = chosen {
            out.insert(k.clone(), v.clone());
        }
    }
    let metadata = Value::Object(out);
    Merged {
        local_changed: metadata != Value::Object(l),
        push_needed: metadata != Value::Object(r),
        metadata,
        conflicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn three_way_per_top_level_key() {
        let base = json!({"fps": 15, "mode": "a", "gone": 1});
        // (local, backend, merged, local_changed, push_needed, conflicting keys)
        let cases = [
            // Nothing changed.
            (
                base.clone(),
                base.clone(),
                base.clone(),
                false,
                false,
                vec![],
            ),
            // Only local: push it.
            (
                json!({"fps": 30, "mode": "a", "gone": 1}),
                base.clone(),
                json!({"fps": 30, "mode": "a", "gone": 1}),
                false,
                true,
                vec![],
            ),
            // Only backend: pull it.
            (
                base.clone(),
                json!({"fps": 15, "mode": "b", "gone": 1}),
                json!({"fps": 15, "mode": "b", "gone": 1}),
                true,
                false,
                vec![],
            ),
            // Different keys on each side: both kept.
            (
                json!({"fps": 30, "mode": "a", "gone": 1}),
                json!({"fps": 15, "mode": "b", "gone": 1}),
                json!({"fps": 30, "mode": "b", "gone": 1}),
                true,
                true,
                vec![],
            ),
            // The same key both ways: backend wins, local reported.
            (
                json!({"fps": 30, "mode": "a", "gone": 1}),
                json!({"fps": 60, "mode": "a", "gone": 1}),
                json!({"fps": 60, "mode": "a", "gone": 1}),
                true,
                false,
                vec!["fps"],
            ),
            // Same change on both sides: no conflict.
            (
                json!({"fps": 30, "mode": "a", "gone": 1}),
                json!({"fps": 30, "mode": "a", "gone": 1}),
                json!({"fps": 30, "mode": "a", "gone": 1}),
                false,
                false,
                vec![],
            ),
            // Deleted locally, untouched remotely: deleted (and pushed).
            (
                json!({"fps": 15, "mode": "a"}),
                base.clone(),
                json!({"fps": 15, "mode": "a"}),
                false,
                true,
                vec![],
            ),
            // Deleted remotely, edited locally: conflict, backend (deleted) wins.
            (
                json!({"fps": 15, "mode": "a", "gone": 2}),
                json!({"fps": 15, "mode": "a"}),
                json!({"fps": 15, "mode": "a"}),
                true,
                false,
                vec!["gone"],
            ),
            // Added on both sides with the same value, and a new local key.
            (
                json!({"fps": 15, "mode": "a", "gone": 1, "new": true, "x": 1}),
                json!({"fps": 15, "mode": "a", "gone": 1, "new": true}),
                json!({"fps": 15, "mode": "a", "gone": 1, "new": true, "x": 1}),
                false,
                true,
                vec![],
            ),
        ];
        for (local, backend, merged, lc, push, keys) in cases {
            let m = merge(&base, &local, &backend);
            assert_eq!(m.metadata, merged, "{local} / {backend}");
            assert_eq!(
                (m.local_changed, m.push_needed),
                (lc, push),
                "{local} / {backend}"
            );
            let got: Vec<&str> = m.conflicts.iter().map(|c| c.key.as_str()).collect();
            assert_eq!(got, keys, "{local} / {backend}");
        }
        let c = merge(&base, &json!({"fps": 30}), &json!({"fps": 60}));
        assert!(
            c.conflicts
                .iter()
                .any(|c| c.key == "fps" && c.local == json!(30) && c.backend == json!(60))
        );
    }
}
