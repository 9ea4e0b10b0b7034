//! The real `cyberwave-edge-core` binary in a scratch config dir, with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_cyberwave-edge-core");

pub struct EdgeDir {
    pub tmp: tempfile::TempDir,
    pub path: PathBuf,
    /// Extra process environment for every command run against this dir.
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl EdgeDir {
    pub fn empty() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cfg");
        std::fs::create_dir_all(&path).unwrap();
        EdgeDir {
            tmp,
            path,
            // Never arm a real /dev/watchdog from a test: kill -9 tests would reset the machine.
            env: vec![
                ("CYBERWAVE_EDGE_UUID".into(), super::FINGERPRINT.into()),
                ("CYBERWAVE_HARDWARE_WATCHDOG".into(), "false".into()),
            ],
        }
    }

    /// Credentials pointing at `backend_url` and a broker on `mqtt_port`, environment `dev`
    /// (so topics carry the `dev` prefix), and an environment.json for ENV_UUID.
    pub fn standard(backend_url: &str, mqtt_port: u16) -> Self {
        let d = Self::empty();
        d.write_credentials(
            super::TOKEN,
            &[
                ("CYBERWAVE_BASE_URL", backend_url),
                ("CYBERWAVE_MQTT_PORT", &mqtt_port.to_string()),
                ("CYBERWAVE_ENVIRONMENT", "dev"),
            ],
        );
        d.write_environment(super::ENV_UUID);
        d
    }

    pub fn write_credentials(&self, token: &str, envs: &[(&str, &str)]) {
        let envs: serde_json::Map<String, Value> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.write_raw(
            "credentials.json",
            &serde_json::to_string_pretty(&json!({"token": token, "email": "", "envs": envs}))
                .unwrap(),
        );
    }

    pub fn write_environment(&self, env_uuid: &str) {
        self.write_raw(
            "environment.json",
            &json!({"workspace_uuid": "5b1f3a9e-0000-4000-8000-000000000001", "workspace_name": "ws",
                    "uuid": env_uuid, "name": "Lab"})
            .to_string(),
        );
    }

    pub fn write_raw(&self, name: &str, content: &str) {
        std::fs::write(self.path.join(name), content).unwrap();
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn read_json(&self, name: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.file(name)).unwrap()).unwrap()
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.set_env_os(k.as_ref(), v.as_ref());
    }

    /// [`Self::set_env`] for names or values that need not be UTF-8.
    pub fn set_env_os(&mut self, k: &std::ffi::OsStr, v: &std::ffi::OsStr) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_os_string(), v.to_os_string()));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .env("CYBERWAVE_EDGE_CONFIG_DIR", &self.path)
            .env("CYBERWAVE_EDGE_LOG_LEVEL", "debug");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `status --json`: (exit code, report).
    pub fn status(&self) -> (i32, Value) {
        let out = self.command(&["status", "--json"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("status --json printed non-JSON ({e}): {text:?}"));
        (out.status.code().unwrap_or(-1), v)
    }

    /// Polls `status --json` until `pred` holds; returns the last report.
    pub fn wait_status(
        &self,
        timeout: Duration,
        pred: impl Fn(i32, &Value) -> bool,
    ) -> (i32, Value) {
        let end = Instant::now() + timeout;
        loop {
            let (code, v) = self.status();
            if pred(code, &v) || Instant::now() > end {
                return (code, v);
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

pub struct Daemon {
    child: Child,
    log: PathBuf,
    out: PathBuf,
}

impl Daemon {
    pub fn start(dir: &EdgeDir) -> Daemon {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &EdgeDir, args: &[&str]) -> Daemon {
        let log = dir.tmp.path().join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let log = unique(log);
        let file = std::fs::File::create(&log).unwrap();
        let out = log.with_extension("out");
        let out_file = std::fs::File::create(&out).unwrap();
        let child = dir
            .command(args)
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(file)
            .spawn()
            .expect("start cyberwave-edge-core");
        Daemon { child, log, out }
    }

    /// What the daemon printed on stdout (its startup report).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, and the clean exit (0 within 5 s) it must bring.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
        let code = self
            .wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code());
        assert_eq!(code, Some(0), "no clean exit after SIGTERM\n{}", self.log());
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the daemon answers on its control socket.
    pub fn wait_ready(&mut self, dir: &EdgeDir) {
        let (_, v) = dir.wait_status(Duration::from_secs(10), |_, v| {
            v["daemon"]["running"] == json!(true)
        });
        assert_eq!(
            v["daemon"]["running"],
            json!(true),
            "daemon not ready: {v}\nlog:\n{}",
            self.log()
        );
    }
}

fn unique(p: PathBuf) -> PathBuf {
    let mut n = 0;
    let mut cand = p.clone();
    while cand.exists() {
        n += 1;
        cand = Path::new(&format!("{}.{n}", p.display())).to_path_buf();
    }
    cand
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
