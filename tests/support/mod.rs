//! Test harness: a fake backend, a real broker, and the real daemon binary in a scratch
//! config dir. Shared by the integration tests (not every test uses every part).

pub mod backend;
pub mod broker;
pub mod cloud_node;
pub mod daemon;
pub mod docker;
pub mod drivers;
pub mod frpc;
pub mod podman;
pub mod registry;
pub mod throttle;
pub mod worker;
pub mod zenoh;

pub use backend::FakeBackend;
pub use backend::Mode;
pub use broker::Broker;
pub use daemon::{Daemon, EdgeDir};

pub const TOKEN: &str = "cw_test_token_0123456789";
pub const FINGERPRINT: &str = "test-edge-0a1b2c3d4e5f";
pub const ENV_UUID: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
pub const TWIN_A: &str = "11111111-2222-4333-8444-555555555555";
pub const TWIN_B: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
pub const TWIN_OTHER: &str = "99999999-8888-4777-8666-555555555555";
pub const ASSET_A: &str = "12345678-1234-4234-8234-123456789abc";

/// A stable, valid v4-shaped UUID derived from `seed`.
pub fn uuid_from(seed: &str) -> String {
    let h = cyberwave_edge::sha256_hex(seed.as_bytes());
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Backend with one environment: TWIN_A linked by the driver rule (with an asset), TWIN_B
/// linked by the legacy `edge_configs` rule, TWIN_OTHER belonging to another edge.
pub fn backend_with_twins() -> FakeBackend {
    use serde_json::json;
    let b = FakeBackend::start(TOKEN);
    b.add_environment(
        ENV_UUID,
        vec![
            json!({"uuid": TWIN_A, "name": "arm", "asset_uuid": ASSET_A, "environment_uuid": ENV_UUID,
                   "metadata": {"edge_fingerprint": FINGERPRINT}}),
            json!({"uuid": TWIN_B, "name": "cam", "environment_uuid": ENV_UUID,
                   "metadata": {"edge_configs": {"edge_fingerprint": FINGERPRINT}}}),
            json!({"uuid": TWIN_OTHER, "name": "elsewhere", "environment_uuid": ENV_UUID,
                   "metadata": {"edge_fingerprint": "some-other-edge"}}),
        ],
    );
    // No driver metadata: these backbone tests run no containers (tests/drivers.rs does).
    b.add_asset(json!({"uuid": ASSET_A, "name": "SO101", "registry_id": "the-robot-studio/so101", "metadata": {}}));
    b
}

/// Broker accepting exactly the username the daemon must derive from TOKEN.
pub fn broker_for_token() -> Broker {
    let user = cyberwave_edge::mqtt::username_for_token(TOKEN);
    Broker::start(&[(user.as_str(), TOKEN)])
}

/// Resident memory of a process, KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Makes a FIFO at `path` (a file that blocks whoever opens it for reading with no writer).
pub fn mkfifo(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}
