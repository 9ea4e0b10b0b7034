//! Real Podman for the engine tests: Debian's `podman` with `runc` and cgroupfs (crun refuses
//! this machine's cgroup layout and default ulimits), configured through a `containers.conf` of
//! the test's own, the example driver image loaded from Docker, and Podman's API socket served
//! by `podman system service` when a test wants it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::docker::IMAGE;

/// The configuration every podman call of the tests (and the daemon under test) uses.
pub fn conf() -> PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let path = std::env::temp_dir().join("cyberwave-test-containers.conf");
        std::fs::write(
            &path,
            "[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\nevents_logger = \"file\"\n[containers]\ndefault_ulimits = []\n",
        )
        .unwrap();
        path
    })
    .clone()
}

pub fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(args)
        .env("CONTAINERS_CONF", conf())
        .output()
        .expect("podman")
}

/// True when Podman runs containers here; with `CYBERWAVE_TEST_REQUIRE_DOCKER=1` (CI) a
/// missing Podman fails the test instead of skipping it (never silently).
pub fn available() -> bool {
    let ok = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CYBERWAVE_TEST_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("CYBERWAVE_TEST_REQUIRE_DOCKER=1 but podman is not installed");
    }
    if !ok {
        eprintln!("skipped: podman is not installed (scripts/test installs it as root)");
    }
    ok
}

/// The example driver image, built for Docker, loaded into Podman once per run.
pub fn ensure_image() {
    static LOADED: OnceLock<()> = OnceLock::new();
    LOADED.get_or_init(|| {
        super::docker::ensure_image();
        let tar = std::env::temp_dir().join("cyberwave-example-driver.tar");
        let st = Command::new("docker")
            .args(["save", "-o", tar.to_str().unwrap(), IMAGE])
            .status()
            .unwrap();
        assert!(st.success(), "docker save");
        let out = podman(&["load", "-i", tar.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// `podman inspect` of a container, or None.
pub fn inspect(name: &str) -> Option<serde_json::Value> {
    let out = podman(&["container", "inspect", name]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()?
        .get(0)
        .cloned()
}

pub fn id_of(name: &str) -> String {
    inspect(name)
        .and_then(|i| i["Id"].as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn running(name: &str) -> bool {
    inspect(name).is_some_and(|i| i["State"]["Status"] == serde_json::json!("running"))
}

pub fn rm(name: &str) {
    let _ = podman(&["rm", "-f", "-t", "0", name]);
}

/// Removes the containers when dropped.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            rm(n);
        }
    }
}

/// `podman system service` on a socket of its own, stopped when dropped.
pub struct Service {
    child: Child,
    pub socket: PathBuf,
}

impl Service {
    pub fn start(dir: &Path) -> Service {
        let socket = dir.join("podman.sock");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env("CONTAINERS_CONF", conf())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service");
        assert!(
            super::wait_until(Duration::from_secs(10), || socket.exists()),
            "podman's socket never appeared"
        );
        Service { child, socket }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
