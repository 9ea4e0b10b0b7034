//! `cyberwave-edge-core worker start|stop|restart|status|health|logs` (reference §10.1; the
//! Cyberwave CLI's `cyberwave worker …` delegates here and forwards the exit code). When the
//! daemon runs, the verbs go through its control socket so its accounting, breaker and alerts
//! stay right, and we follow the container until it did what was asked; when it does not, they
//! act on Docker directly with the same container spec the daemon would use.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::worker_text::{render_health, render_status};
use crate::config::{self, EnvLayer, EnvironmentFile, Settings};
use crate::containers::engine::Engine;
use crate::containers::launch::{LaunchFailure, LaunchHooks, LaunchJob, Launcher};
use crate::containers::spec::ContainerSpec;
use crate::worker::spec::{container_name, worker_spec};

/// How long `start` / `restart` follow the container before giving up.
const FOLLOW_START: Duration = Duration::from_secs(180);
const FOLLOW_STOP: Duration = Duration::from_secs(60);
const SOCKET_TIMEOUT: Duration = Duration::from_secs(3);

/// The verb of `worker`.
#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
    Status { json: bool },
    Health { json: bool },
    Logs { follow: bool },
}

fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn err(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

struct Ctx {
    settings: Settings,
    environment_uuid: String,
    name: String,
    engine: Arc<dyn Engine>,
}

/// Settings and the linked environment, with the original's messages when either is missing.
fn load() -> Result<Ctx, String> {
    let env = EnvLayer::from_process();
    let (dir, overridden) = config::resolve_config_dir(&|k| env.process(k));
    let (settings, _) = Settings::load(dir, overridden, &env).map_err(|e| match e {
        // The original's words, exactly, when there is no token to use.
        config::SettingsError::NotConfigured { .. } => {
            "No credentials found. Run 'cyberwave login' first.".to_string()
        }
        // What the original never checked (a bad setting, an unreadable file): said as is.
        other => other.to_string(),
    })?;
    let environment =
        EnvironmentFile::load(&settings.config_dir.join(config::ENVIRONMENT_FILE)).ok();
    let environment_uuid = environment.and_then(|e| e.uuid).ok_or(
        "No linked environment found. Run 'cyberwave link' to associate this edge with an environment.",
    )?;
    Ok(Ctx {
        name: container_name(&environment_uuid),
        engine: crate::containers::engine::open_default(&settings),
        settings,
        environment_uuid,
    })
}

/// Runs a `worker` verb; returns the exit code.
pub fn run(verb: Verb) -> i32 {
    let ctx = match load() {
        Ok(c) => c,
        Err(e) => {
            err(&e);
            return 1;
        }
    };
    let socket = ctx.settings.control_socket.clone();
    let daemon = super::query(&socket, "worker_status", SOCKET_TIMEOUT).ok();
    match (verb, daemon) {
        (Verb::Logs { follow }, _) => logs(&ctx, follow),
        (Verb::Status { json }, d) => {
            show(d.unwrap_or_else(|| direct_view(&ctx)), json, render_status)
        }
        (Verb::Health { json }, d) => {
            show(d.unwrap_or_else(|| direct_view(&ctx)), json, render_health)
        }
        (verb, Some(_)) => via_daemon(&ctx, &socket, verb),
        (verb, None) => directly(&ctx, verb),
    }
}

fn show(v: Value, json: bool, render: fn(&Value) -> String) -> i32 {
    if json {
        say(&v.to_string());
    } else {
        use std::io::Write;
        let _ = std::io::stdout().write_all(render(&v).as_bytes());
    }
    0
}

fn inspect(ctx: &Ctx) -> Option<(String, String)> {
    ctx.engine
        .inspect(&ctx.name)
        .ok()
        .flatten()
        .map(|i| (i.status, i.started_at))
}

fn done(verb: &Verb, name: &str, ok: bool) -> i32 {
    let (past, what) = match verb {
        Verb::Start => ("started", "start"),
        Verb::Stop => ("stopped", "stop"),
        _ => ("restarted", "restart"),
    };
    if ok {
        say(&format!("✓ Worker container {name} {past}"));
        0
    } else if *verb == Verb::Start {
        err(&format!("✗ Failed to start worker container {name}"));
        1
    } else {
        err(&format!("✗ Failed to {what} worker container"));
        1
    }
}

fn via_daemon(ctx: &Ctx, socket: &Path, verb: Verb) -> i32 {
    let before = inspect(ctx).map(|(_, started)| started);
    let request = match verb {
        Verb::Start => "worker_start",
        Verb::Stop => "worker_stop",
        _ => "worker_restart",
    };
    let answer = match super::query(socket, request, SOCKET_TIMEOUT) {
        Ok(a) => a,
        Err(e) => {
            err(&format!("the edge daemon did not take the request: {e}"));
            return done(&verb, &ctx.name, false);
        }
    };
    if let Some(e) = answer["error"].as_str() {
        err(e);
        return done(&verb, &ctx.name, false);
    }
    if verb != Verb::Stop && answer["files"].as_array().is_some_and(Vec::is_empty) {
        say("No worker files in the workers directory: nothing to run.");
        return done(&verb, &ctx.name, true);
    }
    let deadline = Instant::now()
        + if verb == Verb::Stop {
            FOLLOW_STOP
        } else {
            FOLLOW_START
        };
    let last_error = answer["last_error"].clone();
    let started = Instant::now();
    let mut told: Option<(Instant, String)> = None;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let now = inspect(ctx);
        let running = now.as_ref().is_some_and(|(s, _)| s == "running");
        let ok = match verb {
            Verb::Stop => !running,
            Verb::Start => running,
            _ => running && now.as_ref().map(|(_, s)| s) != before.as_ref(),
        };
        if ok {
            return done(&verb, &ctx.name, true);
        }
        let view = super::query(socket, "worker_status", SOCKET_TIMEOUT).ok();
        // Never wait silently: say what for after a moment, again when it changes, and every
        // 15 s while it does not.
        if let Some(v) = &view
            && started.elapsed() >= Duration::from_secs(2)
        {
            let why = if verb == Verb::Stop {
                format!(
                    "the container to stop (it is {})",
                    v["state"].as_str().unwrap_or("?")
                )
            } else {
                super::worker_text::waiting_for(v)
            };
            let stale = told
                .as_ref()
                .is_none_or(|(at, said)| *said != why || at.elapsed() >= Duration::from_secs(15));
            if stale {
                let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                say(&format!("Waiting for {why} (up to {left} s more)…"));
                told = Some((Instant::now(), why));
            }
        }
        if verb != Verb::Stop
            && let Some(v) = view
            && (v["models_state"] == "failed"
                || (v["last_error"] != last_error && !v["last_error"].is_null()))
        {
            err(v["last_error"].as_str().unwrap_or("the worker failed"));
            for f in v["model_failures"].as_array().into_iter().flatten() {
                err(&format!(
                    "Model could not be loaded: {}: {}",
                    f["model_id"].as_str().unwrap_or(""),
                    f["error"].as_str().unwrap_or("")
                ));
            }
            return done(&verb, &ctx.name, false);
        }
    }
    err("timed out waiting for the worker container");
    done(&verb, &ctx.name, false)
}

