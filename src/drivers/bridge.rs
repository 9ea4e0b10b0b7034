//! The macOS host-device bridge hook (seed 000 "macOS host-device bridge hook"): on Docker
//! Desktop a Linux `--device` cannot reach host hardware, so a user command
//! (`CYBERWAVE_MACOS_DEVICE_BRIDGE_COMMAND`) runs once per `--device` mapping and may answer
//! with a resolved source (e.g. an RTSP URL) the driver should use instead. The rules are pure
//! and tested here; the command runs only in macOS builds.

use std::collections::BTreeMap;

use serde_json::Value;

/// `(host, container)` of every `--device host[:container[:perms]]` in params.
pub fn device_mappings(params: &[String]) -> Vec<(String, String)> {
    crate::engine::args::flag_values(params, &["--device"])
        .into_iter()
        .filter_map(|spec| {
            let mut parts = spec.split(':');
            let host = parts.next().unwrap_or("").to_string();
            let container = parts
                .next()
                .filter(|c| c.starts_with('/'))
                .unwrap_or(&host)
                .to_string();
            (!host.is_empty()).then_some((host, container))
        })
        .collect()
}

/// Fills `{host_device}`, `{container_device}`, `{twin_uuid}`, `{container_name}`, `{config_dir}`.
pub fn render(
    template: &str,
    host_device: &str,
    container_device: &str,
    twin_uuid: &str,
    container_name: &str,
    config_dir: &str,
) -> String {
    template
        .replace("{host_device}", host_device)
        .replace("{container_device}", container_device)
        .replace("{twin_uuid}", twin_uuid)
        .replace("{container_name}", container_name)
        .replace("{config_dir}", config_dir)
}

/// `{"resolved_device": "…"}` or a `resolved_device=…` line in the command's output.
pub fn parse_resolved(stdout: &str) -> Option<String> {
    let trimmed = stdout.trim();
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(trimmed)
        && let Some(v) = m.get("resolved_device").and_then(Value::as_str)
    {
        return Some(v.trim().to_string()).filter(|s| !s.is_empty());
    }
    trimmed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("resolved_device="))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

fn is_video_device(d: &str) -> bool {
    d.starts_with("/dev/video")
}

/// Applies resolved sources: the first resolved video device becomes
/// `CYBERWAVE_METADATA_VIDEO_DEVICE`, all of them `CYBERWAVE_EDGE_VIDEO_DEVICE_MAP`, and (when
/// `strip`) the Linux-only `--device /dev/video*` flags are removed from params.
pub fn apply(
    params: &[String],
    env: &mut BTreeMap<String, String>,
    resolved: &[(String, String)],
    strip: bool,
) -> Vec<String> {
    let video: Vec<&(String, String)> = resolved
        .iter()
        .filter(|(dev, src)| is_video_device(dev) && !is_video_device(src))
        .collect();
    if let Some((_, src)) = video.first() {
        env.entry("CYBERWAVE_METADATA_VIDEO_DEVICE".into())
            .or_insert_with(|| src.clone());
        let map: serde_json::Map<String, Value> = video
            .iter()
            .map(|(d, s)| (d.clone(), Value::String(s.clone())))
            .collect();
        env.insert(
            "CYBERWAVE_EDGE_VIDEO_DEVICE_MAP".into(),
            Value::Object(map).to_string(),
        );
    }
    if !strip || video.is_empty() {
        return params.to_vec();
    }
    crate::engine::args::without_flag_values(params, "--device", is_video_device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mappings_and_template() {
        let p = v(&[
            "--device",
            "/dev/video0",
            "--device=/dev/ttyUSB0:/dev/ttyACM0:rwm",
            "-e",
            "A=1",
        ]);
        assert_eq!(
            device_mappings(&p),
            vec![
                ("/dev/video0".into(), "/dev/video0".into()),
                ("/dev/ttyUSB0".into(), "/dev/ttyACM0".into())
            ]
        );
        let t = "cyberwave-edge-hw-bridge --device {host_device} --target {container_device} --twin {twin_uuid} --name {container_name} --cfg {config_dir}";
        assert_eq!(
            render(t, "/dev/video0", "/dev/video0", "t1", "c1", "/cfg"),
            "cyberwave-edge-hw-bridge --device /dev/video0 --target /dev/video0 --twin t1 --name c1 --cfg /cfg"
        );
    }

    #[test]
    fn resolved_forms() {
        assert_eq!(
            parse_resolved(r#"{"resolved_device":"rtsp://host.docker.internal:8554/cam0"}"#)
                .as_deref(),
            Some("rtsp://host.docker.internal:8554/cam0")
        );
        assert_eq!(
            parse_resolved("starting bridge\nresolved_device=rtsp://h:8554/cam1\n").as_deref(),
            Some("rtsp://h:8554/cam1")
        );
        assert_eq!(parse_resolved("nothing here"), None);
        assert_eq!(parse_resolved(r#"{"resolved_device":""}"#), None);
    }

    #[test]
    fn apply_injects_and_strips() {
        let p = v(&[
            "--device",
            "/dev/video0",
            "--device",
            "/dev/ttyUSB0",
            "--device=/dev/video1",
        ]);
        let mut env = BTreeMap::new();
        let resolved = vec![
            ("/dev/video0".to_string(), "rtsp://h/cam0".to_string()),
            ("/dev/ttyUSB0".to_string(), "/dev/ttyUSB0".to_string()),
        ];
        let out = apply(&p, &mut env, &resolved, true);
        assert_eq!(out, v(&["--device", "/dev/ttyUSB0"]));
        assert_eq!(env["CYBERWAVE_METADATA_VIDEO_DEVICE"], "rtsp://h/cam0");
        assert_eq!(
            env["CYBERWAVE_EDGE_VIDEO_DEVICE_MAP"],
            r#"{"/dev/video0":"rtsp://h/cam0"}"#
        );
        let mut env = BTreeMap::new();
        assert_eq!(apply(&p, &mut env, &resolved, false), p);
        let mut env = BTreeMap::new();
        assert_eq!(
            apply(&p, &mut env, &[], true),
            p,
            "nothing resolved: nothing stripped"
        );
        assert!(env.is_empty());
    }
}
