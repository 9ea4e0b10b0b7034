//! The MQTT link: broker settings (pure), topic names (pure), and the link itself, a thread
//! around rumqttc's sync client plus an outbox pump, so publishing never blocks a caller.

mod config;
mod link;
pub mod topics;

pub use config::{
    BrokerConfig, DEFAULT_MQTT_HOST, DEFAULT_MQTT_PORT, broker_credentials, is_local_host,
    topic_prefix, url_host, username_for_token,
};
pub(crate) use config::{parse_or_warn, truthy};
pub use link::{
    Link, LinkError, LinkEvent, LinkStats, MqttHandle, SharedHandle, new_client_id, probe,
};
