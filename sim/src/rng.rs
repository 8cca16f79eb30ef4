//! The simulator's only source of randomness: a seeded splitmix64 stream.
//!
//! Every draw comes from one `Rng` owned by the world, in event order, so a
//! seed fixes the whole run bit for bit.

/// A splitmix64 generator (Steele, Lea, Flood 2014): tiny, fast, and good
/// enough for scheduling noise.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // 53 random mantissa bits.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An integer uniform in `[0, n]` (inclusive); 0 when `n` is 0.
    pub fn upto(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n.saturating_add(1)
    }

    /// An exponential delay with the given mean, in milliseconds.
    pub fn exp_ms(&mut self, mean_ms: f64) -> u64 {
        let u = 1.0 - self.unit(); // in (0, 1]
        let x = -mean_ms * u.ln();
        if x.is_finite() && x > 0.0 {
            x.min(u64::MAX as f64 / 2.0) as u64
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::new(8);
        assert_ne!(Rng::new(7).next_u64(), c.next_u64());
    }

    #[test]
    fn unit_stays_in_range() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
