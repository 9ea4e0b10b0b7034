//! The process groups of running commands, and the reaper that ends them if the node dies.
//!
//! Each command runs in a process group of its own, so one `killpg` ends it and everything it
//! started. Orderly stops (timeout, shutdown) kill the groups from the node. A node that dies
//! abruptly (SIGKILL, OOM killer, panic) cannot, so at start-up it spawns a reaper: a second
//! copy of its own binary that is told over a pipe which groups are live and, when the pipe
//! reaches end-of-file because the node is gone, kills them. The reaper ignores the signals a
//! terminal or `pkill` would send to both, so it outlives the node long enough to do that.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The hidden first argument that turns the binary into the reaper.
pub const REAPER_ARG: &str = "__reap-process-groups";

#[derive(Default)]
struct Inner {
    live: BTreeSet<i32>,
    reaper: Option<ChildStdin>,
    reaper_child: Option<Child>,
}

/// Process groups currently running (shared by the runner threads and the node).
#[derive(Clone, Default)]
pub struct Groups(Arc<Mutex<Inner>>);

impl Groups {
    /// Groups backed by a reaper process (`exe REAPER_ARG`); without one if it cannot start.
    pub fn with_reaper(exe: &std::path::Path) -> Self {
        let g = Groups::default();
        let spawned = Command::new(exe)
            .arg(REAPER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            Ok(mut child) => {
                if let Ok(mut inner) = g.0.lock() {
                    inner.reaper = child.stdin.take();
                    inner.reaper_child = Some(child);
                }
            }
            Err(e) => log::warn!(
                "cannot start the reaper ({e}): commands may outlive an abrupt death of the node"
            ),
        }
        g
    }

    fn tell(inner: &mut Inner, line: String) {
        if let Some(w) = inner.reaper.as_mut()
            && w.write_all(line.as_bytes()).is_err()
        {
            log::warn!("the reaper is gone: commands may outlive an abrupt death of the node");
            inner.reaper = None;
        }
    }

    pub fn add(&self, pgid: i32) {
        if let Ok(mut g) = self.0.lock() {
            g.live.insert(pgid);
            Self::tell(&mut g, format!("+{pgid}\n"));
        }
    }

    pub fn remove(&self, pgid: i32) {
        if let Ok(mut g) = self.0.lock() {
            g.live.remove(&pgid);
            Self::tell(&mut g, format!("-{pgid}\n"));
        }
    }

    pub fn count(&self) -> usize {
        self.0.lock().map(|g| g.live.len()).unwrap_or(0)
    }

    /// SIGKILL to every running group.
    pub fn kill_all(&self) {
        if let Ok(g) = self.0.lock() {
            for pgid in &g.live {
                kill_group(*pgid);
            }
        }
    }

    /// Closes the reaper's pipe (it exits, killing what is still listed) and reaps it.
    pub fn close(&self) {
        let child = self.0.lock().ok().and_then(|mut g| {
            g.reaper = None;
            g.reaper_child.take()
        });
        if let Some(mut c) = child {
            let _ = c.wait();
        }
    }
}

/// SIGKILL to a whole process group.
pub fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: plain syscall; a group that is already gone gives ESRCH, which is fine.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// The reaper's main: reads `+pgid` / `-pgid` lines until end-of-file, then kills every group
/// still listed. Returns the process exit code.
pub fn reaper_main() -> i32 {
    // SAFETY: setting dispositions to SIG_IGN before any thread exists.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let mut live = BTreeSet::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if let Some(p) = line.strip_prefix('+').and_then(|p| p.parse::<i32>().ok()) {
            live.insert(p);
        } else if let Some(p) = line.strip_prefix('-').and_then(|p| p.parse::<i32>().ok()) {
            live.remove(&p);
        }
    }
    for pgid in live {
        kill_group(pgid);
    }
    0
}
