//! The portal's two documents, pure: `/portal.json` (schema `cyberwave.edge.local_portal.v1`)
//! and the HTML index, static: every value escaped, no script, no form, links straight to
//! `http://<edge>:<port><path>` (nothing is proxied).

use serde_json::{Value, json};

use super::listing::Driver;

pub const SCHEMA: &str = "cyberwave.edge.local_portal.v1";

/// `/portal.json` for a client that reached us on `host`.
pub fn document(drivers: &[Driver], host: &str, generated_at: &str) -> Value {
    let drivers: Vec<Value> = drivers
        .iter()
        .map(|d| {
            let pages: Vec<Value> = d
                .pages
                .iter()
                .map(|p| {
                    let mut v = json!({"name": p.name});
                    if let Some(desc) = &p.description {
                        v["description"] = json!(desc);
                    }
                    v["port"] = json!(p.port);
                    v["path"] = json!(p.path);
                    if let Some(s) = &p.service {
                        v["service"] = json!(s);
                    }
                    v["health"] = json!(p.health);
                    v["url"] = if p.health == "stopped" {
                        Value::Null
                    } else {
                        json!(format!("{}://{host}:{}{}", p.scheme, p.port, p.path))
                    };
                    v
                })
                .collect();
            json!({"id": d.id, "twin_name": d.twin_name, "registry_id": d.registry_id,
                   "health": d.health, "pages": pages})
        })
        .collect();
    json!({"schema": SCHEMA, "generated_at": generated_at, "host": host, "drivers": drivers})
}

/// HTML text escaping (`& < > " '`).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#x27;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:48rem;padding:1rem;\
color:#1b1b1f;background:#fff}h1{font-size:1.4rem}section{border:1px solid #ccc;\
border-radius:6px;padding:.75rem 1rem;margin:.75rem 0}h2{font-size:1.1rem;margin:0}\
.meta{color:#555;font-size:.85rem}li{margin:.4rem 0}.h{font-size:.8rem;padding:0 .4rem;\
border-radius:4px;background:#eee}.healthy{background:#d8f5dd}.unhealthy,.stopped\
{background:#fbdada}a{font-weight:600}\
@media(prefers-color-scheme:dark){body{background:#151518;color:#eee}section{border-color:#444}\
.meta{color:#aaa}.h{background:#333}.healthy{background:#1f4d29}.unhealthy,.stopped\
{background:#5c2020}a{color:#8ab4ff}}";

/// The index page for `doc` (a [`document`]).
pub fn html(doc: &Value) -> String {
    let s = |v: &Value| esc(v.as_str().unwrap_or(""));
    let mut o = String::from("<!doctype html><html lang=en><head><meta charset=utf-8>");
    o += "<meta name=viewport content='width=device-width,initial-scale=1'>";
    o += &format!("<title>Edge local pages</title><style>{STYLE}</style></head><body>");
    o += "<h1>Edge local pages</h1>";
    o += &format!(
        "<p class=meta>Pages served by drivers on this edge ({}). Updated {}. <a href=/portal.json>portal.json</a></p>",
        s(&doc["host"]),
        s(&doc["generated_at"])
    );
    let drivers = doc["drivers"].as_array().map_or(&[][..], Vec::as_slice);
    if drivers.is_empty() {
        o += "<p>No running driver declares a local page.</p>";
    }
    for d in drivers {
        let registry = d["registry_id"]
            .as_str()
            .map(|r| format!(" &middot; {}", esc(r)))
            .unwrap_or_default();
        o += &format!(
            "<section><h2>{}</h2><div class=meta>{}{registry} &middot; <span class='h {h}'>{h}</span></div><ul>",
            s(&d["twin_name"]),
            s(&d["id"]),
            h = s(&d["health"]),
        );
        for p in d["pages"].as_array().into_iter().flatten() {
            let label = s(&p["name"]);
            let link = match p["url"].as_str() {
                Some(u) => format!("<a href='{}' rel=noreferrer>{label}</a>", esc(u)),
                None => label,
            };
            let desc = p["description"]
                .as_str()
                .map(|d| format!(" &mdash; {}", esc(d)))
                .unwrap_or_default();
            o += &format!(
                "<li>{link}{desc} <span class='h {h}'>{h}</span></li>",
                h = s(&p["health"])
            );
        }
        o += "</ul></section>";
    }
    o += "</body></html>";
    o
}

#[cfg(test)]
mod tests {
    use super::super::listing::{Driver, Page};
    use super::*;

    fn driver(name: &str) -> Driver {
        Driver {
            id: "aaaaaaaa".into(),
            twin_name: name.into(),
            registry_id: Some("acme/arm".into()),
            health: "healthy",
            pages: vec![
                Page {
                    name: "ui".into(),
                    port: 8080,
                    path: "/x".into(),
                    scheme: "http",
                    service: None,
                    description: Some("<b>bold</b>".into()),
                    health: "healthy",
                },
                Page {
                    name: "down".into(),
                    port: 81,
                    path: "/".into(),
                    scheme: "https",
                    service: Some("db".into()),
                    description: None,
                    health: "stopped",
                },
            ],
        }
    }

    #[test]
    fn the_json_links_running_pages_only() {
        let d = document(&[driver("arm")], "192.168.1.5", "2026-12-03T18:00:00Z");
        assert_eq!(d["schema"], SCHEMA);
        assert_eq!(
            d["drivers"][0]["pages"][0]["url"],
            "http://192.168.1.5:8080/x"
        );
        assert_eq!(d["drivers"][0]["pages"][1]["url"], Value::Null);
        assert_eq!(d["drivers"][0]["pages"][1]["service"], "db");
    }

    #[test]
    fn the_page_escapes_everything_and_runs_nothing() {
        let d = document(&[driver("<script>alert(1)</script>")], "[::1]", "t");
        let page = html(&d);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;bold&lt;/b&gt;"));
        assert!(page.contains("<a href='http://[::1]:8080/x' rel=noreferrer>ui</a>"));
        assert!(
            html(&document(&[], "h", "t")).contains("No running driver declares a local page.")
        );
        assert_eq!(esc("a'\"&"), "a&#x27;&quot;&amp;");
    }
}
