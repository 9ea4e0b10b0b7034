//! Remote access (reference Appendix B) end to end: the real daemon, a real Mosquitto, the
//! fake backend's remote-access endpoints, the real engine running a stand-in frpc image
//! (`CYBERWAVE_REMOTE_ACCESS_IMAGE`) against a relay stand-in on loopback. The config is read
//! back with Python's own TOML parser; the container's options with `docker inspect`; the
//! secrets are looked for in every place they must not be.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::docker::{self as dk, Events};
use crate::support::frpc::{CONTAINER, Relay, STANDIN, ensure_standin};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);
const RELAY_TOKEN: &str = "rt_relay_token_7f3a9c";
const S1: &str = "5e551001-0000-4000-8000-000000000001";
const S2: &str = "5e551002-0000-4000-8000-000000000002";
const S3: &str = "5e551003-0000-4000-8000-000000000003";
const OTHER: &str = "5e5510ff-0000-4000-8000-0000000000ff";
/// This edge's own fingerprint: the daemons of other tests (all `FINGERPRINT`) starting
/// meanwhile must not take the tunnel for a leftover of theirs.
const EDGE: &str = "remote-access-edge-7e11";

/// The tunnel container has one fixed name: these tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Setup {
    backend: FakeBackend,
    broker: Broker,
    dir: EdgeDir,
    relay: Relay,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        dk::rm(CONTAINER);
    }
}

fn setup() -> Option<Setup> {
    if !dk::available() {
        return None;
    }
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    ensure_standin();
    dk::rm(CONTAINER);
    let relay = Relay::start();
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_EDGE_UUID", EDGE);
    dir.set_env("CYBERWAVE_REMOTE_ACCESS_IMAGE", STANDIN);
    dir.set_env("CYBERWAVE_REMOTE_ACCESS_RELAY_HOST", "127.0.0.1");
    dir.set_env(
        "CYBERWAVE_REMOTE_ACCESS_RELAY_PORT",
        &relay.port.to_string(),
    );
    dir.set_env("CYBERWAVE_REMOTE_ACCESS_SSH_USER", "robot-ops");
    dir.set_env("CYBERWAVE_EDGE_LOG_LEVEL", "debug");
    Some(Setup {
        backend,
        broker,
        dir,
        relay,
        _guard: guard,
    })
}

fn credential() -> Value {
    json!({"token": RELAY_TOKEN, "proxy_name": "edge-ssh-1", "local_port": 22, "remote_port": 40022})
}

fn command(s: &Setup, cmd: &str, session: &str) {
    let topic = format!("devedges/{}/command", FakeBackend::edge_uuid_for(EDGE));
    s.broker.publish(
        &topic,
        &json!({"command": cmd, "session_id": session}).to_string(),
    );
}

fn running() -> bool {
    dk::inspect(CONTAINER).is_some_and(|i| i["State"]["Status"] == json!("running"))
}

/// Waits for the daemon to listen on its command topic (the edge uuid is known, the link up).
fn listening(s: &Setup, d: &Daemon) {
    let (_, st) = s.dir.wait_status(15 * SEC, |_, v| {
        v["mqtt"]["command_topic"].is_string() && v["mqtt"]["connected"] == json!(true)
    });
    assert!(st["mqtt"]["command_topic"].is_string(), "{st}\n{}", d.log());
    // The subscription's SUBACK follows the connection.
    std::thread::sleep(SEC / 2);
}

/// What `/etc/ssh/ssh_host_*_key.pub` hold here, as the backend must receive them.
fn expected_host_keys() -> Value {
    let keys: Vec<Value> = ["ed25519", "ecdsa", "rsa"]
        .iter()
        .filter_map(|k| std::fs::read_to_string(format!("/etc/ssh/ssh_host_{k}_key.pub")).ok())
        .filter_map(|t| {
            let mut f = t.split_whitespace();
            Some(json!({"type": f.next()?, "key": f.next()?}))
        })
        .collect();
    Value::Array(keys)
}

/// The config as Python's `tomllib` reads it (a real TOML parser, not ours).
fn parse_toml(path: &std::path::Path) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,tomllib; print(json.dumps(tomllib.load(open(sys.argv[1],'rb'))))",
        ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// No process's argv or environment, no daemon log line, no `status` output holds `secret`.
