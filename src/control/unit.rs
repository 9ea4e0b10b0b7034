//! The hidden commands the Cyberwave CLI's installer runs (reference §10.1): `__selfcheck_sdk`
//! and `__ensure-systemd-unit`, which keeps `/etc/systemd/system/cyberwave-edge-core.service`
//! at the unit 0.1.30 ships (§10.2) while preserving the `ExecStart=` and config dir the
//! installer chose, and never restarts the service.

use std::path::Path;
use std::time::Duration;

/// Where the unit lives; `CYBERWAVE_SYSTEMD_UNIT_PATH` overrides it (packagers, tests).
pub const UNIT_PATH: &str = "/etc/systemd/system/cyberwave-edge-core.service";
const DEFAULT_BINARY: &str = "/usr/bin/cyberwave-edge-core";

/// The 0.1.30 unit (§10.2) for `exec_start`, `config_dir` and the startup budget in minutes.
pub fn render(exec_start: &str, config_dir: &str, startup_minutes: u64) -> String {
    format!(
        "[Unit]
Description=Cyberwave Edge Core Orchestrator
After=network-online.target docker.service
Wants=network-online.target docker.service
JobTimeoutSec={job}min

[Service]
Type=notify
NotifyAccess=all
ExecStartPre=-/bin/sh -c 'if [ -x /usr/lib/cyberwave-edge-core/update-guard ]; then exec /usr/lib/cyberwave-edge-core/update-guard; fi'
ExecStart={exec_start}
Restart=always
RestartSec=5
WatchdogSec=60
TimeoutStartSec=900
TimeoutStopSec=90
KillMode=control-group
SendSIGKILL=yes
Environment=CYBERWAVE_EDGE_CONFIG_DIR={config_dir}
OOMScoreAdjust=-800
StandardOutput=journal
StandardError=journal
SyslogIdentifier=cyberwave-edge-core

[Install]
WantedBy=multi-user.target
",
        job = startup_minutes + 5
    )
}

/// The `ExecStart=` and `CYBERWAVE_EDGE_CONFIG_DIR` of an existing unit, to keep them.
pub fn existing_values(unit: &str) -> (Option<String>, Option<String>) {
    let mut exec = None;
    let mut dir = None;
    for line in unit.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("ExecStart=") {
            exec = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        } else if let Some(v) = line.strip_prefix("Environment=").and_then(|v| {
            v.trim_matches('"')
                .strip_prefix("CYBERWAVE_EDGE_CONFIG_DIR=")
        }) {
            dir = Some(v.trim_matches('"').to_string()).filter(|v| !v.is_empty());
        }
    }
    (exec, dir)
}

/// What `__ensure-systemd-unit` was asked.
#[derive(Debug, Default, PartialEq)]
pub struct EnsureArgs {
    pub install: bool,
    pub binary_path: Option<String>,
    pub config_dir: Option<String>,
}

/// `[--install] [--binary-path P] [--config-dir D]`; an unknown or incomplete argument names it.
pub fn parse_args(args: &[String]) -> Result<EnsureArgs, String> {
    let mut out = EnsureArgs::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .filter(|v| !v.is_empty() && !v.contains('\n'))
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--install" => out.install = true,
            "--binary-path" => out.binary_path = Some(value("--binary-path")?),
            "--config-dir" => out.config_dir = Some(value("--config-dir")?),
            other => return Err(format!("unknown argument {:?}", crate::clip(other, 80))),
        }
    }
    Ok(out)
}

/// Writes the unit when it differs (or, with `install`, when it is missing) and asks systemd
/// to reload through `reload`. Returns the lines to print and the exit code.
pub fn ensure(
    path: &Path,
    args: &EnsureArgs,
    default_config_dir: &str,
    startup_minutes: u64,
    reload: &dyn Fn() -> Result<(), String>,
) -> (Vec<String>, i32) {
    let p = path.display();
    let current = crate::fsutil::read_regular_text(path, 1 << 20).ok();
    if current.is_none() && !args.install {
        return (
            vec![format!(
                "ensure-systemd-unit: {p} not present, nothing to do"
            )],
            0,
        );
    }
    let (exec, dir) = current.as_deref().map(existing_values).unwrap_or_default();
    let exec = exec
        .or_else(|| args.binary_path.clone())
        .unwrap_or_else(|| DEFAULT_BINARY.to_string());
    let dir = dir
        .or_else(|| args.config_dir.clone())
        .unwrap_or_else(|| default_config_dir.to_string());
    let unit = render(&exec, &dir, startup_minutes);
    if current.as_deref() == Some(unit.as_str()) {
        return (vec![format!("ensure-systemd-unit: {p} up to date")], 0);
    }
    if let Some(parent) = path.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return (
            vec![format!("ensure-systemd-unit: cannot write unit: {e}")],
            1,
        );
    }
    if let Err(e) = crate::fsutil::write_atomic(path, unit.as_bytes(), 0o644) {
        return (
            vec![format!("ensure-systemd-unit: cannot write unit: {e}")],
            1,
        );
    }
    let mut lines = vec![format!("ensure-systemd-unit: wrote {p}")];
    lines.push(match reload() {
        Ok(()) => "ensure-systemd-unit: systemd reloaded (service not restarted)".into(),
        Err(e) => format!("ensure-systemd-unit: systemctl daemon-reload failed: {e}"),
    });
    (lines, 0)
}

