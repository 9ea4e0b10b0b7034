//! Downloads against a tiny local HTTP server that honours `Range`, can break a response
//! halfway, and can answer 404.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// Serves `body` at any path; the first `breaks` responses stop after `cut` bytes. Records the
/// Range header of every request.
struct Server {
    url: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn serve(body: Vec<u8>, status: u16, breaks: usize, cut: usize) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/w/yolov8n.pt", l.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        let mut broken = 0;
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            seen.lock().unwrap().push(range.map(|r| r.to_string()));
            if status != 200 {
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                continue;
            }
            let from = range.unwrap_or(0).min(body.len());
            let part = &body[from..];
            let head = if range.is_some() {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n",
                    part.len(),
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    part.len()
                )
            };
            let _ = s.write_all(head.as_bytes());
            if broken < breaks {
                broken += 1;
                let _ = s.write_all(&part[..cut.min(part.len())]);
                let _ = s.flush();
                drop(s); // the connection breaks halfway
                continue;
            }
            let _ = s.write_all(part);
        }
    });
    Server { url, ranges }
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

fn request<'a>(url: &'a str, dir: &'a Path, sha: Option<&'a str>) -> Request<'a> {
    Request {
        url,
        dir,
        filename: "yolov8n.pt",
        sha256: sha,
        timeout: Duration::from_secs(10),
        attempts: 3,
        bearer: None,
    }
}

#[test]
fn downloads_verify_and_land_in_place() {
    let data = body(3 * CHUNK + 5);
    let sha = crate::sha256_hex(&data);
    let srv = serve(data.clone(), 200, 0, 0);
    let d = tempfile::tempdir().unwrap();
    let got = fetch(&request(&srv.url, d.path(), Some(&sha))).unwrap();
    assert_eq!(got.sha256, sha);
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(std::fs::read(d.path().join("yolov8n.pt")).unwrap(), data);
    assert!(!part_path(d.path(), &srv.url).exists());
}

#[test]
fn an_interrupted_download_resumes_with_range() {
    let data = body(2 * CHUNK + 123);
    let sha = crate::sha256_hex(&data);
    let srv = serve(data.clone(), 200, 1, CHUNK + 7);
    let d = tempfile::tempdir().unwrap();
    let got = fetch(&request(&srv.url, d.path(), Some(&sha))).unwrap();
    assert_eq!(got.sha256, sha);
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    let ranges = srv.ranges.lock().unwrap().clone();
    assert_eq!(ranges[0], None);
    let resumed_at: usize = ranges[1].as_deref().unwrap().parse().unwrap();
    assert!(resumed_at > 0, "second request did not resume: {ranges:?}");
}

#[test]
fn wrong_checksums_404s_and_hostile_names_are_refused() {
    let data = body(1000);
    let srv = serve(data.clone(), 200, 0, 0);
    let d = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let e = fetch(&request(&srv.url, d.path(), Some(&wrong))).unwrap_err();
    assert!(matches!(e, DownloadError::Checksum { .. }), "{e}");
    assert!(!d.path().join("yolov8n.pt").exists());
    assert!(
        !part_path(d.path(), &srv.url).exists(),
        "partial file left behind"
    );

    let srv404 = serve(Vec::new(), 404, 0, 0);
    let e = fetch(&request(&srv404.url, d.path(), None)).unwrap_err();
    assert_eq!(e, DownloadError::Http { status: 404 });
    assert_eq!(srv404.ranges.lock().unwrap().len(), 1, "a 404 was retried");

    let mut r = request(&srv.url, d.path(), None);
    r.filename = "../escape.pt";
    assert!(matches!(fetch(&r), Err(DownloadError::Failed(_))));
}

#[test]
fn a_download_that_cannot_fit_is_refused_before_it_starts() {
    // A server that announces more than any test disk has, and sends nothing.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/huge.pt", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\nConnection: close\r\n\r\n",
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    let d = tempfile::tempdir().unwrap();
    let e = fetch(&request(&url, d.path(), None)).unwrap_err();
    assert!(matches!(e, DownloadError::NoSpace { .. }), "{e}");
    assert!(!part_path(d.path(), &url).exists());
}
