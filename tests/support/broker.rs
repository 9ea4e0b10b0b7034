//! A real Mosquitto broker per test on a free loopback port, with password authentication
//! (so the daemon's `cwh_<sha256>` username is checked by the broker itself), and the
//! independent `mosquitto_sub` / `mosquitto_pub` clients third parties would use.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const OBSERVER_USER: &str = "observer";
pub const OBSERVER_PASS: &str = "observer-pass";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mosquitto_bin() -> String {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    "mosquitto".into()
}

pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker that accepts `users` (plus the observer account) and nobody else.
    pub fn start(users: &[(&str, &str)]) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let pwfile = dir.path().join("passwd");
        std::fs::write(&pwfile, "").unwrap();
        let mut all: Vec<(&str, &str)> = users.to_vec();
        all.push((OBSERVER_USER, OBSERVER_PASS));
        for (u, p) in all {
            let st = Command::new("mosquitto_passwd")
                .args(["-b", pwfile.to_str().unwrap(), u, p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("mosquitto_passwd (Debian package mosquitto)");
            assert!(st.success(), "mosquitto_passwd failed");
        }
        // mosquitto drops root privileges to the `mosquitto` user: let it read its files.
        let _ = Command::new("chmod")
            .args(["-R", "a+rX", dir.path().to_str().unwrap()])
            .status();
        let port = free_port();
        let mut b = Broker {
            port,
            dir,
            child: None,
        };
        b.restart();
        b
    }

    fn conf(&self) -> PathBuf {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\nlog_dest stderr\nlog_type all\nconnection_messages true\n",
                self.port,
                self.dir.path().join("passwd").display()
            ),
        )
        .unwrap();
        let _ = Command::new("chmod")
            .args(["a+r", conf.to_str().unwrap()])
            .status();
        conf
    }

    /// (Re)starts the broker on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.conf())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto (Debian package mosquitto)");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mosquitto did not start on port {}: {}",
            self.port,
            self.log()
        );
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// An independent subscriber (mosquitto_sub) on `topic`.
    pub fn subscribe(&self, topic: &str) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", OBSERVER_USER, "-P", OBSERVER_PASS])
            .args([
                "-t",
                topic,
                "-v",
                "-q",
                "1",
                "-i",
                &format!("observer-{}", free_port()),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (Debian package mosquitto-clients)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((topic, payload)) = line.split_once(' ') {
                    let _ = tx.send((topic.to_string(), payload.to_string()));
                }
            }
        });
        // mosquitto_sub has no "subscribed" signal; give it a moment to subscribe.
        thread::sleep(Duration::from_millis(300));
        Subscriber { child, rx }
    }

    /// Publishes one message as a third party (mosquitto_pub, QoS 1).
    pub fn publish(&self, topic: &str, payload: &str) {
        let st = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", OBSERVER_USER, "-P", OBSERVER_PASS])
            .args(["-t", topic, "-m", payload, "-q", "1"])
            .status()
            .expect("mosquitto_pub");
        assert!(st.success(), "mosquitto_pub to {topic} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Subscriber {
    child: Child,
    rx: Receiver<(String, String)>,
}

impl Subscriber {
    /// The next message whose topic and JSON payload satisfy `pred`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&str, &Value) -> bool,
    ) -> Option<(String, Value)> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let Ok((topic, payload)) = self.rx.recv_timeout(left) else {
                return None;
            };
            if let Ok(v) = serde_json::from_str::<Value>(&payload)
                && pred(&topic, &v)
            {
                return Some((topic, v));
            }
        }
    }

    /// Everything received within `window`.
    pub fn collect(&self, window: Duration) -> Vec<(String, Value)> {
        let end = Instant::now() + window;
        let mut out = Vec::new();
        while let Ok((t, p)) = self
            .rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            out.push((t, serde_json::from_str(&p).unwrap_or(Value::String(p))));
        }
        out
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
