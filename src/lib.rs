//! Cyberwave edge: the library behind `cyberwave-edge-core` (and, later, `cyberwave-cloud-node`).
//!
//! The binaries are thin: they parse arguments and map the library's typed errors to exit codes.
//! Layout follows the domain: `config` (files and settings), `backend` (REST), `mqtt` (broker
//! link), `health` (host figures and `edge_health`), `edge` (the daemon: boot, supervisor),
//! `control` (local socket API and `status`), `systemd` (notify protocol).

pub mod alerts;
pub mod backend;
pub mod backoff;
pub mod bus;
pub mod cli;
pub mod cloud_node;
pub mod config;
pub mod containers;
pub mod control;
pub mod docker;
pub mod drivers;
pub mod edge;
pub mod engine;
pub mod fsutil;
pub mod health;
pub mod host;
pub mod logging;
pub mod models;
pub mod mqtt;
pub mod podman;
pub mod process;
pub mod remote_access;
pub mod systemd;
pub mod twins;
pub mod twinsync;
pub mod watch;
pub mod watchdog;
pub mod worker;
pub mod yaml;

/// This program's version, as printed by `--version` and sent in the User-Agent.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Seconds since the Unix epoch as a float, the timestamp form of every Cyberwave payload.
pub fn epoch_seconds() -> f64 {
    epoch_of(std::time::SystemTime::now())
}

/// The monotonic moment of an epoch timestamp taken on this host (records such as a
/// container's `since` are stored as epoch seconds); `now` for one in the future, `None` when
/// it lies before the monotonic clock's origin.
pub fn instant_of_epoch(epoch: f64) -> Option<std::time::Instant> {
    let ago = (epoch_seconds() - epoch).max(0.0);
    std::time::Instant::now().checked_sub(std::time::Duration::try_from_secs_f64(ago).ok()?)
}

/// [`epoch_seconds`] of any moment (0 before 1970, which a sane clock never reports).
pub fn epoch_of(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Fills `buf` with OS randomness; falls back to a time/pid mix if the kernel refuses,
/// because a client id or a jitter value must never stop the daemon.
pub fn random_bytes(buf: &mut [u8]) {
    if getrandom::getrandom(buf).is_err() {
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        for b in buf.iter_mut() {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

/// Lowercase hex of bytes (sha2 0.11 digests have no `LowerHex`).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Hex SHA-256 of a string.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// A duration as people read it in `status`: `42s`, `3m 5s`, `2h 0m 7s`, `4d 1h 30m`.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, s) = (s / 86400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if days > 0 {
        format!("{days}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// Untrusted text cut to at most `max` characters for logs, `status` and alerts (a hostile
/// 30 MB command name must not become a 30 MB log line); a cut says how long the text was.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…({} bytes)", &text[..at], text.len()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn epoch_timestamps_become_instants() {
        let now = std::time::Instant::now();
        let ten_ago = super::instant_of_epoch(super::epoch_seconds() - 10.0).unwrap();
        let age = now.saturating_duration_since(ten_ago).as_secs_f64();
        assert!((9.5..10.5).contains(&age), "{age}");
        // The future is now; absurd values are no panic.
        assert!(super::instant_of_epoch(super::epoch_seconds() + 100.0).is_some());
        assert_eq!(super::instant_of_epoch(f64::NEG_INFINITY), None);
        let _ = super::instant_of_epoch(f64::NAN);
    }

    #[test]
    fn human_durations() {
        use std::time::Duration;
        let rows = [
            (0, "0s"),
            (59, "59s"),
            (61, "1m 1s"),
            (3725, "1h 2m 5s"),
            (90061, "1d 1h 1m"),
        ];
        for (s, want) in rows {
            assert_eq!(super::human_duration(Duration::from_secs(s)), want);
        }
    }
}
