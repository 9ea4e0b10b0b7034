//! A slow link between the engine and the test registry: a TCP proxy of the tests' own that
//! passes requests as they are and sends answers at a set rate (one budget for every
//! connection, as one cellular link would), and that can break: while `broken`, open
//! transfers are cut and blob requests get 404, so the engine's pull fails at once instead
//! of retrying for a minute.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Link {
    /// Bytes per second towards the engine.
    pub rate: AtomicU64,
    pub broken: AtomicBool,
    /// Bytes sent to the engine so far.
    pub sent: AtomicU64,
    /// When the budget was last refilled, and what is left of it.
    budget: Mutex<(Option<Instant>, f64)>,
    open: Mutex<Vec<TcpStream>>,
}

impl Link {
    /// Waits until `n` bytes may go.
    fn spend(&self, n: usize) {
        loop {
            let rate = self.rate.load(Ordering::SeqCst) as f64;
            let wait = {
                let mut b = self.budget.lock().unwrap();
                let now = Instant::now();
                let last = b.0.unwrap_or(now);
                b.1 = (b.1 + now.duration_since(last).as_secs_f64() * rate).min(rate / 4.0);
                b.0 = Some(now);
                if b.1 >= n as f64 || rate == 0.0 {
                    b.1 -= n as f64;
                    return;
                }
                (n as f64 - b.1) / rate
            };
            std::thread::sleep(Duration::from_secs_f64(wait.min(0.25)));
        }
    }

    /// Cuts every open transfer and fails blob requests until [`Link::mend`].
    pub fn break_now(&self) {
        self.broken.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn mend(&self) {
        self.broken.store(false, Ordering::SeqCst);
    }
}

pub struct Throttle {
    pub port: u16,
    pub link: Arc<Link>,
}

impl Throttle {
    /// A proxy to the registry on `upstream`, `rate` bytes per second.
    pub fn start(upstream: u16, rate: u64) -> Throttle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let link = Arc::new(Link::default());
        link.rate.store(rate, Ordering::SeqCst);
        let l = link.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let l = l.clone();
                std::thread::spawn(move || {
                    let _ = relay(conn, upstream, &l);
                });
            }
        });
        Throttle { port, link }
    }
}

/// One connection: requests go up as they come; the answers come down at the link's rate.
fn relay(client: TcpStream, upstream: u16, link: &Link) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    if link.broken.load(Ordering::SeqCst) && first.contains("/blobs/") {
        let mut out = client;
        return write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let up = TcpStream::connect(("127.0.0.1", upstream))?;
    link.open.lock().unwrap().push(client.try_clone()?);
    link.open.lock().unwrap().push(up.try_clone()?);
    let mut up_w = up.try_clone()?;
    up_w.write_all(first.as_bytes())?;
    // Upwards: whatever else the client sends (the rest of this request, later requests).
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if up_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let (mut up_r, mut out) = (up, client);
    let mut buf = [0u8; 32 * 1024];
    loop {
        let n = up_r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        link.spend(n);
        if link.broken.load(Ordering::SeqCst) {
            break;
        }
        out.write_all(&buf[..n])?;
        link.sent.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}
