//! Downloads one model the way the model cache does (`models::download`: Range resume, SHA-256
//! while streaming, disk check), for the benchmark in `bench/models.py`:
//! `cargo run --release --example model_download -- URL DIR FILENAME [SHA256]`.
//! Prints `<sha256> <bytes> <rss before KiB> <peak rss KiB>`.

use std::time::Duration;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn peak_kib() -> u64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_maxrss as u64
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, dir, filename, rest @ ..] = args.as_slice() else {
        eprintln!("usage: model_download URL DIR FILENAME [SHA256]");
        return std::process::ExitCode::FAILURE;
    };
    let before = rss_kib();
    let req = cyberwave_edge::models::download::Request {
        url,
        dir: std::path::Path::new(dir),
        filename,
        sha256: rest.first().map(String::as_str),
        timeout: Duration::from_secs(3600),
        attempts: 1,
        bearer: None,
    };
    match cyberwave_edge::models::download::fetch(&req) {
        Ok(d) => {
            println!("{} {} {before} {}", d.sha256, d.size, peak_kib());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
