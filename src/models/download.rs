//! Model weight downloads: streamed to `.dl_<key>.part` beside the target (the only pattern the
//! SDK prunes), hashed while they stream (one pass), resumed with an HTTP `Range` request after
//! an interruption (the part's name comes from the URL, so this also works across a daemon
//! restart), refused before the first byte when the disk cannot hold them, and renamed into
//! place only when the checksum matches. Up to `attempts` tries with 2 s, 4 s … backoff; 401,
//! 403 and 404 are not retried.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Room left free on the disk beyond the download itself.
const DISK_MARGIN: u64 = 16 << 20;

/// The disk reserve model downloads keep (`CYBERWAVE_DISK_RESERVE_MB`, set once at start by the
/// daemon; at least [`DISK_MARGIN`]).
static DISK_RESERVE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(DISK_MARGIN);

/// Sets the free space a download must leave on the models' filesystem.
pub fn set_disk_reserve(bytes: u64) {
    DISK_RESERVE.store(bytes.max(DISK_MARGIN), std::sync::atomic::Ordering::Relaxed);
}

fn disk_reserve() -> u64 {
    DISK_RESERVE.load(std::sync::atomic::Ordering::Relaxed)
}
const CHUNK: usize = 1 << 20;

/// One download.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub url: &'a str,
    /// The model's directory; the file lands at `dir/filename`.
    pub dir: &'a Path,
    pub filename: &'a str,
    /// Lowercase hex SHA-256 the file must have, when the catalog knows it.
    pub sha256: Option<&'a str>,
    /// Bound on receiving one response body.
    pub timeout: Duration,
    pub attempts: u32,
    /// `Authorization` header (only for URLs on the backend itself).
    pub bearer: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DownloadError {
    /// The disk cannot hold it (bytes needed, bytes available).
    NoSpace { need: u64, available: u64 },
    /// The file's SHA-256 is not the one the backend promised.
    Checksum { want: String, got: String },
    /// The download answered with this HTTP status.
    Http { status: u16 },
    /// Anything else (connection, file system), said as is.
    Failed(String),
}

impl std::fmt::Display for DownloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownloadError::NoSpace { need, available } => write!(
                f,
                "not enough disk space: {need} bytes needed, {available} available"
            ),
            DownloadError::Checksum { want, got } => {
                write!(f, "checksum mismatch: expected {want}, got {got}")
            }
            DownloadError::Http { status } => write!(f, "HTTP {status}"),
            DownloadError::Failed(e) => f.write_str(e),
        }
    }
}

/// A finished download: where it is, its SHA-256 and size.
#[derive(Debug, Clone, PartialEq)]
pub struct Downloaded {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// The partial file of `url` in `dir`.
pub fn part_path(dir: &Path, url: &str) -> PathBuf {
    dir.join(format!(
        ".dl_{}.part",
        &crate::sha256_hex(url.as_bytes())[..16]
    ))
}

/// Buffers in flight between the socket reader and the writer-hasher.
const BUFFERS: usize = 4;
const BUFFER: usize = 128 << 10;

/// Streams `body` into `hasher` and `file` on three threads (this one reads the socket, one
/// hashes, one writes), so the transfer runs at the speed of the slowest step instead of the
/// sum of all three. Memory stays at [`BUFFERS`] × [`BUFFER`]. On a read
/// error what arrived is kept (the next attempt resumes from there).
fn pipeline(
    mut body: impl Read,
    mut file: File,
    mut hasher: ring::digest::Context,
    start: u64,
    dir: &Path,
) -> Result<(u64, File, ring::digest::Context), DownloadError> {
    let (full_tx, full_rx) = crossbeam_channel::bounded::<(Vec<u8>, usize)>(BUFFERS);
    let (hashed_tx, hashed_rx) = crossbeam_channel::bounded::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = empty_tx.send(vec![0u8; BUFFER]);
    }
    std::thread::scope(|s| {
        // Hashing and writing each take a core's worth at full speed: one thread each.
        let hash = s.spawn(move || {
            for (buf, n) in full_rx {
                hasher.update(&buf[..n]);
                if hashed_tx.send((buf, n)).is_err() {
                    break;
                }
            }
            hasher
        });
        let sink = s.spawn(move || -> io::Result<File> {
            for (buf, n) in hashed_rx {
                file.write_all(&buf[..n])?;
                if empty_tx.send(buf).is_err() {
                    break;
                }
            }
            Ok(file)
        });
        let mut size = start;
        let mut failure = None;
        let mut no_space = None;
        'read: while let Ok(mut buf) = empty_rx.recv() {
            let mut n = 0;
            while n < buf.len() {
                match body.read(&mut buf[n..]) {
                    Ok(0) => {
                        if n > 0 {
                            size += n as u64;
                            let _ = full_tx.send((buf, n));
                        }
                        break 'read;
                    }
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if n > 0 {
                            size += n as u64;
                            let _ = full_tx.send((buf, n));
                        }
                        failure = Some(format!("interrupted after {size} bytes: {e}"));
                        break 'read;
                    }
                }
            }
            size += n as u64;
            if full_tx.send((buf, n)).is_err() {
                break;
            }
            // A body without a length (or a lying one) must not fill the disk: look every
            // 64 MiB and stop while there is still room.
            if size % (64 << 20) < BUFFER as u64
                && let Some(available) = crate::fsutil::available_bytes(dir)
                && available < disk_reserve()
            {
                no_space = Some(available);
                break;
            }
        }
        drop(full_tx);
        let hasher = hash
            .join()
            .map_err(|_| DownloadError::Failed("the hashing thread panicked".into()))?;
        let mut file = sink
            .join()
            .map_err(|_| DownloadError::Failed("the writer thread panicked".into()))?
            .map_err(|e| DownloadError::Failed(e.to_string()))?;
        if let Some(available) = no_space {
            drop(file);
            return Err(DownloadError::NoSpace {
                need: disk_reserve(),
                available,
            });
        }
        if let Some(f) = failure {
            let _ = file.flush();
            return Err(DownloadError::Failed(f));
        }
        Ok((size, file, hasher))
    })
}

