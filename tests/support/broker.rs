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
    /// Sessions survive a broker restart and QoS 0 messages queue for offline sessions.
    persistent: bool,
}

impl Broker {
    /// Starts a broker that accepts `users` (plus the observer account) and nobody else.
    pub fn start(users: &[(&str, &str)]) -> Broker {
        Self::start_with(users, false)
    }

    /// A broker that keeps sessions across restarts (persistence on, QoS 0 queued), so a
    /// third party can see what was published while it was away.
    pub fn start_persistent(users: &[(&str, &str)]) -> Broker {
        Self::start_with(users, true)
    }

    fn start_with(users: &[(&str, &str)], persistent: bool) -> Broker {
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
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).unwrap();
        let _ = Command::new("chmod")
            .args(["0777", db.to_str().unwrap()])
            .status();
        let mut b = Broker {
            port,
            dir,
            child: None,
            persistent,
        };
        b.restart();
        b
    }

    fn conf(&self) -> PathBuf {
        let conf = self.dir.path().join("mosquitto.conf");
        let persistence = if self.persistent {
            format!(
                "persistence true\npersistence_location {}/\nqueue_qos0_messages true\n",
                self.dir.path().join("db").display()
            )
        } else {
            "persistence false\n".to_string()
        };
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\n{persistence}log_dest stderr\nlog_type all\nconnection_messages true\n",
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

    /// Stops the broker with SIGTERM (a persistent broker saves its sessions), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
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
        self.subscribe_as(topic, &format!("observer-{}", free_port()), false)
    }

    /// A subscriber with a fixed client id; `durable` keeps its session (clean session off).
    pub fn subscribe_as(&self, topic: &str, client_id: &str, durable: bool) -> Subscriber {
        let mut cmd = Command::new("mosquitto_sub");
        if durable {
            cmd.arg("-c");
        }
        let mut child = cmd
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", OBSERVER_USER, "-P", OBSERVER_PASS])
            .args(["-t", topic, "-v", "-q", "1", "-i", client_id])
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
        self.publish_with(topic, payload.as_bytes(), false);
    }

    /// Publishes any payload (from a file, so size is no limit), optionally retained.
    pub fn publish_with(&self, topic: &str, payload: &[u8], retain: bool) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), payload).expect("write payload");
        let mut c = Command::new("mosquitto_pub");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", OBSERVER_USER, "-P", OBSERVER_PASS])
            .args(["-t", topic, "-q", "1", "-f"])
            .arg(file.path());
        if retain {
            c.arg("-r");
        }
        let st = c.status().expect("mosquitto_pub");
        assert!(st.success(), "mosquitto_pub to {topic} failed");
    }

    /// Publishes each line as its own message from one connection (`mosquitto_pub -l`): a
    /// burst as fast as the broker takes it.
    pub fn publish_lines(&self, topic: &str, lines: &[String]) {
        use std::io::Write;
        let mut child = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", OBSERVER_USER, "-P", OBSERVER_PASS])
            .args(["-t", topic, "-q", "1", "-l"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub");
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
        drop(stdin);
        assert!(
            child.wait().unwrap().success(),
            "mosquitto_pub -l to {topic}"
        );
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
