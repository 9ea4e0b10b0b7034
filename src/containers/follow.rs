//! Log followers for managed containers, whatever their role: one thread and one engine log
//! stream per running container (for Docker an Engine-API connection, a `docker logs -f`
//! child where the socket is not reachable), lines handed to a role-supplied sink. No twin,
//! no MQTT here.
//!
//! * A follower is opened on its own thread, so a hung engine never holds the caller.
//! * The first attach asks for the last `tail` lines; a re-attach (the container restarted,
//!   the engine dropped the stream) asks for what came after the last line handed on and
//!   skips anything not newer, so each line reaches the sink once.
//! * Lines are at most [`MAX_LINE`](crate::engine::MAX_LINE) bytes; the sink is told how
//!   many were cut.
//! * What ends a follower is owned, never a stored pid: the socket is shut down, the child is
//!   killed and reaped by dropping it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::engine::{Engine, Lines, LogStart, StreamHandle, split_timestamp};

/// What a follower hands to its sink.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent<'a> {
    Line(&'a str),
    /// This many more lines were cut at `MAX_LINE` since the last report.
    Cut(u64),
}

/// Where a container's log lines go (the role decides: MQTT, the daemon's log, both).
pub type Sink = Box<dyn FnMut(LogEvent<'_>) + Send>;

/// A Docker log timestamp: seconds and nanoseconds since the epoch.
type Stamp = (u64, u32);

enum Stop {
    Opening,
    Open(StreamHandle),
    Stopped,
}

struct Follower {
    stop: Arc<Mutex<Stop>>,
    done: Arc<AtomicBool>,
}

impl Follower {
    fn end(&self) {
        if let Ok(mut s) = self.stop.lock()
            && let Stop::Open(handle) = std::mem::replace(&mut *s, Stop::Stopped)
        {
            handle.close();
        }
    }
}

/// Every log follower of this edge.
pub struct Followers {
    engine: Arc<dyn Engine>,
    tail: u64,
    live: BTreeMap<String, Follower>,
    /// Timestamp of the last line handed on, per container name.
    seen: Arc<Mutex<BTreeMap<String, Stamp>>>,
}

impl Followers {
    pub fn new(engine: Arc<dyn Engine>, tail: u64) -> Self {
        Followers {
            engine,
            tail,
            live: BTreeMap::new(),
            seen: Arc::default(),
        }
    }

    /// Drops followers whose stream has ended (so the container can be followed again).
    pub fn prune(&mut self) {
        self.live.retain(|_, f| !f.done.load(Ordering::Acquire));
    }

    pub fn is_following(&self, name: &str) -> bool {
        self.live
            .get(name)
            .is_some_and(|f| !f.done.load(Ordering::Acquire))
    }

    pub fn names(&self) -> Vec<String> {
        self.live.keys().cloned().collect()
    }

    /// Starts following `name` unless a follower is already live.
    pub fn follow(&mut self, name: &str, sink: Sink) {
        if self.is_following(name) {
            return;
        }
        let resume = self.seen.lock().ok().and_then(|m| m.get(name).copied());
        let from = match resume {
            Some((secs, nanos)) => LogStart::Since { secs, nanos },
            None => LogStart::Tail(self.tail),
        };
        let f = Follower {
            stop: Arc::new(Mutex::new(Stop::Opening)),
            done: Arc::new(AtomicBool::new(false)),
        };
        let job = Job {
            engine: self.engine.clone(),
            name: name.to_string(),
            from,
            resume,
            stop: f.stop.clone(),
            done: f.done.clone(),
            seen: self.seen.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("container-logs".into())
            .stack_size(128 * 1024)
            .spawn(move || job.run(sink));
        match spawned {
            Ok(_) => {
                self.live.insert(name.to_string(), f);
            }
            Err(e) => log::error!("cannot start a log follower for {name}: {e}"),
        }
    }

    pub fn stop(&mut self, name: &str) {
        if let Some(f) = self.live.remove(name) {
            f.end();
        }
    }

    pub fn stop_all(&mut self) {
        for (_, f) in std::mem::take(&mut self.live) {
            f.end();
        }
    }
}

struct Job {
    engine: Arc<dyn Engine>,
    name: String,
    from: LogStart,
    resume: Option<Stamp>,
    stop: Arc<Mutex<Stop>>,
    done: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<String, Stamp>>>,
}

impl Job {
    /// Records how to end this follower; false (and the handle dropped) when it was stopped
    /// while opening.
    fn install(&self, handle: StreamHandle) -> bool {
        match self.stop.lock() {
            Ok(mut s) if !matches!(*s, Stop::Stopped) => {
                *s = Stop::Open(handle);
                true
            }
            _ => {
                handle.close();
                false
            }
        }
    }

    fn open(&self) -> Option<Box<dyn Lines>> {
        match self.engine.follow_logs(&self.name, self.from) {
            Ok(stream) => self.install(stream.handle).then_some(stream.lines),
            Err(e) => {
                log::warn!("cannot follow logs of {}: {e}", self.name);
                None
            }
        }
    }

    fn run(self, mut sink: Sink) {
        if let Some(mut stream) = self.open() {
            let mut reported_cut = 0;
            let mut lines = 0u64;
            loop {
                let line = match stream.next_line() {
                    Ok(Some(line)) => line,
                    Ok(None) => break,
                    Err(e) => {
                        // Before any line: the engine refused the stream (a 404, say).
                        let stopped = self.stop.lock().is_ok_and(|s| matches!(*s, Stop::Stopped));
                        if lines == 0 && !stopped {
                            log::warn!("cannot follow logs of {}: {e}", self.name);
                        }
                        break;
                    }
                };
                lines += 1;
                let (stamp, text) = split_timestamp(&line);
                if let Some(ts) = stamp {
                    if self.resume.is_some_and(|r| ts <= r) {
                        continue; // handed on before the re-attach
                    }
                    if let Ok(mut m) = self.seen.lock() {
                        m.insert(self.name.clone(), ts);
                    }
                }
                sink(LogEvent::Line(text));
                let cut = stream.cut();
                if cut > reported_cut {
                    sink(LogEvent::Cut(cut - reported_cut));
                    reported_cut = cut;
                }
            }
        }
        if let Ok(mut s) = self.stop.lock()
            && !matches!(*s, Stop::Stopped)
        {
            *s = Stop::Stopped;
        }
        self.done.store(true, Ordering::Release);
    }
}
