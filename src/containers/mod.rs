//! The runtime every managed container stands on, whatever its role (driver, worker,
//! router): it knows containers, never twins, MQTT or alerts. Roles supply what to run and
//! what to do with what the runtime reports.

pub mod book;
pub mod breaker;
pub mod cleanup;
pub mod engine;
pub mod executor;
pub mod follow;
pub mod image;
pub mod launch;
pub mod plan;
pub mod retire;
pub mod role;
pub mod runtime;
pub mod spec;
pub mod supervised;

/// Labels every managed container carries, whatever its role.
pub const LABEL_SPEC_HASH: &str = "io.cyberwave.edge.spec-hash";
pub use crate::engine::{LABEL_CREATED_BY, LABEL_OWNER};

/// Appends the labels every managed container ends with: its spec hash, who created it and
/// which edge owns it (after the hash: which edge runs a container does not change what it
/// runs).
pub fn push_managed_labels(options: &mut Vec<String>, spec_hash: &str, owner: &str) {
    options.extend(["--label".into(), format!("{LABEL_SPEC_HASH}={spec_hash}")]);
    options.extend([
        "--label".into(),
        format!("{LABEL_CREATED_BY}=cyberwave-edge-core/{}", crate::VERSION),
    ]);
    options.extend(["--label".into(), format!("{LABEL_OWNER}={owner}")]);
}
