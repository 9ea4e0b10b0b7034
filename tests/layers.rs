//! The house stays as it is drawn: a lower layer never imports a higher one. Read from the
//! source as text (every `crate::name` and `crate::{a, b}` path), so a new arrow up fails the
//! test command before it lands.

use std::path::{Path, PathBuf};

/// The daemon and the programs on top.
const TOP: &[&str] = &["edge", "control", "cloud_node"];
/// The container roles.
const ROLES: &[&str] = &["drivers", "worker", "bus", "remote_access"];
/// The services the daemon and the roles use.
const SERVICES: &[&str] = &["health", "twinsync", "alerts", "models"];

/// An engine's implementation: only `containers::engine` (which picks one) may name it; every
/// other module talks to `crate::engine::Engine`.
const ENGINES: &[&str] = &["docker"];

/// Each layer (a folder under `src/`, or a file) and the modules it must never import.
const RULES: &[(&str, &[&[&str]])] = &[
    // The engine seam: its vocabulary and trait, beneath every engine and the runtime.
    (
        "engine",
        &[
            TOP,
            ROLES,
            SERVICES,
            ENGINES,
            &["containers", "config", "backend", "mqtt"],
        ],
    ),
    // The floor: files, settings, processes.
    (
        "config",
        &[
            TOP,
            ROLES,
            SERVICES,
            &["docker", "containers", "backend", "mqtt"],
        ],
    ),
    ("docker", &[TOP, ROLES, SERVICES, &["containers"]]),
    // The runtime every role stands on knows containers, never twins, MQTT or alerts.
    (
        "containers",
        &[TOP, ROLES, &["mqtt", "alerts", "twinsync", "backend"]],
    ),
    // The twin model: parsed twins, linkage rules, twin files.
    (
        "twins",
        &[
            TOP,
            ROLES,
            SERVICES,
            ENGINES,
            &["containers", "backend", "mqtt"],
        ],
    ),
    ("backend", &[TOP, ROLES, ENGINES]),
    ("mqtt", &[TOP, ROLES, ENGINES]),
    // Roles never reach up into the daemon or its control surface, nor past the engine seam.
    ("drivers", &[TOP, ENGINES]),
    ("worker", &[TOP, ENGINES]),
    ("bus", &[TOP, ENGINES]),
    // The tunnel and the portal know nothing of the other roles (the edge hands the portal its
    // listing as plain data).
    (
        "remote_access",
        &[TOP, ENGINES, &["drivers", "worker", "bus"]],
    ),
    ("models", &[TOP, ENGINES, &["drivers", "worker"]]),
    ("twinsync", &[TOP, ENGINES, &["drivers", "worker"]]),
    ("health", &[TOP, ENGINES]),
    // The daemon and the control commands get their engine from `containers::engine`.
    ("edge", &[ENGINES]),
    ("control", &[ENGINES]),
    ("cloud_node", &[ENGINES]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module names a source imports through `crate::`.
fn crate_imports(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d}`: the names at the group's top level.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.push(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out
}

#[test]
fn no_layer_imports_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut arrows_up = Vec::new();
    for (layer, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        let single = src.join(format!("{layer}.rs"));
        if single.exists() {
            files.push(single);
        }
        assert!(!files.is_empty(), "layer {layer} has no source");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for m in crate_imports(&text) {
                if forbidden.iter().any(|group| group.contains(&m.as_str())) {
                    arrows_up.push(format!("{} imports crate::{m}", f.display()));
                }
            }
        }
    }
    assert!(arrows_up.is_empty(), "arrows up:\n{}", arrows_up.join("\n"));
}

#[test]
fn the_guard_sees_every_import_form() {
    let text = "use crate::docker::Docker;\nuse crate::{config::{self, X}, edge, mqtt::topics};\nlet x = crate::worker::spec::f();";
    assert_eq!(
        crate_imports(text),
        ["docker", "config", "edge", "mqtt", "worker"]
    );
}

/// The names a source reaches through `super::` (`super::a::b`, `super::{a, b}`).
fn super_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in text.match_indices("super::") {
        let rest = &text[at + "super::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(group.split(',').map(|g| ident(g.trim())));
            }
            None => out.push(ident(rest)),
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

#[test]
fn nothing_in_edge_imports_back_from_its_mod_rs() {
    let edge = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/edge");
    let top = std::fs::read_to_string(edge.join("mod.rs")).unwrap();
    let modules: Vec<String> = top
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("pub ").unwrap_or(l.trim());
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect();
    assert!(modules.len() > 10, "{modules:?}");
    let mut children = Vec::new();
    for e in std::fs::read_dir(&edge).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            children.push(p.join("mod.rs"));
        } else if p.file_name().is_some_and(|n| n != "mod.rs") {
            children.push(p);
        }
    }
    let mut back = Vec::new();
    for f in children.into_iter().filter(|f| f.exists()) {
        let text = std::fs::read_to_string(&f).unwrap();
        // A file's own unit tests reach the file through `super::`: not mod.rs.
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        for name in super_paths(text) {
            if !modules.contains(&name) {
                back.push(format!("{} uses super::{name}", f.display()));
            }
        }
    }
    assert!(
        back.is_empty(),
        "imports back from edge/mod.rs:\n{}",
        back.join("\n")
    );
}

#[test]
fn the_edge_guard_sees_groups_and_paths() {
    let text = "use super::{boot::x, error::DaemonError};\nlet a = super::TICK;\nsuper::link::f();";
    assert_eq!(super_paths(text), ["boot", "error", "TICK", "link"]);
}
