//! A real image registry for the pull tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a loopback port (Docker treats 127.0.0.0/8 registries as
//! insecure-allowed), and a small token-auth proxy of the tests' own in front of it that
//! refuses stale stored credentials, as a registry does after a password rotation, while it
//! serves anonymous pulls.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::broker::free_port;

pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry on 127.0.0.1 with its storage in a temp dir; None when the
    /// `docker-registry` binary is missing (CI installs it: then that is a failure).
    pub fn start() -> Option<Registry> {
        let bin = "/usr/bin/docker-registry";
        if !std::path::Path::new(bin).exists() {
            assert_ne!(
                std::env::var("CYBERWAVE_TEST_REQUIRE_DOCKER").as_deref(),
                Ok("1"),
                "CI needs docker-registry (scripts/test installs it)"
            );
            eprintln!("skipped: no docker-registry");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        assert!(
            super::wait_until(Duration::from_secs(10), || http_status(port, "/v2/", "")
                == Some(200)),
            "docker-registry did not answer on {port}"
        );
        Some(r)
    }

    /// Tags a local image into this registry and pushes it; then drops the local tag (so a
    /// pull of the reference has to go to the registry). Returns `repo:tag` without the host.
    pub fn push(&self, local: &str, repo_tag: &str) -> String {
        let remote = format!("127.0.0.1:{}/{repo_tag}", self.port);
        for args in [
            vec!["tag", local, &remote],
            vec!["push", &remote],
            vec!["rmi", &remote],
        ] {
            let out = Command::new("docker").args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        repo_tag.to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of a GET to the registry (None: no answer).
fn http_status(port: u16, path: &str, extra: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What the proxy did.
#[derive(Default)]
pub struct ProxyCounts {
    /// Token requests carrying the stale credentials: refused with 401.
    pub refused_stale: AtomicUsize,
    /// Registry requests made with the anonymous token, passed to the registry.
    pub passed_anonymous: AtomicUsize,
}

/// The token handed to anonymous clients.
const ANONYMOUS_TOKEN: &str = "anonymous-pull-token";

/// A token-auth front for a registry, as Docker Hub or GHCR answer: registry requests without
/// a token get a Bearer challenge naming this proxy's `/token`; a token request with the
/// `stale` Basic credentials gets 401 "incorrect username or password"; an anonymous one gets
/// a token that lets pulls through to the registry. One request per connection.
pub struct AuthProxy {
    pub port: u16,
    pub counts: Arc<ProxyCounts>,
}

impl AuthProxy {
    pub fn start(upstream: u16, stale_basic: &str) -> AuthProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(ProxyCounts::default());
        let (c, stale) = (counts.clone(), format!("Basic {stale_basic}"));
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let (c, stale) = (c.clone(), stale.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, port, upstream, &stale, &c);
                });
            }
        });
        AuthProxy { port, counts }
    }
}

fn respond(out: &mut TcpStream, status: &str, extra: &str, body: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nDocker-Distribution-Api-Version: registry/2.0\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn serve(
    conn: TcpStream,
    port: u16,
    upstream: u16,
    stale: &str,
    c: &ProxyCounts,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push(line);
    }
    let mut first = head
        .first()
        .map(|l| l.split_whitespace())
        .into_iter()
        .flatten();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    if !matches!(method, "GET" | "HEAD") {
        return Ok(()); // the engine's HTTPS attempt, or anything else: not ours
    }
    let auth = head.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_string())
    });
    let mut out = conn;
    if path.starts_with("/token") {
        return match auth.as_deref() {
            None => respond(
                &mut out,
                "200 OK",
                "",
                &format!(
                    r#"{{"token":"{ANONYMOUS_TOKEN}","access_token":"{ANONYMOUS_TOKEN}","expires_in":300}}"#
                ),
            ),
            Some(a) => {
                if a == stale {
                    c.refused_stale.fetch_add(1, Ordering::SeqCst);
                }
                respond(
                    &mut out,
                    "401 Unauthorized",
                    "",
                    r#"{"details":"incorrect username or password"}"#,
                )
            }
        };
    }
    if auth.as_deref() != Some(&format!("Bearer {ANONYMOUS_TOKEN}")) {
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"cw-test\"\r\n"
        );
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        return respond(&mut out, "401 Unauthorized", &challenge, body);
    }
    c.passed_anonymous.fetch_add(1, Ordering::SeqCst);
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    for line in &head {
        let lower = line.to_ascii_lowercase();
        if !["connection:", "keep-alive:", "authorization:"]
            .iter()
            .any(|h| lower.starts_with(h))
        {
            up.write_all(line.as_bytes())?;
        }
    }
    up.write_all(b"Connection: close\r\n\r\n")?;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    Ok(())
}