fn nowhere(secret: &str, d: &Daemon, s: &Setup) {
    assert!(!d.log().contains(secret), "secret in the daemon's log");
    let (_, st) = s.dir.status();
    assert!(!st.to_string().contains(secret), "secret in status --json");
    let text = s.dir.command(&["status"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&text.stdout).contains(secret));
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        for f in ["cmdline", "environ"] {
            if let Ok(b) = std::fs::read(entry.path().join(f)) {
                assert!(
                    !String::from_utf8_lossy(&b).contains(secret),
                    "secret in {}/{f}",
                    entry.path().display()
                );
            }
        }
    }
    let env = dk::env_of(CONTAINER).join("\n");
    assert!(!env.contains(secret), "secret in the container's env");
}

#[test]
fn a_tunnel_opens_as_appendix_b_says_and_its_failure_is_reported_redacted() {
    let Some(s) = setup() else { return };
    s.backend.open_remote_session(S1, credential());
    let mut d = Daemon::start(&s.dir);
    d.wait_ready(&s.dir);
    // Set-up at the first edge-uuid resolution: the key is created (0600) and claimed.
    let claim = s
        .backend
        .wait_for_request(
            "POST",
            &format!(
                "/api/v1/edges/{}/remote-access/key",
                FakeBackend::edge_uuid_for(EDGE)
            ),
            15 * SEC,
        )
        .unwrap_or_else(|| panic!("no key claim\n{}", d.log()));
    let key_file = s.dir.file("remote_access_key");
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(key.len(), 43);
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(claim.headers.get("x-cyberwave-edge-key"), Some(&key));
    assert_eq!(s.backend.remote_key().as_deref(), Some(key.as_str()));
    listening(&s, &d);

    // A burst of the same command starts one container.
    let events = Events::watch(&[CONTAINER]);
    for _ in 0..5 {
        command(&s, "open_tunnel", S1);
    }
    assert!(
        wait_until(30 * SEC, || running() && s.relay.accepted() >= 1),
        "no tunnel\n{}",
        d.log()
    );
    std::thread::sleep(2 * SEC);
    let id = dk::id_of(CONTAINER);
    let creates = events
        .of(&id)
        .iter()
        .filter(|(a, _, _)| a == "create")
        .count();
    assert_eq!(creates, 1, "{:?}", events.of(&id));
    let creds = s
        .backend
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/credential"))
        .count();
    assert_eq!(creds, 1, "one credential request for the burst");

    // The credential request: host keys, login user, the key header.
    let edge = FakeBackend::edge_uuid_for(EDGE);
    let req = s
        .backend
        .requests_to(
            "POST",
            &format!("/api/v1/edges/{edge}/remote-access/sessions/{S1}/credential"),
        )
        .pop()
        .unwrap();
    assert_eq!(req.body["host_keys"], expected_host_keys());
    assert_eq!(req.body["ssh_user"], json!("robot-ops"));
    assert_eq!(req.headers.get("x-cyberwave-edge-key"), Some(&key));
    assert_eq!(
        req.headers.get("authorization"),
        Some(&format!("Bearer {TOKEN}"))
    );

    // The config, as a real TOML parser reads it; private files.
    let cfg_path = s.dir.file("remote-access/frpc.toml");
    assert_eq!(mode(&cfg_path), 0o600);
    assert_eq!(mode(&s.dir.file("remote-access")), 0o700);
    let cfg = parse_toml(&cfg_path);
    assert_eq!(
        cfg,
        json!({
            "serverAddr": "127.0.0.1", "serverPort": s.relay.port, "loginFailExit": true,
            "metadatas": {"session_id": S1, "token": RELAY_TOKEN},
            "transport": {"heartbeatInterval": 30, "heartbeatTimeout": 90, "tls": {"enable": true}},
            "log": {"to": "console"},
            "proxies": [{"name": "edge-ssh-1", "type": "tcp", "localIP": "127.0.0.1", "localPort": 22, "remotePort": 40022}]
        })
    );
    assert_eq!(
        std::fs::read_to_string(s.dir.file("remote-access/session"))
            .unwrap()
            .trim(),
        S1
    );

    // The container's options, as the engine reports them.
    let i = dk::inspect(CONTAINER).unwrap();
    assert_eq!(i["HostConfig"]["NetworkMode"], json!("host"));
    assert_eq!(i["HostConfig"]["RestartPolicy"]["Name"], json!("no"));
    assert_eq!(i["HostConfig"]["ReadonlyRootfs"], json!(true));
    assert_eq!(i["HostConfig"]["SecurityOpt"], json!(["no-new-privileges"]));
    assert_eq!(i["HostConfig"]["LogConfig"]["Type"], json!("json-file"));
    assert_eq!(
        i["HostConfig"]["LogConfig"]["Config"]["max-size"],
        json!("10m")
    );
    assert_eq!(i["Config"]["Cmd"], json!(["-c", "/etc/frp/frpc.toml"]));
    assert_eq!(i["Config"]["Image"], json!(STANDIN));
    assert_eq!(
        i["Config"]["Labels"]["io.cyberwave.edge.owner"],
        json!(EDGE)
    );
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        i["Config"]["User"],
        json!(format!("{uid}:{}", unsafe { libc::getgid() }))
    );
    let mounts = i["Mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["Destination"] == json!("/etc/frp/frpc.toml")
                && m["RW"] == json!(false)
                && m["Source"] == json!(cfg_path.display().to_string())),
        "{mounts:?}"
    );

    // status shows the tunnel, never its secrets.
    let (_, st) = s.dir.wait_status(10 * SEC, |_, v| {
        v["remote_access"]["state"] == json!("running")
    });
    assert_eq!(st["remote_access"]["session"], json!(S1), "{st}");
    assert_eq!(
        st["remote_access"]["relay"],
        json!(format!("127.0.0.1:{}", s.relay.port))
    );
    let text =
        String::from_utf8_lossy(&s.dir.command(&["status"]).output().unwrap().stdout).to_string();
    assert!(
        text.contains(&format!("Remote access  running session {S1}")),
        "{text}"
    );

    // close_tunnel for another session: ignored.
    command(&s, "close_tunnel", OTHER);
    std::thread::sleep(2 * SEC);
    assert_eq!(
        dk::id_of(CONTAINER),
        id,
        "another session's close stopped the tunnel"
    );

    // The relay drops frpc: it exits 1; the failure is posted, redacted; the tunnel is gone.
    s.relay.drop_all();
    assert!(
        wait_until(20 * SEC, || !s.backend.remote_failures().is_empty()),
        "no failure report\n{}",
        d.log()
    );
    let (sid, error) = s.backend.remote_failures().remove(0);
    assert_eq!(sid, S1);
    assert!(error.starts_with("frpc exited (code 1): "), "{error}");
    assert!(error.contains("with token ***"), "{error}");
    assert!(
        !error.contains(RELAY_TOKEN) && !error.contains('\x1b'),
        "{error}"
    );
    assert!(error.chars().count() <= 1500);
    assert!(
        wait_until(20 * SEC, || dk::inspect(CONTAINER).is_none()),
        "exited frpc left behind"
    );
    assert!(!s.dir.file("remote-access/session").exists());
    let (_, st) = s.dir.wait_status(5 * SEC, |_, v| {
        v["remote_access"]["last_failure"].is_object()
    });
    assert_eq!(st["remote_access"]["state"], json!("idle"), "{st}");
    assert!(
        st["remote_access"]["last_failure"]["error"]
            .as_str()
            .unwrap()
            .contains("***")
    );

    // A session the backend does not know: the credential is refused, nothing runs.
    command(&s, "open_tunnel", S2);
    assert!(
        s.backend
            .wait_for_request(
                "POST",
                &format!("/api/v1/edges/{edge}/remote-access/sessions/{S2}/credential"),
                10 * SEC
            )
            .is_some()
    );
    std::thread::sleep(2 * SEC);
    assert!(dk::inspect(CONTAINER).is_none());

    for secret in [RELAY_TOKEN, key.as_str()] {
        nowhere(secret, &d, &s);
    }
    d.terminate();
}

