//! Copies a graph's navigation bundle out of its driver image into a volume (reference §5.5),
//! on the prefetcher thread when the image is looked at, never on the supervisor. A complete
//! copy (its marker written last) that this or an earlier run made is reused: its name keeps
//! the graph's spec hash, so a restarted edge adopts the graph instead of recreating it (the
//! original made a new volume per process and recreated every container mounting it).

use std::collections::BTreeMap;
use std::time::Duration;

use super::compose::{self, bundle};
use crate::containers::spec::ContainerSpec;
use crate::engine::{Engine, ImageConfig, ResourceKind};

/// The copy of a multi-GB bundle on an SD card takes minutes; a probe seconds.
const COPY_DEADLINE: Duration = Duration::from_secs(600);
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

/// What an image's look derives for the drivers: the bundle's volume (and digest), or why it
/// has none; nothing when its graph declares no bundle.
pub fn derive(
    engine: &dyn Engine,
    owner: &str,
    session: &str,
    env: &BTreeMap<String, String>,
    spec: &ContainerSpec,
    image: &ImageConfig,
) -> BTreeMap<String, String> {
    // A graph that cannot be read is refused by its plan with the reason; nothing to copy.
    let Ok(Some(b)) = compose::declared_bundle(&spec.image, &image.labels, env) else {
        return BTreeMap::new();
    };
    match materialise(engine, owner, session, &spec.image, &image.id, &b) {
        Ok((volume, digest)) => {
            log::info!(
                "navigation-bundle image={} volume={volume} digest={digest} profile={} target={}",
                spec.image,
                b.profile,
                b.target
            );
            BTreeMap::from([
                (bundle::VOLUME_KEY.to_string(), volume),
                ("navigation_bundle_digest".to_string(), digest),
            ])
        }
        Err(e) => {
            log::error!("{}: {e}", spec.image);
            BTreeMap::from([(bundle::ERROR_KEY.to_string(), e)])
        }
    }
}

/// `docker run --rm` of the image with the volume at `/bundle`: a shell script and its args.
fn helper(image: &str, mount: &str, script_flag: &str, script: &str, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        "-v",
        mount,
        image,
        script_flag,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(script.to_string());
    v.push("--".into());
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// The digest a complete copy in `volume` holds, or empty.
fn probe(engine: &dyn Engine, image: &str, volume: &str, b: &bundle::Bundle) -> String {
    let args = helper(
        image,
        &format!("{volume}:/bundle:ro"),
        "-c",
        &bundle::probe_script(),
        &[&b.profile],
    );
    engine
        .run_helper(&args, PROBE_DEADLINE)
        .ok()
        .and_then(|out| out.lines().last().map(|l| l.trim().to_string()))
        .unwrap_or_default()
}

fn materialise(
    engine: &dyn Engine,
    owner: &str,
    session: &str,
    image: &str,
    image_id: &str,
    b: &bundle::Bundle,
) -> Result<(String, String), String> {
    if image_id.is_empty() {
        return Err(format!(
            "cannot inspect driver image {image:?} for navigation bundle"
        ));
    }
    let prefix = bundle::prefix(&bundle::identity(image_id, b));
    let mut earlier: Vec<String> = engine
        .owned_resources(ResourceKind::Volume, owner, bundle::LABEL_IMAGE)
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, of)| name.starts_with(&prefix) && of == image_id)
        .map(|(name, _)| name)
        .collect();
    earlier.sort();
    for v in earlier {
        let digest = probe(engine, image, &v, b);
        if !digest.is_empty() {
            return Ok((v, digest));
        }
    }
    let volume = format!("{prefix}{session}");
    let labels = vec![
        (bundle::LABEL_BUNDLE.to_string(), "1".to_string()),
        (bundle::LABEL_IMAGE.to_string(), image_id.to_string()),
        (
            bundle::LABEL_CREATED_AT.to_string(),
            format!("{}", crate::epoch_seconds() as u64),
        ),
        (crate::engine::LABEL_OWNER.to_string(), owner.to_string()),
        (
            crate::engine::LABEL_CREATED_BY.to_string(),
            format!("cyberwave-edge-core/{}", crate::VERSION),
        ),
    ];
    engine
        .ensure_resource(ResourceKind::Volume, &volume, &labels)
        .map_err(|e| format!("cannot create navigation bundle volume {volume:?}: {e}"))?;
    // This process copied it already (the image was looked at again).
    let digest = probe(engine, image, &volume, b);
    if !digest.is_empty() {
        return Ok((volume, digest));
    }
    let args = helper(
        image,
        &format!("{volume}:/bundle"),
        "-ceu",
        &bundle::populate_script(),
        &[&b.source, &b.profile],
    );
    let out = engine.run_helper(&args, COPY_DEADLINE).map_err(|e| {
        format!(
            "driver image {image:?} could not materialize navigation bundle {:?}: {e}",
            b.source
        )
    })?;
    match out.lines().last().map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => Ok((volume, d.to_string())),
        None => Err(format!(
            "driver image {image:?} could not materialize navigation bundle {:?}: no digest",
            b.source
        )),
    }
}

