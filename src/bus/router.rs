//! The zenoh router container (reference §9.3) as a role of the container runtime: its spec
//! (`cyberwave-zenoh-router-<env8>`, `--restart unless-stopped`, log caps, host network, the
//! router image), and a policy that logs what happens to it. Adoption, restarts, loops,
//! cleanup and removal on a remote restart are the runtime's, as for every role.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::settings::{BusSettings, Router, router_container_name};
use crate::containers::follow::{LogEvent, Sink};
use crate::containers::launch::{LaunchFailure, LaunchHooks};
use crate::containers::runtime::{Loop, Policy, RoleSetup};
use crate::containers::spec::{ContainerSpec, Pull, Role};

/// What shapes the router container besides the bus settings.
pub struct RouterContext<'a> {
    pub environment_uuid: Option<&'a str>,
    /// This edge's fingerprint (the owner label).
    pub owner: &'a str,
    /// `None` = `CYBERWAVE_DOCKER_LOG_MAX_SIZE=off`.
    pub log_max_size: Option<&'a str>,
    pub log_max_file: &'a str,
}

/// The router container this edge wants, if any (the container router only; the embedded
/// one needs none).
pub fn spec(s: &BusSettings, c: &RouterContext) -> Option<ContainerSpec> {
    let Router::Container { image, .. } = &s.router else {
        return None;
    };
    if !s.is_zenoh() {
        return None;
    }
    let name = router_container_name(c.environment_uuid);
    let mut o: Vec<String> = vec!["--restart".into(), "unless-stopped".into()];
    crate::containers::push_log_caps(&mut o, c.log_max_size, c.log_max_file);
    o.extend(["--network".into(), "host".into()]);
    o.extend(["--name".into(), name.clone()]);
    let canonical = json!({"schema": 1, "image": image, "options": o});
    let spec_hash = crate::sha256_hex(canonical.to_string().as_bytes());
    crate::containers::push_managed_labels(&mut o, &spec_hash, c.owner);
    let pull = if crate::containers::image::is_mutable(image) {
        Pull::Always
    } else {
        Pull::IfMissing
    };
    Some(ContainerSpec {
        name,
        role: Role::Router,
        owner: c.environment_uuid.unwrap_or("default").to_string(),
        title: "zenoh router".into(),
        service: Some("zenoh-router".into()),
        image: image.clone(),
        fallback_image: None,
        options: o,
        env: BTreeMap::new(),
        command: Vec::new(),
        spec_hash,
        restart: "unless-stopped".into(),
        pull,
        floor: None,
        probe: None,
        pull_attempts: 1,
        once: false,
        links: Default::default(),
    })
}

/// The desired-state map the runtime takes for the router role.
pub fn desired(spec: Option<ContainerSpec>) -> BTreeMap<String, (ContainerSpec, Value)> {
    spec.into_iter()
        .map(|s| (s.name.clone(), (s, Value::Null)))
        .collect()
}

struct Hooks;

impl LaunchHooks for Hooks {
    fn prepare(&self, _: &ContainerSpec, _: &Value) -> Result<(), LaunchFailure> {
        Ok(())
    }

    fn progress(&self, _: &ContainerSpec, _: &str, message: &str) {
        log::info!("zenoh router: {message}");
    }
}

/// A router that cannot start leaves drivers on peer-to-peer discovery (as the original): it
/// is logged, and `status` shows its state.
struct RouterPolicy;

impl Policy for RouterPolicy {
    fn up(&mut self, spec: &ContainerSpec, id: &str) {
        let short: String = id.chars().take(12).collect();
        log::info!("zenoh router {} running ({short})", spec.name);
    }

    fn launch_failed(&mut self, spec: &ContainerSpec, f: &LaunchFailure, retry_in: Duration) {
        log::warn!(
            "zenoh router {} could not start ({}: {}); drivers fall back to peer-to-peer; next try in {} s",
            spec.name,
            f.phase,
            f.message,
            retry_in.as_secs()
        );
    }

    fn restart_loop(&mut self, spec: &ContainerSpec, l: &Loop) {
        log::error!(
            "zenoh router {} restarted {} times in {} s; stopped, next try in {} s",
            spec.name,
            l.deaths_in_window,
            l.window.as_secs(),
            l.retry_in.as_secs()
        );
    }

    fn went_down(&mut self, spec: &ContainerSpec, status: &str) {
        log::warn!("zenoh router {} is no longer running ({status})", spec.name);
    }

    fn log_sink(&self, spec: &ContainerSpec) -> Sink {
        let name = spec.name.clone();
        Box::new(move |ev: LogEvent| {
            if let LogEvent::Line(line) = ev {
                log::info!("{name}: {}", crate::clip(line, 1000));
            }
        })
    }
}

/// The router role for [`crate::containers::runtime::Runtime::add_role`].
pub fn role() -> RoleSetup {
    RoleSetup {
        role: Role::Router,
        hooks: Arc::new(Hooks),
        policy: Box::new(RouterPolicy),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::config::EnvLayer;

    fn settings(pairs: &[(&str, &str)]) -> BusSettings {
        let p: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BusSettings::from_env(&EnvLayer::new(p, BTreeMap::new()))
    }

    fn ctx() -> RouterContext<'static> {
        RouterContext {
            environment_uuid: Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
            owner: "edge-fp",
            log_max_size: Some("10m"),
            log_max_file: "3",
        }
    }

    #[test]
    fn the_router_container_is_the_originals() {
        assert_eq!(spec(&settings(&[]), &ctx()), None);
        // Embedded (or, without zenoh in the build, not enabled): no container.
        assert_eq!(
            spec(&settings(&[("ZENOH_ROUTER_MODE", "embedded")]), &ctx()),
            None
        );
        let s = spec(&settings(&[("ZENOH_ROUTER_ENABLED", "true")]), &ctx()).unwrap();
        assert_eq!(s.name, "cyberwave-zenoh-router-6ba7b810");
        assert_eq!(s.image, "eclipse/zenoh:1.9.0");
        assert_eq!(s.pull, Pull::IfMissing);
        assert_eq!(s.role, Role::Router);
        let argv = s.create_argv(std::path::Path::new("/run/x.env")).join(" ");
        assert!(
            argv.starts_with("create --restart unless-stopped --log-driver json-file --log-opt max-size=10m --log-opt max-file=3 --network host --name cyberwave-zenoh-router-6ba7b810 --label io.cyberwave.edge.spec-hash="),
            "{argv}"
        );
        assert!(argv.contains("--label io.cyberwave.edge.owner=edge-fp"));
        assert!(argv.ends_with("eclipse/zenoh:1.9.0"), "{argv}");
        // Another image, another spec: the runtime recreates it.
        let other = spec(
            &settings(&[
                ("ZENOH_ROUTER_ENABLED", "true"),
                ("ZENOH_ROUTER_IMAGE", "eclipse/zenoh:latest"),
            ]),
            &ctx(),
        )
        .unwrap();
        assert_ne!(other.spec_hash, s.spec_hash);
        assert_eq!(other.pull, Pull::Always);
        // Not zenoh at all: no router.
        assert_eq!(
            spec(
                &settings(&[
                    ("ZENOH_ROUTER_ENABLED", "true"),
                    ("CYBERWAVE_DATA_BACKEND", "filesystem")
                ]),
                &ctx()
            ),
            None
        );
    }
}
