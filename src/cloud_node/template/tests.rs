use super::*;

const INJECTION: &str = r#"{"x":"$(touch pwned)","y":"'; touch pwned; echo '","z":"`touch pwned`","w":"\"; touch pwned; \""}"#;

/// Runs a compiled template with the params in the environment, as the runner does.
fn run(t: &Template, params: &str, dir: &std::path::Path) -> String {
    let file = dir.join("params.json");
    std::fs::write(&file, params).unwrap();
    let out = std::process::Command::new("sh")
        .args(["-c", &t.script])
        .current_dir(dir)
        .env(PARAMS_VAR, params)
        .env(PARAMS_FILE_VAR, &file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn accepted_templates_pass_params_as_one_argument() {
    let dir = tempfile::tempdir().unwrap();
    for (template, expect) in [
        ("printf '%s' {body}", INJECTION.to_string()),
        (
            "printf '%s' --params={body}",
            format!("--params={INJECTION}"),
        ),
        ("printf '%s\\n' {body} | tr -d '\\n'", INJECTION.to_string()),
        ("P={body} sh -c 'printf %s \"$P\"'", INJECTION.to_string()),
        ("cat {body_file}", INJECTION.to_string()),
        (
            "cat < /dev/null; printf '%s' {body} # {body} in a comment",
            INJECTION.to_string(),
        ),
        (
            "cat <<'EOF'\nliteral $(x)\nEOF\nprintf '%s' {body}",
            format!("literal $(x)\n{INJECTION}"),
        ),
        (
            "python3 -u x.py {body} 2>/dev/null || printf '%s' {body}",
            INJECTION.to_string(),
        ),
        ("cat", INJECTION.to_string()),
    ] {
        let t = compile(template).unwrap_or_else(|e| panic!("{template:?}: {e}"));
        let mut got = {
            // stdin carries the params too, as in the runner
            let file = dir.path().join("stdin.json");
            std::fs::write(&file, INJECTION).unwrap();
            let out = std::process::Command::new("sh")
                .args(["-c", &t.script])
                .current_dir(dir.path())
                .env(PARAMS_VAR, INJECTION)
                .env(PARAMS_FILE_VAR, dir.path().join("stdin.json"))
                .stdin(std::fs::File::open(&file).unwrap())
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        if template.starts_with("python3") {
            got = run(&t, INJECTION, dir.path());
        }
        assert_eq!(got, expect, "{template:?} -> {}", t.script);
        assert!(
            !dir.path().join("pwned").exists(),
            "{template:?} ran the params"
        );
    }
    let t = compile("a {body} {body_file}").unwrap();
    assert!(t.uses_body && t.uses_body_file);
    assert_eq!(
        t.script,
        "a \"$CYBERWAVE_PARAMS\" \"$CYBERWAVE_PARAMS_FILE\""
    );
    let t = compile("echo {bodyx} {other}").unwrap();
    assert!(!t.uses_body && t.script == "echo {bodyx} {other}");
}

#[test]
fn placeholders_outside_plain_text_are_refused_with_their_position() {
    for (template, reason, line, column) in [
        (
            "python x.py --params '{body}'",
            "inside single quotes",
            1,
            23,
        ),
        ("echo \"{body}\"", "inside double quotes", 1, 7),
        ("printf '%s\\n' \"{body}\"", "inside double quotes", 1, 16),
        ("cat <<EOF\n{body}\nEOF", "inside a here-document", 2, 1),
        (
            "cat <<-EOF\n\t{body}\n\tEOF\n",
            "inside a here-document",
            2,
            2,
        ),
        (
            "echo $(echo {body})",
            "inside a $(…) command substitution",
            1,
            13,
        ),
        ("echo `echo {body}`", "inside backquotes", 1, 12),
        (
            "echo ${x:-{body}}",
            "inside a ${…} parameter expansion",
            1,
            11,
        ),
        ("echo $'{body}'", "inside $'…' quotes", 1, 8),
        (
            "echo $(( {body} ))",
            "inside an arithmetic expansion",
            1,
            10,
        ),
        ("echo hi > {body}", "a redirection target", 1, 11),
        ("cat < {body_file}", "a redirection target", 1, 7),
        ("cat <<< {body}", "a redirection target", 1, 9),
        ("{body}", "the command itself", 1, 1),
        ("true; {body} x", "the command itself", 1, 7),
        (
            "eval {body}",
            "the code argument of an interpreter or `eval`",
            1,
            6,
        ),
        (
            "sh -c {body}",
            "the code argument of an interpreter or `eval`",
            1,
            7,
        ),
        (
            "/bin/bash -lc {body}",
            "the code argument of an interpreter or `eval`",
            1,
            15,
        ),
        (
            "python3 -u -c {body}",
            "the code argument of an interpreter or `eval`",
            1,
            15,
        ),
        (
            "perl -e {body}",
            "the code argument of an interpreter or `eval`",
            1,
            9,
        ),
        ("echo ok\necho '{body}'", "inside single quotes", 2, 7),
        ("echo $[{body}]", "inside an arithmetic expansion", 1, 8),
        (
            "let x={body}",
            "the code argument of an interpreter or `eval`",
            1,
            7,
        ),
        (
            "[[ {body} -eq 1 ]]",
            "the code argument of an interpreter or `eval`",
            1,
            4,
        ),
        (
            "trap {body} EXIT",
            "the code argument of an interpreter or `eval`",
            1,
            6,
        ),
        (
            "ssh host {body}",
            "the code argument of an interpreter or `eval`",
            1,
            10,
        ),
        (
            "timeout 5 sh -c {body}",
            "the code argument of an interpreter or `eval`",
            1,
            17,
        ),
        (
            "find . -exec bash -c {body} \\;",
            "the code argument of an interpreter or `eval`",
            1,
            22,
        ),
    ] {
        let e = compile(template).unwrap_err();
        assert_eq!(
            (e.reason, e.line, e.column),
            (reason, line, column),
            "{template:?}"
        );
        assert!(e.to_string().contains("{body"), "{e}");
    }
    // a script argument before -e is not code
    assert!(compile("python x.py -e {body}").is_ok());
    assert!(compile("python train.py --epochs 3 {body}").is_ok());
}

/// No input makes the lexer panic, and lexing is deterministic (a quick run here;
/// `scripts/fuzz` runs millions).
#[test]
fn arbitrary_input_never_panics() {
    let mut rng = crate::cloud_node::fuzz::Rng::new(7);
    for _ in 0..20_000 {
        let s = rng.shell_like(64);
        assert_eq!(compile(&s), compile(&s));
    }
}