/// No daemon: act on Docker with the spec the daemon would use.
fn directly(ctx: &Ctx, verb: Verb) -> i32 {
    let timeout = Duration::from_secs(10);
    if matches!(verb, Verb::Stop | Verb::Restart) {
        let stopped = ctx.engine.stop(&ctx.name, timeout.as_secs());
        if verb == Verb::Stop {
            if let Err(e) = &stopped {
                err(&e.to_string());
            }
            return done(&verb, &ctx.name, stopped.is_ok());
        }
    }
    match start_directly(ctx) {
        Ok(()) => done(&verb, &ctx.name, true),
        Err(e) => {
            err(&e);
            done(&verb, &ctx.name, false)
        }
    }
}

/// The twins the worker serves: `environment.json` `twin_uuids`, else the broad rule over the
/// environment's twins.
fn scope(ctx: &Ctx, fp: &str) -> Vec<String> {
    let env = EnvironmentFile::load(&ctx.settings.config_dir.join(config::ENVIRONMENT_FILE)).ok();
    if let Some(list) = env.and_then(|e| e.twin_uuids) {
        return list;
    }
    let backend = crate::backend::Backend::new(&ctx.settings);
    match backend.environment_twins(&ctx.environment_uuid) {
        Ok(twins) => {
            crate::twins::linkage::linked_twins_broad(&crate::twins::Twin::parse_all(&twins).0, fp)
        }
        Err(e) => {
            err(&format!(
                "twins of the environment unavailable ({e}); starting without"
            ));
            Vec::new()
        }
    }
}

/// This edge's fingerprint, as the daemon computes it (created the same way when missing).
fn fingerprint(ctx: &Ctx) -> String {
    crate::host::edge_fingerprint(&ctx.settings).unwrap_or_default()
}

/// Docker knows an `nvidia` runtime.
fn has_nvidia(ctx: &Ctx) -> bool {
    ctx.engine.runtimes().is_ok_and(|r| r.nvidia())
}

struct Quiet;

impl LaunchHooks for Quiet {
    fn prepare(&self, _: &ContainerSpec, _: &Value) -> Result<(), LaunchFailure> {
        Ok(())
    }
    fn progress(&self, _: &ContainerSpec, _: &str, message: &str) {
        say(message);
    }
}

