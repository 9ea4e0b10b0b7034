//! Facts about this host: identity (for the fingerprint) and the hardware facts the
//! `/edges/discover` keepalive uploads (reference §2.6). Read from /proc and /sys only.

use std::fs;
use std::path::Path;

use serde_json::{Map, Value, json};

/// What the fingerprint is derived from.
#[derive(Debug, Clone)]
pub struct Identity {
    pub hostname: String,
    pub mac: String,
    /// `<system>-<machine>`, e.g. `Linux-aarch64`.
    pub platform: String,
}

/// This edge's fingerprint: `fingerprint.json`, else created from `CYBERWAVE_EDGE_UUID` or
/// this host's identity (the daemon and the `worker` CLI agree on it).
pub fn edge_fingerprint(
    settings: &crate::config::Settings,
) -> Result<String, crate::config::FileError> {
    crate::config::fingerprint::load_or_create(
        &settings.config_dir,
        settings.edge_uuid_override.as_deref(),
        || {
            let facts = identity();
            crate::config::fingerprint::generate(&facts.hostname, &facts.mac, &facts.platform)
        },
    )
}

pub fn identity() -> Identity {
    Identity {
        hostname: hostname(),
        mac: primary_interface()
            .map(|(_, mac)| mac)
            .unwrap_or_else(|| "00:00:00:00:00:00".into()),
        platform: platform_short(),
    }
}

/// `gethostname()`, then `/proc/sys/kernel/hostname`, then `$HOSTNAME`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        let h = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        if !h.is_empty() {
            return h;
        }
    }
    if let Ok(h) = fs::read_to_string("/proc/sys/kernel/hostname")
        && !h.trim().is_empty()
    {
        return h.trim().to_string();
    }
    std::env::var("HOSTNAME")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `(sysname, release, machine)` from uname(2).
pub fn uname() -> (String, String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("Linux".into(), String::new(), std::env::consts::ARCH.into());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.sysname), field(&u.release), field(&u.machine))
}

/// Python's `platform._platform`: the parts joined with `-`, filename obstacles turned into `-`
/// or `_`, `unknown` dropped, `--` folded, no trailing `-`.
fn python_platform_join(parts: &[&str]) -> String {
    let mut p = parts
        .iter()
        .map(|x| x.trim())
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join("-")
        .replace(' ', "_");
    for c in ['/', '\\', ':', ';', '"', '(', ')'] {
        p = p.replace(c, "-");
    }
    p = p.replace("unknown", "");
    while p.contains("--") {
        p = p.replace("--", "-");
    }
    p.trim_end_matches('-').to_string()
}

/// `platform.platform()` as CPython prints it on Linux, e.g.
/// `Linux-6.1.0-18-arm64-aarch64-with-glibc2.36` (`libc`: the host's C library and version).
pub fn python_platform(
    sys: &str,
    release: &str,
    machine: &str,
    libc: Option<(&str, &str)>,
) -> String {
    let with = libc.map(|(n, v)| format!("{n}{v}")).unwrap_or_default();
    python_platform_join(&[sys, release, machine, "with", &with])
}

/// This host's `platform.platform()`, worked out once per process (reading the C library takes
/// megabytes; CPython also asks once, at start, what it links).
pub fn platform_string() -> &'static str {
    static PLATFORM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PLATFORM.get_or_init(|| {
        let (sys, release, machine) = uname();
        let glibc = host_glibc_version();
        python_platform(
            &sys,
            &release,
            &machine,
            glibc.as_deref().map(|v| ("glibc", v)),
        )
    })
}

/// The host's glibc version (what CPython's `os.confstr('CS_GNU_LIBC_VERSION')` says), read from
/// the C library itself: our static binary links none.
pub fn host_glibc_version() -> Option<String> {
    const PATHS: [&str; 6] = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/lib/arm-linux-gnueabihf/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
        "/lib/libc.so.6",
    ];
    let marker = b"release version ";
    PATHS.iter().find_map(|p| {
        let bytes = crate::fsutil::read_regular(Path::new(p), 16 << 20).ok()?;
        let at = bytes.windows(marker.len()).position(|w| w == marker)? + marker.len();
        let v: String = bytes[at..]
            .iter()
            .take(16)
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .map(|b| *b as char)
            .collect();
        let v = v.trim_end_matches('.').to_string();
        (!v.is_empty()).then_some(v)
    })
}

/// `Linux-aarch64`: Python's `f"{platform.system()}-{platform.machine()}"`.
pub fn platform_short() -> String {
    let (sys, _, machine) = uname();
    format!("{sys}-{machine}")
}

