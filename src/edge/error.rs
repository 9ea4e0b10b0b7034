//! Why the daemon stops with an error, and the exit code of each.

use std::fmt;

use crate::config::SettingsError;

/// Why the daemon stopped with an error; each maps to an exit code in the binary.
#[derive(Debug)]
#[non_exhaustive]
pub enum DaemonError {
    /// Missing or unusable configuration (exit 2).
    Settings(SettingsError),
    /// The backend rejected the token at boot (exit 2).
    TokenRejected(String),
    /// Could not set up the process (socket, threads; exit 1).
    Startup(String),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Settings(e) => write!(f, "{e}"),
            DaemonError::TokenRejected(e) => write!(f, "{e}"),
            DaemonError::Startup(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DaemonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DaemonError::Settings(e) => Some(e),
            _ => None,
        }
    }
}

impl DaemonError {
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Settings(_) | DaemonError::TokenRejected(_) => 2,
            DaemonError::Startup(_) => 1,
        }
    }
}
