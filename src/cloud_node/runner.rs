//! Running a shell command for a request or the install script: `sh -c` in its own process
//! group (with a parent-death signal, and listed with the reaper), output read with `poll` on
//! non-blocking pipes against one deadline for the whole request. When `sh` exits, its group is
//! killed and the pipes get a short drain; whatever still holds them after that (a daemon that
//! left the group with `setsid`) is found through `/proc` and killed, so nothing can keep a
//! request, or the node's shutdown, waiting. The memory limit counts resident memory of the
//! group (sampled), which CUDA programs, which reserve far more address space than they use,
//! pass where `RLIMIT_AS` would break them.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::groups::{Groups, kill_group};
use super::procfs;

/// How long output may keep flowing after `sh` has exited.
const DRAIN: Duration = Duration::from_millis(500);
/// How often the memory of a limited group is sampled.
const MEMORY_SAMPLE: Duration = Duration::from_millis(200);

/// What to run and under which limits.
#[derive(Debug, Clone)]
pub struct Spec {
    pub script: String,
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
    /// A file for the command's stdin (the params); `/dev/null` when `None`.
    pub stdin: Option<PathBuf>,
    pub timeout: Duration,
    pub memory_mb: Option<u64>,
    /// Bytes of stdout and of stderr kept for the reply.
    pub cap: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub timed_out: bool,
    pub memory_exceeded: bool,
    /// A process outside the group held the output after `sh` exited; it was killed.
    pub output_held: bool,
    /// The run was stopped by this signal number (install script and SIGTERM).
    pub interrupted: Option<i32>,
    pub duration: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        !self.timed_out
            && !self.memory_exceeded
            && self.interrupted.is_none()
            && self.exit_code == Some(0)
    }

    fn failed_to_start(e: String, start: Instant) -> Self {
        Outcome {
            stderr: e,
            duration: start.elapsed(),
            ..Outcome::default()
        }
    }
}

/// How output is kept: the head up to a cap (replies), or streamed to the log by line (install).
enum Keep {
    Head(usize),
    Log(&'static str),
}

struct Pipe {
    file: File,
    open: bool,
    kept: Vec<u8>,
    truncated: bool,
    partial: Vec<u8>,
    last_line: String,
}

impl Pipe {
    fn new(file: File) -> Self {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fd = file.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Pipe {
            file,
            open: true,
            kept: Vec::new(),
            truncated: false,
            partial: Vec::new(),
            last_line: String::new(),
        }
    }

    /// Reads what is there without blocking.
    fn pump(&mut self, keep: &Keep) {
        let mut buf = [0u8; 16 * 1024];
        while self.open {
            match self.file.read(&mut buf) {
                Ok(0) => {
                    self.open = false;
                    if let Keep::Log(target) = keep {
                        self.flush_line(target);
                    }
                }
                Ok(n) => self.take(&buf[..n], keep),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.open = false,
            }
        }
    }

    fn take(&mut self, data: &[u8], keep: &Keep) {
        match keep {
            Keep::Head(cap) => {
                let room = cap.saturating_sub(self.kept.len());
                if data.len() > room {
                    self.truncated = true;
                }
                self.kept.extend_from_slice(&data[..data.len().min(room)]);
            }
            Keep::Log(target) => {
                for &b in data {
                    if b == b'\n' {
                        self.flush_line(target);
                    } else if self.partial.len() < 64 * 1024 {
                        self.partial.push(b);
                    }
                }
            }
        }
    }

    fn flush_line(&mut self, target: &str) {
        if self.partial.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        log::info!(target: target, "{line}");
        if !line.trim().is_empty() {
            self.last_line = line;
        }
    }
}

fn command(spec: &Spec) -> std::io::Result<Command> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&spec.script)
        .current_dir(&spec.workdir)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &spec.stdin {
        Some(p) => cmd.stdin(File::open(p)?),
        None => cmd.stdin(Stdio::null()),
    };
    // SAFETY: only async-signal-safe calls (setpgid, prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        });
    }
    Ok(cmd)
}

/// Runs a request's command; never panics, never blocks past `spec.timeout` (plus a moment to
/// reap what was killed).
pub fn run(spec: &Spec, groups: &Groups) -> Outcome {
    execute(spec, groups, None, Keep::Head(spec.cap))
}

/// Runs the install script, streaming each output line to the log; a signal on `stop` ends it.
pub fn install(
    script: &str,
    workdir: &Path,
    timeout: Duration,
    groups: &Groups,
    stop: &Receiver<i32>,
) -> Result<(), InstallError> {
    let spec = Spec {
        script: script.to_string(),
        workdir: workdir.to_path_buf(),
        env: Vec::new(),
        stdin: None,
        timeout,
        memory_mb: None,
        cap: 0,
    };
    let o = execute(&spec, groups, Some(stop), Keep::Log("install"));
    if let Some(sig) = o.interrupted {
        return Err(InstallError::Interrupted(sig));
    }
    if o.success() {
        return Ok(());
    }
    let how = if o.timed_out {
        format!("killed after {} s", timeout.as_secs())
    } else if let Some(s) = o.signal {
        format!("killed by signal {s}")
    } else if let Some(c) = o.exit_code {
        format!("exit status: {c}")
    } else {
        o.stderr.clone()
    };
    let last = if o.stdout.is_empty() {
        String::new()
    } else {
        format!(": {}", o.stdout)
    };
    Err(InstallError::Failed(format!(
        "install script {script:?} failed ({how}){last}"
    )))
}

