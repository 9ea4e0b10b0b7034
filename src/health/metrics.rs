//! Host figures from /proc and /sys (reference §2.6, §11.2): memory, CPU busy % between two
//! samples, disk % of Docker's data root, hottest CPU thermal zone, board power.

use std::fs;
use std::path::{Path, PathBuf};

/// One reading of the host. `None` = not available on this board.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSnapshot {
    pub memory_percent: Option<f64>,
    pub memory_available_mb: Option<f64>,
    pub memory_total_mb: Option<f64>,
    /// Busy % since the previous sample; absent on the first.
    pub cpu_percent: Option<f64>,
    pub disk_percent: Option<f64>,
    /// (zone type, °C) of the hottest CPU-like thermal zone.
    pub cpu_temp: Option<(String, f64)>,
    pub power_mw: Option<f64>,
    pub battery_wh: Option<f64>,
    /// Consecutive readings at critical pressure (memory ≥ 92 % or ≥ 82 °C).
    pub consecutive_critical: u32,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// (used %, available MB, total MB) from `/proc/meminfo` text.
pub fn parse_meminfo(text: &str) -> Option<(f64, f64, f64)> {
    let mut total = None;
    let mut available = None;
    let (mut free, mut buffers, mut cached) = (None, 0.0, 0.0);
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let key = parts.next().unwrap_or("");
        let kb: Option<f64> = parts.next().and_then(|v| v.parse().ok());
        match (key, kb) {
            ("MemTotal:", Some(v)) => total = Some(v),
            ("MemAvailable:", Some(v)) => available = Some(v),
            ("MemFree:", Some(v)) => free = Some(v),
            ("Buffers:", Some(v)) => buffers = v,
            ("Cached:", Some(v)) => cached = v,
            _ => {}
        }
    }
    let total = total.filter(|t| *t > 0.0)?;
    let available = available.or_else(|| free.map(|f| f + buffers + cached))?;
    Some((
        round1((1.0 - available / total) * 100.0),
        round1(available / 1024.0),
        round1(total / 1024.0),
    ))
}

/// (idle, total) jiffies from the aggregate `cpu` line of `/proc/stat`.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let vals: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if vals.len() < 4 {
        return None;
    }
    // idle + iowait count as idle; guest time is already inside user/nice.
    let idle = vals[3] + vals.get(4).copied().unwrap_or(0);
    let total: u64 = vals.iter().take(8).sum();
    Some((idle, total))
}

pub fn cpu_percent(prev: (u64, u64), cur: (u64, u64)) -> Option<f64> {
    let total = cur.1.checked_sub(prev.1)?;
    let idle = cur.0.checked_sub(prev.0)?;
    if total == 0 {
        return None;
    }
    Some(round1(
        (total.saturating_sub(idle)) as f64 * 100.0 / total as f64,
    ))
}

fn cpu_like(zone_type: &str) -> bool {
    let t = zone_type.to_ascii_lowercase();
    [
        "cpu", "soc", "x86_pkg", "coretemp", "k10temp", "tctl", "package",
    ]
    .iter()
    .any(|k| t.contains(k))
}

/// Hottest thermal zone under `sys/class/thermal`, preferring CPU-like zone types.
pub fn read_temperature(sys: &Path) -> Option<(String, f64)> {
    let mut zones: Vec<(String, f64)> = Vec::new();
    for entry in fs::read_dir(sys.join("class/thermal")).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("thermal_zone") {
            continue;
        }
        let dir = entry.path();
        let Some(milli) = fs::read_to_string(dir.join("temp"))
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let kind = fs::read_to_string(dir.join("type"))
            .unwrap_or_default()
            .trim()
            .to_string();
        zones.push((kind, round1(milli / 1000.0)));
    }
    let cpu: Vec<&(String, f64)> = zones.iter().filter(|(k, _)| cpu_like(k)).collect();
    let pool: Vec<&(String, f64)> = if cpu.is_empty() {
        zones.iter().collect()
    } else {
        cpu
    };
    pool.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).cloned()
}

fn sum_files(paths: impl Iterator<Item = PathBuf>, divisor: f64) -> Option<f64> {
    let mut sum = None;
    for p in paths {
        if let Some(v) = fs::read_to_string(&p)
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
        {
            *sum.get_or_insert(0.0) += v / divisor;
        }
    }
    sum
}

