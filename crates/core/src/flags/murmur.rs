//! Bucketing: MurmurHash3 (x86, 32-bit) and the normalisation Unleash puts on top of it.
//!
//! A user lands in the same bucket in Ripcord as in every Unleash SDK only if both
//! hash the same bytes the same way, so this is the reference algorithm written out,
//! not a hash chosen for speed. It is fed in pieces so that bucketing hashes
//! `"{group_id}:{id}"` without building that text.

/// The seed Unleash uses when hashing for a rollout percentage.
pub const ROLLOUT_SEED: u32 = 0;

/// The seed Unleash uses when hashing for a variant. A different seed from rollouts
/// keeps the two independent: the users who got a flag first are not all given the
/// first variant.
pub const VARIANT_SEED: u32 = 86_028_157;

/// MurmurHash3, x86 32-bit variant, of `bytes` with `seed`.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(bytes);
    hasher.finish()
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

fn mix(block: u32) -> u32 {
    block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

/// MurmurHash3 (x86, 32-bit) fed in pieces: the hash of the pieces is the hash of
/// their concatenation. Bucketing hashes `"{group_id}:{id}"` this way, so that
/// evaluating a flag never builds that text.
#[derive(Debug, Clone)]
struct Murmur3 {
    hash: u32,
    /// Bytes of an unfinished 4-byte block, the first in the lowest bits.
    pending: u32,
    pending_len: u32,
    /// The length so far, modulo 2^32 as the reference implementation mixes it in.
    len: u32,
}

impl Murmur3 {
    fn new(seed: u32) -> Self {
        Self {
            hash: seed,
            pending: 0,
            pending_len: 0,
            len: 0,
        }
    }

    fn block(&mut self, block: u32) {
        self.hash ^= mix(block);
        self.hash = self
            .hash
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    fn write(&mut self, mut bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u32);
        while self.pending_len > 0 {
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            self.push(byte);
            bytes = rest;
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in blocks.by_ref() {
            self.block(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        for &byte in blocks.remainder() {
            self.push(byte);
        }
    }

    /// Adds one byte to the unfinished block, hashing the block once it is whole.
    fn push(&mut self, byte: u8) {
        self.pending |= u32::from(byte) << (8 * self.pending_len);
        self.pending_len += 1;
        if self.pending_len == 4 {
            let block = self.pending;
            self.pending = 0;
            self.pending_len = 0;
            self.block(block);
        }
    }

    fn finish(self) -> u32 {
        let mut hash = self.hash;
        if self.pending_len > 0 {
            hash ^= mix(self.pending);
        }
        hash ^= self.len;
        hash ^= hash >> 16;
        hash = hash.wrapping_mul(0x85eb_ca6b);
        hash ^= hash >> 13;
        hash = hash.wrapping_mul(0xc2b2_ae35);
        hash ^= hash >> 16;
        hash
    }
}

/// The bucket of `id` within `group_id`: a number from 1 to `modulus` (inclusive).
///
/// Unleash hashes the UTF-8 text `"{group_id}:{id}"`. With `modulus` 100 and
/// [`ROLLOUT_SEED`] the result is compared with a rollout percentage (a user is in
/// when the bucket is at most the percentage); with the total variant weight and
/// [`VARIANT_SEED`] it picks a variant.
///
/// # Panics
///
/// If `modulus` is 0; callers check that there is some weight to share first.
pub fn normalized_hash(group_id: &str, id: &str, modulus: u32, seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(group_id.as_bytes());
    hasher.write(b":");
    hasher.write(id.as_bytes());
    hasher.finish() % modulus + 1
}

/// The rollout bucket of `id` within `group_id`, from 1 to 100.
pub fn rollout_bucket(group_id: &str, id: &str) -> u32 {
    normalized_hash(group_id, id, 100, ROLLOUT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Published test vectors for MurmurHash3 x86_32, covering every tail length.
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514e_28b7),
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\0\0\0\0", 0, 0x2362_f9de),
            (b"a", 0, 0x3c25_69b2),
            (b"ab", 0, 0x9bbf_d75f),
            (b"abc", 0, 0xb3dd_93fa),
            (b"abcd", 0, 0x43ed_676a),
            (b"hello", 0, 0x248b_fa47),
            (b"Hello, world!", 1234, 0xfaf6_cdb3),
            (
                b"The quick brown fox jumps over the lazy dog",
                0,
                0x2e4f_f723,
            ),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2fa8_26cd,
            ),
        ];
        for &(input, seed, expected) in cases {
            assert_eq!(
                murmur3_32(input, seed),
                expected,
                "murmur3_32({:?}, {seed:#x})",
                String::from_utf8_lossy(input)
            );
        }
    }

    proptest::proptest! {
        /// Feeding the bytes in pieces, split anywhere, hashes them as one piece.
        #[test]
        fn pieces_hash_as_their_concatenation(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            first in 0usize..40,
            second in 0usize..40,
            seed in proptest::prelude::any::<u32>(),
        ) {
            let (first, second) = (first.min(bytes.len()), second.min(bytes.len()));
            let (low, high) = (first.min(second), first.max(second));
            let mut hasher = Murmur3::new(seed);
            hasher.write(&bytes[..low]);
            hasher.write(&bytes[low..high]);
            hasher.write(&bytes[high..]);
            proptest::prop_assert_eq!(hasher.finish(), murmur3_32(&bytes, seed));
        }
    }

    #[test]
    fn non_ascii_text_is_hashed_as_utf8() {
        // "ø" is two bytes in UTF-8; hashing them must equal hashing the text.
        let text = "Hellø";
        assert_eq!(
            murmur3_32(text.as_bytes(), 0),
            murmur3_32(&[72, 101, 108, 108, 0xc3, 0xb8], 0)
        );
        assert_ne!(murmur3_32(text.as_bytes(), 0), murmur3_32(b"Hello", 0));
    }

    #[test]
    fn normalisation_stays_in_range() {
        for modulus in [1, 2, 3, 100, 1000] {
            for id in 0..2000 {
                let bucket = normalized_hash("group", &id.to_string(), modulus, ROLLOUT_SEED);
                assert!(
                    (1..=modulus).contains(&bucket),
                    "{bucket} is outside 1..={modulus}"
                );
            }
        }
    }

    #[test]
    fn normalisation_matches_unleash_buckets() {
        // Buckets that Unleash's own specification relies on (03 and 10 of its client
        // specification): user 122 is in at 50% and user 155 is not, in group AB12A.
        assert!(rollout_bucket("AB12A", "122") <= 50);
        assert!(rollout_bucket("AB12A", "155") > 50);
        assert!(rollout_bucket("Feature.flexibleRollout.10", "174") <= 10);
        assert!(rollout_bucket("Feature.flexibleRollout.10", "499") > 10);
        // The key is "group:id": the same pieces joined otherwise give another bucket.
        let joined = murmur3_32(b"AB12A:122", ROLLOUT_SEED) % 100 + 1;
        assert_eq!(rollout_bucket("AB12A", "122"), joined);
    }

    #[test]
    fn rollout_and_variant_seeds_differ() {
        let spread = (0..100)
            .filter(|id| {
                let id = id.to_string();
                normalized_hash("g", &id, 100, ROLLOUT_SEED)
                    != normalized_hash("g", &id, 100, VARIANT_SEED)
            })
            .count();
        assert!(spread > 90, "only {spread} of 100 ids hash differently");
    }

    #[test]
    fn buckets_are_roughly_uniform() {
        let mut counts = [0u32; 100];
        for id in 0..100_000 {
            counts[(rollout_bucket("uniform", &id.to_string()) - 1) as usize] += 1;
        }
        // 1,000 expected per bucket; 5 standard deviations is about 160.
        for (bucket, count) in counts.iter().enumerate() {
            assert!(
                (840..=1160).contains(count),
                "bucket {} holds {count} of 100,000 ids",
                bucket + 1
            );
        }
    }
}
