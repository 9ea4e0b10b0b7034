//! The robot conflict guard (reference §5.7 step 4): two drivers talking to the same robot
//! (`ROBOT_IP`) fight over it, so a driver is not started while another twin's live container
//! declares the same `ROBOT_IP`. The rule is [`find_conflict`], pure; [`check`] asks the engine
//! (every call with a deadline) on the launch thread, never the supervisor.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::containers::launch::LaunchFailure;
use crate::containers::spec::ContainerSpec;
use crate::engine::{Details, Engine};

const KEY: &str = "ROBOT_IP";
/// How long a launch holds its robot before its container is live (the startup probe's
/// default deadline plus create and start): two drivers of one robot launched in the same
/// pass (at boot, say) cannot both pass the engine check.
const CLAIM_FOR: Duration = Duration::from_secs(180);

/// Robots claimed by launches under way: `ROBOT_IP` → (twin, when).
#[derive(Default)]
pub struct Claims(Mutex<BTreeMap<String, (String, Instant)>>);

impl Claims {
    /// Claims `ip` for `twin`, or names the twin whose launch holds it.
    fn claim(&self, ip: &str, twin: &str, now: Instant) -> Result<(), String> {
        let Ok(mut m) = self.0.lock() else {
            return Ok(());
        };
        m.retain(|_, (_, at)| now.duration_since(*at) < CLAIM_FOR);
        match m.get(ip) {
            Some((other, _)) if other != twin => Err(other.clone()),
            _ => {
                m.insert(ip.to_string(), (twin.to_string(), now));
                Ok(())
            }
        }
    }

    fn release(&self, ip: &str, twin: &str) {
        if let Ok(mut m) = self.0.lock()
            && m.get(ip).is_some_and(|(t, _)| t == twin)
        {
            m.remove(ip);
        }
    }
}

/// The value of `KEY` in a `KEY=value` env list.
fn value_in(env: &[String]) -> Option<&str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(KEY)?.strip_prefix('='))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The `ROBOT_IP` a driver will run with: its declared env, else its image's `ENV`.
pub fn robot_ip(spec: &ContainerSpec, image_env: &[String]) -> Option<String> {
    spec.env
        .get(KEY)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| value_in(image_env).map(str::to_string))
}

/// The first other live container driving the same robot: not this container, not one of
/// this twin's (`twin_label` names the twin on a container).
pub fn find_conflict<'a>(
    spec: &ContainerSpec,
    ip: &str,
    twin_label: &str,
    others: &'a [Details],
) -> Option<&'a Details> {
    others.iter().find(|o| {
        o.running
            && o.name != spec.name
            && o.labels.get(twin_label) != Some(&spec.owner)
            && value_in(&o.env) == Some(ip)
    })
}

/// Refuses the launch (`driver_conflict`) when another twin's live container drives the same
/// robot; a failed listing refuses it too (`docker_error`), as the original does.
pub fn check(
    engine: &dyn Engine,
    claims: &Claims,
    spec: &ContainerSpec,
    image_env: &[String],
    twin_label: &str,
) -> Result<(), LaunchFailure> {
    let Some(ip) = robot_ip(spec, image_env) else {
        return Ok(());
    };
    let fail = |phase: &'static str, message: String| LaunchFailure { phase, message };
    if let Err(other) = claims.claim(&ip, &spec.owner, Instant::now()) {
        return Err(fail(
            "driver_conflict",
            format!("twin {other} is starting a driver for the robot at ROBOT_IP={ip}"),
        ));
    }
    let result = engine_check(engine, spec, &ip, twin_label);
    if result.is_err() {
        claims.release(&ip, &spec.owner);
    }
    result
}