fn glob_children(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Board power in mW: Jetson INA3221 rails, else hwmon `power1_input` (µW), else batteries'
/// `power_now` (µW). The first strategy with a readable value wins.
pub fn read_power_mw(sys: &Path) -> Option<f64> {
    let ina = glob_children(&sys.join("bus/i2c/drivers/ina3221x"), "")
        .into_iter()
        .flat_map(|d| glob_children(&d, "iio:device"))
        .map(|d| d.join("in_power0_input"));
    if let Some(v) = sum_files(ina, 1.0) {
        return Some(v.round());
    }
    let hwmon = glob_children(&sys.join("class/hwmon"), "hwmon")
        .into_iter()
        .map(|d| d.join("power1_input"));
    if let Some(v) = sum_files(hwmon, 1000.0) {
        return Some(v.round());
    }
    let bat = glob_children(&sys.join("class/power_supply"), "BAT")
        .into_iter()
        .map(|d| d.join("power_now"));
    sum_files(bat, 1000.0).map(f64::round)
}

pub use crate::fsutil::disk_percent;

/// Keeps the previous CPU sample and the critical-pressure streak between readings.
pub struct Sampler {
    proc_root: PathBuf,
    sys_root: PathBuf,
    disk_path: PathBuf,
    battery_wh: Option<f64>,
    prev_cpu: Option<(u64, u64)>,
    consecutive_critical: u32,
}

impl Sampler {
    pub fn new(disk_path: PathBuf, battery_wh: Option<f64>) -> Self {
        Self::with_roots("/proc".into(), "/sys".into(), disk_path, battery_wh)
    }

    pub fn with_roots(
        proc_root: PathBuf,
        sys_root: PathBuf,
        disk_path: PathBuf,
        battery_wh: Option<f64>,
    ) -> Self {
        Sampler {
            proc_root,
            sys_root,
            disk_path,
            battery_wh,
            prev_cpu: None,
            consecutive_critical: 0,
        }
    }

    pub fn set_disk_path(&mut self, p: PathBuf) {
        self.disk_path = p;
    }

    pub fn sample(&mut self) -> HostSnapshot {
        let mem = fs::read_to_string(self.proc_root.join("meminfo"))
            .ok()
            .and_then(|t| parse_meminfo(&t));
        let cur = fs::read_to_string(self.proc_root.join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t));
        let cpu = match (self.prev_cpu, cur) {
            (Some(p), Some(c)) => cpu_percent(p, c),
            _ => None,
        };
        if cur.is_some() {
            self.prev_cpu = cur;
        }
        let temp = read_temperature(&self.sys_root);
        let critical =
            mem.is_some_and(|m| m.0 >= 92.0) || temp.as_ref().is_some_and(|t| t.1 >= 82.0);
        self.consecutive_critical = if critical {
            self.consecutive_critical + 1
        } else {
            0
        };
        HostSnapshot {
            memory_percent: mem.map(|m| m.0),
            memory_available_mb: mem.map(|m| m.1),
            memory_total_mb: mem.map(|m| m.2),
            cpu_percent: cpu,
            disk_percent: disk_percent(&self.disk_path),
            cpu_temp: temp,
            power_mw: read_power_mw(&self.sys_root),
            battery_wh: self.battery_wh,
            consecutive_critical: self.consecutive_critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let t = "MemTotal:        4000000 kB\nMemFree:          100000 kB\nMemAvailable:    1000000 kB\n";
        assert_eq!(parse_meminfo(t), Some((75.0, 976.6, 3906.3)));
        let t = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 100 kB\nCached: 300 kB\n";
        assert_eq!(parse_meminfo(t).unwrap().0, 50.0);
        assert_eq!(parse_meminfo("garbage"), None);
    }

    #[test]
    fn cpu_delta() {
        let a = parse_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = parse_stat("cpu  150 0 150 850 150 0 0 0 0 0\n").unwrap();
        assert_eq!(a, (800, 1000));
        assert_eq!(cpu_percent(a, b), Some(33.3));
        assert_eq!(cpu_percent(b, a), None);
        assert_eq!(cpu_percent(a, a), None);
    }

    #[test]
    fn sysfs_tree() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path();
        for (zone, kind, temp) in [
            ("thermal_zone0", "cpu-thermal", "52600"),
            ("thermal_zone1", "gpu-thermal", "90000"),
            ("thermal_zone2", "soc_thermal", "61000"),
        ] {
            let z = sys.join("class/thermal").join(zone);
            fs::create_dir_all(&z).unwrap();
            fs::write(z.join("type"), kind).unwrap();
            fs::write(z.join("temp"), temp).unwrap();
        }
        assert_eq!(read_temperature(sys), Some(("soc_thermal".into(), 61.0)));
        assert_eq!(read_power_mw(sys), None);
        let h = sys.join("class/hwmon/hwmon0");
        fs::create_dir_all(&h).unwrap();
        fs::write(h.join("power1_input"), "5400000\n").unwrap();
        assert_eq!(read_power_mw(sys), Some(5400.0));
        let ina = sys.join("bus/i2c/drivers/ina3221x/1-0040/iio:device0");
        fs::create_dir_all(&ina).unwrap();
        fs::write(ina.join("in_power0_input"), "1200").unwrap();
        assert_eq!(read_power_mw(sys), Some(1200.0));
    }

    #[test]
    fn live_host_sample() {
        let mut s = Sampler::new("/".into(), Some(36.0));
        let first = s.sample();
        assert!(first.memory_percent.is_some());
        assert!(first.cpu_percent.is_none());
        assert!(
            first
                .disk_percent
                .is_some_and(|p| (0.0..=100.0).contains(&p))
        );
        std::thread::sleep(std::time::Duration::from_millis(30));
        let second = s.sample();
        assert_eq!(second.battery_wh, Some(36.0));
        assert!(
            second
                .cpu_percent
                .is_none_or(|p| (0.0..=100.0).contains(&p))
        );
    }
}
