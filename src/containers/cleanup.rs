//! Periodic Docker cleanup (reference §5.14), limited to what this edge created: stopped
//! containers of ours that no twin wants any more, and images we pulled that no desired
//! driver uses. The original pruned every stopped container on the host during a restart
//! and ran `docker image prune --all`; we never touch what is not ours.

use std::collections::BTreeSet;
use std::path::Path;

use super::{LABEL_CREATED_BY, LABEL_OWNER};
use crate::engine::Container;

/// Stopped containers created by this edge (its owner label, not just "some cyberwave edge":
/// several edges may share one engine) whose name is not desired any more.
pub fn stale_containers(
    observed: &[Container],
    desired: &BTreeSet<String>,
    owner: &str,
) -> Vec<String> {
    observed
        .iter()
        .filter(|e| matches!(e.state.as_str(), "exited" | "dead" | "created"))
        .filter(|e| e.name.starts_with("cyberwave"))
        .filter(|e| {
            e.labels
                .get(LABEL_CREATED_BY)
                .is_some_and(|v| v.starts_with("cyberwave-edge-core/"))
        })
        .filter(|e| e.labels.get(LABEL_OWNER).map(String::as_str) == Some(owner))
        .filter(|e| !e.labels.contains_key("cyberwave.min_restart_interval_s"))
        .filter(|e| !desired.contains(&e.name))
        // What an interrupted switch of a desired container left: its next launch settles it.
        .filter(|e| {
            super::launch::switch::switching_base(&e.name).is_none_or(|b| !desired.contains(b))
        })
        .map(|e| e.name.clone())
        .collect()
}

/// Images we ran before that no desired driver uses now. Local builds are kept: nothing
/// could pull them back.
pub fn stale_images(ran: &BTreeSet<String>, desired_images: &BTreeSet<String>) -> Vec<String> {
    ran.difference(desired_images)
        .filter(|i| !super::image::is_local_build(i))
        .cloned()
        .collect()
}

/// The block device holding `path` per `/proc/mounts` text (longest mount-point prefix).
pub fn device_of(mounts: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(dev), Some(mnt)) = (f.next(), f.next()) else {
            continue;
        };
        let mnt = mnt.replace("\\040", " ");
        let under = path.starts_with(&mnt);
        if under && best.as_ref().is_none_or(|(len, _)| mnt.len() > *len) {
            best = Some((mnt.len(), dev.to_string()));
        }
    }
    best.map(|(_, d)| d)
}

/// On an SD card (`mmcblk`), cleanup waits until the filesystem is `threshold`% full (wear);
/// unknown usage defers too.
pub fn deferred_on_sd_card(
    device: Option<&str>,
    used_percent: Option<f64>,
    threshold: f64,
) -> bool {
    match device {
        Some(d) if d.contains("mmcblk") => used_percent.is_none_or(|u| u < threshold),
        _ => false,
    }
}

/// Images this edge has run, kept across restarts so cleanup knows what is ours.
pub const IMAGES_FILE: &str = "edge-core-images.json";

pub fn load_images(dir: &std::path::Path) -> BTreeSet<String> {
    crate::fsutil::read_regular_text(&dir.join(IMAGES_FILE), 4 << 20)
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

pub fn save_images(dir: &std::path::Path, images: &BTreeSet<String>) {
    let v = serde_json::json!(images.iter().collect::<Vec<_>>());
    if let Err(e) = crate::fsutil::write_json_atomic(&dir.join(IMAGES_FILE), &v, 0o600) {
        log::warn!("cannot record images: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ps(name: &str, state: &str, ours: bool) -> Container {
        owned(name, state, ours, "edge-a")
    }

    fn owned(name: &str, state: &str, ours: bool, owner: &str) -> Container {
        let mut labels = BTreeMap::new();
        if ours {
            labels.insert(
                LABEL_CREATED_BY.to_string(),
                "cyberwave-edge-core/0.2.0".to_string(),
            );
            labels.insert(LABEL_OWNER.to_string(), owner.to_string());
        }
        Container {
            id: name.into(),
            name: name.into(),
            image: "i".into(),
            image_id: String::new(),
            state: state.into(),
            status: String::new(),
            labels,
        }
    }

    #[test]
    fn only_our_stopped_unwanted_containers() {
        let observed = vec![
            ps("cyberwave-driver-aaaa", "exited", true), // ours, unwanted → pruned
            ps("cyberwave-driver-bbbb", "exited", true), // ours, still desired → kept
            ps("cyberwave-driver-cccc", "running", true), // running → kept
            ps("cyberwave-driver-dddd", "exited", false), // not created by us → kept
            ps("someone-else", "exited", true),          // not a cyberwave name → kept
            owned("cyberwave-driver-eeee", "exited", true, "edge-b"), // another edge's → kept
            ps("cyberwave-driver-bbbb.old", "exited", true), // settled by bbbb's launch → kept
            ps("cyberwave-driver-aaaa.next", "created", true), // aaaa is gone → pruned
        ];
        let desired: BTreeSet<String> = ["cyberwave-driver-bbbb".to_string()].into();
        assert_eq!(
            stale_containers(&observed, &desired, "edge-a"),
            vec![
                "cyberwave-driver-aaaa".to_string(),
                "cyberwave-driver-aaaa.next".to_string()
            ]
        );
    }

    #[test]
    fn images_and_sd_cards() {
        let ran: BTreeSet<String> =
            ["a:1".to_string(), "b:2".to_string(), "c:local".to_string()].into();
        let want: BTreeSet<String> = ["b:2".to_string()].into();
        assert_eq!(stale_images(&ran, &want), vec!["a:1".to_string()]); // c:local is kept
        let mounts = "/dev/mmcblk0p2 / ext4 rw 0 0\n/dev/sda1 /var/lib/docker ext4 rw 0 0\nproc /proc proc rw 0 0\n";
        assert_eq!(
            device_of(mounts, Path::new("/var/lib/docker")).as_deref(),
            Some("/dev/sda1")
        );
        assert_eq!(
            device_of(mounts, Path::new("/home/pi")).as_deref(),
            Some("/dev/mmcblk0p2")
        );
        assert!(deferred_on_sd_card(
            Some("/dev/mmcblk0p2"),
            Some(50.0),
            80.0
        ));
        assert!(!deferred_on_sd_card(
            Some("/dev/mmcblk0p2"),
            Some(85.0),
            80.0
        ));
        assert!(deferred_on_sd_card(Some("/dev/mmcblk0p2"), None, 80.0));
        assert!(!deferred_on_sd_card(Some("/dev/sda1"), Some(10.0), 80.0));
    }
}
