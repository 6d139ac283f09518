//! A tiny deterministic PRNG for tests that generate input (fuzz-like bad frames).

/// A tiny deterministic PRNG (xorshift64*), so tests need no extra crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Random printable-ish text (valid UTF-8, rarely JSON).
    pub fn text(&mut self, n: usize) -> String {
        const ALPHABET: &[char] = &[
            '{',
            '}',
            '[',
            ']',
            '"',
            ':',
            ',',
            'a',
            'z',
            '0',
            '9',
            ' ',
            '\\',
            'é',
            '€',
            '\u{1F600}',
            'n',
            'u',
            'l',
        ];
        (0..n)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
            .collect()
    }
}
