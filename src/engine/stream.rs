//! The engine's long-lived streams (a container's log, the events of our containers): lines
//! from any source, and an owned handle that ends the stream from another thread.

use std::io;
use std::os::unix::net::UnixStream;

use super::ContainerEvent;
use crate::process::OwnedChild;

/// Longest line handed on; a longer one is cut into pieces of this size (a process printing
/// without newlines must not grow the daemon without bound).
pub const MAX_LINE: usize = 64 * 1024;

/// A source of lines, each at most [`MAX_LINE`] bytes (longer ones come in pieces).
pub trait Lines: Send {
    /// The next line (without its newline), or `None` at the end of the stream.
    fn next_line(&mut self) -> io::Result<Option<String>>;
    /// How many lines were cut at [`MAX_LINE`] so far.
    fn cut(&self) -> u64;
}

/// What ends a stream from another thread: a socket to shut down, or a child process that is
/// killed and reaped when this is dropped (never a stored pid).
pub enum StreamHandle {
    Socket(UnixStream),
    Process(OwnedChild),
}

impl StreamHandle {
    /// Ends the stream: the reader sees its end.
    pub fn close(self) {
        if let StreamHandle::Socket(sock) = &self {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
        // A Process is killed and reaped as it drops here.
    }
}

/// A followed log: its lines and what ends it.
pub struct LineStream {
    pub lines: Box<dyn Lines>,
    pub handle: StreamHandle,
}

/// The events of our containers: lines in the engine's shape, read as [`ContainerEvent`]s.
pub struct EventStream {
    pub lines: Box<dyn Lines>,
    pub handle: StreamHandle,
    /// The engine's reading of one line; `None` for lines that are not a container event.
    pub parse: fn(&str) -> Option<ContainerEvent>,
}

/// Where a log follow starts: the last `tail` lines (first attach; 0: all), or after a time (a
/// re-attach, so lines already handed on are not replayed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogStart {
    Tail(u64),
    Since { secs: u64, nanos: u32 },
}

/// Splits a log line's RFC 3339 timestamp prefix off: `(seconds, nanos)` and the text.
pub fn split_timestamp(line: &str) -> (Option<(u64, u32)>, &str) {
    let Some((ts, rest)) = line.split_once(' ') else {
        return (None, line);
    };
    match humantime::parse_rfc3339(ts) {
        Ok(t) => {
            let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (Some((d.as_secs(), d.subsec_nanos())), rest)
        }
        Err(_) => (None, line),
    }
}
