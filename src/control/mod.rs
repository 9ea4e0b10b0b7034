//! The daemon's local API: a Unix socket (mode 0600, so only root / the service user can ask)
//! answering one JSON request per connection. `status` and, later, `worker …` use it.

pub mod status;
pub mod status_text;
pub mod unit;
pub mod worker;
mod worker_text;

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use serde_json::{Value, json};

pub use crate::config::CONTROL_SOCKET_NAME as SOCKET_NAME;

/// What a client may ask.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Status,
    /// `worker_start|stop|restart|status|health`: the verb.
    Worker(String),
}

/// A request handed to the supervisor, with where to send the answer.
pub struct ControlRequest {
    pub request: Request,
    pub reply: Sender<Value>,
}

#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// Another daemon answers on this socket.
    AlreadyRunning(PathBuf),
    /// The socket could not be made at this path.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::AlreadyRunning(p) => write!(
                f,
                "another instance is already running (it answers on {})",
                p.display()
            ),
            ServeError::Io(p, e) => write!(f, "control socket {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Removes the socket file when the daemon ends.
pub struct SocketGuard {
    path: PathBuf,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Binds the socket (replacing a stale one) and serves it on the `control` thread. Each
/// request waits at most 1 s for the supervisor, so a client never hangs.
pub fn serve(path: &Path, supervisor: Sender<ControlRequest>) -> Result<SocketGuard, ServeError> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ServeError::AlreadyRunning(path.to_path_buf()));
        }
        let _ = fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        crate::fsutil::ensure_dir(dir, 0o700).map_err(|e| ServeError::Io(path.to_path_buf(), e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| ServeError::Io(path.to_path_buf(), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| ServeError::Io(path.to_path_buf(), e))?;
    // The user we run for (sudo) may ask `status` too.
    crate::fsutil::give_to_owner(path);
    thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        if let Err(e) = handle(s, &supervisor) {
                            log::debug!("control client: {e}");
                        }
                    }
                    Err(e) => log::warn!("control socket accept: {e}"),
                }
            }
        })
        .map_err(|e| ServeError::Io(path.to_path_buf(), e))?;
    Ok(SocketGuard {
        path: path.to_path_buf(),
    })
}

fn handle(stream: UnixStream, supervisor: &Sender<ControlRequest>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.set_write_timeout(Some(Duration::from_millis(500)))?;
    let mut line = String::new();
    BufReader::new(&stream).take_line(&mut line)?;
    let answer = match parse_request(&line) {
        Err(e) => json!({ "error": e }),
        Ok(request) => {
            let (tx, rx) = bounded(1);
            if supervisor
                .send(ControlRequest { request, reply: tx })
                .is_err()
            {
                json!({ "error": "daemon is shutting down" })
            } else {
                rx.recv_timeout(Duration::from_secs(1))
                    .unwrap_or_else(|_| json!({ "error": "daemon did not answer within 1 s" }))
            }
        }
    };
    let mut out = &stream;
    let mut text = answer.to_string();
    text.push('\n');
    out.write_all(text.as_bytes())
}

trait TakeLine {
    fn take_line(self, buf: &mut String) -> io::Result<usize>;
}

impl<R: io::Read> TakeLine for BufReader<R> {
    /// Reads one line of at most 4 KiB.
    fn take_line(self, buf: &mut String) -> io::Result<usize> {
        io::Read::take(self, 4096).read_line(buf)
    }
}

fn parse_request(line: &str) -> Result<Request, String> {
    let v: Value = serde_json::from_str(line.trim()).map_err(|e| format!("bad request: {e}"))?;
    match v.get("request").and_then(Value::as_str) {
        Some("status") => Ok(Request::Status),
        Some(
            w @ ("worker_start" | "worker_stop" | "worker_restart" | "worker_status"
            | "worker_health"),
        ) => Ok(Request::Worker(w.trim_start_matches("worker_").to_string())),
        Some(other) => Err(format!("unknown request {other:?}")),
        None => Err("bad request: no \"request\" field".into()),
    }
}

#[derive(Debug)]
#[non_exhaustive]
pub enum QueryError {
    /// No socket, or nobody listening: the daemon is not running.
    NotRunning(String),
    /// Connected but no usable answer in time.
    NoAnswer(String),
    /// No answer before the caller's own deadline (the query is still under way).
    Late,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::NotRunning(e) => write!(f, "nothing answers on {e}"),
            QueryError::NoAnswer(e) => write!(f, "daemon did not answer: {e}"),
            QueryError::Late => f.write_str("no answer in time"),
        }
    }
}

impl std::error::Error for QueryError {}

/// Client side: one request, answer within `timeout`.
pub fn query(path: &Path, request: &str, timeout: Duration) -> Result<Value, QueryError> {
    let stream = UnixStream::connect(path)
        .map_err(|e| QueryError::NotRunning(format!("{}: {e}", path.display())))?;
    let io_err = |e: io::Error| QueryError::NoAnswer(e.to_string());
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    let mut w = &stream;
    w.write_all(format!("{}\n", json!({ "request": request })).as_bytes())
        .map_err(io_err)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(io_err)?;
    let v: Value = serde_json::from_str(line.trim())
        .map_err(|e| QueryError::NoAnswer(format!("bad answer: {e}")))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(QueryError::NoAnswer(e.to_string()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_and_query() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sock");
        let (tx, rx) = crossbeam_channel::unbounded::<ControlRequest>();
        let guard = serve(&path, tx.clone()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        thread::spawn(move || {
            for r in rx {
                let _ = r.reply.send(json!({"ok": r.request == Request::Status}));
            }
        });
        let v = query(&path, "status", Duration::from_secs(1)).unwrap();
        assert_eq!(v, json!({"ok": true}));
        assert!(matches!(
            query(&path, "dance", Duration::from_secs(1)),
            Err(QueryError::NoAnswer(_))
        ));
        // a second daemon refuses to start
        assert!(matches!(
            serve(&path, tx),
            Err(ServeError::AlreadyRunning(_))
        ));
        drop(guard);
        assert!(!path.exists());
        assert!(matches!(
            query(&path, "status", Duration::from_secs(1)),
            Err(QueryError::NotRunning(_))
        ));
    }
}