/// Why the install script did not succeed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InstallError {
    /// The script failed: its exit and last lines.
    Failed(String),
    /// The script was ended by this signal (the node is shutting down).
    Interrupted(i32),
}

fn execute(spec: &Spec, groups: &Groups, stop: Option<&Receiver<i32>>, keep: Keep) -> Outcome {
    let start = Instant::now();
    let mut child = match command(spec).and_then(|mut c| c.spawn()) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::failed_to_start(format!("cannot start sh: {e}"), start);
        }
    };
    let pgid = child.id() as i32;
    groups.add(pgid);
    let mut pipes: Vec<Pipe> = [
        child
            .stdout
            .take()
            .map(|p| File::from(std::os::fd::OwnedFd::from(p))),
        child
            .stderr
            .take()
            .map(|p| File::from(std::os::fd::OwnedFd::from(p))),
    ]
    .into_iter()
    .flatten()
    .map(Pipe::new)
    .collect();
    let mut o = Outcome::default();
    let status = watch(
        spec, &mut child, pgid, &mut pipes, stop, &keep, &mut o, start,
    );
    groups.remove(pgid);
    o.exit_code = status.and_then(|s| s.code());
    o.signal = status.and_then(|s| s.signal());
    let text = |p: Option<&Pipe>| match (&keep, p) {
        (Keep::Head(_), Some(p)) => String::from_utf8_lossy(&p.kept).into_owned(),
        (Keep::Log(_), Some(p)) => p.last_line.clone(),
        (_, None) => String::new(),
    };
    o.stdout = text(pipes.first());
    o.stderr = text(pipes.get(1));
    if let Keep::Log(_) = keep
        && !o.stderr.is_empty()
    {
        // For the install script, the last line on stderr says more than the last on stdout.
        o.stdout = o.stderr.clone();
    }
    o.truncated = pipes.iter().any(|p| p.truncated);
    o.duration = start.elapsed();
    o
}

/// The poll loop: returns the exit status once `sh` is reaped.
#[allow(clippy::too_many_arguments)]
fn watch(
    spec: &Spec,
    child: &mut Child,
    pgid: i32,
    pipes: &mut [Pipe],
    stop: Option<&Receiver<i32>>,
    keep: &Keep,
    o: &mut Outcome,
    start: Instant,
) -> Option<ExitStatus> {
    let deadline = start + spec.timeout;
    let limit = spec.memory_mb.map(|m| m.saturating_mul(1 << 20));
    let mut next_sample = start + MEMORY_SAMPLE;
    let mut drain_until: Option<Instant> = None;
    let mut status: Option<ExitStatus> = None;
    let mut pause = Duration::from_millis(1);
    loop {
        if status.is_none()
            && let Ok(Some(st)) = child.try_wait()
        {
            status = Some(st);
            // Stragglers of the group would hold the pipes: end them, then drain briefly.
            kill_group(pgid);
            drain_until = Some((Instant::now() + DRAIN).min(deadline));
        }
        let open = pipes.iter().any(|p| p.open);
        if status.is_some() && !open {
            return status;
        }
        let now = Instant::now();
        if let Some(sig) = stop.and_then(|s| s.try_recv().ok()) {
            o.interrupted = Some(sig);
            return finish(child, pgid, pipes, status);
        }
        if now >= deadline {
            o.timed_out = status.is_none();
            return finish(child, pgid, pipes, status);
        }
        if drain_until.is_some_and(|d| now >= d) {
            o.output_held = true;
            return finish(child, pgid, pipes, status);
        }
        if let Some(limit) = limit
            && status.is_none()
            && now >= next_sample
        {
            next_sample = now + MEMORY_SAMPLE;
            if procfs::group_rss(pgid) > limit {
                o.memory_exceeded = true;
                return finish(child, pgid, pipes, status);
            }
        }
        let until = drain_until.unwrap_or(deadline).min(deadline);
        let mut wait = until
            .saturating_duration_since(now)
            .min(Duration::from_millis(50));
        if limit.is_some() {
            wait = wait.min(next_sample.saturating_duration_since(now));
        }
        if open {
            poll_pipes(pipes, wait);
            for p in pipes.iter_mut() {
                p.pump(keep);
            }
        } else {
            std::thread::sleep(pause.min(wait));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// Ends a run early: kills the group and whoever holds its pipes, stops reading, reaps `sh`.
fn finish(
    child: &mut Child,
    pgid: i32,
    pipes: &mut [Pipe],
    status: Option<ExitStatus>,
) -> Option<ExitStatus> {
    kill_group(pgid);
    for p in pipes.iter_mut().filter(|p| p.open) {
        procfs::kill_pipe_holders(&p.file);
        p.open = false;
    }
    status.or_else(|| child.wait().ok())
}

fn poll_pipes(pipes: &[Pipe], wait: Duration) {
    let mut fds: Vec<libc::pollfd> = pipes
        .iter()
        .filter(|p| p.open)
        .map(|p| libc::pollfd {
            fd: p.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = wait.as_millis().clamp(0, i32::MAX as u128) as libc::c_int;
    // SAFETY: fds is a valid array of pollfd for its length.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}

#[cfg(test)]
mod tests;
