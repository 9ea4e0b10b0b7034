//! A watch on the files of one directory that a filter picks (the worker's `*.py`, the twin
//! files): a change is reported once the last write has settled, within about a second. It
//! uses inotify; a file still open for writing (a `scp` in progress) holds the report back
//! until it is closed, and a file written elsewhere and renamed in (`rsync`, editors) counts
//! when it lands. Without inotify it polls once a second.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

/// The picked files of a directory, with mtime (ns) and size: what a change is measured by
/// (the original's worker-watcher signature, at nanosecond precision).
pub type Signature = Vec<(String, i128, u64)>;

/// Which file names a watch cares about.
pub type Filter = fn(&str) -> bool;

/// The worker's files: `*.py`, not hidden.
pub fn worker_file(name: &str) -> bool {
    name.ends_with(".py") && !name.starts_with('.')
}

/// Backstop scan even when inotify is quiet, on a network filesystem only (an NFS or SMB mount
/// changed by another machine raises no event here). A local directory's watch sleeps until
/// an event: a lost one is reported as a queue overflow, which rescans.
const BACKSTOP: Duration = Duration::from_secs(15);

/// Poll interval when inotify is unavailable.
const POLL: Duration = Duration::from_secs(1);

/// Whether `dir` is on a filesystem whose changes inotify may not see.
fn network_fs(dir: &Path) -> bool {
    const NFS: i64 = 0x6969;
    const SMB: i64 = 0x517B;
    const CIFS: i64 = 0xFF53_4D42;
    const SMB2: i64 = 0xFE53_4D42;
    const FUSE: i64 = 0x6573_5546;
    const NCP: i64 = 0x564C;
    const AFS: i64 = 0x5346_414F;
    const CEPH: i64 = 0x00C3_6400;
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statfs is a valid out-parameter; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    let kind = st.f_type as i64;
    [NFS, SMB, CIFS, SMB2, FUSE, NCP, AFS, CEPH].contains(&kind)
}

pub fn signature(dir: &Path, filter: Filter) -> Signature {
    let mut out: Signature = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            if !filter(&name) {
                return None;
            }
            let m = e.metadata().ok().filter(|m| m.is_file())?;
            Some((name, crate::fsutil::mtime_ns(&m), m.len()))
        })
        .collect();
    out.sort();
    out
}

/// The watch's report: the new signature (empty when no `*.py` is left).
#[derive(Debug, Clone, PartialEq)]
pub struct Changed(pub Signature);

struct Inotify {
    fd: libc::c_int,
}

impl Drop for Inotify {
    fn drop(&mut self) {
        unsafe { libc::close(self.fd) };
    }
}

impl Inotify {
    fn watch(dir: &Path) -> Option<Self> {
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return None;
        }
        let me = Inotify { fd };
        let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mask = libc::IN_CREATE
            | libc::IN_MODIFY
            | libc::IN_CLOSE_WRITE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_DELETE
            | libc::IN_ATTRIB
            | libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF;
        (unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) } >= 0).then_some(me)
    }

    /// Waits up to `timeout` (`None`: until something happens) for events; returns
    /// `(name, mask)` pairs, or `None` when the watch is gone (directory removed or moved).
    fn wait(&self, timeout: Option<Duration>) -> Option<Vec<(String, u32)>> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            return Some(Vec::new());
        }
        let mut buf = [0u8; 8192];
        let mut out = Vec::new();
        loop {
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            let head = std::mem::size_of::<libc::inotify_event>();
            while off + head <= n as usize {
                // SAFETY: the kernel wrote a whole event at `off`; read it unaligned.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let name_bytes = &buf[off + head..(off + head + ev.len as usize).min(n as usize)];
                let name = String::from_utf8_lossy(name_bytes)
                    .trim_end_matches('\0')
                    .to_string();
                if ev.mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED) != 0 {
                    return None;
                }
                out.push((name, ev.mask));
                off += head + ev.len as usize;
            }
        }
        Some(out)
    }
}

/// Which files are open for writing, from inotify events: a `*.py` being written is not
/// reported until it is closed (or gone).
#[derive(Debug, Default)]
pub struct Writers(BTreeSet<String>);

