//! Random inputs for the no-panic tests of the template lexer and the command parser
//! (a short run in `cargo test`; `scripts/fuzz` runs millions in release mode).

/// xorshift64*: deterministic, seedable, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Up to `max` pieces of shell syntax, placeholders included.
    pub fn shell_like(&mut self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "'",
            "\"",
            "$",
            "(",
            ")",
            "{",
            "}",
            "\\",
            "`",
            "<",
            "<<",
            "<<-",
            ">",
            "-",
            "\n",
            "\t",
            " ",
            "#",
            ";",
            "|",
            "&",
            "{body}",
            "{body_file}",
            "{body",
            "EOF",
            "eval",
            "sh",
            "-c",
            "=",
            "a",
            "é",
            "\u{0}",
            "$(",
            "${",
            "$((",
            "))",
            "$'",
            "python3",
            "x.py",
            "--params",
        ];
        let n = self.below(max + 1);
        (0..n).map(|_| self.pick(PIECES)).collect()
    }

    /// Bytes that are often, but not always, a command: JSON pieces, random bytes, big numbers.
    pub fn command_like(&mut self, max: usize) -> Vec<u8> {
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"command\"",
            "\"request_id\"",
            "\"params\"",
            "\"inference\"",
            "\"training\"",
            "\"status\"",
            "\"r1\"",
            "1e999",
            "-0",
            "null",
            "true",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "12345678901234567890123",
            " ",
            "\"",
        ];
        let n = self.below(max + 1);
        let mut out = Vec::new();
        for _ in 0..n {
            if self.below(8) == 0 {
                out.push(self.next() as u8);
            } else {
                out.extend_from_slice(self.pick(PIECES).as_bytes());
            }
        }
        out
    }
}

/// The long runs: `scripts/fuzz` (release mode, `CYBERWAVE_FUZZ_RUNS`, default 1,000,000 each).
#[cfg(test)]
mod long_runs {
    use super::Rng;

    fn runs() -> u64 {
        std::env::var("CYBERWAVE_FUZZ_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000)
    }

    #[test]
    #[ignore = "long: run by scripts/fuzz in release mode"]
    fn fuzz_template_lexer() {
        let mut rng = Rng::new(0x7e57);
        let (mut ok, mut refused) = (0u64, 0u64);
        for _ in 0..runs() {
            match crate::cloud_node::template::compile(&rng.shell_like(96)) {
                Ok(_) => ok += 1,
                Err(_) => refused += 1,
            }
        }
        eprintln!("template lexer: {ok} accepted, {refused} refused, no panic");
    }

    #[test]
    #[ignore = "long: run by scripts/fuzz in release mode"]
    fn fuzz_command_parser() {
        let mut rng = Rng::new(0xc0de);
        let (mut ok, mut refused) = (0u64, 0u64);
        for _ in 0..runs() {
            match crate::cloud_node::protocol::parse(&rng.command_like(48)) {
                Ok(_) => ok += 1,
                Err(_) => refused += 1,
            }
        }
        eprintln!("command parser: {ok} accepted, {refused} refused, no panic");
    }
}
