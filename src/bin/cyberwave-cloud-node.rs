//! `cyberwave-cloud-node`: thin entry point. Exit codes: 0 clean stop / healthy, 1 startup
//! failure (install script, registration) / degraded, 2 configuration / not running.

use std::io::Write;
use std::process::ExitCode;

use cyberwave_edge::cli::{CloudNodeArgs, CloudNodeCommand, StartArgs};
use cyberwave_edge::cloud_node::config::Flags;

fn main() -> ExitCode {
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
        Some(CloudNodeCommand::Status(s)) => {
            return ExitCode::from(cyberwave_edge::cloud_node::status(s.json) as u8);
        }
        Some(CloudNodeCommand::Start(s)) => s,
        // The CLI's background spawn runs the binary without `start`.
        None => StartArgs::default(),
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
