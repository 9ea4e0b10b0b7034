//! Sync steps against a recording fake backend, on real files.

use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;

use serde_json::json;

use super::*;

struct Fake {
    twin: RefCell<Value>,
    down: RefCell<bool>,
    pushes: RefCell<Vec<Value>>,
}

impl Fake {
    fn new(twin: Value) -> Self {
        Fake {
            twin: RefCell::new(twin),
            down: RefCell::new(false),
            pushes: RefCell::new(Vec::new()),
        }
    }
}

impl Remote for Fake {
    fn fetch(&self, _: &str) -> Result<Option<Value>, String> {
        if *self.down.borrow() {
            return Err("backend unreachable".into());
        }
        Ok(Some(self.twin.borrow().clone()))
    }
    fn push(&self, _: &str, body: &Value) -> Result<(), String> {
        if *self.down.borrow() {
            return Err("backend unreachable".into());
        }
        self.pushes.borrow_mut().push(body.clone());
        let mut t = self.twin.borrow_mut();
        if let (Value::Object(t), Value::Object(b)) = (&mut *t, body) {
            for (k, v) in b {
                t.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }
}

const U: &str = "11111111-2222-4333-8444-555555555555";

fn edit(dir: &Path, f: impl FnOnce(&mut Value)) {
    let p = twin_file::path_for(dir, U);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn file(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(twin_file::path_for(dir, U)).unwrap()).unwrap()
}

#[test]
fn edits_flow_both_ways_and_nothing_is_lost() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let twin = json!({"uuid": U, "name": "cam", "metadata": {"fps": 15, "mode": "a"}, "asset": {"uuid": "a"}});
    let backend = Fake::new(twin.clone());
    let mut rec = TwinSync::default();
    assert_eq!(
        sync_twin(dir, U, &backend, &mut rec),
        Outcome::Skipped,
        "no file yet"
    );
    // Our own write (a launch) is the base: never pushed.
    twin_file::write(dir, U, &twin).unwrap();
    assert_eq!(sync_twin(dir, U, &backend, &mut rec), Outcome::Unchanged);
    assert!(backend.pushes.borrow().is_empty());
    // A driver's edit is pushed once, with only the allowed fields.
    edit(dir, |v| v["metadata"]["fps"] = json!(30));
    assert_eq!(
        sync_twin(dir, U, &backend, &mut rec),
        Outcome::Pushed { pulled: false }
    );
    assert_eq!(sync_twin(dir, U, &backend, &mut rec), Outcome::Unchanged);
    let pushes = backend.pushes.borrow().clone();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0]["metadata"], json!({"fps": 30, "mode": "a"}));
    assert!(pushes[0].get("asset").is_none() && pushes[0].get("uuid").is_none());
    // A backend change reaches the file in place (same inode, as the container sees it).
    let inode = std::fs::metadata(twin_file::path_for(dir, U))
        .unwrap()
        .ino();
    backend.twin.borrow_mut()["metadata"]["mode"] = json!("b");
    assert_eq!(sync_twin(dir, U, &backend, &mut rec), Outcome::Pulled);
    assert_eq!(file(dir)["metadata"], json!({"fps": 30, "mode": "b"}));
    assert_eq!(
        std::fs::metadata(twin_file::path_for(dir, U))
            .unwrap()
            .ino(),
        inode
    );
    assert_eq!(
        sync_twin(dir, U, &backend, &mut rec),
        Outcome::Unchanged,
        "our pull is not pushed back"
    );
    // Offline edit: pending, file untouched, pushed when the backend is back.
    *backend.down.borrow_mut() = true;
    edit(dir, |v| v["metadata"]["exposure"] = json!(7));
    assert!(matches!(
        sync_twin(dir, U, &backend, &mut rec),
        Outcome::Pending(_)
    ));
    assert!(rec.pending);
    assert_eq!(file(dir)["metadata"]["exposure"], json!(7));
    *backend.down.borrow_mut() = false;
    assert_eq!(
        sync_twin(dir, U, &backend, &mut rec),
        Outcome::Pushed { pulled: false }
    );
    assert!(!rec.pending);
    assert_eq!(backend.twin.borrow()["metadata"]["exposure"], json!(7));
    // Both sides change different keys: both kept. The same key: backend wins, local kept.
    edit(dir, |v| {
        v["metadata"]["fps"] = json!(60);
        v["metadata"]["mode"] = json!("local");
    });
    backend.twin.borrow_mut()["metadata"]["mode"] = json!("remote");
    backend.twin.borrow_mut()["metadata"]["gain"] = json!(2);
    assert_eq!(
        sync_twin(dir, U, &backend, &mut rec),
        Outcome::Pushed { pulled: true }
    );
    assert_eq!(
        file(dir)["metadata"],
        json!({"fps": 60, "mode": "remote", "exposure": 7, "gain": 2})
    );
    assert_eq!(backend.twin.borrow()["metadata"], file(dir)["metadata"]);
    let lost = rec.conflicts.last().unwrap();
    assert_eq!((lost.key.as_str(), &lost.local), ("mode", &json!("local")));
    // Unreadable file: rebuilt from the last good copy.
    std::fs::write(twin_file::path_for(dir, U), "{ half a file").unwrap();
    assert_eq!(sync_twin(dir, U, &backend, &mut rec), Outcome::Rebuilt);
    assert_eq!(file(dir)["metadata"]["gain"], json!(2));
    assert_eq!(sync_twin(dir, U, &backend, &mut rec), Outcome::Unchanged);
    assert!(rec.version >= 5, "{}", rec.version);
}

#[test]
fn a_file_seen_first_keeps_its_own_keys_and_takes_the_backends_differences() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let backend =
        Fake::new(json!({"uuid": U, "name": "cam", "metadata": {"fps": 15, "mode": "b"}}));
    // Not written by us (a file left from before this state existed).
    std::fs::write(
        twin_file::path_for(dir, U),
        json!({"uuid": U, "name": "cam", "metadata": {"fps": 15, "mode": "a", "calib": [1, 2]}})
            .to_string(),
    )
    .unwrap();
    let mut rec = TwinSync::default();
    assert_eq!(
        sync_twin(dir, U, &backend, &mut rec),
        Outcome::Pushed { pulled: true }
    );
    assert_eq!(
        file(dir)["metadata"],
        json!({"fps": 15, "mode": "b", "calib": [1, 2]})
    );
    assert_eq!(backend.twin.borrow()["metadata"], file(dir)["metadata"]);
    assert!(rec.conflicts.is_empty());
}

/// Found by the fault campaign: a file we created and a driver edited before the sync's first
/// look (it waits for writes to settle) kept the edit only by luck; now what we wrote is the
/// base, so the edit is pushed even though the backend still has the old value.
#[test]
fn an_edit_before_the_first_look_at_a_file_we_created_is_pushed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let twin = json!({"uuid": U, "name": "cam", "metadata": {"fps": 15}});
    let backend = Fake::new(twin.clone());
    twin_file::write(dir, U, &twin).unwrap();
    edit(dir, |v| v["metadata"]["fps"] = json!(60));
    let mut rec = TwinSync::default();
    assert_eq!(
        sync_twin(dir, U, &backend, &mut rec),
        Outcome::Pushed { pulled: false }
    );
    assert_eq!(backend.twin.borrow()["metadata"]["fps"], json!(60));
    assert_eq!(file(dir)["metadata"]["fps"], json!(60));
}
