use std::path::Path;

use serde_json::json;

use super::*;

fn cred() -> Credential {
    Credential::parse(&json!({
        "token": "rt_SECRET\"x", "proxy_name": "edge-abc", "local_port": 22, "remote_port": "40022"
    }))
    .unwrap()
}

fn relay(host: &str, port: u16) -> Relay {
    Relay {
        host: host.into(),
        port,
    }
}

const SID: &str = "5e55104e-0000-4000-8000-000000000001";

#[test]
fn credentials_are_checked_and_never_print_the_token() {
    let c = cred();
    assert_eq!((c.local_port, c.remote_port), (22, 40022));
    assert!(!format!("{c:?}").contains("SECRET"));
    #[rustfmt::skip]
    let bad = [
        (json!({"proxy_name": "p", "local_port": 22, "remote_port": 1}), "token"),
        (json!({"token": "", "proxy_name": "p", "local_port": 22, "remote_port": 1}), "token"),
        (json!({"token": "t", "proxy_name": 5, "local_port": 22, "remote_port": 1}), "proxy_name"),
        (json!({"token": "t", "proxy_name": "p", "local_port": 0, "remote_port": 1}), "local_port"),
        (json!({"token": "t", "proxy_name": "p", "local_port": 22, "remote_port": 70000}), "remote_port"),
        (json!({"token": "t", "proxy_name": "p", "local_port": 22, "remote_port": -1}), "remote_port"),
        (json!([1]), "token"),
    ];
    for (v, field) in bad {
        let e = Credential::parse(&v).unwrap_err();
        assert!(e.starts_with(field), "{v}: {e}");
    }
}

#[test]
fn the_config_has_every_field_of_appendix_b() {
    let text = render(SID, &cred(), &relay("relay.edge.cyberwave.com", 443), false);
    let want = format!(
        "serverAddr = \"relay.edge.cyberwave.com\"\n\
         serverPort = 443\n\
         loginFailExit = true\n\
         metadatas.session_id = \"{SID}\"\n\
         metadatas.token = \"rt_SECRET\\\"x\"\n\
         transport.heartbeatInterval = 30\n\
         transport.heartbeatTimeout = 90\n\
         transport.tls.enable = true\n\
         transport.tls.trustedCaFile = \"/etc/ssl/certs/ca-certificates.crt\"\n\
         transport.tls.serverName = \"relay.edge.cyberwave.com\"\n\
         log.to = \"console\"\n\
         \n\
         [[proxies]]\n\
         name = \"edge-abc\"\n\
         type = \"tcp\"\n\
         localIP = \"127.0.0.1\"\n\
         localPort = 22\n\
         remotePort = 40022\n"
    );
    assert_eq!(text, want);
}

#[test]
fn tls_verification_follows_the_relay_and_the_ca_file() {
    let with_ca = render(SID, &cred(), &relay("127.0.0.1", 7000), true);
    assert!(with_ca.contains("transport.tls.trustedCaFile = \"/etc/frp/relay-ca.pem\""));
    assert!(with_ca.contains("transport.tls.serverName = \"127.0.0.1\""));
    let loopback = render(SID, &cred(), &relay("localhost", 7000), false);
    assert!(loopback.contains("transport.tls.enable = true"));
    assert!(!loopback.contains("trustedCaFile") && !loopback.contains("serverName"));
    assert_eq!(toml_string("a\u{1}\\\n"), "\"a\\u0001\\\\\\u000a\"");
}

fn ctx(image: &str) -> SpecContext<'_> {
    SpecContext {
        image,
        config_file: Path::new("/home/pi/.cyberwave/remote-access/frpc.toml"),
        ca_file: Some(Path::new("/etc/relay-ca.pem")),
        owner: "fp-1",
        log_max_size: Some("10m"),
        log_max_file: "3",
        user: (1000, 1000),
    }
}

#[test]
fn the_container_is_locked_down_and_holds_no_secret() {
    let s = spec(SID, &ctx(super::super::settings::DEFAULT_IMAGE));
    let o = s.options.join(" ");
    for want in [
        "--network host --restart no --read-only --security-opt no-new-privileges --user 1000:1000",
        "--log-driver json-file --log-opt max-size=10m --log-opt max-file=3",
        "-v /home/pi/.cyberwave/remote-access/frpc.toml:/etc/frp/frpc.toml:ro",
        "-v /etc/relay-ca.pem:/etc/frp/relay-ca.pem:ro",
        "--name cyberwave-remote-access",
        "--label io.cyberwave.edge.owner=fp-1",
    ] {
        assert!(o.contains(want), "{want} not in {o}");
    }
    assert_eq!(s.command, ["-c", "/etc/frp/frpc.toml"]);
    assert!(s.env.is_empty());
    assert!(s.once);
    assert_eq!(s.role, Role::Tunnel);
    assert_eq!(s.owner, SID);
    // a digest-pinned image is never re-pulled; a moving tag is
    assert_eq!(s.pull, Pull::IfMissing);
    assert_eq!(spec(SID, &ctx("frpc:latest")).pull, Pull::Always);
    // another session is another container
    let other = spec(
        "5e55104e-0000-4000-8000-000000000002",
        &ctx(super::super::settings::DEFAULT_IMAGE),
    );
    assert_ne!(other.spec_hash, s.spec_hash);
    // no secret can be in the spec: it never saw the credential
    assert!(!format!("{s:?}").contains("SECRET"));
}