#[test]
fn a_tunnel_survives_our_restart_and_stops_when_the_session_ends() {
    let Some(s) = setup() else { return };
    s.backend.open_remote_session(S3, credential());
    let mut d = Daemon::start(&s.dir);
    d.wait_ready(&s.dir);
    listening(&s, &d);
    command(&s, "open_tunnel", S3);
    assert!(
        wait_until(30 * SEC, || running() && s.relay.accepted() >= 1),
        "no tunnel\n{}",
        d.log()
    );
    let first = dk::id_of(CONTAINER);

    // Our SIGTERM stops frpc gracefully and keeps the session file.
    let events = Events::watch(&[CONTAINER]);
    d.terminate();
    events.assert_graceful(&first, "shutdown");
    assert_eq!(
        std::fs::read_to_string(s.dir.file("remote-access/session"))
            .unwrap()
            .trim(),
        S3
    );

    // Started again: the backend calls the session live, so it is resumed.
    let mut d = Daemon::start(&s.dir);
    d.wait_ready(&s.dir);
    assert!(
        wait_until(30 * SEC, || running() && dk::id_of(CONTAINER) != first),
        "not resumed\n{}",
        d.log()
    );
    let edge = FakeBackend::edge_uuid_for(EDGE);
    assert!(
        !s.backend
            .requests_to(
                "GET",
                &format!("/api/v1/edges/{edge}/remote-access/sessions/{S3}/state")
            )
            .is_empty()
    );

    // Killed outright (no chance to stop frpc): the next start removes the leftover tunnel
    // gracefully and resumes the session with a fresh container and credential.
    let before_kill = dk::id_of(CONTAINER);
    let events = Events::watch(&[CONTAINER]);
    d.signal(libc::SIGKILL);
    assert!(d.wait_exit(5 * SEC).is_some());
    assert!(
        running(),
        "frpc outlives a killed daemon until the next start"
    );
    let mut d = Daemon::start(&s.dir);
    d.wait_ready(&s.dir);
    events.assert_graceful(&before_kill, "leftover after a kill");
    assert!(
        wait_until(30 * SEC, || running()
            && dk::id_of(CONTAINER) != before_kill),
        "not resumed after a kill\n{}",
        d.log()
    );

    // The backend ends the session: the state poll (every 30 s) stops the tunnel.
    let resumed = dk::id_of(CONTAINER);
    std::thread::sleep(3 * SEC);
    assert_eq!(
        dk::id_of(CONTAINER),
        resumed,
        "the resumed tunnel was replaced"
    );
    let events = Events::watch(&[CONTAINER]);
    s.backend.end_remote_session(S3, "expired");
    assert!(
        wait_until(45 * SEC, || dk::inspect(CONTAINER).is_none()),
        "not stopped\n{}",
        d.log()
    );
    events.assert_graceful(&resumed, "session ended");
    assert!(!s.dir.file("remote-access/session").exists());
    let (_, st) = s.dir.status();
    assert_eq!(
        st["remote_access"]["last_stop"]["reason"],
        json!("session is expired"),
        "{st}"
    );
    assert!(
        s.backend.remote_failures().is_empty(),
        "an ended session is not a failure"
    );
    d.terminate();
}