/// Downloads `req.url` to `req.dir/req.filename`.
pub fn fetch(req: &Request) -> Result<Downloaded, DownloadError> {
    if req.filename.is_empty() || req.filename.contains('/') || req.filename.starts_with('.') {
        return Err(DownloadError::Failed(format!(
            "refusing the file name {:?}",
            req.filename
        )));
    }
    std::fs::create_dir_all(req.dir).map_err(|e| DownloadError::Failed(e.to_string()))?;
    let part = part_path(req.dir, req.url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(req.timeout))
        .http_status_as_error(false)
        .user_agent(format!("cyberwave-edge-core/{}", crate::VERSION))
        .build()
        .into();
    let mut backoff = crate::backoff::Backoff::new(Duration::from_secs(2), Duration::from_secs(8));
    let mut last = DownloadError::Failed("no attempt made".into());
    for attempt in 1..=req.attempts.max(1) {
        match attempt_once(&agent, req, &part) {
            Ok(d) => return Ok(d),
            Err(e @ DownloadError::NoSpace { .. }) => {
                // Give the room back: a full SD card stops more than this download.
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
            Err(e @ DownloadError::Checksum { .. }) => return Err(e),
            Err(
                e @ DownloadError::Http {
                    status: 401 | 403 | 404,
                },
            ) => return Err(e),
            Err(e) => {
                log::warn!("download of {} (attempt {attempt}): {e}", req.filename);
                last = e;
            }
        }
        if attempt < req.attempts {
            std::thread::sleep(backoff.next_delay());
        }
    }
    Err(last)
}

fn attempt_once(
    agent: &ureq::Agent,
    req: &Request,
    part: &Path,
) -> Result<Downloaded, DownloadError> {
    let io_err = |e: io::Error| DownloadError::Failed(e.to_string());
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut get = agent.get(req.url);
    if let Some(b) = req.bearer {
        get = get.header("Authorization", b);
    }
    if have > 0 {
        get = get.header("Range", &format!("bytes={have}-"));
    }
    let resp = get
        .call()
        .map_err(|e| DownloadError::Failed(e.to_string()))?;
    let status = resp.status().as_u16();
    let resume = match status {
        206 if have > 0 => true,
        200 => false,
        416 => {
            // Our partial file does not fit the server's: start over next time.
            let _ = std::fs::remove_file(part);
            return Err(DownloadError::Http { status });
        }
        s => return Err(DownloadError::Http { status: s }),
    };
    let remaining = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let (Some(need), Some(available)) = (remaining, crate::fsutil::available_bytes(req.dir))
        && need.saturating_add(disk_reserve()) > available
    {
        return Err(DownloadError::NoSpace { need, available });
    }
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let file = if resume {
        // Hash what we already have, then append.
        let mut f = File::open(part).map_err(io_err)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = f.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        OpenOptions::new().append(true).open(part).map_err(io_err)?
    } else {
        File::create(part).map_err(io_err)?
    };
    let size0 = if resume { have } else { 0 };
    let body = resp.into_body().into_reader();
    let (size, file, hasher) = pipeline(body, file, hasher, size0, req.dir)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    let got = crate::hex(hasher.finish().as_ref());
    if let Some(want) = req.sha256
        && !want.eq_ignore_ascii_case(&got)
    {
        let _ = std::fs::remove_file(part);
        return Err(DownloadError::Checksum {
            want: want.to_ascii_lowercase(),
            got,
        });
    }
    let path = req.dir.join(req.filename);
    std::fs::rename(part, &path).map_err(io_err)?;
    crate::fsutil::give_to_owner(&path);
    Ok(Downloaded {
        path,
        sha256: got,
        size,
    })
}

#[cfg(test)]
mod tests;
