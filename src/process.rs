//! Child processes with a deadline: the child is killed when it overruns, so a hung `docker`
//! can never hold a thread forever.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child process we own: dropping it kills and reaps it, so no pid outlives its process
/// (a stored pid signalled later could hit an unrelated process that reused it).
#[derive(Debug)]
pub struct OwnedChild(pub std::process::Child);

impl Drop for OwnedChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Why a bounded child process gave no output.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunError {
    /// It could not be started (the reason from the OS).
    Spawn(String),
    /// It ran past its deadline and was killed.
    TimedOut(Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "cannot start: {e}"),
            RunError::TimedOut(d) => write!(f, "killed after {} ms", d.as_millis()),
        }
    }
}

/// Runs `cmd` to completion or kills it at `deadline`. Output is read on helper threads so a
/// chatty child cannot block on a full pipe.
pub fn run_with_deadline(mut cmd: Command, deadline: Duration) -> Result<Output, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| RunError::Spawn(e.to_string()))?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                s = String::from_utf8_lossy(&buf).into_owned();
            }
            s
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = match wait_exit(&mut child, deadline) {
        Ok(Some(status)) => status.code(),
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::TimedOut(deadline));
        }
        Err(e) => return Err(RunError::Spawn(e.to_string())),
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Waits for `child` to exit, at most `deadline`; `None` when it still runs. Woken the moment
/// it exits (a pidfd, Linux 5.3+: a switch's `docker stop` and `docker start` add no polling
/// delay to a robot's downtime); on an older kernel, polled every 2 to 50 ms.
fn wait_exit(
    child: &mut std::process::Child,
    deadline: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let start = Instant::now();
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; the pid is
    // our unreaped child's, so it names that process and no other.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if fd >= 0 {
        let fd = fd as libc::c_int;
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd, its count, a finite timeout.
            let r = unsafe { libc::poll(&mut p, 1, ms) };
            let interrupted =
                r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
            if interrupted && !left.is_zero() {
                continue;
            }
            break;
        }
        // SAFETY: fd is ours, closed once.
        unsafe { libc::close(fd) };
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if start.elapsed() >= deadline {
            return Ok(None);
        }
    }
    let mut sleep = Duration::from_millis(2);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if start.elapsed() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_deadline() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let o = run_with_deadline(c, Duration::from_secs(5)).unwrap();
        assert_eq!(
            (o.status, o.stdout.as_str(), o.stderr.as_str()),
            (Some(3), "out\n", "err\n")
        );
        let mut c = Command::new("sleep");
        c.arg("5");
        let t = Instant::now();
        assert!(matches!(
            run_with_deadline(c, Duration::from_millis(200)),
            Err(RunError::TimedOut(_))
        ));
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(matches!(
            run_with_deadline(Command::new("/no/such/bin"), Duration::from_secs(1)),
            Err(RunError::Spawn(_))
        ));
    }
}
