//! The model cache as a third party reads it: files our library downloaded and recorded are
//! found and checksum-verified by the real Cyberwave SDK (`cyberwave` 0.7.4 in the test venv,
//! its own `cw.models.load` lookup: `ModelManager._resolve_model_path` and
//! `_verify_model_checksum`), which also deletes a tampered copy.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cyberwave_edge::models::{download, store};

/// The venv's Python (next to the `cyberwave` CLI scripts/test installs), or None.
pub(crate) fn venv_python() -> Option<std::path::PathBuf> {
    let cli = std::env::var_os("CYBERWAVE_TEST_CLI")?;
    Some(std::path::PathBuf::from(cli).with_file_name("python"))
}

pub(crate) fn sdk_check(python: &Path, models: &Path, id: &str) -> (bool, String) {
    let script = r#"
import sys
from cyberwave.models.manager import ModelManager
m = ModelManager(model_dir=sys.argv[1])
rt = m._detect_runtime(sys.argv[2])
p = m._resolve_model_path(sys.argv[2], rt)
m._verify_model_checksum(sys.argv[2], p)
print(p)
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(models)
        .arg(id)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_sdk_finds_and_verifies_a_model_we_cached() {
    let Some(python) = venv_python() else {
        assert_ne!(
            std::env::var("CYBERWAVE_TEST_REQUIRE_DOCKER").as_deref(),
            Ok("1"),
            "CI needs the Python venv (scripts/test installs it)"
        );
        eprintln!("skipped: no CYBERWAVE_TEST_CLI (run scripts/test)");
        return;
    };
    // A local "weights server".
    let weights: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let sha = cyberwave_edge::sha256_hex(&weights);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/yolov8n.pt", l.local_addr().unwrap());
    let served = weights.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                served.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&served);
        }
    });

    let d = tempfile::tempdir().unwrap();
    let models = d.path().join("models");
    let dir = models.join(store::dir_name("yolov8n"));
    let got = download::fetch(&download::Request {
        url: &url,
        dir: &dir,
        filename: "yolov8n.pt",
        sha256: Some(&sha),
        timeout: Duration::from_secs(10),
        attempts: 3,
        bearer: None,
    })
    .unwrap();
    let mut manifest = store::Manifest::load(&models);
    store::Cached {
        model_id: "yolov8n".into(),
        path: got.path.clone(),
        sha256: got.sha256,
        size: got.size,
        runtime: store::runtime_for("yolov8n.pt").map(str::to_string),
        source: store::Source::DownloadUrl,
        url: Some(url.clone()),
    }
    .record(&mut manifest)
    .unwrap();
    manifest.save(&models).unwrap();

    let (ok, said) = sdk_check(&python, &models, "yolov8n");
    assert!(ok, "{said}");
    assert_eq!(said.trim(), got.path.display().to_string());

    // The SDK refuses (and deletes) a copy that no longer matches our sidecar.
    std::fs::write(&got.path, b"tampered").unwrap();
    let (ok, said) = sdk_check(&python, &models, "yolov8n");
    assert!(
        !ok && said.contains("failed checksum verification"),
        "{said}"
    );
    assert!(!got.path.exists());
}
