//! The MQTT link: topic names (pure) and the link itself, a thread
//! around rumqttc's sync client plus an outbox pump, so publishing never blocks a caller.

mod link;
mod options;
mod probe;
pub mod topics;

// Broker settings are configuration (the bottom floor); re-exported where links are made.
pub use crate::config::broker::{
    BrokerConfig, DEFAULT_MQTT_HOST, DEFAULT_MQTT_PORT, broker_credentials, is_local_host,
    topic_prefix, url_host, username_for_token,
};
pub use link::{Link, LinkError, LinkEvent, LinkStats, MqttHandle, SharedHandle, new_client_id};
pub use probe::{ProbeError, probe};
