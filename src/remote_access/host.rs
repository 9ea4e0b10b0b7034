//! What the backend pins for an SSH session through the tunnel (Appendix B): this host's
//! public SSH host keys (type and key, never the comment) and the account an operator logs in
//! as. Pure over the files' text and `/etc/passwd`, so every rule is a table row.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

/// The host key files read, in the original's order.
pub const HOST_KEY_FILES: [&str; 3] = [
    "ssh_host_ed25519_key.pub",
    "ssh_host_ecdsa_key.pub",
    "ssh_host_rsa_key.pub",
];
const MIN_LOGIN_UID: u32 = 1000;
const MAX_LOGIN_UID: u32 = 65534;

/// One `.pub` line's `{"type", "key"}` when the key's blob decodes and names the same type.
pub fn parse_host_key(text: &str) -> Option<Value> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut parts = line.split_whitespace();
    let (kind, key) = (parts.next()?, parts.next()?);
    let blob = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    (blob.get(4..4usize.checked_add(len)?)? == kind.as_bytes())
        .then(|| json!({"type": kind, "key": key}))
}

/// The host keys under `dir` (`/etc/ssh`); unreadable or malformed files are skipped.
pub fn host_keys(dir: &Path) -> Vec<Value> {
    HOST_KEY_FILES
        .iter()
        .filter_map(|name| {
            let path = dir.join(name);
            let text = crate::fsutil::read_regular_text(&path, 64 << 10).ok()?;
            let key = parse_host_key(&text);
            if key.is_none() {
                log::debug!(
                    "remote access: skipping malformed host key {}",
                    path.display()
                );
            }
            key
        })
        .collect()
}

/// A name an operator could log in as (`^[a-z_][a-z0-9_.-]{0,31}$`, not root), else `None`.
pub fn login_name(v: &str) -> Option<String> {
    let v = v.trim();
    let mut cs = v.chars();
    let first_ok = cs
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = v.len() <= 32
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    (first_ok && rest_ok && v != "root").then(|| v.to_string())
}

/// The lowest-uid account in `1000 ≤ uid < 65534` with a login shell and a valid name.
pub fn primary_login_user(passwd: &str) -> Option<String> {
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let (name, uid, shell) = (f.first()?, f.get(2)?, f.get(6)?);
            let uid: u32 = uid.trim().parse().ok()?;
            let login_shell = !shell.ends_with("nologin") && !shell.ends_with("false");
            ((MIN_LOGIN_UID..MAX_LOGIN_UID).contains(&uid) && login_shell)
                .then_some(())
                .and_then(|_| login_name(name))
                .map(|n| (uid, n))
        })
        .min()
        .map(|(_, n)| n)
}

/// The account to send as `ssh_user`: the override, else `SUDO_USER`, else the primary login
/// account; `None` leaves it to the backend (the field is omitted).
pub fn ssh_user(over: Option<&str>, sudo_user: Option<&str>, passwd: &str) -> Option<String> {
    over.and_then(login_name)
        .or_else(|| sudo_user.and_then(login_name))
        .or_else(|| primary_login_user(passwd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pub_line(kind: &str) -> String {
        let mut blob = (kind.len() as u32).to_be_bytes().to_vec();
        blob.extend(kind.as_bytes());
        blob.extend([0u8; 32]);
        let key = base64::engine::general_purpose::STANDARD.encode(blob);
        format!("{kind} {key} root@robot\n")
    }

    #[test]
    fn host_keys_are_checked_and_lose_their_comment() {
        let ed = pub_line("ssh-ed25519");
        let k = parse_host_key(&format!("\n{ed}")).unwrap();
        assert_eq!(k["type"], "ssh-ed25519");
        assert!(!k.to_string().contains("root@robot"));
        // the blob names another type
        let other = ed.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert_eq!(parse_host_key(&other), None);
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 !!!notbase64",
            "ssh-ed25519 AAAA",
        ] {
            assert_eq!(parse_host_key(bad), None, "{bad:?}");
        }
        // a length prefix past the blob's end
        let huge = base64::engine::general_purpose::STANDARD.encode([0xff, 0xff, 0xff, 0xff, 1]);
        assert_eq!(parse_host_key(&format!("x {huge}")), None);
    }

    #[test]
    fn host_keys_are_read_in_order_skipping_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HOST_KEY_FILES[2]), pub_line("ssh-rsa")).unwrap();
        std::fs::write(dir.path().join(HOST_KEY_FILES[1]), "garbage").unwrap();
        std::fs::write(dir.path().join(HOST_KEY_FILES[0]), pub_line("ssh-ed25519")).unwrap();
        let keys = host_keys(dir.path());
        let kinds: Vec<&str> = keys.iter().filter_map(|k| k["type"].as_str()).collect();
        assert_eq!(kinds, ["ssh-ed25519", "ssh-rsa"]);
    }

    /// override, SUDO_USER, /etc/passwd, expected user
    type Row<'a> = (Option<&'a str>, Option<&'a str>, &'a str, Option<&'a str>);

    #[test]
    fn the_login_user_follows_the_originals_rule() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      daemon:x:1:1::/:/usr/sbin/nologin\n\
                      bob:x:1001:1001::/home/bob:/bin/bash\n\
                      svc:x:1000:1000::/:/usr/sbin/nologin\n\
                      Alice:x:999:999::/:/bin/bash\n\
                      pi:x:1002:1002::/home/pi:/bin/zsh\n\
                      nobody:x:65534:65534::/:/bin/sh\n\
                      broken line\n";
        #[rustfmt::skip]
        let table: [Row; 7] = [
            (Some("ops"), Some("pi"), passwd, Some("ops")),
            (Some("root"), Some("pi"), passwd, Some("pi")),
            (Some("Bad Name"), None, passwd, Some("bob")),
            (None, Some("root"), passwd, Some("bob")),
            (None, None, passwd, Some("bob")),
            (None, None, "root:x:0:0::/root:/bin/sh\n", None),
            (None, Some(&"a".repeat(33)), "", None),
        ];
        for (over, sudo, pw, want) in table {
            assert_eq!(
                ssh_user(over, sudo, pw).as_deref(),
                want,
                "{over:?} {sudo:?}"
            );
        }
    }
}
