//! Remote access on the real engine: the stand-in frpc image (tests/support/frpc-standin.sh),
//! and a relay stand-in, a TCP listener that holds frpc's connection until told to drop it.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub const STANDIN: &str = "cyberwave-frpc-standin:local";
pub const CONTAINER: &str = "cyberwave-remote-access";

pub fn ensure_standin() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/frpc-standin.sh");
        let out = Command::new(script)
            .arg(STANDIN)
            .output()
            .expect("run frpc-standin.sh");
        assert!(
            out.status.success(),
            "stand-in build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Where frpc dials: accepts and holds connections until [`Relay::drop_all`].
pub struct Relay {
    pub port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn start() -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, a, s) = (held.clone(), accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        h.lock().unwrap().push(c);
                        *a.lock().unwrap() += 1;
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        Relay {
            port,
            held,
            accepted,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }

    /// Closes every held connection: frpc sees its relay go away.
    pub fn drop_all(&self) {
        self.held.lock().unwrap().clear();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
