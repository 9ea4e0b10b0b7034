//! Which twins of the environment belong to this edge (reference §2.3). Two rules, kept apart
//! on purpose: drivers use the strict one, health and worker scope the broad one.

use serde_json::Value;

use super::Twin;

/// Driver launch rule: `metadata.edge_fingerprint == fingerprint`, exact, top level only.
pub fn is_linked_strict(twin: &Value, fingerprint: &str) -> bool {
    twin.pointer("/metadata/edge_fingerprint")
        .and_then(Value::as_str)
        == Some(fingerprint)
}

/// Broad rule: `metadata.edge_fingerprint` (stripped), or `metadata.edge_configs.edge_fingerprint`,
/// or a legacy `edge_configs` map keyed by fingerprint.
pub fn is_linked_broad(twin: &Value, fingerprint: &str) -> bool {
    let Some(meta) = twin.get("metadata").and_then(Value::as_object) else {
        return false;
    };
    if meta
        .get("edge_fingerprint")
        .and_then(Value::as_str)
        .is_some_and(|f| f.trim() == fingerprint)
    {
        return true;
    }
    let Some(cfg) = meta.get("edge_configs").and_then(Value::as_object) else {
        return false;
    };
    if cfg.get("edge_fingerprint").and_then(Value::as_str) == Some(fingerprint) {
        return true;
    }
    let legacy_map = !cfg.is_empty()
        && !cfg.contains_key("edge_fingerprint")
        && !cfg.contains_key("camera_config")
        && cfg.values().all(Value::is_object);
    legacy_map && cfg.contains_key(fingerprint)
}

fn uuids_where(twins: &[Twin], pred: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in twins {
        // Only well-formed UUIDs (checked when parsed) become topics and file names.
        if pred(&t.raw) && !out.contains(&t.uuid) {
            out.push(t.uuid.clone());
        }
    }
    out
}

/// Twin UUIDs linked by the broad rule, deduplicated, in backend order.
pub fn linked_twins_broad(twins: &[Twin], fingerprint: &str) -> Vec<String> {
    uuids_where(twins, |t| is_linked_broad(t, fingerprint))
}

/// Twin UUIDs linked by the strict (driver) rule.
pub fn linked_twins_strict(twins: &[Twin], fingerprint: &str) -> Vec<String> {
    uuids_where(twins, |t| is_linked_strict(t, fingerprint))
}

/// The twins whose plans depend on `twin`'s: itself, the twin it is attached to, and every
/// twin attached to either (a parent plans its attached cameras), in list order.
pub fn family_of(twins: &[Twin], twin: &str) -> Vec<String> {
    let parent = twins
        .iter()
        .find(|t| t.uuid == twin)
        .and_then(|t| t.attach_parent.as_deref());
    let mut out: Vec<String> = Vec::new();
    for t in twins {
        let attached = t.attach_parent.as_deref();
        let in_family = t.uuid == twin
            || Some(t.uuid.as_str()) == parent
            || attached == Some(twin)
            || (parent.is_some() && attached == parent);
        if in_family && !out.contains(&t.uuid) {
            out.push(t.uuid.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "11111111-1111-1111-1111-111111111111";
    const B: &str = "22222222-2222-2222-2222-222222222222";
    const C: &str = "33333333-3333-3333-3333-333333333333";
    const D: &str = "44444444-4444-4444-4444-444444444444";

    #[test]
    fn strict_and_broad_rules() {
        let raw = vec![
            json!({"uuid": A, "metadata": {"edge_fingerprint": "fp"}}),
            json!({"uuid": B, "metadata": {"edge_fingerprint": " fp "}}),
            json!({"uuid": C, "metadata": {"edge_configs": {"edge_fingerprint": "fp"}}}),
            json!({"uuid": D, "metadata": {"edge_configs": {"fp": {"camera": 1}, "other": {}}}}),
            json!({"uuid": "not-a-uuid", "metadata": {"edge_fingerprint": "fp"}}),
            json!({"uuid": A, "metadata": {"edge_fingerprint": "fp"}}),
            json!({"uuid": "55555555-5555-5555-5555-555555555555", "metadata": {"edge_configs": {"fp": {}, "camera_config": {}}}}),
            json!({"uuid": "66666666-6666-6666-6666-666666666666", "metadata": null}),
        ];
        let (twins, ignored) = Twin::parse_all(&raw);
        assert_eq!(ignored, 1);
        assert_eq!(linked_twins_strict(&twins, "fp"), vec![A.to_string()]);
        assert_eq!(
            linked_twins_broad(&twins, "fp"),
            vec![A.to_string(), B.to_string(), C.to_string(), D.to_string()]
        );
    }

    #[test]
    fn a_twins_family_is_itself_its_parent_and_what_is_attached_to_either() {
        let t = |uuid: &str, parent: Option<&str>| match parent {
            Some(p) => json!({"uuid": uuid, "attach_to_twin_uuid": p}),
            None => json!({"uuid": uuid}),
        };
        // A arm, B and C its cameras, D another arm with camera E, F alone.
        const E: &str = "55555555-5555-5555-5555-555555555555";
        const F: &str = "66666666-6666-6666-6666-666666666666";
        let (twins, _) = Twin::parse_all(&[
            t(A, None),
            t(B, Some(A)),
            t(C, Some(A)),
            t(D, None),
            t(E, Some(D)),
            t(F, None),
        ]);
        let rows: [(&str, &[&str]); 5] = [
            (A, &[A, B, C]),
            (B, &[A, B, C]),
            (E, &[D, E]),
            (F, &[F]),
            ("77777777-7777-7777-7777-777777777777", &[]),
        ];
        for (twin, want) in rows {
            assert_eq!(family_of(&twins, twin), want, "{twin}");
        }
    }
}
