//! What the driver role shows in `status`: its containers (with the credential each runs on),
//! the twins that cannot run, and the twins still waiting to be planned.

use serde_json::{Map, Value, json};

use super::Drivers;
use crate::containers::runtime::Runtime;
use crate::containers::spec::Role;
use crate::drivers::TwinOutcome;

impl Drivers {
    /// Driver containers and twin problems for `status`.
    pub fn snapshot(&self, runtime: &Runtime) -> Value {
        let list: Vec<Value> = runtime
            .snapshot()
            .into_iter()
            .filter(|(spec, _)| spec.role == Role::Driver)
            .map(|(spec, v)| {
                let mut m = Map::new();
                m.insert("name".into(), v["name"].clone());
                m.insert("twin_uuid".into(), json!(spec.owner));
                m.insert("twin_name".into(), json!(spec.title));
                m.insert("service".into(), json!(spec.service));
                let key = spec.env.get("CYBERWAVE_API_KEY").map(String::as_str);
                let now = crate::epoch_seconds();
                m.insert(
                    "credential".into(),
                    self.ctx.tokens.status_of(&spec.owner, key, now),
                );
                if let Value::Object(rest) = v {
                    for (k, x) in rest.into_iter().filter(|(k, _)| k != "name") {
                        m.insert(k, x);
                    }
                }
                Value::Object(m)
            })
            .collect();
        let problems: Vec<Value> = self
            .problems
            .iter()
            .map(|(t, p)| {
                json!({"twin_uuid": t, "problem": p,
                       "degrades": p == crate::drivers::spec::NAME_COLLISION})
            })
            .collect();
        // Twins whose driver image is being fetched to learn what it declares.
        let discovering: Vec<Value> = self
            .plans
            .values()
            .filter_map(|p| match &p.outcome {
                TwinOutcome::Discovering(s) => {
                    Some(json!({"twin_uuid": p.twin_uuid, "image": s.image}))
                }
                _ => None,
            })
            .collect();
        let awaiting: Vec<&str> = self
            .plans
            .values()
            .filter(|p| matches!(p.outcome, TwinOutcome::AwaitingToken))
            .map(|p| p.twin_uuid.as_str())
            .collect();
        json!({"containers": list, "problems": problems, "discovering": discovering,
               "awaiting_token": awaiting, "token_mode": self.ctx.tokens.settings.mode.as_str()})
    }
}
