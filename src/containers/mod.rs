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
pub mod lock;
pub mod plan;
pub mod reserve;
pub mod retire;
pub mod role;
pub mod runtime;
pub mod spec;
pub mod supervised;
pub mod updates;

/// Labels every managed container carries, whatever its role.
pub const LABEL_SPEC_HASH: &str = "io.cyberwave.edge.spec-hash";
/// The owner of a service graph (a driver's twin), on its containers and on the networks and
/// volumes it creates.
pub const LABEL_GRAPH_OWNER: &str = "io.cyberwave.edge.twin";
/// The service a container is in its graph.
pub const LABEL_SERVICE: &str = "io.cyberwave.edge.service";
pub use crate::engine::{LABEL_CREATED_BY, LABEL_OWNER};

/// Appends the json-file log caps every managed container gets (`None`:
/// `CYBERWAVE_DOCKER_LOG_MAX_SIZE=off`, the engine's own logging is left as it is).
pub fn push_log_caps(options: &mut Vec<String>, max_size: Option<&str>, max_file: &str) {
    if let Some(size) = max_size {
        options.extend(["--log-driver".into(), "json-file".into()]);
        options.extend(["--log-opt".into(), format!("max-size={size}")]);
        options.extend(["--log-opt".into(), format!("max-file={max_file}")]);
    }
}

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