impl Writers {
    pub fn feed(&mut self, name: &str, mask: u32, filter: Filter) {
        if !filter(name) {
            return;
        }
        if mask & (libc::IN_CLOSE_WRITE | libc::IN_DELETE | libc::IN_MOVED_FROM) != 0 {
            self.0.remove(name);
        } else if mask & (libc::IN_CREATE | libc::IN_MODIFY) != 0 {
            self.0.insert(name.to_string());
        }
    }

    pub fn busy(&self) -> bool {
        !self.0.is_empty()
    }
}

/// Runs the watch on the calling thread until `tx` is closed. The first signature is the
/// baseline (not reported).
pub fn run(dir: PathBuf, settle: Duration, filter: Filter, tx: Sender<Changed>) {
    let mut last = signature(&dir, filter);
    let mut inotify: Option<Inotify> = None;
    let mut writers = Writers::default();
    let mut dirty_since: Option<Instant> = None;
    let backstop = network_fs(&dir).then_some(BACKSTOP);
    loop {
        if inotify.is_none() {
            inotify = Inotify::watch(&dir);
            if inotify.is_some() {
                // Anything may have changed while there was no watch.
                dirty_since = Some(Instant::now());
            }
        }
        let timeout = match (dirty_since, &inotify) {
            (Some(t), _) => Some(settle.saturating_sub(t.elapsed())),
            (None, Some(_)) => backstop,
            (None, None) => Some(POLL),
        };
        match &inotify {
            Some(i) => match i.wait(timeout) {
                Some(events) => {
                    for (name, mask) in &events {
                        writers.feed(name, *mask, filter);
                    }
                    let overflow = events.iter().any(|(_, m)| m & libc::IN_Q_OVERFLOW != 0);
                    if overflow || events.iter().any(|(n, _)| filter(n)) {
                        dirty_since = Some(Instant::now());
                    }
                }
                None => {
                    inotify = None;
                    dirty_since = Some(Instant::now());
                }
            },
            None => std::thread::sleep(timeout.unwrap_or(POLL)),
        }
        let quiet = dirty_since.is_none_or(|t| t.elapsed() >= settle);
        // A writer that stays open blocks the report; one left open for a minute (a crashed
        // copy) no longer does.
        let stuck = dirty_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(60));
        if quiet && (!writers.busy() || stuck) {
            dirty_since = None;
            let now = signature(&dir, filter);
            if now != last {
                last = now.clone();
                if tx.send(Changed(now)).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn an_open_writer_holds_the_report_until_it_closes() {
        let mut w = Writers::default();
        let f: Filter = worker_file;
        w.feed("wf_a.py", libc::IN_CREATE, f);
        w.feed("wf_a.py", libc::IN_MODIFY, f);
        w.feed(".wf_b.py.tmp", libc::IN_CREATE, f);
        assert!(w.busy());
        w.feed("wf_a.py", libc::IN_CLOSE_WRITE, f);
        assert!(!w.busy());
        w.feed("wf_c.py", libc::IN_MODIFY, f);
        w.feed("wf_c.py", libc::IN_DELETE, f);
        assert!(!w.busy());
    }

    #[test]
    fn reports_a_settled_change_and_not_a_half_written_file() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        std::fs::write(dir.join("keep.py"), "x = 1\n").unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let settle = Duration::from_millis(100);
        std::thread::spawn(move || run(dir, settle, worker_file, tx));
        std::thread::sleep(Duration::from_millis(200));
        // A copy that pauses mid-file: nothing is reported while it is open.
        let path = d.path().join("wf_ab.py");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"import cyberwave\n").unwrap();
        f.flush().unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(600)).is_err());
        f.write_all(b"print('done')\n").unwrap();
        let t = Instant::now();
        drop(f);
        let Changed(sig) = rx.recv_timeout(Duration::from_secs(3)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        let names: Vec<&str> = sig.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["keep.py", "wf_ab.py"]);
        assert_eq!(sig[1].2, 31);
        // Other files do not count; removing the last .py files reports an empty set.
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(400)).is_err());
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(d.path().join("keep.py")).unwrap();
        let Changed(sig) = rx.recv_timeout(Duration::from_secs(3)).unwrap();
        assert!(sig.is_empty());
    }
}
