//! The ML worker on the real engine: the example worker image (built locally), an environment
//! of its own per test (the worker's name comes from the environment), one twin linked by the
//! broad rule (no driver), and helpers to read the container.

use serde_json::{Value, json};

use super::docker::{self as dk, Cleanup};
use super::*;

pub const WORKER_IMAGE: &str = "cyberwave-example-worker:local";

pub fn ensure_worker_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/local/build-worker-image.sh"
        );
        let out = std::process::Command::new(script)
            .arg(WORKER_IMAGE)
            .output()
            .expect("run build-worker-image.sh");
        assert!(
            out.status.success(),
            "worker image build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

pub struct WorkerSetup {
    pub env_uuid: String,
    pub twin: String,
    pub name: String,
    pub backend: FakeBackend,
    pub broker: Broker,
    pub dir: EdgeDir,
    pub _cleanup: Cleanup,
}

impl WorkerSetup {
    pub fn workers(&self) -> std::path::PathBuf {
        self.dir.path.join("workers")
    }

    /// `worker <verb> --json` through the real binary (the daemon answers when it runs).
    pub fn worker_json(&self, verb: &str) -> Value {
        let out = self
            .dir
            .command(&["worker", verb, "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// `State.StartedAt` and `State.Status` of the worker container.
    pub fn started_at(&self) -> Option<(String, String)> {
        let i = dk::inspect(&self.name)?;
        Some((
            i["State"]["Status"].as_str()?.to_string(),
            i["State"]["StartedAt"].as_str()?.to_string(),
        ))
    }

    pub fn running(&self) -> bool {
        self.started_at().is_some_and(|(s, _)| s == "running")
    }
}

/// A worker test's parts, or None without Docker.
pub fn setup(test: &str) -> Option<WorkerSetup> {
    if !dk::available() {
        return None;
    }
    ensure_worker_image();
    let env_uuid = uuid_from(&format!("{test}-environment"));
    let twin = uuid_from(test);
    let name = format!("cyberwave-worker-{}", &env_uuid[..8]);
    dk::rm(&name);
    let backend = FakeBackend::start(TOKEN);
    backend.add_environment(
        &env_uuid,
        vec![
            json!({"uuid": twin, "name": "worker twin", "environment_uuid": env_uuid,
                    "metadata": {"edge_configs": {"edge_fingerprint": FINGERPRINT}}}),
        ],
    );
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.write_environment(&env_uuid);
    dir.set_env("CYBERWAVE_WORKER_IMAGE", WORKER_IMAGE);
    let status = dir.tmp.path().join("status");
    dir.set_env("CYBERWAVE_WORKER_STATUS_DIR", status.to_str().unwrap());
    Some(WorkerSetup {
        _cleanup: Cleanup(vec![name.clone()]),
        env_uuid,
        twin,
        name,
        backend,
        broker,
        dir,
    })
}

/// An edge-sync answer with these `(file name, source)` workers.
pub fn workflows(files: &[(&str, &str)]) -> Value {
    let list: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, (n, src))| {
            json!({"workflow_uuid": format!("wf-{i}"), "workflow_name": format!("flow {i}"),
                   "worker_filename": n, "worker_source": src})
        })
        .collect();
    json!({"workflows": list, "skipped_workflows": []})
}
