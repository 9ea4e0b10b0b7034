//! Every integration test in one binary (the harness in `support/` compiled once): the real
//! `cyberwave-edge-core` and `cyberwave-cloud-node` binaries against a real Mosquitto, the fake
//! backend and, for drivers, the real Docker engine.

mod support;

mod alert_words;
mod bus;
mod cameras;
mod cloud_node;
mod cloud_node_hostile;
mod compose_graphs;
mod containers;
mod driver_alerts;
mod driver_graphs;
mod driver_tokens;
mod drivers;
mod edge_core;
mod edge_files;
mod edge_hostile;
mod graceful_stop;
mod hostile_paths;
mod identity;
mod layers;
mod models;
mod network_lines;
mod podman_engine;
mod portal;
mod pulls;
mod remote_access;
mod saturation;
mod startup_report;
mod twin_sync;
mod updates;
mod watchdog;
mod worker;
