//! Networks and volumes a service graph creates, through the CLI with deadlines.

use super::{Docker, INSPECT_TIMEOUT, PS_TIMEOUT, RM_TIMEOUT};
use crate::engine::{EngineError, ResourceKind};

impl Docker {
    pub(super) fn ensure_resource_cli(
        &self,
        kind: ResourceKind,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<bool, EngineError> {
        let k = kind.as_str();
        // Created unless the engine says it exists (a create that cannot work says why).
        if matches!(self.resource_exists_cli(kind, name), Ok(true)) {
            return Ok(false);
        }
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec![k, "create"];
        for l in &labels {
            args.extend(["--label", l.as_str()]);
        }
        args.push(name);
        match self.run(&args, INSPECT_TIMEOUT) {
            Ok(_) => Ok(true),
            // Created meanwhile by another launch of the graph.
            Err(EngineError::Failed { message, .. }) if message.contains("already exists") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn resource_exists_cli(
        &self,
        kind: ResourceKind,
        name: &str,
    ) -> Result<bool, EngineError> {
        match self.run(
            &[kind.as_str(), "inspect", "--format", "{{.Name}}", name],
            INSPECT_TIMEOUT,
        ) {
            Ok(_) => Ok(true),
            Err(e) if super::engine::no_such(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) fn owned_resources_cli(
        &self,
        kind: ResourceKind,
        owner: &str,
        label: &str,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let filter = format!("label={}={owner}", crate::engine::LABEL_OWNER);
        let format = format!("{{{{.Name}}}}\t{{{{.Label \"{label}\"}}}}");
        let out = self.run(
            &[
                kind.as_str(),
                "ls",
                "--filter",
                &filter,
                "--format",
                &format,
            ],
            PS_TIMEOUT,
        )?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (name, value) = l.split_once('\t').unwrap_or((l, ""));
                let name = name.trim();
                (!name.is_empty()).then(|| (name.to_string(), value.trim().to_string()))
            })
            .collect())
    }

    pub(super) fn remove_resource_cli(
        &self,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(), EngineError> {
        self.run(&[kind.as_str(), "rm", name], RM_TIMEOUT)
            .map(|_| ())
    }
}
