//! What a local twin file may push to the backend (reference §8.2): exactly the fields
//! `PUT /api/v1/twins/{uuid}` accepts, each with its type; anything else in the file (the
//! asset, timestamps, fields of newer backends) stays local. Pure.

use serde_json::{Map, Value};

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Object,
    Bool,
    /// A string or null (a UUID or a link name that may be cleared).
    OptText,
}

const ALLOWED: [(&str, Kind); 26] = [
    ("name", Kind::Text),
    ("description", Kind::OptText),
    ("position_x", Kind::Number),
    ("position_y", Kind::Number),
    ("position_z", Kind::Number),
    ("rotation_w", Kind::Number),
    ("rotation_x", Kind::Number),
    ("rotation_y", Kind::Number),
    ("rotation_z", Kind::Number),
    ("scale_x", Kind::Number),
    ("scale_y", Kind::Number),
    ("scale_z", Kind::Number),
    ("kinematics_override", Kind::Object),
    ("joint_calibration", Kind::Object),
    ("metadata", Kind::Object),
    ("controller_policy_uuid", Kind::OptText),
    ("attach_to_twin_uuid", Kind::OptText),
    ("attach_to_link", Kind::OptText),
    ("attach_offset_x", Kind::Number),
    ("attach_offset_y", Kind::Number),
    ("attach_offset_z", Kind::Number),
    ("attach_offset_rotation_w", Kind::Number),
    ("attach_offset_rotation_x", Kind::Number),
    ("attach_offset_rotation_y", Kind::Number),
    ("attach_offset_rotation_z", Kind::Number),
    ("fixed_base", Kind::Bool),
];

fn fits(kind: Kind, v: &Value) -> bool {
    match kind {
        Kind::Text => v.is_string(),
        Kind::Number => v.is_number(),
        Kind::Object => v.is_object(),
        Kind::Bool => v.is_boolean(),
        Kind::OptText => v.is_string() || v.is_null(),
    }
}

/// The push body from a twin file, and the fields left out for a wrong type (reported).
pub fn push_body(file: &Value) -> (Value, Vec<String>) {
    let mut body = Map::new();
    let mut refused = Vec::new();
    for (k, kind) in ALLOWED {
        if let Some(v) = file.get(k) {
            if fits(kind, v) {
                body.insert(k.to_string(), v.clone());
            } else {
                refused.push(k.to_string());
            }
        }
    }
    (Value::Object(body), refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_allowed_fields_with_their_types() {
        let file = json!({
            "uuid": "u", "name": "arm", "description": null, "position_x": 1.5, "rotation_w": "1",
            "metadata": {"fps": 15}, "fixed_base": true, "asset": {"uuid": "a"},
            "attach_to_twin_uuid": null, "joint_calibration": [1], "created_at": "x"
        });
        let (body, refused) = push_body(&file);
        assert_eq!(
            body,
            json!({"name": "arm", "description": null, "position_x": 1.5, "metadata": {"fps": 15},
                   "attach_to_twin_uuid": null, "fixed_base": true})
        );
        assert_eq!(refused, ["rotation_w", "joint_calibration"]);
        assert_eq!(push_body(&json!("not an object")).0, json!({}));
    }
}
