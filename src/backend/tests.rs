use super::*;

#[test]
fn snippets_are_short_and_single_line() {
    let long = "x\n".repeat(500);
    let s = snippet(&long);
    assert!(s.chars().count() <= 201);
    assert!(!s.contains('\n'));
}

#[test]
fn workspace_query_is_appended_once() {
    let b = Backend::build(
        "cyberwave-edge-core",
        "http://h/",
        Secret::new("cw_x"),
        Some("ws1".into()),
        None,
        Duration::from_secs(1),
        1,
    );
    assert_eq!(
        b.url("/api/v1/edges"),
        "http://h/api/v1/edges?workspace_uuid=ws1"
    );
    assert_eq!(b.url("/a?x=1"), "http://h/a?x=1&workspace_uuid=ws1");
    assert_eq!(b.url("/a?workspace_uuid=z"), "http://h/a?workspace_uuid=z");
}

#[test]
fn errors_never_carry_the_token_and_say_what_to_do() {
    let e = BackendError::Unauthorized {
        endpoint: "GET /api/v1/users/workspaces".into(),
        status: 401,
    };
    assert!(e.to_string().contains("cyberwave login"));
    assert!(!e.is_transient());
    let b = Backend::build(
        "cyberwave-edge-core",
        "http://127.0.0.1:1",
        Secret::new("cw_secret_token_value"),
        None,
        None,
        Duration::from_millis(300),
        1,
    );
    let err = b.validate_token().unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(!err.to_string().contains("cw_secret_token_value"));
}

/// A server that answers every request after `delay`; returns its base URL.
fn slow_server(delay: Duration) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut c in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                std::thread::sleep(delay);
                let body = r#"{"workflows": [], "skipped_workflows": []}"#;
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

/// The edge core's client of `url` (a test token, no workspace, one attempt).
fn client(url: &str, timeout: Duration) -> Backend {
    Backend::build(
        "cyberwave-edge-core",
        url,
        Secret::new("cw_x"),
        None,
        None,
        timeout,
        1,
    )
}

#[test]
fn edge_sync_has_its_own_deadline_and_the_rest_the_clients() {
    let url = slow_server(Duration::from_millis(1500));
    let b = client(&url, Duration::from_millis(700));
    // The client's 0.7 s would cut it; edge-sync has the original's 30 s.
    assert!(b.edge_sync("t").is_ok());
    assert!(b.active_alerts("t").is_err());
    assert_eq!(EDGE_SYNC_DEADLINE, Duration::from_secs(30));
    assert_eq!(CATALOG_DEADLINE, Duration::from_secs(5));
}

/// A server that answers GETs with an `ETag`, and `304` when asked with it; records what it
/// was asked. Returns its base URL and the requests' heads.
fn etag_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut c in l.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            log.lock().unwrap().push(head.clone());
            let reply = if head.contains("if-none-match: \"v1\"") {
                "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n".to_string()
            } else {
                let body = r#"[{"uuid": "t-1", "metadata": {}}]"#;
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"v1\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = c.write_all(reply.as_bytes());
        }
    });
    (url, seen)
}

#[test]
fn a_repeated_get_is_conditional_and_a_304_answers_with_the_kept_copy() {
    let (url, seen) = etag_server();
    let b = client(&url, Duration::from_secs(5));
    let first = b.environment_twins("e").unwrap();
    // A clone (another thread's client) shares what was kept.
    let second = b.clone().environment_twins("e").unwrap();
    assert_eq!(first, second);
    assert_eq!(first.len(), 1);
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 2);
    assert!(!heads[0].contains("if-none-match"), "{}", heads[0]);
    assert!(heads[1].contains("if-none-match: \"v1\""), "{}", heads[1]);
    // Other endpoints are not conditional on this one's validator.
    let _ = b.twin("t-1");
    assert!(!seen.lock().unwrap()[2].contains("if-none-match"));
}

/// Reads one whole request (head and `Content-Length` body): a server that answers and closes
/// while the body is still coming makes the client see a reset instead of the answer.
fn read_request(c: &mut std::net::TcpStream) {
    use std::io::Read;
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return;
            }
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A server answering each request with the next `(status, body)`; returns its base URL.
fn canned_server(answers: Vec<(u16, &'static str)>) -> String {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for ((status, body), mut c) in answers.into_iter().zip(l.incoming().map_while(Result::ok)) {
            read_request(&mut c);
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn driver_token_answers_are_classified_and_never_echoed() {
    use super::TokenCallError as E;
    let d = Duration::from_secs(2);
    let url = canned_server(vec![
        (404, r#"{"detail":"Not found."}"#),
        (201, r#"{"uuid":"u1"}"#),
        (201, r#"{"token":"cw_t","uuid":"../../edges"}"#),
        (503, r#"{"detail":"cw_secret_in_body"}"#),
        (
            201,
            r#"{"token":"cw_t","uuid":"u-1","expires_at":"2030-01-01T00:00:00+00:00"}"#,
        ),
        (410, r#"{}"#),
        (404, r#"{}"#),
        (200, r#"{"expires_at":"2031-01-01T00:00:00Z"}"#),
    ]);
    let b = client(&url, Duration::from_secs(5));
    let kids = ["c1".to_string()];
    assert_eq!(
        b.mint_driver_token("t", &kids, "fp-x", d),
        Err(E::Unsupported)
    );
    assert!(matches!(
        b.mint_driver_token("t", &kids, "", d),
        Err(E::Failed(_))
    ));
    assert!(matches!(
        b.mint_driver_token("t", &kids, "", d),
        Err(E::Failed(_))
    ));
    match b.mint_driver_token("t", &kids, "", d) {
        Err(E::Failed(why)) => assert!(!why.contains("cw_secret"), "{why}"),
        other => panic!("{:?}", other.map(|m| m.uuid)),
    }
    let m = b
        .mint_driver_token("t", &kids, "", d)
        .map_err(|e| e.to_string());
    assert_eq!(
        m.map(|m| (m.token, m.uuid)),
        Ok(("cw_t".into(), "u-1".into()))
    );
    assert_eq!(b.renew_driver_token("t", "u-1", d), Err(E::NotRenewable));
    assert_eq!(b.renew_driver_token("t", "u-1", d), Err(E::NotRenewable));
    assert_eq!(
        b.renew_driver_token("t", "u-1", d),
        Ok(Some("2031-01-01T00:00:00Z".into()))
    );
    // A uuid that is not one never reaches a path.
    assert_eq!(b.renew_driver_token("t", "a/b", d), Err(E::NotRenewable));
}

#[test]
fn a_driver_token_call_ends_at_its_deadline() {
    let url = slow_server(Duration::from_secs(3));
    let b = client(&url, Duration::from_secs(30));
    let t = std::time::Instant::now();
    assert!(
        b.mint_driver_token("t", &[], "", Duration::from_millis(300))
            .is_err()
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}
