//! The local portal (reference §12) on the real daemon: two running drivers declaring
//! `local_http` pages are listed in `/portal.json` and in the page a real headless browser
//! (Debian's chromium) renders; only GET/HEAD; 200 silent clients slow neither `status` nor,
//! once they time out, the portal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::docker::{self as dk, Cleanup, IMAGE};
use crate::support::drivers::{container, driver_state};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One raw HTTP exchange: (status code, body).
fn http(port: u16, request: &str) -> (u16, String) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(10 * SEC)).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn get(port: u16, path: &str) -> (u16, String) {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
    )
}

fn twin(uuid: &str, name: &str, asset: &str) -> Value {
    json!({"uuid": uuid, "name": name, "asset_uuid": asset, "environment_uuid": ENV_UUID,
           "metadata": {"edge_fingerprint": FINGERPRINT}})
}

fn asset(uuid: &str, registry: &str, pages: Value) -> Value {
    json!({"uuid": uuid, "registry_id": registry, "metadata": {"drivers": {"default": {
        "docker_image": IMAGE, "privileged": false, "local_http": pages}}}})
}

fn status_time(dir: &EdgeDir) -> Duration {
    let t = Instant::now();
    let out = dir.command(&["status", "--json"]).output().unwrap();
    assert!(out.status.success() || out.status.code() == Some(1));
    t.elapsed()
}

#[test]
fn two_drivers_pages_are_listed_and_rendered_and_idle_clients_hold_nothing() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    let (a, b) = (dk::twin_uuid("portal_a"), dk::twin_uuid("portal_b"));
    let _c = Cleanup(vec![container(&a), container(&b)]);
    dk::rm(&container(&a));
    dk::rm(&container(&b));
    let backend = FakeBackend::start(TOKEN);
    let (aa, ab) = (format!("a55e7{}", &a[5..]), format!("a55e7{}", &b[5..]));
    backend.add_environment(
        ENV_UUID,
        vec![twin(&a, "Survey drone", &aa), twin(&b, "<b>Arm</b>", &ab)],
    );
    backend.add_asset(asset(&aa, "acme/drone", json!([
        {"name": "plans", "port": 8765, "path": "/", "description": "Flight plans for the ground station"}])));
    backend.add_asset(asset(
        &ab,
        "acme/arm",
        json!([
        {"name": "preview", "port": 8081, "path": "/cam"},
        {"name": "debug", "port": 9000, "audience": "host"},
        {"name": "bad", "port": 9001, "path": "/x?token=leak"}]),
    ));
    let broker = broker_for_token();
    let port = free_port();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_EDGE_LOCAL_PORTAL", "on");
    dir.set_env(
        "CYBERWAVE_EDGE_LOCAL_PORTAL_BIND",
        &format!("127.0.0.1:{port}"),
    );
    dir.set_env("CYBERWAVE_EDGE_LOCAL_PORTAL_REFRESH_SECONDS", "1");
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    let (_, st) = dir.wait_status(60 * SEC, |_, v| {
        driver_state(v, &container(&a)).as_deref() == Some("running")
            && driver_state(v, &container(&b)).as_deref() == Some("running")
    });
    assert_eq!(
        driver_state(&st, &container(&b)).as_deref(),
        Some("running"),
        "{st}\n{}",
        d.log()
    );

    // /portal.json: both drivers, LAN pages only, links to the address the client reached.
    let mut doc = Value::Null;
    assert!(
        wait_until(10 * SEC, || {
            doc = serde_json::from_str(&get(port, "/portal.json").1).unwrap_or(Value::Null);
            doc["drivers"].as_array().is_some_and(|d| d.len() == 2)
        }),
        "{doc}\n{}",
        d.log()
    );
    assert_eq!(doc["schema"], json!("cyberwave.edge.local_portal.v1"));
    assert_eq!(doc["host"], json!("127.0.0.1"), "never the Host header");
    let arm = &doc["drivers"][0];
    assert_eq!(arm["twin_name"], json!("<b>Arm</b>"));
    assert_eq!(arm["registry_id"], json!("acme/arm"));
    assert_eq!(
        arm["pages"],
        json!([{"name": "preview", "port": 8081, "path": "/cam", "health": "running",
        "url": "http://127.0.0.1:8081/cam"}])
    );
    let drone = &doc["drivers"][1];
    assert_eq!(drone["pages"][0]["url"], json!("http://127.0.0.1:8765/"));
    assert_eq!(
        drone["pages"][0]["description"],
        json!("Flight plans for the ground station")
    );
    assert!(!doc.to_string().contains(TOKEN) && !doc.to_string().contains("leak"));

    // The page as a real browser renders it.
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("chromium (Debian package chromium)");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<h1>Edge local pages</h1>"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains(r#"<a href="http://127.0.0.1:8765/" rel="noreferrer">plans</a>"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<a href="http://127.0.0.1:8081/cam" rel="noreferrer">preview</a>"#),
        "{dom}"
    );
    assert!(
        dom.contains("<h2>&lt;b&gt;Arm&lt;/b&gt;</h2>"),
        "a twin name is text, not markup: {dom}"
    );

    let (_, st) = dir.status();
    assert_eq!(
        st["local_portal"]["address"],
        json!(format!("127.0.0.1:{port}")),
        "{st}"
    );
    let (code, body) = get(port, "/healthz");
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["drivers"],
        json!(2)
    );
    assert_eq!(get(port, "/nope").0, 404);
    assert_eq!(
        http(port, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0,
        405
    );
    assert_eq!(http(port, "DELETE /portal.json HTTP/1.1\r\n\r\n").0, 405);
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(64 << 10));
    assert_eq!(
        http(port, &huge).0,
        0,
        "an oversized request is closed unanswered"
    );

    // 200 clients that connect and send nothing: status is as fast as before.
    let before = status_time(&dir);
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(idle.len() >= 100, "{}", idle.len());
    let during = status_time(&dir);
    assert!(
        during < before + 2 * SEC,
        "status took {during:?} with idle clients (before: {before:?})"
    );
    // They hold the portal for at most its read deadline; then it answers again.
    assert!(
        wait_until(15 * SEC, || get(port, "/healthz").0 == 200),
        "portal still held"
    );
    drop(idle);
    assert!(d.is_running());
    d.terminate();
}