/// A random session for this process's bundle volumes (8 hex digits, as the original's).
pub fn new_session() -> String {
    let mut b = [0u8; 4];
    crate::random_bytes(&mut b);
    crate::hex(&b)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use crate::engine::fake::FakeEngine;

    fn image() -> ImageConfig {
        let doc = json!({"services": {"nav": {"image": "a:1"}},
            "x-cyberwave": {"navigation_bundle": {"schema": 1, "source": "/opt/nav", "target": "/nav", "profile": "p.yaml"}}});
        ImageConfig {
            id: "sha256:feed".into(),
            labels: BTreeMap::from([
                (compose::SCHEMA_LABEL.to_string(), "2".to_string()),
                (
                    "io.cyberwave.driver.compose.robot".to_string(),
                    base64::engine::general_purpose::STANDARD.encode(doc.to_string()),
                ),
                (
                    bundle::CONFIG_PROFILE_LABEL.to_string(),
                    "humble".to_string(),
                ),
                (bundle::ROS_DISTRO_LABEL.to_string(), "humble".to_string()),
            ]),
            ..Default::default()
        }
    }

    fn look(engine: &FakeEngine, session: &str) -> BTreeMap<String, String> {
        let spec = crate::containers::spec::example(crate::containers::spec::Role::Driver);
        derive(engine, "fp", session, &BTreeMap::new(), &spec, &image())
    }

    fn answers(engine: &FakeEngine, a: &[Result<&str, &str>]) {
        let mut q = engine.helper_answers.lock().unwrap();
        q.extend(
            a.iter()
                .map(|r| r.map(str::to_string).map_err(str::to_string)),
        );
    }

    #[test]
    fn a_bundle_is_copied_once_marker_last_and_a_complete_copy_is_reused() {
        let engine = FakeEngine::default();
        // First look: nothing earlier; the new volume is empty (probe prints nothing), then
        // the copy prints the digest.
        answers(&engine, &[Ok(""), Ok("copied\nd1g3st")]);
        let d = look(&engine, "0a0b0c0d");
        let volume = d
            .get(bundle::VOLUME_KEY)
            .cloned()
            .unwrap_or_else(|| panic!("{d:?}"));
        assert!(volume.starts_with("cyberwave-navigation-") && volume.ends_with("-0a0b0c0d"));
        assert_eq!(d["navigation_bundle_digest"], "d1g3st");
        let helpers = engine.helpers.lock().unwrap().clone();
        assert_eq!(helpers.len(), 2);
        assert!(
            helpers[1].contains(&format!("{volume}:/bundle")),
            "{:?}",
            helpers[1]
        );
        assert!(helpers[1].ends_with(&["--".to_string(), "/opt/nav".into(), "p.yaml".into()]));
        let labels =
            engine.resources.lock().unwrap()[&(ResourceKind::Volume, volume.clone())].clone();
        assert_eq!(labels[bundle::LABEL_IMAGE], "sha256:feed");
        assert_eq!(labels[crate::engine::LABEL_OWNER], "fp");
        // A later process (another session) finds the complete copy and reuses it: no copy.
        answers(&engine, &[Ok("d1g3st")]);
        let again = look(&engine, "99999999");
        assert_eq!(again[bundle::VOLUME_KEY], volume);
        assert_eq!(
            engine.helpers.lock().unwrap().len(),
            3,
            "one probe, no copy"
        );
    }

    #[test]
    fn a_failed_copy_is_the_reason_the_graph_is_refused() {
        let engine = FakeEngine::default();
        answers(
            &engine,
            &[Ok(""), Err("test: /opt/nav/p.yaml: No such file")],
        );
        let d = look(&engine, "0a0b0c0d");
        assert!(!d.contains_key(bundle::VOLUME_KEY));
        assert!(
            d[bundle::ERROR_KEY].contains("could not materialize navigation bundle"),
            "{d:?}"
        );
        // An image whose graph declares no bundle derives nothing (and runs no helper).
        let plain = FakeEngine::default();
        let spec = crate::containers::spec::example(crate::containers::spec::Role::Driver);
        let none = derive(
            &plain,
            "fp",
            "s",
            &BTreeMap::new(),
            &spec,
            &ImageConfig::default(),
        );
        assert!(none.is_empty() && plain.helpers.lock().unwrap().is_empty());
    }
}
