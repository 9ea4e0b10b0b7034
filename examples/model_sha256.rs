//! Hashes files the way the model cache does on every cache hit (`models::hash`), for the
//! benchmark in `bench/models.py`: `cargo run --release --example model_sha256 -- FILE…`.

fn main() -> std::process::ExitCode {
    let mut code = std::process::ExitCode::SUCCESS;
    for path in std::env::args_os().skip(1) {
        match cyberwave_edge::models::hash::sha256_file(std::path::Path::new(&path)) {
            Ok((sha, _)) => println!("{sha}  {}", path.to_string_lossy()),
            Err(e) => {
                eprintln!("{}: {e}", path.to_string_lossy());
                code = std::process::ExitCode::FAILURE;
            }
        }
    }
    code
}
