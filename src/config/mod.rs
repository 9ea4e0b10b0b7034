//! Configuration: where the config directory is, the files the Cyberwave CLI writes into it
//! (`credentials.json`, `environment.json`), the ones we write (`fingerprint.json`,
//! `edge.json`), and one typed [`Settings`] value parsed once from all of them.

pub mod broker;
mod dir;
mod env;
mod files;
pub mod fingerprint;
pub mod ownership;
mod settings;

pub use dir::{LEGACY_CONFIG_DIR, migrate_legacy, resolve_config_dir};
pub use env::EnvLayer;
pub use env::MAX_DURATION_SECONDS;
pub(crate) use env::{optional_seconds_or_warn, parse_or_warn, seconds_or_warn, truthy};
pub(crate) use files::read_json_object as read_json_object_pub;
pub(crate) use files::read_json_object_max;
pub use files::{
    Credentials, EnvironmentFile, FileError, FileProblem, edge_uuid, parse_uuid, write_edge_json,
};
pub use settings::{MqttProtocol, Secret, Settings, SettingsError};

/// Names of the files in the config directory that are not twin files.
pub const CREDENTIALS_FILE: &str = "credentials.json";
pub const ENVIRONMENT_FILE: &str = "environment.json";
pub const FINGERPRINT_FILE: &str = "fingerprint.json";
pub const EDGE_FILE: &str = "edge.json";
/// The daemon's control socket in the config dir (`CYBERWAVE_EDGE_CONTROL_SOCKET` overrides).
pub const CONTROL_SOCKET_NAME: &str = "edge-core.sock";
/// Last good answer of the backend for the linked environment (twins and their assets), so an
/// offline boot still knows what this edge runs. Ours; the Python original has no such cache.
pub const DESIRED_STATE_CACHE_FILE: &str = "edge-core-cache.json";
