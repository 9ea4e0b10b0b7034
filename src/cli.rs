//! Command-line interface (argh). With no subcommand the edge core runs the daemon, like the
//! original click group.

use argh::FromArgs;

/// Cyberwave edge core: runs this device's drivers and keeps it linked to Cyberwave.
#[derive(FromArgs, Debug)]
pub struct EdgeCoreArgs {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<EdgeCoreCommand>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum EdgeCoreCommand {
    Run(RunArgs),
    Status(StatusArgs),
    Worker(WorkerArgs),
}

/// Manage the ML worker container (through the daemon when it runs).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "worker")]
pub struct WorkerArgs {
    #[argh(subcommand)]
    pub command: WorkerCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum WorkerCommand {
    Start(WorkerStart),
    Stop(WorkerStop),
    Restart(WorkerRestart),
    Status(WorkerStatus),
    Health(WorkerHealth),
    Logs(WorkerLogs),
}

/// Start the worker container (after its models are in the cache).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "start")]
pub struct WorkerStart {
    /// accepted for the Cyberwave CLI; checks always run
    #[argh(switch)]
    pub skip_preflight: bool,
}

/// Stop the worker container (it stays stopped until `worker start`).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stop")]
pub struct WorkerStop {}

/// Restart the worker container.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "restart")]
pub struct WorkerRestart {}

/// Show the worker container, worker files, cached models, GPU and health.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
pub struct WorkerStatus {
    /// print one JSON object instead of the report
    #[argh(switch)]
    pub json: bool,
}

/// Show the worker's readiness and restart history.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "health")]
pub struct WorkerHealth {
    /// print one JSON object instead of the report
    #[argh(switch)]
    pub json: bool,
}

/// Show the worker container's last 100 log lines and follow them.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "logs")]
pub struct WorkerLogs {
    /// print the last lines and exit
    #[argh(switch)]
    pub no_follow: bool,
}

impl WorkerCommand {
    /// The verb for [`crate::control::worker::run`].
    pub fn verb(&self) -> crate::control::worker::Verb {
        use crate::control::worker::Verb;
        match self {
            WorkerCommand::Start(_) => Verb::Start,
            WorkerCommand::Stop(_) => Verb::Stop,
            WorkerCommand::Restart(_) => Verb::Restart,
            WorkerCommand::Status(s) => Verb::Status { json: s.json },
            WorkerCommand::Health(h) => Verb::Health { json: h.json },
            WorkerCommand::Logs(l) => Verb::Logs {
                follow: !l.no_follow,
            },
        }
    }
}

/// Run the edge daemon (the default).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// run the drivers of a local JSON manifest of twins, with no backend and no broker
    #[argh(option)]
    pub local: Option<std::path::PathBuf>,
}

/// Report this device's state; exit 0 healthy, 1 degraded, 2 not configured or not running.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
pub struct StatusArgs {
    /// print one JSON object instead of the report
    #[argh(switch)]
    pub json: bool,
}

/// Cyberwave cloud node: runs inference and training commands received over MQTT.
/// With no subcommand it starts, taking `start`'s options (how the Cyberwave CLI runs it).
#[derive(FromArgs, Debug)]
pub struct CloudNodeArgs {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    /// instance slug hint (the backend decides the final slug)
    #[argh(option)]
    pub slug: Option<String>,
    /// path to cyberwave.yml (default: ./cyberwave.yml when present)
    #[argh(option)]
    pub config: Option<std::path::PathBuf>,
    /// node profile slug (default: from the file, CYBERWAVE_PROFILE_SLUG, or "default")
    #[argh(option)]
    pub profile: Option<String>,
    /// MQTT broker host
    #[argh(option)]
    pub mqtt_host: Option<String>,
    /// MQTT broker port
    #[argh(option)]
    pub mqtt_port: Option<u16>,
    /// debug logging
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    #[argh(subcommand)]
    pub command: Option<CloudNodeCommand>,
}

impl CloudNodeArgs {
    /// `start`'s options, those given after `start` winning over those before it.
    pub fn start_args(&self, start: Option<StartArgs>) -> StartArgs {
        let s = start.unwrap_or_default();
        StartArgs {
            slug: s.slug.or_else(|| self.slug.clone()),
            config: s.config.or_else(|| self.config.clone()),
            profile: s.profile.or_else(|| self.profile.clone()),
            mqtt_host: s.mqtt_host.or_else(|| self.mqtt_host.clone()),
            mqtt_port: s.mqtt_port.or(self.mqtt_port),
            verbose: s.verbose || self.verbose,
        }
    }
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum CloudNodeCommand {
    Start(StartArgs),
    Status(StatusArgs),
}

/// Register this host and serve commands (the default).
#[derive(FromArgs, Debug, Default, Clone)]
#[argh(subcommand, name = "start")]
pub struct StartArgs {
    /// instance slug hint (the backend decides the final slug)
    #[argh(option)]
    pub slug: Option<String>,
    /// path to cyberwave.yml (default: ./cyberwave.yml when present)
    #[argh(option)]
    pub config: Option<std::path::PathBuf>,
    /// node profile slug (default: from the file, CYBERWAVE_PROFILE_SLUG, or "default")
    #[argh(option)]
    pub profile: Option<String>,
    /// MQTT broker host
    #[argh(option)]
    pub mqtt_host: Option<String>,
    /// MQTT broker port
    #[argh(option)]
    pub mqtt_port: Option<u16>,
    /// debug logging
    #[argh(switch, short = 'v')]
    pub verbose: bool,
}