/// The interface whose MAC identifies the host, as CPython's `uuid.getnode()` finds it on
/// Linux through libuuid (so our fingerprint is the SDK's): the first interface in the
/// kernel's `SIOCGIFCONF` list (interfaces holding an IPv4 address, in kernel order; the first
/// 1,024 bytes of it, as libuuid reads) whose hardware address is not all zeros. When none
/// has one — where libuuid would make up a random node — the lowest-ifindex Ethernet
/// interface, a universally administered address preferred.
pub fn primary_interface() -> Option<(String, String)> {
    libuuid_interface().or_else(ethernet_interface)
}

/// libuuid's `get_node_id`: `SIOCGIFCONF` into a 1,024-byte buffer, then `SIOCGIFHWADDR` per
/// name; the first non-zero address.
fn libuuid_interface() -> Option<(String, String)> {
    // SAFETY: a plain datagram socket, closed below; the ioctls write only into the buffers
    // we pass with their sizes.
    let sd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_IP) };
    if sd < 0 {
        return None;
    }
    let found = (|| {
        let mut buf = [0u8; 1024];
        let mut ifc: libc::ifconf = unsafe { std::mem::zeroed() };
        ifc.ifc_len = buf.len() as libc::c_int;
        ifc.ifc_ifcu.ifcu_buf = buf.as_mut_ptr().cast();
        if unsafe { libc::ioctl(sd, libc::SIOCGIFCONF as _, &mut ifc) } < 0 {
            return None;
        }
        let size = std::mem::size_of::<libc::ifreq>();
        let len = (ifc.ifc_len.max(0) as usize).min(buf.len());
        let mut at = 0;
        while at + size <= len {
            // SAFETY: `at + size <= len <= buf.len()`; read_unaligned copes with the byte buffer.
            let listed: libc::ifreq =
                unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
            at += size;
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            req.ifr_name = listed.ifr_name;
            if unsafe { libc::ioctl(sd, libc::SIOCGIFHWADDR as _, &mut req) } < 0 {
                continue;
            }
            // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
            let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
            let mac: Vec<u8> = data[..6].iter().map(|b| *b as u8).collect();
            if mac.iter().all(|b| *b == 0) {
                continue;
            }
            let name: Vec<u8> = listed
                .ifr_name
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            let text: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
            return Some((String::from_utf8_lossy(&name).into_owned(), text.join(":")));
        }
        None
    })();
    // SAFETY: sd is our open socket.
    unsafe { libc::close(sd) };
    found
}

/// The fallback: Ethernet-type, non-zero, ordered by ifindex, universally administered first.
fn ethernet_interface() -> Option<(String, String)> {
    let mut candidates: Vec<(u32, String, String)> = Vec::new();
    for entry in fs::read_dir("/sys/class/net").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        let read = |f: &str| fs::read_to_string(dir.join(f)).map(|s| s.trim().to_string());
        if read("type").ok().as_deref() != Some("1") {
            continue;
        }
        let Ok(mac) = read("address") else { continue };
        if mac.is_empty() || mac == "00:00:00:00:00:00" {
            continue;
        }
        let index = read("ifindex")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u32::MAX);
        candidates.push((index, name, mac.to_lowercase()));
    }
    candidates.sort();
    let universal = |mac: &str| {
        u8::from_str_radix(mac.get(0..2).unwrap_or("02"), 16).is_ok_and(|b| b & 0x02 == 0)
    };
    candidates
        .iter()
        .find(|(_, _, mac)| universal(mac))
        .or_else(|| candidates.first())
        .map(|(_, n, m)| (n.clone(), m.clone()))
}

/// One entry of `host_facts.network_interfaces`.
fn network_interfaces() -> Vec<Value> {
    let ipv4 = ipv4_addresses();
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/sys/class/net") else {
        return out;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    for name in names {
        let dir = Path::new("/sys/class/net").join(&name);
        let mac = fs::read_to_string(dir.join("address"))
            .map(|s| s.trim().to_lowercase())
            .unwrap_or_default();
        let oper = fs::read_to_string(dir.join("operstate")).unwrap_or_default();
        let addr = ipv4
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a.clone());
        out.push(json!({
            "name": name,
            "ipv4_address": addr,
            "mac_address": mac,
            "is_up": oper.trim() == "up" || oper.trim() == "unknown" && addr.is_some(),
        }));
    }
    out
}

/// `(interface, address)` for every IPv4 address, via getifaddrs(3).
fn ipv4_addresses() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                    .to_string_lossy()
                    .into_owned();
                out.push((name, ip.to_string()));
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