fn start_directly(ctx: &Ctx) -> Result<(), String> {
    let workers = ctx.settings.config_dir.join("workers");
    if crate::watch::signature(&workers, crate::watch::worker_file).is_empty() {
        say("No worker files in the workers directory: nothing to run.");
        return Ok(());
    }
    let backend = crate::backend::Backend::new(&ctx.settings);
    let models_dir = ctx.settings.config_dir.join("models");
    let (ids, _) = crate::models::discover::discover(&workers);
    let mut verified = crate::models::ensure::Verified::new();
    let mut failed = Vec::new();
    for id in ids {
        if let Err(e) =
            crate::models::ensure::ensure_model(&models_dir, &id, &backend, &mut verified)
        {
            failed.push(format!("Model could not be loaded: {id}: {e}"));
        }
    }
    if !failed.is_empty() {
        return Err(failed.join("\n"));
    }
    let fp = fingerprint(ctx);
    let mut warnings = Vec::new();
    let mut wctx =
        crate::worker::settings::context(&ctx.settings, &ctx.environment_uuid, &fp, &mut warnings);
    wctx.accelerators.nvidia = has_nvidia(ctx);
    let (spec, _) = worker_spec(&wctx, &scope(ctx, &fp));
    let existing = ctx.engine.inspect(&ctx.name).ok().flatten();
    if let Some(i) = &existing
        && i.running
        && i.labels.get(crate::containers::LABEL_SPEC_HASH) == Some(&spec.spec_hash)
    {
        return Ok(());
    }
    let _ = std::fs::remove_file(wctx.status_dir.join(crate::worker::spec::STATUS_FILE));
    let launcher = Launcher {
        engine: ctx.engine.clone(),
        config_dir: ctx.settings.config_dir.clone(),
        probe: Duration::from_secs(30),
        hooks: Arc::new(Quiet),
        // A launch by hand, the daemon stopped: the engine's own errors say when it is full.
        reserve: None,
    };
    let mut result = Err("the launch did not report".to_string());
    launcher.launch_batch(
        vec![LaunchJob {
            spec,
            payload: Value::Null,
            exists: existing.is_some(),
            settle: true,
        }],
        |_, r| result = r.map(|_| ()).map_err(|e| e.to_string()),
    );
    result
}

/// What `worker status` / `health` show without a daemon: Docker's view, the files, the cache
/// (a fresh process has no restart history, as the original's CLI).
fn direct_view(ctx: &Ctx) -> Value {
    let i = ctx.engine.inspect(&ctx.name).ok().flatten();
    let files: Vec<Value> = crate::watch::signature(
        &ctx.settings.config_dir.join("workers"),
        crate::watch::worker_file,
    )
    .into_iter()
    .map(|(n, _, size)| json!({"name": n, "size_bytes": size}))
    .collect();
    let gpu = has_nvidia(ctx);
    json!({
        "configured": true,
        "name": ctx.name,
        "state": i.as_ref().map(|i| i.status.clone()).unwrap_or_else(|| "not created".into()),
        "image": i.as_ref().map(|i| i.image.clone()),
        "gpu": gpu,
        "ready": false,
        "files": files,
        "workers_dir": ctx.settings.config_dir.join("workers"),
        "models_dir": ctx.settings.config_dir.join("models"),
        "models": crate::worker::status::cached_models(&ctx.settings.config_dir),
        "health": {"total_restarts": i.as_ref().map(|i| i.restart_count).unwrap_or(0),
                   "recent_restarts": 0, "circuit_breaker_tripped": false, "uptime_seconds": null},
        "history": [],
        "daemon": false,
    })
}

/// `docker logs --tail 100 [-f] <worker>`, its stdout and stderr merged, blank lines skipped
/// and, on a terminal, `[LEVEL] [name]` coloured (the original's `worker logs`).
fn logs(ctx: &Ctx, follow: bool) -> i32 {
    use std::io::{BufRead, IsTerminal, Write};
    let mut cmd = ctx.engine.logs_command(&ctx.name, 100, follow);
    let spawned = std::io::pipe().and_then(|(reader, writer)| {
        cmd.stdout(writer.try_clone()?).stderr(writer);
        let child = cmd.spawn()?;
        drop(cmd); // our copies of the write end: EOF when docker exits
        Ok((child, reader))
    });
    let (mut child, reader) = match spawned {
        Ok(c) => c,
        Err(e) => {
            err(&format!("cannot run {} logs: {e}", ctx.engine.name()));
            return 1;
        }
    };
    let colour = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    for line in std::io::BufReader::new(reader)
        .split(b'\n')
        .map_while(Result::ok)
    {
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        let shown = if colour {
            super::worker_text::colorize_log_line(text)
        } else {
            text.to_string()
        };
        if writeln!(out, "{shown}").is_err() {
            break; // the reader went away (a closed pipe): stop following
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    0
}
