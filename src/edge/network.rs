//! "Network interfaces: …" on the `driverlog` of the twins the backend binds to this edge
//! (reference §2.6): after a host-facts upload, each twin of the discover answer whose last
//! published interface set differs gets `Network interfaces: eth0=192.168.1.42 (up), …` —
//! how a support engineer finds a robot whose address changed. Only interfaces with an IPv4
//! address count (address-less ones come and go with containers and cables); a twin's set is
//! recorded only once its line went to a connected broker, so a line is never lost to an
//! outage. The decisions are pure; the daemon publishes.

use std::collections::BTreeMap;

use serde_json::Value;

/// The most twins of one discover answer served (the answer is the backend's, not ours).
pub const MAX_TWINS: usize = 10_000;

/// Interface name → IPv4 address, sorted: what is compared between uploads.
pub type Signature = Vec<(String, String)>;

/// The interfaces of `host_facts.network_interfaces` that have an IPv4 address:
/// (name, address, up).
pub fn addressed(interfaces: &[Value]) -> Vec<(String, String, bool)> {
    interfaces
        .iter()
        .filter_map(|nic| {
            let addr = nic.get("ipv4_address").and_then(Value::as_str)?;
            (!addr.is_empty()).then(|| {
                (
                    nic.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    addr.to_string(),
                    nic.get("is_up").and_then(Value::as_bool).unwrap_or(false),
                )
            })
        })
        .collect()
}

pub fn signature(addressed: &[(String, String, bool)]) -> Signature {
    let mut s: Signature = addressed
        .iter()
        .map(|(n, a, _)| (n.clone(), a.clone()))
        .collect();
    s.sort();
    s
}

/// The original's line.
pub fn message(addressed: &[(String, String, bool)]) -> String {
    if addressed.is_empty() {
        return "Network interfaces: none detected".into();
    }
    let parts: Vec<String> = addressed
        .iter()
        .map(|(n, a, up)| format!("{n}={a} ({})", if *up { "up" } else { "down" }))
        .collect();
    format!("Network interfaces: {}", parts.join(", "))
}

/// The twins of a discover answer (`{"twins": [{"twin_uuid": …}, …]}`), valid UUIDs only.
pub fn answer_twins(answer: &Value) -> Vec<String> {
    answer
        .get("twins")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MAX_TWINS)
        .filter_map(|b| b.get("twin_uuid").and_then(Value::as_str))
        .filter_map(crate::config::parse_uuid)
        .collect()
}

/// What each twin was last told.
#[derive(Debug, Default)]
pub struct NetworkLines {
    last: BTreeMap<String, Signature>,
}

impl NetworkLines {
    /// The twins that need the line for this signature.
    pub fn pending(&self, twins: &[String], sig: &Signature) -> Vec<String> {
        twins
            .iter()
            .filter(|t| self.last.get(*t) != Some(sig))
            .cloned()
            .collect()
    }

    /// The line reached a connected broker for `twin`.
    pub fn sent(&mut self, twin: &str, sig: Signature) {
        if self.last.len() < MAX_TWINS || self.last.contains_key(twin) {
            self.last.insert(twin.to_string(), sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_as_the_original_writes_them() {
        let nics = [
            json!({"name": "wlan0", "ipv4_address": "10.0.0.5", "mac_address": "aa", "is_up": false}),
            json!({"name": "docker0", "ipv4_address": null, "mac_address": "bb", "is_up": true}),
            json!({"name": "eth0", "ipv4_address": "192.168.1.42", "mac_address": "cc", "is_up": true}),
        ];
        let a = addressed(&nics);
        assert_eq!(
            message(&a),
            "Network interfaces: wlan0=10.0.0.5 (down), eth0=192.168.1.42 (up)"
        );
        assert_eq!(message(&[]), "Network interfaces: none detected");
        assert_eq!(
            signature(&a),
            [
                ("eth0".to_string(), "192.168.1.42".to_string()),
                ("wlan0".to_string(), "10.0.0.5".to_string())
            ]
        );
    }

    #[test]
    fn each_twin_is_told_once_per_change_and_only_when_it_went_out() {
        let t1 = "11111111-1111-4111-8111-111111111111".to_string();
        let t2 = "22222222-2222-4222-8222-222222222222".to_string();
        let one = vec![t1.clone()];
        let both = vec![t1.clone(), t2.clone()];
        let answer = json!({"twins": [{"twin_uuid": t1}, {"twin_uuid": "../x"}, {"nope": 1}]});
        assert_eq!(answer_twins(&answer), one);
        let mut lines = NetworkLines::default();
        let sig: Signature = vec![("eth0".into(), "10.0.0.2".into())];
        assert_eq!(lines.pending(&one, &sig), one);
        // Not sent (broker away): still pending next time.
        assert_eq!(lines.pending(&one, &sig), one);
        lines.sent(&t1, sig.clone());
        assert!(lines.pending(&one, &sig).is_empty());
        // A twin bound later has never seen it.
        assert_eq!(lines.pending(&both, &sig), vec![t2]);
        // The address changed: everyone again.
        let moved: Signature = vec![("eth0".into(), "10.0.0.9".into())];
        assert_eq!(lines.pending(&one, &moved), one);
    }
}