#[test]
fn a_key_held_by_another_install_is_kept_and_no_tunnel_opens_until_it_is_reset() {
    let Some(s) = setup() else { return };
    s.backend
        .set_remote_key(Some("the-key-of-a-previous-install"));
    s.backend.open_remote_session(S1, credential());
    let mut d = Daemon::start(&s.dir);
    d.wait_ready(&s.dir);
    let (_, st) = s.dir.wait_status(15 * SEC, |_, v| {
        v["remote_access"]["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("refused"))
    });
    assert!(
        st["remote_access"]["key"]
            .as_str()
            .unwrap()
            .contains("reset it in the UI"),
        "{st}"
    );
    assert!(
        d.log()
            .contains("A workspace ADMIN must reset the remote access key"),
        "{}",
        d.log()
    );
    let key = std::fs::read_to_string(s.dir.file("remote_access_key")).unwrap();
    listening(&s, &d);
    command(&s, "open_tunnel", S1);
    std::thread::sleep(3 * SEC);
    assert!(
        dk::inspect(CONTAINER).is_none(),
        "a tunnel without a claimed key"
    );
    assert!(
        s.backend
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/credential"))
    );
    // An admin resets the key in the UI: the next open claims ours and runs.
    s.backend.set_remote_key(None);
    command(&s, "open_tunnel", S1);
    assert!(
        wait_until(30 * SEC, running),
        "no tunnel after the reset\n{}",
        d.log()
    );
    assert_eq!(s.backend.remote_key().as_deref(), Some(key.trim()));
    assert_eq!(
        std::fs::read_to_string(s.dir.file("remote_access_key")).unwrap(),
        key,
        "the key was kept"
    );

    // Closed, then the key is reset again while we hold it as claimed: the credential is
    // refused (403), the key claimed once more, and the request retried.
    command(&s, "close_tunnel", S1);
    assert!(
        wait_until(20 * SEC, || dk::inspect(CONTAINER).is_none()),
        "not closed: {:?}\n{}",
        dk::inspect(CONTAINER).map(|i| i["State"].clone()),
        d.log()
    );
    s.backend.set_remote_key(None);
    let claims = |b: &FakeBackend| {
        b.requests()
            .iter()
            .filter(|r| r.path.ends_with("/remote-access/key"))
            .count()
    };
    let before = claims(&s.backend);
    command(&s, "open_tunnel", S1);
    assert!(
        wait_until(30 * SEC, running),
        "no tunnel after the re-claim\n{}",
        d.log()
    );
    assert_eq!(claims(&s.backend), before + 1, "one re-claim");
    d.terminate();
}
