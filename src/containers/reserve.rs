//! The disk reserve: `CYBERWAVE_DISK_RESERVE_MB` (512) of free space kept on the engine's data
//! root and on the config dir's filesystem. A pull that would leave less (by the size its
//! registry's manifest announces; the reserve alone when nothing is announced) first removes
//! the images we own that nothing runs and no rollback needs; if that is not enough it is
//! refused, the old containers keep running and the role raises `edge_disk_reserve`. A pull
//! that fails with "no space left on device" is reported the same way.

use std::path::{Path, PathBuf};

/// The phase of a launch refused for the reserve.
pub const PHASE: &str = "disk_reserve";

/// Why a download does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Short {
    pub path: PathBuf,
    pub free: u64,
    pub need: u64,
    pub reserve: u64,
}

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MB: u64 = 1 << 20;
        write!(
            f,
            "{} has {} MB free; the download needs {} MB and {} MB are kept in reserve (CYBERWAVE_DISK_RESERVE_MB)",
            self.path.display(),
            self.free / MB,
            self.need.div_ceil(MB),
            self.reserve / MB
        )
    }
}

/// The first filesystem that would fall under the reserve after a download of `need` bytes
/// (`free`: the free bytes of each, `None` when unknown: not judged).
pub fn short(free: &[(PathBuf, Option<u64>)], need: u64, reserve: u64) -> Option<Short> {
    free.iter().find_map(|(path, free)| {
        let free = (*free)?;
        (free < need.saturating_add(reserve)).then(|| Short {
            path: path.clone(),
            free,
            need,
            reserve,
        })
    })
}

/// The free bytes of each place the reserve guards.
pub fn free_space(places: &[&Path]) -> Vec<(PathBuf, Option<u64>)> {
    places
        .iter()
        .map(|p| (p.to_path_buf(), crate::fsutil::available_bytes(p)))
        .collect()
}

/// The reserve a launcher keeps, and what it may remove to keep it (set by the runtime: the
/// images we pulled that no container runs and no rollback needs).
#[derive(Debug, Default)]
pub struct DiskReserve {
    pub bytes: u64,
    pub removable: std::sync::Mutex<Vec<String>>,
    /// The engine's data root, asked once.
    pub data_root: std::sync::OnceLock<PathBuf>,
}

/// The engine said its disk is full.
pub fn is_no_space(message: &str) -> bool {
    message.to_lowercase().contains("no space left on device")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_falls_under_the_reserve() {
        const MB: u64 = 1 << 20;
        let root = PathBuf::from("/var/lib/docker");
        let cfg = PathBuf::from("/etc/cyberwave");
        let rows = [
            // (free on root, free on cfg, need, reserve, short on)
            (Some(2000 * MB), Some(2000 * MB), 100 * MB, 512 * MB, None),
            (
                Some(600 * MB),
                Some(2000 * MB),
                100 * MB,
                512 * MB,
                Some(&root),
            ),
            (Some(2000 * MB), Some(100 * MB), 0, 512 * MB, Some(&cfg)),
            (None, Some(2000 * MB), 100 * MB, 512 * MB, None), // unknown: not judged
            (Some(612 * MB), None, 100 * MB, 512 * MB, None),  // exactly enough
            (Some(1), None, u64::MAX, 512 * MB, Some(&root)),  // no overflow
        ];
        for (r, c, need, reserve, want) in rows {
            let free = [(root.clone(), r), (cfg.clone(), c)];
            let got = short(&free, need, reserve);
            assert_eq!(got.as_ref().map(|s| &s.path), want, "{r:?} {c:?} {need}");
        }
        let s = short(&[(root.clone(), Some(300 * MB))], 100 * MB, 512 * MB).unwrap();
        assert_eq!(
            s.to_string(),
            "/var/lib/docker has 300 MB free; the download needs 100 MB and 512 MB are kept in reserve (CYBERWAVE_DISK_RESERVE_MB)"
        );
        assert!(is_no_space(
            "write /var/lib/docker/tmp/x: No space left on device"
        ));
    }
}
