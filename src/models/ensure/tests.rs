//! `ensure_model` against a fake catalog and a local HTTP server serving weights by path.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;

/// Serves `files` (path → body; absent → 404). Counts requests.
fn serve(files: BTreeMap<String, Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(Vec::new()));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let path = path.split('?').next().unwrap_or("").to_string();
            seen.lock().unwrap().push(path.clone());
            match files.get(&path) {
                Some(b) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    );
                    let _ = s.write_all(b);
                }
                None => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
        }
    });
    (base, hits)
}

struct FakeCatalog {
    entries: BTreeMap<String, Value>,
    signed: BTreeMap<String, String>,
    down: bool,
}

impl Catalog for FakeCatalog {
    fn entry(&self, model_id: &str) -> Result<Option<Value>, String> {
        if self.down {
            return Err("backend unreachable".into());
        }
        Ok(self.entries.get(model_id).cloned())
    }
    fn weights_url(&self, uuid: &str) -> Option<String> {
        self.signed.get(uuid).cloned()
    }
    fn bearer_for(&self, _: &str) -> Option<String> {
        None
    }
}

fn sha(b: &[u8]) -> String {
    crate::sha256_hex(b)
}

#[test]
fn signed_url_first_then_upstream_and_checksums_decide() {
    let good = b"weights v1".to_vec();
    let (base, hits) = serve(BTreeMap::from([
        ("/signed/yolo.pt".to_string(), b"tampered".to_vec()),
        ("/up/yolov8n.pt".to_string(), good.clone()),
    ]));
    let d = tempfile::tempdir().unwrap();
    let cat = FakeCatalog {
        entries: BTreeMap::from([(
            "yolov8n".to_string(),
            json!({"uuid": "3f1a0000-0000-4000-8000-000000000001", "download_url": format!("{base}/up/yolov8n.pt"),
                   "metadata": {"checksum_sha256": sha(&good)}}),
        )]),
        signed: BTreeMap::from([(
            "3f1a0000-0000-4000-8000-000000000001".to_string(),
            format!("{base}/signed/yolo.pt?sig=secret"),
        )]),
        down: false,
    };
    let mut v = Verified::new();
    // The signed URL serves the wrong bytes: refused; the upstream URL wins.
    let out = ensure_model(d.path(), "yolov8n", &cat, &mut v).unwrap();
    let path = d.path().join("yolov8n").join("yolov8n.pt");
    assert_eq!(out, Outcome::Downloaded(path.clone()));
    assert_eq!(std::fs::read(&path).unwrap(), good);
    let m = Manifest::load(d.path());
    let e = &m.entries["yolov8n"];
    assert_eq!(e.downloaded_from.as_deref(), Some("download_url"));
    assert_eq!(e.checksum_sha256.as_deref(), Some(sha(&good).as_str()));
    assert_eq!(hits.lock().unwrap().len(), 2);
    // Nothing but the weight and its sidecar is left.
    let mut names: Vec<String> = std::fs::read_dir(d.path().join("yolov8n"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["metadata.json", "yolov8n.pt"]);
    // A hit: no download, and the catalog's same checksum keeps it.
    assert_eq!(
        ensure_model(d.path(), "yolov8n", &cat, &mut v).unwrap(),
        Outcome::Cached(path.clone())
    );
    assert_eq!(hits.lock().unwrap().len(), 2);
    // Corrupt on disk → downloaded again.
    std::fs::write(&path, b"bitrot!!!!").unwrap();
    v.clear();
    assert_eq!(
        ensure_model(d.path(), "yolov8n", &cat, &mut v).unwrap(),
        Outcome::Downloaded(path.clone())
    );
    assert_eq!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn offline_keeps_an_intact_copy_and_fails_without_one() {
    let good = b"weights".to_vec();
    let (base, _) = serve(BTreeMap::from([("/w/m.onnx".to_string(), good.clone())]));
    let d = tempfile::tempdir().unwrap();
    let mut cat = FakeCatalog {
        entries: BTreeMap::from([(
            "m".to_string(),
            json!({"uuid": "u", "download_url": format!("{base}/w/m.onnx"), "checksum_sha256": sha(&good)}),
        )]),
        signed: BTreeMap::new(),
        down: false,
    };
    let mut v = Verified::new();
    let path = d.path().join("m").join("m.onnx");
    assert_eq!(
        ensure_model(d.path(), "m", &cat, &mut v).unwrap(),
        Outcome::Downloaded(path.clone())
    );
    assert_eq!(
        Manifest::load(d.path()).entries["m"].runtime.as_deref(),
        Some("onnxruntime")
    );
    // The catalog moved on to a version we cannot fetch: the intact copy stays in use.
    cat.entries.insert("m".into(), json!({"uuid": "u", "download_url": format!("{base}/gone.onnx"), "checksum_sha256": sha(b"v2")}));
    match ensure_model(d.path(), "m", &cat, &mut v).unwrap() {
        Outcome::Stale(p, e) => {
            assert_eq!(p, path);
            assert!(e.contains("404"), "{e}");
        }
        o => panic!("{o:?}"),
    }
    cat.down = true;
    assert_eq!(
        ensure_model(d.path(), "m", &cat, &mut v).unwrap(),
        Outcome::Cached(path)
    );
    // Unknown to a reachable catalog, and never cached: a genuine failure, nothing left.
    cat.down = false;
    let e = ensure_model(d.path(), "nope", &cat, &mut v).unwrap_err();
    assert!(e.contains("does not know"), "{e}");
    assert!(!d.path().join("nope").exists());
    assert!(ensure_model(d.path(), "  ", &cat, &mut v).is_err());
}

#[test]
fn prestaged_models_need_no_network_and_runtime_managed_ones_are_deferred() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("custom"), b"my weights").unwrap();
    let cat = FakeCatalog {
        entries: BTreeMap::from([(
            "yolo11n".to_string(),
            json!({"uuid": "u", "runtime": "ultralytics"}),
        )]),
        signed: BTreeMap::new(),
        down: true,
    };
    let mut v = Verified::new();
    let out = ensure_model(d.path(), "custom", &cat, &mut v).unwrap();
    assert_eq!(out, Outcome::Cached(d.path().join("custom").join("custom")));
    assert_eq!(
        Manifest::load(d.path()).entries["custom"]
            .downloaded_from
            .as_deref(),
        Some("prestaged")
    );
    // Replaced by hand: re-stamped, still no network.
    std::fs::write(d.path().join("custom").join("custom"), b"new weights").unwrap();
    v.clear();
    ensure_model(d.path(), "custom", &cat, &mut v).unwrap();
    assert_eq!(
        Manifest::load(d.path()).entries["custom"]
            .checksum_sha256
            .as_deref(),
        Some(sha(b"new weights").as_str())
    );
    let cat = FakeCatalog { down: false, ..cat };
    assert!(matches!(
        ensure_model(d.path(), "yolo11n", &cat, &mut v).unwrap(),
        Outcome::Deferred(_)
    ));
}

#[test]
fn file_names_come_from_the_catalog_never_a_path() {
    let cases = [
        (json!({"filename": "w.pt"}), vec![], "w.pt"),
        (
            json!({"metadata": {"filename": "m.onnx"}}),
            vec![],
            "m.onnx",
        ),
        (
            json!({"filename": "../../etc/passwd", "model_external_id": "yolov8n.pt"}),
            vec![],
            "yolov8n.pt",
        ),
        (
            json!({}),
            vec!["https://x/a/b/best.engine?sig=1"],
            "best.engine",
        ),
        (
            json!({"filename": ".hidden"}),
            vec!["https://x/noext"],
            "id.pt",
        ),
    ];
    for (entry, urls, want) in cases {
        assert_eq!(filename_for("id", &entry, &urls), want, "{entry}");
    }
}
