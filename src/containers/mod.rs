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
pub mod role;
pub mod runtime;
pub mod spec;

/// Labels every managed container carries, whatever its role.
pub const LABEL_SPEC_HASH: &str = "io.cyberwave.edge.spec-hash";
/// `cyberwave-edge-core/<version>`: observation and events are filtered on it.
pub const LABEL_CREATED_BY: &str = "io.cyberwave.edge.created-by";
/// The fingerprint of the edge that created the container: cleanup touches only its own.
pub const LABEL_OWNER: &str = "io.cyberwave.edge.owner";
