//! The real `cyberwave-cloud-node` binary in a scratch home, with helpers to start it, ask its
//! status, signal it, and wait for replies to commands.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{FakeBackend, TOKEN, broker};

pub const SEC: Duration = Duration::from_secs(1);
pub const BIN: &str = env!("CARGO_BIN_EXE_cyberwave-cloud-node");

pub struct Node {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Node {
    pub fn new(backend: &FakeBackend, yml: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cyberwave.yml"), yml).unwrap();
        Node {
            env: vec![
                ("CYBERWAVE_API_TOKEN".into(), TOKEN.into()),
                ("CYBERWAVE_API_URL".into(), backend.url()),
                (
                    "CYBERWAVE_CLOUD_NODE_SHUTDOWN_GRACE_SECONDS".into(),
                    "2".into(),
                ),
            ],
            log: dir.path().join("node.log"),
            dir,
            child: None,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn start(&mut self, broker_port: u16) {
        self.start_with(&["start"], broker_port);
    }

    /// Starts the node with `args` before the broker flags (e.g. `[]`: no subcommand).
    pub fn start_with(&mut self, args: &[&str], broker_port: u16) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let port = broker_port.to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--mqtt-host", "127.0.0.1", "--mqtt-port", &port, "-v"]);
        let child = self
            .command(&all)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn status(&self) -> (i32, Value) {
        let out = self.command(&["status", "--json"]).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        )
    }

    /// Waits until the node is connected and subscribed; returns (uuid, slug).
    pub fn wait_ready(&self) -> (String, String) {
        let end = Instant::now() + 20 * SEC;
        while Instant::now() < end {
            let (code, s) = self.status();
            if code == 0 {
                std::thread::sleep(Duration::from_millis(500)); // SUBACK
                return (
                    s["node"]["instance_uuid"].as_str().unwrap().into(),
                    s["node"]["slug"].as_str().unwrap().into(),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("node not ready\n{}", self.log());
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub const YML: &str = r#"cyberwave-cloud-node:
  inference: printf '%s' {body}
  training: echo training {body}
  profile_slug: gpu-test
  heartbeat_interval: 1
  functions:
    inference: {timeout_seconds: 10, concurrency: 4}
"#;

pub fn cmd(c: &str, id: &str, params: Value) -> String {
    json!({"command": c, "request_id": id, "params": params}).to_string()
}

pub fn reply_for(sub: &broker::Subscriber, id: &str, timeout: Duration) -> Value {
    sub.wait_for(timeout, |_, p| p["request_id"] == json!(id))
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no reply to {id}"))
}
