//! Real Docker for the driver tests: the example driver image (built locally, no registry),
//! container clean-up, and `docker inspect` helpers.

use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

pub const IMAGE: &str = "cyberwave-example-driver:local";

/// True when a Docker engine answers. With `CYBERWAVE_TEST_REQUIRE_DOCKER=1` (CI) a missing
/// engine fails the test instead of skipping it.
pub fn available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CYBERWAVE_TEST_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("CYBERWAVE_TEST_REQUIRE_DOCKER=1 but no Docker engine answers");
    }
    if !ok {
        eprintln!("skipped: no Docker engine");
    }
    ok
}

/// Builds the example driver image once per test run (examples/local/build-driver-image.sh).
pub fn ensure_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/local/build-driver-image.sh"
        );
        let out = Command::new(script)
            .arg(IMAGE)
            .output()
            .expect("run build-driver-image.sh");
        assert!(
            out.status.success(),
            "image build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// `docker inspect` of a container, or None.
pub fn inspect(name: &str) -> Option<Value> {
    let out = Command::new("docker")
        .args(["container", "inspect", name])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()?
        .get(0)
        .cloned()
}

/// The container's environment (`KEY=value` lines), empty when it does not exist.
pub fn env_of(name: &str) -> Vec<String> {
    inspect(name)
        .and_then(|i| i.pointer("/Config/Env").cloned())
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default()
}

pub fn logs(name: &str) -> String {
    let out = Command::new("docker")
        .args(["logs", name])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn rm(name: &str) {
    let _ = Command::new("docker")
        .args(["rm", "-f", "-v", name])
        .output();
}

/// Removes the named containers when the test ends, pass or fail.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            rm(n);
        }
    }
}

/// A twin UUID unique to a test (so container names never collide between parallel tests).
pub fn twin_uuid(test: &str) -> String {
    super::uuid_from(test)
}

/// The engine's own record of what happened to some containers (`docker events`), kept
/// while the test runs: how a container was stopped is read from it, not from our logs.
pub struct Events {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Events {
    /// Starts recording events of the containers with these names (any id they get).
    pub fn watch(names: &[&str]) -> Events {
        use std::io::BufRead;
        let mut cmd = Command::new("docker");
        cmd.args(["events", "--format", "{{json .}}"]);
        // A switch renames the running container `<name>.old` before it stops it, and
        // creates its successor as `<name>.next`.
        for n in names {
            for n in [n.to_string(), format!("{n}.old"), format!("{n}.next")] {
                cmd.args(["--filter", &format!("container={n}")]);
            }
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("docker events");
        let out = child.stdout.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        // `docker events` subscribes asynchronously: give it a moment before anything happens.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Events { child, seen }
    }

    /// (action, signal, epoch nanoseconds) of every event of the container with this id.
    pub fn of(&self, id: &str) -> Vec<(String, Option<u32>, u128)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["Actor"]["ID"].as_str() == Some(id))
            .map(|e| {
                (
                    e["Action"].as_str().unwrap_or("").to_string(),
                    e["Actor"]["Attributes"]["signal"]
                        .as_str()
                        .and_then(|s| s.parse().ok()),
                    e["timeNano"].as_u64().unwrap_or(0) as u128,
                )
            })
            .collect()
    }

    /// Waits for the container `id` to be destroyed, then checks it was stopped as a robot's
    /// driver must be: a SIGTERM (`kill` with signal 15) before its destroy, and no SIGKILL
    /// before that SIGTERM. Returns its events.
    pub fn assert_graceful(&self, id: &str, what: &str) -> Vec<(String, Option<u32>, u128)> {
        let destroyed = super::wait_until(std::time::Duration::from_secs(60), || {
            self.of(id).iter().any(|(a, _, _)| a == "destroy")
        });
        let ev = self.of(id);
        assert!(destroyed, "{what}: {id} never destroyed: {ev:?}");
        let term = ev
            .iter()
            .position(|(a, s, _)| a == "kill" && *s == Some(15));
        let destroy = ev.iter().position(|(a, _, _)| a == "destroy");
        let first_kill9 = ev.iter().position(|(a, s, _)| a == "kill" && *s == Some(9));
        assert!(
            term.is_some_and(|t| Some(t) < destroy),
            "{what}: no SIGTERM before destroy: {ev:?}"
        );
        assert!(
            first_kill9.is_none_or(|k| Some(k) > term),
            "{what}: SIGKILL before SIGTERM: {ev:?}"
        );
        ev
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The id of a container, or "" when it does not exist.
pub fn id_of(name: &str) -> String {
    inspect(name)
        .and_then(|i| i["Id"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `docker build -t <tag>` of a Dockerfile given on stdin (no context).
pub fn build(tag: &str, dockerfile: &str) {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
