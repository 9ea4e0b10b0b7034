//! The `docker pull` command: its output line by line under a deadline, and the anonymous
//! variant (a private, empty `DOCKER_CONFIG` for one pull). What the lines mean is `pull.rs`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Docker, PULL_TIMEOUT, kill};
use crate::engine::{EngineError, error_summary};

impl Docker {
    /// `docker pull`, calling `on_line` for each progress line (`\r` and `\n` split, repeats
    /// dropped), bounded by [`PULL_TIMEOUT`]; `anonymous`: with a private, empty
    /// `DOCKER_CONFIG` for this one pull, so no stored credentials are sent.
    pub(super) fn pull_lines(
        &self,
        image: &str,
        anonymous: bool,
        on_line: impl FnMut(&str),
    ) -> Result<(), EngineError> {
        let command = format!("docker pull {image}");
        let mut cmd = Command::new(&self.bin);
        let config = if anonymous {
            let dir = empty_docker_config().map_err(|e| EngineError::Spawn {
                command: command.clone(),
                detail: format!("cannot make an empty DOCKER_CONFIG: {e}"),
            })?;
            cmd.env("DOCKER_CONFIG", dir.path());
            Some(dir)
        } else {
            None
        };
        let result = self.pull_with(cmd, image, &command, on_line);
        drop(config);
        result
    }

    fn pull_with(
        &self,
        mut cmd: Command,
        image: &str,
        command: &str,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), EngineError> {
        let command = command.to_string();
        let mut child = cmd
            .args(["pull", image])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::Spawn {
                command: command.clone(),
                detail: e.to_string(),
            })?;
        let (tx, rx) = crossbeam_channel::unbounded::<Option<String>>();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let err_buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let err_buf = err_buf.clone();
            std::thread::spawn(move || {
                if let Some(e) = stderr {
                    let mut s = String::new();
                    let _ = std::io::Read::read_to_string(&mut BufReader::new(e), &mut s);
                    if let Ok(mut b) = err_buf.lock() {
                        *b = s;
                    }
                }
            });
        }
        std::thread::spawn(move || {
            if let Some(o) = stdout {
                for chunk in BufReader::new(o).split(b'\n') {
                    let Ok(chunk) = chunk else { break };
                    for part in String::from_utf8_lossy(&chunk).split('\r') {
                        let _ = tx.send(Some(part.to_string()));
                    }
                }
            }
            let _ = tx.send(None);
        });
        let deadline = std::time::Instant::now() + PULL_TIMEOUT;
        let mut last = String::new();
        loop {
            match rx.recv_deadline(deadline) {
                Ok(Some(line)) => {
                    let line = line.trim_end().to_string();
                    if !line.is_empty() && line != last {
                        on_line(&line);
                        last = line;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    kill(&mut child);
                    return Err(EngineError::TimedOut {
                        command,
                        after: PULL_TIMEOUT,
                    });
                }
            }
        }
        let status = child.wait().map_err(|e| EngineError::Spawn {
            command: command.clone(),
            detail: e.to_string(),
        })?;
        if status.success() {
            Ok(())
        } else {
            std::thread::sleep(Duration::from_millis(20));
            let message = err_buf
                .lock()
                .map(|b| error_summary(&b))
                .unwrap_or_default();
            Err(EngineError::Failed {
                command,
                code: status.code(),
                message,
            })
        }
    }
}

/// A private, empty directory (0700) removed when dropped: the `DOCKER_CONFIG` of an
/// anonymous pull.
struct TempConfig(std::path::PathBuf);

impl TempConfig {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn empty_docker_config() -> std::io::Result<TempConfig> {
    use std::os::unix::fs::DirBuilderExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "cyberwave-anonymous-pull-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&path)?;
    Ok(TempConfig(path))
}
