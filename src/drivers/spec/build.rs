//! One container's exact spec from a service of a twin's profile (reference §5.7, §5.8): its
//! environment, its `docker create` options, its spec hash; with the credential it runs on.

use std::collections::BTreeMap;

use serde_json::json;

use super::{DriverSpec, LABEL_RESTART_FLOOR, LABEL_SERVICE, LABEL_TWIN, LaunchContext, Role};
use super::{camera, container_name, env, image};
use crate::drivers::params::{has_flag, log_opt_keys, split_env_params};
use crate::drivers::profile::ServiceProfile;
use crate::drivers::tokens::{self, CachedToken};

/// The image a service runs after the tag rules (environment tag, then the Jetson variant
/// first when applicable) and the one tried when that variant cannot be pulled.
pub(super) fn final_image(ctx: &LaunchContext, svc: &ServiceProfile) -> (String, Option<String>) {
    let with_env = image::with_environment_tag(&svc.image, &ctx.environment);
    match ctx
        .host
        .jetson
        .then(|| image::jetson_variant(&with_env))
        .flatten()
    {
        Some(j) => (j, Some(with_env)),
        None => (with_env, None),
    }
}

/// Builds one container's spec; `scoped`: the twin's driver token it runs on instead of the
/// edge token.
pub(super) fn build_spec(
    ctx: &LaunchContext,
    twin_uuid: &str,
    twin_name: &str,
    svc: &ServiceProfile,
    children: &[String],
    scoped: Option<&CachedToken>,
) -> DriverSpec {
    let name = container_name(twin_uuid, svc.name.as_deref());
    let (param_pairs, mut params) = split_env_params(&svc.params);
    if camera::is_alsa_image(&svc.image) {
        params = crate::drivers::params::with_alsa_devices(&params);
    }
    let param_env: BTreeMap<String, String> = param_pairs.into_iter().collect();
    let injected = env::injected_env(ctx, twin_uuid, &svc.image, children, &param_env, &svc.env);
    // One value per key: params' -e first, then the edge's (edge wins, except DRIVER_WINS).
    let mut env = param_env.clone();
    for (k, v) in injected {
        if env::DRIVER_WINS.contains(&k.as_str()) && param_env.contains_key(&k) {
            continue;
        }
        env.insert(k, v);
    }
    if let Some(t) = scoped {
        // Last word on credentials: nothing merged above carries the edge token in.
        tokens::harden(&mut env, &t.token, ctx.token.expose());
    }
    let (image, fallback_image) = final_image(ctx, svc);
    let mut o = options(ctx, twin_uuid, svc, &name, params, &env, scoped.is_some());

    // The hash covers everything that shapes the container; credentials only as digests.
    let mut hashed_env = env.clone();
    let secrets = [Some(ctx.token.expose()), scoped.map(|t| t.token.as_str())];
    for v in hashed_env.values_mut() {
        if secrets.contains(&Some(v.as_str())) {
            *v = format!("sha256:{}", crate::sha256_hex(v.as_bytes()));
        }
    }
    let mut canonical = json!({"schema": 2, "image": image, "options": o, "env": hashed_env, "command": svc.command});
    let links = links_of(twin_uuid, svc);
    if !links.extra_networks.is_empty() {
        // Only then: a lone container's hash (and so its container) stays what it was.
        let mut nets = links.extra_networks.clone();
        nets.sort();
        canonical["extra_networks"] = json!(nets);
    }
    let spec_hash = crate::sha256_hex(canonical.to_string().as_bytes());
    crate::containers::push_managed_labels(&mut o, &spec_hash, &ctx.owner);

    DriverSpec {
        name,
        role: Role::Driver,
        owner: twin_uuid.to_string(),
        title: twin_name.to_string(),
        service: svc.name.clone(),
        image,
        fallback_image,
        options: o,
        env,
        command: svc.command.clone(),
        spec_hash,
        restart: svc.restart.clone(),
        pull: crate::containers::spec::Pull::Always,
        floor: svc
            .min_restart_interval_s
            .map(std::time::Duration::from_secs),
        probe: None,
        pull_attempts: 1,
        once: false,
        links,
    }
}