fn cpu_model_and_count() -> (Option<String>, usize) {
    let text = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut model = None;
    let mut count = 0;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let k = k.trim();
        if k == "processor" {
            count += 1;
        }
        if model.is_none() && (k == "model name" || k == "Model" || k == "Hardware") {
            model = Some(v.trim().to_string()).filter(|s| !s.is_empty());
        }
    }
    let count = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(count.max(1));
    (model, count)
}

fn device_serial() -> Option<String> {
    for p in [
        "/proc/device-tree/serial-number",
        "/sys/firmware/devicetree/base/serial-number",
        "/sys/class/dmi/id/product_serial",
    ] {
        if let Ok(s) = fs::read_to_string(p) {
            let s = s
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string();
            if !s.is_empty() {
                return Some(s);
            }
        }
    }
    None
}

/// The `host_facts` object of `POST /api/v1/edges/discover`. Keys are omitted when unknown.
pub fn host_facts(metrics: &crate::health::HostSnapshot, watchdog_layers: &[&str]) -> Value {
    let (_, release, _) = uname();
    let mut m = Map::new();
    m.insert("platform".into(), json!(platform_string()));
    m.insert(
        "has_hardware_watchdog".into(),
        json!(Path::new("/dev/watchdog").exists()),
    );
    if !release.is_empty() {
        m.insert("kernel".into(), json!(release));
    }
    if let Some(total) = metrics.memory_total_mb {
        // The SDK's type: MB as a float with one decimal.
        m.insert(
            "memory_total_mb".into(),
            json!((total * 10.0).round() / 10.0),
        );
    }
    let (model, count) = cpu_model_and_count();
    if let Some(model) = model {
        m.insert("cpu_model".into(), json!(model));
    }
    m.insert("cpu_count".into(), json!(count));
    if let Some((source, temp)) = &metrics.cpu_temp {
        m.insert("thermal_source".into(), json!(source));
        m.insert("cpu_temp_c".into(), json!(temp));
    }
    if let Some(p) = metrics.memory_percent {
        m.insert("memory_used_percent".into(), json!(p));
    }
    if let Some(a) = metrics.memory_available_mb {
        m.insert("memory_available_mb".into(), json!(a));
    }
    if let Some(p) = metrics.power_mw {
        m.insert("power_mw".into(), json!(p));
    }
    if let Some(b) = metrics.battery_wh {
        m.insert("battery_wh".into(), json!(b));
    }
    m.insert("edge_core_version".into(), json!(crate::VERSION));
    if let Some((name, mac)) = primary_interface() {
        m.insert("primary_mac_address".into(), json!(mac));
        m.insert("primary_interface_name".into(), json!(name));
    }
    if let Some(serial) = device_serial() {
        m.insert("device_serial".into(), json!(serial));
    }
    m.insert(
        "network_interfaces".into(),
        Value::Array(network_interfaces()),
    );
    if !watchdog_layers.is_empty() {
        m.insert("watchdog_layers".into(), json!(watchdog_layers));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_is_cpythons() {
        let rows = [
            (
                (
                    "Linux",
                    "6.1.0-18-arm64",
                    "aarch64",
                    Some(("glibc", "2.36")),
                ),
                "Linux-6.1.0-18-arm64-aarch64-with-glibc2.36",
            ),
            (
                ("Linux", "5.15.0 (x)", "x86_64", None),
                "Linux-5.15.0_-x-x86_64-with",
            ),
            (
                ("Linux", "unknown", "x86_64", Some(("glibc", "2.31"))),
                "Linux-x86_64-with-glibc2.31",
            ),
        ];
        for ((s, r, m, l), want) in rows {
            assert_eq!(python_platform(s, r, m, l), want);
        }
        // The real CPython on this machine, when there is one.
        if let Ok(out) = std::process::Command::new("python3")
            .args(["-c", "import platform; print(platform.platform())"])
            .output()
            && out.status.success()
        {
            assert_eq!(
                platform_string(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
    }

    #[test]
    fn identity_is_usable() {
        let id = identity();
        assert!(id.platform.starts_with("Linux-"));
        assert_eq!(id.mac.len(), 17);
    }

    #[test]
    fn facts_have_the_always_present_keys() {
        let facts = host_facts(&crate::health::HostSnapshot::default(), &["systemd"]);
        assert!(facts["platform"].is_string());
        assert!(facts["has_hardware_watchdog"].is_boolean());
        assert_eq!(facts["watchdog_layers"], json!(["systemd"]));
        assert_eq!(facts["edge_core_version"], json!(crate::VERSION));
    }
}
