//! The systemd notify protocol (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=`): one
//! datagram to `$NOTIFY_SOCKET`. Silent no-op when the variable is unset (not under systemd).

use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notifier {
    target: Option<SocketAddr>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` once; `@name` is a Linux abstract socket.
    pub fn from_env() -> Self {
        Self::for_path(std::env::var("NOTIFY_SOCKET").ok().as_deref())
    }

    pub fn for_path(path: Option<&str>) -> Self {
        let target = path.filter(|p| !p.is_empty()).and_then(|p| {
            if let Some(name) = p.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes()).ok()
            } else {
                SocketAddr::from_pathname(p).ok()
            }
        });
        Notifier { target }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one state string; errors are logged at debug, never fatal.
    pub fn notify(&self, state: &str) {
        let Some(addr) = &self.target else { return };
        let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), addr));
        if let Err(e) = sent {
            log::debug!("sd_notify {state:?} failed: {e}");
        }
    }

    pub fn ready(&self) {
        self.notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    }
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }
    pub fn status(&self, text: &str) {
        self.notify(&format!("STATUS={text}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::for_path(path.to_str());
        assert!(n.enabled());
        n.ready();
        n.watchdog();
        let mut buf = [0u8; 128];
        let len = server.recv(&mut buf).unwrap();
        assert!(
            std::str::from_utf8(&buf[..len])
                .unwrap()
                .starts_with("READY=1\nMAINPID=")
        );
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        assert!(!Notifier::for_path(None).enabled());
        Notifier::for_path(None).ready(); // no-op, no panic
    }
}
