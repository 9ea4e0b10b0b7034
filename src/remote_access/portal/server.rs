//! The portal's HTTP/1.1 server on std sockets: one accept thread, at most [`MAX_CLIENTS`]
//! connection threads, each bounded (a request of at most 8 KiB read within 5 s, one response,
//! then closed). Only `GET` and `HEAD`; answers come from the snapshot, never from the engine
//! or the disk. Link hosts are the address the client reached, never its `Host` header.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Snapshot;
use super::page;

/// Connections served at once; more are closed at accept.
pub const MAX_CLIENTS: usize = 16;
const MAX_REQUEST: usize = 8 << 10;
const READ_WITHIN: Duration = Duration::from_secs(5);

/// Binds `bind` and starts the accept thread; returns the bound address.
pub(super) fn serve(
    bind: SocketAddr,
    advertised: Option<String>,
    shared: Arc<Mutex<Snapshot>>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("local-portal".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if active.load(Ordering::SeqCst) >= MAX_CLIENTS {
                    drop(conn); // too many at once: this one is closed, nothing waits
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (shared, advertised, active2) =
                    (shared.clone(), advertised.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("portal-client".into())
                    .spawn(move || {
                        answer(conn, advertised.as_deref(), &shared);
                        active2.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
    Ok(addr)
}

/// The request line's method and path, once the head (up to a blank line) is in; `None` when
/// the client sent too much, too slowly, or nothing.
fn read_head(conn: &mut TcpStream) -> Option<(String, String)> {
    let deadline = Instant::now() + READ_WITHIN;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.checked_duration_since(Instant::now())?;
        conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next()?.split_whitespace();
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
}

/// Where links point: the advertised host, else the local address this client reached.
fn link_host(conn: &TcpStream, advertised: Option<&str>) -> String {
    if let Some(h) = advertised {
        return h.to_string();
    }
    match conn.local_addr().map(|a| a.ip()) {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{v6}]"),
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => "localhost".into(),
    }
}

fn answer(mut conn: TcpStream, advertised: Option<&str>, shared: &Mutex<Snapshot>) {
    let _ = conn.set_write_timeout(Some(READ_WITHIN));
    let Some((method, target)) = read_head(&mut conn) else {
        return;
    };
    let route = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match method.as_str() {
        "GET" | "HEAD" => respond(route, &link_host(&conn, advertised), shared),
        _ => (
            405,
            "application/json",
            json!({"error": "method not allowed"}).to_string(),
        ),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n\
         Referrer-Policy: no-referrer\r\nContent-Security-Policy: default-src 'none'; \
         style-src 'unsafe-inline'; frame-ancestors 'none'\r\nAllow: GET, HEAD\r\n\
         Server: cyberwave-edge-portal\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = conn.write_all(body.as_bytes());
    }
    let _ = conn.flush();
}

fn respond(route: &str, host: &str, shared: &Mutex<Snapshot>) -> (u16, &'static str, String) {
    let Ok(snap) = shared.lock() else {
        return (404, "application/json", "{}".into());
    };
    let doc = || page::document(&snap.drivers, host, &snap.generated_at);
    match route {
        "/" | "/index.html" => (200, "text/html; charset=utf-8", page::html(&doc())),
        "/portal.json" => (
            200,
            "application/json",
            serde_json::to_string_pretty(&doc()).unwrap_or_default(),
        ),
        "/healthz" => {
            let age = snap
                .refreshed
                .map(|t| (t.elapsed().as_secs_f64() * 10.0).round() / 10.0);
            let body = json!({"status": "ok", "drivers": snap.drivers.len(), "refreshed_seconds_ago": age});
            (200, "application/json", body.to_string())
        }
        _ => (
            404,
            "application/json",
            json!({"error": "not found"}).to_string(),
        ),
    }
}
