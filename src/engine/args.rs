//! Reading `docker create` options as the CLI does: a flag's value either as the next word or
//! after `=`. Driver params, our own options and env-file checks all read them this way.

/// The values of any of `flags` in `options`, in order.
pub fn flag_values<'a>(options: &'a [String], flags: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < options.len() {
        let o = options[i].as_str();
        for f in flags {
            if o == *f {
                if let Some(v) = options.get(i + 1) {
                    out.push(v.as_str());
                    i += 1;
                }
            } else if let Some(v) = o.strip_prefix(f).and_then(|r| r.strip_prefix('=')) {
                out.push(v);
            }
        }
        i += 1;
    }
    out
}

/// The value of the last `--label key=value` for `key` among `options`.
pub fn label_value<'a>(options: &'a [String], key: &str) -> Option<&'a str> {
    flag_values(options, &["--label", "-l"])
        .into_iter()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// `options` without the uses of `flag` whose value `drop` picks (both forms).
pub fn without_flag_values(
    options: &[String],
    flag: &str,
    drop: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < options.len() {
        let o = &options[i];
        if o == flag && options.get(i + 1).is_some_and(|v| drop(v)) {
            i += 2;
            continue;
        }
        if o.strip_prefix(flag)
            .and_then(|r| r.strip_prefix('='))
            .is_some_and(&drop)
        {
            i += 1;
            continue;
        }
        out.push(o.clone());
        i += 1;
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
    fn both_forms_are_read_and_dropped() {
        let o = v(&[
            "--device",
            "/dev/a",
            "--device=/dev/b",
            "--devices",
            "x",
            "-v",
            "/c:/d",
            "--device",
        ]);
        assert_eq!(flag_values(&o, &["--device"]), vec!["/dev/a", "/dev/b"]);
        assert_eq!(flag_values(&o, &["-v", "--volume"]), vec!["/c:/d"]);
        assert_eq!(
            without_flag_values(&o, "--device", |d| d.ends_with('b')),
            v(&[
                "--device",
                "/dev/a",
                "--devices",
                "x",
                "-v",
                "/c:/d",
                "--device"
            ])
        );
    }
}
