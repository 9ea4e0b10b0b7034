//! What differs between Docker's words and Podman's, pure: a `create` argv as Podman takes it,
//! and Podman's event lines read into the engine's vocabulary.

use serde_json::Value;

use crate::engine::{Container, ContainerEvent, LABEL_CREATED_BY};

/// Where CDI specs of NVIDIA GPUs live (`nvidia-ctk cdi generate`): GPUs are reached through
/// `--device nvidia.com/gpu=…` when one is there.
pub const CDI_SPECS: [&str; 2] = ["/etc/cdi/nvidia.yaml", "/var/run/cdi/nvidia.yaml"];

/// A `create` argv written for Docker as Podman takes it. Only the options are read (they end
/// at the last `--env-file <file>`, which the runtime always puts right before the image), so
/// a command argument is never rewritten:
/// * `--gpus all` → `--device nvidia.com/gpu=all`; `--gpus device=0,1` → one CDI device per
///   index; `--gpus 2` → the first two;
/// * `--log-driver json-file` → `k8s-file` (Podman's file driver; it only aliases the name);
/// * `--log-opt max-file=N` is left out (Podman's file driver keeps one file);
/// * `--restart <policy>` → `--restart no`: the runtime's revival is the policy on Podman.
pub fn create_argv(argv: &[String]) -> Vec<String> {
    let end = argv
        .iter()
        .rposition(|a| a == "--env-file")
        .unwrap_or(argv.len());
    let mut out = Vec::with_capacity(argv.len() + 2);
    let mut i = 0;
    while i < end {
        let (flag, inline) = match argv[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (argv[i].as_str(), None),
        };
        let takes_value = matches!(flag, "--gpus" | "--log-driver" | "--log-opt" | "--restart");
        let value = match (&inline, takes_value) {
            (Some(v), _) => Some(v.clone()),
            (None, true) => argv.get(i + 1).cloned(),
            (None, false) => None,
        };
        i += if takes_value && inline.is_none() {
            2
        } else {
            1
        };
        match (flag, value) {
            ("--gpus", Some(v)) => {
                for d in cdi_devices(&v) {
                    out.extend(["--device".to_string(), d]);
                }
            }
            ("--log-driver", Some(v)) if v == "json-file" => {
                out.extend(["--log-driver".to_string(), "k8s-file".to_string()]);
            }
            ("--log-opt", Some(v)) if v.starts_with("max-file=") => {}
            // The edge core restarts Podman's containers (no daemon does after a reboot, and
            // Podman 4 cannot switch a looping container's policy off): Podman never does.
            ("--restart", Some(_)) => out.extend(["--restart".to_string(), "no".to_string()]),
            (f, Some(v)) if takes_value => out.extend([f.to_string(), v]),
            _ => out.push(argv[i - 1].clone()),
        }
    }
    out.extend(argv[end.min(argv.len())..].iter().cloned());
    out
}

/// Docker's `--gpus` value as CDI device names.
fn cdi_devices(spec: &str) -> Vec<String> {
    let spec = spec.trim().trim_matches('"');
    let dev = |d: &str| format!("nvidia.com/gpu={d}");
    if let Some(list) = spec.strip_prefix("device=") {
        return list
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(dev)
            .collect();
    }
    match spec.parse::<u32>() {
        Ok(n) if n > 0 => (0..n.min(64)).map(|i| dev(&i.to_string())).collect(),
        _ => vec![dev("all")],
    }
}

/// `podman ps -a --format json`: one JSON list (Docker's CLI prints an object per line),
/// `Names` a list, `Labels` an object.
pub fn parse_ps(out: &str) -> Result<Vec<Container>, String> {
    let list: Vec<Value> = match out.trim() {
        "" => Vec::new(),
        text => serde_json::from_str(text).map_err(|e| e.to_string())?,
    };
    Ok(list
        .iter()
        .map(|v| {
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let name = v
                .pointer("/Names/0")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Container {
                id: s("Id"),
                name,
                image: s("Image"),
                image_id: s("ImageID"),
                state: s("State"),
                status: s("Status"),
                labels: v
                    .get("Labels")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect(),
            }
        })
        .collect())
}

