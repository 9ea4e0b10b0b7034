//! What the daemon prints, checked line by line against what 0.1.30 prints (reference §1.2,
//! §1.3, §10.3, and the original itself): the log line format on stderr and the startup
//! report on stdout.

use std::time::Duration;

use crate::support::docker as dk;
use crate::support::drivers::{container, driver_state, setup};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// `2026-12-03 08:36:26 UTC.075 [WARNING] [cyberwave.mqtt] message`: Python's
/// `%(asctime)s.%(msecs)03d [%(levelname)s] [%(name)s] %(message)s` with the original's
/// `datefmt` in UTC.
fn is_python_log_line(l: &str) -> bool {
    let b = l.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let stamp = digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b' ')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19)
        && l.get(19..24) == Some(" UTC.")
        && digits(24..27)
        && at(27, b' ');
    if !stamp {
        return false;
    }
    let rest = &l[28..];
    let Some((level, rest)) = rest.strip_prefix('[').and_then(|r| r.split_once("] [")) else {
        return false;
    };
    let Some((name, _msg)) = rest.split_once("] ") else {
        return false;
    };
    ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "TRACE"].contains(&level)
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

#[test]
fn every_log_line_has_the_originals_format() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let mut d = Daemon::start(&dir);
    assert!(wait_until(20 * SEC, || d.log().contains("edge registered")));
    d.terminate();
    let log = d.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 5, "{log}");
    for l in &lines {
        // The network-interfaces line is one the original `print`s raw to stderr (after the
        // discover answer binds twins, so a run may or may not reach it before the stop).
        if l.starts_with("Network interfaces: ") {
            continue;
        }
        assert!(is_python_log_line(l), "not in 0.1.30's format: {l:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" [INFO] [cyberwave.mqtt] MQTT connected")),
        "{log}"
    );
    assert!(!log.contains("[WARN]"), "{log}");
    // The format checker itself: the original's own example line passes, ours of old did not.
    assert!(is_python_log_line(
        "2026-12-03 08:36:26 UTC.075 [WARNING] [cyberwave.mqtt] message"
    ));
    assert!(!is_python_log_line(
        "2026-12-03T08:36:26.075Z [WARN] [cyberwave_edge::mqtt::link] message"
    ));
}

#[test]
fn the_startup_report_has_the_originals_lines_in_its_order() {
    let Some((twin, _backend, _broker, dir, _c)) = setup("startup_report", "run") else {
        return;
    };
    let mut d = Daemon::start(&dir);
    let name = container(&twin);
    assert!(
        wait_until(60 * SEC, || d
            .stdout()
            .contains("All startup checks passed.")
            || d.stdout()
                .contains("Startup checks completed with warnings.")),
        "{}\n{}",
        d.stdout(),
        d.log()
    );
    let out = d.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let config_dir = dir.path.display().to_string();
    let want_prefixes = [
        "".to_string(),
        "Cyberwave Edge Core — Startup Checks".to_string(),
        "".to_string(),
        format!("  Config dir:  {config_dir}"),
        format!("  Base URL:    {}", _backend.url()),
        "  Environment: dev".to_string(),
        "".to_string(),
        "  ✓ Credentials (".to_string(),
        "  ✓ Token (".to_string(),
        "  ✓ MQTT broker (".to_string(),
        "  ✓ Edge registration (".to_string(),
        "  ✓ Host facts (".to_string(),
        format!("  ✓ Environment ({ENV_UUID}, "),
        "  ✓ Edge heartbeat (1 twin(s), ".to_string(),
        "  ✓ Zenoh (".to_string(),
        "  ✓ Twin drivers (1/1, ".to_string(),
        format!("    driver twin run → {} ✓", dk::IMAGE),
        "  ✓ Worker sync (written=0, removed=0, ".to_string(),
        "  No active workflows for connected twins; worker container not started.".to_string(),
        "".to_string(),
        "All startup checks passed.".to_string(),
        "".to_string(),
    ];
    assert_eq!(lines.len(), want_prefixes.len(), "{out}");
    for (got, want) in lines.iter().zip(&want_prefixes) {
        assert!(
            got.starts_with(want.as_str()),
            "{got:?} should start {want:?}\n{out}"
        );
    }
    // Timings as the original prints them: `(0.123s)`.
    let t = lines[7].trim_start_matches("  ✓ Credentials (");
    assert!(t.ends_with("s)") && t.contains('.'), "{t}");
    assert_eq!(
        driver_state(&dir.status().1, &name).as_deref(),
        Some("running")
    );
    d.terminate();
}

/// Where we differ on purpose: an unreachable backend does not stop the start-up; the report
/// says so in its own line.
#[test]
fn an_offline_boot_says_so_in_the_report() {
    let backend = backend_with_twins();
    backend.set_offline(true);
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let mut d = Daemon::start(&dir);
    assert!(
        wait_until(30 * SEC, || d.stdout().contains("  ⚠ Token (")),
        "{}\n{}",
        d.stdout(),
        d.log()
    );
    let out = d.stdout();
    assert!(
        out.contains("0.1.30 stops here; this edge goes on"),
        "{out}"
    );
    d.terminate();
}
