use super::shape::{parse_event, parse_inspect, parse_ps, parse_stats};
use super::*;
use crate::engine::Engine;
use serde_json::Value;

#[test]
fn ps_lines() {
    let out = r#"{"Command":"\"/bin/sh\"","CreatedAt":"x","ID":"abc","Image":"drv:local","Labels":"io.cyberwave.edge.twin=t1,io.cyberwave.edge.spec-hash=h1","Names":"cyberwave-driver-t1","State":"exited","Status":"Exited (137) 2 minutes ago"}
{"ID":"def","Image":"drv:local","Labels":"","Names":"other","State":"running","Status":"Up 3 seconds"}
"#;
    let ps = parse_ps(out).unwrap();
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].name, "cyberwave-driver-t1");
    assert_eq!(ps[0].labels["io.cyberwave.edge.spec-hash"], "h1");
    assert_eq!(ps[0].exit_code(), Some(137));
    assert_eq!(ps[1].exit_code(), None);
    assert!(
        parse_ps("not json")
            .unwrap_err()
            .to_string()
            .starts_with("line 1:")
    );
}

#[test]
fn inspect_and_events() {
    let v: Value = serde_json::json!({"Id": "abc", "Name": "/cyberwave-driver-x", "RestartCount": 3,
        "State": {"Status": "running", "Running": true, "ExitCode": 0, "StartedAt": "s", "FinishedAt": "f"},
        "Config": {"Image": "i:local", "Labels": {"a": "b"}, "Env": ["A=1"]}, "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}}});
    let i = parse_inspect(&v).unwrap();
    assert_eq!(
        (i.name.as_str(), i.restart_count, i.running),
        ("cyberwave-driver-x", 3, true)
    );
    assert_eq!(i.restart_policy, "unless-stopped");
    let e = parse_event(r#"{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"name":"cyberwave-driver-x","exitCode":"1","io.cyberwave.edge.twin":"t"}},"time":1}"#).unwrap();
    assert_eq!(
        (e.action.as_str(), e.name.as_str(), e.exit_code),
        ("die", "cyberwave-driver-x", Some(1))
    );
    assert_eq!(e.labels["io.cyberwave.edge.twin"], "t");
    assert!(parse_event(r#"{"Type":"network","Action":"connect"}"#).is_none());
}

#[test]
fn errors_name_the_command() {
    let d = Docker::new("/nonexistent/docker");
    let e = d.inspect("x").unwrap_err();
    assert!(matches!(e, EngineError::Spawn { .. }));
    assert!(
        e.to_string().starts_with("docker container inspect x"),
        "{e}"
    );
    let d = Docker::new("false");
    assert!(matches!(
        d.start("x"),
        Err(EngineError::Failed { code: Some(1), .. })
    ));
}

#[test]
fn error_summary_keeps_the_reason_not_the_hint() {
    let rows = [
        (
            "docker: Error response from daemon: invalid mount config for type \"bind\": bind source path does not exist: /dev/ttyACM0.\nSee 'docker create --help'.\n",
            "docker: Error response from daemon: invalid mount config for type \"bind\": bind source path does not exist: /dev/ttyACM0.",
        ),
        (
            "unknown flag: --gpus-all\nRun 'docker create --help' for more information\n",
            "unknown flag: --gpus-all",
        ),
        (
            "\"docker create\" requires at least 1 argument.\nSee 'docker create --help'.\n\nUsage:  docker create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nCreate a new container\n",
            "\"docker create\" requires at least 1 argument.",
        ),
        (
            "Warning: the nvidia runtime is not default\nError response from daemon: No such image: x:1\n",
            "Warning: the nvidia runtime is not default … Error response from daemon: No such image: x:1",
        ),
        (
            "\n\n  Error: No such container: c  \n",
            "Error: No such container: c",
        ),
        ("See 'docker --help'.\n", "See 'docker --help'."),
        ("", ""),
    ];
    for (stderr, want) in rows {
        assert_eq!(error_summary(stderr), want, "{stderr:?}");
    }
    let long = format!("{}\n{}\n", "a".repeat(5000), "b".repeat(5000));
    assert_eq!(error_summary(&long).chars().count(), 400 + 3 + 400);
}

#[test]
fn stats_lines() {
    let out = "a\t1.5%\t3%\nb\t80.2%\t1%\nbad line\nc\t12%\t2%\n\t1%\t1%\n";
    let u = parse_stats(out);
    let names: Vec<&str> = u.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "bad line", "c"]);
    assert_eq!((u[1].cpu_percent, u[1].memory_percent), (80.2, 1.0));
    assert!(u[2].cpu_percent.is_nan() && u[2].memory_percent.is_nan());
}

#[test]
fn manifest_sizes_for_this_platform() {
    use super::shape::manifest_size;
    let single = serde_json::json!({"Ref": "r", "SchemaV2Manifest": {
        "config": {"size": 1000}, "layers": [{"size": 100}, {"size": 20}]}});
    assert_eq!(manifest_size(&single, "amd64"), Some(1120));
    let oci = serde_json::json!({"OCIManifest": {"config": {"size": 1}, "layers": [{"size": 2}]}});
    assert_eq!(manifest_size(&oci, "arm64"), Some(3));
    let list = serde_json::json!([
        {"Descriptor": {"platform": {"architecture": "amd64", "os": "linux"}},
         "SchemaV2Manifest": {"config": {"size": 1}, "layers": [{"size": 10}]}},
        {"Descriptor": {"platform": {"architecture": "arm64", "os": "linux"}},
         "SchemaV2Manifest": {"config": {"size": 1}, "layers": [{"size": 20}]}}
    ]);
    assert_eq!(manifest_size(&list, "arm64"), Some(21));
    assert_eq!(manifest_size(&list, "riscv64"), None);
    assert_eq!(manifest_size(&serde_json::json!({"x": 1}), "amd64"), None);
}