/// `__ensure-systemd-unit …` from the command line: prints its lines, returns the exit code.
pub fn ensure_command(args: &[String]) -> i32 {
    use std::io::Write;
    let parsed = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ensure-systemd-unit: {e}");
            return 2;
        }
    };
    let env = crate::config::EnvLayer::from_process();
    let (dir, _) = crate::config::resolve_config_dir(&|k| env.process(k));
    let from_credentials =
        crate::config::Credentials::load(&dir.join(crate::config::CREDENTIALS_FILE))
            .ok()
            .and_then(|c| c.envs.get("CYBERWAVE_STARTUP_TIMEOUT_MINUTES").cloned());
    let minutes = startup_minutes(
        env.process("CYBERWAVE_STARTUP_TIMEOUT_MINUTES")
            .or(from_credentials)
            .as_deref(),
    );
    let path = env
        .process("CYBERWAVE_SYSTEMD_UNIT_PATH")
        .unwrap_or_else(|| UNIT_PATH.to_string());
    let (lines, code) = ensure(
        Path::new(&path),
        &parsed,
        &dir.display().to_string(),
        minutes,
        &daemon_reload,
    );
    for l in lines {
        let _ = writeln!(std::io::stdout(), "{l}");
    }
    code
}

/// `systemctl daemon-reload`, bounded.
pub fn daemon_reload() -> Result<(), String> {
    let mut cmd = std::process::Command::new("systemctl");
    cmd.arg("daemon-reload");
    match crate::process::run_with_deadline(cmd, Duration::from_secs(30)) {
        Ok(o) if o.status == Some(0) => Ok(()),
        Ok(o) => Err(crate::clip(
            &o.stderr.trim().lines().collect::<Vec<_>>().join("; "),
            300,
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `CYBERWAVE_STARTUP_TIMEOUT_MINUTES` (process environment, then `credentials.json` `envs`):
/// the startup budget the unit's `JobTimeoutSec` allows for; 30 when unset or unusable.
pub fn startup_minutes(value: Option<&str>) -> u64 {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|m| m.is_finite() && *m >= 1.0)
        .map_or(30, |m| m.min(1440.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_text_and_preserved_values() {
        let u = render("/opt/cw/cyberwave-edge-core", "/home/pi/.cyberwave", 30);
        assert!(u.contains("JobTimeoutSec=35min\n"));
        assert!(u.contains("ExecStart=/opt/cw/cyberwave-edge-core\n"));
        assert!(u.contains("Environment=CYBERWAVE_EDGE_CONFIG_DIR=/home/pi/.cyberwave\n"));
        assert!(u.contains("KillMode=control-group\nSendSIGKILL=yes\n"));
        assert!(
            u.starts_with("[Unit]\n")
                && u.contains("\n\n[Service]\n")
                && u.ends_with("multi-user.target\n")
        );
        assert_eq!(
            existing_values(&u),
            (
                Some("/opt/cw/cyberwave-edge-core".into()),
                Some("/home/pi/.cyberwave".into())
            )
        );
        assert_eq!(startup_minutes(None), 30);
        assert_eq!(startup_minutes(Some("60")), 60);
        assert_eq!(startup_minutes(Some("inf")), 30);
        assert_eq!(startup_minutes(Some("1e300")), 1440);
        assert_eq!(
            parse_args(&["--install".into(), "--config-dir".into(), "/d".into()]),
            Ok(EnsureArgs {
                install: true,
                binary_path: None,
                config_dir: Some("/d".into())
            })
        );
        assert!(parse_args(&["--binary-path".into()]).is_err());
        assert!(parse_args(&["--bogus".into()]).is_err());
    }

    #[test]
    fn the_packaged_unit_is_the_rendered_one() {
        let packaged = include_str!("../../packaging/systemd/cyberwave-edge-core.service");
        let body: String = packaged
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            body,
            render("/usr/bin/cyberwave-edge-core", "/root/.cyberwave", 30)
        );
    }

    #[test]
    fn ensure_writes_only_what_changed_and_keeps_the_installers_choices() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cyberwave-edge-core.service");
        let ok = || Ok(());
        let args = EnsureArgs::default();
        let (lines, code) = ensure(&path, &args, "/root/.cyberwave", 30, &ok);
        assert_eq!(
            (code, lines[0].ends_with("not present, nothing to do")),
            (0, true)
        );
        assert!(!path.exists());
        // The CLI's older unit: ExecStart and the config dir survive the update.
        std::fs::write(
            &path,
            "[Service]\nExecStart=/usr/local/bin/cyberwave-edge-core\nEnvironment=CYBERWAVE_EDGE_CONFIG_DIR=/home/pi/.cyberwave\n",
        )
        .unwrap();
        let (lines, code) = ensure(&path, &args, "/root/.cyberwave", 30, &ok);
        assert_eq!(code, 0);
        assert!(
            lines[0].starts_with("ensure-systemd-unit: wrote "),
            "{lines:?}"
        );
        assert_eq!(
            lines[1],
            "ensure-systemd-unit: systemd reloaded (service not restarted)"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/cyberwave-edge-core\n"));
        assert!(text.contains("CYBERWAVE_EDGE_CONFIG_DIR=/home/pi/.cyberwave\n"));
        let (lines, _) = ensure(&path, &args, "/root/.cyberwave", 30, &ok);
        assert!(lines[0].ends_with("up to date"), "{lines:?}");
        // --install on a fresh system, and a failing reload is reported, not fatal.
        std::fs::remove_file(&path).unwrap();
        let install = EnsureArgs {
            install: true,
            binary_path: Some("/usr/bin/cyberwave-edge-core".into()),
            config_dir: None,
        };
        let fail = || Err("no systemd".to_string());
        let (lines, code) = ensure(&path, &install, "/root/.cyberwave", 30, &fail);
        assert_eq!(code, 0);
        assert_eq!(
            lines[1],
            "ensure-systemd-unit: systemctl daemon-reload failed: no systemd"
        );
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("CYBERWAVE_EDGE_CONFIG_DIR=/root/.cyberwave\n")
        );
    }
}
