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
