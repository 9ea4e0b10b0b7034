//! The runtime every managed container stands on, whatever its role (driver, worker,
//! router): it knows containers, never twins, MQTT or alerts. Roles supply what to run and
//! what to do with what the runtime reports.

pub mod breaker;
pub mod engine;
pub mod follow;
pub mod plan;
