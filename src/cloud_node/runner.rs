//! Running a function's shell command: `sh -c` in its own process group, with an address-space
//! limit (setrlimit RLIMIT_AS, inherited by every process it starts), output captured up to a
//! cap, and the whole group killed at the deadline.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Process groups currently running, so shutdown can kill what outlives its grace period.
#[derive(Clone, Default)]
pub struct Groups(Arc<Mutex<BTreeSet<i32>>>);

impl Groups {
    fn add(&self, pgid: i32) {
        if let Ok(mut g) = self.0.lock() {
            g.insert(pgid);
        }
    }
    fn remove(&self, pgid: i32) {
        if let Ok(mut g) = self.0.lock() {
            g.remove(&pgid);
        }
    }
    pub fn count(&self) -> usize {
        self.0.lock().map(|g| g.len()).unwrap_or(0)
    }
    /// SIGKILL to every running group.
    pub fn kill_all(&self) {
        if let Ok(g) = self.0.lock() {
            for pgid in g.iter() {
                unsafe {
                    libc::killpg(*pgid, libc::SIGKILL);
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub timed_out: bool,
    pub duration: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        !self.timed_out && self.exit_code == Some(0)
    }
}

fn command(script: &str, memory_mb: Option<u64>) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).stdin(Stdio::null());
    let limit = memory_mb.map(|mb| mb.saturating_mul(1024 * 1024));
    // SAFETY: only async-signal-safe calls (setpgid, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(bytes) = limit {
                let rl = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd
}

fn capture(
    mut r: impl Read + Send + 'static,
    cap: usize,
) -> std::thread::JoinHandle<(String, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        let mut truncated = false;
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    if n > room {
                        truncated = true;
                    }
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        (String::from_utf8_lossy(&kept).into_owned(), truncated)
    })
}

/// Runs `script`; never panics, never blocks past `timeout` (+ a moment to reap).
pub fn run(
    script: &str,
    timeout: Duration,
    memory_mb: Option<u64>,
    cap: usize,
    groups: &Groups,
) -> Outcome {
    let start = Instant::now();
    let mut cmd = command(script, memory_mb);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                exit_code: None,
                signal: None,
                stdout: String::new(),
                stderr: format!("cannot start sh: {e}"),
                truncated: false,
                timed_out: false,
                duration: start.elapsed(),
            };
        }
    };
    let pgid = child.id() as i32;
    groups.add(pgid);
    let out = child.stdout.take().map(|o| capture(o, cap));
    let err = child.stderr.take().map(|e| capture(e, cap));
    let mut timed_out = false;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() >= timeout => {
                timed_out = true;
                unsafe {
                    libc::killpg(pgid, libc::SIGKILL);
                }
                break child.wait().ok();
            }
            Ok(None) => {
                std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(_) => break None,
        }
    };
    // Stragglers of the group (background jobs) would hold the pipes open: end them.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    groups.remove(pgid);
    let (stdout, t1) = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let (stderr, t2) = err.and_then(|h| h.join().ok()).unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    Outcome {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout,
        stderr,
        truncated: t1 || t2,
        timed_out,
        duration: start.elapsed(),
    }
}

/// Runs the install script, streaming each output line to the log. Err(message) on failure.
pub fn install(script: &str, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let (r, w) = std::io::pipe().map_err(|e| e.to_string())?;
    let mut cmd = command(script, None);
    let w2 = w.try_clone().map_err(|e| e.to_string())?;
    cmd.stdout(w).stderr(w2);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the install script: {e}"))?;
    drop(cmd);
    let pgid = child.id() as i32;
    let reader = std::thread::spawn(move || {
        let mut last = String::new();
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            log::info!(target: "install", "{line}");
            last = line;
        }
        last
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st),
            Ok(None) if start.elapsed() >= timeout => {
                unsafe {
                    libc::killpg(pgid, libc::SIGKILL);
                }
                let _ = child.wait();
                break Err(format!(
                    "install script killed after {} s",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let last = reader.join().unwrap_or_default();
    match status {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => Err(format!(
            "install script {script:?} failed ({st}){}",
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_exit_and_cap() {
        let g = Groups::default();
        let o = run(
            "echo out; echo err >&2; exit 3",
            Duration::from_secs(5),
            None,
            1024,
            &g,
        );
        assert_eq!(
            (
                o.exit_code,
                o.stdout.as_str(),
                o.stderr.as_str(),
                o.timed_out
            ),
            (Some(3), "out\n", "err\n", false)
        );
        let o = run("yes | head -c 5000", Duration::from_secs(5), None, 100, &g);
        assert!(o.truncated && o.stdout.len() == 100);
        assert_eq!(g.count(), 0);
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let g = Groups::default();
        let t = Instant::now();
        let o = run(
            "sleep 30 & sleep 30; echo never",
            Duration::from_millis(300),
            None,
            1024,
            &g,
        );
        assert!(o.timed_out && !o.success());
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!o.stdout.contains("never"));
    }

    #[test]
    fn memory_limit_applies() {
        let g = Groups::default();
        // 16 MiB address space: a shell still starts, a 64 MiB allocation cannot succeed.
        let o = run(
            "head -c 67108864 /dev/zero | tr '\\0' a > /dev/null; v=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#v}",
            Duration::from_secs(20),
            Some(16),
            1 << 20,
            &g,
        );
        assert!(!o.stdout.trim().starts_with("67108864"), "{o:?}");
    }

    #[test]
    fn install_reports_failure() {
        assert!(install("echo ok", Duration::from_secs(5)).is_ok());
        let e = install("echo boom >&2; exit 4", Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("boom") && e.contains("exit status: 4"), "{e}");
    }
}
