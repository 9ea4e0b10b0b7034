//! rumqttc options from our broker settings: keepalive, clean session, packet caps,
//! credentials, and TLS (a CA file read bounded, else the bundled Mozilla roots).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, NetworkOptions, TlsConfiguration, Transport};

use super::BrokerConfig;

/// Why a link cannot be set up from the settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LinkError {
    /// The broker CA file (`CYBERWAVE_MQTT_CA_CERT`) cannot be read or holds no certificate.
    CaCert { path: String, detail: String },
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::CaCert { path, detail } => {
                write!(f, "CYBERWAVE_MQTT_TLS_CA_CERT {path}: {detail}")
            }
        }
    }
}

impl std::error::Error for LinkError {}

pub(super) fn options(cfg: &BrokerConfig, client_id: &str) -> Result<MqttOptions, LinkError> {
    let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(Duration::from_secs(cfg.keepalive_secs.max(5)));
    opts.set_clean_session(true);
    let max = if cfg.max_payload_bytes == 0 {
        256 * 1024 * 1024
    } else {
        cfg.max_payload_bytes + 64 * 1024
    };
    opts.set_max_packet_size(max, max);
    if let Some(pw) = &cfg.password {
        opts.set_credentials(cfg.username.clone(), pw.expose().to_string());
    }
    if cfg.tls {
        let tls = match &cfg.ca_cert {
            Some(path) => {
                // A CA bundle is a few hundred KiB at most; never block on a FIFO.
                let ca = crate::fsutil::read_regular(Path::new(path), 8 << 20).map_err(|e| {
                    LinkError::CaCert {
                        path: path.clone(),
                        detail: e.to_string(),
                    }
                })?;
                TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth: None,
                }
            }
            None => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                TlsConfiguration::Rustls(Arc::new(config))
            }
        };
        opts.set_transport(Transport::tls_with_config(tls));
    }
    Ok(opts)
}

pub(super) fn network_options(cfg: &BrokerConfig) -> NetworkOptions {
    let mut n = NetworkOptions::new();
    n.set_connection_timeout(cfg.connect_timeout_secs.max(1));
    n
}