/// The engine half of [`check`]: every running container's env.
fn engine_check(
    engine: &dyn Engine,
    spec: &ContainerSpec,
    ip: &str,
    twin_label: &str,
) -> Result<(), LaunchFailure> {
    let fail = |phase: &'static str, message: String| LaunchFailure { phase, message };
    let others = engine.running().map_err(|e| {
        fail(
            "docker_error",
            format!("cannot list running containers: {e}"),
        )
    })?;
    match find_conflict(spec, ip, twin_label, &others) {
        Some(o) => Err(fail(
            "driver_conflict",
            format!(
                "container {} already drives the robot at ROBOT_IP={ip}",
                o.name
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(env: &[(&str, &str)]) -> ContainerSpec {
        let mut s = crate::containers::spec::example(crate::containers::spec::Role::Driver);
        s.name = "cyberwave-driver-aaaaaaaa".into();
        s.owner = "aaaaaaaa-twin".into();
        s.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    }

    fn other(name: &str, twin: &str, running: bool, env: &[&str]) -> Details {
        let status = if running { "running" } else { "exited" };
        Details {
            id: name.into(),
            name: name.into(),
            image: "x".into(),
            labels: BTreeMap::from([("twin".to_string(), twin.to_string())]),
            env: env.iter().map(|e| e.to_string()).collect(),
            restart_policy: String::new(),
            ..Details::example(status, running)
        }
    }

    #[test]
    fn the_same_robot_twice_is_refused_and_nothing_else() {
        let s = spec(&[("ROBOT_IP", "10.0.0.5")]);
        let rows: Vec<(Details, bool)> = vec![
            (other("arm-b", "bbbb", true, &["ROBOT_IP=10.0.0.5"]), true),
            (other("arm-b", "bbbb", false, &["ROBOT_IP=10.0.0.5"]), false),
            (other("arm-b", "bbbb", true, &["ROBOT_IP=10.0.0.6"]), false),
            (other("arm-b", "bbbb", true, &[]), false),
            (
                other(
                    "cyberwave-driver-aaaaaaaa",
                    "bbbb",
                    true,
                    &["ROBOT_IP=10.0.0.5"],
                ),
                false,
            ),
            (
                other("arm-a-svc", "aaaaaaaa-twin", true, &["ROBOT_IP=10.0.0.5"]),
                false,
            ),
            (
                other("not-ours", "", true, &["PATH=/bin", "ROBOT_IP= 10.0.0.5 "]),
                true,
            ),
        ];
        for (o, conflict) in rows {
            let list = [o];
            assert_eq!(
                find_conflict(&s, "10.0.0.5", "twin", &list).is_some(),
                conflict,
                "{:?}",
                list[0]
            );
        }
    }

    #[test]
    fn a_launch_holds_its_robot_until_the_claim_expires() {
        let c = Claims::default();
        let t0 = Instant::now();
        assert_eq!(c.claim("10.0.0.5", "a", t0), Ok(()));
        assert_eq!(c.claim("10.0.0.5", "a", t0), Ok(()), "the same twin again");
        assert_eq!(c.claim("10.0.0.5", "b", t0), Err("a".into()));
        assert_eq!(c.claim("10.0.0.6", "b", t0), Ok(()));
        assert_eq!(c.claim("10.0.0.5", "b", t0 + CLAIM_FOR), Ok(()), "expired");
        c.release("10.0.0.5", "a"); // not a's any more: kept
        assert_eq!(c.claim("10.0.0.5", "a", t0 + CLAIM_FOR), Err("b".into()));
        c.release("10.0.0.5", "b");
        assert_eq!(c.claim("10.0.0.5", "a", t0 + CLAIM_FOR), Ok(()));
    }

    #[test]
    fn declared_env_wins_over_the_images() {
        let img = vec!["ROBOT_IP=192.168.1.2".to_string()];
        assert_eq!(robot_ip(&spec(&[]), &img).as_deref(), Some("192.168.1.2"));
        assert_eq!(
            robot_ip(&spec(&[("ROBOT_IP", "10.1.1.1")]), &img).as_deref(),
            Some("10.1.1.1")
        );
        assert_eq!(robot_ip(&spec(&[("ROBOT_IP", " ")]), &[]), None);
        assert_eq!(robot_ip(&spec(&[]), &[]), None);
    }
}
