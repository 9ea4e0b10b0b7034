//! `cyberwave-cloud-node`: thin entry point. Exit codes: 0 clean stop / healthy, 1 startup
//! failure (install script, registration) / degraded, 2 configuration / not running.

use std::io::Write;
use std::process::ExitCode;

use cyberwave_edge::cli::{CloudNodeArgs, CloudNodeCommand};
use cyberwave_edge::cloud_node::config::Flags;

fn main() -> ExitCode {
    // The reaper (a copy of this binary that ends commands if the node dies): see groups.rs.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(
            cyberwave_edge::cloud_node::groups::REAPER_ARG,
        ))
    {
        return ExitCode::from(cyberwave_edge::cloud_node::groups::reaper_main() as u8);
    }
    let args: CloudNodeArgs = argh::from_env();
    if args.version {
        let _ = writeln!(
            std::io::stdout(),
            "cyberwave-cloud-node, version {}",
            cyberwave_edge::VERSION
        );
        return ExitCode::SUCCESS;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let start = match args.command {
        Some(CloudNodeCommand::Status(ref s)) => {
            return ExitCode::from(cyberwave_edge::cloud_node::status(s.json) as u8);
        }
        Some(CloudNodeCommand::Start(ref s)) => args.start_args(Some(s.clone())),
        // The CLI's background spawn runs `cyberwave-cloud-node [--config FILE]`.
        None => args.start_args(None),
    };
    let flags = Flags {
        slug: start.slug,
        config: start.config,
        profile: start.profile,
        mqtt_host: start.mqtt_host,
        mqtt_port: start.mqtt_port,
    };
    match cyberwave_edge::cloud_node::run(flags, start.verbose) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cyberwave-cloud-node: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
