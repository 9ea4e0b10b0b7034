//! Which zenoh peers the daemon's session links to when no router or endpoint is configured:
//! the ones that belong to our own containers (drivers, the worker) on this host, and no
//! other. A scout that never leaves the host ([`super::session::scout_host`]) says who
//! listens where; the kernel says which process holds each listening socket
//! ([`listeners_of`]); [`choose`] keeps the peers whose socket one of our containers holds.
//! A foreign peer on the host and every other robot's peers stay unlinked: their keep-alives
//! would wake us several times a second for data we never asked for.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The most peers one scout reports, and the most sockets we attribute (a host with more is
/// not a robot's edge computer; the rest are ignored, not an unbounded list).
pub const MAX_PEERS: usize = 64;
const MAX_LISTENERS: usize = 256;

/// When we look for our containers' peers after the set of our running containers changed: a
/// driver opens its session a few seconds after its container starts (Python imports take a
/// while on a Pi), so a few looks spread over its first minute, then one every ten minutes.
pub const LOOKS_AFTER_CHANGE: [Duration; 5] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(12),
    Duration::from_secs(25),
    Duration::from_secs(60),
];
pub const LOOK_EVERY: Duration = Duration::from_secs(600);

/// A scout answer: a peer's zenoh id and the endpoints it listens on (`tcp/<ip>:<port>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub zid: String,
    pub locators: Vec<String>,
}

/// A TCP socket in the LISTEN state, from a `/proc/<pid>/net/tcp{,6}` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Socket {
    pub port: u16,
    pub inode: u64,
    /// Bound to the wildcard or the loopback (reachable as `127.0.0.1:<port>`).
    pub local: bool,
}

/// A listening socket held by a process of one of our containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// The container's full id.
    pub container: String,
    pub port: u16,
    pub local: bool,
    /// In the daemon's own network namespace (`--network host`, as drivers run).
    pub host_network: bool,
}

/// The LISTEN sockets of a `/proc/net/tcp` or `tcp6` table (malformed lines skipped).
pub fn listening(table: &str) -> Vec<Socket> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let (addr, port) = f[1].split_once(':')?;
            Some(Socket {
                port: u16::from_str_radix(port, 16).ok()?,
                inode: f[9].parse().ok()?,
                local: local_address(addr),
            })
        })
        .collect()
}

/// A kernel-order hex address that is the wildcard or a loopback one: `0.0.0.0`,
/// `127.0.0.0/8`, `::`, `::1`, or `::ffff:127.x.y.z`.
fn local_address(hex: &str) -> bool {
    let zeros = |s: &str| s.bytes().all(|b| b == b'0');
    match hex.len() {
        8 => zeros(hex) || hex.ends_with("7F"),
        32 => {
            zeros(hex)
                || hex == "00000000000000000000000001000000"
                || (hex.starts_with("0000000000000000FFFF0000") && hex.ends_with("7F"))
        }
        _ => false,
    }
}

/// `tcp/<ip>:<port>` (or `tcp/[<v6>]:<port>`) → (ip text, port); other schemes → None.
fn tcp_locator(locator: &str) -> Option<(&str, u16)> {
    let rest = locator.strip_prefix("tcp/")?;
    let rest = rest.split('#').next()?; // zenoh may append `#config` metadata
    let (ip, port) = rest.rsplit_once(':')?;
    Some((
        ip.trim_start_matches('[').trim_end_matches(']'),
        port.parse().ok()?,
    ))
}

fn loopback_ip(ip: &str) -> bool {
    ip.starts_with("127.") || ip == "::1" || ip == "localhost"
}

/// The links to make: endpoint → the container whose process listens there. A peer of the
/// host network is reached over the loopback when its socket allows it; a peer in its own
/// network namespace over the address it announced. Peers none of our containers hold (a
/// foreign process on this host) are left out.
pub fn choose(hellos: &[Hello], ours: &[Listener]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for hello in hellos.iter().take(MAX_PEERS) {
        let chosen = hello.locators.iter().find_map(|loc| {
            let (ip, port) = tcp_locator(loc)?;
            let l = ours
                .iter()
                .find(|l| l.port == port && (l.host_network || !loopback_ip(ip)))?;
            let endpoint = if l.host_network && l.local {
                format!("tcp/127.0.0.1:{port}")
            } else {
                loc.split('#').next().unwrap_or(loc).to_string()
            };
            Some((endpoint, l.container.clone()))
        });
        if let Some((endpoint, container)) = chosen {
            out.insert(endpoint, container);
        }
    }
    out
}

/// The container (of `ids`, full ids) a process belongs to, from its `/proc/<pid>/cgroup`:
/// Docker's and Podman's cgroup paths carry the id (`/docker/<id>`, `docker-<id>.scope`,
/// `libpod-<id>`).
pub fn container_of<'a>(cgroup: &str, ids: &'a BTreeSet<String>) -> Option<&'a String> {
    ids.iter()
        .find(|id| id.len() >= 12 && cgroup.contains(id.as_str()))
}

/// The listening sockets our containers' processes hold, read from `/proc` (this needs the
/// rights to read those processes' `fd` directories: root, as the service runs). A process
/// that ends while we read is skipped.
pub fn listeners_of(ids: &BTreeSet<String>) -> Vec<Listener> {
    let mut out = Vec::new();
    if ids.is_empty() {
        return out;
    }
    let own_ns = std::fs::read_link("/proc/self/ns/net").ok();
    let mut tables: BTreeMap<std::path::PathBuf, Vec<Socket>> = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let base = std::path::Path::new("/proc").join(pid);
        let Ok(cgroup) = std::fs::read_to_string(base.join("cgroup")) else {
            continue;
        };
        let Some(container) = container_of(&cgroup, ids) else {
            continue;
        };
        let inodes = socket_inodes(&base);
        if inodes.is_empty() {
            continue;
        }
        let Ok(ns) = std::fs::read_link(base.join("ns/net")) else {
            continue;
        };
        let host_network = own_ns.as_ref() == Some(&ns);
        let sockets = tables.entry(ns).or_insert_with(|| {
            ["net/tcp", "net/tcp6"]
                .iter()
                .flat_map(|t| listening(&std::fs::read_to_string(base.join(t)).unwrap_or_default()))
                .collect()
        });
        for s in sockets.iter().filter(|s| inodes.contains(&s.inode)) {
            if out.len() >= MAX_LISTENERS {
                return out;
            }
            out.push(Listener {
                container: container.clone(),
                port: s.port,
                local: s.local,
                host_network,
            });
        }
    }
    out
}

/// The socket inodes among a process's open files.
fn socket_inodes(proc_dir: &std::path::Path) -> BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
        return BTreeSet::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| {
            link.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests;
