//! The hardware watchdog (`/dev/watchdog`): armed after start-up with a 60 s timeout, fed `1`
//! on every supervisor tick, disarmed with the magic close `V` on a clean exit — so a wedged
//! daemon (or kernel) reboots the board, and a clean stop does not. As the original; off with
//! `CYBERWAVE_HARDWARE_WATCHDOG=0|false|no|off|disabled`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The device; `CYBERWAVE_HARDWARE_WATCHDOG_DEVICE` points elsewhere (tests, unusual boards).
pub const DEVICE: &str = "/dev/watchdog";
/// Seconds without a feed before the board resets.
const TIMEOUT_S: libc::c_int = 60;
/// `WDIOC_SETTIMEOUT` = `_IOWR('W', 6, int)`.
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xC004_5706;

/// Whether `CYBERWAVE_HARDWARE_WATCHDOG` leaves the watchdog on (the default).
pub fn enabled(setting: Option<&str>) -> bool {
    !setting.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "no" | "off" | "disabled"
        )
    })
}

static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process holds an armed hardware watchdog (`watchdog_layers` says "hardware").
pub fn armed() -> bool {
    ARMED.load(std::sync::atomic::Ordering::Relaxed)
}

/// An armed hardware watchdog.
pub struct Hardware {
    device: File,
}

impl Hardware {
    /// Arms the watchdog unless `CYBERWAVE_HARDWARE_WATCHDOG` (`setting`) turns it off; at
    /// `device`, else [`DEVICE`].
    pub fn from_settings(setting: Option<&str>, device: Option<&str>) -> Option<Hardware> {
        if !enabled(setting) {
            return None;
        }
        Hardware::open(Path::new(device.unwrap_or(DEVICE)))
    }

    /// Arms the watchdog at `path` when it exists; `None` (logged) when it cannot. Opened
    /// non-blocking, so a FIFO in its place cannot hang the daemon.
    pub fn open(path: &Path) -> Option<Hardware> {
        if !path.exists() {
            return None;
        }
        let device = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => f,
            Err(e) => {
                log::warn!("hardware watchdog {} not armed: {e}", path.display());
                return None;
            }
        };
        let mut timeout = TIMEOUT_S;
        // SAFETY: the fd is open; the ioctl reads and writes one int. A non-watchdog file
        // answers ENOTTY, which leaves the driver's default timeout.
        let _ = unsafe {
            libc::ioctl(
                std::os::unix::io::AsRawFd::as_raw_fd(&device),
                WDIOC_SETTIMEOUT as _,
                &mut timeout,
            )
        };
        let mut w = Hardware { device };
        w.feed();
        ARMED.store(true, std::sync::atomic::Ordering::Relaxed);
        log::info!("hardware watchdog {} armed ({TIMEOUT_S} s)", path.display());
        Some(w)
    }

    /// One feed (every supervisor tick).
    pub fn feed(&mut self) {
        if let Err(e) = self.device.write_all(b"1") {
            log::warn!("hardware watchdog feed failed: {e}");
        }
    }
}

/// Every orderly exit — a clean stop or an error return — disarms; only a process that dies
/// without unwinding (SIGKILL, an abort) leaves it armed, and the board resets.
impl Drop for Hardware {
    fn drop(&mut self) {
        if let Err(e) = self.device.write_all(b"V") {
            log::warn!("hardware watchdog magic close failed: {e}");
        }
        ARMED.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_and_a_fake_device() {
        for (v, want) in [
            (None, true),
            (Some("1"), true),
            (Some("true"), true),
            (Some("0"), false),
            (Some(" False "), false),
            (Some("disabled"), false),
            (Some("off"), false),
        ] {
            assert_eq!(enabled(v), want, "{v:?}");
        }
        let d = tempfile::tempdir().unwrap();
        assert!(Hardware::open(&d.path().join("none")).is_none());
        let dev = d.path().join("watchdog");
        std::fs::write(&dev, b"").unwrap();
        let mut w = Hardware::open(&dev).unwrap();
        w.feed();
        drop(w); // the magic close
        assert_eq!(std::fs::read(&dev).unwrap(), b"11V");
        // a FIFO without a reader: refused at once, not a hang
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(Hardware::open(&fifo).is_none());
    }
}
