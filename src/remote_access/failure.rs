//! The failure text sent to `POST …/failure` when frpc cannot start or exits (Appendix B):
//! its exit code and last log lines, ANSI colours stripped, every secret replaced by `***`,
//! at most 1,500 characters (the tail, where the reason is). Pure.

/// The original's cap on the failure text.
pub const MAX_CHARS: usize = 1500;
/// Log lines read from an exited frpc.
pub const LOG_LINES: u64 = 20;

/// `\x1b[` … letter sequences (colours, cursor moves) removed.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut cs = text.chars().peekable();
    while let Some(c) = cs.next() {
        if c == '\x1b' && cs.peek() == Some(&'[') {
            cs.next();
            while let Some(&n) = cs.peek() {
                cs.next();
                if n.is_ascii_alphabetic() {
                    break;
                }
                if !(n.is_ascii_digit() || n == ';') {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Strips ANSI, replaces each secret with `***`, keeps the last [`MAX_CHARS`] characters
/// (`…` first when cut).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut t = strip_ansi(text);
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        t = t.replace(s, "***");
    }
    let n = t.chars().count();
    if n > MAX_CHARS {
        let tail: String = t.chars().skip(n - (MAX_CHARS - 1)).collect();
        t = format!("…{tail}");
    }
    t
}

/// The report for an exited frpc: `frpc exited (code N): <last lines>`.
pub fn exit_summary(exit_code: Option<i64>, lines: &[String], secrets: &[&str]) -> String {
    let code = exit_code.map_or("unknown".to_string(), |c| c.to_string());
    let logs = lines.join("\n");
    redact(
        &format!("frpc exited (code {code}): {}", logs.trim()),
        secrets,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_is_stripped_and_secrets_masked() {
        let line = "\x1b[1;34m2026/12/03 [I]\x1b[0m login to server failed: token tok_SECRET invalid (key k3y)";
        let s = exit_summary(Some(1), &[line.to_string()], &["tok_SECRET", "k3y", ""]);
        assert_eq!(
            s,
            "frpc exited (code 1): 2026/12/03 [I] login to server failed: token *** invalid (key ***)"
        );
        assert_eq!(exit_summary(None, &[], &[]), "frpc exited (code unknown): ");
        assert_eq!(strip_ansi("a\x1b[Kb\x1b"), "ab\x1b");
    }

    #[test]
    fn long_text_keeps_its_tail() {
        let lines: Vec<String> = (0..400).map(|i| format!("line {i} ✓")).collect();
        let s = exit_summary(Some(2), &lines, &[]);
        assert_eq!(s.chars().count(), MAX_CHARS);
        assert!(s.starts_with('…'));
        assert!(s.ends_with("line 399 ✓"));
        // a secret cut in half by the cap is masked before the cut
        let secret = "S".repeat(40);
        let s = redact(&format!("{}{secret}", "x".repeat(1480)), &[&secret]);
        assert!(!s.contains("SSSS"), "{s}");
    }
}
