//! The daemon's MQTT link: started with a last will that marks this edge OFFLINE once it
//! knows its edge uuid.

use std::time::Duration;

use crossbeam_channel::Sender;

use super::error::DaemonError;
use super::node;
use crate::config::Settings;
use crate::mqtt::{Link, LinkEvent};

/// How long shutdown waits for the MQTT DISCONNECT to go out.
pub(super) const MQTT_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The link, with a last will that marks this edge OFFLINE when it knows its edge uuid.
pub(super) fn start_link(
    settings: &Settings,
    events: &Sender<LinkEvent>,
    will: Option<(String, Vec<u8>)>,
) -> Result<Link, DaemonError> {
    Link::start_with_will(
        &settings.mqtt,
        crate::mqtt::new_client_id(),
        settings.mqtt_outbox,
        events.clone(),
        will,
    )
    .map_err(|e| DaemonError::Startup(e.to_string()))
}

/// The last will for `edge_uuid`: OFFLINE, retained.
pub(super) fn will_for(
    settings: &Settings,
    edge_uuid: &str,
    fingerprint: &str,
) -> (String, Vec<u8>) {
    (
        node::topic(&settings.mqtt.topic_prefix, edge_uuid),
        node::payload("OFFLINE", Some("connection lost"), edge_uuid, fingerprint)
            .to_string()
            .into_bytes(),
    )
}