/// One line of `podman events --format json` (`Status`: `died`, `remove`, …; labels among
/// `Attributes`) or of the compatible API's `/events` (Docker's shape, which Podman's API
/// cannot filter by our label): `None` for anything that is not one of our containers.
pub fn parse_event(line: &str) -> Option<ContainerEvent> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v.get("Actor").is_some() {
        let e = crate::docker::shape::parse_event(line)?;
        return e.labels.contains_key(LABEL_CREATED_BY).then_some(e);
    }
    if v.get("Type").and_then(Value::as_str) != Some("container") {
        return None;
    }
    let attrs = v.get("Attributes").and_then(Value::as_object)?;
    attrs.get(LABEL_CREATED_BY)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let action = match text("Status").as_str() {
        "died" => "die".to_string(),
        "remove" => "destroy".to_string(),
        "health_status" => format!("health_status: {}", text("HealthStatus")),
        other => other.to_string(),
    };
    Some(ContainerEvent {
        id: text("ID"),
        name: text("Name"),
        // Podman leaves an exit code of 0 out of the line.
        exit_code: match v.get("ContainerExitCode").and_then(Value::as_i64) {
            Some(c) => i32::try_from(c).ok(),
            None if action == "die" => Some(0),
            None => None,
        },
        labels: attrs
            .iter()
            .filter(|(k, _)| k.starts_with("io.cyberwave."))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn docker_options_as_podman_takes_them() {
        let rows = [
            (
                "create --gpus all --env-file f img",
                "create --device nvidia.com/gpu=all --env-file f img",
            ),
            (
                "create --gpus=device=0,1 --env-file f img",
                "create --device nvidia.com/gpu=0 --device nvidia.com/gpu=1 --env-file f img",
            ),
            (
                "create --gpus 2 --env-file f img",
                "create --device nvidia.com/gpu=0 --device nvidia.com/gpu=1 --env-file f img",
            ),
            (
                "create --log-driver json-file --log-opt max-size=10m --log-opt max-file=3 --env-file f img",
                "create --log-driver k8s-file --log-opt max-size=10m --env-file f img",
            ),
            (
                "create --log-driver journald --env-file f img",
                "create --log-driver journald --env-file f img",
            ),
            // The command after the image is never rewritten, nor a host env file's path.
            (
                "create --init --env-file host.env --env-file f img --gpus all",
                "create --init --env-file host.env --env-file f img --gpus all",
            ),
            (
                "create --name x --label a=b --env-file f img sh -c x",
                "create --name x --label a=b --env-file f img sh -c x",
            ),
        ];
        for (given, want) in rows {
            assert_eq!(create_argv(&argv(given)), argv(want), "{given}");
        }
    }

    #[test]
    fn podman_lists_containers_in_one_json_list() {
        let out = r#"[{"Id":"abc","Image":"localhost/x:local","ImageID":"7d4a","Labels":{"io.cyberwave.edge.twin":"t1"},"Names":["cyberwave-driver-a"],"State":"exited","Status":"Exited (3) 2 seconds ago"}]"#;
        let list = parse_ps(out).unwrap();
        assert_eq!(list.len(), 1);
        let c = &list[0];
        assert_eq!(
            (c.id.as_str(), c.name.as_str(), c.state.as_str()),
            ("abc", "cyberwave-driver-a", "exited")
        );
        assert_eq!(c.exit_code(), Some(3));
        assert_eq!(c.labels["io.cyberwave.edge.twin"], "t1");
        assert!(parse_ps("").unwrap().is_empty());
        assert!(parse_ps("[{").is_err());
    }

    #[test]
    fn podman_events_in_the_engines_words() {
        let died = r#"{"ContainerExitCode":3,"ID":"abc","Image":"i","Name":"cyberwave-driver-a","Status":"died","Time":"t","Type":"container","Attributes":{"io.cyberwave.edge.created-by":"x","io.cyberwave.edge.twin":"t1","other":"y"}}"#;
        let e = parse_event(died).unwrap();
        assert_eq!((e.action.as_str(), e.id.as_str()), ("die", "abc"));
        assert_eq!(
            (e.name.as_str(), e.exit_code),
            ("cyberwave-driver-a", Some(3))
        );
        assert_eq!(e.labels.len(), 2);
        let clean = died.replace("\"ContainerExitCode\":3,", "");
        assert_eq!(parse_event(&clean).unwrap().exit_code, Some(0));
        let removed = died.replace("\"died\"", "\"remove\"");
        assert_eq!(parse_event(&removed).unwrap().action, "destroy");
        let health = r#"{"ID":"abc","Name":"n","Status":"health_status","HealthStatus":"healthy","Type":"container","Attributes":{"io.cyberwave.edge.created-by":"x"}}"#;
        assert_eq!(
            parse_event(health).unwrap().action,
            "health_status: healthy"
        );
        // Not ours, not a container, not JSON.
        let foreign =
            r#"{"ID":"abc","Name":"n","Status":"died","Type":"container","Attributes":{"a":"b"}}"#;
        assert!(parse_event(foreign).is_none());
        assert!(parse_event(r#"{"Status":"refresh","Type":"system","Attributes":null}"#).is_none());
        assert!(parse_event("nope").is_none());
        // The compatible API's Docker-shaped line, ours or not.
        let api = r#"{"status":"die","id":"abc","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"containerExitCode":"3","exitCode":"3","io.cyberwave.edge.created-by":"x","name":"cyberwave-driver-a"}}}"#;
        let e = parse_event(api).unwrap();
        assert_eq!((e.action.as_str(), e.exit_code), ("die", Some(3)));
        assert!(parse_event(&api.replace("io.cyberwave.edge.created-by", "x")).is_none());
    }
}
