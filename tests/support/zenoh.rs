//! Third-party zenoh peers for the bus tests: `py/zenoh_peer.py` run by the Python of the test
//! venv, whose `eclipse-zenoh` is the one the Cyberwave SDK installs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The venv's Python when the test script installed it (next to the Cyberwave CLI).
pub fn python() -> Option<PathBuf> {
    let cli = std::env::var_os("CYBERWAVE_TEST_CLI")?;
    let py = PathBuf::from(cli).with_file_name("python");
    let ok = Command::new(&py)
        .args(["-c", "import zenoh"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/py/zenoh_peer.py")
}

/// A running peer process, killed when dropped.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `zenoh_peer.py <args>`; for `sub`/`pong`, waits until it says `ready`.
pub fn spawn(py: &PathBuf, args: &[&str]) -> Peer {
    let mut child = Command::new(py)
        .arg(script())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python");
    if matches!(args.first(), Some(&"sub") | Some(&"pong")) {
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(first, "ready", "peer {args:?} did not start");
        // Keep reading the rest in the background so the pipe never fills.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        RESULTS.with(|r| r.borrow_mut().push((child.id(), rx)));
    }
    Peer(child)
}

thread_local! {
    static RESULTS: std::cell::RefCell<Vec<(u32, std::sync::mpsc::Receiver<String>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The JSON line a started `sub` peer printed when it finished (waits up to `timeout`).
pub fn result_of(peer: &Peer, timeout: std::time::Duration) -> Option<serde_json::Value> {
    let id = peer.0.id();
    RESULTS.with(|r| {
        let r = r.borrow();
        let (_, rx) = r.iter().find(|(p, _)| *p == id)?;
        rx.recv_timeout(timeout)
            .ok()
            .and_then(|l| serde_json::from_str(&l).ok())
    })
}

/// Runs a peer to its end and returns the JSON it printed.
pub fn run(py: &PathBuf, args: &[&str]) -> serde_json::Value {
    run_with(py, args, &[]).1
}

/// Runs a peer to its end with only these `ZENOH_*` variables (as a driver container has
/// them); returns whether it succeeded, the JSON it printed and its error output.
pub fn run_with(
    py: &PathBuf,
    args: &[&str],
    zenoh_env: &[(String, String)],
) -> (bool, serde_json::Value, String) {
    let mut cmd = Command::new(py);
    cmd.arg(script()).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ZENOH_")) {
        cmd.env_remove(k);
    }
    cmd.envs(zenoh_env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().expect("python");
    let json = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `ZENOH_*` variables of a container's environment.
pub fn zenoh_env_of(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .filter(|e| e.starts_with("ZENOH_"))
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Docker options that run `zenoh_peer.py <args>` with the venv's Python inside the example
/// driver image (`DRIVER_MODE=exec`): the host's Python, its libraries and the venv mounted
/// read-only at the same paths, so the peer in the container is the SDK's own `eclipse-zenoh`
/// run by a process of a container the daemon manages.
pub fn in_container(py: &PathBuf, args: &[&str]) -> Vec<String> {
    let out = Command::new(py)
        .args([
            "-c",
            "import sys; print(sys.prefix); print(sys.base_prefix)",
        ])
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut params: Vec<String> = vec!["-e".into(), "DRIVER_MODE=exec".into()];
    let script = script();
    let exec = std::iter::once(py.display().to_string())
        .chain(std::iter::once(script.display().to_string()))
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    params.extend(["-e".into(), format!("DRIVER_EXEC={exec}")]);
    let mut mounts: Vec<(String, String)> = text
        .lines()
        .map(|p| (p.to_string(), p.to_string()))
        .collect();
    let dir = script
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    mounts.push((dir.clone(), dir));
    mounts.push(("/usr".into(), "/usr".into()));
    // Debian's merged /usr: the loader and libc are under /usr/lib*, found at /lib*.
    for (host, at) in [("/usr/lib", "/lib"), ("/usr/lib64", "/lib64")] {
        if std::path::Path::new(host).exists() {
            mounts.push((host.into(), at.into()));
        }
    }
    mounts.sort();
    mounts.dedup();
    for (host, at) in mounts {
        params.extend(["-v".into(), format!("{host}:{at}:ro")]);
    }
    params
}
