use super::*;

fn spec(script: &str, timeout: Duration) -> Spec {
    Spec {
        script: script.into(),
        workdir: std::env::temp_dir(),
        env: Vec::new(),
        stdin: None,
        timeout,
        memory_mb: None,
        cap: 1 << 20,
    }
}

/// Running, as opposed to gone or a zombie waiting for an init that may not reap.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

#[test]
fn output_exit_and_cap() {
    let g = Groups::default();
    let o = run(
        &spec("echo out; echo err >&2; exit 3", Duration::from_secs(5)),
        &g,
    );
    assert_eq!(
        (
            o.exit_code,
            o.stdout.as_str(),
            o.stderr.as_str(),
            o.timed_out
        ),
        (Some(3), "out\n", "err\n", false)
    );
    let mut s = spec("yes | head -c 5000", Duration::from_secs(5));
    s.cap = 100;
    let o = run(&s, &g);
    assert!(o.truncated && o.stdout.len() == 100);
    assert_eq!(g.count(), 0);
}

#[test]
fn env_stdin_and_workdir() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("in.json");
    std::fs::write(&p, "{\"a\":1}").unwrap();
    let mut s = spec(
        "printf '%s|' \"$X\" \"$(cat)\" \"$(pwd)\"",
        Duration::from_secs(5),
    );
    s.env = vec![("X".into(), "x y".into())];
    s.stdin = Some(p);
    s.workdir = d.path().to_path_buf();
    let o = run(&s, &Groups::default());
    let cwd = d.path().canonicalize().unwrap();
    assert_eq!(o.stdout, format!("x y|{{\"a\":1}}|{}|", cwd.display()));
}

#[test]
fn timeout_kills_the_whole_group() {
    let g = Groups::default();
    let t = Instant::now();
    let o = run(
        &spec(
            "sleep 30 & sleep 30; echo never",
            Duration::from_millis(300),
        ),
        &g,
    );
    assert!(o.timed_out && !o.success());
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(!o.stdout.contains("never"));
}

#[test]
fn a_daemon_holding_the_output_cannot_hold_the_request() {
    let d = tempfile::tempdir().unwrap();
    let pidfile = d.path().join("pid");
    // The daemon leaves the process group (setsid) but keeps stdout open.
    let script = format!(
        "setsid sh -c 'echo $$ > {}; sleep 40' & sleep 0.2; echo done",
        pidfile.display()
    );
    let t = Instant::now();
    let o = run(&spec(&script, Duration::from_secs(5)), &Groups::default());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!((o.stdout.as_str(), o.exit_code), ("done\n", Some(0)));
    assert!(o.output_held && !o.timed_out);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(pid), "the daemon survived");
}

#[test]
fn memory_limit_counts_resident_memory_not_address_space() {
    let g = Groups::default();
    // Reserving 8 GiB of address space (as CUDA does) is fine under a 64 MiB limit...
    let mut s = spec(
        "python3 -c 'import mmap; m = mmap.mmap(-1, 8 << 30); print(\"reserved\")'",
        Duration::from_secs(20),
    );
    s.memory_mb = Some(64);
    let o = run(&s, &g);
    assert_eq!(o.stdout, "reserved\n", "{o:?}");
    // ...using 256 MiB is not.
    let mut s = spec(
        "v=$(head -c 268435456 /dev/zero | tr '\\0' a); echo ${#v}",
        Duration::from_secs(30),
    );
    s.memory_mb = Some(64);
    let o = run(&s, &g);
    assert!(o.memory_exceeded && !o.success(), "{o:?}");
}

#[test]
fn install_reports_failure_and_stops_on_a_signal() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let g = Groups::default();
    let wd = std::env::temp_dir();
    assert!(install("echo ok", &wd, Duration::from_secs(5), &g, &rx).is_ok());
    let e = install(
        "echo boom >&2; exit 4",
        &wd,
        Duration::from_secs(5),
        &g,
        &rx,
    )
    .unwrap_err();
    match e {
        InstallError::Failed(m) => {
            assert!(m.contains("boom") && m.contains("exit status: 4"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    tx.send(15).unwrap();
    let t = Instant::now();
    let e = install("sleep 60", &wd, Duration::from_secs(3600), &g, &rx).unwrap_err();
    assert_eq!(e, InstallError::Interrupted(15));
    assert!(t.elapsed() < Duration::from_secs(2));
}
