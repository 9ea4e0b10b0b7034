//! Random inputs for the quick no-panic tests of the template lexer and the command parser in
//! `cargo test` (`scripts/fuzz` runs the coverage-guided fuzzers for millions).

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
