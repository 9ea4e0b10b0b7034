use super::*;

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
    assert!(parse_ps("not json").unwrap_err().contains("line 1"));
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
    assert!(matches!(e, DockerError::Spawn { .. }));
    assert!(
        e.to_string().starts_with("docker container inspect x"),
        "{e}"
    );
    let d = Docker::new("false");
    assert!(matches!(
        d.start("x"),
        Err(DockerError::Failed { code: Some(1), .. })
    ));
}
