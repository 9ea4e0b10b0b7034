//! One bounded connect attempt to the broker, for `status` when no daemon answers.

use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Packet};

use super::BrokerConfig;
use super::link::new_client_id;
use super::options::{LinkError, network_options, options};

/// Why the broker did not accept a connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProbeError {
    /// The settings do not make a client (the CA file, say).
    Settings(LinkError),
    /// The connection failed: what the client library said.
    Connect(String),
    /// No CONNACK within the probe's deadline.
    NoAnswer(Duration),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Settings(e) => write!(f, "{e}"),
            ProbeError::Connect(e) => f.write_str(e),
            ProbeError::NoAnswer(t) => write!(f, "no answer within {} ms", t.as_millis()),
        }
    }
}

impl std::error::Error for ProbeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProbeError::Settings(e) => Some(e),
            _ => None,
        }
    }
}

/// Ok(latency) on CONNACK within `timeout`.
pub fn probe(cfg: &BrokerConfig, timeout: Duration) -> Result<Duration, ProbeError> {
    let opts = options(cfg, &new_client_id()).map_err(ProbeError::Settings)?;
    let (client, mut connection) = Client::new(opts, 4);
    let mut net = network_options(cfg);
    net.set_connection_timeout(timeout.as_secs().max(1));
    connection.eventloop.set_network_options(net);
    let start = Instant::now();
    let result = loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break Err(ProbeError::NoAnswer(timeout));
        }
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break Ok(start.elapsed()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break Err(ProbeError::Connect(e.to_string())),
            Err(_) => break Err(ProbeError::NoAnswer(timeout)),
        }
    };
    let _ = client.try_disconnect();
    let _ = connection.recv_timeout(Duration::from_millis(50));
    result
}
