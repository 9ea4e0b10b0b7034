//! The fingerprint's MAC is the one CPython's `uuid.getnode()` picks (libuuid), so our
//! fingerprint is the SDK's `generate_fingerprint()` — checked in network namespaces we make
//! (veth and bridge interfaces, with and without IPv4, universal and local MACs, both orders)
//! against the real `cyberwave` SDK from the test venv.

use std::process::Command;

use crate::support::daemon::BIN;

/// Interface set-ups, each a shell script run inside a fresh network namespace.
const CASES: [(&str, &str); 4] = [
    (
        "a universal MAC without IPv4 loses to a local one with IPv4",
        "ip link add v0 type veth peer name v1 && ip link set v0 address 00:16:3e:00:00:01 \
         && ip link add br0 type bridge && ip link set br0 address 02:00:00:00:00:02 \
         && ip addr add 10.9.0.1/24 dev br0",
    ),
    (
        "two with IPv4: the kernel's order (lower ifindex first)",
        "ip link add br0 type bridge && ip link set br0 address 02:00:00:00:00:03 \
         && ip link add br1 type bridge && ip link set br1 address 00:16:3e:00:00:04 \
         && ip addr add 10.9.1.1/24 dev br1 && ip addr add 10.9.2.1/24 dev br0",
    ),
    (
        "two with IPv4 added the other way round",
        "ip link add br1 type bridge && ip link set br1 address 00:16:3e:00:00:05 \
         && ip link add br0 type bridge && ip link set br0 address 02:00:00:00:00:06 \
         && ip addr add 10.9.3.1/24 dev br0 && ip addr add 10.9.4.1/24 dev br1",
    ),
    (
        "loopback (all-zero MAC) is skipped",
        "ip link set lo up && ip link add br0 type bridge && ip link set br0 address 00:16:3e:00:00:07 \
         && ip addr add 10.9.5.1/24 dev br0",
    ),
];

fn sdk_python() -> Option<std::path::PathBuf> {
    let cli = std::env::var_os("CYBERWAVE_TEST_CLI")?;
    let py = std::path::Path::new(&cli).parent()?.join("python");
    py.exists().then_some(py)
}

#[test]
fn the_fingerprint_mac_is_the_sdks_in_every_interface_layout() {
    let tools = ["unshare", "ip"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let (Some(py), true, true) = (sdk_python(), tools, unsafe { libc::geteuid() } == 0) else {
        eprintln!("skipped: needs root, unshare, ip and the SDK venv");
        return;
    };
    let probe = Command::new("unshare").args(["-n", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: cannot make a network namespace here");
        return;
    }
    for (what, setup) in CASES {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("cfg");
        let manifest = d.path().join("m.json");
        std::fs::write(&manifest, r#"{"twins": []}"#).unwrap();
        let script = format!(
            "set -e; {setup}; \
             {py} -c 'import uuid; from cyberwave.fingerprint import generate_fingerprint as g; print(g()); print(\"%012x\" % uuid.getnode())'; \
             env -i PATH=\"$PATH\" HOME={home} CYBERWAVE_EDGE_CONFIG_DIR={cfg} CYBERWAVE_HARDWARE_WATCHDOG=false \
               timeout -s TERM 3 {bin} run --local {manifest} >/dev/null 2>&1 || true",
            py = py.display(),
            home = d.path().display(),
            cfg = cfg.display(),
            bin = BIN,
            manifest = manifest.display(),
        );
        let out = Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(sdk), Some(node)) = (lines.next(), lines.next()) else {
            panic!(
                "{what}: no SDK answer: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ours: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(cfg.join("fingerprint.json")).unwrap())
                .unwrap();
        assert_eq!(
            ours["fingerprint"],
            serde_json::json!(sdk),
            "{what} (getnode {node})"
        );
    }
}
