//! Conditional GETs: when the backend gives an answer a validator (`ETag`, `Last-Modified`),
//! the next GET of the same URL asks `If-None-Match` / `If-Modified-Since`, and a `304 Not
//! Modified` is answered from the copy kept here. The polls of every tick (the twin list,
//! `edge.json`, workflows) then cost a few hundred bytes while nothing changes. Bounded: a few
//! answers of at most [`MAX_KEPT_BYTES`] each, the least recently used dropped first.

use std::collections::VecDeque;

/// Answers kept (one per URL).
const MAX_ENTRIES: usize = 16;
/// An answer larger than this is not kept (its next GET is unconditional).
pub const MAX_KEPT_BYTES: usize = 1 << 20;
/// A validator longer than this is not a validator we send back.
const MAX_VALIDATOR: usize = 256;

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    text: String,
}

#[derive(Debug, Default)]
pub struct Validators {
    /// Most recently used last.
    entries: VecDeque<Entry>,
}

/// A header value fit to be sent back: printable ASCII, bounded.
fn usable(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_VALIDATOR)
        .filter(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .map(str::to_string)
}

impl Validators {
    /// The conditional headers for a GET of `url` (none when nothing is kept for it).
    pub fn headers_for(&self, url: &str) -> Vec<(&'static str, String)> {
        let Some(e) = self.entries.iter().find(|e| e.url == url) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(t) = &e.etag {
            out.push(("If-None-Match", t.clone()));
        }
        if let Some(t) = &e.last_modified {
            out.push(("If-Modified-Since", t.clone()));
        }
        out
    }

    /// The kept answer of `url`, for a `304` (and marks it recently used).
    pub fn kept(&mut self, url: &str) -> Option<String> {
        let i = self.entries.iter().position(|e| e.url == url)?;
        let e = self.entries.remove(i)?;
        let text = e.text.clone();
        self.entries.push_back(e);
        Some(text)
    }

    /// Records a `200` answer of `url` with its validators; one without any (or too large)
    /// forgets what was kept for the URL.
    pub fn remember(
        &mut self,
        url: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
        text: &str,
    ) {
        self.entries.retain(|e| e.url != url);
        let (etag, last_modified) = (usable(etag), usable(last_modified));
        if (etag.is_none() && last_modified.is_none()) || text.len() > MAX_KEPT_BYTES {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            url: url.to_string(),
            etag,
            last_modified,
            text: text.to_string(),
        });
    }

    /// Forgets `url` (a `304` for an answer we no longer hold cannot be used: ask again).
    pub fn forget(&mut self, url: &str) {
        self.entries.retain(|e| e.url != url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_are_sent_back_and_a_304_gets_the_kept_answer() {
        let mut v = Validators::default();
        assert!(v.headers_for("u").is_empty());
        v.remember("u", Some("\"abc\""), None, "[1]");
        assert_eq!(
            v.headers_for("u"),
            [("If-None-Match", "\"abc\"".to_string())]
        );
        assert_eq!(v.kept("u").as_deref(), Some("[1]"));
        v.remember("u", None, Some("Wed, 21 Oct 2026 07:28:00 GMT"), "[2]");
        assert_eq!(
            v.headers_for("u"),
            [(
                "If-Modified-Since",
                "Wed, 21 Oct 2026 07:28:00 GMT".to_string()
            )]
        );
        assert_eq!(v.kept("u").as_deref(), Some("[2]"));
        // An answer without validators forgets the old one.
        v.remember("u", None, None, "[3]");
        assert!(v.headers_for("u").is_empty());
        assert_eq!(v.kept("u"), None);
    }

    #[test]
    fn bad_validators_and_large_answers_are_not_kept_and_the_cache_is_bounded() {
        let mut v = Validators::default();
        for bad in [
            "",
            "  ",
            "a\r\nX-Evil: 1",
            &"x".repeat(MAX_VALIDATOR + 1),
            "é",
        ] {
            v.remember("u", Some(bad), None, "{}");
            assert!(v.headers_for("u").is_empty(), "{bad:?}");
        }
        v.remember("big", Some("e"), None, &"x".repeat(MAX_KEPT_BYTES + 1));
        assert_eq!(v.kept("big"), None);
        for i in 0..MAX_ENTRIES + 5 {
            v.remember(&format!("u{i}"), Some("e"), None, "{}");
        }
        assert_eq!(v.entries.len(), MAX_ENTRIES);
        assert_eq!(v.kept("u0"), None);
        assert!(v.kept(&format!("u{}", MAX_ENTRIES + 4)).is_some());
        // The least recently used goes first: u5 was just used, u6 goes.
        assert!(v.kept("u5").is_some());
        v.remember("new", Some("e"), None, "{}");
        assert!(v.kept("u6").is_none());
        assert!(v.kept("u5").is_some());
        v.forget("u5");
        assert!(v.kept("u5").is_none());
    }
}
