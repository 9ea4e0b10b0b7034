//! `cyberwave-edge-core`: thin entry point. Exit codes: 0 clean stop / healthy, 1 runtime
//! failure / degraded, 2 not configured or token rejected / not running (see README).

use std::io::Write;
use std::process::ExitCode;

use cyberwave_edge::cli::{EdgeCoreArgs, EdgeCoreCommand};

fn main() -> ExitCode {
    // The installer's hidden commands (reference §10.1), outside the visible CLI.
    let raw: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match raw.first().map(String::as_str) {
        Some("__selfcheck_sdk") => {
            // The REST client is built in: there is no SDK to be missing.
            let _ = writeln!(std::io::stdout(), "sdk-rest-ok");
            return ExitCode::SUCCESS;
        }
        Some("__ensure-systemd-unit") => {
            let code = cyberwave_edge::control::unit::ensure_command(&raw[1..]);
            return ExitCode::from(code as u8);
        }
        _ => {}
    }
    let args: EdgeCoreArgs = argh::from_env();
    if args.version {
        let _ = writeln!(
            std::io::stdout(),
            "cyberwave-edge-core, version {}",
            cyberwave_edge::VERSION
        );
        return ExitCode::SUCCESS;
    }
    // Only ring is compiled in; make it the process default before any TLS is set up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match args.command {
        Some(EdgeCoreCommand::Status(s)) => {
            ExitCode::from(cyberwave_edge::control::status::run(s.json) as u8)
        }
        Some(EdgeCoreCommand::Worker(w)) => {
            cyberwave_edge::logging::init("warning");
            ExitCode::from(cyberwave_edge::control::worker::run(w.command.verb()) as u8)
        }
        command @ (Some(EdgeCoreCommand::Run(_)) | None) => {
            let local_manifest = match command {
                Some(EdgeCoreCommand::Run(r)) => r.local,
                _ => None,
            };
            daemon(cyberwave_edge::edge::RunOptions { local_manifest })
        }
    }
}

fn daemon(opts: cyberwave_edge::edge::RunOptions) -> ExitCode {
    match cyberwave_edge::edge::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Plain stderr: the logger is not up yet when the settings are bad.
            let _ = writeln!(std::io::stderr(), "cyberwave-edge-core: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
