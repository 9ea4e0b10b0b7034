//! A driver profile's `params` as the original reads them (reference §5.3 `docker_args.py`):
//! its `-e` pairs, the flags it already sets, the mounts it already has.

use std::collections::BTreeSet;

use crate::engine::args::{flag_values, without_flag_values};

/// `-e K=V`, `--env K=V`, `--env=K=V` pairs of `params`, and the params without them.
pub fn split_env_params(params: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < params.len() {
        let p = &params[i];
        let pair = if (p == "-e" || p == "--env") && i + 1 < params.len() {
            i += 1;
            Some(params[i].clone())
        } else {
            p.strip_prefix("--env=").map(str::to_string)
        };
        match pair {
            Some(kv) => {
                if let Some((k, v)) = kv.split_once('=') {
                    env.push((k.to_string(), v.to_string()));
                }
            }
            None => rest.push(p.clone()),
        }
        i += 1;
    }
    (env, rest)
}

/// A name the env file can carry: `[A-Za-z_][A-Za-z0-9_]*`. Anything else (a newline above
/// all) would add lines to the env file or copy the daemon's own variables into the container.
pub fn valid_env_key(k: &str) -> bool {
    crate::containers::spec::valid_env_name(k)
}

pub fn has_flag(params: &[String], flags: &[&str]) -> bool {
    params.iter().any(|p| {
        flags
            .iter()
            .any(|f| p == f || p.starts_with(&format!("{f}=")))
    })
}

/// `--log-opt` keys already set by params.
pub fn log_opt_keys(params: &[String]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut it = params.iter().peekable();
    while let Some(p) = it.next() {
        let value = if p == "--log-opt" {
            it.peek().map(|v| v.to_string())
        } else {
            p.strip_prefix("--log-opt=").map(str::to_string)
        };
        if let Some(v) = value
            && let Some((k, _)) = v.split_once('=')
        {
            keys.insert(k.to_string());
        }
    }
    keys
}

/// Whether params already mount `path` (as the source or the target of a `-v`, `--volume` or
/// `--mount`): the edge then adds no mount of its own there.
pub fn mounts(params: &[String], path: &str) -> bool {
    let volume = flag_values(params, &["-v", "--volume"])
        .into_iter()
        .any(|v| v.split(':').take(2).any(|part| part == path));
    let mount = flag_values(params, &["--mount"]).into_iter().any(|m| {
        m.split(',').any(|kv| {
            kv.split_once('=').is_some_and(|(k, v)| {
                matches!(k, "src" | "source" | "dst" | "target" | "destination") && v == path
            })
        })
    });
    volume || mount
}

/// The ALSA device helper of §5.8 for audio images: `--device /dev/snd*` goes (the whole of
/// `/dev/snd` is mounted instead, so a re-plugged card keeps working), and the mount, the
/// sound-device cgroup rule and the `audio` group are added unless params have them.
pub fn with_alsa_devices(params: &[String]) -> Vec<String> {
    let mut out = without_flag_values(params, "--device", |d| d.starts_with("/dev/snd"));
    if !mounts(&out, "/dev/snd") {
        out.extend(["-v".into(), "/dev/snd:/dev/snd".into()]);
    }
    if !flag_values(&out, &["--device-cgroup-rule"]).contains(&"c 116:* rmw") {
        out.extend(["--device-cgroup-rule".into(), "c 116:* rmw".into()]);
    }
    if !flag_values(&out, &["--group-add"]).contains(&"audio") {
        out.extend(["--group-add".into(), "audio".into()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn mounts_reads_every_form() {
        let rows: &[(&[&str], bool)] = &[
            (&["-v", "/dev/v4l:/dev/v4l:ro"], true),
            (&["--volume=/dev/v4l:/x"], true),
            (&["-v", "/data:/dev/v4l"], true),
            (&["--mount", "type=bind,source=/dev/v4l,target=/v"], true),
            (&["-v", "/dev/v4l/by-id:/x"], false),
            (&["--device", "/dev/v4l"], false),
            (&["-v"], false),
        ];
        for (params, want) in rows {
            assert_eq!(mounts(&v(params), "/dev/v4l"), *want, "{params:?}");
        }
    }

    #[test]
    fn alsa_devices_replace_single_sound_devices() {
        let out = with_alsa_devices(&v(&[
            "--device",
            "/dev/snd/pcmC0D0c",
            "--device=/dev/snd/controlC0",
            "--device",
            "/dev/ttyUSB0",
        ]));
        assert_eq!(
            out,
            v(&[
                "--device",
                "/dev/ttyUSB0",
                "-v",
                "/dev/snd:/dev/snd",
                "--device-cgroup-rule",
                "c 116:* rmw",
                "--group-add",
                "audio"
            ])
        );
        // Already there: nothing added twice.
        assert_eq!(with_alsa_devices(&out), out);
    }
}