/// The `docker create` options before the image (reference §5.7 step 9, §5.8 mounts).
fn options(
    ctx: &LaunchContext,
    twin_uuid: &str,
    svc: &ServiceProfile,
    name: &str,
    params: Vec<String>,
    env: &BTreeMap<String, String>,
    scoped: bool,
) -> Vec<String> {
    let mut o: Vec<String> = vec![
        "--init".into(),
        "--stop-timeout".into(),
        svc.stop_timeout_s.to_string(),
        "--restart".into(),
        svc.restart.clone(),
    ];
    if svc.privileged {
        o.push("--privileged".into());
    }
    if let Some(size) = &ctx.log_max_size
        && !has_flag(&params, &["--log-driver"])
    {
        let set = log_opt_keys(&params);
        o.extend(["--log-driver".into(), "json-file".into()]);
        if !set.contains("max-size") {
            o.extend(["--log-opt".into(), format!("max-size={size}")]);
        }
        if !set.contains("max-file") {
            o.extend(["--log-opt".into(), format!("max-file={}", ctx.log_max_file)]);
        }
    }
    if svc.prefer_gpu && ctx.nvidia_default_runtime {
        o.extend(["--gpus".into(), svc.gpu.clone()]);
    }
    if !has_flag(&params, &["--network", "--net"]) {
        o.extend(["--network".into(), "host".into()]);
    }
    if let Some(n) = svc.min_restart_interval_s {
        o.extend(["--label".into(), format!("{LABEL_RESTART_FLOOR}={n}")]);
    }
    // Before ours (added at create): what the edge injects wins over the file.
    if let Some(f) = &svc.host_env_file {
        o.extend([
            "--env-file".into(),
            ctx.config_dir.join(f).display().to_string(),
        ]);
    }
    o.extend(["--name".into(), name.to_string()]);
    let v4l = camera::wants_v4l(
        &svc.image,
        env.get(camera::VIDEO_DEVICE).map(String::as_str),
        ctx.host_has_v4l,
    ) && !crate::drivers::params::mounts(&params, "/dev/v4l");
    o.extend(params);
    if v4l {
        o.extend(["-v".into(), "/dev/v4l:/dev/v4l:ro".into()]);
    }
    let dir = ctx.config_dir.display().to_string();
    o.extend([
        "-v".into(),
        format!("{dir}/{twin_uuid}.json:/app/{twin_uuid}.json"),
    ]);
    o.extend(["-v".into(), format!("{dir}:/app/.cyberwave:ro")]);
    if scoped {
        // The read-only mount would otherwise show the edge token (credentials.json) and
        // every twin's cached driver token.
        o.extend(tokens::mask_options(&dir));
    }
    if svc.image.contains("so101") || ctx.has_so101_lib {
        o.extend([
            "-v".into(),
            format!("{dir}/so101_lib:/app/.cyberwave/so101_lib"),
        ]);
    }
    o.extend(["--label".into(), format!("{LABEL_TWIN}={twin_uuid}")]);
    if let Some(s) = &svc.name {
        o.extend(["--label".into(), format!("{LABEL_SERVICE}={s}")]);
        // A service's own Jetson power-mode request, for the launch to apply (host-wide).
        if let Some(v) = svc.env.get(crate::drivers::jetson_power::ENV)
            && crate::drivers::jetson_power::normalize(v).is_some()
        {
            let v: String = v.trim().chars().take(32).collect();
            o.extend([
                "--label".into(),
                format!("{}={v}", crate::drivers::jetson_power::LABEL),
            ]);
        }
    }
    o
}

/// A service's graph links with its dependencies named as our containers.
fn links_of(twin_uuid: &str, svc: &ServiceProfile) -> crate::containers::spec::Links {
    let g = &svc.graph;
    crate::containers::spec::Links {
        extra_networks: g.extra_networks.clone(),
        after: g
            .depends_on
            .iter()
            .map(|(d, healthy)| crate::containers::spec::Gate {
                name: container_name(twin_uuid, Some(d)),
                healthy: *healthy,
            })
            .collect(),
        resources: g.resources.clone(),
    }
}
