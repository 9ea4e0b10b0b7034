//! Errors of a container engine call: each names the command (`docker stop …`) and carries
//! what the engine said, cut to the reason ([`error_summary`]).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine's binary could not be started (not installed, wrong `CYBERWAVE_DOCKER_BIN`).
    Spawn { command: String, detail: String },
    /// No answer within the call's deadline: the child was killed.
    TimedOut { command: String, after: Duration },
    /// The engine answered with a failure: its exit code (`None`: killed by a signal) and
    /// the reason it printed.
    Failed {
        command: String,
        code: Option<i32>,
        message: String,
    },
    /// The engine answered, but not in the shape we expect.
    Parse { command: String, detail: String },
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Spawn { command, detail } => {
                write!(f, "{command}: cannot start it: {detail}")
            }
            EngineError::TimedOut { command, after } => write!(
                f,
                "{command}: no answer within {} s (killed)",
                after.as_secs()
            ),
            EngineError::Failed {
                command,
                code,
                message,
            } => match code {
                Some(c) => write!(f, "{command}: exit {c}: {message}"),
                None => write!(f, "{command}: killed by a signal: {message}"),
            },
            EngineError::Parse { command, detail } => {
                write!(f, "{command}: unexpected output: {detail}")
            }
        }
    }
}

impl std::error::Error for EngineError {}

/// Most characters kept of each line of a docker error.
const ERROR_LINE_MAX: usize = 400;

/// What a failed engine call said, for logs, `status` and alerts: its first meaningful line
/// (the reason) and, when different, its last, each cut to [`ERROR_LINE_MAX`] characters.
/// Hints (`See 'docker create --help'.`, `Run '…--help' for more information`) and a usage
/// block after them are not the reason: keeping only the last line used to lose it.
pub fn error_summary(stderr: &str) -> String {
    let cut = |l: &str| l.chars().take(ERROR_LINE_MAX).collect::<String>();
    let is_hint =
        |l: &str| (l.starts_with("See '") || l.starts_with("Run '")) && l.contains("--help");
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty())
        .collect();
    let meaningful: Vec<&str> = lines.iter().copied().filter(|l| !is_hint(l)).collect();
    match (meaningful.first(), meaningful.last()) {
        (Some(first), Some(last)) if first != last => format!("{} … {}", cut(first), cut(last)),
        (Some(first), _) => cut(first),
        _ => lines.last().map(|l| cut(l)).unwrap_or_default(),
    }
}
