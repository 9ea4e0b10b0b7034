//! The two `/proc` questions the runner asks: how much resident memory a process group uses,
//! and which processes hold one of our pipes (to end a daemon that escaped its group but kept
//! a request's output open). Both are bounded scans of `/proc`, run only when needed.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
}

/// `(pgrp, rss pages)` from a `/proc/<pid>/stat` line.
fn pgrp_and_rss(stat: &str) -> Option<(i32, u64)> {
    // Fields after the command name, which is in parentheses and may contain anything.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(2)?.parse().ok()?, f.get(21)?.parse().ok()?))
}

/// Resident bytes of every process in group `pgid`.
pub fn group_rss(pgid: i32) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pids()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|s| pgrp_and_rss(&s))
        .filter(|(g, _)| *g == pgid)
        .map(|(_, rss)| rss.saturating_mul(page))
        .sum()
}

/// SIGKILLs every other process that has the pipe behind `ours` open; returns how many.
pub fn kill_pipe_holders(ours: &File) -> usize {
    let Ok(meta) = ours.metadata() else {
        return 0;
    };
    let want = format!("pipe:[{}]", meta.ino());
    let me = std::process::id() as i32;
    let mut killed = 0;
    for pid in pids().filter(|p| *p != me) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()));
        if holds {
            log::warn!("process {pid} still held a command's output after it ended: killed");
            // SAFETY: plain syscall.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let line = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 100 1000000 250 184467";
        assert_eq!(pgrp_and_rss(line), Some((42, 250)));
        assert_eq!(pgrp_and_rss("garbage"), None);
        // SAFETY: plain syscall.
        let own_group = unsafe { libc::getpgrp() };
        assert!(
            group_rss(own_group) > 1 << 20,
            "this test process uses over 1 MiB"
        );
    }
}
