//! SHA-256 of model files, streamed in 1 MiB reads: the check runs on every cache hit (on a Pi,
//! the boot-time cost), so it is one pass at the hash's own speed with a constant buffer.

use std::io::{self, Read};
use std::path::Path;

const CHUNK: usize = 1 << 20;

/// Lowercase hex SHA-256 of everything `r` yields, and its length.
pub fn sha256_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((crate::hex(h.finish().as_ref()), n))
}

/// SHA-256 and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    sha256_reader(std::fs::File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_one_shot_digest() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.pt");
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            (crate::sha256_hex(&data), data.len() as u64)
        );
        assert_eq!(
            sha256_reader(&b""[..]).unwrap().0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
