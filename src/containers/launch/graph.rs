//! What a container of a service graph needs around its create: the networks and volumes it
//! uses (created when missing, labelled with this edge and the graph's owner so they go with
//! the graph) and the networks it joins after create.

use super::{LaunchFailure, Launcher};
use crate::containers::spec::{ContainerSpec, ResourceKind};
use crate::containers::{LABEL_CREATED_BY, LABEL_GRAPH_OWNER, LABEL_OWNER};
use crate::engine::args::label_value;

/// One ensure at a time in this process: Docker lets two networks share a name, so two
/// services creating their graph's network at once would make two (and every later `--network`
/// of that name ambiguous).
static ENSURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The launch failure of a container whose external volume is missing.
pub const VOLUME_MISSING: &str = "docker_volume_missing";

impl Launcher {
    /// Creates the graph's networks and volumes `spec` uses that do not exist yet (an
    /// `external` one must exist: `docker create` then says so).
    pub(super) fn ensure_resources(&self, spec: &ContainerSpec) -> Result<(), LaunchFailure> {
        let labels = vec![
            (
                LABEL_OWNER.to_string(),
                label_value(&spec.options, LABEL_OWNER)
                    .unwrap_or_default()
                    .to_string(),
            ),
            (LABEL_GRAPH_OWNER.to_string(), spec.owner.clone()),
            (
                LABEL_CREATED_BY.to_string(),
                format!("cyberwave-edge-core/{}", crate::VERSION),
            ),
        ];
        let _one_at_a_time = ENSURING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An external volume must be there: `docker create` would make an empty one (a
        // navigation bundle that went missing must be copied again, not mounted empty).
        for r in spec.links.resources.iter().filter(|r| r.external) {
            if r.kind == ResourceKind::Volume
                && matches!(self.engine.resource_exists(r.kind, &r.name), Ok(false))
            {
                return Err(LaunchFailure {
                    phase: VOLUME_MISSING,
                    message: format!("volume {} does not exist", r.name),
                });
            }
        }
        for r in spec.links.resources.iter().filter(|r| !r.external) {
            match self.engine.ensure_resource(r.kind, &r.name, &labels) {
                Ok(true) => log::info!("{}: created {} {}", spec.name, r.kind.as_str(), r.name),
                Ok(false) => {}
                Err(e) => {
                    return Err(LaunchFailure {
                        phase: "docker_resource_failed",
                        message: format!("cannot create {} {}: {e}", r.kind.as_str(), r.name),
                    });
                }
            }
        }
        Ok(())
    }

    /// Connects the created (never started) `container` to `spec`'s other networks; removes
    /// it when one cannot be joined (a container missing a network looks healthy while it
    /// cannot reach its peers).
    pub(super) fn attach_networks(
        &self,
        spec: &ContainerSpec,
        container: &str,
    ) -> Result<(), LaunchFailure> {
        for n in &spec.links.extra_networks {
            if let Err(e) = self.engine.connect_network(n, container) {
                let _ = self.engine.force_remove(container); // created, never started
                return Err(LaunchFailure {
                    phase: "docker_network_attach_failed",
                    message: format!("Could not attach {container} to network {n}: {e}"),
                });
            }
        }
        Ok(())
    }
}
